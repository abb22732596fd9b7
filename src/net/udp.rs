//! UDP sockets with LuaSocket's UDP methods, never blocking: where LuaSocket would wait,
//! these return [`WANTREAD`] or [`WANTWRITE`] as the error and the Lua half
//! (`lua/socketloop/udp.lua`) parks the calling thread on the socket's wait key.
//!
//! Like LuaSocket's `socket.udp()`, a socket of no given family gets its descriptor from
//! the first `setsockname`, `setpeername` or `sendto`, of that address's family; options
//! set before then are applied when it is made. Every method takes and returns Rust
//! values; the Lua binding is [`crate::lua::udp`].

use crate::net::errors::message;
use crate::net::resolve::Family;
use crate::net::sockopt::set_int;
use crate::net::tcp::{WANTREAD, WANTWRITE};
use crate::rt::reactor::{SharedReactor, WriteReports};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};

/// LuaSocket's default `receive` size.
pub const DEFAULT_RECEIVE_SIZE: usize = 8192;
/// The largest datagram a receive returns (the largest a UDP header can state).
pub const MAX_DATAGRAM: usize = 65535;

/// An option LuaSocket's UDP objects know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpOpt {
    Broadcast,
    DontRoute,
    ReuseAddr,
    ReusePort,
    V6Only,
    RecvBufferSize,
    SendBufferSize,
    MulticastTtl,
    MulticastLoop,
    MulticastIf,
    AddMembership,
    DropMembership,
    UnicastHops6,
    MulticastHops6,
    MulticastLoop6,
    AddMembership6,
    DropMembership6,
}

/// What an option takes and returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptKind {
    Bool,
    Int,
    /// An IPv4 address string (`ip-multicast-if`).
    Address,
    /// `{multiaddr = ip, interface = ip | index}`; set only.
    Membership,
}

/// An option's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpValue {
    Bool(bool),
    Int(i64),
    Address(Ipv4Addr),
    /// IPv4: the interface's address; IPv6: its index (in the address's low bits).
    Membership {
        group: IpAddr,
        interface: IpAddr,
    },
}

impl UdpOpt {
    /// The option named `name`, as LuaSocket spells it.
    pub fn parse(name: &[u8]) -> Option<UdpOpt> {
        Some(match name {
            b"broadcast" => UdpOpt::Broadcast,
            b"dontroute" => UdpOpt::DontRoute,
            b"reuseaddr" => UdpOpt::ReuseAddr,
            b"reuseport" => UdpOpt::ReusePort,
            b"ipv6-v6only" => UdpOpt::V6Only,
            b"recv-buffer-size" => UdpOpt::RecvBufferSize,
            b"send-buffer-size" => UdpOpt::SendBufferSize,
            b"ip-multicast-ttl" => UdpOpt::MulticastTtl,
            b"ip-multicast-loop" => UdpOpt::MulticastLoop,
            b"ip-multicast-if" => UdpOpt::MulticastIf,
            b"ip-add-membership" => UdpOpt::AddMembership,
            b"ip-drop-membership" => UdpOpt::DropMembership,
            b"ipv6-unicast-hops" => UdpOpt::UnicastHops6,
            b"ipv6-multicast-hops" => UdpOpt::MulticastHops6,
            b"ipv6-multicast-loop" => UdpOpt::MulticastLoop6,
            b"ipv6-add-membership" | b"ipv6-join-group" => UdpOpt::AddMembership6,
            b"ipv6-drop-membership" | b"ipv6-leave-group" => UdpOpt::DropMembership6,
            _ => return None,
        })
    }

    pub fn kind(self) -> OptKind {
        match self {
            UdpOpt::RecvBufferSize
            | UdpOpt::SendBufferSize
            | UdpOpt::MulticastTtl
            | UdpOpt::UnicastHops6
            | UdpOpt::MulticastHops6 => OptKind::Int,
            UdpOpt::MulticastIf => OptKind::Address,
            UdpOpt::AddMembership
            | UdpOpt::DropMembership
            | UdpOpt::AddMembership6
            | UdpOpt::DropMembership6 => OptKind::Membership,
            _ => OptKind::Bool,
        }
    }
}

fn int(value: UdpValue) -> u32 {
    match value {
        UdpValue::Int(n) => n.clamp(0, u32::MAX as i64) as u32,
        UdpValue::Bool(b) => b as u32,
        _ => 0,
    }
}

