//! Streaming decoding of `Content-Encoding: gzip` and `deflate` response bodies for the
//! HTTP client (`lua/socketloop/http/wire.lua`), through flate2. One function goes into
//! `socketloop.core`:
//!
//! - `body_decoder(coding [, limit]) -> decoder | nil`: nil for a coding it does not
//!   decode (anything but `gzip`, `x-gzip`, `deflate`). `limit` (bytes, nil: none) bounds
//!   the decoded size: past it, decoding fails with `'response body too large'`, so a
//!   decompression bomb stops after `limit` bytes and one step of output.
//! - `decoder:decode(bytes) -> decoded, more | nil, err`: feeds compressed bytes, returns
//!   what they decode to, at most about [`OUT_STEP`] bytes at a time: when `more` is
//!   true, call `decode('')` for the rest before feeding more.
//! - `decoder:finish() -> true | nil, err`: the body ended; an error when the compressed
//!   stream did not (a truncated body).
//!
//! `deflate` is the zlib format (RFC 1950) or, as some servers send it, raw deflate
//! (RFC 1951): the first two bytes tell. gzip may have several members (RFC 1952), each
//! checked against its CRC-32 and length; bytes after the last member are ignored.

use flate2::{Crc, Decompress, FlushDecompress, Status};
use mlua::{AnyUserData, Lua, MultiValue, Table, UserData, UserDataMethods, Value};

/// Decoded bytes one `decode` returns at most (plus one inflate step's output).
pub const OUT_STEP: usize = 256 * 1024;
/// Output room given to each inflate step.
const STEP_ROOM: usize = 32 * 1024;

const TOO_LARGE: &str = "response body too large";
const INVALID: &str = "malformed response (invalid compressed body)";
const TRUNCATED: &str = "malformed response (compressed body truncated)";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// gzip: gathering a member's header.
    GzipHeader,
    /// deflate: waiting for two bytes to tell zlib from raw deflate.
    DeflateStart,
    /// Inflating.
    Body,
    /// gzip: gathering a member's 8-byte trailer.
    GzipTrailer,
    /// gzip: a member ended; another may follow.
    BetweenMembers,
    /// The stream ended; what follows is ignored.
    Done,
}

/// The decoding state of one response body.
pub struct BodyDecoder {
    gzip: bool,
    stage: Stage,
    inflate: Decompress,
    /// Input not consumed yet.
    pending: Vec<u8>,
    crc: Crc,
    decoded: u64,
    limit: Option<u64>,
}

impl BodyDecoder {
    /// A decoder for `coding` (lower-case), or None when it is not one we decode.
    pub fn new(coding: &[u8], limit: Option<u64>) -> Option<Self> {
        let gzip = match coding {
            b"gzip" | b"x-gzip" => true,
            b"deflate" => false,
            _ => return None,
        };
        Some(BodyDecoder {
            gzip,
            stage: if gzip {
                Stage::GzipHeader
            } else {
                Stage::DeflateStart
            },
            inflate: Decompress::new(false),
            pending: Vec::new(),
            crc: Crc::new(),
            decoded: 0,
            limit,
        })
    }

