//! The `socketloop.core` table: the Rust functions the Lua layer is built on, and its
//! private half.
//!
//! `socketloop.core` is requirable by any script, so everything in it validates its
//! arguments and hands out no raw pointer:
//! - `now() -> seconds` on the loop's monotonic clock; `gettime() -> seconds` since the
//!   Unix epoch (LuaSocket's).
//! - `tcp([family]) -> socket`, `fromfd(fd) -> socket`, `isours(v)`, `watch(fd) -> watch`.
//! - `waitfd(fd|nil, write, timeout [, token]) -> true | nil`: a blocking wait outside the
//!   loop.
//! - `waitfds(fds, writes, timeout) -> ready`: the same on several descriptors (LuaSocket's
//!   select outside the loop).
//! - `stats() -> registrations, timers, lookups pending, resolver threads, busy, queued`.
//! - `counters() -> {accepted =, closed =, bytes_in =, bytes_out =, polls =, wakeups =,
//!   timers_fired =, poll_wait =}`: the loop's running totals ([`crate::rt::counters`]).
//! - `timer_deadline(key) -> seconds | nil`: when plain timer `key` comes due.
//! - `SIGQUIT`: the signal the runner catches for its thread dump (`loop.dump`).
//! - `lookup`, `lookup_blocking`, `isliteral`: name lookups ([`crate::lua::resolve`]).
//! - `udp([family]) -> socket`, `isudp(v)`: UDP sockets ([`crate::lua::udp`]).
//! - `race`: Happy Eyeballs connects ([`crate::lua::connect_race`]).
//! - `newtls(params, default_mode) -> ctx | nil, err, misuse`, `istlsctx(v)`: TLS
//!   contexts ([`crate::lua::tls`]).
//! - the codecs' functions (HTTP heads, rpc, tango text).
//!
//! The private half goes only to the modules that build the scheduler and the sockets
//! (`socketloop.scheduler`, `socketloop.asocket`), once, as their loader's second
//! argument (see [`crate::lua::embedded`]); they keep what they need in upvalues:
//! - `parking(S, after) -> wait, poll, unpark, count, inloop, parked_on`: the
//!   scheduler's hot half ([`crate::lua::scheduler`]); it can be made once.
//! - `fastpath() -> receive, send, reactor, result, codes`: the FFI fast path
//!   ([`crate::lua::tcp_ffi`]); handed out once.
//! - `settimer(key, seconds)`, `settimer_at(key, time)`: a plain timer (a negative key).
//! - `SIGNALS`: signal names (`'INT'`, `'TERM'`, `'HUP'`, `'USR1'`, `'USR2'`) to numbers;
//!   `catchsignal(n) -> true | nil, err`: the poll reports signal n from now on;
//!   `armsignals()`: a clean stop began, a second SIGINT/SIGTERM (runner) ends the process.

use crate::lua::reply::MISUSE;
use crate::lua::scheduler::push_parking_maker;
use crate::lua::tcp_ffi;
use crate::lua::watch::FdWatch;
use crate::net::errors::message;
use crate::net::tcp::{WANTREAD, WANTWRITE};
use crate::rt::blocking::{wait_fd, wait_fds, Waited};
use crate::rt::reactor::SharedReactor;
use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};
use std::cell::Cell;
use std::ffi::c_void;
use std::time::Duration;

/// The longest wait a timeout asks for, in seconds (about 31 years): longer ones wait
/// this long.
const MAX_SECONDS: f64 = 1e9;

/// A duration argument in seconds: NaN is refused; negative means none; +inf (and
/// nil) means no limit, huge values wait [`MAX_SECONDS`].
pub fn seconds_arg(fname: &str, arg: usize, value: Option<f64>) -> mlua::Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_nan() => Err(bad_argument(fname, arg, "number expected, got NaN")),
        Some(v) if v == f64::INFINITY => Ok(None),
        Some(v) => Ok(Some(Duration::from_secs_f64(v.clamp(0.0, MAX_SECONDS)))),
    }
}

/// Lua's `bad argument #n to 'fname' (why)`, as an error Lua code sees as that string.
pub fn bad_argument(fname: &str, arg: usize, why: &str) -> mlua::Error {
    mlua::Error::RuntimeError(format!("bad argument #{arg} to '{fname}' ({why})"))
}

