//! The wire codec of `socketloop.rpc` (`lua/socketloop/rpc/session.lua`): the binary
//! serialization of Lua values and the 6-byte message header, both specified in
//! docs/protocol.md. One function goes into `socketloop.core`:
//!
//! - `rpc_codec(max_payload, max_depth) -> codec`, whose methods are
//!   - `codec:call(seq, name, ...) -> message | nil, err, index`: a whole call message;
//!   - `codec:response(seq, status, ...) -> message | nil, err, index`: a whole response;
//!   - `codec:header(six_bytes) -> kind, seq, size | nil, err`;
//!   - `codec:decode_call(payload) -> name, ... | nil, err`;
//!   - `codec:decode_response(payload) -> status, ... | nil, err`.
//!
//! Encoding reads tables with raw accesses only, so it never runs Lua code (no `__index`,
//! `__pairs`, `__len`); decoding never runs Lua code either and checks every count and
//! length against the bytes left before allocating. Failures are values (`nil, why`),
//! `index` saying which value (1-based) could not be encoded when one is to blame.

use mlua::{Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use std::ffi::c_void;

/// Length of the header in front of every message.
pub const HEADER_LEN: usize = 6;
/// Message type of a call.
pub const KIND_CALL: u8 = 0;
/// Message type of a response.
pub const KIND_RESPONSE: u8 = 1;
/// Most values one list (a call's arguments, a response's results) may hold: about what
/// a Lua C function may return and `unpack` may spread.
pub const MAX_VALUES: usize = 4096;

const TAG_NIL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INTEGER: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_STRING: u8 = 5;
const TAG_TABLE: u8 = 6;

/// A message buffer this large is freed after use rather than kept for the next one.
const KEEP_BUFFER: usize = 1 << 20;

/// Why a value could not be encoded, and which value of the list (1-based) it was in.
#[derive(Debug, PartialEq)]
pub struct EncodeError {
    /// What went wrong, for an error message.
    pub why: String,
    /// The position of the offending value in the list, when one value is to blame.
    pub index: Option<usize>,
}

impl EncodeError {
    fn new(why: impl Into<String>) -> EncodeError {
        EncodeError {
            why: why.into(),
            index: None,
        }
    }
}

/// Appends serialized values to a buffer, enforcing the size and nesting limits.
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    /// `out.len()` past which the payload is too large.
    limit: usize,
    max_payload: usize,
    max_depth: usize,
    /// The tables being encoded, outermost first, to refuse cycles.
    path: Vec<*const c_void>,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`, whose payload starts at `out.len()`. Costs nothing.
    pub fn new(out: &'a mut Vec<u8>, max_payload: usize, max_depth: usize) -> Encoder<'a> {
        let limit = out.len().saturating_add(max_payload);
        Encoder {
            out,
            limit,
            max_payload,
            max_depth,
            path: Vec::new(),
        }
    }

    /// Appends one value. Costs one pass over the value (tables are walked once each).
    pub fn value(&mut self, v: &Value) -> Result<(), EncodeError> {
        self.encode(v, 0)
    }

    /// Appends a list: its count, then its values. Costs one pass over the values.
    pub fn list<'v>(
        &mut self,
        values: impl ExactSizeIterator<Item = &'v Value>,
    ) -> Result<(), EncodeError> {
        if values.len() > MAX_VALUES {
            return Err(EncodeError::new(format!(
                "more than {MAX_VALUES} values ({})",
                values.len()
            )));
        }
        put_varint(self.out, values.len() as u64);
        for (i, v) in values.enumerate() {
            self.encode(v, 0).map_err(|mut e| {
                e.index = Some(i + 1);
                e
            })?;
        }
        self.check_size()
    }

    fn check_size(&self) -> Result<(), EncodeError> {
        if self.out.len() > self.limit {
            return Err(EncodeError::new(format!(
                "payload larger than the limit of {} bytes",
                self.max_payload
            )));
        }
        Ok(())
    }

    fn encode(&mut self, v: &Value, depth: usize) -> Result<(), EncodeError> {
        match v {
            Value::Nil => self.out.push(TAG_NIL),
            Value::Boolean(false) => self.out.push(TAG_FALSE),
            Value::Boolean(true) => self.out.push(TAG_TRUE),
            Value::Integer(i) => {
                self.out.push(TAG_INTEGER);
                put_varint(self.out, zigzag(*i));
            }
            Value::Number(n) => {
                self.out.push(TAG_FLOAT);
                self.out.extend_from_slice(&n.to_be_bytes());
            }
            Value::String(s) => {
                let bytes = s.as_bytes();
                self.out.push(TAG_STRING);
                put_varint(self.out, bytes.len() as u64);
                self.out.extend_from_slice(&bytes);
                self.check_size()?;
            }
            Value::Table(t) => self.table(t, depth)?,
            other => {
                return Err(EncodeError::new(format!(
                    "cannot serialize a {} value",
                    other.type_name()
                )))
            }
        }
        Ok(())
    }

    /// A table: tag, array count (varint), hash count (u32, patched once known), the
    /// array values `t[1..n]`, then the other pairs.
    fn table(&mut self, t: &Table, depth: usize) -> Result<(), EncodeError> {
        if depth >= self.max_depth {
            return Err(EncodeError::new(format!(
                "tables nested deeper than {} levels",
                self.max_depth
            )));
        }
        let ptr = t.to_pointer();
        if self.path.contains(&ptr) {
            return Err(EncodeError::new(
                "cannot serialize a table that contains itself",
            ));
        }
        self.path.push(ptr);
        let n = t.raw_len();
        self.out.push(TAG_TABLE);
        put_varint(self.out, n as u64);
        let patch = self.out.len();
        self.out.extend_from_slice(&[0; 4]);
        for i in 1..=n {
            let v: Value = t.raw_get(i).map_err(|e| EncodeError::new(e.to_string()))?;
            self.encode(&v, depth + 1)?;
            self.check_size()?;
        }
        let mut pairs: u32 = 0;
        let mut failure = None;
        let walked = t.for_each(|k: Value, v: Value| {
            if let Value::Integer(i) = k {
                if i >= 1 && (i as u64) <= n as u64 {
                    return Ok(());
                }
            }
            let step = self
                .encode(&k, depth + 1)
                .and_then(|_| self.encode(&v, depth + 1))
                .and_then(|_| self.check_size());
            match step {
                Ok(()) => {
                    pairs += 1;
                    Ok(())
                }
                Err(e) => {
                    failure = Some(e);
                    // Stops the walk; the real reason is in `failure`.
                    Err(mlua::Error::runtime("stop"))
                }
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        walked.map_err(|e| EncodeError::new(e.to_string()))?;
        self.out[patch..patch + 4].copy_from_slice(&pairs.to_be_bytes());
        self.path.pop();
        Ok(())
    }
}

/// Reads serialized values from a payload, enforcing the nesting limit.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    max_depth: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`. Costs nothing.
    pub fn new(buf: &'a [u8], max_depth: usize) -> Decoder<'a> {
        Decoder {
            buf,
            pos: 0,
            max_depth,
        }
    }

    /// True when every byte has been read. Costs nothing.
    pub fn at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("truncated value")?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err("truncated value".into());
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            if i == 9 && b > 1 {
                return Err("integer out of range".into());
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("integer out of range".into())
    }

    /// A count that must not exceed `most`, the most the bytes left could hold.
    fn count(&mut self, most: usize) -> Result<usize, String> {
        let n = self.varint()?;
        if n > most as u64 {
            return Err(format!("count {n} larger than the payload allows"));
        }
        Ok(n as usize)
    }

    /// Reads one value. Costs one pass over its bytes plus a Lua object per string and table.
    pub fn value(&mut self, lua: &Lua) -> Result<Value, String> {
        self.decode(lua, 0)
    }

    /// Reads a list: its count, then that many values. Costs one pass over its bytes plus
    /// a Lua object per string and table.
    pub fn list(&mut self, lua: &Lua) -> Result<Vec<Value>, String> {
        let n = self.varint()?;
        if n > MAX_VALUES as u64 {
            return Err(format!("more than {MAX_VALUES} values ({n})"));
        }
        if n > self.left() as u64 {
            return Err(format!("count {n} larger than the payload allows"));
        }
        let n = n as usize;
        let mut values = Vec::with_capacity(n);
        for _ in 0..n {
            values.push(self.decode(lua, 0)?);
        }
        Ok(values)
    }

    fn decode(&mut self, lua: &Lua, depth: usize) -> Result<Value, String> {
        Ok(match self.byte()? {
            TAG_NIL => Value::Nil,
            TAG_FALSE => Value::Boolean(false),
            TAG_TRUE => Value::Boolean(true),
            TAG_INTEGER => Value::Integer(unzigzag(self.varint()?)),
            TAG_FLOAT => {
                let raw = self.bytes(8)?;
                let mut b = [0; 8];
                b.copy_from_slice(raw);
                Value::Number(f64::from_be_bytes(b))
            }
            TAG_STRING => {
                let n = self.count(self.left())?;
                let s = self.bytes(n)?;
                Value::String(lua.create_string(s).map_err(|e| e.to_string())?)
            }
            TAG_TABLE => self.table(lua, depth)?,
            tag => return Err(format!("unknown value tag {tag}")),
        })
    }

    fn table(&mut self, lua: &Lua, depth: usize) -> Result<Value, String> {
        if depth >= self.max_depth {
            return Err(format!(
                "tables nested deeper than {} levels",
                self.max_depth
            ));
        }
        let narr = self.count(self.left())?;
        let raw = self.bytes(4)?;
        let nhash = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]) as usize;
        // Every value takes a byte at least, every pair two.
        if narr + nhash.saturating_mul(2) > self.left() {
            return Err("table counts larger than the payload allows".into());
        }
        let t = lua
            .create_table_with_capacity(narr, nhash)
            .map_err(|e| e.to_string())?;
        let lua_err = |e: mlua::Error| e.to_string();
        for i in 1..=narr {
            let v = self.decode(lua, depth + 1)?;
            if !v.is_nil() {
                t.raw_set(i, v).map_err(lua_err)?;
            }
        }
        for _ in 0..nhash {
            let k = self.decode(lua, depth + 1)?;
            match k {
                Value::Nil => return Err("table key is nil".into()),
                Value::Number(n) if n.is_nan() => return Err("table key is NaN".into()),
                _ => {}
            }
            let v = self.decode(lua, depth + 1)?;
            t.raw_set(k, v).map_err(lua_err)?;
        }
        Ok(Value::Table(t))
    }
}

fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A parsed message header.
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    /// [`KIND_CALL`] or [`KIND_RESPONSE`].
    pub kind: u8,
    /// The sequence number pairing a response with its call.
    pub seq: u8,
    /// Payload length in bytes.
    pub size: usize,
}

/// Parses a 6-byte header, refusing unknown types and payloads over `max_payload`.
/// Costs a few comparisons.
pub fn parse_header(h: &[u8], max_payload: usize) -> Result<Header, String> {
    if h.len() != HEADER_LEN {
        return Err(format!("malformed header ({} bytes)", h.len()));
    }
    let kind = h[0];
    if kind != KIND_CALL && kind != KIND_RESPONSE {
        return Err(format!("malformed header (unknown message type {kind})"));
    }
    let size = u32::from_be_bytes([h[2], h[3], h[4], h[5]]) as usize;
    if size > max_payload {
        return Err(format!(
            "message of {size} bytes exceeds the limit of {max_payload} bytes"
        ));
    }
    Ok(Header {
        kind,
        seq: h[1],
        size,
    })
}

/// The codec object handed to Lua: the limits of one rpc client or server, and a buffer
/// reused from message to message.
pub struct Codec {
    max_payload: usize,
    max_depth: usize,
    buf: Vec<u8>,
}

impl Codec {
    /// A codec with these limits; `max_payload` is capped at what 4 bytes can say. Costs
    /// nothing: the buffer grows with the first message.
    pub fn new(max_payload: usize, max_depth: usize) -> Codec {
        Codec {
            max_payload: max_payload.min(u32::MAX as usize),
            max_depth,
            buf: Vec::new(),
        }
    }