    /// Feeds `input`; returns the bytes decoded so far (at most about OUT_STEP) and
    /// whether more output may come without more input.
    pub fn decode(&mut self, input: &[u8]) -> Result<(Vec<u8>, bool), &'static str> {
        self.pending.extend_from_slice(input);
        let mut out = Vec::new();
        let mut pos = 0;
        let mut more = false;
        loop {
            let rest = &self.pending[pos..];
            match self.stage {
                Stage::GzipHeader => match gzip_header_len(rest)? {
                    Some(n) => {
                        pos += n;
                        self.inflate.reset(false);
                        self.crc.reset();
                        self.stage = Stage::Body;
                    }
                    None => break,
                },
                Stage::DeflateStart => {
                    if rest.len() < 2 {
                        break;
                    }
                    self.inflate = Decompress::new(is_zlib_header(rest[0], rest[1]));
                    self.stage = Stage::Body;
                }
                Stage::Body => {
                    if out.len() >= OUT_STEP {
                        more = true;
                        break;
                    }
                    let start = out.len();
                    out.reserve(STEP_ROOM);
                    let before = self.inflate.total_in();
                    let status = self
                        .inflate
                        .decompress_vec(rest, &mut out, FlushDecompress::None)
                        .map_err(|_| INVALID)?;
                    let consumed = (self.inflate.total_in() - before) as usize;
                    pos += consumed;
                    let produced = out.len() - start;
                    if self.gzip {
                        self.crc.update(&out[start..]);
                    }
                    self.decoded += produced as u64;
                    if self.limit.is_some_and(|limit| self.decoded > limit) {
                        return Err(TOO_LARGE);
                    }
                    if status == Status::StreamEnd {
                        self.stage = if self.gzip {
                            Stage::GzipTrailer
                        } else {
                            Stage::Done
                        };
                    } else if consumed == 0 && produced == 0 {
                        // Room was given, so no progress means it needs more input.
                        break;
                    }
                }
                Stage::GzipTrailer => {
                    if rest.len() < 8 {
                        break;
                    }
                    let crc = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
                    let size = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
                    if crc != self.crc.sum() || size != self.crc.amount() {
                        return Err(INVALID);
                    }
                    pos += 8;
                    self.stage = Stage::BetweenMembers;
                }
                Stage::BetweenMembers => {
                    if rest.is_empty() {
                        break;
                    }
                    self.stage = if rest[0] == 0x1f {
                        Stage::GzipHeader
                    } else {
                        Stage::Done
                    };
                }
                Stage::Done => {
                    pos = self.pending.len();
                    break;
                }
            }
        }
        self.pending.drain(..pos);
        Ok((out, more))
    }

    /// Whether the compressed stream ended (the body may end here).
    pub fn finished(&self) -> bool {
        matches!(self.stage, Stage::Done | Stage::BetweenMembers)
    }
}

/// Whether two bytes start a zlib stream: method 8 (deflate), a window of at most 32 KiB,
/// and the header check (a multiple of 31). A raw deflate stream's first bytes pass
/// this only rarely, which is what every HTTP client that accepts both relies on.
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

