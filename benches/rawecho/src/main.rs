//! rawecho: the floor of socketloop's benchmarks. A line-echo server in plain
//! Rust on mio: one thread, epoll edge-triggered, no scripting, no coroutines.
//!
//! Each read takes what the kernel has into one shared scratch buffer; the
//! complete lines are written straight back from it. Only a trailing partial
//! line, or output the kernel would not take yet, is copied into a per-socket
//! buffer, so an idle connection costs the socket and a small slot.
//!
//! usage: rawecho PORT        (listens on 127.0.0.1:PORT)
//!        rawecho --tls CERT KEY PORT  (the line echo over TLS, rustls: see tls.rs)
//!        rawecho --tls-load PORT CAFILE MODE CONNS MSGS [SIZE WINDOW HOLD TIMEOUT PID]
//!                            (the TLS load generator: MODE echo, handshakes or idle)
//!        rawecho --udp PORT  (a UDP datagram echo on 127.0.0.1:PORT: each readable
//!                             event, receive and send back until the kernel has no more)
//!        rawecho --udp-load PORT COUNT WINDOW
//!                            (the UDP load generator: COUNT datagrams of 32 bytes to
//!                             127.0.0.1:PORT, WINDOW in flight; prints datagrams/s)

mod tls;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;

const LISTENER: Token = Token(usize::MAX);

struct Client {
    sock: TcpStream,
    partial: Vec<u8>, // start of a line not yet complete
    unsent: Vec<u8>,  // echo the kernel did not take yet
}

enum Flow {
    Open,
    Close,
}

/// Write `data` as far as the kernel takes it; the rest goes to `unsent`.
fn push(c: &mut Client, mut data: &[u8]) -> Flow {
    if !c.unsent.is_empty() {
        c.unsent.extend_from_slice(data);
        return Flow::Open;
    }
    while !data.is_empty() {
        match c.sock.write(data) {
            Ok(0) => return Flow::Close,
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                c.unsent.extend_from_slice(data);
                return Flow::Open;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return Flow::Close,
        }
    }
    Flow::Open
}

/// Retry output left over from an earlier write.
fn drain(c: &mut Client) -> Flow {
    let mut done = 0;
    let mut flow = Flow::Open;
    while done < c.unsent.len() {
        match c.sock.write(&c.unsent[done..]) {
            Ok(0) => {
                flow = Flow::Close;
                break;
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                flow = Flow::Close;
                break;
            }
        }
    }
    c.unsent.drain(..done);
    if c.unsent.is_empty() {
        c.unsent = Vec::new(); // give the memory back while idle
    }
    flow
}

fn serve(c: &mut Client, scratch: &mut [u8]) -> Flow {
    if let Flow::Close = drain(c) {
        return Flow::Close;
    }
    loop {
        let n = match c.sock.read(scratch) {
            Ok(0) => return Flow::Close,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Flow::Open,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Flow::Close,
        };
        let got = &scratch[..n];
        let Some(nl) = got.iter().rposition(|&b| b == b'\n') else {
            c.partial.extend_from_slice(got);
            continue;
        };
        if !c.partial.is_empty() {
            let head = std::mem::take(&mut c.partial);
            if let Flow::Close = push(c, &head) {
                return Flow::Close;
            }
        }
        if let Flow::Close = push(c, &got[..=nl]) {
            return Flow::Close;
        }
        c.partial.extend_from_slice(&got[nl + 1..]);
        // A short read means the kernel had nothing more: the next arrival
        // raises a new edge, so skip the read that would return EAGAIN.
        if n < scratch.len() {
            return Flow::Open;
        }
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

/// The UDP echo: the floor for `loop.udp()`.
fn udp_echo(port: u16) -> ! {
    let mut sock = mio::net::UdpSocket::bind(([127, 0, 0, 1], port).into()).expect("bind");
    let mut poll = Poll::new().expect("epoll");
    poll.registry().register(&mut sock, Token(0), Interest::READABLE).expect("register");
    let mut events = Events::with_capacity(16);
    let mut buf = vec![0u8; 8192];
    eprintln!("rawecho: UDP echo on 127.0.0.1:{port}");
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("epoll: {e}"),
        }
        loop {
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let _ = sock.send_to(&buf[..n], from);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {}
            }
        }
    }
}

/// Sends `count` datagrams to the echo on `port`, `window` in flight, and prints
/// `datagrams N lost L seconds S per_second R`. A datagram not answered within 200 ms
/// counts as lost and its slot is refilled.
fn udp_load(port: u16, count: u64, window: u64) {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.connect(("127.0.0.1", port)).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    let payload = [b'x'; 32];
    let mut buf = [0u8; 64];
    let (mut sent, mut answered, mut lost) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while sent < count.min(window) {
        sock.send(&payload).expect("send");
        sent += 1;
    }
    while answered + lost < count {
        match sock.recv(&mut buf) {
            Ok(n) => {
                assert_eq!(&buf[..n], &payload[..], "echo differs");
                answered += 1;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                lost += sent - answered - lost;
            }
            Err(e) => panic!("recv: {e}"),
        }
        while sent < count && sent - answered - lost < window {
            sock.send(&payload).expect("send");
            sent += 1;
        }
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "datagrams {answered} lost {lost} seconds {secs:.3} per_second {:.0}",
        answered as f64 / secs
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> u64 {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: rawecho [--udp] PORT | --udp-load PORT COUNT WINDOW");
            std::process::exit(2)
        })
    };
    let text = |i: usize| args.get(i).cloned().unwrap_or_default();
    let num_or = |i: usize, default: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.get(1).map(String::as_str) {
        Some("--tls") => {
            raise_nofile();
            tls::serve(num(4) as u16, &text(2), &text(3))
        }
        Some("--tls-load") => {
            raise_nofile();
            return tls::load(&tls::LoadOpts {
                port: num(2) as u16,
                cafile: text(3),
                mode: text(4),
                conns: num(5) as usize,
                msgs: num(6) as u32,
                size: num_or(7, 32.0) as usize,
                window: num_or(8, 100.0) as usize,
                hold: num_or(9, 2.0),
                timeout: num_or(10, 120.0),
                server_pid: num_or(11, 0.0) as u32,
            });
        }
        Some("--udp") => udp_echo(num(2) as u16),
        Some("--udp-load") => return udp_load(num(2) as u16, num(3), num(4)),
        _ => {}
    }
    let port: u16 = match std::env::args().nth(1).and_then(|p| p.parse().ok()) {
        Some(p) => p,
        None => {
            eprintln!("usage: rawecho PORT");
            std::process::exit(2)
        }
    };
    raise_nofile();
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into()).expect("bind");
    unsafe { libc::listen(listener.as_raw_fd(), 1024) }; // mio's default backlog is 128
    let mut poll = Poll::new().expect("epoll");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("register");
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    eprintln!("rawecho: line echo on 127.0.0.1:{port}");
    loop {
        match poll.poll(&mut events, None) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("epoll: {e}"),
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            let slot = free.pop().unwrap_or_else(|| {
                                clients.push(None);
                                clients.len() - 1
                            });
                            if poll.registry().register(&mut sock, Token(slot), Interest::READABLE | Interest::WRITABLE).is_err() {
                                free.push(slot);
                                continue;
                            }
                            clients[slot] = Some(Client { sock, partial: Vec::new(), unsent: Vec::new() });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => {
                            eprintln!("rawecho: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(Some(c)) = clients.get_mut(slot) else { continue };
            if let Flow::Close = serve(c, &mut scratch) {
                if let Some(mut c) = clients[slot].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(slot);
            }
        }
    }
}
