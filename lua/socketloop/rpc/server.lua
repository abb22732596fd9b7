-- What the servers of socketloop.rpc and socketloop.tango share: checks of option
-- values, the listening socket (refused by the policy before it listens), and the
-- server object (server:close, server:getsockname).

local loop = require'socketloop'
local policy = require'socketloop.rpc.policy'
local A = require'socketloop.asocket'

local M = {}

local function is_count(v) return type(v) == 'number' and v >= 1 and v % 1 == 0 end
local function is_seconds(v) return type(v) == 'number' and v >= 0 end
local function is_positive(v) return type(v) == 'number' and v > 0 end
local function of_type(name)
	return function(v) return type(v) == name end
end

-- Checks of option values: each is {check, what a value should be (for the error)}.
M.option = {
	count = {is_count, 'a positive integer'},
	seconds = {is_seconds, 'a non-negative number'},
	positive = {is_positive, 'a positive number'},
	string = {of_type('string'), 'a string'},
	table = {of_type('table'), 'a table'},
	boolean = {of_type('boolean'), 'a boolean'},
	['function'] = {of_type('function'), 'a function'},
	tls = {function(v) return require'socketloop.tls'.is_tls(v) end, 'TLS parameters or a context'},
}

-- Checks the options table `opts` against `allowed` (name -> {check, what}). Returns
-- nil when all are fine, else why not for the first bad one, naming options as `noun`:
-- "unknown option 'x'", "option 'x' must be a table".
function M.check_options(opts, allowed, noun)
	for k, v in pairs(opts) do
		local check = allowed[k]
		if not check then return ("unknown %s '%s'"):format(noun, tostring(k)) end
		if not check[1](v) then return ("%s '%s' must be %s"):format(noun, k, check[2]) end
	end
end

-- A listening socket on address:port, or nil, err. Before it listens, it is refused if
-- it would expose _G on a non-loopback address without allow_public_globals: then
-- raises `who: why` at `level` (1 is the caller of listen, as for error).
function M.listen(who, address, port, expose, allow_public_globals, backlog, level)
	local skt = loop.tcp()
	skt:setoption('reuseaddr', true)
	local ok, err = skt:bind(address, port)
	if ok then
		local allowed, why = policy.may_expose(expose, allow_public_globals,
			(skt:getsockname()), 'on address')
		if not allowed then
			skt:close()
			error(who .. ': ' .. why, level + 1)
		end
		ok, err = skt:listen(backlog)
	end
	if not ok then
		skt:close()
		return nil, err
	end
	return skt
end

local Server = {}
Server.__index = Server

-- Closes the listening socket and every connection it accepted.
function Server:close()
	self.listener:close()
	local open = {}
	for c in pairs(self.open) do open[#open + 1] = c end
	for _, c in ipairs(open) do c:close() end
	return 1
end

function Server:getsockname()
	return self.listener:getsockname()
end

-- The TLS context for option `tls` (nil when not given) of `fname` in `mode`; raises
-- misuse at `level` as error counts it from the caller of context; returns nil, err for
-- a context that cannot be made.
function M.context(tls, fname, mode, level)
	if tls == nil then return nil end
	return require'socketloop.tls'.context(tls, fname, 1, mode, level + 1)
end

-- The TLS handshake of a connection accepted by a server with `server.tls`, within
-- `server.handshake_timeout`; counted in server.tlscount (see M.start). Returns whether
-- it succeeded.
function M.handshake(server, skt)
	local tls = require'socketloop.tls'
	return tls.accept(skt, server.tls, server.handshake_timeout or tls.HANDSHAKE_TIMEOUT, server.tlscount)
end

-- Makes `server` (a table of what serve needs) a server on `listener` and accepts in a
-- loop thread, calling serve(server, skt) in a new loop thread for each connection
-- (after its TLS handshake when `server.tls` is a context: a client that fails it is
-- closed and counted in server:tlsstats()). serve keeps what it must close with the
-- server (anything with a close method) in the set server.open while it runs. Returns
-- the server.
function M.start(server, listener, serve)
	server.listener = listener
	server.open = {}
	setmetatable(server, Server)
	if server.tls then
		server.tlscount, server.tlsstats = require'socketloop.tls'.newstats()
	end
	loop.newthread(A.accept_loop, listener, function(skt)
		if server.tls then
			loop.newthread(function()
				if M.handshake(server, skt) then serve(server, skt) end
			end)
		else
			loop.newthread(serve, server, skt)
		end
	end)
	return server
end

return M
