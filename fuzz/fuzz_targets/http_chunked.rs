//! Fuzzes the HTTP client's chunked-body reader (`W.body_source` in
//! lua/socketloop/http/wire.lua) in LuaJIT in-process, with Lua line coverage guiding
//! libFuzzer (lua_cover). The reader reads from a fake socket whose receive is the real
//! receive algorithm (src/net/buffer.rs, through `sim`) over the input, delivered in reads
//! the input splits, with a receive limit; the input also chooses W.BLOCK (the most one
//! receive asks for), W.MAXHEAD (the trailer's limit) and the body size limit.
//!
//! Checks: the reader raises no error, asks for at most W.BLOCK bytes, and fails only
//! with its documented errors ('closed', 'response body too large', 'malformed response
//! (...)'). Against a model decoder reading the whole stream at once: the same outcome
//! (the same body and trailer fields, or the same error; 'response body too large' when
//! the model's body passes the limit), a failed read delivered a prefix of the model's
//! body short of at most the piece it failed in, and a finished read leaves exactly the
//! bytes after the body on the socket. Round trip: chunks the input chooses, written by
//! `W.body_sink` (the client's chunked encoder), read back as their concatenation.
#![no_main]

mod common;
mod lua_cover;
mod sim;

use common::{cached, install_core, same, with_lua};
use libfuzzer_sys::fuzz_target;
use mlua::{
    AnyUserData, Function, Lua, MultiValue, ObjectLike, Table, UserData, UserDataMethods, Value,
};
use sim::{split, strip_cr, Answer, Sim};
use socketloop::codec::http_head;
use socketloop::net::buffer::Pattern;

const TOO_LARGE: &str = "response body too large";

/// A connection's socket: receive answers as LuaSocket's do, send collects.
struct Fake<'a> {
    sim: Sim<'a>,
    block: usize,
    sent: Vec<u8>,
}

impl UserData for Fake<'_> {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("receive", |lua, fake, pattern: Value| {
            let pattern = match &pattern {
                Value::String(s) => Pattern::parse(&s.as_bytes()),
                Value::Integer(n) => usize::try_from(*n).ok().map(Pattern::Bytes),
                Value::Number(n) if n.fract() == 0.0 && *n >= 0.0 => {
                    Some(Pattern::Bytes(*n as usize))
                }
                _ => None,
            };
            let pattern = match pattern {
                Some(Pattern::Bytes(n)) if n == 0 || n > fake.block => {
                    return Err(mlua::Error::runtime(format!(
                        "receive({n}) with W.BLOCK {}",
                        fake.block
                    )))
                }
                Some(pattern) => pattern,
                None => return Err(mlua::Error::runtime("not a receive pattern")),
            };
            Ok(match fake.sim.receive(pattern) {
                Answer::Data(v) => MultiValue::from_vec(vec![Value::String(lua.create_string(v)?)]),
                Answer::Fail(err, partial) => MultiValue::from_vec(vec![
                    Value::Nil,
                    Value::String(lua.create_string(err)?),
                    Value::String(lua.create_string(partial)?),
                ]),
            })
        });
        methods.add_method_mut("send", |_, fake, data: mlua::LuaString| {
            fake.sent.extend_from_slice(&data.as_bytes());
            Ok(data.as_bytes().len())
        });
        // What is left to read, past any receive limit.
        methods.add_method_mut("rest", |lua, fake, ()| {
            fake.sim.rbuf.set_limit(0);
            match fake.sim.receive(Pattern::All) {
                Answer::Data(v) | Answer::Fail(_, v) => lua.create_string(v),
            }
        });
        methods.add_method("sent", |lua, fake, ()| lua.create_string(&fake.sent));
    }
}

/// What the input chooses besides the stream.
struct Setup {
    block: usize,
    limit: usize,
    maxhead: usize,
    maxsize: Option<usize>,
}

/// How a body read ended: the bytes delivered, then the trailer fields or the error.
struct Outcome {
    body: Vec<u8>,
    end: Result<Table, String>,
    /// Where the body ended in the stream (the model's only).
    used: usize,
}

fuzz_target!(|data: &[u8]| {
    // Layout: block, limit, trailer limit, body limit, split count s, s read sizes, stream.
    let mut it = data;
    let mut next = || -> u8 {
        let Some((&b, rest)) = it.split_first() else {
            return 0;
        };
        it = rest;
        b
    };
    let block = 1 + next() as usize % 16;
    let limit = next();
    // With a limit, it leaves room for a receive of W.BLOCK bytes and a chunk-size line,
    // as W.RECEIVE_LIMIT does; a longer line fails.
    let limit = if limit & 1 == 0 {
        0
    } else {
        block + 16 + (limit >> 1) as usize % 48
    };
    let maxhead = 2 + next() as usize;
    let maxsize = match next() {
        0 => None,
        m => Some(m as usize * 8),
    };
    let s = next() as usize % 8;
    let sizes: Vec<u8> = (0..s).map(|_| next() % 40).collect();
    let stream = it;
    let setup = Setup {
        block,
        limit,
        maxhead,
        maxsize,
    };
    with_lua(|lua| {
        lua_cover::begin();
        let w = wire(lua);
        w.set("BLOCK", block).expect("set");
        w.set("MAXHEAD", maxhead).expect("set");
        against_model(lua, &w, &setup, stream, &sizes);
        roundtrip(lua, &w, &setup, stream, &sizes);
    });
});

