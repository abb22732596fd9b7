//! The fast path of `receive` and `send`: the same socket code as the methods in
//! [`crate::lua::tcp`], entered through plain C functions that `asocket.lua` calls with
//! LuaJIT's FFI.
//!
//! A call through the FFI is compiled into the calling trace (a few nanoseconds), where a
//! method call (a `lua_CFunction`) ends the trace, goes through the interpreter and reads
//! its arguments through the Lua API: about a microsecond per echoed line. The fast path
//! covers the calls an I/O loop makes over and over (`receive()`, `receive('*l')`,
//! `receive(n)` without a prefix, `send(s)` of a whole string); it answers `SLOW` for
//! anything else it would have to judge (misuse, a socket it does not recognise) without
//! having changed anything, and the Lua side then calls the method.
//!
//! The entry points, the reactor address and the result area reach `asocket.lua` once,
//! through `socketloop.core`'s private half (see [`crate::lua::core_table`]), and live in
//! its upvalues: no script can replace them. Each entry still checks what it is given:
//! the reactor must be one this thread made the fast path for (a forged or dangling
//! address is refused, never dereferenced), and the socket is named twice, by its wait
//! token and by its userdata (which the FFI passes as the address of its payload); the
//! reactor records which userdata owns each token, so a stale token or something other
//! than one of our sockets is refused, never touched. `send`'s `data`/`len` come from the
//! Lua wrapper, which passes a string and its length (`#s`).
//!
//! Received bytes are *lent*: handed over where they are (a fresh line in the receive
//! scratch area) or in [`HANDOFF`], and the result's `lent` flag is set until the Lua
//! side has made its string of them and cleared it. Making that string may run the
//! collector and any finalizer, which may receive again: while `lent` is set, every
//! entry here answers `SLOW` and the methods (which copy into a scratch area of their
//! own) run instead, so lent bytes are never overwritten or freed before they are read.

use crate::lua::reply::guarded;
use crate::net::buffer::{self, Pattern};
use crate::net::tcp::{Deliver, Sent, TcpSocket};
use crate::rt::reactor::{Reactor, SharedReactor};
use std::cell::{Cell, RefCell};
use std::ffi::{c_int, c_void};
use std::rc::{Rc, Weak};

/// The call is answered: received bytes in `data`/`len`, or everything sent.
pub const DONE: c_int = 1;
/// The call would block (`'wantread'`, or `'wantwrite'` with `len` bytes sent); the
/// Lua side says which.
pub const WOULD_BLOCK: c_int = 0;
/// The call failed with the error in `err`/`err_len`; `data`/`len` is the partial result
/// of a receive, `len` the bytes sent by a send.
pub const FAILED: c_int = -1;
/// Not answered here, nothing changed: call the method.
pub const SLOW: c_int = -2;
/// The receive pattern code of `'*l'` (other codes are byte counts).
pub const LINE: i64 = -1;

/// Hand-overs bigger than this do not keep their memory until the next call.
const HANDOFF_KEEP: usize = 64 * 1024;

thread_local! {
    /// The bytes of the last answer (a received string, or a partial result and error).
    static HANDOFF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// What the last call handed back besides its code; the Lua side reads it through
    /// the address [`result_area`] gives.
    static RESULT: FfiResult = const {
        FfiResult {
            data: Cell::new(std::ptr::null()),
            len: Cell::new(0),
            err: Cell::new(std::ptr::null()),
            err_len: Cell::new(0),
            lent: Cell::new(0),
        }
    };
    /// The reactors the fast path was made for on this thread: the only addresses an
    /// entry dereferences.
    static REACTORS: RefCell<Vec<Weak<RefCell<Reactor>>>> = const { RefCell::new(Vec::new()) };
}

/// What a fast-path call hands back besides its code; the Lua side declares the same
/// struct (`Cell<T>` has the layout of `T`).
#[repr(C)]
pub struct FfiResult {
    data: Cell<*const u8>,
    len: Cell<usize>,
    err: Cell<*const u8>,
    err_len: Cell<usize>,
    /// Nonzero while `data`/`err` point at bytes the Lua side has not copied yet; the Lua
    /// side clears it once it has.
    lent: Cell<i32>,
}

/// The address of this thread's result area, for the Lua side to read (and clear
/// `lent`).
pub fn result_area() -> *const c_void {
    RESULT.with(|r| (r as *const FfiResult).cast())
}

/// Makes the fast path available for `reactor`: its address is what the entries take.
pub fn enable(reactor: &SharedReactor) -> *const c_void {
    REACTORS.with_borrow_mut(|list| {
        list.retain(|r| r.strong_count() > 0);
        list.push(Rc::downgrade(reactor));
    });
    Rc::as_ptr(reactor).cast()
}

/// The reactor at `reactor`, if the fast path was made for it and it is alive.
fn known_reactor<'a>(reactor: *const RefCell<Reactor>) -> Option<&'a RefCell<Reactor>> {
    let known = REACTORS.with(|list| {
        list.try_borrow().is_ok_and(|list| {
            list.iter()
                .any(|r| r.as_ptr() == reactor && r.strong_count() > 0)
        })
    });
    // SAFETY: the address of a reactor some Rc still holds; nothing can drop it while an
    // entry runs, since no Lua runs meanwhile.
    known.then(|| unsafe { &*reactor })
}

