-- Symmetric coroutines on Lua coroutines: create, transfer, current, main, wrap.
--
-- `coro.transfer(thread, ...)` suspends the running thread and continues `thread`, which
-- receives the values as the return values of its own last transfer (or as arguments, if
-- it had not started). A thread that ends transfers to the thread given at its creation
-- (by default its creator). Transfers are carried out by the loop's scheduler, so a coro
-- thread can also wait on sockets: its socket calls park it like any loop thread.

-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler

local create, yield, status = coroutine.create, coroutine.yield, coroutine.status
local running, TRANSFER, MAIN, pack = S.running, S.TRANSFER, S.MAIN, S.pack
local in_transfer = S.in_transfer

local coro = {main = MAIN}

local function current()
	return running() or MAIN
end
coro.running = current

-- `coro.current` is a field, as in the coro module socketloop was designed with.
setmetatable(coro, {
	__index = function(_, k)
		if k == 'current' then return current() end
	end,
})

local function check_target(fname, thread)
	if thread ~= MAIN and type(thread) ~= 'thread' then
		error("bad argument #1 to '" .. fname .. "' (coro thread expected, got " .. type(thread) .. ')', 3)
	end
end

function coro.create(f, return_thread)
	if type(f) ~= 'function' then
		error("bad argument #1 to 'create' (function expected, got " .. type(f) .. ')', 2)
	end
	local back = return_thread or current()
	check_target('create', back)
	local thread = S.track(S.adopt(create(function(...)
		return TRANSFER, back, pack(f(...))
	end)))
	in_transfer[thread] = true
	return thread
end

function coro.transfer(thread, ...)
	check_target('transfer', thread)
	-- A thread that ended, or one that is resuming another (nested, not suspended),
	-- cannot be continued: the error goes to the caller, which would otherwise be left
	-- suspended for good while the error was reported against `thread`.
	if thread ~= MAIN and thread ~= running() then
		local st = status(thread)
		if st == 'dead' then
			error("bad argument #1 to 'transfer' (cannot transfer to a dead coro thread)", 2)
		elseif st ~= 'suspended' then
			error("bad argument #1 to 'transfer' (cannot transfer to an active coro thread)", 2)
		elseif not in_transfer[thread] then
			-- Continuing it would hand its socket, timer or wait list a bogus answer.
			error("bad argument #1 to 'transfer' (the thread is not waiting in a transfer)", 2)
		end
	end
	if running() then
		return yield(TRANSFER, thread, pack(...))
	end
	if thread == MAIN then
		return ...
	end
	in_transfer[thread] = nil
	return S.run(thread, ...)
end

function coro.wrap(f)
	local thread = coro.create(f)
	return function(...)
		return coro.transfer(thread, ...)
	end
end

return coro
