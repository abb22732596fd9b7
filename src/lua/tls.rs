//! TLS as Lua sees it: `core.newtls(params, default_mode)` reads LuaSec-style parameters
//! into a shared [`TlsContext`], and the socket methods `starttls`, `handshake` and
//! `tlsinfo` (raw C functions beside the other socket methods, see [`crate::lua::tcp`]).
//!
//! A context is an mlua userdata; the raw socket methods cannot take it as an argument,
//! so each context has a number that `starttls` looks up in this thread's table of live
//! contexts. A number that names no live context (forged, or its context collected) is
//! refused.

use crate::lua::reply::Reply;
use crate::lua::stack::Stack;
use crate::lua::tcp::on_socket;
use crate::net::tcp::{WANTREAD, WANTWRITE};
use crate::net::tls::{
    Mode, PeerCertificate, Protocol, Source, Step, TlsContext, TlsInfo, TlsParams, TlsSession,
};
use mlua::ffi::{self, lua_CFunction, lua_State};
use mlua::{Lua, MetaMethod, Table, UserData, UserDataMethods, Value};
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{c_int, CStr};
use std::sync::Arc;

thread_local! {
    static CONTEXTS: RefCell<HashMap<u64, Arc<TlsContext>>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(1) };
}

/// A context as Lua holds it.
struct LuaTlsContext {
    id: u64,
    mode: Mode,
    verifies: bool,
    server_name: Option<String>,
}

impl Drop for LuaTlsContext {
    fn drop(&mut self) {
        let _ = CONTEXTS.try_with(|c| {
            if let Ok(mut c) = c.try_borrow_mut() {
                c.remove(&self.id);
            }
        });
    }
}

impl UserData for LuaTlsContext {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("id", |_, this, ()| Ok(this.id));
        methods.add_method("verifies", |_, this, ()| Ok(this.verifies));
        methods.add_method("server_name", |_, this, ()| Ok(this.server_name.clone()));
        methods.add_method("mode", |_, this, ()| {
            Ok(match this.mode {
                Mode::Client => "client",
                Mode::Server => "server",
            })
        });
        methods.add_meta_method(MetaMethod::ToString, |_, this, ()| {
            Ok(format!(
                "tls context ({})",
                match this.mode {
                    Mode::Client => "client",
                    Mode::Server => "server",
                }
            ))
        });
    }
}

/// Keys LuaSec takes that have no rustls counterpart: accepted and ignored, so that
/// parameter tables written for LuaSec carry over.
const LUASEC_ONLY: &[&str] = &[
    "options",
    "ciphers",
    "ciphersuites",
    "depth",
    "curve",
    "curves_list",
    "curveslist",
    "dhparam",
    "password",
    "verifyext",
    "dane",
];

/// Why a parameter table was refused: misuse (raised) or a failure (returned).
enum Refused {
    Misuse(String),
    Failed(String),
}

fn field_string(key: &str, value: &Value) -> Result<String, Refused> {
    match value {
        Value::String(s) => Ok(s.to_string_lossy().to_string()),
        v => Err(Refused::Misuse(format!(
            "field '{key}': string expected, got {}",
            v.type_name()
        ))),
    }
}

/// A string or a list of strings.
fn string_list(key: &str, value: &Value) -> Result<Vec<Vec<u8>>, Refused> {
    match value {
        Value::String(s) => Ok(vec![s.as_bytes().to_vec()]),
        Value::Table(t) => {
            let mut out = Vec::new();
            for v in t.sequence_values::<Value>() {
                match v {
                    Ok(Value::String(s)) => out.push(s.as_bytes().to_vec()),
                    Ok(v) => {
                        return Err(Refused::Misuse(format!(
                            "field '{key}': list of strings expected, got a {} in it",
                            v.type_name()
                        )))
                    }
                    Err(e) => return Err(Refused::Misuse(format!("field '{key}': {e}"))),
                }
            }
            Ok(out)
        }
        v => Err(Refused::Misuse(format!(
            "field '{key}': string or list expected, got {}",
            v.type_name()
        ))),
    }
}

