//! The receive buffer and LuaSocket's receive patterns (`'*l'`, `'*a'`, a byte count).
//!
//! Bytes read from a socket land here until a pattern is complete. The buffer owns no
//! memory while it is empty, so an idle connection costs nothing for it; it grows to hold
//! the longest incomplete match and is released again once drained.

/// What a `receive` call asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// `'*l'`: a line ending in LF; every CR in it is dropped, the LF is not returned.
    Line,
    /// `'*a'`: everything until the peer closes the connection.
    All,
    /// A number: exactly that many bytes.
    Bytes(usize),
}

impl Pattern {
    /// Parses LuaSocket's pattern strings (`'*l'`, `'l'`, `'*a'`, `'a'`).
    pub fn parse(text: &[u8]) -> Option<Pattern> {
        match text {
            b"*l" | b"l" => Some(Pattern::Line),
            b"*a" | b"a" => Some(Pattern::All),
            _ => None,
        }
    }
}

/// What the buffered bytes answer to a receive, before any more is read.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A complete match: its length in the buffer and the length to consume.
    Match(usize, usize),
    /// The match is (or would be) longer than the limit: fail with the first
    /// [`RecvBuffer::limit_cut`] bytes as the partial result.
    OverLimit,
    /// The peer closed before the pattern completed (or `'*a'` found nothing).
    Closed,
    /// Read more.
    NeedMore,
}

/// A complete match found in a fresh read by [`RecvBuffer::take_read`].
#[derive(Debug, PartialEq, Eq)]
pub struct Fresh<'a> {
    /// The matched region (a line without its LF).
    pub matched: &'a [u8],
    /// The region is the result as it is: no CR to drop.
    pub verbatim: bool,
}

/// Bytes received but not yet handed to Lua. In every socket: the offsets take 32 bits
/// (see `consume` and `find` for what keeps them there).
#[derive(Debug, Default)]
pub struct RecvBuffer {
    data: Vec<u8>,
    /// Start of the unconsumed bytes in `data` (at most `data.len()`).
    start: u32,
    /// How far `data[start..]` is known to hold no LF, so long lines are scanned once; an
    /// underestimate (a line longer than 4 GiB is scanned from 4 GiB on) stays true.
    scanned: u32,
    /// Most bytes one receive may take (0: no limit); up to 2^53, so a full usize.
    limit: usize,
}

impl RecvBuffer {
    /// Number of buffered bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.data.len() - self.start as usize
    }

    /// True when nothing is buffered.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the receive limit (0 removes it); see [`RecvBuffer::exceeds_limit`].
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// The configured limit (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// True when `n` bytes (a match, or an incomplete pattern) are more than a receive
    /// may take.
    #[inline]
    pub fn exceeds_limit(&self, n: usize) -> bool {
        self.limit != 0 && n > self.limit
    }

    /// Appends received bytes. The buffer itself never refuses them: the receive checks
    /// the limit against what is buffered, so no byte taken from the kernel is lost.
    pub fn push(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.start > 0 && self.is_empty() {
            self.clear();
        }
        self.data.extend_from_slice(bytes);
    }

    /// The receive algorithm's decision on what is buffered (`eof`: the peer closed).
    /// The same for every way the stream was split into reads. Inline for the common
    /// case, a receive that has to read: nothing buffered answers only a zero count.
    #[inline]
    pub fn verdict(&mut self, pattern: Pattern, eof: bool) -> Verdict {
        // Zero bytes too wait for data or the end of the stream, as LuaSocket's
        // receive(0), which answers 'closed' or 'timeout' rather than '' on an empty buffer.
        if self.is_empty() {
            if !eof {
                return Verdict::NeedMore;
            }
            if pattern == Pattern::Bytes(0) {
                return Verdict::Closed;
            }
        }
        self.verdict_on_bytes(pattern, eof)
    }

    fn verdict_on_bytes(&mut self, pattern: Pattern, eof: bool) -> Verdict {
        if let Some((len, used)) = self.find(pattern, eof) {
            if self.exceeds_limit(len) {
                return Verdict::OverLimit;
            }
            if pattern == Pattern::All && len == 0 {
                return Verdict::Closed;
            }
            return Verdict::Match(len, used);
        }
        if eof {
            return Verdict::Closed;
        }
        if self.exceeds_limit(self.len()) {
            return Verdict::OverLimit;
        }
        Verdict::NeedMore
    }

    /// Takes a fresh read: when nothing was buffered and the read holds a complete match
    /// within the limit, returns it (see [`Fresh`]) without copying it into the buffer,
    /// keeping only the rest; otherwise buffers all of it.
    pub fn take_read<'a>(&mut self, fresh: &'a [u8], pattern: Pattern) -> Option<Fresh<'a>> {
        if self.is_empty() {
            if let Some((len, used, verbatim)) = find_fresh(fresh, pattern) {
                if !self.exceeds_limit(len) {
                    self.push(&fresh[used..]);
                    return Some(Fresh {
                        matched: &fresh[..len],
                        verbatim,
                    });
                }
            }
        }
        self.push(fresh);
        None
    }

    /// How many bytes an [`Verdict::OverLimit`] failure hands out (and consumes).
    pub fn limit_cut(&self) -> usize {
        self.limit.min(self.len())
    }

    /// Finds a complete match for `pattern` in the buffered bytes. `eof` says the peer
    /// has closed, which completes `'*a'`. Returns the match's length in the buffer and
    /// the length to consume (a line consumes its LF too).
    pub fn find(&mut self, pattern: Pattern, eof: bool) -> Option<(usize, usize)> {
        let mut scanned = self.scanned as usize;
        let found = find_in(
            &self.data[self.start as usize..],
            pattern,
            eof,
            &mut scanned,
        );
        self.scanned = u32::try_from(scanned).unwrap_or(u32::MAX);
        found
    }

    /// The buffered bytes, oldest first.
    pub fn bytes(&self) -> &[u8] {
        &self.data[self.start as usize..]
    }

    /// Drops the first `n` buffered bytes, giving memory back once the buffer is empty.
    /// The consumed bytes are moved out once they are most of the buffer, or when the
    /// start would not fit `start`.
    pub fn consume(&mut self, n: usize) {
        let start = (self.start as usize).saturating_add(n);
        self.scanned = 0;
        if start >= self.data.len() {
            self.clear();
        } else if let (false, Ok(fits)) = (
            start > self.data.len() / 2 && start > 4096,
            u32::try_from(start),
        ) {
            self.start = fits;
        } else {
            self.data.drain(..start);
            self.start = 0;
        }
    }

    /// Drops everything and releases the memory.
    pub fn clear(&mut self) {
        self.data = Vec::new();
        self.start = 0;
        self.scanned = 0;
    }
}

