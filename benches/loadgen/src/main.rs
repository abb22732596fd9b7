//! loadgen: the load generator of socketloop's benchmark harness: line echo (this file),
//! and rpc and http requests (`requests.rs`).
//!
//! One thread, mio (epoll, edge-triggered), loopback targets only. Every
//! connection keeps exactly one request line in flight; every reply is checked
//! byte for byte against the line that was sent. The run is bounded by counts
//! (connections x messages) and by `--timeout` seconds.
//!
//! Phases (all connections move from one to the next together):
//!   warm    connect (at most `--window` connects in flight) and one echo each
//!   timed   `--msgs` echoes per connection: msgs/s, p50/p99, CPU of both sides
//!   hold    (only with `--hold S`) keep every connection open and idle for S
//!           seconds, then sample the server's RSS
//!   verify  (only with `--hold`) one more echo on every connection
//!
//! The last line on stdout is `RESULT key=value ...` (see `report`).
//! The server's CPU time comes from /proc/<pid>/stat (utime+stime, clock ticks)
//! and, with nanosecond resolution, from /proc/<pid>/task/*/schedstat.

mod requests;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

struct Opts {
    port: u16,
    conns: usize,
    msgs: u32,
    warmup: u32,
    size: usize,
    window: usize,
    hold: f64,
    timeout: f64,
    server_pid: u32,
    mode: String,
    inflight: usize,
    path: String,
}

const USAGE: &str =
    "usage: loadgen --port P [--conns N=1] [--msgs M=1000] [--size BYTES=32] [--warmup K=1]
               [--window W=200] [--hold SECONDS=0] [--timeout SECONDS=60] [--server-pid PID]
Line echo against 127.0.0.1:P. --msgs is per connection (0: no timed phase);
K untimed echoes per connection come first (the first one proves the connection is served).
--hold S: idle mode, hold all connections S seconds, sample the server's RSS, echo once more.
--mode rpc|http [--inflight K=1] [--path /bench]: request mode (src/requests.rs): --msgs
answers per connection, K rpc calls in flight per connection (http: 1), every answer checked.";

fn die(msg: &str) -> ! {
    eprintln!("loadgen: {msg}\n{USAGE}");
    std::process::exit(2)
}

fn num<T: std::str::FromStr>(k: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| die(&format!("bad value for {k}: {v}")))
}

