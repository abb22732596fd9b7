#!/usr/bin/env bash
# Calls per second of socketloop.rpc and socketloop.tango, server and client in two
# processes on 127.0.0.1: one connection with one caller, and 100 concurrent callers
# (rpc: over one session and over 100 sessions; tango, which carries one request at a
# time per connection: over 100 connections).
#   benches/rpc_bench.sh [seconds per run]      (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3}
cargo build --release -q
bin=target/release/socketloop

free_port() {
  "$bin" -e "local l = require'socketloop' local s = l.tcp('127.0.0.1', 0) print((select(2, s:getsockname()))) s:close()"
}

run() { # module callers connections
  local module=$1 callers=$2 connections=$3 port pid
  port=$(free_port)
  "$bin" benches/rpc_bench.lua server "$module" "$port" &
  pid=$!
  for _ in $(seq 100); do
    "$bin" -e "local l = require'socketloop' os.exit(l.connect('127.0.0.1', $port) and 0 or 1)" 2>/dev/null && break
    sleep 0.05
  done
  printf '%-6s %4d callers over %3d connection(s): ' "$module" "$callers" "$connections"
  "$bin" benches/rpc_bench.lua client "$module" "$port" "$callers" "$connections" "$seconds"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
}

run rpc 1 1
run rpc 100 1
run rpc 100 100
run tango 1 1
run tango 100 100
