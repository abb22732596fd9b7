#!/usr/bin/env bash
# benches/targets.sh - the targets of issue 6 beyond line echo, each run REPS times,
# printed as one table of medians with the target beside each figure:
#   rpc     100 callers over one session (benches/rpc_bench.sh's client and server,
#           each pinned to a core of its own)                       >= 100,000 calls/s
#   tango   sequential calls on one connection                     >= 30,000 calls/s
#   tango   100 connections, one caller each, in total             >= 3 x 30,000 calls/s
#   http    10,000 keep-alive GETs over 50 threads (benches/http_bench.sh)
#                                                                   >= 20,000 req/s,
#                                                                   and above socket.http
#   timers  100,000 sleepers (benches/timers.lua)                   p99 lateness < 2 ms,
#                                                                   0 out of order
#   http client CPU per keep-alive GET against wrk's, same server, same run
#           (benches/http_client_cpu.sh, when wrk is installed)     <= 1.5x wrk,
#                                                                   <= 1.2x the server's
# and, for the servers alone, the Rust load generator (benches/loadgen --mode rpc|http)
# against the rpc bench server and examples/http_server.lua: requests/s and the server's
# CPU per request (no goal: the issue's goals are for our clients and servers together).
#
#   benches/targets.sh                   # REPS=3, SECONDS_PER_RUN=3
#   REPS=1 SECONDS_PER_RUN=2 benches/targets.sh
#
# tango's sequential figure is a round-trip latency. On two cores every call waits for
# two cross-core wake-ups of an idle CPU (on this kind of VM about 50 us each: even the
# raw mio echo server manages only about 11k round trips/s that way), which says nothing
# about the loop; so the sequential client and its server share CPU 0, and the figure is
# what a round trip costs in CPU. The throughput runs (rpc, tango over 100 connections)
# put server and client on a core each. Traffic to 127.0.0.1 only; every run bounded
# in time; stops only the processes it started.
set -u
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
SECS=${SECONDS_PER_RUN:-3}
OUT=${OUT:-$(mktemp -d)}
bin=target/release/socketloop
cargo build --release -q || exit 1
(cd benches/loadgen && cargo build --release -q) || exit 1

free_port() {
  "$bin" -e "local l = require'socketloop' local s = l.tcp('127.0.0.1', 0) print((select(2, s:getsockname()))) s:close()"
}

# start_server COMMAND...: runs COMMAND in the background on a free port (PORT in the
# command is replaced) and waits until it accepts; sets $port and $pid. stop_server ends it.
start_server() {
  port=$(free_port)
  "${@//PORT/$port}" >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    "$bin" -e "local l = require'socketloop' os.exit(l.connect('127.0.0.1', $port) and 0 or 1)" 2>/dev/null && break
    sleep 0.05
  done
}
stop_server() {
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

# rpc_run MODULE CALLERS CONNECTIONS PIN: prints calls/s. PIN: "apart" (server on CPU 0,
# client on CPU 1), "together" (both on CPU 0), "none".
rpc_run() {
  local module=$1 callers=$2 conns=$3 pin=$4 port pid srv=() cli=()
  case $pin in
    apart) srv=(taskset -c 0); cli=(taskset -c 1) ;;
    together) srv=(taskset -c 0); cli=(taskset -c 0) ;;
  esac
  start_server "${srv[@]}" "$bin" benches/rpc_bench.lua server "$module" PORT
  timeout $((SECS + 60)) "${cli[@]}" "$bin" benches/rpc_bench.lua client "$module" "$port" "$callers" "$conns" "$SECS" \
    | sed -n 's/.*: \([0-9]*\) calls\/s$/\1/p'
  stop_server
}

# lg_run MODE SERVER-COMMAND...: the server pinned to CPU 0 on a free port (PORT in the
# command), benches/loadgen on CPU 1; prints "per_s server_us_per_req".
LG=benches/loadgen/target/release/loadgen
lg_run() {
  local mode=$1 port pid res; shift
  start_server taskset -c 0 "$@"
  if [ "$mode" = rpc ]; then
    res=$(taskset -c 1 "$LG" --mode rpc --port "$port" --server-pid "$pid" --conns 1 --inflight 100 \
      --msgs $((SECS * 100000)) --timeout $((SECS * 10)))
  else
    res=$(taskset -c 1 "$LG" --mode http --port "$port" --server-pid "$pid" --conns 50 --path /bench \
      --msgs $((SECS * 1000)) --timeout $((SECS * 10)))
  fi
  stop_server
  case $res in
    *status=ok*) echo "$res" | sed -n 's/.* per_s=\([0-9]*\) server_us_per_req=\([0-9.]*\).*/\1 \2/p' ;;
    *) echo "- -" ;;
  esac
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print "-"; else print v[int((NR+1)/2)]}'; }

