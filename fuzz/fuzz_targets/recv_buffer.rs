//! Fuzzes the receive buffer and patterns (src/buffer.rs) under the receive algorithm
//! of src/tcp.rs (its decisions are `RecvBuffer::verdict` and `take_read`; the loop
//! below feeds them reads instead of a socket): bytes arrive in reads the input splits, a receive-limit may be set, and a
//! series of receives ('*l', '*a', counts) runs over them.
//!
//! Checks: every answer equals that of a plain model computed on the whole stream (so
//! the answers do not depend on how the bytes were split into reads, and nothing is
//! lost or duplicated); with a limit, no answer is longer than the limit and the buffer
//! never holds more than the limit plus one read. Round trip: lines joined with LF
//! read back with '*l' are the lines.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketloop::buffer::{append_match, Pattern, RecvBuffer, Verdict};

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Data(Vec<u8>),
    /// `nil, err, partial`
    Fail(&'static str, Vec<u8>),
}

/// A socket whose reads return the next of `reads`, then 0 (the peer closed).
struct Sim<'a> {
    reads: Vec<&'a [u8]>,
    next: usize,
    rbuf: RecvBuffer,
    eof: bool,
    most_buffered: usize,
    longest_read: usize,
}

impl<'a> Sim<'a> {
    fn new(reads: Vec<&'a [u8]>, limit: usize) -> Sim<'a> {
        let mut rbuf = RecvBuffer::default();
        rbuf.set_limit(limit);
        let longest_read = reads.iter().map(|r| r.len()).max().unwrap_or(0);
        Sim {
            reads,
            next: 0,
            rbuf,
            eof: false,
            most_buffered: 0,
            longest_read,
        }
    }

    /// `TcpSocket::receive` with an empty prefix: the same decisions (`verdict`,
    /// `take_read`, `limit_cut` in src/buffer.rs), with reads from `reads`.
    fn receive(&mut self, pattern: Pattern) -> Answer {
        loop {
            match self.rbuf.verdict(pattern, self.eof) {
                Verdict::Match(len, used) => {
                    let mut value = Vec::new();
                    append_match(&mut value, &self.rbuf.bytes()[..len], pattern);
                    self.rbuf.consume(used);
                    return Answer::Data(value);
                }
                Verdict::OverLimit => return self.limit_exceeded(pattern),
                Verdict::Closed => return self.fail_with_partial("closed", pattern),
                Verdict::NeedMore => {}
            }
            let Some(&fresh) = self.reads.get(self.next) else {
                self.eof = true;
                continue;
            };
            self.next += 1;
            let matched = self.rbuf.take_read(fresh, pattern);
            self.note();
            if let Some(matched) = matched {
                let mut value = Vec::new();
                append_match(&mut value, matched, pattern);
                return Answer::Data(value);
            }
        }
    }

    fn note(&mut self) {
        self.most_buffered = self.most_buffered.max(self.rbuf.len());
    }

    fn limit_exceeded(&mut self, pattern: Pattern) -> Answer {
        let take = self.rbuf.limit_cut();
        let mut partial = Vec::new();
        append_match(&mut partial, &self.rbuf.bytes()[..take], pattern);
        self.rbuf.consume(take);
        Answer::Fail("receive limit exceeded", partial)
    }

    fn fail_with_partial(&mut self, err: &'static str, pattern: Pattern) -> Answer {
        let mut partial = Vec::new();
        append_match(&mut partial, self.rbuf.bytes(), pattern);
        self.rbuf.clear();
        Answer::Fail(err, partial)
    }
}

fn strip_cr(b: &[u8]) -> Vec<u8> {
    b.iter().copied().filter(|&c| c != b'\r').collect()
}

/// The model: what each receive answers, computed on the whole stream `d` from `*p`.
fn model(d: &[u8], p: &mut usize, pattern: Pattern, limit: usize) -> Answer {
    let rest = &d[*p..];
    let over = |n: usize| limit != 0 && n > limit;
    let cut = |p: &mut usize, line: bool| {
        let part = &d[*p..*p + limit];
        *p += limit;
        Answer::Fail(
            "receive limit exceeded",
            if line { strip_cr(part) } else { part.to_vec() },
        )
    };
    match pattern {
        Pattern::Line => match rest.iter().position(|&b| b == b'\n') {
            Some(i) if over(i) => cut(p, true),
            Some(i) => {
                *p += i + 1;
                Answer::Data(strip_cr(&rest[..i]))
            }
            None if over(rest.len()) => cut(p, true),
            None => {
                *p = d.len();
                Answer::Fail("closed", strip_cr(rest))
            }
        },
        Pattern::Bytes(n) => {
            if over(n.min(rest.len())) {
                cut(p, false)
            } else if rest.len() >= n {
                *p += n;
                Answer::Data(rest[..n].to_vec())
            } else {
                *p = d.len();
                Answer::Fail("closed", rest.to_vec())
            }
        }
        Pattern::All => {
            if over(rest.len()) {
                cut(p, false)
            } else if rest.is_empty() {
                Answer::Fail("closed", Vec::new())
            } else {
                *p = d.len();
                Answer::Data(rest.to_vec())
            }
        }
    }
}

/// Splits `d` into reads whose lengths come from `sizes` (cycled; 0 means 1).
fn split<'a>(d: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut reads = Vec::new();
    let mut at = 0;
    let mut k = 0;
    while at < d.len() {
        let n = sizes
            .get(k % sizes.len().max(1))
            .copied()
            .unwrap_or(255)
            .max(1) as usize;
        let end = (at + n).min(d.len());
        reads.push(&d[at..end]);
        at = end;
        k += 1;
    }
    reads
}

