-- Cookie jars for socketloop.http (http.cookiejar()): cookies stored from Set-Cookie
-- fields and sent back in Cookie fields by the rules of RFC 6265 (domain, path, expiry,
-- Secure), so that a login followed by requests works. No public-suffix list: a
-- Domain attribute must name the request's host or a parent domain with a dot in it.

local U = require'socketloop.http.url'

local type, tonumber, tostring, ipairs = type, tonumber, tostring, ipairs
local time = os.time
local concat, sort = table.concat, table.sort

local C = {}

local MONTHS = {jan = 1, feb = 2, mar = 3, apr = 4, may = 5, jun = 6,
	jul = 7, aug = 8, sep = 9, oct = 10, nov = 11, dec = 12}

-- Days from 1970-01-01 to the date (proleptic Gregorian), whatever the local time zone.
local function days_from_civil(y, m, d)
	if m <= 2 then y = y - 1 end
	local era = math.floor(y / 400)
	local yoe = y - era * 400
	local mp = (m + 9) % 12
	local doy = math.floor((153 * mp + 2) / 5) + d - 1
	local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
	return era * 146097 + doe - 719468
end

-- Seconds since the epoch for an HTTP date (RFC 1123 'Sun, 06 Nov 1994 08:49:37 GMT',
-- RFC 850 'Sunday, 06-Nov-94 08:49:37 GMT', asctime 'Sun Nov  6 08:49:37 1994'), or nil.
function C.parse_date(s)
	local d, mon, y, hh, mm, ss = s:match('(%d%d?)[ -](%a%a%a)%a*[ -](%d+) (%d%d?):(%d%d):(%d%d)')
	if not d then
		mon, d, hh, mm, ss, y = s:match('(%a%a%a) +(%d%d?) (%d%d?):(%d%d):(%d%d) (%d+)')
	end
	local month = mon and MONTHS[mon:lower()]
	if not month then return nil end
	y = tonumber(y)
	if y < 70 then y = y + 2000 elseif y < 100 then y = y + 1900 end
	return days_from_civil(y, month, tonumber(d)) * 86400 + tonumber(hh) * 3600
		+ tonumber(mm) * 60 + tonumber(ss)
end

-- Whether `host` is `domain` or a name under it (an IP address matches only itself).
local function domain_match(host, domain)
	if host == domain then return true end
	if host:match('^[%d.]+$') or host:find(':', 1, true) then return false end
	return #host > #domain and host:sub(-#domain - 1) == '.' .. domain
end

