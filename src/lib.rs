//! socketloop: coroutine-based asynchronous TCP sockets for LuaJIT.
//!
//! Layout, one concept per file:
//! - [`reactor`]: the poll loop (mio), registrations and wait keys;
//! - [`timers`]: the timer heap and the loop clock;
//! - [`tcp`]: TCP sockets with LuaSocket's methods (`receive('*l')` is there);
//! - [`buffer`]: the receive buffer and patterns;
//! - [`sockopt`]: socket options; [`resolve`]: addresses; [`errors`]: error messages;
//! - [`watch`]: registrations for foreign descriptors (wrapped LuaSocket objects);
//! - [`blocking`]: waiting outside the loop; [`signals`]: SIGINT/SIGTERM for the runner;
//! - [`bindings`]: the Rust functions the Lua layer calls; [`embedded`]: the Lua layer
//!   (`lua/`), compiled into the binary. The scheduler of Lua threads is
//!   `lua/socketloop/scheduler.lua`; the runner is `src/bin/socketloop/main.rs`.

pub mod bindings;
pub mod blocking;
pub mod buffer;
pub mod embedded;
pub mod errors;
pub mod http_head;
pub mod reactor;
pub mod resolve;
pub mod rpc_codec;
pub mod signals;
pub mod sockopt;
pub mod tcp;
pub mod timers;
pub mod watch;

use mlua::{Lua, Table};

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
