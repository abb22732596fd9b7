//! TCP sockets: the Rust half of an asocket, speaking LuaSocket's TCP API but never
//! blocking. Where LuaSocket would wait, these methods return `nil, 'wantread'` or
//! `nil, 'wantwrite'` and the Lua half (`lua/socketloop/asocket.lua`) parks the calling
//! thread on the socket's wait key. `receive('*l')` and friends are implemented here,
//! on top of [`crate::net::buffer`].
//!
//! Cost per call: a LuaJIT C call (see [`crate::lua::tcp`]) plus the system call.
//! A receive reads into a shared 64 KiB scratch area, so a socket holds no buffer memory
//! unless a pattern is left incomplete.

use crate::lua::stack::{Ret, Stack};
use crate::lua::tcp as tcp_lua;
use crate::net::buffer::{self, Pattern, RecvBuffer, Verdict};
use crate::net::errors::{fail, fail_at, fail_with, message, misuse, ok};
use crate::net::resolve::{resolve, Family};
use crate::net::sockopt::{self, OptValue, SockOpt};
use crate::rt::reactor::{SharedReactor, WriteReports};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::c_int;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

/// Returned (as the error) by operations that would block on reading.
pub const WANTREAD: &str = "wantread";
/// Returned (as the error) by operations that would block on writing.
pub const WANTWRITE: &str = "wantwrite";
/// Default `listen` backlog, as LuaSocket's.
const DEFAULT_BACKLOG: i32 = 32;
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// Where every receive reads first; only leftovers are copied into a socket's buffer.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// Where a receive's outcome goes: onto the Lua stack (the `receive` method) or into
/// the result of the FFI fast path ([`crate::lua::tcp_ffi`]).
pub trait Deliver {
    /// What the receive returns.
    type Out;
    /// A complete match: `prefix`, then `matched` as the pattern hands it out (a line
    /// loses its CRs).
    fn matched(&mut self, prefix: &[u8], matched: &[u8], pattern: Pattern) -> Self::Out;
    /// A complete match that is the result exactly as `bytes` (no prefix, no CR to drop);
    /// `bytes` stay where they are until the next receive on this thread.
    fn matched_as_is(&mut self, bytes: &[u8]) -> Self::Out;
    /// Failure with `err`; `partial` is the prefix and what had been received.
    fn failed(&mut self, err: &str, partial: &[u8]) -> Self::Out;
    /// Nothing to read until the reactor reports readiness (`'wantread'`).
    fn would_block(&mut self) -> Self::Out;
    /// A call the socket cannot serve in its state (`fname` is the method).
    fn misuse(&mut self, fname: &str, why: &str) -> Self::Out;
}

impl Deliver for &Stack<'_> {
    type Out = Ret;

    fn matched(&mut self, prefix: &[u8], matched: &[u8], pattern: Pattern) -> Ret {
        push_joined(self, prefix, matched, pattern);
        1
    }

    fn matched_as_is(&mut self, bytes: &[u8]) -> Ret {
        self.push_bytes(bytes);
        1
    }

    fn failed(&mut self, err: &str, partial: &[u8]) -> Ret {
        fail_with(self, err, partial)
    }

    fn would_block(&mut self) -> Ret {
        fail(self, WANTREAD)
    }

    fn misuse(&mut self, fname: &str, why: &str) -> Ret {
        misuse(self, fname, 0, why)
    }
}

