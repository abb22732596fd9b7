//! The `socketloop` runner: LuaJIT with the loop built in.
//!
//! `socketloop script.lua [args]` runs the script's main chunk as a loop thread, then runs
//! the loop until no thread waits on anything. Exit status: 0 (also after the graceful
//! shutdown SIGTERM starts); 1 for an error in the main thread (its traceback goes to
//! stderr) or a bad command line; 128 + n when signal n stopped the loop (SIGINT, or a
//! second SIGTERM or SIGINT during a graceful shutdown). `--workers N` runs N of them
//! under a supervisor (workers.rs). C modules (Debian's LuaSocket, lua-cjson) load from
//! the usual paths: the runner exports LuaJIT's C API to them (see build.rs).

mod cli;
mod workers;

use cli::{Action, Invocation, Script};
use mlua::{Function, Lua, Table, Value};
use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

include!(concat!(env!("OUT_DIR"), "/jit_modules.rs"));

const MAIN_THREAD: &str = include_str!("main.lua");

#[cfg(target_arch = "x86_64")]
const MULTIARCH: &str = "x86_64-linux-gnu";
#[cfg(target_arch = "aarch64")]
const MULTIARCH: &str = "aarch64-linux-gnu";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const MULTIARCH: &str = "unknown";

fn main() -> ExitCode {
    let worker = workers::take_worker_env();
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let inv = match cli::parse(&argv) {
        Ok(inv) => inv,
        Err(msg) => {
            eprintln!("socketloop: {msg}\n{}", cli::USAGE);
            return ExitCode::from(1);
        }
    };
    if let (Some(value), None) = (&inv.workers, worker) {
        let count = match workers::parse_count(value) {
            Ok(count) => count,
            Err(msg) => {
                eprintln!("socketloop: {msg}");
                return ExitCode::from(1);
            }
        };
        if inv.script.is_none() {
            eprintln!("socketloop: --workers needs a script");
            return ExitCode::from(1);
        }
        let args: Vec<String> = (1..argv.len())
            .filter(|i| !inv.workers_words.contains(i))
            .map(|i| argv[i].clone())
            .collect();
        return ExitCode::from(workers::supervise(&args, count));
    }
    match run(&argv, inv, worker) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("socketloop: {msg}");
            ExitCode::from(1)
        }
    }
}

/// Runs the invocation in a fresh Lua state, closed afterwards (finalizers run, as when
/// `luajit` exits).
fn run(argv: &[String], inv: Invocation, worker: Option<(usize, usize)>) -> Result<u8, String> {
    // LuaJIT's own allocator, as `luajit` uses: mlua's (Rust's global allocator behind a
    // callback) took a fifth of the instructions of an allocation-heavy tango call.
    // SAFETY: plain C API calls on a state we own; the runner is LuaJIT's standalone
    // interpreter, so scripts may load C modules and use ffi exactly as under `luajit`.
    let state = unsafe { mlua::ffi::luaL_newstate() };
    if state.is_null() {
        return Err("cannot create a Lua state: out of memory".to_string());
    }
    // SAFETY: as above; the Lua handle lives in the state's registry until lua_close.
    let result = unsafe {
        mlua::ffi::luaL_openlibs(state);
        run_in(Lua::get_or_init_from_ptr(state), argv, inv, worker)
    };
    // SAFETY: every value run_in made is dropped by now.
    unsafe { mlua::ffi::lua_close(state) };
    result
}

fn run_in(
    lua: &Lua,
    argv: &[String],
    mut inv: Invocation,
    worker: Option<(usize, usize)>,
) -> Result<u8, String> {
    // A reader that stops early (`socketloop --help | head -1`) is not an error: these
    // writes ignore a closed stdout, where println! would panic.
    if inv.help {
        let _ = writeln!(std::io::stdout(), "{}", cli::USAGE);
        return Ok(0);
    }
    if inv.version {
        let v: String = lua.load("return jit.version").eval().map_err(lua_error)?;
        let _ = writeln!(
            std::io::stdout(),
            "socketloop {} ({v})",
            env!("CARGO_PKG_VERSION")
        );
    }
    if inv.script.is_none() && inv.actions.is_empty() {
        if inv.version {
            return Ok(0);
        }
        if std::io::stdin().is_terminal() {
            eprintln!("{}", cli::USAGE);
            return Ok(1);
        }
        inv.script = Some(Script::Stdin);
    }
    ignore_sigpipe();
    setup_paths(lua).map_err(lua_error)?;
    let installed = socketloop::open_runner(lua, true).map_err(lua_error)?;
    let scheduler = installed.scheduler;
    let package: Table = lua.globals().get("package").map_err(lua_error)?;
    let loaded: Table = package.get("loaded").map_err(lua_error)?;
    loaded
        .set("socketloop", installed.socketloop)
        .map_err(lua_error)?;
    if let Some((index, count)) = worker {
        scheduler.set("worker_index", index).map_err(lua_error)?;
        scheduler.set("worker_count", count).map_err(lua_error)?;
    }
    set_arg_table(lua, argv, inv.script_index).map_err(lua_error)?;

    let actions = compile_actions(lua, &inv.actions)?;
    let script = match &inv.script {
        Some(s) => Value::Function(compile_script(lua, s)?),
        None => Value::Boolean(false),
    };
    let mut call = vec![Value::Table(scheduler), Value::Table(actions), script];
    for a in argv.iter().skip(inv.script_index + 1) {
        call.push(Value::String(lua.create_string(a).map_err(lua_error)?));
    }
    let main = lua
        .load(MAIN_THREAD)
        .set_name("=socketloop")
        .into_function()
        .map_err(lua_error)?;
    let (failure, signal): (Option<String>, Option<i32>) = main
        .call(mlua::MultiValue::from_vec(call))
        .map_err(lua_error)?;
    if let Some(trace) = failure {
        eprintln!("socketloop: {trace}");
        return Ok(1);
    }
    Ok(signal.map_or(0, |s| (128 + s).clamp(0, 255) as u8))
}

