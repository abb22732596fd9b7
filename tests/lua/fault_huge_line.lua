-- Faults: receive('*l') of a huge line (FAULT_LINE_MIB MiB of 'x' and one more byte,
-- 20 by default) with receive-limit 1 MiB. Each receive answers
-- nil, 'receive limit exceeded', 1 MiB of the line; the line's last byte and the next
-- line then arrive intact. Memory stays bounded: the socket never buffers more than the
-- limit plus one read (received - consumed, from getstats), and the Lua heap after a
-- collection stays within a few MiB of where it started.
local loop = require'socketloop'
local T = require'testlib'
local N = require'testnet'

local MIB = 1024 * 1024
local SIZE = (tonumber(os.getenv('FAULT_LINE_MIB')) or 20) * MIB + 1
local LIMIT = MIB

T.run('a huge line against receive-limit', function()
	local started = loop.now()
	local c, s = N.pair()
	T.eq(s:setoption('receive-limit', LIMIT), 1, 'receive-limit set')
	local sender = N.spawn(function()
		local piece = ('x'):rep(64 * 1024)
		local left = SIZE
		while left > 0 do
			local n = math.min(left, #piece)
			assert(c:send(piece, 1, n))
			left = left - n
		end
		assert(c:send('\nnext line\n'))
		return true
	end)
	collectgarbage()
	local heap0 = collectgarbage('count')
	local exceeded, consumed, most_buffered, most_heap, all_x = 0, 0, 0, 0, true
	local line, err, partial
	for _ = 1, SIZE / LIMIT + 2 do
		line, err, partial = s:receive('*l')
		if line then break end
		if err ~= 'receive limit exceeded' then break end
		exceeded = exceeded + 1
		consumed = consumed + #partial
		if #partial ~= LIMIT or partial:find('[^x]') then all_x = false end
		local received = s:getstats()
		most_buffered = math.max(most_buffered, received - consumed)
		partial = nil
		collectgarbage()
		most_heap = math.max(most_heap, collectgarbage('count') - heap0)
	end
	T.eq(err, nil, 'the receives ended with a line')
	T.eq(exceeded, math.floor(SIZE / LIMIT), 'one limit error per MiB of the line')
	T.ok(all_x, 'each partial result is 1 MiB of the line')
	T.eq(line, 'x', 'then the last byte of the line')
	T.eq(s:receive('*l'), 'next line', 'then the next line, intact')
	T.ok(most_buffered <= LIMIT + 64 * 1024,
		('the socket buffered at most the limit plus one read (%d bytes)'):format(most_buffered))
	T.ok(most_heap < 4 * 1024, ('the Lua heap grew by %.0f KiB at most'):format(most_heap))
	N.await(sender, 'the sender')
	N.figures('fault_huge_line', {
		line_mib = math.floor(SIZE / MIB), limit_kib = LIMIT / 1024, limit_errors = exceeded,
		most_buffered_kib = most_buffered / 1024, heap_growth_kib = most_heap,
		peak_rss_kib = N.status_kib('VmHWM'), seconds = loop.now() - started,
	})
	print(('%d MiB line: %d limit errors, socket buffered at most %d KiB, Lua heap +%.0f KiB at most'):format(
		math.floor(SIZE / MIB), exceeded, most_buffered / 1024, most_heap))
	c:close()
	s:close()
end)

N.finish()
