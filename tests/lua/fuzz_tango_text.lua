-- A Lua-driven fuzz loop for the tango text parser (lua/socketloop/tango/text.lua), which
-- is Lua, so libFuzzer's coverage guidance cannot see into it. It feeds the parser
-- mutated texts for a bounded count and checks that:
--   - it never raises anything but its own 'cannot parse byte N: ...' errors;
--   - it never runs code: no global is read or written, load/loadstring/dofile/require
--     are never called while it parses, and texts that would run code when loaded
--     (calls, assignments, os.exit) are refused;
--   - what it accepts, stock Lua accepts too and reads as the same value (loadstring in
--     an empty environment where inf and nan are defined, instruction-bounded);
--   - what it accepts round-trips: unserialize(serialize(v)) equals v;
--   - random values round-trip through serialize/unserialize and through loadstring
--     (what a tango 0.2 peer does with our text).
-- Usage: luajit fuzz_tango_text.lua [count [seed]] (also FUZZ_TANGO, FUZZ_SEED); the test
-- runs a short loop, scripts/fuzz.sh a long one.
local T = require'testlib'

local count = tonumber(arg and arg[1] or os.getenv('FUZZ_TANGO')) or 3000
local seed = tonumber(arg and arg[2] or os.getenv('FUZZ_SEED')) or 1