fn opts() -> Opts {
    let mut o = Opts {
        port: 0,
        conns: 1,
        msgs: 1000,
        warmup: 1,
        size: 32,
        window: 200,
        hold: 0.0,
        timeout: 60.0,
        server_pid: 0,
        mode: "echo".to_string(),
        inflight: 1,
        path: "/bench".to_string(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        if k == "-h" || k == "--help" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let v = it
            .next()
            .unwrap_or_else(|| die(&format!("{k} needs a value")));
        match k.as_str() {
            "--port" => o.port = num(k, v),
            "--conns" => o.conns = num(k, v),
            "--msgs" => o.msgs = num(k, v),
            "--size" => o.size = num(k, v),
            "--warmup" => o.warmup = num(k, v),
            "--window" => o.window = num(k, v),
            "--hold" => o.hold = num(k, v),
            "--timeout" => o.timeout = num(k, v),
            "--server-pid" => o.server_pid = num(k, v),
            "--mode" if ["echo", "rpc", "http"].contains(&v.as_str()) => o.mode = v.clone(),
            "--inflight" => o.inflight = num(k, v),
            "--path" => o.path = v.clone(),
            // The target is always 127.0.0.1; a --host other than loopback is refused.
            "--host" => {
                if v.parse::<Ipv4Addr>()
                    .map(|a| !a.is_loopback())
                    .unwrap_or(true)
                {
                    die("only 127.0.0.1 (loopback) targets are allowed")
                }
            }
            _ => die(&format!("unknown option {k}")),
        }
    }
    if o.port == 0
        || o.conns == 0
        || o.window == 0
        || o.warmup == 0
        || o.size < 2
        || o.timeout <= 0.0
    {
        die("need --port, and positive --conns, --window, --warmup, --timeout, --size >= 2");
    }
    o
}

/// Byte `k` of request `seq` on connection `id` (the last byte is '\n').
#[inline]
fn expected(id: usize, seq: u32, k: usize, size: usize) -> u8 {
    if k == size - 1 {
        b'\n'
    } else {
        b'A' + ((id.wrapping_mul(13) + seq as usize * 5 + k) % 58) as u8 // 'A'..'z', never '\n'
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Warm,
    Timed,
    Hold,
    Verify,
    Done,
}

struct Conn {
    sock: TcpStream,
    connected: bool,
    dead: bool,
    busy: bool,  // has work in the current phase
    left: u32,   // echoes left in the current phase
    seq: u32,    // sequence number of the request in flight
    wpos: usize, // bytes of the request written
    rpos: usize, // bytes of the reply received and verified
    t0: Instant,
}

struct Gen {
    o: Opts,
    poll: Poll,
    conns: Vec<Conn>,
    phase: Phase,
    busy: usize, // connections with work left in this phase
    failed: usize,
    errors: Vec<String>,
    lat: Vec<u64>, // ns, timed phase only
    req: Vec<u8>,
    scratch: Vec<u8>,
}

impl Gen {
    fn fail(&mut self, i: usize, why: String) {
        let c = &mut self.conns[i];
        if c.dead {
            return;
        }
        c.dead = true;
        let _ = self.poll.registry().deregister(&mut c.sock);
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
        if c.busy {
            c.busy = false;
            self.busy -= 1;
        }
        self.failed += 1;
        if self.errors.len() < 4 {
            self.errors
                .push(format!("conn {i} in {:?}: {why}", self.phase));
        }
    }

    fn open(&mut self) -> std::io::Result<()> {
        let i = self.conns.len();
        let mut sock = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], self.o.port)))?;
        self.poll.registry().register(
            &mut sock,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.conns.push(Conn {
            sock,
            connected: false,
            dead: false,
            busy: true,
            left: self.o.warmup,
            seq: 0,
            wpos: 0,
            rpos: 0,
            t0: Instant::now(),
        });
        self.busy += 1;
        Ok(())
    }

    /// Begin the next request on connection i.
    fn send_next(&mut self, i: usize) {
        let c = &mut self.conns[i];
        c.seq = c.seq.wrapping_add(1);
        c.wpos = 0;
        c.rpos = 0;
        c.t0 = Instant::now();
        self.write_some(i);
    }

    fn write_some(&mut self, i: usize) {
        let size = self.o.size;
        let seq = self.conns[i].seq;
        for (k, b) in self.req.iter_mut().enumerate() {
            *b = expected(i, seq, k, size);
        }
        loop {
            let c = &mut self.conns[i];
            if c.wpos == size {
                return;
            }
            match c.sock.write(&self.req[c.wpos..]) {
                Ok(0) => return self.fail(i, "write returned 0".into()),
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, format!("write: {e}")),
            }
        }
    }

    /// The reply on connection i is complete and verified.
    fn replied(&mut self, i: usize) {
        let timed = self.phase == Phase::Timed;
        let c = &mut self.conns[i];
        if timed {
            self.lat.push(c.t0.elapsed().as_nanos() as u64);
        }
        c.left -= 1;
        if c.left > 0 {
            self.send_next(i);
        } else {
            c.busy = false;
            self.busy -= 1;
        }
    }

    fn ready(&mut self, i: usize) {
        if i >= self.conns.len() || self.conns[i].dead {
            return;
        }
        if !self.conns[i].connected {
            let c = &mut self.conns[i];
            match c.sock.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.fail(i, format!("connect: {e}")),
            }
            match c.sock.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotConnected => return, // still connecting
                Err(e) => return self.fail(i, format!("connect: {e}")),
            }
            c.connected = true;
            let _ = c.sock.set_nodelay(true);
            self.send_next(i);
            if self.conns[i].dead {
                return;
            }
        }
        let size = self.o.size;
        if self.conns[i].busy && self.conns[i].wpos < size {
            self.write_some(i);
        }
        loop {
            let c = &mut self.conns[i];
            if c.dead {
                return;
            }
            let n = match c.sock.read(&mut self.scratch) {
                Ok(0) => return self.fail(i, "connection closed by the server".into()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(i, format!("read: {e}")),
            };
            if !c.busy || c.wpos < size || c.rpos + n > size {
                return self.fail(i, format!("{n} unexpected bytes from the server"));
            }
            let (id, seq, rpos) = (i, c.seq, c.rpos);
            let bad = (0..n).find(|&k| self.scratch[k] != expected(id, seq, rpos + k, size));
            if let Some(k) = bad {
                let (got, want) = (self.scratch[k], expected(id, seq, rpos + k, size));
                return self.fail(
                    i,
                    format!(
                        "wrong echo: byte {} is {got:#04x}, sent {want:#04x}",
                        rpos + k
                    ),
                );
            }
            self.conns[i].rpos += n;
            let c = &mut self.conns[i];
            if c.rpos == size {
                // One request in flight per connection: nothing more can be queued
                // now, and the next reply raises a new edge, so stop reading here.
                return self.replied(i);
            }
        }
    }

    /// Give every live connection `n` echoes for phase `p`.
    fn start_phase(&mut self, p: Phase, n: u32) {
        self.phase = p;
        if n == 0 {
            return;
        }
        for i in 0..self.conns.len() {
            if !self.conns[i].dead {
                let c = &mut self.conns[i];
                c.busy = true;
                c.left = n;
                self.busy += 1;
                self.send_next(i);
            }
        }
    }

    fn alive(&self) -> usize {
        self.conns.len() - self.failed
    }
}

