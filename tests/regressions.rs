//! Regression tests for defects found in review (and fixed in "Fix nine
//! defects found in review"). Each test names the contract rule it defends
//! and fails on the code before the fix.

mod common;

use evstream::prelude::*;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{accept, channel, event_channel, recv, std_connect, std_listener, LoopThread, WAIT};
use evstream::codec::{Endian, Framed, LengthDelimitedCodec};
use evstream::{
    tcp_connect, AsyncIoStream, Direction, Error, Event, EventLoop, ServerOptions, Socket,
    TcpOptions, TcpServer, TimeoutKind,
};

/// A sender that `Send` callbacks can share (a clone per call).
fn shared<T: Send + 'static>(tx: Sender<T>) -> impl Fn(T) + Send + Sync + Clone + 'static {
    let tx = Arc::new(Mutex::new(tx));
    move |value| {
        let _ = tx.lock().unwrap().send(value);
    }
}

/// The flooding peer's byte at `offset`.
fn pattern(offset: u64) -> u8 {
    (offset % 251) as u8
}

/// A port nothing listens on (bound, then released).
fn unused_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A listener with backlog 0 whose accept queue is full, so a new connect to
/// it stays in SYN_SENT (its SYNs are dropped). Keep all three alive.
fn hanging_listener() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Type};
    let listener = socket2::Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    listener
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    let mut held = Vec::new();
    // A loopback handshake completes inside connect(); one that does not
    // within 300 ms had its SYN dropped: the queue is full.
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => return (listener, held, addr),
        }
    }
    panic!("the accept queue of a backlog-0 listener never filled");
}

/// What the loop saw, in the order it saw it.
#[derive(Debug)]
enum Seen {
    A(Event),
    B(Event),
    Checkpoint,
}

/// Rule 9 (a connect timeout bounds setup — its own connection's only): a
/// connect timer left by a closed connection must not fail a new connection
/// that reuses its slab key.
#[test]
fn stale_connect_timer_does_not_fail_a_connection_reusing_the_key() {
    let (_listener, _held, hang) = hanging_listener();
    let refused = unused_port();
    let lt = LoopThread::start();
    let (seen_tx, seen_rx) = channel();
    let seen = shared(seen_tx);
    let (b_tx, b_rx) = channel::<Socket>();
    let b_tx = shared(b_tx);
    let mut started_b = false;
    // A: refused at once, long before its 300 ms connect timer is due. In
    // its Closed callback B starts (and takes A's freed key), hanging in
    // connect with a 60 s timeout; a checkpoint timer is set 1 s later.
    // Timers fire in deadline order, so A's stale timer has fired by the
    // checkpoint.
    tcp_connect(
        &lt.handle,
        "127.0.0.1",
        refused,
        TcpOptions::new()
            .connect_timeout(Duration::from_millis(300))
            .event_cb(common::stateful(move |s: &Socket, event: Event| {
                let closed = matches!(event, Event::Closed);
                seen(Seen::A(event));
                if closed && !started_b {
                    started_b = true;
                    let seen_b = seen.clone();
                    let b = tcp_connect(
                        s.loop_handle(),
                        "127.0.0.1",
                        hang.port(),
                        TcpOptions::new()
                            .connect_timeout(Duration::from_secs(60))
                            .event_cb(move |_, event| seen_b(Seen::B(event))),
                    )
                    .unwrap();
                    b_tx(b);
                    let seen_checkpoint = seen.clone();
                    s.loop_handle().delay(Duration::from_secs(1), move || {
                        seen_checkpoint(Seen::Checkpoint)
                    });
                }
            })),
    )
    .unwrap();
    let b = recv(&b_rx, "connection B");
    let mut log = Vec::new();
    loop {
        match recv(&seen_rx, "checkpoint") {
            Seen::Checkpoint => break,
            other => log.push(other),
        }
    }
    assert!(
        log.iter()
            .any(|s| matches!(s, Seen::A(Event::Error(Error::Refused)))),
        "A was not refused: {log:?}"
    );
    assert!(
        !log.iter().any(|s| matches!(s, Seen::B(Event::Error(_)))),
        "B (60 s connect timeout) failed within 1 s, after A's 300 ms \
         connect timer was due: {log:?}"
    );
    assert!(
        !b.is_connected() && !b.is_closed(),
        "B is not hanging in connect, so the test proves nothing: {log:?}"
    );
    assert!(
        !log.iter().any(|s| matches!(s, Seen::B(_))),
        "B, still connecting, got events: {log:?}"
    );
    b.abort();
    loop {
        if let Seen::B(Event::Closed) = recv(&seen_rx, "B closed") {
            break;
        }
    }
}

