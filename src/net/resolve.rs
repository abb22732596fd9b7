//! Host names and addresses: what `bind`/`connect` accept, and how addresses are shown.
//!
//! IP literals are parsed without a system call. Names go through the system resolver
//! ([`lookup`], getaddrinfo, so /etc/hosts, nsswitch.conf and resolv.conf apply). The Lua
//! layer runs lookups for names on the resolver pool ([`crate::rt::resolver`]) and hands
//! the sockets literals; [`resolve`] itself blocks, which only threads outside the loop
//! (and names that reach a socket directly) pay for.

use std::collections::VecDeque;
use std::ffi::CString;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The address family of a socket, once known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// LuaSocket's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }
}

/// Resolves `host`/`port` to the addresses of `family` (any, if None), in resolver order.
/// `'*'` (and an empty host) means every local address. Errors read like LuaSocket's.
pub fn resolve(host: &str, port: u16, family: Option<Family>) -> Result<Vec<SocketAddr>, String> {
    let wildcard = host == "*" || host.is_empty();
    let candidates: Vec<SocketAddr> = if wildcard {
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        vec![v4, v6]
    } else if let Some(ip) = parse_ip(host) {
        vec![SocketAddr::new(ip, port)]
    } else {
        lookup(host, family)?
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect()
    };
    let found: Vec<SocketAddr> = candidates
        .into_iter()
        .filter(|a| family.is_none_or(|f| Family::of(a) == f))
        .collect();
    if found.is_empty() {
        return Err("host not found".to_string());
    }
    Ok(found)
}

/// The name for LuaSocket's family string (`'inet'`, `'inet6'`); None for anything else.
pub fn family_named(name: &[u8]) -> Option<Family> {
    match name {
        b"inet" => Some(Family::V4),
        b"inet6" => Some(Family::V6),
        _ => None,
    }
}

/// The system resolver's addresses for `host` (of `family`, or both), in its order,
/// without duplicates. Blocks for as long as the resolver takes. Every failure to find the
/// name (unknown, no answer, no address of the family) reads `'host not found'`, as
/// LuaSocket's.
pub fn lookup(host: &str, family: Option<Family>) -> Result<Vec<IpAddr>, String> {
    if let Some(ip) = parse_ip(host) {
        return match family {
            Some(f) if f != Family::of(&SocketAddr::new(ip, 0)) => Err(NOT_FOUND.to_string()),
            _ => Ok(vec![ip]),
        };
    }
    let name = CString::new(host).map_err(|_| NOT_FOUND.to_string())?;
    // SAFETY: an all-zero addrinfo is a valid "no hints" value; the fields set are plain.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match family {
        Some(Family::V4) => libc::AF_INET,
        Some(Family::V6) => libc::AF_INET6,
        None => libc::AF_UNSPEC,
    };
    // One entry per address rather than one per socket type.
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut list: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: `name` is NUL-terminated, `hints` valid, and `list` receives a list that is
    // freed below with freeaddrinfo.
    let rc = unsafe { libc::getaddrinfo(name.as_ptr(), std::ptr::null(), &hints, &mut list) };
    if rc != 0 {
        return Err(match rc {
            libc::EAI_SYSTEM => crate::net::errors::message(&std::io::Error::last_os_error()),
            libc::EAI_MEMORY => "out of memory".to_string(),
            _ => NOT_FOUND.to_string(),
        });
    }
    let mut found: Vec<IpAddr> = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getaddrinfo returned, not yet freed; its
        // ai_addr points to a sockaddr of the length and family it states.
        let ip = unsafe {
            let e = &*entry;
            entry = e.ai_next;
            sockaddr_ip(e.ai_addr, e.ai_addrlen)
        };
        if let Some(ip) = ip {
            if !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    // SAFETY: `list` came from getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(list) };
    if found.is_empty() {
        return Err(NOT_FOUND.to_string());
    }
    Ok(found)
}

const NOT_FOUND: &str = "host not found";

/// The IP address in a sockaddr from getaddrinfo.
///
/// # Safety
/// `addr` is null or points to `len` readable bytes of a sockaddr.
unsafe fn sockaddr_ip(addr: *const libc::sockaddr, len: libc::socklen_t) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    match (*addr).sa_family as libc::c_int {
        libc::AF_INET if len as usize >= std::mem::size_of::<libc::sockaddr_in>() => {
            let a = &*(addr as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr))))
        }
        libc::AF_INET6 if len as usize >= std::mem::size_of::<libc::sockaddr_in6>() => {
            let a = &*(addr as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(a.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

/// Whether `host` needs no lookup: an IP literal (bracketed or not) or the wildcard.
pub fn is_literal(host: &str) -> bool {
    host == "*" || host.is_empty() || parse_ip(host).is_some()
}

/// The order connects try `addrs` in (RFC 8305's): the first address's family first, then
/// alternating families, each family in the resolver's order.
pub fn interleave(addrs: &[IpAddr]) -> Vec<IpAddr> {
    let Some(first) = addrs.first() else {
        return Vec::new();
    };
    let (mut same, mut other): (VecDeque<IpAddr>, VecDeque<IpAddr>) =
        addrs.iter().partition(|a| a.is_ipv6() == first.is_ipv6());
    let mut out = Vec::with_capacity(addrs.len());
    loop {
        match (same.pop_front(), other.pop_front()) {
            (None, None) => return out,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
}

/// Parses an IP literal, with or without the brackets of an IPv6 URL host.
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_wildcards() {
        let a = resolve("127.0.0.1", 80, None).unwrap();
        assert_eq!(a, vec!["127.0.0.1:80".parse().unwrap()]);
        let a = resolve("[::1]", 81, None).unwrap();
        assert_eq!(a, vec!["[::1]:81".parse().unwrap()]);
        let a = resolve("*", 0, Some(Family::V6)).unwrap();
        assert_eq!(a, vec!["[::]:0".parse().unwrap()]);
        assert!(resolve("::1", 1, Some(Family::V4)).is_err());
    }

    #[test]
    fn families_alternate_from_the_first() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let got = interleave(&[ip("::1"), ip("::2"), ip("::3"), ip("10.0.0.1")]);
        assert_eq!(got, vec![ip("::1"), ip("10.0.0.1"), ip("::2"), ip("::3")]);
        let got = interleave(&[ip("10.0.0.1"), ip("10.0.0.2"), ip("::1")]);
        assert_eq!(got, vec![ip("10.0.0.1"), ip("::1"), ip("10.0.0.2")]);
    }

    #[test]
    fn lookups_honour_the_family() {
        assert!(lookup("localhost", Some(Family::V4))
            .unwrap()
            .iter()
            .all(|a| a.is_ipv4()));
        assert_eq!(lookup("::1", Some(Family::V4)), Err(NOT_FOUND.to_string()));
    }

    #[test]
    fn names_resolve_or_fail_cleanly() {
        assert!(!resolve("localhost", 1, None).unwrap().is_empty());
        assert_eq!(
            resolve("no-such-host.invalid", 1, None),
            Err("host not found".to_string())
        );
    }
}
