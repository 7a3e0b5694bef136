//! Contract rule 9 (timeouts): read and write idle timeouts count only while
//! their direction waits, are reset by progress, are reported as
//! `Event::Timeout` without closing the connection, and a connect timeout
//! bounds connection setup.
//!
//! The only sleeps here are a peer pacing its sends to make time pass; the
//! absence of an event is checked with a bounded `recv_timeout`.

mod common;

use common::{data_channel, recv_bytes};

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use evstream::{tcp_connect_addr, Direction, Error, Event, Socket, TcpOptions, TimeoutKind};

use common::{LoopThread, WAIT};

/// How long "no event" is watched for: several times every timeout used here.
const QUIET: Duration = Duration::from_secs(1);

/// An evstream client connected to a std peer, with its events on a channel.
struct Conn {
    socket: Socket,
    peer: TcpStream,
    events: Receiver<Event>,
}

/// Connects with `options` plus an event channel, accepts the peer and waits
/// for `Connected`.
fn connect(lt: &LoopThread, options: TcpOptions) -> Conn {
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(&lt.handle, addr, options.event_cb(event_cb))
        .expect("tcp_connect_addr returns at once");
    let peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    Conn {
        socket,
        peer,
        events,
    }
}

/// Waits for the next timeout, error or close and asserts it is
/// `Timeout(direction)`.
fn expect_timeout(events: &Receiver<Event>, direction: Direction) {
    let event = common::wait_event(events, "Timeout", |e| {
        matches!(e, Event::Timeout(_) | Event::Error(_) | Event::Closed)
    });
    assert!(
        matches!(event, Event::Timeout(d) if d == direction),
        "expected Timeout({direction:?}), got {event:?}"
    );
}

/// Asserts that no event at all arrives for `period`.
fn expect_quiet(events: &Receiver<Event>, period: Duration, why: &str) {
    match events.recv_timeout(period) {
        Err(RecvTimeoutError::Timeout) => {}
        Ok(event) => panic!("{why}: got {event:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{why}: event channel closed"),
    }
}

/// Rule 9: a read timeout fires while the loop waits on a silent peer; the
/// connection stays open, reports the timeout once, and re-arms on progress.
#[test]
fn read_timeout_fires_while_waiting_and_connection_stays_open() {
    let lt = LoopThread::start();
    let (read_cb, data) = data_channel();
    let mut c = connect(
        &lt,
        TcpOptions::new()
            .read_timeout(Duration::from_millis(300))
            .read_cb(read_cb),
    );

    expect_timeout(&c.events, Direction::Read);
    assert!(c.socket.is_connected(), "a timeout closed the connection");
    // Reported once: no further timeout without progress.
    expect_quiet(&c.events, QUIET, "second event without progress");

    // The connection still works and the timeout is re-armed by progress.
    common::write_all(&mut c.peer, b"after the timeout");
    assert_eq!(recv_bytes(&data, 17), b"after the timeout");
    expect_timeout(&c.events, Direction::Read);
    assert!(c.socket.is_connected());
}

/// Rule 9: every received byte resets the read timeout: a peer sending a
/// byte every ~30 ms for ~1.2 s never lets a 400 ms timeout expire.
#[test]
fn read_timeout_is_reset_by_progress() {
    const BYTES: usize = 40;
    let lt = LoopThread::start();
    let (read_cb, data) = data_channel();
    let c = connect(
        &lt,
        TcpOptions::new()
            .read_timeout(Duration::from_millis(400))
            .read_cb(read_cb),
    );

    let mut peer = c.peer;
    let (done_tx, done_rx) = common::channel();
    let pacer = thread::spawn(move || {
        for i in 0..BYTES {
            common::write_all(&mut peer, &[i as u8]);
            // Passage of time, not synchronisation: the peer paces its bytes.
            thread::sleep(Duration::from_millis(30));
        }
        let _ = done_tx.send(());
        peer
    });

    let deadline = Instant::now() + WAIT;
    loop {
        match c.events.recv_timeout(Duration::from_millis(50)) {
            Ok(event) => panic!("event while the peer was sending: {event:?}"),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => panic!("event channel closed"),
        }
        if done_rx.try_recv().is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the peer did not finish");
    }
    let _peer = pacer.join().expect("pacer thread");
    let expected: Vec<u8> = (0..BYTES as u8).collect();
    assert_eq!(recv_bytes(&data, BYTES), expected);

    // Once the peer stops, the timeout expires.
    expect_timeout(&c.events, Direction::Read);
    assert!(c.socket.is_connected());
}

/// Rule 9: the read timeout does not count while reading is paused, and
/// counts again after `resume_reading`.
#[test]
fn read_timeout_does_not_count_while_paused() {
    let lt = LoopThread::start();
    let c = connect(
        &lt,
        TcpOptions::new()
            .read_timeout(Duration::from_millis(200))
            // Paused on the loop thread as the connection opens, before the
            // read timeout could start counting.
            .connect_cb(|socket| socket.pause_reading()),
    );
    assert!(c.socket.is_reading_paused());

    expect_quiet(&c.events, QUIET, "event while reading was paused");

    c.socket.resume_reading();
    expect_timeout(&c.events, Direction::Read);
    assert!(c.socket.is_connected());
}

