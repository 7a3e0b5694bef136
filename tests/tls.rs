//! TLS on every path (feature `tls`): the connection's TLS layer under
//! callbacks, streams, split halves, the blocking adaptor, IOStream reads,
//! codecs, OSC, the peer API and Unix sockets; its failures; STARTTLS; and
//! interop with the `openssl` command line tool in both directions.
#![cfg(feature = "tls")]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use bytes::Bytes;
use evstream::codec::{Framed, LengthDelimitedCodec};
use evstream::peer::{ByteOrder, StreamPeer};
use evstream::prelude::*;
use evstream::tls::rustls;
use evstream::{
    AsyncIoStream, Error, Event, LoopHandle, ServerOptions, Socket, TcpOptions, TcpServer,
    TlsClientOptions, TlsErrorKind, TlsServerOptions, UnixServer,
};
use futures::{SinkExt, StreamExt};
use futures_lite::io::AsyncWriteExt;

use common::tls::{client_config, client_config_with_cert, pki, server_config};
use common::{block_on, recv, LoopThread, WAIT};

const MIB: usize = 1024 * 1024;

fn client_tls(name: &str) -> TlsClientOptions {
    TlsClientOptions::new(Arc::new(client_config()), name).unwrap()
}

fn server_tls() -> TlsServerOptions {
    TlsServerOptions::new(Arc::new(server_config(&pki().server)))
}

/// A 64-bit FNV-1a hash, to check large transfers.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
struct Hash(u64);

impl Hash {
    fn new() -> Hash {
        Hash(0xcbf2_9ce4_8422_2325)
    }
    fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn of(bytes: &[u8]) -> Hash {
        let mut hash = Hash::new();
        hash.update(bytes);
        hash
    }
}

fn payload(len: usize) -> Vec<u8> {
    common::random_data(42, len)
}

/// A TLS echo server in stream mode: each connection is split, and a thread
/// copies its read half to its write half through the blocking adaptor.
fn echo_server_streams(handle: &LoopHandle) -> TcpServer {
    TcpServer::bind(
        handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(
                TcpOptions::new().stream_connect_cb(|stream: AsyncIoStream| {
                    thread::spawn(move || {
                        let (input, output) = stream.into_split();
                        let (mut reader, mut writer) = (input.blocking(), output.blocking());
                        std::io::copy(&mut reader, &mut writer).expect("echo copy");
                        writer.flush().unwrap();
                        let mut output = writer.into_inner();
                        block_on(AsyncWriteExt::close(&mut output)).expect("close_notify + FIN");
                    });
                }),
            )
            .tls(server_tls()),
    )
    .unwrap()
}

/// Sends `data` through `stream` (split, a writer thread) and returns what
/// came back until the end, hashed.
fn round_trip(stream: AsyncIoStream, data: Arc<Vec<u8>>) -> (Hash, usize) {
    let (input, output) = stream.into_split();
    let writer = thread::spawn(move || {
        let mut writer = output.blocking();
        writer.write_all(&data).unwrap();
        writer.flush().unwrap();
        let mut output = writer.into_inner();
        block_on(AsyncWriteExt::close(&mut output)).unwrap();
    });
    let mut reader = input.blocking();
    reader.set_read_timeout(Some(WAIT));
    let mut hash = Hash::new();
    let mut total = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).expect("read the echo");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n;
    }
    writer.join().unwrap();
    (hash, total)
}

/// Streams, split halves and the blocking adaptor, both ends TLS: 64 MiB
/// each way, every byte checked.
#[test]
fn streams_carry_64_mib_each_way_over_tls() {
    let lt = LoopThread::start();
    let server = echo_server_streams(&lt.handle);
    let stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new().tls(client_tls("localhost")),
    ))
    .expect("TLS connect");
    let info = stream.socket().tls_info().expect("negotiated");
    assert_eq!(info.server_name(), Some("localhost"));
    assert!(info.protocol_version().is_some());
    let data = Arc::new(payload(64 * MIB));
    let (hash, total) = round_trip(stream, data.clone());
    assert_eq!(total, data.len());
    assert_eq!(hash, Hash::of(&data));
}

