-- An rpc session: one connection over which both ends call each other
-- (docs/protocol.md has the wire format, docs/rpc.md the API).
--
-- Calls in flight are matched to answers by their one-byte sequence number: a caller
-- takes a free number (or waits in line for one), sends, and suspends on a slot that the
-- session's reader fills when the answer with that number arrives. The reader runs each
-- call from the peer in a thread of its own, so a slow procedure holds up nothing else.
-- Messages go out through one writer at a time: whoever finds the writer idle sends what
-- is queued, including what others queue meanwhile, so messages never interleave.
--
-- The codec (encoding values, building and parsing messages) is Rust: src/codec/rpc.rs.

local loop = require'socketloop'
local Cond = require'socketloop.rpc.cond'
local policy = require'socketloop.rpc.policy'

local concat, pcall, select, type = table.concat, pcall, select, type
local find, sub, format = string.find, string.sub, string.format

local KIND_RESPONSE = 1
local OK, RAISED, NO_SUCH, NOT_CALLABLE, UNSERIALIZABLE = 0, 1, 2, 3, 4
local OP_EVAL, OP_EXEC = 1, 2
local NSEQ = 256
local HEADER_LEN = 6
-- Compiled newexec chunks kept per session; past this the cache starts over.
local MAX_CHUNKS = 64

local Session = {}
Session.__index = Session

local M = {}

-- The thread serving a call from a peer -> that peer's session (rpc.caller()).
local callers = setmetatable({}, {__mode = 'k'})

-- `skt`: a connected asocket; `cfg`: the options of rpc.lua (codec, expose, exec,
-- bytecode, message_timeout, onerror). The reader is not started: call run().
function M.new(skt, cfg)
	local self = setmetatable({
		skt = skt,
		cfg = cfg,
		codec = cfg.codec,
		peer = skt:getpeername(),
		slots = {},          -- sequence number -> Cond of our call in flight
		free = {},           -- free sequence numbers, a stack
		nfree = NSEQ,
		queue = {first = 1, last = 0},  -- Conds of callers waiting for a number
		serving = {},        -- sequence numbers of the peer's calls being run
		out = {},            -- messages waiting for the writer
		queued = 0,          -- bytes in `out` and in the send under way
		drained = nil,       -- an event the reader waits on while `queued` is over the bound
		writing = false,
		closed = false,
		chunks = {},         -- newexec code -> compiled function
		nchunks = 0,
		workers = {},        -- idle threads that run the peer's calls, a stack
	}, Session)
	for i = 1, NSEQ do self.free[i] = NSEQ - i end
	skt:settimeout(cfg.message_timeout)
	return self
end

function M.caller()
	local co = loop.current()
	return co and callers[co]
end

-- Closes the session: callers in flight get nil, why; those waiting for a number get
-- nil, 'closed'. `report`, or `why` unless it is 'closed', goes to the onerror option.
local function shutdown(self, why, report)
	if self.closed then return end
	self.closed = true
	self.skt:close()
	local slots, queue = self.slots, self.queue
	self.slots, self.queue = {}, {first = 1, last = 0}
	for _, slot in pairs(slots) do slot:signal(nil, why) end
	for i = queue.first, queue.last do queue[i]:signal(nil) end
	local idle = self.workers
	self.workers = {}
	for i = 1, #idle do loop.resume(idle[i]) end -- nil: the worker ends
	if self.drained then self.drained:set() end
	report = report or (why ~= 'closed' and why)
	if report and self.cfg.onerror then
		self.cfg.onerror(report, self)
	end
	if self.onclose then self.onclose(self) end
end

local function take_seq(self)
	local n = self.nfree
	if n > 0 then
		self.nfree = n - 1
		return self.free[n]
	end
	local c, q = Cond.new(), self.queue
	q.last = q.last + 1
	q[q.last] = c
	return (c:wait())
end

