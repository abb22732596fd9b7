//! The scheduler's hot half: loop threads parked on socket wait keys, and the poll that
//! resumes them. The rest of the scheduler (sleeps, transfers, idle waits, deferred
//! wake-ups, errors) is `lua/socketloop/scheduler.lua`.
//!
//! `parking(S, after)` (in the private half of `socketloop.core`, made once) returns seven
//! C functions sharing one [`Parking`]:
//! - `wait(key [, timeout])`, called by a loop thread whose socket would block: parks it
//!   on the wait key (`token * 2 + direction`, see [`crate::rt::reactor`]) and yields; it
//!   returns what the thread is resumed with (`true`, `'timeout'`, `'closed'`). Returns
//!   at once `nil` in a thread that is not a loop thread (the caller then blocks in
//!   poll(2)), `'closed'` for a key whose registration is not live, `'busy'` when
//!   another thread already waits on the key, and `'unyieldable'` when the thread cannot
//!   yield here (a C function on its stack: the caller raises a Lua error saying so).
//! - `poll(timeout, keys) -> nready, nexpired, signals, polled_at`: waits for the reactor
//!   (`polled_at`: when it returned, seconds on the loop clock) and resumes
//!   the threads parked here on the keys it reports; the other keys (plain timers, whose
//!   threads the Lua side parks) go into `keys[1..]`, ready ones first. `nil, message` if
//!   epoll fails.
//! - `unpark(key) -> thread | nil`: takes the thread parked on `key` (its socket closed,
//!   or the thread was cancelled), and drops its wait's timeout.
//! - `count() -> n`: how many threads are parked here.
//! - `inloop() -> boolean`: whether the caller is a loop thread: the thread the poll is
//!   resuming, or `S.thread` (the one the Lua half is resuming).
//! - `slow(seconds | nil)`: from now on, a resume here that runs longer than `seconds`
//!   calls `S.slow(thread, seconds it ran)` (under `lua_pcall`); nil turns that off.
//!   Off, it costs one test per resume; on, two clock reads.
//! - `parked_on(thread) -> key, since | nil`: the key `thread` is parked on here, if any,
//!   and when it began waiting: the time (seconds on the loop clock) the dispatch it
//!   parked in began, so a park costs no clock read.
//!
//! What keeps threads alive: a parked thread is in an anchor table no script can reach
//! (an upvalue of the seven functions), at its key; a thread the poll resumes is also on
//! the poll's own Lua stack until its resume returns, since it may close its socket (which
//! drops the anchor) while it runs. When a resumed thread yields anything but a park here
//! (or ends, or fails), `after(co, ok, ...)` gets what `coroutine.resume` would have
//! returned, under `lua_pcall`; an error there does not stop the other wake-ups and is
//! raised by `poll` once they are done.
//!
//! Why in Rust: resuming from Lua ends the running trace at the resume and starts it
//! again afterwards, and a thread that parked went through two more trace exits (to ask
//! whether it runs in a loop thread, and to yield). Here a wake-up is a `lua_resume` and
//! a park is one C call (docs/performance.md has the figures). The Lua API costs 10 to
//! 30 instructions a call, so the hot path makes few: a thread the poll resumes is known
//! to be a loop thread without a lookup, and a thread that parks on the key it parked on
//! before (a connection's reader) leaves its anchor as it is.

use crate::lua::reply::{guarded, raise, Reply};
use crate::lua::stack::{push_owned, userdata_value, Stack};
use crate::net::errors::message;
use crate::rt::reactor::{PollResult, SharedReactor};
use mlua::ffi::{self, lua_CFunction, lua_State, lua_upvalueindex};
use std::borrow::Cow;
use std::ffi::c_int;
use std::ptr;
use std::time::{Duration, Instant};

/// The upvalues of the seven functions.
const PARKING: c_int = lua_upvalueindex(1);
const ANCHORS: c_int = lua_upvalueindex(2);
const SCHEDULER: c_int = lua_upvalueindex(3);
const AFTER: c_int = lua_upvalueindex(4);
/// The string `"thread"`, the key of `S.thread`.
const THREAD_KEY: c_int = lua_upvalueindex(5);
/// The string `"timeout"`, what a thread whose wait timed out is resumed with.
const TIMEOUT: c_int = lua_upvalueindex(6);

