//! The request/response modes of loadgen: `--mode rpc` (socketloop.rpc's binary protocol,
//! docs/protocol.md) and `--mode http` (keep-alive HTTP/1.1 GETs). They measure a server
//! the way the echo mode does: requests per second and the server's CPU per request.
//!
//! Each connection keeps `--inflight` requests in flight (rpc: distinct sequence
//! numbers; http: 1, no pipelining) until it has had `--msgs` answers; every answer is
//! checked (rpc: status OK and the right sum for that sequence number; http: status 200
//! and a body of the announced length, the same on every answer).

use crate::{sample, Sample};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What a request mode needs from the command line.
pub struct Params {
    pub port: u16,
    pub conns: usize,
    pub msgs: u64,
    pub inflight: usize,
    pub timeout: f64,
    pub server_pid: u32,
    pub path: String,
}

/// A protocol: writes requests and checks answers, per connection.
trait Protocol {
    /// Appends request `n` of connection `conn` to `out`.
    fn request(&mut self, conn: usize, n: u64, out: &mut Vec<u8>);
    /// Checks the answer at the front of `buf`: its length once complete.
    fn answer(&mut self, conn: usize, buf: &[u8]) -> Result<Option<usize>, String>;
}

/// `add(n, 1)` calls to an rpc server exposing `add` (benches/rpc_bench.lua).
struct Rpc {
    /// Per connection, per sequence number: the sum expected.
    expect: Vec<[u64; 256]>,
    /// Per connection, the sequence numbers not in flight (answers may come in any order).
    free: Vec<Vec<u8>>,
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..70).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        v |= ((b & 0x7f) as u64) << shift;
        if b < 0x80 {
            return Some(v);
        }
    }
    None
}

impl Protocol for Rpc {
    fn request(&mut self, conn: usize, n: u64, out: &mut Vec<u8>) {
        let seq = self.free[conn].pop().unwrap_or(0);
        let arg = n % (1 << 40);
        self.expect[conn][seq as usize] = arg + 1;
        let mut payload = vec![5, 3, b'a', b'd', b'd', 2, 3]; // "add", 2 values, an integer
        varint(&mut payload, arg << 1); // zigzag of a non-negative integer
        payload.extend([3, 2]); // the integer 1
        out.extend([0, seq]);
        out.extend((payload.len() as u32).to_be_bytes());
        out.extend(payload);
    }

    fn answer(&mut self, conn: usize, buf: &[u8]) -> Result<Option<usize>, String> {
        if buf.len() < 6 {
            return Ok(None);
        }
        let size = u32::from_be_bytes([buf[2], buf[3], buf[4], buf[5]]) as usize;
        if buf.len() < 6 + size {
            return Ok(None);
        }
        let (kind, seq, payload) = (buf[0], buf[1], &buf[6..6 + size]);
        let mut pos = 3;
        let sum = match payload {
            [0, 1, 3, ..] if kind == 1 => read_varint(payload, &mut pos).map(|z| z >> 1),
            _ => None,
        };
        let want = self.expect[conn][seq as usize];
        if sum != Some(want) || pos != size || self.free[conn].contains(&seq) {
            return Err(format!(
                "answer to seq {seq}: {payload:?}, want the sum {want}"
            ));
        }
        self.free[conn].push(seq);
        Ok(Some(6 + size))
    }
}

/// GETs of one path; every answer must be a 200 with the same body length.
struct Http {
    request: Vec<u8>,
    body_len: Option<usize>,
}

impl Protocol for Http {
    fn request(&mut self, _conn: usize, _n: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.request);
    }

    fn answer(&mut self, _conn: usize, buf: &[u8]) -> Result<Option<usize>, String> {
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&buf[..end]);
        if !head.starts_with("HTTP/1.1 200 ") {
            return Err(format!(
                "status line: {}",
                head.lines().next().unwrap_or("")
            ));
        }
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .ok_or("no Content-Length")?;
        if *self.body_len.get_or_insert(len) != len {
            return Err(format!(
                "body of {len} bytes, earlier ones had {:?}",
                self.body_len
            ));
        }
        let total = end + 4 + len;
        Ok((buf.len() >= total).then_some(total))
    }
}

struct Conn {
    sock: TcpStream,
    out: Vec<u8>,
    written: usize,
    input: Vec<u8>,
    sent: u64,
    answered: u64,
}

