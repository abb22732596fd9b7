//! A socket's receive side without a socket: the receive algorithm of src/net/tcp.rs
//! (`RecvBuffer::verdict`, `take_read`, `limit_cut` in src/net/buffer.rs) fed by reads that
//! the fuzz input splits. Shared by the targets that need LuaSocket's receive answers.
#![allow(dead_code)] // not every target reads every figure

use socketloop::net::buffer::{append_match, Pattern, RecvBuffer, Verdict};

#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    Data(Vec<u8>),
    /// `nil, err, partial`
    Fail(&'static str, Vec<u8>),
}

/// A socket whose reads return the next of `reads`, then 0 (the peer closed).
pub struct Sim<'a> {
    reads: Vec<&'a [u8]>,
    next: usize,
    pub rbuf: RecvBuffer,
    eof: bool,
    pub most_buffered: usize,
    pub longest_read: usize,
}

impl<'a> Sim<'a> {
    pub fn new(reads: Vec<&'a [u8]>, limit: usize) -> Sim<'a> {
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
    /// `take_read`, `limit_cut` in src/net/buffer.rs), with reads from `reads`.
    pub fn receive(&mut self, pattern: Pattern) -> Answer {
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
            let found = self.rbuf.take_read(fresh, pattern);
            self.note();
            if let Some(found) = found {
                // As TcpSocket::receive_step: a verbatim match is handed out as it is.
                let mut value = Vec::new();
                if found.verbatim {
                    value.extend_from_slice(found.matched);
                } else {
                    append_match(&mut value, found.matched, pattern);
                }
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

pub fn strip_cr(b: &[u8]) -> Vec<u8> {
    b.iter().copied().filter(|&c| c != b'\r').collect()
}

/// Splits `d` into reads whose lengths come from `sizes` (cycled; 0 means 1).
pub fn split<'a>(d: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
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
