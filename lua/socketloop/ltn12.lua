-- socketloop.ltn12: LuaSocket's ltn12 sources, sinks, filters and pumps, so code that
-- passes `source=`/`sink=` to socketloop.http runs without LuaSocket installed. Same
-- names, call shapes and protocol as LuaSocket's ltn12.lua (the filter and chain
-- algorithms follow it, MIT licence, Diego Nehab); values of either module work with
-- the other.
--
-- A source is a function returning the next chunk, nil at the end, or nil, err.
-- A sink is a function taking (chunk, err), chunk nil at the end; it returns 1, or
-- nil, err to stop the pump. A filter maps a chunk to a chunk; called with "" it may
-- return more of its output, and called with nil it flushes (see filter.chain).

local ltn12 = {_VERSION = 'socketloop ltn12 (LuaSocket ltn12 1.0.3 API)'}
local filter, source, sink, pump = {}, {}, {}, {}
ltn12.filter, ltn12.source, ltn12.sink, ltn12.pump = filter, source, sink, pump

-- How much source.file reads at a time.
ltn12.BLOCKSIZE = 2048

local select, unpack, error, type = select, unpack, error, type

local function function_expected(fname, n, v)
	if type(v) ~= 'function' and not (type(v) == 'table' and getmetatable(v) and getmetatable(v).__call) then
		error(("bad argument #%d to '%s' (function expected, got %s)"):format(n, fname, type(v)), 3)
	end
end

---------------------------------------------------------------------------- filters

-- A filter from a low-level one: low(ctx, chunk, extra) -> out, ctx.
function filter.cycle(low, ctx, extra)
	function_expected('cycle', 1, low)
	return function(chunk)
		local out
		out, ctx = low(ctx, chunk, extra)
		return out
	end
end

-- Chains filters into one. A filter may answer "" when it needs more input, and is
-- called again with "" (or nil at the end) while it still has output to give.
function filter.chain(...)
	local fs, n = {...}, select('#', ...)
	for i = 1, n do function_expected('chain', i, fs[i]) end
	local top, index = 1, 1
	local retry = ''
	return function(chunk)
		retry = chunk and retry
		while true do
			if index == top then
				chunk = fs[index](chunk)
				if chunk == '' or top == n then
					return chunk
				elseif chunk then
					index = index + 1
				else
					top = top + 1
					index = top
				end
			else
				chunk = fs[index](chunk or '')
				if chunk == '' then
					index = index - 1
					chunk = retry
				elseif chunk then
					if index == n then return chunk end
					index = index + 1
				else
					error('filter returned inappropriate nil', 2)
				end
			end
		end
	end
end

---------------------------------------------------------------------------- sources

local function empty() return nil end

-- A source that is at its end at once.
function source.empty()
	return empty
end

-- A source that fails with `err`.
function source.error(err)
	return function() return nil, err end
end

-- Reads a file handle in BLOCKSIZE chunks and closes it at the end. With no handle,
-- a source failing with `io_err` (so `source.file(io.open(name))` reports open errors).
function source.file(handle, io_err)
	if not handle then
		return source.error(io_err or 'unable to open file')
	end
	return function()
		local chunk = handle:read(ltn12.BLOCKSIZE)
		if not chunk then handle:close() end
		return chunk
	end
end

-- Turns a fancy source (one returning a source to switch to) into a simple one.
function source.simplify(src)
	function_expected('simplify', 1, src)
	return function()
		local chunk, err_or_new = src()
		src = err_or_new or src
		if not chunk then return nil, err_or_new end
		return chunk
	end
end

-- The string `s` in BLOCKSIZE chunks (nothing for nil).
function source.string(s)
	if not s then return empty end
	local i = 1
	return function()
		local chunk = s:sub(i, i + ltn12.BLOCKSIZE - 1)
		i = i + ltn12.BLOCKSIZE
		if chunk ~= '' then return chunk end
		return nil
	end
end

-- The elements of the array `t`, in order.
function source.table(t)
	if type(t) ~= 'table' then
		error("bad argument #1 to 'table' (table expected, got " .. type(t) .. ')', 2)
	end
	local i = 0
	return function()
		i = i + 1
		return t[i]
	end
end

