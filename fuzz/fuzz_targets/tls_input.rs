//! Fuzzes what of ours reads TLS input (src/net/tls.rs): the PEM readers
//! (`parse_certificates`, `parse_key`) and a TLS session's handling of bytes from the
//! network — records handed over before the handshake (`feed`), and the handshake and
//! reads over a socket, whose other end gets the input and is then shut down.
//!
//! The server's certificate and key (fuzz/tls/, made for this target only) are built
//! into a server context once; the client context does not verify, so that a server
//! flight in the input can get as far as the peer's certificate allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketloop::net::tls::{
    parse_certificates, parse_key, Mode, Source, Step, TlsContext, TlsParams, TlsSession,
};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::OnceLock;

fn server() -> &'static TlsContext {
    static CTX: OnceLock<TlsContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let params = TlsParams {
            mode: Mode::Server,
            certificate: Some(Source::Pem(include_bytes!("../tls/server.pem").to_vec())),
            key: Some(Source::Pem(include_bytes!("../tls/server.key").to_vec())),
            ..TlsParams::default()
        };
        TlsContext::new(&params).expect("the fuzz target's server context")
    })
}

fn client() -> &'static TlsContext {
    static CTX: OnceLock<TlsContext> = OnceLock::new();
    CTX.get_or_init(|| {
        let params = TlsParams {
            verify: Some(false),
            ..TlsParams::default()
        };
        TlsContext::new(&params).expect("the fuzz target's client context")
    })
}

/// Runs `session` over a socket whose peer sent `input` and closed: the handshake, then
/// reads until the stream ends or fails. Bounded: each step either reads input or ends.
fn drive(mut session: TlsSession, input: &[u8]) {
    let Ok((ours, mut theirs)) = UnixStream::pair() else {
        return;
    };
    let _ = ours.set_nonblocking(true);
    // Whatever the socket buffer takes; the rest is cut off, as by a peer that stalls.
    let _ = theirs.set_nonblocking(true);
    let _ = theirs.write(input);
    let _ = theirs.shutdown(std::net::Shutdown::Write);
    let fd = ours.as_raw_fd();
    let mut steps = 0;
    loop {
        steps += 1;
        if steps > 64 {
            return;
        }
        match session.handshake(fd) {
            Step::Done => break,
            Step::WantRead | Step::WantWrite | Step::Failed(_) => return,
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..1024 {
        match session.read(fd, &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => assert!(n <= buf.len()),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = parse_certificates(data, "input") {
        assert!(!certs.is_empty());
    }
    let _ = parse_key(data, "input");

    if let Ok(mut s) = TlsSession::new(server(), None, None) {
        let _ = s.feed(data);
    }
    if let Ok(s) = TlsSession::new(server(), None, None) {
        drive(s, data);
    }
    if let Ok(s) = TlsSession::new(client(), None, Some("localhost")) {
        drive(s, data);
    }
});
