//! TCP sockets: the Rust half of an asocket, speaking LuaSocket's TCP API but never
//! blocking. Where LuaSocket would wait, these methods fail with `'wantread'` or
//! `'wantwrite'` and the Lua half (`lua/socketloop/asocket.lua`) parks the calling
//! thread on the socket's wait key. `receive('*l')` and friends are implemented here,
//! on top of [`crate::net::buffer`].
//!
//! No Lua here: methods take Rust values and return Rust values ([`Outcome`], owned
//! bytes, or a [`Deliver`] answer), and the binding (`src/lua/tcp.rs`) reads arguments
//! from and pushes results to the Lua stack. A receive reads into a per-thread scratch
//! area, so a socket holds no buffer memory unless a pattern is left incomplete.

use crate::net::buffer::{self, Pattern, RecvBuffer, Verdict};
use crate::net::errors::{message, Failure, Outcome};
use crate::net::resolve::{resolve, Family};
use crate::net::sockopt::{self, OptValue, SockOpt};
use crate::net::tls::{Step, TlsSession};
use crate::rt::counters;
use crate::rt::reactor::{SharedReactor, WriteReports};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::borrow::Cow;
use std::cell::RefCell;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};

/// Returned (as the error) by operations that would block on reading.
pub const WANTREAD: &str = "wantread";
/// Returned (as the error) by operations that would block on writing.
pub const WANTWRITE: &str = "wantwrite";
/// Default `listen` backlog, as LuaSocket's.
pub const DEFAULT_BACKLOG: i64 = 32;
const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// Where receives that lend their result read first ([`Deliver::LENDS`]): a fresh
    /// match is handed out in place, valid until the next such receive. Only leftovers
    /// are copied into a socket's buffer. Never reallocated, so a pointer into it stays
    /// valid; the lender makes sure nobody reads into it while a result is out.
    static LENT_SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
    /// Where the other receives read first: their results are copied out before the
    /// receive returns, so nothing in it outlives the call.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_SIZE]);
}

/// Where a receive's outcome goes: copied into owned values for the Lua method, or
/// handed over in place to the FFI fast path ([`crate::lua::tcp_ffi`]). Implementations
/// are plain Rust: they must not call into Lua.
pub trait Deliver {
    /// What the receive returns.
    type Out;
    /// Whether `matched_in_place` may be given bytes in [`LENT_SCRATCH`] that must stay
    /// put until the next lending receive (true), or every match is copied (false).
    const LENDS: bool;
    /// A complete match: `prefix`, then `matched` as the pattern hands it out (a line
    /// loses its CRs).
    fn matched(&mut self, prefix: &[u8], matched: &[u8], pattern: Pattern) -> Self::Out;
    /// A complete match that is the result exactly as `bytes` (no prefix, no CR to drop);
    /// with [`Deliver::LENDS`], `bytes` stay where they are until the next lending receive.
    fn matched_in_place(&mut self, bytes: &[u8]) -> Self::Out;
    /// Failure with `err`; `partial` is the prefix and what had been received.
    fn failed(&mut self, err: &str, partial: &[u8]) -> Self::Out;
    /// Nothing to read until the reactor reports readiness (`'wantread'`).
    fn would_block(&mut self) -> Self::Out;
    /// A call the socket cannot serve in its state.
    fn misuse(&mut self, why: &'static str) -> Self::Out;
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// New, not bound (`master`).
    Fresh,
    /// Bound to a local address (`master`).
    Bound,
    /// Accepting connections (`server`).
    Listening,
    /// A non-blocking connect is under way; the addresses left to try if it fails are
    /// [`Cold::connect_rest`].
    Connecting,
    /// Connected (`client`).
    Connected,
    /// Closed: every I/O method answers `nil, 'closed'`.
    Closed,
}

/// A registration token in four bytes where `Option<usize>` takes sixteen: `u32::MAX`
/// stands for none. Tokens are slab indices, one per registration: a reactor with 2^32
/// of them would hold hundreds of GiB, so [`MaybeToken::some`] never meets one that does
/// not fit (it panics rather than truncate, inside the binding's panic guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MaybeToken(u32);

impl MaybeToken {
    const NONE: MaybeToken = MaybeToken(u32::MAX);

