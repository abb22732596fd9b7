//! The TLS floor and load for socketloop's TLS benchmarks (benches/tls_bench.sh):
//!
//! - `serve`: a line-echo server on mio + rustls (ring), one thread, edge-triggered:
//!   what socketloop's TLS echo is measured against.
//! - `load`: the TLS load generator, on mio + rustls too, against any TLS line echo on
//!   127.0.0.1: `echo` (every connection keeps one line in flight; reports the server's
//!   CPU per message), `handshakes` (full handshakes, a window of them in flight, each
//!   connection closed once its handshake is done; reports handshakes/s and the server's
//!   CPU per handshake), `idle` (opens N connections, one echo each, holds them, samples
//!   the server's RSS, one more echo each).
//!
//! The last line is `RESULT key=value ...`.

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: Token = Token(usize::MAX);

struct Client {
    sock: TcpStream,
    tls: ServerConnection,
    partial: Vec<u8>,
}

fn server_config(cert: &str, key: &str) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(cert)
        .expect("certificate file")
        .map(|c| c.expect("certificate"))
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).expect("key file");
    let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key");
    Arc::new(config)
}

/// One readiness event of a server connection: false to close it.
fn serve_one(c: &mut Client, scratch: &mut [u8]) -> bool {
    loop {
        match c.tls.read_tls(&mut c.sock) {
            Ok(0) => return false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
        if c.tls.process_new_packets().is_err() {
            let _ = c.tls.write_tls(&mut c.sock);
            return false;
        }
        loop {
            let n = match c.tls.reader().read(scratch) {
                Ok(0) => return false,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => return false,
            };
            let got = &scratch[..n];
            match got.iter().rposition(|&b| b == b'\n') {
                None => c.partial.extend_from_slice(got),
                Some(nl) => {
                    if !c.partial.is_empty() {
                        let head = std::mem::take(&mut c.partial);
                        let _ = c.tls.writer().write_all(&head);
                    }
                    let _ = c.tls.writer().write_all(&got[..=nl]);
                    c.partial.extend_from_slice(&got[nl + 1..]);
                }
            }
        }
    }
    while c.tls.wants_write() {
        match c.tls.write_tls(&mut c.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    true
}

/// The raw TLS line echo on 127.0.0.1:`port`.
pub fn serve(port: u16, cert: &str, key: &str) -> ! {
    let config = server_config(cert, key);
    let mut listener = TcpListener::bind(([127, 0, 0, 1], port).into()).expect("bind");
    // SAFETY: listen on a socket we own; mio's default backlog is 128.
    unsafe { libc::listen(listener.as_raw_fd(), 1024) };
    let mut poll = Poll::new().expect("epoll");
    poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("register");
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    eprintln!("rawecho: TLS line echo on 127.0.0.1:{port}");
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
                            let _ = sock.set_nodelay(true);
                            let slot = free.pop().unwrap_or_else(|| {
                                clients.push(None);
                                clients.len() - 1
                            });
                            let interest = Interest::READABLE | Interest::WRITABLE;
                            if poll.registry().register(&mut sock, Token(slot), interest).is_err() {
                                free.push(slot);
                                continue;
                            }
                            let tls = ServerConnection::new(config.clone()).expect("session");
                            clients[slot] = Some(Client { sock, tls, partial: Vec::new() });
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                continue;
            }
            let slot = ev.token().0;
            let Some(Some(c)) = clients.get_mut(slot) else { continue };
            if !serve_one(c, &mut scratch) {
                if let Some(mut c) = clients[slot].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(slot);
            }
        }
    }
}

/// The server's CPU time so far, in seconds (utime + stime of /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Conn {
    sock: TcpStream,
    tls: ClientConnection,
    inbuf: Vec<u8>,
    /// Echoes this connection still has to do in the current phase.
    left: u32,
    handshaken: bool,
    done: bool,
}

pub struct LoadOpts {
    pub port: u16,
    pub mode: String,
    pub conns: usize,
    pub msgs: u32,
    pub size: usize,
    pub window: usize,
    pub hold: f64,
    pub timeout: f64,
    pub server_pid: u32,
    pub cafile: String,
}

fn client_config(cafile: &str) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cafile).expect("cafile") {
        roots.add(c.expect("CA certificate")).expect("CA");
    }
    let config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn open(poll: &Poll, config: &Arc<ClientConfig>, port: u16, token: usize) -> Conn {
    let mut sock = TcpStream::connect(([127, 0, 0, 1], port).into()).expect("connect");
    let _ = sock.set_nodelay(true);
    poll.registry()
        .register(&mut sock, Token(token), Interest::READABLE | Interest::WRITABLE)
        .expect("register");
    let name = ServerName::try_from("localhost").expect("name");
    let tls = ClientConnection::new(config.clone(), name).expect("session");
    Conn { sock, tls, inbuf: Vec::new(), left: 0, handshaken: false, done: false }
}

