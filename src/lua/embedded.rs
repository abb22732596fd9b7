//! The Lua half of the runtime, compiled into both builds so no path setup is needed.
//!
//! Every module under `lua/` (but the scheduler) is registered in `package.preload`,
//! compiled on first `require`, and handed the loop's private channel as its chunk's
//! second argument: the private half of `socketloop.core` (see
//! [`crate::lua::core_table`]) with, under `scheduler`, the scheduler table of
//! `lua/socketloop/scheduler.lua`. Each preload entry runs its chunk once and returns
//! that module ever after (so calling an entry directly gives the module again, never
//! the channel). The scheduler is loaded here first and is in neither `package.preload`
//! nor `package.loaded`: `require'socketloop.scheduler'` gives a public view of three
//! functions that cannot break it (`running`, `current`, `report` for the running
//! thread). Nothing a script can
//! `require` hands out the channel or the scheduler; the loop's public modules expose
//! only validated functions of it (docs/security.md, "Internals").

use mlua::{Function, Lua, Table, Value};
use std::cell::RefCell;

/// The module that builds the scheduler: loaded only here, into the private channel.
const SCHEDULER: &str = "socketloop.scheduler";

/// What `require'socketloop.scheduler'` gives scripts (and modules outside the loop's
/// own): a new table of functions that cannot break the scheduler.
const PUBLIC_VIEW: &str = r#"
local S = ...
local running = S.running
return {
	-- The running coroutine, nil in the main thread.
	running = running,
	-- The running loop thread, nil outside one.
	current = S.current,
	-- Reports error `err` (with `trace`) of the running thread `co` to its error handler.
	report = function(err, trace, co)
		if co ~= nil and co ~= running() then
			error("bad argument #3 to 'report' (the running thread or nil expected)", 2)
		end
		return S.report(err, trace, co)
	end,
}
"#;

// `LUA_MODULES`: `(module name, file, source)` of every file under `lua/`, from build.rs.
include!(concat!(env!("OUT_DIR"), "/lua_modules.rs"));

/// The `socketloop` table and the scheduler table (the runner drives the loop through it).
pub struct Installed {
    pub socketloop: Table,
    pub scheduler: Table,
}

/// Registers `core` as `socketloop.core`, loads the scheduler into `private` (which
/// becomes the private channel), preloads the other modules and runs the main module.
pub fn install(lua: &Lua, core: Table, private: Table) -> mlua::Result<Installed> {
    let package: Table = lua.globals().get("package")?;
    let loaded: Table = package.get("loaded")?;
    let preload: Table = package.get("preload")?;
    loaded.set("socketloop.core", core)?;
    let source_of = |wanted: &str| {
        LUA_MODULES
            .iter()
            .find(|&&(name, _, _)| name == wanted)
            .map(|&(_, file, source)| (file, source))
            .ok_or_else(|| mlua::Error::runtime(format!("{wanted} is not embedded")))
    };
    let (file, source) = source_of(SCHEDULER)?;
    let scheduler: Table = lua
        .load(source)
        .set_name(format!("@{file}"))
        .call((SCHEDULER, private.clone()))?;
    private.set("scheduler", scheduler.clone())?;
    let view: Table = lua
        .load(PUBLIC_VIEW)
        .set_name("=socketloop.scheduler")
        .call(scheduler.clone())?;
    preload.set(
        SCHEDULER,
        lua.create_function(move |_, ()| Ok(view.clone()))?,
    )?;
    for &(name, file, source) in LUA_MODULES {
        if name != "socketloop" && name != SCHEDULER {
            preload.set(name, loader(lua, file, source, private.clone())?)?;
        }
    }
    let (file, source) = source_of("socketloop")?;
    let socketloop: Table = lua
        .load(source)
        .set_name(format!("@{file}"))
        .call(("socketloop", private))?;
    Ok(Installed {
        socketloop,
        scheduler,
    })
}

/// A `package.preload` entry that runs `source` with `private` after the module name the
/// first time it is called, and returns what that run returned from then on.
fn loader(
    lua: &Lua,
    file: &'static str,
    source: &'static str,
    private: Table,
) -> mlua::Result<Function> {
    let state = RefCell::new(Load::Pending(private));
    lua.create_function(move |lua, name: Value| {
        let pending = std::mem::replace(&mut *state.borrow_mut(), Load::Running);
        match pending {
            Load::Done(module) => {
                let module = module.clone();
                *state.borrow_mut() = Load::Done(module.clone());
                Ok(module)
            }
            Load::Running => Err(mlua::Error::runtime(format!(
                "{file}: required while it loads, or after its first load failed"
            ))),
            Load::Pending(private) => {
                let module = lua
                    .load(source)
                    .set_name(format!("@{file}"))
                    .call::<Value>((name, private))?;
                *state.borrow_mut() = Load::Done(module.clone());
                Ok(module)
            }
        }
    })
}

/// Where a module's loader is.
enum Load {
    /// Not run yet: holds the private channel for the chunk's one run.
    Pending(Table),
    /// Running (or its run failed): the channel is gone.
    Running,
    /// Ran: what it returned.
    Done(Value),
}
