-- socketloop.copas: copas 4.x's API on socketloop's loop, so that a copas program runs
-- unchanged with package.loaded.copas = require'socketloop.copas' (the runner's --copas).
-- docs/copas.md lists what differs from copas itself.
--
-- Copas threads are loop threads. Sockets: whatever a program hands to copas (a
-- LuaSocket object, one of our asockets, a copas-wrapped socket) is served through an
-- asocket: a LuaSocket server given to addserver through one of our sockets on a
-- duplicate of its descriptor (so accepted clients are ours, on the fast path), any
-- other LuaSocket object through loop.wrap (its own methods, at timeout 0). Handlers get
-- our client asockets where copas passes LuaSocket's client objects; both have the same
-- methods, and copas.wrap / copas.handler wrap either.

local loop = require'socketloop'
-- The scheduler: internal, handed to the loop's modules by src/lua/embedded.rs.
local S = assert(select(2, ...), 'loaded by socketloop itself').scheduler
local A = require'socketloop.asocket'

local running = coroutine.running
local traceback = debug.traceback

local has_socket, socket = pcall(require, 'socket')
if not has_socket then socket = nil end

local copas = {}

copas._COPYRIGHT = 'socketloop.copas: the API of Copas (Kepler Project, Thijs Schreijer) on socketloop'
copas._DESCRIPTION = 'Coroutine Oriented Portable Asynchronous Services, on socketloop'
copas._VERSION = 'Copas 4.11.0 (socketloop.copas, ' .. loop._VERSION .. ')'

-- Sockets accepted on a server are closed when their handler ends, as in copas.
copas.autoclose = true
-- True while copas.loop runs.
copas.running = false

-- Wall-clock seconds since the epoch: LuaSocket's when it is there, else the loop's
-- monotonic clock moved to the epoch once.
local gettime
if socket and socket.gettime then
	gettime = socket.gettime
else
	local offset = os.time() - loop.now()
	gettime = function() return loop.now() + offset end
end
copas.gettime = gettime

-- Copas makes LuaSocket's protect/newtry/try coroutine-safe (pure Lua: LuaJIT cannot
-- yield across the C ones), so that socket.http and friends run in copas threads. So do
-- we, the same way copas programs expect.
if socket then
	local try_error = {}
	local function protected(ok, ...)
		if ok then return ... end
		local err = ...
		if type(err) == 'table' and getmetatable(err) == try_error then
			return nil, err[1]
		end
		error(err, 0)
	end
	function socket.protect(f)
		return function(...)
			return protected(pcall(f, ...))
		end
	end
	function socket.newtry(finalizer)
		return function(...)
			if not (...) then
				if finalizer then pcall(finalizer, select(2, ...)) end
				error(setmetatable({(select(2, ...))}, try_error), 0)
			end
			return ...
		end
	end
	socket.try = socket.newtry()
end

----------------------------------------------------------------------------- names

local names = setmetatable({}, {
	__mode = 'k',
	__index = function(t, key)
		local name = tostring(key)
		if key ~= nil then rawset(t, key, name) end
		return name
	end,
})

------------------------------------------------------------------------- sockets

local wrapped_mt = {}          -- copas.wrap's objects: {socket = what was wrapped, ...}
local async_of = setmetatable({}, {__mode = 'k'})  -- LuaSocket object -> its asocket
local timeouts_connect = setmetatable({}, {__mode = 'k'})  -- asocket -> seconds | nil
local timeouts_send = setmetatable({}, {__mode = 'k'})
local timeouts_receive = setmetatable({}, {__mode = 'k'})
local applied = setmetatable({}, {__mode = 'k'})   -- asocket -> the timeout it has now

-- The asocket that serves `skt` (a copas-wrapped socket, an asocket, a LuaSocket object).
local function async(skt)
	if getmetatable(skt) == wrapped_mt then skt = skt.socket end
	if A.is_asocket(skt) then return skt end
	local a = async_of[skt]
	if not a then
		if type(skt) ~= 'userdata' and type(skt) ~= 'table' then
			error('socket expected, got ' .. type(skt), 3)
		end
		a = loop.wrap(skt)
		async_of[skt] = a
	end
	return a
end

-- Gives `a` the timeout `seconds` (nil: none) unless it has it already.
local function timeout(a, seconds)
	seconds = seconds or false
	if applied[a] ~= seconds then
		applied[a] = seconds
		a:settimeout(seconds or nil)
	end
end

