#!/usr/bin/env bash
# benches/run.sh - line echo on socketloop beside its peers (copas, luv, cqueues, a plain
# LuaSocket select loop) and a raw Rust mio server (the floor), on one machine in one run.
#
#   benches/run.sh                          # install peers, build, run, print the table
#   SKIP_INSTALL=1 REPS=1 benches/run.sh    # quick
#
# Each server runs pinned to CPU $SERVER_CPU, the load generator (benches/loadgen) to
# CPU $LOADGEN_CPU; a fresh server per run; repetitions interleaved (rep 1 of everything,
# then rep 2, ...); medians reported. The load generator usually saturates first on a
# 2-core machine, so the figure of merit is the server's CPU time per message.
# Traffic goes to 127.0.0.1 only; every run is bounded in messages and in time; the
# script stops only the processes it started, by PID.
#
# Knobs (environment):
#   SKIP_INSTALL=1       do not apt-get the peers (luajit lua-socket lua-copas lua-luv
#                        lua-cqueues lua-coxpcall wrk nginx apache2-utils)
#   SERVERS="raw socketloop luv cqueues select copas copas-api"
#                        copas-api: benches/servers/copas.lua, the copas program
#                        itself, on socketloop.copas (socketloop --copas)
#   LEVELS="1:20000 100:1000 1000:100"   echo runs, connections:messages per connection
#   WARMUP_DIV=10        untimed echoes per connection first: messages/WARMUP_DIV (at least 1)
#   SIZE=32              bytes per line, newline included
#   REPS=5               repetitions of every run (this VM moves a run by 10-20%)
#   IDLE="1000 19000"    idle-connection runs: open N, one echo each, hold, one more echo
#                        each; N is capped by the hard fd limit less 100 ("" = none)
#   HOLD=2               seconds the idle connections are held before the RSS sample
#   TIMEOUT=60           seconds one load-generator run may take
#   SERVER_CPU=0 LOADGEN_CPU=1
#   PORT_BASE=23000      ports are taken from here up, skipping ones in use
#   OUT=benches/results/<timestamp>   where runs, logs and the tables go
#   CHART=docs/performance.svg        the generated chart ("" = none)
#   HTTP=1               the HTTP server beside nginx (benches/httpserver.sh: wrk -t1 at
#                        HTTP_CONNS="50 500", HTTP_SECS=5 s per run; 0 = skip)
#   TARGETS=1            then run benches/targets.sh (rpc, tango, http, timers; 0 = skip)
#   COORD=1              then benches/queue.sh (queue hand-offs; COPAS_PATH: copas 4 beside)
#                        and benches/workers.sh (--workers 2 against 1; 0 = skip)
#   UDP=1                then run benches/udp_bench.sh (UDP echo vs raw mio, lookups/s; 0 = skip)
#   TLS=1                then run benches/tls_bench.sh (TLS echo, handshakes, idle memory,
#                        https GETs; 0 = skip)
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
SERVERS=${SERVERS:-"raw socketloop luv cqueues select copas copas-api"}
LEVELS=${LEVELS:-"1:20000 100:1000 1000:100"}
WARMUP_DIV=${WARMUP_DIV:-10}
SIZE=${SIZE:-32}
REPS=${REPS:-5}
IDLE=${IDLE-"1000 19000"}
HOLD=${HOLD:-2}
TIMEOUT=${TIMEOUT:-60}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT_BASE:-23000}
OUT=${OUT:-$ROOT/benches/results/$(date +%Y%m%d-%H%M%S)}
CHART=${CHART-$ROOT/docs/performance.svg}
LG=$ROOT/benches/loadgen/target/release/loadgen
RAW=$ROOT/benches/rawecho/target/release/rawecho
RUNNER=$ROOT/target/release/socketloop

mkdir -p "$OUT/logs"
RESULTS=$OUT/results.txt
: >"$RESULTS"
say() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log" >&2; }

