//! HTTP/1.x response heads, parsed by the `httparse` crate for the HTTP client
//! (`lua/socketloop/http/wire.lua`). Three functions go into `socketloop.core`:
//!
//! - `parse_response_head(buf) -> code, reason, headers, length, minor, repeated, status`:
//!   a status line and header fields ending in an empty line. `headers` maps lower-case
//!   names to values, repeated fields joined with `", "` (as LuaSocket's `socket.http`
//!   returns them); `length` is how many bytes of `buf` the head took; `minor` is 1 for
//!   HTTP/1.1; `repeated` is nil, or maps each name that came more than once to the list
//!   of its values, unjoined (`Set-Cookie` values cannot be split again once joined);
//!   `status` is the status line as it came, without its line end.
//! - `parse_header_fields(buf) -> headers, length, repeated`: header fields ending in an
//!   empty line (the trailer of a chunked body).
//!
//! Any number of fields is accepted: the caller bounds the size of the head instead.
//! - `parse_chunk_size(buf) -> size, length`: a chunk-size line, extensions ignored.
//!
//! Each answers `nil, 'partial'` when `buf` ends before what it parses does, and
//! `nil, 'malformed response (why)'` when the bytes are not HTTP. A non-string argument
//! raises a Lua error naming the function.

use crate::lua::reply::{guarded, raise, Reply};
use crate::lua::stack::Stack;
use mlua::{ffi, Lua, MultiValue, Table, Value};
use std::borrow::Cow;
use std::ffi::c_int;
use std::mem::MaybeUninit;

/// What the parsers answer when the buffer stops before the end of what they parse.
pub const PARTIAL: &str = "partial";

/// Header fields parsed into a stack array; a head with more is parsed again into a
/// vector sized by its line count.
const STACK_FIELDS: usize = 128;

/// Response header fields parsed into a stack array left uninitialised (httparse writes
/// the slots it fills); a head with more is parsed again into a vector sized by its line
/// count.
const STACK_RESPONSE_FIELDS: usize = 32;

/// Field names up to this long are lower-cased in a stack buffer.
const STACK_NAME: usize = 64;

/// Adds the three parsers to `core`. Costs three function registrations; each call costs
/// one pass over the buffer plus a Lua string per field.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    // SAFETY: lua_parse_response_head follows the raw-binding rules of crate::lua::reply.
    core.set("parse_response_head", unsafe {
        lua.create_c_function(lua_parse_response_head)?
    })?;
    core.set(
        "parse_header_fields",
        lua.create_function(|lua, buf: Value| {
            let buf = string_arg(&buf, "parse_header_fields")?;
            match parse_header_fields(lua, &buf.as_bytes())? {
                Parsed::Done((fields, len)) => Ok(MultiValue::from_vec(vec![
                    Value::Table(fields.joined),
                    Value::Integer(len as i64),
                    fields.repeated.map_or(Value::Nil, Value::Table),
                ])),
                Parsed::Partial => failure(lua, PARTIAL),
                Parsed::Malformed(why) => failure(lua, &malformed(why)),
            }
        })?,
    )?;
    core.set(
        "parse_chunk_size",
        lua.create_function(|lua, buf: Value| {
            let buf = string_arg(&buf, "parse_chunk_size")?;
            match httparse::parse_chunk_size(&buf.as_bytes()) {
                Ok(httparse::Status::Complete((len, size))) => Ok(MultiValue::from_vec(vec![
                    // At most 15 hex digits (httparse's limit), so the f64 may round a
                    // size past 2^53, which no body reaches.
                    Value::Number(size as f64),
                    Value::Integer(len as i64),
                ])),
                Ok(httparse::Status::Partial) => failure(lua, PARTIAL),
                Err(_) => failure(lua, &malformed("invalid chunk size")),
            }
        })?,
    )?;
    Ok(())
}

/// A response head parsed in place: its parts borrow the buffer.
struct Head<'h, 'b> {
    code: u16,
    minor: u8,
    /// Bytes of the buffer the head takes.
    len: usize,
    reason: &'b [u8],
    /// The status line, without the empty lines httparse skips before it.
    status: &'b [u8],
    fields: &'h [httparse::Header<'b>],
}

/// Parses the response head at the start of `buf`, with as many field slots as `raw` has.
fn parse_head<'h, 'b>(
    buf: &'b [u8],
    raw: &'h mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Head<'h, 'b>>, &'static str> {
    let mut response = httparse::Response::new(&mut []);
    let mut config = httparse::ParserConfig::default();
    config
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true)
        .allow_multiple_spaces_in_response_status_delimiters(true);
    let len = match config.parse_response_with_uninit_headers(&mut response, buf, raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(describe(e)),
    };
    let httparse::Response {
        version,
        code,
        reason,
        headers,
    } = response;
    let (Some(code), Some(minor)) = (code, version) else {
        return Err("invalid response status");
    };
    let status_start = buf[..len]
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(len);
    let status_end =
        memchr::memchr2(b'\r', b'\n', &buf[status_start..len]).map_or(len, |i| status_start + i);
    Ok(Some(Head {
        code,
        minor,
        len,
        reason: reason.map_or(&[][..], str::as_bytes),
        status: &buf[status_start..status_end],
        fields: headers,
    }))
}