/// Rule 9: a write timeout fires when queued output makes no progress (the
/// peer does not read); the connection stays open and delivers everything.
#[test]
fn write_timeout_fires_while_output_is_stuck() {
    // Several times what the kernel buffers for a peer that does not read.
    const LEN: usize = 16 * 1024 * 1024;
    let lt = LoopThread::start();
    let mut c = connect(
        &lt,
        TcpOptions::new().write_timeout(Duration::from_millis(300)),
    );

    let sent = Bytes::from(common::random_data(21, LEN));
    c.socket.write_bytes(sent.clone()).expect("queue 16 MiB");
    expect_timeout(&c.events, Direction::Write);
    assert!(
        c.socket.output_buffer_len() > 0,
        "write timeout with an empty output buffer"
    );
    assert!(c.socket.is_connected(), "a timeout closed the connection");

    // The peer starts reading: everything arrives, in order.
    let mut got = vec![0u8; LEN];
    c.peer.read_exact(&mut got).expect("peer reads everything");
    assert!(got[..] == sent[..], "output corrupted after the timeout");
    assert!(c.socket.is_connected());
}

/// Rule 9: the write timeout does not count while the output is empty.
#[test]
fn no_write_timeout_while_output_is_empty() {
    let lt = LoopThread::start();
    let mut c = connect(
        &lt,
        TcpOptions::new().write_timeout(Duration::from_millis(300)),
    );
    // A write the kernel takes at once leaves the output empty again.
    c.socket.write(b"small").expect("write");
    let mut got = [0u8; 5];
    c.peer.read_exact(&mut got).expect("peer read");
    assert_eq!(&got, b"small");

    expect_quiet(&c.events, QUIET, "event on an idle connection");
    assert_eq!(c.socket.output_buffer_len(), 0);
}

/// Rule 9: `set_timeouts` enables a read timeout on an open connection, and
/// `set_timeouts(None, None)` disables it again.
#[test]
fn set_timeouts_enables_and_disables_at_runtime() {
    let lt = LoopThread::start();
    let (read_cb, data) = data_channel();
    let mut c = connect(&lt, TcpOptions::new().read_cb(read_cb));

    // No timeout configured: nothing happens.
    expect_quiet(
        &c.events,
        Duration::from_millis(500),
        "event without timeouts",
    );

    c.socket
        .set_timeouts(Some(Duration::from_millis(300)), None);
    expect_timeout(&c.events, Direction::Read);

    // Disabled: progress would re-arm an enabled timeout, but none fires.
    c.socket.set_timeouts(None, None);
    common::write_all(&mut c.peer, b"x");
    assert_eq!(recv_bytes(&data, 1), b"x");
    expect_quiet(&c.events, QUIET, "event after set_timeouts(None, None)");
    assert!(c.socket.is_connected());
}

/// A listener whose accept queue is full, so the kernel drops further SYNs
/// and a connect to it hangs (until a retransmitted SYN finds room).
struct StalledListener {
    addr: SocketAddr,
    _listener: socket2::Socket,
    _fillers: Vec<TcpStream>,
}

fn stalled_listener() -> StalledListener {
    use socket2::{Domain, Protocol, Type};
    let listener =
        socket2::Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    listener.bind(&any.into()).expect("bind");
    listener.listen(0).expect("listen");
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..64 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(stream) => fillers.push(stream),
            Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                // The attempt that hung is dropped, so no SYN of ours is
                // left to take a freed slot later.
                return StalledListener {
                    addr,
                    _listener: listener,
                    _fillers: fillers,
                };
            }
            Err(err) => panic!("filling the accept queue: {err}"),
        }
    }
    panic!("the accept queue of a listen(0) socket never filled");
}

/// Rule 9: a connect that cannot complete fails with
/// `Error(TimedOut(Connect))` (io kind `TimedOut`) after the connect timeout.
#[test]
fn connect_timeout_bounds_a_hanging_connect() {
    let lt = LoopThread::start();
    let stalled = stalled_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        stalled.addr,
        TcpOptions::new()
            .connect_timeout(Duration::from_millis(500))
            .event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");

    let event = common::wait_event(&events, "Error or Closed", |e| {
        matches!(e, Event::Error(_) | Event::Closed | Event::Connected)
    });
    let err = match event {
        Event::Error(err) => err,
        other => panic!("expected Error(TimedOut(Connect)), got {other:?}"),
    };
    assert!(
        matches!(err, Error::TimedOut(TimeoutKind::Connect)),
        "expected TimedOut(Connect), got {err:?}"
    );
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::TimedOut);
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
    assert!(socket.is_closed());
    assert!(!socket.is_connected());
    assert_eq!(socket.peer_addr(), None);
    drop(stalled);
}
