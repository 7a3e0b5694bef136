//! The same connections and streams over Unix domain sockets (Godot's
//! `StreamPeerUDS`, FEATURES' "unix sockets" row): callbacks, streams,
//! the peer API, errors, and the server's socket file.

mod common;

use evstream::prelude::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use common::{event_channel, recv, wait_event, LoopThread, WAIT};
use evstream::peer::{ByteOrder, StreamPeer};
use evstream::{
    unix_connect, AsyncIoStream, Error, Event, Owner, ServerOptions, TcpOptions, UnixServer,
};

/// A fresh directory for this test's socket files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("evstream-unix-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Rules 1, 5, 6, 7 over a Unix socket: a drain-mode echo server, a client
/// whose writes before the connection completes are sent, Eof, Closed, the
/// paths of both ends and the owner of the accepted connection.
#[test]
fn unix_echo_with_callbacks() {
    let dir = TempDir::new("echo");
    let path = dir.path("echo.sock");
    let lt = LoopThread::start();
    let (owner_tx, owner_rx) = common::channel();
    let server = UnixServer::bind(
        &lt.handle,
        &path,
        ServerOptions::new().connection(
            TcpOptions::new()
                .connect_cb(move |socket| {
                    let _ = owner_tx.send((socket.owner(), socket.local_path()));
                })
                .read_cb(|socket, data| socket.write_bytes(data).unwrap())
                .event_cb(|socket, event| {
                    if matches!(event, Event::Eof) {
                        socket.close();
                    }
                }),
        ),
    )
    .unwrap();
    assert_eq!(server.local_path(), path);

    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let expected = b"first second".to_vec();
    let expected_len = expected.len();
    let (echoed_tx, echoed) = common::channel();
    let (event_cb, events) = event_channel();
    let event_cb = event_cb;
    let socket = unix_connect(
        &lt.handle,
        &path,
        TcpOptions::new()
            .data("first ")
            .read_cb(move |_, data| {
                let mut all = sink.lock().unwrap();
                all.extend_from_slice(&data);
                if all.len() >= expected_len {
                    let _ = echoed_tx.send(());
                }
            })
            .event_cb(move |socket, event| {
                if matches!(event, Event::Eof) {
                    socket.close();
                }
                event_cb(socket, event);
            }),
    )
    .unwrap();
    // Queued before the connection is up: sent after `data`, in order.
    socket.write(b"second").unwrap();
    wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    assert!(socket.is_connected());
    assert_eq!(socket.peer_path(), Some(path.clone()));
    assert_eq!(socket.peer_addr(), None, "no IP address on a Unix socket");
    let (owner, local) = recv(&owner_rx, "the accepted connection's owner");
    match owner {
        Owner::UnixServer(owner) => assert_eq!(owner.local_path(), path),
        other => panic!("expected the Unix server as owner, got {other:?}"),
    }
    assert_eq!(local, Some(path.clone()));

    // Half-close once everything is echoed: the server sees EOF and closes.
    recv(&echoed, "the whole echo");
    socket.shutdown_write().unwrap();
    wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
    wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
    assert_eq!(*received.lock().unwrap(), expected);

    // close() removes the socket file; a later connect fails clearly.
    server.close();
    assert!(!path.exists(), "the socket file is removed");
    let (event_cb, events) = event_channel();
    unix_connect(&lt.handle, &path, TcpOptions::new().event_cb(event_cb)).unwrap();
    match wait_event(&events, "an error", |e| matches!(e, Event::Error(_))) {
        Event::Error(err) => assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err:?}"),
        _ => unreachable!(),
    }
}

/// Rules 2-4 over a Unix socket: 16 MiB through an `AsyncIoStream` from
/// `connect_unix`, verified byte for byte, with the non-blocking `Read`
/// rules and the end seen only after every byte.
#[test]
fn unix_stream_moves_16_mib_intact() {
    let dir = TempDir::new("stream");
    let path = dir.path("bulk.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let data = common::random_data(7, 16 * 1024 * 1024);
    let sent = data.clone();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_write_timeout(Some(WAIT)).unwrap();
        let mut go = [0u8; 1];
        s.read_exact(&mut go).unwrap();
        s.write_all(&sent).unwrap();
    });
    let mut stream = futures_lite::future::block_on(AsyncIoStream::connect_unix(&path)).unwrap();
    let mut buf = [0u8; 16];
    let err = Read::read(&mut stream, &mut buf).unwrap_err();
    assert_eq!(
        err.kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing yet is not EOF"
    );
    let all = futures_lite::future::block_on(async {
        futures_lite::io::AsyncWriteExt::write_all(&mut stream, b"g").await?;
        stream
            .read_until_close()
            .await
            .map_err(std::io::Error::from)
    })
    .unwrap();
    peer.join().unwrap();
    assert!(all[..] == data[..], "16 MiB arrive intact");
    assert_eq!(
        Read::read(&mut stream, &mut buf).unwrap(),
        0,
        "then the end"
    );
}

/// The peer API over a Unix socket (Godot's `StreamPeerUDS`): typed values
/// and Godot strings both ways with a std peer.
#[test]
fn stream_peer_over_a_unix_socket() {
    let dir = TempDir::new("peer");
    let path = dir.path("peer.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut value = [0u8; 4];
        s.read_exact(&mut value).unwrap();
        let mut len = [0u8; 4];
        s.read_exact(&mut len).unwrap();
        let mut text = vec![0u8; u32::from_le_bytes(len) as usize];
        s.read_exact(&mut text).unwrap();
        // Reply in kind.
        s.write_all(&(u32::from_be_bytes(value) + 1).to_be_bytes())
            .unwrap();
        s.write_all(&(text.len() as u32).to_le_bytes()).unwrap();
        s.write_all(&text).unwrap();
        s
    });
    let mut stream = futures_lite::future::block_on(AsyncIoStream::connect_unix(&path)).unwrap();
    stream.put_u32_with(41, ByteOrder::Big).unwrap();
    stream.put_utf8_string("über uds").unwrap();
    assert_eq!(stream.get_u32_with(ByteOrder::Big).unwrap(), 42);
    assert_eq!(stream.get_utf8_string().unwrap(), "über uds");
    drop(peer.join().unwrap());
    // The peer is gone: the end is an error that says nothing arrived.
    assert!(matches!(
        stream.get_u8_with(ByteOrder::Little),
        Err(Error::UnexpectedEof { received: 0, .. })
    ));
}

/// A connect to a path where nothing listens any more is refused.
#[test]
fn connect_to_a_dead_socket_file_is_refused() {
    let dir = TempDir::new("dead");
    let path = dir.path("dead.sock");
    drop(UnixListener::bind(&path).unwrap()); // the file stays, nobody listens
    let err = futures_lite::future::block_on(AsyncIoStream::connect_unix(&path)).unwrap_err();
    assert!(matches!(err, Error::Refused), "{err:?}");
}
