-- socketloop.copas.http (copas.http): copas's HTTP client API on socketloop.http.
-- request(url [, body]) and request{...} as LuaSocket's socket.http; copas's table form
-- of `timeout` ({connect =, send =, receive =}, each 30 by default) is accepted; its
-- `receive` value bounds every wait (socketloop.http has one timeout for all of them).

local http = require'socketloop.http'

local M = setmetatable({}, {__index = http})

local DEFAULT_PART_TIMEOUT = 30

function M.request(reqt, body)
	if type(reqt) == 'table' and type(reqt.timeout) == 'table' then
		local t = reqt.timeout
		local copy = {}
		for k, v in pairs(reqt) do copy[k] = v end
		copy.timeout = t.receive or DEFAULT_PART_TIMEOUT
		reqt = copy
	end
	return http.request(reqt, body)
end

return M