fn lua_error(e: mlua::Error) -> String {
    e.to_string()
}

/// `-e` chunks are compiled up front so a syntax error stops the runner before anything
/// runs, as with `luajit`.
fn compile_actions(lua: &Lua, actions: &[Action]) -> Result<Table, String> {
    let list = lua.create_table().map_err(lua_error)?;
    for action in actions {
        let entry = match action {
            Action::Exec(code) => {
                let f = lua
                    .load(code.as_str())
                    .set_name("=(command line)")
                    .into_function()
                    .map_err(lua_error)?;
                let tag = lua.create_string("exec").map_err(lua_error)?;
                lua.create_sequence_from([Value::String(tag), Value::Function(f)])
            }
            Action::Require(name) => lua.create_sequence_from(["require", name.as_str()]),
            Action::Jit(cmd) => lua.create_sequence_from(["jit", cmd.as_str()]),
            Action::Optimize(opts) => lua.create_sequence_from(["opt", opts.as_str()]),
            Action::LuaSocket => lua.create_sequence_from(["luasocket"]),
            Action::Copas => lua.create_sequence_from(["copas"]),
        };
        list.raw_push(entry.map_err(lua_error)?)
            .map_err(lua_error)?;
    }
    Ok(list)
}

fn compile_script(lua: &Lua, script: &Script) -> Result<Function, String> {
    let (name, source) = match script {
        Script::File(path) => {
            let source = std::fs::read(path).map_err(|e| format!("cannot open {path}: {e}"))?;
            (format!("@{path}"), source)
        }
        Script::Stdin => {
            let mut source = Vec::new();
            std::io::stdin()
                .read_to_end(&mut source)
                .map_err(|e| format!("cannot read stdin: {e}"))?;
            ("=stdin".to_string(), source)
        }
    };
    let source = strip_shebang(source);
    lua.load(source)
        .set_name(name)
        .into_function()
        .map_err(lua_error)
}

/// A `#!` first line is skipped (kept as an empty line so line numbers stay right).
fn strip_shebang(mut source: Vec<u8>) -> Vec<u8> {
    if source.starts_with(b"#") {
        let end = source
            .iter()
            .position(|&b| b == b'\n')
            .unwrap_or(source.len());
        source.drain(..end);
    }
    source
}

/// `arg` as luajit sets it: `arg[0]` the script, negative indices the interpreter and
/// its options, positive ones the script's arguments.
fn set_arg_table(lua: &Lua, argv: &[String], script_index: usize) -> mlua::Result<()> {
    let arg = lua.create_table()?;
    for (i, a) in argv.iter().enumerate() {
        arg.raw_set(i as i64 - script_index as i64, a.as_str())?;
    }
    lua.globals().set("arg", arg)
}

/// Appends Debian's Lua directories to the search paths (after `LUA_PATH`/`LUA_CPATH`,
/// which LuaJIT already applied), and makes the `jit.*` helper modules loadable.
fn setup_paths(lua: &Lua) -> mlua::Result<()> {
    let package: Table = lua.globals().get("package")?;
    let path: String = package.get("path")?;
    package.set(
        "path",
        format!("{path};/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua"),
    )?;
    let cpath: String = package.get("cpath")?;
    package.set(
        "cpath",
        format!("{cpath};/usr/lib/{MULTIARCH}/lua/5.1/?.so;/usr/lib/lua/5.1/?.so"),
    )?;
    let preload: Table = package.get("preload")?;
    for &(name, source) in JIT_MODULES {
        let chunk = format!("@{name}.lua");
        let loader = lua.create_function(move |lua, args: mlua::MultiValue| {
            lua.load(source)
                .set_name(chunk.as_str())
                .call::<Value>(args)
        })?;
        preload.set(name, loader)?;
    }
    Ok(())
}

/// A peer closing a connection must not kill the process: writes report 'closed' instead.
fn ignore_sigpipe() {
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}
