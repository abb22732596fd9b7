//! Name lookups as the Lua layer sees them (`loop.resolve`, and the connects and binds
//! of names in `lua/socketloop/asocket.lua` and `udp.lua`):
//! - `core.lookup(host, family) -> {ip...} | nil, err | lookup`: an IP literal is answered
//!   at once; a name is submitted to the resolver pool ([`crate::rt::resolver`]) and a
//!   lookup object comes back, whose `key()` the asking thread parks on;
//! - `lookup:take() -> {ip...} | nil, err` once the key was reported, `lookup:cancel()`
//!   when the caller gives up (a collected lookup object cancels itself);
//! - `core.lookup_blocking(host, family)`: the same lookup on the calling thread, for
//!   threads outside the loop (which block in every call anyway).
//!
//! - `core.isliteral(host)`: whether `host` is an IP literal or the wildcard (no lookup).
//!
//! `family` is `'inet'`, `'inet6'` or nil (checked by the Lua caller).

use crate::net::resolve::{family_named, is_literal, lookup, parse_ip, Family};
use crate::rt::reactor::{join_key, SharedReactor, READ};
use crate::rt::resolver::Outcome;
use mlua::{Lua, LuaString, MultiValue, Table, UserData, UserDataMethods, Value};

/// A lookup running on the pool for one waiting thread.
pub struct PendingLookup {
    reactor: SharedReactor,
    /// None once taken or cancelled.
    token: Option<usize>,
}

impl PendingLookup {
    fn end(&mut self) {
        if let Some(token) = self.token.take() {
            if let Ok(mut r) = self.reactor.try_borrow_mut() {
                r.end_lookup(token);
            }
        }
    }
}

impl Drop for PendingLookup {
    fn drop(&mut self) {
        self.end();
    }
}

impl UserData for PendingLookup {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("key", |_, p, ()| {
            Ok(p.token.map_or(-1, |t| join_key(t, READ)))
        });
        methods.add_function("take", |lua, this: mlua::AnyUserData| {
            let outcome = {
                let mut p = this.borrow_mut::<PendingLookup>()?;
                let Some(token) = p.token else {
                    return results(lua, Err("closed".to_string()));
                };
                let outcome = p.reactor.try_borrow_mut().ok().and_then(|mut r| {
                    let outcome = r.lookup_outcome(token);
                    if outcome.is_some() {
                        r.end_lookup(token);
                    }
                    outcome
                });
                if outcome.is_some() {
                    p.token = None;
                }
                outcome
            };
            match outcome {
                Some(outcome) => results(lua, outcome),
                None => Ok(MultiValue::new()),
            }
        });
        methods.add_method_mut("cancel", |_, p, ()| {
            p.end();
            Ok(())
        });
    }
}

/// `{ip...}` or `nil, message`.
fn results(lua: &Lua, outcome: Outcome) -> mlua::Result<MultiValue> {
    match outcome {
        Ok(ips) => {
            let t = lua.create_table_with_capacity(ips.len(), 0)?;
            for (i, ip) in ips.iter().enumerate() {
                t.raw_set(i + 1, ip.to_string())?;
            }
            Ok(MultiValue::from_vec(vec![Value::Table(t)]))
        }
        Err(e) => Ok(MultiValue::from_vec(vec![
            Value::Nil,
            Value::String(lua.create_string(&e)?),
        ])),
    }
}

fn family_arg(family: Option<LuaString>) -> Option<Family> {
    family.and_then(|f| family_named(&f.as_bytes()))
}

/// Sets `core.lookup` and `core.lookup_blocking` on `core`.
pub fn register(lua: &Lua, core: &Table, reactor: &SharedReactor) -> mlua::Result<()> {
    let r = reactor.clone();
    core.set(
        "lookup",
        lua.create_function(move |lua, (host, family): (LuaString, Option<LuaString>)| {
            let host = host.to_string_lossy();
            let family = family_arg(family);
            if parse_ip(&host).is_some() {
                return results(lua, lookup(&host, family));
            }
            let name = host.clone();
            let started = r
                .borrow_mut()
                .start_lookup(Box::new(move || lookup(&name, family)));
            match started {
                Ok(token) => {
                    let pending = PendingLookup {
                        reactor: r.clone(),
                        token: Some(token),
                    };
                    Ok(MultiValue::from_vec(vec![Value::UserData(
                        lua.create_userdata(pending)?,
                    )]))
                }
                Err(e) => results(lua, Err(crate::net::errors::message(&e))),
            }
        })?,
    )?;
    core.set(
        "isliteral",
        lua.create_function(|_, host: LuaString| Ok(is_literal(&host.to_string_lossy())))?,
    )?;
    core.set(
        "lookup_blocking",
        lua.create_function(|lua, (host, family): (LuaString, Option<LuaString>)| {
            results(lua, lookup(&host.to_string_lossy(), family_arg(family)))
        })?,
    )?;
    Ok(())
}