/// The length of the gzip member header at the start of `buf`, None when `buf` ends
/// inside it, or an error when it is not one.
fn gzip_header_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if buf.len() < 10 {
        if buf.len() >= 2 && buf[..2] != [0x1f, 0x8b] {
            return Err(INVALID);
        }
        return Ok(None);
    }
    if buf[..3] != [0x1f, 0x8b, 8] || buf[3] & 0xe0 != 0 {
        return Err(INVALID);
    }
    let flags = buf[3];
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        if buf.len() < pos + 2 {
            return Ok(None);
        }
        pos += 2 + usize::from(u16::from_le_bytes([buf[pos], buf[pos + 1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match buf.get(pos..).and_then(|b| memchr::memchr(0, b)) {
                Some(end) => pos += end + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    Ok(if buf.len() >= pos { Some(pos) } else { None })
}

impl UserData for BodyDecoder {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_function("decode", |lua, (this, input): (Value, Value)| {
            let this = decoder_arg(&this, "decode")?;
            let Value::String(input) = input else {
                return Err(mlua::Error::RuntimeError(format!(
                    "bad argument #1 to 'decode' (string expected, got {})",
                    input.type_name()
                )));
            };
            // The borrow ends before anything is pushed to Lua.
            let result = {
                let mut decoder = this.borrow_mut::<BodyDecoder>()?;
                decoder.decode(&input.as_bytes())
            };
            match result {
                Ok((out, more)) => Ok(MultiValue::from_vec(vec![
                    Value::String(lua.create_string(&out)?),
                    Value::Boolean(more),
                ])),
                Err(why) => failure(lua, why),
            }
        });
        methods.add_function("finish", |lua, this: Value| {
            let this = decoder_arg(&this, "finish")?;
            let finished = this.borrow::<BodyDecoder>()?.finished();
            if finished {
                Ok(MultiValue::from_vec(vec![Value::Boolean(true)]))
            } else {
                failure(lua, TRUNCATED)
            }
        });
    }
}

fn decoder_arg(v: &Value, fname: &str) -> mlua::Result<AnyUserData> {
    match v {
        Value::UserData(ud) if ud.is::<BodyDecoder>() => Ok(ud.clone()),
        other => Err(mlua::Error::RuntimeError(format!(
            "bad argument #1 to '{fname}' (body decoder expected, got {})",
            other.type_name()
        ))),
    }
}

fn failure(lua: &Lua, message: &str) -> mlua::Result<MultiValue> {
    Ok(MultiValue::from_vec(vec![
        Value::Nil,
        Value::String(lua.create_string(message)?),
    ]))
}

/// Adds `body_decoder` to `core`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    core.set(
        "body_decoder",
        lua.create_function(|lua, (coding, limit): (Value, Value)| {
            let Value::String(coding) = coding else {
                return Err(mlua::Error::RuntimeError(format!(
                    "bad argument #1 to 'body_decoder' (string expected, got {})",
                    coding.type_name()
                )));
            };
            let limit = match limit {
                Value::Nil => None,
                Value::Integer(n) if n >= 0 => Some(n as u64),
                Value::Number(n) if n >= 0.0 => {
                    Some(if n.is_finite() { n as u64 } else { u64::MAX })
                }
                other => {
                    return Err(mlua::Error::RuntimeError(format!(
                        "bad argument #2 to 'body_decoder' (non-negative number expected, got {})",
                        match other {
                            Value::Number(_) | Value::Integer(_) => "a negative number or NaN",
                            _ => other.type_name(),
                        }
                    )))
                }
            };
            let coding = coding.to_str()?.trim().to_ascii_lowercase();
            match BodyDecoder::new(coding.as_bytes(), limit) {
                Some(d) => Ok(Value::UserData(lua.create_userdata(d)?)),
                None => Ok(Value::Nil),
            }
        })?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    fn decode_all(coding: &[u8], data: &[u8], piece: usize) -> Result<Vec<u8>, &'static str> {
        let mut d = BodyDecoder::new(coding, None).unwrap();
        let mut out = Vec::new();
        for chunk in data.chunks(piece) {
            let (o, mut more) = d.decode(chunk)?;
            out.extend(o);
            while more {
                let (o, m) = d.decode(b"")?;
                out.extend(o);
                more = m;
            }
        }
        if !d.finished() {
            return Err(TRUNCATED);
        }
        Ok(out)
    }

    #[test]
    fn gzip_zlib_raw() {
        let plain = sample();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = ZlibEncoder::new(Vec::new(), Compression::default());
        zl.write_all(&plain).unwrap();
        let zl = zl.finish().unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&plain).unwrap();
        let raw = raw.finish().unwrap();
        for piece in [1, 7, 4096, 1 << 20] {
            assert_eq!(decode_all(b"gzip", &gz, piece).unwrap(), plain);
            assert_eq!(decode_all(b"deflate", &zl, piece).unwrap(), plain);
            assert_eq!(decode_all(b"deflate", &raw, piece).unwrap(), plain);
        }
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert_eq!(
            decode_all(b"gzip", &two, 1000).unwrap().len(),
            2 * plain.len()
        );
        assert_eq!(
            decode_all(b"gzip", &gz[..gz.len() - 3], 1000),
            Err(TRUNCATED)
        );
        let mut bad = gz.clone();
        let n = bad.len();
        bad[n - 5] ^= 1;
        assert_eq!(decode_all(b"gzip", &bad, 1000), Err(INVALID));
        assert_eq!(decode_all(b"gzip", b"not gzip at all", 4), Err(INVALID));
    }

    #[test]
    fn bomb_stops_at_limit() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            gz.write_all(&zeros).unwrap();
        }
        let gz = gz.finish().unwrap();
        let mut d = BodyDecoder::new(b"gzip", Some(1_000_000)).unwrap();
        let mut total = 0;
        let mut result = Ok(());
        'outer: for chunk in gz.chunks(4096) {
            let mut input = chunk;
            loop {
                match d.decode(input) {
                    Ok((o, more)) => {
                        assert!(o.len() <= OUT_STEP + STEP_ROOM);
                        total += o.len();
                        if !more {
                            break;
                        }
                        input = b"";
                    }
                    Err(e) => {
                        result = Err(e);
                        break 'outer;
                    }
                }
            }
        }
        assert_eq!(result, Err(TOO_LARGE));
        assert!(total <= 1_000_000);
    }
}