-- A source that can be given chunks back: rewound(chunk) pushes `chunk` to be returned
-- next; rewound() reads.
function source.rewind(src)
	function_expected('rewind', 1, src)
	local stack = {}
	return function(chunk)
		if not chunk then
			chunk = table.remove(stack)
			if not chunk then return src() end
			return chunk
		end
		stack[#stack + 1] = chunk
	end
end

-- A source passing `src` through filters.
function source.chain(src, f, ...)
	function_expected('chain', 1, src)
	if ... then f = filter.chain(f, ...) end
	function_expected('chain', 2, f)
	local last_in, last_out = '', ''
	local state = 'feeding'
	local err
	return function()
		if not last_out then
			error('source is empty!', 2)
		end
		while true do
			if state == 'feeding' then
				last_in, err = src()
				if err then return nil, err end
				last_out = f(last_in)
				if not last_out then
					if last_in then error('filter returned inappropriate nil', 2) end
					return nil
				elseif last_out ~= '' then
					state = 'eating'
					if last_in then last_in = '' end
					return last_out
				end
			else
				last_out = f(last_in)
				if last_out == '' then
					if last_in ~= '' then error('filter returned ""', 2) end
					state = 'feeding'
				elseif not last_out then
					if last_in then error('filter returned inappropriate nil', 2) end
					return nil
				else
					return last_out
				end
			end
		end
	end
end

-- The sources one after the other.
function source.cat(...)
	local srcs, n = {...}, select('#', ...)
	for i = 1, n do function_expected('cat', i, srcs[i]) end
	local i = 1
	return function()
		while i <= n do
			local chunk, err = srcs[i]()
			if chunk then return chunk end
			if err then return nil, err end
			i = i + 1
		end
		return nil
	end
end

---------------------------------------------------------------------------- sinks

-- Appends every chunk to the array `t` (a new one if nil); returns the sink and `t`.
-- table.concat(t) is everything received.
function sink.table(t)
	t = t or {}
	local n = #t
	local f = function(chunk, err)
		if chunk then
			n = n + 1
			t[n] = chunk
		end
		return 1
	end
	return f, t
end

-- Turns a fancy sink (one returning a sink to switch to) into a simple one.
function sink.simplify(snk)
	function_expected('simplify', 1, snk)
	return function(chunk, err)
		local ret, err_or_new = snk(chunk, err)
		if not ret then return nil, err_or_new end
		snk = err_or_new or snk
		return 1
	end
end

-- Writes to a file handle and closes it at the end. With no handle, a sink failing
-- with `io_err`.
function sink.file(handle, io_err)
	if not handle then
		return sink.error(io_err or 'unable to open file')
	end
	return function(chunk, err)
		if not chunk then
			handle:close()
			return 1
		end
		return handle:write(chunk) and 1
	end
end

local function null() return 1 end

-- Discards everything.
function sink.null()
	return null
end

-- A sink that fails with `err`.
function sink.error(err)
	return function() return nil, err end
end

-- A sink passing chunks through filters before `snk`.
function sink.chain(f, snk, ...)
	if ... then
		local args = {f, snk, ...}
		snk = table.remove(args)
		f = filter.chain(unpack(args))
	end
	function_expected('chain', 1, f)
	function_expected('chain', 2, snk)
	return function(chunk, err)
		if chunk ~= '' then
			local filtered = f(chunk)
			local done = chunk and ''
			while true do
				local ret, snkerr = snk(filtered, err)
				if not ret then return nil, snkerr end
				if filtered == done then return 1 end
				filtered = f(done)
			end
		end
		return 1
	end
end

---------------------------------------------------------------------------- pumps

-- Moves one chunk from `src` to `snk`: 1, or nil (the end) or nil, err.
function pump.step(src, snk)
	local chunk, src_err = src()
	local ret, snk_err = snk(chunk, src_err)
	if chunk and ret then return 1 end
	return nil, src_err or snk_err
end

-- Moves everything from `src` to `snk`: 1, or nil, err.
function pump.all(src, snk, step)
	function_expected('all', 1, src)
	function_expected('all', 2, snk)
	step = step or pump.step
	while true do
		local ret, err = step(src, snk)
		if not ret then
			if err then return nil, err end
			return 1
		end
	end
end

return ltn12
