-- socketloop: coroutine-based asynchronous TCP and UDP sockets for LuaJIT, with LuaSocket's API.
-- The public API; docs/api.md documents every function.

local core = require'socketloop.core'
-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler
local A = require'socketloop.asocket'

local traceback = debug.traceback

local loop = {_VERSION = 'socketloop 0.1.0'}

loop.newthread = S.newthread
loop.current = S.current
loop.suspend = S.suspend
loop.resume = S.resume
loop.start = S.start
loop.stop = S.stop
loop.step = S.step
loop.sleep = S.sleep
loop.sleep_until = S.sleep_until
loop.now = core.now
loop.wrap = A.wrap

-- Seeing inside the loop (lua/socketloop/introspect.lua).
local introspect = require'socketloop.introspect'
loop.stats = introspect.stats
loop.threads = introspect.threads
loop.dump = introspect.dump
loop.warn_slow = introspect.warn_slow

-- Coordination between threads (lua/socketloop/sync.lua).
local sync = require'socketloop.sync'
loop.queue = sync.queue
loop.semaphore = sync.semaphore
loop.lock = sync.lock
loop.event = sync.event
loop.after = sync.after
loop.every = sync.every
loop.cancel = sync.cancel
loop.timeout = sync.timeout
loop.join = S.join
loop.onsignal = sync.onsignal
loop.shutdown = sync.shutdown
loop.shuttingdown = sync.shuttingdown

-- Which worker this process is (socketloop --workers N), and how many there are: 1, 1
-- outside worker mode.
function loop.worker()
	return S.worker_index or 1, S.worker_count or 1
end

-- A TLS context from LuaSec-style parameters (docs/tls.md): ctx | nil, err.
function loop.newtls(params)
	local ctx, err = require'socketloop.tls'.context(params, 'newtls', 1, 'client', 2)
	return ctx, err
end

-- Sets the handler of errors raised in loop threads: fn(err, traceback, thread).
-- nil restores the default (print to stderr). Returns the previous handler.
function loop.onerror(fn)
	if fn ~= nil and type(fn) ~= 'function' then
		error("bad argument #1 to 'onerror' (function expected, got " .. type(fn) .. ')', 2)
	end
	local previous = S.onerror
	S.onerror = fn or S.default_onerror
	return previous
end

local FAMILIES = {inet = true, inet6 = true}

-- The addresses of `host` ({ip...}) or nil, err, looked up without blocking the loop.
function loop.resolve(host, family, timeout)
	if type(host) ~= 'string' then
		error("bad argument #1 to 'resolve' (string expected, got " .. type(host) .. ')', 2)
	end
	if family ~= nil and not FAMILIES[family] then
		error("bad argument #2 to 'resolve' (invalid family '" .. tostring(family) .. "')", 2)
	end
	if timeout ~= nil and not (type(timeout) == 'number' and timeout >= 0 and timeout < math.huge) then
		error("bad argument #3 to 'resolve' (non-negative number expected)", 2)
	end
	return A.resolve(host, family, timeout)
end

local function new_tcp(family, ip, port)
	local sock, why = core.tcp(family)
	if not sock then return nil, why end
	local s = A.wrap(sock)
	s.family = family
	if ip ~= nil or port ~= nil then
		local ok, err = s:bind(ip or '*', port or 0)
		if not ok then
			s:close()
			return nil, err
		end
	end
	return s
end

-- An unconnected async TCP socket, bound to ip/port when given.
function loop.tcp(ip, port)
	return new_tcp(nil, ip, port)
end

-- The same, IPv6 only.
function loop.tcp6(ip, port)
	return new_tcp('inet6', ip, port)
end

local function new_udp(fname, family, ip, port)
	if ip ~= nil and type(ip) ~= 'string' then
		error("bad argument #1 to '" .. fname .. "' (string expected, got " .. type(ip) .. ')', 3)
	end
	local u, err = require'socketloop.udp'.new(family)
	if not u then return nil, err end
	if ip ~= nil or port ~= nil then
		local ok
		ok, err = u:setsockname(ip or '*', port or 0)
		if not ok then
			u:close()
			return nil, err
		end
	end
	return u
end

-- An async UDP socket (IPv4 or IPv6, decided by the first address it is given), bound to
-- ip/port when given.
function loop.udp(ip, port)
	return new_udp('udp', nil, ip, port)
end

-- The same, IPv6 only.
function loop.udp6(ip, port)
	return new_udp('udp6', 'inet6', ip, port)
end

local CONNECT_OPTIONS = {tls = true, local_ip = true, local_port = true, timeout = true}

-- Raises "bad argument #argn to 'fname'" at the caller of fname for an option table
-- with a key not in `known`.
local function check_options(options, known, fname, argn)
	for k in pairs(options) do
		if not known[k] then
			error(("bad argument #%d to '%s' (unknown option '%s')"):format(argn, fname, tostring(k)), 3)
		end
	end
end

-- A timeout option: nil, or a number >= 0 (inf: none).
local function check_timeout(t, fname, argn, what)
	if t ~= nil and (type(t) ~= 'number' or t ~= t or t < 0) then
		error(("bad argument #%d to '%s' (%s: non-negative number expected)"):format(argn, fname, what), 3)
	end
end

