//! A small bounded pool of OS threads for blocking lookups (getaddrinfo), so that a slow
//! name server never stalls the loop.
//!
//! The loop thread submits a lookup under a reactor token and parks the asking Lua thread
//! on that token's read key. A worker runs the lookup, queues the outcome and wakes the
//! poll through a mio `Waker`; the reactor ([`crate::rt::reactor`]) then hands the outcome
//! to the token and reports its read key ready. No async runtime is involved.
//!
//! Lookups are identified by a job number, never by the token alone: a caller that gave up
//! (a timeout) cancels its job, its token goes back to the reactor and may be reused, and
//! the outcome of the abandoned job, when it comes, finds no job of that number and is
//! dropped. A job still queued when cancelled never runs. A running getaddrinfo cannot be
//! interrupted; its thread finishes it and returns to the pool.
//!
//! Threads start on demand, up to [`MAX_THREADS`], and end after [`IDLE_EXIT`] without
//! work, or when the loop's reactor is dropped (shutdown: queued jobs are dropped, idle
//! threads end at once, busy ones when their lookup returns). They are not joined: a
//! lookup can take as long as the system resolver's timeouts, and the loop should not wait
//! for it. In the loadable module the library pins itself in memory first (see
//! [`pin_library`]), so a thread still inside a lookup after `lua_close` unloads the
//! module never returns into unmapped code.

use mio::Waker;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::time::Duration;

/// Most threads the pool runs at once; further lookups wait in the queue.
pub const MAX_THREADS: usize = 4;
/// A thread with no work for this long ends (the next lookup starts one again).
pub const IDLE_EXIT: Duration = Duration::from_secs(30);

/// What a lookup found: addresses in the system's order, or a message for the user.
pub type Outcome = Result<Vec<IpAddr>, String>;

/// A lookup to run on a pool thread.
pub type Lookup = Box<dyn FnOnce() -> Outcome + Send>;

struct Job {
    id: u64,
    lookup: Lookup,
}

/// What the loop thread and the workers share.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Finished lookups not yet collected by the loop thread.
    done: Vec<(u64, Outcome)>,
    threads: usize,
    idle: usize,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
}

impl Shared {
    /// The queue, even if a worker panicked while holding it (the data stays consistent:
    /// every critical section is a few field updates).
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts for `loop.stats()`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Lookups whose caller still waits for them (queued, running or answered).
    pub pending: usize,
    /// Pool threads alive.
    pub threads: usize,
    /// Of those, the ones running a lookup.
    pub busy: usize,
    /// Lookups queued, not started.
    pub queued: usize,
}

/// The pool, owned by the reactor.
pub struct Resolver {
    shared: Arc<Shared>,
    waker: Arc<Waker>,
    /// Live jobs: job number -> the token its caller waits on.
    jobs: HashMap<u64, usize>,
    /// Outcomes delivered to tokens, until taken.
    outcomes: HashMap<usize, Outcome>,
    next_id: u64,
}

impl Resolver {
    /// A pool that wakes the poll through `waker` when a lookup finishes. No thread runs
    /// until the first submit.
    pub fn new(waker: Waker) -> Resolver {
        Resolver {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                work: Condvar::new(),
            }),
            waker: Arc::new(waker),
            jobs: HashMap::new(),
            outcomes: HashMap::new(),
            next_id: 0,
        }
    }

    /// Queues `lookup` for the caller waiting on `token`. Fails only when no thread runs
    /// and none can be started.
    pub fn submit(&mut self, token: usize, lookup: Lookup) -> std::io::Result<()> {
        self.next_id += 1;
        let id = self.next_id;
        let mut q = self.shared.lock();
        q.jobs.push_back(Job { id, lookup });
        if q.idle == 0 && q.threads < MAX_THREADS {
            pin_library();
            let shared = self.shared.clone();
            let waker = self.waker.clone();
            let started = std::thread::Builder::new()
                .name("socketloop-resolve".into())
                .stack_size(256 * 1024)
                .spawn(move || work(shared, waker));
            match started {
                Ok(_) => q.threads += 1,
                Err(e) if q.threads == 0 => {
                    q.jobs.pop_back();
                    return Err(e);
                }
                // Busy threads will take the job when they are done.
                Err(_) => {}
            }
        } else {
            self.shared.work.notify_one();
        }
        drop(q);
        self.jobs.insert(id, token);
        Ok(())
    }

    /// Forgets the lookup for `token`: dropped if still queued, its outcome discarded if it
    /// is running or answered.
    pub fn cancel(&mut self, token: usize) {
        self.outcomes.remove(&token);
        let ids: Vec<u64> = self
            .jobs
            .iter()
            .filter(|(_, t)| **t == token)
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            return;
        }
        for id in &ids {
            self.jobs.remove(id);
        }
        self.shared.lock().jobs.retain(|j| !ids.contains(&j.id));
    }

    /// Moves finished lookups to their tokens; calls `ready(token)` for each one whose
    /// caller still waits.
    pub fn collect(&mut self, mut ready: impl FnMut(usize)) {
        let done = std::mem::take(&mut self.shared.lock().done);
        for (id, outcome) in done {
            if let Some(token) = self.jobs.remove(&id) {
                self.outcomes.insert(token, outcome);
                ready(token);
            }
        }
    }

    /// The outcome delivered to `token`, if it came.
    pub fn take(&mut self, token: usize) -> Option<Outcome> {
        self.outcomes.remove(&token)
    }

    pub fn stats(&self) -> PoolStats {
        let q = self.shared.lock();
        PoolStats {
            pending: self.jobs.len() + self.outcomes.len(),
            threads: q.threads,
            busy: q.threads - q.idle,
            queued: q.jobs.len(),
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.shutdown = true;
        q.jobs.clear();
        drop(q);
        self.shared.work.notify_all();
    }
}

