-- The runner's main thread: the -l, -e, -j, -O, --luasocket and --copas actions in order, then the script,
-- all in one loop thread; then the loop, until no thread waits on anything.
-- Called with (the scheduler, actions, script function or false, script args...) (the
-- scheduler is internal to the loop's modules: the runner hands it over); returns the
-- traceback of an uncaught error in the main thread (or nil) and the signal that
-- stopped the loop (or nil).

local S, actions, script = ...

local function jit_command(cmd)
	local name, args = cmd:match('^([%w_]+)=?(.*)$')
	if not name then error('bad -j command: ' .. cmd, 0) end
	local argv = {}
	for a in args:gmatch('[^,]+') do argv[#argv + 1] = a end
	if name == 'on' or name == 'off' or name == 'flush' then
		jit[name]()
	else
		local m = require('jit.' .. name)
		m.start(unpack(argv))
	end
end

local function main(...)
	for _, a in ipairs(actions) do
		if a[1] == 'require' then
			_G[a[2]] = require(a[2])
		elseif a[1] == 'luasocket' then
			require'socketloop'.luasocket()
		elseif a[1] == 'copas' then
			package.loaded.copas = require'socketloop.copas'
		elseif a[1] == 'exec' then
			a[2]()
		elseif a[1] == 'jit' then
			jit_command(a[2])
		elseif a[1] == 'opt' then
			local opts = {}
			for o in a[2]:gmatch('[^,]+') do opts[#opts + 1] = o end
			require'jit.opt'.start(unpack(opts))
		end
	end
	if script then
		return script(...)
	end
end

-- SIGTERM: a graceful shutdown (loop.shutdown), after which the runner exits 0; a
-- second SIGTERM or a SIGINT meanwhile ends the process at once. SIGINT alone stops
-- the loop (exit status 130). loop.onsignal handlers take precedence.
local core = require'socketloop.core'
S.sigdefaults[core.SIGNALS.TERM] = function(name)
	require'socketloop.sync'.shutdown(nil, function()
		local who = S.worker_count and ('worker ' .. S.worker_index .. ': ') or ''
		io.stderr:write(('socketloop: %sSIG%s: listening sockets closed, finishing what is under way\n')
			:format(who, name))
		io.stderr:flush()
	end)
	S.halt()
end

-- SIGQUIT (Ctrl-\): the dump of every loop thread on stderr (loop.dump); the loop goes on.
S.sigdefaults[core.SIGQUIT] = function()
	require'socketloop'.dump(io.stderr)
end

-- A worker (--workers) gets SIGTERM, SIGINT and SIGHUP from its supervisor, each meaning
-- a graceful shutdown.
if S.worker_count then
	local graceful = S.sigdefaults[core.SIGNALS.TERM]
	for _, name in ipairs{'INT', 'HUP'} do
		core.catchsignal(core.SIGNALS[name])
		S.sigdefaults[core.SIGNALS[name]] = graceful
	end
end

local failure
local function onerror(_, trace)
	failure = trace
	S.halt()
end

S.main_chunk = S.create(main, onerror)
S.start_thread(S.main_chunk, main, select(4, ...))
if not failure then
	S.start()
end
return failure, S.signal