extern "C-unwind" {
    /// Whether the running thread can yield: LuaJIT 2.1's (Debian's 2.1.0-beta3 has
    /// it too), which mlua does not declare for LuaJIT.
    fn lua_isyieldable(state: *mut lua_State) -> c_int;
}

/// Wait keys above this are not socket keys (tokens are slab indices).
const MAX_KEY: f64 = i32::MAX as f64;

/// Where `poll` keeps the first error `after` raised, above its two arguments.
const POLL_ERROR: c_int = 3;

/// What the seven functions share.
struct Parking {
    /// The reactor whose wait keys these are.
    reactor: SharedReactor,
    /// The poll's result vectors, reused from poll to poll (a nested poll, from a
    /// thread a poll resumed, finds them taken and makes its own).
    found: PollResult,
    /// Per wait key: the thread parked on it, and the one the anchor table holds. Never
    /// longer than twice the reactor's highest live token plus two: `wait` grows it only
    /// for the key of a live registration.
    slots: Vec<Slot>,
    /// How many slots have a waiter (see [`Slot::waiter`]).
    count: usize,
    /// The thread the poll is resuming now (null: none), a loop thread for certain.
    resuming: *mut lua_State,
    /// The thread that parked itself last, until whoever resumed it has looked.
    just_parked: *mut lua_State,
    /// When the last poll returned (loop clock, nanoseconds): what a park records as
    /// the start of its wait.
    polled_at: u64,
    /// Resumes longer than this are reported to `S.slow` (None: not timed).
    slow: Option<Duration>,
}

/// A wait key's threads, in 16 bytes (two per socket): the anchored thread, and whether
/// it is the one parked on the key.
#[derive(Clone, Copy)]
struct Slot {
    /// The thread in the anchor table at this key, kept alive by it (null: none). The
    /// anchor outlives the wait until another thread waits on the key or the key is
    /// unparked: a thread that parks on the same key again and again (a connection's
    /// reader) costs no table write per wait. Changed only while no thread is parked on
    /// the key, so the waiter is always an anchored thread.
    anchored: *mut lua_State,
    /// When the anchored thread parked on the key (`Parking::polled_at` then, loop-clock
    /// nanoseconds), or [`NOT_PARKED`]. It is parked only while it is suspended in `wait`
    /// on this key (checked before it is resumed: other code may have resumed it), and
    /// never while `anchored` is null.
    parked_at: u64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 16);

/// [`Slot::parked_at`] of a key nobody is parked on; a park time is at most one less
/// (584 years on the loop clock).
const NOT_PARKED: u64 = u64::MAX;

impl Slot {
    /// Whether a thread is parked on the key: then it is `anchored`.
    #[inline]
    fn is_parked(&self) -> bool {
        self.parked_at != NOT_PARKED
    }

    /// The thread parked on the key (null: none).
    #[inline]
    fn waiter(&self) -> *mut lua_State {
        if self.is_parked() {
            self.anchored
        } else {
            ptr::null_mut()
        }
    }

    /// The anchored thread parks on the key, at `since`.
    #[inline]
    fn park(&mut self, since: u64) {
        self.parked_at = since.min(NOT_PARKED - 1);
    }

    /// No thread is parked on the key any more (the anchor stays).
    #[inline]
    fn clear_waiter(&mut self) {
        self.parked_at = NOT_PARKED;
    }
}

const EMPTY: Slot = Slot {
    anchored: ptr::null_mut(),
    parked_at: NOT_PARKED,
};

/// Pushes `parking`, a C closure over a userdata holding `reactor`, which the first call
/// takes: the scheduler's state can be made once.
///
/// # Safety
/// `state` is a valid state with room for three values.
pub unsafe fn push_parking_maker(state: *mut lua_State, reactor: SharedReactor) {
    push_owned(&Stack::new(state), Some(reactor));
    ffi::lua_pushcclosure(state, make_parking, 1);
}

