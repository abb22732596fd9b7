//! The poll loop: one mio `Poll`, a slab of registrations, and the timer heap.
//!
//! The reactor knows nothing about Lua threads. It hands out *tokens* (slab indices) for
//! file descriptors and reports readiness as *wait keys*: `token * 2` for reading,
//! `token * 2 + 1` for writing; negative keys are plain timers. The Lua scheduler keeps
//! which thread waits on which key. Every descriptor is registered once, edge-triggered,
//! for both directions, so waiting costs no system call; a poll costs one `epoll_wait`
//! and work proportional to the descriptors that became ready.

use crate::rt::counters::{self, SharedCounters};
use crate::rt::resolver::{Lookup, Outcome, PoolStats, Resolver};
use crate::rt::timers::{Clock, Nanos, TimerHeap};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

/// The reactor as the sockets and the Lua bindings share it. Borrows are never held
/// across a call into Lua, so a socket finalizer can always borrow it.
pub type SharedReactor = Rc<RefCell<Reactor>>;

/// Direction of a wait: the low bit of a wait key.
pub const READ: usize = 0;
/// See [`READ`].
pub const WRITE: usize = 1;

const SIGNAL_TOKEN: Token = Token(usize::MAX);
/// The resolver pool's waker: a lookup finished.
const RESOLVER_TOKEN: Token = Token(usize::MAX - 1);
const EVENT_CAPACITY: usize = 1024;

/// One registration: an optional descriptor and a timeout slot per direction.
#[derive(Debug, Default)]
struct Source {
    /// The descriptor registered with epoll under this token, if any: Some exactly while
    /// it is registered (attach registers it, detach and remove_source deregister it).
    fd: Option<RawFd>,
    /// The timeout of the wait on each direction ([`READ`], [`WRITE`]).
    slots: [TimeoutSlot; 2],
    /// Closed, waiting for the next poll before the token may be reused (see `poll`);
    /// its token is then in `Reactor::retired`, it has no descriptor and no owner, and
    /// neither readiness nor timers are reported for it.
    retired: bool,
    /// The peer closed its side or the connection failed: a read will not block.
    read_closed: bool,
    /// A readable event came since the owner last found the descriptor drained (see
    /// [`Reactor::is_readable`]).
    readable: bool,
    writes: WriteReports,
    /// The owner found the kernel refusing output since the last write key reported.
    write_blocked: bool,
    /// Address of the socket userdata that owns the token (null if none): how the FFI
    /// fast path (`tcp_ffi.rs`) checks the socket it is handed.
    owner: usize,
}

/// Which writable events of a registration are reported as its write key.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum WriteReports {
    /// Every one: the owner's operations do not tell the reactor when they block (a
    /// foreign descriptor, see `watch.rs`).
    #[default]
    All,
    /// Only the first after [`Reactor::mark_unwritable`]. Edge-triggered epoll reports
    /// writability with every ACK that frees send-buffer space, which on request/response
    /// traffic is every message; nobody waits to write unless a write was refused.
    AfterBlocked,
}

/// The timeout of the wait on one direction of a source.
#[derive(Debug, Default, Clone, Copy)]
struct TimeoutSlot {
    /// When the current wait times out.
    deadline: MaybeNanos,
    /// Deadline of this slot's live entry in the timer heap.
    armed: MaybeNanos,
}

/// An optional deadline in eight bytes where `Option<Nanos>` takes sixteen: a source has
/// four, and there is a source per socket. `Nanos::MAX` stands for none, so a deadline
/// is at most `Nanos::MAX - 1` ([`Reactor::set_deadline`] caps it: that far off, the
/// wait never times out either way).
#[derive(Debug, Clone, Copy, PartialEq)]
struct MaybeNanos(Nanos);

impl MaybeNanos {
    const NONE: MaybeNanos = MaybeNanos(Nanos::MAX);

    fn get(self) -> Option<Nanos> {
        (self != Self::NONE).then_some(self.0)
    }

    fn some(at: Nanos) -> MaybeNanos {
        MaybeNanos(at.min(Nanos::MAX - 1))
    }

    /// Empties it; what it held.
    fn take(&mut self) -> Option<Nanos> {
        std::mem::replace(self, Self::NONE).get()
    }
}

