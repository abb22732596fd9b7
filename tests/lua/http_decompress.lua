-- socketloop.http decoding gzip and deflate bodies as they stream (decompress = true, or
-- an Accept-Encoding of the caller's), framed by Content-Length, chunked and by close;
-- the size limit applied to the decoded size, so a gzip bomb stops; corrupt and
-- truncated bodies fail. The compressed bodies are made by python3's gzip and zlib.
local loop = require'socketloop'
local http = require'socketloop.http'
local ltn12 = require'socketloop.ltn12'
local T = require'testlib'
local H = require'http_support'

local dir = H.tmpdir()
local _, status = H.run(('cd %s && python3 -c %s'):format(H.quote(dir), H.quote([[
import gzip, zlib
plain = b''.join(b'line %d of the body, compressible\n' % i for i in range(20000))
open('plain', 'wb').write(plain)
open('gzip', 'wb').write(gzip.compress(plain))
open('zlib', 'wb').write(zlib.compress(plain))
raw = zlib.compressobj(6, zlib.DEFLATED, -15)
open('raw', 'wb').write(raw.compress(plain) + raw.flush())
open('bomb', 'wb').write(gzip.compress(b'\0' * (64 * 1024 * 1024), 9))
]])))
T.eq(status, 0, 'python3 made the compressed bodies')

local function read(name)
	local f = assert(io.open(dir .. '/' .. name, 'rb'))
	local data = f:read('*a')
	f:close()
	return data
end
local plain, gz, zl, raw, bomb = read('plain'), read('gzip'), read('zlib'), read('raw'), read('bomb')
H.rmdir(dir)
T.ok(#plain > 500000 and #gz < #plain / 5 and #bomb < 200000, 'sizes')

-- The server: /LENGTH|CHUNKED|CLOSE/NAME sends body NAME with that framing and
-- Content-Encoding ENC (from the query, none without); it records Accept-Encoding.
local bodies = {plain = plain, gzip = gz, zlib = zl, raw = raw, bomb = bomb}
local accept
local function serve(skt)
	for _ = 1, 100 do
		local line, fields = H.read_request(skt)
		if not line then break end
		accept = fields['accept-encoding']
		local framing, name, enc = line:match('^%u+ /(%a+)/(%a+)%??(%S*)')
		local body = bodies[name]
		local coding = enc ~= '' and 'Content-Encoding: ' .. enc .. '\r\n' or ''
		if framing == 'length' then
			skt:send(H.response(200, body, coding))
		elseif framing == 'chunked' then
			skt:send('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n' .. coding .. '\r\n')
			-- uneven chunks, so chunk and compressed block boundaries differ
			local i, size = 1, 1
			while i <= #body do
				local piece = body:sub(i, i + size - 1)
				if not skt:send(('%x\r\n%s\r\n'):format(#piece, piece)) then break end
				i, size = i + #piece, size * 3 + 7
			end
			skt:send('0\r\n\r\n')
		else
			skt:send('HTTP/1.1 200 OK\r\nConnection: close\r\n' .. coding .. '\r\n')
			skt:send(body)
			break
		end
	end
	skt:close()
end

-- Runs `body` with the server up (closed after, so the loop goes idle).
local base
local function run(name, body)
	T.run(name, function()
		local server
		server, _, base = H.scripted(serve)
		body()
		http.closeidle()
		server:close()
	end)
end

local function get(path, t)
	t = t or {}
	local out = {}
	t.url = base .. path
	t.sink = ltn12.sink.table(out)
	local ok, code, headers = http.request(t)
	if not ok then return nil, code end
	return table.concat(out), code, headers
end

run('gzip and deflate decoded', function()
	for _, framing in ipairs{'length', 'chunked', 'close'} do
		for _, case in ipairs{{'gzip', 'gzip'}, {'zlib', 'deflate'}, {'raw', 'deflate'}, {'gzip', 'x-gzip'}} do
			local name, enc = case[1], case[2]
			local what = framing .. ' ' .. name .. ' as ' .. enc
			local body, err = get(('/%s/%s?%s'):format(framing, name, enc), {decompress = true})
			T.ok(body == plain, what .. ': decoded (' .. tostring(err or #body) .. ')')
			T.eq(accept, 'gzip, deflate', what .. ': Accept-Encoding sent')
		end
	end
	-- the caller's own Accept-Encoding asks for decoding too
	local body = get('/chunked/gzip?gzip', {headers = {['Accept-Encoding'] = 'gzip'}})
	T.ok(body == plain, "caller's Accept-Encoding: decoded")
	T.eq(accept, 'gzip', "caller's Accept-Encoding sent as it is")
	-- decompress = false: the bytes as sent
	body = get('/length/gzip?gzip', {headers = {['Accept-Encoding'] = 'gzip'}, decompress = false})
	T.ok(body == gz, 'decompress = false: the gzip bytes')
	-- no Accept-Encoding and no decompress: nothing asked, nothing decoded
	body = get('/length/gzip?gzip')
	T.ok(body == gz, 'not asked: not decoded')
	T.eq(accept, nil, 'no Accept-Encoding sent')
	-- a coding we do not decode arrives as it is
	body = get('/length/gzip?br', {decompress = true})
	T.ok(body == gz, 'unknown coding: as sent')
	local _, code, headers = http.request{url = base .. '/length/gzip?gzip', decompress = true,
		method = 'HEAD'}
	T.eq(code, 200, 'HEAD with a coding: no body to decode')
	T.eq(headers['content-encoding'], 'gzip', 'headers as received')
end)

run('limits on the decoded size', function()
	local ok, err = get('/length/bomb?gzip', {decompress = true, maxsize = 10 * 1024 * 1024})
	T.eq(ok, nil, 'a gzip bomb (64 MiB from ' .. #bomb .. ' bytes) is stopped')
	T.eq(err, 'response body too large', 'by maxsize on the decoded size')
	ok, err = get('/chunked/bomb?gzip', {decompress = true, maxsize = 10 * 1024 * 1024})
	T.eq(err, 'response body too large', 'chunked too')
	local body = get('/length/gzip?gzip', {decompress = true, maxsize = #plain})
	T.ok(body == plain, 'a body exactly at the limit')
	ok, err = get('/length/gzip?gzip', {decompress = true, maxsize = #plain - 1})
	T.eq(err, 'response body too large', 'one byte over')
	-- the decoded body is what counts, not the compressed one
	body = get('/length/gzip?gzip', {decompress = true, maxsize = #plain, keepalive = false})
	T.ok(body == plain and #gz < #plain, 'compressed smaller than the limit')
end)

run('corrupt and truncated compressed bodies', function()
	bodies.corrupt = gz:sub(1, 100) .. ('x'):rep(100) .. gz:sub(201)
	local ok, err = get('/length/corrupt?gzip', {decompress = true})
	T.eq(ok, nil, 'corrupt gzip fails')
	T.eq(err, 'malformed response (invalid compressed body)', 'message')
	bodies.cut = gz:sub(1, #gz - 20)
	ok, err = get('/length/cut?gzip', {decompress = true})
	T.eq(err, 'malformed response (compressed body truncated)', 'truncated gzip')
	ok, err = get('/close/cut?deflate', {decompress = true})
	T.eq(err, 'malformed response (invalid compressed body)', 'gzip bytes as deflate')
	bodies.notgzip = 'plain text, not gzip'
	ok, err = get('/chunked/notgzip?gzip', {decompress = true})
	T.eq(err, 'malformed response (invalid compressed body)', 'not gzip at all')
	T.raises("field 'decompress'", http.request, {url = base, decompress = 'yes'})
end)

T.finish()
