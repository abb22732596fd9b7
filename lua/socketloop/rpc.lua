-- socketloop.rpc: bidirectional RPC between two Lua VMs over one TCP connection.
-- docs/rpc.md documents the API, docs/protocol.md the wire format, docs/security.md the
-- policy. Sessions (calling, serving, the reader) are lua/socketloop/rpc/session.lua;
-- what the servers share with tango's (listening, accepting, option checks) is
-- lua/socketloop/rpc/server.lua.

local loop = require'socketloop'
local core = require'socketloop.core'
local Session = require'socketloop.rpc.session'
local policy = require'socketloop.rpc.policy'
local shared = require'socketloop.rpc.server'

local rpc = {}

local DEFAULT_ADDRESS, DEFAULT_PORT = 'localhost', 1999
local DEFAULT_MAXSIZE = 16 * 1024 * 1024
local DEFAULT_MAXDEPTH = 100
local DEFAULT_MESSAGE_TIMEOUT = 60
-- Bytes of answers and calls queued for a peer past which its connection's calls are not
-- read until the peer takes them (docs/security.md).
local DEFAULT_MAXQUEUED = 4 * 1024 * 1024
local BACKLOG = 128

rpc.DEFAULT_ADDRESS, rpc.DEFAULT_PORT = DEFAULT_ADDRESS, DEFAULT_PORT

local option = shared.option

-- option -> its check, and what it should be (for the error)
local COMMON = {
	expose = option.table,
	allow_public_globals = option.boolean,
	exec = {policy.is_setting, "true, false or 'loopback'"},
	bytecode = {policy.is_setting, "true, false or 'loopback'"},
	maxsize = option.count,
	maxdepth = option.count,
	maxqueued = option.count,
	message_timeout = option.positive,
	onerror = option['function'],
}
local function with(extra)
	local t = {}
	for k, v in pairs(COMMON) do t[k] = v end
	for k, v in pairs(extra) do t[k] = v end
	return t
end
local CLIENT_OPTIONS = with{timeout = option.seconds, tls = option.tls}
local SERVER_OPTIONS = with{timeout = option.seconds, onlisten = option['function'], tls = option.tls,
	handshake_timeout = option.seconds}
local MULTISERVER_OPTIONS = with{onconnect = option['function'], tls = option.tls,
	handshake_timeout = option.seconds}

local function default_onerror(err, session)
	io.stderr:write('socketloop.rpc: ', tostring(session and session.peer or '?'), ': ',
		tostring(err), '\n')
end

local function bad(fname, n, why)
	error(("bad argument #%d to '%s' (%s)"):format(n, fname, why), 4)
end

-- Parses ([address], [port], [options]) for `fname`. Returns address, port, the session
-- configuration and the options table.
local function arguments(fname, allowed, ...)
	local n = select('#', ...)
	local opts = {}
	if n > 0 and type((select(n, ...))) == 'table' then
		opts = select(n, ...)
		n = n - 1
	end
	local address, port = ...
	if n < 2 then port = nil end
	if n < 1 then address = nil end
	if n == 1 and type(address) == 'number' then address, port = nil, address end
	if n > 2 then bad(fname, 3, 'options table expected, got ' .. type((select(3, ...)))) end
	if address ~= nil and type(address) ~= 'string' then
		bad(fname, 1, 'address string expected, got ' .. type(address))
	end
	if port ~= nil and not tonumber(port) then
		bad(fname, 2, 'port number expected, got ' .. type(port))
	end
	local why = shared.check_options(opts, allowed, 'option')
	if why then bad(fname, n + 1, why) end
	local cfg = {
		expose = opts.expose or _G,
		allow_public_globals = opts.allow_public_globals,
		exec = opts.exec == nil and 'loopback' or opts.exec,
		bytecode = opts.bytecode == nil and 'loopback' or opts.bytecode,
		message_timeout = opts.message_timeout or DEFAULT_MESSAGE_TIMEOUT,
		maxqueued = opts.maxqueued or DEFAULT_MAXQUEUED,
		onerror = opts.onerror or default_onerror,
		codec = core.rpc_codec(opts.maxsize or DEFAULT_MAXSIZE, opts.maxdepth or DEFAULT_MAXDEPTH),
	}
	return address or DEFAULT_ADDRESS, tonumber(port) or DEFAULT_PORT, cfg, opts
end

local function start(skt, cfg)
	local s = Session.new(skt, cfg)
	loop.newthread(s.run, s)
	return s
end

function rpc.newclient(...)
	local address, port, cfg, opts = arguments('newclient', CLIENT_OPTIONS, ...)
	local ctx, err = shared.context(opts.tls, 'newclient', 'client', 2)
	if opts.tls and not ctx then return nil, err end
	local skt = loop.tcp()
	skt:settimeout(opts.timeout)
	local ok
	ok, err = skt:connect(address, port)
	if ok and ctx then ok, err = skt:starttls(ctx) end
	if not ok then
		skt:close()
		return nil, err
	end
	local allowed, why = policy.may_expose(cfg.expose, cfg.allow_public_globals,
		(skt:getpeername()), 'to peer')
	if not allowed then
		skt:close()
		error('newclient: ' .. why, 2)
	end
	return start(skt, cfg)
end

function rpc.newserver(...)
	local address, port, cfg, opts = arguments('newserver', SERVER_OPTIONS, ...)
	local ctx, err = shared.context(opts.tls, 'newserver', 'server', 2)
	if opts.tls and not ctx then return nil, err end
	local listener
	listener, err = shared.listen('newserver', address, port, cfg.expose,
		cfg.allow_public_globals, 1, 2)
	if not listener then return nil, err end
	if opts.onlisten then
		local ok, why = pcall(opts.onlisten, listener:getsockname())
		if not ok then
			listener:close()
			error(why, 0)
		end
	end
	listener:settimeout(opts.timeout)
	local client
	client, err = listener:accept()
	listener:close()
	if not client then return nil, err end
	if ctx then
		local server = {tls = ctx, handshake_timeout = opts.handshake_timeout}
		server.tlscount = require'socketloop.tls'.newstats()
		if not shared.handshake(server, client) then
			return nil, server.tlscount.last_error
		end
	end
	return start(client, cfg)
end

-- Serves one accepted connection; server:close closes the session (in server.open).
local function serve_client(server, skt)
	local s = Session.new(skt, server.cfg)
	local sessions = server.open
	sessions[s] = true
	s.onclose = function() sessions[s] = nil end
	if server.onconnect then loop.newthread(server.onconnect, s) end
	s:run()
end

function rpc.newserveronly(...)
	local address, port, cfg, opts = arguments('newserveronly', MULTISERVER_OPTIONS, ...)
	local ctx, err = shared.context(opts.tls, 'newserveronly', 'server', 2)
	if opts.tls and not ctx then return nil, err end
	local listener
	listener, err = shared.listen('newserveronly', address, port, cfg.expose,
		cfg.allow_public_globals, BACKLOG, 2)
	if not listener then return nil, err end
	return shared.start({cfg = cfg, onconnect = opts.onconnect, tls = ctx,
		handshake_timeout = opts.handshake_timeout}, listener, serve_client)
end
rpc.newmultiserver = rpc.newserveronly

-- The session whose call the running thread is serving, or nil.
rpc.caller = Session.caller

return rpc
