//! The Lua face of [`TcpSocket`]: a full userdata holding the socket itself, and a
//! method table of raw C functions (see [`crate::lua::stack`] for why not mlua's).
//!
//! Each method reads its arguments (which may run finalizers: a number coerced to a
//! string allocates), then borrows the socket for its Rust work only, under
//! [`guarded`], collecting a [`Reply`], and pushes the reply once the borrow has ended
//! (see [`crate::lua::reply`]).
//!
//! Every method is a C closure whose first upvalue is the socket metatable: checking
//! `self` is one metatable comparison, and `accept` gives the sockets it makes the same
//! metatable. A method call costs a LuaJIT C call (tens of nanoseconds) plus its work.
//! Creation (`core.tcp`, `core.fromfd`) also holds the reactor as a second upvalue.

use crate::lua::reply::{guarded, Reply};
use crate::lua::stack::{drop_userdata, push_owned, push_userdata, userdata_value, Ret, Stack};
use crate::net::buffer::Pattern;
use crate::net::errors::message;
use crate::net::resolve::Family;
use crate::net::sockopt::{OptValue, SockOpt};
use crate::net::tcp::{Deliver, Sent, TcpSocket, DEFAULT_BACKLOG, WANTREAD, WANTWRITE};
use crate::rt::reactor::SharedReactor;
use mlua::ffi::{self, lua_CFunction, lua_State, lua_upvalueindex};
use mlua::{Function, Lua, Table};
use std::borrow::Cow;
use std::ffi::c_int;
use std::net::Shutdown;

/// The socket metatable, in every closure made here.
const METATABLE: c_int = lua_upvalueindex(1);
/// The reactor box, in `core.tcp` and `core.fromfd`.
const REACTOR: c_int = lua_upvalueindex(2);

/// Sets `core.tcp`, `core.fromfd` and `core.isours` on `core`.
pub fn register(lua: &Lua, core: &Table, reactor: &SharedReactor) -> mlua::Result<()> {
    let reactor = reactor.clone();
    // SAFETY: the closure only pushes values (exec_raw runs it protected and returns
    // what it left above the arguments).
    let (tcp, fromfd, isours): (Function, Function, Function) =
        unsafe { lua.exec_raw((), move |state| push_constructors(state, reactor)) }?;
    core.set("tcp", tcp)?;
    core.set("fromfd", fromfd)?;
    core.set("isours", isours)?;
    Ok(())
}

/// Pushes the constructors `tcp`, `fromfd` and `isours`, built around one metatable.
unsafe fn push_constructors(state: *mut lua_State, reactor: SharedReactor) {
    let st = Stack::new(state);
    push_socket_metatable(&st);
    let mt = st.count();
    push_owned(&st, reactor);
    let boxed = st.count();
    for f in [new_tcp as lua_CFunction, from_fd] {
        st.push_copy(mt);
        st.push_copy(boxed);
        push_function(&st, f, 2);
    }
    st.push_copy(mt);
    push_function(&st, is_ours, 1);
    ffi::lua_remove(state, boxed);
    ffi::lua_remove(state, mt);
}

/// Pushes the metatable of sockets: `__index` (the methods), `__gc`, `__tostring`.
unsafe fn push_socket_metatable(st: &Stack) {
    st.push_table();
    let mt = st.count();
    st.push_table();
    for &(name, f) in METHODS.iter().chain(crate::lua::tls::SOCKET_METHODS) {
        st.push_copy(mt);
        push_function(st, f, 1);
        st.set_field(name);
    }
    st.set_field(c"__index");
    st.push_copy(mt);
    push_function(st, to_string, 1);
    st.set_field(c"__tostring");
    push_function(st, drop_userdata::<TcpSocket>, 0);
    st.set_field(c"__gc");
    // Lua code cannot get at the metatable (to call __gc on a foreign userdata).
    st.push_str("socketloop tcp");
    st.set_field(c"__metatable");
}