/// Rule 9 (write timeout counts while output waits): queueing more output
/// to a peer that never reads does not restart the write timeout.
#[test]
fn write_timeout_fires_while_the_application_keeps_queueing() {
    let (listener, addr) = std_listener();
    let lt = LoopThread::start();
    let (cb, rx) = event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        addr.port(),
        TcpOptions::new()
            .write_timeout(Duration::from_millis(300))
            .event_cb(cb),
    )
    .unwrap();
    let _peer = accept(&listener); // never reads
    common::wait_event(&rx, "connected", |e| matches!(e, Event::Connected));
    // Fill the kernel buffers until output waits in the connection.
    let chunk = vec![7u8; 256 * 1024];
    let mut stuck = false;
    for _ in 0..256 {
        socket.write(&chunk).unwrap();
        if socket.output_buffer_len() > 0 {
            stuck = true;
            break;
        }
    }
    assert!(stuck, "64 MiB went to a peer that never reads");
    // Keep queueing a little every 20 ms (well inside the 300 ms timeout).
    let deadline = Instant::now() + WAIT;
    let direction = loop {
        socket.write(b"more").unwrap();
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(Event::Timeout(direction)) => break direction,
            Ok(other) => panic!("unexpected event {other:?} while waiting for Timeout(Write)"),
            Err(RecvTimeoutError::Timeout) => assert!(
                Instant::now() < deadline,
                "no Timeout(Write) within {WAIT:?} while the output was stuck and growing"
            ),
            Err(RecvTimeoutError::Disconnected) => panic!("event channel closed"),
        }
    };
    assert_eq!(direction, Direction::Write);
    assert!(socket.output_buffer_len() > 0);
    socket.abort();
}

/// Rule 4 (backpressure must not stall framing): `on_frame` delivers a frame
/// longer than the read high watermark.
#[test]
fn on_frame_delivers_a_frame_longer_than_the_read_high_watermark() {
    let lt = LoopThread::start();
    let (tx, rx) = channel();
    let send = shared(tx);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().read_watermarks(0, 64 * 1024).on_frame(
            LengthDelimitedCodec::new(4, Endian::Big, 8 << 20).unwrap(),
            move |_, frame| send(frame.map(|f| f.to_vec())),
        )),
    )
    .unwrap();
    let payload = common::random_data(3, 256 * 1024);
    let mut client = std_connect(server.local_addr());
    let expected = payload.clone();
    let writer = thread::spawn(move || {
        client
            .write_all(&(payload.len() as u32).to_be_bytes())
            .unwrap();
        client.write_all(&payload).unwrap();
        client
    });
    let frame =
        recv(&rx, "256 KiB frame (read high watermark 64 KiB)").expect("a well-formed frame");
    assert!(
        frame == expected,
        "the frame's bytes differ from what was sent"
    );
    drop(writer.join().unwrap());
    server.close();
}

