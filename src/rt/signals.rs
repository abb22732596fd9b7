//! SIGINT and SIGTERM as poll events, for the runner's clean stop.
//!
//! The first signal writes a byte to a socket pair that the reactor polls, so the loop
//! sees it between two dispatches and stops cleanly. A second one while the first is
//! being handled ends the process at once (exit status 128 + signal number), in case the
//! clean stop is stuck.

use signal_hook::{flag, low_level::pipe};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The read end of the signal pipe and the number of the last signal caught.
#[derive(Debug)]
pub struct SignalPipe {
    reader: UnixStream,
    last: Arc<AtomicUsize>,
}

impl SignalPipe {
    /// Installs handlers for `signals`. Cost: a few system calls, once.
    pub fn new(signals: &[i32]) -> io::Result<SignalPipe> {
        let (reader, writer) = UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        let last = Arc::new(AtomicUsize::new(0));
        let armed = Arc::new(AtomicBool::new(false));
        for &signal in signals {
            flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(&armed))?;
            flag::register_usize(signal, Arc::clone(&last), signal as usize)?;
            flag::register(signal, Arc::clone(&armed))?;
            pipe::register(signal, writer.try_clone()?)?;
        }
        Ok(SignalPipe { reader, last })
    }

    /// The descriptor to poll for readability.
    pub fn fd(&self) -> RawFd {
        self.reader.as_raw_fd()
    }

    /// Drains the pipe and returns the signal that arrived, if any.
    pub fn take(&self) -> Option<i32> {
        let mut sink = [0u8; 64];
        while matches!((&self.reader).read(&mut sink), Ok(n) if n > 0) {}
        match self.last.swap(0, Ordering::SeqCst) {
            0 => None,
            signal => Some(signal as i32),
        }
    }
}
