//! Error messages as LuaSocket spells them, and the shape of what socket methods return.
//!
//! I/O failures reach Lua as values (`nil, 'closed'`), never as raised errors. Misuse
//! (a bad argument) is reported to the Lua wrapper with the [`MISUSE`] marker and a message
//! naming the function and the argument; the wrapper raises it as a Lua string error, so
//! `pcall` callers get a plain string rather than an mlua error object.

use mlua::{IntoLua, Lua, Value};
use std::io;

/// Marker a socket method returns in place of an error string when it was misused.
pub const MISUSE: &str = "socketloop: misuse";

/// What socket I/O methods return: up to three values, as LuaSocket does.
pub type Reply = (Value, Value, Value);

/// Success with one value.
pub fn ok(lua: &Lua, value: impl IntoLua) -> mlua::Result<Reply> {
    Ok((value.into_lua(lua)?, Value::Nil, Value::Nil))
}

/// Failure: `nil, message[, partial]`.
pub fn fail(lua: &Lua, message: &str, partial: Value) -> mlua::Result<Reply> {
    Ok((Value::Nil, message.into_lua(lua)?, partial))
}

/// Misuse: `nil, MISUSE, "bad argument #n to 'fname' (why)"`; argument 0 is the socket
/// itself, reported as Lua reports a method's bad self: `"calling 'fname' on bad self (why)"`.
pub fn misuse(lua: &Lua, fname: &str, arg: usize, why: &str) -> mlua::Result<Reply> {
    let msg = if arg == 0 {
        format!("calling '{fname}' on bad self ({why})")
    } else {
        format!("bad argument #{arg} to '{fname}' ({why})")
    };
    Ok((Value::Nil, MISUSE.into_lua(lua)?, msg.into_lua(lua)?))
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
