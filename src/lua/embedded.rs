//! The Lua half of the runtime, compiled into both builds so no path setup is needed.
//! Submodules are registered in `package.preload` and compiled on first `require`.
//!
//! The modules that build the scheduler and the sockets get the private half of
//! `socketloop.core` (see [`crate::lua::core_table`]) as their chunk's second argument,
//! the first time they are loaded only: running their preload entry again gives a
//! script nothing it could break the loop with.

use mlua::{Function, Lua, Table, Value};
use std::cell::RefCell;

/// The modules that get the private half of `socketloop.core`.
const PRIVILEGED: &[&str] = &["socketloop.scheduler", "socketloop.asocket"];

// `LUA_MODULES`: `(module name, file, source)` of every file under `lua/`, from build.rs.
include!(concat!(env!("OUT_DIR"), "/lua_modules.rs"));

/// Registers `core` as `socketloop.core`, preloads the submodules and runs the main
/// module, returning the `socketloop` table.
pub fn install(lua: &Lua, core: Table, private: Table) -> mlua::Result<Table> {
    let package: Table = lua.globals().get("package")?;
    let loaded: Table = package.get("loaded")?;
    let preload: Table = package.get("preload")?;
    loaded.set("socketloop.core", core)?;
    let mut main = None;
    for &(name, file, source) in LUA_MODULES {
        if name == "socketloop" {
            main = Some((file, source));
        } else {
            let private = PRIVILEGED.contains(&name).then(|| private.clone());
            preload.set(name, loader(lua, file, source, private)?)?;
        }
    }
    let (file, source) = main.expect("lua/socketloop.lua is embedded");
    lua.load(source)
        .set_name(format!("@{file}"))
        .call::<Table>("socketloop")
}

/// A `package.preload` entry that compiles `source` when the module is first required,
/// handing it `private` (once) after its name.
fn loader(
    lua: &Lua,
    file: &'static str,
    source: &'static str,
    private: Option<Table>,
) -> mlua::Result<Function> {
    let private = RefCell::new(private);
    lua.create_function(move |lua, name: Value| {
        let private = private.borrow_mut().take().map_or(Value::Nil, Value::Table);
        lua.load(source)
            .set_name(format!("@{file}"))
            .call::<Value>((name, private))
    })
}
