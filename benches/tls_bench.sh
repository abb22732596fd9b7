#!/usr/bin/env bash
# benches/tls_bench.sh - TLS benchmarks (not tests), ratios measured in one run:
#   1. TLS line echo, the server's CPU time per message at 1, 100 and 1,000 connections:
#      socketloop (benches/servers/tls_socketloop.lua) against the raw mio + rustls echo
#      (benches/rawecho --tls; goal: within 1.15x) and copas + LuaSec
#      (benches/servers/tls_copas.lua; goal: ahead);
#   2. full handshakes per second, the server on one core (goal: at least 0.9x raw);
#   3. bytes per idle TLS connection with 1,000 held (the server's RSS growth; goal: at
#      most half of copas + LuaSec's);
#   4. https keep-alive GETs per second through socketloop.http with 50 threads against
#      examples/http_server.lua over TLS (goal: at least 10,000/s), and curl's time for
#      the same 100 URLs beside socketloop.http's.
# The load comes from benches/rawecho --tls-load (mio + rustls, the same TLS stack as the
# raw server). Certificates are made here with openssl (ECDSA P-256). Each server runs
# pinned to CPU $SERVER_CPU, the load to CPU $LOADGEN_CPU; traffic to 127.0.0.1 only;
# every run is bounded; the script stops only the processes it started, by PID.
#
# Knobs: LEVELS="1:20000 100:500 1000:50" (connections:messages each), REPS=3,
#   HANDSHAKES=3000, IDLE_CONNS=1000, GETS=20000, SKIP_INSTALL=1, OUT=dir,
#   SERVERS="raw socketloop copas", SERVER_CPU=0 LOADGEN_CPU=1, PORT_BASE=24000
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
LEVELS=${LEVELS:-"1:20000 100:500 1000:50"}
REPS=${REPS:-3}
HANDSHAKES=${HANDSHAKES:-3000}
IDLE_CONNS=${IDLE_CONNS:-1000}
GETS=${GETS:-20000}
SERVERS=${SERVERS:-"raw socketloop copas"}
SERVER_CPU=${SERVER_CPU:-0}
LOADGEN_CPU=${LOADGEN_CPU:-1}
PORT=${PORT_BASE:-24000}
OUT=${OUT:-$ROOT/benches/results/tls-$(date +%Y%m%d-%H%M%S)}
RAW=$ROOT/benches/rawecho/target/release/rawecho
RUNNER=$ROOT/target/release/socketloop
mkdir -p "$OUT/logs"
RESULTS=$OUT/results.txt
: >"$RESULTS"
say() { echo "[$(date +%T)] $*" | tee -a "$OUT/run.log" >&2; }

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  say "installing luajit lua-socket lua-copas lua-sec openssl curl (SKIP_INSTALL=1 skips this)"
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      luajit lua-socket lua-copas lua-sec openssl curl; } >"$OUT/logs/apt.log" 2>&1 \
    || { say "apt-get failed, see $OUT/logs/apt.log"; exit 1; }
fi
say "building socketloop and benches/rawecho (release)"
cargo build --release -q || exit 1
(cd benches/rawecho && cargo build --release -q) || exit 1

# ------------------------------------------------------------- certificates
C=$OUT/certs
mkdir -p "$C"
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
{
  openssl req -x509 $EC -keyout "$C/ca.key" -out "$C/ca.pem" -days 2 -subj "/CN=bench CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
  openssl req $EC -keyout "$C/server.key" -out "$C/server.csr" -subj "/CN=localhost"
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$C/server.ext"
  openssl x509 -req -in "$C/server.csr" -CA "$C/ca.pem" -CAkey "$C/ca.key" -CAcreateserial \
    -days 2 -out "$C/server.pem" -extfile "$C/server.ext"
} >"$OUT/logs/certs.log" 2>&1 || { say "openssl failed"; exit 1; }

