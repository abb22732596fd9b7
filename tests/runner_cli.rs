//! The `socketloop` runner's command line and process behaviour: options as `luajit`
//! parses them, the `arg` table, exit statuses, tracebacks on stderr, C modules and the
//! `jit.*` modules, scripts written for stock `luajit`, and a clean stop on SIGTERM (a
//! graceful shutdown) and SIGINT. Every child process is bounded by a time limit (a hung runner fails its test)
//! and only processes started here are signalled.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A runner that has not finished by then is killed and its test fails.
const TIME_LIMIT: Duration = Duration::from_secs(60);

const BIN: &str = env!("CARGO_BIN_EXE_socketloop");

/// What a finished child left.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Both streams, for assertion messages.
    fn dump(&self) -> String {
        format!(
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

fn runner_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/runner")
}

fn helper(name: &str) -> String {
    runner_dir().join(name).display().to_string()
}

/// The cdylib cargo built beside this test executable, for stock luajit.
fn module_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// A script written to a fresh temporary file (removed when dropped).
struct TempScript(PathBuf);

impl TempScript {
    fn new(source: &str) -> TempScript {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "socketloop-runner-cli-{}-{n}.lua",
            std::process::id()
        ));
        std::fs::write(&path, source).expect("write temporary script");
        TempScript(path)
    }

    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempScript {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn base_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("LUA_PATH")
        .env_remove("LUA_CPATH")
        .env_remove("LUA_INIT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn runner(args: &[&str]) -> Command {
    let mut cmd = base_command(BIN);
    cmd.args(args);
    cmd
}

/// Waits for `child` up to TIME_LIMIT, killing it past that; reads what is left of its
/// piped stdout and stderr (the ones the caller has not taken).
fn finish(mut child: Child) -> Ran {
    let pid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_end(&mut s);
        }
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_end(&mut s);
        }
        s
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(TIME_LIMIT) {
        Ok(status) => status.expect("wait for the runner"),
        Err(_) => {
            // SAFETY: kill(2) on the pid of a child this test started and has not reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            panic!("the child {pid} did not finish within {TIME_LIMIT:?}");
        }
    };
    Ran {
        status,
        stdout: String::from_utf8_lossy(&out.join().expect("stdout reader")).into_owned(),
        stderr: String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned(),
    }
}

fn run(mut cmd: Command) -> Ran {
    finish(cmd.spawn().expect("start the child"))
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Ran {
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("start the child");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input.as_bytes()).expect("write stdin");
    drop(stdin);
    finish(child)
}

fn ok(ran: &Ran) {
    assert_eq!(ran.code(), Some(0), "{}", ran.dump());
}

#[test]
fn exec_chunks_run_in_order() {
    let ran = run(runner(&[
        "-e",
        "io.write('a')",
        "-eio.write('b')",
        "-e",
        "print(x)",
    ]));
    ok(&ran);
    assert_eq!(ran.stdout, "abnil\n");
    assert_eq!(ran.stderr, "");
    let ran = run(runner(&["-e", "x = 42", "-e", "print(x * 2)"]));
    ok(&ran);
    assert_eq!(ran.stdout, "84\n");
}

#[test]
fn exec_chunk_runs_in_a_loop_thread() {
    let ran = run(runner(&[
        "-e",
        "local loop = require'socketloop'
         print(loop.current() ~= nil)
         loop.newthread(function() loop.sleep(0.01) print('thread') end)
         loop.sleep(0.001)
         print('chunk')",
    ]));
    ok(&ran);
    assert_eq!(ran.stdout, "true\nchunk\nthread\n");
}

#[test]
fn require_option_sets_a_global() {
    let ran = run(runner(&[
        "-l",
        "socket",
        "-e",
        "print(type(socket), socket._VERSION, type(socket.gettime()))",
    ]));
    ok(&ran);
    assert!(
        ran.stdout.starts_with("table\tLuaSocket "),
        "{}",
        ran.dump()
    );
    assert!(ran.stdout.ends_with("\tnumber\n"), "{}", ran.dump());
    // the joined form, and a module of the runner itself
    let ran = run(runner(&[
        "-lsocketloop",
        "-e",
        "print(socketloop == require'socketloop', type(socketloop.newthread))",
    ]));
    ok(&ran);
    assert_eq!(ran.stdout, "true\tfunction\n");
}

