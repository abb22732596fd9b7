-- LuaRocks package of socketloop, built by cargo (Rust 1.80 or later on the PATH).
--   luarocks make                      in a checkout: builds, installs socketloop.so and
--                                      the `socketloop` runner into the rocks tree
--   CARGO_TARGET_DIR=dir luarocks make   reuses (or builds into) cargo's target dir there
package = "socketloop"
version = "scm-1"
source = {
   url = "git+https://example.invalid/socketloop.git",
}
description = {
   summary = "Coroutine-based asynchronous TCP sockets for LuaJIT, with the LuaSocket API",
   detailed = [[
      socketloop runs thousands of LuaSocket-style connections in coroutines on one
      thread: a Rust core (mio poll loop, timers, non-blocking sockets) under a thin Lua
      layer. It comes with an HTTP client (socketloop.http), RPC (socketloop.rpc,
      socketloop.tango), a copas 4 compatible API (socketloop.copas) and the
      `socketloop` runner, LuaJIT with the loop built in.
   ]],
   license = "MIT",
}
dependencies = {
   "lua >= 5.1, < 5.2",
}
build = {
   type = "command",
   build_command = [[
      cargo build --release --locked &&
      mkdir -p .rock &&
      cp "${CARGO_TARGET_DIR:-target}/release/libsocketloop.so" .rock/socketloop.so &&
      cp "${CARGO_TARGET_DIR:-target}/release/socketloop" .rock/socketloop
   ]],
   install = {
      lib = { socketloop = ".rock/socketloop.so" },
      bin = { socketloop = ".rock/socketloop" },
   },
}
