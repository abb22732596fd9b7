//! Connecting to a name with several addresses, Happy Eyeballs style (RFC 8305): the
//! addresses in the order [`crate::net::resolve::interleave`] gives, the next attempt
//! started when the previous ones have not answered within the stagger delay (or at once
//! when they all failed), the first to connect wins and the others are closed. Each
//! attempt has its own timeout.
//!
//! Every attempt's descriptor is registered with the reactor under the race's one token,
//! so the thread running the race parks on a single wait key (its write key) and any
//! attempt's answer wakes it; it then calls [`ConnectRace::step`] again.

use crate::net::errors::message;
use crate::net::resolve::Family;
use crate::rt::reactor::SharedReactor;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd, RawFd};
use std::time::{Duration, Instant};

/// Where a race is after a step.
#[derive(Debug)]
pub enum Progress {
    /// This attempt connected; the descriptor is the caller's now (non-blocking, no
    /// longer registered).
    Connected(RawFd),
    /// Nothing decided: step again when the key is reported or after this long (None:
    /// only when the key is reported).
    Waiting(Option<Duration>),
    /// Every address failed; the last cause (`'timeout'` when the last attempt timed out).
    Failed(String),
}

struct Attempt {
    sock: Socket,
    deadline: Option<Instant>,
}

/// One connect race; see the module documentation.
pub struct ConnectRace {
    reactor: SharedReactor,
    token: Option<usize>,
    untried: VecDeque<SocketAddr>,
    attempts: Vec<Attempt>,
    attempt_timeout: Option<Duration>,
    stagger: Duration,
    /// When the next address may start while earlier attempts are still on.
    next_start: Instant,
    last_error: String,
}

impl ConnectRace {
    /// A race over `addrs` (already in the order to try), each attempt bounded by
    /// `attempt_timeout`, the next one started `stagger` after the previous.
    pub fn new(
        reactor: &SharedReactor,
        addrs: Vec<SocketAddr>,
        attempt_timeout: Option<Duration>,
        stagger: Duration,
    ) -> ConnectRace {
        let token = reactor.borrow_mut().add_source();
        ConnectRace {
            reactor: reactor.clone(),
            token: Some(token),
            untried: addrs.into(),
            attempts: Vec::new(),
            attempt_timeout,
            stagger,
            next_start: Instant::now(),
            last_error: "host not found".to_string(),
        }
    }

    /// The token whose write key reports the attempts' answers; -1 once closed.
    pub fn token(&self) -> i64 {
        self.token.map_or(-1, |t| t as i64)
    }

    /// Checks the attempts, starts the next ones that are due, and says what is left.
    pub fn step(&mut self) -> Progress {
        if self.token.is_none() {
            return Progress::Failed("closed".to_string());
        }
        let now = Instant::now();
        if let Some(fd) = self.check_attempts(now) {
            return Progress::Connected(fd);
        }
        while let Some(addr) = self.untried.front().copied() {
            if !self.attempts.is_empty() && now < self.next_start {
                break;
            }
            self.untried.pop_front();
            self.next_start = now + self.stagger;
            if let Some(fd) = self.start(addr, now) {
                return Progress::Connected(fd);
            }
        }
        if self.attempts.is_empty() {
            return Progress::Failed(self.last_error.clone());
        }
        let mut wake: Option<Instant> = self.attempts.iter().filter_map(|a| a.deadline).min();
        if !self.untried.is_empty() {
            wake = Some(wake.map_or(self.next_start, |w| w.min(self.next_start)));
        }
        Progress::Waiting(wake.map(|w| w.saturating_duration_since(now)))
    }

    /// Drops the attempts that failed or timed out; returns a connected one's descriptor.
    fn check_attempts(&mut self, now: Instant) -> Option<RawFd> {
        let mut i = 0;
        while i < self.attempts.len() {
            let a = &self.attempts[i];
            let failure = match a.sock.take_error() {
                Ok(None) => match a.sock.peer_addr() {
                    Ok(_) => {
                        let a = self.attempts.swap_remove(i);
                        return Some(self.release(a.sock));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                        if a.deadline.is_some_and(|d| now >= d) {
                            "timeout".to_string()
                        } else {
                            i += 1;
                            continue;
                        }
                    }
                    Err(e) => message(&e),
                },
                Ok(Some(e)) | Err(e) => message(&e),
            };
            self.last_error = failure;
            let a = self.attempts.swap_remove(i);
            self.forget(&a.sock);
        }
        None
    }

    /// Starts connecting to `addr`; a descriptor if it connected at once.
    fn start(&mut self, addr: SocketAddr, now: Instant) -> Option<RawFd> {
        let sock = match open(Family::of(&addr)) {
            Ok(s) => s,
            Err(e) => {
                self.last_error = message(&e);
                return None;
            }
        };
        match sock.connect(&SockAddr::from(addr)) {
            Ok(()) => return Some(sock.into_raw_fd()),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => {
                self.last_error = message(&e);
                return None;
            }
        }
        let registered = match self.token {
            Some(token) => self
                .reactor
                .borrow_mut()
                .attach_extra(token, sock.as_raw_fd()),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        };
        if let Err(e) = registered {
            self.last_error = message(&e);
            return None;
        }
        self.attempts.push(Attempt {
            sock,
            deadline: self.attempt_timeout.map(|t| now + t),
        });
        None
    }

    /// Unregisters a winner and hands its descriptor over.
    fn release(&mut self, sock: Socket) -> RawFd {
        self.forget(&sock);
        sock.into_raw_fd()
    }

    fn forget(&self, sock: &Socket) {
        if let Ok(mut r) = self.reactor.try_borrow_mut() {
            r.detach_extra(sock.as_raw_fd());
        }
    }

    /// Waits in poll(2) up to `limit` for an attempt to answer (for threads outside the
    /// loop, which cannot park on the key).
    pub fn wait_blocking(&self, limit: Option<Duration>) {
        let mut fds: Vec<libc::pollfd> = self
            .attempts
            .iter()
            .map(|a| libc::pollfd {
                fd: a.sock.as_raw_fd(),
                events: libc::POLLOUT,
                revents: 0,
            })
            .collect();
        let ms = limit.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
        // SAFETY: `fds` is a valid array of its length for the whole call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    }

    /// Closes every attempt and frees the token. Idempotent.
    pub fn close(&mut self) {
        for a in std::mem::take(&mut self.attempts) {
            self.forget(&a.sock);
        }
        self.untried.clear();
        if let Some(token) = self.token.take() {
            if let Ok(mut r) = self.reactor.try_borrow_mut() {
                r.remove_source(token);
            }
        }
    }
}

impl Drop for ConnectRace {
    fn drop(&mut self) {
        self.close();
    }
}

/// A non-blocking TCP socket of `family` for one attempt, set up as the loop's own
/// (IPv6 only for an IPv6 address, no Nagle delay).
fn open(family: Family) -> io::Result<Socket> {
    let domain = match family {
        Family::V4 => Domain::IPV4,
        Family::V6 => Domain::IPV6,
    };
    let sock = Socket::new(
        domain,
        Type::STREAM.nonblocking().cloexec(),
        Some(Protocol::TCP),
    )?;
    if family == Family::V6 {
        sock.set_only_v6(true)?;
    }
    sock.set_tcp_nodelay(true)?;
    Ok(sock)
}
