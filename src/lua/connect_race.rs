//! `core.race(addresses, port, attempt_timeout, stagger) -> race`: a Happy Eyeballs connect
//! ([`crate::net::connect_race`]) for `asocket:connect` to a name with several addresses.
//! `addresses` are IP literals in the resolver's order; the race interleaves the families.
//!
//! - `race:step() -> fd | nil, 'wantwrite', seconds | nil, err`: `fd` is the connected
//!   descriptor, still the race's until `race:handed()` says the caller's socket adopted
//!   it (`setfd`); `'wantwrite'` means park on `race:key()` for at most `seconds` (nil: no
//!   limit) and step again.
//! - `race:key()`, `race:block(seconds)` (a poll(2) wait outside the loop), `race:close()`
//!   (closes whatever it still owns, the winner too if it was not handed over).

use crate::net::connect_race::{ConnectRace, Progress};
use crate::net::resolve::{interleave, parse_ip};
use crate::net::tcp::WANTWRITE;
use crate::rt::reactor::{SharedReactor, WRITE};
use mlua::{Lua, MultiValue, Table, UserData, UserDataMethods, Value};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

struct Race {
    race: ConnectRace,
    /// The connected descriptor, until the caller's socket adopts it.
    winner: Option<OwnedFd>,
}

/// Seconds from Lua as a duration: None for nil, an error for NaN, infinities, negatives.
fn seconds(value: Option<f64>, arg: usize, fname: &str) -> mlua::Result<Option<Duration>> {
    match value {
        None => Ok(None),
        Some(s) if s.is_finite() && (0.0..=1e9).contains(&s) => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        Some(_) => Err(mlua::Error::runtime(format!(
            "bad argument #{arg} to '{fname}' (non-negative number of seconds expected)"
        ))),
    }
}

impl UserData for Race {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method_mut("step", |lua, r, ()| {
            if let Some(fd) = &r.winner {
                return Ok(MultiValue::from_vec(vec![Value::Integer(
                    fd.as_raw_fd() as i64
                )]));
            }
            let values = match r.race.step() {
                Progress::Connected(fd) => {
                    // SAFETY: the race handed this open descriptor over to us.
                    r.winner = Some(unsafe { OwnedFd::from_raw_fd(fd) });
                    vec![Value::Integer(fd as i64)]
                }
                Progress::Waiting(delay) => vec![
                    Value::Nil,
                    Value::String(lua.create_string(WANTWRITE)?),
                    delay.map_or(Value::Nil, |d| Value::Number(d.as_secs_f64())),
                ],
                Progress::Failed(err) => vec![Value::Nil, Value::String(lua.create_string(err)?)],
            };
            Ok(MultiValue::from_vec(values))
        });
        methods.add_method_mut("handed", |_, r, ()| {
            if let Some(fd) = r.winner.take() {
                let _ = fd.into_raw_fd();
            }
            Ok(())
        });
        methods.add_method("key", |_, r, ()| {
            let token = r.race.token();
            Ok(if token < 0 {
                -1
            } else {
                token * 2 + WRITE as i64
            })
        });
        methods.add_method("block", |_, r, limit: Option<f64>| {
            r.race.wait_blocking(seconds(limit, 1, "block")?);
            Ok(())
        });
        methods.add_method_mut("close", |_, r, ()| {
            r.race.close();
            r.winner = None;
            Ok(())
        });
    }
}

/// Sets `core.race` on `core`.
pub fn register(lua: &Lua, core: &Table, reactor: &SharedReactor) -> mlua::Result<()> {
    let r = reactor.clone();
    core.set(
        "race",
        lua.create_function(
            move |lua, (list, port, timeout, stagger): (Table, f64, Option<f64>, f64)| {
                if !(port.fract() == 0.0 && (0.0..=65535.0).contains(&port)) {
                    return Err(mlua::Error::runtime(
                        "bad argument #2 to 'race' (port out of range)",
                    ));
                }
                let timeout = seconds(timeout, 3, "race")?;
                let stagger = seconds(Some(stagger), 4, "race")?.unwrap_or_default();
                let mut ips: Vec<IpAddr> = Vec::new();
                for text in list.sequence_values::<mlua::LuaString>() {
                    match parse_ip(&text?.to_string_lossy()) {
                        Some(ip) => ips.push(ip),
                        None => {
                            return Err(mlua::Error::runtime(
                                "bad argument #1 to 'race' (IP addresses expected)",
                            ))
                        }
                    }
                }
                let addrs = interleave(&ips)
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port as u16))
                    .collect();
                lua.create_userdata(Race {
                    race: ConnectRace::new(&r, addrs, timeout, stagger),
                    winner: None,
                })
            },
        )?,
    )?;
    Ok(())
}
