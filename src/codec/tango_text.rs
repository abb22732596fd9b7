//! The reading side of tango's text serialization: Lua constructor text, such as
//! `{"greet","Hello",n=1,[2.5]={true}}`, parsed straight onto the Lua stack.
//!
//! It reads literals (nil, booleans, numbers, strings with every Lua escape, long
//! strings) and table constructors, plus the spellings tango 0.2 and our serializer use
//! for special numbers (`inf`, `nan`, `1/0`, `-1/0`, `0/0`), and refuses anything else
//! (names, calls, operators), so nothing received ever runs. Numbers other than short
//! decimal integers go through LuaJIT's own conversion, so they read exactly as
//! `loadstring` reads them. `lua/socketloop/tango/text.lua` documents the format and
//! holds the serializer; the fuzz target `tango_text` checks this parser against
//! `loadstring`.
//!
//! Cost: one pass over the text; memory only for the Lua values made (and, for a string
//! with escapes, its bytes once).

use crate::lua::stack::{Ret, Stack};
use mlua::ffi::{self, lua_State};
use mlua::{Function, Lua, Table};
use std::ffi::c_int;

/// LuaJIT's reserved words (`goto` is not one: LuaJIT reads it as a name in a
/// constructor).
const RESERVED: [&[u8]; 21] = [
    b"and",
    b"break",
    b"do",
    b"else",
    b"elseif",
    b"end",
    b"false",
    b"for",
    b"function",
    b"if",
    b"in",
    b"local",
    b"nil",
    b"not",
    b"or",
    b"repeat",
    b"return",
    b"then",
    b"true",
    b"until",
    b"while",
];

/// Deepest table nesting read whatever `maxdepth` says: the parser recurses once per
/// level on the C stack.
const DEPTH_CAP: f64 = 10_000.0;

/// Sets `core.tango_parse(text, maxdepth) -> true, value | false, message`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    // SAFETY: pushes one C function.
    let parse: Function = unsafe {
        lua.exec_raw((), |state| {
            ffi::lua_pushcclosure(state, tango_parse, 0);
        })
    }?;
    core.set("tango_parse", parse)
}

unsafe extern "C-unwind" fn tango_parse(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let Some(text) = st.string(1) else {
        let why = format!("cannot parse a {}, string expected", st.type_name(1));
        return refuse(&st, why.as_bytes());
    };
    let maxdepth = st.strict_number(2).unwrap_or(100.0);
    let mut parser = Parser {
        s: text,
        pos: 0,
        maxdepth,
        st: &st,
    };
    // The value (pushed by parse on success) goes below `true`.
    match parser.parse() {
        Ok(()) => {
            st.push_bool(true);
            ffi::lua_insert(state, -2);
            2
        }
        Err(why) => refuse(&st, &why),
    }
}

fn refuse(st: &Stack, why: &[u8]) -> Ret {
    st.push_bool(false);
    st.push_bytes(why);
    2
}

/// An error is the message as bytes: it quotes input bytes as they are, as Lua would.
type Parsed<T = ()> = Result<T, Vec<u8>>;

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