/// `parking(S, after) -> wait, poll, unpark, count, inloop, parked_on, slow`.
unsafe extern "C-unwind" fn make_parking(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let ok = st.is_table(1) && ffi::lua_type(state, 2) == ffi::LUA_TFUNCTION;
    if !ok {
        raise(&st, "bad arguments to 'parking' (S, after expected)")
    }
    let maker = userdata_value::<Option<SharedReactor>>(st.userdata(lua_upvalueindex(1)));
    let Some(reactor) = maker.and_then(|m| m.take()) else {
        raise(
            &st,
            "'parking' was called already: there is one scheduler per loop",
        )
    };
    let parking = Parking {
        reactor,
        found: PollResult::default(),
        slots: Vec::new(),
        count: 0,
        resuming: ptr::null_mut(),
        just_parked: ptr::null_mut(),
        polled_at: 0,
        slow: None,
    };
    ffi::lua_settop(state, 2);
    push_owned(&st, parking);
    ffi::lua_insert(state, 1);
    ffi::lua_createtable(state, 0, 0);
    ffi::lua_insert(state, 2);
    // Stack: parking, anchors, S, after.
    ffi::lua_pushstring_(state, c"thread".as_ptr());
    ffi::lua_pushstring_(state, c"timeout".as_ptr());
    let functions = [
        wait as lua_CFunction,
        poll,
        unpark,
        count,
        inloop,
        parked_on,
        slow,
    ];
    for f in functions {
        for i in 1..=6 {
            ffi::lua_pushvalue(state, i);
        }
        ffi::lua_pushcclosure(state, f, 6);
    }
    functions.len() as c_int
}

/// The shared state (null once collected, which cannot happen while one of the seven
/// functions runs: the function holds it). A raw pointer, dereferenced for single
/// accesses only: the functions re-enter each other through the threads they resume.
unsafe fn shared(state: *mut lua_State) -> *mut Parking {
    match userdata_value::<Parking>(ffi::lua_touserdata(state, PARKING)) {
        Some(p) => p,
        None => ptr::null_mut(),
    }
}

/// A socket wait key at stack index `i`.
unsafe fn socket_key(state: *mut lua_State, i: c_int) -> Option<usize> {
    let key = ffi::lua_tonumber(state, i);
    if key == 0.0 && ffi::lua_isnumber(state, i) == 0 {
        return None;
    }
    ((0.0..=MAX_KEY).contains(&key) && key as usize as f64 == key).then_some(key as usize)
}

/// Whether the running thread is a loop thread: the one the poll is resuming, or
/// `S.thread`.
unsafe fn in_loop_thread(state: *mut lua_State, parking: *mut Parking) -> bool {
    if state == (*parking).resuming {
        return true;
    }
    ffi::lua_pushvalue(state, THREAD_KEY);
    ffi::lua_rawget(state, SCHEDULER);
    let current = ffi::lua_tothread(state, -1);
    ffi::lua_settop(state, -2);
    current == state
}

/// `inloop() -> boolean`; see the module documentation.
unsafe extern "C-unwind" fn inloop(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let parking = shared(state);
    st.push_bool(!parking.is_null() && in_loop_thread(state, parking));
    1
}

/// `wait(key [, timeout])`; see the module documentation.
unsafe extern "C-unwind" fn wait(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let parking = shared(state);
    if parking.is_null() || !in_loop_thread(state, parking) {
        st.push_nil();
        return 1;
    }
    // Asked here rather than by the caller: a C call more per wait, from Lua, would end
    // the running trace once more, and take 20 stack slots deeper in the thread.
    if lua_isyieldable(state) == 0 {
        st.push_str("unyieldable");
        return 1;
    }
    let live = |key: usize| {
        (*parking)
            .reactor
            .try_borrow()
            .is_ok_and(|r| r.is_live(key / 2))
    };
    let Some(key) = socket_key(state, 1).filter(|&key| live(key)) else {
        st.push_str("closed");
        return 1;
    };
    let timeout =
        (ffi::lua_type(state, 2) == ffi::LUA_TNUMBER).then(|| ffi::lua_tonumber(state, 2));
    if timeout.is_some_and(f64::is_nan) {
        raise(&st, "bad argument #2 to 'wait' (number expected, got NaN)");
    }
    if waiting_on(parking, key).is_some() {
        st.push_str("busy");
        return 1;
    }
    let slots = &mut (*parking).slots;
    if slots.len() <= key {
        slots.resize(key + 1, EMPTY);
    }
    // The anchor first: if the yield below raises (this thread cannot yield here), the
    // anchor is all that is left, and it is replaced or cleared like any other.
    if slots[key].anchored != state {
        ffi::lua_pushthread(state);
        ffi::lua_rawseti_(state, ANCHORS, key as c_int);
        slots[key].anchored = state;
    }
    let yielded = ffi::lua_yield(state, 0);
    // The yield is under way: it happens when this function returns. `state` is
    // anchored here (just above), and nobody waits on the key (the check above).
    slots[key].park((*parking).polled_at);
    (*parking).count += 1;
    (*parking).just_parked = state;
    if let Some(seconds) = timeout {
        let _ = guarded(|| {
            if let Ok(mut reactor) = (*parking).reactor.try_borrow_mut() {
                reactor.set_timer(key as i64, seconds);
            }
        });
    }
    yielded
}