/// http_wire.lua, loaded once over a `socketloop.core` holding the parsers it uses.
fn wire(lua: &Lua) -> Table {
    cached(lua, "fuzz wire", || load_wire(lua))
}

fn load_wire(lua: &Lua) -> Table {
    lua_cover::install(lua);
    install_core(lua, http_head::register);
    lua.load(include_str!("../../lua/socketloop/http/wire.lua"))
        .set_name("@lua/socketloop/http/wire.lua")
        .call(())
        .expect("http_wire.lua")
}

/// Reads a chunked body with the real reader; returns the outcome and what the socket
/// still holds.
fn read_body(lua: &Lua, w: &Table, setup: &Setup, reads: Vec<&[u8]>) -> (Outcome, Vec<u8>) {
    let budget = reads.iter().map(|r| r.len()).sum::<usize>() + 2;
    let fake = Fake {
        sim: Sim::new(reads, setup.limit),
        block: setup.block,
        sent: Vec::new(),
    };
    lua.scope(|scope| {
        let sock = scope.create_userdata(fake)?;
        let conn = lua.create_table()?;
        conn.set("sock", &sock)?;
        let headers = lua.create_table()?;
        let body_source: Function = w.get("body_source")?;
        let (source, state): (Function, Table) =
            body_source.call((conn, "chunked", Value::Nil, &headers, setup.maxsize))?;
        let mut body = Vec::new();
        let mut end = None;
        // Each call that does not end the body takes at least a byte of the stream.
        for _ in 0..budget {
            let out: Vec<Value> = source
                .call::<MultiValue>(())
                .unwrap_or_else(|e| panic!("the reader raised: {e}"))
                .into_iter()
                .collect();
            match (out.first(), out.get(1)) {
                (Some(Value::String(piece)), _) => body.extend_from_slice(&piece.as_bytes()),
                (None | Some(Value::Nil), None | Some(Value::Nil)) => {
                    end = Some(Ok(headers.clone()));
                    break;
                }
                (Some(Value::Nil), Some(Value::String(err))) => {
                    end = Some(Err(err.to_string_lossy()));
                    break;
                }
                _ => panic!("the reader returned {out:?}"),
            }
        }
        let end = end.expect("the body read ends");
        assert_eq!(state.get::<bool>("done")?, end.is_ok(), "state.done");
        let rest: mlua::LuaString = sock.call_method("rest", ())?;
        Ok((Outcome { body, end, used: 0 }, rest.as_bytes().to_vec()))
    })
    .expect("no Lua error around the reader")
}

fn documented(err: &str) -> bool {
    err == "closed"
        || err == TOO_LARGE
        || (err.starts_with("malformed response (") && err.ends_with(')'))
}

fn against_model(lua: &Lua, w: &Table, setup: &Setup, stream: &[u8], sizes: &[u8]) {
    let (got, rest) = read_body(lua, w, setup, split(stream, sizes));
    let want = model(lua, setup, stream);
    let too_large = setup.maxsize.is_some_and(|m| want.body.len() > m);
    match (&got.end, &want.end) {
        (Ok(fields), Ok(want_fields)) => {
            assert!(!too_large, "a body over the limit was read");
            assert_eq!(got.body, want.body, "body");
            assert!(
                same(
                    &Value::Table(fields.clone()),
                    &Value::Table(want_fields.clone())
                ),
                "trailer fields"
            );
            assert_eq!(rest, &stream[want.used..], "bytes left after the body");
        }
        (Err(e), want_end) => {
            assert!(documented(e), "undocumented failure: {e}");
            let same_error = want_end.as_ref().err() == Some(e);
            assert!(
                same_error || (e == TOO_LARGE && too_large),
                "failed with {e}, the model says {:?}",
                want_end.as_ref().map(|_| "a body")
            );
            assert!(
                want.body.starts_with(&got.body),
                "delivered bytes not in the body"
            );
            let short = want.body.len() - got.body.len();
            if e == TOO_LARGE {
                let m = setup.maxsize.expect("a limit");
                assert!(got.body.len() <= m && got.body.len() + setup.block > m);
            } else {
                assert!(short <= setup.block, "lost {short} bytes");
            }
        }
        (Ok(_), Err(e)) => panic!("read a body where the model fails with {e}"),
    }
}

