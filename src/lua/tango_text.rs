//! `core.tango_parse`: the binding of tango's text parser ([`crate::codec::tango_text`]).
//!
//! Two steps, so that no Lua error unwinds through Rust state: the text is parsed into
//! an owned [`Tree`] under [`guarded`] (pure Rust: a panic becomes a Lua error, nothing
//! touches Lua), then the tree is pushed by a C function run under `lua_pcall`. Any push
//! may run the collector and so any finalizer, which may raise (out of memory, or a
//! finalizer error on stock LuaJIT 2.1.0-beta3); such an error unwinds only through the
//! pushing frames, which hold nothing but a shared borrow of the tree, and is raised
//! again once the tree is put away. A finalizer may call `tango_parse` again meanwhile:
//! each call has its own tree.

use crate::codec::tango_text::{self, message_at, Node, Tree};
use crate::lua::reply::guarded;
use crate::lua::stack::{Ret, Stack};
use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua, Table};
use std::cell::Cell;
use std::ffi::{c_int, c_void};

thread_local! {
    /// A tree whose buffers the next call reuses (a call made by a finalizer while
    /// another pushes finds it taken and starts an empty one).
    static SPARE: Cell<Tree> = Cell::new(Tree::default());
}

/// Trees with more nodes than this are dropped after use rather than kept as the spare.
const SPARE_NODES_MAX: usize = 4096;

/// Keeps `tree`'s buffers for the next call, if they are small.
fn give_back(mut tree: Tree) {
    if tree.nodes.capacity() <= SPARE_NODES_MAX && tree.decoded.capacity() <= 16 * SPARE_NODES_MAX {
        tree.clear();
        SPARE.with(|spare| spare.set(tree));
    }
}

/// Sets `core.tango_parse(text, maxdepth) -> true, value | false, message`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    // SAFETY: pushes the pushing function, then a closure holding it as upvalue 1.
    let parse: Function = unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_pushcclosure(state, push_tree, 0);
            ffi::lua_pushcclosure(state, tango_parse, 1);
        })
    }?;
    core.set("tango_parse", parse)
}

/// What [`push_tree`] pushes: a tree and the text its ranges point into.
struct Job<'a> {
    tree: &'a Tree,
    text: &'a [u8],
}

unsafe extern "C-unwind" fn tango_parse(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(text) = st.string(1) else {
        let why = format!("cannot parse a {}, string expected", st.type_name(1));
        return refuse(&st, why.as_bytes());
    };
    let maxdepth = st.strict_number(2).unwrap_or(100.0);
    let mut tree = SPARE.with(Cell::take);
    let parsed = match guarded(|| tango_text::parse_into(text, maxdepth, &mut tree)) {
        Ok(parsed) => parsed,
        Err(panic) => Err(format!("socketloop: internal error: {panic}").into_bytes()),
    };
    if let Err(why) = parsed {
        give_back(tree);
        return refuse(&st, &why);
    }
    // Room for a table and a key at each level, and the value; checked once here so the
    // pushing recursion needs no check.
    let slots = (tree.depth as usize).saturating_mul(2).saturating_add(4);
    if ffi::lua_checkstack(state, c_int::try_from(slots).unwrap_or(c_int::MAX)) == 0 {
        let why = message_at(tree.deepest_at, b"tables nested too deep for the Lua stack");
        give_back(tree);
        return refuse(&st, &why);
    }
    let job = Job { tree: &tree, text };
    // Pushing the function and a light userdata allocates nothing; the pcall catches any
    // error raised while the value is built.
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
    ffi::lua_pushlightuserdata(state, (&raw const job).cast_mut().cast::<c_void>());
    let status = ffi::lua_pcall(state, 1, 1, 0);
    give_back(tree);
    if status != ffi::LUA_OK {
        // The error value is on top; nothing Rust owns is left in this frame.
        ffi::lua_error(state);
    }
    st.push_bool(true);
    ffi::lua_insert(state, -2);
    2
}

fn refuse(st: &Stack, why: &[u8]) -> Ret {
    st.push_bool(false);
    st.push_bytes(why);
    2
}

/// Run under `lua_pcall` by [`tango_parse`] with a [`Job`] as light userdata: pushes its
/// value. Raises only what a push raises.
unsafe extern "C-unwind" fn push_tree(state: *mut lua_State) -> c_int {
    let job = ffi::lua_touserdata(state, 1).cast::<Job>().cast_const();
    // SAFETY: tango_parse passes a Job that outlives this call (it waits for the pcall).
    let Some(job) = job.as_ref() else { return 0 };
    let st = Stack::new(state);
    push_value(&st, job, 0);
    1
}

/// Pushes the value whose node is at `at`; returns where the next value starts. Every
/// range and entry count in the tree was made by the parser and is valid; an
/// inconsistent tree would push nils rather than panic.
fn push_value(st: &Stack, job: &Job, at: usize) -> usize {
    let Some(&node) = job.tree.nodes.get(at) else {
        st.push_nil();
        return at;
    };
    let next = at + 1;
    match node {
        Node::Nil | Node::Named(..) | Node::Keyed => st.push_nil(),
        Node::Bool(b) => st.push_bool(b),
        Node::Num(x) => st.push_num(x),
        Node::Text(from, to) => push_range(st, job.text, from, to),
        Node::Decoded(from, to) => push_range(st, &job.tree.decoded, from, to),
        Node::Table { items, fields } => return push_table(st, job, next, items, fields),
    }
    next
}

fn push_range(st: &Stack, bytes: &[u8], from: u32, to: u32) {
    st.push_bytes(bytes.get(from as usize..to as usize).unwrap_or(&[]));
}

/// Pushes a table whose `items + fields` entries start at node `at`; returns where the
/// next value starts.
fn push_table(st: &Stack, job: &Job, mut at: usize, items: u32, fields: u32) -> usize {
    let hint = |n: u32| c_int::try_from(n).unwrap_or(c_int::MAX);
    // SAFETY: tango_parse checked the stack has room for a table and a key per level.
    unsafe { ffi::lua_createtable(st.state(), hint(items), hint(fields)) };
    let mut index = 0u32;
    for _ in 0..u64::from(items) + u64::from(fields) {
        match job.tree.nodes.get(at) {
            Some(&Node::Named(from, to)) => {
                push_range(st, job.text, from, to);
                at = push_value(st, job, at + 1);
            }
            Some(Node::Keyed) => {
                at = push_value(st, job, at + 1);
                at = push_value(st, job, at);
            }
            _ => {
                index += 1;
                st.push_num(f64::from(index));
                at = push_value(st, job, at);
            }
        }
        // SAFETY: the table is at -3, a key at -2 and a value at -1 (a nil or NaN key,
        // which the parser refuses, would raise inside the pcall).
        unsafe { ffi::lua_rawset(st.state(), -3) };
    }
    at
}
