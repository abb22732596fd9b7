//! The runner's graceful shutdown and its workers: SIGTERM during 200 HTTP requests in
//! flight against examples/http_server.lua (every accepted one answered, no connection
//! accepted after the signal, exit status 0 within the grace), a second SIGTERM ending
//! the process at once, and `--workers 2` (both workers serve, a killed worker is
//! restarted while the other keeps answering, SIGTERM stops them all, a worker that keeps
//! failing makes the supervisor give up with its status). Every child is bounded by a
//! time limit and only processes started here (and the workers they started) are
//! signalled, by PID.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_socketloop");
/// A child that has not done what is expected by then fails its test.
const TIME_LIMIT: Duration = Duration::from_secs(60);
/// The runner's default grace for a graceful shutdown (loop.shutdown).
const GRACE: Duration = Duration::from_secs(10);

/// A runner started with its stdout and stderr read line by line.
struct Runner {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stderr line seen so far.
    log: Vec<String>,
}

fn lines(stream: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Runner {
    fn start(args: &[&str]) -> Runner {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the runner");
        let stdout = lines(child.stdout.take().expect("piped stdout"));
        let stderr = lines(child.stderr.take().expect("piped stderr"));
        Runner {
            child,
            stdout,
            stderr,
            log: Vec::new(),
        }
    }

    /// The next stdout line (the test fails after TIME_LIMIT).
    fn line(&mut self) -> String {
        match self.stdout.recv_timeout(TIME_LIMIT) {
            Ok(line) => line,
            Err(e) => self.fail(&format!("no stdout line: {e}")),
        }
    }

    /// Waits for a stderr line containing `text`.
    fn wait_stderr(&mut self, text: &str) {
        let deadline = Instant::now() + TIME_LIMIT;
        while !self.log.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.log.push(line),
                Err(_) => self.fail(&format!("no stderr line with {text:?}")),
            }
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of the child started here, not yet reaped.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill");
    }

    /// Waits up to `limit` for the runner to exit.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the runner") {
                while let Ok(line) = self.stderr.recv_timeout(Duration::from_secs(1)) {
                    self.log.push(line);
                }
                return status;
            }
            if Instant::now() >= deadline {
                self.fail(&format!("still running after {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn fail(&mut self, why: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while let Ok(line) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.log.push(line);
        }
        panic!("{why}\n--- stderr\n{}", self.log.join("\n"));
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The port of an "listening on http://127.0.0.1:PORT/" line.
fn http_port(line: &str) -> u16 {
    line.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not a listening line: {line}"))
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(TIME_LIMIT))?;
    s.set_write_timeout(Some(TIME_LIMIT))?;
    Ok(s)
}

fn refused(port: u16) -> bool {
    matches!(connect(port), Err(e) if e.kind() == ErrorKind::ConnectionRefused)
}

#[test]
fn sigterm_answers_the_requests_in_flight_and_accepts_no_more() {
    const CLIENTS: usize = 200;
    let mut server = Runner::start(&["examples/http_server.lua", "127.0.0.1", "0"]);
    let port = http_port(&server.line());
    // 200 requests in flight: each client sends all of its request but the blank line
    // that ends the head, so the server is reading every one of them.
    let mut clients: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut c = connect(port).unwrap_or_else(|e| server.fail(&format!("connect {i}: {e}")));
            let head = format!(
                "GET /bytes/{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n",
                1000 + i
            );
            c.write_all(head.as_bytes()).expect("send the head");
            c
        })
        .collect();
    let signalled = Instant::now();
    server.signal(libc::SIGTERM);
    server.wait_stderr("listening sockets closed");
    assert!(refused(port), "a connection was accepted after the signal");
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(b"\r\n").expect("end the head");
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).expect("read the reply");
        let reply = String::from_utf8_lossy(&reply);
        let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
        assert_eq!(body.len(), 1000 + i, "request {i}: body length");
        assert!(body.starts_with("0123456789"), "request {i}: body");
    }
    assert!(refused(port), "a connection was accepted after the signal");
    let status = server.wait(GRACE.saturating_sub(signalled.elapsed()));
    assert_eq!(status.code(), Some(0), "{}", server.log.join("\n"));
}

