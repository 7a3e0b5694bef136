//! TLS as a layer of the connection (feature `tls`), between the socket's
//! raw bytes and the connection's input and output buffers — libevent's
//! filter bufferevent. Everything that works on a plaintext connection
//! (callbacks, streams, codecs, watermarks) works unchanged over TLS: the
//! buffers hold plaintext, the socket carries TLS records.
//!
//! TLS is [rustls] with its `ring` crypto provider. The caller brings the
//! rustls configuration, so certificate roots (the `webpki-roots` bundle
//! with the `tls-webpki-roots` feature, the platform's store through
//! `rustls-native-certs` or `rustls-platform-verifier`, or a private CA),
//! client certificates, protocol versions and key logging are all the
//! caller's choice:
//!
//! * a client uses [`TlsClientOptions`]: an `Arc<rustls::ClientConfig>`, the
//!   name to verify the server's certificate against (also sent as SNI when
//!   it is a DNS name), and optionally ALPN protocols;
//! * a server uses [`TlsServerOptions`]: an `Arc<rustls::ServerConfig>`
//!   (which says whether client certificates are optional or required), and
//!   optionally ALPN protocols.
//!
//! After the handshake, [`TlsInfo`] tells what was negotiated: the ALPN
//! protocol, the SNI name the client asked for, the peer's certificates, the
//! protocol version and the cipher suite.
//!
//! # Failures and the end of the stream
//!
//! Failures are [`Error::Tls`] with a [`TlsErrorKind`](crate::TlsErrorKind)
//! to match on and rustls's reason. A connection whose peer ends it without
//! `close_notify` fails with
//! [`TlsErrorKind::Truncated`](crate::TlsErrorKind::Truncated) — someone may
//! have cut the data short — unless the options
//! [allow truncation](TlsClientOptions::allow_truncation), in which case it
//! ends like a plaintext connection at EOF.

use std::sync::Arc;

pub use rustls;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CipherSuite, ClientConfig, ProtocolVersion, ServerConfig};

use crate::error::{Error, Result};

mod session;

#[cfg(test)]
pub(crate) use session::TlsEnd;
pub(crate) use session::TlsSession;

#[cfg(test)]
#[path = "../../tests/common/tls.rs"]
mod test_certs;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod interop_tests;

/// Which side of TLS a connection takes, with its settings.
#[derive(Debug, Clone)]
pub(crate) enum TlsSetup {
    Client(TlsClientOptions),
    Server(TlsServerOptions),
}

impl TlsSetup {
    /// Refuses settings that cannot work.
    pub(crate) fn validate(&self) -> Result<()> {
        let limit = match self {
            TlsSetup::Client(options) => options.buffer_limit,
            TlsSetup::Server(options) => options.buffer_limit,
        };
        if limit == 0 {
            return Err(Error::InvalidInput(
                "the TLS buffer limit must be at least 1 byte".into(),
            ));
        }
        Ok(())
    }

    /// A new session for this side.
    pub(crate) fn session(&self) -> Result<TlsSession> {
        match self {
            TlsSetup::Client(options) => TlsSession::client(options),
            TlsSetup::Server(options) => TlsSession::server(options),
        }
    }
}

/// How much the session holds for sending by default: plaintext written
/// before the handshake completes, and encrypted records not yet taken by
/// the kernel (rustls's own default).
pub const DEFAULT_TLS_BUFFER_LIMIT: usize = 64 * 1024;

/// TLS settings of a client connection: the rustls configuration and the
/// server's name.
///
/// The name is what the server's certificate is verified against, and is
/// sent as SNI when it is a DNS name (an IP address is not sent). ALPN
/// protocols can be set here or in the configuration.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use evstream::tls::rustls;
/// use evstream::TlsClientOptions;
///
/// let mut roots = rustls::RootCertStore::empty();
/// // roots.add(my_ca_der)?; or roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
/// let config = rustls::ClientConfig::builder()
///     .with_root_certificates(roots)
///     .with_no_client_auth();
/// let options = TlsClientOptions::new(Arc::new(config), "example.com")?
///     .alpn_protocols(["h2", "http/1.1"]);
/// assert_eq!(options.server_name().to_str(), "example.com");
/// # Ok::<(), evstream::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct TlsClientOptions {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
    allow_truncation: bool,
    buffer_limit: usize,
}

