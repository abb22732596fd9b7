//! Signals as poll events: a caught signal sets its bit in a pending mask and writes a
//! byte to a socket pair that the reactor polls, so the loop sees it between two
//! dispatches and runs whatever handles it there, outside the signal handler.
//!
//! Signals caught with `second_exits` (the runner's SIGINT and SIGTERM) end the process
//! at once (exit status 128 + signal number) when one arrives after [`SignalPipe::arm`]:
//! once a clean stop is under way, a second signal is for when it is stuck.

use signal_hook::{flag, low_level};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// The highest signal number that can be caught (the pending mask has one bit per signal).
pub const MAX_SIGNAL: i32 = 31;

/// The read end of the signal pipe and the signals caught since the last [`SignalPipe::take`].
#[derive(Debug)]
pub struct SignalPipe {
    reader: UnixStream,
    writer: UnixStream,
    pending: Arc<AtomicU32>,
    armed: Arc<AtomicBool>,
    /// Bit n: signal n has handlers installed.
    caught: u32,
}

impl SignalPipe {
    /// The pipe, catching nothing yet.
    pub fn new() -> io::Result<SignalPipe> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok(SignalPipe {
            reader,
            writer,
            pending: Arc::new(AtomicU32::new(0)),
            armed: Arc::new(AtomicBool::new(false)),
            caught: 0,
        })
    }

    /// Catches `signal` (1 to [`MAX_SIGNAL`]; not one of those signal-hook forbids, such
    /// as SIGKILL). Catching a signal twice changes nothing. Cost: a few system calls.
    pub fn catch(&mut self, signal: i32, second_exits: bool) -> io::Result<()> {
        if !(1..=MAX_SIGNAL).contains(&signal) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "signal number out of range",
            ));
        }
        let bit = 1u32 << signal;
        if self.caught & bit != 0 {
            return Ok(());
        }
        if second_exits {
            flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&self.armed))?;
        }
        let pending = Arc::clone(&self.pending);
        // SAFETY: the action only does an atomic read-modify-write, which is
        // async-signal-safe.
        unsafe {
            low_level::register(signal, move || {
                pending.fetch_or(bit, Ordering::SeqCst);
            })?;
        }
        low_level::pipe::register(signal, self.writer.try_clone()?)?;
        self.caught |= bit;
        Ok(())
    }

    /// From now on, a signal caught with `second_exits` ends the process at once.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Drains the pipe and returns the signals that arrived (bit n: signal n), 0 if none.
    pub fn take(&self) -> u32 {
        let mut sink = [0u8; 64];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
        self.pending.swap(0, Ordering::SeqCst)
    }
}
