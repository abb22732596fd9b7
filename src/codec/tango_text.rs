//! The reading side of tango's text serialization: Lua constructor text, such as
//! `{"greet","Hello",n=1,[2.5]={true}}`, parsed into a [`Tree`] of owned Rust values.
//! Pure Rust, no Lua: `src/lua/tango_text.rs` parses under `catch_unwind`, then pushes
//! the tree onto the Lua stack in a protected call.
//!
//! It reads literals (nil, booleans, numbers, strings with every Lua escape, long
//! strings) and table constructors, plus the spellings tango 0.2 and our serializer use
//! for special numbers (`inf`, `nan`, `1/0`, `-1/0`, `0/0`), and refuses anything else
//! (names, calls, operators), so nothing received ever runs. Numbers other than short
//! decimal integers are converted as LuaJIT's `lj_strscan` converts them (correctly
//! rounded, with its limits on exponents), so they read exactly as `loadstring` reads
//! them. `lua/socketloop/tango/text.lua` documents the format and
//! holds the serializer; the fuzz target `tango_text` checks this parser against
//! `loadstring`.
//!
//! Cost: one pass over the text; 16 bytes a value in the tree (strings without escapes
//! stay in the text, as ranges; a string with escapes is decoded once into the tree).

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

/// Deepest table nesting read whatever `maxdepth` says: the parser, and the binding that
/// pushes the tree, recurse once per level on the C stack.
pub const DEPTH_CAP: f64 = 10_000.0;

/// One value of a parsed text. A [`Tree`] lists them in pre-order: a table's entries
/// follow its node, each a positional value, or [`Node::Named`] then the value, or
/// [`Node::Keyed`] then the key and the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Node {
    Nil,
    Bool(bool),
    Num(f64),
    /// The string in bytes `from..to` of the text.
    Text(u32, u32),
    /// The string in bytes `from..to` of [`Tree::decoded`].
    Decoded(u32, u32),
    /// A table with `items` positional entries and `fields` keyed ones.
    Table {
        items: u32,
        fields: u32,
    },
    /// A `name = value` entry whose name is bytes `from..to` of the text.
    Named(u32, u32),
    /// A `[key] = value` entry; its key is neither nil nor NaN.
    Keyed,
}

/// A parsed text: owned values, with strings as ranges of the text it was parsed from.
#[derive(Debug, Default)]
pub struct Tree {
    /// The value, in pre-order (see [`Node`]); every range in it lies inside the text or
    /// `decoded`, and every table's entries are all there.
    pub nodes: Vec<Node>,
    /// The bytes of strings that had escapes or CRs, decoded.
    pub decoded: Vec<u8>,
    /// The deepest table nesting in `nodes` (0: no table).
    pub depth: u32,
    /// Where (0-based) the first table at that depth starts, for messages.
    pub deepest_at: usize,
}

/// `cannot parse byte N: what` for 0-based position `pos`.
pub fn message_at(pos: usize, what: &[u8]) -> Vec<u8> {
    let mut msg = format!("cannot parse byte {}: ", pos + 1).into_bytes();
    msg.extend_from_slice(what);
    msg
}

/// Parses the whole of `text` (one literal or table constructor, with spaces around),
/// nesting tables at most `maxdepth` (and [`DEPTH_CAP`]) levels deep. The error is the
/// message as bytes (`cannot parse byte N: ...`).
pub fn parse(text: &[u8], maxdepth: f64) -> Result<Tree, Vec<u8>> {
    let mut tree = Tree::default();
    parse_into(text, maxdepth, &mut tree)?;
    Ok(tree)
}

/// [`parse`] into `tree`, which is cleared first (so its buffers can be reused).
pub fn parse_into(text: &[u8], maxdepth: f64, tree: &mut Tree) -> Result<(), Vec<u8>> {
    tree.clear();
    if u32::try_from(text.len()).is_err() {
        return Err(message_at(0, b"text too long"));
    }
    let mut parser = Parser {
        s: text,
        pos: 0,
        maxdepth,
        tree,
    };
    parser.parse()
}

