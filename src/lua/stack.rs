//! The Lua C stack, typed: how the hot bindings (socket methods, the scheduler) read their
//! arguments and push their results.
//!
//! mlua's generic calls move every argument and result through reference slots and
//! borrow the userdata through a dynamic type check: about 3,000 instructions a call,
//! more than the system call a socket method makes. Reading the stack in place costs a
//! few instructions per value. The price is that these functions are raw
//! `lua_CFunction`s: they must not raise Lua errors while Rust values that need
//! dropping are alive, so misuse is returned as values (see [`crate::net::errors`]) and the
//! Lua wrapper raises it.

use mlua::ffi::{self, lua_State};
use std::ffi::{c_int, c_void};
use std::marker::PhantomData;
use std::ptr;

/// The stack of the C function being run. Values read from it borrow from it and stay
/// valid while the function runs, since nothing here pops its arguments.
pub struct Stack<'a> {
    state: *mut lua_State,
    frame: PhantomData<&'a lua_State>,
}

/// What a C function returns: how many values it pushed.
pub type Ret = c_int;

impl<'a> Stack<'a> {
    /// # Safety
    /// `state` is the state a C function was called with, for the length of that call.
    pub unsafe fn new(state: *mut lua_State) -> Stack<'a> {
        Stack {
            state,
            frame: PhantomData,
        }
    }

    /// The raw state, for the few calls this type does not wrap.
    pub fn state(&self) -> *mut lua_State {
        self.state
    }

    /// How many arguments the function was called with.
    pub fn count(&self) -> c_int {
        // SAFETY: a valid state (Stack::new).
        unsafe { ffi::lua_gettop(self.state) }
    }

    /// True for nil and for a missing argument.
    pub fn is_nil(&self, i: c_int) -> bool {
        // SAFETY: lua_type accepts any index, answering LUA_TNONE past the top.
        unsafe { ffi::lua_type(self.state, i) <= ffi::LUA_TNIL }
    }

    pub fn is_table(&self, i: c_int) -> bool {
        // SAFETY: as is_nil.
        unsafe { ffi::lua_type(self.state, i) == ffi::LUA_TTABLE }
    }

    /// The Lua type name of argument `i` (`"no value"` when missing).
    pub fn type_name(&self, i: c_int) -> &'static str {
        // SAFETY: as is_nil; lua_typename returns a static C string for every type.
        let name = unsafe {
            std::ffi::CStr::from_ptr(ffi::lua_typename(self.state, ffi::lua_type(self.state, i)))
        };
        name.to_str().unwrap_or("?")
    }

    /// A string argument's bytes; None for any other type.
    pub fn string(&self, i: c_int) -> Option<&'a [u8]> {
        // SAFETY: as is_nil.
        if unsafe { ffi::lua_type(self.state, i) } != ffi::LUA_TSTRING {
            return None;
        }
        self.coerced_string(i)
    }

    /// A string argument, or a number turned into its string (Lua's coercion, which
    /// replaces the number on the stack); None for other types.
    pub fn coerced_string(&self, i: c_int) -> Option<&'a [u8]> {
        let mut len = 0usize;
        // SAFETY: lua_tolstring returns null for non-strings; otherwise a pointer to
        // `len` bytes owned by the string, which stays on the stack for this call.
        unsafe {
            let p = ffi::lua_tolstring(self.state, i, &mut len);
            if p.is_null() {
                return None;
            }
            Some(std::slice::from_raw_parts(p.cast::<u8>(), len))
        }
    }

    /// A number argument, or a string Lua would convert to one; None otherwise.
    pub fn number(&self, i: c_int) -> Option<f64> {
        // SAFETY: as is_nil.
        unsafe {
            if ffi::lua_isnumber(self.state, i) == 0 {
                return None;
            }
            Some(ffi::lua_tonumber(self.state, i))
        }
    }

    /// A number argument only (no string conversion).
    pub fn strict_number(&self, i: c_int) -> Option<f64> {
        // SAFETY: as is_nil.
        if unsafe { ffi::lua_type(self.state, i) } != ffi::LUA_TNUMBER {
            return None;
        }
        self.number(i)
    }

    /// A boolean argument only.
    pub fn boolean(&self, i: c_int) -> Option<bool> {
        // SAFETY: as is_nil.
        unsafe {
            if ffi::lua_type(self.state, i) != ffi::LUA_TBOOLEAN {
                return None;
            }
            Some(ffi::lua_toboolean(self.state, i) != 0)
        }
    }

    /// The address of a full userdata argument (null for other types).
    pub fn userdata(&self, i: c_int) -> *mut c_void {
        // SAFETY: as is_nil.
        unsafe { ffi::lua_touserdata(self.state, i) }
    }

    /// Whether argument `i` has the metatable at index `mt` (a userdata of that kind).
    pub fn has_metatable(&self, i: c_int, mt: c_int) -> bool {
        // SAFETY: lua_getmetatable pushes one value when it returns nonzero; popped here.
        unsafe {
            if ffi::lua_getmetatable(self.state, i) == 0 {
                return false;
            }
            let same = ffi::lua_rawequal(self.state, -1, mt) != 0;
            ffi::lua_settop(self.state, -2);
            same
        }
    }

    /// Pushes `t[key]` for the table at `i` (without metamethods) and reads it with `read`.
    pub fn field<T>(&self, i: c_int, key: &std::ffi::CStr, read: impl FnOnce(&Self) -> T) -> T {
        // SAFETY: `i` is a table (callers check); the pushed value is popped after use.
        unsafe {
            ffi::lua_pushstring_(self.state, key.as_ptr());
            ffi::lua_rawget(self.state, if i < 0 { i - 1 } else { i });
            let value = read(self);
            ffi::lua_settop(self.state, -2);
            value
        }
    }

    pub fn push_nil(&self) {
        // SAFETY: LUA_MINSTACK (20) slots are free in every C call; none pushes more.
        unsafe { ffi::lua_pushnil(self.state) }
    }

    pub fn push_bool(&self, b: bool) {
        // SAFETY: as push_nil.
        unsafe { ffi::lua_pushboolean(self.state, b as c_int) }
    }

    pub fn push_int(&self, n: i64) {
        // SAFETY: as push_nil. A double holds every integer these functions return.
        unsafe { ffi::lua_pushnumber(self.state, n as f64) }
    }

    pub fn push_num(&self, n: f64) {
        // SAFETY: as push_nil.
        unsafe { ffi::lua_pushnumber(self.state, n) }
    }

    pub fn push_bytes(&self, bytes: &[u8]) {
        let p = if bytes.is_empty() {
            ptr::NonNull::<u8>::dangling().as_ptr().cast_const()
        } else {
            bytes.as_ptr()
        };
        // SAFETY: as push_nil; lua_pushlstring copies `len` bytes from `p`.
        unsafe { ffi::lua_pushlstring_(self.state, p.cast(), bytes.len()) }
    }

    pub fn push_str(&self, s: &str) {
        self.push_bytes(s.as_bytes())
    }

    /// Pushes a new empty table.
    pub fn push_table(&self) {
        // SAFETY: as push_nil.
        unsafe { ffi::lua_createtable(self.state, 0, 0) }
    }

    /// Pops a value into field `key` of the table below it, without metamethods.
    pub fn set_field(&self, key: &std::ffi::CStr) {
        // SAFETY: a table is at -2 and the value at -1 (callers push them).
        unsafe {
            ffi::lua_pushstring_(self.state, key.as_ptr());
            ffi::lua_insert(self.state, -2);
            ffi::lua_rawset(self.state, -3);
        }
    }

    /// Pushes a copy of the value at index `i` (an upvalue index too).
    pub fn push_copy(&self, i: c_int) {
        // SAFETY: as push_nil.
        unsafe { ffi::lua_pushvalue(self.state, i) }
    }

    /// Sets `t[n] = number` for the table at `i`, without metamethods.
    pub fn set_index(&self, i: c_int, n: usize, value: f64) {
        // SAFETY: `i` is a table (callers check); the pushed number is consumed.
        unsafe {
            ffi::lua_pushnumber(self.state, value);
            ffi::lua_rawseti_(self.state, if i < 0 { i - 1 } else { i }, n as c_int);
        }
    }
}