impl Default for MaybeNanos {
    fn default() -> Self {
        Self::NONE
    }
}

/// What one call to [`Reactor::poll`] found.
#[derive(Debug, Default)]
pub struct PollResult {
    /// Keys whose descriptor became ready (or failed, or hung up).
    pub ready: Vec<i64>,
    /// Keys whose timeout passed.
    pub expired: Vec<i64>,
    /// The signals the reactor was asked to catch that arrived (bit n: signal n).
    pub signals: u32,
    /// When the poll returned, on the loop clock.
    pub polled_at: Nanos,
}

/// The poll loop state; see the module documentation.
///
/// Borrowed (through [`SharedReactor`]) only for Rust work that calls no Lua, so a
/// finalizer that closes a socket can always borrow it.
pub struct Reactor {
    /// The epoll instance every source's descriptor is registered with.
    poll: Poll,
    /// Where `poll` collects epoll's events; reused from poll to poll.
    events: Events,
    /// The registrations, by token (slab index). A token is live while its source is
    /// not `retired`; the slab entry is freed only at the start of the next poll.
    sources: Slab<Source>,
    /// Tokens closed since the last poll, freed (and so reusable) when it starts.
    retired: Vec<usize>,
    /// Deadlines of timed waits and plain timers, live or stale (see `expire`).
    timers: TimerHeap,
    /// Heap entries that are some wait's current timeout (the rest are stale): the
    /// plain timers not yet fired plus the slots whose `armed` is Some.
    live_timers: usize,
    /// The loop's monotonic clock, which deadlines are measured on.
    clock: Clock,
    /// The self-pipe of caught signals, registered under `SIGNAL_TOKEN`, if any.
    signals: Option<crate::rt::signals::SignalPipe>,
    /// The lookup pool, made by the first lookup; its threads end when it is dropped.
    resolver: Option<Resolver>,
    /// What `loop.stats()` reports; the sockets hold it too.
    counters: SharedCounters,
}

impl Reactor {
    /// Creates the epoll instance.
    pub fn new() -> io::Result<Reactor> {
        Ok(Reactor {
            poll: Poll::new()?,
            events: Events::with_capacity(EVENT_CAPACITY),
            sources: Slab::new(),
            retired: Vec::new(),
            timers: TimerHeap::default(),
            live_timers: 0,
            clock: Clock::new(),
            signals: None,
            resolver: None,
            counters: SharedCounters::default(),
        })
    }

    /// Creates a shared reactor.
    pub fn shared() -> io::Result<SharedReactor> {
        Ok(Rc::new(RefCell::new(Reactor::new()?)))
    }

    /// The loop's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Reserves a token with no descriptor yet.
    pub fn add_source(&mut self) -> usize {
        self.sources.insert(Source::default())
    }

    /// Records `owner` (a userdata address) as the owner of `token`; see [`Reactor::owner`].
    pub fn set_owner(&mut self, token: usize, owner: usize) {
        if let Some(source) = self.sources.get_mut(token) {
            source.owner = owner;
        }
    }

    /// The owner recorded for a live `token`, if any: a retired token has none, so a
    /// stale token cannot lead to a newer socket.
    pub fn owner(&self, token: usize) -> Option<usize> {
        match self.sources.get(token) {
            Some(s) if !s.retired && s.owner != 0 => Some(s.owner),
            _ => None,
        }
    }

    /// Whether `token` is a registration that is not closed.
    pub fn is_live(&self, token: usize) -> bool {
        self.sources.get(token).is_some_and(|s| !s.retired)
    }

