//! Contract rules 6 (EOF and half-close) and 7 (closing): graceful close
//! flushes everything before FIN, `abort` drops pending output, both are
//! idempotent, a connection without callbacks closes when its last handle
//! goes, buffered input stays readable after close and EOF, writes after
//! close fail cleanly, and `run()` returns once every connection is closed.

mod common;

use common::assert_same;

use std::io::{self, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{LoopThread, WAIT};
use evstream::{
    tcp_connect_addr, Error, Event, EventLoop, LoopHandle, ServerOptions, Socket, TcpOptions,
    TcpServer,
};

const MIB: usize = 1024 * 1024;
const KIB: usize = 1024;

/// An evstream client with `options` plus an `event_cb` feeding a channel,
/// connected to a std peer; waits for `Connected`.
fn client_with_events(
    handle: &LoopHandle,
    options: TcpOptions,
) -> (Socket, TcpStream, Receiver<Event>) {
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket =
        tcp_connect_addr(handle, addr, options.event_cb(event_cb)).expect("tcp_connect_addr");
    let peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    (socket, peer, events)
}

/// Waits for `Closed`, failing on any `Error` event before it.
fn wait_closed(events: &Receiver<Event>) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(Event::Closed) => return,
            Ok(Event::Error(err)) => panic!("error event before Closed: {err}; saw {seen:?}"),
            Ok(event) => seen.push(event),
            Err(err) => panic!("no Closed event within {WAIT:?} ({err}); saw {seen:?}"),
        }
    }
}

/// Returns once the loop has run two more turns, i.e. has handled
/// everything queued before this call.
fn loop_barrier(handle: &LoopHandle) {
    let (tx, rx) = common::channel();
    let again = handle.clone();
    handle.delay(Duration::ZERO, move || {
        again.delay(Duration::ZERO, move || {
            let _ = tx.send(());
        });
    });
    common::recv(&rx, "loop barrier");
}

/// Asserts no further event arrived (after `loop_barrier`).
fn assert_no_more_events(events: &Receiver<Event>) {
    match events.try_recv() {
        Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
        Ok(event) => panic!("event after Closed: {event:?}"),
    }
}

/// Reads exactly `n` buffered bytes from an evstream socket, polling with
/// `yield_now` (bounded by [`WAIT`]); for connections without callbacks,
/// which have nothing to signal arrivals with.
fn poll_read_exact(socket: &Socket, n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    let mut got = 0;
    let deadline = Instant::now() + WAIT;
    while got < n {
        match socket.read(&mut out[got..]) {
            Ok(0) => panic!("EOF after {got} of {n} bytes"),
            Ok(k) => got += k,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "only {got} of {n} bytes arrived");
                thread::yield_now();
            }
            Err(err) => panic!("read failed: {err}"),
        }
    }
    out
}

fn expect_closed(result: evstream::Result<()>, what: &str) {
    match result {
        Err(Error::Closed) => {}
        other => panic!("{what}: expected Err(Closed), got {other:?}"),
    }
}

fn expect_write_closed(result: evstream::Result<()>, what: &str) {
    match result {
        Err(Error::WriteClosed) => {}
        other => panic!("{what}: expected Err(WriteClosed), got {other:?}"),
    }
}

/// Rule 7: `close()` with 50 MiB still queued flushes every byte before FIN
/// (client side); `Closed` follows.
#[test]
fn graceful_close_flushes_50_mib_then_fin_client_side() {
    let lt = LoopThread::start();
    let (socket, mut peer, events) = client_with_events(&lt.handle, TcpOptions::new());
    let data = common::random_data(0xC105_0001, 50 * MIB);
    socket.write(&data).expect("write 50 MiB");
    assert!(
        socket.output_buffer_len() > 0,
        "the peer is not reading, so output must be queued"
    );
    socket.close();
    assert!(socket.is_closed());

    let got = common::read_to_end(&mut peer);
    assert_same("bytes after close", &got, &data);
    drop(peer);
    wait_closed(&events);
}

/// Rule 7: the same graceful close from an accepted (server-side)
/// connection.
#[test]
fn graceful_close_flushes_50_mib_then_fin_server_side() {
    let lt = LoopThread::start();
    let (event_cb, events) = common::event_channel();
    let (socket_tx, sockets) = common::channel();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .connect_cb(move |socket| {
                    let _ = socket_tx.send(socket.clone());
                })
                .event_cb(event_cb),
        ),
    )
    .expect("bind");
    let mut client = common::std_connect(server.local_addr());
    let socket: Socket = common::recv(&sockets, "accepted connection");
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));

    let data = common::random_data(0xC105_0002, 50 * MIB);
    socket
        .write_bytes(Bytes::from(data.clone()))
        .expect("write 50 MiB");
    socket.close();

    let got = common::read_to_end(&mut client);
    assert_same("bytes after close", &got, &data);
    drop(client);
    wait_closed(&events);
    server.close();
}