/// Runs the mode; prints the RESULT line and returns whether every answer was right.
pub fn run(mode: &str, p: &Params) -> bool {
    let mut proto: Box<dyn Protocol> = match mode {
        "rpc" => Box::new(Rpc {
            expect: vec![[0; 256]; p.conns],
            free: vec![
                (0..p.inflight.clamp(1, 256) as u16)
                    .rev()
                    .map(|s| s as u8)
                    .collect();
                p.conns
            ],
        }),
        _ => Box::new(Http {
            request: format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", p.path).into_bytes(),
            body_len: None,
        }),
    };
    let inflight = if mode == "rpc" {
        p.inflight.clamp(1, 256)
    } else {
        1
    } as u64;
    let mut poll = Poll::new().expect("epoll");
    let mut conns = Vec::new();
    for i in 0..p.conns {
        let addr = SocketAddr::from(([127, 0, 0, 1], p.port));
        let mut sock = match TcpStream::connect(addr) {
            Ok(s) => s,
            Err(e) => return finish(mode, p, 0, 0.0, &format!("connect: {e}"), None),
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = poll.registry().register(&mut sock, Token(i), interest) {
            return finish(mode, p, 0, 0.0, &format!("register: {e}"), None);
        }
        let _ = sock.set_nodelay(true);
        conns.push(Conn {
            sock,
            out: Vec::new(),
            written: 0,
            input: Vec::new(),
            sent: 0,
            answered: 0,
        });
    }
    let s0 = sample(p.server_pid);
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(p.timeout);
    for (i, c) in conns.iter_mut().enumerate() {
        while c.sent < inflight.min(p.msgs) {
            proto.request(i, c.sent, &mut c.out);
            c.sent += 1;
        }
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut done = 0;
    let mut error = String::new();
    while done < p.conns && error.is_empty() {
        if Instant::now() >= deadline {
            error = "timeout".to_string();
            break;
        }
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(100))) {
            if e.kind() != ErrorKind::Interrupted {
                error = format!("epoll: {e}");
            }
            continue;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            match serve(
                &mut conns[i],
                i,
                proto.as_mut(),
                &mut scratch,
                inflight,
                p.msgs,
            ) {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(e) => {
                    error = format!("conn {i}: {e}");
                    break;
                }
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let answered: u64 = conns.iter().map(|c| c.answered).sum();
    let s1 = sample(p.server_pid);
    finish(mode, p, answered, secs, &error, Some((s0, s1)))
}

/// Writes what is queued, reads and checks answers, queues the next requests. Ok(true)
/// when this connection just got its last answer.
fn serve(
    c: &mut Conn,
    i: usize,
    proto: &mut dyn Protocol,
    scratch: &mut [u8],
    inflight: u64,
    msgs: u64,
) -> Result<bool, String> {
    let before = c.answered;
    loop {
        flush(c)?;
        let n = match c.sock.read(scratch) {
            Ok(0) => return Err("closed by the server".into()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read: {e}")),
        };
        c.input.extend_from_slice(&scratch[..n]);
        let mut used = 0;
        while let Some(len) = proto.answer(i, &c.input[used..])? {
            used += len;
            c.answered += 1;
            if c.sent < msgs {
                proto.request(i, c.sent, &mut c.out);
                c.sent += 1;
            }
        }
        c.input.drain(..used);
        if c.answered > c.sent || c.sent - c.answered > inflight {
            return Err("more answers than requests".into());
        }
    }
    flush(c)?;
    Ok(before < msgs && c.answered >= msgs)
}

fn flush(c: &mut Conn) -> Result<(), String> {
    while c.written < c.out.len() {
        match c.sock.write(&c.out[c.written..]) {
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("write: {e}")),
        }
    }
    c.out.clear();
    c.written = 0;
    Ok(())
}

fn finish(
    mode: &str,
    p: &Params,
    answered: u64,
    secs: f64,
    error: &str,
    cpu: Option<(Sample, Sample)>,
) -> bool {
    let per_s = if secs > 0.0 {
        answered as f64 / secs
    } else {
        0.0
    };
    let server_us = cpu
        .filter(|_| p.server_pid != 0 && answered > 0)
        .map(|(a, b)| (b.srv_ns - a.srv_ns) as f64 / 1e3 / answered as f64)
        .unwrap_or(0.0);
    let status = if error.is_empty() { "ok" } else { "failed" };
    println!(
        "RESULT status={status} mode={mode} conns={} inflight={} answered={answered} secs={secs:.4} \
         per_s={per_s:.0} server_us_per_req={server_us:.3} error={}",
        p.conns,
        p.inflight,
        error.replace(' ', "_")
    );
    error.is_empty()
}
