//! The Lua face of [`UdpSocket`]: a full userdata holding the socket, and a method table
//! of raw C functions reading their arguments in place (see [`crate::lua::stack`]): a
//! datagram echo makes three method calls per datagram, and mlua's generic calls would
//! cost more than the system calls behind them.
//!
//! `core.udp([family]) -> socket | nil, err` and `core.isudp(v)`. The methods speak
//! LuaSocket's UDP API with IP literals only: `sendto` to a name answers
//! `nil, NEEDS_LOOKUP` and the asynchronous wrapper (`lua/socketloop/udp.lua`) looks the
//! name up and calls again; it also parks threads on `'wantread'`/`'wantwrite'` and
//! raises misuse, which methods report as `nil, MISUSE, message`.
//!
//! Every method follows the rules of [`crate::lua::reply`]: arguments read first, the
//! socket borrowed only for Rust work run under `guarded`, the answer pushed after.

use crate::lua::reply::{guarded, Reply};
use crate::lua::stack::{drop_userdata, push_owned, push_userdata, userdata_value, Ret, Stack};
use crate::net::errors::Failure;
use crate::net::resolve::{family_named, parse_ip, Family};
use crate::net::udp::{
    wildcard, OptKind, UdpOpt, UdpSocket, UdpValue, DEFAULT_RECEIVE_SIZE, MAX_DATAGRAM,
};
use crate::rt::reactor::SharedReactor;
use mlua::ffi::{self, lua_State, lua_upvalueindex};
use mlua::{Function, Lua, Table};
use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::c_int;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::rc::Rc;

/// What `sendto` answers for a host that is not an IP literal.
pub const NEEDS_LOOKUP: &str = "socketloop: lookup";

/// The socket metatable, in every closure made here.
const METATABLE: c_int = lua_upvalueindex(1);
/// The reactor box, in `core.udp`.
const REACTOR: c_int = lua_upvalueindex(2);

thread_local! {
    /// Where receives read (only during a method's Rust work, which calls no Lua).
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
    /// The last sender's address and its text: an echo answers the same peers again and
    /// again, and formatting an address costs more than the rest of the reply.
    static LAST_SENDER: RefCell<Option<(IpAddr, Rc<str>)>> = const { RefCell::new(None) };
    /// The last destination text `sendto` parsed, and its address.
    static LAST_DESTINATION: RefCell<(Vec<u8>, Option<IpAddr>)> = const { RefCell::new((Vec::new(), None)) };
}

/// Sets `core.udp` and `core.isudp` on `core`.
pub fn register(lua: &Lua, core: &Table, reactor: &SharedReactor) -> mlua::Result<()> {
    let reactor = reactor.clone();
    // SAFETY: the closure only pushes values (exec_raw runs it protected and returns
    // what it left above the arguments).
    let (udp, isudp): (Function, Function) =
        unsafe { lua.exec_raw((), move |state| push_constructors(state, reactor)) }?;
    core.set("udp", udp)?;
    core.set("isudp", isudp)?;
    core.set("NEEDS_LOOKUP", NEEDS_LOOKUP)?;
    Ok(())
}

/// Pushes `udp` and `isudp`, built around one metatable.
unsafe fn push_constructors(state: *mut lua_State, reactor: SharedReactor) {
    let st = Stack::new(state);
    push_metatable(&st);
    let mt = st.count();
    st.push_copy(mt);
    push_owned(&st, reactor);
    ffi::lua_pushcclosure(state, new_udp, 2);
    st.push_copy(mt);
    ffi::lua_pushcclosure(state, is_udp, 1);
    ffi::lua_remove(state, mt);
}

unsafe fn push_metatable(st: &Stack) {
    st.push_table();
    let mt = st.count();
    st.push_table();
    for &(name, f) in METHODS {
        st.push_copy(mt);
        ffi::lua_pushcclosure(st.state(), f, 1);
        st.set_field(name);
    }
    st.set_field(c"__index");
    st.push_copy(mt);
    ffi::lua_pushcclosure(st.state(), to_string, 1);
    st.set_field(c"__tostring");
    ffi::lua_pushcclosure(st.state(), drop_userdata::<UdpSocket>, 0);
    st.set_field(c"__gc");
    st.push_str("socketloop udp");
    st.set_field(c"__metatable");
}

