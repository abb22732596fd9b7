#!/usr/bin/env bash
# benches/httpserver.sh - the HTTP server beside nginx: examples/http_server.lua (on
# socketloop.httpserver, under the runner) and nginx from Debian (benches/nginx.conf.in:
# one process, no access log), both answering GET / with the same 16 bytes, under
# `wrk -t1` with keep-alive at each connection count. The figure of merit is the
# server's CPU time per request (user + system, /proc/<pid>/stat, over the timed run),
# as in benches/run.sh: on two cores the load generator saturates before the server.
#
#   benches/httpserver.sh                  # REPS=5, CONNS="50 500", SECS=5
#   REPS=1 SECS=2 benches/httpserver.sh
#
# Each run: a fresh server pinned to CPU $SERVER_CPU, a 1 s wrk warm-up, then a timed wrk
# run of $SECS s pinned to CPU $LOADGEN_CPU. Repetitions interleaved (socketloop, nginx,
# socketloop, ...). Appends one line per run to $OUT/results.txt (kind=http) for
# benches/report.py and prints the table. Traffic to 127.0.0.1 only; every run bounded in
# time; stops only the processes it started, by PID. Needs wrk and nginx (Debian
# packages wrk, nginx; installed unless SKIP_INSTALL=1).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-5}
CONNS=${CONNS:-"50 500"}
SECS=${SECS:-5}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
OUT=${OUT:-$ROOT/benches/results/http-$(date +%Y%m%d-%H%M%S)}
RUNNER=$ROOT/target/release/socketloop
NGINX=${NGINX:-/usr/sbin/nginx}
mkdir -p "$OUT/logs"
say() { echo "[$(date +%T)] $*" >&2; }

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk nginx; } \
    >"$OUT/logs/apt-http.log" 2>&1 || { say "apt-get failed, see $OUT/logs/apt-http.log"; exit 1; }
fi
[ -x "$RUNNER" ] || cargo build --release -q || exit 1
command -v wrk >/dev/null || { say "wrk is missing"; exit 1; }
[ -x "$NGINX" ] || { say "nginx is missing ($NGINX)"; exit 1; }
echo "nginx: $("$NGINX" -v 2>&1 | sed 's/.*: //'), wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)" >>"$OUT/machine.txt"

free_port() {
  "$RUNNER" -e "local l = require'socketloop' local s = l.tcp('127.0.0.1', 0) print((select(2, s:getsockname()))) s:close()"
}

listening() { # port
  local hex; hex=$(printf ':%04X' "$1")
  awk -v p="$hex" '$4 == "0A" && substr($2, length($2) - 4) == p {f = 1} END {exit !f}' /proc/net/tcp
}

SRV=""
stop_server() {
  if [ -n "$SRV" ]; then
    kill "$SRV" 2>/dev/null
    wait "$SRV" 2>/dev/null
    SRV=""
  fi
}
trap stop_server EXIT
trap 'stop_server; exit 130' INT TERM

start_server() { # name port log
  local dir
  case $1 in
    socketloop)
      ( ulimit -n "$(ulimit -Hn)" 2>/dev/null
        exec taskset -c "$SERVER_CPU" "$RUNNER" examples/http_server.lua 127.0.0.1 "$2" ) >"$3" 2>&1 &
      SRV=$! ;;
    nginx)
      dir=$OUT/nginx-$2
      mkdir -p "$dir"
      sed -e "s|@PORT@|$2|g" -e "s|@DIR@|$dir|g" benches/nginx.conf.in >"$dir/nginx.conf"
      ( ulimit -n "$(ulimit -Hn)" 2>/dev/null
        exec taskset -c "$SERVER_CPU" "$NGINX" -p "$dir" -c "$dir/nginx.conf" ) >"$3" 2>&1 &
      SRV=$! ;;
  esac
  for _ in $(seq 100); do
    kill -0 "$SRV" 2>/dev/null || return 1
    listening "$2" && return 0
    sleep 0.05
  done
  return 1
}

cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

run_one() { # server conns rep
  local s=$1 c=$2 rep=$3 port tag out u0 k0 u1 k1 n errs
  port=$(free_port)
  tag=http-$s-c$c-r$rep
  if ! start_server "$s" "$port" "$OUT/logs/$tag.server.log"; then
    say "$tag: server did not start (see logs/$tag.server.log)"
    echo "kind=http server=$s conns=$c rep=$rep status=nostart" >>"$OUT/results.txt"
    stop_server
    return
  fi
  timeout 30 taskset -c "$LOADGEN_CPU" wrk -t1 -c"$c" -d1s "http://127.0.0.1:$port/" >/dev/null 2>&1
  read -r u0 k0 < <(cpu_ticks "$SRV")
  out=$(timeout $((SECS + 30)) taskset -c "$LOADGEN_CPU" wrk -t1 -c"$c" -d"${SECS}s" "http://127.0.0.1:$port/" 2>&1)
  read -r u1 k1 < <(cpu_ticks "$SRV")
  stop_server
  echo "$out" >"$OUT/logs/$tag.wrk.log"
  n=$(echo "$out" | sed -n 's/^ *\([0-9]*\) requests in .*/\1/p')
  errs=$(echo "$out" | grep -cE 'Socket errors|Non-2xx')
  if [ -z "$n" ] || [ "$n" = 0 ] || [ "$errs" != 0 ]; then
    say "$tag: failed (see logs/$tag.wrk.log)"
    echo "kind=http server=$s conns=$c rep=$rep status=failed" >>"$OUT/results.txt"
    return
  fi
  local line
  line=$(awk -v n="$n" -v u0="$u0" -v k0="$k0" -v u1="$u1" -v k1="$k1" -v hz="$(getconf CLK_TCK)" -v secs="$SECS" \
    'BEGIN { us = 1e6 / hz / n
      printf "requests=%d req_per_s=%.0f server_us_per_req=%.3f user_us_per_req=%.3f sys_us_per_req=%.3f",
        n, n / secs, (u1 - u0 + k1 - k0) * us, (u1 - u0) * us, (k1 - k0) * us }')
  echo "kind=http server=$s conns=$c rep=$rep status=ok server_alive=1 $line" >>"$OUT/results.txt"
  say "$tag: $line"
}

for rep in $(seq "$REPS"); do
  for c in $CONNS; do
    for s in socketloop nginx; do run_one "$s" "$c" "$rep"; done
  done
done

python3 benches/report.py "$OUT" | tee "$OUT/http-table.md"
say "results and logs: $OUT"
