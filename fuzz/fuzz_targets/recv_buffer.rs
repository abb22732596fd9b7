//! Fuzzes the receive buffer and patterns (src/net/buffer.rs) under the receive algorithm
//! of src/net/tcp.rs (its decisions are `RecvBuffer::verdict` and `take_read`; the loop
//! below feeds them reads instead of a socket): bytes arrive in reads the input splits, a receive-limit may be set, and a
//! series of receives ('*l', '*a', counts) runs over them.
//!
//! Checks: every answer equals that of a plain model computed on the whole stream (so
//! the answers do not depend on how the bytes were split into reads, and nothing is
//! lost or duplicated); with a limit, no answer is longer than the limit and the buffer
//! never holds more than the limit plus one read. Round trip: lines joined with LF
//! read back with '*l' are the lines.
#![no_main]

mod sim;

use libfuzzer_sys::fuzz_target;
use sim::{split, strip_cr, Answer, Sim};
use socketloop::net::buffer::Pattern;

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
