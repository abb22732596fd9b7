//! TLS on our TCP sockets, with rustls (ring provider). No Lua here.
//!
//! - [`TlsParams`] are LuaSec-style parameters, already read from Lua.
//! - [`TlsContext`] is what `loop.newtls` makes of them: a rustls client or server
//!   configuration, built once (certificate files read and parsed, CA store loaded) and
//!   shared by every session made from it. The system's root store is loaded once per
//!   process and shared by every client context that uses it.
//! - [`TlsSession`] is one connection's rustls state. [`crate::net::tcp::TcpSocket`] holds
//!   one after `starttls` and routes its reads and writes through it, so every receive
//!   pattern, `send(data, i, j)`, `dirty`, `buffered` and `getstats` work on the decrypted
//!   stream unchanged. A session never blocks: where it needs the socket, it answers
//!   `WouldBlock` and the caller parks the thread as for plain TCP.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, DigitallySignedStruct, Error,
    RootCertStore, ServerConfig, ServerConnection, SignatureScheme, SupportedProtocolVersion,
};
use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::sync::{Arc, OnceLock};

/// Which end of the handshake a context plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Client,
    Server,
}

/// Which TLS versions a context speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Any,
    Tls12,
    Tls13,
}

/// Where a certificate chain or key comes from.
#[derive(Clone, Debug)]
pub enum Source {
    File(String),
    Pem(Vec<u8>),
}

/// LuaSec-style parameters (see docs/tls.md).
#[derive(Clone, Debug, Default)]
pub struct TlsParams {
    pub mode: Mode,
    pub certificate: Option<Source>,
    pub key: Option<Source>,
    pub cafile: Option<String>,
    pub capath: Option<String>,
    /// None: the mode's default (clients verify the server; servers ask for nothing).
    /// Some(true): 'peer' (servers require and check a client certificate).
    /// Some(false): 'none'.
    pub verify: Option<bool>,
    pub protocol: Protocol,
    pub alpn: Vec<Vec<u8>>,
    pub server_name: Option<String>,
}

enum Config {
    Client(Arc<ClientConfig>),
    Server(Arc<ServerConfig>),
}

/// A shared TLS configuration (`loop.newtls`).
pub struct TlsContext {
    config: Config,
    /// The name clients send and check when `starttls` is not given one.
    server_name: Option<String>,
    /// Clients: whether the server's certificate is checked (`verify` is not 'none').
    verifies: bool,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trusted roots (Debian's ca-certificates, or `SSL_CERT_FILE` /
/// `SSL_CERT_DIR` when set), loaded on first use and shared.
fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    let roots = ROOTS.get_or_init(|| {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        Arc::new(store)
    });
    if roots.is_empty() {
        return Err(
            "no trusted certificates found on this system (install ca-certificates, \
                    set SSL_CERT_FILE, or pass cafile)"
                .to_string(),
        );
    }
    Ok(roots.clone())
}

fn read_file(path: &str, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "cannot read {what} '{path}': {}",
            crate::net::errors::message(&e)
        )
    })
}

/// Every certificate in PEM `bytes` (what names them in errors: `origin`).
pub fn parse_certificates(
    bytes: &[u8],
    origin: &str,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
    let certs = certs.map_err(|e| format!("{origin}: bad PEM ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{origin}: no certificate found"));
    }
    Ok(certs)
}

/// The private key in PEM `bytes`.
pub fn parse_key(bytes: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, String> {
    if bytes.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
        return Err(format!(
            "{origin}: encrypted private keys are not supported (decrypt it with openssl pkey)"
        ));
    }
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!("{origin}: no private key found"),
        e => format!("{origin}: bad PEM ({e})"),
    })
}

fn load(source: &Source, what: &str) -> Result<(Vec<u8>, String), String> {
    match source {
        Source::File(path) => Ok((read_file(path, what)?, format!("{what} '{path}'"))),
        Source::Pem(bytes) => Ok((bytes.clone(), format!("{what} (PEM string)"))),
    }
}

/// The roots given by `cafile` and `capath`, or the system's when neither is.
fn roots(params: &TlsParams) -> Result<Arc<RootCertStore>, String> {
    if params.cafile.is_none() && params.capath.is_none() {
        return system_roots();
    }
    let mut store = RootCertStore::empty();
    if let Some(path) = &params.cafile {
        let bytes = read_file(path, "cafile")?;
        let certs = parse_certificates(&bytes, &format!("cafile '{path}'"))?;
        store.add_parsable_certificates(certs);
    }
    if let Some(dir) = &params.capath {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!(
                "cannot read capath '{dir}': {}",
                crate::net::errors::message(&e)
            )
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            // Files that are not PEM certificates (an OpenSSL CRL, a README) are skipped,
            // as OpenSSL's lookup does.
            if let Ok(bytes) = std::fs::read(&path) {
                let certs = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok);
                store.add_parsable_certificates(certs);
            }
        }
    }
    if store.is_empty() {
        return Err("no usable CA certificate in cafile/capath".to_string());
    }
    Ok(Arc::new(store))
}

