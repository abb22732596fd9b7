-- The default serialization of socketloop.tango, as tango 0.2 puts it on the wire: a
-- value as Lua constructor text, such as {"greet","Hello",n=1,[2.5]={true}}.
--
-- serialize writes text that tango 0.2 peers read with loadstring. unserialize is a
-- parser of that text, not Lua: it knows literals (nil, booleans, numbers, strings with
-- every Lua escape, long strings) and table constructors, and raises an error for
-- anything else (names, calls, operators), so nothing received is ever run. It also
-- takes what tango 0.2's serializer writes for special numbers (inf, -inf, nan) and
-- what ours writes (1/0, -1/0, 0/0).

local byte, char, find, sub, format = string.byte, string.char, string.find, string.sub, string.format
local concat, type, tostring, tonumber, next, rawget = table.concat, type, tostring, tonumber, next, rawget
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

-- The parser ------------------------------------------------------------------------

local ESCAPES = {a = '\a', b = '\b', f = '\f', n = '\n', r = '\r', t = '\t', v = '\v',
	['\\'] = '\\', ['"'] = '"', ["'"] = "'", ['\n'] = '\n', ['\r'] = '\n'}

local Parser = {}
Parser.__index = Parser

function Parser:fail(what)
	error(format('cannot parse byte %d: %s', self.pos, what), 0)
end

function Parser:skip()
	-- Most calls find no space at all: every byte above 32 is not one.
	local b = byte(self.s, self.pos)
	if b and b > 32 then return end
	self.pos = find(self.s, '[^ \t\r\n\f\v]', self.pos) or #self.s + 1
end

-- What is at the current position, for errors.
function Parser:near()
	local word = self.s:match('^[%w_]+', self.pos)
	if word then return "unexpected '" .. word .. "'" end
	if self.pos > #self.s then return 'unexpected end' end
	return format("unexpected '%s'", sub(self.s, self.pos, self.pos))
end