-- Threads removed by copas.removethread while waiting on a socket stop when the wait ends.
local canceled = setmetatable({}, {__mode = 'k'})
local function check_canceled(...)
	if next(canceled) ~= nil then
		local co = running()
		if canceled[co] then
			canceled[co] = nil
			S.suspend()   -- never resumed: collected with its thread
		end
	end
	return ...
end

function copas.receive(skt, pattern, prefix)
	local a = async(skt)
	timeout(a, timeouts_receive[a])
	return check_canceled(a:receive(pattern or '*l', prefix))
end

-- Returns as soon as anything beyond `prefix` arrived, with nil, 'timeout' and the data
-- if the pattern is not complete yet.
function copas.receivepartial(skt, pattern, prefix)
	local a = async(skt)
	pattern = pattern or '*l'
	local got = #(prefix or '')
	timeout(a, 0)
	local data, err, part = a:receive(pattern, prefix)
	if data or err ~= 'timeout' or #part > got then
		return check_canceled(data, err, part)
	end
	-- Nothing new yet: wait for one more byte, then take what else is there.
	timeout(a, timeouts_receive[a])
	data, err, part = a:receive(got + 1, part)
	if not data then
		return check_canceled(nil, err, part)
	end
	timeout(a, 0)
	return check_canceled(a:receive(pattern, data))
end
copas.receivePartial = copas.receivepartial

function copas.receivefrom(skt, size)
	local a = async(skt)
	timeout(a, timeouts_receive[a])
	return check_canceled(a:receivefrom(size))
end

function copas.send(skt, data, i, j)
	local a = async(skt)
	timeout(a, timeouts_send[a])
	return check_canceled(a:send(data, i, j))
end

function copas.sendto(skt, data, ip, port)
	return async(skt):sendto(data, ip, port)
end

function copas.connect(skt, host, port)
	local a = async(skt)
	timeout(a, timeouts_connect[a])
	return check_canceled(a:connect(host, port))
end

-- Buffered sends are not: nothing to flush (deprecated in copas too).
function copas.flush()
end

function copas.close(skt, ...)
	local a = async(skt)
	local ok, err = a:close(...)
	if a ~= skt and getmetatable(skt) ~= wrapped_mt and type(skt.close) == 'function' then
		pcall(skt.close, skt)
	end
	return ok, err
end

