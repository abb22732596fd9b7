//! Host names and addresses: what `bind`/`connect` accept, and how addresses are shown.
//!
//! IP literals are parsed without a system call. Names go through the system resolver
//! (`getaddrinfo`), which blocks the loop while it runs: fine for `localhost` and
//! `/etc/hosts`, a cost to know about for names that need DNS.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

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
        (host, port)
            .to_socket_addrs()
            .map_err(|_| "host not found".to_string())?
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

/// Parses an IP literal, with or without the brackets of an IPv6 URL host.
fn parse_ip(host: &str) -> Option<IpAddr> {
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
    fn names_resolve_or_fail_cleanly() {
        assert!(!resolve("localhost", 1, None).unwrap().is_empty());
        assert_eq!(
            resolve("no-such-host.invalid", 1, None),
            Err("host not found".to_string())
        );
    }
}
