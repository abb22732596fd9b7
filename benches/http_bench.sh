#!/usr/bin/env bash
# HTTP client benchmark (not a test): N GETs (default 10,000) of one small page from
# examples/http_server.lua, a keep-alive HTTP/1.1 server on the loop in its own process,
# by socketloop.http over THREADS loop threads (default 50), under the runner and under
# stock luajit with the module; beside LuaSocket's socket.http doing the same one request
# after another, and copas (LuaSocket's socket.http in copas threads) when installed.
#
#   benches/http_bench.sh [N [THREADS [PATH]]]
#
# The server is pinned to CPU 0 and the clients to CPU 1 when taskset and two CPUs are
# there. Needs luajit and lua-socket (Debian); copas is optional (lua-copas).
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-10000}
threads=${2:-50}
path=${3:-/bench}

cargo build --release -q
bin=target/release/socketloop
export LUA_CPATH="$PWD/target/release/lib?.so;;"

server_cpu=() client_cpu=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

out=$(mktemp)
"${server_cpu[@]}" "$bin" examples/http_server.lua 127.0.0.1 0 >"$out" &
server=$!
trap 'kill $server 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q listening "$out" && break; sleep 0.05; done
base=$(sed -n 's|^listening on \(http://[0-9.:]*\)/$|\1|p' "$out")
[ -n "$base" ] || { echo "the server did not start" >&2; exit 1; }
url="$base$path"

echo "## $n GETs of $url ($(curl -s "$url" 2>/dev/null | wc -c) byte body), server: examples/http_server.lua"
echo
"${client_cpu[@]}" "$bin" benches/http_bench.lua socketloop "$url" "$n" "$threads"
"${client_cpu[@]}" luajit benches/http_bench.lua socketloop "$url" "$n" "$threads" | sed 's/^socketloop.http,/socketloop.http (luajit),/'
"${client_cpu[@]}" luajit benches/http_bench.lua luasocket "$url" "$n"
if [ -e /usr/share/lua/5.1/copas.lua ]; then
  "${client_cpu[@]}" luajit benches/http_bench.lua copas "$url" "$n" "$threads"
else
  echo "copas: not installed (apt-get install lua-copas)"
fi
echo
echo "server: $(curl -s "$base/stats" 2>/dev/null || echo 'stats unavailable')"
