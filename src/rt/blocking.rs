//! Waiting outside the loop: `poll(2)` on one descriptor, for code that is not in a loop
//! thread (a plain script under stock luajit), so socket methods block like LuaSocket's.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// What a blocking wait ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited {
    /// The descriptor is ready (or failed, which the next operation reports).
    Ready,
    /// The timeout passed first.
    TimedOut,
}

/// Blocks until `fd` is readable (`write == false`) or writable, or `timeout` passes
/// (None: no limit). With no descriptor it just sleeps for `timeout`.
pub fn wait_fd(fd: Option<RawFd>, write: bool, timeout: Option<Duration>) -> Waited {
    let deadline = timeout.map(|t| Instant::now() + t);
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut pfd = libc::pollfd {
        fd: fd.unwrap_or(-1),
        events,
        revents: 0,
    };
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `pfd` is a valid pollfd for the duration of the call; a negative fd is
        // ignored by poll(2), which then only sleeps.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 && fd.is_some() {
            return Waited::Ready;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Waited::TimedOut;
        }
        // n < 0 (EINTR) or an early wake-up: wait again for what is left.
    }
}

/// Blocks until one of `fds` (descriptor, whether for writing) is ready or `timeout`
/// passes (None: no limit), as LuaSocket's `select`; returns which are ready (all false
/// on a timeout). Negative descriptors are never ready.
pub fn wait_fds(fds: &[(RawFd, bool)], timeout: Option<Duration>) -> Vec<bool> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&(fd, write)| libc::pollfd {
            fd,
            events: if write { libc::POLLOUT } else { libc::POLLIN },
            revents: 0,
        })
        .collect();
    loop {
        let ms = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
        };
        // SAFETY: `pfds` is a valid array of `pfds.len()` pollfds for the whole call.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
        if n > 0 {
            return pfds.iter().map(|p| p.revents != 0).collect();
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return vec![false; pfds.len()];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn ready_and_timeout() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let short = Some(Duration::from_millis(5));
        assert_eq!(wait_fd(Some(a.as_raw_fd()), false, short), Waited::TimedOut);
        assert_eq!(wait_fd(Some(a.as_raw_fd()), true, short), Waited::Ready);
        b.write_all(b"x").unwrap();
        assert_eq!(wait_fd(Some(a.as_raw_fd()), false, short), Waited::Ready);
        assert_eq!(wait_fd(None, false, short), Waited::TimedOut);
        let (c, mut d) = UnixStream::pair().unwrap();
        let fds = [(a.as_raw_fd(), false), (c.as_raw_fd(), false), (-1, false)];
        assert_eq!(wait_fds(&fds, Some(Duration::ZERO)), [true, false, false]);
        d.write_all(b"y").unwrap();
        assert_eq!(wait_fds(&fds[1..], short), [true, false]);
        assert_eq!(wait_fds(&[(-1, true)], short), [false]);
    }
}