impl TlsClientOptions {
    /// Options for connecting to `server_name` (a DNS name or an IP
    /// address) with `config`.
    ///
    /// Fails with [`Error::InvalidInput`] if `server_name` is neither.
    pub fn new(config: Arc<ClientConfig>, server_name: &str) -> Result<Self> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|err| {
            Error::InvalidInput(format!("invalid TLS server name {server_name:?}: {err}"))
        })?;
        Ok(TlsClientOptions {
            config,
            server_name,
            allow_truncation: false,
            buffer_limit: DEFAULT_TLS_BUFFER_LIMIT,
        })
    }

    /// Options for connecting to `server_name`, trusting the Mozilla root
    /// certificates of the `webpki-roots` crate, without a client
    /// certificate.
    #[cfg(feature = "tls-webpki-roots")]
    pub fn with_webpki_roots(server_name: &str) -> Result<Self> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self::new(Arc::new(config), server_name)
    }

    /// The ALPN protocols to offer, most preferred first (replacing those
    /// of the configuration). The configuration is copied if it is shared.
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        Arc::make_mut(&mut self.config).alpn_protocols =
            protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Whether the server may end the connection without `close_notify`
    /// (default: no, that is a [`TlsErrorKind::Truncated`] error). Allow it
    /// only when the application protocol marks the end of its data itself.
    ///
    /// [`TlsErrorKind::Truncated`]: crate::TlsErrorKind::Truncated
    pub fn allow_truncation(mut self, allow: bool) -> Self {
        self.allow_truncation = allow;
        self
    }

    /// How many bytes the TLS layer holds for sending at most: plaintext
    /// written before the handshake completes, and encrypted records the
    /// kernel has not taken yet (default [`DEFAULT_TLS_BUFFER_LIMIT`]). This
    /// bound comes on top of the connection's output buffer. Zero is refused
    /// when the connection starts.
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ClientConfig> {
        &self.config
    }

    /// The name the server's certificate is verified against.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }
}

/// TLS settings of a server connection: the rustls configuration.
///
/// The configuration holds the certificate chain and key (or a resolver
/// that picks them by SNI name) and the client certificate policy: none,
/// optional or required (`rustls::server::WebPkiClientVerifier`).
#[derive(Debug, Clone)]
pub struct TlsServerOptions {
    config: Arc<ServerConfig>,
    allow_truncation: bool,
    buffer_limit: usize,
}

impl TlsServerOptions {
    /// Options for accepting connections with `config`.
    pub fn new(config: Arc<ServerConfig>) -> Self {
        TlsServerOptions {
            config,
            allow_truncation: false,
            buffer_limit: DEFAULT_TLS_BUFFER_LIMIT,
        }
    }

    /// The ALPN protocols this server accepts, most preferred first
    /// (replacing those of the configuration). A client that offers ALPN
    /// protocols but none of these fails the handshake. The configuration is
    /// copied if it is shared.
    pub fn alpn_protocols<I, P>(mut self, protocols: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<[u8]>,
    {
        Arc::make_mut(&mut self.config).alpn_protocols =
            protocols.into_iter().map(|p| p.as_ref().to_vec()).collect();
        self
    }

    /// Whether the client may end the connection without `close_notify`;
    /// see [`TlsClientOptions::allow_truncation`].
    pub fn allow_truncation(mut self, allow: bool) -> Self {
        self.allow_truncation = allow;
        self
    }

    /// How many bytes the TLS layer holds for sending at most; see
    /// [`TlsClientOptions::buffer_limit`].
    pub fn buffer_limit(mut self, bytes: usize) -> Self {
        self.buffer_limit = bytes;
        self
    }

    /// The rustls configuration.
    pub fn config(&self) -> &Arc<ServerConfig> {
        &self.config
    }
}

impl From<Arc<ServerConfig>> for TlsServerOptions {
    fn from(config: Arc<ServerConfig>) -> Self {
        TlsServerOptions::new(config)
    }
}

/// What a TLS handshake negotiated.
///
/// Before the handshake completes every field is empty.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    pub(crate) alpn_protocol: Option<Vec<u8>>,
    pub(crate) server_name: Option<String>,
    pub(crate) peer_certificates: Vec<CertificateDer<'static>>,
    pub(crate) protocol_version: Option<ProtocolVersion>,
    pub(crate) cipher_suite: Option<CipherSuite>,
}

impl TlsInfo {
    /// The ALPN protocol both sides agreed on, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.alpn_protocol.as_deref()
    }

    /// On a server, the name the client asked for with SNI (`None` if it
    /// sent none, as clients connecting to an IP address do). On a client,
    /// the name the server's certificate was verified against.
    pub fn server_name(&self) -> Option<&str> {
        self.server_name.as_deref()
    }

    /// The peer's certificate chain (DER), its own certificate first; empty
    /// for a client that sent none.
    pub fn peer_certificates(&self) -> &[CertificateDer<'static>] {
        &self.peer_certificates
    }

    /// The protocol version (TLS 1.2 or 1.3).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.protocol_version
    }

    /// The cipher suite.
    pub fn cipher_suite(&self) -> Option<CipherSuite> {
        self.cipher_suite
    }
}