/// Pops `upvalues` values and pushes a C closure over them.
unsafe fn push_function(st: &Stack, f: lua_CFunction, upvalues: c_int) {
    ffi::lua_pushcclosure(st.state(), f, upvalues);
}

/// Pushes `sock` as a new socket userdata. Only from a closure made here (the metatable
/// is its first upvalue).
pub fn push_socket(st: &Stack, sock: TcpSocket) {
    let home = push_userdata(st, sock, METATABLE);
    // SAFETY: push_userdata just stored the socket there, and nothing else can have
    // reached the new userdata since.
    if let Some(sock) = unsafe { (*home).as_mut() } {
        sock.set_home(home as usize);
    }
}

/// Whether argument 1 (`self`) is one of our sockets.
fn is_socket(st: &Stack) -> bool {
    st.has_metatable(1, METATABLE)
}

/// Runs `work` on the socket `self` (argument 1) of method `fname` and pushes its reply.
/// The socket is borrowed only while `work` runs, which calls no Lua.
///
/// # Safety
/// `state` is the state of a C function call whose arguments have all been read.
pub(crate) unsafe fn on_socket(
    st: &Stack,
    fname: &str,
    work: impl FnOnce(&mut TcpSocket) -> Reply,
) -> Ret {
    let reply = if is_socket(st) {
        // SAFETY: a userdata with the socket metatable was made by push_socket and is on
        // the stack for the whole call; no other reference to its socket is live (every
        // binding borrows it only for Rust work like this one, which calls no Lua).
        match userdata_value::<TcpSocket>(st.userdata(1)) {
            Some(sock) => guarded(|| work(sock)).unwrap_or_else(Reply::Internal),
            None => Reply::Fail(Cow::Borrowed("closed")),
        }
    } else {
        Reply::misuse(fname, 0, "socketloop tcp object expected")
    };
    reply.push(st)
}

crate::lua::reply::method_table! {
    "receive" => m_receive,
    "send" => m_send,
    "accept" => m_accept,
    "connect" => m_connect,
    "bind" => m_bind,
    "listen" => m_listen,
    "close" => m_close,
    "shutdown" => m_shutdown,
    "setoption" => m_setoption,
    "getoption" => m_getoption,
    "getsockname" => m_getsockname,
    "getpeername" => m_getpeername,
    "getstats" => m_getstats,
    "setstats" => m_setstats,
    "getfd" => m_getfd,
    "getfamily" => m_getfamily,
    "setfd" => m_setfd,
    "dirty" => m_dirty,
    "maybereadable" => m_maybereadable,
    "buffered" => m_buffered,
    "token" => m_token,
    "drain" => m_drain,
}

/// [`Deliver`] into an owned [`Reply`]: the method path copies every result out of the
/// scratch area before anything else runs.
struct Collect;

impl Deliver for Collect {
    type Out = Reply;
    const LENDS: bool = false;

    fn matched(&mut self, prefix: &[u8], matched: &[u8], pattern: Pattern) -> Reply {
        let mut out = Vec::with_capacity(prefix.len() + matched.len());
        out.extend_from_slice(prefix);
        crate::net::buffer::append_match(&mut out, matched, pattern);
        Reply::Bytes(out)
    }

    fn matched_in_place(&mut self, bytes: &[u8]) -> Reply {
        Reply::Bytes(bytes.to_vec())
    }

    fn failed(&mut self, err: &str, partial: &[u8]) -> Reply {
        Reply::FailWith(Cow::Owned(err.to_string()), partial.to_vec())
    }

    fn would_block(&mut self) -> Reply {
        Reply::Fail(Cow::Borrowed(WANTREAD))
    }

    fn misuse(&mut self, why: &'static str) -> Reply {
        Reply::misuse("receive", 0, why)
    }
}

