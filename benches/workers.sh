#!/usr/bin/env bash
# benches/workers.sh - socketloop --workers N against --workers 1 on the line-echo and
# HTTP benchmarks: the same server script, the same load, only the number of workers
# changes. Prints a table of medians and each N's ratio to N=1.
#
#   benches/workers.sh                                  # this 2-core machine: server on
#                                                       # CPU 0, load generator on CPU 1
#   SERVER_CPUS=0-7 LOADGEN_CPUS="8 9 10 11" WORKERS="1 2 4 8" benches/workers.sh
#                                                       # a bigger machine
#
# Knobs (environment):
#   WORKERS="1 2"        worker counts to compare (the first is the baseline)
#   SERVER_CPUS=0        the CPUs the server (supervisor and workers) may use (taskset -c)
#   LOADGEN_CPUS=1       one benches/loadgen process per CPU listed, each pinned to it;
#                        their rates are added (one load generator is one thread)
#   CONNS=100            connections per load generator
#   ECHO_MSGS=2000       echoes per connection (line echo, 32-byte lines)
#   HTTP_REQS=500        keep-alive GETs per connection (examples/http_server.lua)
#   REPS=3               repetitions, interleaved; medians reported
#   TIMEOUT=60           seconds one load-generator run may take
# Traffic to 127.0.0.1 only; every run bounded in messages and time; the script stops
# only the servers it started, by PID (SIGTERM: the graceful shutdown of every worker).
set -u
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-"1 2"}
SERVER_CPUS=${SERVER_CPUS:-0}
LOADGEN_CPUS=${LOADGEN_CPUS:-1}
CONNS=${CONNS:-100}
ECHO_MSGS=${ECHO_MSGS:-2000}
HTTP_REQS=${HTTP_REQS:-500}
REPS=${REPS:-3}
TIMEOUT=${TIMEOUT:-60}
bin=target/release/socketloop
LG=benches/loadgen/target/release/loadgen
cargo build --release -q || exit 1
(cd benches/loadgen && cargo build --release -q) || exit 1

free_port() {
  "$bin" -e "local l = require'socketloop' local s = l.tcp('127.0.0.1', 0) print((select(2, s:getsockname()))) s:close()"
}

# run_one KIND N: starts the server with N workers, runs the load generators, stops the
# server; prints the total rate (messages or requests per second), or "-".
run_one() {
  local kind=$1 n=$2 port pid total=0 ok=1 outs=() i=0 lgpids=()
  port=$(free_port)
  if [ "$kind" = echo ]; then
    taskset -c "$SERVER_CPUS" "$bin" --workers "$n" benches/servers/socketloop.lua "$port" >/dev/null 2>&1 &
  else
    taskset -c "$SERVER_CPUS" "$bin" --workers "$n" examples/http_server.lua 127.0.0.1 "$port" >/dev/null 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do
    "$bin" -e "local l = require'socketloop' os.exit(l.connect('127.0.0.1', $port) and 0 or 1)" 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.2 # every worker listening
  for cpu in $LOADGEN_CPUS; do
    i=$((i + 1))
    if [ "$kind" = echo ]; then
      timeout -k 5 $((TIMEOUT + 15)) taskset -c "$cpu" "$LG" --port "$port" --conns "$CONNS" \
        --msgs "$ECHO_MSGS" --warmup 10 --timeout "$TIMEOUT" >"$OUT/lg.$i" 2>&1 &
    else
      timeout -k 5 $((TIMEOUT + 15)) taskset -c "$cpu" "$LG" --mode http --path /bench --port "$port" \
        --conns "$CONNS" --msgs "$HTTP_REQS" --timeout "$TIMEOUT" >"$OUT/lg.$i" 2>&1 &
    fi
    lgpids+=($!)
  done
  for p in "${lgpids[@]}"; do wait "$p"; done
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  for f in "$OUT"/lg.*; do
    case $(cat "$f") in
      *status=ok*) total=$(awk -v t="$total" '{for (i = 1; i <= NF; i++) if ($i ~ /^(msgs_)?per_s=/) {split($i, a, "="); t += a[2]}} END {print t}' "$f") ;;
      *) ok=0 ;;
    esac
    rm -f "$f"
  done
  if [ $ok = 1 ]; then echo "$total"; else echo "-"; fi
}

median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print "-"; else print v[int((NR+1)/2)]}'; }

OUT=$(mktemp -d)
: >"$OUT/runs.txt"
for rep in $(seq "$REPS"); do
  for n in $WORKERS; do
    for kind in echo http; do
      echo "$kind $n $(run_one "$kind" "$n")" >>"$OUT/runs.txt"
    done
  done
done

base=${WORKERS%% *}
echo "socketloop --workers N: $(nproc) cores; server on CPUs $SERVER_CPUS, load generators on $LOADGEN_CPUS;"
echo "$CONNS connections per load generator, medians of $REPS"
echo
echo "| workers | echo msgs/s | vs $base | http req/s | vs $base |"
echo "|---|---|---|---|---|"
get() { awk -v k="$1" -v n="$2" '$1 == k && $2 == n && $3 != "-" {print $3}' "$OUT/runs.txt" | median; }
be=$(get echo "$base"); bh=$(get http "$base")
for n in $WORKERS; do
  e=$(get echo "$n"); h=$(get http "$n")
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b}'; }
  echo "| $n | $e | $(ratio "$e" "$be") | $h | $(ratio "$h" "$bh") |"
done
rm -rf "$OUT"