    /// Builds a whole message in the codec's buffer and returns it: header, then `head`
    /// (one value for a call, one status byte for a response), then the list `values`.
    /// Costs one pass over the values; call [`Codec::release`] once the bytes are copied.
    pub fn message(
        &mut self,
        kind: u8,
        seq: u8,
        head: Result<&Value, u8>,
        values: &[Value],
    ) -> Result<&[u8], EncodeError> {
        self.buf.clear();
        self.buf.extend_from_slice(&[kind, seq, 0, 0, 0, 0]);
        let mut enc = Encoder::new(&mut self.buf, self.max_payload, self.max_depth);
        match head {
            Ok(v) => enc.value(v).map_err(|mut e| {
                e.index = Some(0);
                e
            })?,
            Err(status) => enc.out.push(status),
        }
        enc.list(values.iter())?;
        let size = (self.buf.len() - HEADER_LEN) as u32;
        self.buf[2..HEADER_LEN].copy_from_slice(&size.to_be_bytes());
        Ok(&self.buf)
    }

    /// Frees the buffer if a large message grew it past 1 MiB, so an idle session holds
    /// little. Costs a comparison, or a free.
    pub fn release(&mut self) {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
    }
}

/// `nil, why[, index]` for Lua.
fn failure(lua: &Lua, why: &str, index: Option<usize>) -> mlua::Result<MultiValue> {
    let mut v = vec![Value::Nil, Value::String(lua.create_string(why)?)];
    if let Some(i) = index {
        v.push(Value::Integer(i as i64));
    }
    Ok(MultiValue::from_vec(v))
}

