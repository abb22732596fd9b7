-- LuaSec driven by the loop: an HTTPS GET made with LuaSocket + LuaSec (Debian's lua-sec),
-- whose handshake, sends and receives park the loop thread instead of blocking, so other
-- threads run meanwhile (here a ticker counts while the fetch goes on).
--
--   socketloop examples/luasec_call_async.lua HOST PORT [CAFILE] [PATH]
--
-- Without CAFILE the system's CA bundle is used. Prints the status line, the ticker's
-- count and the body's size.
--
-- How: ssl.wrap takes over the LuaSocket object's descriptor; asocket:setsocket points
-- the asocket at the LuaSec object (timeout 0), and call_async calls dohandshake until
-- it stops answering 'wantread'/'wantwrite', parking on the descriptor in between. The
-- asocket's receive and send then work the same way on LuaSec's own methods.

local loop = require'socketloop'
local socket = require'socket'
local ssl = require'ssl'

local host, port = arg[1], tonumber(arg[2])
local cafile, path = arg[3], arg[4] or '/'
if not host or not port then
	io.stderr:write('usage: luasec_call_async.lua HOST PORT [CAFILE] [PATH]\n')
	os.exit(2)
end

local ticks, fetching = 0, true
loop.newthread(function()
	while fetching do
		ticks = ticks + 1
		loop.sleep(0.001)
	end
end)

local ok = false
loop.newthread(function()
	local skt = loop.wrap(socket.tcp())
	skt:settimeout(10)
	assert(skt:connect(host, port))
	local conn = assert(ssl.wrap(skt:getsocket(), {
		mode = 'client', protocol = 'any', verify = 'peer', options = 'all',
		cafile = cafile or '/etc/ssl/certs/ca-certificates.crt',
	}))
	conn:sni(host)
	-- LuaSec took over the descriptor: the asocket now wraps LuaSec's object.
	skt:setsocket(conn)
	assert(skt:call_async(conn.dohandshake, conn))
	assert(skt:send(('GET %s HTTP/1.0\r\nHost: %s\r\n\r\n'):format(path, host)))
	local status = assert(skt:receive('*l'))
	local length
	repeat
		local line = assert(skt:receive('*l'))
		length = length or tonumber(line:lower():match('^content%-length:%s*(%d+)'))
	until line == ''
	local body = length and skt:receive(length) or skt:receive('*a')
	skt:close()
	fetching = false
	print(status)
	print(('body: %d bytes; the ticker ran %s while it was fetched'):format(#body, ticks > 0 and 'on' or 'NOT'))
	ok = true
end)
loop.start()
os.exit(ok and 0 or 1)