/// Looks for a complete match of `pattern` at the start of `bytes`; see [`RecvBuffer::find`].
/// `scanned` carries how much of `bytes` is known to hold no LF between calls.
pub fn find_in(
    bytes: &[u8],
    pattern: Pattern,
    eof: bool,
    scanned: &mut usize,
) -> Option<(usize, usize)> {
    match pattern {
        Pattern::Line => {
            let from = (*scanned).min(bytes.len());
            match memchr::memchr(b'\n', &bytes[from..]) {
                Some(i) => Some((from + i, from + i + 1)),
                None => {
                    *scanned = bytes.len();
                    None
                }
            }
        }
        Pattern::All => eof.then_some((bytes.len(), bytes.len())),
        Pattern::Bytes(n) => (bytes.len() >= n).then_some((n, n)),
    }
}

/// [`find_in`] for a fresh read (nothing scanned yet), telling also whether the match is
/// verbatim ([`is_verbatim`]): for a line, one scan for LF or CR where that would take
/// two, which is most of the cost of a short line.
fn find_fresh(bytes: &[u8], pattern: Pattern) -> Option<(usize, usize, bool)> {
    match pattern {
        Pattern::Line => match memchr::memchr2(b'\n', b'\r', bytes)? {
            i if bytes[i] == b'\n' => Some((i, i + 1, true)),
            cr => memchr::memchr(b'\n', &bytes[cr..]).map(|i| (cr + i, cr + i + 1, false)),
        },
        Pattern::All => None,
        Pattern::Bytes(n) => (bytes.len() >= n).then_some((n, n, true)),
    }
}

/// Appends a matched region to `out` as the pattern returns it: lines lose every CR.
pub fn append_match(out: &mut Vec<u8>, matched: &[u8], pattern: Pattern) {
    if is_verbatim(matched, pattern) {
        out.extend_from_slice(matched);
    } else {
        for piece in matched.split(|&b| b == b'\r') {
            out.extend_from_slice(piece);
        }
    }
}

