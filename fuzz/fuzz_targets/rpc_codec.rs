//! Fuzzes the rpc wire codec (src/codec/rpc.rs): the 6-byte header and the value
//! decoder, which read bytes straight from the network.
//!
//! The input's first 6 bytes are a header, the rest a payload, decoded both as a call
//! (a value, then a list) and as a response (a status byte, then a list), as
//! `codec:decode_call` / `codec:decode_response` do; the same bytes also go through
//! those Lua methods. Whatever decodes must encode again and decode to equal values
//! (decode(encode(v)) == v), and must not be nested deeper than the limit.
#![no_main]

mod common;

use common::{cached, same, same_list, with_lua};
use libfuzzer_sys::fuzz_target;
use mlua::{Function, Lua, MultiValue, ObjectLike, Value};
use socketloop::codec::rpc::{
    self as rpc_codec, parse_header, Codec, Decoder, HEADER_LEN, KIND_CALL, KIND_RESPONSE,
};

const MAX_PAYLOAD: usize = 1 << 16;
const MAX_DEPTH: usize = 8;

fuzz_target!(|data: &[u8]| {
    with_lua(|lua| check(lua, data));
});

fn check(lua: &Lua, data: &[u8]) {
    let (head, payload) = data.split_at(data.len().min(HEADER_LEN));
    if let Ok(h) = parse_header(head, MAX_PAYLOAD) {
        assert!(h.kind == KIND_CALL || h.kind == KIND_RESPONSE);
        assert!(h.size <= MAX_PAYLOAD);
        assert_eq!(h.seq, head[1]);
    }
    if let Some((name, args)) = decode(lua, payload, |dec| dec.value(lua)) {
        roundtrip(lua, KIND_CALL, Ok(&name), &args, head.get(1).copied());
    }
    if let Some((&status, rest)) = payload.split_first() {
        if let Some(((), values)) = decode(lua, rest, |_| Ok(())) {
            roundtrip(lua, KIND_RESPONSE, Err(status), &values, None);
        }
    }
    through_lua(lua, head, payload);
}

/// A head then a list that ends the payload, as the codec's Lua methods decode.
fn decode<'a, H>(
    lua: &Lua,
    payload: &'a [u8],
    head: impl FnOnce(&mut Decoder<'a>) -> Result<H, String>,
) -> Option<(H, Vec<Value>)> {
    let mut dec = Decoder::new(payload, MAX_DEPTH);
    let first = head(&mut dec).ok()?;
    let values = dec.list(lua).ok()?;
    dec.at_end().then_some((first, values))
}

/// Encodes what was decoded and checks it decodes to the same values.
fn roundtrip(lua: &Lua, kind: u8, head: Result<&Value, u8>, values: &[Value], seq: Option<u8>) {
    let seq = seq.unwrap_or(0);
    let mut codec = Codec::new(usize::MAX, MAX_DEPTH);
    let msg = codec
        .message(kind, seq, head, values)
        .unwrap_or_else(|e| panic!("decoded values do not encode again: {}", e.why))
        .to_vec();
    let h = parse_header(&msg[..HEADER_LEN], u32::MAX as usize).expect("own header");
    assert_eq!((h.kind, h.seq, h.size), (kind, seq, msg.len() - HEADER_LEN));
    let payload = &msg[HEADER_LEN..];
    match head {
        Ok(v) => {
            let (v2, values2) = decode(lua, payload, |dec| dec.value(lua)).expect("own call");
            assert!(same(v, &v2), "call head differs after a round trip");
            assert!(
                same_list(values, &values2),
                "call values differ after a round trip"
            );
        }
        Err(status) => {
            assert_eq!(payload[0], status);
            let ((), values2) = decode(lua, &payload[1..], |_| Ok(())).expect("own response");
            assert!(
                same_list(values, &values2),
                "response values differ after a round trip"
            );
        }
    }
}

/// The same bytes through the Lua methods: each answers values or `nil, why`.
fn through_lua(lua: &Lua, head: &[u8], payload: &[u8]) {
    let codec = cached(lua, "fuzz codec", || {
        let core = lua.create_table().expect("table");
        rpc_codec::register(lua, &core).expect("register");
        let make: Function = core.get("rpc_codec").expect("rpc_codec");
        let codec: Value = make
            .call((MAX_PAYLOAD as f64, MAX_DEPTH as f64))
            .expect("codec");
        let holder = lua.create_table().expect("table");
        holder.set("codec", codec).expect("set");
        holder
    });
    let codec: mlua::AnyUserData = codec.get("codec").expect("codec");
    let head = lua.create_string(head).expect("string");
    let payload = lua.create_string(payload).expect("string");
    for (method, arg) in [
        ("header", &head),
        ("decode_call", &payload),
        ("decode_response", &payload),
    ] {
        let out: MultiValue = codec
            .call_method(method, arg.clone())
            .unwrap_or_else(|e| panic!("codec:{method} raised: {e}"));
        let out: Vec<Value> = out.into_iter().collect();
        if out.first().is_none_or(Value::is_nil) {
            assert!(
                matches!(out.get(1), Some(Value::String(_))),
                "codec:{method} failed without a message"
            );
        }
    }
}
