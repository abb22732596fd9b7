-- The keep-alive pool of socketloop.http: idle connections per key ('scheme://host:port',
-- and '#' and the TLS context's number for https), shared by all the requests and threads
-- of the process (of the Lua state). A connection is socketloop.http's record of it
-- (a table with its socket in `sock`), kept whole so that a reused one costs no new
-- record; the pool adds `since`, when it became idle.
--
-- Nothing runs while a connection is idle: no thread watches it, so an idle pool never
-- keeps the loop from ending. A connection is checked when it is taken back instead:
-- too old, or readable (the server closed it, or sent bytes nobody asked for), and it
-- is closed and the next one tried. Most recently used first, so the oldest age out.

local core = require'socketloop.core'
local A = require'socketloop.asocket'

local now, waitfd = core.now, core.waitfd
local SOCKET, OURS = A.SOCKET, A.OURS

local P = {}

local idle = {}  -- key -> array of connections, oldest first
local count = 0  -- idle connections in all
-- Lists that emptied stay for their key's next connection (one busy server empties
-- and fills its list all the time), up to this many; past it an emptied list goes.
local MAX_EMPTY = 64
local empty = 0  -- empty lists in `idle`

-- Seconds of idleness within which the reactor's knowledge of a socket is trusted.
local TRUST_REACTOR = 1

-- True when an idle connection still looks usable: nothing buffered, and nothing to read
-- (no data, no end of stream). With `retryable` (the request can go again on a fresh
-- connection should this one turn out closed), for one of our sockets idle less than
-- TRUST_REACTOR seconds, the reactor knows that without a system call when no readiness
-- came since a read drained it; otherwise poll(2) with no timeout tells.
local function usable(sock, tls, idle_for, retryable)
	local raw = retryable and not tls and sock[OURS] and sock[SOCKET]
	if raw and idle_for < TRUST_REACTOR and not raw:maybereadable() then return true end
	if sock:dirty() then return false end
	if tls then
		-- The kernel may hold TLS records that carry no data (TLS 1.3 session tickets):
		-- one receive takes them in; any data, or the end of the stream, is stale.
		local data, err = sock[SOCKET]:receive(1)
		return data == nil and err == core.WANTREAD
	end
	local fd = sock:getfd()
	if not fd or fd < 0 then return false end
	return not waitfd(fd, false, 0)
end

-- Called when the list of `key` has just become empty.
local function emptied(key)
	if empty < MAX_EMPTY then
		empty = empty + 1
	else
		idle[key] = nil
	end
end

-- An idle connection to `key` that is still usable, or nil. Closes the stale ones it
-- meets. Costs a poll(2) per connection looked at, unless the reactor already knows
-- (see usable).
function P.take(key, idletimeout, retryable)
	local list = idle[key]
	if not list then return nil end
	local n = #list
	if n == 0 then return nil end
	local t = now()
	local tls = key:find('#', 1, true) ~= nil
	while n > 0 do
		local conn = list[n]
		list[n] = nil
		n = n - 1
		count = count - 1
		local sock, idle_for = conn.sock, t - conn.since
		if idle_for < idletimeout and usable(sock, tls, idle_for, retryable) then
			if n == 0 then emptied(key) end
			return conn
		end
		sock:close()
	end
	emptied(key)
	return nil
end

-- Gives a connection back for reuse, or closes it when `key` already has `maxidle`
-- idle ones. Connections idle past `idletimeout` are closed on the way.
function P.put(key, conn, maxidle, idletimeout)
	local list = idle[key]
	if not list then
		list = {}
		idle[key] = list
	elseif #list == 0 then
		empty = empty - 1 -- it holds this connection next, or goes
	end
	local t = now()
	while list[1] and t - list[1].since >= idletimeout do
		table.remove(list, 1).sock:close()
		count = count - 1
	end
	if #list >= maxidle then
		conn.sock:close()
		if #list == 0 then idle[key] = nil end
		return
	end
	conn.since = t
	list[#list + 1] = conn
	count = count + 1
end

-- Closes every idle connection.
function P.closeall()
	for key, list in pairs(idle) do
		for _, conn in ipairs(list) do conn.sock:close() end
		idle[key] = nil
	end
	count, empty = 0, 0
end

-- How many connections are idle, in all and for `key` (when given: its connections
-- with any TLS context too).
function P.stats(key)
	if not key then return count, 0 end
	local n = 0
	for k, list in pairs(idle) do
		if k == key or k:sub(1, #key + 1) == key .. '#' then n = n + #list end
	end
	return count, n
end

return P