/// What a method answers: a [`Reply`], or a datagram (with its sender, whose address
/// text comes from the [`LAST_SENDER`] cache).
enum Answer {
    Plain(Reply),
    Datagram(Vec<u8>),
    DatagramFrom(Vec<u8>, Rc<str>, u16),
}

impl From<Reply> for Answer {
    fn from(r: Reply) -> Answer {
        Answer::Plain(r)
    }
}

impl Answer {
    fn push(self, st: &Stack) -> Ret {
        match self {
            Answer::Plain(r) => r.push(st),
            Answer::Datagram(data) => {
                st.push_bytes(&data);
                1
            }
            Answer::DatagramFrom(data, ip, port) => {
                st.push_bytes(&data);
                st.push_str(&ip);
                st.push_int(port as i64);
                3
            }
        }
    }
}

/// `n` or `nil, err` for a socket operation's result.
fn count(r: Result<usize, String>) -> Answer {
    match r {
        Ok(n) => Reply::Int(n as i64).into(),
        Err(e) => Reply::Fail(Cow::Owned(e)).into(),
    }
}

/// `1` or `nil, err`.
fn done(r: Result<(), String>) -> Answer {
    match r {
        Ok(()) => Reply::Int(1).into(),
        Err(e) => Reply::Fail(Cow::Owned(e)).into(),
    }
}

/// Runs `work` on the socket `self` (argument 1) of method `fname` and pushes its answer.
/// The socket is borrowed only while `work` runs, which calls no Lua.
///
/// # Safety
/// `st` is the stack of a method closure made here, whose arguments have all been read.
unsafe fn on_socket(st: &Stack, fname: &str, work: impl FnOnce(&mut UdpSocket) -> Answer) -> Ret {
    let answer = if st.has_metatable(1, METATABLE) {
        // SAFETY: a userdata with the socket metatable was made by new_udp and is on the
        // stack for the whole call; no other reference to its socket is live (every
        // binding borrows it only for Rust work like this one).
        match userdata_value::<UdpSocket>(st.userdata(1)) {
            Some(sock) => guarded(|| work(sock)).unwrap_or_else(|e| Reply::Internal(e).into()),
            None => Reply::Fail(Cow::Borrowed("closed")).into(),
        }
    } else {
        Reply::misuse(fname, 0, "socketloop udp object expected").into()
    };
    answer.push(st)
}

crate::lua::reply::method_table! {
    "receive" => m_receive,
    "receivefrom" => m_receivefrom,
    "send" => m_send,
    "sendto" => m_sendto,
    "setsockname" => m_setsockname,
    "setpeername" => m_setpeername,
    "getsockname" => m_getsockname,
    "getpeername" => m_getpeername,
    "setoption" => m_setoption,
    "getoption" => m_getoption,
    "getfd" => m_getfd,
    "setfd" => m_setfd,
    "close" => m_close,
    "token" => m_token,
    "dirty" => m_dirty,
    "getfamily" => m_getfamily,
}

/// A receive size (argument 2): nil for LuaSocket's default; capped at the largest
/// datagram; None for a negative, NaN or infinite number or another type.
fn receive_size(st: &Stack) -> Option<usize> {
    if st.is_nil(2) {
        return Some(DEFAULT_RECEIVE_SIZE);
    }
    let n = st.number(2)?;
    (n.is_finite() && n >= 0.0).then(|| (n.min(MAX_DATAGRAM as f64)) as usize)
}

/// One datagram of at most `size` bytes, copied out of the scratch area; with `from`,
/// its sender too.
fn receive_one(sock: &mut UdpSocket, size: usize, from: bool) -> Answer {
    SCRATCH.with(|scratch| {
        let mut own = Vec::new();
        let mut shared = scratch.try_borrow_mut();
        let buf: &mut [u8] = match shared.as_mut() {
            Ok(buf) => &mut buf[..size],
            Err(_) => {
                own.resize(size, 0);
                &mut own
            }
        };
        match sock.receive(buf) {
            Ok((n, Some(a))) if from => {
                Answer::DatagramFrom(buf[..n].to_vec(), ip_text(a.ip()), a.port())
            }
            Ok((n, _)) => Answer::Datagram(buf[..n].to_vec()),
            Err(e) => Reply::Fail(Cow::Owned(e)).into(),
        }
    })
}

