//! Registrations for descriptors the loop does not own: the fd of a wrapped LuaSocket
//! object (or any other library's socket). The owner keeps doing the I/O; the watch only
//! lets a thread park on the descriptor's readiness under a wait key.

use crate::rt::reactor::{SharedReactor, WriteReports};
use mlua::{UserData, UserDataMethods};
use std::os::fd::RawFd;

/// A descriptor registered with the reactor; unregistered by `close` or when collected.
pub struct FdWatch {
    reactor: SharedReactor,
    token: Option<usize>,
}

impl FdWatch {
    /// Registers `fd` (which must stay open until the watch is closed).
    pub fn new(reactor: &SharedReactor, fd: RawFd) -> std::io::Result<FdWatch> {
        let mut r = reactor.borrow_mut();
        let token = r.add_source();
        if let Err(e) = r.attach(token, fd, WriteReports::All) {
            r.remove_source(token);
            return Err(e);
        }
        Ok(FdWatch {
            reactor: reactor.clone(),
            token: Some(token),
        })
    }

    /// Unregisters the descriptor; call it before the descriptor is closed.
    pub fn close(&mut self) {
        if let Some(token) = self.token.take() {
            if let Ok(mut r) = self.reactor.try_borrow_mut() {
                r.remove_source(token);
            }
        }
    }
}

impl Drop for FdWatch {
    fn drop(&mut self) {
        self.close();
    }
}

impl UserData for FdWatch {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("token", |_, w, ()| Ok(w.token.map_or(-1, |t| t as i64)));
        methods.add_method_mut("close", |_, w, ()| {
            w.close();
            Ok(())
        });
    }
}
