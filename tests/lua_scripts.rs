//! Runs the Lua test scripts in `tests/lua/` twice: under the `socketloop` runner and
//! under stock `luajit` loading the module (`libsocketloop.so`). A script passes when it
//! exits 0; `tests/lua/lib/testlib.lua` makes any failed check or thread error exit 1.

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
        .env("LUA_PATH", format!("{}/lib/?.lua;;", tests_dir().display()))
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

/// `lua_tests!(a, b)` makes tests `runner::a`, `luajit::a`, ... for the scripts
/// `tests/lua/a.lua`, `tests/lua/b.lua`.
macro_rules! lua_tests {
    ($($name:ident),* $(,)?) => {
        mod runner {
            $( #[test] fn $name() { crate::run(stringify!($name), crate::Mode::Runner) } )*
        }
        mod luajit {
            $( #[test] fn $name() { crate::run(stringify!($name), crate::Mode::Luajit) } )*
        }
    };
}

// Every script in tests/lua/, listed by build.rs.
include!(concat!(env!("OUT_DIR"), "/lua_tests.rs"));