#[test]
fn require_option_for_a_missing_module_fails() {
    let ran = run(runner(&["-l", "no_such_module_xyz", "-e", "print('ran')"]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(!ran.stdout.contains("ran"), "{}", ran.dump());
    assert!(ran.stderr.contains("no_such_module_xyz"), "{}", ran.dump());
}

#[test]
fn version_names_socketloop_and_luajit() {
    let ran = run(runner(&["-v"]));
    ok(&ran);
    let line = ran.stdout.lines().next().unwrap_or("");
    assert!(line.contains("socketloop"), "{}", ran.dump());
    assert!(line.contains("LuaJIT"), "{}", ran.dump());
    assert!(line.contains(env!("CARGO_PKG_VERSION")), "{}", ran.dump());
    // -v with something to run prints the version, then runs it
    let ran = run(runner(&["-v", "-e", "print('after')"]));
    ok(&ran);
    let lines: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ran.dump());
    assert!(lines[0].contains("socketloop") && lines[0].contains("LuaJIT"));
    assert_eq!(lines[1], "after");
}

#[test]
fn long_version_and_help() {
    let ran = run(runner(&["--version"]));
    ok(&ran);
    let want = format!("socketloop {} (LuaJIT ", env!("CARGO_PKG_VERSION"));
    assert!(ran.stdout.starts_with(&want), "{}", ran.dump());
    assert!(ran.stdout.trim_end().ends_with(')'), "{}", ran.dump());
    let ran = run(runner(&["--help"]));
    ok(&ran);
    for option in ["-e chunk", "--version", "--copas", "--help"] {
        assert!(ran.stdout.contains(option), "{option}: {}", ran.dump());
    }
    let ran = run(runner(&["--no-such-option"]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(ran.stderr.contains("'--no-such-option'"), "{}", ran.dump());
}

#[test]
fn dash_reads_the_script_from_stdin() {
    let script = "print('from stdin', arg[0], ...)\nprint(select('#', ...))\n";
    let ran = run_with_stdin(runner(&["-", "a", "-e"]), script);
    ok(&ran);
    assert_eq!(ran.stdout, "from stdin\t-\ta\t-e\n2\n");
    // with no script and no -e, a stdin that is not a terminal is the script
    let ran = run_with_stdin(runner(&[]), "print('piped')");
    ok(&ran);
    assert_eq!(ran.stdout, "piped\n");
    // a syntax error on stdin
    let ran = run_with_stdin(runner(&["-"]), "print('x'");
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(ran.stderr.contains("stdin"), "{}", ran.dump());
}

#[test]
fn arg_table_is_luajits() {
    let args = helper("args.lua");
    let ran = run(runner(&["-e", "x=1", &args, "one", "two words"]));
    ok(&ran);
    let want = format!(
        "arg[-3]={BIN}\narg[-2]=-e\narg[-1]=x=1\narg[0]={args}\narg[1]=one\narg[2]=two words\n\
         #arg=2\n...=2:one,two words\n"
    );
    assert_eq!(ran.stdout, want);
    // the same as luajit's own, but for the interpreter's name
    let mut cmd = base_command("luajit");
    cmd.args(["-e", "x=1", &args, "one", "two words"]);
    let stock = run(cmd);
    ok(&stock);
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with("arg[-3]="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&ran.stdout), strip(&stock.stdout));
    // no options: arg[-1] is the runner
    let ran = run(runner(&[&args]));
    ok(&ran);
    assert!(
        ran.stdout.contains(&format!("arg[-1]={BIN}\n")),
        "{}",
        ran.dump()
    );
    assert!(ran.stdout.contains("#arg=0\n...=0:\n"), "{}", ran.dump());
    // `--` ends the options
    let ran = run(runner(&["--", &args, "-e"]));
    ok(&ran);
    assert!(ran.stdout.contains("arg[1]=-e\n"), "{}", ran.dump());
    assert!(ran.stdout.contains("arg[-1]=--\n"), "{}", ran.dump());
}

#[test]
fn exits_zero_after_the_main_chunk_and_the_loop() {
    let script = TempScript::new(
        "local loop = require'socketloop'
         local server = assert(loop.newserver('127.0.0.1', 0, function(c)
             c:send(c:receive('*l') .. '!\\n')
             c:close()
         end))
         local _, port = server:getsockname()
         loop.newthread(function()
             loop.sleep(0.02)
             local s = assert(loop.connect('127.0.0.1', port))
             s:send('late\\n')
             print(s:receive('*l'))
             s:close()
             server:close()
         end)
         print('main chunk ends')",
    );
    let ran = run(runner(&[&script.path()]));
    ok(&ran);
    assert_eq!(ran.stdout, "main chunk ends\nlate!\n");
    assert_eq!(ran.stderr, "");
}

#[test]
fn os_exit_sets_the_status() {
    let ran = run(runner(&[
        "-e",
        "io.write('x') io.stdout:flush() os.exit(3)",
    ]));
    assert_eq!(ran.code(), Some(3), "{}", ran.dump());
    assert_eq!(ran.stdout, "x");
    let ran = run(runner(&["-e", "os.exit(false)"]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    // from a loop thread, with a server listening
    let ran = run(runner(&[
        "-e",
        "local loop = require'socketloop'
         assert(loop.newserver('127.0.0.1', 0, function() end))
         loop.newthread(function() loop.sleep(0.01) os.exit(5) end)",
    ]));
    assert_eq!(ran.code(), Some(5), "{}", ran.dump());
}

#[test]
fn stop_ends_the_runner() {
    // loop.stop() from a thread ends the runner although a server still listens
    let script = TempScript::new(
        "local loop = require'socketloop'
         assert(loop.newserver('127.0.0.1', 0, function() end))
         loop.newthread(function() loop.sleep(0.01) print('stop') loop.stop() end)",
    );
    let ran = run(runner(&[&script.path()]));
    ok(&ran);
    assert_eq!(ran.stdout, "stop\n");
}

#[test]
fn error_in_the_main_chunk_fails_with_a_traceback() {
    let script =
        TempScript::new("print('before')\nlocal function f() error('main boom') end\nf()\n");
    let ran = run(runner(&[&script.path()]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert_eq!(ran.stdout, "before\n");
    assert!(ran.stderr.contains("main boom"), "{}", ran.dump());
    assert!(ran.stderr.contains("stack traceback"), "{}", ran.dump());
    assert!(ran.stderr.contains(&script.path()), "{}", ran.dump());
    // in a -e chunk
    let ran = run(runner(&["-e", "error('chunk boom')"]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(ran.stderr.contains("chunk boom"), "{}", ran.dump());
    assert!(ran.stderr.contains("stack traceback"), "{}", ran.dump());
}

#[test]
fn error_in_the_main_chunk_after_a_wait_stops_the_loop() {
    // the main chunk fails after it was resumed by the loop, while a server listens: the
    // runner fails at once instead of serving on
    let script = TempScript::new(
        "local loop = require'socketloop'
         assert(loop.newserver('127.0.0.1', 0, function() end))
         loop.sleep(0.01)
         error({code = 7})",
    );
    let ran = run(runner(&[&script.path()]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(ran.stderr.contains("stack traceback"), "{}", ran.dump());
    assert!(ran.stderr.contains("table: "), "{}", ran.dump());
    // the same while another thread waits in loop.start(): that call does not return
    let script = TempScript::new(
        "local loop = require'socketloop'
         assert(loop.newserver('127.0.0.1', 0, function() end))
         loop.newthread(function() loop.start() print('nested start returned') end)
         loop.sleep(0.01)
         error('main chunk fails')",
    );
    let ran = run(runner(&[&script.path()]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(ran.stderr.contains("main chunk fails"), "{}", ran.dump());
    assert_eq!(ran.stdout, "");
}

#[test]
fn error_in_another_thread_is_reported_and_the_runner_goes_on() {
    let script = TempScript::new(
        "local loop = require'socketloop'
         loop.newthread(function() loop.sleep(0.001) error('thread boom') end)
         loop.newthread(function() loop.sleep(0.01) print('still running') end)
         loop.sleep(0.02)
         print('main chunk ends')",
    );
    let ran = run(runner(&[&script.path()]));
    ok(&ran);
    assert_eq!(ran.stdout, "still running\nmain chunk ends\n");
    assert!(ran.stderr.contains("thread boom"), "{}", ran.dump());
    assert!(ran.stderr.contains("stack traceback"), "{}", ran.dump());
}

#[test]
fn syntax_errors_fail() {
    let script = TempScript::new("print('never')\nlocal = 1\n");
    let ran = run(runner(&[&script.path()]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert_eq!(ran.stdout, "");
    assert!(ran.stderr.contains(&script.path()), "{}", ran.dump());
    // in a -e chunk: nothing runs, not even the chunks before it
    let ran = run(runner(&["-e", "print('never')", "-e", "x ="]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(!ran.stdout.contains("never"), "{}", ran.dump());
    assert!(!ran.stderr.is_empty());
    // a missing script
    let ran = run(runner(&["/nonexistent/socketloop-test.lua"]));
    assert_eq!(ran.code(), Some(1), "{}", ran.dump());
    assert!(
        ran.stderr.contains("/nonexistent/socketloop-test.lua"),
        "{}",
        ran.dump()
    );
}

#[test]
fn bad_command_lines_fail_with_the_usage() {
    for args in [&["-z"][..], &["-e"][..], &["-l"][..]] {
        let ran = run(runner(args));
        assert_eq!(ran.code(), Some(1), "{args:?}: {}", ran.dump());
        assert!(ran.stderr.contains("usage"), "{args:?}: {}", ran.dump());
        assert_eq!(ran.stdout, "");
    }
}

#[test]
fn shebang_line_is_skipped() {
    let script =
        TempScript::new("#!/usr/bin/env socketloop\nprint(debug.getinfo(1, 'l').currentline)\n");
    let ran = run(runner(&[&script.path()]));
    ok(&ran);
    assert_eq!(ran.stdout, "2\n", "line numbers stay right");
}

#[test]
fn a_script_written_for_stock_luajit_runs_unchanged() {
    let stock_script = helper("stock.lua");
    let ran = run(runner(&[&stock_script]));
    ok(&ran);
    let want = "before start\nreply\tLINE 1\nreply\tLINE 2\nreply\tLINE 3\nstopping\n\
                after start\t1\nafter start(0.05)\ttrue\nlast thread\ndone\t0\n";
    assert_eq!(ran.stdout, want, "{}", ran.dump());
    assert_eq!(ran.stderr, "");
    // and the same under stock luajit with the loadable module
    let mut cmd = base_command("luajit");
    cmd.arg(&stock_script)
        .env("LUA_CPATH", format!("{}/lib?.so;;", module_dir().display()));
    let stock = run(cmd);
    ok(&stock);
    assert_eq!(stock.stdout, want, "{}", stock.dump());
}

#[test]
fn c_modules_resolve_the_lua_api_from_the_runner() {
    let ran = run(runner(&[
        "-e",
        "local core = require'socket.core'
         print(type(core.tcp), type(core.gettime()))
         local cjson = require'cjson'
         local t = cjson.decode(cjson.encode({a = {1, 2, 3}, b = 'x'}))
         print(t.a[3], t.b)
         local socket = require'socket'
         print(socket.core == core or socket._VERSION ~= nil)",
    ]));
    ok(&ran);
    assert_eq!(ran.stdout, "function\tnumber\n3\tx\ntrue\n");
}

#[test]
fn luasocket_and_loop_sockets_talk() {
    // a LuaSocket listener (blocking C calls) and a loop client in the same runner
    let script = TempScript::new(
        "local loop = require'socketloop'
         local socket = require'socket'
         local listener = assert(socket.tcp4())
         assert(listener:bind('127.0.0.1', 0))
         assert(listener:listen(8))
         local _, port = listener:getsockname()
         local c = assert(loop.connect('127.0.0.1', port))
         local a = assert(listener:accept())
         a:send('from luasocket\\n')
         print(c:receive('*l'))
         c:send('from the loop\\n')
         print((a:receive('*l')))
         a:close()
         c:close()
         listener:close()",
    );
    let ran = run(runner(&[&script.path()]));
    ok(&ran);
    assert_eq!(ran.stdout, "from luasocket\nfrom the loop\n");
}

#[test]
fn ffi_and_jit_are_available() {
    let ran = run(runner(&[
        "-e",
        "local ffi = require'ffi'
         ffi.cdef'int getpid(void);'
         print(ffi.C.getpid() > 0, type(jit.version), jit.status() ~= nil)
         local v = require'jit.v'
         print(type(v.start), type(v.off))
         print(type(require'jit.util'.funcinfo), type(require'jit.dump'.on))",
    ]));
    ok(&ran);
    assert_eq!(
        ran.stdout,
        "true\tstring\ttrue\nfunction\tfunction\nfunction\tfunction\n"
    );
    // -jv=file starts jit.v with that output file; -O and -j on|off are accepted
    let out = TempScript::new("");
    let jv = format!("-jv={}", out.path());
    let ran = run(runner(&[
        &jv,
        "-O3",
        "-jon",
        "-e",
        "local x = 0 for i = 1, 1000 do x = x + i end print(x)",
    ]));
    ok(&ran);
    assert_eq!(ran.stdout, "500500\n");
    let log = std::fs::read_to_string(&out.0).expect("jit.v output");
    assert!(log.contains("TRACE"), "jit.v wrote: {log}");
    let ran = run(runner(&["-joff", "-e", "print(jit.status())"]));
    ok(&ran);
    assert!(ran.stdout.starts_with("false"), "{}", ran.dump());
}

/// Starts tests/runner/server.lua, waits for its port, checks it serves, sends `signal`
/// and returns how the runner ended.
fn signalled_server(signal: libc::c_int, args: &[&str]) -> Ran {
    let mut cmd = runner(&[&helper("server.lua")]);
    cmd.args(args);
    let mut child = cmd.spawn().expect("start the runner");
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut rest = String::new();
        let mut port = None;
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if port.is_none() {
                port = line.strip_prefix("port ").map(str::to_string);
                let _ = tx.send(port.clone());
            } else {
                rest.push_str(&line);
                rest.push('\n');
            }
        }
        rest
    });
    let port = match rx.recv_timeout(TIME_LIMIT) {
        Ok(Some(port)) => port,
        other => {
            // SAFETY: kill(2) on the pid of the child started above, not yet reaped.
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            panic!("the server did not report its port: {other:?}");
        }
    };
    // it serves
    let mut conn = TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port")))
        .expect("connect to the runner's server");
    conn.set_read_timeout(Some(TIME_LIMIT)).expect("timeout");
    conn.write_all(b"ping\n").expect("send");
    let mut reply = String::new();
    BufReader::new(&conn)
        .read_line(&mut reply)
        .expect("receive");
    assert_eq!(reply, "echo ping\n");
    // The client leaves first: a graceful shutdown would give its connection the grace.
    drop(conn);
    // SAFETY: kill(2) on the pid of the child started above, not yet reaped.
    let sent = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(sent, 0, "kill");
    child.stdout = None;
    let mut ran = finish(child);
    ran.stdout = reader.join().expect("stdout reader");
    ran
}

#[test]
fn sigterm_stops_a_server_cleanly() {
    // a graceful shutdown: exit status 0
    let ran = signalled_server(libc::SIGTERM, &[]);
    assert_eq!(ran.code(), Some(0), "{}", ran.dump());
    assert_eq!(ran.stdout, "finalized\n", "the Lua state was closed");
}

#[test]
fn sigint_stops_a_server_cleanly() {
    let ran = signalled_server(libc::SIGINT, &[]);
    assert_eq!(ran.code(), Some(128 + libc::SIGINT), "{}", ran.dump());
    assert_eq!(ran.stdout, "finalized\n", "the Lua state was closed");
}

#[test]
fn sigterm_stops_a_script_waiting_in_start() {
    // the script ends with loop.start(): the signal stops the runner, not just that call
    let ran = signalled_server(libc::SIGTERM, &["start"]);
    assert_eq!(ran.code(), Some(0), "{}", ran.dump());
    assert_eq!(
        ran.stdout, "finalized\n",
        "halted, and the Lua state was closed"
    );
}

#[test]
fn sigterm_stops_a_thread_waiting_in_start() {
    let ran = signalled_server(libc::SIGTERM, &["thread-start"]);
    assert_eq!(ran.code(), Some(0), "{}", ran.dump());
    assert_eq!(
        ran.stdout, "finalized\n",
        "halted, and the Lua state was closed"
    );
}

/// The same copas program under Debian's lua-copas (stock luajit, `require'copas'`), under
/// the runner's `--copas` and under stock luajit with `package.loaded.copas =
/// require'socketloop.copas'`: the three print the same lines.
#[test]
fn copas_program_prints_the_same_under_copas_and_socketloop_copas() {
    let script = helper("copas_compare.lua");
    assert!(
        Path::new("/usr/share/lua/5.1/copas.lua").exists(),
        "Debian's lua-copas is not installed (scripts/test installs it)"
    );
    let mut debian = base_command("luajit");
    debian.arg(&script);
    let debian = run(debian);
    ok(&debian);
    let runner_copas = run(runner(&["--copas", &script]));
    ok(&runner_copas);
    let mut stock = base_command("luajit");
    stock
        .env("LUA_CPATH", format!("{}/lib?.so;;", module_dir().display()))
        .args([
            "-e",
            "package.loaded.copas = require'socketloop.copas'",
            &script,
        ]);
    let stock = run(stock);
    ok(&stock);
    for line in [
        "client got: echo: hello",
        "big reply: 100000 bytes",
        "handler error: boom from the handler",
        "after boom: closed",
        "raw got: echo: raw functions",
        "server saw: closed",
        "client got: echo: sync",
    ] {
        assert!(debian.stdout.contains(line), "{line}: {}", debian.dump());
    }
    assert_eq!(
        runner_copas.stdout,
        debian.stdout,
        "{}",
        runner_copas.dump()
    );
    assert_eq!(stock.stdout, debian.stdout, "{}", stock.dump());
}

/// SIGQUIT (Ctrl-\) prints the dump of every loop thread on stderr, as Go and the JVM
/// do, and the runner goes on serving; twice, without the second one ending the process.
#[test]
fn sigquit_prints_the_thread_dump_and_goes_on() {
    let mut child = runner(&[&helper("quit_dump.lua")])
        .spawn()
        .expect("start the runner");
    let pid = child.id() as libc::pid_t;
    let kill = |signal| {
        // SAFETY: kill(2) on the pid of the child started above, not yet reaped.
        unsafe { libc::kill(pid, signal) }
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("socketloop: ") && line.contains("loop threads at") {
                let _ = tx.send(());
            }
        }
        all
    });
    let mut lines = BufReader::new(stdout).lines();
    let port = lines
        .next()
        .and_then(|l| l.ok())
        .and_then(|l| l.strip_prefix("port ").map(str::to_string));
    let Some(port) = port else {
        kill(libc::SIGKILL);
        panic!("the runner did not report its port");
    };
    let mut conn = TcpStream::connect(("127.0.0.1", port.parse::<u16>().expect("port")))
        .expect("connect to the runner's server");
    conn.set_read_timeout(Some(TIME_LIMIT)).expect("timeout");
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    for round in 0..2 {
        assert_eq!(kill(libc::SIGQUIT), 0, "kill");
        if rx.recv_timeout(TIME_LIMIT).is_err() {
            kill(libc::SIGKILL);
            panic!("no dump after SIGQUIT {round}");
        }
        conn.write_all(b"still there\n").expect("send");
        let mut reply = String::new();
        reader.read_line(&mut reply).expect("receive");
        assert_eq!(reply, "echo still there\n", "served after SIGQUIT {round}");
    }
    assert_eq!(kill(libc::SIGINT), 0, "kill");
    drop(reader);
    drop(conn);
    let ran = finish(child);
    let stderr = err_reader.join().expect("stderr reader");
    assert_eq!(ran.code(), Some(128 + libc::SIGINT), "{stderr}");
    assert_eq!(stderr.matches("loop threads at").count(), 2, "{stderr}");
    assert!(stderr.contains("socket read fd"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(stderr.contains("timer for"), "{stderr}");
    assert!(stderr.contains("quit_dump.lua"), "{stderr}");
    assert!(stderr.contains("stack traceback"), "{stderr}");
}
