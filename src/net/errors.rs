//! Error messages as LuaSocket spells them, and the shape of what socket methods return.
//!
//! I/O failures reach Lua as values (`nil, 'closed'`), never as raised errors. Misuse
//! (a bad argument) is reported to the Lua wrapper with the [`MISUSE`] marker and a message
//! naming the function and the argument; the wrapper raises it as a Lua string error, so
//! `pcall` callers get a plain string rather than an mlua error object.

use crate::lua::stack::{Ret, Stack};
use std::io;

/// Marker a socket method returns in place of an error string when it was misused.
pub const MISUSE: &str = "socketloop: misuse";

/// Success with a number (LuaSocket's `1`, or the index of the last byte sent).
pub fn ok(st: &Stack, n: i64) -> Ret {
    st.push_int(n);
    1
}

/// Failure: `nil, message`.
pub fn fail(st: &Stack, message: &str) -> Ret {
    st.push_nil();
    st.push_str(message);
    2
}

/// Failure with a partial result: `nil, message, partial`.
pub fn fail_with(st: &Stack, message: &str, partial: &[u8]) -> Ret {
    fail(st, message);
    st.push_bytes(partial);
    3
}

/// Failure of a send: `nil, message, index of the last byte sent`.
pub fn fail_at(st: &Stack, message: &str, sent: i64) -> Ret {
    fail(st, message);
    st.push_int(sent);
    3
}

/// Misuse: `nil, MISUSE, "bad argument #n to 'fname' (why)"`; argument 0 is the socket
/// itself, reported as Lua reports a method's bad self: `"calling 'fname' on bad self (why)"`.
pub fn misuse(st: &Stack, fname: &str, arg: usize, why: &str) -> Ret {
    let msg = if arg == 0 {
        format!("calling '{fname}' on bad self ({why})")
    } else {
        format!("bad argument #{arg} to '{fname}' ({why})")
    };
    fail(st, MISUSE);
    st.push_str(&msg);
    3
}

/// LuaSocket's message for an I/O error. Resets and broken pipes read as `'closed'`.
pub fn message(err: &io::Error) -> String {
    if let Some(code) = err.raw_os_error() {
        let known = match code {
            libc::ECONNRESET | libc::EPIPE | libc::ENOTCONN | libc::ESHUTDOWN => "closed",
            libc::ECONNREFUSED => "connection refused",
            libc::EADDRINUSE => "address already in use",
            libc::EISCONN => "already connected",
            libc::EACCES | libc::EPERM => "permission denied",
            libc::ECONNABORTED => "connection aborted",
            libc::ETIMEDOUT => "connection timed out",
            libc::EMFILE | libc::ENFILE => "too many open files",
            _ => "",
        };
        if !known.is_empty() {
            return known.to_string();
        }
    }
    if err.kind() == io::ErrorKind::WouldBlock {
        return "timeout".to_string();
    }
    lowercase_system_message(err)
}

/// `"Network is unreachable (os error 101)"` becomes `"network is unreachable"`.
fn lowercase_system_message(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown error".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_as_closed() {
        let e = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(message(&e), "closed");
        let e = io::Error::from_raw_os_error(libc::EPIPE);
        assert_eq!(message(&e), "closed");
    }

    #[test]
    fn other_errors_are_lowercase_without_code() {
        let e = io::Error::from_raw_os_error(libc::ENETUNREACH);
        assert_eq!(message(&e), "network is unreachable");
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(message(&e), "connection refused");
    }
}
