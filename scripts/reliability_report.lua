-- Regenerates the figures of docs/reliability.md from a run of scripts/reliability.sh:
-- the region between BEGIN and END is replaced, the rest of the page is kept.
--
--   target/release/socketloop scripts/reliability_report.lua <run directory> <page>
--
-- Figures come only from the run's output: the `FIGURES <run> key=value ...` lines in
-- <run directory>/<check>.log, cargo's test lines in faults.log, and machine.txt. A
-- figure that is missing (its check failed before printing it) shows as '?'.
local dir, page = arg[1], arg[2]
assert(dir and page, 'usage: reliability_report.lua <run directory> <page>')

local BEGIN, END = '<!-- reliability.sh: begin -->', '<!-- reliability.sh: end -->'
local CHECKS = {'fuzz', 'slowloris', 'huge_line', 'fdlimit', 'load', 'soak', 'soak_timeout_1', 'soak_no_timeout', 'faults'}
local FUZZ_TARGETS = {'rpc_codec', 'http_head', 'recv_buffer', 'tango_text', 'http_chunked'}

local function read(path)
	local f = io.open(path, 'rb')
	if not f then return nil end
	local s = f:read('*a')
	f:close()
	return s
end

-- figures[check][run][key]: what the FIGURES lines of a check's log say.
local figures, logs = {}, {}
for _, check in ipairs(CHECKS) do
	local text = read(dir .. '/' .. check .. '.log') or ''
	logs[check] = text
	figures[check] = {}
	for line in text:gmatch('[^\n]+') do
		local run, rest = line:match('^FIGURES (%S+)(.*)$')
		if run then
			local f = {}
			for k, v in rest:gmatch('(%S+)=(%S*)') do f[k] = tonumber(v) or v end
			figures[check][run] = f
		end
	end
end
local machine = {}
for line in (read(dir .. '/machine.txt') or ''):gmatch('[^\n]+') do
	local k, v = line:match('^([%w_]+)=(.*)$')
	if k then machine[k] = v end
end

-- The figures a check's run printed (empty if it printed none).
local function run_of(check, run)
	return figures[check][run] or {}
end

-- 1234567 -> '1,234,567'
local function int(n)
	if type(n) ~= 'number' then return '?' end
	local s = ('%d'):format(math.floor(n + 0.5))
	local sign, digits = s:match('^(-?)(%d+)$')
	return sign .. digits:reverse():gsub('(%d%d%d)', '%1,'):reverse():gsub('^,', '')
end

local function fixed(n, decimals)
	if type(n) ~= 'number' then return '?' end
	return ('%.' .. decimals .. 'f'):format(n)
end

local function short(n)
	if type(n) ~= 'number' then return '?' end
	return ('%g'):format(n)
end

local function percent(n)
	if type(n) ~= 'number' then return '?' end
	return ('%+.1f%%'):format(n)
end

local function duration(s)
	if type(s) ~= 'number' then return '?' end
	if s < 120 then return ('%d s'):format(s) end
	return ('%d min %02d s'):format(math.floor(s / 60), s % 60)
end

-- How a check ended: 'passed' or 'FAILED (exit N)'.
local function result(check)
	local rc = run_of(check, 'step_' .. check).rc
	if rc == 0 then return 'passed' end
	if rc == 124 then return '**FAILED** (time limit)' end
	return '**FAILED** (exit ' .. tostring(rc or '?') .. ')'
end

