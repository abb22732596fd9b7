#!/bin/sh
# Runs every heavy reliability check of docs/reliability.md, then regenerates that page's
# figures (the region between `<!-- reliability.sh: begin -->` and
# `<!-- reliability.sh: end -->`; the prose around it is written by hand):
#
#   scripts/reliability.sh
#   FUZZ_SECONDS=600 scripts/reliability.sh
#
# The checks, each bounded in time and run one after the other:
#   - every fuzz target for FUZZ_SECONDS (default 60) from its seeds (scripts/fuzz.sh,
#     with its corpora in target/reliability/corpus so the figures start from the seeds);
#   - the slow-loris fault at one byte a second (FAULT_SLOW_STEP=1) while 10 other
#     clients are served;
#   - receive('*l') of a 100 MiB line with a 1 MiB receive limit (FAULT_LINE_MIB=100);
#   - the descriptor-exhaustion fault held saturated for 10 s (FAULT_FD_SATURATED=10);
#   - scripts/load.sh with 10,000 connections, and scripts/soak.sh with 200,000 cycles
#     (socket timeouts 10 s, 1 s, and none);
#   - the fault tests of the default test command (the short versions).
# Every figure comes from a `FIGURES <run> key=value ...` line a run printed (or from
# cargo's test lines); logs stay in target/reliability/. Network: 127.0.0.1 only. The
# timeouts stop only the runs this script started (GNU timeout signals its own process
# group). Exits 1 if any check failed; the page is regenerated either way, with the
# failures marked.
#
# RELIABILITY_NOTE (optional) is printed under the machine on the page: what else ran on
# it, for instance.
set -u
cd "$(dirname "$0")/.."
out=target/reliability
seconds=${FUZZ_SECONDS:-60}
rm -rf "$out"
mkdir -p "$out"
begin=$(date +%s)
status=0

cargo build --release -q || exit 1

# step NAME LIMIT COMMAND...: runs COMMAND for at most LIMIT seconds, output to
# $out/NAME.log, then adds its exit code and wall time to that log.
step() {
	name=$1 limit=$2
	shift 2
	echo "== $name: $*"
	started=$(date +%s)
	timeout "$limit" "$@" >"$out/$name.log" 2>&1
	rc=$?
	took=$(( $(date +%s) - started ))
	echo "FIGURES step_$name rc=$rc seconds=$took limit=$limit" >>"$out/$name.log"
	echo "   exit $rc after $took s"
	[ "$rc" = 0 ] || status=1
}

export LUA_PATH='tests/lua/lib/?.lua;;' SOCKETLOOP_BIN=target/release/socketloop

step fuzz $((7 * seconds + 1800)) env FUZZ_SECONDS="$seconds" FUZZ_WORK="$out/corpus" scripts/fuzz.sh
step slowloris 300 env FAULT_SLOW_STEP=1 target/release/socketloop tests/lua/fault_slowloris.lua
step huge_line 300 env FAULT_LINE_MIB=100 target/release/socketloop tests/lua/fault_huge_line.lua
step fdlimit 300 env FAULT_FD_SATURATED=10 target/release/socketloop tests/lua/fault_fdlimit.lua
step load 900 env LOAD_CONNS=10000 scripts/load.sh
step soak 1500 env SOAK_CYCLES=200000 scripts/soak.sh
step soak_timeout_1 1500 env SOAK_CYCLES=200000 SOAK_SOCKET_TIMEOUT=1 scripts/soak.sh
step soak_no_timeout 1500 env SOAK_CYCLES=200000 SOAK_SOCKET_TIMEOUT=0 scripts/soak.sh
step faults 1800 cargo test --release --test lua_scripts faults

{
	echo "command=${RELIABILITY_COMMAND:-FUZZ_SECONDS=$seconds scripts/reliability.sh}"
	echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs/reliability.md' || echo ' (with uncommitted changes)')"
	echo "cpu=$(nproc) x $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
	echo "memory=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel=$(uname -sr)"
	echo "fd_hard_limit=$(ulimit -Hn)"
	echo "rustc=$(rustc --version)"
	echo "total_seconds=$(( $(date +%s) - begin ))"
	echo "note=${RELIABILITY_NOTE:-}"
} >"$out/machine.txt"

target/release/socketloop scripts/reliability_report.lua "$out" docs/reliability.md || exit 1
echo "docs/reliability.md regenerated from $out/ ($(( $(date +%s) - begin )) s in all)"
exit $status