/// Rule 6: at the peer's FIN `event_cb` gets `Eof`, the input buffer keeps
/// its bytes, and this side can still write until it closes.
#[test]
fn eof_keeps_input_and_the_write_side_usable() {
    let lt = LoopThread::start();
    let (notify_tx, notified) = common::channel();
    let (socket, mut peer, events) = client_with_events(
        &lt.handle,
        TcpOptions::new().notify_cb(move |_| {
            let _ = notify_tx.send(());
        }),
    );
    let sent = common::random_data(0xC105_0003, 100 * KIB);
    common::write_all(&mut peer, &sent);
    peer.shutdown(Shutdown::Write).unwrap();

    common::wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
    assert!(socket.is_eof());
    assert!(!socket.is_closed(), "EOF alone does not close");
    assert_eq!(socket.input_buffer_len(), sent.len(), "input kept at EOF");
    common::recv(&notified, "notify_cb");

    let mut got = Vec::new();
    let mut buf = [0_u8; 16 * KIB];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => panic!("read after EOF failed: {err}"),
        }
    }
    assert_same("bytes read after EOF", &got, &sent);
    assert_eq!(socket.read(&mut buf).unwrap(), 0, "EOF stays EOF");

    let reply = common::random_data(0xC105_0004, MIB);
    socket.write(&reply).expect("write after EOF");
    let mut echoed = vec![0_u8; reply.len()];
    peer.read_exact(&mut echoed).expect("peer reads the reply");
    assert_same("bytes written after EOF", &echoed, &reply);

    socket.close();
    let rest = common::read_to_end(&mut peer);
    assert!(
        rest.is_empty(),
        "{} unexpected bytes before EOF",
        rest.len()
    );
    drop(peer);
    wait_closed(&events);
}

/// Rule 7 (`shutdown_write`, half-close from this side): the peer sees EOF
/// after every byte yet can still send, and `read_cb` still gets its bytes.
#[test]
fn shutdown_write_half_closes_and_reading_goes_on() {
    let lt = LoopThread::start();
    let (read_tx, reads) = common::channel::<Bytes>();
    let (socket, mut peer, events) = client_with_events(
        &lt.handle,
        TcpOptions::new().read_cb(move |_, bytes| {
            let _ = read_tx.send(bytes);
        }),
    );
    let out = common::random_data(0xC105_0005, 2 * MIB);
    socket.write(&out).expect("write");
    socket.shutdown_write().expect("shutdown_write");
    socket
        .shutdown_write()
        .expect("shutdown_write is idempotent");
    expect_write_closed(socket.write(b"late"), "write after shutdown_write");

    let got = common::read_to_end(&mut peer);
    assert_same("bytes before FIN", &got, &out);

    let back = common::random_data(0xC105_0006, MIB);
    common::write_all(&mut peer, &back);
    let mut received = Vec::new();
    while received.len() < back.len() {
        received.extend_from_slice(&common::recv(&reads, "read_cb bytes"));
    }
    assert_same("bytes received after shutdown_write", &received, &back);

    peer.shutdown(Shutdown::Write).unwrap();
    common::wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
    socket.close();
    drop(peer);
    wait_closed(&events);
}

/// Rule 7: `abort()` drops pending output (the peer gets a reset or not
/// every byte); `Closed` comes exactly once though abort and close are
/// called repeatedly.
#[test]
fn abort_drops_pending_output_and_is_idempotent() {
    let lt = LoopThread::start();
    let (socket, mut peer, events) = client_with_events(&lt.handle, TcpOptions::new());
    let total = 50 * MIB;
    socket
        .write(&common::random_data(0xC105_0007, total))
        .expect("write");
    socket.abort();
    socket.abort();
    socket.close();
    assert!(socket.is_closed());
    wait_closed(&events);

    let mut received = 0;
    let mut buf = vec![0_u8; 256 * KIB];
    let outcome = loop {
        match peer.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => received += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => break Err(err),
        }
    };
    match outcome {
        Err(err) => assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}"),
        Ok(()) => assert!(
            received < total,
            "the peer got all {total} bytes after abort()"
        ),
    }

    socket.abort();
    socket.close();
    loop_barrier(&lt.handle);
    assert_no_more_events(&events);
}

