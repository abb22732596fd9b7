-- rpc messages built by hand, per docs/protocol.md, for tests that play a raw peer (a
-- module, not a test script).
local char, floor = string.char, math.floor

local W = {}

-- A big-endian 32-bit count.
function W.u32(n)
	return char(floor(n / 2^24) % 256, floor(n / 2^16) % 256, floor(n / 2^8) % 256, n % 256)
end

-- A message: kind (0 call, 1 response), sequence number, payload.
function W.message(kind, seq, payload)
	return char(kind, seq) .. W.u32(#payload) .. payload
end

-- A string value shorter than 128 bytes.
function W.str(s)
	return '\5' .. char(#s) .. s
end

-- A call of procedure `name` with no arguments.
function W.call(seq, name)
	return W.message(0, seq, W.str(name) .. '\0')
end

return W
