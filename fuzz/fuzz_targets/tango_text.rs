//! Fuzzes the tango text parser (src/codec/tango_text.rs, behind `unserialize` in
//! lua/socketloop/tango/text.lua), which reads the constructor text a tango peer sends,
//! in LuaJIT in-process; the Rust parser's coverage and the Lua module's lines
//! (lua_cover) guide libFuzzer.
//!
//! The input as text into `unserialize`: it raises nothing but its own
//! `cannot parse byte N: ...` errors; while it parses, no global is read that is not
//! there or written, and load/loadstring/dofile/loadfile/require/setfenv/rawset are not
//! called (it must never run what it reads). What it accepts, stock LuaJIT's
//! `loadstring` reads as the same value (the text is a Lua literal; unless a key may be
//! assigned twice in one constructor, whose order Lua leaves undefined), and it serializes
//! and parses back equal. Round trip: a value built from the input's bytes (nil,
//! booleans, any double, byte strings, tables with any keys, nested) serializes, parses
//! back equal, and `loadstring` of the text (what a tango 0.2 peer does) gives it too.
#![no_main]

mod common;
mod lua_cover;

use common::{cached, install_core, same, same_but_zero_sign, with_lua};
use libfuzzer_sys::fuzz_target;
use mlua::{Function, Lua, MultiValue, Table, Value};

const MAX_DEPTH: usize = 6;

// Runs in the fuzz process's Lua state before the parser is loaded, so that any copy
// of a global the parser keeps is a tripwire too.
const HARNESS: &str = r#"
local load_module = ...
local real_rawset, real_loadstring, real_setfenv, real_pcall = rawset, loadstring, setfenv, pcall
local parsing, tripped = false, nil
local function trip(what)
	if parsing and not tripped then tripped = what end
end
for _, name in ipairs{'load', 'loadstring', 'dofile', 'loadfile', 'require', 'setfenv', 'rawset'} do
	local real = _G[name]
	_G[name] = function(...)
		trip(name)
		return real(...)
	end
end
local T = load_module()
setmetatable(_G, {
	__index = function(_, k) trip('read ' .. tostring(k)) end,
	__newindex = function(t, k, v)
		trip('write ' .. tostring(k))
		real_rawset(t, k, v)
	end,
})
local unserialize = T.unserialize
return {
	serialize = T.serialize,
	unserialize = unserialize,
	-- ok, value or error, and what the parser touched (nil: nothing)
	parse = function(text)
		parsing, tripped = true, nil
		local ok, v = real_pcall(unserialize, text)
		parsing = false
		return ok, v, tripped
	end,
	-- What a tango 0.2 peer reads: ok, value.
	peer = function(text)
		local f, err = real_loadstring('return ' .. text, '=peer')
		if not f then return false, err end
		real_setfenv(f, {inf = 1 / 0, nan = 0 / 0})
		return real_pcall(f)
	end,
	-- Whether a constructor in `text` may assign one key twice: a name given twice, or
	-- any [key]= (which may repeat a name or a position). Lua leaves the order of such
	-- assignments undefined (LuaJIT stores constant ones first), so loadstring's value
	-- is no reference then. Conservative: it may also say so of other texts.
	may_repeat_keys = function(text)
		if text:find('%]%s*=') then return true end
		local seen = {}
		for name in text:gmatch('([%a_][%w_]*)%s*=') do
			if seen[name] then return true end
			seen[name] = true
		end
		return false
	end,
}
"#;

fuzz_target!(|data: &[u8]| {
    with_lua(|lua| {
        lua_cover::begin();
        let h = harness(lua);
        on_text(lua, &h, data);
        roundtrip(lua, &h, data);
    });
});

fn harness(lua: &Lua) -> Table {
    cached(lua, "fuzz tango", || {
        lua_cover::install(lua);
        install_core(lua, socketloop::lua::tango_text::register);
        let module = lua
            .load(include_str!("../../lua/socketloop/tango/text.lua"))
            .set_name("@lua/socketloop/tango/text.lua")
            .into_function()
            .expect("tango_text.lua compiles");
        lua.load(HARNESS)
            .set_name("=fuzz harness")
            .call(module)
            .expect("harness")
    })
}