/// `receive([pattern [, prefix]])`.
unsafe extern "C-unwind" fn m_receive(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(pattern) = pattern_arg(&st, 2) else {
        return Reply::misuse("receive", 1, "invalid receive pattern").push(&st);
    };
    let prefix = if st.is_nil(3) {
        &[][..]
    } else {
        match st.coerced_string(3) {
            Some(p) => p,
            None => return Reply::misuse("receive", 2, "string expected").push(&st),
        }
    };
    // As LuaSocket's: a count includes the prefix, so that a partial result passed back
    // as the prefix resumes the same receive; a prefix at least that long is the whole
    // result, without reading.
    if let Pattern::Bytes(n) = pattern {
        if !prefix.is_empty() && n <= prefix.len() {
            return Reply::Bytes(prefix.to_vec()).push(&st);
        }
    }
    let pattern = match pattern {
        Pattern::Bytes(n) => Pattern::Bytes(n.saturating_sub(prefix.len())),
        p => p,
    };
    on_socket(&st, "receive", |s| {
        s.receive_into(pattern, prefix, &mut Collect)
    })
}

/// `send(data [, i [, j]])`: the index of the last byte sent.
unsafe extern "C-unwind" fn m_send(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(bytes) = st.coerced_string(2) else {
        let why = format!("string expected, got {}", st.type_name(2));
        return Reply::misuse("send", 1, &why).push(&st);
    };
    let (Some(i), Some(j)) = (optional_int(&st, 3, 1), optional_int(&st, 4, -1)) else {
        return Reply::misuse("send", 2, "number expected").push(&st);
    };
    let (done, end) = TcpSocket::send_span(bytes.len(), i, j);
    on_socket(&st, "send", |s| match s.send_range(bytes, done, end) {
        Sent::All(done) => Reply::Int(done as i64),
        Sent::WouldBlock(done) => Reply::FailAt(Cow::Borrowed(WANTWRITE), done as i64),
        Sent::Failed(err, done) => Reply::FailAt(err, done as i64),
        Sent::NotConnected => Reply::misuse("send", 0, "socket is not connected"),
    })
}

/// `accept()`: a new socket. The socket is made in the Rust work and pushed after it.
unsafe extern "C-unwind" fn m_accept(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let mut accepted = None;
    let n = on_socket(&st, "accept", |s| match s.accept() {
        Ok(client) => {
            accepted = Some(client);
            Reply::Nothing
        }
        Err(e) => Reply::failure("accept", e),
    });
    match accepted {
        Some(client) => {
            push_socket(&st, client);
            1
        }
        None => n,
    }
}

unsafe extern "C-unwind" fn m_connect(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let host = string_arg(&st, 2);
    let port = port_arg(&st, 3);
    on_socket(&st, "connect", |s| {
        done(s.connect(host.as_deref(), port), "connect")
    })
}

unsafe extern "C-unwind" fn m_bind(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let host = string_arg(&st, 2);
    let port = port_arg(&st, 3);
    on_socket(&st, "bind", |s| done(s.bind(host.as_deref(), port), "bind"))
}

unsafe extern "C-unwind" fn m_listen(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(backlog) = optional_int(&st, 2, DEFAULT_BACKLOG) else {
        return Reply::misuse("listen", 1, "number expected").push(&st);
    };
    on_socket(&st, "listen", |s| done(s.listen(backlog), "listen"))
}

unsafe extern "C-unwind" fn m_close(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "close", |s| {
        s.close();
        Reply::Int(1)
    })
}

unsafe extern "C-unwind" fn m_shutdown(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let how = if st.is_nil(2) {
        Shutdown::Both
    } else {
        match st.string(2) {
            Some(b"both") => Shutdown::Both,
            Some(b"send") => Shutdown::Write,
            Some(b"receive") => Shutdown::Read,
            _ => return Reply::misuse("shutdown", 1, "invalid shutdown method").push(&st),
        }
    };
    on_socket(&st, "shutdown", |s| done(s.shutdown(how), "shutdown"))
}

/// The receive limit is a pseudo-option of ours: the most bytes one receive may take.
const RECEIVE_LIMIT: &str = "receive-limit";

