-- TLS contexts from LuaSec-style parameter tables (src/lua/tls.rs reads them; docs/tls.md
-- lists them). A parameter table is read into a context once: the same table passed
-- again (to every connect of a client, say) gets the same context, so certificate files
-- are parsed and CA stores loaded once, not per connection.

local core = require'socketloop.core'

local T = {}

-- Parameter table -> {client = ctx, server = ctx}, dropped with the table.
local by_params = setmetatable({}, {__mode = 'k'})

-- The context for `tls`: a context as it is, or a parameter table's (`default_mode`
-- where the table has no `mode`). Misuse raises "bad argument #argn to 'fname'" at
-- `level` as error counts it in the function that calls context (2: that function's
-- caller); a failure (an unreadable file, a bad PEM) returns nil, message.
function T.context(tls, fname, argn, default_mode, level)
	if core.istlsctx(tls) then
		return tls
	end
	if type(tls) ~= 'table' then
		error(("bad argument #%d to '%s' (TLS parameters or context expected, got %s)")
			:format(argn, fname, type(tls)), level + 1)
	end
	default_mode = default_mode or 'client'
	local made = by_params[tls]
	local ctx = made and made[default_mode]
	if ctx then
		return ctx
	end
	local err, misuse
	ctx, err, misuse = core.newtls(tls, default_mode)
	if not ctx then
		if misuse then
			error(("bad argument #%d to '%s' (%s)"):format(argn, fname, err), level + 1)
		end
		return nil, err
	end
	if not made then
		made = {}
		by_params[tls] = made
	end
	made[default_mode] = ctx
	return ctx
end

-- A server's handshake with an accepted client, within `timeout` seconds; the client's
-- timeouts are restored after it. Counts the outcome in `stats` ({handshakes=,
-- failed=, last_error=}); a client that fails is closed. Returns whether it succeeded.
function T.accept(client, ctx, timeout, stats)
	local block, total = client:gettimeout()
	client:settimeout(timeout)
	client:settimeout(nil, 't')
	local ok, err = client:starttls(ctx)
	if not ok then
		stats.failed = stats.failed + 1
		stats.last_error = err
		client:close()
		return false
	end
	stats.handshakes = stats.handshakes + 1
	client:settimeout(block)
	client:settimeout(total, 't')
	return true
end

-- The counters T.accept keeps, and the function that reports them (server.tlsstats).
function T.newstats()
	local stats = {handshakes = 0, failed = 0}
	return stats, function()
		return {handshakes = stats.handshakes, failed = stats.failed, last_error = stats.last_error}
	end
end

-- Handshakes bounded by this many seconds unless a server says otherwise.
T.HANDSHAKE_TIMEOUT = 10

-- Whether `v` is TLS parameters (a table) or a context.
function T.is_tls(v)
	return type(v) == 'table' or core.istlsctx(v)
end

return T