-- connect(host, port [, local_ip [, local_port]]) or connect(host, port, options).
function loop.connect(host, port, local_ip, local_port)
	if type(host) ~= 'string' then
		error("bad argument #1 to 'connect' (string expected, got " .. type(host) .. ')', 2)
	end
	local tls, ctx, timeout, err
	if type(local_ip) == 'table' then
		local options = local_ip
		check_options(options, CONNECT_OPTIONS, 'connect', 3)
		local_ip, local_port, tls, timeout = options.local_ip, options.local_port, options.tls, options.timeout
		check_timeout(timeout, 'connect', 3, 'timeout')
		if tls ~= nil then
			ctx, err = require'socketloop.tls'.context(tls, 'connect', 3, 'client', 2)
			if not ctx then return nil, err end
		end
	end
	local s
	s, err = new_tcp(nil, local_ip, local_port)
	if not s then return nil, err end
	if timeout and timeout < math.huge then s:settimeout(timeout) end
	local ok
	ok, err = s:connect(host, port)
	if ok and ctx then
		ok, err = s:starttls(ctx)
	end
	if not ok then
		s:close()
		return nil, err
	end
	return s
end

local SERVER_BACKLOG = 4096

-- Runs a connection's handler; if it raises, the error is reported and the connection
-- closed at once rather than when the socket is collected.
local function serve(handler, client)
	local co = S.running()
	local ok = xpcall(handler, function(err)
		S.report(err, traceback(tostring(err), 2), co)
	end, client)
	if not ok then
		client:close()
	end
end

local SERVER_OPTIONS = {tls = true, handshake_timeout = true}

-- An accepted client's TLS handshake, in its own thread, before `handler` runs.
local function serve_tls(handler, client, ctx, timeout, stats)
	if require'socketloop.tls'.accept(client, ctx, timeout, stats) then
		return serve(handler, client)
	end
end

function loop.newserver(ip, port, handler, options)
	if type(handler) ~= 'function' then
		error("bad argument #3 to 'newserver' (function expected, got " .. type(handler) .. ')', 2)
	end
	local ctx, handshake_timeout, err
	if options ~= nil then
		if type(options) ~= 'table' then
			error("bad argument #4 to 'newserver' (table expected, got " .. type(options) .. ')', 2)
		end
		check_options(options, SERVER_OPTIONS, 'newserver', 4)
		handshake_timeout = options.handshake_timeout
		check_timeout(handshake_timeout, 'newserver', 4, 'handshake_timeout')
		if options.tls ~= nil then
			ctx, err = require'socketloop.tls'.context(options.tls, 'newserver', 4, 'server', 2)
			if not ctx then return nil, err end
			if ctx:mode() ~= 'server' then
				error("bad argument #4 to 'newserver' (tls: a server context expected, got a client one)", 2)
			end
		end
	end
	handshake_timeout = handshake_timeout or require'socketloop.tls'.HANDSHAKE_TIMEOUT
	local server = A.wrap(core.tcp())
	server:setoption('reuseaddr', true)
	if S.worker_count then
		-- --workers: every worker listens on the port, and the kernel spreads connections.
		server:setoption('reuseport', true)
	end
	local ok, err = server:bind(ip or '*', port or 0)
	if ok then
		ok, err = server:listen(SERVER_BACKLOG)
	end
	if not ok then
		server:close()
		return nil, err
	end
	local on_client
	if ctx then
		-- server.tlsstats(): handshakes finished and failed (with the last failure's message).
		local stats
		stats, server.tlsstats = require'socketloop.tls'.newstats()
		on_client = function(client)
			S.newthread(serve_tls, handler, client, ctx, handshake_timeout, stats)
		end
	else
		on_client = function(client)
			S.serve(handler, client)
		end
	end
	A.listeners[server] = on_client
	S.newthread(A.accept_loop, server, on_client)
	return server
end

-- The same loop with threads that are symmetric coroutines (socketloop.coro): loop
-- threads may coro.transfer to each other and use coro.wrap generators that do I/O.
local function coro_loop()
	local coro = require'socketloop.coro'
	local cl = {}
	for k, v in pairs(loop) do cl[k] = v end
	cl.coro = nil
	function cl.newthread(handler, ...)
		if type(handler) ~= 'function' then
			error("bad argument #1 to 'newthread' (function expected, got " .. type(handler) .. ')', 2)
		end
		local thread = coro.create(handler, coro.main)
		S.in_transfer[thread] = nil -- started by the loop, not by a transfer
		S.start_thread(thread, ...)
		return thread
	end
	function cl.current()
		return coro.current
	end
	cl.transfer = coro.transfer
	return cl
end

-- LuaSocket's protect, written in Lua so that the functions it wraps (socket.http's
-- request...) can park loop threads, goes into LuaSocket's module now or when it loads.
require'socketloop.socket.compat'.hook()

-- Installs socketloop.socket (LuaSocket's API on asockets) as the `socket` module of the
-- whole process, and as the global `socket` where that is unset or LuaSocket's own:
-- every later require'socket' (socket.http, socket.smtp, redis-lua...) gets it.
function loop.luasocket()
	local dropin = require'socketloop.socket'
	local previous = package.loaded.socket
	package.loaded.socket = dropin
	local global = rawget(_G, 'socket')
	if global == nil or global == previous then
		rawset(_G, 'socket', dropin)
	end
	return dropin
end

return setmetatable(loop, {
	__index = function(t, k)
		if k == 'coro' then
			local cl = coro_loop()
			rawset(t, 'coro', cl)
			return cl
		end
	end,
})