fn versions(protocol: Protocol) -> &'static [&'static SupportedProtocolVersion] {
    static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match protocol {
        Protocol::Any => rustls::ALL_VERSIONS,
        Protocol::Tls12 => &TLS12,
        Protocol::Tls13 => &TLS13,
    }
}

fn chain_and_key(
    params: &TlsParams,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    match (&params.certificate, &params.key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => {
            let (bytes, origin) = load(cert, "certificate")?;
            let chain = parse_certificates(&bytes, &origin)?;
            let (bytes, origin) = load(key, "key")?;
            Ok(Some((chain, parse_key(&bytes, &origin)?)))
        }
        (Some(_), None) => Err("a certificate needs its key ('key' or 'key_pem')".to_string()),
        (None, Some(_)) => {
            Err("a key needs its certificate ('certificate' or 'certificate_pem')".to_string())
        }
    }
}

fn config_error(e: Error) -> String {
    match e {
        Error::General(s) => s,
        e => e.to_string(),
    }
}

impl TlsContext {
    pub fn new(params: &TlsParams) -> Result<TlsContext, String> {
        let builder_versions = versions(params.protocol);
        let config = match params.mode {
            Mode::Client => {
                let builder = ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(builder_versions)
                    .map_err(config_error)?;
                let builder = if params.verify == Some(false) {
                    builder
                        .dangerous()
                        .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
                } else {
                    builder.with_root_certificates(roots(params)?)
                };
                let mut config = match chain_and_key(params)? {
                    Some((chain, key)) => builder
                        .with_client_auth_cert(chain, key)
                        .map_err(|e| format!("bad certificate or key: {}", config_error(e)))?,
                    None => builder.with_no_client_auth(),
                };
                config.alpn_protocols = params.alpn.clone();
                Config::Client(Arc::new(config))
            }
            Mode::Server => {
                let Some((chain, key)) = chain_and_key(params)? else {
                    return Err("a server needs 'certificate' and 'key' (or 'certificate_pem' and 'key_pem')"
                        .to_string());
                };
                let builder = ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(builder_versions)
                    .map_err(config_error)?;
                let builder = if params.verify == Some(true) {
                    let verifier =
                        WebPkiClientVerifier::builder_with_provider(roots(params)?, provider())
                            .build()
                            .map_err(|e| format!("cannot verify client certificates: {e}"))?;
                    builder.with_client_cert_verifier(verifier)
                } else {
                    builder.with_no_client_auth()
                };
                let mut config = builder
                    .with_single_cert(chain, key)
                    .map_err(|e| format!("bad certificate or key: {}", config_error(e)))?;
                config.alpn_protocols = params.alpn.clone();
                Config::Server(Arc::new(config))
            }
        };
        Ok(TlsContext {
            config,
            server_name: params.server_name.clone(),
            verifies: params.verify != Some(false),
        })
    }

    /// Clients: the name checked when `starttls` names none (`server_name`).
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// Clients: whether the peer's certificate is verified.
    pub fn verifies(&self) -> bool {
        self.verifies
    }

    pub fn mode(&self) -> Mode {
        match self.config {
            Config::Client(_) => Mode::Client,
            Config::Server(_) => Mode::Server,
        }
    }
}

/// The verifier of `verify = 'none'`: accepts any certificate, still checks that the
/// handshake was signed by its key.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A failed TLS operation in words (see docs/tls.md for the list).
pub fn describe(err: &Error, name: Option<&str>) -> String {
    const VERIFY: &str = "certificate verify failed";
    match err {
        Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => format!("{VERIFY}: unknown issuer"),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "{VERIFY}: certificate is not valid for name \"{}\"",
                    name.unwrap_or("")
                )
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("{VERIFY}: certificate expired")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("{VERIFY}: certificate is not yet valid")
            }
            CertificateError::Revoked => format!("{VERIFY}: certificate revoked"),
            CertificateError::BadSignature => format!("{VERIFY}: bad signature"),
            CertificateError::BadEncoding => format!("{VERIFY}: bad certificate encoding"),
            e => format!("{VERIFY}: {}", lower_first(&e.to_string())),
        },
        Error::NoCertificatesPresented => "peer sent no certificate".to_string(),
        Error::AlertReceived(alert) => {
            format!(
                "handshake refused by peer: {}",
                lower(&format!("{alert:?}"))
            )
        }
        Error::PeerIncompatible(why) => {
            format!(
                "handshake failed: peer incompatible ({})",
                lower(&format!("{why:?}"))
            )
        }
        Error::NoApplicationProtocol => "handshake failed: no ALPN protocol in common".to_string(),
        Error::InvalidMessage(why) => {
            format!(
                "tls error: invalid message ({})",
                lower(&format!("{why:?}"))
            )
        }
        Error::PeerMisbehaved(why) => {
            format!(
                "tls error: peer misbehaved ({})",
                lower(&format!("{why:?}"))
            )
        }
        e => format!("tls error: {e}"),
    }
}