/// Pushes `name` lower-cased.
fn push_lower(st: &Stack, name: &[u8]) {
    if name.len() <= STACK_NAME {
        let mut lower = [0u8; STACK_NAME];
        let lower = &mut lower[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        st.push_bytes(lower);
    } else {
        st.push_bytes(&name.to_ascii_lowercase());
    }
}

/// `core.parse_response_head(buf)` as a raw C function: the hot path of every response,
/// so it pushes the field table itself instead of going through mlua's conversions.
/// The work (httparse) is done first, into slices of `buf`, which stays on the Lua stack
/// (so in place) while the results are pushed; nothing on this frame needs dropping
/// once pushing starts but the rare vector of a head of many fields.
unsafe extern "C-unwind" fn lua_parse_response_head(state: *mut ffi::lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(buf) = st.string(1) else {
        let why = format!("string expected, got {}", st.type_name(1));
        raise(
            &st,
            &crate::lua::reply::misuse_message("parse_response_head", 1, &why),
        );
    };
    let mut raw = [const { MaybeUninit::<httparse::Header>::uninit() }; STACK_RESPONSE_FIELDS];
    let mut spill: Vec<MaybeUninit<httparse::Header>> = Vec::new();
    let (raw, spill) = (&mut raw, &mut spill);
    let located = guarded(move || match parse_head(buf, raw) {
        Err(TOO_MANY) => {
            spill.resize_with(line_count(buf), MaybeUninit::uninit);
            parse_head(buf, spill)
        }
        other => other,
    });
    let head = match located {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => return Reply::Fail(PARTIAL.into()).push(&st),
        Ok(Err(why)) => return Reply::Fail(malformed(why).into()).push(&st),
        Err(panic) => return Reply::Internal(panic).push(&st),
    };
    st.push_int(head.code as i64);
    st.push_bytes(head.reason);
    ffi::lua_createtable(state, 0, head.fields.len().min(64) as c_int);
    let fields_at = st.count();
    // the `repeated` table's slot, nil until a name repeats
    st.push_nil();
    let repeated_at = st.count();
    for field in head.fields {
        let value = unfold(field.value);
        push_lower(&st, field.name.as_bytes());
        ffi::lua_pushvalue(state, -1);
        ffi::lua_rawget_(state, fields_at);
        // stack: name, the value so far (nil unless the name repeats)
        if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
            ffi::lua_settop(state, -2);
            st.push_bytes(&value);
            ffi::lua_rawset(state, fields_at);
            continue;
        }
        // A repeat: the joined value goes in the fields, each value in `repeated`.
        if ffi::lua_type(state, repeated_at) == ffi::LUA_TNIL {
            ffi::lua_createtable(state, 0, 1);
            ffi::lua_replace(state, repeated_at);
        }
        ffi::lua_pushvalue(state, -2);
        ffi::lua_rawget_(state, repeated_at);
        if ffi::lua_type(state, -1) == ffi::LUA_TNIL {
            // the first repeat: `previous` is still the first value alone
            ffi::lua_settop(state, -2);
            ffi::lua_createtable(state, 2, 0);
            ffi::lua_pushvalue(state, -2);
            ffi::lua_rawseti_(state, -2, 1);
            ffi::lua_pushvalue(state, -3);
            ffi::lua_pushvalue(state, -2);
            ffi::lua_rawset(state, repeated_at);
        }
        // stack: name, previous, list
        let n = ffi::lua_objlen(state, -1);
        st.push_bytes(&value);
        ffi::lua_rawseti_(state, -2, n as c_int + 1);
        ffi::lua_settop(state, -2);
        // stack: name, previous; the joined value is previous .. ", " .. value
        st.push_str(", ");
        st.push_bytes(&value);
        ffi::lua_concat(state, 3);
        ffi::lua_rawset(state, fields_at);
    }
    st.push_int(head.len as i64);
    st.push_int(head.minor as i64);
    ffi::lua_pushvalue(state, repeated_at);
    ffi::lua_remove(state, repeated_at);
    st.push_bytes(head.status);
    7
}