fn parse_params(t: &Table, default_mode: Mode) -> Result<TlsParams, Refused> {
    let mut p = TlsParams {
        mode: default_mode,
        ..TlsParams::default()
    };
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair.map_err(|e| Refused::Misuse(e.to_string()))?;
        let key = match &k {
            Value::String(s) => s.to_string_lossy().to_string(),
            k => return Err(Refused::Misuse(format!("unexpected {} key", k.type_name()))),
        };
        match key.as_str() {
            "mode" => {
                p.mode = match field_string(&key, &v)?.as_str() {
                    "client" => Mode::Client,
                    "server" => Mode::Server,
                    m => return Err(Refused::Misuse(format!("field 'mode': 'client' or 'server' expected, got '{m}'"))),
                }
            }
            "certificate" => p.certificate = Some(Source::File(field_string(&key, &v)?)),
            "key" => p.key = Some(Source::File(field_string(&key, &v)?)),
            "certificate_pem" => p.certificate = Some(Source::Pem(field_string(&key, &v)?.into_bytes())),
            "key_pem" => p.key = Some(Source::Pem(field_string(&key, &v)?.into_bytes())),
            "cafile" => p.cafile = Some(field_string(&key, &v)?),
            "capath" => p.capath = Some(field_string(&key, &v)?),
            "server_name" => p.server_name = Some(field_string(&key, &v)?),
            "verify" => {
                let mut verify = None;
                for flag in string_list(&key, &v)? {
                    match flag.as_slice() {
                        b"none" => verify = Some(false),
                        b"peer" => verify = Some(true),
                        // OpenSSL's refinements of 'peer': rustls always fails without one.
                        b"fail_if_no_peer_cert" | b"client_once" => {}
                        f => {
                            return Err(Refused::Misuse(format!(
                                "field 'verify': 'peer' or 'none' expected, got '{}'",
                                String::from_utf8_lossy(f)
                            )))
                        }
                    }
                }
                p.verify = verify;
            }
            "protocol" => {
                p.protocol = match field_string(&key, &v)?.as_str() {
                    "any" | "sslv23" => Protocol::Any,
                    "tlsv1_2" => Protocol::Tls12,
                    "tlsv1_3" => Protocol::Tls13,
                    old @ ("tlsv1" | "tlsv1_1" | "sslv3" | "sslv2") => {
                        return Err(Refused::Failed(format!(
                            "protocol '{old}' is not supported (TLS 1.2 and 1.3 are: 'any', 'tlsv1_2', 'tlsv1_3')"
                        )))
                    }
                    other => return Err(Refused::Misuse(format!(
                        "field 'protocol': 'any', 'tlsv1_2' or 'tlsv1_3' expected, got '{other}'"
                    ))),
                }
            }
            "alpn" => {
                let list = string_list(&key, &v)?;
                if list.iter().any(|p| p.is_empty() || p.len() > 255) {
                    return Err(Refused::Misuse("field 'alpn': names of 1 to 255 bytes expected".to_string()));
                }
                p.alpn = list;
            }
            k if LUASEC_ONLY.contains(&k) => {}
            k => return Err(Refused::Misuse(format!("unknown TLS parameter '{k}'"))),
        }
    }
    Ok(p)
}

/// Sets `core.newtls` and `core.istlsctx` on `core`.
pub fn register(lua: &Lua, core: &Table) -> mlua::Result<()> {
    // newtls(params, default_mode) -> ctx | nil, message, 'misuse'?
    core.set(
        "newtls",
        lua.create_function(|lua, (params, default_mode): (Table, Option<String>)| {
            let default_mode = match default_mode.as_deref() {
                Some("server") => Mode::Server,
                _ => Mode::Client,
            };
            let refused = match parse_params(&params, default_mode) {
                Ok(p) => match TlsContext::new(&p) {
                    Ok(ctx) => {
                        let id = NEXT_ID.with(|n| {
                            let id = n.get();
                            n.set(id + 1);
                            id
                        });
                        let (mode, verifies) = (ctx.mode(), ctx.verifies());
                        let server_name = ctx.server_name().map(str::to_string);
                        CONTEXTS.with_borrow_mut(|c| c.insert(id, Arc::new(ctx)));
                        let ud = lua.create_userdata(LuaTlsContext {
                            id,
                            mode,
                            verifies,
                            server_name,
                        })?;
                        return Ok((Value::UserData(ud), Value::Nil, Value::Nil));
                    }
                    Err(e) => Refused::Failed(e),
                },
                Err(r) => r,
            };
            let (msg, misuse) = match refused {
                Refused::Misuse(m) => (m, Value::Boolean(true)),
                Refused::Failed(m) => (m, Value::Nil),
            };
            Ok((Value::Nil, Value::String(lua.create_string(msg)?), misuse))
        })?,
    )?;
    core.set(
        "istlsctx",
        lua.create_function(|_, v: Value| {
            Ok(matches!(v, Value::UserData(ud) if ud.is::<LuaTlsContext>()))
        })?,
    )?;
    Ok(())
}