# Pinning prefixes (taskset execs the command, so $! is the server's own PID).
SRVPIN=() LOADPIN=()
if command -v taskset >/dev/null; then
  SRVPIN=(taskset -c "$SERVER_CPU") LOADPIN=(taskset -c "$LOADGEN_CPU")
fi

next_port() {
  PORT=$((PORT + 1))
  while (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do PORT=$((PORT + 1)); done
}

# start_server NAME: starts it on a fresh port; sets SPID and SPORT.
start_server() {
  next_port
  SPORT=$PORT
  local log=$OUT/logs/server-$1-$SPORT.log
  case $1 in
    raw) "${SRVPIN[@]}" "$RAW" --tls "$C/server.pem" "$C/server.key" "$SPORT" 2>"$log" & ;;
    socketloop) "${SRVPIN[@]}" "$RUNNER" benches/servers/tls_socketloop.lua "$SPORT" "$C/server.pem" "$C/server.key" 2>"$log" & ;;
    copas) "${SRVPIN[@]}" luajit benches/servers/tls_copas.lua "$SPORT" "$C/server.pem" "$C/server.key" 2>"$log" & ;;
  esac
  SPID=$!
  for _ in $(seq 200); do
    (exec 3<>/dev/tcp/127.0.0.1/$SPORT) 2>/dev/null && return 0
    sleep 0.05
  done
  say "$1 did not start (see $log)"
  return 1
}
stop_server() { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null; }

# load MODE CONNS MSGS [WINDOW]: runs the load against the server; prints its RESULT line.
load() {
  timeout 300 "${LOADPIN[@]}" "$RAW" --tls-load "$SPORT" "$C/ca.pem" "$1" "$2" "$3" 32 "${4:-100}" 2 240 "$SPID" \
    2>>"$OUT/logs/load.log" | grep '^RESULT'
}
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "nan"}'; }

