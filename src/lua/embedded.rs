//! The Lua half of the runtime, compiled into both builds so no path setup is needed.
//! Submodules are registered in `package.preload` and compiled on first `require`.

use mlua::{Function, Lua, Table};

// `LUA_MODULES`: `(module name, file, source)` of every file under `lua/`, from build.rs.
include!(concat!(env!("OUT_DIR"), "/lua_modules.rs"));

/// Registers `core` as `socketloop.core`, preloads the submodules and runs the main
/// module, returning the `socketloop` table.
pub fn install(lua: &Lua, core: Table) -> mlua::Result<Table> {
    let package: Table = lua.globals().get("package")?;
    let loaded: Table = package.get("loaded")?;
    let preload: Table = package.get("preload")?;
    loaded.set("socketloop.core", core)?;
    let mut main = None;
    for &(name, file, source) in LUA_MODULES {
        if name == "socketloop" {
            main = Some((file, source));
        } else {
            preload.set(name, loader(lua, file, source)?)?;
        }
    }
    let (file, source) = main.expect("lua/socketloop.lua is embedded");
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