/// The raw socket methods added to [`crate::lua::tcp`]'s method table.
pub const SOCKET_METHODS: &[(&CStr, lua_CFunction)] = &[
    (c"starttls", m_starttls),
    (c"handshake", m_handshake),
    (c"tlsinfo", m_tlsinfo),
];

fn optional_string(st: &Stack, i: c_int) -> Option<String> {
    st.string(i)
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

/// `sock:starttls(context_id, server_name|nil, host|nil) -> 1 | nil, err`.
unsafe extern "C-unwind" fn m_starttls(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    let ctx = st
        .strict_number(2)
        .filter(|n| n.fract() == 0.0 && *n >= 0.0)
        .and_then(|id| CONTEXTS.with_borrow(|c| c.get(&(id as u64)).cloned()));
    let Some(ctx) = ctx else {
        return Reply::misuse("starttls", 1, "TLS context expected").push(&st);
    };
    let (name, host) = (optional_string(&st, 3), optional_string(&st, 4));
    on_socket(&st, "starttls", |sock| {
        match TlsSession::new(&ctx, name.as_deref(), host.as_deref()) {
            Ok(session) => match sock.starttls(session) {
                Ok(()) => Reply::Int(1),
                Err(f) => Reply::failure("starttls", f),
            },
            Err(e) => Reply::Fail(Cow::Owned(e)),
        }
    })
}

/// `sock:handshake() -> 1 | nil, 'wantread' | 'wantwrite' | err`.
unsafe extern "C-unwind" fn m_handshake(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    on_socket(&st, "handshake", |sock| match sock.handshake() {
        Step::Done => Reply::Int(1),
        Step::WantRead => Reply::Fail(Cow::Borrowed(WANTREAD)),
        Step::WantWrite => Reply::Fail(Cow::Borrowed(WANTWRITE)),
        Step::Failed(e) => Reply::Fail(Cow::Owned(e)),
    })
}

/// `sock:tlsinfo() -> table | nil`.
unsafe extern "C-unwind" fn m_tlsinfo(state: *mut lua_State) -> c_int {
    let st = Stack::new(state);
    // The socket is borrowed only while the information is collected: building the
    // table allocates, which may run finalizers that call its methods.
    let mut info = None;
    let ret = on_socket(&st, "tlsinfo", |sock| {
        info = sock.tls().map(|t| t.info());
        Reply::Nothing
    });
    if ret != 0 {
        return ret; // the misuse reply
    }
    match info {
        Some(info) => push_info(&st, &info),
        None => st.push_nil(),
    }
    1
}

fn set_str(st: &Stack, key: &CStr, value: Option<&[u8]>) {
    if let Some(v) = value {
        st.push_bytes(v);
        st.set_field(key);
    }
}

fn push_info(st: &Stack, info: &TlsInfo) {
    st.push_table();
    set_str(st, c"protocol", info.protocol.as_deref().map(str::as_bytes));
    set_str(st, c"cipher", info.cipher.as_deref().map(str::as_bytes));
    set_str(st, c"alpn", info.alpn.as_deref());
    set_str(
        st,
        c"server_name",
        info.server_name.as_deref().map(str::as_bytes),
    );
    if let Some(cert) = &info.peer_certificate {
        push_certificate(st, cert);
        st.set_field(c"peer_certificate");
    }
}

fn push_certificate(st: &Stack, cert: &PeerCertificate) {
    st.push_table();
    set_str(st, c"subject", Some(cert.subject.as_bytes()));
    set_str(st, c"issuer", Some(cert.issuer.as_bytes()));
    set_str(st, c"not_after", Some(cert.not_after.as_bytes()));
    st.push_int(cert.not_after_time);
    st.set_field(c"not_after_time");
    st.push_table();
    for (i, name) in cert.sans.iter().enumerate() {
        st.push_str(name);
        // SAFETY: the sans table is at -2, the string just pushed at -1 (consumed).
        unsafe { ffi::lua_rawseti_(st.state(), -2, (i + 1) as c_int) };
    }
    st.set_field(c"sans");
}
