-- The server of socketloop.tango: answers tango 0.2 requests ({"path", args...}) for the
-- functions and variables of a table (docs/rpc.md). Each connection runs in a loop
-- thread of its own and answers its requests in order, as tango's copas server does.
-- Listening, accepting and the option checks are shared with socketloop.rpc
-- (lua/socketloop/rpc/server.lua).

local loop = require'socketloop'
local text = require'socketloop.tango.text'
local wire = require'socketloop.tango.wire'
local shared = require'socketloop.rpc.server'
local describe = require'socketloop.rpc.policy'.describe

local find, sub, format = string.find, string.sub, string.format
local maxn, unpack = table.maxn, unpack

local server = {}

local DEFAULT_ADDRESS, DEFAULT_PORT = 'localhost', 12345
local DEFAULT_MESSAGE_TIMEOUT = 60
-- Refs one connection may hold at once (tango.ref_create without ref_release).
local DEFAULT_MAXREFS = 10000
local BACKLOG = 128
-- Most arguments a request may carry (as rpc's value lists): unpack has to spread them.
local MAX_VALUES = 4096

local option = shared.option

-- config key -> {check, what it must be}
local KEYS = {
	address = option.string,
	interface = option.string,
	port = {function(v) return tonumber(v) ~= nil end, 'a number'},
	functab = option.table,
	serialize = option['function'],
	unserialize = option['function'],
	read_access = option.boolean,
	write_access = option.boolean,
	strict_writes = option.boolean,
	allow_public_globals = option.boolean,
	maxsize = option.count,
	maxdepth = option.count,
	maxrefs = option.count,
	message_timeout = option.positive,
	onerror = option['function'],
	-- tango 0.2's LuaSec parameters (or a context of ours): serve over TLS
	sslparams = option.tls,
	handshake_timeout = option.seconds,
}

local function default_onerror(err, peer)
	io.stderr:write('socketloop.tango: ', tostring(peer or '?'), ': ', tostring(err), '\n')
end

local function index(t, k)
	return t[k]
end

-- The value at dotted `path` in `root`, the table holding it and its key. Only tables
-- are indexed (with t[k], so __index applies); a lookup that raises finds nothing.
local function resolve(root, path)
	local parent, v, i = nil, root, 1
	while true do
		if type(v) ~= 'table' then return nil end
		local j = find(path, '.', i, true)
		local key = sub(path, i, (j or 0) - 1)
		if key == '' then return nil end
		local ok, x = pcall(index, v, key)
		if not ok then return nil end
		parent = v
		if not j then return x, parent, key end
		v, i = x, j + 1
	end
end

local function response(ok, ...)
	return {ok, ...}
end

local function no_path(path)
	return {false, format("tango: no such path '%s'", path)}
end

-- tango.ref_create(path, ...): calls path and keeps the table or userdata it returns.
local function ref_create(conn, path, ...)
	if type(path) ~= 'string' then return {false, 'tango.ref_create: path string expected'} end
	local f = resolve(conn.functab, path)
	if type(f) ~= 'function' then return no_path(path) end
	local r = {pcall(f, ...)}
	if not r[1] then return {false, r[2]} end
	local obj = r[2]
	if type(obj) ~= 'table' and type(obj) ~= 'userdata' then
		return {false, format("tango.ref_create: '%s' returned a %s, not a table or userdata", path, type(obj))}
	end
	if conn.live >= conn.cfg.maxrefs then
		return {false, format('tango.ref_create: this connection holds %d refs, the limit (release some)', conn.live)}
	end
	conn.nrefs = conn.nrefs + 1
	conn.live = conn.live + 1
	local id = 'ref' .. conn.nrefs
	conn.refs[id] = obj
	return {true, id}
end

local function ref_call(conn, id, method, ...)
	local obj = conn.refs[id]
	if obj == nil then return {false, 'tango.ref_call: invalid ref id ' .. describe(id)} end
	local ok, m = pcall(index, obj, method)
	if not ok or m == nil then
		return {false, format("tango.ref_call: no method '%s'", describe(method))}
	end
	return response(pcall(m, obj, ...))
end

local BUILTINS = {
	['tango.ref_create'] = ref_create,
	['tango.ref_call'] = ref_call,
	['tango.ref_release'] = function(conn, id)
		if id ~= nil and conn.refs[id] ~= nil then
			conn.refs[id] = nil
			conn.live = conn.live - 1
		end
		return {true}
	end,
}

-- The response table for request `req`.
local function dispatch(conn, req)
	if type(req) ~= 'table' or type(req[1]) ~= 'string' then
		return {false, 'tango: malformed request (a table starting with a path string expected)'}
	end
	local n = maxn(req)
	if n > MAX_VALUES + 1 then
		return {false, format('tango: malformed request (more than %d arguments)', MAX_VALUES)}
	end
	local path = req[1]
	local builtin = BUILTINS[path]
	if builtin then return builtin(conn, unpack(req, 2, n)) end
	local v, parent, key = resolve(conn.functab, path)
	if type(v) == 'function' then
		return response(pcall(v, unpack(req, 2, n)))
	end
	local cfg = conn.cfg
	-- As tango 0.2, a write may create the last key of its path; only a missing parent
	-- (resolve found no table to hold the key) is an error. strict_writes refuses new keys.
	if v == nil and not (n >= 2 and parent ~= nil and not cfg.strict_writes) then
		return no_path(path)
	end
	if n >= 2 then
		if not cfg.write_access then
			return {false, format("tango: no write access to '%s'", path)}
		end
		local value = req[2]
		local ok, err = pcall(function() parent[key] = value end)
		if not ok then return {false, err} end
		return {true}
	end
	if not cfg.read_access then
		return {false, format("tango: no read access to '%s'", path)}
	end
	return {true, v}
end

-- The response as text; if it cannot be serialized or is too large, an error response
-- saying so.
local function encode(cfg, resp)
	local ok, data = pcall(cfg.serialize, resp)
	local why
	if not ok then
		why = 'tango: cannot serialize the response (' .. tostring(data) .. ')'
	elseif type(data) ~= 'string' then
		why = 'tango: the serializer returned a ' .. type(data) .. ', not a string'
	elseif #data > cfg.maxsize then
		why = format('tango: response of %d bytes exceeds the limit of %d bytes', #data, cfg.maxsize)
	else
		return data
	end
	if resp[1] == false and type(resp[2]) ~= 'string' then
		return encode(cfg, {false, describe(resp[2])})
	end
	ok, data = pcall(cfg.serialize, {false, why})
	return ok and data or nil
end

local function serve(srv, skt)
	local cfg = srv.cfg
	local conn = {cfg = cfg, functab = cfg.functab, refs = {}, nrefs = 0, live = 0}
	local peer = skt:getpeername()
	srv.open[skt] = true
	skt:settimeout(cfg.message_timeout)
	wire.prepare(skt)
	local why
	while true do
		local data, err, protocol = wire.receive(skt, cfg.maxsize)
		if not data then
			if protocol then
				why = err
				break
			elseif err ~= 'timeout' then
				break
			end
		else
			local ok, req = pcall(cfg.unserialize, data)
			if not ok then
				why = 'cannot unserialize the request: ' .. tostring(req)
				break
			end
			local out = encode(cfg, dispatch(conn, req))
			if not out or not wire.send(skt, out) then break end
		end
	end
	srv.open[skt] = nil
	skt:close()
	if why then cfg.onerror('tango: ' .. why, peer) end
end

-- Checks the config for `fname` and fills in the defaults. Errors are raised at the
-- level of the caller of tango.server.new or tango.server.loop.
local function configure(fname, config)
	if config ~= nil and type(config) ~= 'table' then
		error(format("bad argument #1 to '%s' (config table expected, got %s)", fname, type(config)), 4)
	end
	config = config or {}
	local why = shared.check_options(config, KEYS, 'config key')
	if why then error(format("bad argument #1 to '%s' (%s)", fname, why), 4) end
	local maxdepth = config.maxdepth
	local cfg = {
		address = config.address or config.interface or DEFAULT_ADDRESS,
		port = tonumber(config.port) or DEFAULT_PORT,
		functab = config.functab or _G,
		serialize = config.serialize or text.serialize,
		unserialize = config.unserialize or function(s) return text.unserialize(s, maxdepth) end,
		read_access = config.read_access ~= false,
		write_access = config.write_access ~= false,
		strict_writes = config.strict_writes == true,
		maxsize = config.maxsize or wire.DEFAULT_MAXSIZE,
		maxrefs = config.maxrefs or DEFAULT_MAXREFS,
		message_timeout = config.message_timeout or DEFAULT_MESSAGE_TIMEOUT,
		onerror = config.onerror or default_onerror,
	}
	return cfg, config
end

-- Listens per `config` and serves from loop threads. Returns the server or nil, err.
local function start(fname, config)
	local cfg, raw = configure(fname, config)
	local ctx, err = shared.context(raw.sslparams, 'tango.server.' .. fname, 'server', 3)
	if raw.sslparams and not ctx then return nil, err end
	local listener
	listener, err = shared.listen('tango.server.' .. fname, cfg.address, cfg.port,
		cfg.functab, raw.allow_public_globals, BACKLOG, 3)
	if not listener then return nil, err end
	return shared.start({cfg = cfg, tls = ctx, handshake_timeout = raw.handshake_timeout}, listener, serve)
end

-- tango.server.new{...} -> server | nil, err
function server.new(config)
	local srv, err = start('new', config)
	return srv, err
end

-- tango.server.loop{...}: serves and runs the loop until it stops; raises if the server
-- cannot listen.
function server.loop(config)
	local srv, err = start('loop', config)
	if not srv then error('tango.server.loop: ' .. tostring(err), 2) end
	loop.start()
	srv:close()
end

return server