# ------------------------------------------------------------------ install
if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  say "installing the peers from Debian (SKIP_INSTALL=1 skips this)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      luajit lua-socket lua-copas lua-luv lua-cqueues lua-coxpcall wrk nginx apache2-utils; } >"$OUT/logs/apt.log" 2>&1 \
    || { say "apt-get failed, see $OUT/logs/apt.log"; exit 1; }
fi

# -------------------------------------------------------------------- build
say "building socketloop, benches/loadgen, benches/rawecho (release)"
cargo build --release -q || { say "cargo build failed"; exit 1; }
for p in loadgen rawecho; do
  (cd "benches/$p" && cargo build --release -q) || { say "build of benches/$p failed"; exit 1; }
done

# ------------------------------------------------------- machine, versions
HARD_NOFILE=$(ulimit -Hn)
{
  echo "date: $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo "cpu: $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores online"
  echo "memory: $(awk '/^MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel: $(uname -sr)"
  echo "fd limit (hard): $HARD_NOFILE"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version 2>/dev/null)"
  echo "luajit: $(luajit -v 2>&1)"
  for p in lua-socket lua-copas lua-luv lua-cqueues lua-coxpcall; do
    echo "$p: $(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo missing)"
  done
  echo "socketloop: $(git -C "$ROOT" describe --always --dirty 2>/dev/null)"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ------------------------------------------------------------------ servers
server_cmd() { # name port
  case $1 in
    raw)        echo "$RAW $2" ;;
    socketloop) echo "$RUNNER $ROOT/benches/servers/socketloop.lua $2" ;;
    copas|luv|cqueues|select) echo "luajit $ROOT/benches/servers/$1.lua $2" ;;
    copas-api)  echo "$RUNNER --copas $ROOT/benches/servers/copas.lua $2" ;;
    *) return 1 ;;
  esac
}

listening() { # port: is something listening on 127.0.0.1:port?
  local hex; hex=$(printf ':%04X' "$1")
  awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' /proc/net/tcp
}

next_port() {
  PORT=$((PORT + 1))
  while listening "$PORT"; do PORT=$((PORT + 1)); done
}

SRV=""
start_server() { # name port log
  local cmd i; cmd=$(server_cmd "$1" "$2") || return 1
  # shellcheck disable=SC2086
  ( ulimit -n "$HARD_NOFILE" 2>/dev/null; exec taskset -c "$SERVER_CPU" $cmd ) >"$3" 2>&1 &
  SRV=$!
  for i in $(seq 100); do
    kill -0 "$SRV" 2>/dev/null || return 1
    listening "$2" && return 0
    sleep 0.05
  done
  return 1
}