/// `ip` as text, formatted only when it differs from the last sender's.
fn ip_text(ip: IpAddr) -> Rc<str> {
    LAST_SENDER.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return Rc::from(ip.to_string());
        };
        match &*last {
            Some((cached, text)) if *cached == ip => text.clone(),
            _ => {
                let text: Rc<str> = Rc::from(ip.to_string());
                *last = Some((ip, text.clone()));
                text
            }
        }
    })
}

unsafe extern "C-unwind" fn m_receive(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(size) = receive_size(&st) else {
        return misuse_on(&st, "receive", 1, "non-negative number expected");
    };
    on_socket(&st, "receive", |s| receive_one(s, size, false))
}

unsafe extern "C-unwind" fn m_receivefrom(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(size) = receive_size(&st) else {
        return misuse_on(&st, "receivefrom", 1, "non-negative number expected");
    };
    on_socket(&st, "receivefrom", |s| receive_one(s, size, true))
}

/// Pushes misuse of argument `arg` of `fname`.
fn misuse_on(st: &Stack, fname: &str, arg: usize, why: &str) -> Ret {
    Reply::misuse(fname, arg, why).push(st)
}

/// A port argument: a whole number 0..=65535 (or a numeric string).
fn port_arg(st: &Stack, i: c_int) -> Option<u16> {
    let n = st.number(i)?;
    (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
}

/// The address in an IP literal argument: Ok(None) for a string that is not one (a
/// name), Err for another type.
fn ip_arg(st: &Stack, i: c_int) -> Result<Option<IpAddr>, ()> {
    let text = st.string(i).ok_or(())?;
    let cached = LAST_DESTINATION.with(|last| {
        let last = last.try_borrow().ok()?;
        (last.0 == text).then_some(last.1)
    });
    if let Some(ip) = cached {
        return Ok(ip);
    }
    let ip = std::str::from_utf8(text).ok().and_then(parse_ip);
    LAST_DESTINATION.with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            last.0.clear();
            last.0.extend_from_slice(text);
            last.1 = ip;
        }
    });
    Ok(ip)
}

/// The datagram (argument 2): a string, or a number as its text.
fn datagram_arg<'a>(st: &Stack<'a>, fname: &str) -> Result<&'a [u8], Ret> {
    st.coerced_string(2).ok_or_else(|| {
        let why = format!("string expected, got {}", st.type_name(2));
        misuse_on(st, fname, 1, &why)
    })
}

unsafe extern "C-unwind" fn m_send(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let data = match datagram_arg(&st, "send") {
        Ok(d) => d,
        Err(ret) => return ret,
    };
    on_socket(&st, "send", |s| count(s.send(data)))
}

unsafe extern "C-unwind" fn m_sendto(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let data = match datagram_arg(&st, "sendto") {
        Ok(d) => d,
        Err(ret) => return ret,
    };
    let ip = match ip_arg(&st, 3) {
        Ok(ip) => ip,
        Err(()) => return misuse_on(&st, "sendto", 2, "string expected"),
    };
    let Some(port) = port_arg(&st, 4) else {
        return misuse_on(&st, "sendto", 3, "port out of range");
    };
    on_socket(&st, "sendto", |s| match ip {
        Some(ip) => count(s.sendto(data, &SocketAddr::new(ip, port))),
        None => Reply::Fail(Cow::Borrowed(NEEDS_LOOKUP)).into(),
    })
}

/// What `setsockname`/`setpeername` were given: `'*'` (None) or an IP literal, and the
/// port; or the misuse pushed.
fn endpoint_arg(st: &Stack, fname: &str) -> Result<(Option<IpAddr>, u16), Ret> {
    let Some(port) = port_arg(st, 3) else {
        return Err(misuse_on(st, fname, 2, "port out of range"));
    };
    match st.string(2) {
        Some(b"*") => Ok((None, port)),
        Some(text) => match std::str::from_utf8(text).ok().and_then(parse_ip) {
            Some(ip) => Ok((Some(ip), port)),
            None => Err(misuse_on(st, fname, 1, "IP address expected")),
        },
        None => Err(misuse_on(st, fname, 1, "string expected")),
    }
}

