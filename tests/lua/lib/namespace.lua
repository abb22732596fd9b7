-- Runs a test script again inside a mount namespace (unshare -m) where /etc/hosts,
-- /etc/resolv.conf and /etc/nsswitch.conf are files the script wrote, bind-mounted over
-- the real ones: name lookups then really go through getaddrinfo, against names and a
-- name server the test controls. Needs root (the tests run as root) and util-linux.
--
--   local NS = require'namespace'
--   if NS.outside() then NS.rerun{hosts = ..., resolv = ...} end  -- exits with the inner status
--   ... the test, now inside; NS.nameserver is the resolver's address ...

local H = dofile('tests/lua/lib/http_support.lua')

local NS = {}

local INSIDE = 'SOCKETLOOP_TEST_NAMESPACE'

-- A loopback address of our own for the silent name server (port 53, which resolv.conf
-- cannot change), picked from this process's PID so that concurrent runs differ.
local function own_loopback()
	local f = io.open('/proc/self/stat')
	local pid = f and tonumber(f:read('*a'):match('^(%d+)')) or os.time()
	if f then f:close() end
	return ('127.%d.%d.%d'):format(100 + pid % 100, math.floor(pid / 100) % 250 + 1, math.floor(pid / 25000) % 250 + 2)
end

function NS.outside()
	return os.getenv(INSIDE) == nil
end

NS.nameserver = os.getenv(INSIDE)

-- Writes the files, runs this script inside the namespace and exits with its status.
-- `files.hosts`: the hosts file; `files.resolv`: extra resolv.conf lines (a nameserver
-- line for NS.nameserver is added).
function NS.rerun(files)
	local dir = H.tmpdir()
	local ns = own_loopback()
	H.write(dir .. '/hosts', files.hosts)
	H.write(dir .. '/resolv.conf', 'nameserver ' .. ns .. '\n' .. (files.resolv or ''))
	H.write(dir .. '/nsswitch.conf', 'hosts: files dns\n')
	local script = arg[0]
	local mounts = {}
	for _, name in ipairs{'hosts', 'resolv.conf', 'nsswitch.conf'} do
		mounts[#mounts + 1] = 'mount --bind ' .. H.quote(dir .. '/' .. name) .. ' /etc/' .. name
	end
	-- At a raised priority: the timing checks inside measure the loop, not how long
	-- the other processes of a busy machine kept this one off the CPU.
	local cmd = 'unshare -m sh -c ' .. H.quote(table.concat(mounts, ' && ') .. ' && exec nice -n -10 env '
		.. INSIDE .. '=' .. ns .. ' ' .. H.interpreter() .. ' ' .. H.quote(script)) .. ' 2>&1'
	local out, status = H.run(cmd)
	H.rmdir(dir)
	io.stdout:write(out)
	io.stdout:flush()
	os.exit(status == 0 and 0 or 1)
end

return NS
