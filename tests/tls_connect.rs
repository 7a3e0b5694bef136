//! `AsyncIoStream::connect_tls`: a TLS stream in one line on the default
//! loop (feature `tls`) — what it negotiates, how it ends, how it fails,
//! and that dropping it mid-handshake closes the connection.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::thread;

use evstream::prelude::*;
use evstream::tls::rustls;
use evstream::{
    AsyncIoStream, Error, ServerOptions, TcpOptions, TcpServer, TlsClientOptions, TlsErrorKind,
    TlsServerOptions,
};
use futures::future::{self, Either};
use futures_lite::io::AsyncWriteExt;

use common::tls::{client_config, pki, server_config};
use common::{block_on, recv, LoopThread, WAIT};

fn client_tls(name: &str) -> TlsClientOptions {
    TlsClientOptions::new(Arc::new(client_config()), name).unwrap()
}

fn server_tls() -> TlsServerOptions {
    TlsServerOptions::new(Arc::new(server_config(&pki().server)))
}

fn tls_kind(err: &Error) -> TlsErrorKind {
    match err {
        Error::Tls { kind, .. } => *kind,
        other => panic!("not a TLS error: {other:?}"),
    }
}

/// A TLS server (on a loop of its own) that answers each line with
/// `echo: line` and reports, at the end of each connection, whether it
/// ended cleanly (`close_notify`) and the SNI name the client sent.
fn line_echo_server(
    lt: &LoopThread,
) -> (TcpServer, std::sync::mpsc::Receiver<(bool, Option<String>)>) {
    let (tx, rx) = common::channel();
    let tx = Mutex::new(tx);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(
                TcpOptions::new().stream_connect_cb(move |stream: AsyncIoStream| {
                    let done = tx.lock().unwrap().clone();
                    thread::spawn(move || {
                        let mut stream = stream;
                        let sni = stream
                            .socket()
                            .tls_info()
                            .and_then(|info| info.server_name().map(str::to_owned));
                        let clean = loop {
                            match block_on(stream.read_until_delimiter(b"\n", 1024)) {
                                Ok(line) => {
                                    let mut reply = b"echo: ".to_vec();
                                    reply.extend_from_slice(&line);
                                    block_on(AsyncWriteExt::write_all(&mut stream, &reply))
                                        .unwrap();
                                }
                                // close_notify, then FIN: a clean end.
                                Err(Error::UnexpectedEof { received: 0, .. }) => break true,
                                Err(_) => break false,
                            }
                        };
                        stream.close_connection();
                        let _ = done.send((clean, sni));
                    });
                }),
            )
            .tls(server_tls()),
    )
    .unwrap();
    (server, rx)
}

/// connect_tls on the default loop: the handshake is done when it
/// completes, what was negotiated is visible, plaintext goes both ways,
/// and closing sends close_notify (the server sees a clean end).
#[test]
fn connect_tls_talks_to_a_tls_server_and_closes_cleanly() {
    let lt = LoopThread::start();
    let (server, ended) = line_echo_server(&lt);
    let addr = format!("127.0.0.1:{}", server.local_addr().port());
    let mut stream =
        block_on(AsyncIoStream::connect_tls(&addr, client_tls("localhost"))).expect("TLS connect");
    let info = stream.socket().tls_info().expect("negotiated at connect");
    assert_eq!(info.server_name(), Some("localhost"));
    assert!(info.protocol_version().is_some());
    assert!(info.cipher_suite().is_some());
    assert_eq!(info.peer_certificates().len(), 2, "the server's chain");
    assert_eq!(stream.peer_addr().unwrap(), server.local_addr());

    for line in ["hello\n", "over TLS\n"] {
        block_on(AsyncWriteExt::write_all(&mut stream, line.as_bytes())).unwrap();
        let reply = block_on(stream.read_until_delimiter(b"\n", 1024)).unwrap();
        assert_eq!(reply, format!("echo: {line}").as_bytes());
    }
    block_on(AsyncWriteExt::close(&mut stream)).expect("close_notify + FIN");
    let (clean, sni) = recv(&ended, "the end of the server's connection");
    assert!(clean, "the server saw the end without close_notify");
    assert_eq!(sni.as_deref(), Some("localhost"));
    // The server closed too: its close_notify ends our input cleanly.
    assert_eq!(&block_on(stream.read_until_close()).unwrap()[..], b"");
}