    fn some(token: usize) -> MaybeToken {
        match u32::try_from(token) {
            Ok(t) if t != u32::MAX => MaybeToken(t),
            _ => panic!("registration token {token} does not fit 32 bits"),
        }
    }

    #[inline]
    fn get(self) -> Option<usize> {
        (self != Self::NONE).then_some(self.0 as usize)
    }

    /// Empties it; what it held.
    fn take(&mut self) -> Option<usize> {
        std::mem::replace(self, Self::NONE).get()
    }
}

/// What few sockets need, kept out of every socket's userdata: allocated by the first
/// `setoption` before there is a descriptor, a connect that has to wait, or `starttls`.
/// Not touched on the receive and send paths of a socket that has none.
#[derive(Default)]
struct Cold {
    /// Options set before the OS socket existed, applied when it is created.
    pending: Vec<(SockOpt, OptValue)>,
    /// While a connect is under way ([`State::Connecting`]): the addresses left to try
    /// if it fails. Empty otherwise.
    connect_rest: Vec<SocketAddr>,
    /// After `starttls`: every read and write goes through the TLS session.
    tls: Option<Box<TlsSession>>,
}

/// A non-blocking TCP socket registered with the reactor.
///
/// Methods are called through `&mut` from one binding call at a time: the binding never
/// calls into Lua (which could run a finalizer that reaches this socket) while it holds
/// the reference, so `close` from a finalizer always finds the socket between calls.
///
/// It lives in its Lua userdata, one per connection: kept small (96 bytes, checked
/// below), with what few sockets use behind one pointer ([`Cold`]).
pub struct TcpSocket {
    /// The reactor this socket's registration lives in; also where the loop's counters
    /// (`loop.stats()`), which this socket adds to, and the loop clock are.
    reactor: SharedReactor,
    /// Options set early, the addresses of a connect under way, the TLS session: None
    /// until one of them is needed.
    cold: Option<Box<Cold>>,
    /// Received bytes no receive has taken yet; empty (owning no memory) once closed.
    rbuf: RecvBuffer,
    /// Bytes received and sent (`getstats`/`setstats`).
    received: u64,
    sent: u64,
    /// The creation time (`getstats`/`setstats`), nanoseconds on the loop clock; negative
    /// when `setstats` gave an age older than the loop.
    born: i64,
    /// The reactor registration (its slab index, the wait token); Some from creation
    /// until `close`, and again after `setfd` on a closed socket. While Some, the
    /// reactor records the address of the userdata payload holding this socket as its
    /// owner once that is known ([`TcpSocket::set_home`], [`TcpSocket::setfd`]).
    token: MaybeToken,
    /// The OS socket: None until `bind`/`connect`/`listen` picks the address family, after
    /// `close`, and after a failed connect attempt that will retry with another family.
    /// While Some and `token` is Some, its descriptor is attached to the registration.
    sock: Option<Socket>,
    /// The address family, once decided (by the constructor, a bind or a connect).
    family: Option<Family>,
    /// Where the socket is in its life; `Closed` exactly when `close` ran (or `setfd`
    /// left it without a descriptor).
    state: State,
    /// The peer closed its side; `'*a'` completes, other patterns end with `'closed'`.
    eof: bool,
}

// A socket per connection: 96 bytes fill LuaJIT's userdata allocation (with its 40-byte
// header) to a 144-byte chunk, where 104 would take 160.
const _: () = assert!(std::mem::size_of::<Option<TcpSocket>>() <= 96);

impl TcpSocket {
    /// A socket of `family` (None: decided by the first `bind` or `connect`).
    pub fn new(reactor: &SharedReactor, family: Option<Family>) -> TcpSocket {
        let (token, now) = {
            let mut r = reactor.borrow_mut();
            (r.add_source(), r.clock().now())
        };
        TcpSocket {
            reactor: reactor.clone(),
            cold: None,
            rbuf: RecvBuffer::default(),
            received: 0,
            sent: 0,
            born: i64::try_from(now).unwrap_or(i64::MAX),
            token: MaybeToken::some(token),
            sock: None,
            family,
            state: State::Fresh,
            eof: false,
        }
    }