impl Tree {
    /// Empties the tree, keeping its buffers.
    pub fn clear(&mut self) {
        self.nodes.clear();
        self.decoded.clear();
        self.depth = 0;
        self.deepest_at = 0;
    }
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

struct Parser<'s, 't> {
    /// At most u32::MAX bytes, so every position fits a [`Node`].
    s: &'s [u8],
    /// 0-based; messages say pos + 1, as Lua counts bytes.
    pos: usize,
    maxdepth: f64,
    tree: &'t mut Tree,
}

impl<'s> Parser<'s, '_> {
    /// Reads the value the whole text stands for.
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
        Err(message_at(self.pos, what.as_ref()))
    }

    fn add(&mut self, node: Node) {
        self.tree.nodes.push(node);
    }

    /// Bytes `from..to` of the text as a string node.
    fn add_text(&mut self, from: usize, to: usize) {
        self.add(Node::Text(from as u32, to as u32));
    }

    /// `bytes` as a string node, copied into the tree.
    fn add_decoded(&mut self, bytes: &[u8]) {
        let from = self.tree.decoded.len();
        self.tree.decoded.extend_from_slice(bytes);
        // The decoded bytes of one string are fewer than its text's.
        self.add(Node::Decoded(from as u32, self.tree.decoded.len() as u32));
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
                self.add(Node::Nil);
                Ok(())
            }
            b"true" => {
                self.pos = pos + 4;
                self.add(Node::Bool(true));
                Ok(())
            }
            b"false" => {
                self.pos = pos + 5;
                self.add(Node::Bool(false));
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
        let depth = depth as u32;
        if depth > self.tree.depth {
            self.tree.depth = depth;
            self.tree.deepest_at = self.pos;
        }
        let at = self.tree.nodes.len();
        self.add(Node::Table {
            items: 0,
            fields: 0,
        });
        let (mut items, mut fields) = (0u32, 0u32);
        self.pos += 1;
        loop {
            self.skip();
            let c = self.at(self.pos);
            if c == Some(b'}') {
                self.pos += 1;
                self.tree.nodes[at] = Node::Table { items, fields };
                return Ok(());
            }
            if let Some((name, value_at)) = self.named_key() {
                fields += 1;
                self.add(Node::Named(self.pos as u32, (self.pos + name.len()) as u32));
                self.pos = value_at;
                self.value(depth)?;
            } else if c == Some(b'[') && !self.long_bracket_at(self.pos) {
                fields += 1;
                self.add(Node::Keyed);
                self.pos += 1;
                let key_at = self.tree.nodes.len();
                self.value(depth)?;
                self.skip();
                let value_at = match self.at(self.pos) {
                    Some(b']') => self.after_equals(self.pos + 1),
                    _ => None,
                };
                let Some(value_at) = value_at else {
                    return self.fail(self.near());
                };
                self.pos = value_at;
                match self.tree.nodes[key_at] {
                    Node::Nil => return self.fail("table key is nil"),
                    Node::Num(x) if x.is_nan() => return self.fail("table key is NaN"),
                    _ => {}
                }
                self.value(depth)?;
            } else {
                items += 1;
                self.value(depth)?;
            }
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
                self.add_text(i, j);
                return Ok(());
            }
            out.extend_from_slice(&s[i..j]);
            if s[j] == quote {
                self.pos = j + 1;
                self.add_decoded(&out);
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
        let start = start.min(j);
        let body = &self.s[start..j];
        if body.contains(&b'\r') {
            self.add_decoded(&normalize_line_breaks(body));
        } else {
            self.add_text(start, j);
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
        self.add(Node::Num(sign * x));
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
        let Some(x) = scan_number(&self.s[pos..pos + len]) else {
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

/// The value LuaJIT's `lj_strscan` (so `loadstring`) gives a literal of the forms
/// [`Parser::number_text_len`] reads: `0x` and hex digits, or decimal digits with an
/// optional fraction and exponent. None where LuaJIT reads none: an exponent of 2^20 or
/// more, or 2^20 or more fraction digits up to the last non-zero one. Both conversions
/// are correctly rounded, so Rust's decimal one gives the same double.
fn scan_number(text: &[u8]) -> Option<f64> {
    if let [b'0', b'x' | b'X', hex @ ..] = text {
        return Some(hex_integer(hex));
    }
    let mantissa_len = text
        .iter()
        .position(|&b| b == b'e' || b == b'E')
        .unwrap_or(text.len());
    let (mantissa, exponent) = text.split_at(mantissa_len);
    if let Some(digits) = exponent.get(1..) {
        let digits = match digits {
            [b'+' | b'-', rest @ ..] => rest,
            _ => digits,
        };
        let mut magnitude = 0u32;
        for &d in digits {
            magnitude = magnitude * 10 + u32::from(d - b'0');
            if magnitude >= 1 << 20 {
                return None;
            }
        }
    }
    if let Some(dot) = mantissa.iter().position(|&b| b == b'.') {
        let fraction = &mantissa[dot + 1..];
        let significant = fraction
            .iter()
            .rposition(|&b| b != b'0')
            .map_or(0, |k| k + 1);
        if significant >= 1 << 20 {
            return None;
        }
    }
    std::str::from_utf8(text).ok()?.parse::<f64>().ok()
}

/// Hex digits as LuaJIT converts them: the first 16 significant digits exactly, any
/// further ones as a sticky bit and a binary exponent, then one rounding to a double.
fn hex_integer(hex: &[u8]) -> f64 {
    let leading_zeros = hex.iter().take_while(|&&b| b == b'0').count();
    let mut x = 0u64;
    let mut exponent = 0i64;
    for (k, &d) in hex[leading_zeros..].iter().enumerate() {
        let d = u64::from(hex_digit(d).unwrap_or(0));
        if k < 16 {
            x = (x << 4) | d;
        } else {
            x |= u64::from(d != 0);
            exponent += 4;
        }
    }
    if x >> 62 != 0 {
        x = (x >> 2) | (x & 3);
        exponent += 2;
    }
    let mut n = x as i64 as f64;
    // Exact until it overflows to infinity: n has at most 53 significant bits.
    while exponent > 0 && n.is_finite() {
        let step = exponent.min(1000);
        n *= 2f64.powi(step as i32);
        exponent -= step;
    }
    n
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
