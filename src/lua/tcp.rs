//! The Lua face of [`TcpSocket`]: a full userdata holding the socket itself, and a
//! method table of raw C functions (see [`crate::lua::stack`] for why not mlua's).
//!
//! Every method is a C closure whose first upvalue is the socket metatable: checking
//! `self` is one metatable comparison, and `accept` gives the sockets it makes the same
//! metatable. A method call costs a LuaJIT C call (tens of nanoseconds) plus its work.
//! Creation (`core.tcp`, `core.fromfd`) also holds the reactor as a second upvalue.

use crate::lua::stack::{drop_userdata, push_owned, push_userdata, userdata_value, Ret, Stack};
use crate::net::errors::{fail, message, misuse, ok};
use crate::net::resolve::Family;
use crate::net::tcp::TcpSocket;
use crate::rt::reactor::SharedReactor;
use mlua::ffi::{self, lua_CFunction, lua_State, lua_upvalueindex};
use mlua::{Function, Lua, Table};
use std::ffi::{c_int, CStr};

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
    for &(name, f) in METHODS {
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
    // SAFETY: push_userdata just stored the socket there.
    if let Some(sock) = unsafe { (*home).as_mut() } {
        sock.set_home(home as usize);
    }
}

/// The socket `self` (argument 1) of a method, if it is one.
fn self_socket<'a>(st: &Stack<'a>) -> Option<&'a mut TcpSocket> {
    if !st.has_metatable(1, METATABLE) {
        return None;
    }
    // SAFETY: a userdata with the socket metatable was made by push_socket, and is on
    // the stack for the whole call.
    unsafe { userdata_value::<TcpSocket>(st.userdata(1)) }
}

/// Runs method `name` on `self`, or reports a bad self as misuse.
///
/// # Safety
/// `state` is the state of a C function call.
unsafe fn with_socket(
    state: *mut lua_State,
    name: &str,
    f: impl FnOnce(&mut TcpSocket, &Stack) -> Ret,
) -> Ret {
    let st = Stack::new(state);
    match self_socket(&st) {
        Some(sock) => f(sock, &st),
        None => misuse(&st, name, 0, "socketloop tcp object expected"),
    }
}

macro_rules! methods {
    ($($name:literal => $fn:ident |$s:ident, $st:ident| $body:expr;)*) => {
        $(
            unsafe extern "C-unwind" fn $fn(state: *mut lua_State) -> c_int {
                with_socket(state, $name, |$s, $st| $body)
            }
        )*
        const METHODS: &[(&CStr, lua_CFunction)] = &[$((
            // SAFETY: the literal has no NUL inside, and one is appended.
            unsafe { CStr::from_bytes_with_nul_unchecked(concat!($name, "\0").as_bytes()) },
            $fn,
        )),*];
    };
}

methods! {
    "receive" => m_receive |s, st| s.receive(st);
    "send" => m_send |s, st| s.send(st);
    "accept" => m_accept |s, st| s.accept(st);
    "connect" => m_connect |s, st| s.connect(st);
    "bind" => m_bind |s, st| s.bind(st);
    "listen" => m_listen |s, st| s.listen(st);
    "close" => m_close |s, st| { s.close(); ok(st, 1) };
    "shutdown" => m_shutdown |s, st| s.shutdown(st);
    "setoption" => m_setoption |s, st| s.setoption(st);
    "getoption" => m_getoption |s, st| s.getoption(st);
    "getsockname" => m_getsockname |s, st| s.address(st, false);
    "getpeername" => m_getpeername |s, st| s.address(st, true);
    "getstats" => m_getstats |s, st| s.getstats(st);
    "setstats" => m_setstats |s, st| s.setstats(st);
    "getfd" => m_getfd |s, st| ok(st, s.fd() as i64);
    "setfd" => m_setfd |s, st| s.setfd(st);
    "dirty" => m_dirty |s, st| { st.push_bool(s.dirty()); 1 };
    "buffered" => m_buffered |s, st| ok(st, s.buffered() as i64);
    "token" => m_token |s, st| ok(st, s.token());
    "drain" => m_drain |s, st| s.drain(st);
}

unsafe extern "C-unwind" fn to_string(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let text = self_socket(&st).map_or_else(|| "tcp{closed}".to_string(), |s| s.describe());
    st.push_str(&text);
    1
}

/// The reactor of a constructor closure.
fn reactor<'a>(st: &Stack<'a>) -> Option<&'a SharedReactor> {
    // SAFETY: REACTOR is the boxed reactor upvalue push_constructors gave the closure.
    unsafe { userdata_value::<SharedReactor>(st.userdata(REACTOR)).map(|r| &*r) }
}

/// `core.tcp([family])`: a new socket, `family` `'inet'`, `'inet6'` or nil (decided by
/// the first bind or connect).
unsafe extern "C-unwind" fn new_tcp(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let family = match st.string(1) {
        Some(b"inet6") => Some(Family::V6),
        Some(b"inet") => Some(Family::V4),
        _ => None,
    };
    let Some(reactor) = reactor(&st) else {
        return fail(&st, "closed");
    };
    push_socket(&st, TcpSocket::new(reactor, family));
    1
}

/// `core.fromfd(fd)`: a socket owning descriptor `fd`, or `nil, message`.
unsafe extern "C-unwind" fn from_fd(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let (Some(fd), Some(reactor)) = (st.strict_number(1), reactor(&st)) else {
        return fail(&st, "descriptor expected");
    };
    match TcpSocket::from_fd(reactor, fd as i32) {
        Ok(sock) => {
            push_socket(&st, sock);
            1
        }
        Err(e) => fail(&st, &message(&e)),
    }
}

/// `core.isours(v)`: whether `v` is one of these sockets.
unsafe extern "C-unwind" fn is_ours(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    st.push_bool(st.has_metatable(1, METATABLE));
    1
}