/// The message `build` makes with `c`, as a Lua string, or `nil, why, index`.
fn encoded(
    lua: &Lua,
    c: &mut Codec,
    build: impl FnOnce(&mut Codec) -> Result<&[u8], EncodeError>,
) -> mlua::Result<MultiValue> {
    let reply = match build(c) {
        Ok(bytes) => Ok(MultiValue::from_vec(vec![Value::String(
            lua.create_string(bytes)?,
        )])),
        Err(e) => failure(lua, &e.why, e.index),
    };
    c.release();
    reply
}

/// Decodes `head` then a list, requiring the payload to end there.
fn decode_payload(
    lua: &Lua,
    payload: &[u8],
    max_depth: usize,
    head: impl FnOnce(&mut Decoder) -> Result<Value, String>,
) -> mlua::Result<MultiValue> {
    let mut dec = Decoder::new(payload, max_depth);
    let decoded = head(&mut dec).and_then(|first| {
        let mut values = dec.list(lua)?;
        if !dec.at_end() {
            return Err("bytes after the last value".into());
        }
        values.insert(0, first);
        Ok(values)
    });
    match decoded {
        Ok(values) => Ok(MultiValue::from_vec(values)),
        Err(why) => failure(lua, &format!("malformed payload ({why})"), None),
    }
}