fn call(h: &Table, name: &str, arg: impl mlua::IntoLuaMulti) -> Vec<Value> {
    let f: Function = h.get(name).expect("harness function");
    let out: MultiValue = f
        .call(arg)
        .unwrap_or_else(|e| panic!("harness {name}: {e}"));
    out.into_iter().collect()
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.to_string_lossy(),
        other => format!("{other:?}"),
    }
}

fn is_parse_error(v: &Value) -> bool {
    let Value::String(s) = v else { return false };
    let s = s.as_bytes();
    let Some(rest) = s.strip_prefix(b"cannot parse byte ".as_slice()) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[digits..].starts_with(b": ")
}

fn on_text(lua: &Lua, h: &Table, data: &[u8]) {
    let text = lua.create_string(data).expect("string");
    let out = call(h, "parse", text.clone());
    if let Some(what) = out.get(2).filter(|v| !v.is_nil()) {
        panic!("the parser touched {}", text_of(what));
    }
    let v = &out[1];
    if out[0] != Value::Boolean(true) {
        assert!(is_parse_error(v), "not a parse error: {}", text_of(v));
        return;
    }
    let peer = call(h, "peer", text.clone());
    assert!(
        peer[0] == Value::Boolean(true),
        "accepted, but loadstring refuses it: {}",
        text_of(&peer[1])
    );
    let ambiguous = call(h, "may_repeat_keys", text.clone())[0] == Value::Boolean(true);
    assert!(
        ambiguous || same(&peer[1], v),
        "loadstring reads another value"
    );
    let again = call(h, "serialize", v.clone());
    let back = call(h, "unserialize", again[0].clone());
    assert!(
        same_but_zero_sign(&back[0], v),
        "{} parses back to another value",
        text_of(&again[0])
    );
}

/// The input's bytes, taken from the front; zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}

/// A value the input's bytes describe: the low 3 bits of a tag byte choose the type.
fn build(lua: &Lua, b: &mut Bytes, depth: usize) -> Value {
    let tag = b.next();
    match tag % 8 {
        1 => Value::Boolean(tag & 8 != 0),
        2 => {
            let mut bits = [0; 8];
            let taken = b.take(8);
            bits[..taken.len()].copy_from_slice(taken);
            Value::Number(f64::from_le_bytes(bits))
        }
        3 => Value::Integer(i64::from(tag >> 3) - 16),
        4 | 5 => {
            let len = b.next() as usize % 40;
            Value::String(lua.create_string(b.take(len)).expect("string"))
        }
        6 | 7 if depth < MAX_DEPTH => {
            let t = lua.create_table().expect("table");
            for i in 1..=(tag >> 3) % 8 {
                t.raw_set(i, build(lua, b, depth + 1)).expect("set");
            }
            for _ in 0..b.next() % 4 {
                let k = build(lua, b, depth + 1);
                let v = build(lua, b, depth + 1);
                // Lua tables take neither nil nor NaN as a key.
                let nan = matches!(k, Value::Number(x) if x.is_nan());
                if !k.is_nil() && !nan {
                    t.raw_set(k, v).expect("set");
                }
            }
            Value::Table(t)
        }
        _ => Value::Nil,
    }
}

fn roundtrip(lua: &Lua, h: &Table, data: &[u8]) {
    let v = build(lua, &mut Bytes(data), 0);
    let text = call(h, "serialize", v.clone()).remove(0);
    let back = call(h, "parse", text.clone());
    assert!(
        back[0] == Value::Boolean(true),
        "{} does not parse back: {}",
        text_of(&text),
        text_of(&back[1])
    );
    assert!(
        same_but_zero_sign(&back[1], &v),
        "{} parses back to another value",
        text_of(&text)
    );
    let peer = call(h, "peer", text.clone());
    assert!(
        peer[0] == Value::Boolean(true) && same_but_zero_sign(&peer[1], &v),
        "loadstring of {} gives another value",
        text_of(&text)
    );
}
