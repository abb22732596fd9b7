#!/bin/sh
# Runs each fuzz target for a bounded time and prints a summary line per target.
#
#   scripts/fuzz.sh [target...]      (default: every target)
#
# Knobs (environment):
#   FUZZ_SECONDS  seconds per libFuzzer target (default 60)
#   FUZZ_TANGO    iterations of the Lua-driven tango_text fuzz loop (default 200000)
#   FUZZ_SEED     seed of that loop (default 1)
#
# Targets: rpc_codec, http_head, recv_buffer (cargo-fuzz/libFuzzer, fuzz/fuzz_targets/)
# and tango_text (a Lua fuzz loop, tests/lua/fuzz_tango_text.lua, under the runner;
# failing inputs go to fuzz/artifacts/tango_text.txt).
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 unlocks them on a stable toolchain.
# Seeds are read from fuzz/corpus/<target>/ (kept small, in the repository); what the
# fuzzer finds goes to fuzz/target/corpus/<target>/ and crashes to fuzz/artifacts/.
# Exits 1 if any target failed.
set -u
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
targets=${*:-"rpc_codec http_head recv_buffer tango_text"}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz || exit 1
status=0
summary=""
for t in $targets; do
	log=fuzz/target/$t.log
	mkdir -p fuzz/artifacts
	mkdir -p fuzz/target
	if [ "$t" = tango_text ]; then
		cargo build --release --quiet || exit 1
		start=$(date +%s)
		if FUZZ_TANGO_ARTIFACTS=fuzz/artifacts/tango_text.txt LUA_PATH="tests/lua/?.lua;;" \
			target/release/socketloop tests/lua/fuzz_tango_text.lua "${FUZZ_TANGO:-200000}" "${FUZZ_SEED:-1}" >"$log" 2>&1; then
			result=ok
		else
			result=FAILED; status=1
		fi
		line="$t: $result, $(grep "fuzz:" "$log"), $(( $(date +%s) - start )) s"
	else
		mkdir -p "fuzz/target/corpus/$t"
		if cargo fuzz run "$t" "fuzz/target/corpus/$t" "fuzz/corpus/$t" -- \
			-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
			result=ok
		else
			result=FAILED; status=1
		fi
		runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
		cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
		line="$t: $result, ${runs:-?} executions in $seconds s, $cov, corpus $(ls "fuzz/target/corpus/$t" | wc -l) inputs"
	fi
	echo "$line"
	summary="$summary$line
"
done
echo "--- summary (logs in fuzz/target/<target>.log)"
printf '%s' "$summary"
exit $status