unsafe extern "C-unwind" fn m_setsockname(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let (ip, port) = match endpoint_arg(&st, "setsockname") {
        Ok(e) => e,
        Err(ret) => return ret,
    };
    on_socket(&st, "setsockname", |s| {
        let addrs = match (ip, s.family()) {
            (Some(ip), _) => vec![SocketAddr::new(ip, port)],
            (None, Some(f)) => vec![wildcard(f, port)],
            (None, None) => vec![wildcard(Family::V4, port), wildcard(Family::V6, port)],
        };
        done(s.setsockname(&addrs))
    })
}

unsafe extern "C-unwind" fn m_setpeername(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    if st.string(2) == Some(b"*") {
        return on_socket(&st, "setpeername", |s| done(s.unconnect()));
    }
    let (ip, port) = match endpoint_arg(&st, "setpeername") {
        Ok((Some(ip), port)) => (ip, port),
        Ok((None, _)) => return misuse_on(&st, "setpeername", 1, "IP address expected"),
        Err(ret) => return ret,
    };
    on_socket(&st, "setpeername", |s| {
        done(s.setpeername(&[SocketAddr::new(ip, port)]))
    })
}

/// `ip, port, family` of the socket (`peer`: of its peer).
fn address(s: &UdpSocket, peer: bool) -> Answer {
    match s.address(peer) {
        Ok(a) => Reply::Address(a.ip().to_string(), a.port(), Family::of(&a).name()).into(),
        Err(e) => Reply::Fail(Cow::Owned(e)).into(),
    }
}

unsafe extern "C-unwind" fn m_getsockname(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "getsockname", |s| address(s, false))
}

unsafe extern "C-unwind" fn m_getpeername(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "getpeername", |s| address(s, true))
}

/// The option named by argument 2, or the misuse pushed.
fn option_arg(st: &Stack, fname: &str) -> Result<UdpOpt, Ret> {
    let Some(name) = st.string(2) else {
        return Err(misuse_on(st, fname, 1, "string expected"));
    };
    UdpOpt::parse(name).ok_or_else(|| {
        let why = format!("unsupported option '{}'", String::from_utf8_lossy(name));
        misuse_on(st, fname, 1, &why)
    })
}

/// An IP literal at stack index `i`.
fn literal_at(st: &Stack, i: c_int) -> Option<IpAddr> {
    st.string(i)
        .and_then(|t| std::str::from_utf8(t).ok())
        .and_then(parse_ip)
}

/// The value (argument 3) for `opt`, or why it is not one.
fn option_value(st: &Stack, opt: UdpOpt) -> Result<UdpValue, &'static str> {
    match opt.kind() {
        OptKind::Bool => match (st.boolean(3), st.strict_number(3)) {
            (Some(b), _) => Ok(UdpValue::Bool(b)),
            (_, Some(n)) => Ok(UdpValue::Bool(n != 0.0)),
            _ => Err("boolean expected"),
        },
        OptKind::Int => match st.strict_number(3) {
            Some(n) if n.is_finite() && (0.0..=i32::MAX as f64).contains(&n) => {
                Ok(UdpValue::Int(n as i64))
            }
            _ => Err("non-negative number expected"),
        },
        OptKind::Address => match literal_at(st, 3) {
            Some(IpAddr::V4(a)) => Ok(UdpValue::Address(a)),
            _ => Err("IPv4 address expected"),
        },
        OptKind::Membership => {
            if !st.is_table(3) {
                return Err("table {multiaddr=, interface=} expected");
            }
            let group = st
                .field(3, c"multiaddr", |st| literal_at(st, -1))
                .ok_or("'multiaddr' must be an IP address")?;
            let interface = st.field(3, c"interface", |st| {
                if st.is_nil(-1) {
                    return Ok(None);
                }
                if let Some(n) = st.strict_number(-1) {
                    return if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) {
                        Ok(Some(IpAddr::V6(Ipv6Addr::from(n as u128))))
                    } else {
                        Err("'interface' must be an address or an index")
                    };
                }
                literal_at(st, -1)
                    .map(Some)
                    .ok_or("'interface' must be an address or an index")
            })?;
            let interface = match (group, interface) {
                (IpAddr::V4(_), Some(IpAddr::V6(_))) => {
                    return Err("'interface' must be an IPv4 address")
                }
                (_, Some(i)) => i,
                (IpAddr::V4(_), None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                (IpAddr::V6(_), None) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            Ok(UdpValue::Membership { group, interface })
        }
    }
}