unsafe extern "C-unwind" fn m_setoption(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let name = string_arg(&st, 2).unwrap_or_default();
    if name == RECEIVE_LIMIT {
        let Some(limit) = count_arg(&st, 3, 0) else {
            return Reply::misuse("setoption", 2, "non-negative integer expected").push(&st);
        };
        return on_socket(&st, "setoption", |s| {
            s.set_receive_limit(limit);
            Reply::Int(1)
        });
    }
    let Some(opt) = SockOpt::parse(name.as_bytes()) else {
        let why = format!("unsupported option '{name}'");
        return Reply::misuse("setoption", 1, &why).push(&st);
    };
    let value = match option_value(&st, opt, 3) {
        Ok(v) => v,
        Err(why) => return Reply::misuse("setoption", 2, why).push(&st),
    };
    on_socket(&st, "setoption", |s| {
        done(s.set_option(opt, value), "setoption")
    })
}

unsafe extern "C-unwind" fn m_getoption(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let name = string_arg(&st, 2).unwrap_or_default();
    if name == RECEIVE_LIMIT {
        return on_socket(&st, "getoption", |s| Reply::Int(s.receive_limit() as i64));
    }
    let Some(opt) = SockOpt::parse(name.as_bytes()) else {
        let why = format!("unsupported option '{name}'");
        return Reply::misuse("getoption", 1, &why).push(&st);
    };
    let mut value = None;
    let n = on_socket(&st, "getoption", |s| match s.get_option(opt) {
        Ok(v) => {
            value = Some(v);
            Reply::Nothing
        }
        Err(e) => Reply::failure("getoption", e),
    });
    match value {
        Some(v) => push_option_value(&st, v),
        None => n,
    }
}

unsafe fn address(state: *mut lua_State, fname: &str, peer: bool) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, fname, |s| match s.address(peer) {
        Ok(a) => Reply::Address(a.ip().to_string(), a.port(), Family::of(&a).name()),
        Err(e) => Reply::failure(fname, e),
    })
}

unsafe extern "C-unwind" fn m_getsockname(state: *mut lua_State) -> c_int {
    address(state, "getsockname", false)
}

unsafe extern "C-unwind" fn m_getpeername(state: *mut lua_State) -> c_int {
    address(state, "getpeername", true)
}

unsafe extern "C-unwind" fn m_getstats(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "getstats", |s| {
        let (received, sent, age) = s.stats();
        Reply::Nums(vec![received as f64, sent as f64, age])
    })
}

unsafe extern "C-unwind" fn m_setstats(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let (Some(r), Some(w)) = (st.number(2), st.number(3)) else {
        return Reply::misuse("setstats", 1, "number expected").push(&st);
    };
    let age = st.number(4).unwrap_or(0.0);
    on_socket(&st, "setstats", |s| {
        s.set_stats(r, w, age);
        Reply::Int(1)
    })
}

unsafe extern "C-unwind" fn m_getfd(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "getfd", |s| Reply::Int(s.fd() as i64))
}

/// LuaSocket's `getfamily()`: `'inet6'`, else `'inet4'` (also while undecided).
unsafe extern "C-unwind" fn m_getfamily(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "getfamily", |s| {
        Reply::Bytes(s.family_name().as_bytes().to_vec())
    })
}

unsafe extern "C-unwind" fn m_setfd(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let fd = match st.number(2) {
        Some(n) if n.fract() == 0.0 && (-1.0..=i32::MAX as f64).contains(&n) => n as i64,
        _ => return Reply::misuse("setfd", 1, "descriptor expected").push(&st),
    };
    let home = st.userdata(1) as usize;
    on_socket(&st, "setfd", |s| done(s.setfd(fd, home), "setfd"))
}

unsafe extern "C-unwind" fn m_dirty(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "dirty", |s| Reply::Bool(s.dirty()))
}