local out = {}
local function put(...)
	out[#out + 1] = table.concat({...})
end

put(BEGIN)
put('<!-- Written by scripts/reliability.sh (scripts/reliability_report.lua) from the run\'s output;')
put('     edits between these markers are overwritten. -->')
put('')
put(('Run: `%s`, %s, commit %s. Machine: %s CPUs, %s, %s; descriptor hard limit %s; %s. ')
	:format(machine.command or '?', machine.date or '?', machine.commit or '?', machine.cpu or '?',
		machine.memory or '?', machine.kernel or '?', machine.fd_hard_limit or '?', machine.rustc or '?'),
	('The whole script took %s.'):format(duration(tonumber(machine.total_seconds))))
if machine.note and machine.note ~= '' then
	put('')
	put(machine.note)
end

put('')
put('### Fuzzing')
put('')
put('Each libFuzzer target for the time shown, starting from its seeds (`fuzz/corpus/<target>/`);')
put('"edges" is libFuzzer\'s coverage of compiled code (Rust, and LuaJIT\'s C), "features"')
put('adds hit counts and, for `tango_text` and `http_chunked`, the Lua line-to-line steps of the')
put('decoder. Release build with AddressSanitizer and coverage instrumentation.')
put('')
put('| target | time | executions | per second | edges / features | corpus: seeds → after | crashes | result |')
put('|---|---|---|---|---|---|---|---|')
for _, t in ipairs(FUZZ_TARGETS) do
	local f = run_of('fuzz', 'fuzz_' .. t)
	local secs, runs = f.seconds, f.executions
	put(('| `%s` | %s s | %s | %s | %s / %s | %s → %s | %s | %s |'):format(t, fixed(secs, 0), int(runs),
		type(runs) == 'number' and type(secs) == 'number' and int(runs / secs) or '?',
		int(f.cov), int(f.ft), int(f.seeds), int(f.corpus), int(f.crashes), f.result or '?'))
end
do
	local f = run_of('fuzz', 'fuzz_tango_loop')
	put('')
	put(('The Lua tango loop (`tests/lua/fuzz_tango_text.lua`, JIT on, seed %s): %s inputs in %s s, %s parsed, %s refused, %s generated round trips: %s.')
		:format(f.seed or '?', int(f.inputs), fixed(f.seconds, 0), int(f.parsed), int(f.refused),
			int(f.generated), f.result or '?'))
end

put('')
put('### Faults, load and soak (heavy versions)')
put('')
put('| check | run | figures | result |')
put('|---|---|---|---|')
do
	local f = run_of('slowloris', 'fault_slowloris')
	put(('| slow-loris, one byte every %s s | `FAULT_SLOW_STEP=%s` `fault_slowloris.lua` | %s fast clients: %s of %s replies right, all done %s s after the slow client started, when it had sent %s of its %s bytes; fast clients done first: %s. The slow client was dropped %s s after it started (receive timeout %s s), %s bytes sent, the server\'s partial %s bytes | %s |')
		:format(short(f.step_s), short(f.step_s), int(f.fast_clients), int(f.fast_replies_right), int(f.fast_replies),
			fixed(f.fast_done_s, 1), int(f.slow_sent_at_fast_done), int(f.line_bytes),
			f.fast_first == 'true' and 'yes' or f.fast_first == 'false' and '**no**' or '?', fixed(f.slow_dropped_s, 1),
			short(f.receive_timeout_s), int(f.slow_sent_bytes), int(f.partial_bytes), result('slowloris')))
end
do
	local f = run_of('huge_line', 'fault_huge_line')
	put(('| `receive(\'*l\')` of a %s MiB line, receive limit %s KiB | `FAULT_LINE_MIB=%s` `fault_huge_line.lua` | %s limit errors, then the last byte and the next line intact; the socket buffered at most %s KiB; Lua heap +%s KiB; peak RSS of the process %s MiB; %s s | %s |')
		:format(int(f.line_mib), int(f.limit_kib), int(f.line_mib), int(f.limit_errors), fixed(f.most_buffered_kib, 1),
			int(f.heap_growth_kib), fixed(type(f.peak_rss_kib) == 'number' and f.peak_rss_kib / 1024, 1),
			fixed(f.seconds, 1), result('huge_line')))
end
do
	local f = run_of('fdlimit', 'fault_fdlimit')
	put(('| out of descriptors, saturated %s s | `FAULT_FD_SATURATED=%s` `fault_fdlimit.lua` | server limit %s descriptors: %s of %s clients held and served while saturated; server CPU %s s in %s s; then all %s served | %s |')
		:format(short(f.saturated_s), short(f.saturated_s), int(f.fd_limit), int(f.held), int(f.clients), fixed(f.server_cpu_s, 2),
			short(f.saturated_s), int(f.clients), result('fdlimit')))
end
do
	local f = run_of('load', 'load_conns')
	local server = f.split == 'true'
		and (' Server side (its own process): RSS %s KiB, Lua heap %s KiB per connection.')
			:format(fixed(f.server_rss_kib_per_conn, 2), fixed(f.server_heap_kib_per_conn, 2))
		or ''
	put(('| load, %s connections | `LOAD_CONNS=%s scripts/load.sh` | %s connections held at once (%s descriptors in the client process), %s round trips each, %s replies right; connected in %s s, done in %s s. Memory per connection, %s: RSS %s KiB, Lua heap %s KiB.%s | %s |')
		:format(int(f.conns), short(f.conns), int(f.conns), int(f.descriptors), int(f.rounds),
			int(f.replies_right), fixed(f.connect_s, 1), fixed(f.total_s, 1),
			f.split == 'true' and 'client side' or 'both ends', fixed(f.rss_kib_per_conn, 2),
			fixed(f.heap_kib_per_conn, 2), server, result('load')))
end
for _, soak in ipairs{{'soak', ''}, {'soak_timeout_1', 'SOAK_SOCKET_TIMEOUT=1 '}, {'soak_no_timeout', 'SOAK_SOCKET_TIMEOUT=0 '}} do
	local check, knob = soak[1], soak[2]
	local f = run_of(check, 'soak_cycles')
	put(('| soak, %s cycles | `SOAK_CYCLES=%s %sscripts/soak.sh` | %s replies right in %s s (%s clients at a time, %s); descriptors %s → %s, registrations %s → %s, %s timer entries at the end. Growth since cycle %s: RSS %s → %s KiB (%s), Lua heap %s → %s KiB (%s) | %s |')
		:format(int(f.cycles), short(f.cycles), knob, int(f.replies_right), fixed(f.seconds, 1), int(f.workers),
			f.socket_timeout_s == 0 and 'no socket timeouts' or 'socket timeouts ' .. short(f.socket_timeout_s) .. ' s',
			int(f.fds_start), int(f.fds_end), int(f.regs_start), int(f.regs_end), int(f.timer_entries), int(f.mark),
			int(f.rss_mark_kib), int(f.rss_end_kib), percent(f.rss_growth_pct), int(f.heap_mark_kib),
			int(f.heap_end_kib), percent(f.heap_growth_pct), result(check)))
end

put('')
put('### The fault tests of the default test command')
put('')
local tests, order = {}, {}
for mode, name, res in logs.faults:gmatch('test faults::(%w+)::([%w_]+) %.%.%. (%w+)') do
	if not tests[name] then
		tests[name] = {}
		order[#order + 1] = name
	end
	tests[name][mode] = res
end
table.sort(order)
put('`cargo test --release --test lua_scripts faults` (each script under the runner and under stock `luajit`):')
put('')
put('| test | runner | luajit |')
put('|---|---|---|')
for _, name in ipairs(order) do
	put(('| `%s` | %s | %s |'):format(name, tests[name].runner or '?', tests[name].luajit or '?'))
end
local passed, failed, took = logs.faults:match('test result: %w+%. (%d+) passed; (%d+) failed;.-finished in ([%d.]+)s')
put('')
put(('%s passed, %s failed, %s s (tests only, after the build): %s.'):format(passed or '?', failed or '?',
	took or '?', result('faults')))

put('')
put('### Time per check')
put('')
put('| check | wall time | time limit | exit code |')
put('|---|---|---|---|')
for _, check in ipairs(CHECKS) do
	local f = run_of(check, 'step_' .. check)
	put(('| %s | %s | %s | %s |'):format(check, duration(f.seconds), duration(f.limit), tostring(f.rc or '?')))
end
put(END)

local text = assert(read(page), 'cannot read ' .. page)
local b = text:find(BEGIN, 1, true)
local e = text:find(END, 1, true)
assert(b and e and b < e, page .. ' has no ' .. BEGIN .. ' ... ' .. END .. ' region')
local f = assert(io.open(page, 'wb'))
f:write(text:sub(1, b - 1), table.concat(out, '\n'), text:sub(e + #END))
f:close()
