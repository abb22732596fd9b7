-- A wrk script (not a test): checks every response's status and body, stops the run
-- after WRK_LIMIT responses, and prints "responses=N bad=M" at the end. With
-- WRK_PIPELINE=D, each request sends D pipelined GETs.
--   WRK_BODY     the body every response must have
--   WRK_LIMIT    responses to check before stopping
local want = os.getenv('WRK_BODY') or ''
local limit = tonumber(os.getenv('WRK_LIMIT') or '1000')
local depth = tonumber(os.getenv('WRK_PIPELINE') or '1')
local threads = {}

function setup(thread)
	threads[#threads + 1] = thread
end

function init()
	responses, bad = 0, 0
	if depth > 1 then
		local one = wrk.format('GET', wrk.path)
		pipelined = one:rep(depth)
	end
end

function request()
	return pipelined or wrk.format('GET', wrk.path)
end

function response(status, headers, body)
	responses = responses + 1
	if status ~= 200 or body ~= want then bad = bad + 1 end
	if responses >= limit then wrk.thread:stop() end
end

function done()
	local n, b = 0, 0
	for _, thread in ipairs(threads) do
		n = n + thread:get('responses')
		b = b + thread:get('bad')
	end
	io.write(('responses=%d bad=%d\n'):format(n, b))
end