unsafe extern "C-unwind" fn m_setoption(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let opt = match option_arg(&st, "setoption") {
        Ok(o) => o,
        Err(ret) => return ret,
    };
    let value = match option_value(&st, opt) {
        Ok(v) => v,
        Err(why) => return misuse_on(&st, "setoption", 2, why),
    };
    on_socket(&st, "setoption", |s| done(s.setoption(opt, value)))
}

unsafe extern "C-unwind" fn m_getoption(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let opt = match option_arg(&st, "getoption") {
        Ok(o) => o,
        Err(ret) => return ret,
    };
    on_socket(&st, "getoption", |s| {
        match s.getoption(opt) {
            Ok(UdpValue::Bool(b)) => Reply::Bool(b),
            Ok(UdpValue::Int(n)) => Reply::Int(n),
            Ok(UdpValue::Address(a)) => Reply::Bytes(a.to_string().into_bytes()),
            Ok(UdpValue::Membership { .. }) => Reply::Fail(Cow::Borrowed("option can only be set")),
            Err(e) => Reply::Fail(Cow::Owned(e)),
        }
        .into()
    })
}

unsafe extern "C-unwind" fn m_getfd(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "getfd", |s| {
        Reply::Int(s.fd() as i64).into()
    })
}

unsafe extern "C-unwind" fn m_setfd(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let fd = match st.strict_number(2) {
        Some(n) if n.fract() == 0.0 && (-1.0..=i32::MAX as f64).contains(&n) => n as i32,
        _ => return misuse_on(&st, "setfd", 1, "descriptor expected"),
    };
    on_socket(&st, "setfd", |s| done(s.setfd(fd)))
}

unsafe extern "C-unwind" fn m_close(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "close", |s| {
        s.close();
        Reply::Int(1).into()
    })
}

unsafe extern "C-unwind" fn m_token(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "token", |s| {
        Reply::Int(s.token()).into()
    })
}

unsafe extern "C-unwind" fn m_dirty(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "dirty", |_| Reply::Bool(false).into())
}

unsafe extern "C-unwind" fn m_getfamily(state: *mut lua_State) -> c_int {
    on_socket(&Stack::new(state), "getfamily", |s| match s.family() {
        Some(f) => Reply::Bytes(f.name().as_bytes().to_vec()).into(),
        None => Reply::Nothing.into(),
    })
}

unsafe extern "C-unwind" fn to_string(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let text = if st.has_metatable(1, METATABLE) {
        // SAFETY: as on_socket; describe only formats.
        match userdata_value::<UdpSocket>(st.userdata(1)) {
            Some(s) => guarded(|| s.describe()).unwrap_or_else(|_| "udp{?}".to_string()),
            None => "udp{closed}".to_string(),
        }
    } else {
        "udp{closed}".to_string()
    };
    st.push_str(&text);
    1
}

/// `core.udp([family])`: a new socket, `family` `'inet'`, `'inet6'` or nil.
unsafe extern "C-unwind" fn new_udp(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let family = st.string(1).and_then(family_named);
    // SAFETY: REACTOR is the boxed reactor upvalue push_constructors gave the closure.
    let Some(reactor) = userdata_value::<SharedReactor>(st.userdata(REACTOR)) else {
        return Reply::Fail(Cow::Borrowed("closed")).push(&st);
    };
    match guarded(|| UdpSocket::new(reactor, family)) {
        Ok(Ok(sock)) => {
            push_userdata(&st, sock, METATABLE);
            1
        }
        Ok(Err(e)) => Reply::failure("udp", Failure::os(&e)).push(&st),
        Err(panic) => Reply::Internal(panic).push(&st),
    }
}

/// `core.isudp(v)`: whether `v` is one of these sockets.
unsafe extern "C-unwind" fn is_udp(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    st.push_bool(st.has_metatable(1, METATABLE));
    1
}