/// Rule 11 (the loop serves every source): a connection that always has
/// more to read (a peer flooding a reader that checks every byte) does not
/// starve timers on the same loop.
#[test]
fn a_flooding_connection_does_not_starve_timers() {
    // The first 64 MiB are only counted: reading them fast lets the kernel
    // grow the socket buffers to megabytes. After that every byte is
    // checked, which keeps the reader behind the peer, so each read pass
    // ends at the loop's read budget with more waiting in the kernel.
    const WARM_UP: u64 = 64 << 20;
    let lt = LoopThread::start();
    let (flood_tx, flood_rx) = channel();
    let mut flood_tx = Some(flood_tx);
    let mut received = 0u64;
    let mut corrupt = false;
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().read_cb(common::stateful(
            move |_: &Socket, bytes: bytes::Bytes| {
                if received < WARM_UP {
                    received += bytes.len() as u64;
                    return;
                }
                for &byte in bytes.iter() {
                    corrupt |= byte != pattern(received);
                    received += 1;
                }
                if received >= WARM_UP + (4 << 20) {
                    if let Some(tx) = flood_tx.take() {
                        let _ = tx.send(corrupt);
                    }
                }
            },
        ))),
    )
    .unwrap();
    let addr = server.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let peer_done = Arc::new(AtomicBool::new(false));
    let flood = {
        let (stop, peer_done) = (stop.clone(), peer_done.clone());
        thread::spawn(move || {
            let mut stream = std_connect(addr);
            // A multiple of the pattern's period, so chunks join up.
            let chunk: Vec<u8> = (0..251 * 1024).map(pattern).collect();
            let deadline = Instant::now() + 2 * WAIT;
            let outcome = loop {
                if stop.load(Ordering::SeqCst) {
                    break Ok(());
                }
                if Instant::now() > deadline {
                    break Err("the flood ran out of time".to_string());
                }
                if let Err(err) = stream.write_all(&chunk) {
                    break Err(format!("a flood write failed: {err}"));
                }
            };
            peer_done.store(true, Ordering::SeqCst);
            outcome
        })
    };
    let corrupt = recv(&flood_rx, "68 MiB of the flood");
    assert!(!corrupt, "the flood arrived corrupted");
    let (fired_tx, fired_rx) = channel();
    {
        let peer_done = peer_done.clone();
        lt.handle.delay(Duration::from_millis(50), move || {
            let _ = fired_tx.send(peer_done.load(Ordering::SeqCst));
        });
    }
    let fired = fired_rx.recv_timeout(WAIT);
    // The peer is stopped only now, after the timer fired (or did not).
    stop.store(true, Ordering::SeqCst);
    let outcome = flood.join().unwrap();
    server.close();
    let peer_was_done = fired.expect("a 50 ms timer did not fire within WAIT during the flood");
    assert!(!peer_was_done, "the flood had ended before the timer fired");
    outcome.expect("the flood ended only when told to stop");
}

/// Rule 9 (progress resets a timeout): a read timeout nobody saw through a
/// stream is cleared by progress, so a read after new bytes gives the bytes
/// and then `WouldBlock`, not a stale `TimedOut`.
#[test]
fn an_unseen_read_timeout_is_cleared_by_progress() {
    let (listener, addr) = std_listener();
    let lt = LoopThread::start();
    let (cb, rx) = event_channel();
    let (notify_tx, notify_rx) = channel();
    let notify = shared(notify_tx);
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        addr.port(),
        TcpOptions::new()
            .dont_drain(true)
            .read_timeout(Duration::from_secs(1))
            .notify_cb(move |s| notify(s.input_buffer_len()))
            .event_cb(cb),
    )
    .unwrap();
    let mut peer = accept(&listener);
    common::wait_event(&rx, "read timeout", |e| {
        matches!(e, Event::Timeout(Direction::Read))
    });
    common::write_all(&mut peer, b"hello");
    while recv(&notify_rx, "bytes in the input buffer") < 5 {}
    // The next timeout is due 1 s after the bytes came: these reads are
    // well before it.
    let mut stream = AsyncIoStream::new(socket.clone());
    let mut buf = [0u8; 16];
    let first = Read::read(&mut stream, &mut buf);
    assert!(
        matches!(first, Ok(5)),
        "reading 5 buffered bytes gave {first:?}"
    );
    assert_eq!(&buf[..5], b"hello");
    let next = Read::read(&mut stream, &mut buf);
    assert!(
        matches!(&next, Err(e) if e.kind() == ErrorKind::WouldBlock),
        "after progress, an empty open connection read gave {next:?}"
    );
    socket.abort();
}

/// Rule 9 (timeouts set at runtime): shortening a read timeout takes effect
/// at once, not when the timer armed for the old, longer one pops.
#[test]
fn a_shortened_read_timeout_takes_effect_promptly() {
    let (listener, addr) = std_listener();
    let lt = LoopThread::start();
    let (cb, rx) = event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        addr.port(),
        TcpOptions::new()
            .read_timeout(Duration::from_secs(120))
            .event_cb(cb),
    )
    .unwrap();
    let _peer = accept(&listener); // sends nothing
    common::wait_event(&rx, "connected", |e| matches!(e, Event::Connected));
    let set = Instant::now();
    socket.set_timeouts(Some(Duration::from_millis(200)), None);
    // 25 times the new timeout, a small fraction of the old one.
    let bound = Duration::from_secs(5);
    let got = rx.recv_timeout(bound);
    assert!(
        matches!(got, Ok(Event::Timeout(Direction::Read))),
        "no read timeout within {bound:?} of shortening it from 120 s to 200 ms \
         (after {:?}): {got:?}",
        set.elapsed()
    );
    socket.abort();
}

