-- One HTTP/1.1 exchange on one connection, for socketloop.http: writing the request,
-- reading the response head (parsed by httparse in src/codec/http_head.rs, skipping 1xx
-- heads) and reading the body, framed by Content-Length, by the chunked transfer
-- coding, or by the end of the connection.
--
-- A connection `c` is a table {sock=, deadline=, armed=}: the socket's timeout bounds
-- each wait, `deadline` (on the loop clock, nil: none) the whole request; `armed` turns
-- true once a total timeout was set on the socket for it. Every
-- receive asks for at most W.BLOCK bytes, so a socket of ours can carry a receive limit
-- (W.RECEIVE_LIMIT) that stops a server from making us buffer without end.

local core = require'socketloop.core'

local now = core.now
local parse_head, parse_fields = core.parse_response_head, core.parse_header_fields
local parse_chunk_size, body_decoder = core.parse_chunk_size, core.body_decoder
local concat, min, format = table.concat, math.min, string.format
local find, sub, gsub, byte = string.find, string.sub, string.gsub, string.byte

local W = {}

-- Most bytes one body receive asks for.
W.BLOCK = 65536
-- Most bytes a response head (or a chunked body's trailer) may take, all its lines
-- together (socketloop.http's MAXHEAD sets it per request). Any number of fields fits.
W.MAXHEAD = 1048576
-- The receive limit for our sockets: a pending receive of up to BLOCK bytes plus one
-- read of the socket layer (64 KiB) always fits, a line longer than this fails.
W.RECEIVE_LIMIT = W.BLOCK + 65536
-- 1xx heads skipped before a response is called malformed.
local MAX_INTERIM = 16

local MALFORMED = 'malformed response'

-- Bounds the next operation by what is left of the request's total time (the socket's
-- own timeout already bounds each wait). False when the total time is spent.
local function arm(c)
	local deadline = c.deadline
	if not deadline then return true end
	local left = deadline - now()
	if left <= 0 then return false end
	c.sock:settimeout(left, 't')
	c.armed = true
	return true
end

local function sock_receive(c, pattern, prefix)
	if not arm(c) then return nil, 'timeout', prefix or '' end
	local data, err, partial = c.sock:receive(pattern, prefix)
	if err == 'receive limit exceeded' then
		return nil, MALFORMED .. ' (line too long)', partial
	end
	return data, err, partial
end

-- Receives a line ('*l', without its LF, every CR dropped, as the socket's) or a count
-- of bytes, from `c.pending` (bytes received with the head that follow it) first.
local function receive(c, pattern)
	local pending = c.pending
	if not pending then return sock_receive(c, pattern) end
	if pattern == '*l' then
		local i = find(pending, '\n', 1, true)
		c.pending = i and i < #pending and sub(pending, i + 1) or nil
		if i then return (gsub(sub(pending, 1, i - 1), '\r', '')) end
		return sock_receive(c, '*l', (gsub(pending, '\r', '')))
	end
	if #pending >= pattern then
		c.pending = #pending > pattern and sub(pending, pattern + 1) or nil
		return #pending > pattern and sub(pending, 1, pattern) or pending
	end
	c.pending = nil
	return sock_receive(c, pattern, pending)
end

-- Waits for bytes and returns every byte received so far (at least one). A socket from
-- `create` that is not one of ours (`c.foreign`) cannot say what it has buffered: it
-- gives a line at a time instead (its CRs dropped, which the head parser takes).
local function receive_some(c)
	if c.foreign then
		local line, err, partial = sock_receive(c, '*l')
		if not line then return nil, err, partial end
		return line .. '\n'
	end
	local data, err, partial = sock_receive(c, 1)
	if not data then return nil, err, partial end
	local n = c.sock:buffered()
	if n == 0 then return data end
	-- Without a prefix the receive takes the FFI fast path (a prefix takes the method).
	local rest
	rest, err, partial = sock_receive(c, n)
	if not rest then return nil, err, data .. (partial or '') end
	return data .. rest
end

local function send(c, data)
	if not arm(c) then return nil, 'timeout' end
	return c.sock:send(data)
end
W.send = send

-- 'content-length' -> 'Content-Length'.
local function canonical(name)
	return (('-' .. name):gsub('%-%l', string.upper):sub(2))
end

-- The request line and header fields, ending in the empty line. `headers` maps
-- lower-case names to values (strings or numbers).
function W.request_head(method, target, headers)
	local parts, n = {method, ' ', target, ' HTTP/1.1\r\n'}, 4
	for name, value in pairs(headers) do
		parts[n + 1] = canonical(name)
		parts[n + 2] = ': '
		parts[n + 3] = value
		parts[n + 4] = '\r\n'
		n = n + 4
	end
	parts[n + 1] = '\r\n'
	return concat(parts)
end

-- A sink writing to the connection, each chunk framed for the chunked transfer coding
-- when `chunked` (the end then sends the last chunk).
function W.body_sink(c, chunked)
	return function(chunk)
		if chunk == nil then
			if chunked then return send(c, '0\r\n\r\n') end
			return 1
		end
		if chunk == '' then return 1 end
		if chunked then
			return send(c, format('%X\r\n', #chunk) .. chunk .. '\r\n')
		end
		return send(c, chunk)
	end
end

-- Reads one response head, from the status line to the empty line, of at most
-- `maxhead` bytes, parsed in one call of src/codec/http_head.rs; bytes received after it
-- stay in `c.pending`. Returns code, reason, headers, minor version, status line,
-- repeated fields (nil or name -> list of values); or nil, err, started (true when some
-- of the response had arrived, so the request cannot be retried elsewhere).
local function read_head(c, maxhead)
	local buf = c.pending
	c.pending = nil
	if not buf then
		local err, partial
		buf, err, partial = receive_some(c)
		if not buf then return nil, err, partial ~= nil and partial ~= '' end
	end
	-- Pieces are gathered in `parts` and joined only when the empty line (or, once, the
	-- end of the status line) has come, so a head trickling in costs linear time. A head
	-- that came whole needs no `parts`.
	local parts, n, size, statusline_seen = nil, 1, #buf, false
	local piece = buf
	while true do
		-- Until the status line has come, any line end is worth a parse (httparse fails at
		-- once on what is not HTTP); after it, only the empty line that ends the head.
		local complete = statusline_seen and find(piece, '\n\r?\n')
		if complete or not statusline_seen and find(piece, '\n', 1, true) then
			statusline_seen = true
			if n > 1 then
				buf = concat(parts, '', 1, n)
				parts[1], n = buf, 1
			end
			local code, reason, headers, len, minor, repeated, status = parse_head(buf)
			if code then
				if len > maxhead then break end
				if len < #buf then c.pending = sub(buf, len + 1) end
				return code, reason, headers, minor, status, repeated
			end
			-- httparse fails as soon as the bytes are not HTTP: no waiting for an empty
			-- line after garbage.
			if reason ~= 'partial' then return nil, reason, true end
		end
		if size > maxhead then break end
		local more, err = receive_some(c)
		if not more then return nil, err, true end
		parts = parts or {buf}
		-- the end of the head may straddle the pieces: look from the last 3 bytes on
		piece = sub(parts[n], -3) .. more
		n = n + 1
		parts[n] = more
		size = size + #more
	end
	return nil, format('%s (head over %d bytes)', MALFORMED, maxhead), true
end

-- Reads the final response head, skipping interim (1xx) ones; 101 is final. Returns
-- what read_head returns.
function W.read_response(c, maxhead)
	for _ = 1, MAX_INTERIM do
		local code, reason, headers, minor, status, repeated = read_head(c, maxhead or W.MAXHEAD)
		if not code then return nil, reason, headers end
		if code >= 200 or code == 101 then
			return code, reason, headers, minor, status, repeated
		end
	end
	return nil, MALFORMED .. ' (too many interim responses)', true
end

-- The Content-Length value; repeated fields (joined by ', ') must agree.
local function content_length(value)
	-- The usual value, digits alone, without a pattern.
	local size = #value
	if size > 0 and size <= 15 then
		local digits = true
		for i = 1, size do
			local b = byte(value, i)
			if b < 48 or b > 57 then
				digits = false
				break
			end
		end
		if digits then return tonumber(value) end
	end
	local length
	for item in value:gmatch('[^,]+') do
		local digits = item:match('^%s*(%d+)%s*$')
		if not digits or #digits > 15 or (length and tonumber(digits) ~= length) then
			return nil
		end
		length = tonumber(digits)
	end
	return length
end

-- How the body of a response is delimited: 'none', 'length' (and the length),
-- 'chunked' or 'close'; or nil, err.
function W.framing(method, code, headers)
	if method == 'HEAD' or code == 204 or code == 304 or code < 200 then
		return 'none', 0
	end
	local te = headers['transfer-encoding']
	if te and te:lower():match('^%s*identity%s*$') == nil then
		-- Chunked must be the last coding; if it is not, the end of the connection ends
		-- the body (RFC 9112, 6.3).
		if te:lower():match('chunked%s*$') then return 'chunked' end
		return 'close'
	end
	local cl = headers['content-length']
	if cl then
		local length = content_length(cl)
		if not length then return nil, MALFORMED .. ' (invalid content-length)' end
		return 'length', length
	end
	return 'close'
end

-- True when `list` (a comma-separated header value) holds `token`.
local function has_token(list, token)
	if not list then return false end
	for item in list:gmatch('[^,%s]+') do
		if item:lower() == token then return true end
	end
	return false
end

-- Whether the connection can carry another request once this response's body is read
-- (after a 101 it speaks another protocol).
function W.reusable(code, minor, headers, kind)
	if kind == 'close' or code == 101 then return false end
	if minor == 0 then return has_token(headers.connection, 'keep-alive') end
	return not has_token(headers.connection, 'close')
end
W.has_token = has_token

-- The error of a body that ended before its framing said it would.
local function truncated(err, expected, received)
	if err ~= 'closed' then return err end
	return format('closed (body truncated: expected %d bytes, received %d)', expected, received)
end

-- A body of `length` bytes (framed by Content-Length) read whole, in one receive, or
-- nil, err; `maxsize` (nil: none) limits it.
function W.read_length(c, length, maxsize)
	if maxsize and length > maxsize then return nil, 'response body too large' end
	if length == 0 then return '' end
	local data, err, partial = receive(c, length)
	if not data then return nil, truncated(err, length, #(partial or '')) end
	return data
end

-- A source of the body's bytes as they came. `state.done` turns true once the body was
-- read to its end (so the connection is where the next response starts). `maxsize`
-- (nil: none) limits the body; chunked trailer fields are added to `headers`.
local function raw_source(c, kind, length, headers, maxsize)
	local state = {done = false}
	local total = 0
	local function counted(data)
		total = total + #data
		if maxsize and total > maxsize then
			return nil, 'response body too large'
		end
		return data
	end
	if kind == 'none' or (kind == 'length' and length == 0) then
		state.done = true
		return function() return nil end, state
	end
	if kind == 'length' then
		if maxsize and length > maxsize then
			return function() return nil, 'response body too large' end, state
		end
		local left = length
		return function()
			if left == 0 then
				state.done = true
				return nil
			end
			local data, err, partial = receive(c, min(left, W.BLOCK))
			if not data then
				return nil, truncated(err, length, length - left + #(partial or ''))
			end
			left = left - #data
			return data
		end, state
	end
	if kind == 'close' then
		local ended = false
		return function()
			if ended then
				state.done = true
				return nil
			end
			local data, err, partial = receive(c, W.BLOCK)
			if data then return counted(data) end
			if err ~= 'closed' then return nil, err end
			ended = true
			if partial == '' then
				state.done = true
				return nil
			end
			return counted(partial)
		end, state
	end
	-- chunked: size line, data in BLOCK pieces, CRLF; a zero size ends, then the trailer
	local left, size = 0, 0
	return function()
		if state.done then return nil end
		if left == 0 then
			local line, err = receive(c, '*l')
			if not line then return nil, err end
			local why
			size, why = parse_chunk_size(line .. '\r\n')
			if not size then
				return nil, why == 'partial' and MALFORMED .. ' (invalid chunk size)' or why
			end
			if size == 0 then
				local parts, n, bytes = {}, 0, 0
				repeat
					line, err = receive(c, '*l')
					if not line then return nil, err end
					bytes = bytes + #line + 2
					if bytes > W.MAXHEAD then return nil, MALFORMED .. ' (trailer too large)' end
					parts[n + 1] = line
					parts[n + 2] = '\r\n'
					n = n + 2
				until line == ''
				if n > 2 then
					local fields, ferr = parse_fields(concat(parts))
					if not fields then return nil, ferr end
					for name, value in pairs(fields) do
						local previous = headers[name]
						headers[name] = previous and previous .. ', ' .. value or value
					end
				end
				state.done = true
				return nil
			end
			left = size
		end
		local data, err, partial = receive(c, min(left, W.BLOCK))
		if not data then
			if err ~= 'closed' then return nil, err end
			return nil, format('closed (body truncated: expected a chunk of %d bytes, received %d of it, %d body bytes in all)',
				size, size - left + #(partial or ''), total + #(partial or ''))
		end
		left = left - #data
		if left == 0 then
			local crlf, cerr = receive(c, '*l')
			if not crlf then return nil, cerr end
			if crlf ~= '' then return nil, MALFORMED .. ' (chunk too long)' end
		end
		return counted(data)
	end, state
end

-- The body source `src` decoded by `decoder` (src/codec/inflate.rs).
local function decoding(src, decoder)
	local more, ended = false, false
	return function()
		while true do
			local out, err
			if more then
				out, more = decoder:decode('')
			elseif ended then
				return nil
			else
				local data, serr = src()
				if serr then return nil, serr end
				if data == nil then
					ended = true
					local ok, ferr = decoder:finish()
					if not ok then return nil, ferr end
					return nil
				end
				out, more = decoder:decode(data)
			end
			if not out then
				err = more
				more = false
				return nil, err
			end
			if out ~= '' then return out end
		end
	end
end

-- A source of the response body and its state (see raw_source). With `decode`, a body
-- whose Content-Encoding is gzip or deflate comes decoded, `maxsize` then limiting the
-- decoded size (a decompression bomb fails with 'response body too large').
function W.body_source(c, kind, length, headers, maxsize, decode)
	local coding = decode and kind ~= 'none' and headers['content-encoding']
	local decoder = coding and body_decoder(coding, maxsize)
	if decoder then
		local src, state = raw_source(c, kind, length, headers, nil)
		return decoding(src, decoder), state
	end
	return raw_source(c, kind, length, headers, maxsize)
end

return W