/// A pool thread: runs queued lookups until shutdown or [`IDLE_EXIT`] without work.
fn work(shared: Arc<Shared>, waker: Arc<Waker>) {
    let mut q = shared.lock();
    loop {
        if q.shutdown {
            break;
        }
        let Some(job) = q.jobs.pop_front() else {
            q.idle += 1;
            let (guard, waited) = shared
                .work
                .wait_timeout(q, IDLE_EXIT)
                .unwrap_or_else(|e| e.into_inner());
            q = guard;
            q.idle -= 1;
            if waited.timed_out() && q.jobs.is_empty() {
                break;
            }
            continue;
        };
        drop(q);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.lookup))
            .unwrap_or_else(|_| Err("resolver failure".to_string()));
        q = shared.lock();
        if q.shutdown {
            break;
        }
        q.done.push((job.id, outcome));
        // A failed wake only happens when the poll is gone, with the loop.
        let _ = waker.wake();
    }
    q.threads -= 1;
}

/// Keeps this shared library loaded for the life of the process (RTLD_NODELETE), so that
/// pool threads, which are not joined, never run unmapped code after Lua unloads the
/// module. In an executable it is a no-op.
fn pin_library() {
    static PINNED: Once = Once::new();
    PINNED.call_once(|| {
        // SAFETY: dladdr only reads the address of one of our functions and fills `info`;
        // dlopen with RTLD_NOLOAD takes a reference to an object already loaded (or
        // returns null), and that reference is kept on purpose.
        unsafe {
            let mut info: libc::Dl_info = std::mem::zeroed();
            let here = pin_library as *const libc::c_void;
            if libc::dladdr(here, &mut info) != 0 && !info.dli_fname.is_null() {
                libc::dlopen(
                    info.dli_fname,
                    libc::RTLD_NOW | libc::RTLD_NOLOAD | libc::RTLD_NODELETE,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::sync::mpsc;

    fn pool() -> (Poll, Resolver) {
        let poll = Poll::new().unwrap();
        let waker = Waker::new(poll.registry(), Token(7)).unwrap();
        (poll, Resolver::new(waker))
    }

    fn answered(poll: &mut Poll, r: &mut Resolver) -> Vec<usize> {
        let mut events = Events::with_capacity(8);
        let mut tokens = Vec::new();
        while tokens.is_empty() {
            poll.poll(&mut events, Some(Duration::from_secs(5)))
                .unwrap();
            assert!(!events.is_empty(), "no wake-up in 5 s");
            r.collect(|t| tokens.push(t));
        }
        tokens
    }

    #[test]
    fn outcomes_reach_their_token() {
        let (mut poll, mut r) = pool();
        let addr: IpAddr = "127.0.0.1".parse().unwrap();
        r.submit(3, Box::new(move || Ok(vec![addr]))).unwrap();
        assert_eq!(answered(&mut poll, &mut r), vec![3]);
        assert_eq!(r.take(3), Some(Ok(vec![addr])));
        assert_eq!(r.take(3), None);
        assert_eq!(r.stats().pending, 0);
    }

    #[test]
    fn dropping_the_pool_ends_its_threads() {
        let (_poll, mut r) = pool();
        r.submit(1, Box::new(|| Ok(Vec::new()))).unwrap();
        let shared = r.shared.clone();
        assert_eq!(shared.lock().threads, 1);
        drop(r);
        let started = std::time::Instant::now();
        while shared.lock().threads > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "a thread stayed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn cancelled_lookups_are_dropped_and_the_pool_is_bounded() {
        let (mut poll, mut r) = pool();
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        for token in 0..MAX_THREADS + 2 {
            let gate = gate.clone();
            r.submit(
                token,
                Box::new(move || {
                    let _ = gate.lock().unwrap().recv();
                    Err("host not found".into())
                }),
            )
            .unwrap();
        }
        assert!(r.stats().threads <= MAX_THREADS);
        r.cancel(0);
        r.cancel(MAX_THREADS + 1);
        assert_eq!(r.stats().pending, MAX_THREADS);
        for _ in 0..MAX_THREADS + 2 {
            let _ = release.send(());
        }
        let mut seen = Vec::new();
        while seen.len() < MAX_THREADS {
            seen.extend(answered(&mut poll, &mut r));
        }
        seen.sort();
        assert_eq!(seen, (1..=MAX_THREADS).collect::<Vec<_>>());
        assert!(r.take(0).is_none());
    }
}