: >"$OUT/targets.txt"
for rep in $(seq "$REPS"); do
  echo "rpc100 $(rpc_run rpc 100 1 apart)" >>"$OUT/targets.txt"
  echo "tango1 $(rpc_run tango 1 1 together)" >>"$OUT/targets.txt"
  echo "tango100 $(rpc_run tango 100 100 apart)" >>"$OUT/targets.txt"
  timeout 300 benches/http_bench.sh 10000 50 >"$OUT/http.$rep.txt" 2>&1
  rate() { sed -n "s/^$1.* \([0-9][0-9]*\) req\/s.*/\1/p" "$OUT/http.$rep.txt" | head -1; }
  echo "http $(rate 'socketloop.http, ')" >>"$OUT/targets.txt"
  echo "luasocket_http $(rate 'LuaSocket socket.http')" >>"$OUT/targets.txt"
  timeout 300 "$bin" benches/timers.lua 100000 >"$OUT/timers.$rep.txt" 2>&1
  echo "timers_p99 $(sed -n 's/.*p99 \([0-9.]*\).*/\1/p' "$OUT/timers.$rep.txt")" >>"$OUT/targets.txt"
  set -- $(lg_run rpc "$bin" benches/rpc_bench.lua server rpc PORT)
  echo "lg_rpc $1" >>"$OUT/targets.txt"; echo "lg_rpc_us $2" >>"$OUT/targets.txt"
  set -- $(lg_run http "$bin" examples/http_server.lua 127.0.0.1 PORT)
  echo "lg_http $1" >>"$OUT/targets.txt"; echo "lg_http_us $2" >>"$OUT/targets.txt"
  echo "timers_disorder $(sed -n 's/.*out of deadline order: \([0-9]*\).*/\1/p' "$OUT/timers.$rep.txt")" >>"$OUT/targets.txt"
done

# socketloop.http's CPU per request beside wrk's (its own REPS interleaved runs)
if command -v wrk >/dev/null; then
  REPS=$REPS SECONDS_PER_RUN=$SECS timeout 600 benches/http_client_cpu.sh >"$OUT/http_client_cpu.txt" 2>&1
fi
cpu_line() { sed -n "s/^$1 *\(.*\)$/\1/p" "$OUT/http_client_cpu.txt" 2>/dev/null | head -1; }

get() { awk -v k="$1" '$1==k && $2!="" {print $2}' "$OUT/targets.txt" | median; }
verdict() { # value op target
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "-") { print "no result"; exit }
    ok = (op == ">=") ? (v >= t) : (v < t); print (ok ? "met" : "not met") }'
}
rpc=$(get rpc100) t1=$(get tango1) t100=$(get tango100) http=$(get http) ls=$(get luasocket_http)
p99=$(get timers_p99) dis=$(get timers_disorder)
echo "| target | measured (median of $REPS) | goal | verdict |"
echo "|---|---:|---|---|"
echo "| rpc, 100 callers, 1 session, pinned | $rpc calls/s | >= 100,000 | $(verdict "$rpc" '>=' 100000) |"
echo "| tango, 1 caller, sequential, one core | $t1 calls/s | >= 30,000 | $(verdict "$t1" '>=' 30000) |"
echo "| tango, 100 connections, total, pinned | $t100 calls/s | >= 90,000 (3 x 30,000) | $(verdict "$t100" '>=' 90000) |"
echo "| http, 10,000 GETs, 50 threads | $http req/s | >= 20,000 | $(verdict "$http" '>=' 20000) |"
echo "| socket.http, same GETs, sequential | $ls req/s | below socketloop.http | $(verdict "$ls" '<' "${http/-/0}") |"
echo "| rpc server under benches/loadgen (100 calls in flight, 1 connection) | $(get lg_rpc) calls/s, $(get lg_rpc_us) us CPU/call | (server side alone) | |"
echo "| http server (examples/http_server.lua) under benches/loadgen (50 connections) | $(get lg_http) req/s, $(get lg_http_us) us CPU/req | (server side alone) | |"
echo "| socketloop.http CPU per keep-alive GET vs wrk, same server, same run | $(cpu_line 'median client CPU per request:' | sed 's/ (goal.*//') | <= 1.5x wrk | $(cpu_line 'median client CPU per request:' | awk '{for (i = 1; i <= NF; i++) if ($i ~ /x$/ && $(i+1) == "wrk") { v = $i; sub(/x$/, "", v) }} END { if (v == "") print "no result"; else print (v <= 1.5 ? "met" : "not met") }') |"
echo "| socketloop.http CPU per GET vs examples/http_server.lua's serving it | $(cpu_line 'socketloop.http client vs the server serving it:' | sed 's/ (goal.*//') | <= 1.2x | $(cpu_line 'socketloop.http client vs the server serving it:' | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+x$/) { v = $i; sub(/x$/, "", v) }} END { if (v == "") print "no result"; else print (v <= 1.2 ? "met" : "not met") }') |"
echo "| timers, 100,000 sleepers, p99 lateness | $p99 ms | < 2 ms | $(verdict "$p99" '<' 2) |"
echo "| timers, woken out of deadline order | $dis | 0 | $(verdict "$dis" '<' 1) |"
echo
echo "raw figures: $OUT/targets.txt"
