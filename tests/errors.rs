//! Contract rule 8 (errors): failures are reported as matchable `Error`
//! variants, convert into `io::Error` with the documented `ErrorKind`, keep
//! buffered input readable, and leave the loop and every other connection
//! running.

mod common;

use common::{data_channel, recv_bytes};

use std::io::{self, Read};
use std::net::TcpStream;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use bytes::Bytes;
use evstream::{
    tcp_connect, tcp_connect_addr, Error, Event, Limit, LoopHandle, Socket, TcpOptions,
};

use common::{LoopThread, WAIT};

/// Collects events up to and including `Closed`, bounded by [`WAIT`].
fn events_until_closed(rx: &Receiver<Event>) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) => {
                let closed = matches!(event, Event::Closed);
                seen.push(event);
                if closed {
                    return seen;
                }
            }
            Err(_) => panic!("no Closed event within {WAIT:?}; saw {seen:?}"),
        }
    }
}

/// An unrelated healthy connection on the same loop (evstream client, std
/// peer), used to show that a failure elsewhere leaves it running.
struct Bystander {
    socket: Socket,
    peer: TcpStream,
    data: Receiver<Bytes>,
    events: Receiver<Event>,
}

impl Bystander {
    fn open(handle: &LoopHandle) -> Bystander {
        let (listener, addr) = common::std_listener();
        let (read_cb, data) = data_channel();
        let (event_cb, events) = common::event_channel();
        let socket = tcp_connect_addr(
            handle,
            addr,
            TcpOptions::new().read_cb(read_cb).event_cb(event_cb),
        )
        .expect("connect the bystander");
        let peer = common::accept(&listener);
        common::wait_event(&events, "bystander Connected", |e| {
            matches!(e, Event::Connected)
        });
        Bystander {
            socket,
            peer,
            data,
            events,
        }
    }

    /// Sends data both ways and checks it, and that the connection has seen
    /// no event since it connected.
    fn exchange(&mut self, seed: u64) {
        let to_us = common::random_data(seed, 4096);
        common::write_all(&mut self.peer, &to_us);
        assert_eq!(recv_bytes(&self.data, to_us.len()), to_us);

        let to_peer = common::random_data(seed ^ 0xFFFF, 4096);
        self.socket.write(&to_peer).expect("bystander write");
        let mut got = vec![0; to_peer.len()];
        self.peer.read_exact(&mut got).expect("bystander peer read");
        assert_eq!(got, to_peer);

        let events: Vec<Event> = self.events.try_iter().collect();
        assert!(events.is_empty(), "the bystander saw events: {events:?}");
        assert!(self.socket.is_connected());
    }
}

/// A port with no listener (bound once, then released).
fn unused_port() -> u16 {
    let (listener, addr) = common::std_listener();
    drop(listener);
    addr.port()
}

/// Rule 8: a refused connect reports `Error(Refused)` then `Closed`, converts
/// to `ConnectionRefused`, and another connection on the loop keeps working.
#[test]
fn refused_connect_reports_refused_and_other_connections_go_on() {
    let lt = LoopThread::start();
    let mut other = Bystander::open(&lt.handle);
    other.exchange(1);

    let port = unused_port();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        port,
        TcpOptions::new().event_cb(event_cb),
    )
    .expect("tcp_connect returns at once");
    let seen = events_until_closed(&events);
    assert!(
        matches!(
            seen.as_slice(),
            [Event::Error(Error::Refused), Event::Closed]
        ),
        "expected [Error(Refused), Closed], saw {seen:?}"
    );
    assert!(socket.is_closed());
    assert!(!socket.is_connected());
    assert_eq!(socket.peer_addr(), None);

    // The event's error converts to the documented io kind and back.
    let err = seen[0].error().expect("an error event").clone();
    let io_err = io::Error::from(err);
    assert_eq!(io_err.kind(), io::ErrorKind::ConnectionRefused);
    assert!(matches!(Error::from(io_err), Error::Refused));

    // A read on the failed connection reports the failure, not EOF.
    let mut buf = [0u8; 16];
    let err = socket.read(&mut buf).expect_err("read after refusal");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");

    other.exchange(2);
}