/// Rule 10 (no lock held while user code runs): `read_until_match`'s
/// matcher may look at the socket without deadlocking.
#[test]
fn read_until_match_runs_the_matcher_without_the_input_lock() {
    let (listener, addr) = std_listener();
    let lt = LoopThread::start();
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        addr.port(),
        TcpOptions::new().dont_drain(true),
    )
    .unwrap();
    let mut peer = accept(&listener);
    common::write_all(&mut peer, b"abc;def");
    let (tx, rx) = channel();
    let s2 = socket.clone();
    // On its own thread: a deadlock there fails the bounded wait below.
    thread::spawn(move || {
        let mut stream = AsyncIoStream::new(s2.clone());
        let result = futures_lite::future::block_on(stream.read_until_match(100, |b| {
            // User code touching the socket.
            let _ = s2.input_buffer_len();
            let _ = s2.peek(&mut [0u8; 4]);
            b.iter().position(|&c| c == b';').map(|i| i + 1)
        }));
        let _ = tx.send(result.map(|frame| frame.to_vec()));
    });
    let got = rx
        .recv_timeout(WAIT)
        .expect("read_until_match deadlocked: the matcher ran under the input lock");
    assert_eq!(got.unwrap(), b"abc;");
    socket.abort();
}

/// Rule 4 (backpressure must not stall framing): `Framed` delivers a frame
/// longer than the default 1 MiB read high watermark.
#[test]
fn framed_delivers_a_frame_longer_than_the_default_read_high_watermark() {
    use futures_lite::StreamExt;
    let (listener, addr) = std_listener();
    let lt = LoopThread::start();
    let handle = lt.handle.clone();
    let (tx, rx) = channel();
    thread::spawn(move || {
        let stream = futures_lite::future::block_on(AsyncIoStream::connect_on(
            &handle,
            ("127.0.0.1", addr.port()),
            TcpOptions::new(),
        ))
        .expect("connect");
        let mut framed = Framed::new(
            stream,
            LengthDelimitedCodec::new(4, Endian::Big, 8 << 20).unwrap(),
        );
        let got = futures_lite::future::block_on(framed.next());
        let _ = tx.send(got.map(|r| r.map(|f| f.to_vec()).map_err(|e| e.to_string())));
    });
    let mut peer = accept(&listener);
    let payload = common::random_data(8, 2 << 20);
    let expected = payload.clone();
    // The writer may block while the reader is behind: its own thread.
    let writer = thread::spawn(move || {
        let _ = peer.write_all(&(payload.len() as u32).to_be_bytes());
        let _ = peer.write_all(&payload);
        peer
    });
    let frame = recv(&rx, "2 MiB frame through Framed")
        .expect("the stream ended")
        .expect("a well-formed frame");
    assert!(
        frame == expected,
        "the frame's bytes differ from what was sent"
    );
    drop(writer.join().unwrap());
}

