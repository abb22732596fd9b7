//! The timer heap and the loop's monotonic clock.
//!
//! Entries are never removed early: a wait that ends before its deadline leaves its entry
//! in the heap, and the reactor checks it against the wait's current deadline when it
//! comes due (see `Reactor::expire`). Each wait slot keeps at most one live entry, so the
//! heap stays proportional to the number of timed waits, not to the number of operations;
//! the reactor rebuilds it without the entries of closed sockets once those outnumber the
//! live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Nanoseconds on the loop's monotonic clock.
pub type Nanos = u64;

/// A monotonic clock counting from the loop's creation.
#[derive(Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// Starts the clock at zero now.
    pub fn new() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// The time now. Cost: one `clock_gettime` (vDSO, tens of nanoseconds).
    pub fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }

    /// The time `seconds` on this clock (as `loop.now()` reports it), saturating.
    pub fn at(&self, seconds: f64) -> Nanos {
        if seconds > 0.0 {
            (seconds * 1e9).min(u64::MAX as f64 / 2.0) as Nanos
        } else {
            0
        }
    }

    /// The deadline `seconds` from now; negative or NaN counts as now, huge values saturate.
    pub fn deadline_in(&self, seconds: f64) -> Nanos {
        let delta = if seconds > 0.0 {
            (seconds * 1e9).min(u64::MAX as f64 / 2.0) as Nanos
        } else {
            0
        };
        self.now().saturating_add(delta)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

/// A min-heap of `(deadline, key)` pairs. Push and pop cost O(log n).
#[derive(Debug, Default)]
pub struct TimerHeap {
    heap: BinaryHeap<Reverse<(Nanos, i64)>>,
}

impl TimerHeap {
    /// Schedules `key` to come due at `at`.
    pub fn push(&mut self, at: Nanos, key: i64) {
        self.heap.push(Reverse((at, key)));
    }

    /// The earliest entry for `key`, if any (a scan of the heap).
    pub fn deadline_of(&self, key: i64) -> Option<Nanos> {
        self.heap
            .iter()
            .filter(|Reverse((_, k))| *k == key)
            .map(|Reverse((at, _))| *at)
            .min()
    }

    /// The earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: Nanos) -> Option<(Nanos, i64)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Keeps only the entries for which `keep(deadline, key)` holds, and gives back
    /// memory the heap no longer needs. Cost: O(n).
    pub fn retain(&mut self, mut keep: impl FnMut(Nanos, i64) -> bool) {
        self.heap.retain(|Reverse((at, key))| keep(*at, *key));
        if self.heap.capacity() > 4 * self.heap.len() + 64 {
            self.heap.shrink_to_fit();
        }
    }

    /// Number of entries, live or stale.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// True when no entry is scheduled.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut h = TimerHeap::default();
        h.push(30, 3);
        h.push(10, 1);
        h.push(20, 2);
        assert_eq!(h.next_deadline(), Some(10));
        assert_eq!(h.pop_due(5), None);
        assert_eq!(h.pop_due(25), Some((10, 1)));
        assert_eq!(h.pop_due(25), Some((20, 2)));
        assert_eq!(h.pop_due(25), None);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn deadlines_saturate() {
        let c = Clock::new();
        assert!(c.deadline_in(f64::INFINITY) > c.now());
        assert!(c.deadline_in(f64::NAN) <= c.now() + 1_000_000);
        assert!(c.deadline_in(-5.0) <= c.now() + 1_000_000);
    }
}
