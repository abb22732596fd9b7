//! `socketloop --workers N script.lua`: N worker processes, each the runner with its own
//! loop running the script, and this process supervising them.
//!
//! Each worker is this executable started again without `--workers` and with
//! `SOCKETLOOP_WORKER=index/count` in its environment (read and removed by the worker,
//! see [`take_worker_env`]); its `loop.newserver` sockets get SO_REUSEPORT so the kernel
//! spreads the connections over the workers. Workers run in a process group of their
//! own, so a terminal's Ctrl-C reaches the supervisor only, which forwards it once; and
//! they get SIGTERM if the supervisor dies.
//!
//! The supervisor restarts a worker that fails (a non-zero exit status or a signal),
//! after a delay that doubles with each failure in a row (from 0.1 s up to 10 s; a
//! worker that ran for 10 s starts a new row), logging why on stderr. A worker that ends
//! with status 0 (its script finished) is not restarted. SIGTERM, SIGINT and SIGHUP are
//! forwarded to every worker (a graceful shutdown, see main.lua) and the supervisor exits
//! once they have: 0 if they all exited 0, else the first failure's status. When a
//! worker fails MAX_FAILURES times in a row, or cannot be started, the supervisor gives
//! up: it stops the others the same way and exits with that worker's first failure status.

use socketloop::rt::blocking::wait_fd;
use socketloop::rt::signals::SignalPipe;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The environment variable that makes the runner a worker: `index/count`.
pub const WORKER_ENV: &str = "SOCKETLOOP_WORKER";

const MAX_FAILURES: u32 = 5;
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(10);
/// A worker that ran this long before failing starts a new row of failures.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Reads and removes `SOCKETLOOP_WORKER` (so processes a worker starts are not workers):
/// `Some((index, count))` in a worker.
pub fn take_worker_env() -> Option<(usize, usize)> {
    let value = std::env::var(WORKER_ENV).ok()?;
    std::env::remove_var(WORKER_ENV);
    let (index, count) = value.split_once('/')?;
    let (index, count) = (index.parse().ok()?, count.parse().ok()?);
    (index >= 1 && index <= count).then_some((index, count))
}

