//! socketloop: coroutine-based asynchronous TCP sockets for LuaJIT.
//!
//! Layout, one concept per file:
//! - [`reactor`]: the poll loop (mio), registrations and wait keys;
//! - [`scheduler`]: the scheduler's hot half (threads parked on sockets, resumed from
//!   the poll); the rest is `lua/socketloop/scheduler.lua`;
//! - [`timers`]: the timer heap and the loop clock;
//! - [`tcp`]: TCP sockets with LuaSocket's methods (`receive('*l')` is there), and
//!   [`tcp_lua`] their Lua face, on [`luastack`] (the Lua stack, read in place), with
//!   [`tcp_ffi`] the fast path of `receive` and `send` for LuaJIT's FFI;
//! - [`buffer`]: the receive buffer and patterns;
//! - [`sockopt`]: socket options; [`resolve`]: addresses; [`errors`]: error messages;
//! - [`watch`]: registrations for foreign descriptors (wrapped LuaSocket objects);
//! - [`blocking`]: waiting outside the loop; [`signals`]: SIGINT/SIGTERM for the runner;
//! - [`tango_text`]: tango's text parser; [`rpc_codec`]: the rpc codec; [`http_head`]: HTTP heads;
//! - [`bindings`]: the Rust functions the Lua layer calls; [`embedded`]: the Lua layer
//!   (`lua/`), compiled into the binary. The runner is `src/bin/socketloop/main.rs`.

pub mod bindings;
pub mod blocking;
pub mod buffer;
pub mod embedded;
pub mod errors;
pub mod http_head;
pub mod luastack;
pub mod reactor;
pub mod resolve;
pub mod rpc_codec;
pub mod scheduler;
pub mod signals;
pub mod sockopt;
pub mod tango_text;
pub mod tcp;
pub mod tcp_ffi;
pub mod tcp_lua;
pub mod timers;
pub mod watch;

use mlua::{Function, Lua, Table, Value};

// The library's unit tests run Lua, so they link the static LuaJIT that build.rs built.
#[cfg(test)]
#[link(name = "luajit", kind = "static", modifiers = "-bundle")]
extern "C" {}

/// Creates a loop in `lua` and returns the `socketloop` module table. With
/// `catch_signals`, SIGINT and SIGTERM stop the loop (the runner's choice; a host
/// program that loads the module keeps its own signal handling).
pub fn open(lua: &Lua, catch_signals: bool) -> mlua::Result<Table> {
    let reactor = reactor::Reactor::shared().map_err(mlua::Error::external)?;
    if catch_signals {
        reactor
            .borrow_mut()
            .catch_signals(&[libc::SIGINT, libc::SIGTERM])
            .map_err(mlua::Error::external)?;
    }
    let core = bindings::core_table(lua, &reactor)?;
    embedded::install(lua, core)
}

/// `require'socketloop'` from a stock LuaJIT.
#[mlua::lua_module]
fn socketloop(lua: &Lua) -> mlua::Result<Table> {
    open(lua, false)
}

/// Opens a submodule for `require'socketloop.<name>'` from a stock LuaJIT that has not
/// loaded `socketloop` yet: LuaJIT's all-in-one loader finds `luaopen_socketloop_<name>`
/// in this library. Loads the loop first, then runs the submodule's preload entry.
fn open_submodule(lua: &Lua, name: &str) -> mlua::Result<Value> {
    let require: Function = lua.globals().get("require")?;
    require.call::<Value>("socketloop")?;
    let package: Table = lua.globals().get("package")?;
    let preload: Table = package.get("preload")?;
    preload.get::<Function>(name)?.call(name)
}

#[mlua::lua_module]
fn socketloop_coro(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.coro")
}

#[mlua::lua_module]
fn socketloop_rpc(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.rpc")
}

#[mlua::lua_module]
fn socketloop_tango(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.tango")
}

#[mlua::lua_module]
fn socketloop_http(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.http")
}

#[mlua::lua_module]
fn socketloop_ltn12(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.ltn12")
}