/// What a parser made of a buffer.
pub enum Parsed<T> {
    /// A complete head (or field block, or chunk size).
    Done(T),
    /// The buffer ends too early.
    Partial,
    /// Not HTTP; says why.
    Malformed(&'static str),
}

/// What httparse says when `raw` has too few slots for the fields.
const TOO_MANY: &str = "too many header fields";

/// An upper bound on the header fields in `buf`: its line count.
fn line_count(buf: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', buf).count() + 1
}

/// Parses header fields ending in an empty line at the start of `buf` (a chunked body's
/// trailer). Returns the field table and the bytes taken. Costs one pass over the
/// fields and one Lua string per field.
pub fn parse_header_fields(lua: &Lua, buf: &[u8]) -> mlua::Result<Parsed<(Fields, usize)>> {
    let mut raw = [httparse::EMPTY_HEADER; STACK_FIELDS];
    match httparse::parse_headers(buf, &mut raw) {
        Ok(httparse::Status::Complete((len, fields))) => {
            Ok(Parsed::Done((field_table(lua, fields)?, len)))
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            let mut raw = vec![httparse::EMPTY_HEADER; line_count(buf)];
            match httparse::parse_headers(buf, &mut raw) {
                Ok(httparse::Status::Complete((len, fields))) => {
                    Ok(Parsed::Done((field_table(lua, fields)?, len)))
                }
                Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
                Err(e) => Ok(Parsed::Malformed(describe(e))),
            }
        }
        Err(e) => Ok(Parsed::Malformed(describe(e))),
    }
}

/// Header fields as Lua tables.
pub struct Fields {
    /// Lower-case name -> value, repeated fields joined with ", ".
    pub joined: Table,
    /// Lower-case name -> list of values, for the names that came more than once;
    /// None when none did.
    pub repeated: Option<Table>,
}

/// The joined table and, when a name repeats, the lists of its values.
fn field_table(lua: &Lua, fields: &[httparse::Header]) -> mlua::Result<Fields> {
    let table = lua.create_table_with_capacity(0, fields.len())?;
    let mut repeated: Option<Table> = None;
    for field in fields {
        let name = field.name.to_ascii_lowercase();
        let value = unfold(field.value);
        match table.raw_get::<Option<mlua::LuaString>>(name.as_str())? {
            Some(previous) => {
                let value_string = lua.create_string(&value)?;
                let lists = match &repeated {
                    Some(t) => t.clone(),
                    None => {
                        let t = lua.create_table()?;
                        repeated = Some(t.clone());
                        t
                    }
                };
                match lists.raw_get::<Option<Table>>(name.as_str())? {
                    Some(list) => list.raw_push(value_string)?,
                    // The first repeat: `previous` is still the first value alone.
                    None => lists.raw_set(
                        name.as_str(),
                        lua.create_sequence_from([previous.clone(), value_string])?,
                    )?,
                }
                let mut joined = previous.as_bytes().to_vec();
                joined.extend_from_slice(b", ");
                joined.extend_from_slice(&value);
                table.raw_set(name, lua.create_string(&joined)?)?;
            }
            None => table.raw_set(name, lua.create_string(&value)?)?,
        }
    }
    Ok(Fields {
        joined: table,
        repeated,
    })
}

/// A field value with obsolete line folding (CRLF followed by spaces) turned into one
/// space, as LuaSocket unfolds them. Copies only values that were folded.
fn unfold(value: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr2(b'\r', b'\n', value).is_none() {
        return Cow::Borrowed(value);
    }
    let mut out = Vec::with_capacity(value.len());
    let mut folding = false;
    for &b in value {
        let blank = matches!(b, b'\r' | b'\n' | b' ' | b'\t');
        if matches!(b, b'\r' | b'\n') {
            folding = true;
        } else if !(folding && blank) {
            if folding {
                out.push(b' ');
                folding = false;
            }
            out.push(b);
        }
    }
    Cow::Owned(out)
}

fn describe(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid token",
        httparse::Error::TooManyHeaders => TOO_MANY,
        httparse::Error::Version => "invalid status line",
    }
}

fn malformed(why: &str) -> String {
    format!("malformed response ({why})")
}

fn failure(lua: &Lua, message: &str) -> mlua::Result<MultiValue> {
    let message = Value::String(lua.create_string(message)?);
    Ok(MultiValue::from_vec(vec![Value::Nil, message]))
}