-- A number comes free: the first caller in line gets it, else it goes on the stack.
local function put_seq(self, seq)
	local q = self.queue
	if q.first <= q.last then
		local c = q[q.first]
		q[q.first] = nil
		q.first = q.first + 1
		return c:signal(seq)
	end
	local n = self.nfree + 1
	self.nfree = n
	self.free[n] = seq
end

-- Sends what is queued, and what others queue while the send waits.
local function flush(self)
	local out = self.out
	self.writing = true
	while #out > 0 and not self.closed do
		local data = #out == 1 and out[1] or concat(out)
		out = {}
		self.out = out
		local ok, err = self.skt:send(data)
		self.queued = self.queued - #data
		if not ok then
			shutdown(self, 'closed', err ~= 'closed' and 'rpc: sending failed (' .. err .. ')')
		end
		local drained = self.drained
		if drained and self.queued <= self.cfg.maxqueued then drained:set() end
	end
	self.writing = false
end

-- Queues `msg` and sends it, unless the reader is dispatching messages that arrived
-- together: then what they answer or call goes out in one send when the reader runs out
-- of buffered messages (see Session:run), which saves a system call per message under load.
local function write(self, msg)
	local out = self.out
	out[#out + 1] = msg
	self.queued = self.queued + #msg
	if self.writing or self.holding then return end
	flush(self)
end

-- Turns a decoded response into what the call returns or raises.
local function finish(self, status, ...)
	if status == OK then
		return ...
	elseif status == RAISED then
		local e = ...
		if type(e) == 'string' then e = 'remote: ' .. e end
		error(e, 0)
	elseif status == NO_SUCH then
		return nil, 'function not existing'
	elseif status == NOT_CALLABLE then
		return nil, 'not a function'
	elseif status == UNSERIALIZABLE then
		error('remote: results could not be serialized (' .. tostring((...)) .. ')', 0)
	end
	local why = status == nil and 'rpc: ' .. tostring((...))
		or 'rpc: malformed response (unknown status ' .. status .. ')'
	shutdown(self, why)
	return nil, why
end

-- Sends a call and waits for its answer. `fname` and `shift` name the caller's function
-- and map value positions to its argument numbers in misuse errors. Callers tail-call
-- this, so level 2 is their caller.
local function request(self, fname, shift, name, ...)
	if self.closed then return nil, 'closed' end
	local seq = take_seq(self)
	if not seq then return nil, 'closed' end
	local msg, why, index = self.codec:call(seq, name, ...)
	if not msg then
		put_seq(self, seq)
		if index then
			error(format("bad argument #%d to '%s' (%s)", index + shift, fname, why), 2)
		end
		error(format("bad arguments to '%s' (%s)", fname, why), 2)
	end
	local slot = Cond.new()
	self.slots[seq] = slot
	write(self, msg)
	local payload, err = slot:wait()
	if not payload then return nil, err or 'closed' end
	return finish(self, self.codec:decode_response(payload))
end

function Session:call(name, ...)
	if type(name) ~= 'string' then
		error("bad argument #1 to 'call' (string expected, got " .. type(name) .. ')', 2)
	end
	return request(self, 'call', 1, name, ...)
end

function Session:eval(name)
	if type(name) ~= 'string' then
		error("bad argument #1 to 'eval' (string expected, got " .. type(name) .. ')', 2)
	end
	return request(self, 'eval', 0, OP_EVAL, name)
end

local function source_of(script)
	local t = type(script)
	if t == 'string' then return script end
	if t == 'table' then
		for i = 1, #script do
			local part = type(script[i])
			if part ~= 'string' and part ~= 'number' then
				return nil, 'part ' .. i .. ' is a ' .. part .. ', not a string'
			end
		end
		return concat(script)
	end
	if t == 'function' then
		if debug.getupvalue(script, 1) ~= nil then
			return nil, 'the function has upvalues'
		end
		local ok, code = pcall(string.dump, script)
		if not ok then return nil, 'cannot dump the function: ' .. tostring(code) end
		return code
	end
	return nil, 'string, table of strings or function expected, got ' .. t
end

function Session:newexec(script)
	local code, why = source_of(script)
	if not code then
		error("bad argument #1 to 'newexec' (" .. why .. ')', 2)
	end
	return function(...)
		return request(self, 'newexec function', -1, OP_EXEC, code, ...)
	end
end

function Session:close()
	-- Answers and calls held back while the reader dispatched (see write) still go out.
	if not self.closed and #self.out > 0 and not self.writing then flush(self) end
	shutdown(self, 'closed')
	return 1
end

-- Serving the peer's calls ---------------------------------------------------------

local function respond(self, seq, status, ...)
	self.serving[seq] = nil
	if self.closed then return end
	local codec = self.codec
	local msg, why = codec:response(seq, status, ...)
	if not msg and status == RAISED then
		msg = codec:response(seq, RAISED, policy.describe((...)))
	end
	if not msg then
		msg = codec:response(seq, UNSERIALIZABLE, why)
	end
	if not msg then
		return shutdown(self, 'closed', 'rpc: cannot send a response (' .. why .. ')')
	end
	write(self, msg)
end

local function respond_pcall(self, seq, ok, ...)
	if ok then return respond(self, seq, OK, ...) end
	return respond(self, seq, RAISED, (...))
end

local function index(t, k)
	return t[k]
end

-- The value at dotted `path` in `root`, and whether it exists. Only tables are indexed
-- (with t[k], so __index applies); a lookup that raises counts as not existing.
local function lookup(root, path)
	local v, i = root, 1
	while true do
		if type(v) ~= 'table' then return nil, false end
		local j = find(path, '.', i, true)
		local key = sub(path, i, (j or 0) - 1)
		if key == '' then return nil, false end
		local ok, x = pcall(index, v, key)
		if not ok or x == nil then return nil, false end
		if not j then return x, true end
		v, i = x, j + 1
	end
end

local function callable(f)
	if type(f) == 'function' then return true end
	local mt = getmetatable(f)
	return type(mt) == 'table' and mt.__call ~= nil
end

-- Runs remote code if the policy lets this peer in; answers like pcall.
local function exec(self, code, ...)
	if type(code) ~= 'string' then
		return false, 'newexec: malformed request (code is not a string)'
	end
	local cfg, peer = self.cfg, self.peer
	if not policy.allows(cfg.exec, peer) then
		return false, 'newexec refused: remote code is not accepted from ' .. tostring(peer)
	end
	local bytecode = code:byte(1) == 27
	if bytecode and not policy.allows(cfg.bytecode, peer) then
		return false, 'newexec refused: bytecode is not accepted from ' .. tostring(peer)
	end
	local f = self.chunks[code]
	if not f then
		local err
		f, err = load(code, '=(newexec)', bytecode and 'b' or 't')
		if not f then return false, err end
		if self.nchunks >= MAX_CHUNKS then
			self.chunks, self.nchunks = {}, 0
		end
		self.chunks[code] = f
		self.nchunks = self.nchunks + 1
	end
	return pcall(f, ...)
end

-- `name` and the arguments come from codec:decode_call; a nil name means the payload was
-- malformed and the next value says why.
local function handle(self, seq, name, ...)
	if name == nil then
		return shutdown(self, 'rpc: ' .. tostring((...)))
	end
	if type(name) == 'string' then
		local f, found = lookup(self.cfg.expose, name)
		if not found then return respond(self, seq, NO_SUCH) end
		if not callable(f) then return respond(self, seq, NOT_CALLABLE) end
		return respond_pcall(self, seq, pcall(f, ...))
	elseif name == OP_EVAL then
		local path = ...
		if type(path) ~= 'string' then return respond(self, seq, NO_SUCH) end
		return respond(self, seq, OK, (lookup(self.cfg.expose, path)))
	elseif name == OP_EXEC then
		return respond_pcall(self, seq, exec(self, ...))
	end
	return respond(self, seq, NO_SUCH)
end

-- Idle workers kept per session: enough for the calls that wait on something at once,
-- without holding threads a burst left behind forever.
local MAX_IDLE_WORKERS = 16

-- A thread that runs the peer's calls, one after another: after each it waits among the
-- session's idle workers for the next, so a call costs no new coroutine (its creation
-- and collection were a tenth of a small call's cost). Ends when the session closes.
local function work(self, seq, payload)
	callers[loop.current()] = self
	while seq do
		handle(self, seq, self.codec:decode_call(payload))
		local idle = self.workers
		if self.closed or #idle >= MAX_IDLE_WORKERS then return end
		idle[#idle + 1] = loop.current()
		seq, payload = loop.suspend()
	end
end

-- Runs the peer's call `seq` in an idle worker, or a new one.
local function serve(self, seq, payload)
	local idle = self.workers
	local n = #idle
	if n == 0 then
		return loop.newthread(work, self, seq, payload)
	end
	local co = idle[n]
	idle[n] = nil
	loop.resume(co, seq, payload)
end

-- What to report when receiving failed with `err` (not 'timeout'), `mid` saying whether
-- part of a message had arrived; nothing for a plain disconnect between messages.
local function lost(err, mid)
	if err ~= 'closed' then return 'rpc: receiving failed (' .. err .. ')' end
	return mid and 'rpc: connection closed in the middle of a message'
end

-- The reader's receive of `n` bytes: sends what dispatching queued first if the receive
-- may have to wait for the peer (which may be waiting for those very messages).
local function receive(self, n)
	local skt = self.skt
	if #self.out > 0 and not self.writing and skt:buffered() < n then
		flush(self)
	end
	return skt:receive(n)
end

-- Back-pressure: while more than `maxqueued` bytes wait to go to the peer, the reader
-- reads no more of its calls; a peer that does not take them within message_timeout is
-- closed. Returns false once the session is closed.
local function await_drain(self)
	local cfg = self.cfg
	if self.queued <= cfg.maxqueued then return true end
	if #self.out > 0 and not self.writing then flush(self) end
	if self.queued > cfg.maxqueued and not self.closed then
		local drained = loop.event()
		self.drained = drained
		local ok = drained:wait(cfg.message_timeout)
		self.drained = nil
		if not ok and not self.closed then
			shutdown(self, format('rpc: %d bytes queued for the peer were not taken within %g seconds',
				self.queued, cfg.message_timeout))
		end
	end
	return not self.closed
end

-- Reads messages until the session closes. Runs in the session's reader thread.
function Session:run()
	local skt, codec = self.skt, self.codec
	local stalled = format('rpc: message incomplete after %g seconds without progress',
		self.cfg.message_timeout)
	while not self.closed and await_drain(self) do
		local h, err, part = receive(self, HEADER_LEN)
		if not h then
			local mid = part ~= nil and part ~= ''
			if err ~= 'timeout' then
				return shutdown(self, 'closed', lost(err, mid))
			elseif mid then
				return shutdown(self, stalled)
			end
		else
			local kind, seq, size = codec:header(h)
			if not kind then return shutdown(self, 'rpc: ' .. seq) end
			local payload = ''
			if size > 0 then
				payload, err = receive(self, size)
				if not payload then
					if err == 'timeout' then return shutdown(self, stalled) end
					return shutdown(self, 'closed', lost(err, true))
				end
			end
			if kind == KIND_RESPONSE then
				local slot = self.slots[seq]
				if not slot then
					return shutdown(self, format('rpc: response to no call in flight (sequence number %d)', seq))
				end
				self.slots[seq] = nil
				put_seq(self, seq)
				self.holding = true
				slot:signal(payload)
				self.holding = false
			else
				if self.serving[seq] then
					return shutdown(self, format('rpc: two calls in flight with sequence number %d', seq))
				end
				self.serving[seq] = true
				self.holding = true
				serve(self, seq, payload)
				self.holding = false
			end
		end
	end
end

return M