#[test]
fn a_second_sigterm_ends_a_graceful_shutdown_at_once() {
    let mut server = Runner::start(&["examples/http_server.lua", "127.0.0.1", "0"]);
    let port = http_port(&server.line());
    // A request that never ends: the shutdown would wait its whole grace for it.
    let mut c = connect(port).expect("connect");
    c.write_all(b"GET / HTTP/1.1\r\n").expect("send");
    server.signal(libc::SIGTERM);
    server.wait_stderr("listening sockets closed");
    server.signal(libc::SIGTERM);
    let status = server.wait(GRACE / 2);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn a_second_sigterm_ends_a_scripts_own_shutdown_at_once() {
    // The script's TERM handler calls loop.shutdown, which a sleeping thread holds up.
    let script = "local loop = require'socketloop'
        loop.newthread(function() loop.sleep(100) end)
        loop.onsignal('TERM', function()
            loop.newthread(function()
                loop.sleep(0)
                io.stderr:write('shutting down\\n') io.stderr:flush()
            end)
            loop.shutdown(60)
        end)
        io.stdout:write('ready\\n') io.stdout:flush()";
    let mut runner = Runner::start(&["-e", script]);
    assert_eq!(runner.line(), "ready");
    runner.signal(libc::SIGTERM);
    runner.wait_stderr("shutting down");
    runner.signal(libc::SIGTERM);
    let status = runner.wait(GRACE / 2);
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

/// One reply of tests/runner/workers_server.lua: (index, count, pid).
fn ask(port: u16) -> std::io::Result<(usize, usize, u32)> {
    let mut s = connect(port)?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let words: Vec<&str> = reply.split_whitespace().collect();
    match words[..] {
        ["worker", index, count, pid] => Ok((
            index.parse().expect("index"),
            count.parse().expect("count"),
            pid.parse().expect("pid"),
        )),
        _ => Err(std::io::Error::other(format!("bad reply {reply:?}"))),
    }
}

/// Whether process `pid` has exited (gone, or a zombie whose parent has not reaped it).
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn two_workers_serve_and_a_killed_one_is_restarted() {
    let port = free_port();
    let port_arg = port.to_string();
    let mut sup = Runner::start(&[
        "--workers",
        "2",
        "tests/runner/workers_server.lua",
        &port_arg,
    ]);
    let mut ready = vec![sup.line(), sup.line()];
    ready.sort();
    assert_eq!(ready, ["worker 1 listening", "worker 2 listening"]);
    // Both serve: the kernel spreads connections over their sockets.
    let mut pids = [0u32; 3];
    for _ in 0..2000 {
        let (index, count, pid) = ask(port).unwrap_or_else(|e| sup.fail(&format!("ask: {e}")));
        assert_eq!(count, 2);
        pids[index] = pid;
        if pids[1] != 0 && pids[2] != 0 {
            break;
        }
    }
    assert!(
        pids[1] != 0 && pids[2] != 0,
        "one worker served everything: {pids:?}"
    );
    assert_ne!(pids[1], pids[2]);
    // Kill worker 1 (it is this test's grandchild: its PID came from its own reply).
    // SAFETY: kill(2) on a worker of the supervisor started here, which has not reaped it.
    assert_eq!(
        unsafe { libc::kill(pids[1] as libc::pid_t, libc::SIGKILL) },
        0
    );
    // Checked once per try: once reaped, its PID may belong to another process.
    let died = (0..5000).any(|_| {
        exited(pids[1]) || {
            std::thread::sleep(Duration::from_millis(2));
            false
        }
    });
    assert!(died, "worker 1 did not die");
    // The service keeps answering, and worker 1 comes back as a new process.
    let mut restarted = None;
    for _ in 0..5000 {
        let (index, _, pid) =
            ask(port).unwrap_or_else(|e| sup.fail(&format!("ask after the kill: {e}")));
        if index == 1 {
            assert_ne!(pid, pids[1], "an answer from the killed worker");
            restarted = Some(pid);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(restarted.is_some(), "worker 1 was not restarted");
    assert_eq!(sup.line(), "worker 1 listening");
    sup.wait_stderr("worker 1 (pid");
    assert!(
        sup.log
            .iter()
            .any(|l| l.contains("killed by signal 9") && l.contains("restarting")),
        "{}",
        sup.log.join("\n")
    );
    // SIGTERM: forwarded, every worker shuts down gracefully, the supervisor exits 0.
    sup.signal(libc::SIGTERM);
    let status = sup.wait(GRACE);
    assert_eq!(status.code(), Some(0), "{}", sup.log.join("\n"));
}

#[test]
fn a_worker_that_keeps_failing_makes_the_supervisor_give_up() {
    let mut sup = Runner::start(&["--workers", "2", "-e", "os.exit(3)", "-"]);
    let status = sup.wait(TIME_LIMIT);
    assert_eq!(status.code(), Some(3), "{}", sup.log.join("\n"));
    assert!(
        sup.log.iter().any(|l| l.contains("giving up")),
        "{}",
        sup.log.join("\n")
    );
}
