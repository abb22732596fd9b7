//! The Lua half of the runtime, compiled into both builds so no path setup is needed.
//! Submodules are registered in `package.preload` and compiled on first `require`.

use mlua::{Function, Lua, Table};

/// `(module name, file, source)` of every Lua module that ships inside the binary.
const MODULES: &[(&str, &str, &str)] = &[
    (
        "socketloop",
        "lua/socketloop.lua",
        include_str!("../lua/socketloop.lua"),
    ),
    (
        "socketloop.scheduler",
        "lua/socketloop/scheduler.lua",
        include_str!("../lua/socketloop/scheduler.lua"),
    ),
    (
        "socketloop.asocket",
        "lua/socketloop/asocket.lua",
        include_str!("../lua/socketloop/asocket.lua"),
    ),
    (
        "socketloop.coro",
        "lua/socketloop/coro.lua",
        include_str!("../lua/socketloop/coro.lua"),
    ),
    (
        "socketloop.rpc",
        "lua/socketloop/rpc.lua",
        include_str!("../lua/socketloop/rpc.lua"),
    ),
    (
        "socketloop.rpc_session",
        "lua/socketloop/rpc_session.lua",
        include_str!("../lua/socketloop/rpc_session.lua"),
    ),
    (
        "socketloop.rpc_cond",
        "lua/socketloop/rpc_cond.lua",
        include_str!("../lua/socketloop/rpc_cond.lua"),
    ),
    (
        "socketloop.rpc_policy",
        "lua/socketloop/rpc_policy.lua",
        include_str!("../lua/socketloop/rpc_policy.lua"),
    ),
    (
        "socketloop.rpc_server",
        "lua/socketloop/rpc_server.lua",
        include_str!("../lua/socketloop/rpc_server.lua"),
    ),
    (
        "socketloop.tango",
        "lua/socketloop/tango.lua",
        include_str!("../lua/socketloop/tango.lua"),
    ),
    (
        "socketloop.tango_server",
        "lua/socketloop/tango_server.lua",
        include_str!("../lua/socketloop/tango_server.lua"),
    ),
    (
        "socketloop.tango_text",
        "lua/socketloop/tango_text.lua",
        include_str!("../lua/socketloop/tango_text.lua"),
    ),
    (
        "socketloop.tango_wire",
        "lua/socketloop/tango_wire.lua",
        include_str!("../lua/socketloop/tango_wire.lua"),
    ),
    (
        "socketloop.ltn12",
        "lua/socketloop/ltn12.lua",
        include_str!("../lua/socketloop/ltn12.lua"),
    ),
    (
        "socketloop.http",
        "lua/socketloop/http.lua",
        include_str!("../lua/socketloop/http.lua"),
    ),
    (
        "socketloop.http_url",
        "lua/socketloop/http_url.lua",
        include_str!("../lua/socketloop/http_url.lua"),
    ),
    (
        "socketloop.http_pool",
        "lua/socketloop/http_pool.lua",
        include_str!("../lua/socketloop/http_pool.lua"),
    ),
    (
        "socketloop.http_wire",
        "lua/socketloop/http_wire.lua",
        include_str!("../lua/socketloop/http_wire.lua"),
    ),
];

/// Registers `core` as `socketloop.core`, preloads the submodules and runs the main
/// module, returning the `socketloop` table.
pub fn install(lua: &Lua, core: Table) -> mlua::Result<Table> {
    let package: Table = lua.globals().get("package")?;
    let loaded: Table = package.get("loaded")?;
    let preload: Table = package.get("preload")?;
    loaded.set("socketloop.core", core)?;
    for &(name, file, source) in &MODULES[1..] {
        preload.set(name, loader(lua, file, source)?)?;
    }
    let (_, file, source) = MODULES[0];
    lua.load(source)
        .set_name(format!("@{file}"))
        .call::<Table>("socketloop")
}

/// A `package.preload` entry that compiles `source` when the module is first required.
fn loader(lua: &Lua, file: &'static str, source: &'static str) -> mlua::Result<Function> {
    lua.create_function(move |lua, name: mlua::MultiValue| {
        lua.load(source)
            .set_name(format!("@{file}"))
            .call::<mlua::Value>(name)
    })
}