-- Tripwires installed before the parser is loaded, so that any copy it keeps is one.
local tripped = {}
local parsing = false
for _, name in ipairs{'load', 'loadstring', 'dofile', 'loadfile', 'require', 'setfenv', 'rawset'} do
	local real = _G[name]
	_G[name] = function(...)
		if parsing then tripped[#tripped + 1] = name end
		return real(...)
	end
end
local tt = require'socketloop.tango.text'
local serialize, unserialize = tt.serialize, tt.unserialize
setmetatable(_G, {
	__index = function(_, k) if parsing then tripped[#tripped + 1] = 'read ' .. tostring(k) end end,
	__newindex = function(t, k, v)
		if parsing then tripped[#tripped + 1] = 'write ' .. tostring(k) end
		rawset(t, k, v)
	end,
})

-- Regressions found by this loop. A number LuaJIT cannot read (its exponent has 10
-- digits or more) made the parser raise "attempt to perform arithmetic on local 'x' (a
-- nil value)" instead of its own error; it is now 'malformed number', as for Lua.
for _, text in ipairs{'1E9254740992', '-1e9999999999', '{900719E9254740992}', '2/1e99999999999',
		'{x=.5e-12345678901}'} do
	T.raises('malformed number', unserialize, text)
	T.eq(loadstring('return ' .. text), nil, 'Lua refuses ' .. text .. ' too')
end
T.eq(unserialize('1e99999'), 1 / 0, 'a 5-digit exponent overflows to inf, as in Lua')
-- Found by the libFuzzer target tango_text: a reserved word was taken as a key name.
for _, text in ipairs{'{1,nil=0/0}', '{true=1}', '{x=1,end=2}', '{while=3}'} do
	T.raises('cannot parse byte', unserialize, text)
	T.eq(loadstring('return ' .. text), nil, 'Lua refuses ' .. text .. ' too')
end
T.eq(unserialize('{goto=3}').goto, 3, "'goto' is a name to LuaJIT")
-- Found by the libFuzzer target tango_text: a CR inside a long string was kept as it
-- was, where Lua's lexer reads every line break (CR LF, LF CR, CR, LF) as one LF.
for _, text in ipairs{'[==[l\255\r o\rng\n]] string]==]', '[[a\r\nb\n\rc\r\rd\n\ne]]', '[[\r\nx]]',
		'{[[\rx\r]]}'} do
	T.eq(serialize(unserialize(text)), serialize(loadstring('return ' .. text)()),
		'long string line breaks as Lua reads them: ' .. ('%q'):format(text))
end

-- A small deterministic generator (LCG), independent of math.random's implementation.
local state = seed
local function rand(n)
	state = (state * 1103515245 + 12345) % 2147483648
	return math.floor(state / 65536) % n + 1
end

local SPECIAL = {0, -0.0, 1, -1, 0.1, 1e308, -1e-308, 2^53, 2^53 + 2, -2^63, 1 / 0, -1 / 0, 0 / 0, 5e-324}
local function gen_string()
	local n, b = rand(12) - 1, {}
	for i = 1, n do
		b[i] = rand(3) == 1 and string.char(rand(256) - 1) or string.sub('ab\\"\'\n\r\0z]=[', rand(13), rand(13))
	end
	return table.concat(b)
end
local function gen(depth)
	local r = rand(depth > 4 and 6 or 8)
	if r == 1 then return rand(2) == 1
	elseif r == 2 then return SPECIAL[rand(#SPECIAL)]
	elseif r == 3 then return (rand(2000) - 1000) / (rand(4) == 1 and 7 or 1)
	elseif r <= 6 then return gen_string()
	end
	local t = {}
	for i = 1, rand(5) - 1 do t[i] = gen(depth + 1) end
	for _ = 1, rand(4) - 1 do
		local k = gen(depth + 1)
		if k ~= nil and k == k then t[k] = gen(depth + 1) end
	end
	return t
end

-- Deep equality (NaN equals NaN); a table key matches an equal table key of the other.
local function same(a, b)
	if a ~= a and b ~= b then return true end
	if type(a) ~= 'table' or type(b) ~= 'table' then return a == b end
	local na, nb = 0, 0
	for _ in pairs(b) do nb = nb + 1 end
	for k, v in pairs(a) do
		na = na + 1
		if type(k) == 'table' then
			local found = false
			for k2, v2 in pairs(b) do
				if type(k2) == 'table' and same(k, k2) and same(v, v2) then found = true; break end
			end
			if not found then return false end
		elseif not same(v, b[k]) then
			return false
		end
	end
	return na == nb
end

-- Seeds: serialized values, tango 0.2's spellings, and texts that must never run.
local seeds = {
	'{"greet","Hello",n=1,[2.5]={true}}', '{1,nil,3,[10]=-1/0,x=0/0}', 'nan', '-inf', '{inf,-inf,nan}',
	'[==[long\n]] string]==]', '"\\u{10FFFF}\\z   \\x41\\065\\\n"', "'a\\'b'", '0x1F', '.5e-3', '1/0',
	'{[ [[k]] ]=1; a = {b={c={}}}}', '{["end"]=true,_x_1=false}', '  \t\n{ }  ',
	'os.exit(1)', '{print("x")}', 'FUZZ_RAN = true', '{x=function() end}', '(1)', '{...}',
	'{a.b=1}', '1 --[[c]]', '{[{}]=1}', '-(1)', '"\\300"', '{1,[1]=2}',
}
for _ = 1, 40 do seeds[#seeds + 1] = serialize(gen(0)) end

local ALPHABET = '{}[]=,;"\'\\-/.0123456789xXeEaAz_ \n\r\t\0\255infantruelsfu()'
local function mutate(s)
	for _ = 1, rand(4) do
		local n = #s
		local i = rand(n + 1)
		local r = rand(6)
		if r == 1 and n > 0 then s = s:sub(1, i - 1) .. s:sub(i + 1)
		elseif r == 2 then local c = rand(#ALPHABET); s = s:sub(1, i - 1) .. ALPHABET:sub(c, c) .. s:sub(i)
		elseif r == 3 then s = s:sub(1, i - 1) .. string.char(rand(256) - 1) .. s:sub(i + 1)
		elseif r == 4 then local j = rand(n + 1); s = s:sub(1, i - 1) .. s:sub(math.min(i, j), math.max(i, j)) .. s:sub(i)
		elseif r == 5 then local o = seeds[rand(#seeds)]; s = s:sub(1, i - 1) .. o:sub(rand(#o + 1))
		else s = s:sub(i) .. s:sub(1, i - 1)
		end
	end
	return s:sub(1, 4096)
end

-- How stock Lua reads `text`: ok, value. Bounded: an instruction-count hook stops it.
local function lua_reads(text)
	local f = loadstring('return ' .. text)
	if not f then return false end
	setfenv(f, {inf = 1 / 0, nan = 0 / 0})
	debug.sethook(function() error('too long') end, '', 1e6)
	local ok, v = pcall(f)
	debug.sethook()
	return ok, v
end

local stats = {parsed = 0, refused = 0, generated = 0}
local bad = 0
-- Failing inputs are also appended to $FUZZ_TANGO_ARTIFACTS when set (scripts/fuzz.sh).
local artifacts = os.getenv('FUZZ_TANGO_ARTIFACTS')
local function report(what, text, detail)
	bad = bad + 1
	if artifacts then
		local f = assert(io.open(artifacts, 'ab'))
		f:write(('-- %s (%s)\n%q\n'):format(what, tostring(detail), text))
		f:close()
	end
	if bad <= 20 then
		T.ok(false, ('%s: %q (%s)'):format(what, text, tostring(detail)))
	end
end

for iter = 1, count do
	local text
	if iter % 4 == 0 then
		-- a generated value round trip, and what a tango 0.2 peer reads
		local v = gen(0)
		text = serialize(v)
		local ok, back = pcall(unserialize, text)
		if not (ok and same(back, v)) then report('round trip of a generated value', text, back) end
		local lok, lv = lua_reads(text)
		if not (lok and same(lv, v)) then report('loadstring of serialized text', text, lv) end
		stats.generated = stats.generated + 1
	else
		text = mutate(seeds[rand(#seeds)])
	end
	parsing = true
	local ok, v = pcall(unserialize, text)
	parsing = false
	if #tripped > 0 then
		report('parser touched ' .. tripped[1], text, #tripped)
		tripped = {}
	end
	if rawget(_G, 'FUZZ_RAN') ~= nil then report('code ran', text, FUZZ_RAN) end
	if not ok then
		stats.refused = stats.refused + 1
		if type(v) ~= 'string' or not v:find('^cannot parse byte %d+: ') then
			report('unexpected error', text, v)
		end
	else
		stats.parsed = stats.parsed + 1
		local lok, lv = lua_reads(text)
		if not lok then
			report('accepted text Lua refuses', text, lv)
		elseif not same(lv, v) then
			report('reads differently from Lua', text, serialize(lv))
		end
		local sok, s2 = pcall(serialize, v)
		if not sok then
			report('accepted value does not serialize', text, s2)
		else
			local pok, v2 = pcall(unserialize, s2)
			if not (pok and same(v2, v)) then report('round trip of an accepted value', text, v2) end
		end
	end
end
T.ok(bad == 0, bad .. ' failures in all')
T.ok(stats.parsed > count / 20 and stats.refused > count / 20, 'both outcomes exercised')
print(('tango_text fuzz: %d inputs (seed %d), %d parsed, %d refused, %d generated round trips'):format(
	count, seed, stats.parsed, stats.refused, stats.generated))
T.finish()
