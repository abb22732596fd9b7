#!/usr/bin/env bash
# socketloop.http's CPU per request beside wrk's, against the same local server in one
# run (not a test): keep-alive GETs of one small page from examples/http_server.lua,
# pinned to CPU $SERVER_CPU, by wrk (1 thread, CONNS connections, SECONDS seconds) and by
# socketloop.http (CONNS loop threads, as many requests as wrk made, at most MAXREQ),
# each pinned to CPU $CLIENT_CPU. For each client it prints requests, requests/s, the
# client's CPU per request (user + system, of the client process alone) and the
# server's CPU per request during that run; then the ratios. REPS runs, interleaved.
#
#   benches/http_client_cpu.sh              # CONNS=50 SECONDS_PER_RUN=3 REPS=3
#   CLIENT_BIN=/other/tree/target/release/socketloop benches/http_client_cpu.sh
#                                           # another build's client, this tree's server
#
# The issue's goals: socketloop.http at most 1.5x wrk's CPU per request, and within
# 1.2x of the server's own CPU per request serving it. Last, one more run of the client
# with the collector stopped prints the Lua garbage it makes per request. Needs wrk
# (Debian: wrk). It builds and measures the release profile (LTO) unless the
# environment overrides it (CARGO_PROFILE_RELEASE_LTO=false ...).
# Traffic to 127.0.0.1 only; every run bounded in time; stops only what it started.
set -u
cd "$(dirname "$0")/.."
CONNS=${CONNS:-50}
SECS=${SECONDS_PER_RUN:-3}
REPS=${REPS:-3}
MAXREQ=${MAXREQ:-200000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PATH_=${BENCH_PATH:-/bench}
bin=$PWD/target/release/socketloop
client_bin=${CLIENT_BIN:-$bin}
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
cargo build --release -q || exit 1

out=$(mktemp)
taskset -c "$SERVER_CPU" "$bin" examples/http_server.lua 127.0.0.1 0 >"$out" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
base=$(sed -n 's|^listening on \(http://[0-9.:]*\)/$|\1|p' "$out")
[ -n "$base" ] || { echo "the server did not start" >&2; exit 1; }
url="$base$PATH_"
hz=$(getconf CLK_TCK)

# CPU seconds the server has used so far.
server_cpu() { awk -v hz="$hz" '{print ($14 + $15) / hz}' "/proc/$server/stat"; }

# run_wrk: prints "requests cpu_seconds wall_seconds".
run_wrk() {
  local t0 s0 s1 res cpu
  s0=$(server_cpu)
  res=$( { TIMEFORMAT='%U %S'; time taskset -c "$CLIENT_CPU" timeout $((SECS + 30)) \
      wrk -t1 -c"$CONNS" -d"${SECS}s" "$url" 2>&1; } 2>&1 )
  s1=$(server_cpu)
  local n cpu_line
  n=$(sed -n 's/^ *\([0-9][0-9]*\) requests in .*/\1/p' <<<"$res")
  cpu_line=$(tail -1 <<<"$res")
  local errs
  errs=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' <<<"$res")
  [ -z "$errs" ] || { echo "wrk saw $errs non-2xx responses" >&2; exit 1; }
  echo "$n $(awk '{print $1 + $2}' <<<"$cpu_line") $SECS $(awk -v a="$s0" -v b="$s1" 'BEGIN{print b - a}')"
}

# run_sl N: prints "requests cpu_seconds wall_seconds server_cpu_seconds".
run_sl() {
  local s0 s1 res
  s0=$(server_cpu)
  res=$(taskset -c "$CLIENT_CPU" timeout $((SECS * 20 + 30)) "$client_bin" benches/http_client_cpu.lua "$url" "$1" "$CONNS")
  s1=$(server_cpu)
  echo "$res $(awk -v a="$s0" -v b="$s1" 'BEGIN{print b - a}')"
}

echo "## keep-alive GETs of $url ($(curl -s "$url" | wc -c) byte body), $CONNS connections, server examples/http_server.lua on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU"
printf '%-26s %9s %10s %14s %14s\n' client requests req/s 'client us/req' 'server us/req'
results=$(mktemp)
for rep in $(seq "$REPS"); do
  set -- $(run_wrk)
  wn=$1
  awk -v c=wrk -v n="$1" -v cpu="$2" -v w="$3" -v s="$4" \
    'BEGIN{printf "%-26s %9d %10.0f %14.2f %14.2f\n", c, n, n / w, cpu * 1e6 / n, s * 1e6 / n}' | tee -a "$results"
  [ "$wn" -gt "$MAXREQ" ] && wn=$MAXREQ
  set -- $(run_sl "$wn")
  awk -v c=socketloop.http -v n="$1" -v cpu="$2" -v w="$3" -v s="$4" \
    'BEGIN{printf "%-26s %9d %10.0f %14.2f %14.2f\n", c, n, n / w, cpu * 1e6 / n, s * 1e6 / n}' | tee -a "$results"
done
# medians and ratios
awk '
  { cpu[$1] = cpu[$1] " " $4; srv[$1] = srv[$1] " " $5 }
  function median(list,   a, n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  END {
    w = median(cpu["wrk"]); s = median(cpu["socketloop.http"]); sv = median(srv["socketloop.http"])
    printf "median client CPU per request: socketloop.http %.2f us, wrk %.2f us: %.2fx wrk (goal <= 1.5x)\n", s, w, s / w
    printf "socketloop.http client vs the server serving it: %.2f us vs %.2f us: %.2fx (goal <= 1.2x)\n", s, sv, s / sv
  }' "$results"
rm -f "$results"
garbage=$(taskset -c "$CLIENT_CPU" timeout 120 "$client_bin" benches/http_client_cpu.lua "$url" 20000 "$CONNS" garbage)
echo "socketloop.http Lua garbage per request: ${garbage#garbage_bytes_per_request } bytes (20,000 requests, collector stopped)"
