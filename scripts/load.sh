#!/bin/sh
# Load: LOAD_CONNS connections (default 10000) open at once in one process, each doing
# LOAD_ROUNDS round trips (default 5), every reply checked; prints the connections held
# and the memory per connection (RSS and Lua heap). Runs tests/lua/load_conns.lua under
# the release runner (the faults tests run the same script with 400 connections).
#
#   scripts/load.sh
#   LOAD_CONNS=20000 LOAD_ROUNDS=10 scripts/load.sh
#
# Raises the descriptor limit to the hard limit first. When that cannot hold both ends
# of every connection (2 x LOAD_CONNS + 64), the server runs in a process of its own
# (LOAD_SPLIT=1), which then holds LOAD_CONNS connections; its memory is printed apart.
# Bounded: the script gives up after LOAD_TIMEOUT seconds (default 600). Exits non-zero
# on any failed check.
set -eu
cd "$(dirname "$0")/.."
conns=${LOAD_CONNS:-10000}
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then hard=1048576; fi
ulimit -n "$hard"
if [ "$hard" -lt $((2 * conns + 64)) ]; then split=1; else split=0; fi
if [ "$hard" -lt $((conns + 64)) ]; then
	echo "load.sh: the hard descriptor limit ($hard) cannot hold $conns connections" >&2
	exit 1
fi
cargo build --release -q
echo "load: $conns connections, fd limit $hard, server in its own process: $split"
LOAD_CONNS=$conns LOAD_SPLIT=$split LUA_PATH='tests/lua/lib/?.lua;;' \
	SOCKETLOOP_BIN=target/release/socketloop \
	timeout "${LOAD_TIMEOUT:-600}" target/release/socketloop tests/lua/load_conns.lua
