//! Error messages as LuaSocket spells them, and how socket operations fail.
//!
//! I/O failures are values for Lua (`nil, 'closed'`); misuse (a bad argument, a call the
//! socket's state does not allow) is a [`Failure::Misuse`], which the binding layer turns
//! into a Lua error naming the function and the argument. Nothing here touches Lua.

use std::borrow::Cow;
use std::io;

/// How a socket operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An I/O outcome Lua sees as `nil, message` (`'closed'`, `'wantread'`, ...).
    Io(Cow<'static, str>),
    /// A bad argument (`arg` counts from 1 after `self`; 0 is `self`, the socket's state).
    Misuse { arg: usize, why: Cow<'static, str> },
}

impl Failure {
    /// An I/O failure with a fixed message.
    pub const fn io(message: &'static str) -> Failure {
        Failure::Io(Cow::Borrowed(message))
    }

    /// An I/O failure from an OS error (see [`message`]).
    pub fn os(err: &io::Error) -> Failure {
        Failure::Io(Cow::Owned(message(err)))
    }

    /// Misuse of argument `arg` (0: the socket itself).
    pub fn misuse(arg: usize, why: impl Into<Cow<'static, str>>) -> Failure {
        Failure::Misuse {
            arg,
            why: why.into(),
        }
    }
}

impl From<io::Error> for Failure {
    fn from(err: io::Error) -> Failure {
        Failure::os(&err)
    }
}

/// What a socket operation returns.
pub type Outcome<T> = Result<T, Failure>;

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