/// Rule 8: a reset in mid-transfer reports `Error(Reset)`; the bytes already
/// buffered stay readable, then `read` gives `ConnectionReset`; another
/// connection on the loop keeps working before, during and after.
#[test]
fn reset_keeps_buffered_bytes_then_reports_connection_reset() {
    const N: usize = 256 * 1024;
    let lt = LoopThread::start();
    let mut other = Bystander::open(&lt.handle);
    other.exchange(10);

    let (listener, addr) = common::std_listener();
    let (len_tx, len_rx) = common::channel();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .notify_cb(move |socket| {
                let _ = len_tx.send(socket.input_buffer_len());
            })
            .event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));

    let sent = common::random_data(11, N);
    common::write_all(&mut peer, &sent);
    // Wait, driven by notify_cb, until every byte sits in the input buffer.
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let len = len_rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("input never reached {N} bytes within {WAIT:?}"));
        assert!(len <= N, "input holds {len} bytes, more than the {N} sent");
        if len == N {
            break;
        }
    }
    other.exchange(12);

    common::reset(peer);
    let event = common::wait_event(&events, "Error or Closed", |e| {
        matches!(e, Event::Error(_) | Event::Closed)
    });
    assert!(
        matches!(event, Event::Error(Error::Reset)),
        "expected Error(Reset), got {event:?}"
    );
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
    assert!(socket.is_closed());

    // Every buffered byte is still there, in order, then the reset.
    let mut got = Vec::with_capacity(N);
    let mut buf = vec![0u8; 7001];
    let mut reads = 0;
    let err = loop {
        reads += 1;
        assert!(reads <= N, "read never reported the reset");
        match socket.read(&mut buf) {
            Ok(0) => panic!("Ok(0) after {} bytes: the reset looked like EOF", got.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => break err,
        }
    };
    assert_eq!(got.len(), N, "buffered bytes lost or duplicated");
    assert!(got == sent, "buffered bytes corrupted");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err:?}");
    assert!(matches!(Error::from(err), Error::Reset));
    // The error stays: a second read reports it again.
    let again = socket.read(&mut buf).expect_err("still failed");
    assert_eq!(again.kind(), io::ErrorKind::ConnectionReset);

    other.exchange(13);
}

/// Rule 8: a host name that cannot resolve reports `Error(Resolve)` (io kind
/// `NotFound`) then `Closed`.
#[test]
fn unresolvable_host_reports_resolve_error() {
    const HOST: &str = "no-such-host.invalid";
    let lt = LoopThread::start();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect(
        &lt.handle,
        HOST,
        80,
        TcpOptions::new()
            .connect_timeout(Duration::from_secs(10))
            .event_cb(event_cb),
    )
    .expect("tcp_connect returns at once");
    assert_eq!(socket.host(), Some(HOST));
    let seen = events_until_closed(&events);
    match seen.as_slice() {
        [Event::Error(err @ Error::Resolve { host, .. }), Event::Closed] => {
            assert_eq!(host, HOST);
            assert_eq!(io::Error::from(err.clone()).kind(), io::ErrorKind::NotFound);
        }
        _ => panic!("expected [Error(Resolve), Closed], saw {seen:?}"),
    }
    assert!(socket.is_closed());
    assert!(!socket.is_connected());
}

/// Rule 8: writes after `shutdown_write` fail with `WriteClosed`
/// (`BrokenPipe`), writes after `close` with `Closed` (`NotConnected`).
#[test]
fn writes_after_shutdown_or_close_fail_with_the_documented_kind() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(&lt.handle, addr, TcpOptions::new().event_cb(event_cb))
        .expect("tcp_connect_addr returns at once");
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));

    socket.write(b"last words").expect("write while open");
    socket.shutdown_write().expect("shutdown_write");
    let err = socket
        .write(b"too late")
        .expect_err("write after shutdown_write");
    assert!(matches!(err, Error::WriteClosed), "{err:?}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::BrokenPipe);
    // The bytes written before the shutdown arrive, then EOF; nothing after.
    assert_eq!(common::read_to_end(&mut peer), b"last words");

    socket.close();
    let err = socket.write(b"after close").expect_err("write after close");
    assert!(matches!(err, Error::Closed), "{err:?}");
    let io_err = io::Error::from(err);
    assert_eq!(io_err.kind(), io::ErrorKind::NotConnected);
    assert!(matches!(Error::from(io_err), Error::Closed));
    let err = socket
        .write_bytes(Bytes::from_static(b"after close"))
        .expect_err("write_bytes after close");
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);
}

/// Rule 8: a write that would exceed `max_buffer_size` fails whole with
/// `LimitExceeded` (`InvalidData`), queues nothing, and the connection goes on.
#[test]
fn over_limit_write_fails_whole_and_the_connection_goes_on() {
    const LIMIT: usize = 64 * 1024;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new().max_buffer_size(LIMIT).event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));

    let too_big = vec![b'x'; LIMIT + 1];
    let err = socket.write(&too_big).expect_err("over-limit write");
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: Limit::OutputBuffer,
                limit: LIMIT
            }
        ),
        "{err:?}"
    );
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
    assert_eq!(
        socket.output_buffer_len(),
        0,
        "a refused write queued bytes"
    );

    // The connection is unharmed: the next write arrives, and only it.
    socket.write(b"still here").expect("write after refusal");
    socket.close();
    assert_eq!(common::read_to_end(&mut peer), b"still here");
    drop(peer);
    let seen = events_until_closed(&events);
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Error(_))),
        "the refused write failed the connection: {seen:?}"
    );
}