/// How [`TcpSocket::send_range`] ended.
pub enum Sent {
    /// Everything went out; the position reached.
    All(usize),
    /// The kernel took no more (`'wantwrite'`) at this position.
    WouldBlock(usize),
    /// Failed with this error (`'closed'`, ...) at this position.
    Failed(Cow<'static, str>, usize),
    /// The socket is not connected: a misuse.
    NotConnected,
}

/// Where a socket is in its life, as LuaSocket's `tcp{master|client|server}`.
#[derive(Debug)]
enum State {
    /// New, not bound (`master`).
    Fresh,
    /// Bound to a local address (`master`).
    Bound,
    /// Accepting connections (`server`).
    Listening,
    /// A non-blocking connect is under way; the addresses left to try if it fails.
    Connecting(Vec<SocketAddr>),
    /// Connected (`client`).
    Connected,
    /// Closed: every I/O method answers `nil, 'closed'`.
    Closed,
}

/// A non-blocking TCP socket registered with the reactor.
pub struct TcpSocket {
    reactor: SharedReactor,
    /// The reactor registration; None once closed.
    token: Option<usize>,
    /// None until `bind`/`connect` picks the address family, and after `close`.
    sock: Option<Socket>,
    family: Option<Family>,
    state: State,
    /// Options set before the socket existed, applied when it is created.
    pending: Vec<(SockOpt, OptValue)>,
    rbuf: RecvBuffer,
    /// The peer closed its side; `'*a'` completes, other patterns end with `'closed'`.
    eof: bool,
    received: u64,
    sent: u64,
    born: Instant,
    /// Address of the userdata holding this socket (0 until [`TcpSocket::set_home`]),
    /// recorded as the owner of every token it registers.
    home: usize,
}

impl TcpSocket {
    /// A socket of `family` (None: decided by the first `bind` or `connect`).
    pub fn new(reactor: &SharedReactor, family: Option<Family>) -> TcpSocket {
        let token = reactor.borrow_mut().add_source();
        TcpSocket {
            reactor: reactor.clone(),
            token: Some(token),
            sock: None,
            family,
            state: State::Fresh,
            pending: Vec::new(),
            rbuf: RecvBuffer::default(),
            eof: false,
            received: 0,
            sent: 0,
            born: Instant::now(),
            home: 0,
        }
    }

    /// Tells the socket the address of the userdata that holds it, for the FFI fast path
    /// (see [`crate::lua::tcp_ffi`]).
    pub fn set_home(&mut self, home: usize) {
        self.home = home;
        self.claim_token();
    }

    fn claim_token(&self) {
        if let Some(token) = self.token {
            self.reactor.borrow_mut().set_owner(token, self.home);
        }
    }

    /// Takes ownership of an open descriptor (from `loop.wrap(fd)` or `setfd`).
    pub fn from_fd(reactor: &SharedReactor, fd: RawFd) -> io::Result<TcpSocket> {
        let mut s = TcpSocket::new(reactor, None);
        s.adopt(fd)?;
        Ok(s)
    }

    /// The wait key base (`token * 2`) the Lua side yields on; -1 once closed.
    pub fn token(&self) -> i64 {
        self.token.map_or(-1, |t| t as i64)
    }

    fn kind(&self) -> &'static str {
        match self.state {
            State::Listening => "server",
            State::Connected => "client",
            _ => "master",
        }
    }

    /// Makes `fd` this socket's descriptor: non-blocking, registered, state from the fd.
    /// On failure the descriptor is left open: the caller still owns it.
    fn adopt(&mut self, fd: RawFd) -> io::Result<()> {
        check_stream_socket(fd)?;
        // SAFETY: `fd` is an open socket the caller hands over; on failure it is released
        // (into_raw_fd) rather than closed.
        let sock = unsafe { Socket::from_raw_fd(fd) };
        let token = match self.token {
            Some(token) => token,
            None => {
                let _ = sock.into_raw_fd();
                return Err(closed_error());
            }
        };
        let attached = sock.set_nonblocking(true).and_then(|()| {
            self.reactor
                .borrow_mut()
                .attach(token, fd, WriteReports::AfterBlocked)
        });
        if let Err(e) = attached {
            let _ = sock.into_raw_fd();
            return Err(e);
        }
        // Options set while there was no descriptor apply to the one adopted (a connect
        // race's winner, see `asocket:connect`).
        for (opt, value) in &self.pending {
            let _ = sockopt::set(&sock, *opt, *value);
        }
        self.family = match sock.local_addr().ok().and_then(|a| a.as_socket()) {
            Some(a) => Some(Family::of(&a)),
            None => self.family,
        };
        self.state = if sock.peer_addr().is_ok() {
            State::Connected
        } else if sock.is_listener().unwrap_or(false) {
            State::Listening
        } else {
            State::Fresh
        };
        self.sock = Some(sock);
        Ok(())
    }