/// `unpark(key) -> thread | nil`; see the module documentation.
unsafe extern "C-unwind" fn unpark(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let parking = shared(state);
    let key = socket_key(state, 1).filter(|&k| !parking.is_null() && k < (*parking).slots.len());
    let Some(key) = key else {
        st.push_nil();
        return 1;
    };
    let parked = take_waiter(parking, key);
    if parked.is_some() {
        if let Ok(mut reactor) = (*parking).reactor.try_borrow_mut() {
            reactor.clear_timer(key as i64);
        }
    }
    ffi::lua_rawgeti_(state, ANCHORS, key as c_int);
    ffi::lua_pushnil(state);
    ffi::lua_rawseti_(state, ANCHORS, key as c_int);
    let slots = &mut (*parking).slots;
    slots[key].anchored = ptr::null_mut();
    if parked.is_none() {
        // Only an anchor, if anything: not a parked thread.
        st.push_nil();
    }
    1
}

/// `parked_on(thread) -> key, since | nil`; see the module documentation. Looks through every
/// slot: for cancelling a thread, not for the hot path.
unsafe extern "C-unwind" fn parked_on(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let parking = shared(state);
    let co = ffi::lua_tothread(state, 1);
    if parking.is_null() || co.is_null() {
        st.push_nil();
        return 1;
    }
    let key = (*parking).slots.iter().position(|slot| slot.waiter() == co);
    match key.and_then(|key| waiting_on(parking, key).map(|_| key)) {
        Some(key) => {
            st.push_int(key as i64);
            let since = (&(*parking).slots)[key].parked_at;
            ffi::lua_pushnumber(state, since as f64 / 1e9);
            2
        }
        None => {
            st.push_nil();
            1
        }
    }
}

/// `slow(seconds | nil)`; see the module documentation.
unsafe extern "C-unwind" fn slow(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let parking = shared(state);
    let limit = match st.number(1) {
        _ if st.is_nil(1) => None,
        Some(t) if t >= 0.0 && t.is_finite() => Some(Duration::from_secs_f64(t.min(1e9))),
        _ => raise(
            &st,
            "bad argument #1 to 'slow' (non-negative number or nil expected)",
        ),
    };
    if !parking.is_null() {
        (*parking).slow = limit;
    }
    0
}

/// Hands a resume of `co` (on top of the stack) that ran `took` to `S.slow(co, seconds)`;
/// an error there is dropped (the hook reports, it does not stop the poll).
unsafe fn report_slow(state: *mut lua_State, took: Duration) {
    let top = ffi::lua_gettop(state);
    ffi::lua_pushstring_(state, c"slow".as_ptr());
    ffi::lua_rawget(state, SCHEDULER);
    if ffi::lua_type(state, -1) == ffi::LUA_TFUNCTION {
        ffi::lua_pushvalue(state, top);
        ffi::lua_pushnumber(state, took.as_secs_f64());
        ffi::lua_pcall(state, 2, 0, 0);
    }
    ffi::lua_settop(state, top);
}

/// `count() -> n`; see the module documentation.
unsafe extern "C-unwind" fn count(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let parking = shared(state);
    st.push_int(if parking.is_null() {
        0
    } else {
        (*parking).count
    } as i64);
    1
}

/// The thread parked on `key`, if it still waits there. A thread that other code
/// resumed since it parked (a misuse) is not suspended in its wait any more, may be
/// running, even be the caller: it is forgotten, since resuming it would fail (and
/// `lua_resume` resets a thread's stack to say so) and it no longer holds the key.
unsafe fn waiting_on(parking: *mut Parking, key: usize) -> Option<*mut lua_State> {
    let slots = &mut (*parking).slots;
    let slot = slots.get_mut(key)?;
    if !slot.is_parked() {
        return None;
    }
    let co = slot.anchored;
    if ffi::lua_status(co) != ffi::LUA_YIELD {
        slot.clear_waiter();
        (*parking).count -= 1;
        return None;
    }
    Some(co)
}