fn is_alpha(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

struct Parser<'a, 's> {
    s: &'s [u8],
    /// 0-based; messages say pos + 1, as Lua counts bytes.
    pos: usize,
    maxdepth: f64,
    st: &'a Stack<'s>,
}

impl<'s> Parser<'_, 's> {
    /// Pushes the value the whole text stands for.
    fn parse(&mut self) -> Parsed {
        self.value(0)?;
        self.skip();
        if self.pos < self.s.len() {
            return self.fail([self.near(), b" after the value".to_vec()].concat());
        }
        Ok(())
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.s.get(i).copied()
    }

    fn fail<T>(&self, what: impl AsRef<[u8]>) -> Parsed<T> {
        let mut msg = format!("cannot parse byte {}: ", self.pos + 1).into_bytes();
        msg.extend_from_slice(what.as_ref());
        Err(msg)
    }

    fn skip(&mut self) {
        self.pos = self.after_spaces(self.pos);
    }

    /// Where the run of spaces from `i` ends.
    fn after_spaces(&self, i: usize) -> usize {
        i + self.run(i, is_space).len()
    }

    /// The run of `pred` bytes from `i`.
    fn run(&self, i: usize, pred: impl Fn(u8) -> bool) -> &'s [u8] {
        let s: &'s [u8] = self.s;
        let rest = s.get(i..).unwrap_or(&[]);
        let n = rest.iter().take_while(|&&b| pred(b)).count();
        &rest[..n]
    }

    /// What is at the current position, for errors.
    fn near(&self) -> Vec<u8> {
        let what = match self.run(self.pos, is_word) {
            [] => match self.s.get(self.pos..=self.pos) {
                None => return b"unexpected end".to_vec(),
                Some(byte) => byte,
            },
            word => word,
        };
        [&b"unexpected '"[..], what, b"'"].concat()
    }

    /// A name (`[%a_][%w_]*`) at `i`, or empty.
    fn name_at(&self, i: usize) -> &'s [u8] {
        match self.at(i) {
            Some(b) if is_alpha(b) => self.run(i, is_word),
            _ => &[],
        }
    }

    fn value(&mut self, depth: u32) -> Parsed {
        self.skip();
        let pos = self.pos;
        match self.at(pos) {
            Some(b'{') => return self.table(depth + 1),
            Some(q @ (b'"' | b'\'')) => return self.short_string(q),
            Some(b'[') => return self.long_string(),
            Some(b'0'..=b'9' | b'.' | b'-') => return self.number(),
            _ => {}
        }
        match self.name_at(pos) {
            b"nil" => {
                self.pos = pos + 3;
                self.st.push_nil();
                Ok(())
            }
            b"true" => {
                self.pos = pos + 4;
                self.st.push_bool(true);
                Ok(())
            }
            b"false" => {
                self.pos = pos + 5;
                self.st.push_bool(false);
                Ok(())
            }
            b"inf" | b"nan" => self.number(),
            _ => self.fail(self.near()),
        }
    }

    fn table(&mut self, depth: u32) -> Parsed {
        let depth = depth as f64;
        if depth > self.maxdepth || depth > DEPTH_CAP {
            let limit = self.maxdepth.min(DEPTH_CAP);
            let limit = lua_number_text(limit);
            return self.fail(format!("tables nested deeper than {limit} levels"));
        }
        // SAFETY: room for the table, a key and a value; false only past LuaJIT's limit.
        if unsafe { ffi::lua_checkstack(self.st.state(), 3) } == 0 {
            return self.fail("tables nested too deep for the Lua stack");
        }
        self.st.push_table();
        let mut index = 0usize;
        self.pos += 1;
        loop {
            self.skip();
            let c = self.at(self.pos);
            if c == Some(b'}') {
                self.pos += 1;
                return Ok(());
            }
            if let Some((name, value_at)) = self.named_key() {
                self.st.push_bytes(name);
                self.pos = value_at;
                self.value(depth as u32)?;
            } else if c == Some(b'[') && !self.long_bracket_at(self.pos) {
                self.pos += 1;
                self.value(depth as u32)?;
                self.skip();
                let value_at = match self.at(self.pos) {
                    Some(b']') => self.after_equals(self.pos + 1),
                    _ => None,
                };
                let Some(value_at) = value_at else {
                    return self.fail(self.near());
                };
                self.pos = value_at;
                // SAFETY: the key is at -1.
                let key_type = unsafe { ffi::lua_type(self.st.state(), -1) };
                if key_type == ffi::LUA_TNIL {
                    return self.fail("table key is nil");
                }
                if key_type == ffi::LUA_TNUMBER && self.st.number(-1).is_some_and(f64::is_nan) {
                    return self.fail("table key is NaN");
                }
                self.value(depth as u32)?;
            } else {
                index += 1;
                self.st.push_int(index as i64);
                self.value(depth as u32)?;
            }
            // SAFETY: table at -3, key at -2, value at -1 (a non-nil, non-NaN key).
            unsafe { ffi::lua_rawset(self.st.state(), -3) };
            self.skip();
            match self.at(self.pos) {
                Some(b',' | b';') => self.pos += 1,
                Some(b'}') => {}
                _ => return self.fail(self.near()),
            }
        }
    }

    /// `name = v` (not `==`) at the current position: the name, and where the value
    /// starts. A reserved word is no name (`{nil=1}` is not Lua).
    fn named_key(&self) -> Option<(&'s [u8], usize)> {
        let name = self.name_at(self.pos);
        if name.is_empty() || RESERVED.contains(&name) {
            return None;
        }
        let value_at = self.after_equals(self.pos + name.len())?;
        (self.at(value_at)? != b'=').then_some((name, value_at))
    }

    /// Spaces then `=` from `i`: where what follows the `=` starts.
    fn after_equals(&self, i: usize) -> Option<usize> {
        let i = self.after_spaces(i);
        (self.at(i) == Some(b'=')).then_some(i + 1)
    }

    /// `[[` or `[=...=[` at `i`: a long string, not a `[key]`.
    fn long_bracket_at(&self, i: usize) -> bool {
        let eqs = self.run(i + 1, |b| b == b'=').len();
        self.at(i) == Some(b'[') && self.at(i + 1 + eqs) == Some(b'[')
    }

    fn short_string(&mut self, quote: u8) -> Parsed {
        let s = self.s;
        let mut i = self.pos + 1;
        let stop = |b: u8| b == quote || b == b'\\' || b == b'\r' || b == b'\n';
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(j) = s
                .get(i..)
                .and_then(|r| r.iter().position(|&b| stop(b)))
                .map(|k| i + k)
            else {
                self.pos = s.len();
                return self.fail("unfinished string");
            };
            if s[j] == quote && out.is_empty() {
                self.pos = j + 1;
                self.st.push_bytes(&s[i..j]);
                return Ok(());
            }
            out.extend_from_slice(&s[i..j]);
            if s[j] == quote {
                self.pos = j + 1;
                self.st.push_bytes(&out);
                return Ok(());
            }
            if s[j] != b'\\' {
                self.pos = j;
                return self.fail("unfinished string");
            }
            i = self.escape(j, &mut out)?;
        }
    }

    /// Decodes the escape whose backslash is at `j` onto `out`; returns where the string
    /// goes on.
    fn escape(&mut self, j: usize, out: &mut Vec<u8>) -> Parsed<usize> {
        let e = self.at(j + 1);
        let simple = match e {
            Some(b'a') => Some(0x07),
            Some(b'b') => Some(0x08),
            Some(b'f') => Some(0x0c),
            Some(b'n') | Some(b'\n') | Some(b'\r') => Some(b'\n'),
            Some(b'r') => Some(b'\r'),
            Some(b't') => Some(b'\t'),
            Some(b'v') => Some(0x0b),
            Some(b @ (b'\\' | b'"' | b'\'')) => Some(b),
            _ => None,
        };
        if let Some(byte) = simple {
            out.push(byte);
            // "\<CR><LF>" and "\<LF><CR>" are one line break.
            let pair = (self.at(j + 1), self.at(j + 2));
            let crlf = matches!(
                pair,
                (Some(b'\r'), Some(b'\n')) | (Some(b'\n'), Some(b'\r'))
            );
            return Ok(j + 2 + crlf as usize);
        }
        match e {
            Some(b'0'..=b'9') => {
                let digits = self.run(j + 1, |b| b.is_ascii_digit());
                let digits = &digits[..digits.len().min(3)];
                let code = digits.iter().fold(0u32, |n, d| n * 10 + (d - b'0') as u32);
                if code > 255 {
                    self.pos = j;
                    return self.fail("escape too large");
                }
                out.push(code as u8);
                Ok(j + 1 + digits.len())
            }
            Some(b'x') => {
                let hex = (self.at(j + 2), self.at(j + 3));
                let (Some(h), Some(l)) = (hex.0.and_then(hex_digit), hex.1.and_then(hex_digit))
                else {
                    self.pos = j;
                    return self.fail("malformed \\x escape");
                };
                out.push(h * 16 + l);
                Ok(j + 4)
            }
            Some(b'z') => Ok(self.after_spaces(j + 2)),
            Some(b'u') => {
                let hex = self.run(j + 3, |b| b.is_ascii_hexdigit());
                let closed = self.at(j + 2) == Some(b'{')
                    && !hex.is_empty()
                    && self.at(j + 3 + hex.len()) == Some(b'}');
                let cp = (closed && hex.len() <= 8).then(|| {
                    hex.iter()
                        .fold(0u64, |n, &d| n * 16 + hex_digit(d).unwrap_or(0) as u64)
                });
                let Some(cp) = cp.filter(|&cp| cp <= 0x10FFFF) else {
                    self.pos = j;
                    return self.fail("malformed \\u escape");
                };
                push_utf8(out, cp as u32);
                Ok(j + 4 + hex.len())
            }
            _ => {
                self.pos = j;
                self.fail("invalid escape")
            }
        }
    }

    /// `[[...]]`, `[==[...]==]`: no escapes; a line break right after the opening is
    /// dropped, and every line break inside reads as LF, as Lua's lexer reads them.
    fn long_string(&mut self) -> Parsed {
        let eqs = self.run(self.pos + 1, |b| b == b'=').len();
        if self.at(self.pos + 1 + eqs) != Some(b'[') {
            return self.fail(self.near());
        }
        let open_end = self.pos + 1 + eqs; // the second [
        let mut close = vec![b']'];
        close.extend(std::iter::repeat_n(b'=', eqs));
        close.push(b']');
        let body_from = open_end + 1;
        let Some(j) = self
            .s
            .get(body_from..)
            .and_then(|r| r.windows(close.len()).position(|w| w == close.as_slice()))
            .map(|k| body_from + k)
        else {
            self.pos = self.s.len();
            return self.fail("unfinished long string");
        };
        let mut start = body_from;
        match (self.at(start), self.at(start + 1)) {
            (Some(b'\r'), Some(b'\n')) | (Some(b'\n'), Some(b'\r')) => start += 2,
            (Some(b'\r' | b'\n'), _) => start += 1,
            _ => {}
        }
        self.pos = j + close.len();
        let body = self.s.get(start..j).unwrap_or(&[]);
        if body.contains(&b'\r') {
            self.st.push_bytes(&normalize_line_breaks(body));
        } else {
            self.st.push_bytes(body);
        }
        Ok(())
    }

    /// A number, with optional signs and an optional division by another literal (how
    /// 1/0, -1/0 and 0/0 are written).
    fn number(&mut self) -> Parsed {
        let mut sign = 1.0;
        while self.at(self.pos) == Some(b'-') {
            if self.at(self.pos + 1) == Some(b'-') {
                return self.fail("unexpected comment");
            }
            sign = -sign;
            self.pos += 1;
            self.skip();
        }
        let word = self.name_at(self.pos);
        let mut x = if word.is_empty() {
            self.literal_number()?
        } else {
            let x = match word {
                b"inf" => f64::INFINITY,
                // As Lua computes 0/0 (x86's default NaN has its sign bit set).
                b"nan" => std::hint::black_box(0.0_f64) / std::hint::black_box(0.0_f64),
                _ => return self.fail(self.near()),
            };
            self.pos += word.len();
            x
        };
        self.skip();
        if self.at(self.pos) == Some(b'/') {
            self.pos += 1;
            self.skip();
            x /= self.literal_number()?;
            self.skip();
        }
        self.st.push_num(sign * x);
        Ok(())
    }

    /// An unsigned numeric literal: hex, decimal with optional fraction and exponent.
    fn literal_number(&mut self) -> Parsed<f64> {
        let pos = self.pos;
        let digits = self.run(pos, |b| b.is_ascii_digit());
        let next = self.at(pos + digits.len());
        if !digits.is_empty() && digits.len() < 16 && !next.is_some_and(continues_number) {
            self.pos = pos + digits.len();
            return Ok(digits.iter().fold(0.0, |n, d| n * 10.0 + (d - b'0') as f64));
        }
        let Some(len) = self.number_text_len(pos) else {
            return self.fail("malformed number");
        };
        if self.at(pos + len).is_some_and(continues_number) {
            return self.fail("malformed number");
        }
        // LuaJIT's conversion, as `loadstring` reads the literal (it reads none from an
        // exponent of 10 digits or more, as in 1e9254740992).
        self.st.push_bytes(&self.s[pos..pos + len]);
        let x = self.st.number(-1);
        // SAFETY: pops the string pushed above.
        unsafe { ffi::lua_settop(self.st.state(), -2) };
        let Some(x) = x else {
            return self.fail("malformed number");
        };
        self.pos = pos + len;
        Ok(x)
    }

    /// The length of the first of these forms found at `i`: `0x` hex digits; digits, an
    /// optional `.`, digits, an exponent; `.` digits and an exponent; digits, an optional
    /// `.`, digits; `.` digits.
    fn number_text_len(&self, i: usize) -> Option<usize> {
        let hex = self.run(i + 2, |b| b.is_ascii_hexdigit()).len();
        if self.at(i) == Some(b'0') && matches!(self.at(i + 1), Some(b'x' | b'X')) && hex > 0 {
            return Some(2 + hex);
        }
        let int = self.run(i, |b| b.is_ascii_digit()).len();
        let dot = (self.at(i + int) == Some(b'.')) as usize;
        let frac = self.run(i + int + dot, |b| b.is_ascii_digit()).len();
        let mantissa = if int > 0 {
            int + dot + frac
        } else if dot == 1 && frac > 0 {
            1 + frac
        } else {
            return None;
        };
        Some(mantissa + self.exponent_len(i + mantissa))
    }

    /// `[eE][+-]?%d+` at `i`, or 0.
    fn exponent_len(&self, i: usize) -> usize {
        if !matches!(self.at(i), Some(b'e' | b'E')) {
            return 0;
        }
        let sign = matches!(self.at(i + 1), Some(b'+' | b'-')) as usize;
        let digits = self.run(i + 1 + sign, |b| b.is_ascii_digit()).len();
        if digits == 0 {
            0
        } else {
            1 + sign + digits
        }
    }
}

/// `body` with each line break (CR LF, LF CR, CR or LF) as one LF.
fn normalize_line_breaks(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        i += 1;
        if b == b'\r' || b == b'\n' {
            out.push(b'\n');
            if body
                .get(i)
                .is_some_and(|&next| (next == b'\r' || next == b'\n') && next != b)
            {
                i += 1;
            }
        } else {
            out.push(b);
        }
    }
    out
}

/// Bytes that may continue a number literal into something else: letters, digits, `_`
/// and `.`.
fn continues_number(b: u8) -> bool {
    is_word(b) || b == b'.'
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Encodes code point `cp` (up to 0x10FFFF, surrogates included, as Lua's \u does).
fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    match cp {
        0..=0x7f => out.push(cp as u8),
        0x80..=0x7ff => out.extend([0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]),
        0x800..=0xffff => out.extend([
            0xe0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
        _ => out.extend([
            0xf0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3f) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
    }
}

/// `n` as Lua's tostring writes it (for the depth limit in a message).
fn lua_number_text(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}
