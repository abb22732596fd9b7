-- URLs for socketloop.http: parsing the absolute URLs requests are made to, and
-- resolving the (possibly relative) targets of redirects against them.

local U = {}

local DEFAULT_PORTS = {http = 80, https = 443}

local function unescape(s)
	return (s:gsub('%%(%x%x)', function(hex) return string.char(tonumber(hex, 16)) end))
end

-- A URL as it may appear in an error message: control bytes as \ddd, so a message never
-- carries a line break of the URL's.
local function printable(url)
	return (url:gsub('%c', function(c) return ('\\%03d'):format(c:byte()) end))
end

-- Percent-encodes what may not go into a request line as it is: spaces, the bytes that
-- delimit text in HTTP ('"', '<', '>'), and bytes past ASCII. '%' is left alone, so an
-- already encoded URL comes out unchanged (nothing is encoded twice).
local function encode_raw(s)
	if not s:find('[ "<>\128-\255]') then return s end
	return (s:gsub('[ "<>\128-\255]', function(c) return ('%%%02X'):format(c:byte()) end))
end
U.encode_raw = encode_raw

-- Splits an absolute URL into {scheme=, user=, password=, host=, port=, authority=,
-- path=, query=}. `host` is without brackets for IPv6 literals; `port` is a number;
-- `path` starts with '/'; `query` is nil or the text after '?'; the fragment is dropped
-- (it is never sent). Spaces and non-ASCII bytes in the path and query are
-- percent-encoded (encode_raw). Returns nil, "invalid url '...'" for anything else,
-- and for a URL holding a control byte (CR, LF, NUL, ...), which could split the request.
function U.parse(url)
	local function invalid(why)
		return nil, "invalid url '" .. printable(url) .. "'" .. (why and ' (' .. why .. ')' or '')
	end
	if url:find('%c') then return invalid('control character') end
	local scheme, rest = url:match('^(%a[%w+.-]*)://(.*)$')
	if not scheme then return invalid() end
	scheme = scheme:lower()
	rest = rest:gsub('#.*$', '')
	local authority, path, query = rest:match('^([^/?]*)([^?]*)%??(.*)$')
	if path == '' then path = '/' end
	if not rest:find('?', 1, true) then query = nil end
	path = encode_raw(path)
	if query then query = encode_raw(query) end
	local userinfo, hostport = authority:match('^(.*)@(.*)$')
	hostport = hostport or authority
	local host, port
	if hostport:sub(1, 1) == '[' then
		host, port = hostport:match('^%[([%x:.]+)%]:?(%d*)$')
	else
		host, port = hostport:match('^([^:]+):?(%d*)$')
	end
	if not host or host == '' or host:find('[%s/\\@]') then return invalid() end
	if port == '' then
		port = DEFAULT_PORTS[scheme] -- nil for schemes we do not speak; the caller says so
	else
		port = tonumber(port)
		if port < 1 or port > 65535 then return invalid() end
	end
	local user, password
	if userinfo then
		user, password = userinfo:match('^([^:]*):?(.*)$')
		user, password = unescape(user), unescape(password)
	end
	return {
		scheme = scheme,
		user = user,
		password = password,
		host = host:lower(),
		port = port,
		authority = authority,
		path = path,
		query = query,
	}
end

-- The request target: the path and the query.
function U.target(u)
	if u.query then return u.path .. '?' .. u.query end
	return u.path
end

-- The URL again, as requests send it (spaces and non-ASCII bytes encoded).
function U.absolute_url(u)
	return u.scheme .. '://' .. u.authority .. U.target(u)
end

-- The Host header: the host, bracketed when IPv6, with the port unless it is the
-- scheme's default.
function U.hostheader(u)
	local host = u.host:find(':', 1, true) and '[' .. u.host .. ']' or u.host
	if u.port == DEFAULT_PORTS[u.scheme] then return host end
	return host .. ':' .. u.port
end

-- RFC 3986's remove_dot_segments, on a path that starts with '/'.
local function remove_dots(path)
	local out = {}
	local trailing = path:match('/%.%.?$') or path:sub(-1) == '/'
	for segment in path:gmatch('[^/]+') do
		if segment == '..' then
			out[#out] = nil
		elseif segment ~= '.' then
			out[#out + 1] = segment
		end
	end
	local result = '/' .. table.concat(out, '/')
	if trailing and result ~= '/' then result = result .. '/' end
	return result
end

-- Resolves a Location value against the URL the response came from, as a browser would
-- (absolute, scheme-relative, absolute-path, query-only and relative references).
function U.absolute(base, ref)
	ref = ref:gsub('^%s+', ''):gsub('%s+$', '')
	if ref:match('^%a[%w+.-]*:') then return ref end
	if ref:sub(1, 2) == '//' then return base.scheme .. ':' .. ref end
	local origin = base.scheme .. '://' .. base.authority
	ref = ref:gsub('#.*$', '')
	if ref == '' then return origin .. U.target(base) end
	if ref:sub(1, 1) == '?' then return origin .. base.path .. ref end
	local path, query = ref:match('^([^?]*)(.*)$')
	if path:sub(1, 1) ~= '/' then
		path = (base.path:match('^(.*/)') or '/') .. path
	end
	return origin .. remove_dots(path) .. query
end

local B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'

local function base64(s)
	local out = {}
	for i = 1, #s, 3 do
		local a, b, c = s:byte(i, i + 2)
		local n = a * 65536 + (b or 0) * 256 + (c or 0)
		local d1, d2 = math.floor(n / 262144) % 64, math.floor(n / 4096) % 64
		local d3, d4 = math.floor(n / 64) % 64, n % 64
		out[#out + 1] = B64:sub(d1 + 1, d1 + 1) .. B64:sub(d2 + 1, d2 + 1)
			.. (b and B64:sub(d3 + 1, d3 + 1) or '=') .. (c and B64:sub(d4 + 1, d4 + 1) or '=')
	end
	return table.concat(out)
end

-- The Authorization header for credentials in the URL (Basic), or nil.
function U.credentials(u)
	if not u.user then return nil end
	return 'Basic ' .. base64(u.user .. ':' .. (u.password or ''))
end

return U
