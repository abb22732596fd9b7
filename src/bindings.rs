//! The `socketloop.core` table: the Rust functions the Lua layer is built on.
//!
//! Internal API (the public one is `lua/socketloop.lua`):
//! - `poll(timeout, ready) -> nready, nexpired, signal`: waits (timeout in seconds, nil:
//!   no limit), writes ready keys then expired keys into `ready[1..]`.
//! - `settimer(key, seconds)`: times out the wait on `key` (a negative key: a plain timer).
//! - `now() -> seconds` on the loop's monotonic clock.
//! - `tcp([family]) -> socket`, `fromfd(fd) -> socket`, `watch(fd) -> watch`.
//! - `waitfd(fd|nil, write, timeout) -> true | 'timeout'`: a blocking wait outside the loop.
//! - `stats() -> registrations, timers`.

use crate::blocking::{wait_fd, Waited};
use crate::errors::{message, MISUSE};
use crate::reactor::{PollResult, SharedReactor};
use crate::resolve::Family;
use crate::tcp::{TcpSocket, WANTREAD, WANTWRITE};
use crate::watch::FdWatch;
use mlua::{Lua, Table, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// Builds the core table around `reactor`.
pub fn core_table(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Table> {
    let core = lua.create_table()?;
    core.set("MISUSE", MISUSE)?;
    core.set("WANTREAD", WANTREAD)?;
    core.set("WANTWRITE", WANTWRITE)?;

    let r = reactor.clone();
    let found = Rc::new(RefCell::new(PollResult::default()));
    core.set(
        "poll",
        lua.create_function(move |_, (timeout, ready): (Option<f64>, Table)| {
            let timeout = timeout.map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
            let mut found = found.borrow_mut();
            r.borrow_mut()
                .poll(timeout, &mut found)
                .map_err(mlua::Error::external)?;
            let keys = found.ready.iter().chain(found.expired.iter());
            for (i, key) in keys.enumerate() {
                ready.raw_set(i + 1, *key)?;
            }
            Ok((found.ready.len(), found.expired.len(), found.signal))
        })?,
    )?;

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

    let r = reactor.clone();
    core.set(
        "tcp",
        lua.create_function(move |_, family: Option<mlua::LuaString>| {
            let family = match family.as_ref().map(|f| f.as_bytes().to_vec()).as_deref() {
                Some(b"inet6") => Some(Family::V6),
                Some(b"inet") => Some(Family::V4),
                _ => None,
            };
            Ok(TcpSocket::new(&r, family))
        })?,
    )?;

    let r = reactor.clone();
    core.set(
        "fromfd",
        lua.create_function(move |lua, fd: i32| match TcpSocket::from_fd(&r, fd) {
            Ok(s) => Ok((Value::UserData(lua.create_userdata(s)?), Value::Nil)),
            Err(e) => Ok((Value::Nil, Value::String(lua.create_string(message(&e))?))),
        })?,
    )?;

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

    core.set(
        "isours",
        lua.create_function(|_, v: Value| {
            Ok(matches!(v, Value::UserData(ud) if ud.is::<TcpSocket>()))
        })?,
    )?;

    let r = reactor.clone();
    core.set(
        "stats",
        lua.create_function(move |_, ()| {
            let r = r.borrow();
            Ok((r.source_count(), r.timer_count()))
        })?,
    )?;
    crate::http_head::register(lua, &core)?;
    crate::rpc_codec::register(lua, &core)?;
    Ok(core)
}
