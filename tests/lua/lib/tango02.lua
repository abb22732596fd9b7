-- What tango 0.2's socket backend does, for the tests that check socketloop.tango talks
-- to real tango peers (a module, not a test script): its serializer, reading with
-- loadstring, and its framing.
local M = {}

-- tango/utils/serialization.lua of tango 0.2
function M.serialize(tbl)
	local function valtostr(v)
		if type(v) == 'string' then
			v = v:gsub('\n', '\\n')
			if v:gsub("[^'\"]", ''):match('^"+$') then return "'" .. v .. "'" end
			return '"' .. v:gsub('"', '\\"') .. '"'
		end
		return type(v) == 'table' and M.serialize(v) or tostring(v)
	end
	local function keytostr(k)
		if type(k) == 'string' and k:match('^[_%a][_%a%d]*$') then return k end
		return '[' .. valtostr(k) .. ']'
	end
	local result, done = {}, {}
	for k, v in ipairs(tbl) do result[#result + 1] = valtostr(v); done[k] = true end
	for k, v in pairs(tbl) do
		if not done[k] then result[#result + 1] = keytostr(k) .. '=' .. valtostr(v) end
	end
	return '{' .. table.concat(result, ',') .. '}'
end
function M.unserialize(s) return loadstring('return ' .. s)() end

-- tango/utils/socket_message.lua of tango 0.2
function M.send(skt, message)
	assert(skt:send(tostring(#message) .. '\n'))
	assert(skt:send(message))
end
function M.receive(skt)
	local len = assert(skt:receive('*l'))
	return assert(skt:receive(assert(tonumber(len))))
end

return M