# ----------------------------------------------------------------- 1. echo
say "echo: levels $LEVELS, servers $SERVERS, $REPS repetitions"
for rep in $(seq "$REPS"); do
  for level in $LEVELS; do
    conns=${level%%:*} msgs=${level##*:}
    for s in $SERVERS; do
      start_server "$s" || continue
      r=$(load echo "$conns" "$msgs")
      stop_server
      us=$(echo "$r" | field server_cpu_us_per_msg)
      echo "echo $s $conns $rep ${us:-nan}" >>"$RESULTS"
      say "echo $s conns=$conns rep=$rep: ${us:-failed} us/msg"
    done
  done
done

# ------------------------------------------------------------ 2. handshakes
say "handshakes: $HANDSHAKES per server, 16 in flight"
for rep in $(seq "$REPS"); do
  for s in $SERVERS; do
    start_server "$s" || continue
    r=$(load handshakes 0 "$HANDSHAKES" 16)
    stop_server
    echo "handshakes $s $rep $(echo "$r" | field per_second) $(echo "$r" | field server_cpu_us_per_handshake)" >>"$RESULTS"
    say "handshakes $s rep=$rep: $(echo "$r" | field per_second)/s"
  done
done

# ------------------------------------------------------------------ 3. idle
say "idle: $IDLE_CONNS connections held"
for s in $SERVERS; do
  start_server "$s" || continue
  sleep 0.5
  before=$(awk '/^VmRSS/{print $2}' "/proc/$SPID/status")
  r=$(load idle "$IDLE_CONNS" 0)
  stop_server
  after=$(echo "$r" | field server_rss_kib)
  per=$(( (${after:-0} - ${before:-0}) * 1024 / IDLE_CONNS ))
  echo "idle $s $IDLE_CONNS $before ${after:-nan} $per" >>"$RESULTS"
  say "idle $s: RSS ${before} KiB -> ${after:-?} KiB, $per bytes per connection"
done

# ----------------------------------------------------------------- 4. https
say "https: $GETS keep-alive GETs through socketloop.http, 50 threads, against examples/http_server.lua over TLS"
next_port
"${SRVPIN[@]}" "$RUNNER" examples/http_server.lua 127.0.0.1 "$PORT" "$C/server.pem" "$C/server.key" \
  >"$OUT/logs/https-server.log" 2>&1 &
HPID=$!
for _ in $(seq 200); do grep -q listening "$OUT/logs/https-server.log" 2>/dev/null && break; sleep 0.05; done
URL="https://localhost:$PORT/bench"
for rep in $(seq "$REPS"); do
  line=$(SSL_CERT_FILE=$C/ca.pem "${LOADPIN[@]}" "$RUNNER" benches/http_bench.lua socketloop "$URL" "$GETS" 50)
  echo "https socketloop $rep $(echo "$line" | awk '{for (i=1;i<=NF;i++) if ($i=="req/s") print $(i-1)}')" >>"$RESULTS"
  say "https rep=$rep: $line"
done
urls=$(for i in $(seq 100); do printf '%s ' "$URL"; done)
t0=$(date +%s.%N)
curl -s --cacert "$C/ca.pem" $urls >/dev/null
t1=$(date +%s.%N)
ours=$(SSL_CERT_FILE=$C/ca.pem "$RUNNER" benches/http_bench.lua socketloop "$URL" 100 50 | awk '{for (i=1;i<=NF;i++) if ($i=="s") print $(i-1)}')
echo "curl100 $(echo "$t1 - $t0" | bc -l) $ours" >>"$RESULTS"
kill "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null

# ----------------------------------------------------------------- report
{
  echo "## TLS benchmarks ($(date -u +'%Y-%m-%d %H:%M UTC'), $(nproc) cores, medians of $REPS)"
  echo
  echo "| connections | raw mio+rustls us/msg | socketloop us/msg | copas+LuaSec us/msg | socketloop/raw | copas/socketloop |"
  echo "|---|---|---|---|---|---|"
  for level in $LEVELS; do
    conns=${level%%:*}
    raw=$(awk -v c="$conns" '$1=="echo" && $2=="raw" && $3==c {print $5}' "$RESULTS" | median)
    sl=$(awk -v c="$conns" '$1=="echo" && $2=="socketloop" && $3==c {print $5}' "$RESULTS" | median)
    co=$(awk -v c="$conns" '$1=="echo" && $2=="copas" && $3==c {print $5}' "$RESULTS" | median)
    printf '| %s | %s | %s | %s | %.2fx | %.2fx |\n' "$conns" "$raw" "$sl" "$co" \
      "$(echo "$sl / $raw" | bc -l 2>/dev/null || echo 0)" "$(echo "$co / $sl" | bc -l 2>/dev/null || echo 0)"
  done
  echo
  echo "| server | handshakes/s | server CPU us/handshake |"
  echo "|---|---|---|"
  for s in $SERVERS; do
    hs=$(awk -v s="$s" '$1=="handshakes" && $2==s {print $4}' "$RESULTS" | median)
    cpu=$(awk -v s="$s" '$1=="handshakes" && $2==s {print $5}' "$RESULTS" | median)
    echo "| $s | $hs | $cpu |"
  done
  echo
  echo "| server | bytes per idle TLS connection ($IDLE_CONNS held) |"
  echo "|---|---|"
  for s in $SERVERS; do
    echo "| $s | $(awk -v s="$s" '$1=="idle" && $2==s {print $6}' "$RESULTS") |"
  done
  echo
  echo "https keep-alive GETs/s, socketloop.http, 50 threads: $(awk '$1=="https" {print $4}' "$RESULTS" | median)"
  echo "100 URLs: curl $(awk '$1=="curl100" {printf "%.3f", $2}' "$RESULTS") s, socketloop.http $(awk '$1=="curl100" {print $3}' "$RESULTS") s"
} | tee "$OUT/report.md"
