#!/usr/bin/env bash
# benches/udp_bench.sh - UDP echo on socketloop (loop.udp, benches/servers/udp_socketloop.lua)
# beside raw mio (benches/rawecho --udp), and name lookups per second through the
# resolver pool (benches/resolve_bench.lua). Prints a table; called by benches/run.sh.
#
# The load generator (`rawecho --udp-load`) sends COUNT datagrams of 32 bytes with WINDOW
# in flight to 127.0.0.1; the server runs pinned to CPU $SERVER_CPU, the generator to
# $LOADGEN_CPU. Figures: datagrams per second, and the server's CPU time per datagram
# (utime + stime from /proc, over the run), medians of REPS runs interleaved.
# Knobs: COUNT=200000 WINDOW=32 REPS=5 SERVER_CPU=0 LOADGEN_CPU=1 PORT=24500
#        LOOKUPS=20000 (lookups per resolver run)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
COUNT=${COUNT:-200000}
WINDOW=${WINDOW:-32}
REPS=${REPS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT:-24500}
LOOKUPS=${LOOKUPS:-20000}
RAW=$ROOT/benches/rawecho/target/release/rawecho
RUNNER=$ROOT/target/release/socketloop
TICKS=$(getconf CLK_TCK)

[ -x "$RAW" ] || (cd benches/rawecho && cargo build --release -q) || exit 1
[ -x "$RUNNER" ] || cargo build --release -q || exit 1

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# one_run NAME -> "per_second cpu_us_per_datagram"
one_run() {
  local name=$1 pid
  PORT=$((PORT + 1))
  case $name in
    raw) taskset -c "$SERVER_CPU" "$RAW" --udp "$PORT" 2>/dev/null & pid=$! ;;
    socketloop) taskset -c "$SERVER_CPU" "$RUNNER" benches/servers/udp_socketloop.lua "$PORT" 2>/dev/null & pid=$! ;;
  esac
  sleep 0.5
  local before after out
  before=$(cpu_ticks "$pid")
  out=$(timeout 150 taskset -c "$LOADGEN_CPU" "$RAW" --udp-load "$PORT" "$COUNT" "$WINDOW")
  after=$(cpu_ticks "$pid")
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  local n rate
  n=$(echo "$out" | awk '{print $2}')
  rate=$(echo "$out" | awk '{print $8}')
  awk -v r="$rate" -v t=$((after - before)) -v hz="$TICKS" -v n="$n" \
    'BEGIN { printf "%d %.2f\n", r, (n > 0 ? t / hz / n * 1e6 : 0) }'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2)}'; }

declare -A rates cpus
for rep in $(seq "$REPS"); do
  for s in raw socketloop; do
    read -r r c < <(one_run "$s")
    rates[$s]+="$r "; cpus[$s]+="$c "
  done
done

echo "UDP echo, $COUNT datagrams of 32 bytes, $WINDOW in flight, median of $REPS"
printf '%-12s %14s %22s %10s\n' server datagrams/s "server CPU us/datagram" "CPU ratio"
raw_cpu=$(echo "${cpus[raw]}" | tr ' ' '\n' | grep . | median)
for s in raw socketloop; do
  r=$(echo "${rates[$s]}" | tr ' ' '\n' | grep . | median)
  c=$(echo "${cpus[$s]}" | tr ' ' '\n' | grep . | median)
  printf '%-12s %14s %22s %10s\n' "$s" "$r" "$c" "$(awk -v c="$c" -v r="$raw_cpu" 'BEGIN { printf "%.2fx", (r > 0 ? c / r : 0) }')"
done
echo
"$RUNNER" benches/resolve_bench.lua "$LOOKUPS"