/// Drain-mode callbacks on the server (read_cb echoes with write_bytes,
/// close at EOF), dont-drain on the client (notify_cb takes what is
/// ready): 64 MiB each way.
#[test]
fn drain_and_dont_drain_callbacks_over_tls() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(
                TcpOptions::new()
                    .read_cb(|socket, data| socket.write_bytes(data).unwrap())
                    .event_cb(|socket, event| {
                        if matches!(event, Event::Eof) {
                            socket.close();
                        }
                    }),
            )
            .tls(server_tls()),
    )
    .unwrap();
    let (done_tx, done_rx) = common::channel();
    let state = Arc::new(Mutex::new((Hash::new(), 0usize)));
    let seen = state.clone();
    let done_tx = Mutex::new(done_tx);
    let data = Arc::new(payload(64 * MIB));
    let to_send = data.clone();
    let socket = evstream::tcp_connect(
        &lt.handle,
        "127.0.0.1",
        server.local_addr().port(),
        TcpOptions::new()
            .tls(client_tls("localhost"))
            .notify_cb(move |socket| {
                let mut buf = [0u8; 64 * 1024];
                let mut state = seen.lock().unwrap();
                loop {
                    match socket.read(&mut buf) {
                        Ok(0) => {
                            let _ = done_tx.lock().unwrap().send(*state);
                            break;
                        }
                        Ok(n) => {
                            state.0.update(&buf[..n]);
                            state.1 += n;
                        }
                        Err(_) => break,
                    }
                }
            })
            .connect_cb(move |socket| {
                // Queued now, sent as the kernel takes it.
                socket.write_bytes(Bytes::from(to_send.to_vec())).unwrap();
                socket.shutdown_write().unwrap();
            }),
    )
    .unwrap();
    let (hash, total) = recv(&done_rx, "the whole echo");
    assert_eq!(total, data.len());
    assert_eq!(hash, Hash::of(&data));
    socket.close();
}

/// Codecs over TLS: `Framed<LengthDelimitedCodec>` on the client, the
/// `on_frame` callback echoing on the server; 64 MiB in 1 MiB frames.
#[test]
fn codecs_over_tls() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(TcpOptions::new().on_frame(
                LengthDelimitedCodec::osc_1_0(2 * MIB),
                |socket: &Socket, frame: evstream::Result<Bytes>| {
                    let frame = frame.expect("a frame");
                    let mut wire = (frame.len() as u32).to_be_bytes().to_vec();
                    wire.extend_from_slice(&frame);
                    socket.write(&wire).unwrap();
                },
            ))
            .tls(server_tls()),
    )
    .unwrap();
    let stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new().tls(client_tls("localhost")),
    ))
    .unwrap();
    let mut framed = Framed::new(stream, LengthDelimitedCodec::osc_1_0(2 * MIB));
    let data = payload(64 * MIB);
    let frames: Vec<Bytes> = data.chunks(MIB).map(Bytes::copy_from_slice).collect();
    // Send and receive interleaved: the frames are echoed as they come.
    let mut received = Vec::new();
    block_on(async {
        for frame in &frames {
            framed.send(frame.clone()).await.unwrap();
            // Keep the echo flowing: take what is ready without waiting.
            while let Some(Ok(echo)) = futures::FutureExt::now_or_never(framed.next()).flatten() {
                received.push(echo);
            }
        }
        SinkExt::<Bytes>::flush(&mut framed).await.unwrap();
        while received.len() < frames.len() {
            received.push(framed.next().await.expect("an echoed frame").unwrap());
        }
    });
    assert_eq!(received, frames);
}