-- RFC 6265 5.1.4: the request path matches the cookie path.
local function path_match(path, cpath)
	if path == cpath then return true end
	if path:sub(1, #cpath) ~= cpath then return false end
	return cpath:sub(-1) == '/' or path:sub(#cpath + 1, #cpath + 1) == '/'
end

-- The default cookie path of a request path: its directory.
local function default_path(path)
	local dir = path:match('^(/.*)/[^/]*$')
	return dir or '/'
end

local Jar = {}
Jar.__index = Jar

-- A new empty jar.
function C.new()
	return setmetatable({list = {}, serial = 0}, Jar)
end

local function url_arg(url, fname)
	local u, err = url
	if type(url) == 'string' then
		u, err = U.parse(url)
		if not u then error(("bad argument #1 to '%s' (%s)"):format(fname, err), 3) end
	elseif type(url) ~= 'table' then
		error(("bad argument #1 to '%s' (url expected, got %s)"):format(fname, type(url)), 3)
	end
	return u
end

-- Parses one Set-Cookie value received from `u`; returns the cookie table or nil when
-- it is invalid or not for this host.
local function parse_set_cookie(u, value, t)
	local pair, attrs = value:match('^([^;]*)(.*)$')
	local name, cvalue = pair:match('^%s*([^=]-)%s*=%s*(.-)%s*$')
	if not name or name == '' then return nil end
	local cookie = {name = name, value = cvalue, secure = false, httponly = false}
	local domain, path, expires, maxage
	for attr in attrs:gmatch('[^;]+') do
		local k, v = attr:match('^%s*([^=]-)%s*=%s*(.-)%s*$')
		k = (k or attr:match('^%s*(.-)%s*$')):lower()
		if k == 'domain' and v and v ~= '' then
			domain = v:gsub('^%.', ''):lower()
		elseif k == 'path' and v and v:sub(1, 1) == '/' then
			path = v
		elseif k == 'expires' and v then
			expires = C.parse_date(v)
		elseif k == 'max-age' and v and v:match('^%-?%d+$') then
			maxage = tonumber(v)
		elseif k == 'secure' then
			cookie.secure = true
		elseif k == 'httponly' then
			cookie.httponly = true
		end
	end
	if domain then
		-- A single-label domain ('com') only for the host that has that name.
		if not domain_match(u.host, domain) or (not domain:find('.', 1, true) and domain ~= u.host) then
			return nil
		end
		cookie.domain, cookie.hostonly = domain, false
	else
		cookie.domain, cookie.hostonly = u.host, true
	end
	cookie.path = path or default_path(u.path)
	if maxage then
		cookie.expires = t + maxage
	else
		cookie.expires = expires -- nil: a session cookie
	end
	return cookie
end

-- Stores the cookies of Set-Cookie `values` (a string or a list of strings, each one
-- Set-Cookie field) received from `url` (a string or a parsed URL). A cookie replaces
-- the one of the same name, domain and path; one already expired removes it.
function Jar:store(url, values)
	local u = url_arg(url, 'store')
	if type(values) == 'string' then values = {values} end
	local t = time()
	for _, value in ipairs(values) do
		local cookie = parse_set_cookie(u, value, t)
		if cookie then
			local list = self.list
			for i = #list, 1, -1 do
				local c = list[i]
				if c.name == cookie.name and c.domain == cookie.domain and c.path == cookie.path then
					cookie.created = c.created
					table.remove(list, i)
				end
			end
			if not (cookie.expires and cookie.expires <= t) then
				if not cookie.created then
					self.serial = self.serial + 1
					cookie.created = self.serial
				end
				list[#list + 1] = cookie
			end
		end
	end
end

-- The Cookie field value for a request to `url`, or nil when no cookie goes there:
-- cookies whose domain and path match, not expired, Secure ones only over https;
-- longer paths first, then older ones.
function Jar:header(url)
	local u = url_arg(url, 'header')
	local t = time()
	local list, chosen = self.list, {}
	for i = #list, 1, -1 do
		local c = list[i]
		if c.expires and c.expires <= t then
			table.remove(list, i)
		elseif (c.hostonly and u.host == c.domain or not c.hostonly and domain_match(u.host, c.domain))
				and path_match(u.path, c.path) and (not c.secure or u.scheme == 'https') then
			chosen[#chosen + 1] = c
		end
	end
	if #chosen == 0 then return nil end
	sort(chosen, function(a, b)
		if #a.path ~= #b.path then return #a.path > #b.path end
		return a.created < b.created
	end)
	local parts = {}
	for i, c in ipairs(chosen) do parts[i] = c.name .. '=' .. c.value end
	return concat(parts, '; ')
end

-- Every cookie stored (not expired), as tables {name=, value=, domain=, path=, expires=
-- (seconds since the epoch, nil for a session cookie), secure=, httponly=, hostonly=}.
function Jar:cookies()
	local t, out = time(), {}
	for _, c in ipairs(self.list) do
		if not (c.expires and c.expires <= t) then
			out[#out + 1] = {name = c.name, value = c.value, domain = c.domain, path = c.path,
				expires = c.expires, secure = c.secure, httponly = c.httponly, hostonly = c.hostonly}
		end
	end
	return out
end

-- Forgets every cookie.
function Jar:clear()
	self.list = {}
end

function Jar:__tostring()
	return 'cookiejar: ' .. tostring(#self.list) .. ' cookies'
end

-- Whether `v` is a jar made by C.new.
function C.is_jar(v)
	return getmetatable(v) == Jar
end

return C
