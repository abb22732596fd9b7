//! TCP sockets: the Rust half of an asocket, speaking LuaSocket's TCP API but never
//! blocking. Where LuaSocket would wait, these methods return `nil, 'wantread'` or
//! `nil, 'wantwrite'` and the Lua half (`lua/socketloop/asocket.lua`) parks the calling
//! thread on the socket's wait key. `receive('*l')` and friends are implemented here,
//! on top of [`crate::buffer`].
//!
//! Cost per call: one userdata method call from Lua (about 50 ns) plus the system call.
//! A receive reads into a shared 64 KiB scratch area, so a socket holds no buffer memory
//! unless a pattern is left incomplete.

use crate::buffer::{self, Pattern, RecvBuffer, Verdict};
use crate::errors::{fail, message, misuse, ok, Reply};
use crate::reactor::SharedReactor;
use crate::resolve::{resolve, Family};
use crate::sockopt::{self, OptValue, SockOpt};
use mlua::{Lua, MetaMethod, UserData, UserDataMethods, Value};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::cell::RefCell;
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
        let attached = sock
            .set_nonblocking(true)
            .and_then(|()| self.reactor.borrow_mut().attach(token, fd));
        if let Err(e) = attached {
            let _ = sock.into_raw_fd();
            return Err(e);
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
        self.reactor.borrow_mut().attach(token, sock.as_raw_fd())?;
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
    fn receive(&mut self, lua: &Lua, pattern: Value, prefix: Value) -> mlua::Result<Reply> {
        let Some(pattern) = parse_pattern(&pattern) else {
            return misuse(lua, "receive", 1, "invalid receive pattern");
        };
        let Some(prefix) = optional_string(lua, prefix)? else {
            return misuse(lua, "receive", 2, "string expected");
        };
        // As LuaSocket's: a count includes the prefix, so that a partial result passed
        // back as the prefix resumes the same receive.
        let pattern = match pattern {
            Pattern::Bytes(n) => Pattern::Bytes(n.saturating_sub(prefix.len())),
            p => p,
        };
        if !matches!(self.state, State::Connected | State::Closed) {
            return misuse(lua, "receive", 0, "socket is not connected");
        }
        loop {
            match self.rbuf.verdict(pattern, self.eof) {
                Verdict::Match(len, used) => {
                    let value = joined(lua, &prefix, &self.rbuf.bytes()[..len], pattern)?;
                    self.rbuf.consume(used);
                    return ok(lua, value);
                }
                Verdict::OverLimit => return self.limit_exceeded(lua, pattern, &prefix),
                Verdict::Closed => {
                    return self.fail_with_partial(lua, "closed", pattern, &prefix);
                }
                Verdict::NeedMore => {}
            }
            let fd = match (&self.state, self.sock.as_ref()) {
                (State::Connected, Some(sock)) => sock.as_raw_fd(),
                _ => return self.fail_with_partial(lua, "closed", pattern, &prefix),
            };
            if !self.may_read() {
                return fail(lua, WANTREAD, Value::Nil);
            }
            let step = SCRATCH
                .with_borrow_mut(|scratch| self.receive_step(lua, fd, scratch, pattern, &prefix))?;
            if let Some(reply) = step {
                return Ok(reply);
            }
        }
    }

    /// One read for `receive`: Some(reply) when the call is answered, None to look again.
    fn receive_step(
        &mut self,
        lua: &Lua,
        fd: RawFd,
        scratch: &mut [u8],
        pattern: Pattern,
        prefix: &[u8],
    ) -> mlua::Result<Option<Reply>> {
        let n = match read_some(fd, scratch) {
            Ok(0) => {
                self.eof = true;
                return Ok(None);
            }
            Ok(n) => {
                if n < scratch.len() {
                    self.mark_drained();
                }
                n
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.mark_drained();
                return fail(lua, WANTREAD, Value::Nil).map(Some);
            }
            Err(e) => {
                let err = message(&e);
                return self.fail_with_partial(lua, &err, pattern, prefix).map(Some);
            }
        };
        self.received += n as u64;
        // Everything read is kept (the limit is checked by the caller on what is
        // buffered): a receive never drops bytes it took from the kernel.
        match self.rbuf.take_read(&scratch[..n], pattern) {
            Some(matched) => ok(lua, joined(lua, prefix, matched, pattern)?).map(Some),
            None => Ok(None),
        }
    }

    /// The receive limit was passed: the first `limit` buffered bytes are the partial
    /// result (consumed); the rest stays buffered, so what follows is never lost and the
    /// result does not depend on how the data was split into reads.
    fn limit_exceeded(
        &mut self,
        lua: &Lua,
        pattern: Pattern,
        prefix: &[u8],
    ) -> mlua::Result<Reply> {
        let take = self.rbuf.limit_cut();
        let mut all = Vec::with_capacity(prefix.len() + take);
        all.extend_from_slice(prefix);
        buffer::append_match(&mut all, &self.rbuf.bytes()[..take], pattern);
        self.rbuf.consume(take);
        fail(
            lua,
            "receive limit exceeded",
            Value::String(lua.create_string(&all)?),
        )
    }

    fn fail_with_partial(
        &mut self,
        lua: &Lua,
        err: &str,
        pattern: Pattern,
        prefix: &[u8],
    ) -> mlua::Result<Reply> {
        let partial = self.take_partial(lua, Some(pattern), prefix)?;
        fail(lua, err, partial)
    }

    /// `prefix` and everything buffered, which is consumed (LuaSocket's partial result).
    /// For a line, CRs are dropped from the buffered bytes as they are from the line, so
    /// passing the partial back as the prefix yields the same line LuaSocket would.
    fn take_partial(
        &mut self,
        lua: &Lua,
        pattern: Option<Pattern>,
        prefix: &[u8],
    ) -> mlua::Result<Value> {
        let mut all = Vec::with_capacity(prefix.len() + self.rbuf.len());
        all.extend_from_slice(prefix);
        match pattern {
            Some(p) => buffer::append_match(&mut all, self.rbuf.bytes(), p),
            None => all.extend_from_slice(self.rbuf.bytes()),
        }
        self.rbuf.clear();
        Ok(Value::String(lua.create_string(&all)?))
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

    /// LuaSocket's `send(data [, i [, j]])`: returns the index of the last byte sent.
    fn send(&mut self, lua: &Lua, data: Value, i: Value, j: Value) -> mlua::Result<Reply> {
        let data = match data {
            Value::String(s) => s,
            v @ (Value::Integer(_) | Value::Number(_)) => match lua.coerce_string(v)? {
                Some(s) => s,
                None => return misuse(lua, "send", 1, "string expected"),
            },
            other => {
                let why = format!("string expected, got {}", other.type_name());
                return misuse(lua, "send", 1, &why);
            }
        };
        let bytes = data.as_bytes();
        let len = bytes.len() as i64;
        let (Some(i), Some(j)) = (optional_int(&i, 1), optional_int(&j, -1)) else {
            return misuse(lua, "send", 2, "number expected");
        };
        let start = if i < 0 {
            (len + i + 1).max(1)
        } else {
            i.max(1)
        };
        let end = if j < 0 { len + j + 1 } else { j.min(len) };
        let mut done = (start - 1) as usize;
        let end = end.max(start - 1) as usize;
        let sock = match (&self.state, self.sock.as_ref()) {
            (State::Connected, Some(sock)) => sock,
            (State::Closed, _) => return fail(lua, "closed", Value::Integer(done as i64)),
            _ => return misuse(lua, "send", 0, "socket is not connected"),
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
                Err(e) => {
                    let err = if e.kind() == io::ErrorKind::WouldBlock {
                        WANTWRITE.to_string()
                    } else {
                        message(&e)
                    };
                    return fail(lua, &err, Value::Integer(done as i64));
                }
            }
        }
        ok(lua, done as i64)
    }

    /// LuaSocket's `accept()`: a new connected socket, or `nil, 'wantread'`.
    fn accept(&mut self, lua: &Lua) -> mlua::Result<Reply> {
        let listener = match (&self.state, self.sock.as_ref()) {
            (State::Listening, Some(sock)) => sock.as_raw_fd(),
            (State::Closed, _) => return fail(lua, "closed", Value::Nil),
            _ => return misuse(lua, "accept", 0, "socket is not listening"),
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
                        return fail(lua, WANTREAD, Value::Nil);
                    }
                    _ => return fail(lua, &message(&e), Value::Nil),
                }
            }
            // SAFETY: accept4 just returned this descriptor to us.
            let sock = unsafe { Socket::from_raw_fd(fd) };
            let _ = sock.set_tcp_nodelay(true);
            let mut client = TcpSocket::new(&self.reactor, self.family);
            client.state = State::Connected;
            if let Err(e) = client.register(sock) {
                return fail(lua, &message(&e), Value::Nil);
            }
            return ok(lua, lua.create_userdata(client)?);
        }
    }

    /// LuaSocket's `connect(host, port)`. Call again after `'wantwrite'` to finish.
    fn connect(&mut self, lua: &Lua, host: Value, port: Value) -> mlua::Result<Reply> {
        match &mut self.state {
            State::Connected => return fail(lua, "already connected", Value::Nil),
            State::Closed => return fail(lua, "closed", Value::Nil),
            State::Listening => return misuse(lua, "connect", 0, "socket is listening"),
            State::Connecting(_) => return self.finish_connect(lua),
            State::Fresh | State::Bound => {}
        }
        let Some(host) = string_arg(&host) else {
            return misuse(lua, "connect", 1, "string expected");
        };
        let Some(port) = port_arg(&port) else {
            return misuse(lua, "connect", 2, "port out of range");
        };
        match resolve(&host, port, self.family) {
            Ok(addrs) => self.start_connect(lua, addrs),
            Err(e) => fail(lua, &e, Value::Nil),
        }
    }

    /// Tries `addrs` in order until one connects, starts connecting, or all fail.
    fn start_connect(&mut self, lua: &Lua, mut addrs: Vec<SocketAddr>) -> mlua::Result<Reply> {
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
                    return ok(lua, 1);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    self.state = State::Connecting(addrs);
                    return fail(lua, WANTWRITE, Value::Nil);
                }
                Err(e) => {
                    last_error = message(&e);
                    self.retry_socket(&addrs);
                }
            }
        }
        self.state = State::Fresh;
        fail(lua, &last_error, Value::Nil)
    }

    /// Before trying the next address: an unbound socket of either family starts over.
    fn retry_socket(&mut self, rest: &[SocketAddr]) {
        if !rest.is_empty() && !matches!(self.state, State::Bound) {
            self.discard_socket();
        }
    }

    /// Completes a connect that returned `'wantwrite'`, once the socket is writable.
    fn finish_connect(&mut self, lua: &Lua) -> mlua::Result<Reply> {
        let Some(sock) = self.sock.as_ref() else {
            return fail(lua, "closed", Value::Nil);
        };
        let failure = match sock.take_error() {
            Ok(None) => match sock.peer_addr() {
                Ok(_) => {
                    self.state = State::Connected;
                    return ok(lua, 1);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    return fail(lua, WANTWRITE, Value::Nil);
                }
                Err(e) => e,
            },
            Ok(Some(e)) | Err(e) => e,
        };
        let State::Connecting(rest) = std::mem::replace(&mut self.state, State::Fresh) else {
            return fail(lua, &message(&failure), Value::Nil);
        };
        if rest.is_empty() {
            return fail(lua, &message(&failure), Value::Nil);
        }
        self.discard_socket();
        self.start_connect(lua, rest)
    }

    /// LuaSocket's `bind(address, port)`; `'*'` binds every local address.
    fn bind(&mut self, lua: &Lua, host: Value, port: Value) -> mlua::Result<Reply> {
        // A Fresh socket may already have its descriptor (a raw one given to loop.wrap or
        // setfd): the bind is tried on it.
        if !matches!(self.state, State::Fresh) {
            return fail(lua, "already bound", Value::Nil);
        }
        let Some(host) = string_arg(&host) else {
            return misuse(lua, "bind", 1, "string expected");
        };
        let Some(port) = port_arg(&port) else {
            return misuse(lua, "bind", 2, "port out of range");
        };
        let addrs = match resolve(&host, port, self.family) {
            Ok(addrs) => addrs,
            Err(e) => return fail(lua, &e, Value::Nil),
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
                    return ok(lua, 1);
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
        fail(lua, &last_error, Value::Nil)
    }

    /// LuaSocket's `listen([backlog])`.
    fn listen(&mut self, lua: &Lua, backlog: Value) -> mlua::Result<Reply> {
        let Some(backlog) = optional_int(&backlog, DEFAULT_BACKLOG as i64) else {
            return misuse(lua, "listen", 1, "number expected");
        };
        if self.sock.is_none() && matches!(self.state, State::Fresh) {
            if let Err(e) = self.ensure_socket(self.family.unwrap_or(Family::V4)) {
                return fail(lua, &message(&e), Value::Nil);
            }
        }
        let Some(sock) = self.sock.as_ref() else {
            return fail(lua, "closed", Value::Nil);
        };
        match sock.listen(backlog.clamp(1, i32::MAX as i64) as i32) {
            Ok(()) => {
                self.state = State::Listening;
                ok(lua, 1)
            }
            Err(e) => fail(lua, &message(&e), Value::Nil),
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

    fn shutdown(&mut self, lua: &Lua, mode: Value) -> mlua::Result<Reply> {
        let how = match string_arg(&mode).as_deref() {
            None if mode.is_nil() => Shutdown::Both,
            Some("both") => Shutdown::Both,
            Some("send") => Shutdown::Write,
            Some("receive") => Shutdown::Read,
            _ => return misuse(lua, "shutdown", 1, "invalid shutdown method"),
        };
        let Some(sock) = self.sock.as_ref() else {
            return fail(lua, "closed", Value::Nil);
        };
        match sock.shutdown(how) {
            Ok(()) => ok(lua, 1),
            Err(e) => fail(lua, &message(&e), Value::Nil),
        }
    }

    fn setoption(&mut self, lua: &Lua, name: Value, value: Value) -> mlua::Result<Reply> {
        let name = string_arg(&name).unwrap_or_default();
        if name == "receive-limit" {
            let Some(limit) = optional_int(&value, 0).filter(|n| *n >= 0) else {
                return misuse(lua, "setoption", 2, "non-negative number expected");
            };
            self.rbuf.set_limit(limit as usize);
            return ok(lua, 1);
        }
        let Some(opt) = SockOpt::parse(name.as_bytes()) else {
            return misuse(lua, "setoption", 1, &format!("unsupported option '{name}'"));
        };
        let value = match opt.value_from_lua(&value) {
            Ok(v) => v,
            Err(why) => return misuse(lua, "setoption", 2, why),
        };
        let Some(sock) = self.sock.as_ref() else {
            if matches!(self.state, State::Closed) {
                return fail(lua, "closed", Value::Nil);
            }
            self.pending.push((opt, value));
            return ok(lua, 1);
        };
        match sockopt::set(sock, opt, value) {
            Ok(()) => ok(lua, 1),
            Err(e) => fail(lua, &message(&e), Value::Nil),
        }
    }

    fn getoption(&self, lua: &Lua, name: Value) -> mlua::Result<Reply> {
        let name = string_arg(&name).unwrap_or_default();
        if name == "receive-limit" {
            return ok(lua, self.rbuf.limit() as i64);
        }
        let Some(opt) = SockOpt::parse(name.as_bytes()) else {
            return misuse(lua, "getoption", 1, &format!("unsupported option '{name}'"));
        };
        let Some(sock) = self.sock.as_ref() else {
            return match self.pending.iter().rev().find(|(o, _)| *o == opt) {
                Some((_, v)) => ok(lua, v.into_lua(lua)?),
                None => fail(lua, "closed", Value::Nil),
            };
        };
        match sockopt::get(sock, opt) {
            Ok(v) => ok(lua, v.into_lua(lua)?),
            Err(e) => fail(lua, &message(&e), Value::Nil),
        }
    }

    fn address(&self, lua: &Lua, peer: bool) -> mlua::Result<Reply> {
        let Some(sock) = self.sock.as_ref() else {
            return fail(lua, "closed", Value::Nil);
        };
        let addr = if peer {
            sock.peer_addr()
        } else {
            sock.local_addr()
        };
        match addr.map(|a| a.as_socket()) {
            Ok(Some(a)) => Ok((
                Value::String(lua.create_string(a.ip().to_string())?),
                Value::Integer(a.port() as i64),
                Value::String(lua.create_string(Family::of(&a).name())?),
            )),
            Ok(None) => fail(lua, "not an internet address", Value::Nil),
            Err(e) => fail(lua, &message(&e), Value::Nil),
        }
    }

    fn setfd(&mut self, lua: &Lua, fd: Value) -> mlua::Result<Reply> {
        // -1 (LuaSocket's SOCKET_INVALID) detaches the descriptor, as LuaSec's wrap does.
        let valid = |fd: &i64| *fd >= -1 && *fd <= i32::MAX as i64;
        let Some(fd) = optional_int(&fd, i64::MIN).filter(valid) else {
            return misuse(lua, "setfd", 1, "descriptor expected");
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
        }
        self.rbuf.clear();
        self.eof = false;
        // Like a closed socket (until a descriptor is adopted), but the registration
        // stays for a later setfd.
        self.state = State::Closed;
        if fd < 0 {
            return ok(lua, 1);
        }
        match self.adopt(fd as RawFd) {
            Ok(()) => ok(lua, 1),
            Err(e) => fail(lua, &message(&e), Value::Nil),
        }
    }
}

impl Drop for TcpSocket {
    fn drop(&mut self) {
        self.close();
    }
}

impl UserData for TcpSocket {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("receive", |lua, s, (pattern, prefix): (Value, Value)| {
            s.receive(lua, pattern, prefix)
        });
        methods.add_method_mut("send", |lua, s, (data, i, j): (Value, Value, Value)| {
            s.send(lua, data, i, j)
        });
        methods.add_method_mut("accept", |lua, s, ()| s.accept(lua));
        methods.add_method_mut("connect", |lua, s, (host, port): (Value, Value)| {
            s.connect(lua, host, port)
        });
        methods.add_method_mut("bind", |lua, s, (host, port): (Value, Value)| {
            s.bind(lua, host, port)
        });
        methods.add_method_mut("listen", |lua, s, backlog: Value| s.listen(lua, backlog));
        methods.add_method_mut("close", |lua, s, ()| {
            s.close();
            ok(lua, 1)
        });
        methods.add_method_mut("shutdown", |lua, s, mode: Value| s.shutdown(lua, mode));
        methods.add_method_mut("setoption", |lua, s, (name, value): (Value, Value)| {
            s.setoption(lua, name, value)
        });
        methods.add_method("getoption", |lua, s, name: Value| s.getoption(lua, name));
        methods.add_method("getsockname", |lua, s, ()| s.address(lua, false));
        methods.add_method("getpeername", |lua, s, ()| s.address(lua, true));
        methods.add_method("getstats", |_, s, ()| {
            Ok((
                s.received as f64,
                s.sent as f64,
                s.born.elapsed().as_secs_f64(),
            ))
        });
        methods.add_method_mut(
            "setstats",
            |lua, s, (received, sent, age): (Value, Value, Value)| {
                let (Some(r), Some(w)) = (optional_num(&received), optional_num(&sent)) else {
                    return misuse(lua, "setstats", 1, "number expected");
                };
                let age = optional_num(&age).unwrap_or(0.0).max(0.0);
                s.received = r.max(0.0) as u64;
                s.sent = w.max(0.0) as u64;
                s.born = Instant::now()
                    .checked_sub(Duration::from_secs_f64(age.min(1e9)))
                    .unwrap_or_else(Instant::now);
                ok(lua, 1)
            },
        );
        methods.add_method("getfd", |_, s, ()| {
            Ok(s.sock.as_ref().map_or(-1, |k| k.as_raw_fd()))
        });
        methods.add_method_mut("setfd", |lua, s, fd: Value| s.setfd(lua, fd));
        methods.add_method("dirty", |_, s, ()| Ok(!s.rbuf.is_empty()));
        methods.add_method("token", |_, s, ()| Ok(s.token()));
        methods.add_method_mut("drain", |lua, s, (prefix, pattern): (Value, Value)| {
            let prefix = optional_string(lua, prefix)?.unwrap_or_default();
            s.take_partial(lua, parse_pattern(&pattern), &prefix)
        });
        methods.add_meta_method(MetaMethod::ToString, |_, s, ()| {
            Ok(format!("tcp{{{}}}: {:p}", s.kind(), s as *const TcpSocket))
        });
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
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `prefix` followed by a matched region, as a Lua string (one copy when verbatim).
fn joined(lua: &Lua, prefix: &[u8], matched: &[u8], pattern: Pattern) -> mlua::Result<Value> {
    if prefix.is_empty() && buffer::is_verbatim(matched, pattern) {
        return Ok(Value::String(lua.create_string(matched)?));
    }
    let mut out = Vec::with_capacity(prefix.len() + matched.len());
    out.extend_from_slice(prefix);
    buffer::append_match(&mut out, matched, pattern);
    Ok(Value::String(lua.create_string(&out)?))
}

/// A receive pattern: nil (`'*l'`), a pattern string, or a byte count (number or numeric string).
fn parse_pattern(v: &Value) -> Option<Pattern> {
    match v {
        Value::Nil => Some(Pattern::Line),
        Value::String(s) => {
            let bytes = s.as_bytes();
            Pattern::parse(&bytes).or_else(|| {
                let n: f64 = std::str::from_utf8(&bytes).ok()?.trim().parse().ok()?;
                count(n)
            })
        }
        Value::Integer(n) => count(*n as f64),
        Value::Number(n) => count(*n),
        _ => None,
    }
}

fn count(n: f64) -> Option<Pattern> {
    (n >= 0.0 && n <= usize::MAX as f64).then_some(Pattern::Bytes(n as usize))
}

/// An optional string argument as bytes: Some(empty) for nil, None for a wrong type.
fn optional_string(lua: &Lua, v: Value) -> mlua::Result<Option<Vec<u8>>> {
    Ok(match v {
        Value::Nil => Some(Vec::new()),
        Value::String(s) => Some(s.as_bytes().to_vec()),
        v @ (Value::Integer(_) | Value::Number(_)) => {
            lua.coerce_string(v)?.map(|s| s.as_bytes().to_vec())
        }
        _ => None,
    })
}

fn string_arg(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(n) => Some(n.to_string()),
        _ => None,
    }
}

fn optional_num(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(n) => Some(*n as f64),
        Value::Number(n) => Some(*n),
        Value::String(s) => s.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// An optional integer argument: `default` for nil, None for a wrong type.
fn optional_int(v: &Value, default: i64) -> Option<i64> {
    match v {
        Value::Nil => Some(default),
        _ => optional_num(v).filter(|n| n.is_finite()).map(|n| n as i64),
    }
}

/// A port number 0..=65535 (number or numeric string).
fn port_arg(v: &Value) -> Option<u16> {
    let n = optional_num(v)?;
    (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
}
