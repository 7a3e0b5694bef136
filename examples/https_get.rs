//! An HTTPS GET with evstream's TLS (feature `tls`): connect with
//! `AsyncIoStream::connect_tls`, send an HTTP/1.1 request, read the head
//! with `read_until` and the body by its length (or its chunks) with
//! `read_bytes_streaming`; then print the status line, the byte count and
//! what TLS negotiated.
//!
//! ```text
//! # No URL: a local HTTPS server (its certificate made on the spot with
//! # rcgen, trusted by the client) answers the GET.
//! cargo run --features tls --example https_get
//!
//! # A real server, trusting Mozilla's roots (the webpki-roots crate):
//! cargo run --features tls-webpki-roots --example https_get -- https://example.com/
//! cargo run --features tls-webpki-roots --example https_get -- https://host:8443/some/path
//! ```
//!
//! The local mode runs anywhere (this machine has no other network); the
//! tests run it too (`tests/examples.rs`).

use std::sync::Arc;

use bytes::Bytes;
use evstream::prelude::*;
use evstream::tls::{rustls, TlsInfo};
use evstream::{
    AsyncIoStream, Error, EventLoop, LoopHandle, ServerOptions, TcpOptions, TcpServer,
    TlsClientOptions, TlsServerOptions,
};
use futures_lite::future;

/// The longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What a GET brought back.
#[derive(Debug)]
pub struct Response {
    /// The first line, e.g. `HTTP/1.1 200 OK`.
    pub status_line: String,
    /// The status line and headers, with the empty line that ends them.
    pub head: Bytes,
    /// The body, its chunked framing removed.
    pub body: Vec<u8>,
    /// What the handshake negotiated.
    pub tls: TlsInfo,
}

/// GETs `path` from the server at `addr` (`"host:port"`) over TLS with
/// `tls` (which names the server whose certificate is expected), sending
/// `host` as the `Host` header.
pub async fn get(
    addr: &str,
    host: &str,
    path: &str,
    tls: TlsClientOptions,
) -> Result<Response, Error> {
    let mut stream = AsyncIoStream::connect_tls(addr, tls).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: evstream-https_get\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;

    let head = stream.read_until_delimiter(b"\r\n\r\n", MAX_HEAD).await?;
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default().to_string();
    let header = |name: &str| {
        text.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let invalid = |what: &str| Error::InvalidInput(format!("bad response: {what}"));

    let mut body = Vec::new();
    let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        loop {
            let line = stream.read_until_delimiter(b"\r\n", 1024).await?;
            let size = std::str::from_utf8(&line)
                .ok()
                .and_then(|line| line.trim_end().split(';').next())
                .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
                .ok_or_else(|| invalid("chunk size"))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while &stream.read_until_delimiter(b"\r\n", MAX_HEAD).await?[..] != b"\r\n" {}
                break;
            }
            stream
                .read_bytes_streaming(size, |chunk| body.extend_from_slice(&chunk))
                .await?;
            if &stream.read_bytes(2).await?[..] != b"\r\n" {
                return Err(invalid("chunk end"));
            }
        }
    } else if let Some(length) = header("content-length") {
        let length = length.parse().map_err(|_| invalid("content-length"))?;
        stream
            .read_bytes_streaming(length, |chunk| body.extend_from_slice(&chunk))
            .await?;
    } else {
        // No length: the body ends with the connection, which must end
        // with close_notify (anything else is a truncation error).
        stream
            .read_until_close_streaming(|chunk| body.extend_from_slice(&chunk))
            .await?;
    }
    let tls = stream.socket().tls_info().unwrap_or_default();
    // The response is complete: close (close_notify, then FIN).
    stream.close_connection();
    Ok(Response {
        status_line,
        head,
        body,
        tls,
    })
}

/// A local HTTPS server with a certificate for `localhost` made on the
/// spot, on a loop of its own: it answers every GET with `body`, by length,
/// or in chunks of 1000 bytes for `/chunked`. Stopped when dropped.
pub struct LocalServer {
    /// Where it listens (`127.0.0.1:port`).
    pub addr: String,
    /// A client configuration that trusts its certificate.
    pub client_config: Arc<rustls::ClientConfig>,
    handle: LoopHandle,
    _server: TcpServer,
}