    /// Registers `sock` with the reactor under this socket's token and keeps it.
    fn register(&mut self, sock: Socket) -> io::Result<()> {
        let token = self.token.ok_or_else(closed_error)?;
        self.reactor
            .borrow_mut()
            .attach(token, sock.as_raw_fd(), WriteReports::AfterBlocked)?;
        self.sock = Some(sock);
        Ok(())
    }

    /// Creates the OS socket for `family` if there is none yet.
    fn ensure_socket(&mut self, family: Family) -> io::Result<()> {
        if self.sock.is_some() {
            return Ok(());
        }
        let domain = match family {
            Family::V4 => Domain::IPV4,
            Family::V6 => Domain::IPV6,
        };
        let ty = Type::STREAM.nonblocking().cloexec();
        let sock = Socket::new(domain, ty, Some(Protocol::TCP))?;
        if family == Family::V6 {
            sock.set_only_v6(true)?;
        }
        sock.set_tcp_nodelay(true)?;
        for (opt, value) in &self.pending {
            sockopt::set(&sock, *opt, *value)?;
        }
        self.family = Some(family);
        self.register(sock)
    }

    /// Drops the OS socket (closing it) but keeps the registration for a retry.
    fn discard_socket(&mut self) {
        if let (Some(token), Some(_)) = (self.token, self.sock.as_ref()) {
            self.reactor.borrow_mut().detach(token);
        }
        self.sock = None;
    }

    /// LuaSocket's `receive(pattern [, prefix])`; see the module documentation.
    pub fn receive(&mut self, st: &Stack) -> Ret {
        let Some(pattern) = pattern_arg(st, 2) else {
            return misuse(st, "receive", 1, "invalid receive pattern");
        };
        let prefix = if st.is_nil(3) {
            &[][..]
        } else {
            match st.coerced_string(3) {
                Some(p) => p,
                None => return misuse(st, "receive", 2, "string expected"),
            }
        };
        // As LuaSocket's: a count includes the prefix, so that a partial result passed
        // back as the prefix resumes the same receive.
        let pattern = match pattern {
            Pattern::Bytes(n) => Pattern::Bytes(n.saturating_sub(prefix.len())),
            p => p,
        };
        let mut out = st;
        self.receive_into(pattern, prefix, &mut out)
    }

    /// The receive algorithm, whoever asked (the method above or the FFI fast path):
    /// `pattern` (a count already net of the prefix) after `prefix`.
    pub fn receive_into<D: Deliver>(
        &mut self,
        pattern: Pattern,
        prefix: &[u8],
        out: &mut D,
    ) -> D::Out {
        if !matches!(self.state, State::Connected | State::Closed) {
            return out.misuse("receive", "socket is not connected");
        }
        loop {
            match self.rbuf.verdict(pattern, self.eof) {
                Verdict::Match(len, used) => {
                    let ret = out.matched(prefix, &self.rbuf.bytes()[..len], pattern);
                    self.rbuf.consume(used);
                    return ret;
                }
                Verdict::OverLimit => return self.limit_exceeded(out, pattern, prefix),
                Verdict::Closed => return self.fail_with_partial(out, "closed", pattern, prefix),
                Verdict::NeedMore => {}
            }
            let fd = match (&self.state, self.sock.as_ref()) {
                (State::Connected, Some(sock)) => sock.as_raw_fd(),
                _ => return self.fail_with_partial(out, "closed", pattern, prefix),
            };
            if !self.may_read() {
                return out.would_block();
            }
            let step = SCRATCH
                .with_borrow_mut(|scratch| self.receive_step(out, fd, scratch, pattern, prefix));
            if let Some(ret) = step {
                return ret;
            }
        }
    }

    /// One read for `receive`: Some(results) when the call is answered, None to look again.
    fn receive_step<D: Deliver>(
        &mut self,
        out: &mut D,
        fd: RawFd,
        scratch: &mut [u8],
        pattern: Pattern,
        prefix: &[u8],
    ) -> Option<D::Out> {
        let n = match read_some(fd, scratch) {
            Ok(0) => {
                self.eof = true;
                return None;
            }
            Ok(n) => {
                if n < scratch.len() {
                    self.mark_drained();
                }
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.mark_drained();
                return Some(out.would_block());
            }
            Err(e) => {
                let err = message(&e);
                return Some(self.fail_with_partial(out, &err, pattern, prefix));
            }
        };
        self.received += n as u64;
        // Everything read is kept (the limit is checked by the caller on what is
        // buffered): a receive never drops bytes it took from the kernel.
        let fresh = self.rbuf.take_read(&scratch[..n], pattern)?;
        Some(if fresh.verbatim && prefix.is_empty() {
            // In the thread's scratch buffer, which only the next receive overwrites.
            out.matched_as_is(fresh.matched)
        } else {
            out.matched(prefix, fresh.matched, pattern)
        })
    }

