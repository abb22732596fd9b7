-- The framing of tango 0.2's socket backend: each message is its length in ASCII
-- decimal, a newline, then that many bytes (docs/protocol.md).

local W = {}

W.DEFAULT_MAXSIZE = 16 * 1024 * 1024
-- Room the receive buffer needs beyond the payload limit: one read may bring up to 64 KiB
-- past what a pattern asked for.
local BUFFER_SLACK = 128 * 1024
-- The longest length line: 10 digits. The receive limit is this while a length line is
-- read, so a peer sending digits and never a newline is refused as the 11th byte arrives.
W.MAX_LINE = 10

-- Sets the receive limit on `skt` for reading a length line.
function W.prepare(skt)
	skt:setoption('receive-limit', W.MAX_LINE)
end

-- Sends `data` as one message. Returns true or nil, err.
function W.send(skt, data)
	local ok, err = skt:send(#data .. '\n' .. data)
	if not ok then return nil, err end
	return true
end

-- Receives one message of at most `maxsize` bytes. Returns the payload, or nil, err and
-- whether err is a protocol error to report, rather than the connection closing or
-- timing out between messages.
function W.receive(skt, maxsize)
	local line, err, part = skt:receive('*l')
	if not line then
		if err == 'receive limit exceeded' then return nil, 'length line too long', true end
		if part == nil or part == '' then return nil, err, false end
		if err == 'timeout' then return nil, 'message incomplete (the length line stalled)', true end
		if err == 'closed' then return nil, 'connection closed in the middle of a message', true end
		return nil, err, true
	end
	if not line:find('^%d+$') or #line > W.MAX_LINE then
		return nil, 'malformed length line', true
	end
	local size = tonumber(line)
	if size > maxsize then
		return nil, ('message of %d bytes exceeds the limit of %d bytes'):format(size, maxsize), true
	end
	if size == 0 then return '' end
	skt:setoption('receive-limit', maxsize + BUFFER_SLACK)
	local data
	data, err = skt:receive(size)
	skt:setoption('receive-limit', W.MAX_LINE)
	if not data then
		if err == 'timeout' then
			return nil, 'message incomplete (the payload stalled)', true
		end
		return nil, err == 'closed' and 'connection closed in the middle of a message' or err, true
	end
	return data
end

return W