/// Reads and writes what a connection can; returns (handshake just finished, echoes
/// completed). Panics on a TLS error or a wrong echo: the run is void then.
fn step(c: &mut Conn, line: &[u8], scratch: &mut [u8]) -> (bool, u32) {
    let mut finished = false;
    let mut echoes = 0;
    loop {
        match c.tls.read_tls(&mut c.sock) {
            Ok(0) => {
                c.done = true;
                break;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
        c.tls.process_new_packets().expect("TLS error from the server");
        while let Ok(n) = c.tls.reader().read(scratch) {
            if n == 0 {
                break;
            }
            c.inbuf.extend_from_slice(&scratch[..n]);
        }
    }
    if !c.handshaken && !c.tls.is_handshaking() {
        c.handshaken = true;
        finished = true;
    }
    while c.inbuf.len() >= line.len() {
        assert_eq!(&c.inbuf[..line.len()], line, "echo differs");
        c.inbuf.drain(..line.len());
        echoes += 1;
    }
    (finished, echoes)
}

fn flush(c: &mut Conn) {
    while c.tls.wants_write() {
        match c.tls.write_tls(&mut c.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("write: {e}"),
        }
    }
}

fn send_line(c: &mut Conn, line: &[u8]) {
    c.tls.writer().write_all(line).expect("write");
    flush(c);
}

/// Runs every connection until each has done `per_conn` echoes (sending the next line
/// after each echo), or the deadline passes.
fn echo_phase(poll: &mut Poll, conns: &mut [Conn], per_conn: u32, line: &[u8], deadline: Instant) -> u64 {
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut busy = 0;
    for c in conns.iter_mut() {
        c.left = per_conn;
        if per_conn > 0 {
            send_line(c, line);
            busy += 1;
        }
    }
    let mut total = 0u64;
    while busy > 0 && Instant::now() < deadline {
        poll.poll(&mut events, Some(Duration::from_millis(100))).expect("poll");
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            let (_, echoes) = step(c, line, &mut scratch);
            for _ in 0..echoes {
                total += 1;
                c.left -= 1;
                if c.left == 0 {
                    busy -= 1;
                } else {
                    send_line(c, line);
                }
            }
            flush(c);
        }
    }
    total
}

pub fn load(o: &LoadOpts) {
    let config = client_config(&o.cafile);
    let mut poll = Poll::new().expect("epoll");
    let deadline = Instant::now() + Duration::from_secs_f64(o.timeout);
    let mut line = vec![b'x'; o.size.max(2) - 1];
    line.push(b'\n');
    let mut scratch = vec![0u8; 64 * 1024];
    let mut events = Events::with_capacity(1024);
    if o.mode == "handshakes" {
        // o.msgs handshakes in all, o.window in flight.
        let total = o.msgs as u64;
        let mut slots: Vec<Option<Conn>> = Vec::new();
        let (mut started, mut done) = (0u64, 0u64);
        let cpu0 = cpu_seconds(o.server_pid);
        let t0 = Instant::now();
        while started < total.min(o.window as u64) {
            slots.push(Some(open(&poll, &config, o.port, slots.len())));
            started += 1;
        }
        while done < total && Instant::now() < deadline {
            poll.poll(&mut events, Some(Duration::from_millis(100))).expect("poll");
            for ev in events.iter() {
                let slot = ev.token().0;
                let Some(c) = slots[slot].as_mut() else { continue };
                let (finished, _) = step(c, &line, &mut scratch);
                flush(c);
                if finished {
                    done += 1;
                    if let Some(mut c) = slots[slot].take() {
                        let _ = poll.registry().deregister(&mut c.sock);
                    }
                    if started < total {
                        slots[slot] = Some(open(&poll, &config, o.port, slot));
                        started += 1;
                    }
                }
            }
        }
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds(o.server_pid) - cpu0;
        println!(
            "RESULT mode=handshakes handshakes={done} seconds={secs:.3} per_second={:.0} server_cpu_us_per_handshake={:.1}",
            done as f64 / secs,
            cpu * 1e6 / done.max(1) as f64
        );
        return;
    }
    // echo and idle: open every connection (window at a time) and finish its handshake
    let mut conns: Vec<Conn> = Vec::new();
    let mut handshaken = 0usize;
    while handshaken < o.conns && Instant::now() < deadline {
        while conns.len() < o.conns && conns.len() - handshaken < o.window {
            let token = conns.len();
            conns.push(open(&poll, &config, o.port, token));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100))).expect("poll");
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            let (finished, _) = step(c, &line, &mut scratch);
            flush(c);
            if finished {
                handshaken += 1;
            }
        }
    }
    assert_eq!(handshaken, o.conns, "not every connection finished its handshake in time");
    let warm = echo_phase(&mut poll, &mut conns, 1, &line, deadline);
    assert_eq!(warm, o.conns as u64, "the warm-up echo");
    if o.mode == "idle" {
        std::thread::sleep(Duration::from_secs_f64(o.hold));
        let rss = rss_kib(o.server_pid);
        let again = echo_phase(&mut poll, &mut conns, 1, &line, deadline);
        println!(
            "RESULT mode=idle conns={} server_rss_kib={rss} verified={again}",
            o.conns
        );
        return;
    }
    let cpu0 = cpu_seconds(o.server_pid);
    let t0 = Instant::now();
    let total = echo_phase(&mut poll, &mut conns, o.msgs, &line, deadline);
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(o.server_pid) - cpu0;
    assert_eq!(total, o.conns as u64 * o.msgs as u64, "every echo within the timeout");
    println!(
        "RESULT mode=echo conns={} msgs={total} seconds={secs:.3} msgs_per_second={:.0} server_cpu_us_per_msg={:.2}",
        o.conns,
        total as f64 / secs,
        cpu * 1e6 / total.max(1) as f64
    );
}
