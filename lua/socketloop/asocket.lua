-- The async socket (asocket): LuaSocket's TCP API on top of a non-blocking socket.
--
-- The wrapped socket is either one of ours (src/net/tcp.rs: its methods say 'wantread' /
-- 'wantwrite' instead of blocking) or a foreign one, such as a LuaSocket TCP object set
-- to timeout 0 (its methods say 'timeout'). Either way, when an operation would block,
-- the calling thread parks on the socket's wait key until the reactor reports readiness;
-- outside a loop thread the call blocks in poll(2) instead, like LuaSocket's own.

local core = require'socketloop.core'
local ffi = require'ffi'
-- The private half of socketloop.core, given to this module's first load only.
local private = select(2, ...)
if type(private) ~= 'table' then
	error('socketloop.asocket is loaded by socketloop itself, once', 2)
end
local S = private.scheduler

local wait = S.wait
-- What `wait` answers in a thread that cannot yield (a C function on its stack).
local UNYIELDABLE = 'unyieldable'
local now, waitfd, watchfd = core.now, core.waitfd, core.watch
local WANTREAD, WANTWRITE, MISUSE = core.WANTREAD, core.WANTWRITE, core.MISUSE
local READ, WRITE = 0, 1

local asocket = {}
asocket.__index = asocket

-- The metatable of asockets wrapping a foreign socket (defined below; declared here so
-- that setsocket sees the local, not a global).
local foreign

local A = {}