/// Pushes a new full userdata holding `value`, with the metatable at index `mt` (which
/// must have a `__gc` that calls [`drop_userdata::<T>`]). Returns where `value` lives.
pub fn push_userdata<T>(st: &Stack, value: T, mt: c_int) -> *mut Option<T> {
    const { assert!(std::mem::align_of::<Option<T>>() <= 8) };
    let mt = if mt < 0 && mt > ffi::LUA_REGISTRYINDEX {
        mt - 1
    } else {
        mt
    };
    // SAFETY: LuaJIT aligns userdata memory to 8 bytes (checked above against T); the
    // memory is initialised before anything can see it; the metatable is set at once.
    unsafe {
        let p =
            ffi::lua_newuserdata(st.state(), std::mem::size_of::<Option<T>>()).cast::<Option<T>>();
        ptr::write(p, Some(value));
        ffi::lua_pushvalue(st.state(), mt);
        ffi::lua_setmetatable(st.state(), -2);
        p
    }
}

/// Pushes a new full userdata owning `value`, with a metatable of its own whose `__gc`
/// drops it: for values the Lua side only holds (as an upvalue, say) and never calls
/// methods on.
pub fn push_owned<T>(st: &Stack, value: T) {
    st.push_table();
    // SAFETY: the table pushed above is on top; the closure and the userdata are pushed
    // and consumed as set_field and push_userdata document.
    unsafe { ffi::lua_pushcclosure(st.state(), drop_userdata::<T>, 0) };
    st.set_field(c"__gc");
    push_userdata(st, value, -1);
    // SAFETY: the metatable is just below the userdata.
    unsafe { ffi::lua_remove(st.state(), -2) };
}

/// The value in a userdata made by [`push_userdata`]; None once it was collected (a
/// finalizer can still reach it).
///
/// # Safety
/// `p` is the address of a userdata made by `push_userdata::<T>`, still on the stack.
pub unsafe fn userdata_value<'a, T>(p: *mut c_void) -> Option<&'a mut T> {
    (*p.cast::<Option<T>>()).as_mut()
}

/// `__gc` for userdata made by [`push_userdata`]: drops the value, once. A panic in the
/// drop is contained (the value is then leaked, never dropped twice).
///
/// # Safety
/// Only set as the `__gc` of a metatable whose userdata hold `Option<T>`.
pub unsafe extern "C-unwind" fn drop_userdata<T>(state: *mut lua_State) -> c_int {
    let p = ffi::lua_touserdata(state, 1).cast::<Option<T>>();
    if !p.is_null() {
        let value = (*p).take();
        let _ = crate::lua::reply::guarded(move || drop(value));
    }
    0
}