/// IOStream reads and the peer API over TLS: `read_until`, `read_bytes`,
/// typed values and Godot strings.
#[test]
fn iostream_reads_and_the_peer_api_over_tls() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(
                TcpOptions::new().stream_connect_cb(|stream: AsyncIoStream| {
                    thread::spawn(move || {
                        let mut stream = stream;
                        let line = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
                        let body = block_on(stream.read_bytes(5)).unwrap();
                        let number = stream.get_u32_with(ByteOrder::Big).unwrap();
                        let text = stream.get_utf8_string().unwrap();
                        stream
                            .put_utf8_string(&format!(
                                "{}|{}|{number}|{text}",
                                String::from_utf8_lossy(&line[..line.len() - 1]),
                                String::from_utf8_lossy(&body)
                            ))
                            .unwrap();
                    });
                }),
            )
            .tls(server_tls()),
    )
    .unwrap();
    let mut stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new().tls(client_tls("localhost")),
    ))
    .unwrap();
    stream.put_data(b"hello\nworld").unwrap();
    stream.put_u32_with(7, ByteOrder::Big).unwrap();
    stream.put_utf8_string("héllo").unwrap();
    assert_eq!(stream.get_utf8_string().unwrap(), "hello|world|7|héllo");
}

/// OSC over TLS (size-prefixed and SLIP framings).
#[test]
fn osc_over_tls() {
    use evstream::osc::{OscCodec, OscFraming, OscMessage, OscPacket, OscValue};
    let lt = LoopThread::start();
    for framing in [OscFraming::Osc10, OscFraming::Osc11] {
        let (tx, rx) = common::channel::<OscPacket>();
        let tx = Mutex::new(tx);
        let server = TcpServer::bind(
            &lt.handle,
            "127.0.0.1:0",
            ServerOptions::new()
                .connection(TcpOptions::new().on_frame(
                    OscCodec::new(framing, 4096),
                    move |_: &Socket, packet: evstream::Result<OscPacket>| {
                        let _ = tx.lock().unwrap().send(packet.unwrap());
                    },
                ))
                .tls(server_tls()),
        )
        .unwrap();
        let stream = block_on(AsyncIoStream::connect_on(
            &lt.handle,
            ("127.0.0.1", server.local_addr().port()),
            TcpOptions::new().tls(client_tls("localhost")),
        ))
        .unwrap();
        let values: Vec<OscValue> = vec![1.into(), "apple".into(), 2.5f32.into()];
        stream
            .socket()
            .send_osc(&[("/abc", values.clone())], &Default::default(), framing)
            .unwrap();
        let packet = recv(&rx, "the OSC packet");
        match packet {
            OscPacket::Message(OscMessage { addr, args }) => {
                assert_eq!(addr, "/abc");
                assert_eq!(args.len(), 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        server.close();
    }
}

/// The same over a Unix domain socket.
#[test]
fn unix_sockets_over_tls() {
    let lt = LoopThread::start();
    let dir = std::env::temp_dir().join(format!("evstream-tls-uds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tls.sock");
    let _ = std::fs::remove_file(&path);
    let server = UnixServer::bind(
        &lt.handle,
        &path,
        ServerOptions::new()
            .connection(
                TcpOptions::new().stream_connect_cb(|stream: AsyncIoStream| {
                    thread::spawn(move || {
                        let (input, output) = stream.into_split();
                        let (mut reader, mut writer) = (input.blocking(), output.blocking());
                        std::io::copy(&mut reader, &mut writer).unwrap();
                        let mut output = writer.into_inner();
                        block_on(AsyncWriteExt::close(&mut output)).unwrap();
                    });
                }),
            )
            .tls(server_tls()),
    )
    .unwrap();
    let socket = evstream::unix_connect(
        &lt.handle,
        &path,
        TcpOptions::new().stream(true).tls(client_tls("localhost")),
    )
    .unwrap();
    let stream = AsyncIoStream::new(socket);
    let data = Arc::new(payload(8 * MIB));
    let (hash, total) = round_trip(stream, data.clone());
    assert_eq!(total, data.len());
    assert_eq!(hash, Hash::of(&data));
    server.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// ALPN, SNI and a client certificate: what was negotiated is visible on
/// both sockets.
#[test]
fn alpn_sni_and_client_certificates_are_visible() {
    let lt = LoopThread::start();
    let (tx, rx) = common::channel::<evstream::tls::TlsInfo>();
    let tx = Mutex::new(tx);
    let server_config = common::tls::server_config_client_auth(true);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(TcpOptions::new().connect_cb(move |socket| {
                let _ = tx.lock().unwrap().send(socket.tls_info().unwrap());
            }))
            .tls(TlsServerOptions::new(Arc::new(server_config)).alpn_protocols(["h2", "http/1.1"])),
    )
    .unwrap();
    let client = TlsClientOptions::new(
        Arc::new(client_config_with_cert(&pki().client)),
        "example.test",
    )
    .unwrap()
    .alpn_protocols(["http/1.1"]);
    let stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new().tls(client),
    ))
    .unwrap();
    let server_side = recv(&rx, "the server's view");
    assert_eq!(server_side.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(server_side.server_name(), Some("example.test"));
    assert_eq!(
        server_side.peer_certificates().len(),
        2,
        "the client's chain"
    );
    let client_side = stream.socket().tls_info().unwrap();
    assert_eq!(client_side.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(!client_side.peer_certificates().is_empty());
}

/// What a failed TLS connect reports.
fn failed_connect(port: u16, tls: TlsClientOptions) -> Error {
    let lt = LoopThread::start();
    block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", port),
        TcpOptions::new()
            .tls(tls)
            .connect_timeout(Duration::from_secs(10)),
    ))
    .expect_err("the connect must fail")
}

fn tls_kind(err: &Error) -> TlsErrorKind {
    match err {
        Error::Tls { kind, .. } => *kind,
        other => panic!("not a TLS error: {other:?}"),
    }
}

/// A server whose certificate is `cert`.
fn server_with(handle: &LoopHandle, config: rustls::ServerConfig) -> TcpServer {
    TcpServer::bind(
        handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(TcpOptions::new().stream(true))
            .tls(TlsServerOptions::new(Arc::new(config))),
    )
    .unwrap()
}

/// Certificates a client must refuse: the wrong host name, an untrusted
/// issuer, an expired certificate. Each fails the connect with
/// `CertificateInvalid`, which is `PermissionDenied` for io consumers.
#[test]
fn bad_certificates_fail_the_connect() {
    let lt = LoopThread::start();
    let good = server_with(&lt.handle, server_config(&pki().server));
    let err = failed_connect(good.local_addr().port(), client_tls("wrong.example"));
    assert_eq!(tls_kind(&err), TlsErrorKind::CertificateInvalid, "{err}");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::PermissionDenied
    );

    let untrusted = server_with(&lt.handle, server_config(&pki().untrusted_server));
    let err = failed_connect(untrusted.local_addr().port(), client_tls("localhost"));
    assert_eq!(tls_kind(&err), TlsErrorKind::CertificateInvalid, "{err}");

    let expired = server_with(&lt.handle, server_config(&pki().expired_server));
    let err = failed_connect(expired.local_addr().port(), client_tls("localhost"));
    assert_eq!(tls_kind(&err), TlsErrorKind::CertificateInvalid, "{err}");
}

/// A peer that answers a ClientHello with plaintext or garbage fails the
/// connect with a clear error (`InvalidData`); a plaintext client at a TLS
/// server fails that connection only, and the server goes on.
#[test]
fn plaintext_or_garbage_instead_of_tls() {
    for reply in [&b"220 smtp.example ESMTP ready\r\n"[..], &[0xffu8; 64][..]] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let reply = reply.to_vec();
        let peer = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.write_all(&reply).unwrap();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        });
        let err = failed_connect(port, client_tls("localhost"));
        let kind = tls_kind(&err);
        assert!(
            matches!(kind, TlsErrorKind::NotTls | TlsErrorKind::HandshakeFailed),
            "{err}"
        );
        assert_eq!(
            std::io::Error::from(err).kind(),
            std::io::ErrorKind::InvalidData
        );
        peer.join().unwrap();
    }

    let lt = LoopThread::start();
    let (cb, events) = common::event_channel();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(TcpOptions::new().event_cb(cb))
            .tls(server_tls()),
    )
    .unwrap();
    let mut plain = TcpStream::connect(server.local_addr()).unwrap();
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let event = common::wait_event(&events, "the TLS error", |e| matches!(e, Event::Error(_)));
    let Event::Error(err) = event else {
        unreachable!()
    };
    assert_eq!(tls_kind(&err), TlsErrorKind::NotTls, "{err}");
    // The server goes on: a TLS client is served.
    let stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new().tls(client_tls("localhost")),
    ));
    assert!(stream.is_ok());
}