-- An asocket keeps its own state in its array part, which LuaJIT allocates with the table
-- itself when the constructor gives all four (104 bytes, where the same four as named
-- fields take a separate hash part: 160): the wrapped socket, its wait-key token (-1:
-- none), whether it is one of ours (src/net/tcp.rs, not a foreign object), and its
-- timeouts (false, the block timeout alone, or {block =, total =}). All four are always
-- present, none nil: reading a nil slot would search the class too. Other state, rarer
-- (`class` when not the default, a foreign socket's watch, a connect race), is named.
local SOCKET, TOKEN, OURS, TIMEOUTS = 1, 2, 3, 4
A.SOCKET, A.TOKEN, A.OURS, A.TIMEOUTS = SOCKET, TOKEN, OURS, TIMEOUTS

local is_ours = core.isours

-- The fast path of receive and send on our sockets (src/lua/tcp_ffi.rs): FFI calls, which
-- the JIT compiles into the calling trace, for the calls that can take it; they answer
-- SLOW, having changed nothing, when the method has to. The entry points, the reactor
-- address and the result area are handed out once and live only in these upvalues.
-- Bytes an answer points at are lent until `result.lent` is cleared: making a string of
-- them may run finalizers, which may receive again (they take the methods meanwhile).
local fast_receive, fast_send, reactor, result
local DONE, WOULD_BLOCK, FAILED, SLOW, LINE
do
	local receive_fn, send_fn, reactor_ptr, result_ptr, codes = private.fastpath()
	DONE, WOULD_BLOCK, FAILED, SLOW, LINE = codes.DONE, codes.WOULD_BLOCK, codes.FAILED, codes.SLOW, codes.LINE
	local result_t = ffi.typeof('struct { const char *data; size_t len; const char *err; size_t err_len; int32_t lent; }')
	fast_receive = ffi.cast('int (*)(void *, int64_t, void *, int64_t)', receive_fn)
	fast_send = ffi.cast('int (*)(void *, int64_t, void *, const char *, size_t)', send_fn)
	reactor = ffi.cast('void *', reactor_ptr)
	result = ffi.cast(ffi.typeof('$ *', result_t), result_ptr)
end
local tostr = ffi.string
-- Counts the fast path takes: whole numbers below 2^53.
local MAX_COUNT = 2^53

-- One receive on our socket `s`, as its method answers.
local function receive_ours(self, s, pattern, prefix)
	local code = pattern == nil and LINE or pattern == '*l' and LINE
	if not code and type(pattern) == 'number' and pattern >= 0 and pattern < MAX_COUNT and pattern % 1 == 0 then
		code = pattern
	end
	if code and prefix == nil then
		local r = fast_receive(reactor, self[TOKEN], s, code)
		if r == DONE then
			-- Not a tail call: a trace cannot return to the caller's frame from one to
			-- a fast function that allocates.
			local data = tostr(result.data, result.len)
			result.lent = 0
			return data
		elseif r == WOULD_BLOCK then
			return nil, WANTREAD
		elseif r == FAILED then
			local err, part = tostr(result.err, result.err_len), tostr(result.data, result.len)
			result.lent = 0
			return nil, err, part
		end
	end
	return s:receive(pattern, prefix)
end

-- One send on our socket `s`, as its method answers.
local function send_ours(self, s, data, i, j)
	if i == nil and j == nil and type(data) == 'string' then
		local r = fast_send(reactor, self[TOKEN], s, data, #data)
		if r == DONE then
			return #data
		elseif r == WOULD_BLOCK then
			return nil, WANTWRITE, tonumber(result.len)
		elseif r == FAILED then
			local sent, err = tonumber(result.len), tostr(result.err, result.err_len)
			result.lent = 0
			return nil, err, sent
		end
	end
	return s:send(data, i, j)
end

-- LuaSocket's `class` field, 'tcp{master}', 'tcp{client}' or 'tcp{server}' as tostring
-- says, refreshed when the state changes. A closed socket keeps its class, as LuaSocket's.
-- Our asockets keep it only when it is not 'tcp{client}', the class's default: an
-- accepted connection's asocket then has no hash part at all, only its array part.
asocket.class = 'tcp{client}'
local function set_class(self, s)
	local class = tostring(s):match('^[^:]*')
	if class ~= 'tcp{client}' then
		self.class = class
	elseif rawget(self, 'class') ~= nil then
		-- Only when present: storing nil at a missing key inserts it, and the insertion
		-- may grow the hash part.
		self.class = nil
	end
end
local function refresh_class(self)
	if self[OURS] and self[SOCKET]:getfd() >= 0 then
		set_class(self, self[SOCKET])
	end
end

-- The errors socket calls returned, by word ('closed', 'timeout', ...): loop.stats().
local errors = {}
A.errors = errors
local function count_error(err)
	if type(err) == 'string' then errors[err] = (errors[err] or 0) + 1 end
end

-- The error level of the first function on the stack (from the one that called `raise`'s
-- caller) that is not one of socketloop's own modules: the script's call site, however
-- many of our functions, tail calls or not, stand between it and the Rust method.
local getinfo, sfind = debug.getinfo, string.find
local function user_level()
	local level = 3
	while true do
		local info = getinfo(level, 'S')
		if not info then return 2 end
		if not sfind(info.source, '^@lua/socketloop') then return level - 1 end
		level = level + 1
	end
end

-- Raises a misuse reported by a Rust method as a Lua error at the script's call site.
-- Returns exactly what the method returned (getfd gives one value, as LuaSocket's).
local function check(...)
	local a, b, c = ...
	if a == nil and b == MISUSE then
		error(c, user_level())
	end
	return ...
end

local function would_block(err)
	return err == WANTREAD or err == WANTWRITE or err == 'timeout'
end

-- Registers a foreign socket's descriptor with the reactor, and again whenever it is
-- another one: LuaSocket creates the descriptor on the first bind or connect (a
-- socket.tcp() has none before), and setfd replaces it. Returns true, or nil and why the
-- socket cannot be waited on.
local function watch_foreign(self)
	local fd = self[SOCKET]:getfd()
	if self.watch and fd == self.watchfd then
		return true
	end
	if self.watch then
		self.watch:close()
		self.watch = nil
	end
	self.watchfd = nil
	if not fd or fd < 0 then
		self[TOKEN] = -1
		return nil, 'closed'
	end
	local watch, err = watchfd(fd)
	if not watch then
		self[TOKEN] = -1
		return nil, err
	end
	self.watch, self.watchfd, self[TOKEN] = watch, fd, watch:token()
	return true
end

-- Whether data or the end of the stream waits to be read on our socket, asked of the
-- kernel (a poll that does not wait), which also refreshes the reactor's readable flag.
local function readable_now(self)
	local fd = self[SOCKET]:getfd()
	return fd >= 0 and waitfd(fd, false, 0, self[TOKEN]) == true
end

local CANNOT_YIELD = 'cannot wait for the socket in this loop thread: a C function on its stack '
	.. "(such as LuaSocket's C socket.protect, captured by a module loaded before socketloop) "
	.. "cannot be yielded across; require'socketloop' before such modules (see docs/api.md)"

-- Waits until the socket is ready for `dir`. `started` is when the call began waiting
-- (for 't' timeouts); returns true or 'timeout'/'closed', and `started`.
local function ready(self, dir, started)
	local limit
	local timeouts = self[TIMEOUTS]
	if timeouts then
		if type(timeouts) == 'number' then
			limit = timeouts
		else -- a total timeout (settimeout keeps a table only for one)
			limit = timeouts.block
			started = started or now()
			local left = started + timeouts.total - now()
			if not limit or left < limit then limit = left end
		end
		if limit <= 0 then
			-- No time to wait, but LuaSocket still tries the system call: the reactor's
			-- readable flag may be stale (data came since the last poll), so ask the kernel.
			if dir == READ and self[OURS] and readable_now(self) then
				return true, started
			end
			return 'timeout', started
		end
	end
	if not self[OURS] and S.inloop() then
		local ok, err = watch_foreign(self)
		if not ok then return err, started end
	end
	-- Parks this thread if it is a loop thread; nil if it is not.
	local how = wait(self[TOKEN] * 2 + dir, limit)
	if how == UNYIELDABLE then
		error(CANNOT_YIELD, 3)
	elseif how == 'busy' then
		error('another thread is already waiting to ' .. (dir == READ and 'read from' or 'write to')
			.. ' this socket', 3)
	end
	if how ~= nil then
		return how, started
	end
	local fd = self[SOCKET]:getfd()
	if not fd or fd < 0 then return 'closed', started end
	return waitfd(fd, dir == WRITE, limit, self[OURS] and self[TOKEN] or nil) or 'timeout', started
end

-- What receive hands back when it gives up: the prefix and whatever was read so far
-- (for a line, without its CRs, as LuaSocket's partial results).
local function partial(self, prefix, pattern)
	if self[OURS] then
		return self[SOCKET]:drain(prefix, pattern)
	end
	return prefix or ''
end

-- One receive attempt, as the socket's method answers.
local function receive_once(self, pattern, prefix)
	local s = self[SOCKET]
	if self[OURS] then
		return receive_ours(self, s, pattern, prefix)
	end
	return s:receive(pattern, prefix)
end

-- What a receive attempt answered, and whether to wait and try again. Retrying is a tail
-- call rather than a loop: the JIT then compiles an I/O loop in the caller (an echo
-- server's `while true do ... end`) through the receive, which it could not through an
-- inner loop that ends in a return.
local function receive_retry(self, pattern, prefix, started, data, err, part)
	if data then return data end
	if not would_block(err) then
		count_error(err)
		return check(nil, err, part)
	end
	if part then prefix = part end
	local how
	how, started = ready(self, READ, started)
	if how ~= true then
		count_error(how)
		return nil, how, partial(self, prefix, pattern)
	end
	return receive_retry(self, pattern, prefix, started, receive_once(self, pattern, prefix))
end

-- Parks the thread until our socket `self` is readable, then receives again; the general
-- path (receive_retry) for what this does not handle: a timeout other than a block one,
-- a thread that cannot yield, a caller that is not a loop thread, 'busy'.
--
-- Why a function of its own, tail-called: the thread parks in `wait` with no frame
-- between the handler and this one (receive's is replaced), and so few slots in use
-- that LuaJIT's initial coroutine stack holds them and the 20 slots every C call keeps
-- free above its arguments. A deeper park doubles the stack, which is then never shrunk
-- (docs/performance.md: about 450 bytes per idle connection).
local function receive_wait(self, pattern)
	local limit = self[TIMEOUTS]
	if limit and (type(limit) ~= 'number' or limit <= 0) then
		return receive_retry(self, pattern, nil, nil, nil, WANTREAD)
	end
	local how = wait(self[TOKEN] * 2, limit or nil)
	if how == true then
		return self:receive(pattern)
	elseif how == nil or how == 'busy' or how == UNYIELDABLE then
		return receive_retry(self, pattern, nil, nil, nil, WANTREAD)
	end
	count_error(how)
	return nil, how, partial(self, nil, pattern)
end

-- The fast path inline (see receive_wait for why no call deepens the stack here).
function asocket:receive(pattern, prefix)
	if prefix == nil and self[OURS] then
		local code = LINE
		if pattern ~= nil and pattern ~= '*l' then
			code = type(pattern) == 'number' and pattern >= 0 and pattern < MAX_COUNT
				and pattern % 1 == 0 and pattern
		end
		if code then
			local r = fast_receive(reactor, self[TOKEN], self[SOCKET], code)
			if r == DONE then
				-- Not a tail call: a trace cannot return to the caller's frame from one
				-- to a fast function that allocates.
				local data = tostr(result.data, result.len)
				result.lent = 0
				return data
			elseif r == WOULD_BLOCK then
				return receive_wait(self, pattern)
			elseif r == FAILED then
				local err, part = tostr(result.err, result.err_len), tostr(result.data, result.len)
				result.lent = 0
				return receive_retry(self, pattern, nil, nil, nil, err, part)
			end
		end
	end
	local data, err, part = receive_once(self, pattern, prefix)
	if data then return data end
	return receive_retry(self, pattern, prefix, nil, data, err, part)
end

-- One send attempt, as the socket's method answers.
local function send_once(self, data, i, j)
	local s = self[SOCKET]
	if self[OURS] then
		return send_ours(self, s, data, i, j)
	end
	return s:send(data, i, j)
end

-- As receive_retry, for send.
local function send_retry(self, data, i, j, started, last, err, sent)
	if last then return last end
	if not would_block(err) then
		count_error(err)
		return check(nil, err, sent)
	end
	local how
	how, started = ready(self, WRITE, started)
	if how ~= true then
		count_error(how)
		return nil, how, sent
	end
	i = sent + 1
	return send_retry(self, data, i, j, started, send_once(self, data, i, j))
end

function asocket:send(data, i, j)
	local last, err, sent = send_once(self, data, i, j)
	if last then return last end
	return send_retry(self, data, i, j, nil, last, err, sent)
end

function asocket:accept()
	local s = self[SOCKET]
	local client, err, why = s:accept()
	local started, how
	while not client and would_block(err) do
		how, started = ready(self, READ, started)
		if how ~= true then
			count_error(how)
			return nil, how
		end
		client, err, why = s:accept()
	end
	if not client then
		count_error(err)
		return check(nil, err, why)
	end
	return A.wrap(client)
end

-- The addresses of `host` ({ip...}), or nil, err. A name is looked up on the resolver
-- pool (src/rt/resolver.rs) while the calling loop thread parks, for at most `limit`
-- seconds (nil: as long as the system resolver takes); outside a loop thread the lookup
-- blocks, as every socket call there does. IP literals need no lookup.
function A.resolve(host, family, limit)
	local lookup, err = core.lookup(host, family)
	if type(lookup) ~= 'userdata' then return lookup, err end
	if not S.inloop() then
		lookup:cancel()
		return core.lookup_blocking(host, family)
	end
	local how = wait(lookup:key(), limit)
	if how == UNYIELDABLE then
		lookup:cancel()
		error(CANNOT_YIELD, 3)
	end
	if how == true then
		local addrs
		addrs, err = lookup:take()
		if addrs or err then return addrs, err end
	end
	lookup:cancel()
	return nil, how == true and 'closed' or how
end

-- Seconds the asocket's timeouts leave for a wait that began at `started`, and `started`
-- (nil, nil: no limit).
local function time_left(self, started)
	local timeouts = self[TIMEOUTS]
	if not timeouts then return nil, started end
	if type(timeouts) == 'number' then return timeouts, started end
	started = started or now()
	local left = started + timeouts.total - now()
	if timeouts.block and timeouts.block < left then left = timeouts.block end
	return math.max(left, 0), started
end

-- A connect's failure: 'timeout' (the caller's limit) as it is; any other cause of a
-- connect to a name names the host.
local function connect_failure(host, err)
	count_error(err)
	if err == 'timeout' or err == 'closed' then return nil, err end
	return nil, host .. ': ' .. err
end

-- The gap between Happy Eyeballs attempts (RFC 8305's recommended value).
local CONNECT_STAGGER = 0.25

-- Connects our fresh socket to one of `addrs`, racing them (src/net/connect_race.rs).
-- With timeout 0 (code that calls connect until it succeeds, as with LuaSocket) the race
-- stays on the asocket between calls, each of which steps it once and answers 'timeout'
-- until it is decided.
local function connect_race(self, host, addrs, port, started)
	local block = self[TIMEOUTS]
	if type(block) == 'table' then block = block.block end
	local polling = block == 0
	local race = self.race
	if not race then
		race = core.race(addrs, port, not polling and block or nil, CONNECT_STAGGER)
	end
	self.race = nil
	while true do
		local fd, err, delay = race:step()
		if fd then
			if self[TOKEN] < 0 then
				race:close()
				return nil, 'closed'
			end
			local ok, why = self[SOCKET]:setfd(fd)
			if ok then race:handed() end
			race:close()
			if not ok then return nil, why end
			self[TOKEN] = self[SOCKET]:token()
			refresh_class(self)
			return 1
		end
		if err ~= WANTWRITE then
			race:close()
			return connect_failure(host, err)
		end
		if polling then
			self.race = race
			return nil, 'timeout'
		end
		local total = type(self[TIMEOUTS]) == 'table' and self[TIMEOUTS].total
		if total then
			local left = started + total - now()
			if left <= 0 then
				race:close()
				return nil, 'timeout'
			end
			if not delay or left < delay then delay = left end
		end
		local how = wait(race:key(), delay)
		if how == nil then
			race:block(delay)
		elseif how == UNYIELDABLE then
			race:close()
			error(CANNOT_YIELD, 4)
		end
	end
end

-- LuaSocket's connect to a name: looked up without blocking the loop; several addresses
-- are raced on our fresh sockets, tried in order otherwise (a bound socket, a foreign one).
-- With timeout 0 the lookup is still waited for (LuaSocket's blocks), the connect not.
local function connect_name(self, host, port)
	if self.race then
		return connect_race(self, host, nil, port, nil)
	end
	local limit, started = time_left(self, nil)
	local family = self.family
	local fd = self[SOCKET]:getfd()
	if fd and fd >= 0 then
		family = select(3, self[SOCKET]:getsockname()) or family
	end
	local addrs, err = A.resolve(host, family, limit ~= 0 and limit or nil)
	if not addrs then return nil, err end
	if self[OURS] and #addrs > 1 and not (fd and fd >= 0) then
		return connect_race(self, host, addrs, port, started)
	end
	for _, ip in ipairs(addrs) do
		local ok
		ok, err = self:connect(ip, port)
		if ok then return ok end
		if err == 'timeout' or err == 'closed' then break end
	end
	return connect_failure(host, err)
end

-- A port as connect and bind accept it (a number or numeric string, 0 to 65535).
local function valid_port(port)
	port = tonumber(port)
	return port and port >= 0 and port <= 65535 and port % 1 == 0
end

function asocket:connect(host, port)
	if type(host) == 'string' and valid_port(port) and not core.isliteral(host) then
		local ok, err = connect_name(self, host, port)
		-- The name starttls verifies when it is given none (connect_name connected to
		-- one of its addresses).
		self.host = host
		return ok, err
	end
	local s = self[SOCKET]
	self.host = host
	local ok, err = check(s:connect(host, port))
	if not self[OURS] and not self.connecting then
		-- LuaSocket may have made a new descriptor, even one with the number of a closed
		-- one: register it afresh.
		self.watchfd = nil
	end
	local started, how
	while not ok do
		if err == 'already connected' and self.connecting then
			break -- a foreign socket reports a finished connect this way
		end
		if not (would_block(err) or err:find('in progress', 1, true)) then
			self.connecting = nil
			return nil, err
		end
		self.connecting = true
		how, started = ready(self, WRITE, started)
		if how ~= true then
			self.connecting = nil
			return nil, how
		end
		ok, err = check(s:connect(host, port))
	end
	self.connecting = nil
	refresh_class(self)
	return 1
end

local tls -- socketloop.tls, loaded by the first starttls

-- Runs a TLS handshake on the connected socket (client or server by the context's mode),
-- parking like receive and send, under the socket's timeouts. From then on the socket's
-- methods work on the decrypted stream.
function asocket:starttls(params, server_name)
	if server_name ~= nil and type(server_name) ~= 'string' then
		error("bad argument #2 to 'starttls' (string expected, got " .. type(server_name) .. ')', 2)
	end
	if not self[OURS] then
		error("calling 'starttls' on bad self (TLS runs on socketloop sockets; wrap a LuaSec "
			.. "socket with loop.wrap and call_async instead)", 2)
	end
	tls = tls or require'socketloop.tls'
	local ctx, err = tls.context(params, 'starttls', 1, nil, 2)
	if not ctx then return nil, err end
	local s = self[SOCKET]
	local ok
	ok, err = check(s:starttls(ctx:id(), server_name, self.host))
	if not ok then return nil, err end
	local started, how
	while true do
		ok, err = s:handshake()
		if ok then return true end
		if err ~= WANTREAD and err ~= WANTWRITE then return nil, err end
		how, started = ready(self, err == WANTREAD and READ or WRITE, started)
		if how ~= true then return nil, how end
	end
end

-- The TLS session's parameters (docs/tls.md), or nil before starttls.
function asocket:tlsinfo()
	if not self[OURS] then return nil end
	return self[SOCKET]:tlsinfo()
end

function asocket:close()
	local s = self[SOCKET]
	if self.race then
		self.race:close()
		self.race = nil
	end
	if self.watch then
		self.watch:close()
		self.watch = nil
	end
	local token = self[TOKEN]
	self[TOKEN] = -1
	if token >= 0 then
		S.wakeclosed(token)
	end
	return s:close()
end

function asocket:settimeout(value, mode)
	if value ~= nil and type(value) ~= 'number' then
		error("bad argument #1 to 'settimeout' (number expected, got " .. type(value) .. ')', 2)
	elseif value ~= value then
		error("bad argument #1 to 'settimeout' (number expected, got NaN)", 2)
	end
	if value and value < 0 then value = nil end
	local block, total = self:gettimeout()
	-- As LuaSocket, only the first letter counts: 'b' or 'block', 't' or 'total', 'r'.
	local letter = mode == nil and 'b' or type(mode) == 'string' and mode:sub(1, 1)
		or type(mode) == 'number' and tostring(mode):sub(1, 1)
	if letter == 'b' then
		block = value
	elseif letter == 't' or letter == 'r' then
		total = value
	else
		error("bad argument #2 to 'settimeout' (invalid timeout mode '" .. tostring(mode) .. "')", 2)
	end
	-- A block timeout alone (the usual case) is the number itself: no table per socket.
	if total then
		self[TIMEOUTS] = {block = block, total = total}
	else
		self[TIMEOUTS] = block or false
	end
	return 1
end

function asocket:gettimeout()
	local timeouts = self[TIMEOUTS]
	if not timeouts then return nil, nil end
	if type(timeouts) == 'number' then return timeouts, nil end
	return timeouts.block, timeouts.total
end

local unpack, pack = unpack or table.unpack, S.pack

function asocket:call_async(func, ...)
	if type(func) ~= 'function' then
		error("bad argument #1 to 'call_async' (function expected, got " .. type(func) .. ')', 2)
	end
	local started, how
	while true do
		local r = pack(func(...))
		local ret, err = r[1], r[2]
		local dir = not ret and (err == 'wantread' and READ or err == 'wantwrite' and WRITE)
		if not dir then
			return unpack(r, 1, r.n) -- all of func's results, as many as it returned
		end
		how, started = ready(self, dir, started)
		if how ~= true then
			return nil, how
		end
	end
end

function asocket:getsocket()
	return self[SOCKET]
end

-- Points the asocket at `s` (ours or foreign) and registers it with the reactor.
function asocket:setsocket(s)
	if self.watch then
		self.watch:close()
		self.watch = nil
	end
	self[SOCKET] = s
	self[OURS] = is_ours(s)
	setmetatable(self, self[OURS] and asocket or foreign)
	if self[OURS] then
		self[TOKEN] = s:token()
		set_class(self, s)
		return
	end
	self.class = nil
	if type(s.settimeout) == 'function' then
		s:settimeout(0)
	end
	self[TOKEN], self.watchfd = -1, nil
	local fd = s:getfd()
	-- No descriptor yet (LuaSocket's socket.tcp() makes it on bind or connect): it is
	-- registered when a thread first waits on it.
	if fd and fd >= 0 then
		local ok, err = watch_foreign(self)
		if not ok then
			error("bad argument #1 to 'setsocket' (cannot register descriptor: " .. tostring(err) .. ')', 2)
		end
	end
end

-- LuaSocket's setfd; -1 detaches the descriptor. Our socket may get a new wait key.
function asocket:setfd(fd)
	local s = self[SOCKET]
	local r, err, why = check(s:setfd(fd))
	if self[OURS] then
		self[TOKEN] = s:token()
		refresh_class(self)
	end
	return r, err, why
end

function asocket:dirty()
	return self[SOCKET]:dirty()
end

-- How many received bytes wait in the buffer (0 for a foreign socket, whose buffer is
-- not ours to see): a receive of at most that many will not wait.
function asocket:buffered()
	if not self[OURS] then return 0 end
	return self[SOCKET]:buffered()
end

function asocket:__tostring()
	return tostring(self[SOCKET])
end

-- The wrapped socket's other methods are called through forwarders, made once per name
-- and shared by all asockets.
local forwarders = {}
local function forwarder(name)
	local f = forwarders[name]
	if not f then
		f = function(self, ...)
			local s = self[SOCKET]
			return check(s[name](s, ...))
		end
		forwarders[name] = f
	end
	return f
end

for _, name in ipairs{'shutdown', 'setoption', 'getoption', 'getsockname',
		'getpeername', 'getstats', 'setstats', 'getfd', 'getfamily'} do
	asocket[name] = forwarder(name)
end

function asocket:listen(backlog)
	local s = self[SOCKET]
	local ok, err = check(s:listen(backlog))
	if ok then refresh_class(self) end
	return ok, err
end

-- A name is looked up without blocking the loop, and each address tried in turn.
function asocket:bind(host, port)
	local s = self[SOCKET]
	if type(host) ~= 'string' or not valid_port(port) or core.isliteral(host) then
		return check(s:bind(host, port))
	end
	local addrs, err = A.resolve(host, self.family)
	if not addrs then return nil, err end
	for _, ip in ipairs(addrs) do
		local ok
		ok, err = check(s:bind(ip, port))
		if ok then return ok end
	end
	return nil, err
end

-- Listening asockets (weak keys) -> the function newserver hands their connections to,
-- or true: what a shutdown closes.
A.listeners = setmetatable({}, {__mode = 'k'})
local listen = asocket.listen

function asocket:listen(backlog)
	local ok, err = listen(self, backlog)
	if ok and not A.listeners[self] then A.listeners[self] = true end
	return ok, err
end

-- LuaSocket's other names for connect and bind.
asocket.setpeername = asocket.connect
asocket.setsockname = asocket.bind

-- A foreign socket may have methods of its own (LuaSocket's setpeername, getfamily...):
-- those are looked up on it. Fields an asocket does not have stay nil.
foreign = {__tostring = asocket.__tostring}
function foreign.__index(self, name)
	local m = asocket[name]
	if m ~= nil and name ~= 'class' then return m end
	local s = rawget(self, SOCKET)
	if type(name) == 'string' and s ~= nil and type(s[name]) == 'function' then
		return forwarder(name)
	end
end

function A.is_asocket(x)
	local mt = getmetatable(x)
	return mt == asocket or mt == foreign or (mt ~= nil and mt == A.udp_class)
end

-- Wraps one of our sockets, a foreign socket object with `getfd` (a UDP one, ours or
-- LuaSocket's, becomes a lua/socketloop/udp.lua object), or a raw descriptor.
function A.wrap(s)
	if A.is_asocket(s) then
		return s
	end
	if type(s) ~= 'number' then
		local U = require'socketloop.udp'
		if U.is_udp(s) then return U.wrap(s) end
	end
	if type(s) == 'number' then
		local sock, err = core.fromfd(s)
		if not sock then
			error("bad argument #1 to 'wrap' (" .. err .. ')', 2)
		end
		s = sock
	elseif type(s) ~= 'userdata' and type(s) ~= 'table' or type(s.getfd) ~= 'function' then
		error("bad argument #1 to 'wrap' (socket or descriptor expected, got " .. type(s) .. ')', 2)
	end
	-- All four slots in the constructor: the array part is then made with the table.
	local self = setmetatable({false, -1, false, false}, asocket)
	self:setsocket(s)
	return self
end

local ACCEPT_BACKOFF_MAX = 1

-- Accepts on `listener` until it is closed, calling on_client(client) for each
-- connection. When accept fails for want of resources (descriptors, memory), backs off
-- instead of spinning, so the loop keeps serving the connections it has.
function A.accept_loop(listener, on_client)
	local backoff = 0
	while true do
		local client, err = listener:accept()
		if client then
			backoff = 0
			on_client(client)
		elseif err == 'closed' then
			return
		elseif err ~= 'timeout' then
			backoff = math.min(math.max(backoff * 2, 0.01), ACCEPT_BACKOFF_MAX)
			S.sleep(backoff)
		end
	end
end

A.class = asocket
-- For lua/socketloop/udp.lua, which wraps UDP sockets the same way, and for
-- loop.threads(), which finds the socket a thread waits on in the frame of one of these.
A.ready = ready
A.receive_wait = receive_wait
A.check = check
return A