unsafe extern "C-unwind" fn m_maybereadable(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "maybereadable", |s| Reply::Bool(s.maybe_readable()))
}

unsafe extern "C-unwind" fn m_buffered(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "buffered", |s| Reply::Int(s.buffered() as i64))
}

unsafe extern "C-unwind" fn m_token(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "token", |s| Reply::Int(s.token()))
}

/// `drain(prefix, pattern)`: what a receive that gives up hands back.
unsafe extern "C-unwind" fn m_drain(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let prefix = st.coerced_string(2).unwrap_or_default();
    let pattern = if st.is_nil(3) {
        None
    } else {
        pattern_arg(&st, 3)
    };
    on_socket(&st, "drain", |s| Reply::Bytes(s.drain(prefix, pattern)))
}

unsafe extern "C-unwind" fn to_string(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let text = if is_socket(&st) {
        // SAFETY: as in on_socket; describe only reads.
        let sock = userdata_value::<TcpSocket>(st.userdata(1));
        guarded(|| sock.map(|s| s.describe())).ok().flatten()
    } else {
        None
    };
    st.push_str(text.as_deref().unwrap_or("tcp{closed}"));
    1
}

/// The reply of an operation that returns LuaSocket's `1` on success.
fn done(outcome: crate::net::errors::Outcome<()>, fname: &str) -> Reply {
    match outcome {
        Ok(()) => Reply::Int(1),
        Err(e) => Reply::failure(fname, e),
    }
}

/// The reactor of a constructor closure.
fn reactor<'a>(st: &Stack<'a>) -> Option<&'a SharedReactor> {
    // SAFETY: REACTOR is the boxed reactor upvalue push_constructors gave the closure.
    unsafe { userdata_value::<SharedReactor>(st.userdata(REACTOR)).map(|r| &*r) }
}

/// `core.tcp([family])`: a new socket, `family` `'inet'`, `'inet6'` (the descriptor is
/// made at once, as LuaSocket's `tcp4()`/`tcp6()`) or nil (decided by the first bind or
/// connect); `nil, message` if the descriptor cannot be made.
unsafe extern "C-unwind" fn new_tcp(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let family = match st.string(1) {
        Some(b"inet6") => Some(Family::V6),
        Some(b"inet") => Some(Family::V4),
        _ => None,
    };
    let Some(reactor) = reactor(&st) else {
        return Reply::Fail(Cow::Borrowed("closed")).push(&st);
    };
    let made = guarded(|| {
        let mut sock = TcpSocket::new(reactor, family);
        sock.open().map(|()| sock)
    });
    match made {
        Ok(Ok(sock)) => {
            push_socket(&st, sock);
            1
        }
        Ok(Err(e)) => Reply::Fail(Cow::Owned(message(&e))).push(&st),
        Err(e) => Reply::Internal(e).push(&st),
    }
}

/// `core.fromfd(fd)`: a socket owning descriptor `fd`, or `nil, message`.
unsafe extern "C-unwind" fn from_fd(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let fd = st
        .strict_number(1)
        .filter(|n| n.fract() == 0.0 && (0.0..=i32::MAX as f64).contains(n));
    let (Some(fd), Some(reactor)) = (fd, reactor(&st)) else {
        return Reply::Fail(Cow::Borrowed("descriptor expected")).push(&st);
    };
    match guarded(|| TcpSocket::from_fd(reactor, fd as i32)) {
        Ok(Ok(sock)) => {
            push_socket(&st, sock);
            1
        }
        Ok(Err(e)) => Reply::Fail(Cow::Owned(message(&e))).push(&st),
        Err(e) => Reply::Internal(e).push(&st),
    }
}

/// `core.isours(v)`: whether `v` is one of these sockets.
unsafe extern "C-unwind" fn is_ours(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    st.push_bool(st.has_metatable(1, METATABLE));
    1
}