    /// The receive limit was passed: the first `limit` buffered bytes are the partial
    /// result (consumed); the rest stays buffered, so what follows is never lost and the
    /// result does not depend on how the data was split into reads.
    fn limit_exceeded<D: Deliver>(
        &mut self,
        out: &mut D,
        pattern: Pattern,
        prefix: &[u8],
    ) -> D::Out {
        let take = self.rbuf.limit_cut();
        let mut all = Vec::with_capacity(prefix.len() + take);
        all.extend_from_slice(prefix);
        buffer::append_match(&mut all, &self.rbuf.bytes()[..take], pattern);
        self.rbuf.consume(take);
        out.failed("receive limit exceeded", &all)
    }

    fn fail_with_partial<D: Deliver>(
        &mut self,
        out: &mut D,
        err: &str,
        pattern: Pattern,
        prefix: &[u8],
    ) -> D::Out {
        let partial = self.take_partial(Some(pattern), prefix);
        out.failed(err, &partial)
    }

    /// `prefix` and everything buffered, which is consumed (LuaSocket's partial result).
    /// For a line, CRs are dropped from the buffered bytes as they are from the line, so
    /// passing the partial back as the prefix yields the same line LuaSocket would.
    fn take_partial(&mut self, pattern: Option<Pattern>, prefix: &[u8]) -> Vec<u8> {
        let mut all = Vec::with_capacity(prefix.len() + self.rbuf.len());
        all.extend_from_slice(prefix);
        match pattern {
            Some(p) => buffer::append_match(&mut all, self.rbuf.bytes(), p),
            None => all.extend_from_slice(self.rbuf.bytes()),
        }
        self.rbuf.clear();
        all
    }

    /// False when a read would only say EAGAIN (see `Reactor::is_readable`): saves a
    /// system call per message on request/response traffic.
    fn may_read(&self) -> bool {
        match (self.token, self.reactor.try_borrow()) {
            (Some(token), Ok(reactor)) => reactor.is_readable(token),
            _ => true,
        }
    }

    /// A read took everything there was (it returned less than asked, or EAGAIN).
    fn mark_drained(&self) {
        if let (Some(token), Ok(mut reactor)) = (self.token, self.reactor.try_borrow_mut()) {
            reactor.mark_drained(token);
        }
    }

    /// The kernel refused more output: the next writable event is worth reporting.
    fn mark_full(&self) {
        if let (Some(token), Ok(mut reactor)) = (self.token, self.reactor.try_borrow_mut()) {
            reactor.mark_unwritable(token);
        }
    }

    /// LuaSocket's `send(data [, i [, j]])`: returns the index of the last byte sent.
    pub fn send(&mut self, st: &Stack) -> Ret {
        let Some(bytes) = st.coerced_string(2) else {
            let why = format!("string expected, got {}", st.type_name(2));
            return misuse(st, "send", 1, &why);
        };
        let len = bytes.len() as i64;
        let (Some(i), Some(j)) = (optional_int(st, 3, 1), optional_int(st, 4, -1)) else {
            return misuse(st, "send", 2, "number expected");
        };
        let start = if i < 0 {
            (len + i + 1).max(1)
        } else {
            i.max(1)
        };
        let end = if j < 0 { len + j + 1 } else { j.min(len) };
        let done = (start - 1) as usize;
        let end = end.max(start - 1) as usize;
        match self.send_range(bytes, done, end) {
            Sent::All(done) => ok(st, done as i64),
            Sent::WouldBlock(done) => fail_at(st, WANTWRITE, done as i64),
            Sent::Failed(err, done) => fail_at(st, &err, done as i64),
            Sent::NotConnected => misuse(st, "send", 0, "socket is not connected"),
        }
    }

