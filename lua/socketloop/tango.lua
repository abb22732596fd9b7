-- socketloop.tango: tango 0.2's transparent proxies on the loop, wire-compatible with
-- tango's socket backend (docs/rpc.md, docs/protocol.md). This file is the client side
-- and the module table; the server is lua/socketloop/tango/server.lua, the default
-- serialization lua/socketloop/tango/text.lua, the framing lua/socketloop/tango/wire.lua.
--
-- A proxy stands for a dotted path on the server: indexing it makes the proxy of a longer
-- path, calling it sends {path, ...} and returns what the server answers. tango has no
-- request ids, so each connection carries one request at a time: threads sharing a
-- connection take turns.

local loop = require'socketloop'
local text = require'socketloop.tango.text'
local wire = require'socketloop.tango.wire'
local Cond = require'socketloop.rpc.cond'
local tls = require'socketloop.tls'

local maxn, unpack, format = table.maxn, unpack, string.format

local tango = {
	server = require'socketloop.tango.server',
	client = {},
	serialize = text.serialize,
	unserialize = text.unserialize,
}

local DEFAULT_ADDRESS, DEFAULT_PORT, DEFAULT_TIMEOUT = 'localhost', 12345, 5000
-- Most results a response may carry (as rpc's value lists): unpack has to spread them.
local MAX_VALUES = 4096

local KEYS = {
	address = 'string', interface = 'string', port = 'number', timeout = 'number',
	serialize = 'function', unserialize = 'function', maxsize = 'number', maxdepth = 'number',
	-- tango 0.2's LuaSec parameters (or a context of ours): connect over TLS
	sslparams = 'tls',
}

-- proxy -> {conn = connection, path = dotted path or nil for the root}
local proxies = setmetatable({}, {__mode = 'k'})
-- ref object -> {conn = connection, id = id string}
local refs = setmetatable({}, {__mode = 'k'})

local Conn = {}
Conn.__index = Conn

-- Waits for this connection's turn.
function Conn:lock()
	if not self.busy then
		self.busy = true
		return
	end
	local c = Cond.new()
	self.waiting[#self.waiting + 1] = c
	c:wait()
end

-- Hands the turn to the next thread in line.
function Conn:unlock()
	local c = table.remove(self.waiting, 1)
	if c then return c:signal() end
	self.busy = false
end

function Conn:close()
	self.closed = true
	self.skt:close()
end

-- Sends request table `req` and returns the response table. Raises, at `level` counted
-- from the caller of request, for a lost connection ('closed', 'timeout') or a malformed
-- response.
function Conn:request(req, level)
	level = level + 2
	if self.closed then error('closed', level) end
	local ok, data = pcall(self.serialize, req)
	if not ok then
		error('tango: cannot serialize the request (' .. tostring(data) .. ')', level)
	elseif type(data) ~= 'string' then
		error('tango: the serializer returned a ' .. type(data) .. ', not a string', level)
	elseif #data > self.maxsize then
		error(format('tango: request of %d bytes exceeds the limit of %d bytes', #data, self.maxsize), level)
	end
	self:lock()
	local sent, err, protocol = wire.send(self.skt, data)
	if sent then
		data, err, protocol = wire.receive(self.skt, self.maxsize)
	end
	self:unlock()
	if not sent or not data then
		self:close()
		error(protocol and 'tango: ' .. err or err, level)
	end
	local resp
	ok, resp = pcall(self.unserialize, data)
	local why = not ok and resp
		or type(resp) ~= 'table' and 'a ' .. type(resp) .. ', not a table'
		or maxn(resp) > MAX_VALUES + 1 and 'more than ' .. MAX_VALUES .. ' results'
	if why then
		self:close()
		error('tango: malformed response (' .. tostring(why) .. ')', level)
	end
	return resp
end

local Proxy = {}

local function new_proxy(conn, path)
	local p = setmetatable({}, Proxy)
	proxies[p] = {conn = conn, path = path}
	return p
end

function Proxy.__index(self, key)
	local info = proxies[self]
	local path = info.path and info.path .. '.' .. tostring(key) or tostring(key)
	local child = new_proxy(info.conn, path)
	rawset(self, key, child)
	return child
end

function Proxy.__call(self, ...)
	local info = proxies[self]
	if not info.path then
		error('tango: the root proxy cannot be called; index it with a path', 2)
	end
	local resp = info.conn:request({info.path, ...}, 1)
	if resp[1] ~= true then error(resp[2], 2) end
	return unpack(resp, 2, maxn(resp))
end

function Proxy.__tostring(self)
	return 'tango proxy: ' .. tostring(proxies[self].path or '(root)')
end

-- tango.client.connect{address=, port=, timeout=, serialize=, unserialize=}
-- -> proxy | nil, err
function tango.client.connect(config)
	if config ~= nil and type(config) ~= 'table' then
		error("bad argument #1 to 'connect' (config table expected, got " .. type(config) .. ')', 2)
	end
	config = config or {}
	for k, v in pairs(config) do
		if not KEYS[k] then
			error("bad argument #1 to 'connect' (unknown config key '" .. tostring(k) .. "')", 2)
		end
		if KEYS[k] == 'tls' then
			if not tls.is_tls(v) then
				error("bad argument #1 to 'connect' (config key 'sslparams' must be TLS parameters or a context)", 2)
			end
		elseif type(v) ~= KEYS[k] then
			error(format("bad argument #1 to 'connect' (config key '%s' must be a %s)", k, KEYS[k]), 2)
		end
	end
	local maxsize = config.maxsize or wire.DEFAULT_MAXSIZE
	local maxdepth = config.maxdepth
	local ctx, err
	if config.sslparams then
		ctx, err = tls.context(config.sslparams, 'connect', 1, 'client', 2)
		if not ctx then return nil, err end
	end
	local skt = loop.tcp()
	skt:settimeout(config.timeout or DEFAULT_TIMEOUT)
	local ok
	ok, err = skt:connect(config.address or config.interface or DEFAULT_ADDRESS,
		config.port or DEFAULT_PORT)
	if ok and ctx then ok, err = skt:starttls(ctx) end
	if not ok then
		skt:close()
		return nil, err
	end
	wire.prepare(skt)
	local conn = setmetatable({
		skt = skt,
		serialize = config.serialize or text.serialize,
		unserialize = config.unserialize or function(s) return text.unserialize(s, maxdepth) end,
		maxsize = maxsize,
		busy = false,
		waiting = {},
		closed = false,
	}, Conn)
	return new_proxy(conn, nil)
end

local function proxy_info(fname, p)
	local info = proxies[p]
	if not info then
		error(format("bad argument #1 to '%s' (tango proxy expected, got %s)", fname, type(p)), 3)
	end
	return info
end

-- Closes the connection of proxy `p` (any proxy made from it).
function tango.close(p)
	proxy_info('close', p).conn:close()
end

local Ref = {}

function Ref.__index(self, method)
	return function(_, ...)
		local r = refs[self]
		local resp = r.conn:request({'tango.ref_call', r.id, method, ...}, 1)
		if resp[1] ~= true then error(resp[2], 2) end
		return unpack(resp, 2, maxn(resp))
	end
end

function Ref.__tostring(self)
	return 'tango ref: ' .. tostring(refs[self].id)
end

-- tango.ref(proxy, ...): calls the remote function `proxy` stands for and keeps its
-- result (a table or userdata) on the server; methods called on the returned object
-- (obj:method(...)) run on it there.
function tango.ref(p, ...)
	local info = proxy_info('ref', p)
	if not info.path then
		error("bad argument #1 to 'ref' (the root proxy names no function)", 2)
	end
	local resp = info.conn:request({'tango.ref_create', info.path, ...}, 1)
	if resp[1] ~= true then error(resp[2], 2) end
	local obj = setmetatable({}, Ref)
	refs[obj] = {conn = info.conn, id = resp[2]}
	return obj
end

-- tango.unref(obj): lets the server drop the object.
function tango.unref(obj)
	local r = refs[obj]
	if not r then
		error("bad argument #1 to 'unref' (tango ref expected, got " .. type(obj) .. ')', 2)
	end
	refs[obj] = nil
	local resp = r.conn:request({'tango.ref_release', r.id}, 1)
	if resp[1] ~= true then error(resp[2], 2) end
end

return tango