stop_server() {
  if [ -n "$SRV" ]; then
    kill "$SRV" 2>/dev/null
    wait "$SRV" 2>/dev/null
    SRV=""
  fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

loadgen() { # args...: the load generator on its CPU, bounded in time
  ( ulimit -n "$HARD_NOFILE" 2>/dev/null
    exec timeout -k 5 $((TIMEOUT + 15)) taskset -c "$LOADGEN_CPU" "$LG" --timeout "$TIMEOUT" --size "$SIZE" "$@" )
}

# one run: kind server conns msgs rep  ->  one line in results.txt
run_one() {
  local kind=$1 s=$2 c=$3 m=$4 rep=$5 tag res alive note w
  tag=$kind-$s-c$c-r$rep
  next_port
  if ! start_server "$s" "$PORT" "$OUT/logs/$tag.server.log"; then
    say "$tag: server did not start (see logs/$tag.server.log)"
    echo "kind=$kind server=$s conns=$c rep=$rep status=nostart" >>"$RESULTS"
    stop_server
    return
  fi
  if [ "$kind" = echo ]; then
    w=$((m / WARMUP_DIV)); [ "$w" -ge 1 ] || w=1
    res=$(loadgen --port "$PORT" --server-pid "$SRV" --conns "$c" --msgs "$m" --warmup "$w" \
            2>"$OUT/logs/$tag.loadgen.log" | grep '^RESULT')
  else
    res=$(loadgen --port "$PORT" --server-pid "$SRV" --conns "$c" --msgs 0 --hold "$HOLD" \
            2>"$OUT/logs/$tag.loadgen.log" | grep '^RESULT')
  fi
  alive=1; kill -0 "$SRV" 2>/dev/null || alive=0
  stop_server
  [ -n "$res" ] || res="RESULT status=noresult"
  note=""
  if [ "$alive" = 0 ]; then
    note=$(grep -m1 -iE 'error|too many|bad argument|panic' "$OUT/logs/$tag.server.log" | tr -d '\t\r' | cut -c1-160)
  fi
  echo "kind=$kind server=$s conns=$c rep=$rep server_alive=$alive ${res#RESULT } note=$note" >>"$RESULTS"
  say "$tag: ${res#RESULT }$([ "$alive" = 0 ] && echo " (server died: $note)")"
}

# --------------------------------------------------------------------- runs
for rep in $(seq "$REPS"); do
  for lv in $LEVELS; do
    for s in $SERVERS; do run_one echo "$s" "${lv%%:*}" "${lv##*:}" "$rep"; done
  done
  for n in $IDLE; do
    max=$((HARD_NOFILE - 100))
    [ "$n" -le "$max" ] || n=$max
    for s in $SERVERS; do run_one idle "$s" "$n" 0 "$rep"; done
  done
done

if [ "${HTTP:-1}" = 1 ]; then
  say "the HTTP server beside nginx: benches/httpserver.sh"
  SKIP_INSTALL=1 REPS=$REPS CONNS=${HTTP_CONNS:-"50 500"} SECS=${HTTP_SECS:-5} OUT=$OUT \
    SERVER_CPU=$SERVER_CPU LOADGEN_CPU=$LOADGEN_CPU "$ROOT/benches/httpserver.sh" >/dev/null
fi

# ------------------------------------------------------------ table + chart
python3 "$ROOT/benches/report.py" "$OUT" | tee "$OUT/table.md"
if [ -n "$CHART" ]; then
  python3 "$ROOT/benches/chart.py" "$OUT/summary.json" "$CHART" && say "chart: $CHART"
fi
if [ "${TARGETS:-1}" = 1 ]; then
  say "the other targets (rpc, tango, http, timers): benches/targets.sh"
  REPS=$REPS OUT=$OUT "$ROOT/benches/targets.sh" | tee "$OUT/targets.md"
fi
if [ "${UDP:-1}" = 1 ]; then
  say "UDP echo and name lookups: benches/udp_bench.sh"
  REPS=$REPS SERVER_CPU=$SERVER_CPU LOADGEN_CPU=$LOADGEN_CPU "$ROOT/benches/udp_bench.sh" | tee "$OUT/udp.md"
fi
if [ "${TLS:-1}" = 1 ]; then
  say "TLS echo, handshakes, idle connections, https: benches/tls_bench.sh"
  REPS=$REPS SKIP_INSTALL=${SKIP_INSTALL:-0} SERVER_CPU=$SERVER_CPU LOADGEN_CPU=$LOADGEN_CPU \
    OUT=$OUT/tls "$ROOT/benches/tls_bench.sh" | tee "$OUT/tls.md"
fi
if [ "${COORD:-1}" = 1 ]; then
  say "queue hand-offs and --workers scaling: benches/queue.sh, benches/workers.sh"
  REPS=$REPS CPU=$SERVER_CPU "$ROOT/benches/queue.sh" | tee "$OUT/queue.md"
  REPS=$REPS SERVER_CPUS=$SERVER_CPU LOADGEN_CPUS=$LOADGEN_CPU "$ROOT/benches/workers.sh" | tee "$OUT/workers.md"
fi
say "results, per-run details (detail.md) and logs: $OUT"