fuzz_target!(|data: &[u8]| {
    // Layout: limit, pattern count k, k patterns, split count s, s read sizes, stream.
    let mut it = data;
    let mut next = || -> Option<u8> {
        let (&b, rest) = it.split_first()?;
        it = rest;
        Some(b)
    };
    let Some(limit) = next() else { return };
    let limit = limit as usize % 64; // 0: no limit
    let k = next().unwrap_or(0) as usize % 24;
    let patterns: Vec<Pattern> = (0..k)
        .map_while(|_| next())
        .map(|b| match b % 4 {
            0 | 1 => Pattern::Line,
            2 => Pattern::All,
            _ => Pattern::Bytes((b >> 2) as usize),
        })
        .collect();
    let s = next().unwrap_or(0) as usize % 8;
    let sizes: Vec<u8> = (0..s).map_while(|_| next()).map(|b| b % 40).collect();
    let stream = it;

    let mut sim = Sim::new(split(stream, &sizes), limit);
    let mut p = 0;
    for &pattern in &patterns {
        let got = sim.receive(pattern);
        let want = model(stream, &mut p, pattern, limit);
        assert_eq!(got, want, "{pattern:?} at byte {p} (limit {limit})");
        if limit != 0 {
            let (Answer::Data(v) | Answer::Fail(_, v)) = &got;
            assert!(v.len() <= limit, "an answer of {} bytes", v.len());
            assert!(
                sim.most_buffered <= limit + sim.longest_read,
                "buffered {} bytes",
                sim.most_buffered
            );
        }
    }

    // Round trip: the stream's bytes as lines without CR or LF, joined with LF.
    let lines: Vec<Vec<u8>> = stream
        .split(|&b| b == b'\n')
        .map(|l| l.iter().copied().filter(|&b| b != b'\r').collect())
        .collect();
    let mut joined = Vec::new();
    for l in &lines {
        joined.extend_from_slice(l);
        joined.push(b'\n');
    }
    let mut sim = Sim::new(split(&joined, &sizes), 0);
    for l in &lines {
        assert_eq!(sim.receive(Pattern::Line), Answer::Data(l.clone()));
    }
    assert_eq!(
        sim.receive(Pattern::Line),
        Answer::Fail("closed", Vec::new())
    );
    assert!(sim.rbuf.is_empty());
});
