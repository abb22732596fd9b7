#!/bin/sh
# Soak: SOAK_CYCLES connect/exchange/close cycles (default 200000) against a server in
# the same process, SOAK_WORKERS (default 50) clients at a time; checks every reply, that
# no descriptor (/proc/self/fd) or reactor registration is left at the end, and that the
# RSS and the Lua heap (collectgarbage('count') after a full collection) at the end are
# within SOAK_GROWTH (default 0.10) of what they were after the first SOAK_MARK cycles
# (default 10000). Runs tests/lua/soak_cycles.lua under the release runner (the faults
# tests run the same script with 5000 cycles and a looser bound).
#
#   scripts/soak.sh
#   SOAK_CYCLES=1000000 scripts/soak.sh
#
# Bounded: gives up after SOAK_TIMEOUT seconds (default 1200). Exits non-zero on any
# failed check.
set -eu
cd "$(dirname "$0")/.."
cargo build --release -q
SOAK_CYCLES=${SOAK_CYCLES:-200000} SOAK_MARK=${SOAK_MARK:-10000} SOAK_GROWTH=${SOAK_GROWTH:-0.10} \
	LUA_PATH='tests/lua/lib/?.lua;;' \
	timeout "${SOAK_TIMEOUT:-1200}" target/release/socketloop tests/lua/soak_cycles.lua