impl UserData for Codec {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut(
            "call",
            |lua, c, (seq, name, args): (u8, Value, MultiValue)| {
                let args: Vec<Value> = args.into_iter().collect();
                encoded(lua, c, |c| c.message(KIND_CALL, seq, Ok(&name), &args))
            },
        );
        methods.add_method_mut(
            "response",
            |lua, c, (seq, status, values): (u8, u8, MultiValue)| {
                let values: Vec<Value> = values.into_iter().collect();
                encoded(lua, c, |c| {
                    c.message(KIND_RESPONSE, seq, Err(status), &values)
                })
            },
        );
        methods.add_method("header", |lua, c, h: mlua::LuaString| {
            match parse_header(&h.as_bytes(), c.max_payload) {
                Ok(h) => Ok(MultiValue::from_vec(vec![
                    Value::Integer(h.kind as i64),
                    Value::Integer(h.seq as i64),
                    Value::Integer(h.size as i64),
                ])),
                Err(why) => failure(lua, &why, None),
            }
        });
        methods.add_method("decode_call", |lua, c, payload: mlua::LuaString| {
            decode_payload(lua, &payload.as_bytes(), c.max_depth, |dec| {
                match dec.value(lua)? {
                    Value::Nil => Err("no procedure name".into()),
                    name => Ok(name),
                }
            })
        });
        methods.add_method("decode_response", |lua, c, payload: mlua::LuaString| {
            decode_payload(lua, &payload.as_bytes(), c.max_depth, |dec| {
                Ok(Value::Integer(dec.byte()? as i64))
            })
        });
    }
}

