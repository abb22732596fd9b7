-- socketloop.http's cookie jar: cookies set by one response sent on the next request, by
-- domain, path, expiry and Secure; not sent to another host, nor over http when Secure.
local loop = require'socketloop'
local http = require'socketloop.http'
local T = require'testlib'
local H = require'http_support'

-- The server: /login sets cookies, /set?VALUE sets the Set-Cookie VALUE given (URL
-- decoded), anything else echoes the Cookie field it got ('-' for none).
local function unescape(s)
	return (s:gsub('%%(%x%x)', function(h) return string.char(tonumber(h, 16)) end))
end

local function serve(skt)
	for _ = 1, 100 do
		local line, fields = H.read_request(skt)
		if not line then break end
		local path = line:match('^%u+ (%S+)')
		if path == '/login' then
			skt:send(H.response(302, '', 'Set-Cookie: session=abc123; Path=/; HttpOnly\r\n'
				.. 'Set-Cookie: pref=dark; Expires=Wed, 09 Jun 2100 10:18:14 GMT\r\n'
				.. 'Set-Cookie: gone=x; Max-Age=0\r\n'
				.. 'Set-Cookie: old=x; Expires=Thu, 01 Jan 1970 00:00:01 GMT\r\n'
				.. 'Set-Cookie: api=1; Path=/api\r\n'
				.. 'Set-Cookie: evil=1; Domain=example.com\r\n'
				.. 'Location: /home\r\n'))
		elseif path:match('^/set%?') then
			skt:send(H.response(200, 'set', 'Set-Cookie: ' .. unescape(path:match('%?(.*)')) .. '\r\n'))
		else
			skt:send(H.response(200, fields.cookie or '-'))
		end
	end
	skt:close()
end

T.run('cookies set, then sent', function()
	local server, _, base = H.scripted(serve)
	local _, port = server:getsockname()
	local jar = http.cookiejar()
	-- the login redirects to /home: the cookies it set go along already
	local body, code = http.request{url = base .. '/login', cookies = jar, sink = function() return 1 end}
	T.eq(code, 200, 'login followed to /home')
	local out = {}
	local function get(url, t)
		out = {}
		t = t or {}
		t.url, t.cookies, t.sink = url, t.cookies or jar, require'socketloop.ltn12'.sink.table(out)
		local ok, err = http.request(t)
		return ok and table.concat(out) or err
	end
	T.eq(get(base .. '/home'), 'session=abc123; pref=dark', 'sent on the next request')
	T.eq(get(base .. '/api/x'), 'api=1; session=abc123; pref=dark', 'a longer path first')
	T.eq(get(base .. '/apix'), 'session=abc123; pref=dark', '/api is not a prefix of /apix')
	local names = {}
	for _, c in ipairs(jar:cookies()) do names[#names + 1] = c.name end
	table.sort(names)
	T.eq(table.concat(names, ','), 'api,pref,session', 'expired and foreign-domain cookies not kept')
	-- another host: localhost is the same server, another name
	T.eq(get('http://localhost:' .. port .. '/home'), '-', 'not sent to another host')
	-- the caller's Cookie field and the jar's together
	T.eq(get(base .. '/home', {headers = {cookie = 'mine=1'}}), 'mine=1; session=abc123; pref=dark', "caller's first")
	-- replaced, then deleted
	get(base .. '/set?session=new%3B%20Path=/')
	T.eq(get(base .. '/home'), 'session=new; pref=dark', 'replaced, keeping its place')
	get(base .. '/set?pref=x%3B%20Max-Age=-1')
	T.eq(get(base .. '/home'), 'session=new', 'deleted by Max-Age')
	-- Secure: stored for an https URL, never sent over http
	jar:store('https://127.0.0.1:' .. port .. '/', 'token=s3cret; Secure; Path=/')
	T.eq(jar:header('https://127.0.0.1:' .. port .. '/'), 'session=new; token=s3cret', 'sent over https')
	T.eq(get(base .. '/home'), 'session=new', 'a Secure cookie not sent over http')
	-- Domain cookies go to the domain and the names under it
	jar:store('http://www.example.com/', {'d=1; Domain=.example.com', 'h=2', 'bad=3; Domain=com'})
	T.eq(jar:header('http://example.com/'), 'd=1', 'domain cookie to the parent')
	T.eq(jar:header('http://a.b.example.com/x'), 'd=1', 'and below')
	T.eq(jar:header('http://www.example.com/'), 'd=1; h=2', 'host-only cookie to its host')
	T.eq(jar:header('http://notexample.com/'), nil, 'not to a name that only ends the same')
	-- without a jar nothing is stored or sent
	T.eq(get(base .. '/home', {cookies = http.cookiejar()}), '-', 'another jar is empty')
	T.raises("field 'cookies'", http.request, {url = base, cookies = {}})
	T.raises("bad argument #1 to 'store'", jar.store, jar, 42, 'a=1')
	jar:clear()
	T.eq(#jar:cookies(), 0, 'cleared')
	http.closeidle()
	server:close()
end)

T.finish()
