//! Fuzzes the HTTP client's parsers of server bytes (src/codec/http_head.rs): the response
//! head, the header fields of a chunked trailer and the chunk-size line, the last two
//! through the Lua functions `http_wire.lua` calls.
//!
//! On arbitrary bytes: no panic, no raised error; a parsed head or field block takes
//! no more than the buffer, parses the same from exactly its own bytes, and none of
//! its prefixes is malformed (the client parses a growing buffer, so a prefix of a
//! good head must say 'partial'). Round trips: a head built from values the input
//! chooses (status, reason, fields) parses back to those values, and a chunk size
//! written in hex parses back to that size.
#![no_main]

mod common;

use common::{cached, with_lua};
use libfuzzer_sys::fuzz_target;
use mlua::{Function, Lua, MultiValue, Table, Value};
use socketloop::codec::http_head::{self, parse_header_fields, Parsed};

fuzz_target!(|data: &[u8]| {
    with_lua(|lua| check(lua, data));
});

fn check(lua: &Lua, data: &[u8]) {
    head_on_bytes(lua, data);
    fields_on_bytes(lua, data);
    chunk_size_on_bytes(lua, data);
    head_roundtrip(lua, data);
}

/// What `core.parse_response_head` answered, as Rust values.
struct Head {
    code: u16,
    reason: String,
    fields: Table,
    len: usize,
    minor: u8,
}

/// What the head parser answered.
enum HeadAnswer {
    Done(Head),
    Partial,
    Malformed(String),
}

/// Calls `core.parse_response_head` (the raw C function http_wire.lua calls) on `buf`.
fn parse_response_head(lua: &Lua, buf: &[u8]) -> mlua::Result<HeadAnswer> {
    let out = call(lua, "parse_response_head", buf);
    if out[0].is_nil() {
        let why = out[1].as_string().expect("a message").to_string_lossy();
        return Ok(if why == "partial" {
            HeadAnswer::Partial
        } else {
            HeadAnswer::Malformed(why)
        });
    }
    let whole = |v: &Value, what: &str| number(v).unwrap_or_else(|| panic!("{what}: {v:?}"));
    Ok(HeadAnswer::Done(Head {
        code: whole(&out[0], "code") as u16,
        reason: out[1].as_string().expect("a reason").to_string_lossy(),
        fields: out[2].as_table().expect("a field table").clone(),
        len: whole(&out[3], "length") as usize,
        minor: whole(&out[4], "minor") as u8,
    }))
}

fn head_on_bytes(lua: &Lua, data: &[u8]) {
    let HeadAnswer::Done(h) = parse_response_head(lua, data).expect("no Lua error") else {
        return;
    };
    assert!(h.len <= data.len() && h.len > 0);
    match parse_response_head(lua, &data[..h.len]).expect("no Lua error") {
        HeadAnswer::Done(h2) => {
            assert_eq!((h2.code, h2.minor, h2.len), (h.code, h.minor, h.len));
            assert_eq!(h2.reason, h.reason);
        }
        _ => panic!("a head does not parse from its own bytes"),
    }
    // Every prefix (the first 512 of them, to stay fast) must wait for more bytes.
    for k in 0..h.len.min(512) {
        if let HeadAnswer::Malformed(why) =
            parse_response_head(lua, &data[..k]).expect("no Lua error")
        {
            panic!("prefix of {k} bytes of a good head is malformed ({why})");
        }
    }
}

fn fields_on_bytes(lua: &Lua, data: &[u8]) {
    if let Parsed::Done((_, len)) = parse_header_fields(lua, data).expect("no Lua error") {
        assert!(len <= data.len() && len > 0);
        assert!(matches!(
            parse_header_fields(lua, &data[..len]).expect("no Lua error"),
            Parsed::Done((_, l)) if l == len
        ));
    }
}

/// The Lua functions, as http_wire.lua calls them: values, or `nil, why`; never an error.
fn core(lua: &Lua) -> Table {
    cached(lua, "fuzz core", || {
        let core = lua.create_table().expect("table");
        http_head::register(lua, &core).expect("register");
        core
    })
}