-- Encodes code point `cp` as UTF-8 (the \u{XXX} escape).
local function utf8(cp)
	if cp < 0x80 then return char(cp) end
	if cp < 0x800 then return char(0xC0 + floor(cp / 0x40), 0x80 + cp % 0x40) end
	if cp < 0x10000 then
		return char(0xE0 + floor(cp / 0x1000), 0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
	end
	return char(0xF0 + floor(cp / 0x40000), 0x80 + floor(cp / 0x1000) % 0x40,
		0x80 + floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

function Parser:short_string(quote)
	local s, i = self.s, self.pos + 1
	local parts, n = {}, 0
	local stop = quote == '"' and '["\\\r\n]' or "['\\\r\n]"
	local j = find(s, stop, i)
	if j and byte(s, j) == byte(quote) then
		self.pos = j + 1
		return sub(s, i, j - 1) -- no escape: the common case
	end
	while true do
		j = find(s, stop, i)
		if not j then self.pos = #s + 1; self:fail('unfinished string') end
		n = n + 1
		parts[n] = sub(s, i, j - 1)
		local c = sub(s, j, j)
		if c == quote then
			self.pos = j + 1
			return concat(parts, '', 1, n)
		elseif c ~= '\\' then
			self.pos = j
			self:fail('unfinished string')
		end
		local e = sub(s, j + 1, j + 1)
		i = j + 2
		n = n + 1
		if ESCAPES[e] then
			parts[n] = ESCAPES[e]
			-- "\<CR><LF>" and "\<LF><CR>" are one line break
			local pair = sub(s, j + 1, j + 2)
			if pair == '\r\n' or pair == '\n\r' then i = i + 1 end
		elseif find(e, '%d') then
			local digits = s:match('^%d%d?%d?', j + 1)
			local code = tonumber(digits)
			if code > 255 then self.pos = j; self:fail('escape too large') end
			parts[n] = char(code)
			i = j + 1 + #digits
		elseif e == 'x' then
			local hex = s:match('^%x%x', j + 2)
			if not hex then self.pos = j; self:fail('malformed \\x escape') end
			parts[n] = char(tonumber(hex, 16))
			i = j + 4
		elseif e == 'z' then
			parts[n] = ''
			i = find(s, '[^ \t\r\n\f\v]', i) or #s + 1
		elseif e == 'u' then
			local hex = s:match('^{(%x+)}', j + 2)
			local cp = hex and #hex <= 8 and tonumber(hex, 16)
			if not cp or cp > 0x10FFFF then self.pos = j; self:fail('malformed \\u escape') end
			parts[n] = utf8(cp)
			i = j + 4 + #hex
		else
			self.pos = j
			self:fail('invalid escape')
		end
	end
end

-- [[...]], [==[...]==]: no escapes; a line break right after the opening is dropped.
function Parser:long_string()
	local s = self.s
	local eq = s:match('^%[(=*)%[', self.pos)
	if not eq then self:fail(self:near()) end
	local open_end = self.pos + #eq + 1
	local close = ']' .. eq .. ']'
	local j = find(s, close, open_end + 1, true)
	if not j then self.pos = #s + 1; self:fail('unfinished long string') end
	local start = open_end + 1
	local first = sub(s, start, start + 1)
	if first == '\r\n' or first == '\n\r' then
		start = start + 2
	elseif find(first, '^[\r\n]') then
		start = start + 1
	end
	self.pos = j + #close
	return sub(s, start, j - 1)
end

local NUMBER_PATTERNS = {
	'^0[xX]%x+',
	'^%d+%.?%d*[eE][%+%-]?%d+', '^%.%d+[eE][%+%-]?%d+',
	'^%d+%.?%d*', '^%.%d+',
}

-- Bytes that may continue a decimal integer into another kind of number (or into an
-- error): . e E x X, letters, digits and _.
local function continues_number(b)
	return b and (b == 46 or b == 95 or (b >= 48 and b <= 57) or (b >= 65 and b <= 90)
		or (b >= 97 and b <= 122))
end

function Parser:literal_number()
	local s, pos = self.s, self.pos
	local digits = s:match('^%d+', pos)
	if digits and #digits < 16 and not continues_number(byte(s, pos + #digits)) then
		self.pos = pos + #digits
		return tonumber(digits) -- a plain integer: the common case
	end
	for _, p in ipairs(NUMBER_PATTERNS) do
		local text = s:match(p, pos)
		if text then
			local after = pos + #text
			if find(s, '^[%w_%.]', after) then break end
			-- LuaJIT reads no number from some such texts (an exponent of 10 digits or
			-- more, as in 1e9254740992), and neither does its loadstring.
			local x = tonumber(text)
			if not x then break end
			self.pos = after
			return x
		end
	end
	self:fail('malformed number')
end

local NUMBER_WORDS = {inf = huge, nan = 0 / 0}

-- A number, with an optional sign and an optional division by another literal (how
-- 1/0, -1/0 and 0/0 are written).
function Parser:number()
	local s, sign = self.s, 1
	while sub(s, self.pos, self.pos) == '-' do
		if sub(s, self.pos + 1, self.pos + 1) == '-' then self:fail('unexpected comment') end
		sign = -sign
		self.pos = self.pos + 1
		self:skip()
	end
	local x
	local word = s:match('^[%a_][%w_]*', self.pos)
	if word then
		x = NUMBER_WORDS[word]
		if not x then self:fail(self:near()) end
		self.pos = self.pos + #word
	else
		x = self:literal_number()
	end
	self:skip()
	if sub(s, self.pos, self.pos) == '/' then
		self.pos = self.pos + 1
		self:skip()
		x = x / self:literal_number()
		self:skip()
	end
	return sign * x
end

function Parser:value(depth)
	self:skip()
	local s, pos = self.s, self.pos
	local c = sub(s, pos, pos)
	if c == '{' then
		return self:table(depth + 1)
	elseif c == '"' or c == "'" then
		return self:short_string(c)
	elseif c == '[' then
		return self:long_string()
	end
	local b = byte(c)
	if b and ((b >= 48 and b <= 57) or b == 46 or b == 45) then
		return self:number()
	end
	local word = s:match('^[%a_][%w_]*', pos)
	if word == 'nil' then
		self.pos = pos + 3
		return nil
	elseif word == 'true' or word == 'false' then
		self.pos = pos + #word
		return word == 'true'
	elseif word == 'inf' or word == 'nan' then
		return self:number()
	end
	self:fail(self:near())
end

function Parser:table(depth)
	if depth > self.maxdepth then
		self:fail('tables nested deeper than ' .. self.maxdepth .. ' levels')
	end
	local s = self.s
	local t, i = {}, 0
	self.pos = self.pos + 1
	while true do
		self:skip()
		local c = sub(s, self.pos, self.pos)
		if c == '}' then
			self.pos = self.pos + 1
			return t
		end
		local key, value
		local b = byte(c)
		local name = b and (b == 95 or (b >= 65 and b <= 90) or (b >= 97 and b <= 122))
			and s:match('^([%a_][%w_]*)%s*=[^=]', self.pos)
		if name then
			key = name
			self.pos = find(s, '=', self.pos, true) + 1
			value = self:value(depth)
		elseif c == '[' and not find(s, '^%[=*%[', self.pos) then
			self.pos = self.pos + 1
			key = self:value(depth)
			self:skip()
			if not find(s, '^%]%s*=', self.pos) then self:fail(self:near()) end
			self.pos = find(s, '=', self.pos, true) + 1
			if key == nil then self:fail('table key is nil') end
			if key ~= key then self:fail('table key is NaN') end
			value = self:value(depth)
		else
			i = i + 1
			key = i
			value = self:value(depth)
		end
		t[key] = value
		self:skip()
		c = sub(s, self.pos, self.pos)
		if c == ',' or c == ';' then
			self.pos = self.pos + 1
		elseif c ~= '}' then
			self:fail(self:near())
		end
	end
end

-- The value that constructor text `s` stands for. Raises an error naming the byte where
-- parsing stopped if `s` is anything but one literal or table constructor.
function T.unserialize(s, maxdepth)
	if type(s) ~= 'string' then
		error('cannot parse a ' .. type(s) .. ', string expected', 0)
	end
	local p = setmetatable({s = s, pos = 1, maxdepth = maxdepth or T.DEFAULT_MAXDEPTH}, Parser)
	local v = p:value(0)
	p:skip()
	if p.pos <= #s then p:fail(p:near() .. ' after the value') end
	return v
end

return T