/// A plain timer key: a negative whole number (socket keys are set by the scheduler).
fn timer_key(fname: &str, key: f64) -> mlua::Result<i64> {
    if (-9_007_199_254_740_992.0..0.0).contains(&key) && key.fract() == 0.0 {
        Ok(key as i64)
    } else {
        Err(bad_argument(fname, 1, "negative whole number expected"))
    }
}

/// The private half of `socketloop.core`; see the module documentation.
pub fn private_table(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Table> {
    let private = lua.create_table()?;
    let r = reactor.clone();
    // SAFETY: the closure only pushes one value (see push_parking_maker).
    let parking: Function = unsafe { lua.exec_raw((), move |state| push_parking_maker(state, r)) }?;
    private.set("parking", parking)?;
    private.set("fastpath", fast_path(lua, reactor)?)?;

    let r = reactor.clone();
    private.set(
        "settimer",
        lua.create_function(move |_, (key, seconds): (f64, f64)| {
            let key = timer_key("settimer", key)?;
            if seconds.is_nan() {
                return Err(bad_argument("settimer", 2, "number expected, got NaN"));
            }
            r.borrow_mut().set_timer(key, seconds);
            Ok(())
        })?,
    )?;
    let r = reactor.clone();
    private.set(
        "settimer_at",
        lua.create_function(move |_, (key, at): (f64, f64)| {
            let key = timer_key("settimer_at", key)?;
            if at.is_nan() {
                return Err(bad_argument("settimer_at", 2, "number expected, got NaN"));
            }
            let mut reactor = r.borrow_mut();
            let at = reactor.clock().at(at);
            reactor.set_deadline(key, at);
            Ok(())
        })?,
    )?;
    Ok(private)
}

/// Builds the core table around `reactor`.
pub fn core_table(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Table> {
    let core = lua.create_table()?;
    core.set("MISUSE", MISUSE)?;
    core.set("WANTREAD", WANTREAD)?;
    core.set("WANTWRITE", WANTWRITE)?;

    let r = reactor.clone();
    core.set(
        "now",
        lua.create_function(move |_, ()| Ok(r.borrow().clock().now() as f64 / 1e9))?,
    )?;

    core.set(
        "gettime",
        lua.create_function(|_, ()| {
            let since = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            Ok(since.as_secs_f64())
        })?,
    )?;

    crate::lua::tcp::register(lua, &core, reactor)?;
    crate::lua::resolve::register(lua, &core, reactor)?;
    crate::lua::connect_race::register(lua, &core, reactor)?;
    crate::lua::udp::register(lua, &core, reactor)?;
    crate::lua::tls::register(lua, &core)?;

    let r = reactor.clone();
    core.set(
        "watch",
        lua.create_function(move |lua, fd: i32| match FdWatch::new(&r, fd) {
            Ok(w) => Ok((Value::UserData(lua.create_userdata(w)?), Value::Nil)),
            Err(e) => Ok((Value::Nil, Value::String(lua.create_string(message(&e))?))),
        })?,
    )?;

    // A blocking wait ends without a poll of the reactor, so it records the readiness it
    // saw for the socket's registration (`token`), as a readable event would.
    let r = reactor.clone();
    core.set(
        "waitfd",
        lua.create_function(
            move |_, (fd, write, timeout, token): (Option<i32>, bool, Option<f64>, Option<i64>)| {
                let timeout = seconds_arg("waitfd", 3, timeout)?;
                let token = token.and_then(|t| usize::try_from(t).ok());
                Ok(match wait_fd(fd, write, timeout) {
                    Waited::Ready => {
                        if let (false, Some(token)) = (write, token) {
                            r.borrow_mut().mark_readable(token);
                        }
                        Value::Boolean(true)
                    }
                    Waited::TimedOut => {
                        // Not writable now: the next writable event is worth reporting
                        // (a loop thread may wait for it next).
                        if let (true, Some(token)) = (write, token) {
                            r.borrow_mut().mark_unwritable(token);
                        }
                        Value::Nil
                    }
                })
            },
        )?,
    )?;

    // `fds` and `writes` are parallel arrays; the result says which descriptors are ready.
    core.set(
        "waitfds",
        lua.create_function(
            |_, (fds, writes, timeout): (Vec<i32>, Vec<bool>, Option<f64>)| {
                if fds.len() != writes.len() {
                    return Err(bad_argument(
                        "waitfds",
                        2,
                        "one flag per descriptor expected",
                    ));
                }
                let timeout = seconds_arg("waitfds", 3, timeout)?;
                let pairs: Vec<(i32, bool)> = fds.into_iter().zip(writes).collect();
                Ok(wait_fds(&pairs, timeout))
            },
        )?,
    )?;

    register_signals(lua, &core, reactor)?;

    let r = reactor.clone();
    core.set(
        "stats",
        lua.create_function(move |_, ()| {
            let r = r.borrow();
            let pool = r.lookup_stats();
            Ok((
                r.source_count(),
                r.timer_count(),
                pool.pending,
                pool.threads,
                pool.busy,
                pool.queued,
            ))
        })?,
    )?;
    core.set("SIGQUIT", libc::SIGQUIT)?;
    let r = reactor.clone();
    core.set(
        "counters",
        lua.create_function(move |lua, ()| {
            let r = r.borrow();
            let c = r.counters();
            let t = lua.create_table()?;
            t.set("accepted", c.accepted.get())?;
            t.set("closed", c.closed.get())?;
            t.set("bytes_in", c.bytes_in.get())?;
            t.set("bytes_out", c.bytes_out.get())?;
            t.set("polls", c.polls.get())?;
            t.set("wakeups", c.wakeups.get())?;
            t.set("timers_fired", c.timers_fired.get())?;
            t.set("poll_wait", c.poll_wait_ns.get() as f64 / 1e9)?;
            Ok(t)
        })?,
    )?;

    let r = reactor.clone();
    core.set(
        "timer_deadline",
        lua.create_function(move |_, key: i64| Ok(r.borrow().timer_deadline(key)))?,
    )?;
    crate::codec::http_head::register(lua, &core)?;
    crate::codec::inflate::register(lua, &core)?;
    crate::codec::rpc::register(lua, &core)?;
    crate::lua::tango_text::register(lua, &core)?;
    Ok(core)
}

/// `fastpath()`: what `asocket.lua` needs to call the fast path of [`crate::lua::tcp_ffi`]:
/// the two entry points, the reactor address they take, the result area, and the codes.
/// Handed out once; later calls get nothing.
fn fast_path(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Function> {
    let reactor = reactor.clone();
    let given = Cell::new(false);
    lua.create_function(move |lua, ()| {
        if given.replace(true) {
            return Ok(MultiValue::new());
        }
        let codes = lua.create_table()?;
        codes.set("DONE", tcp_ffi::DONE)?;
        codes.set("WOULD_BLOCK", tcp_ffi::WOULD_BLOCK)?;
        codes.set("FAILED", tcp_ffi::FAILED)?;
        codes.set("SLOW", tcp_ffi::SLOW)?;
        codes.set("LINE", tcp_ffi::LINE)?;
        let pointer = |p: *const c_void| Value::LightUserData(LightUserData(p as *mut c_void));
        Ok(MultiValue::from_iter([
            pointer(tcp_ffi::receive as *const c_void),
            pointer(tcp_ffi::send as *const c_void),
            pointer(tcp_ffi::enable(&reactor)),
            pointer(tcp_ffi::result_area()),
            Value::Table(codes),
        ]))
    })
}

/// `core.SIGNALS`, `core.catchsignal` and `core.armsignals`.
fn register_signals(lua: &Lua, core: &Table, reactor: &SharedReactor) -> mlua::Result<()> {
    let names = lua.create_table()?;
    for (name, number) in [
        ("INT", libc::SIGINT),
        ("TERM", libc::SIGTERM),
        ("HUP", libc::SIGHUP),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
    ] {
        names.set(name, number)?;
    }
    core.set("SIGNALS", names)?;
    let r = reactor.clone();
    core.set(
        "catchsignal",
        lua.create_function(move |lua, signal: i32| {
            Ok(match r.borrow_mut().catch_signal(signal, false) {
                Ok(()) => (Value::Boolean(true), Value::Nil),
                Err(e) => (Value::Nil, Value::String(lua.create_string(message(&e))?)),
            })
        })?,
    )?;
    let r = reactor.clone();
    core.set(
        "armsignals",
        lua.create_function(move |_, ()| {
            r.borrow().arm_signals();
            Ok(())
        })?,
    )
}