/// Forgets the thread parked on `key`, returning it if it still waited there.
unsafe fn take_waiter(parking: *mut Parking, key: usize) -> Option<*mut lua_State> {
    let co = waiting_on(parking, key)?;
    let slots = &mut (*parking).slots;
    slots[key].clear_waiter();
    (*parking).count -= 1;
    Some(co)
}

/// `poll(timeout, keys) -> nready, nexpired, signals, polled_at`; see the module
/// documentation (`signals`: nil, or a mask with bit n set for each signal n caught).
unsafe extern "C-unwind" fn poll(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    if !st.is_table(2) {
        raise(&st, "bad argument #2 to 'poll' (table expected)");
    }
    let timeout = match st.number(1) {
        Some(t) if t.is_nan() => raise(&st, "bad argument #1 to 'poll' (number expected, got NaN)"),
        Some(t) if t == f64::INFINITY => None,
        Some(t) => Some(Duration::from_secs_f64(t.clamp(0.0, 1e9))),
        None => None,
    };
    // The keys are taken out while threads run: one of them may poll again.
    let parking = shared(state);
    if parking.is_null() {
        return Reply::Fail(Cow::Borrowed("closed")).push(&st);
    }
    let polled = guarded(|| {
        let parking = &mut *parking;
        let polled = match parking.reactor.try_borrow_mut() {
            Ok(mut reactor) => reactor.poll(timeout, &mut parking.found),
            Err(_) => return Err("poll called while the reactor is busy".to_string()),
        };
        polled.map_err(|e| message(&e))?;
        parking.polled_at = parking.found.polled_at;
        let found = &mut parking.found;
        Ok((
            std::mem::take(&mut found.ready),
            std::mem::take(&mut found.expired),
            found.signals,
        ))
    });
    let (ready, expired, signals) = match polled {
        Ok(Ok(found)) => found,
        Ok(Err(why)) => return Reply::Fail(Cow::Owned(why)).push(&st),
        Err(panic) => return Reply::Internal(panic).push(&st),
    };
    ffi::lua_settop(state, POLL_ERROR);
    let nready = wake_all(state, parking, &ready, true, 0);
    let nexpired = wake_all(state, parking, &expired, false, nready);
    give_back(&mut (*parking).found.ready, ready);
    give_back(&mut (*parking).found.expired, expired);
    if !st.is_nil(POLL_ERROR) {
        // `after` raised an error: every wake-up was made, nothing is left to drop.
        ffi::lua_pushvalue(state, POLL_ERROR);
        ffi::lua_error(state);
    }
    st.push_int(nready as i64);
    st.push_int(nexpired as i64);
    match signals {
        0 => st.push_nil(),
        mask => st.push_int(mask as i64),
    }
    ffi::lua_pushnumber(state, (*parking).polled_at as f64 / 1e9);
    4
}

/// Wakes the threads parked here on `keys` (with `true` when `ready`, else
/// `'timeout'`); appends the other keys to the table in slot 2 after `left` entries.
/// Returns how many it appended. The first error `after` raises is kept in slot
/// [`POLL_ERROR`].
unsafe fn wake_all(
    state: *mut lua_State,
    parking: *mut Parking,
    keys: &[i64],
    ready: bool,
    left: usize,
) -> usize {
    let st = Stack::new(state);
    let mut appended = 0;
    for (i, &key) in keys.iter().enumerate() {
        warm_up(parking, keys.get(i + 1), keys.get(i + 2));
        match wake(state, parking, key, ready) {
            Woken::Here => {}
            Woken::NotHere => {
                appended += 1;
                st.set_index(2, left + appended, key as f64);
            }
            Woken::AfterFailed => {
                // The error is on top.
                if st.is_nil(POLL_ERROR) {
                    ffi::lua_replace(state, POLL_ERROR);
                }
                ffi::lua_settop(state, POLL_ERROR);
            }
        }
    }
    appended
}

