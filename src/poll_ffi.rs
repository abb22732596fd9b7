//! The scheduler's wait for the reactor, entered through LuaJIT's FFI.
//!
//! `scheduler.lua` calls [`poll`] once per loop iteration and reads the woken keys from
//! an array of doubles: a trace compiles the call and the reads, where a C function
//! ended the trace and stored every key into a Lua table through the Lua API (about 50
//! instructions per key, a key per echoed line).

use crate::reactor::{PollResult, Reactor};
use std::cell::RefCell;
use std::ffi::c_int;
use std::time::Duration;

/// What [`poll`] hands back besides its code; `scheduler.lua` declares the same struct.
#[repr(C)]
pub struct PollOut {
    /// The ready keys, then the expired ones; valid until the next poll on this thread.
    keys: *const f64,
    nready: usize,
    nexpired: usize,
    /// A signal the reactor was asked to catch arrived (its number), or 0.
    signal: c_int,
    /// Why the poll failed (when it returns -1).
    err: *const u8,
    err_len: usize,
}

/// What [`poll`] keeps between calls: the reactor's result, and the keys and error
/// message it hands out.
#[derive(Default)]
struct Polled {
    found: PollResult,
    keys: Vec<f64>,
    err: String,
}

thread_local! {
    static POLLED: RefCell<Polled> = RefCell::new(Polled::default());
}

/// Waits for readiness or a timer (`timeout` seconds; negative: no limit) and fills `out`.
/// Returns the number of keys, or -1 with the reason in `out.err`.
///
/// # Safety
/// `reactor` is `core.ffi.reactor`; `out` points to a writable [`PollOut`].
pub unsafe extern "C" fn poll(
    reactor: *const RefCell<Reactor>,
    timeout: f64,
    out: *mut PollOut,
) -> c_int {
    let Some(out) = out.as_mut() else {
        return -1;
    };
    let timeout = (timeout >= 0.0).then(|| Duration::from_secs_f64(timeout.min(1e9)));
    POLLED.with_borrow_mut(|polled| {
        let result = match (*reactor).try_borrow_mut() {
            Ok(mut reactor) => reactor
                .poll(timeout, &mut polled.found)
                .map_err(|e| crate::errors::message(&e)),
            Err(_) => Err("poll called while the reactor is busy".to_owned()),
        };
        if let Err(why) = result {
            polled.err = why;
            (out.err, out.err_len) = (polled.err.as_ptr(), polled.err.len());
            return -1;
        }
        let found = &polled.found;
        polled.keys.clear();
        let keys = found.ready.iter().chain(found.expired.iter());
        polled.keys.extend(keys.map(|&k| k as f64));
        out.keys = polled.keys.as_ptr();
        out.nready = found.ready.len();
        out.nexpired = found.expired.len();
        out.signal = found.signal.unwrap_or(0);
        polled.keys.len() as c_int
    })
}