/// The address is only where to connect; the certificate is checked
/// against the name in the options, which is also the SNI name.
#[test]
fn the_certificate_is_checked_against_the_options_name() {
    let lt = LoopThread::start();
    let (server, ended) = line_echo_server(&lt);
    let addr = format!("127.0.0.1:{}", server.local_addr().port());
    // The certificate is valid for example.test too.
    let mut stream = block_on(AsyncIoStream::connect_tls(
        &addr,
        client_tls("example.test"),
    ))
    .expect("TLS connect as example.test");
    block_on(AsyncWriteExt::close(&mut stream)).unwrap();
    let (_, sni) = recv(&ended, "the server's view");
    assert_eq!(sni.as_deref(), Some("example.test"));

    let err = block_on(AsyncIoStream::connect_tls(
        &addr,
        client_tls("wrong.example"),
    ))
    .expect_err("a certificate for another name");
    assert_eq!(tls_kind(&err), TlsErrorKind::CertificateInvalid, "{err}");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::PermissionDenied
    );
}

/// The failures of the connection itself, as `connect` reports them.
#[test]
fn bad_addresses_and_refused_connections() {
    let err = block_on(AsyncIoStream::connect_tls(
        "localhost",
        client_tls("localhost"),
    ))
    .expect_err("no port");
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = block_on(AsyncIoStream::connect_tls(
        &format!("127.0.0.1:{port}"),
        client_tls("localhost"),
    ))
    .expect_err("nothing listens");
    assert!(matches!(err, Error::Refused), "{err:?}");
}

/// A server that answers the ClientHello in plaintext fails the connect
/// with a TLS error, not a hang or a garbled stream.
#[test]
fn a_plaintext_server_fails_the_handshake() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        socket
            .write_all(b"220 smtp.example ESMTP ready\r\n")
            .unwrap();
        let mut rest = Vec::new();
        let _ = socket.read_to_end(&mut rest);
    });
    let err = block_on(AsyncIoStream::connect_tls(
        &format!("127.0.0.1:{port}"),
        client_tls("localhost"),
    ))
    .expect_err("not TLS");
    assert!(
        matches!(
            tls_kind(&err),
            TlsErrorKind::NotTls | TlsErrorKind::HandshakeFailed
        ),
        "{err}"
    );
    peer.join().unwrap();
}

/// Cancel safety: dropping the future in the middle of the handshake
/// drops the half-made connection, which is closed as soon as its
/// handshake ends — cleanly, with `close_notify`, when the peer completes
/// it (a peer that never does meets the connect timeout).
#[test]
fn dropping_the_future_mid_handshake_closes_the_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hello_tx, hello_rx) = futures::channel::oneshot::channel();
    let (dropped_tx, dropped_rx) = std::sync::mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let (socket, _) = listener.accept().unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        // The ClientHello has come (left in the socket for rustls).
        let mut first = [0u8; 1];
        assert_eq!(socket.peek(&mut first).unwrap(), 1);
        assert_eq!(first[0], 22, "a TLS handshake record");
        let _ = hello_tx.send(());
        // Answer only once the client's future is gone.
        recv(&dropped_rx, "the drop");
        let conn = rustls::ServerConnection::new(Arc::new(server_config(&pki().server))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, socket);
        let mut got = Vec::new();
        // rustls reads Ok only after close_notify; a FIN without it, a
        // reset, or a timeout (the connection left open) is an error.
        tls.read_to_end(&mut got).map(|_| got)
    });
    let addr = format!("127.0.0.1:{port}");
    let connecting = Box::pin(AsyncIoStream::connect_tls(&addr, client_tls("localhost")));
    match block_on(future::select(connecting, hello_rx)) {
        Either::Right((hello, connecting)) => {
            hello.expect("the peer got the ClientHello");
            drop(connecting);
        }
        Either::Left((result, _)) => panic!("the handshake cannot complete: {result:?}"),
    }
    dropped_tx.send(()).unwrap();
    let got = peer
        .join()
        .unwrap()
        .expect("a clean close after the handshake");
    assert!(got.is_empty(), "{got:?}");
}
