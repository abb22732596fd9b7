#!/usr/bin/env bash
# benches/queue.sh - queue hand-offs between two loop threads (benches/queue.lua) under
# the runner and under stock luajit with the module, beside copas 4's copas.queue when
# one is available. Prints a table of medians (items per second).
#
#   benches/queue.sh
#   COPAS_PATH=/path/to/copas4 benches/queue.sh
#
# Debian's lua-copas is copas 1.1.7, which has no queue (nor sleep): copas.queue came
# with copas 4. COPAS_PATH is a directory holding copas 4's copas.lua and copas/*.lua
# and its dependencies binaryheap.lua and timerwheel/init.lua (luarocks install copas
# puts them in one tree; lua-coxpcall and lua-socket come from Debian).
#
# Knobs: N=2000000 items per run, REPS=3, CPU=0 (taskset -c).
set -u
cd "$(dirname "$0")/.."
N=${N:-2000000}
REPS=${REPS:-3}
CPU=${CPU:-0}
COPAS_PATH=${COPAS_PATH:-}
cargo build --release -q || exit 1
OUT=$(mktemp -d)
for rep in $(seq "$REPS"); do
  taskset -c "$CPU" target/release/socketloop benches/queue.lua "$N" | sed 's/^/runner /' >>"$OUT/runs.txt"
  LUA_CPATH='target/release/lib?.so;;' taskset -c "$CPU" luajit benches/queue.lua "$N" | sed 's/^/luajit /' >>"$OUT/runs.txt"
  if [ -n "$COPAS_PATH" ]; then
    LUA_PATH="$COPAS_PATH/?.lua;$COPAS_PATH/?/init.lua;;" taskset -c "$CPU" luajit benches/queue.lua "$N" copas \
      | sed 's/^/copas /' >>"$OUT/runs.txt"
  fi
done
median() { sort -n | awk '{v[NR]=$1} END {if (NR==0) print "-"; else print v[int((NR+1)/2)]}'; }
get() { awk -v w="$1" -v r="$2" '$1 == w && $2 == r {print $3}' "$OUT/runs.txt" | median; }
echo "queue hand-offs, items/s (medians of $REPS, $N items per run, one core)"
echo
echo "| run | socketloop (runner) | socketloop (luajit + module) | copas 4 copas.queue |"
echo "|---|---|---|---|"
for r in capacity-1 capacity-64 unbounded ping-pong; do
  c=$(get copas "$r"); [ "$c" = "-" ] && c="(no such queue)"
  [ -z "$COPAS_PATH" ] && c="(COPAS_PATH not set)"
  echo "| $r | $(get runner "$r") | $(get luajit "$r") | $c |"
done
rm -rf "$OUT"
