-- socketloop.socket: a drop-in for LuaSocket's `socket` module whose sockets are
-- asockets. In a loop thread its calls park the thread where LuaSocket's would block;
-- outside one they block, honouring the timeouts, like LuaSocket's. loop.luasocket()
-- installs it as package.loaded.socket, so that socket.http, socket.smtp, socket.ftp,
-- socket.tp and any other library that requires 'socket' run on it unchanged.

local core = require'socketloop.core'
-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler
local A = require'socketloop.asocket'
local compat = require'socketloop.socket.compat'

local socket = {
	_VERSION = 'LuaSocket 3.1.0 (socketloop)',
	-- LuaSocket's select is limited to FD_SETSIZE descriptors; this one is not, but code
	-- that splits its sockets into batches of _SETSIZE still finds the usual number.
	_SETSIZE = 1024,
	_DEBUG = false,
	protect = compat.protect,
	newtry = compat.newtry,
}
socket.try = socket.newtry()

----------------------------------------------------------------------------------------
-- TCP

local function wrapped(s, err)
	if not s then return nil, err end
	return A.wrap(s)
end

-- A TCP master object with no descriptor yet (made by the first bind or connect).
function socket.tcp()
	return wrapped(core.tcp())
end

-- The same, IPv4, with its descriptor made at once.
function socket.tcp4()
	return wrapped(core.tcp('inet'))
end

-- The same, IPv6 only, with its descriptor made at once.
function socket.tcp6()
	return wrapped(core.tcp('inet6'))
end

local makers = {inet = socket.tcp4, inet4 = socket.tcp4, inet6 = socket.tcp6}

-- socket.connect(address, port [, locaddr [, locport [, family]]])
function socket.connect(address, port, locaddr, locport, family)
	local make = socket.tcp
	if family ~= nil then
		make = makers[family]
		if not make then
			error("bad argument #5 to 'connect' (invalid family '" .. tostring(family) .. "')", 2)
		end
	end
	local s, err = make()
	if not s then return nil, err end
	local ok
	if locaddr ~= nil or locport ~= nil then
		ok, err = s:bind(locaddr or '*', locport or 0)
		if not ok then
			s:close()
			return nil, err
		end
	end
	ok, err = s:connect(address, port)
	if not ok then
		s:close()
		return nil, err
	end
	return s
end

function socket.connect4(address, port, locaddr, locport)
	return socket.connect(address, port, locaddr, locport, 'inet')
end

function socket.connect6(address, port, locaddr, locport)
	return socket.connect(address, port, locaddr, locport, 'inet6')
end

-- socket.bind(address, port [, backlog]): a listening server, reuseaddr on.
function socket.bind(host, port, backlog)
	if host == '*' then host = '0.0.0.0' end
	local s, err = socket.tcp()
	if not s then return nil, err end
	s:setoption('reuseaddr', true)
	local ok
	ok, err = s:bind(host, port)
	if ok then ok, err = s:listen(backlog or 32) end
	if not ok then
		s:close()
		return nil, err
	end
	return s
end

----------------------------------------------------------------------------------------
-- UDP: socketloop's async UDP sockets (lua/socketloop/udp.lua). udp() decides its family
-- with the first address, as LuaSocket's; udp4() and udp6() have theirs from the start.

local U = require'socketloop.udp'

function socket.udp()
	return U.new(nil)
end

function socket.udp4()
	return U.new('inet')
end

function socket.udp6()
	return U.new('inet6')
end

----------------------------------------------------------------------------------------
-- select

local function select_arg(t, n)
	if t ~= nil and type(t) ~= 'table' then
		error("bad argument #" .. n .. " to 'select' (table expected, got " .. type(t) .. ')', 3)
	end
	return t or {}
end

-- The descriptor of a socket in a select list, or nil if it has none (closed, or not a
-- socket: LuaSocket skips those).
local function fd_of(s)
	local ok, getfd = pcall(function() return s.getfd end)
	if not ok or type(getfd) ~= 'function' then return nil end
	local fd = getfd(s)
	if type(fd) ~= 'number' or fd < 0 then return nil end
	return fd
end

local function is_dirty(s)
	local ok, dirty = pcall(function() return s.dirty end)
	return ok and type(dirty) == 'function' and dirty(s) == true
end

-- Whether `s` is an asocket or a UDP socket of socketloop's whose descriptor the reactor
-- has (its wait keys are then token * 2 + direction).
local function registered(s)
	local mt = getmetatable(s)
	return (mt == A.class or mt == U.class or A.is_asocket(s)) and type(s[A.TOKEN]) == 'number' and s[A.TOKEN] >= 0