/// `BadCertificate` reads `bad certificate`.
fn lower(camel: &str) -> String {
    let head: String = camel
        .split(['(', '{'])
        .next()
        .unwrap_or(camel)
        .trim()
        .to_string();
    let mut out = String::with_capacity(head.len() + 4);
    for (i, c) in head.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push(' ');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads a socket for rustls, noting whether the kernel had no more to give.
struct FdReader {
    fd: RawFd,
    drained: bool,
}

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
            let n = unsafe { libc::recv(self.fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                self.drained = (n as usize) < buf.len();
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                self.drained = true;
            }
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

/// Writes to a socket for rustls (MSG_NOSIGNAL: a dead peer is an error, not SIGPIPE).
struct FdWriter(RawFd);

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
            let n =
                unsafe { libc::send(self.0, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a handshake step ended.
pub enum Step {
    Done,
    WantRead,
    WantWrite,
    Failed(String),
}

/// What reading records from the socket gave.
enum Records {
    /// Records were read and processed (or the peer closed: rustls now knows).
    Read,
    WouldBlock,
    Failed(String),
}

/// One connection's TLS state.
pub struct TlsSession {
    conn: Connection,
    /// The name checked against the server's certificate (clients), for messages.
    name: Option<Box<str>>,
    /// Decrypted bytes rustls holds that no read has taken yet.
    plain_left: usize,
    /// The last read from the socket took all the kernel had.
    drained: bool,
    /// The error that ended the session; every later operation reports it.
    failure: Option<Box<str>>,
}

/// Records fit in 16 KiB plus overhead: rustls's output buffer needs no more than a few.
const SEND_BUFFER_LIMIT: usize = 64 * 1024;

impl TlsSession {
    /// A session of `ctx`'s mode. `name` (clients): the server name to send and check;
    /// None takes the context's, then `host`.
    pub fn new(
        ctx: &TlsContext,
        name: Option<&str>,
        host: Option<&str>,
    ) -> Result<TlsSession, String> {
        let (conn, name) = match &ctx.config {
            Config::Client(config) => {
                let Some(name) = name.or(ctx.server_name.as_deref()).or(host) else {
                    return Err("no server name to verify (pass server_name)".to_string());
                };
                // An IPv6 literal may come bracketed, as in a URL.
                let bare = name.trim_start_matches('[').trim_end_matches(']');
                let server_name = ServerName::try_from(bare.to_string())
                    .map_err(|_| format!("invalid server name \"{name}\""))?;
                let conn = ClientConnection::new(config.clone(), server_name)
                    .map_err(|e| describe(&e, Some(name)))?;
                (Connection::Client(conn), Some(name.into()))
            }
            Config::Server(config) => {
                let conn = ServerConnection::new(config.clone()).map_err(|e| describe(&e, None))?;
                (Connection::Server(conn), None)
            }
        };
        let mut session = TlsSession {
            conn,
            name,
            plain_left: 0,
            drained: false,
            failure: None,
        };
        session.conn.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        Ok(session)
    }

    /// Hands rustls bytes already taken from the socket before the handshake began.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match self.conn.read_tls(&mut bytes) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("tls error: {e}")),
            }
            self.process()?;
        }
        Ok(())
    }

    fn process(&mut self) -> Result<(), String> {
        match self.conn.process_new_packets() {
            Ok(state) => {
                self.plain_left = state.plaintext_bytes_to_read();
                Ok(())
            }
            Err(e) => {
                let msg = describe(&e, self.name.as_deref());
                self.failure = Some(msg.as_str().into());
                Err(msg)
            }
        }
    }

    fn read_records(&mut self, fd: RawFd) -> Records {
        let mut reader = FdReader { fd, drained: false };
        let got = self.conn.read_tls(&mut reader);
        self.drained = reader.drained;
        match got {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Records::WouldBlock,
            Err(e) => return Records::Failed(crate::net::errors::message(&e)),
        }
        match self.process() {
            Ok(()) => Records::Read,
            Err(msg) => {
                // The alert rustls queued tells the peer why; best effort.
                let _ = self.flush(fd);
                Records::Failed(msg)
            }
        }
    }

    /// Drives the handshake as far as the socket allows.
    pub fn handshake(&mut self, fd: RawFd) -> Step {
        loop {
            if let Some(f) = &self.failure {
                return Step::Failed(f.to_string());
            }
            match self.flush(fd) {
                Ok(true) => {}
                Ok(false) => return Step::WantWrite,
                Err(e) => return Step::Failed(crate::net::errors::message(&e)),
            }
            if !self.conn.is_handshaking() {
                return Step::Done;
            }
            match self.read_records(fd) {
                Records::Read => {
                    // The peer closed mid-handshake without saying why.
                    if self.conn.is_handshaking() && self.eof_seen() {
                        return Step::Failed("closed".to_string());
                    }
                }
                Records::WouldBlock => return Step::WantRead,
                Records::Failed(msg) => return Step::Failed(msg),
            }
        }
    }

    /// The TCP connection ended (rustls saw end of file without close_notify).
    fn eof_seen(&mut self) -> bool {
        matches!(self.conn.reader().into_first_chunk(), Err(e) if e.kind() == io::ErrorKind::UnexpectedEof)
    }

    /// Like recv(2) on the decrypted stream: Ok(0) at its end (close_notify, or the TCP
    /// connection closed without one), WouldBlock when the socket has nothing more.
    pub fn read(&mut self, fd: RawFd, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &self.failure {
                return Err(io::Error::other(f.to_string()));
            }
            match self.conn.reader().read(out) {
                Ok(n) => {
                    self.plain_left = self.plain_left.saturating_sub(n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.plain_left = 0,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match self.read_records(fd) {
                Records::Read => {
                    // A key update or a post-handshake message may have queued output.
                    if self.conn.wants_write() {
                        let _ = self.flush(fd);
                    }
                }
                Records::WouldBlock => return Err(io::ErrorKind::WouldBlock.into()),
                Records::Failed(msg) => return Err(io::Error::other(msg)),
            }
        }
    }

    /// The last read from the socket took everything the kernel had.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Decrypted bytes waiting inside rustls.
    pub fn buffered(&self) -> usize {
        self.plain_left
    }

    /// Sends what rustls has queued; Ok(false) when the socket took no more.
    pub fn flush(&mut self, fd: RawFd) -> io::Result<bool> {
        let mut writer = FdWriter(fd);
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut writer) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Encrypts as much of `bytes` as rustls's output buffer takes (the caller flushes).
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if let Some(f) = &self.failure {
            return Err(io::Error::other(f.to_string()));
        }
        self.conn.writer().write(bytes)
    }

    /// Queues close_notify and sends what the socket takes now, without waiting.
    pub fn close_notify(&mut self, fd: RawFd) {
        if self.failure.is_none() && !self.conn.is_handshaking() {
            self.conn.send_close_notify();
            let _ = self.flush(fd);
        }
    }

    /// What `tlsinfo` reports.
    pub fn info(&self) -> TlsInfo {
        let server_name = match &self.conn {
            Connection::Client(_) => self.name.as_deref().map(str::to_string),
            Connection::Server(c) => c.server_name().map(str::to_string),
        };
        TlsInfo {
            protocol: self.conn.protocol_version().map(|v| match v {
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
                v => format!("{v:?}"),
            }),
            cipher: self
                .conn
                .negotiated_cipher_suite()
                .map(|s| s.suite().as_str().unwrap_or("unknown").to_string()),
            alpn: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificate: self
                .conn
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|der| PeerCertificate::parse(der)),
        }
    }
}

/// A finished session's parameters.
pub struct TlsInfo {
    pub protocol: Option<String>,
    pub cipher: Option<String>,
    pub alpn: Option<Vec<u8>>,
    pub server_name: Option<String>,
    pub peer_certificate: Option<PeerCertificate>,
}

/// The peer's end-entity certificate, in words.
pub struct PeerCertificate {
    pub subject: String,
    pub issuer: String,
    /// As OpenSSL prints it: `Mar 10 12:00:00 2030 +00:00`.
    pub not_after: String,
    /// Seconds since the epoch.
    pub not_after_time: i64,
    /// DNS names and IP addresses.
    pub sans: Vec<String>,
}

impl PeerCertificate {
    fn parse(der: &[u8]) -> Option<PeerCertificate> {
        use x509_parser::extensions::GeneralName;
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut sans = Vec::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(s) => sans.push(s.to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => sans.push(
                            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string(),
                        ),
                        16 => sans.push(
                            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string(),
                        ),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        let not_after = cert.validity().not_after;
        Some(PeerCertificate {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_after: not_after.to_string(),
            not_after_time: not_after.timestamp(),
            sans,
        })
    }
}

/// rustls's `Display` texts start with a capital; ours do not.
fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