/// Rule 7: `close()` is idempotent: one `Closed`, every byte delivered once.
#[test]
fn close_twice_delivers_one_closed() {
    let lt = LoopThread::start();
    let (socket, mut peer, events) = client_with_events(&lt.handle, TcpOptions::new());
    let data = common::random_data(0xC105_0008, MIB);
    socket.write(&data).expect("write");
    socket.close();
    socket.close();
    let got = common::read_to_end(&mut peer);
    assert_same("bytes after two closes", &got, &data);
    drop(peer);
    wait_closed(&events);
    socket.close();
    loop_barrier(&lt.handle);
    assert_no_more_events(&events);
}

/// Rule 7: a connection without callbacks is closed gracefully when its
/// last handle is dropped: queued output is flushed, then FIN.
#[test]
fn dropping_the_last_handle_closes_gracefully() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let socket = tcp_connect_addr(&lt.handle, addr, TcpOptions::new()).expect("connect");
    let mut peer = common::accept(&listener);
    let data = common::random_data(0xC105_0009, 20 * MIB);
    socket.write(&data).expect("write");
    drop(socket);
    let got = common::read_to_end(&mut peer);
    assert_same("bytes after the last handle dropped", &got, &data);
}

/// Rule 7: while a clone of the handle lives, dropping another does not
/// close a connection without callbacks.
#[test]
fn a_live_clone_keeps_the_connection_open() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let socket = tcp_connect_addr(&lt.handle, addr, TcpOptions::new()).expect("connect");
    let clone = socket.clone();
    drop(socket);
    let mut peer = common::accept(&listener);
    assert!(!clone.is_closed(), "closed while a clone is alive");

    clone.write(b"ping").expect("write through the clone");
    let mut ping = [0_u8; 4];
    peer.read_exact(&mut ping).unwrap();
    assert_eq!(&ping, b"ping");

    common::write_all(&mut peer, b"pong");
    assert_eq!(poll_read_exact(&clone, 4), b"pong");
    assert!(!clone.is_closed());

    drop(clone);
    let rest = common::read_to_end(&mut peer);
    assert!(
        rest.is_empty(),
        "{} unexpected bytes before EOF",
        rest.len()
    );
}

/// Rules 6/7: bytes already in the input buffer stay readable through
/// `Socket::read` after `close()` and after the socket is released, then
/// `Ok(0)`.
#[test]
fn buffered_input_is_readable_after_close() {
    let lt = LoopThread::start();
    let (notify_tx, notified) = common::channel();
    let (socket, mut peer, events) = client_with_events(
        &lt.handle,
        TcpOptions::new().notify_cb(move |socket| {
            let _ = notify_tx.send(socket.input_buffer_len());
        }),
    );
    let sent = common::random_data(0xC105_000A, 100 * KIB);
    common::write_all(&mut peer, &sent);
    let deadline = Instant::now() + WAIT;
    while socket.input_buffer_len() < sent.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        notified
            .recv_timeout(left)
            .expect("all bytes buffered in time");
    }
    assert_eq!(socket.input_buffer_len(), sent.len());

    socket.close();
    let mut got = vec![0_u8; sent.len() / 2];
    let mut filled = 0;
    while filled < got.len() {
        match socket.read(&mut got[filled..]) {
            Ok(0) => panic!("Ok(0) with {} bytes buffered", sent.len() - filled),
            Ok(n) => filled += n,
            Err(err) => panic!("read after close failed: {err}"),
        }
    }

    // The peer sees our FIN, closes its side; the socket is released.
    let rest = common::read_to_end(&mut peer);
    assert!(rest.is_empty());
    drop(peer);
    wait_closed(&events);

    let mut buf = [0_u8; 16 * KIB];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => panic!("read after release failed: {err}"),
        }
    }
    assert_same("buffered bytes read after close", &got, &sent);
    assert_eq!(socket.read(&mut buf).unwrap(), 0, "the end stays the end");
}

/// Rule 7 (errors on a closed write side): writing after `close()`,
/// `abort()` or release is `Err(Closed)`, after `shutdown_write()` it is
/// `Err(WriteClosed)` — never a panic.
#[test]
fn writes_after_close_or_shutdown_fail_cleanly() {
    let lt = LoopThread::start();

    let (socket, mut peer, events) = client_with_events(&lt.handle, TcpOptions::new());
    socket.close();
    expect_closed(socket.write(b"x"), "write after close");
    expect_closed(socket.write(b""), "empty write after close");
    expect_closed(
        socket.write_bytes(Bytes::from_static(b"x")),
        "write_bytes after close",
    );
    assert!(common::read_to_end(&mut peer).is_empty());
    drop(peer);
    wait_closed(&events);
    expect_closed(socket.write(b"x"), "write after release");

    let (socket, _peer, _events) = client_with_events(&lt.handle, TcpOptions::new());
    socket.abort();
    expect_closed(socket.write(b"x"), "write after abort");

    let (socket, _peer, _events) = client_with_events(&lt.handle, TcpOptions::new());
    socket.shutdown_write().expect("shutdown_write");
    expect_write_closed(socket.write(b"x"), "write after shutdown_write");
    expect_write_closed(
        socket.write_bytes(Bytes::from_static(b"x")),
        "write_bytes after shutdown_write",
    );
    socket.close();
    expect_closed(socket.write(b"x"), "write after shutdown_write then close");
}