end

-- The entries of a select call: {socket, fd, write}.
local function entries_of(recvt, sendt)
	local list = {}
	for i = 1, #recvt do
		local fd = fd_of(recvt[i])
		if fd then list[#list + 1] = {recvt[i], fd, false} end
	end
	for i = 1, #sendt do
		local fd = fd_of(sendt[i])
		if fd then list[#list + 1] = {sendt[i], fd, true} end
	end
	return list
end

-- Which entries are ready now (or, with `timeout`, once one is: blocking): the readable
-- and writable lists, as LuaSocket's (t[i] = socket, t[socket] = i), or nil if none.
local function ready_lists(list, timeout)
	local readable, writable = {}, {}
	local fds, writes = {}, {}
	for i, e in ipairs(list) do
		fds[i], writes[i] = e[2], e[3]
	end
	local dirty = false
	for _, e in ipairs(list) do
		if not e[3] and is_dirty(e[1]) then
			dirty = true
			break
		end
	end
	local ready = core.waitfds(fds, writes, dirty and 0 or timeout)
	local any = false
	for i, e in ipairs(list) do
		local s = e[1]
		local out = e[3] and writable or readable
		if (ready[i] or not e[3] and is_dirty(s)) and out[s] == nil then
			out[#out + 1] = s
			out[s] = #out
			any = true
			-- What poll saw readable, a receive reads (the reactor flag may not know yet).
			if ready[i] and not e[3] and registered(s) then
				core.waitfd(e[2], false, 0, s[A.TOKEN])
			end
		end
	end
	if any then return readable, writable end
	return nil
end

-- Parks the running loop thread until one of the entries is ready or `timeout` passes.
-- The thread waits, with the timeout, on a wait key of its own (a socket with no
-- descriptor); one helper thread per entry waits, without one, on its socket's key (a
-- temporary registration for a socket that has none), and the first to wake ends this
-- thread's wait as a close would. Then the other helpers are cancelled: none is left
-- waiting, and no timer is left on a key still in use.
local function park_until_ready(list, timeout)
	local own = core.tcp()
	local own_token = own:token()
	local done = false
	local helpers, watches = {}, {}
	for _, e in ipairs(list) do
		local s, fd, write = e[1], e[2], e[3]
		local token
		if registered(s) then
			token = s[A.TOKEN]
		else
			local watch = core.watch(fd)
			if watch then
				watches[#watches + 1] = watch
				token = watch:token()
			end
		end
		if token and token >= 0 then
			local key = token * 2 + (write and 1 or 0)
			helpers[#helpers + 1] = S.newthread(function()
				local how = S.wait(key)
				if not done and (how == true or how == 'closed') then
					done = true
					S.wakeclosed(own_token)
				end
			end)
		end
	end
	local how = S.wait(own_token * 2, timeout)
	done = true
	for _, helper in ipairs(helpers) do S.cancel(helper, 'cancelled') end
	for _, w in ipairs(watches) do w:close() end
	own:close()
	return how
end

-- socket.select(recvt, sendt [, timeout]): LuaSocket's select on sockets of any kind
-- that have getfd; in a loop thread it parks the thread instead of blocking.
function socket.select(recvt, sendt, timeout)
	recvt, sendt = select_arg(recvt, 1), select_arg(sendt, 2)
	if timeout ~= nil and type(timeout) ~= 'number' then
		error("bad argument #3 to 'select' (number expected, got " .. type(timeout) .. ')', 2)
	end
	if timeout and (timeout < 0 or timeout ~= timeout) then timeout = nil end
	local started = core.now()
	while true do
		local list = entries_of(recvt, sendt)
		local left = timeout and math.max(timeout - (core.now() - started), 0)
		local inloop = S.inloop()
		local r, w = ready_lists(list, inloop and 0 or left)
		if r then return r, w end
		-- Outside the loop, waitfds waited the whole time.
		if left == 0 or not inloop then return {}, {}, 'timeout' end
		if park_until_ready(list, left) == 'timeout' then return {}, {}, 'timeout' end
	end
end

----------------------------------------------------------------------------------------
-- Time

socket.gettime = core.gettime

function socket.sleep(seconds)
	if type(seconds) ~= 'number' then
		error("bad argument #1 to 'sleep' (number expected, got " .. type(seconds) .. ')', 2)
	end
	if seconds ~= seconds or seconds <= 0 then return end
	S.sleep(math.min(seconds, 2^31))
end

----------------------------------------------------------------------------------------
-- DNS: forward lookups through loop.resolve (the resolver pool: a loop thread parks, the
-- loop goes on); reverse lookups, which it does not do, through LuaSocket's own (blocking).

local dns = {}
socket.dns = dns

local function luasocket_dns(name)
	local ok, c = pcall(require, 'socket.core')
	local f = ok and type(c) == 'table' and c.dns and c.dns[name]
	if not f then error('socket.dns.' .. name .. ' needs LuaSocket (socket.core)', 3) end
	return f
end

-- dns.getaddrinfo(host) -> {{family = 'inet' | 'inet6', addr = ip}...} | nil, err
function dns.getaddrinfo(host)
	if type(host) ~= 'string' then
		error("bad argument #1 to 'getaddrinfo' (string expected, got " .. type(host) .. ')', 2)
	end
	local ips, err = require'socketloop'.resolve(host)
	if not ips then return nil, err end
	local list = {}
	for i, ip in ipairs(ips) do
		list[i] = {family = ip:find(':', 1, true) and 'inet6' or 'inet', addr = ip}
	end
	return list
end

-- dns.toip(name) -> first IPv4 address, {name =, alias = {}, ip = {...}} | nil, err
function dns.toip(host)
	if type(host) ~= 'string' then
		error("bad argument #1 to 'toip' (string expected, got " .. type(host) .. ')', 2)
	end
	local ips, err = require'socketloop'.resolve(host, 'inet')
	if not ips or #ips == 0 then return nil, err or 'host not found' end
	return ips[1], {name = host, alias = {}, ip = ips}
end

function dns.tohostname(addr)
	return luasocket_dns('tohostname')(addr)
end

function dns.getnameinfo(...)
	return luasocket_dns('getnameinfo')(...)
end

function dns.gethostname()
	local f = io.open('/proc/sys/kernel/hostname')
	local name = f and f:read('*l')
	if f then f:close() end
	if name then return name end
	return luasocket_dns('gethostname')()
end

----------------------------------------------------------------------------------------
-- socket.lua's helpers: skip, choose, and the ltn12 sources and sinks over a socket.

function socket.skip(d, ...)
	return select(d + 1, ...)
end

function socket.choose(table)
	return function(name, opt1, opt2)
		if type(name) ~= 'string' then
			name, opt1, opt2 = 'default', name, opt1
		end
		local f = table[name or 'nil']
		if not f then error('unknown key (' .. tostring(name) .. ')', 3) end
		return f(opt1, opt2)
	end
end

local sinkt = {}
socket.sinkt = sinkt

sinkt['close-when-done'] = function(sock)
	return setmetatable({getfd = function() return sock:getfd() end,
		dirty = function() return sock:dirty() end}, {
		__call = function(_, chunk, err)
			if not chunk then
				sock:close()
				return 1
			end
			return sock:send(chunk)
		end,
	})
end

sinkt['keep-open'] = function(sock)
	return setmetatable({getfd = function() return sock:getfd() end,
		dirty = function() return sock:dirty() end}, {
		__call = function(_, chunk, err)
			if chunk then return sock:send(chunk) end
			return 1
		end,
	})
end

sinkt.default = sinkt['keep-open']
socket.sink = socket.choose(sinkt)

local sourcet = {}
socket.sourcet = sourcet

local BLOCKSIZE = 2048
socket.BLOCKSIZE = BLOCKSIZE

sourcet['by-length'] = function(sock, length)
	return setmetatable({getfd = function() return sock:getfd() end,
		dirty = function() return sock:dirty() end}, {
		__call = function()
			if length <= 0 then return nil end
			local chunk, err = sock:receive(math.min(BLOCKSIZE, length))
			if err then return nil, err end
			length = length - #chunk
			return chunk
		end,
	})
end

sourcet['until-closed'] = function(sock)
	local done = false
	return setmetatable({getfd = function() return sock:getfd() end,
		dirty = function() return sock:dirty() end}, {
		__call = function()
			if done then return nil end
			local chunk, err, partial = sock:receive(BLOCKSIZE)
			if not err then return chunk end
			if err == 'closed' then
				sock:close()
				done = true
				return partial
			end
			return nil, err
		end,
	})
end

sourcet.default = sourcet['until-closed']
socket.source = socket.choose(sourcet)

return socket
