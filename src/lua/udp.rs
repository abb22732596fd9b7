//! The Lua face of [`UdpSocket`]: `core.udp([family]) -> socket | nil, err` and
//! `core.isudp(v)`. The methods speak LuaSocket's UDP API with IP literals only; the
//! asynchronous wrapper (`lua/socketloop/udp.lua`) looks names up, parks threads on
//! `'wantread'`/`'wantwrite'` and raises misuse, which methods report as
//! `nil, MISUSE, message` (see [`crate::net::errors`]).
//!
//! No method holds a borrow of its socket while it creates Lua values: a Lua allocation
//! may run a finalizer that uses the same socket.

use crate::lua::reply::MISUSE;
use crate::net::resolve::{family_named, parse_ip, Family};
use crate::net::udp::{OptKind, UdpOpt, UdpSocket, UdpValue, DEFAULT_RECEIVE_SIZE, MAX_DATAGRAM};
use crate::rt::reactor::SharedReactor;
use mlua::{AnyUserData, Lua, LuaString, MultiValue, Table, UserData, UserDataMethods, Value};
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};

thread_local! {
    /// Where receives read; a receive that finds it in use (a finalizer receiving while a
    /// receive creates its string) reads into a buffer of its own.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

struct LuaUdp(UdpSocket);

type Values = mlua::Result<MultiValue>;

fn values(v: Vec<Value>) -> Values {
    Ok(MultiValue::from_vec(v))
}

fn fail(lua: &Lua, err: &str) -> Values {
    values(vec![Value::Nil, Value::String(lua.create_string(err)?)])
}

fn misuse(lua: &Lua, fname: &str, arg: usize, why: &str) -> Values {
    let msg = if arg == 0 {
        format!("calling '{fname}' on bad self ({why})")
    } else {
        format!("bad argument #{arg} to '{fname}' ({why})")
    };
    values(vec![
        Value::Nil,
        Value::String(lua.create_string(MISUSE)?),
        Value::String(lua.create_string(msg)?),
    ])
}

fn number(lua: &Lua, n: usize) -> Values {
    let _ = lua;
    values(vec![Value::Integer(n as i64)])
}

/// A datagram as a string argument (numbers are coerced, as LuaSocket's).
fn datagram(v: &Value) -> Option<LuaString> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A port argument: a whole number 0..=65535 (or numeric string).
fn port(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        Value::String(s) => s.to_str().ok()?.trim().parse().ok()?,
        _ => return None,
    };
    (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
}

/// An IP literal argument (`'*'` as the wildcard of `family` when allowed).
fn address(v: &Value, wildcard: Option<Family>) -> Option<IpAddr> {
    let Value::String(s) = v else { return None };
    let text = s.to_string_lossy();
    if text == "*" {
        return wildcard.map(|f| crate::net::udp::wildcard(f, 0).ip());
    }
    parse_ip(&text)
}

/// A receive size: nil for LuaSocket's default; capped at the largest datagram.
fn receive_size(v: &Value) -> Option<usize> {
    let n = match v {
        Value::Nil => return Some(DEFAULT_RECEIVE_SIZE),
        Value::Integer(i) => *i as f64,
        Value::Number(n) => *n,
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then(|| (n as usize).min(MAX_DATAGRAM))
}

/// Receives one datagram of at most `size` bytes; pushes it (and with `from`, the sender's
/// address and port).
fn receive(lua: &Lua, this: &AnyUserData, size: usize, from: bool) -> Values {
    let mut own = Vec::new();
    SCRATCH.with(|scratch| {
        let mut shared = scratch.try_borrow_mut();
        let buf: &mut [u8] = match shared.as_mut() {
            Ok(buf) => &mut buf[..size],
            Err(_) => {
                own.resize(size, 0);
                &mut own
            }
        };
        let got = {
            let mut s = this.borrow_mut::<LuaUdp>()?;
            s.0.receive(buf)
        };
        match got {
            Ok((n, sender)) => {
                let data = Value::String(lua.create_string(&buf[..n])?);
                if !from {
                    return values(vec![data]);
                }
                match sender {
                    Some(a) => values(vec![
                        data,
                        Value::String(lua.create_string(a.ip().to_string())?),
                        Value::Integer(a.port() as i64),
                    ]),
                    None => values(vec![data]),
                }
            }
            Err(e) => fail(lua, &e),
        }
    })
}

/// `ip, port, family` of an address.
fn push_address(lua: &Lua, a: SocketAddr) -> Values {
    values(vec![
        Value::String(lua.create_string(a.ip().to_string())?),
        Value::Integer(a.port() as i64),
        Value::String(lua.create_string(Family::of(&a).name())?),
    ])
}

/// An option value from Lua for `opt`, or why it is not one.
fn option_value(opt: UdpOpt, v: &Value) -> Result<UdpValue, &'static str> {
    match opt.kind() {
        OptKind::Bool => match v {
            Value::Boolean(b) => Ok(UdpValue::Bool(*b)),
            Value::Integer(i) => Ok(UdpValue::Bool(*i != 0)),
            Value::Number(n) => Ok(UdpValue::Bool(*n != 0.0)),
            _ => Err("boolean expected"),
        },
        OptKind::Int => {
            let n = match v {
                Value::Integer(i) => *i as f64,
                Value::Number(n) => *n,
                _ => f64::NAN,
            };
            if n.is_finite() && (0.0..=i32::MAX as f64).contains(&n) {
                Ok(UdpValue::Int(n as i64))
            } else {
                Err("non-negative number expected")
            }
        }
        OptKind::Address => match address(v, None) {
            Some(IpAddr::V4(a)) => Ok(UdpValue::Address(a)),
            _ => Err("IPv4 address expected"),
        },
        OptKind::Membership => {
            let Value::Table(t) = v else {
                return Err("table {multiaddr=, interface=} expected");
            };
            let group = t
                .get::<Value>("multiaddr")
                .ok()
                .and_then(|g| address(&g, None))
                .ok_or("'multiaddr' must be an IP address")?;
            let interface = match t.get::<Value>("interface").unwrap_or(Value::Nil) {
                Value::Nil => None,
                Value::Integer(i) if (0..=u32::MAX as i64).contains(&i) => {
                    Some(IpAddr::V6((i as u128).into()))
                }
                Value::Number(n) if n.fract() == 0.0 && (0.0..=u32::MAX as f64).contains(&n) => {
                    Some(IpAddr::V6((n as u128).into()))
                }
                other => address(&other, Some(Family::V4)),
            };
            let interface = match (group, interface) {
                (_, Some(i)) => i,
                (IpAddr::V4(_), None) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                (IpAddr::V6(_), None) => IpAddr::V6(0u128.into()),
            };
            if matches!((group, interface), (IpAddr::V4(_), IpAddr::V6(_))) {
                return Err("'interface' must be an IPv4 address");
            }
            Ok(UdpValue::Membership { group, interface })
        }
    }
}

fn option_result(lua: &Lua, v: UdpValue) -> Values {
    values(vec![match v {
        UdpValue::Bool(b) => Value::Boolean(b),
        UdpValue::Int(n) => Value::Integer(n),
        UdpValue::Address(a) => Value::String(lua.create_string(a.to_string())?),
        UdpValue::Membership { .. } => Value::Nil,
    }])
}

fn ok1() -> Values {
    values(vec![Value::Integer(1)])
}

impl UserData for LuaUdp {
    fn add_methods<M: UserDataMethods<Self>>(m: &mut M) {
        m.add_function("receive", |lua, (this, size): (AnyUserData, Value)| {
            let Some(size) = receive_size(&size) else {
                return misuse(lua, "receive", 1, "non-negative number expected");
            };
            receive(lua, &this, size, false)
        });
        m.add_function("receivefrom", |lua, (this, size): (AnyUserData, Value)| {
            let Some(size) = receive_size(&size) else {
                return misuse(lua, "receivefrom", 1, "non-negative number expected");
            };
            receive(lua, &this, size, true)
        });
        m.add_method_mut("send", |lua, s, data: Value| {
            let Some(data) = datagram(&data) else {
                return misuse(lua, "send", 1, "string expected");
            };
            match s.0.send(&data.as_bytes()) {
                Ok(n) => number(lua, n),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method_mut("sendto", |lua, s, (data, ip, p): (Value, Value, Value)| {
            let Some(data) = datagram(&data) else {
                return misuse(lua, "sendto", 1, "string expected");
            };
            let Some(ip) = address(&ip, None) else {
                return misuse(lua, "sendto", 2, "IP address expected");
            };
            let Some(p) = port(&p) else {
                return misuse(lua, "sendto", 3, "port out of range");
            };
            match s.0.sendto(&data.as_bytes(), &SocketAddr::new(ip, p)) {
                Ok(n) => number(lua, n),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method_mut("setsockname", |lua, s, (ip, p): (Value, Value)| {
            let Some(p) = port(&p) else {
                return misuse(lua, "setsockname", 2, "port out of range");
            };
            let addrs: Vec<SocketAddr> = match (&ip, s.0.family()) {
                (Value::String(t), None) if t.as_bytes().as_ref() == b"*" => vec![
                    crate::net::udp::wildcard(Family::V4, p),
                    crate::net::udp::wildcard(Family::V6, p),
                ],
                _ => match address(&ip, s.0.family()) {
                    Some(ip) => vec![SocketAddr::new(ip, p)],
                    None => return misuse(lua, "setsockname", 1, "IP address expected"),
                },
            };
            match s.0.setsockname(&addrs) {
                Ok(()) => ok1(),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method_mut("setpeername", |lua, s, (ip, p): (Value, Value)| {
            if matches!(&ip, Value::String(t) if t.as_bytes().as_ref() == b"*") {
                return match s.0.unconnect() {
                    Ok(()) => ok1(),
                    Err(e) => fail(lua, &e),
                };
            }
            let Some(ip) = address(&ip, None) else {
                return misuse(lua, "setpeername", 1, "IP address expected");
            };
            let Some(p) = port(&p) else {
                return misuse(lua, "setpeername", 2, "port out of range");
            };
            match s.0.setpeername(&[SocketAddr::new(ip, p)]) {
                Ok(()) => ok1(),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("getsockname", |lua, s, ()| match s.0.address(false) {
            Ok(a) => push_address(lua, a),
            Err(e) => fail(lua, &e),
        });
        m.add_method("getpeername", |lua, s, ()| match s.0.address(true) {
            Ok(a) => push_address(lua, a),
            Err(e) => fail(lua, &e),
        });
        m.add_method_mut("setoption", |lua, s, (name, value): (Value, Value)| {
            let name = match &name {
                Value::String(n) => n.to_string_lossy(),
                _ => return misuse(lua, "setoption", 1, "string expected"),
            };
            let Some(opt) = UdpOpt::parse(name.as_bytes()) else {
                return misuse(lua, "setoption", 1, &format!("unsupported option '{name}'"));
            };
            let value = match option_value(opt, &value) {
                Ok(v) => v,
                Err(why) => return misuse(lua, "setoption", 2, why),
            };
            match s.0.setoption(opt, value) {
                Ok(()) => ok1(),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("getoption", |lua, s, name: Value| {
            let name = match &name {
                Value::String(n) => n.to_string_lossy(),
                _ => return misuse(lua, "getoption", 1, "string expected"),
            };
            let Some(opt) = UdpOpt::parse(name.as_bytes()) else {
                return misuse(lua, "getoption", 1, &format!("unsupported option '{name}'"));
            };
            match s.0.getoption(opt) {
                Ok(v) => option_result(lua, v),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method("getfd", |_, s, ()| Ok(s.0.fd() as i64));
        m.add_method_mut("setfd", |lua, s, fd: Value| {
            let fd = match fd {
                Value::Integer(i) if (-1..=i32::MAX as i64).contains(&i) => i as i32,
                Value::Number(n) if n.fract() == 0.0 && (-1.0..=i32::MAX as f64).contains(&n) => {
                    n as i32
                }
                _ => return misuse(lua, "setfd", 1, "descriptor expected"),
            };
            match s.0.setfd(fd) {
                Ok(()) => ok1(),
                Err(e) => fail(lua, &e),
            }
        });
        m.add_method_mut("close", |_, s, ()| {
            s.0.close();
            Ok(1)
        });
        m.add_method("token", |_, s, ()| Ok(s.0.token()));
        m.add_method("dirty", |_, _, ()| Ok(false));
        m.add_method("getfamily", |_, s, ()| Ok(s.0.family().map(|f| f.name())));
        m.add_meta_method("__tostring", |_, s, ()| Ok(s.0.describe()));
    }
}

/// Sets `core.udp` and `core.isudp` on `core`.
pub fn register(lua: &Lua, core: &Table, reactor: &SharedReactor) -> mlua::Result<()> {
    let r = reactor.clone();
    core.set(
        "udp",
        lua.create_function(move |lua, family: Option<LuaString>| {
            let family = family.and_then(|f| family_named(&f.as_bytes()));
            match UdpSocket::new(&r, family) {
                Ok(s) => values(vec![Value::UserData(lua.create_userdata(LuaUdp(s))?)]),
                Err(e) => fail(lua, &crate::net::errors::message(&e)),
            }
        })?,
    )?;
    core.set(
        "isudp",
        lua.create_function(|_, v: Value| {
            Ok(matches!(v, Value::UserData(ud) if ud.is::<LuaUdp>()))
        })?,
    )?;
    Ok(())
}
