//! The loop's counters, for `loop.stats()`: what users graph (connections accepted and
//! closed, bytes in and out, polls, wake-ups, timers fired, time spent waiting in the
//! poll). Plain cells: a loop and its sockets live on one thread, and an increment must
//! cost no more than an add on the paths that move bytes.

use std::cell::Cell;
use std::rc::Rc;

/// Running totals since the loop was made; they wrap at 2^64.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections our listening sockets accepted.
    pub accepted: Cell<u64>,
    /// Connected sockets closed (by `close`, or when collected).
    pub closed: Cell<u64>,
    /// Bytes our TCP sockets received and sent.
    pub bytes_in: Cell<u64>,
    pub bytes_out: Cell<u64>,
    /// Polls (epoll_wait calls), the wait keys they reported ready, and the timers
    /// that came due in them.
    pub polls: Cell<u64>,
    pub wakeups: Cell<u64>,
    pub timers_fired: Cell<u64>,
    /// Nanoseconds spent inside epoll_wait.
    pub poll_wait_ns: Cell<u64>,
}

/// The counters a reactor and its sockets share.
pub type SharedCounters = Rc<Counters>;

/// Adds `n` to `cell`.
#[inline]
pub fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get().wrapping_add(n));
}
