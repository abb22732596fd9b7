-- Who may do what: the security policy of socketloop.rpc and socketloop.tango, in one
-- place (docs/security.md says it in words).
--
-- - Exposing _G to a peer that is not on the loopback interface (a server bound to a
--   non-loopback address, a client connected to a non-loopback peer) needs the option
--   allow_public_globals = true.
-- - rpc's remote code (newexec) and bytecode are accepted per the options `exec` and
--   `bytecode`: true (from anyone), false (from no one) or 'loopback' (the default: from
--   loopback peers only).

local P = {}

-- True for 127.0.0.0/8, ::1 and IPv4-mapped 127.x addresses.
function P.is_loopback(ip)
	if type(ip) ~= 'string' then return false end
	ip = ip:lower()
	if ip == '::1' or ip == '0:0:0:0:0:0:0:1' then return true end
	local v4 = ip:match('^::ffff:(%d+%.%d+%.%d+%.%d+)$') or ip
	return v4:match('^127%.%d+%.%d+%.%d+$') ~= nil
end

-- Whether a setting of `exec` or `bytecode` lets the peer at `ip` in.
function P.allows(setting, ip)
	if setting == 'loopback' then return P.is_loopback(ip) end
	return setting == true
end

-- Checks that serving `expose` to/at `ip` is allowed; `where` says how, for the error
-- ('on address' for a server's bound address, 'to peer' for a client's peer).
-- Returns true, or nil and why not.
function P.may_expose(expose, allow_public_globals, ip, where)
	if expose ~= _G or allow_public_globals or P.is_loopback(ip) then
		return true
	end
	return nil, ('exposing _G %s %s (not loopback) needs the option allow_public_globals = true')
		:format(where, tostring(ip))
end

-- A valid value for `exec` or `bytecode`.
function P.is_setting(v)
	return v == true or v == false or v == 'loopback'
end

-- How a value from or for a peer is named in an error message sent to it: strings and
-- numbers as themselves (a string cut at 64 bytes), anything else by its type, never by
-- tostring, which would hand out a heap address ("table: 0x...").
function P.describe(v)
	local t = type(v)
	if t == 'string' then
		return #v > 64 and v:sub(1, 64) .. '...' or v
	elseif t == 'number' or t == 'boolean' or t == 'nil' then
		return tostring(v)
	end
	return 'a ' .. t
end

return P