    /// Tells the socket the address of the userdata that holds it, for the FFI fast path
    /// (see [`crate::lua::tcp_ffi`]).
    pub fn set_home(&mut self, home: usize) {
        self.claim_token(home);
    }

    /// Records `home` (the address of the userdata payload holding this socket) as the
    /// owner of its token: the FFI fast path dereferences a socket only at the address
    /// its token's owner names.
    fn claim_token(&self, home: usize) {
        if let Some(token) = self.token.get() {
            self.reactor.borrow_mut().set_owner(token, home);
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
        self.token.get().map_or(-1, |t| t as i64)
    }

    /// Moves to `state`; leaving [`State::Connecting`] drops the addresses it kept.
    fn set_state(&mut self, state: State) {
        if self.state == State::Connecting {
            if let Some(cold) = self.cold.as_deref_mut() {
                cold.connect_rest = Vec::new();
            }
        }
        self.state = state;
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
        let token = match self.token.get() {
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
        for (opt, value) in self.pending() {
            let _ = sockopt::set(&sock, *opt, *value);
        }
        self.family = match sock.local_addr().ok().and_then(|a| a.as_socket()) {
            Some(a) => Some(Family::of(&a)),
            None => self.family,
        };
        self.set_state(if sock.peer_addr().is_ok() {
            State::Connected
        } else if sock.is_listener().unwrap_or(false) {
            State::Listening
        } else {
            State::Fresh
        });
        self.sock = Some(sock);
        Ok(())
    }

    /// Registers `sock` with the reactor under this socket's token and keeps it.
    fn register(&mut self, sock: Socket) -> io::Result<()> {
        let token = self.token.get().ok_or_else(closed_error)?;
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
        for (opt, value) in self.pending() {
            sockopt::set(&sock, *opt, *value)?;
        }
        self.family = Some(family);
        self.register(sock)
    }

    /// Makes the OS socket now if the family is already known (LuaSocket's `tcp4()` and
    /// `tcp6()` have their descriptor from the start).
    pub fn open(&mut self) -> io::Result<()> {
        match self.family {
            Some(family) => self.ensure_socket(family),
            None => Ok(()),
        }
    }

    /// LuaSocket's `getfamily()`: `'inet6'`, else `'inet4'` (also while undecided).
    pub fn family_name(&self) -> &'static str {
        match self.family {
            Some(Family::V6) => "inet6",
            _ => "inet4",
        }
    }

    /// Options set before the OS socket existed.
    fn pending(&self) -> &[(SockOpt, OptValue)] {
        self.cold.as_deref().map_or(&[], |c| &c.pending)
    }

    /// The TLS session, once `starttls` made one.
    #[inline]
    fn tls_mut(&mut self) -> Option<&mut TlsSession> {
        self.cold.as_deref_mut()?.tls.as_deref_mut()
    }

    /// Drops the OS socket (closing it) but keeps the registration for a retry.
    fn discard_socket(&mut self) {
        if let (Some(token), Some(_)) = (self.token.get(), self.sock.as_ref()) {
            self.reactor.borrow_mut().detach(token);
        }
        self.sock = None;
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
            return out.misuse("socket is not connected");
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
            if !self.may_read() && !self.tls_holds_data() {
                return out.would_block();
            }
            let scratch = if D::LENDS { &LENT_SCRATCH } else { &SCRATCH };
            // No receive runs inside another (nothing here calls Lua), so the scratch is
            // free; a private one keeps that from being a panic if it ever were not.
            let step = scratch.with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => self.receive_step(out, fd, &mut scratch, true, pattern, prefix),
                Err(_) => {
                    let mut own = vec![0; SCRATCH_SIZE];
                    self.receive_step(out, fd, &mut own, false, pattern, prefix)
                }
            });
            if let Some(ret) = step {
                return ret;
            }
        }
    }

    /// One read for `receive`: Some(results) when the call is answered, None to look again.
    /// `lasting`: `scratch` is the thread's scratch, which a lending [`Deliver`] may hand
    /// out in place.
    fn receive_step<D: Deliver>(
        &mut self,
        out: &mut D,
        fd: RawFd,
        scratch: &mut [u8],
        lasting: bool,
        pattern: Pattern,
        prefix: &[u8],
    ) -> Option<D::Out> {
        let n = match self.read_stream(fd, scratch) {
            Ok(0) => {
                self.eof = true;
                return None;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Some(out.would_block());
            }
            Err(e) => {
                let err = message(&e);
                return Some(self.fail_with_partial(out, &err, pattern, prefix));
            }
        };
        // Everything read is kept (the limit is checked by the caller on what is
        // buffered): a receive never drops bytes it took from the kernel.
        let fresh = self.rbuf.take_read(&scratch[..n], pattern)?;
        Some(
            if fresh.verbatim && prefix.is_empty() && (lasting || !D::LENDS) {
                // In the thread's scratch buffer, which only the next lending receive
                // overwrites.
                out.matched_in_place(fresh.matched)
            } else {
                out.matched(prefix, fresh.matched, pattern)
            },
        )
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

    /// Whether the TLS session holds decrypted bytes (which no socket event announces).
    fn tls_holds_data(&self) -> bool {
        self.tls().is_some_and(|t| t.buffered() > 0)
    }

    /// Reads the stream (decrypted, after `starttls`) into `buf`, as recv(2), counting
    /// what it got and noting in the reactor when the kernel had no more.
    fn read_stream(&mut self, fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
        let (got, drained) = match self.tls_mut() {
            Some(tls) => {
                let got = tls.read(fd, buf);
                (got, tls.drained())
            }
            None => {
                let got = read_some(fd, buf);
                let drained = match &got {
                    Ok(n) => *n < buf.len(),
                    Err(e) => e.kind() == io::ErrorKind::WouldBlock,
                };
                (got, drained)
            }
        };
        let n = *got.as_ref().unwrap_or(&0);
        if n > 0 || drained {
            self.note_read(n, drained);
        }
        got
    }

    /// Counts `n` bytes received, and when `drained` (the read took everything there
    /// was) tells the reactor: one borrow of it for both, on the path of every message.
    /// The borrow succeeds: the reactor is borrowed only for Rust work that calls no
    /// socket method (see [`SharedReactor`]).
    fn note_read(&mut self, n: usize, drained: bool) {
        self.received += n as u64;
        if let Ok(mut reactor) = self.reactor.try_borrow_mut() {
            counters::add(&reactor.counters().bytes_in, n as u64);
            if let (true, Some(token)) = (drained, self.token.get()) {
                reactor.mark_drained(token);
            }
        }
    }

    /// False when a read would only say EAGAIN (see `Reactor::is_readable`): saves a
    /// system call per message on request/response traffic.
    fn may_read(&self) -> bool {
        match (self.token.get(), self.reactor.try_borrow()) {
            (Some(token), Ok(reactor)) => reactor.is_readable(token),
            _ => true,
        }
    }

    /// A read took everything there was (it returned less than asked, or EAGAIN).
    fn mark_drained(&self) {
        if let (Some(token), Ok(mut reactor)) = (self.token.get(), self.reactor.try_borrow_mut()) {
            reactor.mark_drained(token);
        }
    }

    /// The kernel refused more output: the next writable event is worth reporting.
    fn mark_full(&self) {
        if let (Some(token), Ok(mut reactor)) = (self.token.get(), self.reactor.try_borrow_mut()) {
            reactor.mark_unwritable(token);
        }
    }

    /// LuaSocket's `send(data, i, j)` index rules: the byte range to send, as (bytes
    /// already done, end), for [`TcpSocket::send_range`]. Negative indices count from the
    /// end; any i64 is accepted.
    pub fn send_span(len: usize, i: i64, j: i64) -> (usize, usize) {
        let len = len as i64;
        let start = if i < 0 {
            len.saturating_add(i).saturating_add(1).max(1)
        } else {
            i.max(1)
        };
        let end = if j < 0 {
            len.saturating_add(j).saturating_add(1)
        } else {
            j.min(len)
        };
        // A start past the end sends nothing and reports start - 1, as LuaSocket's.
        let done = start - 1;
        (done as usize, end.max(done) as usize)
    }

    /// Sends `bytes[done..end]` as far as the kernel takes it (for the method above and
    /// the FFI fast path). Positions are counted from the start of `bytes`.
    pub fn send_range(&mut self, bytes: &[u8], mut done: usize, end: usize) -> Sent {
        let sock = match (&self.state, self.sock.as_ref()) {
            (State::Connected, Some(sock)) => sock,
            (State::Closed, _) => return Sent::Failed(Cow::Borrowed("closed"), done),
            _ => return Sent::NotConnected,
        };
        if self.tls().is_some() {
            let fd = sock.as_raw_fd();
            return self.send_tls(fd, bytes, done, end);
        }
        while done < end {
            // MSG_NOSIGNAL: a dead peer is an error to return, not a SIGPIPE that kills a
            // host process which (unlike the runner) does not ignore the signal.
            match sock.send_with_flags(&bytes[done..end], libc::MSG_NOSIGNAL) {
                Ok(n) => {
                    done += n;
                    self.sent += n as u64;
                    count_sent(&self.reactor, n);
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

    /// send_range over TLS: what rustls took counts as sent, as what the kernel took does.
    fn send_tls(&mut self, fd: RawFd, bytes: &[u8], mut done: usize, end: usize) -> Sent {
        let Some(tls) = self.cold.as_deref_mut().and_then(|c| c.tls.as_deref_mut()) else {
            return Sent::NotConnected;
        };
        loop {
            match tls.flush(fd) {
                Ok(true) => {}
                Ok(false) => {
                    self.mark_full();
                    return Sent::WouldBlock(done);
                }
                Err(e) => return Sent::Failed(Cow::Owned(message(&e)), done),
            }
            if done >= end {
                return Sent::All(done);
            }
            match tls.write(&bytes[done..end]) {
                Ok(n) => {
                    done += n;
                    self.sent += n as u64;
                    count_sent(&self.reactor, n);
                }
                Err(e) => return Sent::Failed(Cow::Owned(message(&e)), done),
            }
        }
    }

    /// Starts TLS on a connected socket: from now on its stream is `session`'s. Bytes
    /// already received (and not yet handed out) are the first TLS records.
    pub fn starttls(&mut self, mut session: TlsSession) -> Outcome<()> {
        match (&self.state, self.sock.as_ref()) {
            (State::Connected, Some(_)) => {}
            (State::Closed, _) => return Err(Failure::io("closed")),
            _ => return Err(Failure::misuse(0, "socket is not connected")),
        }
        if self.tls().is_some() {
            return Err(Failure::io("TLS already started"));
        }
        if !self.rbuf.is_empty() {
            session
                .feed(self.rbuf.bytes())
                .map_err(|e| Failure::Io(Cow::Owned(e)))?;
            self.rbuf.clear();
        }
        self.cold.get_or_insert_default().tls = Some(Box::new(session));
        Ok(())
    }

    /// Drives the handshake `starttls` began.
    pub fn handshake(&mut self) -> Step {
        let Some(fd) = self.sock.as_ref().map(AsRawFd::as_raw_fd) else {
            return Step::Failed("closed".to_string());
        };
        let Some(tls) = self.tls_mut() else {
            return Step::Failed("closed".to_string());
        };
        let step = tls.handshake(fd);
        match step {
            Step::WantRead => self.mark_drained(),
            Step::WantWrite => self.mark_full(),
            _ => {}
        }
        step
    }

    /// The TLS session, once `starttls` made one.
    #[inline]
    pub fn tls(&self) -> Option<&TlsSession> {
        self.cold.as_deref()?.tls.as_deref()
    }

    /// LuaSocket's `accept()`: a new connected socket, or `'wantread'`.
    pub fn accept(&mut self) -> Outcome<TcpSocket> {
        let listener = match (&self.state, self.sock.as_ref()) {
            (State::Listening, Some(sock)) => sock.as_raw_fd(),
            (State::Closed, _) => return Err(Failure::io("closed")),
            _ => return Err(Failure::misuse(0, "socket is not listening")),
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
                    _ if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(Failure::io(WANTREAD))
                    }
                    _ => return Err(Failure::os(&e)),
                }
            }
            // SAFETY: accept4 just returned this descriptor to us.
            let sock = unsafe { Socket::from_raw_fd(fd) };
            let _ = sock.set_tcp_nodelay(true);
            let mut client = TcpSocket::new(&self.reactor, self.family);
            client.state = State::Connected;
            client.register(sock)?;
            if let Ok(reactor) = self.reactor.try_borrow() {
                counters::add(&reactor.counters().accepted, 1);
            }
            return Ok(client);
        }
    }

    /// LuaSocket's `connect(host, port)`. Call again after `'wantwrite'` to finish (the
    /// arguments are not looked at then). `host`/`port` are None when the caller gave
    /// no usable value.
    pub fn connect(&mut self, host: Option<&str>, port: Option<u16>) -> Outcome<()> {
        match self.state {
            State::Connected => return Err(Failure::io("already connected")),
            State::Closed => return Err(Failure::io("closed")),
            State::Listening => return Err(Failure::misuse(0, "socket is listening")),
            State::Connecting => return self.finish_connect(),
            State::Fresh | State::Bound => {}
        }
        let Some(host) = host else {
            return Err(Failure::misuse(1, "string expected"));
        };
        let Some(port) = port else {
            return Err(Failure::misuse(2, "port out of range"));
        };
        match resolve(host, port, self.family) {
            Ok(addrs) => self.start_connect(addrs),
            Err(e) => Err(Failure::Io(Cow::Owned(e))),
        }
    }

    /// Tries `addrs` in order until one connects, starts connecting, or all fail.
    fn start_connect(&mut self, mut addrs: Vec<SocketAddr>) -> Outcome<()> {
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
                    self.set_state(State::Connected);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    self.state = State::Connecting;
                    self.cold.get_or_insert_default().connect_rest = addrs;
                    self.mark_full();
                    return Err(Failure::io(WANTWRITE));
                }
                Err(e) => {
                    last_error = message(&e);
                    self.retry_socket(&addrs);
                }
            }
        }
        self.set_state(State::Fresh);
        Err(Failure::Io(Cow::Owned(last_error)))
    }

    /// Before trying the next address: an unbound socket of either family starts over.
    fn retry_socket(&mut self, rest: &[SocketAddr]) {
        if !rest.is_empty() && !matches!(self.state, State::Bound) {
            self.discard_socket();
        }
    }

    /// Completes a connect that returned `'wantwrite'`, once the socket is writable.
    fn finish_connect(&mut self) -> Outcome<()> {
        let Some(sock) = self.sock.as_ref() else {
            return Err(Failure::io("closed"));
        };
        let failure = match sock.take_error() {
            Ok(None) => match sock.peer_addr() {
                Ok(_) => {
                    self.set_state(State::Connected);
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    self.mark_full();
                    return Err(Failure::io(WANTWRITE));
                }
                Err(e) => e,
            },
            Ok(Some(e)) | Err(e) => e,
        };
        if std::mem::replace(&mut self.state, State::Fresh) != State::Connecting {
            return Err(Failure::os(&failure));
        }
        let rest = self
            .cold
            .as_deref_mut()
            .map(|c| std::mem::take(&mut c.connect_rest))
            .unwrap_or_default();
        if rest.is_empty() {
            return Err(Failure::os(&failure));
        }
        self.discard_socket();
        self.start_connect(rest)
    }

    /// LuaSocket's `bind(address, port)`; `'*'` binds every local address.
    pub fn bind(&mut self, host: Option<&str>, port: Option<u16>) -> Outcome<()> {
        // A Fresh socket may already have its descriptor (a raw one given to loop.wrap or
        // setfd): the bind is tried on it.
        if !matches!(self.state, State::Fresh) {
            return Err(Failure::io("already bound"));
        }
        let Some(host) = host else {
            return Err(Failure::misuse(1, "string expected"));
        };
        let Some(port) = port else {
            return Err(Failure::misuse(2, "port out of range"));
        };
        let addrs = resolve(host, port, self.family).map_err(|e| Failure::Io(Cow::Owned(e)))?;
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
                    self.set_state(State::Bound);
                    return Ok(());
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
        Err(Failure::Io(Cow::Owned(last_error)))
    }

    /// LuaSocket's `listen(backlog)` (clamped to 1..=i32::MAX).
    pub fn listen(&mut self, backlog: i64) -> Outcome<()> {
        if self.sock.is_none() && matches!(self.state, State::Fresh) {
            self.ensure_socket(self.family.unwrap_or(Family::V4))?;
        }
        let Some(sock) = self.sock.as_ref() else {
            return Err(Failure::io("closed"));
        };
        sock.listen(backlog.clamp(1, i32::MAX as i64) as i32)?;
        self.set_state(State::Listening);
        Ok(())
    }

    /// Closes the socket and frees its registration. Idempotent.
    pub fn close(&mut self) {
        if matches!(self.state, State::Connected) && self.sock.is_some() {
            if let Ok(reactor) = self.reactor.try_borrow() {
                counters::add(&reactor.counters().closed, 1);
            }
        }
        let tls = self.cold.as_deref_mut().and_then(|c| c.tls.take());
        if let (Some(mut tls), Some(sock)) = (tls, self.sock.as_ref()) {
            tls.close_notify(sock.as_raw_fd());
        }
        if let Some(token) = self.token.take() {
            if let Ok(mut reactor) = self.reactor.try_borrow_mut() {
                reactor.remove_source(token);
            }
        }
        self.sock = None;
        self.set_state(State::Closed);
        self.rbuf.clear();
    }

    /// LuaSocket's `shutdown(how)`.
    pub fn shutdown(&mut self, how: Shutdown) -> Outcome<()> {
        let Some(fd) = self.sock.as_ref().map(AsRawFd::as_raw_fd) else {
            return Err(Failure::io("closed"));
        };
        if let (Some(tls), Shutdown::Both | Shutdown::Write) = (self.tls_mut(), how) {
            tls.close_notify(fd);
        }
        let sock = self.sock.as_ref().ok_or_else(closed_error)?;
        Ok(sock.shutdown(how)?)
    }

    /// The most bytes one receive may take (0: no limit).
    pub fn receive_limit(&self) -> usize {
        self.rbuf.limit()
    }

    /// Sets the receive limit (0: none).
    pub fn set_receive_limit(&mut self, limit: usize) {
        self.rbuf.set_limit(limit);
    }

    /// LuaSocket's `setoption(name, value)` for an option of the OS socket; before the OS
    /// socket exists, the option is kept and applied when it is created.
    pub fn set_option(&mut self, opt: SockOpt, value: OptValue) -> Outcome<()> {
        let Some(sock) = self.sock.as_ref() else {
            if matches!(self.state, State::Closed) {
                return Err(Failure::io("closed"));
            }
            self.cold.get_or_insert_default().pending.push((opt, value));
            return Ok(());
        };
        Ok(sockopt::set(sock, opt, value)?)
    }

    /// LuaSocket's `getoption(name)`.
    pub fn get_option(&self, opt: SockOpt) -> Outcome<OptValue> {
        let Some(sock) = self.sock.as_ref() else {
            return match self.pending().iter().rev().find(|(o, _)| *o == opt) {
                Some((_, v)) => Ok(*v),
                None => Err(Failure::io("closed")),
            };
        };
        Ok(sockopt::get(sock, opt)?)
    }

    /// `getsockname` (`peer` false) or `getpeername`.
    pub fn address(&self, peer: bool) -> Outcome<SocketAddr> {
        let Some(sock) = self.sock.as_ref() else {
            return Err(Failure::io("closed"));
        };
        let addr = if peer {
            sock.peer_addr()
        } else {
            sock.local_addr()
        };
        addr?
            .as_socket()
            .ok_or(Failure::io("not an internet address"))
    }

    /// LuaSocket's `setfd(fd)`: -1 (LuaSocket's SOCKET_INVALID) detaches the descriptor,
    /// as LuaSec's wrap does; otherwise `fd` (0..=i32::MAX) is adopted. `home` is the
    /// address of the userdata payload holding this socket (see [`TcpSocket::set_home`]),
    /// the owner of the registration a closed socket takes anew.
    pub fn setfd(&mut self, fd: i64, home: usize) -> Outcome<()> {
        if !(-1..=i32::MAX as i64).contains(&fd) {
            return Err(Failure::misuse(1, "descriptor expected"));
        }
        if let Some(old) = self.sock.take() {
            if let Some(token) = self.token.get() {
                self.reactor.borrow_mut().detach(token);
            }
            // LuaSocket's setfd replaces the descriptor without closing the old one.
            let _ = old.into_raw_fd();
        }
        if self.token == MaybeToken::NONE {
            let token = self.reactor.borrow_mut().add_source();
            self.token = MaybeToken::some(token);
            self.claim_token(home);
        }
        self.rbuf.clear();
        self.eof = false;
        if let Some(cold) = self.cold.as_deref_mut() {
            cold.tls = None;
        }
        // Like a closed socket (until a descriptor is adopted), but the registration
        // stays for a later setfd.
        self.set_state(State::Closed);
        if fd < 0 {
            return Ok(());
        }
        Ok(self.adopt(fd as RawFd)?)
    }

    /// `getstats()`: bytes received, bytes sent, age in seconds.
    pub fn stats(&self) -> (u64, u64, f64) {
        let age = self.now().saturating_sub(self.born);
        (self.received, self.sent, age.max(0) as f64 / 1e9)
    }

    /// The time on the loop clock, nanoseconds. The borrow succeeds: the reactor is
    /// borrowed only for Rust work that calls no socket method (see [`SharedReactor`]);
    /// if it did not, the creation time would do.
    fn now(&self) -> i64 {
        self.reactor.try_borrow().map_or(self.born, |r| {
            i64::try_from(r.clock().now()).unwrap_or(i64::MAX)
        })
    }

    /// `setstats(received, sent, age)`: counts saturate at 0 and u64::MAX, the age at
    /// 0 and 1e9 seconds; NaN counts as 0.
    pub fn set_stats(&mut self, received: f64, sent: f64, age: f64) {
        let count = |n: f64| {
            if n > 0.0 {
                n.min(u64::MAX as f64) as u64
            } else {
                0
            }
        };
        self.received = count(received);
        self.sent = count(sent);
        let age = if age > 0.0 { age.min(1e9) } else { 0.0 };
        // At most 1e18 nanoseconds: no overflow for a loop younger than 290 years.
        self.born = self.now().saturating_sub((age * 1e9) as i64);
    }

    /// The descriptor, -1 when there is none.
    pub fn fd(&self) -> RawFd {
        self.sock.as_ref().map_or(-1, |k| k.as_raw_fd())
    }

    /// True when received bytes wait in the buffer (LuaSocket's `dirty`).
    pub fn dirty(&self) -> bool {
        self.buffered() > 0
    }

    /// False when nothing is buffered and the reactor has seen no readiness since a read
    /// took everything there was: a read would only say EAGAIN. True says only "maybe"
    /// (poll to know). Costs no system call.
    pub fn maybe_readable(&self) -> bool {
        !self.rbuf.is_empty() || self.may_read()
    }

    /// How many received bytes wait in the buffer.
    pub fn buffered(&self) -> usize {
        self.rbuf.len() + self.tls().map_or(0, |t| t.buffered())
    }

    /// `drain(prefix, pattern)`: what a receive that gives up hands back (see
    /// `take_partial`); `pattern` None hands back the buffered bytes as they are.
    pub fn drain(&mut self, prefix: &[u8], pattern: Option<Pattern>) -> Vec<u8> {
        self.take_partial(pattern, prefix)
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

/// Counts `n` bytes sent (into the kernel, or into a TLS session) in the loop's counters.
/// The borrow succeeds: the reactor is borrowed only for Rust work that calls no socket
/// method (see [`SharedReactor`]).
#[inline]
fn count_sent(reactor: &SharedReactor, n: usize) {
    if let Ok(reactor) = reactor.try_borrow() {
        counters::add(&reactor.counters().bytes_out, n as u64);
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