/// Adds `rpc_codec(max_payload, max_depth)` to `core`. Costs one function registration;
/// each codec costs a small userdata plus a message buffer kept between messages
/// (dropped when it grew past 1 MiB).
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    core.set(
        "rpc_codec",
        lua.create_function(|_, (max_payload, max_depth): (f64, f64)| {
            if !(max_payload >= 0.0 && max_depth >= 1.0) {
                return Err(mlua::Error::runtime(
                    "bad argument to 'rpc_codec' (positive limits expected)",
                ));
            }
            Ok(Codec::new(max_payload as usize, max_depth as usize))
        })?,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(lua: &Lua, src: &str) -> Vec<Value> {
        let values: MultiValue = lua.load(src).eval().expect("test values");
        let values: Vec<Value> = values.into_iter().collect();
        let mut codec = Codec::new(1 << 20, 100);
        let msg = codec
            .message(KIND_CALL, 7, Ok(&Value::Boolean(true)), &values)
            .expect("encodes")
            .to_vec();
        let h = parse_header(&msg[..HEADER_LEN], 1 << 20).expect("header");
        assert_eq!(
            h,
            Header {
                kind: 0,
                seq: 7,
                size: msg.len() - HEADER_LEN
            }
        );
        let mut dec = Decoder::new(&msg[HEADER_LEN..], 100);
        assert_eq!(dec.value(lua).expect("head"), Value::Boolean(true));
        let out = dec.list(lua).expect("decodes");
        assert!(dec.at_end());
        out
    }

    #[test]
    fn scalars_keep_their_count_type_and_bits() {
        let lua = Lua::new();
        let out = roundtrip(
            &lua,
            "return nil, false, true, 0, -1, 2^53, -0.0, 0.5, 1/0, 'a\\0b', nil",
        );
        assert_eq!(out.len(), 11);
        assert!(out[0].is_nil() && out[10].is_nil());
        assert_eq!(out[2], Value::Boolean(true));
        assert_eq!(out[4], Value::Integer(-1));
        assert_eq!(out[5], Value::Integer(1 << 53));
        assert!(matches!(out[6], Value::Number(z) if z == 0.0 && z.is_sign_negative()));
        assert_eq!(out[8], Value::Number(f64::INFINITY));
        assert_eq!(
            out[9].as_string().map(|s| s.as_bytes().to_vec()),
            Some(b"a\0b".to_vec())
        );
    }

    #[test]
    fn tables_nest_and_keep_holes_and_odd_keys() {
        let lua = Lua::new();
        let out = roundtrip(
            &lua,
            "return {1, nil, 3, x = {y = {true}}, [1.5] = 'f', [false] = 0}",
        );
        let t = out[0].as_table().expect("table");
        let check: bool = lua
            .load("local t = ... return t[1] == 1 and t[2] == nil and t[3] == 3 and t.x.y[1] == true and t[1.5] == 'f' and t[false] == 0")
            .call(t.clone())
            .expect("check runs");
        assert!(check);
    }

    #[test]
    fn refuses_functions_cycles_and_depth_with_the_position() {
        let lua = Lua::new();
        let mut codec = Codec::new(1 << 20, 3);
        let values: MultiValue = lua
            .load("local c = {} c.c = c return 1, print, c, {{{{}}}}")
            .eval()
            .expect("values");
        let values: Vec<Value> = values.into_iter().collect();
        let name = Value::Boolean(true);
        let err = codec
            .message(KIND_CALL, 0, Ok(&name), &values[..2])
            .unwrap_err();
        assert_eq!(
            (err.why.as_str(), err.index),
            ("cannot serialize a function value", Some(2))
        );
        let err = codec
            .message(KIND_CALL, 0, Ok(&name), &values[2..3])
            .unwrap_err();
        assert!(err.why.contains("contains itself"));
        let err = codec
            .message(KIND_CALL, 0, Ok(&name), &values[3..])
            .unwrap_err();
        assert!(err.why.contains("nested deeper than 3"));
    }

    #[test]
    fn refuses_oversized_payloads_on_both_ends() {
        let lua = Lua::new();
        let mut codec = Codec::new(10, 10);
        let big = Value::String(lua.create_string("0123456789").expect("string"));
        let err = codec.message(KIND_RESPONSE, 0, Err(0), &[big]).unwrap_err();
        assert!(err.why.contains("limit of 10 bytes"));
        assert!(parse_header(&[1, 0, 0, 0, 0, 11], 10)
            .unwrap_err()
            .contains("exceeds"));
        assert!(parse_header(&[2, 0, 0, 0, 0, 1], 10)
            .unwrap_err()
            .contains("type 2"));
        assert!(parse_header(&[1, 0, 0, 0, 0, 10], 10).is_ok());
    }

    #[test]
    fn malformed_payloads_are_errors_not_panics() {
        let lua = Lua::new();
        let cases: &[&[u8]] = &[
            &[],
            &[9],
            &[TAG_STRING, 5, b'a'],
            &[TAG_FLOAT, 1, 2],
            &[
                TAG_INTEGER,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x7f,
            ],
            &[TAG_TABLE, 0x7f, 0xff, 0xff, 0xff, 0xff],
            &[TAG_TABLE, 0, 0, 0, 0, 1, TAG_NIL, TAG_TRUE],
            &[
                TAG_TABLE, 0, 0, 0, 0, 1, TAG_FLOAT, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, TAG_TRUE,
            ],
        ];
        for bytes in cases {
            let mut dec = Decoder::new(bytes, 10);
            assert!(dec.value(&lua).is_err(), "{bytes:?} decoded");
        }
        let mut deep = Vec::new();
        for _ in 0..20 {
            deep.extend_from_slice(&[TAG_TABLE, 1, 0, 0, 0, 0]);
        }
        deep.push(TAG_NIL);
        let err = Decoder::new(&deep, 10).value(&lua).unwrap_err();
        assert!(err.contains("deeper than 10"));
        let mut many = vec![0xff, 0x7f];
        many.extend(std::iter::repeat_n(TAG_NIL, 20000));
        assert!(Decoder::new(&many, 10).list(&lua).is_err());
    }

    #[test]
    fn varints_roundtrip_at_the_edges() {
        for i in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_varint(&mut out, zigzag(i));
            let mut dec = Decoder::new(&out, 1);
            assert_eq!(unzigzag(dec.varint().expect("varint")), i);
            assert!(dec.at_end());
        }
    }
}