/// The number of workers `--workers` asks for: N, or one per core for 0 and `auto`.
pub fn parse_count(value: &str) -> Result<usize, String> {
    let n = if value == "auto" {
        0
    } else {
        value
            .parse::<usize>()
            .ok()
            .filter(|&n| n <= 1024)
            .ok_or_else(|| {
                format!("bad --workers value '{value}' (a number up to 1024 or 'auto')")
            })?
    };
    if n > 0 {
        return Ok(n);
    }
    Ok(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

struct Worker {
    index: usize,
    child: Option<Child>,
    started: Instant,
    /// Failures in a row, and the status of the first of them.
    failures: u32,
    first_failure: Option<u8>,
    /// When to start it again, after a failure.
    restart_at: Option<Instant>,
}

/// The exit status a worker's end stands for: its code, or 128 + the signal.
fn status_code(status: std::process::ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code.clamp(0, 255) as u8,
        (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
        _ => 1,
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "ended".to_string(),
    }
}

/// Runs `count` workers of `args` (the runner's arguments without `--workers`) until
/// they have all ended; returns the exit status.
pub fn supervise(args: &[String], count: usize) -> u8 {
    let signals = match SignalPipe::new().and_then(|mut pipe| {
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            pipe.catch(signal, false)?;
        }
        Ok(pipe)
    }) {
        Ok(pipe) => pipe,
        Err(e) => {
            eprintln!("socketloop: cannot catch signals: {e}");
            return 1;
        }
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("socketloop: cannot find the runner's executable: {e}");
            return 1;
        }
    };
    let spawn = |index: usize| -> std::io::Result<Child> {
        let mut cmd = Command::new(&exe);
        cmd.args(args)
            .env(WORKER_ENV, format!("{index}/{count}"))
            .process_group(0);
        // SAFETY: prctl(2) is async-signal-safe and touches nothing of the parent's.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        cmd.spawn()
    };
    let mut workers: Vec<Worker> = (1..=count)
        .map(|index| Worker {
            index,
            child: None,
            started: Instant::now(),
            failures: 0,
            first_failure: None,
            restart_at: Some(Instant::now()),
        })
        .collect();
    let mut stopping = false;
    let mut gave_up: Option<u8> = None;
    // The first non-zero status of a worker that was not restarted.
    let mut first_status: Option<u8> = None;
    loop {
        // Start the workers that are due.
        let now = Instant::now();
        for w in workers.iter_mut() {
            if stopping || w.restart_at.is_none_or(|at| at > now) {
                continue;
            }
            w.restart_at = None;
            match spawn(w.index) {
                Ok(child) => {
                    w.child = Some(child);
                    w.started = Instant::now();
                }
                Err(e) => {
                    eprintln!(
                        "socketloop: cannot start worker {}: {e}; giving up",
                        w.index
                    );
                    gave_up.get_or_insert(w.first_failure.unwrap_or(1));
                    stopping = true;
                }
            }
        }
        if stopping {
            for w in workers.iter_mut() {
                w.restart_at = None;
            }
        }
        // Reap the workers that ended.
        let mut stop_others = false;
        for w in workers.iter_mut() {
            let Some(child) = w.child.as_mut() else {
                continue;
            };
            let status = match child.try_wait() {
                Ok(Some(status)) => status,
                Ok(None) => continue,
                Err(_) => continue,
            };
            let pid = child.id();
            w.child = None;
            let code = status_code(status);
            if stopping || code == 0 {
                // The end of a worker asked to stop, or whose script finished.
                if code != 0 {
                    first_status.get_or_insert(code);
                }
                continue;
            }
            if w.started.elapsed() >= HEALTHY_RUN {
                w.failures = 0;
                w.first_failure = None;
            }
            w.failures += 1;
            w.first_failure.get_or_insert(code);
            if w.failures >= MAX_FAILURES {
                eprintln!(
                    "socketloop: worker {} (pid {pid}) {}; {} failures in a row, giving up",
                    w.index,
                    describe(status),
                    w.failures
                );
                gave_up.get_or_insert(w.first_failure.unwrap_or(code));
                stop_others = true;
                continue;
            }
            let delay = FIRST_DELAY
                .saturating_mul(1 << (w.failures - 1).min(16))
                .min(MAX_DELAY);
            eprintln!(
                "socketloop: worker {} (pid {pid}) {}; restarting it in {:.1} s",
                w.index,
                describe(status),
                delay.as_secs_f64()
            );
            w.restart_at = Some(Instant::now() + delay);
        }
        if stop_others {
            stopping = true;
            forward(&workers_pids(&workers), libc::SIGTERM);
        }
        if stopping {
            for w in workers.iter_mut() {
                w.restart_at = None;
            }
        }
        if workers
            .iter()
            .all(|w| w.child.is_none() && w.restart_at.is_none())
        {
            break;
        }
        // Wait for a signal (a worker's end is SIGCHLD) or the next restart.
        let next = workers.iter().filter_map(|w| w.restart_at).min();
        let timeout = next.map(|at| at.saturating_duration_since(Instant::now()));
        wait_fd(Some(signals.fd()), false, timeout);
        let caught = signals.take();
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            if caught & (1 << signal) != 0 {
                stopping = true;
                forward(&workers_pids(&workers), signal);
            }
        }
    }
    gave_up.or(first_status).unwrap_or(0)
}

fn workers_pids(workers: &[Worker]) -> Vec<u32> {
    workers
        .iter()
        .filter_map(|w| w.child.as_ref().map(Child::id))
        .collect()
}

/// Sends `signal` to the workers (children not yet reaped: their pids are theirs).
fn forward(pids: &[u32], signal: i32) {
    for &pid in pids {
        // SAFETY: kill(2) on a child of this process that has not been reaped.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}
