-- socketloop.ltn12 against LuaSocket's ltn12 (Debian's lua-socket, which the tests
-- install): the same pipelines give the same chunks, errors and ends.
require'socketloop'
local ours = require'socketloop.ltn12'
local theirs = require'ltn12'
local T = require'testlib'

-- Runs `build(ltn12)` (which returns a source) to its end; returns the chunks and the
-- error, as one string, so both modules' runs compare with ==.
local function drain(build, ltn12)
	local src = build(ltn12)
	local out = {}
	for _ = 1, 10000 do
		local chunk, err = src()
		if not chunk then
			out[#out + 1] = 'END ' .. tostring(err)
			break
		end
		out[#out + 1] = '[' .. chunk .. ']'
	end
	return table.concat(out)
end

-- A filter that doubles every byte, and one that splits its output into 3-byte pieces
-- given out over several calls (so chains have to ask again with "").
local function doubler(chunk)
	if chunk == nil then return nil end
	return (chunk:gsub('.', '%0%0'))
end
local function splitter()
	local pending = ''
	local ended = false
	return function(chunk)
		if chunk == nil then
			if ended and pending == '' then return nil end
			ended = true
		end
		pending = pending .. (chunk or '')
		local piece = pending:sub(1, 3)
		pending = pending:sub(4)
		if piece == '' and chunk == nil then return nil end
		return piece
	end
end

local cases = {
	string = function(l) l.BLOCKSIZE = 4 return l.source.string('hello world') end,
	empty = function(l) return l.source.empty() end,
	error = function(l) return l.source.error('broken') end,
	table = function(l) return l.source.table{'a', 'b', 'c'} end,
	cat = function(l) return l.source.cat(l.source.table{'a', 'b'}, l.source.empty(), l.source.table{'c'}) end,
	chain = function(l) return l.source.chain(l.source.table{'ab', 'cd'}, doubler) end,
	chain_split = function(l) return l.source.chain(l.source.table{'abcde', 'fg'}, splitter()) end,
	filter_chain = function(l)
		return l.source.chain(l.source.table{'xyz', 'w'}, l.filter.chain(doubler, splitter(), doubler))
	end,
	cycle = function(l)
		local counter = l.filter.cycle(function(ctx, chunk)
			if chunk == nil then return nil, ctx end
			return ctx .. ':' .. chunk, ctx .. '+'
		end, '')
		return l.source.chain(l.source.table{'a', 'b', 'c'}, counter)
	end,
	rewind = function(l)
		local src = l.source.rewind(l.source.table{'1', '2'})
		local first = src()
		src(first)
		src('0')
		return src
	end,
	simplify = function(l)
		local second = l.source.table{'y'}
		return l.source.simplify(function() return 'x', second end)
	end,
}

T.run('sources, filters and chains match LuaSocket', function()
	for name, build in pairs(cases) do
		local saved_ours, saved_theirs = ours.BLOCKSIZE, theirs.BLOCKSIZE
		T.eq(drain(build, ours), drain(build, theirs), name)
		ours.BLOCKSIZE, theirs.BLOCKSIZE = saved_ours, saved_theirs
	end
end)

T.run('sinks and pumps match LuaSocket', function()
	for _, l in ipairs{ours, theirs} do
		local snk, t = l.sink.table()
		T.eq(l.pump.all(l.source.table{'a', 'b'}, snk), 1, 'pump.all')
		T.eq(table.concat(t), 'ab', 'sink.table')
		local ok, err = l.pump.all(l.source.error('src broke'), l.sink.null())
		T.eq(ok, nil, 'pump.all with a failing source')
		T.eq(err, 'src broke', 'the source error')
		ok, err = l.pump.all(l.source.table{'a'}, l.sink.error('full'))
		T.eq(err, 'full', 'the sink error')
		local got = {}
		local chained = l.sink.chain(doubler, function(chunk) got[#got + 1] = chunk or '<end>' return 1 end)
		l.pump.all(l.source.table{'ab', 'c'}, chained)
		-- both hand the sink the "" that ends each filtered chunk
		T.eq(table.concat(got, ','), 'aabb,,cc,,<end>', 'sink.chain')
		local path = os.tmpname()
		l.pump.all(l.source.string('to a file'), l.sink.file(io.open(path, 'wb')))
		local back = {}
		l.pump.all(l.source.file(io.open(path, 'rb')), (l.sink.table(back)))
		T.eq(table.concat(back), 'to a file', 'file sink and source')
		os.remove(path)
		ok, err = l.source.file(nil, 'no such file')()
		T.eq(err, 'no such file', 'source.file of a failed open')
	end
end)

T.finish()