/// A receive pattern: nil (`'*l'`), a pattern string, or a byte count (a number or numeric
/// string, a whole number from 0 to 2^53).
fn pattern_arg(st: &Stack, i: c_int) -> Option<Pattern> {
    if st.is_nil(i) {
        return Some(Pattern::Line);
    }
    if let Some(bytes) = st.string(i) {
        if let Some(p) = Pattern::parse(bytes) {
            return Some(p);
        }
    }
    let n = st.number(i)?;
    ((0.0..=MAX_COUNT).contains(&n) && n.fract() == 0.0).then_some(Pattern::Bytes(n as usize))
}

/// The largest count or size accepted from Lua: every integer below it is exact in a
/// double.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

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

/// An optional integer argument: `default` for nil, None for a wrong type, NaN or an
/// infinity; other numbers are truncated and saturate at the i64 range.
fn optional_int(st: &Stack, i: c_int, default: i64) -> Option<i64> {
    if st.is_nil(i) {
        return Some(default);
    }
    st.number(i).filter(|n| n.is_finite()).map(|n| n as i64)
}

/// An optional size or count: `default` for nil, None unless a whole number from 0 to
/// 2^53.
fn count_arg(st: &Stack, i: c_int, default: usize) -> Option<usize> {
    if st.is_nil(i) {
        return Some(default);
    }
    st.number(i)
        .filter(|n| (0.0..=MAX_COUNT).contains(n) && n.fract() == 0.0)
        .map(|n| n as usize)
}

/// A port number 0..=65535 (number or numeric string).
fn port_arg(st: &Stack, i: c_int) -> Option<u16> {
    let n = st.number(i)?;
    (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
}

/// The largest value a numeric socket option takes (the kernel's own limits are lower).
const MAX_OPTION: f64 = i32::MAX as f64;

/// Reads argument `i` as a value for option `opt`; the error says what was expected.
fn option_value(st: &Stack, opt: SockOpt, i: c_int) -> Result<OptValue, &'static str> {
    let whole = |n: f64| (0.0..=MAX_OPTION).contains(&n) && n.fract() == 0.0;
    match opt {
        SockOpt::Linger => {
            if !st.is_table(i) {
                return Err("table {on=, timeout=} expected");
            }
            // As LuaSocket's: 'on' must really be a boolean, not any truthy value.
            let on = st.field(i, c"on", |st| {
                if st.is_nil(-1) {
                    Ok(false)
                } else {
                    st.boolean(-1).ok_or("'on' must be a boolean")
                }
            })?;
            let timeout = st.field(i, c"timeout", |st| {
                if st.is_nil(-1) {
                    Ok(0)
                } else {
                    st.strict_number(-1)
                        .filter(|n| whole(*n))
                        .map(|n| n as i64)
                        .ok_or("'timeout' must be a whole number of seconds, 0 to 2^31-1")
                }
            })?;
            Ok(OptValue::Linger { on, timeout })
        }
        SockOpt::KeepIdle
        | SockOpt::KeepCount
        | SockOpt::KeepInterval
        | SockOpt::RecvBufferSize
        | SockOpt::SendBufferSize => match st.strict_number(i) {
            Some(n) if whole(n) => Ok(OptValue::Int(n as i64)),
            _ => Err("whole number from 0 to 2^31-1 expected"),
        },
        _ => match (st.boolean(i), st.strict_number(i)) {
            (Some(b), _) => Ok(OptValue::Bool(b)),
            (_, Some(n)) if !n.is_nan() => Ok(OptValue::Bool(n != 0.0)),
            _ => Err("boolean expected"),
        },
    }
}

/// Pushes the value `getoption` returns.
fn push_option_value(st: &Stack, value: OptValue) -> Ret {
    match value {
        OptValue::Bool(b) => st.push_bool(b),
        OptValue::Int(n) => st.push_int(n),
        OptValue::Linger { on, timeout } => {
            st.push_table();
            st.push_bool(on);
            st.set_field(c"on");
            st.push_int(timeout);
            st.set_field(c"timeout");
        }
    }
    1
}