    /// Sends `bytes[done..end]` as far as the kernel takes it (for the method above and
    /// the FFI fast path). Positions are counted from the start of `bytes`.
    pub fn send_range(&mut self, bytes: &[u8], mut done: usize, end: usize) -> Sent {
        let sock = match (&self.state, self.sock.as_ref()) {
            (State::Connected, Some(sock)) => sock,
            (State::Closed, _) => return Sent::Failed(Cow::Borrowed("closed"), done),
            _ => return Sent::NotConnected,
        };
        while done < end {
            // MSG_NOSIGNAL: a dead peer is an error to return, not a SIGPIPE that kills a
            // host process which (unlike the runner) does not ignore the signal.
            match sock.send_with_flags(&bytes[done..end], libc::MSG_NOSIGNAL) {
                Ok(n) => {
                    done += n;
                    self.sent += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.mark_full();
                    return Sent::WouldBlock(done);
                }
                Err(e) => return Sent::Failed(Cow::Owned(message(&e)), done),
            }
        }
        Sent::All(done)
    }

    /// LuaSocket's `accept()`: a new connected socket, or `nil, 'wantread'`.
    pub fn accept(&mut self, st: &Stack) -> Ret {
        let listener = match (&self.state, self.sock.as_ref()) {
            (State::Listening, Some(sock)) => sock.as_raw_fd(),
            (State::Closed, _) => return fail(st, "closed"),
            _ => return misuse(st, "accept", 0, "socket is not listening"),
        };
        loop {
            let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
            // SAFETY: accept4 on a descriptor we own, without asking for the peer address.
            let fd = unsafe {
                libc::accept4(listener, std::ptr::null_mut(), std::ptr::null_mut(), flags)
            };
            if fd < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) | Some(libc::ECONNABORTED) => continue,
                    _ if e.kind() == io::ErrorKind::WouldBlock => return fail(st, WANTREAD),
                    _ => return fail(st, &message(&e)),
                }
            }
            // SAFETY: accept4 just returned this descriptor to us.
            let sock = unsafe { Socket::from_raw_fd(fd) };
            let _ = sock.set_tcp_nodelay(true);
            let mut client = TcpSocket::new(&self.reactor, self.family);
            client.state = State::Connected;
            if let Err(e) = client.register(sock) {
                return fail(st, &message(&e));
            }
            tcp_lua::push_socket(st, client);
            return 1;
        }
    }

    /// LuaSocket's `connect(host, port)`. Call again after `'wantwrite'` to finish.
    pub fn connect(&mut self, st: &Stack) -> Ret {
        match &mut self.state {
            State::Connected => return fail(st, "already connected"),
            State::Closed => return fail(st, "closed"),
            State::Listening => return misuse(st, "connect", 0, "socket is listening"),
            State::Connecting(_) => return self.finish_connect(st),
            State::Fresh | State::Bound => {}
        }
        let Some(host) = string_arg(st, 2) else {
            return misuse(st, "connect", 1, "string expected");
        };
        let Some(port) = port_arg(st, 3) else {
            return misuse(st, "connect", 2, "port out of range");
        };
        match resolve(&host, port, self.family) {
            Ok(addrs) => self.start_connect(st, addrs),
            Err(e) => fail(st, &e),
        }
    }

    /// Tries `addrs` in order until one connects, starts connecting, or all fail.
    fn start_connect(&mut self, st: &Stack, mut addrs: Vec<SocketAddr>) -> Ret {
        let mut last_error = "host not found".to_string();
        while !addrs.is_empty() {
            let addr = addrs.remove(0);
            if let Err(e) = self.ensure_socket(Family::of(&addr)) {
                last_error = message(&e);
                continue;
            }
            let Some(sock) = self.sock.as_ref() else {
                break;
            };
            match sock.connect(&SockAddr::from(addr)) {
                Ok(()) => {
                    self.state = State::Connected;
                    return ok(st, 1);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    self.state = State::Connecting(addrs);
                    self.mark_full();
                    return fail(st, WANTWRITE);
                }
                Err(e) => {
                    last_error = message(&e);
                    self.retry_socket(&addrs);
                }
            }
        }
        self.state = State::Fresh;
        fail(st, &last_error)
    }

    /// Before trying the next address: an unbound socket of either family starts over.
    fn retry_socket(&mut self, rest: &[SocketAddr]) {
        if !rest.is_empty() && !matches!(self.state, State::Bound) {
            self.discard_socket();
        }
    }

    /// Completes a connect that returned `'wantwrite'`, once the socket is writable.
    fn finish_connect(&mut self, st: &Stack) -> Ret {
        let Some(sock) = self.sock.as_ref() else {
            return fail(st, "closed");
        };
        let failure = match sock.take_error() {
            Ok(None) => match sock.peer_addr() {
                Ok(_) => {
                    self.state = State::Connected;
                    return ok(st, 1);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    self.mark_full();
                    return fail(st, WANTWRITE);
                }
                Err(e) => e,
            },
            Ok(Some(e)) | Err(e) => e,
        };
        let State::Connecting(rest) = std::mem::replace(&mut self.state, State::Fresh) else {
            return fail(st, &message(&failure));
        };
        if rest.is_empty() {
            return fail(st, &message(&failure));
        }
        self.discard_socket();
        self.start_connect(st, rest)
    }

    /// LuaSocket's `bind(address, port)`; `'*'` binds every local address.
    pub fn bind(&mut self, st: &Stack) -> Ret {
        // A Fresh socket may already have its descriptor (a raw one given to loop.wrap or
        // setfd): the bind is tried on it.
        if !matches!(self.state, State::Fresh) {
            return fail(st, "already bound");
        }
        let Some(host) = string_arg(st, 2) else {
            return misuse(st, "bind", 1, "string expected");
        };
        let Some(port) = port_arg(st, 3) else {
            return misuse(st, "bind", 2, "port out of range");
        };
        let addrs = match resolve(&host, port, self.family) {
            Ok(addrs) => addrs,
            Err(e) => return fail(st, &e),
        };
        let fixed_family = self.family.is_some();
        let mut last_error = String::new();
        for addr in addrs {
            if let Err(e) = self.ensure_socket(Family::of(&addr)) {
                last_error = message(&e);
                continue;
            }
            let Some(sock) = self.sock.as_ref() else {
                break;
            };
            match sock.bind(&SockAddr::from(addr)) {
                Ok(()) => {
                    self.state = State::Bound;
                    return ok(st, 1);
                }
                Err(e) => {
                    last_error = message(&e);
                    if !fixed_family {
                        self.discard_socket();
                        self.family = None;
                    }
                }
            }
        }
        fail(st, &last_error)
    }

    /// LuaSocket's `listen([backlog])`.
    pub fn listen(&mut self, st: &Stack) -> Ret {
        let Some(backlog) = optional_int(st, 2, DEFAULT_BACKLOG as i64) else {
            return misuse(st, "listen", 1, "number expected");
        };
        if self.sock.is_none() && matches!(self.state, State::Fresh) {
            if let Err(e) = self.ensure_socket(self.family.unwrap_or(Family::V4)) {
                return fail(st, &message(&e));
            }
        }
        let Some(sock) = self.sock.as_ref() else {
            return fail(st, "closed");
        };
        match sock.listen(backlog.clamp(1, i32::MAX as i64) as i32) {
            Ok(()) => {
                self.state = State::Listening;
                ok(st, 1)
            }
            Err(e) => fail(st, &message(&e)),
        }
    }

    /// Closes the socket and frees its registration. Idempotent.
    pub fn close(&mut self) {
        if let Some(token) = self.token.take() {
            if let Ok(mut reactor) = self.reactor.try_borrow_mut() {
                reactor.remove_source(token);
            }
        }
        self.sock = None;
        self.state = State::Closed;
        self.rbuf.clear();
    }

    pub fn shutdown(&mut self, st: &Stack) -> Ret {
        let how = if st.is_nil(2) {
            Shutdown::Both
        } else {
            match st.string(2) {
                Some(b"both") => Shutdown::Both,
                Some(b"send") => Shutdown::Write,
                Some(b"receive") => Shutdown::Read,
                _ => return misuse(st, "shutdown", 1, "invalid shutdown method"),
            }
        };
        let Some(sock) = self.sock.as_ref() else {
            return fail(st, "closed");
        };
        match sock.shutdown(how) {
            Ok(()) => ok(st, 1),
            Err(e) => fail(st, &message(&e)),
        }
    }

    pub fn setoption(&mut self, st: &Stack) -> Ret {
        let name = string_arg(st, 2).unwrap_or_default();
        if name == "receive-limit" {
            let Some(limit) = optional_int(st, 3, 0).filter(|n| *n >= 0) else {
                return misuse(st, "setoption", 2, "non-negative number expected");
            };
            self.rbuf.set_limit(limit as usize);
            return ok(st, 1);
        }
        let Some(opt) = SockOpt::parse(name.as_bytes()) else {
            return misuse(st, "setoption", 1, &format!("unsupported option '{name}'"));
        };
        let value = match opt.value_from_stack(st, 3) {
            Ok(v) => v,
            Err(why) => return misuse(st, "setoption", 2, why),
        };
        let Some(sock) = self.sock.as_ref() else {
            if matches!(self.state, State::Closed) {
                return fail(st, "closed");
            }
            self.pending.push((opt, value));
            return ok(st, 1);
        };
        match sockopt::set(sock, opt, value) {
            Ok(()) => ok(st, 1),
            Err(e) => fail(st, &message(&e)),
        }
    }

    pub fn getoption(&self, st: &Stack) -> Ret {
        let name = string_arg(st, 2).unwrap_or_default();
        if name == "receive-limit" {
            return ok(st, self.rbuf.limit() as i64);
        }
        let Some(opt) = SockOpt::parse(name.as_bytes()) else {
            return misuse(st, "getoption", 1, &format!("unsupported option '{name}'"));
        };
        let Some(sock) = self.sock.as_ref() else {
            return match self.pending.iter().rev().find(|(o, _)| *o == opt) {
                Some((_, v)) => v.push(st),
                None => fail(st, "closed"),
            };
        };
        match sockopt::get(sock, opt) {
            Ok(v) => v.push(st),
            Err(e) => fail(st, &message(&e)),
        }
    }

    /// `getsockname` (`peer` false) or `getpeername`: address, port, family.
    pub fn address(&self, st: &Stack, peer: bool) -> Ret {
        let Some(sock) = self.sock.as_ref() else {
            return fail(st, "closed");
        };
        let addr = if peer {
            sock.peer_addr()
        } else {
            sock.local_addr()
        };
        match addr.map(|a| a.as_socket()) {
            Ok(Some(a)) => {
                st.push_str(&a.ip().to_string());
                st.push_int(a.port() as i64);
                st.push_str(Family::of(&a).name());
                3
            }
            Ok(None) => fail(st, "not an internet address"),
            Err(e) => fail(st, &message(&e)),
        }
    }

    pub fn setfd(&mut self, st: &Stack) -> Ret {
        // -1 (LuaSocket's SOCKET_INVALID) detaches the descriptor, as LuaSec's wrap does.
        let valid = |fd: &i64| *fd >= -1 && *fd <= i32::MAX as i64;
        let Some(fd) = optional_int(st, 2, i64::MIN).filter(valid) else {
            return misuse(st, "setfd", 1, "descriptor expected");
        };
        if let Some(old) = self.sock.take() {
            if let Some(token) = self.token {
                self.reactor.borrow_mut().detach(token);
            }
            // LuaSocket's setfd replaces the descriptor without closing the old one.
            let _ = old.into_raw_fd();
        }
        if self.token.is_none() {
            self.token = Some(self.reactor.borrow_mut().add_source());
            self.claim_token();
        }
        self.rbuf.clear();
        self.eof = false;
        // Like a closed socket (until a descriptor is adopted), but the registration
        // stays for a later setfd.
        self.state = State::Closed;
        if fd < 0 {
            return ok(st, 1);
        }
        match self.adopt(fd as RawFd) {
            Ok(()) => ok(st, 1),
            Err(e) => fail(st, &message(&e)),
        }
    }

    /// `getstats()`: bytes received, bytes sent, age in seconds.
    pub fn getstats(&self, st: &Stack) -> Ret {
        st.push_num(self.received as f64);
        st.push_num(self.sent as f64);
        st.push_num(self.born.elapsed().as_secs_f64());
        3
    }

    /// `setstats(received, sent, age)`.
    pub fn setstats(&mut self, st: &Stack) -> Ret {
        let (Some(r), Some(w)) = (st.number(2), st.number(3)) else {
            return misuse(st, "setstats", 1, "number expected");
        };
        let age = st.number(4).unwrap_or(0.0).max(0.0);
        self.received = r.max(0.0) as u64;
        self.sent = w.max(0.0) as u64;
        self.born = Instant::now()
            .checked_sub(Duration::from_secs_f64(age.min(1e9)))
            .unwrap_or_else(Instant::now);
        ok(st, 1)
    }

    /// The descriptor, -1 when there is none.
    pub fn fd(&self) -> RawFd {
        self.sock.as_ref().map_or(-1, |k| k.as_raw_fd())
    }

    /// True when received bytes wait in the buffer (LuaSocket's `dirty`).
    pub fn dirty(&self) -> bool {
        !self.rbuf.is_empty()
    }

    /// How many received bytes wait in the buffer.
    pub fn buffered(&self) -> usize {
        self.rbuf.len()
    }

    /// `drain(prefix, pattern)`: what a receive that gives up hands back; see take_partial.
    pub fn drain(&mut self, st: &Stack) -> Ret {
        let prefix = st.coerced_string(2).unwrap_or_default();
        let pattern = if st.is_nil(3) {
            None
        } else {
            pattern_arg(st, 3)
        };
        let partial = self.take_partial(pattern, prefix);
        st.push_bytes(&partial);
        1
    }

    /// For `tostring`: `tcp{client}: 0x...`, as LuaSocket's.
    pub fn describe(&self) -> String {
        format!("tcp{{{}}}: {:p}", self.kind(), self as *const TcpSocket)
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        self.close();
    }
}