    /// Registers `fd` under `token` for both directions, edge-triggered.
    pub fn attach(&mut self, token: usize, fd: RawFd, writes: WriteReports) -> io::Result<()> {
        let Some(source) = self.sources.get_mut(token) else {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        };
        if let Some(old) = source.fd.take() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&old));
        }
        self.poll.registry().register(
            &mut SourceFd(&fd),
            Token(token),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        source.fd = Some(fd);
        source.read_closed = false;
        source.readable = true;
        source.writes = writes;
        source.write_blocked = false;
        Ok(())
    }

    /// Registers one more descriptor under `token`, for writability only, without making it
    /// the token's own: a connect race's attempts all report on the race's write key. The
    /// caller unregisters it with [`Reactor::detach_extra`] before handing it elsewhere.
    pub fn attach_extra(&mut self, token: usize, fd: RawFd) -> io::Result<()> {
        if !self.sources.contains(token) {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(token), Interest::WRITABLE)
    }

    /// Unregisters a descriptor [`Reactor::attach_extra`] registered (still open).
    pub fn detach_extra(&mut self, fd: RawFd) {
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    /// Unregisters the descriptor of `token` (which must still be open), keeping the token.
    pub fn detach(&mut self, token: usize) {
        if let Some(fd) = self.sources.get_mut(token).and_then(|s| s.fd.take()) {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
        }
    }

    /// Unregisters and frees `token`. The token is reused only after the next poll, so
    /// readiness already reported for it cannot reach a newer socket with the same token.
    pub fn remove_source(&mut self, token: usize) {
        self.detach(token);
        if let Some(source) = self.sources.get_mut(token) {
            if !source.retired {
                source.retired = true;
                source.owner = 0;
                self.retired.push(token);
                for slot in &mut source.slots {
                    if slot.armed.take().is_some() {
                        self.live_timers -= 1;
                    }
                }
            }
        }
    }

    /// Whether a read on `token` may find data: false only between the owner's
    /// [`Reactor::mark_drained`] and the next readable event. Edge-triggered epoll reports
    /// every arrival after a read that took all there was, so until then a read would
    /// only fail with EAGAIN, and the caller can wait for readiness without trying.
    pub fn is_readable(&self, token: usize) -> bool {
        self.sources.get(token).is_none_or(|s| s.readable)
    }

    /// Records readiness seen outside a poll (a blocking wait on the descriptor).
    pub fn mark_readable(&mut self, token: usize) {
        if let Some(source) = self.sources.get_mut(token) {
            source.readable = true;
        }
    }

    /// Records that a read on `token` took everything the kernel had. Ignored once the
    /// peer has closed: the end of the stream stays readable without a further event.
    pub fn mark_drained(&mut self, token: usize) {
        if let Some(source) = self.sources.get_mut(token) {
            source.readable = source.read_closed;
        }
    }

    /// Records that the kernel refused output on `token` (or a connect is under way): the
    /// next writable event is reported (see [`WriteReports::AfterBlocked`]).
    pub fn mark_unwritable(&mut self, token: usize) {
        if let Some(source) = self.sources.get_mut(token) {
            source.write_blocked = true;
        }
    }

    /// Number of live registrations (a leak check for tests and `loop.stats()`).
    pub fn source_count(&self) -> usize {
        self.sources.len() - self.retired.len()
    }

    /// Number of timer heap entries, live or stale.
    pub fn timer_count(&self) -> usize {
        self.timers.len()
    }

    /// Makes the wait on `key` time out `seconds` from now. A negative key is a plain timer
    /// that always fires; a socket key fires only if its wait is still on by then.
    pub fn set_timer(&mut self, key: i64, seconds: f64) {
        let at = self.clock.deadline_in(seconds);
        self.set_deadline(key, at);
    }

    /// Like [`Reactor::set_timer`], with an absolute deadline on the loop clock.
    pub fn set_deadline(&mut self, key: i64, at: Nanos) {
        let at = at.min(Nanos::MAX - 1);
        if key < 0 {
            self.timers.push(at, key);
            self.live_timers += 1;
            return;
        }
        let (token, dir) = split_key(key);
        let Some(source) = self.sources.get_mut(token).filter(|s| !s.retired) else {
            return;
        };
        let slot = &mut source.slots[dir];
        slot.deadline = MaybeNanos::some(at);
        if slot.armed.get().is_none_or(|armed| at < armed) {
            self.timers.push(at, key);
            if std::mem::replace(&mut slot.armed, MaybeNanos::some(at)) == MaybeNanos::NONE {
                self.live_timers += 1;
            }
        }
    }

    /// Drops the timeout of the wait on socket key `key`: the wait ended without the
    /// poll (it was cancelled), and the next wait on the key may have no timeout.
    pub fn clear_timer(&mut self, key: i64) {
        if key < 0 {
            return;
        }
        let (token, dir) = split_key(key);
        if let Some(source) = self.sources.get_mut(token) {
            source.slots[dir].deadline = MaybeNanos::NONE;
        }
    }

    /// Waits up to `timeout` (None: until something happens) for readiness, timers or a
    /// caught signal, and reports them in `out` (cleared first).
    pub fn poll(&mut self, timeout: Option<Duration>, out: &mut PollResult) -> io::Result<()> {
        out.ready.clear();
        out.expired.clear();
        out.signals = 0;
        for token in self.retired.drain(..) {
            self.sources.remove(token);
        }
        self.drop_stale_timers();
        let timeout = self.cap_by_timers(timeout);
        let started = self.clock.now();
        let polled = self.poll.poll(&mut self.events, timeout);
        let now = self.clock.now();
        out.polled_at = now;
        counters::add(&self.counters.polls, 1);
        counters::add(&self.counters.poll_wait_ns, now.saturating_sub(started));
        match polled {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        for event in self.events.iter() {
            if event.token() == SIGNAL_TOKEN {
                out.signals = self.signals.as_ref().map_or(0, |s| s.take());
                continue;
            }
            if event.token() == RESOLVER_TOKEN {
                let sources = &mut self.sources;
                if let Some(resolver) = self.resolver.as_mut() {
                    resolver.collect(|token| {
                        if let Some(source) = sources.get_mut(token) {
                            source.slots[READ].deadline = MaybeNanos::NONE;
                        }
                        out.ready.push(join_key(token, READ));
                    });
                }
                continue;
            }
            let token = event.token().0;
            let Some(source) = self.sources.get_mut(token) else {
                continue;
            };
            if source.retired {
                continue;
            }
            let failed = event.is_error();
            if failed || event.is_read_closed() {
                source.read_closed = true;
            }
            if failed || event.is_readable() || event.is_read_closed() {
                source.readable = true;
                source.slots[READ].deadline = MaybeNanos::NONE;
                out.ready.push(join_key(token, READ));
            }
            let writable = event.is_writable() || event.is_write_closed();
            let wanted = source.writes == WriteReports::All || source.write_blocked;
            if failed || (writable && wanted) {
                source.write_blocked = false;
                source.slots[WRITE].deadline = MaybeNanos::NONE;
                out.ready.push(join_key(token, WRITE));
            }
        }
        self.expire(now, &mut out.expired);
        counters::add(&self.counters.wakeups, out.ready.len() as u64);
        counters::add(&self.counters.timers_fired, out.expired.len() as u64);
        Ok(())
    }

    /// The counters this reactor and its sockets keep.
    pub fn counters(&self) -> &SharedCounters {
        &self.counters
    }

    /// When the plain timer `key` (a negative key) comes due, in seconds on the loop
    /// clock; None if it has no pending entry. A scan of the heap: for introspection.
    pub fn timer_deadline(&self, key: i64) -> Option<f64> {
        self.timers.deadline_of(key).map(|at| at as f64 / 1e9)
    }

    /// Rebuilds the heap once stale entries outnumber live ones. A wait that ends before
    /// its timeout leaves its entry behind (there is no cheap removal from a binary heap);
    /// a connection that lives on reuses it, but one that closes would leave it until its
    /// deadline, so many short connections with long timeouts would grow the heap with
    /// their rate times the timeout. Amortized O(1) per entry.
    fn drop_stale_timers(&mut self) {
        if self.timers.len() <= 2 * self.live_timers + 64 {
            return;
        }
        let sources = &self.sources;
        self.timers.retain(|at, key| {
            if key < 0 {
                return true;
            }
            let (token, dir) = split_key(key);
            sources
                .get(token)
                .is_some_and(|s| !s.retired && s.slots[dir].armed.get() == Some(at))
        });
    }

    /// Shortens `timeout` to the next timer deadline.
    fn cap_by_timers(&self, timeout: Option<Duration>) -> Option<Duration> {
        let Some(at) = self.timers.next_deadline() else {
            return timeout;
        };
        let until = Duration::from_nanos(at.saturating_sub(self.clock.now()));
        Some(timeout.map_or(until, |t| t.min(until)))
    }

    /// Pops due timers; stale entries (the wait ended, or moved its deadline) are dropped
    /// or re-armed at the wait's current deadline.
    fn expire(&mut self, now: Nanos, expired: &mut Vec<i64>) {
        while let Some((at, key)) = self.timers.pop_due(now) {
            if key < 0 {
                self.live_timers -= 1;
                expired.push(key);
                continue;
            }
            let (token, dir) = split_key(key);
            let Some(source) = self.sources.get_mut(token) else {
                continue;
            };
            let slot = &mut source.slots[dir];
            if slot.armed.get() != Some(at) || source.retired {
                continue;
            }
            slot.armed = MaybeNanos::NONE;
            self.live_timers -= 1;
            match slot.deadline.get() {
                Some(deadline) if deadline <= now => {
                    slot.deadline = MaybeNanos::NONE;
                    expired.push(key);
                }
                Some(deadline) => {
                    self.timers.push(deadline, key);
                    slot.armed = MaybeNanos::some(deadline);
                    self.live_timers += 1;
                }
                None => {}
            }
        }
    }

    /// Runs `lookup` on the resolver pool; returns the token whose read key becomes ready
    /// when it finished (then [`Reactor::lookup_outcome`] has its outcome). The caller
    /// frees the token with [`Reactor::end_lookup`], whether or not it waited to the end.
    pub fn start_lookup(&mut self, lookup: Lookup) -> io::Result<usize> {
        if self.resolver.is_none() {
            let waker = Waker::new(self.poll.registry(), RESOLVER_TOKEN)?;
            self.resolver = Some(Resolver::new(waker));
        }
        let token = self.add_source();
        let submitted = match self.resolver.as_mut() {
            Some(resolver) => resolver.submit(token, lookup),
            None => Err(io::Error::from(io::ErrorKind::Other)),
        };
        if let Err(e) = submitted {
            self.remove_source(token);
            return Err(e);
        }
        Ok(token)
    }

    /// The outcome of the lookup on `token`, once its read key was reported.
    pub fn lookup_outcome(&mut self, token: usize) -> Option<Outcome> {
        self.resolver.as_mut()?.take(token)
    }

    /// Frees `token` and forgets its lookup (dropped if queued, its outcome discarded).
    pub fn end_lookup(&mut self, token: usize) {
        if let Some(resolver) = self.resolver.as_mut() {
            resolver.cancel(token);
        }
        self.remove_source(token);
    }

    /// The resolver pool's counts (all zero before the first lookup).
    pub fn lookup_stats(&self) -> PoolStats {
        self.resolver
            .as_ref()
            .map(|r| r.stats())
            .unwrap_or_default()
    }

    /// Wakes the poll when `signal` arrives; [`PollResult::signals`] says which came.
    /// With `second_exits`, one arriving after [`Reactor::arm_signals`] ends the process
    /// at once (see [`crate::rt::signals`]).
    pub fn catch_signal(&mut self, signal: i32, second_exits: bool) -> io::Result<()> {
        if self.signals.is_none() {
            let pipe = crate::rt::signals::SignalPipe::new()?;
            self.poll.registry().register(
                &mut SourceFd(&pipe.fd()),
                SIGNAL_TOKEN,
                Interest::READABLE,
            )?;
            self.signals = Some(pipe);
        }
        match self.signals.as_mut() {
            Some(pipe) => pipe.catch(signal, second_exits),
            None => Ok(()),
        }
    }

    /// A clean stop is under way: the next signal caught with `second_exits` ends the
    /// process at once.
    pub fn arm_signals(&self) {
        if let Some(pipe) = &self.signals {
            pipe.arm();
        }
    }
}

/// The wait key of one direction of a token.
pub fn join_key(token: usize, dir: usize) -> i64 {
    (token as i64) * 2 + dir as i64
}

/// A wait key's token and direction (keys handed here are never negative).
fn split_key(key: i64) -> (usize, usize) {
    ((key >> 1) as usize, (key & 1) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    fn poll_now(r: &mut Reactor) -> PollResult {
        let mut out = PollResult::default();
        r.poll(Some(Duration::from_millis(50)), &mut out).unwrap();
        out
    }

    #[test]
    fn reports_readiness_as_keys() {
        let mut r = Reactor::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let token = r.add_source();
        r.attach(token, a.as_raw_fd(), WriteReports::All).unwrap();
        let first = poll_now(&mut r);
        assert_eq!(first.ready, vec![join_key(token, WRITE)]);
        b.write_all(b"x").unwrap();
        let second = poll_now(&mut r);
        assert!(second.ready.contains(&join_key(token, READ)));
    }

    #[test]
    fn write_keys_only_after_a_refused_write() {
        let mut r = Reactor::new().unwrap();
        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let token = r.add_source();
        r.attach(token, a.as_raw_fd(), WriteReports::AfterBlocked)
            .unwrap();
        assert!(
            poll_now(&mut r).ready.is_empty(),
            "writable, but nobody was refused"
        );
        b.write_all(b"x").unwrap();
        assert_eq!(poll_now(&mut r).ready, vec![join_key(token, READ)]);
        r.mark_unwritable(token);
        b.write_all(b"y").unwrap(); // a new edge, writable too
        let after = poll_now(&mut r).ready;
        assert!(after.contains(&join_key(token, WRITE)), "{after:?}");
        b.write_all(b"z").unwrap();
        assert_eq!(
            poll_now(&mut r).ready,
            vec![join_key(token, READ)],
            "once only"
        );
    }

    #[test]
    fn socket_timer_fires_only_while_the_wait_is_on() {
        let mut r = Reactor::new().unwrap();
        let token = r.add_source();
        let key = join_key(token, READ);
        r.set_timer(key, 0.0);
        assert_eq!(poll_now(&mut r).expired, vec![key]);
        r.set_timer(key, 0.0);
        r.sources[token].slots[READ].deadline = MaybeNanos::NONE; // the wait ended by readiness
        assert!(poll_now(&mut r).expired.is_empty());
        assert_eq!(r.timer_count(), 0);
    }

    #[test]
    fn a_deadline_at_the_end_of_time_stays_armed_and_counted() {
        // Nanos::MAX is what MaybeNanos uses for none: a deadline there is capped below
        // it, so the slot still says armed and the live count comes back to zero.
        let mut r = Reactor::new().unwrap();
        let token = r.add_source();
        let key = join_key(token, READ);
        r.set_deadline(key, Nanos::MAX);
        r.set_deadline(key, Nanos::MAX);
        assert_eq!(r.live_timers, 1);
        assert_eq!(
            r.sources[token].slots[READ].armed.get(),
            Some(Nanos::MAX - 1)
        );
        assert!(poll_now(&mut r).expired.is_empty());
        r.remove_source(token);
        assert_eq!(r.live_timers, 0);
    }

    #[test]
    fn later_deadline_rearms_instead_of_pushing() {
        let mut r = Reactor::new().unwrap();
        let token = r.add_source();
        let key = join_key(token, WRITE);
        r.set_timer(key, 0.0);
        r.set_timer(key, 0.03);
        assert_eq!(r.timer_count(), 1);
        let out = poll_now(&mut r);
        assert!(out.expired.is_empty() || out.expired == vec![key]);
        let mut seen = out.expired.len();
        while seen == 0 {
            seen = poll_now(&mut r).expired.len();
        }
        assert_eq!(r.timer_count(), 0);
    }

    #[test]
    fn closed_sockets_do_not_leave_their_timers_behind() {
        let mut r = Reactor::new().unwrap();
        for _ in 0..1000 {
            let token = r.add_source();
            r.set_timer(join_key(token, READ), 60.0);
            r.remove_source(token);
            poll_now_quick(&mut r);
        }
        assert!(
            r.timer_count() <= 64 + 2,
            "{} entries left",
            r.timer_count()
        );
        assert_eq!(r.live_timers, 0);
    }

    fn poll_now_quick(r: &mut Reactor) {
        let mut out = PollResult::default();
        r.poll(Some(Duration::ZERO), &mut out).unwrap();
    }

    #[test]
    fn plain_timers_fire_in_order() {
        let mut r = Reactor::new().unwrap();
        r.set_timer(-2, 0.002);
        r.set_timer(-1, 0.001);
        let mut fired = Vec::new();
        while fired.len() < 2 {
            fired.extend(poll_now(&mut r).expired);
        }
        assert_eq!(fired, vec![-1, -2]);
    }

    #[test]
    fn removed_tokens_wait_one_poll_before_reuse() {
        let mut r = Reactor::new().unwrap();
        let t = r.add_source();
        r.remove_source(t);
        assert_eq!(r.source_count(), 0);
        assert_ne!(r.add_source(), t);
        poll_now(&mut r);
        assert_eq!(r.add_source(), t);
    }
}
