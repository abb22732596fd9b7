-- loop.queue: a bounded queue between 10 producers and 10 consumers (every item exactly
-- once, the length never above the capacity, pushes held back while it is full), FIFO
-- among waiters, close, timeouts, and misuse.
local loop = require'socketloop'
local T = require'testlib'
require'threads_util'

T.run('10 producers, 10 consumers, 100,000 items, capacity 16', function()
	local CAP, PRODUCERS, CONSUMERS, PER = 16, 10, 10, 10000
	local q = loop.queue(CAP)
	local seen, received, peak, parked_pushes = {}, 0, 0, 0
	local producers = {}
	for p = 1, PRODUCERS do
		producers[p] = loop.newthread(function()
			for i = 1, PER do
				local full = #q == CAP
				assert(q:push((p - 1) * PER + i))
				if full then parked_pushes = parked_pushes + 1 end
				if #q > peak then peak = #q end
			end
		end)
	end
	local consumers = {}
	for c = 1, CONSUMERS do
		consumers[c] = loop.newthread(function()
			local mine = 0
			while true do
				local v, err = q:pop()
				if not v then return mine, err end
				if #q > peak then peak = #q end
				seen[v] = (seen[v] or 0) + 1
				received = received + 1
				mine = mine + 1
				if mine % 97 == 0 then loop.sleep(0) end -- let the pushes pile up
			end
		end)
	end
	for p = 1, PRODUCERS do T.eq(loop.join(producers[p]), true, 'producer ' .. p) end
	q:close()
	local total = 0
	for c = 1, CONSUMERS do
		local ok, mine, err = loop.join(consumers[c])
		T.ok(ok, 'consumer ' .. c)
		T.eq(err, 'closed', 'consumer ' .. c .. ' ends on close')
		T.ok(mine > 0, 'consumer ' .. c .. ' got items')
		total = total + mine
	end
	T.eq(total, PRODUCERS * PER, 'items received')
	T.eq(received, PRODUCERS * PER, 'items received')
	local missing, twice = 0, 0
	for v = 1, PRODUCERS * PER do
		if seen[v] == nil then missing = missing + 1 elseif seen[v] > 1 then twice = twice + 1 end
	end
	T.eq(missing, 0, 'items lost')
	T.eq(twice, 0, 'items received twice')
	T.ok(peak <= CAP, 'peak length ' .. peak .. ' above the capacity')
	T.eq(peak, CAP, 'the queue filled up')
	T.ok(parked_pushes > 0, 'pushes waited while the queue was full')
end)

T.run('FIFO among waiters, hand-over order', function()
	local q = loop.queue(1)
	local order = {}
	for i = 1, 5 do
		loop.newthread(function()
			local v = q:pop()
			order[#order + 1] = i .. ':' .. v
		end)
	end
	for i = 1, 5 do q:push(i) end
	loop.sleep(0)
	T.eq(table.concat(order, ' '), '1:1 2:2 3:3 4:4 5:5', 'pops served in arrival order')
	-- Pushes waiting on a full queue go in in their arrival order.
	assert(q:push('a'))
	for i = 1, 4 do loop.newthread(function() q:push('p' .. i) end) end
	T.eq(#q, 1, 'length at capacity')
	local got = {}
	for _ = 1, 5 do got[#got + 1] = q:pop() end
	T.eq(table.concat(got, ' '), 'a p1 p2 p3 p4', 'pushes served in arrival order')
	T.eq(q:len(), 0, 'empty')
end)

T.run('close: pops drain first, waiters wake with closed', function()
	local q = loop.queue(2)
	q:push(1) q:push(2)
	local blocked = loop.newthread(function() return q:push(3) end)
	q:close()
	T.eq(select(2, loop.join(blocked)), nil, 'waiting push fails')
	T.eq(select(3, loop.join(blocked)), nil)
	local r = {q:push(4)}
	T.eq(r[2], 'closed', 'push after close')
	T.eq(q:pop(), 1) T.eq(q:pop(), 2)
	local v, err = q:pop()
	T.eq(v, nil) T.eq(err, 'closed', 'pop of a closed, empty queue')
	local q2 = loop.queue()
	local waiter = loop.newthread(function() return q2:pop() end)
	q2:close()
	local ok, v2, err2 = loop.join(waiter)
	T.ok(ok) T.eq(v2, nil) T.eq(err2, 'closed', 'waiting pop wakes with closed')
	T.ok(q2:isclosed())
end)

T.run('timeouts', function()
	local q = loop.queue(1)
	local t0 = loop.now()
	local v, err = q:pop(0.02)
	T.eq(v, nil) T.eq(err, 'timeout', 'pop times out')
	T.ok(loop.now() - t0 >= 0.02, 'pop waited its timeout')
	T.eq(select(2, q:pop(0)), 'timeout', 'pop(0) on an empty queue')
	q:push('x')
	local ok, err2 = q:push('y', 0.02)
	T.eq(ok, nil) T.eq(err2, 'timeout', 'push times out')
	T.eq(select(2, q:push('y', 0)), 'timeout', 'push(0) on a full queue')
	T.eq(#q, 1, 'the timed-out push left nothing')
	-- A waiter that timed out is skipped by later hand-overs.
	local q2 = loop.queue()
	local late = loop.newthread(function() return q2:pop(0.01) end)
	local patient = loop.newthread(function() return q2:pop() end)
	loop.sleep(0.03)
	q2:push('p')
	T.eq(select(3, loop.join(late)), 'timeout')
	T.eq(select(2, loop.join(patient)), 'p', 'item to the waiter still waiting')
	-- Many timed-out waiters ahead of one that waits keep the list small and in order.
	local q3 = loop.queue()
	local first = loop.newthread(function() return q3:pop() end)
	for _ = 1, 200 do loop.newthread(function() q3:pop(0.001) end) end
	loop.sleep(0.02)
	q3:push('z')
	T.eq(select(2, loop.join(first)), 'z')
	T.eq(loop.stats().pending, 0, 'no timer left parked')
end)

T.run('misuse and waiting outside a loop thread', function()
	T.raises("bad argument #1 to 'queue'", loop.queue, 0)
	T.raises("bad argument #1 to 'queue'", loop.queue, 1.5)
	T.raises("bad argument #1 to 'queue'", loop.queue, 'x')
	local q = loop.queue(1)
	T.raises("bad argument #1 to 'push' (value expected", q.push, q)
	T.raises("bad argument #2 to 'push'", q.push, q, 1, -1)
	T.raises("bad argument #1 to 'pop'", q.pop, q, 0 / 0)
	T.raises("calling 'pop' on bad self", q.pop, {})
	T.raises("calling 'pop' on bad self", q.pop, loop.event())
	-- A plain coroutine inside a loop thread is not a loop thread: waiting there would
	-- never end, so it raises; what needs no wait works.
	local co = coroutine.wrap(function()
		T.raises("'pop' would wait outside a loop thread", q.pop, q)
		assert(q:push(1))
		T.raises("'push' would wait outside a loop thread", q.push, q, 2)
		T.eq(q:pop(), 1, 'pop that needs no wait')
		T.eq(select(2, q:pop(0)), 'timeout', 'pop(0) outside a loop thread')
		return true
	end)
	T.ok(co())
	T.ok(tostring(q):find('queue', 1, true))
end)

if T.mode == 'luajit' then
	local q = loop.queue()
	T.raises("'pop' would wait outside a loop thread", q.pop, q)
end
T.finish()
