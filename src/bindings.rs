//! The `socketloop.core` table: the Rust functions the Lua layer is built on.
//!
//! Internal API (the public one is `lua/socketloop.lua`):
//! - `poll(timeout, ready) -> nready, nexpired, signal`: waits (timeout in seconds, nil:
//!   no limit), writes ready keys then expired keys into `ready[1..]`; `nil, message`
//!   if epoll fails. A raw C function: it runs once per loop iteration.
//! - `settimer(key, seconds)`: times out the wait on `key` (a negative key: a plain timer).
//! - `now() -> seconds` on the loop's monotonic clock.
//! - `tcp([family]) -> socket`, `fromfd(fd) -> socket`, `watch(fd) -> watch`.
//! - `waitfd(fd|nil, write, timeout) -> true | 'timeout'`: a blocking wait outside the loop.
//! - `stats() -> registrations, timers`.

use crate::blocking::{wait_fd, Waited};
use crate::errors::{fail, message, MISUSE};
use crate::luastack::{drop_userdata, push_userdata, userdata_value, Stack};
use crate::reactor::{PollResult, SharedReactor};
use crate::tcp::{WANTREAD, WANTWRITE};
use crate::watch::FdWatch;
use mlua::ffi::{self, lua_State, lua_upvalueindex};
use mlua::{Function, Lua, Table, Value};
use std::ffi::c_int;
use std::time::Duration;

/// Builds the core table around `reactor`.
pub fn core_table(lua: &Lua, reactor: &SharedReactor) -> mlua::Result<Table> {
    let core = lua.create_table()?;
    core.set("MISUSE", MISUSE)?;
    core.set("WANTREAD", WANTREAD)?;
    core.set("WANTWRITE", WANTWRITE)?;

    // SAFETY: the closure only pushes one value (see push_poll).
    let poll: Function = unsafe {
        let poller = Poller {
            reactor: reactor.clone(),
            found: PollResult::default(),
        };
        lua.exec_raw((), move |state| push_poll(state, poller))
    }?;
    core.set("poll", poll)?;

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

    crate::tcp_lua::register(lua, &core, reactor)?;

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
            Ok((r.source_count(), r.timer_count()))
        })?,
    )?;
    crate::http_head::register(lua, &core)?;
    crate::rpc_codec::register(lua, &core)?;
    crate::tango_text::register(lua, &core)?;
    Ok(core)
}

/// What `core.poll` keeps between calls: the reactor, and its result vectors (reused).
struct Poller {
    reactor: SharedReactor,
    found: PollResult,
}

/// Pushes `core.poll`, a C closure over a userdata holding `poller`.
unsafe fn push_poll(state: *mut lua_State, poller: Poller) {
    let st = Stack::new(state);
    st.push_table();
    ffi::lua_pushcclosure(state, drop_userdata::<Poller>, 0);
    st.set_field(c"__gc");
    push_userdata(&st, poller, -1);
    ffi::lua_remove(state, -2);
    ffi::lua_pushcclosure(state, poll, 1);
}

unsafe extern "C-unwind" fn poll(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    // SAFETY: upvalue 1 is the Poller userdata push_poll made.
    let Some(poller) = userdata_value::<Poller>(st.userdata(lua_upvalueindex(1))) else {
        return fail(&st, "closed");
    };
    if !st.is_table(2) {
        return fail(&st, "bad argument #2 to 'poll' (table expected)");
    }
    let timeout = st
        .number(1)
        .map(|t| Duration::from_secs_f64(t.clamp(0.0, 1e9)));
    let found = &mut poller.found;
    let polled = match poller.reactor.try_borrow_mut() {
        Ok(mut reactor) => reactor.poll(timeout, found),
        Err(_) => return fail(&st, "poll called while the reactor is busy"),
    };
    if let Err(e) = polled {
        return fail(&st, &message(&e));
    }
    let keys = found.ready.iter().chain(found.expired.iter());
    for (i, key) in keys.enumerate() {
        st.set_index(2, i + 1, *key as f64);
    }
    st.push_int(found.ready.len() as i64);
    st.push_int(found.expired.len() as i64);
    match found.signal {
        Some(signal) => st.push_int(signal as i64),
        None => st.push_nil(),
    }
    3
}
