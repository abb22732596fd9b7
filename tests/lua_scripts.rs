//! Runs the Lua test scripts in `tests/lua/` twice: under the `socketloop` runner and
//! under stock `luajit` loading the module (`libsocketloop.so`). A script passes when it
//! exits 0; `tests/lua/testlib.lua` makes any failed check or thread error exit 1.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A hung script fails its test instead of hanging the run.
const SCRIPT_TIME_LIMIT: Duration = Duration::from_secs(180);

#[derive(Clone, Copy)]
enum Mode {
    Runner,
    Luajit,
}

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lua")
}

/// The cdylib cargo built beside this test executable.
fn module_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().expect("deps directory").to_path_buf()
}

fn command(mode: Mode, script: &Path) -> Command {
    let mut cmd = match mode {
        Mode::Runner => Command::new(env!("CARGO_BIN_EXE_socketloop")),
        Mode::Luajit => {
            let mut c = Command::new("luajit");
            c.env("LUA_CPATH", format!("{}/lib?.so;;", module_dir().display()));
            c
        }
    };
    cmd.arg(script)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("LUA_PATH", format!("{}/?.lua;;", tests_dir().display()))
        .env(
            "SOCKETLOOP_TEST_MODE",
            match mode {
                Mode::Runner => "runner",
                Mode::Luajit => "luajit",
            },
        )
        .env("SOCKETLOOP_BIN", env!("CARGO_BIN_EXE_socketloop"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(name: &str, mode: Mode) {
    let script = tests_dir().join(format!("{name}.lua"));
    let mut child = command(mode, &script)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the interpreter for {name}: {e}"));
    let started = Instant::now();
    while child.try_wait().expect("wait for script").is_none() {
        if started.elapsed() > SCRIPT_TIME_LIMIT {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("script output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{name} failed ({:?}) after {:?}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status,
        started.elapsed()
    );
}

/// `lua_tests!(group; a, b)` makes tests `group::runner::a`, `group::luajit::a`, ...
/// for the scripts `tests/lua/a.lua`, `tests/lua/b.lua`.
macro_rules! lua_tests {
    ($group:ident; $($name:ident),* $(,)?) => {
        mod $group {
            mod runner {
                $( #[test] fn $name() { crate::run(stringify!($name), crate::Mode::Runner) } )*
            }
            mod luajit {
                $( #[test] fn $name() { crate::run(stringify!($name), crate::Mode::Luajit) } )*
            }
        }
    };
}

lua_tests!(basics; echo_many, module_submodules);
lua_tests!(threads; threads_basic, threads_loop, threads_errors, threads_misuse, threads_leak, coro_echo, coro_transfer, threads_sleep_until);
lua_tests!(sockets; socket_receive, socket_send, socket_fast_path, socket_connect, socket_close, socket_timeout, socket_options, socket_info, socket_wrap, socket_call_async, socket_blocking);
lua_tests!(rpc; rpc_calls, rpc_concurrency, rpc_servers, rpc_security, rpc_malformed, rpc_example, tango_serialization, tango_calls, tango_cjson, tango_security, tango_interop, tango_example);
lua_tests!(http; http_scripted, http_pool, http_many, http_python, http_examples, http_ltn12);
lua_tests!(faults; fault_rst, fault_halfclose, fault_slowloris, fault_handler_errors, fault_close_other, fault_huge_line, fault_fdlimit, load_conns, soak_cycles, fuzz_tango_text);