impl LocalServer {
    pub fn start(body: Vec<u8>) -> Result<LocalServer, Box<dyn std::error::Error>> {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let cert = made.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        let server_config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert)?;
        let client_config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let handle = EventLoop::spawn()?;
        let body = Bytes::from(body);
        let tasks = handle.clone();
        let server = TcpServer::bind(
            &handle,
            "127.0.0.1:0",
            ServerOptions::new()
                // Each connection, once its handshake is done, goes to a
                // task on the server's loop.
                .connection(TcpOptions::new().stream_connect_cb(move |stream| {
                    drop(tasks.spawn(answer(stream, body.clone())));
                }))
                .tls(TlsServerOptions::new(Arc::new(server_config)).alpn_protocols(["http/1.1"])),
        )?;
        Ok(LocalServer {
            addr: format!("127.0.0.1:{}", server.local_addr().port()),
            client_config: Arc::new(client_config),
            handle,
            _server: server,
        })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.handle.stop();
    }
}

/// Answers one GET on `stream`, then closes it.
async fn answer(mut stream: AsyncIoStream, body: Bytes) {
    let Ok(request) = stream.read_until_delimiter(b"\r\n\r\n", MAX_HEAD).await else {
        return stream.close_connection();
    };
    let request = String::from_utf8_lossy(&request);
    let mut words = request.split_whitespace();
    let reply = match (words.next(), words.next()) {
        (Some("GET"), Some("/chunked")) => {
            let mut reply =
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n\r\n"
                    .to_vec();
            for chunk in body.chunks(1000) {
                reply.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                reply.extend_from_slice(chunk);
                reply.extend_from_slice(b"\r\n");
            }
            reply.extend_from_slice(b"0\r\n\r\n");
            Bytes::from(reply)
        }
        (Some("GET"), Some(_)) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            body
        }
        _ => Bytes::from_static(
            b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
    };
    let _ = stream.write_all_bytes(reply).await;
    // Flush, close_notify, FIN, release.
    stream.close_connection();
}

/// Splits `https://host[:port][/path]` into host, port and path.
pub fn parse_url(url: &str) -> Option<(String, u16, String)> {
    let rest = url.strip_prefix("https://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().ok()?,
                None if after.is_empty() => 443,
                None => return None,
            };
            (host, port)
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().ok()?),
            None => (authority, 443),
        },
    };
    if host.is_empty() {
        return None;
    }
    Some((host.to_string(), port, path.to_string()))
}

/// The client options for a server on the Internet: Mozilla's roots.
#[cfg(feature = "tls-webpki-roots")]
fn public_tls(host: &str) -> Result<TlsClientOptions, Error> {
    Ok(TlsClientOptions::with_webpki_roots(host)?.alpn_protocols(["http/1.1"]))
}

#[cfg(not(feature = "tls-webpki-roots"))]
fn public_tls(_host: &str) -> Result<TlsClientOptions, Error> {
    Err(Error::InvalidInput(
        "fetching from a real server needs root certificates: \
         build with --features tls-webpki-roots"
            .into(),
    ))
}

#[allow(dead_code)] // `main` is unused when a test includes this file
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1);
    let mut _local = None;
    let (addr, host, path, tls) = match &url {
        Some(url) => {
            let (host, port, path) =
                parse_url(url).ok_or("usage: https_get [https://host[:port]/path]")?;
            let addr = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            let tls = public_tls(&host)?;
            (addr, host, path, tls)
        }
        None => {
            let server = LocalServer::start(b"hello over TLS\n".repeat(1000))?;
            println!(
                "no URL given: fetching from a local HTTPS server at {}",
                server.addr
            );
            let tls = TlsClientOptions::new(server.client_config.clone(), "localhost")?;
            let addr = server.addr.clone();
            _local = Some(server);
            (addr, "localhost".to_string(), "/".to_string(), tls)
        }
    };
    let response = future::block_on(get(&addr, &host, &path, tls))?;
    println!("{}", response.status_line);
    println!(
        "{} bytes of body ({} with the head)",
        response.body.len(),
        response.body.len() + response.head.len()
    );
    if let (Some(version), Some(suite)) =
        (response.tls.protocol_version(), response.tls.cipher_suite())
    {
        println!("TLS: {version:?}, {suite:?}");
    }
    Ok(())
}
