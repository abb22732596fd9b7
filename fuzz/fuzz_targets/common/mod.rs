//! What the Lua-using targets share: the static LuaJIT link, one Lua state per process,
//! and deep equality of Lua values as Lua code sees them.
#![allow(dead_code)] // not every target uses every helper

use mlua::{Lua, Table, Value};

// The main crate builds LuaJIT (build.rs) and adds its directory to the link search
// path; mlua's "module" feature links no Lua, so the targets link it here.
#[link(name = "luajit", kind = "static", modifiers = "-bundle")]
extern "C" {}

thread_local! {
    static LUA: Lua = Lua::new();
    static RUNS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Runs `f` with the process's Lua state, collecting garbage now and then so that
/// memory stays flat over millions of inputs.
pub fn with_lua<R>(f: impl FnOnce(&Lua) -> R) -> R {
    LUA.with(|lua| {
        let r = f(lua);
        RUNS.with(|n| {
            n.set(n.get() + 1);
            if n.get() % 1024 == 0 {
                lua.gc_collect().expect("gc");
            }
        });
        r
    })
}

/// The table stored in the Lua registry under `name`, made by `make` on first use: what
/// a target builds once (modules loaded, harnesses) lives as long as the Lua state.
pub fn cached(lua: &Lua, name: &str, make: impl FnOnce() -> Table) -> Table {
    if let Some(t) = lua
        .named_registry_value::<Option<Table>>(name)
        .expect("registry")
    {
        return t;
    }
    let t = make();
    lua.set_named_registry_value(name, &t).expect("registry");
    t
}

/// A number as Lua holds it (LuaJIT has doubles only), NaNs made one, and -0 made 0
/// unless `zero_sign`.
fn num(v: &Value, zero_sign: bool) -> Option<u64> {
    let x = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        _ => return None,
    };
    Some(if x.is_nan() {
        f64::NAN.to_bits()
    } else if x == 0.0 && !zero_sign {
        0
    } else {
        x.to_bits()
    })
}

/// Deep equality: numbers by value (sign of zero included, NaN equal to NaN), strings
/// by bytes, tables by contents (a table key matches an equal table key of the other).
pub fn same(a: &Value, b: &Value) -> bool {
    deep_equal(a, b, true)
}

/// `same`, with 0 equal to -0: for formats that do not keep the sign of zero (tango's
/// text writes -0 as 0, as tango 0.2 does).
pub fn same_but_zero_sign(a: &Value, b: &Value) -> bool {
    deep_equal(a, b, false)
}

fn deep_equal(a: &Value, b: &Value, zero_sign: bool) -> bool {
    let same = |a: &Value, b: &Value| deep_equal(a, b, zero_sign);
    if let (Some(x), Some(y)) = (num(a, zero_sign), num(b, zero_sign)) {
        return x == y;
    }
    match (a, b) {
        (Value::Nil, Value::Nil) => true,
        (Value::Boolean(x), Value::Boolean(y)) => x == y,
        (Value::String(x), Value::String(y)) => x.as_bytes() == y.as_bytes(),
        (Value::Table(x), Value::Table(y)) => {
            let pa: Vec<(Value, Value)> = x.pairs().map(|p| p.expect("pair")).collect();
            let pb: Vec<(Value, Value)> = y.pairs().map(|p| p.expect("pair")).collect();
            pa.len() == pb.len()
                && pa.iter().all(|(k, v)| match k {
                    Value::Table(_) => pb.iter().any(|(k2, v2)| same(k, k2) && same(v, v2)),
                    _ => same(v, &y.raw_get::<Value>(k.clone()).expect("raw_get")),
                })
        }
        _ => false,
    }
}

/// `same` over two lists.
pub fn same_list(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
}

/// Makes a `socketloop.core` table (filled by `register`) what `require'socketloop.core'`
/// returns, for the Lua modules a target loads.
pub fn install_core(lua: &Lua, register: impl FnOnce(&Lua, &mlua::Table) -> mlua::Result<()>) {
    let core = lua.create_table().expect("table");
    register(lua, &core).expect("register");
    let loaded: mlua::Table = lua
        .globals()
        .get::<mlua::Table>("package")
        .and_then(|p| p.get("loaded"))
        .expect("package.loaded");
    loaded.set("socketloop.core", core).expect("set");
}
