//! The `socketloop.core` table: the Rust functions the Lua layer is built on.
//!
//! Internal API (the public one is `lua/socketloop.lua`):
//! - `parking(anchors, S, after) -> wait, poll, unpark, count, inloop`: the scheduler's
//!   hot half ([`crate::lua::scheduler`]).
//! - `ffi`: the entry points of the FFI fast path ([`crate::lua::tcp_ffi`]) with their codes,
//!   and `reactor`, the address they take.
//! - `settimer(key, seconds)`: times out the wait on `key` (a negative key: a plain timer).
//! - `now() -> seconds` on the loop's monotonic clock.
//! - `tcp([family]) -> socket`, `fromfd(fd) -> socket`, `watch(fd) -> watch`.
//! - `waitfd(fd|nil, write, timeout) -> true | 'timeout'`: a blocking wait outside the loop.
//! - `stats() -> registrations, timers, lookups pending, resolver threads, busy, queued`.
//! - `lookup`, `lookup_blocking`, `isliteral`: name lookups ([`crate::lua::resolve`]).
//! - `udp([family]) -> socket`, `isudp(v)`: UDP sockets ([`crate::lua::udp`]).
//! - `race`: Happy Eyeballs connects ([`crate::lua::connect_race`]).

use crate::lua::scheduler::push_parking_maker;
use crate::lua::tcp_ffi;
use crate::lua::watch::FdWatch;
use crate::net::errors::{message, MISUSE};
use crate::net::tcp::{WANTREAD, WANTWRITE};
use crate::rt::blocking::{wait_fd, Waited};
use crate::rt::reactor::SharedReactor;
use mlua::{Function, LightUserData, Lua, Table, Value};
use std::ffi::c_void;
use std::rc::Rc;
use std::time::Duration;

/// Builds the core table around `reactor`.
pub fn core_table(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Table> {
    let core = lua.create_table()?;
    core.set("MISUSE", MISUSE)?;
    core.set("WANTREAD", WANTREAD)?;
    core.set("WANTWRITE", WANTWRITE)?;

    core.set("ffi", ffi_entry_points(lua, reactor)?)?;
    let r = reactor.clone();
    // SAFETY: the closure only pushes one value (see push_parking_maker).
    let parking: Function = unsafe { lua.exec_raw((), move |state| push_parking_maker(state, r)) }?;
    core.set("parking", parking)?;

    let r = reactor.clone();
    core.set(
        "settimer",
        lua.create_function(move |_, (key, seconds): (i64, f64)| {
            r.borrow_mut().set_timer(key, seconds);
            Ok(())
        })?,
    )?;

    let r = reactor.clone();
    core.set(
        "settimer_at",
        lua.create_function(move |_, (key, at): (i64, f64)| {
            let mut reactor = r.borrow_mut();
            let at = reactor.clock().at(at);
            reactor.set_deadline(key, at);
            Ok(())
        })?,
    )?;

    let r = reactor.clone();
    core.set(
        "now",
        lua.create_function(move |_, ()| Ok(r.borrow().clock().now() as f64 / 1e9))?,
    )?;

    crate::lua::tcp::register(lua, &core, reactor)?;
    crate::lua::resolve::register(lua, &core, reactor)?;
    crate::lua::connect_race::register(lua, &core, reactor)?;
    crate::lua::udp::register(lua, &core, reactor)?;

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
            move |_, (fd, write, timeout, token): (Option<i32>, bool, Option<f64>, Option<usize>)| {
                let timeout = timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
                Ok(match wait_fd(fd, write, timeout) {
                    Waited::Ready => {
                        if let (false, Some(token)) = (write, token) {
                            r.borrow_mut().mark_readable(token);
                        }
                        Value::Boolean(true)
                    }
                    Waited::TimedOut => Value::Nil,
                })
            },
        )?,
    )?;

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
    crate::codec::http_head::register(lua, &core)?;
    crate::codec::rpc::register(lua, &core)?;
    crate::codec::tango_text::register(lua, &core)?;
    Ok(core)
}

/// `core.ffi`: what `asocket.lua` needs to call the fast path of [`crate::lua::tcp_ffi`].
fn ffi_entry_points(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("receive", LightUserData(tcp_ffi::receive as *mut c_void))?;
    t.set("send", LightUserData(tcp_ffi::send as *mut c_void))?;
    // Valid as long as `core`: its functions hold the reactor.
    t.set("reactor", LightUserData(Rc::as_ptr(reactor) as *mut c_void))?;
    t.set("DONE", tcp_ffi::DONE)?;
    t.set("WOULD_BLOCK", tcp_ffi::WOULD_BLOCK)?;
    t.set("FAILED", tcp_ffi::FAILED)?;
    t.set("SLOW", tcp_ffi::SLOW)?;
    t.set("LINE", tcp_ffi::LINE)?;
    Ok(t)
}
