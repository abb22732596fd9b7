//! What a raw binding answers, and the two rules every raw `lua_CFunction` and FFI entry
//! here follows (see docs/architecture.md, "Re-entrancy and panics"):
//!
//! - **Collect, then push.** A binding does its Rust work first, producing a [`Reply`]
//!   that owns everything it will push, and pushes only after every borrow (a `RefCell`,
//!   a `&mut` into a socket, a pointer into a buffer) has ended. Any push may allocate,
//!   run the collector and so any `__gc` finalizer, which may call any binding again,
//!   close any socket, or raise (stock LuaJIT 2.1.0-beta3 propagates finalizer errors).
//! - **No panic crosses into Lua.** The Rust work runs under [`guarded`], which turns a
//!   panic into [`Reply::Internal`], raised as a Lua error once nothing is borrowed. The
//!   guarded work must not call the Lua API (a Lua error is a foreign exception, which
//!   `catch_unwind` cannot catch).

use crate::lua::stack::{Ret, Stack};
use crate::net::errors::Failure;
use mlua::ffi;
use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Marker a socket method returns in place of an error string when it was misused; the
/// Lua wrapper raises the message that follows it.
pub const MISUSE: &str = "socketloop: misuse";

/// Runs Rust work that must not unwind into Lua; a panic becomes its message.
pub fn guarded<T>(work: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(work)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    })
}

/// The answer of a socket method, owned, pushed once the work is done.
pub enum Reply {
    /// Pushes nothing.
    Nothing,
    /// A number (LuaSocket's `1`, an index, a count).
    Int(i64),
    /// A number that may have a fraction.
    Num(f64),
    Bool(bool),
    /// A string.
    Bytes(Vec<u8>),
    /// Several numbers.
    Nums(Vec<f64>),
    /// `address, port, family`.
    Address(String, u16, &'static str),
    /// `nil, message`.
    Fail(Cow<'static, str>),
    /// `nil, message, partial result`.
    FailWith(Cow<'static, str>, Vec<u8>),
    /// `nil, message, index of the last byte sent`.
    FailAt(Cow<'static, str>, i64),
    /// `nil, MISUSE, "bad argument #n to 'fname' (why)"` (the Lua wrapper raises it).
    Misuse(String),
    /// A panic in the Rust work: raised as a Lua error.
    Internal(String),
}

impl Reply {
    /// Misuse of argument `arg` of method `fname` (0: `self`, as Lua words a method's bad
    /// self).
    pub fn misuse(fname: &str, arg: usize, why: &str) -> Reply {
        Reply::Misuse(misuse_message(fname, arg, why))
    }

    /// The reply for a failed operation of method `fname`.
    pub fn failure(fname: &str, failure: Failure) -> Reply {
        match failure {
            Failure::Io(message) => Reply::Fail(message),
            Failure::Misuse { arg, why } => Reply::misuse(fname, arg, &why),
        }
    }

    /// Pushes the reply; returns how many values it pushed. Raises for
    /// [`Reply::Internal`]. May run finalizers (any push may allocate).
    pub fn push(self, st: &Stack) -> Ret {
        match self {
            Reply::Nothing => 0,
            Reply::Int(n) => {
                st.push_int(n);
                1
            }
            Reply::Num(n) => {
                st.push_num(n);
                1
            }
            Reply::Bool(b) => {
                st.push_bool(b);
                1
            }
            Reply::Bytes(bytes) => {
                st.push_bytes(&bytes);
                1
            }
            Reply::Nums(nums) => {
                for &n in &nums {
                    st.push_num(n);
                }
                nums.len() as Ret
            }
            Reply::Address(ip, port, family) => {
                st.push_str(&ip);
                st.push_int(port as i64);
                st.push_str(family);
                3
            }
            Reply::Fail(message) => {
                st.push_nil();
                st.push_str(&message);
                2
            }
            Reply::FailWith(message, partial) => {
                st.push_nil();
                st.push_str(&message);
                st.push_bytes(&partial);
                3
            }
            Reply::FailAt(message, index) => {
                st.push_nil();
                st.push_str(&message);
                st.push_int(index);
                3
            }
            Reply::Misuse(message) => {
                st.push_nil();
                st.push_str(MISUSE);
                st.push_str(&message);
                3
            }
            Reply::Internal(message) => {
                // SAFETY: `raise` never returns; the message was moved into it.
                unsafe { raise(st, &format!("socketloop: internal error: {message}")) }
            }
        }
    }
}

/// `"bad argument #n to 'fname' (why)"`, or for argument 0 (the socket itself) the way
/// Lua reports a method's bad self: `"calling 'fname' on bad self (why)"`.
pub fn misuse_message(fname: &str, arg: usize, why: &str) -> String {
    if arg == 0 {
        format!("calling '{fname}' on bad self ({why})")
    } else {
        format!("bad argument #{arg} to '{fname}' ({why})")
    }
}

/// Raises `message` as a Lua error.
///
/// # Safety
/// From a C function called by Lua, with nothing borrowed that the unwinding would leave
/// inconsistent.
pub unsafe fn raise(st: &Stack, message: &str) -> ! {
    st.push_str(message);
    ffi::lua_error(st.state())
}

/// One of the C functions in a socket type's method table.
pub type Method = unsafe extern "C-unwind" fn(*mut mlua::ffi::lua_State) -> std::ffi::c_int;

/// `method_table! { "name" => function, ... }` defines `METHODS`, the method table of a
/// socket type as `(C name, function)` pairs.
macro_rules! method_table {
    ($($name:literal => $fn:ident),* $(,)?) => {
        const METHODS: &[(&::std::ffi::CStr, $crate::lua::reply::Method)] = &[$((
            // SAFETY: the literal has no NUL inside, and one is appended.
            unsafe { ::std::ffi::CStr::from_bytes_with_nul_unchecked(concat!($name, "\0").as_bytes()) },
            $fn,
        )),*];
    };
}
pub(crate) use method_table;
