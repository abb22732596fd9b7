//! socketloop: coroutine-based asynchronous TCP sockets for LuaJIT.
//!
//! The tree is the architecture:
//! - [`rt`]: the runtime underneath, which never touches Lua: the poll loop and its
//!   registrations ([`rt::reactor`]), timers and the loop clock, signals, and waiting
//!   outside the loop;
//! - [`net`]: sockets and their protocol logic: TCP with LuaSocket's methods
//!   (`receive('*l')` is [`net::tcp`] on [`net::buffer`]), socket options, addresses,
//!   error words;
//! - [`lua`]: everything that binds Lua: the Lua stack helpers, the socket methods as
//!   Lua sees them and their FFI fast path, the scheduler's hot half, the `socketloop.core`
//!   table and the Lua layer (`lua/`) compiled into the binary;
//! - [`codec`]: wire formats: the rpc codec, tango's text parser, HTTP heads.
//!
//! The runner is `src/bin/socketloop/`.

pub mod codec;
pub mod lua;
pub mod net;
pub mod rt;

use mlua::{Function, Lua, Table, Value};

// The library's unit tests run Lua, so they link the static LuaJIT that build.rs built.
#[cfg(test)]
#[link(name = "luajit", kind = "static", modifiers = "-bundle")]
extern "C" {}

/// Creates a loop in `lua` and returns the `socketloop` module table. With
/// `catch_signals`, the loop catches SIGINT and SIGTERM (the runner's choice: see its
/// main.lua for what they do; a host program that loads the module keeps its own signal
/// handling, and scripts catch signals with `loop.onsignal`), and SIGQUIT, for which
/// the loop writes its thread dump (`loop.dump`) and goes on.
pub fn open(lua: &Lua, catch_signals: bool) -> mlua::Result<Table> {
    open_runner(lua, catch_signals).map(|installed| installed.socketloop)
}

/// [`open`] for the runner, which also gets the scheduler (internal to the loop's
/// modules: no script can `require` it).
pub fn open_runner(
    lua: &Lua,
    catch_signals: bool,
) -> mlua::Result<crate::lua::embedded::Installed> {
    let reactor = crate::rt::reactor::Reactor::shared().map_err(mlua::Error::external)?;
    if catch_signals {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            reactor
                .borrow_mut()
                .catch_signal(signal, true)
                .map_err(mlua::Error::external)?;
        }
        reactor
            .borrow_mut()
            .catch_signal(libc::SIGQUIT, false)
            .map_err(mlua::Error::external)?;
    }
    let core = crate::lua::core_table::core_table(lua, &reactor)?;
    let private = crate::lua::core_table::private_table(lua, &reactor)?;
    crate::lua::embedded::install(lua, core, private)
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

#[mlua::lua_module]
fn socketloop_httpserver(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.httpserver")
}

#[mlua::lua_module]
fn socketloop_copas(lua: &Lua) -> mlua::Result<Value> {
    open_submodule(lua, "socketloop.copas")
}
