#!/usr/bin/env bash
# The two ways to install socketloop, each into a temporary directory removed afterwards:
#   1. `luarocks make` (Debian's luarocks) into a fresh rocks tree, then a script that
#      uses the installed module under stock luajit with `eval $(luarocks path)`, and the
#      installed runner;
#   2. `cargo install --path . --root <tmp>`, then the installed runner's --version and
#      --help.
# Both reuse cargo's target directory (CARGO_TARGET_DIR, default ./target), so after
# `cargo build --release` they rebuild little. Prints "install: N passed, N failed" and
# exits 1 on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
check() { # name, then a command that must succeed
  local name=$1; shift
  if "$@" >"$work/out" 2>&1; then
    passed=$((passed + 1)); echo "install: $name ... ok"
  else
    failed=$((failed + 1)); echo "install: $name ... FAILED"; sed 's/^/    /' "$work/out"
  fi
}

rock_script() {
  eval "$(luarocks --tree "$work/tree" path)"
  # Only the installed module: the checkout's target dir is not on the path.
  local out
  out=$(cd "$work" && luajit - <<'LUA'
local loop = require'socketloop'
assert(package.searchpath('socketloop', package.cpath):find('/tree/lib/lua/5.1/', 1, true))
local server = assert(loop.newserver('127.0.0.1', 0, function(skt)
  local line = skt:receive()
  skt:send(line:upper() .. '\n')
  skt:close()
end))
local _, port = server:getsockname()
loop.newthread(function()
  local c = assert(loop.connect('127.0.0.1', port))
  c:send('installed\n')
  print(c:receive())
  c:close()
  server:close()
end)
loop.start(10)
LUA
) || return 1
  [ "$out" = INSTALLED ] || { echo "got: $out"; return 1; }
  local v
  v=$("$work/tree/bin/socketloop" --version) || return 1
  echo "$v"
  [[ $v == "socketloop "*" (LuaJIT "*")" ]]
}

cargo_installed() {
  local v
  v=$("$work/root/bin/socketloop" --version) || return 1
  echo "$v"
  [[ $v == "socketloop $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1) (LuaJIT "*")" ]] || return 1
  "$work/root/bin/socketloop" --help | grep -- '--copas' >/dev/null || return 1
  echo 'print(require"socketloop"._VERSION)' | "$work/root/bin/socketloop" - | grep '^socketloop ' >/dev/null
}

check "luarocks make into a temporary tree" luarocks make --tree "$work/tree" socketloop-scm-1.rockspec
check "a script on the luarocks-installed module, and its runner" rock_script
check "cargo install --path . --root <tmp>" cargo install --quiet --path . --root "$work/root" --locked
check "the cargo-installed runner: --version, --help, a script" cargo_installed
echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
