-- Certificates for the TLS tests, made at test time with `openssl` in a temporary
-- directory: a CA, a server certificate it signed (localhost, 127.0.0.1, ::1), a client
-- certificate it signed, the same server name signed by another CA (an unknown issuer),
-- and an expired one; and `openssl s_server` / `s_client` started as child processes.

local H = require'http_support'

local C = {}

local EC = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'

local function sh(dir, cmd)
	local out, status = H.run('cd ' .. H.quote(dir) .. ' && ' .. cmd .. ' 2>&1')
	assert(status == 0, cmd .. ' failed: ' .. out)
	return out
end

local CA_CNF = [[
[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
policy = p
default_md = sha256
unique_subject = no
[p]
commonName = supplied
[server]
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage = serverAuth
]]

-- Makes the certificates; returns a table of file names (and `dir`, to remove with
-- C.cleanup).
function C.make()
	local dir = H.tmpdir()
	local function ca(name, cn)
		sh(dir, ('openssl req -x509 %s -keyout %s.key -out %s.pem -days 30 -subj "/CN=%s"'
			.. ' -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign')
			:format(EC, name, name, cn))
	end
	local function leaf(name, cn, signer, ext)
		H.write(dir .. '/' .. name .. '.ext', ext)
		sh(dir, ('openssl req %s -keyout %s.key -out %s.csr -subj "/CN=%s"'):format(EC, name, name, cn))
		sh(dir, ('openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial -days 30'
			.. ' -out %s.pem -extfile %s.ext'):format(name, signer, signer, name, name))
	end
	ca('ca', 'socketloop test CA')
	ca('other_ca', 'another test CA')
	local server_ext = 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n'
	leaf('server', 'localhost', 'ca', server_ext)
	leaf('client', 'test client', 'ca', 'extendedKeyUsage=clientAuth\n')
	leaf('unknown', 'localhost', 'other_ca', server_ext)
	-- An expired certificate: `openssl ca` takes explicit dates.
	H.write(dir .. '/ca.cnf', CA_CNF)
	H.write(dir .. '/index.txt', '')
	H.write(dir .. '/serial', '01\n')
	sh(dir, 'openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in server.csr'
		.. ' -out expired.pem -startdate 20200101000000Z -enddate 20200201000000Z -extensions server -notext')
	local f = {dir = dir}
	for _, name in ipairs{'ca', 'other_ca', 'server', 'client', 'unknown'} do
		f[name] = dir .. '/' .. name .. '.pem'
		f[name .. '_key'] = dir .. '/' .. name .. '.key'
	end
	f.expired, f.expired_key = dir .. '/expired.pem', dir .. '/server.key'
	return f
end

function C.cleanup(f)
	H.rmdir(f.dir)
end

-- Reads a whole file.
function C.read(path)
	local fh = assert(io.open(path, 'rb'))
	local data = fh:read('*a')
	fh:close()
	return data
end

-- A file's contents so far ('' while it does not exist yet).
function C.read_if(path)
	local fh = io.open(path, 'rb')
	if not fh then return '' end
	local data = fh:read('*a')
	fh:close()
	return data
end

-- Runs the sh command line `cmd` in the background with its output in a new file of
-- `dir`; returns a function giving the output so far, and the process (H.stop it).
function C.background(dir, cmd)
	local out = ('%s/out%d'):format(dir, math.random(1e9))
	local p = H.spawn('sh -c ' .. H.quote(cmd .. ' > ' .. H.quote(out) .. ' 2>&1'))
	return function() return C.read_if(out) end, p
end

-- `openssl s_server` reversing each line it gets (-rev), on a free port of 127.0.0.1,
-- with `args` added. Returns the process and the port.
function C.s_server(args)
	local p = H.spawn('openssl s_server -accept 127.0.0.1:0 -rev ' .. args .. ' 2>&1')
	local port
	for _ = 1, 20 do
		local line = p.out:read('*l')
		if not line then break end
		port = line:match('^ACCEPT 127%.0%.0%.1:(%d+)')
		if port then break end
	end
	assert(port, 'openssl s_server did not start')
	return p, tonumber(port)
end

return C