/// Our socket with wait token `token` whose userdata payload is at `home`, if it is one.
///
/// # Safety
/// Only from an entry point, which calls no Lua while the socket is borrowed.
unsafe fn socket_at<'a>(
    reactor: &RefCell<Reactor>,
    token: i64,
    home: *mut c_void,
) -> Option<&'a mut TcpSocket> {
    let token = usize::try_from(token).ok()?;
    let owner = reactor.try_borrow().ok()?.owner(token)?;
    if owner != home as usize {
        return None;
    }
    // SAFETY: the reactor records a token's owner as the payload address of the live
    // socket userdata that registered it (and forgets it when the socket closes or is
    // collected), so `home` is such a payload.
    (*home.cast::<Option<TcpSocket>>()).as_mut()
}

/// Fills HANDOFF afresh with `fill`; returns where its bytes start, and how many.
fn hand_over(fill: impl FnOnce(&mut Vec<u8>)) -> (*const u8, usize) {
    HANDOFF.with_borrow_mut(|h| {
        h.clear();
        if h.capacity() > HANDOFF_KEEP {
            h.shrink_to(HANDOFF_KEEP);
        }
        fill(h);
        (h.as_ptr(), h.len())
    })
}

/// [`Deliver`] into the [`FfiResult`]: every answer with bytes sets `lent`.
struct Out<'a>(&'a FfiResult);

impl Deliver for Out<'_> {
    type Out = c_int;
    const LENDS: bool = true;

    fn matched(&mut self, prefix: &[u8], matched: &[u8], pattern: Pattern) -> c_int {
        let (data, len) = hand_over(|h| {
            h.extend_from_slice(prefix);
            buffer::append_match(h, matched, pattern);
        });
        self.0.data.set(data);
        self.0.len.set(len);
        self.0.lent.set(1);
        DONE
    }

    fn matched_in_place(&mut self, bytes: &[u8]) -> c_int {
        // No copy: the bytes stay in the lending scratch area, which no receive writes
        // while `lent` is set.
        self.0.data.set(bytes.as_ptr());
        self.0.len.set(bytes.len());
        self.0.lent.set(1);
        DONE
    }

    fn failed(&mut self, err: &str, partial: &[u8]) -> c_int {
        let (start, len) = hand_over(|h| {
            h.extend_from_slice(partial);
            h.extend_from_slice(err.as_bytes());
        });
        self.0.data.set(start);
        self.0.len.set(partial.len());
        // SAFETY: the error follows the partial result in the same hand-over.
        self.0.err.set(unsafe { start.add(partial.len()) });
        self.0.err_len.set(len - partial.len());
        self.0.lent.set(1);
        FAILED
    }

    fn would_block(&mut self) -> c_int {
        WOULD_BLOCK
    }

    fn misuse(&mut self, _why: &'static str) -> c_int {
        SLOW
    }
}

/// Runs an entry's work unless lent bytes are still out (then `SLOW`); a panic is
/// answered `SLOW` too, and the method then reports what is wrong.
fn entry(work: impl FnOnce(&FfiResult) -> c_int) -> c_int {
    RESULT.with(|result| {
        if result.lent.get() != 0 {
            return SLOW;
        }
        guarded(|| work(result)).unwrap_or(SLOW)
    })
}

/// `receive(pattern)` on socket (`token`, `home`): `pattern` is [`LINE`] or a byte count.
///
/// # Safety
/// `home` may be anything (it is dereferenced only if the reactor names it as `token`'s
/// owner). Called only by the Lua side through the FFI, never from inside a binding.
pub unsafe extern "C" fn receive(
    reactor: *const RefCell<Reactor>,
    token: i64,
    home: *mut c_void,
    pattern: i64,
) -> c_int {
    let pattern = match pattern {
        LINE => Pattern::Line,
        n => match usize::try_from(n) {
            Ok(n) => Pattern::Bytes(n),
            Err(_) => return SLOW,
        },
    };
    entry(|result| {
        let Some(reactor) = known_reactor(reactor) else {
            return SLOW;
        };
        match socket_at(reactor, token, home) {
            Some(sock) => sock.receive_into(pattern, &[], &mut Out(result)),
            None => SLOW,
        }
    })
}

/// `send(data)` of `len` bytes at `data` on socket (`token`, `home`).
///
/// # Safety
/// As [`receive`]; `data` is valid for reads of `len` bytes (the Lua side passes a string
/// it holds and its length).
pub unsafe extern "C" fn send(
    reactor: *const RefCell<Reactor>,
    token: i64,
    home: *mut c_void,
    data: *const u8,
    len: usize,
) -> c_int {
    if data.is_null() || len > isize::MAX as usize {
        return SLOW;
    }
    entry(|result| {
        let Some(reactor) = known_reactor(reactor) else {
            return SLOW;
        };
        let Some(sock) = socket_at(reactor, token, home) else {
            return SLOW;
        };
        let bytes = std::slice::from_raw_parts(data, len);
        match sock.send_range(bytes, 0, len) {
            Sent::All(done) => {
                result.len.set(done);
                DONE
            }
            Sent::WouldBlock(done) => {
                result.len.set(done);
                WOULD_BLOCK
            }
            Sent::Failed(err, done) => {
                result.len.set(done);
                let (err, err_len) = hand_over(|h| h.extend_from_slice(err.as_bytes()));
                result.err.set(err);
                result.err_len.set(err_len);
                result.lent.set(1);
                FAILED
            }
            Sent::NotConnected => SLOW,
        }
    })
}