/// A peer that stalls in the middle of the handshake meets the connect
/// timeout, on both sides.
#[test]
fn a_stalled_handshake_meets_the_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = thread::spawn(move || listener.accept().unwrap().0);
    let lt = LoopThread::start();
    let err = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", port),
        TcpOptions::new()
            .tls(client_tls("localhost"))
            .connect_timeout(Duration::from_millis(300)),
    ))
    .expect_err("a stalled handshake");
    assert!(
        matches!(err, Error::TimedOut(evstream::TimeoutKind::Connect)),
        "{err}"
    );
    drop(held.join().unwrap());

    // Server side: a client that connects and says nothing.
    let (cb, events) = common::event_channel();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(
                TcpOptions::new()
                    .event_cb(cb)
                    .connect_timeout(Duration::from_millis(300)),
            )
            .tls(server_tls()),
    )
    .unwrap();
    let _silent = TcpStream::connect(server.local_addr()).unwrap();
    common::wait_event(&events, "the handshake timeout", |e| {
        matches!(
            e,
            Event::Error(Error::TimedOut(evstream::TimeoutKind::Connect))
        )
    });
}

/// A rustls peer over a std socket, for tests that need to act below
/// evstream (end without close_notify, check that close_notify came).
fn rustls_server(
    listener: &TcpListener,
) -> rustls::StreamOwned<rustls::ServerConnection, TcpStream> {
    let (socket, _) = listener.accept().unwrap();
    socket.set_read_timeout(Some(WAIT)).unwrap();
    let conn = rustls::ServerConnection::new(Arc::new(server_config(&pki().server))).unwrap();
    rustls::StreamOwned::new(conn, socket)
}