fn call(lua: &Lua, name: &str, arg: &[u8]) -> Vec<Value> {
    let f: Function = core(lua).get(name).expect("function");
    let out: MultiValue = f
        .call(lua.create_string(arg).expect("string"))
        .unwrap_or_else(|e| panic!("{name} raised: {e}"));
    let out: Vec<Value> = out.into_iter().collect();
    if out[0].is_nil() {
        let why = out[1]
            .as_string()
            .expect("a message")
            .to_str()
            .expect("utf-8")
            .to_string();
        assert!(
            why == "partial" || why.starts_with("malformed response ("),
            "{why}"
        );
    }
    out
}

/// A Lua number as Rust sees it (mlua answers integral numbers as integers).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    }
}

fn chunk_size_on_bytes(lua: &Lua, data: &[u8]) {
    let out = call(lua, "parse_chunk_size", data);
    if let Some(size) = number(&out[0]) {
        assert!(size >= 0.0);
        let len = out[1].as_integer().expect("length") as usize;
        assert!(len <= data.len() && len > 0);
    }
    call(lua, "parse_response_head", data);
    call(lua, "parse_header_fields", data);
    // Round trip: any size of at most 15 hex digits, as a server writes it.
    if data.len() >= 8 {
        let size = u64::from_le_bytes(data[..8].try_into().expect("8 bytes")) >> 4;
        let line = format!("{size:x}\r\n");
        let out = call(lua, "parse_chunk_size", line.as_bytes());
        assert_eq!(number(&out[0]), Some(size as f64), "chunk size {line:?}");
        assert_eq!(out[1].as_integer(), Some(line.len() as i64));
    }
}

const TCHAR: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A printable byte for a reason phrase or a field value (no leading or trailing
/// blank is ever made: the caller trims).
fn vchar(b: u8) -> u8 {
    0x20 + b % 0x5f
}

/// Builds a head from the input's choices, parses it, and checks what comes back.
fn head_roundtrip(lua: &Lua, data: &[u8]) {
    let mut it = data.iter().copied();
    let (Some(a), Some(b), Some(minor)) = (it.next(), it.next(), it.next()) else {
        return;
    };
    let code = 100 + (u16::from_le_bytes([a, b]) % 900);
    let minor = minor & 1;
    let mut take = |n: usize, f: &dyn Fn(u8) -> u8| -> Vec<u8> {
        (0..n).map_while(|_| it.next()).map(f).collect()
    };
    let reason_len = take(1, &|b| b % 24).first().copied().unwrap_or(0) as usize;
    let reason = String::from_utf8(take(reason_len, &vchar)).expect("ascii");
    let reason = reason.trim().to_string();
    let nfields = take(1, &|b| b % 12).first().copied().unwrap_or(0) as usize;
    let mut fields: Vec<(String, String)> = Vec::new();
    for _ in 0..nfields {
        let name_len = 1 + take(1, &|b| b % 10).first().copied().unwrap_or(0) as usize;
        let name = take(name_len, &|b| TCHAR[b as usize % TCHAR.len()]);
        let value_len = take(1, &|b| b % 20).first().copied().unwrap_or(0) as usize;
        let value = take(value_len, &vchar);
        if name.len() < name_len {
            break;
        }
        let name = String::from_utf8(name).expect("ascii").to_ascii_lowercase();
        let value = String::from_utf8(value).expect("ascii").trim().to_string();
        if fields.iter().all(|(n, _)| *n != name) {
            fields.push((name, value));
        }
    }
    let mut text = format!("HTTP/1.{minor} {code} {reason}\r\n");
    for (name, value) in &fields {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let HeadAnswer::Done(h) = parse_response_head(lua, text.as_bytes()).expect("no Lua error")
    else {
        panic!("a well-formed head does not parse: {text:?}");
    };
    assert_eq!(
        (h.code, h.minor, h.len),
        (code, minor, text.len()),
        "{text:?}"
    );
    assert_eq!(h.reason, reason, "{text:?}");
    let mut n = 0;
    for pair in h.fields.pairs::<String, String>() {
        let (name, value) = pair.expect("string pair");
        n += 1;
        assert!(
            fields.iter().any(|(n, v)| *n == name && *v == value),
            "field {name}: {value} was not sent in {text:?}"
        );
    }
    assert_eq!(n, fields.len(), "{text:?}");
}