-- nil or negative: no limit (as LuaSocket's settimeout).
function copas.settimeout(skt, seconds)
	seconds = seconds or -1
	if type(seconds) ~= 'number' then
		return nil, "timeout must be 'nil' or a number"
	end
	return copas.settimeouts(skt, seconds, seconds, seconds)
end

-- Each nil leaves that timeout as it is; a negative one removes it.
function copas.settimeouts(skt, connect, send, receive)
	local a = async(skt)
	for _, t in ipairs{{connect, timeouts_connect, 'connect'}, {send, timeouts_send, 'send'},
			{receive, timeouts_receive, 'read'}} do
		local seconds, store, what = t[1], t[2], t[3]
		if seconds ~= nil and type(seconds) ~= 'number' then
			return nil, what .. " timeout must be 'nil' or a number"
		end
		if seconds then
			store[a] = seconds >= 0 and seconds or nil
		end
	end
	return true
end

-- Copas reports timeouts as 'timeout' whatever the socket said; so do we, always.
function copas.useSocketTimeoutErrors()
end
copas.usesockettimeouterrors = copas.useSocketTimeoutErrors

-------------------------------------------------------------------------------- TLS

local function normalize_sslt(sslt)
	if sslt == nil then return {} end
	if type(sslt) ~= 'table' then
		error('sslparams must be a table', 3)
	end
	if sslt.wrap == nil and sslt.sni == nil and (sslt.mode or sslt.protocol) then
		-- A bare LuaSec parameter table, as copas accepts too.
		return {wrap = sslt}
	end
	return sslt
end

-- Performs the TLS handshake on connected `skt` through LuaSec; returns the TLS socket
-- (an asocket over LuaSec's object) or raises, as copas does, so that a failed handshake
-- never goes on in clear text.
function copas.dohandshake(skt, sslparams)
	local ssl = require'ssl'
	local a = async(skt)
	if tostring(a:getsocket()):sub(1, 3) == 'SSL' then return a end
	local params = normalize_sslt(sslparams)
	params = params.wrap or params
	local inner = a:getsocket()
	local tls, err = ssl.wrap(inner, params)
	if not tls then
		error('TLS/SSL handshake failed: ' .. tostring(err), 2)
	end
	if params.sni and tls.sni then tls:sni(params.sni.names, params.sni.strict) end
	tls:settimeout(0)
	local t = A.wrap(tls)
	timeout(t, timeouts_connect[a])
	local ok, herr = t:call_async(tls.dohandshake, tls)
	if not ok then
		if herr == 'timeout' then return nil, 'timeout' end
		error('TLS/SSL handshake failed: ' .. tostring(herr), 2)
	end
	timeouts_send[t], timeouts_receive[t] = timeouts_send[a], timeouts_receive[a]
	return t
end

--------------------------------------------------------------------------- wrapping

local wrapped = {}
wrapped_mt.__index = wrapped
function wrapped_mt.__tostring(self)
	return tostring(self.socket) .. ' (copas wrapped)'
end

function wrapped:send(data, i, j) return copas.send(self.socket, data, i, j) end
function wrapped:receive(pattern, prefix)
	if timeouts_receive[async(self.socket)] == 0 then
		return copas.receivepartial(self.socket, pattern, prefix)
	end
	return copas.receive(self.socket, pattern, prefix)
end
function wrapped:receivepartial(pattern, prefix) return copas.receivepartial(self.socket, pattern, prefix) end
function wrapped:receivefrom(size) return copas.receivefrom(self.socket, size) end
function wrapped:flush() return copas.flush(self.socket) end
function wrapped:settimeout(seconds) return copas.settimeout(self.socket, seconds) end
function wrapped:settimeouts(c, s, r) return copas.settimeouts(self.socket, c, s, r) end
function wrapped:close(...) return copas.close(self.socket, ...) end
function wrapped:connect(host, port)
	local ok, err = copas.connect(self.socket, host, port)
	if ok and self.ssl_params.wrap then
		ok, err = self:dohandshake()
	end
	return ok, err
end
function wrapped:dohandshake(sslparams)
	local params = sslparams and normalize_sslt(sslparams) or self.ssl_params
	local tls, err = copas.dohandshake(self.socket, params)
	if not tls then return nil, err end
	self.socket = tls
	return self
end
function wrapped:sni(names_, strict)
	local p = self.ssl_params
	p.sni = {names = names_, strict = strict}
	return true
end
function wrapped:getsocket() return async(self.socket):getsocket() end
for _, name in ipairs{'bind', 'listen', 'accept', 'shutdown', 'setoption', 'getoption',
		'getsockname', 'getpeername', 'getstats', 'setstats', 'getfd', 'setfd', 'dirty',
		'getalpn', 'getsniname', 'getpeercertificate', 'getpeerverification'} do
	wrapped[name] = function(self, ...)
		local a = async(self.socket)
		return a[name](a, ...)
	end
end

-- A copas socket over `skt`: LuaSocket's methods, each parking the calling thread
-- instead of blocking. A socket wrapped already is returned as it is.
function copas.wrap(skt, sslparams)
	if getmetatable(skt) == wrapped_mt then return skt end
	async(skt)
	return setmetatable({socket = skt, ssl_params = normalize_sslt(sslparams)}, wrapped_mt)
end

-- The underlying socket of a copas-wrapped one (the object that was wrapped).
function copas.getsocket(skt)
	if getmetatable(skt) == wrapped_mt then return skt.socket end
	return skt
end

function copas.handler(handler, sslparams)
	return function(skt, ...)
		skt = copas.wrap(skt, sslparams)
		local p = skt.ssl_params
		if p.wrap then
			local ok, err = skt:dohandshake()
			if not ok then error('TLS/SSL handshake failed: ' .. tostring(err), 0) end
		end
		return handler(skt, ...)
	end
end

------------------------------------------------------------------------ errors

local errhandlers = setmetatable({}, {__mode = 'k'})  -- thread -> its handler
local thread_socket = setmetatable({}, {__mode = 'k'})  -- handler thread -> its client

function copas.gettraceback(msg, co, skt)
	local co_name = co == nil and 'nil' or copas.getthreadname(co)
	local skt_name = skt == nil and 'nil' or copas.getsocketname(skt)
	local text = msg == nil and '' or tostring(msg)
	if text == '' then
		text = ('(coroutine: %s, socket: %s)'):format(co_name, skt_name)
	else
		text = ('%s (coroutine: %s, socket: %s)'):format(text, co_name, skt_name)
	end
	if type(co) == 'thread' then
		return traceback(co, text)
	end
	return traceback(text, 2)
end

-- Copas's default: the traceback on stdout (print).
local function default_errorhandler(msg, co, skt)
	print(copas.gettraceback(msg, co, skt))
end
local errorhandler = default_errorhandler

function copas.seterrorhandler(handler, default)
	assert(handler == nil or type(handler) == 'function', 'Expected the handler to be a function, or nil')
	if default then
		assert(handler ~= nil, 'Expected the handler to be a function when setting the default')
		errorhandler = handler
	else
		local co = running()
		if co then errhandlers[co] = handler end
	end
end
copas.setErrorHandler = copas.seterrorhandler

function copas.geterrorhandler(co)
	co = co or running()
	return co and errhandlers[co] or errorhandler
end

-- Closes the client of handler thread `co` (when it ends, however it ends).
local function autoclose(co)
	local skt = thread_socket[co]
	if skt then
		thread_socket[co] = nil
		skt:close()
	end
end

-- How the loop reports an error raised in a copas thread: to the thread's copas handler
-- (err, co, skt), or copas's default.
local function thread_failed(err, _, co)
	local ok, herr = pcall(errhandlers[co] or errorhandler, err, co, thread_socket[co])
	if not ok then
		print('Failed executing error handler: ' .. tostring(herr))
	end
	autoclose(co)
end

-- Makes a copas thread (a loop thread whose errors go to copas's handlers) running
-- body(...) and runs it until it first waits.
local function spawn(body, ...)
	local co = S.create(body, thread_failed)
	S.start_thread(co, body, ...)
	return co
end

---------------------------------------------------------------------- threads

local threads = setmetatable({}, {__mode = 'k'})   -- added by addthread: removable
local lethargic = setmetatable({}, {__mode = 'k'}) -- in pauseforever
local pausing = setmetatable({}, {__mode = 'k'})   -- in a timed pause

local function current_thread(what)
	local co = loop.current()
	if not co then
		error("'" .. what .. "' called outside a copas thread", 3)
	end
	return co
end

-- Pauses for `seconds` (nil, 0 or negative: until the next dispatch); returns the time
-- paused. copas.wakeup ends it early.
function copas.pause(seconds)
	local co = current_thread('pause')
	local started = gettime()
	pausing[co] = true
	S.sleep(type(seconds) == 'number' and seconds > 0 and seconds or 0)
	pausing[co] = nil
	check_canceled()
	return gettime() - started
end

-- Copas's deprecated sleep: a negative time pauses until copas.wakeup.
function copas.sleep(seconds)
	seconds = seconds or 0
	if seconds < 0 then
		copas.pauseforever()
	else
		copas.pause(seconds)
	end
end

function copas.pauseforever()
	local co = current_thread('pauseforever')
	local started = gettime()
	lethargic[co] = true
	S.suspend()
	lethargic[co] = nil
	check_canceled()
	return gettime() - started
end

-- Ends a pause or pauseforever of `co` (a loop.cancel of that wait, which resumes it on
-- the next dispatch); does nothing to a thread that is not paused.
local function wake(co, why)
	if lethargic[co] or pausing[co] then
		lethargic[co], pausing[co] = nil, nil
		pcall(S.cancel, co, why)
	end
end

function copas.wakeup(co)
	wake(co, 'woken')
end

function copas.addnamedthread(name, handler, ...)
	if type(name) == 'function' and type(handler) == 'string' then
		name, handler = handler, name
	end
	if type(handler) ~= 'function' then
		error("bad argument #2 to 'addnamedthread' (function expected, got " .. type(handler) .. ')', 2)
	end
	-- As in copas, the thread starts on the next dispatch, not at once.
	local co = spawn(function(...)
		copas.pause()
		return handler(...)
	end, ...)
	if name then names[co] = name end
	threads[co] = true
	return co
end

function copas.addthread(handler, ...)
	if type(handler) ~= 'function' then
		error("bad argument #1 to 'addthread' (function expected, got " .. type(handler) .. ')', 2)
	end
	return copas.addnamedthread(nil, handler, ...)
end

-- Drops a thread added by addthread: a paused one at once, one waiting on a socket when
-- its wait ends.
function copas.removethread(co)
	if not threads[co] then return end
	canceled[co] = true
	wake(co, 'removed')
end

function copas.setthreadname(name, co)
	assert(type(name) == 'string', 'expected arg #1 to be a string')
	co = co or running()
	assert(type(co) == 'thread', 'expected arg #2 to be a coroutine or nil')
	names[co] = name
end

function copas.getthreadname(co)
	co = co or running()
	assert(type(co) == 'thread', 'expected arg #1 to be a coroutine or nil')
	return names[co]
end

function copas.setsocketname(name, skt)
	assert(type(name) == 'string', 'expected arg #1 to be a string')
	assert(skt ~= nil, 'expected arg #2 to be a socket')
	names[copas.getsocket(skt)] = name
end

function copas.getsocketname(skt)
	assert(skt ~= nil, 'expected arg #1 to be a socket')
	return names[copas.getsocket(skt)]
end

---------------------------------------------------------------------- servers

local servers = setmetatable({}, {__mode = 'k'})  -- what addserver got -> our listener

local ffi = require'ffi'
pcall(ffi.cdef, 'int dup(int);')

-- Our listening asocket for `server`: one of ours as it is; a LuaSocket server through a
-- duplicate of its descriptor (the program keeps its object, which still works).
local function listener(server)
	if A.is_asocket(server) then return server end
	local fd = type(server.getfd) == 'function' and server:getfd()
	if type(fd) ~= 'number' or fd < 0 then
		error("bad argument #1 to 'addserver' (a listening socket expected)", 3)
	end
	local copy = ffi.C.dup(fd)
	if copy < 0 then
		error("addserver: cannot duplicate the server's descriptor", 3)
	end
	return loop.wrap(copy)
end

-- A handler thread's body.
local function serve(handler, client)
	handler(client)
	autoclose(running())
end

function copas.addserver(server, handler, seconds, name)
	if type(handler) ~= 'function' then
		error("bad argument #2 to 'addserver' (function expected, got " .. type(handler) .. ')', 2)
	end
	local real = copas.getsocket(server)
	local l = listener(real)
	servers[real] = l
	async_of[real] = async_of[real] or (l ~= real and l or nil)
	if name then names[real] = name end
	if seconds then copas.settimeout(l, seconds) end
	local count = 0
	loop.newthread(A.accept_loop, l, function(client)
		count = count + 1
		names[client] = names[real] .. ':client_' .. count
		timeouts_connect[client] = timeouts_connect[l]
		timeouts_send[client] = timeouts_send[l]
		timeouts_receive[client] = timeouts_receive[l]
		local co = S.create(serve, thread_failed)
		names[co] = names[real] .. ':handler_' .. count
		if copas.autoclose then thread_socket[co] = client end
		S.start_thread(co, serve, handler, client)
	end)
	return true
end

-- Stops serving `server`; closes it unless keep_open. Returns what close returned, or
-- true when kept open.
function copas.removeserver(server, keep_open)
	local real = copas.getsocket(server)
	local l = servers[real]
	if l then
		servers[real] = nil
		if l ~= real then l:close() end
	end
	if keep_open then return true end
	if l == real then
		return real:close()
	end
	return server:close()
end

------------------------------------------------------------------ the loop

-- Set by copas.exit: what copas.waitforexit waits for. A thread waiting for it is not
-- work that keeps the loop going (as in copas).
local exit_event, exiting = loop.event(), false

local function resetexit()
	exit_event, exiting = loop.event(), false
end

-- Announces the exit: copas.exiting() becomes true and waitforexit returns.
function copas.exit()
	if exiting then return end
	exiting = true
	exit_event:set()
end

function copas.exiting()
	return exiting
end

function copas.waitforexit()
	exit_event:wait()
end

-- True when nothing is left to do: no thread waits on a socket or a timer (threads in
-- pauseforever do not count, as in copas).
function copas.finished()
	return not S.waiting()
end

function copas.step(seconds)
	if seconds ~= nil and type(seconds) ~= 'number' then
		error("bad argument #1 to 'step' (number expected, got " .. type(seconds) .. ')', 2)
	end
	return loop.step(seconds or 0)
end

-- Runs until nothing is left to do; then announces the exit (copas.exit), and runs
-- until nothing is left again. `initializer` runs first as a copas thread.
function copas.loop(initializer, seconds)
	if type(initializer) == 'function' then
		copas.addnamedthread('copas_initializer', initializer)
	end
	resetexit()
	copas.running = true
	while true do
		loop.start()
		if S.signal then break end
		if not S.waiting() then
			if exiting then break end
			copas.exit()
		end
	end
	copas.running = false
end

function copas.status()
	local stats = loop.stats()
	local inactive = 0
	for _ in pairs(lethargic) do inactive = inactive + 1 end
	return {running = copas.running, active = 0, inactive = inactive, timer = stats.timers,
		read = stats.pending, write = 0, timeout = 0}
end

------------------------------------------------------------------- helpers

local submodules = {http = true, lock = true, semaphore = true, queue = true, timer = true}

return setmetatable(copas, {
	__index = function(t, key)
		if submodules[key] then
			local m = require('socketloop.copas.' .. key)
			rawset(t, key, m)
			return m
		end
	end,
	__call = function(t, ...)
		return t.loop(...)
	end,
})
