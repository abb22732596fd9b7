//! Lua line coverage for libFuzzer. Its instrumentation sees only compiled code, so
//! for a decoder written in Lua it would see the interpreter, not the decoder's
//! branches. A line hook turns each step from one line of the decoder to the next into
//! a counter in the `__libfuzzer_extra_counters` section, which libFuzzer on Linux
//! reads as coverage features, clearing it before each input.

use mlua::ffi::{self, lua_Debug, lua_State};
use mlua::Lua;
use std::ffi::CStr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

const COUNTERS: usize = 1 << 14;

// libFuzzer finds the array through the linker's __start_/__stop_ symbols of the
// section; `used` keeps the linker from dropping a static nothing names.
#[used]
#[link_section = "__libfuzzer_extra_counters"]
static EXTRA_COUNTERS: [AtomicU8; COUNTERS] = [const { AtomicU8::new(0) }; COUNTERS];

/// The last line counted, pre-shifted (AFL's edge scheme: the counter of a step is
/// `from >> 1 ^ to`, so a → b and b → a differ).
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
/// The chunk name last seen and whether it is covered: a hook asks for the source of
/// every line, and comparing names each time would cost more than the counting.
static LAST_SOURCE: AtomicUsize = AtomicUsize::new(0);
static LAST_COVERED: AtomicUsize = AtomicUsize::new(0);

/// Chunk names of the code whose lines count (the modules under test, loaded as
/// `@lua/socketloop/<file>.lua`); the fuzz harness's own Lua stays out of the figures.
const COVERED: &[u8] = b"@lua/socketloop/";

unsafe extern "C-unwind" fn line_hook(state: *mut lua_State, ar: *mut lua_Debug) {
    if ffi::lua_getinfo(state, c"S".as_ptr(), ar) == 0 {
        return;
    }
    let source = (*ar).source as usize;
    let covered = if source == LAST_SOURCE.load(Relaxed) {
        LAST_COVERED.load(Relaxed) != 0
    } else {
        let covered =
            !(*ar).source.is_null() && CStr::from_ptr((*ar).source).to_bytes().starts_with(COVERED);
        LAST_SOURCE.store(source, Relaxed);
        LAST_COVERED.store(covered as usize, Relaxed);
        covered
    };
    if !covered {
        return;
    }
    // Chunk names are interned strings that live as long as the module, so the
    // pointer tells files apart.
    let here = ((source >> 4)
        .wrapping_mul(0x9E37_79B9)
        .wrapping_add((*ar).currentline as usize)
        .wrapping_mul(0x85EB_CA6B)
        >> 7)
        % COUNTERS;
    let slot = &EXTRA_COUNTERS[here ^ PREVIOUS.load(Relaxed)];
    slot.store(slot.load(Relaxed).wrapping_add(1), Relaxed);
    PREVIOUS.store(here >> 1, Relaxed);
}

/// Installs the line hook on `lua` and turns the JIT off: compiled traces call no
/// hooks, so a hot decoder would drop out of the coverage.
pub fn install(lua: &Lua) {
    lua.load("jit.off() jit.flush()")
        .exec()
        .expect("jit library");
    // SAFETY: the state is live for the call; the hook only reads the debug record
    // LuaJIT hands it and touches the atomics above.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_sethook(state, Some(line_hook), ffi::LUA_MASKLINE, 0);
        })
        .expect("set the hook");
    }
}

/// Starts an input's path afresh, so its first step does not depend on the last input.
pub fn begin() {
    PREVIOUS.store(0, Relaxed);
}
