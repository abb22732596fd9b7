#!/bin/sh
# Runs each fuzz target for a bounded time and prints a summary line per target.
#
#   scripts/fuzz.sh [target...]      (default: every target)
#
# Knobs (environment):
#   FUZZ_SECONDS  seconds per libFuzzer target (default 60)
#   FUZZ_WORK     directory of the corpora the runs grow (default fuzz/target/corpus;
#                 kept between runs)
#   FUZZ_TANGO    iterations of the Lua-driven tango loop (default 200000)
#   FUZZ_SEED     seed of that loop (default 1)
#
# Targets: rpc_codec, http_head, recv_buffer, tango_text, http_chunked, tls_input (cargo-fuzz/
# libFuzzer, fuzz/fuzz_targets/; the last two run Lua decoders in LuaJIT with Lua line
# coverage) and tango_loop (a Lua fuzz loop, tests/lua/fuzz_tango_text.lua, under the
# runner with the JIT on; failing inputs go to fuzz/artifacts/tango_text.txt).
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 unlocks them on a stable toolchain.
# Seeds are read from fuzz/corpus/<target>/ (kept small, in the repository); what the
# fuzzer finds goes to $FUZZ_WORK/<target>/ and crashes to fuzz/artifacts/<target>/.
# Each target also prints `FIGURES fuzz_<target> key=value ...` (read by
# scripts/reliability.sh). Exits 1 if any target failed.
set -u
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
work=${FUZZ_WORK:-fuzz/target/corpus}
targets=${*:-"rpc_codec http_head recv_buffer tango_text http_chunked tls_input tango_loop"}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz || exit 1
status=0
summary=""
mkdir -p fuzz/artifacts fuzz/target
for t in $targets; do
	log=fuzz/target/$t.log
	start=$(date +%s)
	if [ "$t" = tango_loop ]; then
		cargo build --release --quiet || exit 1
		if FUZZ_TANGO_ARTIFACTS=fuzz/artifacts/tango_text.txt LUA_PATH="tests/lua/lib/?.lua;;" \
			timeout 1800 target/release/socketloop tests/lua/fuzz_tango_text.lua "${FUZZ_TANGO:-200000}" "${FUZZ_SEED:-1}" >"$log" 2>&1; then
			result=ok
		else
			result=FAILED; status=1
		fi
		took=$(( $(date +%s) - start ))
		line="$t: $result, $(grep "fuzz:" "$log"), $took s"
		figures=$(sed -n 's/^tango_text fuzz: \([0-9]*\) inputs (seed \([0-9]*\)), \([0-9]*\) parsed, \([0-9]*\) refused, \([0-9]*\) generated.*/inputs=\1 seed=\2 parsed=\3 refused=\4 generated=\5/p' "$log")
		figures="result=$result seconds=$took $figures"
	else
		# The Lua-hosting decoders free through Lua's collector, so an input's mallocs
		# and frees never balance and libFuzzer would run LeakSanitizer after every new
		# input (8 times slower); leaks of Lua memory are the collector's business.
		leaks=1
		case $t in tango_text | http_chunked) leaks=0 ;; esac
		mkdir -p "$work/$t" "fuzz/artifacts/$t"
		crashes_before=$(ls "fuzz/artifacts/$t" | wc -l)
		if cargo fuzz run "$t" "$work/$t" "fuzz/corpus/$t" -- \
			-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -detect_leaks=$leaks \
			-print_final_stats=1 >"$log" 2>&1; then
			result=ok
		else
			result=FAILED; status=1
		fi
		runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
		last=$(grep -E '^#[0-9]+.*cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
		cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
		ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
		corpus=$(ls "$work/$t" | wc -l)
		line="$t: $result, ${runs:-?} executions in $seconds s, cov ${cov:-?}, ft ${ft:-?}, corpus $corpus inputs"
		figures="result=$result seconds=$seconds executions=${runs:-?} cov=${cov:-?} ft=${ft:-?} corpus=$corpus seeds=$(ls "fuzz/corpus/$t" | wc -l) crashes=$(( $(ls "fuzz/artifacts/$t" | wc -l) - crashes_before ))"
	fi
	echo "$line"
	echo "FIGURES fuzz_$t $figures"
	summary="$summary$line
"
done
echo "--- summary (logs in fuzz/target/<target>.log)"
printf '%s' "$summary"
exit $status
