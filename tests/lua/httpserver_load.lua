-- examples/http_server.lua (socketloop.httpserver) as a child process under ApacheBench
-- (`ab -k`: HTTP/1.0 keep-alive) and wrk (HTTP/1.1 keep-alive, then 4 requests
-- pipelined), each run bounded in requests; every response is checked: by ab for its
-- status and length, by tests/lua/lib/wrk_check.lua for its status and body byte for
-- byte. Needs ab (apache2-utils) and wrk.
local T = require'testlib'
local H = require'http_support'

local server, base = H.example_server()

-- A numbered field of ab's report ("Complete requests:      2000"), or nil.
local function ab_field(out, name)
	return tonumber(out:match('\n' .. name:gsub('%-', '%%-') .. ':%s+(%d+)'))
end

local function ab(args, n, what)
	local out, status = H.run('ab ' .. args .. ' 2>&1')
	T.eq(status, 0, what .. ': ab exit status\n' .. out)
	T.eq(ab_field(out, 'Complete requests'), n, what .. ': complete requests')
	T.eq(ab_field(out, 'Failed requests'), 0, what .. ': failed requests (status, length)')
	T.eq(ab_field(out, 'Non-2xx responses'), nil, what .. ': non-2xx responses')
	return out
end

local N_AB = 2000
local out = ab(('-k -q -n %d -c 20 %s/ab'):format(N_AB, base), N_AB, 'ab -k GET')
T.eq(ab_field(out, 'Keep-Alive requests'), N_AB, 'ab -k: every request kept alive')
T.eq(ab_field(out, 'Document Length'), #'you asked for /ab\n', 'ab -k: document length')

-- POSTs of a body through /echo: the length of every echo checked
local dir = H.tmpdir()
local payload = ('0123456789abcdef'):rep(64)
H.write(dir .. '/body', payload)
out = ab(('-k -q -n 500 -c 5 -p %s -T text/plain %s/echo'):format(H.quote(dir .. '/body'), base), 500, 'ab -k POST')
T.eq(ab_field(out, 'Keep-Alive requests'), 500, 'ab -k POST: every request kept alive')
T.eq(ab_field(out, 'Document Length'), #payload, 'ab -k POST: the body came back')
H.rmdir(dir)

-- wrk: every response's status and body checked, the run stopped after `limit`
local function wrk(path, limit, pipeline, what)
	local env = ('WRK_BODY=%s WRK_LIMIT=%d WRK_PIPELINE=%d'):format(
		H.quote('you asked for ' .. path .. '\n'), limit, pipeline)
	local o, status = H.run(('%s wrk -t1 -c20 -d3s -s tests/lua/lib/wrk_check.lua %s%s 2>&1')
		:format(env, base, path))
	T.eq(status, 0, what .. ': wrk exit status\n' .. o)
	local responses, bad = o:match('responses=(%d+) bad=(%d+)')
	T.ok(tonumber(responses) and tonumber(responses) >= limit, what .. ': at least ' .. limit .. ' responses checked\n' .. o)
	T.eq(tonumber(bad), 0, what .. ': every response right')
	T.ok(not o:find('Socket errors', 1, true), what .. ': no socket errors\n' .. o)
	T.ok(not o:find('Non-2xx', 1, true), what .. ': no other status\n' .. o)
end

wrk('/wrk', 3000, 1, 'wrk')
wrk('/pipelined', 3000, 4, 'wrk, 4 pipelined')

-- the server is still whole: its counts add up
local stats = H.run('curl -s ' .. base .. '/stats')
local connections, requests = stats:match('^connections=(%d+) requests=(%d+)\n$')
T.ok(tonumber(requests) and tonumber(requests) >= N_AB + 500 + 6000, 'requests counted: ' .. stats)
T.ok(tonumber(connections) and tonumber(connections) <= 25 + 5 + 40 + 1, 'connections kept alive: ' .. stats)

H.stop(server)
T.finish()