/// True when a matched region can be handed out as it is (no CR to drop).
pub fn is_verbatim(matched: &[u8], pattern: Pattern) -> bool {
    pattern != Pattern::Line || memchr::memchr(b'\r', matched).is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(buf: &mut RecvBuffer, p: Pattern, eof: bool) -> Option<Vec<u8>> {
        let (len, used) = buf.find(p, eof)?;
        let mut out = Vec::new();
        append_match(&mut out, &buf.bytes()[..len], p);
        buf.consume(used);
        Some(out)
    }

    #[test]
    fn lines_drop_cr_and_lf() {
        let mut b = RecvBuffer::default();
        b.push(b"one\r\ntw\ro\nthree");
        assert_eq!(take(&mut b, Pattern::Line, false).unwrap(), b"one");
        assert_eq!(take(&mut b, Pattern::Line, false).unwrap(), b"two");
        assert_eq!(take(&mut b, Pattern::Line, false), None);
        b.push(b"\n");
        assert_eq!(take(&mut b, Pattern::Line, false).unwrap(), b"three");
        assert!(b.is_empty());
    }

    #[test]
    fn line_scan_resumes_where_it_stopped() {
        let mut b = RecvBuffer::default();
        b.push(b"abc");
        assert_eq!(b.find(Pattern::Line, false), None);
        assert_eq!(b.scanned, 3);
        b.push(b"d\nx");
        assert_eq!(b.find(Pattern::Line, false), Some((4, 5)));
    }

    #[test]
    fn bytes_and_all() {
        let mut b = RecvBuffer::default();
        b.push(b"12345");
        assert_eq!(take(&mut b, Pattern::Bytes(6), false), None);
        assert_eq!(take(&mut b, Pattern::Bytes(2), false).unwrap(), b"12");
        assert_eq!(take(&mut b, Pattern::All, false), None);
        assert_eq!(take(&mut b, Pattern::All, true).unwrap(), b"345");
        assert_eq!(take(&mut b, Pattern::Bytes(0), false).unwrap(), b"");
    }

    #[test]
    fn limit_is_checked_not_enforced() {
        let mut b = RecvBuffer::default();
        assert!(!b.exceeds_limit(1 << 40));
        b.set_limit(4);
        b.push(b"abc");
        b.push(b"de");
        assert_eq!(b.bytes(), b"abcde");
        assert!(!b.exceeds_limit(4));
        assert!(b.exceeds_limit(b.len()));
    }

    #[test]
    fn consumed_buffer_releases_memory() {
        let mut b = RecvBuffer::default();
        b.push(&[b'x'; 10000]);
        b.consume(10000);
        assert_eq!(b.data.capacity(), 0);
    }

    #[test]
    fn verdicts_and_fresh_reads() {
        let mut b = RecvBuffer::default();
        let fresh = |matched, verbatim| Some(Fresh { matched, verbatim });
        assert_eq!(
            b.take_read(b"ab\ncd", Pattern::Line),
            fresh(&b"ab"[..], true)
        );
        assert_eq!(b.bytes(), b"cd");
        assert_eq!(b.verdict(Pattern::Line, false), Verdict::NeedMore);
        assert_eq!(b.verdict(Pattern::Line, true), Verdict::Closed);
        assert_eq!(b.take_read(b"e\n", Pattern::Line), None);
        assert_eq!(b.verdict(Pattern::Line, false), Verdict::Match(3, 4));
        b.consume(4);
        assert_eq!(b.verdict(Pattern::All, true), Verdict::Closed);
        b.set_limit(2);
        assert_eq!(b.take_read(b"xyz\n", Pattern::Line), None);
        assert_eq!(b.verdict(Pattern::Line, false), Verdict::OverLimit);
        assert_eq!(b.limit_cut(), 2);
        b.clear();
        assert_eq!(b.verdict(Pattern::Bytes(0), false), Verdict::NeedMore);
        assert_eq!(b.verdict(Pattern::Bytes(0), true), Verdict::Closed);
        assert_eq!(b.verdict(Pattern::Bytes(1), false), Verdict::NeedMore);
        b.push(b"x");
        assert_eq!(b.verdict(Pattern::Bytes(0), true), Verdict::Match(0, 0));
        b.clear();
        b.set_limit(0);
        assert_eq!(
            b.take_read(b"a\rb\nc\r", Pattern::Line),
            fresh(&b"a\rb"[..], false)
        );
        assert_eq!(b.bytes(), b"c\r");
        b.clear();
        assert_eq!(b.take_read(b"a\rb", Pattern::Line), None);
        b.clear();
        assert_eq!(
            b.take_read(b"abc", Pattern::Bytes(2)),
            fresh(&b"ab"[..], true)
        );
    }

    #[test]
    fn patterns_parse() {
        assert_eq!(Pattern::parse(b"*l"), Some(Pattern::Line));
        assert_eq!(Pattern::parse(b"a"), Some(Pattern::All));
        assert_eq!(Pattern::parse(b"*x"), None);
    }
}