fn flag(value: UdpValue) -> bool {
    match value {
        UdpValue::Bool(b) => b,
        UdpValue::Int(n) => n != 0,
        _ => false,
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

/// Sets `opt` on `sock`.
fn set_option(sock: &Socket, opt: UdpOpt, value: UdpValue) -> io::Result<()> {
    match (opt, value) {
        (UdpOpt::Broadcast, v) => sock.set_broadcast(flag(v)),
        (UdpOpt::DontRoute, v) => {
            set_int(sock, libc::SOL_SOCKET, libc::SO_DONTROUTE, flag(v) as u32)
        }
        (UdpOpt::ReuseAddr, v) => sock.set_reuse_address(flag(v)),
        (UdpOpt::ReusePort, v) => sock.set_reuse_port(flag(v)),
        (UdpOpt::V6Only, v) => sock.set_only_v6(flag(v)),
        (UdpOpt::RecvBufferSize, v) => sock.set_recv_buffer_size(int(v) as usize),
        (UdpOpt::SendBufferSize, v) => sock.set_send_buffer_size(int(v) as usize),
        (UdpOpt::MulticastTtl, v) => sock.set_multicast_ttl_v4(int(v)),
        (UdpOpt::MulticastLoop, v) => sock.set_multicast_loop_v4(flag(v)),
        (UdpOpt::MulticastIf, UdpValue::Address(a)) => sock.set_multicast_if_v4(&a),
        (UdpOpt::UnicastHops6, v) => sock.set_unicast_hops_v6(int(v)),
        (UdpOpt::MulticastHops6, v) => sock.set_multicast_hops_v6(int(v)),
        (UdpOpt::MulticastLoop6, v) => sock.set_multicast_loop_v6(flag(v)),
        (
            UdpOpt::AddMembership | UdpOpt::DropMembership,
            UdpValue::Membership {
                group: IpAddr::V4(g),
                interface: IpAddr::V4(i),
            },
        ) => {
            if opt == UdpOpt::AddMembership {
                sock.join_multicast_v4(&g, &i)
            } else {
                sock.leave_multicast_v4(&g, &i)
            }
        }
        (
            UdpOpt::AddMembership6 | UdpOpt::DropMembership6,
            UdpValue::Membership {
                group: IpAddr::V6(g),
                interface,
            },
        ) => {
            let index = match interface {
                IpAddr::V6(i) => u128::from(i) as u32,
                IpAddr::V4(i) => u32::from(i),
            };
            if opt == UdpOpt::AddMembership6 {
                sock.join_multicast_v6(&g, index)
            } else {
                sock.leave_multicast_v6(&g, index)
            }
        }
        _ => Err(invalid("invalid option value")),
    }
}

/// Reads `opt` from `sock`.
fn get_option(sock: &Socket, opt: UdpOpt) -> io::Result<UdpValue> {
    Ok(match opt {
        UdpOpt::Broadcast => UdpValue::Bool(sock.broadcast()?),
        UdpOpt::DontRoute => {
            UdpValue::Bool(get_int(sock, libc::SOL_SOCKET, libc::SO_DONTROUTE)? != 0)
        }
        UdpOpt::ReuseAddr => UdpValue::Bool(sock.reuse_address()?),
        UdpOpt::ReusePort => UdpValue::Bool(sock.reuse_port()?),
        UdpOpt::V6Only => UdpValue::Bool(sock.only_v6()?),
        UdpOpt::RecvBufferSize => UdpValue::Int(sock.recv_buffer_size()? as i64),
        UdpOpt::SendBufferSize => UdpValue::Int(sock.send_buffer_size()? as i64),
        UdpOpt::MulticastTtl => UdpValue::Int(sock.multicast_ttl_v4()? as i64),
        UdpOpt::MulticastLoop => UdpValue::Bool(sock.multicast_loop_v4()?),
        UdpOpt::MulticastIf => UdpValue::Address(sock.multicast_if_v4()?),
        UdpOpt::UnicastHops6 => UdpValue::Int(sock.unicast_hops_v6()? as i64),
        UdpOpt::MulticastHops6 => UdpValue::Int(sock.multicast_hops_v6()? as i64),
        UdpOpt::MulticastLoop6 => UdpValue::Bool(sock.multicast_loop_v6()?),
        UdpOpt::AddMembership
        | UdpOpt::DropMembership
        | UdpOpt::AddMembership6
        | UdpOpt::DropMembership6 => return Err(invalid("option can only be set")),
    })
}

fn get_int(sock: &Socket, level: libc::c_int, name: libc::c_int) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A non-blocking UDP socket registered with the reactor.
pub struct UdpSocket {
    reactor: SharedReactor,
    /// The reactor registration; None once closed.
    token: Option<usize>,
    sock: Option<Socket>,
    family: Option<Family>,
    connected: bool,
    pending: Vec<(UdpOpt, UdpValue)>,
}

/// An operation's error: the LuaSocket word, [`WANTREAD`] or [`WANTWRITE`].
type Failure = String;

impl UdpSocket {
    /// A socket of `family` (made at once, as LuaSocket's `udp4`/`udp6`), or of the family
    /// of the first address it is given.
    pub fn new(reactor: &SharedReactor, family: Option<Family>) -> io::Result<UdpSocket> {
        let token = reactor.borrow_mut().add_source();
        let mut s = UdpSocket {
            reactor: reactor.clone(),
            token: Some(token),
            sock: None,
            family,
            connected: false,
            pending: Vec::new(),
        };
        if let Some(f) = family {
            s.ensure_socket(f)?;
        }
        Ok(s)
    }

    /// The wait key base (`token * 2`); -1 once closed.
    pub fn token(&self) -> i64 {
        self.token.map_or(-1, |t| t as i64)
    }

    /// The descriptor, -1 when there is none.
    pub fn fd(&self) -> RawFd {
        self.sock.as_ref().map_or(-1, |s| s.as_raw_fd())
    }

    pub fn is_connected(&self) -> bool {
        self.connected
    }

    fn ensure_socket(&mut self, family: Family) -> io::Result<&Socket> {
        if self.sock.is_none() {
            let token = self
                .token
                .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
            let domain = match family {
                Family::V4 => Domain::IPV4,
                Family::V6 => Domain::IPV6,
            };
            let sock = Socket::new(
                domain,
                Type::DGRAM.nonblocking().cloexec(),
                Some(Protocol::UDP),
            )?;
            if family == Family::V6 {
                sock.set_only_v6(true)?;
            }
            for (opt, value) in &self.pending {
                set_option(&sock, *opt, *value)?;
            }
            self.reactor.borrow_mut().attach(
                token,
                sock.as_raw_fd(),
                WriteReports::AfterBlocked,
            )?;
            self.family = Some(family);
            self.sock = Some(sock);
        }
        match self.sock.as_ref() {
            Some(s) => Ok(s),
            None => Err(io::Error::from_raw_os_error(libc::EBADF)),
        }
    }

    /// The socket for `addr`: made of its family if there is none yet; an error if the
    /// socket is of the other family.
    fn socket_for(&mut self, addr: &SocketAddr) -> Result<&Socket, Failure> {
        if self.token.is_none() {
            return Err("closed".into());
        }
        let family = Family::of(addr);
        if self.family.is_some_and(|f| f != family) {
            return Err("address family not supported".into());
        }
        self.ensure_socket(family).map_err(|e| message(&e))
    }

    /// LuaSocket's `setsockname`: binds to the first of `addrs` that works.
    pub fn setsockname(&mut self, addrs: &[SocketAddr]) -> Result<(), Failure> {
        let mut last = "host not found".to_string();
        for addr in addrs {
            match self.socket_for(addr) {
                Ok(sock) => match sock.bind(&SockAddr::from(*addr)) {
                    Ok(()) => return Ok(()),
                    Err(e) => last = message(&e),
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// LuaSocket's `setpeername`: the peer is the first of `addrs` that works.
    pub fn setpeername(&mut self, addrs: &[SocketAddr]) -> Result<(), Failure> {
        let mut last = "host not found".to_string();
        for addr in addrs {
            match self.socket_for(addr) {
                Ok(sock) => match sock.connect(&SockAddr::from(*addr)) {
                    Ok(()) => {
                        self.connected = true;
                        return Ok(());
                    }
                    Err(e) => last = message(&e),
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `setpeername('*')`: forgets the peer.
    pub fn unconnect(&mut self) -> Result<(), Failure> {
        let Some(sock) = self.sock.as_ref() else {
            return if self.token.is_some() {
                Ok(())
            } else {
                Err("closed".into())
            };
        };
        // SAFETY: an all-zero sockaddr with family AF_UNSPEC is what connect(2) takes to
        // dissolve a datagram socket's association.
        let rc = unsafe {
            let mut none: libc::sockaddr = std::mem::zeroed();
            none.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
            libc::connect(
                sock.as_raw_fd(),
                &none,
                std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
            )
        };
        let e = io::Error::last_os_error();
        // Linux answers EAFNOSUPPORT for IPv4 sockets although it dissolved the peer.
        if rc != 0 && e.raw_os_error() != Some(libc::EAFNOSUPPORT) {
            return Err(message(&e));
        }
        self.connected = false;
        Ok(())
    }

    /// LuaSocket's `sendto`: the number of bytes sent.
    pub fn sendto(&mut self, data: &[u8], addr: &SocketAddr) -> Result<usize, Failure> {
        let sock = self.socket_for(addr)?;
        let r = sock.send_to_with_flags(data, &SockAddr::from(*addr), libc::MSG_NOSIGNAL);
        self.sent(r)
    }

    /// LuaSocket's `send` on a socket with a peer.
    pub fn send(&mut self, data: &[u8]) -> Result<usize, Failure> {
        let Some(sock) = self.sock.as_ref() else {
            return Err(if self.token.is_some() {
                "not connected"
            } else {
                "closed"
            }
            .into());
        };
        let r = sock.send_with_flags(data, libc::MSG_NOSIGNAL);
        self.sent(r)
    }

    fn sent(&self, r: io::Result<usize>) -> Result<usize, Failure> {
        match r {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let (Some(token), Ok(mut reactor)) = (self.token, self.reactor.try_borrow_mut())
                {
                    reactor.mark_unwritable(token);
                }
                Err(WANTWRITE.into())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(WANTWRITE.into()),
            Err(e) => Err(message(&e)),
        }
    }

    /// One datagram into `buf` (the rest of a longer one is dropped, as LuaSocket's):
    /// its length and sender.
    pub fn receive(&mut self, buf: &mut [u8]) -> Result<(usize, Option<SocketAddr>), Failure> {
        let Some(sock) = self.sock.as_ref() else {
            return Err("closed".into());
        };
        loop {
            // SAFETY: MaybeUninit<u8> has the layout of u8, and recv_from only writes.
            let uninit = unsafe {
                std::slice::from_raw_parts_mut(
                    buf.as_mut_ptr().cast::<MaybeUninit<u8>>(),
                    buf.len(),
                )
            };
            match sock.recv_from(uninit) {
                Ok((n, from)) => return Ok((n, from.as_socket())),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(WANTREAD.into()),
                // A previous send's ICMP error, reported on a connected socket.
                Err(e) => return Err(message(&e)),
            }
        }
    }

    /// `getsockname` (`peer` false) or `getpeername`.
    pub fn address(&self, peer: bool) -> Result<SocketAddr, Failure> {
        let Some(sock) = self.sock.as_ref() else {
            return Err("closed".into());
        };
        let addr = if peer {
            sock.peer_addr()
        } else {
            sock.local_addr()
        };
        match addr.map(|a| a.as_socket()) {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err("not an internet address".into()),
            Err(e) => Err(message(&e)),
        }
    }

    pub fn setoption(&mut self, opt: UdpOpt, value: UdpValue) -> Result<(), Failure> {
        match self.sock.as_ref() {
            Some(sock) => set_option(sock, opt, value).map_err(|e| message(&e)),
            None if self.token.is_some() => {
                self.pending.push((opt, value));
                Ok(())
            }
            None => Err("closed".into()),
        }
    }

    pub fn getoption(&self, opt: UdpOpt) -> Result<UdpValue, Failure> {
        match self.sock.as_ref() {
            Some(sock) => get_option(sock, opt).map_err(|e| message(&e)),
            None => match self.pending.iter().rev().find(|(o, _)| *o == opt) {
                Some((_, v)) => Ok(*v),
                None => Err("closed".into()),
            },
        }
    }

    /// Replaces the descriptor with `fd` (LuaSocket's `setfd`; the old one is not closed);
    /// -1 detaches it.
    pub fn setfd(&mut self, fd: RawFd) -> Result<(), Failure> {
        let Some(token) = self.token else {
            return Err("closed".into());
        };
        if let Some(old) = self.sock.take() {
            self.reactor.borrow_mut().detach(token);
            let _ = old.into_raw_fd();
        }
        self.connected = false;
        if fd < 0 {
            return Ok(());
        }
        // SAFETY: the caller hands this descriptor over; on failure it is released again.
        let sock = unsafe { Socket::from_raw_fd(fd) };
        let adopted = sock.set_nonblocking(true).and_then(|()| {
            self.reactor
                .borrow_mut()
                .attach(token, fd, WriteReports::AfterBlocked)
        });
        if let Err(e) = adopted {
            let _ = sock.into_raw_fd();
            return Err(message(&e));
        }
        self.family = sock
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| Family::of(&a));
        self.connected = sock.peer_addr().is_ok();
        self.sock = Some(sock);
        Ok(())
    }

    /// Closes the socket and frees its registration. Idempotent.
    pub fn close(&mut self) {
        if let Some(token) = self.token.take() {
            if let Ok(mut reactor) = self.reactor.try_borrow_mut() {
                reactor.remove_source(token);
            }
        }
        self.sock = None;
        self.connected = false;
    }

    /// For `tostring`: `udp{connected}: 0x...` or `udp{unconnected}: 0x...`, as LuaSocket's.
    pub fn describe(&self) -> String {
        let kind = if self.token.is_none() {
            "closed"
        } else if self.connected {
            "connected"
        } else {
            "unconnected"
        };
        format!("udp{{{kind}}}: {:p}", self as *const UdpSocket)
    }

    /// The family, once known (`'inet'`/`'inet6'`).
    pub fn family(&self) -> Option<Family> {
        self.family
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        self.close();
    }
}

/// The wildcard address of `family` (LuaSocket's `'*'`), port `port`.
pub fn wildcard(family: Family, port: u16) -> SocketAddr {
    match family {
        Family::V4 => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        Family::V6 => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port),
    }
}