/// Rule 7: once `close()` was called the connection counts as closed
/// (`is_closed()`), so `shutdown_write()` reports `Err(Closed)` as its
/// documentation says, like `write`.
#[test]

fn shutdown_write_after_close_is_closed() {
    let lt = LoopThread::start();
    let (socket, mut peer, events) = client_with_events(&lt.handle, TcpOptions::new());
    socket.close();
    assert!(socket.is_closed());
    expect_closed(socket.shutdown_write(), "shutdown_write after close");
    assert!(common::read_to_end(&mut peer).is_empty());
    drop(peer);
    wait_closed(&events);
    expect_closed(socket.shutdown_write(), "shutdown_write after release");
}

/// Rule 7 (with rule 11): `EventLoop::run` keeps going while connections
/// and a server are open and returns once all of them are closed.
#[test]
fn run_returns_after_every_connection_is_closed() {
    let (handle_tx, handles) = common::channel();
    let (go_tx, go) = common::channel::<()>();
    let (done_tx, done) = common::channel();
    thread::spawn(move || {
        let mut ev = EventLoop::new().expect("loop");
        handle_tx.send(ev.handle()).unwrap();
        if go.recv_timeout(WAIT).is_ok() {
            let _ = done_tx.send(ev.run().map_err(|err| err.to_string()));
        }
    });
    let handle: LoopHandle = common::recv(&handles, "loop handle");

    // A: closed by the application.
    let (listener_a, addr_a) = common::std_listener();
    let (cb_a, events_a) = common::event_channel();
    let socket_a = tcp_connect_addr(&handle, addr_a, TcpOptions::new().event_cb(cb_a)).unwrap();

    // B: closed from its event_cb when the peer's FIN arrives.
    let (listener_b, addr_b) = common::std_listener();
    let (cb_b, events_b) = common::event_channel();
    let forward_b = cb_b;
    tcp_connect_addr(
        &handle,
        addr_b,
        TcpOptions::new().event_cb(move |socket, event| {
            if matches!(event, Event::Eof) {
                socket.close();
            }
            forward_b(socket, event);
        }),
    )
    .unwrap();

    // C: an accepted connection on a server.
    let (cb_c, events_c) = common::event_channel();
    let (socket_tx, sockets) = common::channel();
    let server = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .connect_cb(move |socket| {
                    let _ = socket_tx.send(socket.clone());
                })
                .event_cb(cb_c),
        ),
    )
    .unwrap();
    let mut client_c = common::std_connect(server.local_addr());

    // The loop starts with all of them queued, so it cannot find itself
    // idle before they exist.
    go_tx.send(()).unwrap();
    let mut peer_a = common::accept(&listener_a);
    let peer_b = common::accept(&listener_b);
    common::wait_event(&events_a, "Connected A", |e| matches!(e, Event::Connected));
    common::wait_event(&events_b, "Connected B", |e| matches!(e, Event::Connected));
    let socket_c: Socket = common::recv(&sockets, "accepted connection");
    common::wait_event(&events_c, "Connected C", |e| matches!(e, Event::Connected));
    assert!(
        matches!(done.try_recv(), Err(TryRecvError::Empty)),
        "run() returned with connections open"
    );

    socket_a.close();
    assert!(common::read_to_end(&mut peer_a).is_empty());
    drop(peer_a);
    wait_closed(&events_a);
    assert!(
        matches!(done.try_recv(), Err(TryRecvError::Empty)),
        "run() returned with B, C and the server open"
    );

    drop(peer_b);
    wait_closed(&events_b);

    socket_c.close();
    assert!(common::read_to_end(&mut client_c).is_empty());
    drop(client_c);
    wait_closed(&events_c);
    assert!(
        matches!(done.try_recv(), Err(TryRecvError::Empty)),
        "run() returned with the server open"
    );

    server.close();
    common::recv(&done, "run() to return").expect("run succeeded");
}