/// A peer that ends without `close_notify` (FIN only) truncates the data:
/// the read fails with `Truncated` (`UnexpectedEof`), unless the client
/// allows truncation, when it ends like plaintext at EOF.
#[test]
fn truncation_is_an_error_unless_allowed() {
    for allow in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let peer = thread::spawn(move || {
            let mut tls = rustls_server(&listener);
            tls.write_all(b"partial data").unwrap();
            tls.flush().unwrap();
            // FIN without close_notify.
            tls.sock.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            let _ = tls.sock.read_to_end(&mut rest);
        });
        let lt = LoopThread::start();
        let mut stream = block_on(AsyncIoStream::connect_on(
            &lt.handle,
            ("127.0.0.1", port),
            TcpOptions::new().tls(client_tls("localhost").allow_truncation(allow)),
        ))
        .unwrap();
        let result = block_on(stream.read_until_close());
        if allow {
            assert_eq!(&result.unwrap()[..], b"partial data");
        } else {
            let err = result.expect_err("truncated");
            assert_eq!(tls_kind(&err), TlsErrorKind::Truncated);
            assert_eq!(
                std::io::Error::from(err).kind(),
                std::io::ErrorKind::UnexpectedEof
            );
            // The plaintext that did arrive stays readable.
            let mut buf = [0u8; 32];
            let n = std::io::Read::read(&mut stream, &mut buf).unwrap();
            assert_eq!(&buf[..n], b"partial data");
        }
        stream.socket().close();
        peer.join().unwrap();
    }
}