fn closed_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

/// Checks that `fd` is an open stream socket, before anything takes ownership of it.
fn check_stream_socket(fd: RawFd) -> io::Result<()> {
    if fd < 0 {
        return Err(closed_error());
    }
    let mut ty: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `ty`; a bad descriptor is
    // reported as an error, not undefined behaviour.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if ty != libc::SOCK_STREAM {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a stream socket",
        ));
    }
    Ok(())
}

/// Reads what is there (at most `buf.len()` bytes), retrying on EINTR.
fn read_some(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        // recv rather than read: read(2) on a socket also goes through the VFS layer's
        // checks and notifications, measurably more kernel time per message.
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Pushes `prefix` followed by a matched region as one Lua string (one copy when verbatim).
fn push_joined(st: &Stack, prefix: &[u8], matched: &[u8], pattern: Pattern) {
    if prefix.is_empty() && buffer::is_verbatim(matched, pattern) {
        return st.push_bytes(matched);
    }
    let mut out = Vec::with_capacity(prefix.len() + matched.len());
    out.extend_from_slice(prefix);
    buffer::append_match(&mut out, matched, pattern);
    st.push_bytes(&out);
}

/// A receive pattern: nil (`'*l'`), a pattern string, or a byte count (number or numeric string).
fn pattern_arg(st: &Stack, i: c_int) -> Option<Pattern> {
    if st.is_nil(i) {
        return Some(Pattern::Line);
    }
    if let Some(bytes) = st.string(i) {
        if let Some(p) = Pattern::parse(bytes) {
            return Some(p);
        }
    }
    count(st.number(i)?)
}

fn count(n: f64) -> Option<Pattern> {
    (n >= 0.0 && n <= usize::MAX as f64).then_some(Pattern::Bytes(n as usize))
}

/// A string argument (or a number, as its decimal text).
fn string_arg(st: &Stack, i: c_int) -> Option<String> {
    if st.strict_number(i).is_some() {
        return st
            .coerced_string(i)
            .map(|b| String::from_utf8_lossy(b).into_owned());
    }
    st.string(i)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// An optional integer argument: `default` for nil, None for a wrong type.
fn optional_int(st: &Stack, i: c_int, default: i64) -> Option<i64> {
    if st.is_nil(i) {
        return Some(default);
    }
    st.number(i).filter(|n| n.is_finite()).map(|n| n as i64)
}

/// A port number 0..=65535 (number or numeric string).
fn port_arg(st: &Stack, i: c_int) -> Option<u16> {
    let n = st.number(i)?;
    (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
}
