#!/bin/sh
# The long API fuzz (scripts/fuzz_api.lua) under the runner and then under stock luajit
# with the loadable module, each for FUZZ_SECONDS (default 600).
#
#   scripts/fuzz_api.sh [runner|luajit ...]     (default: both)
#
# Knobs: FUZZ_SECONDS, FUZZ_OPS (operations per seed, default 400), FUZZ_SEED (first
# seed, default 1). Prints a `FIGURES fuzz_api ...` line per interpreter; exits 1 if a
# run failed (its stderr names the seed).
set -u
cd "$(dirname "$0")/.."
cargo build --release --quiet || exit 1
status=0
for mode in ${*:-runner luajit}; do
	if [ "$mode" = runner ]; then
		set -- target/release/socketloop
	else
		set -- luajit
	fi
	LUA_PATH="tests/lua/lib/?.lua;;" LUA_CPATH="target/release/lib?.so;;" SOCKETLOOP_TEST_MODE=$mode \
		"$@" scripts/fuzz_api.lua | sed "s/^FIGURES fuzz_api/FIGURES fuzz_api_$mode/" || status=1
done
exit $status