/// utime+stime of a process in clock ticks, from /proc/<pid>/stat.
fn stat_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..]; // fields from 3 (state) on
    let f: Vec<&str> = after.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU time of all threads of a process in ns, from /proc/<pid>/task/*/schedstat.
fn schedstat_ns(pid: u32) -> Option<u64> {
    let mut sum = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let s = std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok()?;
        sum += s.split(' ').next()?.parse::<u64>().ok()?;
    }
    Some(sum)
}

fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    l.split_whitespace().nth(1)?.parse().ok()
}

/// Busy and total clock ticks of the whole machine, from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let g = |k: usize| v.get(k).copied().unwrap_or(0);
    let total: u64 = (0..8).map(g).sum();
    (total - g(3) - g(4), total) // minus idle and iowait
}

#[derive(Clone, Copy, Default)]
struct Sample {
    t: Option<Instant>,
    own_ticks: u64,
    srv_ticks: u64,
    srv_ns: u64,
    machine_busy: u64,
}

fn sample(server_pid: u32) -> Sample {
    let pid = server_pid.to_string();
    Sample {
        t: Some(Instant::now()),
        own_ticks: stat_ticks("self").unwrap_or(0),
        srv_ticks: if server_pid != 0 {
            stat_ticks(&pid).unwrap_or(0)
        } else {
            0
        },
        srv_ns: if server_pid != 0 {
            schedstat_ns(server_pid).unwrap_or(0)
        } else {
            0
        },
        machine_busy: machine_ticks().0,
    }
}

fn raise_nofile() {
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e3
}

fn main() {
    raise_nofile();
    let o = opts();
    if o.mode != "echo" {
        let p = requests::Params {
            port: o.port,
            conns: o.conns,
            msgs: o.msgs as u64,
            inflight: o.inflight,
            timeout: o.timeout,
            server_pid: o.server_pid,
            path: o.path.clone(),
        };
        std::process::exit(if requests::run(&o.mode, &p) { 0 } else { 1 });
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(o.timeout);
    let idle_mode = o.hold > 0.0;
    let rss_before = if idle_mode {
        rss_kb(o.server_pid)
    } else {
        None
    };
    let mut g = Gen {
        poll: Poll::new().expect("epoll"),
        conns: Vec::with_capacity(o.conns),
        phase: Phase::Warm,
        busy: 0,
        failed: 0,
        errors: Vec::new(),
        lat: Vec::with_capacity(if idle_mode {
            0
        } else {
            o.conns * o.msgs as usize
        }),
        req: vec![0; o.size],
        scratch: vec![0; 64 * 1024],
        o,
    };
    let mut events = Events::with_capacity(1024);
    let mut open_error: Option<String> = None;
    let (mut s0, mut s1) = (Sample::default(), Sample::default());
    let mut warm_s = 0.0;
    let mut hold_end: Option<Instant> = None;
    let (mut warmed, mut held, mut verified) = (0usize, 0usize, 0usize);
    let mut rss_held = None;
    let mut status = "ok";

    while g.phase != Phase::Done {
        if g.phase == Phase::Warm && open_error.is_none() {
            while g.conns.len() < g.o.conns && g.busy < g.o.window {
                if let Err(e) = g.open() {
                    open_error = Some(format!("connect #{}: {e}", g.conns.len() + 1));
                    break;
                }
            }
        }
        let all_opened = g.conns.len() == g.o.conns || open_error.is_some();
        if g.busy == 0 && (g.phase != Phase::Warm || all_opened) {
            match g.phase {
                Phase::Warm => {
                    warm_s = started.elapsed().as_secs_f64();
                    warmed = g.alive();
                    if g.alive() == 0 {
                        status = "failed";
                        break;
                    }
                    if g.o.msgs > 0 {
                        s0 = sample(g.o.server_pid);
                        g.start_phase(Phase::Timed, g.o.msgs);
                    } else {
                        g.phase = Phase::Timed;
                    }
                    continue;
                }
                Phase::Timed => {
                    if g.o.msgs > 0 {
                        s1 = sample(g.o.server_pid);
                    }
                    if idle_mode {
                        held = g.alive();
                        println!("HOLDING conns={held}");
                        let _ = std::io::stdout().flush();
                        hold_end = Some(Instant::now() + Duration::from_secs_f64(g.o.hold));
                        g.phase = Phase::Hold;
                    } else {
                        g.phase = Phase::Done;
                    }
                    continue;
                }
                Phase::Hold => {
                    if Instant::now() >= hold_end.unwrap() {
                        rss_held = rss_kb(g.o.server_pid);
                        held = held.min(g.alive());
                        g.start_phase(Phase::Verify, 1);
                        continue;
                    }
                }
                Phase::Verify => {
                    verified = g.alive();
                    g.phase = Phase::Done;
                    continue;
                }
                Phase::Done => {}
            }
        }
        let now = Instant::now();
        if now >= deadline {
            status = "timeout";
            break;
        }
        let mut wait = (deadline - now).min(Duration::from_millis(100));
        if let (Phase::Hold, Some(h)) = (g.phase, hold_end) {
            wait = wait.min(h.saturating_duration_since(now));
        }
        match g.poll.poll(&mut events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => {
                g.errors.push(format!("epoll: {e}"));
                status = "failed";
                break;
            }
        }
        for ev in events.iter() {
            g.ready(ev.token().0);
        }
    }
    if status == "ok" && (g.failed > 0 || open_error.is_some()) {
        status = "errors";
    }
    report(
        &g, status, &s0, &s1, warm_s, warmed, idle_mode, held, verified, rss_before, rss_held,
    );
    if let Some(e) = open_error {
        eprintln!("loadgen: {e}");
    }
    for e in &g.errors {
        eprintln!("loadgen: {e}");
    }
    std::process::exit(if status == "ok" { 0 } else { 1 });
}

#[allow(clippy::too_many_arguments)]
fn report(
    g: &Gen,
    status: &str,
    s0: &Sample,
    s1: &Sample,
    warm_s: f64,
    warmed: usize,
    idle_mode: bool,
    held: usize,
    verified: usize,
    rss_before: Option<u64>,
    rss_held: Option<u64>,
) {
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut out = format!(
        "RESULT status={status} mode={} conns={} opened={} failed={} size={} warmed={warmed} warm_s={warm_s:.3}",
        if idle_mode { "idle" } else { "echo" },
        g.o.conns,
        g.conns.len(),
        g.failed,
        g.o.size
    );
    if let (Some(t0), Some(t1)) = (s0.t, s1.t) {
        let secs = (t1 - t0).as_secs_f64().max(1e-9);
        let msgs = g.lat.len() as u64;
        let mut lat = g.lat.clone();
        lat.sort_unstable();
        let srv_ticks_s = (s1.srv_ticks - s0.srv_ticks) as f64 / hz;
        // schedstat (ns) when the kernel has it, else clock ticks
        let srv_s = if s1.srv_ns > s0.srv_ns {
            (s1.srv_ns - s0.srv_ns) as f64 / 1e9
        } else {
            srv_ticks_s
        };
        let own_s = (s1.own_ticks - s0.own_ticks) as f64 / hz;
        let busy_s = (s1.machine_busy - s0.machine_busy) as f64 / hz;
        out += &format!(
            " msgs={msgs} secs={secs:.4} msgs_per_s={:.0} p50_us={:.1} p99_us={:.1} server_cpu_s={srv_s:.4} \
             server_cpu_ticks_s={srv_ticks_s:.2} server_us_per_msg={:.3} server_cpu_pct={:.1} loadgen_cpu_pct={:.1} \
             other_cpu_pct={:.1}",
            msgs as f64 / secs,
            percentile_us(&lat, 0.50),
            percentile_us(&lat, 0.99),
            if msgs > 0 { srv_s * 1e6 / msgs as f64 } else { 0.0 },
            100.0 * srv_s / secs,
            100.0 * own_s / secs,
            (100.0 * (busy_s - srv_ticks_s - own_s) / secs).max(0.0),
        );
    }
    if idle_mode {
        out += &format!(" held={held} verified={verified}");
        if let (Some(a), Some(b)) = (rss_before, rss_held) {
            out += &format!(" rss_before_kb={a} rss_held_kb={b}");
            if held > 0 {
                out += &format!(
                    " bytes_per_conn={:.0}",
                    (b as f64 - a as f64) * 1024.0 / held as f64
                );
            }
        }
    }
    println!("{out}");
}
