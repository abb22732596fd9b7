-- The asynchronous UDP socket: LuaSocket's UDP API on one of our UDP sockets
-- (src/net/udp.rs, whose methods say 'wantread' / 'wantwrite' instead of blocking) or on
-- a LuaSocket UDP object set to timeout 0 (whose methods say 'timeout'). When an
-- operation would block, the calling loop thread parks on the socket's wait key; outside
-- a loop thread the call blocks in poll(2), like LuaSocket's own. Names given to
-- setsockname, setpeername and sendto are looked up on the resolver pool.

local core = require'socketloop.core'
local A = require'socketloop.asocket'

local WANTREAD, WANTWRITE, NEEDS_LOOKUP = core.WANTREAD, core.WANTWRITE, core.NEEDS_LOOKUP
local READ, WRITE = 0, 1
local ready, check, resolve = A.ready, A.check, A.resolve
-- The asocket's slots (lua/socketloop/asocket.lua): a UDP object has the same four.
local SOCKET, TOKEN, OURS = A.SOCKET, A.TOKEN, A.OURS
local isliteral = core.isliteral

local udp = {}
udp.__index = udp

local U = {}

local function would_block(err)
	return err == WANTREAD or err == WANTWRITE or err == 'timeout'
end

-- After method `name` of the wrapped socket answered nil, `err`, `why`: while `err` says
-- it would block, parks until the socket is ready for `dir` and calls it again. Returns
-- what it finally answered (misuse raised).
local function retry(self, dir, err, why, name, a1, a2, a3)
	local s = self[SOCKET]
	local started, how, r1
	local r3 = why
	while would_block(err) do
		how, started = ready(self, dir, started)
		if how ~= true then return nil, how end
		r1, err, r3 = s[name](s, a1, a2, a3)
		if r1 ~= nil then return r1, err, r3 end
	end
	return check(nil, err, r3)
end

function udp:receive(size)
	local s = self[SOCKET]
	local data, err, why = s:receive(size)
	if data then return data end
	return retry(self, READ, err, why, 'receive', size)
end

function udp:receivefrom(size)
	local s = self[SOCKET]
	local data, ip, port = s:receivefrom(size)
	if data then return data, ip, port end
	return retry(self, READ, ip, port, 'receivefrom', size)
end

function udp:send(datagram)
	local s = self[SOCKET]
	local n, err, why = s:send(datagram)
	if n then return n end
	return retry(self, WRITE, err, why, 'send', datagram)
end

-- The addresses for `host` (a name is looked up), of the socket's family once it has one.
local function addresses(self, host)
	if type(host) ~= 'string' or isliteral(host) then return {host} end
	local family = self[SOCKET].getfamily and self[SOCKET]:getfamily() or nil
	if family == 'inet4' then family = 'inet' end -- LuaSocket's word
	if family ~= 'inet' and family ~= 'inet6' then family = nil end
	return resolve(host, family)
end

-- `host` may be a name: ours answers NEEDS_LOOKUP for one, LuaSocket's would refuse it.
function udp:sendto(datagram, host, port)
	local s = self[SOCKET]
	local n, err, why
	if self[OURS] then
		n, err, why = s:sendto(datagram, host, port)
		if n then return n end
	end
	if err == NEEDS_LOOKUP or not self[OURS] then
		local addrs
		addrs, err = addresses(self, host)
		if not addrs then return nil, err end
		host = addrs[1]
		n, err, why = s:sendto(datagram, host, port)
		if n then return n end
	end
	return retry(self, WRITE, err, why, 'sendto', datagram, host, port)
end

-- LuaSocket's `class` field, 'udp{unconnected}' or 'udp{connected}' as tostring says
-- (a foreign socket's own is looked up on it), refreshed when setpeername changes it. A
-- closed socket keeps its class, as LuaSocket's.
local function refresh_class(self)
	local s = self[SOCKET]
	if not self[OURS] then
		self.class = s.class
	else
		local class = tostring(s):match('^[^:]*')
		if class ~= 'udp{closed}' then self.class = class end
	end
end

-- Calls method `name` with each address of `host` in turn until one works.
local function each_address(self, name, host, port)
	local addrs, err = addresses(self, host)
	if not addrs then return nil, err end
	local s = self[SOCKET]
	local ok
	for _, ip in ipairs(addrs) do
		ok, err = check(s[name](s, ip, port))
		if ok then
			refresh_class(self)
			return ok
		end
	end
	return nil, err
end

function udp:setsockname(host, port)
	return each_address(self, 'setsockname', host, port)
end

function udp:setpeername(host, port)
	return each_address(self, 'setpeername', host, port)
end

udp.settimeout = A.class.settimeout
udp.gettimeout = A.class.gettimeout
udp.close = A.class.close
udp.getsocket = A.class.getsocket

function udp:__tostring()
	return tostring(self[SOCKET])
end

function udp:setfd(fd)
	local s = self[SOCKET]
	local r, err, why = check(s:setfd(fd))
	if self[OURS] then self[TOKEN] = s:token() end
	refresh_class(self)
	return r, err, why
end

for _, name in ipairs{'getsockname', 'getpeername', 'setoption', 'getoption', 'getfd',
		'dirty', 'getfamily'} do
	udp[name] = function(self, ...)
		local s = self[SOCKET]
		return check(s[name](s, ...))
	end
end

-- Whether `s` is a UDP socket: ours, or a LuaSocket one ('udp{...}' objects).
function U.is_udp(s)
	if core.isudp(s) then return true end
	return (type(s) == 'userdata' or type(s) == 'table') and type(s.getfd) == 'function'
		and type(s.receivefrom) == 'function' and type(s.sendto) == 'function'
end

-- Wraps one of our UDP sockets or a LuaSocket UDP object.
function U.wrap(s)
	local ours = core.isudp(s)
	local self = setmetatable({s, ours and s:token() or -1, ours, false}, udp)
	if not ours then
		-- Its descriptor is registered when a thread first waits (LuaSocket's udp()
		-- makes it on the first setsockname, setpeername or sendto).
		s:settimeout(0)
	end
	refresh_class(self)
	return self
end

-- A new asynchronous UDP socket of `family` ('inet', 'inet6' or nil: the first
-- address's), or nil, err.
function U.new(family)
	local s, err = core.udp(family)
	if not s then return nil, err end
	return U.wrap(s)
end

U.class = udp
A.udp_class = udp
return U