/// Closing sends `close_notify`, then FIN: the peer sees a clean end.
#[test]
fn close_sends_close_notify_then_fin() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = thread::spawn(move || {
        let mut tls = rustls_server(&listener);
        let mut got = Vec::new();
        // rustls reports a clean Ok(0) only after close_notify; a FIN
        // without it is an UnexpectedEof error.
        tls.read_to_end(&mut got).map(|_| got)
    });
    let lt = LoopThread::start();
    let mut stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", port),
        TcpOptions::new().tls(client_tls("localhost")),
    ))
    .unwrap();
    block_on(AsyncWriteExt::write_all(&mut stream, b"goodbye")).unwrap();
    block_on(AsyncWriteExt::close(&mut stream)).unwrap();
    assert_eq!(peer.join().unwrap().expect("a clean close"), b"goodbye");
}

/// STARTTLS: a plaintext exchange, then both sides upgrade in place; bytes
/// written before the upgrade go in clear, those after encrypted, in
/// order, and nothing buffered is lost.
#[test]
fn starttls_upgrades_in_place() {
    let lt = LoopThread::start();
    let (done_tx, done_rx) = common::channel::<Vec<u8>>();
    let done_tx = Mutex::new(done_tx);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().stream_connect_cb(
            move |stream: AsyncIoStream| {
                let done = done_tx.lock().unwrap().clone();
                thread::spawn(move || {
                    let mut stream = stream;
                    let command = block_on(stream.read_until_delimiter(b"\r\n", 64)).unwrap();
                    assert_eq!(&command[..], b"STARTTLS\r\n");
                    assert_eq!(stream.available(), 0, "nothing pipelined in clear");
                    block_on(AsyncWriteExt::write_all(&mut stream, b"220 go ahead\r\n")).unwrap();
                    block_on(stream.socket().start_tls_server(server_tls())).expect("upgrade");
                    assert!(stream.socket().tls_info().is_some());
                    let secret = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
                    block_on(AsyncWriteExt::write_all(&mut stream, b"secret received\n")).unwrap();
                    let _ = done.send(secret.to_vec());
                });
            },
        )),
    )
    .unwrap();
    let mut stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new(),
    ))
    .unwrap();
    block_on(AsyncWriteExt::write_all(&mut stream, b"STARTTLS\r\n")).unwrap();
    let reply = block_on(stream.read_until_delimiter(b"\r\n", 64)).unwrap();
    assert_eq!(&reply[..], b"220 go ahead\r\n");
    block_on(stream.socket().start_tls_client(client_tls("localhost"))).expect("upgrade");
    block_on(AsyncWriteExt::write_all(&mut stream, b"the secret\n")).unwrap();
    let answer = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
    assert_eq!(&answer[..], b"secret received\n");
    assert_eq!(recv(&done_rx, "the server's view"), b"the secret\n");
}

// ---------------------------------------------------------------------------
// Interop with the openssl command line tool
// ---------------------------------------------------------------------------

/// A child process killed when the test ends.
struct Openssl(Child);

impl Drop for Openssl {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(args: &[&str]) -> Openssl {
    let child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "the TLS interop tests need the openssl command line tool ({err}); \
                 install it (Debian/Ubuntu: apt-get install openssl)"
            )
        });
    Openssl(child)
}

/// The lines a child prints, on a channel.
fn lines_of(output: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = common::channel();
    thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_line(lines: &Receiver<String>, want: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Ok(line) =
        lines.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        if line.contains(want) {
            return;
        }
        seen.push(line);
    }
    panic!("openssl never printed {want:?}; it printed {seen:?}");
}

struct Pem(std::path::PathBuf);