/// Asks for the cache lines the wake-ups of `next` and then `later` will touch first.
///
/// At 1,000 connections the first touches of a woken thread, of its socket and of their
/// slots miss the caches (the kernel's work for the other connections evicted them), and
/// the wake-up waits for each. A poll reports many keys at once, so the next ones are
/// requested while this one runs: the slot two keys ahead, the thread and socket one
/// key ahead (their addresses are in the slot and the reactor).
unsafe fn warm_up(parking: *mut Parking, next: Option<&i64>, later: Option<&i64>) {
    let slots = &(*parking).slots;
    let index = |k: Option<&i64>| k.and_then(|&k| usize::try_from(k).ok());
    if let Some(k) = index(later).filter(|&k| k < slots.len()) {
        prefetch(slots.as_ptr().add(k).cast());
    }
    let Some(k) = index(next) else {
        return;
    };
    if let Some(waiter) = slots.get(k).filter(|s| s.is_parked()).map(|s| s.anchored) {
        prefetch(waiter.cast());
        prefetch(waiter.cast::<u8>().wrapping_add(64));
    }
    if let Ok(reactor) = (*parking).reactor.try_borrow() {
        if let Some(owner) = reactor.owner(k / 2) {
            for line in 0..3 {
                prefetch((owner as *const u8).wrapping_add(64 * line));
            }
        }
    }
}

/// Asks the CPU to start loading the cache line of `p`: a hint, which never faults.
#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing the program sees, and faults on no address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Returns a vector of keys to the poller for the next poll, unless a nested poll left
/// one there already.
fn give_back(slot: &mut Vec<i64>, mut keys: Vec<i64>) {
    if slot.capacity() == 0 {
        keys.clear();
        *slot = keys;
    }
}

/// What [`wake`] did with a key.
enum Woken {
    /// Handled here (resumed, or nobody waits on it any more).
    Here,
    /// Not a socket key: for the Lua side.
    NotHere,
    /// `after` raised an error (on top of the stack).
    AfterFailed,
}

/// Resumes the thread parked here on `key`, if one is, with `true` (ready) or
/// `'timeout'`; hands the outcome to `after` unless the thread parked here again.
///
/// # Safety
/// `state` is the poll's state, with its two arguments and the error slot and nothing
/// above them.
unsafe fn wake(state: *mut lua_State, parking: *mut Parking, key: i64, ready: bool) -> Woken {
    let Ok(key) = usize::try_from(key) else {
        return Woken::NotHere;
    };
    let Some(co) = take_waiter(parking, key) else {
        return Woken::Here;
    };
    // `co` goes on this poll's stack while it runs: its anchor goes if it closes its
    // socket, and nothing else may hold it.
    ffi::lua_pushthread(co);
    ffi::lua_xmove(co, state, 1);
    // What it is resumed with, without allocating on `co`: an allocation may run a
    // finalizer, and an error there (stock beta3 raises them) would be raised in `co`,
    // which is not running.
    if ready {
        ffi::lua_pushboolean(co, 1);
    } else {
        ffi::lua_pushvalue(state, TIMEOUT);
        ffi::lua_xmove(state, co, 1);
    }
    let outer = std::mem::replace(&mut (*parking).resuming, co);
    (*parking).just_parked = ptr::null_mut();
    let timed = (*parking).slow.map(|limit| (limit, Instant::now()));
    let status = ffi::lua_resume_(co, 1);
    (*parking).resuming = outer;
    if let Some((limit, started)) = timed {
        let took = started.elapsed();
        if took > limit {
            let parked = (*parking).just_parked;
            report_slow(state, took);
            (*parking).just_parked = parked;
        }
    }
    if status == ffi::LUA_YIELD && (*parking).just_parked == co {
        (*parking).just_parked = ptr::null_mut();
        ffi::lua_settop(state, POLL_ERROR);
        return Woken::Here;
    }
    if after(state, co, status) {
        Woken::Here
    } else {
        Woken::AfterFailed
    }
}

/// Calls `after(co, ok, ...)` with what `coroutine.resume` would have returned (at most
/// three values after `ok`: requests have no more). `co` is on top of the stack, and
/// popped. False when `after` raised an error, which is then on top.
unsafe fn after(state: *mut lua_State, co: *mut lua_State, status: c_int) -> bool {
    let base = ffi::lua_gettop(state);
    ffi::lua_pushvalue(state, AFTER);
    ffi::lua_pushvalue(state, base);
    if status == ffi::LUA_OK || status == ffi::LUA_YIELD {
        ffi::lua_pushboolean(state, 1);
        ffi::lua_settop(co, 3);
        ffi::lua_xmove(co, state, 3);
    } else {
        ffi::lua_pushboolean(state, 0);
        ffi::lua_xmove(co, state, 1);
    }
    if ffi::lua_pcall(state, ffi::lua_gettop(state) - base - 1, 0, 0) != ffi::LUA_OK {
        return false;
    }
    ffi::lua_settop(state, POLL_ERROR);
    true
}