/// The chunked body of `stream` read as a whole, the way RFC 9112 (7.1) frames it, with
/// the reader's limits and its messages.
fn model(lua: &Lua, setup: &Setup, stream: &[u8]) -> Outcome {
    let mut p = 0;
    let mut body = Vec::new();
    let end = model_chunks(lua, setup, stream, &mut p, &mut body);
    Outcome { body, end, used: p }
}

fn model_chunks(
    lua: &Lua,
    setup: &Setup,
    d: &[u8],
    p: &mut usize,
    body: &mut Vec<u8>,
) -> Result<Table, String> {
    let core: Table = lua
        .globals()
        .get::<Table>("package")
        .and_then(|p| p.get::<Table>("loaded"))
        .and_then(|l| l.get("socketloop.core"))
        .expect("core");
    let parser = |name: &str, text: Vec<u8>| -> Result<Vec<Value>, String> {
        let f: Function = core.get(name).expect("parser");
        let out: Vec<Value> = f
            .call::<MultiValue>(lua.create_string(text).expect("string"))
            .expect("the parsers raise nothing")
            .into_iter()
            .collect();
        match &out[0] {
            Value::Nil => Err(out[1].as_string().expect("why").to_string_lossy()),
            _ => Ok(out),
        }
    };
    loop {
        let mut size_line = line(d, p, setup.limit)?;
        size_line.extend_from_slice(b"\r\n");
        let size = match parser("parse_chunk_size", size_line) {
            Ok(out) => match out[0] {
                Value::Integer(n) => n as usize,
                Value::Number(x) => x as usize,
                _ => panic!("a size"),
            },
            Err(why) if why == "partial" => {
                return Err("malformed response (invalid chunk size)".into())
            }
            Err(why) => return Err(why),
        };
        if size == 0 {
            let mut trailer = Vec::new();
            let mut lines = 0;
            loop {
                let l = line(d, p, setup.limit)?;
                if trailer.len() + l.len() + 2 > setup.maxhead {
                    return Err("malformed response (trailer too large)".into());
                }
                trailer.extend_from_slice(&l);
                trailer.extend_from_slice(b"\r\n");
                lines += 1;
                if l.is_empty() {
                    break;
                }
            }
            if lines == 1 {
                return Ok(lua.create_table().expect("table"));
            }
            let out = parser("parse_header_fields", trailer)?;
            return Ok(out[0].as_table().expect("fields").clone());
        }
        let avail = size.min(d.len() - *p);
        body.extend_from_slice(&d[*p..*p + avail]);
        *p += avail;
        if avail < size {
            return Err("closed".into());
        }
        if !line(d, p, setup.limit)?.is_empty() {
            return Err("malformed response (chunk too long)".into());
        }
    }
}

/// A line of `d` from `*p` as receive('*l') answers it (every CR dropped), or the
/// reader's error: 'closed' without LF, line too long past the receive limit.
fn line(d: &[u8], p: &mut usize, limit: usize) -> Result<Vec<u8>, String> {
    let rest = &d[*p..];
    let over = |n: usize| limit != 0 && n > limit;
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) if !over(i) => {
            *p += i + 1;
            Ok(strip_cr(&rest[..i]))
        }
        None if !over(rest.len()) => Err("closed".into()),
        _ => Err("malformed response (line too long)".into()),
    }
}

/// Chunks from the input, written by the client's encoder and read back.
fn roundtrip(lua: &Lua, w: &Table, setup: &Setup, stream: &[u8], sizes: &[u8]) {
    let chunks = split(stream, sizes);
    let fake = Fake {
        sim: Sim::new(Vec::new(), 0),
        block: setup.block,
        sent: Vec::new(),
    };
    let encoded: Vec<u8> = lua
        .scope(|scope| {
            let sock: AnyUserData = scope.create_userdata(fake)?;
            let conn = lua.create_table()?;
            conn.set("sock", &sock)?;
            let body_sink: Function = w.get("body_sink")?;
            let sink: Function = body_sink.call((conn, true))?;
            for chunk in chunks.iter().map(|c| lua.create_string(c)) {
                sink.call::<Value>(chunk?)?;
            }
            sink.call::<Value>(())?;
            let sent: mlua::LuaString = sock.call_method("sent", ())?;
            Ok(sent.as_bytes().to_vec())
        })
        .expect("the encoder raises nothing");
    let plain = Setup {
        maxsize: None,
        ..*setup
    };
    let (got, rest) = read_body(lua, w, &plain, split(&encoded, sizes));
    let fields = got
        .end
        .unwrap_or_else(|e| panic!("own encoding fails: {e}"));
    assert_eq!(got.body, stream, "the chunks read back");
    assert_eq!(fields.pairs::<Value, Value>().count(), 0, "no trailer");
    assert!(rest.is_empty(), "nothing after the body");
}