impl Pem {
    fn write(name: &str, contents: &str) -> Pem {
        let path = std::env::temp_dir().join(format!("evstream-tls-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        Pem(path)
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Pem {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// evstream's client against `openssl s_server`: each side's line reaches
/// the other.
#[test]
fn evstream_client_talks_to_openssl_s_server() {
    let cert = Pem::write("srv-cert.pem", &pki().server.cert_pem);
    let key = Pem::write("srv-key.pem", &pki().server.key_pem);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = openssl(&[
        "s_server",
        "-accept",
        &port.to_string(),
        "-cert",
        cert.path(),
        "-key",
        key.path(),
        "-naccept",
        "1",
        "-quiet",
    ]);
    let out = lines_of(server.0.stdout.take().unwrap());
    let lt = LoopThread::start();
    // openssl may need a moment to listen: connect until it accepts.
    let mut stream = None;
    for _ in 0..200 {
        match block_on(AsyncIoStream::connect_on(
            &lt.handle,
            ("127.0.0.1", port),
            TcpOptions::new().tls(client_tls("localhost")),
        )) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(Error::Refused) => thread::sleep(Duration::from_millis(20)),
            Err(err) => panic!("connect to openssl: {err}"),
        }
    }
    let mut stream = stream.expect("openssl s_server accepts");
    block_on(AsyncWriteExt::write_all(
        &mut stream,
        b"hello from evstream\n",
    ))
    .unwrap();
    wait_line(&out, "hello from evstream");
    let mut stdin = server.0.stdin.take().unwrap();
    stdin.write_all(b"hello from openssl\n").unwrap();
    stdin.flush().unwrap();
    let line = block_on(stream.read_until_delimiter(b"\n", 256)).unwrap();
    assert_eq!(&line[..], b"hello from openssl\n");
}

/// `openssl s_client` against evstream's server: each side's line reaches
/// the other, and the server sees the SNI name.
#[test]
fn openssl_s_client_talks_to_an_evstream_server() {
    let ca = Pem::write("ca.pem", &pki().ca.cert_pem);
    let lt = LoopThread::start();
    let (tx, rx) = common::channel::<(Vec<u8>, Option<String>)>();
    let tx = Mutex::new(tx);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .connection(
                TcpOptions::new().stream_connect_cb(move |stream: AsyncIoStream| {
                    let tx = tx.lock().unwrap().clone();
                    thread::spawn(move || {
                        let mut stream = stream;
                        block_on(AsyncWriteExt::write_all(
                            &mut stream,
                            b"hello from evstream\n",
                        ))
                        .unwrap();
                        let line = block_on(stream.read_until_delimiter(b"\n", 256)).unwrap();
                        let sni = stream
                            .socket()
                            .tls_info()
                            .and_then(|i| i.server_name().map(str::to_owned));
                        let _ = tx.send((line.to_vec(), sni));
                    });
                }),
            )
            .tls(server_tls()),
    )
    .unwrap();
    let mut client = openssl(&[
        "s_client",
        "-connect",
        &format!("127.0.0.1:{}", server.local_addr().port()),
        "-servername",
        "localhost",
        "-CAfile",
        ca.path(),
        "-verify_return_error",
        "-quiet",
    ]);
    let out = lines_of(client.0.stdout.take().unwrap());
    wait_line(&out, "hello from evstream");
    let mut stdin = client.0.stdin.take().unwrap();
    stdin.write_all(b"hello from openssl\n").unwrap();
    stdin.flush().unwrap();
    let (line, sni) = recv(&rx, "the line from openssl");
    assert_eq!(line, b"hello from openssl\n");
    assert_eq!(sni.as_deref(), Some("localhost"));
}

/// `ServerOptions::tls` applies whatever the order with `connection`.
#[test]
fn server_tls_holds_in_either_order_with_connection() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new()
            .tls(server_tls())
            .connection(TcpOptions::new().stream(true)),
    )
    .unwrap();
    let stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", server.local_addr().port()),
        TcpOptions::new().tls(client_tls("localhost")),
    ))
    .expect("a TLS server");
    assert!(stream.socket().tls_info().is_some());
}