/// Rule 10/11 (cross-thread commands wake the loop): wake-ups from several
/// threads at once are never lost.
#[test]
fn cross_thread_wakeups_are_never_lost() {
    let lt = LoopThread::start();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let handle = lt.handle.clone();
            thread::spawn(move || {
                for i in 0..20_000u32 {
                    let (tx, rx) = channel();
                    handle.delay(Duration::ZERO, move || {
                        let _ = tx.send(());
                    });
                    if rx.recv_timeout(WAIT).is_err() {
                        return Err(format!("thread {t}: round trip {i} never ran"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap().unwrap();
    }
}

/// Rules 7 and 11 (a connection nobody can reach is closed; `run` returns).
///
/// Changed deliberately with accept mode (issue #12): a server with no
/// callbacks used to close what it accepted, since nothing could reach
/// those connections. Now it queues them for `accept()` (bounded by the
/// backlog), so they are reachable — and the rule still holds where they
/// become unreachable: closing the server (or dropping its last handle)
/// closes every connection nobody accepted, and `run` returns.
#[test]
fn a_server_without_callbacks_closes_unaccepted_connections_when_it_closes() {
    let (tx, rx) = channel();
    let (done_tx, done_rx) = channel();
    thread::spawn(move || {
        let mut ev = EventLoop::new().unwrap();
        let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new()).unwrap();
        tx.send(server).unwrap();
        let _ = done_tx.send(ev.run().map_err(|e| e.to_string()));
    });
    let server = recv(&rx, "server");
    let mut client = std_connect(server.local_addr());
    common::wait_until("the connection queued for accept()", || {
        server.queued() == 1
    });
    server.close();
    let got = common::read_to_end(&mut client);
    assert!(got.is_empty(), "the server sent {} bytes", got.len());
    drop(client);
    recv(&done_rx, "run() returning after the server closed").expect("run() failed");
}

/// Rule 7 (a graceful close ends): a close to a peer that never reads is
/// aborted once the output made no progress for `close_linger`.
#[test]
fn a_graceful_close_to_a_peer_that_never_reads_ends_after_close_linger() {
    let (listener, addr) = std_listener();
    let lt = LoopThread::start();
    let (cb, rx) = event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        addr.port(),
        TcpOptions::new()
            .close_linger(Duration::from_millis(500))
            .event_cb(cb),
    )
    .unwrap();
    let peer = accept(&listener); // never reads
    common::wait_event(&rx, "connected", |e| matches!(e, Event::Connected));
    socket
        .write_bytes(Bytes::from(vec![5u8; 64 << 20]))
        .unwrap();
    assert!(
        socket.output_buffer_len() > 0,
        "64 MiB went to a peer that never reads"
    );
    socket.close();
    common::wait_event(&rx, "closed", |e| matches!(e, Event::Closed));
    assert!(socket.is_closed());
    drop(peer);
}

/// Rule 8 (errors a user can match): the kernel's `ETIMEDOUT` is
/// `Error::TimedOut(TimeoutKind::Network)`, and converts back to `TimedOut`.
#[test]
fn kernel_timed_out_is_a_network_timeout() {
    let err = Error::from(std::io::Error::from(ErrorKind::TimedOut));
    assert!(
        matches!(err, Error::TimedOut(TimeoutKind::Network)),
        "ETIMEDOUT became {err:?}"
    );
    assert_eq!(std::io::Error::from(err).kind(), ErrorKind::TimedOut);
}

/// Review of the lazy per-turn clock: the poll timeout was computed from the
/// clock as read before the turn's callbacks ran, so a timer that fell due
/// during a slow callback was still waited for, up to its whole delay. Here
/// a 1 s timer falls due during a 1.5 s callback (the sleep is simulated
/// work on the loop thread, not synchronisation) and must fire as soon as
/// the callback returns; with the bug it fired about 1 s later.
#[test]
fn timer_due_during_a_slow_callback_fires_right_after_it() {
    let lt = LoopThread::start();
    let (tx, rx) = channel();
    let handle = lt.handle.clone();
    // Scheduled from the loop thread: a delay posted from another thread
    // signals the loop's wake-up, which would end the wait by accident.
    lt.handle.delay(Duration::ZERO, move || {
        let end = tx.clone();
        handle.delay(Duration::ZERO, move || {
            thread::sleep(Duration::from_millis(1500));
            let _ = end.send(("slow callback ended", Instant::now()));
        });
        handle.delay(Duration::from_secs(1), move || {
            let _ = tx.send(("timer fired", Instant::now()));
        });
    });
    let (first, slow_end) = recv(&rx, "the slow callback");
    let (second, fired) = recv(&rx, "the 1 s timer");
    assert_eq!((first, second), ("slow callback ended", "timer fired"));
    let late = fired.saturating_duration_since(slow_end);
    assert!(
        late < Duration::from_millis(500),
        "a timer overdue when the slow callback ended fired {late:?} after it"
    );
}

/// The same for a connection's read timeout (rule 9): due during a slow
/// callback, it is reported as soon as the callback returns.
#[test]
fn read_timeout_due_during_a_slow_callback_is_not_delayed() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (forward, events) = event_channel();
    let (tx, rx) = channel();
    let handle = lt.handle.clone();
    let _socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_timeout(Duration::from_secs(1))
            .event_cb(move |socket, event| {
                if matches!(event, Event::Connected) {
                    let tx = tx.clone();
                    handle.delay(Duration::ZERO, move || {
                        thread::sleep(Duration::from_millis(1500));
                        let _ = tx.send(Instant::now());
                    });
                }
                forward(socket, event);
            }),
    )
    .expect("connect");
    let _peer = accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let slow_end = recv(&rx, "the slow callback");
    common::wait_event(&events, "read timeout", |e| {
        matches!(e, Event::Timeout(Direction::Read))
    });
    let late = Instant::now().saturating_duration_since(slow_end);
    assert!(
        late < Duration::from_millis(500),
        "a read timeout overdue when the slow callback ended came {late:?} after it"
    );
}
