//! TLS on the stream types (feature `tls`): a TLS stream in one line, on
//! the default loop.
#![cfg(feature = "tls")]

use super::mode::Duplex;
use super::{AsyncIoStream, EvStream};
use crate::error::Result;
use crate::tcp::{TcpOptions, ToSocketAddrs};
use crate::tls::TlsClientOptions;

impl EvStream<Duplex> {
    /// Connects to `addr` (anything [`connect`](AsyncIoStream::connect)
    /// takes: `"host:port"`, `(host, port)`, a `SocketAddr`…) with TLS on the
    /// default loop, which starts on a background thread on first use, and
    /// completes once the TLS handshake has — the TLS form of
    /// [`connect`](AsyncIoStream::connect), like tokio-rustls's
    /// `TlsConnector::connect` over a fresh `TcpStream`.
    ///
    /// The server's certificate is verified against the name in `tls`
    /// ([`TlsClientOptions::new`]), not against `addr`'s host: they are
    /// usually the same, but `addr` may be an IP address or another name
    /// for the server. What was negotiated is then on
    /// [`stream.socket().tls_info()`](crate::Socket::tls_info). The stream
    /// reads and writes plaintext; closing it
    /// ([`AsyncWriteExt::close`](futures_lite::AsyncWriteExt::close)) sends
    /// `close_notify`, then FIN. To set other options (timeouts, buffer
    /// sizes) or use a loop of your own, use
    /// [`connect_on`](AsyncIoStream::connect_on) with
    /// [`TcpOptions::tls`](crate::TcpOptions::tls).
    ///
    /// # Errors
    ///
    /// As [`connect`](AsyncIoStream::connect) ([`Error::InvalidInput`] for
    /// an address without a port, [`Error::Resolve`], [`Error::Refused`],
    /// [`Error::TimedOut`] when the connection *and handshake* take longer
    /// than the connect timeout), plus [`Error::Tls`] when the handshake
    /// fails: [`TlsErrorKind::CertificateInvalid`] for a certificate this
    /// side refuses (untrusted, expired, for another name),
    /// [`TlsErrorKind::CertificateRejected`] when the server refuses ours,
    /// [`TlsErrorKind::NotTls`] for a server that does not speak TLS,
    /// [`TlsErrorKind::HandshakeFailed`] for anything else (no protocol
    /// version, cipher suite or ALPN protocol in common…).
    ///
    /// [`Error::InvalidInput`]: crate::Error::InvalidInput
    /// [`Error::Resolve`]: crate::Error::Resolve
    /// [`Error::Refused`]: crate::Error::Refused
    /// [`Error::TimedOut`]: crate::Error::TimedOut
    /// [`Error::Tls`]: crate::Error::Tls
    /// [`TlsErrorKind::CertificateInvalid`]: crate::TlsErrorKind::CertificateInvalid
    /// [`TlsErrorKind::CertificateRejected`]: crate::TlsErrorKind::CertificateRejected
    /// [`TlsErrorKind::NotTls`]: crate::TlsErrorKind::NotTls
    /// [`TlsErrorKind::HandshakeFailed`]: crate::TlsErrorKind::HandshakeFailed
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future drops the half-made connection,
    /// which is closed as soon as its handshake ends — with `close_notify`
    /// when the server completes it; a server that never answers holds it
    /// until the connect timeout ([`DEFAULT_CONNECT_TIMEOUT`]).
    ///
    /// [`DEFAULT_CONNECT_TIMEOUT`]: crate::DEFAULT_CONNECT_TIMEOUT
    ///
    /// # Examples
    ///
    /// A local TLS server with a certificate made on the spot (with
    /// [rcgen](https://docs.rs/rcgen); a real server has its own), and a
    /// client that trusts it:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use evstream::tls::rustls;
    /// use evstream::{
    ///     AsyncIoStream, EventLoop, ServerOptions, TcpOptions, TcpServer, TlsClientOptions,
    ///     TlsServerOptions,
    /// };
    /// use futures_lite::future;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// // A certificate for "localhost", and a server that greets each client.
    /// let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
    /// let cert = made.cert.der().clone();
    /// let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    /// let server_config = rustls::ServerConfig::builder()
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![cert.clone()], key)?;
    /// let handle = EventLoop::spawn()?;
    /// let server = TcpServer::bind(
    ///     &handle,
    ///     "127.0.0.1:0",
    ///     ServerOptions::new()
    ///         .connection(TcpOptions::new().connect_cb(|socket| {
    ///             // After the handshake: plaintext in, TLS records out.
    ///             socket.write(b"hello over TLS\n").unwrap();
    ///             socket.close(); // flush, close_notify, FIN
    ///         }))
    ///         .tls(TlsServerOptions::new(Arc::new(server_config))),
    /// )?;
    ///
    /// // The client trusts that certificate, for the name "localhost".
    /// let mut roots = rustls::RootCertStore::empty();
    /// roots.add(cert)?;
    /// let config = rustls::ClientConfig::builder()
    ///     .with_root_certificates(roots)
    ///     .with_no_client_auth();
    /// let tls = TlsClientOptions::new(Arc::new(config), "localhost")?;
    ///
    /// let addr = format!("127.0.0.1:{}", server.local_addr().port());
    /// let greeting = future::block_on(async {
    ///     let mut stream = AsyncIoStream::connect_tls(&addr, tls).await?;
    ///     let info = stream.socket().tls_info().expect("negotiated");
    ///     assert!(info.protocol_version().is_some());
    ///     stream.read_until_close().await
    /// })?;
    /// assert_eq!(&greeting[..], b"hello over TLS\n");
    /// handle.stop();
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        tls: TlsClientOptions,
    ) -> Result<AsyncIoStream> {
        Self::connect_with(addr, TcpOptions::new().tls(tls)).await
    }
}