/// The buffer argument; anything but a string is misuse, raised naming `fname`.
fn string_arg(v: &Value, fname: &str) -> mlua::Result<mlua::LuaString> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(mlua::Error::RuntimeError(format!(
            "bad argument #1 to '{fname}' (string expected, got {})",
            other.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What core.parse_response_head answers.
    struct Head {
        code: u16,
        reason: String,
        fields: Table,
        len: usize,
        minor: u8,
        repeated: Option<Table>,
    }

    /// What the C function returns, each value as it may be.
    type Returned = (
        Option<u16>,
        String,
        Option<Table>,
        Option<usize>,
        Option<u8>,
        Option<Table>,
    );

    /// Calls the C function: Ok(head), or Err(the message of `nil, message`).
    fn parse(lua: &Lua, buf: &[u8]) -> Result<Head, String> {
        // SAFETY: as register.
        let f = unsafe { lua.create_c_function(lua_parse_response_head) }.unwrap();
        let (code, reason, fields, len, minor, repeated): Returned =
            f.call(lua.create_string(buf).unwrap()).unwrap();
        match (code, fields, len, minor) {
            (Some(code), Some(fields), Some(len), Some(minor)) => Ok(Head {
                code,
                reason,
                fields,
                len,
                minor,
                repeated,
            }),
            _ => Err(reason),
        }
    }

    fn head(lua: &Lua, buf: &[u8]) -> Head {
        parse(lua, buf).expect("parsed")
    }

    fn field(h: &Head, name: &str) -> Option<String> {
        h.fields.get::<Option<String>>(name).expect("field")
    }

    #[test]
    fn complete_head() {
        let lua = Lua::new();
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nx-a: 2\r\n\r\nhello";
        let h = head(&lua, buf);
        assert_eq!((h.code, h.reason.as_str(), h.minor), (200, "OK", 1));
        assert_eq!(h.len, buf.len() - 5);
        assert_eq!(field(&h, "content-length").as_deref(), Some("5"));
        assert_eq!(field(&h, "x-a").as_deref(), Some("1, 2"));
    }

    #[test]
    fn many_fields_and_repeats() {
        let lua = Lua::new();
        let mut buf = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..1500 {
            buf.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
        }
        buf.extend_from_slice(b"Set-Cookie: a=1, b\r\nSet-Cookie: c=2\r\nset-cookie: d=3\r\n\r\n");
        let h = head(&lua, &buf);
        assert_eq!(field(&h, "x-f1499").as_deref(), Some("1499"));
        assert_eq!(field(&h, "set-cookie").as_deref(), Some("a=1, b, c=2, d=3"));
        let list: Vec<String> = h.repeated.expect("repeated").get("set-cookie").unwrap();
        assert_eq!(list, ["a=1, b", "c=2", "d=3"]);
    }

    #[test]
    fn folded_and_bare_lf() {
        let lua = Lua::new();
        let h = head(&lua, b"HTTP/1.0 404 Not Found\nX-Long: a\n  b\n\n");
        assert_eq!((h.code, h.minor), (404, 0));
        assert_eq!(field(&h, "x-long").as_deref(), Some("a b"));
    }

    #[test]
    fn partial_and_malformed() {
        let lua = Lua::new();
        assert_eq!(
            parse(&lua, b"HTTP/1.1 200 OK\r\nA: b\r\n").err().as_deref(),
            Some(PARTIAL)
        );
        for garbage in [&b"garbage here\r\n\r\n"[..], b"HTTP/1.1 2x0 OK\r\n\r\n"] {
            let err = parse(&lua, garbage).err().unwrap_or_default();
            assert!(err.starts_with("malformed response ("), "{err}");
        }
    }

    #[test]
    fn trailer_fields() {
        let lua = Lua::new();
        match parse_header_fields(&lua, b"X-Sum: 9\r\n\r\n").unwrap() {
            Parsed::Done((t, len)) => {
                assert_eq!(len, 12);
                assert_eq!(t.joined.get::<String>("x-sum").unwrap(), "9");
                assert!(t.repeated.is_none());
            }
            _ => panic!("not parsed"),
        }
    }

    #[test]
    fn lua_interface() {
        let lua = Lua::new();
        let core = lua.create_table().unwrap();
        register(&lua, &core).unwrap();
        lua.globals().set("core", core).unwrap();
        let (code, kind): (i64, String) = lua
            .load(
                r#"
                local code, reason, h, len, minor, _, status = core.parse_response_head('HTTP/1.1 204 No Content\r\n\r\n')
                assert(status == 'HTTP/1.1 204 No Content', status)
                status = select(7, core.parse_response_head('\r\n\nHTTP/1.0 200 OK\nA: b\n\n'))
                assert(status == 'HTTP/1.0 200 OK', status)
                local _, partial = core.parse_response_head('HTTP/1.1 200')
                local size = core.parse_chunk_size('1f;ext=1\r\n')
                assert(size == 31, size)
                assert(reason == 'No Content' and len == 27 and minor == 1, reason)
                assert(not pcall(core.parse_chunk_size, {}))
                local ok, err = pcall(core.parse_response_head, {})
                assert(not ok and err:find("bad argument #1 to 'parse_response_head' (string expected, got table)", 1, true), err)
                return code, partial
            "#,
            )
            .eval()
            .unwrap();
        assert_eq!((code, kind.as_str()), (204, PARTIAL));
    }
}
