-- The asynchronous UDP socket: LuaSocket's UDP API on one of our UDP sockets
-- (src/net/udp.rs, whose methods say 'wantread' / 'wantwrite' instead of blocking) or on
-- a LuaSocket UDP object set to timeout 0 (whose methods say 'timeout'). When an
-- operation would block, the calling loop thread parks on the socket's wait key; outside
-- a loop thread the call blocks in poll(2), like LuaSocket's own. Names given to
-- setsockname, setpeername and sendto are looked up on the resolver pool.

local core = require'socketloop.core'
local A = require'socketloop.asocket'

local WANTREAD, WANTWRITE = core.WANTREAD, core.WANTWRITE
local READ, WRITE = 0, 1
local ready, check, resolve = A.ready, A.check, A.resolve
local isliteral = core.isliteral

local udp = {}
udp.__index = udp

local U = {}

local function would_block(err)
	return err == WANTREAD or err == WANTWRITE or err == 'timeout'
end

-- Calls method `name` of the wrapped socket until it does not say it would block in
-- direction `dir`, parking between calls; returns what it finally answered.
local function retry(self, dir, name, ...)
	local s = self.socket
	local a, err, c = s[name](s, ...)
	local started, how
	while a == nil and would_block(err) do
		how, started = ready(self, dir, started)
		if how ~= true then return nil, how end
		a, err, c = s[name](s, ...)
	end
	if a == nil then return check(nil, err, c) end
	return a, err, c
end

function udp:receive(size)
	return retry(self, READ, 'receive', size)
end

function udp:receivefrom(size)
	return retry(self, READ, 'receivefrom', size)
end

function udp:send(datagram)
	return retry(self, WRITE, 'send', datagram)
end

-- The addresses for `host` (a name is looked up), of the socket's family once it has one.
local function addresses(self, host)
	if type(host) ~= 'string' or isliteral(host) then return {host} end
	local family = self.socket.getfamily and self.socket:getfamily() or nil
	if family == 'inet4' then family = 'inet' end -- LuaSocket's word
	if family ~= 'inet' and family ~= 'inet6' then family = nil end
	return resolve(host, family)
end

function udp:sendto(datagram, host, port)
	local addrs, err = addresses(self, host)
	if not addrs then return nil, err end
	return retry(self, WRITE, 'sendto', datagram, addrs[1], port)
end

-- Calls method `name` with each address of `host` in turn until one works.
local function each_address(self, name, host, port)
	local addrs, err = addresses(self, host)
	if not addrs then return nil, err end
	local s = self.socket
	local ok
	for _, ip in ipairs(addrs) do
		ok, err = check(s[name](s, ip, port))
		if ok then return ok end
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
	return tostring(self.socket)
end

function udp:setfd(fd)
	local s = self.socket
	local r, err, why = check(s:setfd(fd))
	if self.ours then self.token = s:token() end
	return r, err, why
end

for _, name in ipairs{'getsockname', 'getpeername', 'setoption', 'getoption', 'getfd',
		'dirty', 'getfamily'} do
	udp[name] = function(self, ...)
		local s = self.socket
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
	local self = setmetatable({timeouts = false, socket = s}, udp)
	self.ours = core.isudp(s)
	if self.ours then
		self.token = s:token()
	else
		-- Its descriptor is registered when a thread first waits (LuaSocket's udp()
		-- makes it on the first setsockname, setpeername or sendto).
		s:settimeout(0)
		self.token = -1
	end
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
