//! Socket options by their LuaSocket names (`setoption`/`getoption`). No Lua here: the
//! binding (`src/lua/tcp.rs`) reads and pushes the values.

use socket2::Socket;
use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// An option LuaSocket's TCP objects know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    KeepAlive,
    Linger,
    ReuseAddr,
    ReusePort,
    NoDelay,
    V6Only,
    KeepIdle,
    KeepCount,
    KeepInterval,
    RecvBufferSize,
    SendBufferSize,
}

/// An option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptValue {
    Bool(bool),
    Int(i64),
    /// `{on = bool, timeout = seconds}`.
    Linger {
        on: bool,
        timeout: i64,
    },
}

impl SockOpt {
    /// The option named `name`, as LuaSocket spells it.
    pub fn parse(name: &[u8]) -> Option<SockOpt> {
        Some(match name {
            b"keepalive" => SockOpt::KeepAlive,
            b"linger" => SockOpt::Linger,
            b"reuseaddr" => SockOpt::ReuseAddr,
            b"reuseport" => SockOpt::ReusePort,
            b"tcp-nodelay" => SockOpt::NoDelay,
            b"ipv6-v6only" => SockOpt::V6Only,
            b"tcp-keepidle" => SockOpt::KeepIdle,
            b"tcp-keepcnt" => SockOpt::KeepCount,
            b"tcp-keepintvl" => SockOpt::KeepInterval,
            b"recv-buffer-size" => SockOpt::RecvBufferSize,
            b"send-buffer-size" => SockOpt::SendBufferSize,
            _ => return None,
        })
    }
}

fn int(value: OptValue) -> u32 {
    match value {
        OptValue::Int(n) => n.clamp(0, u32::MAX as i64) as u32,
        OptValue::Bool(b) => b as u32,
        OptValue::Linger { .. } => 0,
    }
}

fn flag(value: OptValue) -> bool {
    matches!(value, OptValue::Bool(true))
}

/// Sets the `IPPROTO_TCP`-level integer option `name` on `sock`.
fn set_tcp_int(sock: &Socket, name: libc::c_int, value: u32) -> io::Result<()> {
    set_int(sock, libc::IPPROTO_TCP, name, value)
}

/// Sets the integer option `level`/`name` on `sock` (values past `c_int` are capped).
pub fn set_int(sock: &Socket, level: libc::c_int, name: libc::c_int, value: u32) -> io::Result<()> {
    let value = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt on a descriptor `sock` owns, with a pointer to a c_int and its
    // size, as the option expects.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets `opt` on `sock`.
pub fn set(sock: &Socket, opt: SockOpt, value: OptValue) -> io::Result<()> {
    match opt {
        SockOpt::KeepAlive => sock.set_keepalive(flag(value)),
        SockOpt::Linger => match value {
            OptValue::Linger { on, timeout } => {
                sock.set_linger(on.then(|| Duration::from_secs(timeout.max(0) as u64)))
            }
            _ => sock.set_linger(None),
        },
        SockOpt::ReuseAddr => sock.set_reuse_address(flag(value)),
        SockOpt::ReusePort => sock.set_reuse_port(flag(value)),
        SockOpt::NoDelay => sock.set_tcp_nodelay(flag(value)),
        SockOpt::V6Only => sock.set_only_v6(flag(value)),
        // Set one by one, as LuaSocket does: socket2's `set_tcp_keepalive` would also turn
        // SO_KEEPALIVE on, changing an option the caller did not name.
        SockOpt::KeepIdle => set_tcp_int(sock, libc::TCP_KEEPIDLE, int(value)),
        SockOpt::KeepInterval => set_tcp_int(sock, libc::TCP_KEEPINTVL, int(value)),
        SockOpt::KeepCount => set_tcp_int(sock, libc::TCP_KEEPCNT, int(value)),
        SockOpt::RecvBufferSize => sock.set_recv_buffer_size(int(value) as usize),
        SockOpt::SendBufferSize => sock.set_send_buffer_size(int(value) as usize),
    }
}

/// Reads `opt` from `sock`.
pub fn get(sock: &Socket, opt: SockOpt) -> io::Result<OptValue> {
    let secs = |d: Duration| OptValue::Int(d.as_secs() as i64);
    Ok(match opt {
        SockOpt::KeepAlive => OptValue::Bool(sock.keepalive()?),
        SockOpt::Linger => {
            let l = sock.linger()?;
            OptValue::Linger {
                on: l.is_some(),
                timeout: l.map_or(0, |d| d.as_secs() as i64),
            }
        }
        SockOpt::ReuseAddr => OptValue::Bool(sock.reuse_address()?),
        SockOpt::ReusePort => OptValue::Bool(sock.reuse_port()?),
        SockOpt::NoDelay => OptValue::Bool(sock.tcp_nodelay()?),
        SockOpt::V6Only => OptValue::Bool(sock.only_v6()?),
        SockOpt::KeepIdle => secs(sock.tcp_keepalive_time()?),
        SockOpt::KeepInterval => secs(sock.tcp_keepalive_interval()?),
        SockOpt::KeepCount => OptValue::Int(sock.tcp_keepalive_retries()? as i64),
        SockOpt::RecvBufferSize => OptValue::Int(sock.recv_buffer_size()? as i64),
        SockOpt::SendBufferSize => OptValue::Int(sock.send_buffer_size()? as i64),
    })
}
