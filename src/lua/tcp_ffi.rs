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
//! The socket is named twice, by its wait token and by its userdata (which the FFI passes
//! as the address of its payload); the reactor records which userdata owns each token, so
//! a stale token or something other than one of our sockets is refused, never touched.
//! Received bytes are handed over where they are (a fresh line in the receive scratch
//! buffer) or in [`HANDOFF`], valid until the next call here; the Lua side copies them
//! into a string at once.

use crate::net::buffer::{self, Pattern};
use crate::net::tcp::{Deliver, Sent, TcpSocket};
use crate::rt::reactor::Reactor;
use std::cell::RefCell;
use std::ffi::{c_int, c_void};

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
}

/// What a fast-path call hands back besides its code; the Lua side declares the same
/// struct.
#[repr(C)]
pub struct FfiResult {
    data: *const u8,
    len: usize,
    err: *const u8,
    err_len: usize,
}

/// Our socket with wait token `token` whose userdata payload is at `home`, if it is one.
///
/// # Safety
/// `reactor` is the address of a live reactor (as `core.ffi.reactor` gives it).
unsafe fn socket_at<'a>(
    reactor: *const RefCell<Reactor>,
    token: i64,
    home: *mut c_void,
) -> Option<&'a mut TcpSocket> {
    let token = usize::try_from(token).ok()?;
    let owner = (*reactor).try_borrow().ok()?.owner(token)?;
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

/// [`Deliver`] into an [`FfiResult`].
struct Out<'a>(&'a mut FfiResult);

impl Deliver for Out<'_> {
    type Out = c_int;

    fn matched(&mut self, prefix: &[u8], matched: &[u8], pattern: Pattern) -> c_int {
        (self.0.data, self.0.len) = hand_over(|h| {
            h.extend_from_slice(prefix);
            buffer::append_match(h, matched, pattern);
        });
        DONE
    }

    fn matched_as_is(&mut self, bytes: &[u8]) -> c_int {
        // No copy: the bytes stay put until the next receive, and the Lua side makes
        // its string of them before it calls anything else here.
        (self.0.data, self.0.len) = (bytes.as_ptr(), bytes.len());
        DONE
    }

    fn failed(&mut self, err: &str, partial: &[u8]) -> c_int {
        let (start, len) = hand_over(|h| {
            h.extend_from_slice(partial);
            h.extend_from_slice(err.as_bytes());
        });
        self.0.data = start;
        self.0.len = partial.len();
        // SAFETY: the error follows the partial result in the same hand-over.
        self.0.err = unsafe { start.add(partial.len()) };
        self.0.err_len = len - partial.len();
        FAILED
    }

    fn would_block(&mut self) -> c_int {
        WOULD_BLOCK
    }

    fn misuse(&mut self, _fname: &str, _why: &str) -> c_int {
        SLOW
    }
}

/// `receive(pattern)` on socket (`token`, `home`): `pattern` is [`LINE`] or a byte count.
///
/// # Safety
/// `reactor` is `core.ffi.reactor`; `out` points to a writable [`FfiResult`].
pub unsafe extern "C" fn receive(
    reactor: *const RefCell<Reactor>,
    token: i64,
    home: *mut c_void,
    pattern: i64,
    out: *mut FfiResult,
) -> c_int {
    let pattern = match pattern {
        LINE => Pattern::Line,
        n => match usize::try_from(n) {
            Ok(n) => Pattern::Bytes(n),
            Err(_) => return SLOW,
        },
    };
    match (socket_at(reactor, token, home), out.as_mut()) {
        (Some(sock), Some(out)) => sock.receive_into(pattern, &[], &mut Out(out)),
        _ => SLOW,
    }
}

/// `send(data)` of `len` bytes at `data` on socket (`token`, `home`).
///
/// # Safety
/// As [`receive`]; `data` is valid for reads of `len` bytes.
pub unsafe extern "C" fn send(
    reactor: *const RefCell<Reactor>,
    token: i64,
    home: *mut c_void,
    data: *const u8,
    len: usize,
    out: *mut FfiResult,
) -> c_int {
    let (Some(sock), Some(out)) = (socket_at(reactor, token, home), out.as_mut()) else {
        return SLOW;
    };
    if data.is_null() {
        return SLOW;
    }
    let bytes = std::slice::from_raw_parts(data, len);
    match sock.send_range(bytes, 0, len) {
        Sent::All(done) => {
            out.len = done;
            DONE
        }
        Sent::WouldBlock(done) => {
            out.len = done;
            WOULD_BLOCK
        }
        Sent::Failed(err, done) => {
            out.len = done;
            (out.err, out.err_len) = hand_over(|h| h.extend_from_slice(err.as_bytes()));
            FAILED
        }
        Sent::NotConnected => SLOW,
    }
}
