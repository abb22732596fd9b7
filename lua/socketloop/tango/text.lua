-- The default serialization of socketloop.tango, as tango 0.2 puts it on the wire: a
-- value as Lua constructor text, such as {"greet","Hello",n=1,[2.5]={true}}.
--
-- serialize writes text that tango 0.2 peers read with loadstring. unserialize is a
-- parser of that text, not Lua (src/codec/tango_text.rs): it knows literals (nil, booleans,
-- numbers, strings with every Lua escape, long strings) and table constructors, and
-- raises an error for anything else (names, calls, operators), so nothing received is
-- ever run. It also takes what tango 0.2's serializer writes for special numbers (inf,
-- -inf, nan) and what ours writes (1/0, -1/0, 0/0).

local find, format = string.find, string.format
local concat, type, tostring, next, rawget = table.concat, type, tostring, next, rawget
local floor, huge = math.floor, math.huge

local T = {}

T.DEFAULT_MAXDEPTH = 100

local RESERVED = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
		repeat return then true until while]]):gmatch('%a+') do
	RESERVED[w] = true
end

local function number_text(x)
	if x ~= x then return '0/0' end
	if x == huge then return '1/0' end
	if x == -huge then return '-1/0' end
	if x == floor(x) and x > -2^53 and x < 2^53 then return format('%d', x) end
	return format('%.17g', x)
end

local put

local function put_table(t, out, n, depth, open)
	if depth > T.DEFAULT_MAXDEPTH then
		error('cannot serialize tables nested deeper than ' .. T.DEFAULT_MAXDEPTH .. ' levels', 0)
	end
	if open[t] then error('cannot serialize a table that contains itself', 0) end
	open[t] = true
	n = n + 1
	out[n] = '{'
	local len = #t
	for i = 1, len do
		if i > 1 then n = n + 1; out[n] = ',' end
		n = put(rawget(t, i), out, n, depth + 1, open)
	end
	local first = len == 0
	for k, v in next, t do
		if not (type(k) == 'number' and k >= 1 and k <= len and k == floor(k)) then
			n = n + 1
			out[n] = first and '' or ','
			first = false
			if type(k) == 'string' and not RESERVED[k] and find(k, '^[%a_][%w_]*$') then
				n = n + 1
				out[n] = k
			else
				n = n + 1
				out[n] = '['
				n = put(k, out, n, depth + 1, open)
				n = n + 1
				out[n] = ']'
			end
			n = n + 1
			out[n] = '='
			n = put(v, out, n, depth + 1, open)
		end
	end
	n = n + 1
	out[n] = '}'
	open[t] = nil
	return n
end

function put(v, out, n, depth, open)
	local t = type(v)
	n = n + 1
	if t == 'string' then
		out[n] = format('%q', v)
	elseif t == 'number' then
		out[n] = number_text(v)
	elseif t == 'boolean' or t == 'nil' then
		out[n] = tostring(v)
	elseif t == 'table' then
		return put_table(v, out, n - 1, depth, open)
	else
		error('cannot serialize a ' .. t .. ' value', 0)
	end
	return n
end

-- `v` as constructor text. Raises for functions, userdata, threads, cycles and tables
-- nested deeper than DEFAULT_MAXDEPTH. Positions 1..#t come first, nil for holes.
function T.serialize(v)
	local out = {}
	local n = put(v, out, 0, 0, {})
	return concat(out, '', 1, n)
end

-- The parser is Rust (src/codec/tango_text.rs, bound by src/lua/tango_text.rs): it reads
-- only literals and table constructors, and numbers as LuaJIT's own conversion does.

local tango_parse = require'socketloop.core'.tango_parse

-- The value that constructor text `s` stands for. Raises an error naming the byte where
-- parsing stopped if `s` is anything but one literal or table constructor.
function T.unserialize(s, maxdepth)
	if type(s) ~= 'string' then
		error('cannot parse a ' .. type(s) .. ', string expected', 0)
	end
	local ok, v = tango_parse(s, maxdepth or T.DEFAULT_MAXDEPTH)
	if not ok then error(v, 0) end
	return v
end

return T
