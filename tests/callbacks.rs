//! Callbacks (contract rules 1, 5 and 10): drain-mode `read_cb`, dont-drain
//! `notify_cb` with bytes left in the buffer, the read low watermark,
//! `write_cb`, `connect_cb`, per-connection data, panics in callbacks, and
//! writes from several threads onto one connection.

mod common;

use std::collections::HashSet;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use evstream::{
    tcp_connect_addr, Error, Event, EventLoop, LoopHandle, ServerOptions, Socket, TcpOptions,
    TcpServer,
};

use common::{LoopThread, WAIT};

/// Asserts two byte strings are equal without printing megabytes.
fn assert_same_bytes(got: &[u8], expected: &[u8], what: &str) {
    if got != expected {
        let at = got
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        panic!(
            "{what}: got {} bytes, expected {}; first difference at offset {at}",
            got.len(),
            expected.len()
        );
    }
}

/// Waits, bounded by [`WAIT`], until `cond` holds. Used only to observe
/// state the loop thread changes without a callback (bytes appended below
/// the read low watermark); it polls that state, it never sleeps.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::yield_now();
    }
}

/// Reads everything buffered on `socket` until `WouldBlock`; `Ok(0)` while
/// the connection is open would be a false EOF.
fn read_buffered(socket: &Socket) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 700];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => panic!("read returned Ok(0) while the connection is open"),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return out,
            Err(err) => panic!("read failed: {err}"),
        }
    }
}

/// Rule 1 (drain mode): `read_cb` receives exactly the bytes the peer sent,
/// in order, byte for byte.
#[test]
fn drain_mode_read_cb_receives_every_byte_in_order() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let data = common::random_data(1, 8 << 20);
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_cb(move |_, bytes| sink.lock().unwrap().extend_from_slice(&bytes))
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    let sent = data.clone();
    let writer = thread::spawn(move || {
        common::write_all(&mut peer, &sent);
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    common::wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
    let _peer = writer.join().unwrap();
    assert_same_bytes(&got.lock().unwrap(), &data, "bytes given to read_cb");
    socket.close();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}

/// Rule 1: bytes the peer sends before the loop has seen the connect
/// complete (so readiness to read comes together with readiness to write)
/// are read and delivered, not left in the kernel.
#[test]
fn bytes_sent_as_the_connection_completes_are_delivered() {
    let (listener, addr) = common::std_listener();
    let (held_tx, held) = common::channel::<()>();
    let (release_tx, release) = common::channel::<()>();
    let (data_tx, data_rx) = common::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut ev = EventLoop::new().unwrap();
        let handle = ev.handle();
        tcp_connect_addr(
            &handle,
            addr,
            TcpOptions::new()
                .read_cb(move |_, data| {
                    let _ = data_tx.send(data.to_vec());
                })
                .event_cb(|s, event| {
                    if matches!(event, Event::Eof) {
                        s.close();
                    }
                }),
        )
        .unwrap();
        // Posted after the connect: the loop starts connecting, then runs
        // this and is held here until the peer's bytes have arrived.
        handle.delay(Duration::ZERO, move || {
            let _ = held_tx.send(());
            let _ = release.recv_timeout(WAIT);
        });
        let _ = ev.run();
    });
    common::recv(&held, "the loop to be held after starting to connect");
    let mut peer = common::accept(&listener);
    common::write_all(&mut peer, b"early bytes");
    release_tx.send(()).unwrap();
    let mut got = Vec::new();
    while got.len() < b"early bytes".len() {
        got.extend(common::recv(
            &data_rx,
            "the bytes sent before the loop saw the connect",
        ));
    }
    assert_eq!(got, b"early bytes");
    peer.shutdown(Shutdown::Write).unwrap();
    assert!(common::read_to_end(&mut peer).is_empty());
}

/// Rule 1 (drain mode): a server's shared `read_cb` never hands one
/// connection's bytes to another connection.
#[test]
fn drain_mode_keeps_connections_apart() {
    const CLIENTS: u8 = 4;
    const LEN: usize = 1 << 20;
    let lt = LoopThread::start();
    let (done_tx, done_rx) = common::channel::<Vec<u8>>();
    type Collected = Mutex<Vec<u8>>;
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .connect_cb(|s| s.set_data(Collected::default()))
                .read_cb(|s, bytes| {
                    s.data::<Collected>()
                        .expect("data set in connect_cb")
                        .lock()
                        .unwrap()
                        .extend_from_slice(&bytes)
                })
                .event_cb(move |s, event| {
                    if matches!(event, Event::Eof) {
                        let data = s.data::<Collected>().expect("data set in connect_cb");
                        let _ = done_tx.send(std::mem::take(&mut *data.lock().unwrap()));
                        s.close();
                    }
                }),
        ),
    )
    .unwrap();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            thread::spawn(move || {
                let mut stream = common::std_connect(addr);
                let mut message = vec![id];
                message.extend_from_slice(&common::random_data(100 + u64::from(id), LEN));
                common::write_all(&mut stream, &message);
                stream.shutdown(Shutdown::Write).unwrap();
                common::read_to_end(&mut stream)
            })
        })
        .collect();
    let mut seen = HashSet::new();
    for _ in 0..CLIENTS {
        let got = common::recv(&done_rx, "one connection's bytes");
        assert!(!got.is_empty(), "a connection delivered nothing");
        let id = got[0];
        assert!(id < CLIENTS && seen.insert(id), "bad or repeated id {id}");
        let expected = common::random_data(100 + u64::from(id), LEN);
        assert_same_bytes(&got[1..], &expected, &format!("bytes of client {id}"));
    }
    for client in clients {
        assert!(client.join().unwrap().is_empty());
    }
    server.close();
}

/// Rule 1 (dont-drain): `notify_cb` runs after bytes were appended; bytes it
/// leaves unread stay in the buffer (which grows), and another thread reads
/// all of them later, in order; "no data" is `WouldBlock`, not EOF.
#[test]
fn dont_drain_leaves_unread_bytes_for_another_thread() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (notify_tx, notified) = common::channel::<usize>();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .notify_cb(move |s| {
                let _ = notify_tx.send(s.input_buffer_len());
            })
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let first = common::random_data(2, 1000);
    let second = common::random_data(3, 3000);

    let wait_for_len = |len: usize| -> Vec<usize> {
        let mut seen = Vec::new();
        loop {
            let buffered = common::recv(&notified, "notify_cb");
            assert!(buffered > 0, "notify_cb ran with an empty buffer");
            if let Some(&last) = seen.last() {
                assert!(
                    buffered >= last,
                    "buffer shrank without a reader: {seen:?} then {buffered}"
                );
            }
            seen.push(buffered);
            if buffered >= len {
                assert_eq!(buffered, len, "more bytes buffered than sent");
                return seen;
            }
        }
    };
    common::write_all(&mut peer, &first);
    wait_for_len(first.len());
    common::write_all(&mut peer, &second);
    // The unread first message is still there: the buffer grows to both.
    wait_for_len(first.len() + second.len());
    assert_eq!(socket.input_buffer_len(), first.len() + second.len());

    let reader = {
        let socket = socket.clone();
        let loop_handle = lt.handle.clone();
        thread::spawn(move || {
            assert!(!loop_handle.is_loop_thread());
            read_buffered(&socket)
        })
    };
    let got = reader.join().unwrap();
    assert_same_bytes(&got, &[first, second].concat(), "bytes read later");
    assert_eq!(socket.input_buffer_len(), 0);
    let err = socket.read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock);

    peer.shutdown(Shutdown::Write).unwrap();
    common::wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
    assert_eq!(
        socket.read(&mut [0u8; 8]).unwrap(),
        0,
        "EOF after every byte"
    );
    socket.close();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}

/// Rule 1 (dont-drain): a `notify_cb` that reads only one byte per call,
/// while the peer keeps sending, still receives every byte, in order:
/// bytes it leaves stay buffered and nothing stalls on them.
#[test]
fn one_byte_per_notification_still_receives_every_byte() {
    const MESSAGES: u64 = 20;
    const LEN: usize = 50;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (byte_tx, bytes) = common::channel::<u8>();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .notify_cb(move |s| {
                let mut byte = [0u8; 1];
                match s.read(&mut byte) {
                    Ok(1) => {
                        let _ = byte_tx.send(byte[0]);
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    // The last notification comes at EOF, to show the end.
                    Ok(0) if s.is_eof() => {}
                    other => panic!("notify_cb read {other:?}"),
                }
            })
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let mut sent = Vec::new();
    let mut got = Vec::new();
    for m in 0..MESSAGES {
        let message = common::random_data(10 + m, LEN);
        common::write_all(&mut peer, &message);
        sent.extend_from_slice(&message);
        // Send the next message while most of this one is still buffered.
        got.push(common::recv(&bytes, "a byte taken by notify_cb"));
    }
    while got.len() < sent.len() {
        got.push(common::recv(
            &bytes,
            "the rest, one byte per notify_cb call",
        ));
    }
    assert_same_bytes(&got, &sent, "bytes notify_cb read");
    assert_eq!(socket.input_buffer_len(), 0);
    peer.shutdown(Shutdown::Write).unwrap();
    common::wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
    assert_eq!(socket.read(&mut [0u8; 8]).unwrap(), 0);
    socket.close();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}

/// Rules 1 and 4 (dont-drain): while the peer keeps sending far more than the
/// read high watermark, a `notify_cb` reading one byte per call and a
/// consumer thread reading the rest together get every byte, in order;
/// nothing stalls.
#[test]
fn one_byte_notify_and_concurrent_consumer_never_stall() {
    const LEN: usize = 1 << 20;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let log = Arc::new(Mutex::new(Vec::new()));
    let by_callback = Arc::new(AtomicUsize::new(0));
    let (wake_tx, wake_rx) = common::channel::<()>();
    let (cb_log, cb_count, cb_wake) = (log.clone(), by_callback.clone(), wake_tx.clone());
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_watermarks(0, 16 * 1024)
            .notify_cb(move |s| {
                let mut log = cb_log.lock().unwrap();
                let mut byte = [0u8; 1];
                // The consumer may have taken everything already.
                if let Ok(1) = s.read(&mut byte) {
                    log.push(byte[0]);
                    cb_count.fetch_add(1, Ordering::SeqCst);
                }
                drop(log);
                let _ = cb_wake.send(());
            })
            .event_cb(move |_, event| {
                if matches!(event, Event::Eof | Event::Error(_) | Event::Closed) {
                    let _ = wake_tx.send(());
                }
            }),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    let data = common::random_data(4, LEN);
    let sent = data.clone();
    let writer = thread::spawn(move || {
        common::write_all(&mut peer, &sent);
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    let consumer = {
        let socket = socket.clone();
        let log = log.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + WAIT;
            let mut buf = [0u8; 4096];
            loop {
                let finished = {
                    let mut log = log.lock().unwrap();
                    loop {
                        match socket.read(&mut buf) {
                            Ok(0) => break true,
                            Ok(n) => log.extend_from_slice(&buf[..n]),
                            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break false,
                            Err(err) => panic!("consumer read failed: {err}"),
                        }
                    }
                };
                if finished {
                    return;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                match wake_rx.recv_timeout(left) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => panic!("stalled: no notification"),
                    Err(RecvTimeoutError::Disconnected) => panic!("callbacks dropped"),
                }
            }
        })
    };
    consumer.join().unwrap();
    let _peer = writer.join().unwrap();
    assert!(by_callback.load(Ordering::SeqCst) >= 1);
    assert_same_bytes(&log.lock().unwrap(), &data, "callback + consumer bytes");
    socket.close();
}

/// Rule 1 (read low watermark): `notify_cb` is not called until at least
/// `low` bytes are buffered, and is called once they are.
#[test]
fn notify_cb_waits_for_the_read_low_watermark() {
    const LOW: usize = 1000;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (notify_tx, notified) = common::channel::<usize>();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_watermarks(LOW, 1 << 20)
            .notify_cb(move |s| {
                let _ = notify_tx.send(s.input_buffer_len());
            })
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let data = common::random_data(5, 1200);
    // Three appends: 400 and 800 buffered stay below the watermark, 1200 is
    // above. Each append is observed before the next is sent, so a wrong
    // notification would report 400 or 800 (the callback runs on the loop
    // thread before it reads again).
    for (i, piece) in data.chunks(400).enumerate() {
        common::write_all(&mut peer, piece);
        let want = (i + 1) * 400;
        wait_until("the piece is buffered", || {
            socket.input_buffer_len() == want
        });
    }
    let first = common::recv(&notified, "notify_cb at the low watermark");
    assert_eq!(first, 1200, "notify_cb ran below the low watermark");
    assert_same_bytes(&read_buffered(&socket), &data, "buffered bytes");

    // Again from empty: 999 bytes stay silent, the 1000th triggers.
    let more = common::random_data(6, LOW);
    common::write_all(&mut peer, &more[..LOW - 1]);
    wait_until("999 bytes are buffered", || {
        socket.input_buffer_len() == LOW - 1
    });
    common::write_all(&mut peer, &more[LOW - 1..]);
    let next = common::recv(&notified, "notify_cb exactly at the low watermark");
    assert_eq!(next, LOW, "notify_cb ran below the low watermark");
    assert_same_bytes(&read_buffered(&socket), &more, "buffered bytes");
    socket.close();
}

/// Rule 5: after a write too large to go out at once, `write_cb` fires when
/// the output has drained to the low watermark (0), and the peer got every
/// byte.
#[test]
fn write_cb_fires_when_a_large_write_has_drained() {
    const LEN: usize = 16 << 20;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (write_tx, written) = common::channel::<usize>();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .write_cb(move |s| {
                let _ = write_tx.send(s.output_buffer_len());
            })
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let data = common::random_data(7, LEN);
    socket.write(&data).unwrap();
    assert!(
        socket.output_buffer_len() > 0,
        "the peer is not reading yet, so 16 MiB cannot all go to the kernel"
    );
    let reader = thread::spawn(move || {
        let mut got = vec![0u8; LEN];
        peer.read_exact(&mut got).unwrap();
        (peer, got)
    });
    let left = common::recv(&written, "write_cb");
    assert_eq!(left, 0, "write_cb ran above the low watermark");
    let (_peer, got) = reader.join().unwrap();
    assert_same_bytes(&got, &data, "bytes the peer received");
    assert_eq!(socket.output_buffer_len(), 0);
    socket.close();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}

/// Rule 5 (write low watermark): a producer that writes the next piece from
/// `write_cb` each time the output drains to a non-zero low watermark sends
/// everything; the callback never runs above the watermark.
#[test]
fn write_cb_producer_with_low_watermark_sends_everything() {
    const LOW: usize = 256 * 1024;
    const PIECE: usize = 512 * 1024;
    const LEN: usize = 32 << 20;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let data = Arc::new(common::random_data(8, LEN));
    let next = Arc::new(AtomicUsize::new(0));
    let (above_tx, above_rx) = common::channel::<usize>();
    let (event_cb, events) = common::event_channel();
    let write_piece = {
        let data = data.clone();
        move |s: &Socket| {
            let start = next.fetch_add(PIECE, Ordering::SeqCst);
            if start < LEN {
                s.write(&data[start..(start + PIECE).min(LEN)]).unwrap();
            }
        }
    };
    let first_piece = write_piece.clone();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .write_watermarks(LOW, 4 << 20)
            .connect_cb(first_piece)
            .write_cb(move |s| {
                let left = s.output_buffer_len();
                if left > LOW {
                    let _ = above_tx.send(left);
                }
                write_piece(s);
            })
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    let mut got = vec![0u8; LEN];
    peer.read_exact(&mut got).unwrap_or_else(|err| {
        panic!(
            "peer stopped receiving ({err}); output holds {} bytes",
            socket.output_buffer_len()
        )
    });
    assert_same_bytes(&got, &data, "bytes the peer received");
    if let Ok(left) = above_rx.try_recv() {
        panic!("write_cb ran with {left} bytes queued, above the low watermark {LOW}");
    }
    socket.close();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}

/// Rule 5 (write low watermark): when a write goes out only in part and the
/// rest queued is already at or below the low watermark, `write_cb` still
/// fires once that output has drained.
#[test]
fn write_cb_fires_when_a_partial_write_leaves_output_below_the_low_watermark() {
    const LEN: usize = 16 << 20;
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (write_tx, written) = common::channel::<usize>();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            // Whatever stays queued of the 16 MiB is below this watermark.
            .write_watermarks(32 << 20, 32 << 20)
            .write_cb(move |s| {
                let _ = write_tx.send(s.output_buffer_len());
            })
            .event_cb(event_cb),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let data = common::random_data(9, LEN);
    socket.write(&data).unwrap();
    assert!(socket.output_buffer_len() > 0, "the write went out at once");
    let mut got = vec![0u8; LEN];
    peer.read_exact(&mut got).unwrap();
    assert_same_bytes(&got, &data, "bytes the peer received");
    let left = common::recv(&written, "write_cb after the output drained");
    assert!(left <= 32 << 20);
    socket.close();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}

/// Rule 5 / connection setup: a client's `connect_cb` and `Event::Connected`
/// each fire exactly once, `connect_cb` first, with the connection usable.
#[test]
fn client_connect_cb_and_connected_fire_once() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (connect_order, event_order) = (order.clone(), order.clone());
    let (event_tx, events) = common::channel::<Event>();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .connect_cb(move |s| {
                assert!(s.is_connected());
                assert_eq!(s.peer_addr(), Some(addr));
                connect_order.lock().unwrap().push("connect_cb");
            })
            .read_cb(|_, _| {})
            .event_cb(move |s, event| {
                match event {
                    Event::Connected => event_order.lock().unwrap().push("Connected"),
                    Event::Eof => s.close(),
                    _ => {}
                }
                let _ = event_tx.send(event);
            }),
    )
    .unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    common::write_all(&mut peer, b"ping");
    peer.shutdown(Shutdown::Write).unwrap();
    // The client closes at EOF; everything it reported comes before Closed.
    let mut rest = Vec::new();
    loop {
        let event = common::recv(&events, "events until Closed");
        if matches!(event, Event::Closed) {
            break;
        }
        rest.push(event);
    }
    assert!(
        !rest.iter().any(|e| matches!(e, Event::Connected)),
        "Connected reported twice: {rest:?}"
    );
    assert_eq!(*order.lock().unwrap(), ["connect_cb", "Connected"]);
    assert!(socket.is_closed());
    assert!(common::read_to_end(&mut peer).is_empty());
}

/// Rule 5 / server: the server's `connect_cb` fires once per accepted
/// connection, and data attached with `set_data` stays with its connection.
#[test]
fn server_connect_cb_per_connection_and_data_stays_with_it() {
    const CLIENTS: usize = 20;
    let lt = LoopThread::start();
    let next_id = Arc::new(AtomicUsize::new(0));
    let ids = next_id.clone();
    let (event_tx, events) = common::channel::<Event>();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .connect_cb(move |s| {
                    let id = ids.fetch_add(1, Ordering::SeqCst) as u32;
                    s.set_data(id);
                    s.write(&id.to_le_bytes()).unwrap();
                })
                .read_cb(|s, _| {
                    let id = *s.data::<u32>().expect("data set in connect_cb");
                    s.write(&id.to_le_bytes()).unwrap();
                })
                .event_cb(move |s, event| {
                    if matches!(event, Event::Eof) {
                        s.close();
                    }
                    let _ = event_tx.send(event);
                }),
        ),
    )
    .unwrap();
    let addr = server.local_addr();
    let read_id = |stream: &mut TcpStream| {
        let mut id = [0u8; 4];
        stream.read_exact(&mut id).unwrap();
        u32::from_le_bytes(id)
    };
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut stream = common::std_connect(addr);
            let id = read_id(&mut stream);
            (stream, id)
        })
        .collect();
    // Every connection asks once all are open, so the callbacks interleave.
    for (stream, _) in &mut clients {
        common::write_all(stream, b"?");
    }
    let mut seen = HashSet::new();
    for (stream, id) in &mut clients {
        assert!(seen.insert(*id), "id {id} given to two connections");
        assert_eq!(read_id(stream), *id, "data moved to another connection");
    }
    assert_eq!(next_id.load(Ordering::SeqCst), CLIENTS);
    for (stream, _) in &clients {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut connected = 0;
    let mut closed = 0;
    while closed < CLIENTS {
        match common::recv(&events, "server connection events") {
            Event::Connected => connected += 1,
            Event::Closed => closed += 1,
            _ => {}
        }
    }
    assert_eq!(connected, CLIENTS);
    assert_eq!(next_id.load(Ordering::SeqCst), CLIENTS);
    server.close();
}

/// Waits for the next event of the connection whose peer is `peer`.
fn wait_conn_event(
    rx: &Receiver<(Option<SocketAddr>, Event)>,
    peer: SocketAddr,
    what: &str,
) -> Event {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((Some(addr), event)) if addr == peer => return event,
            Ok(_) => {}
            Err(err) => panic!("no {what} for {peer} within {WAIT:?}: {err}"),
        }
    }
}

/// Echoes `message` through `stream` and checks the reply.
fn echo(stream: &mut TcpStream, message: &[u8]) {
    common::write_all(stream, message);
    let mut reply = vec![0u8; message.len()];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply, message);
}

/// Rule 10: a panic in `read_cb` closes only that connection, reporting
/// `Error(CallbackPanicked)` then `Closed`; the peer sees the end, and the
/// loop and another connection on it go on working.
#[test]
fn panic_in_read_cb_closes_only_that_connection() {
    let lt = LoopThread::start();
    let (event_tx, events) = common::channel::<(Option<SocketAddr>, Event)>();
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .read_cb(|s, data| {
                    if data.windows(4).any(|w| w == b"boom") {
                        panic!("deliberate test panic in read_cb");
                    }
                    s.write_bytes(data).unwrap();
                })
                .event_cb(move |s, event| {
                    if matches!(event, Event::Eof) {
                        s.close();
                    }
                    let _ = event_tx.send((s.peer_addr(), event));
                }),
        ),
    )
    .unwrap();
    let addr = server.local_addr();
    let mut victim = common::std_connect(addr);
    let mut other = common::std_connect(addr);
    let victim_addr = victim.local_addr().unwrap();
    let other_addr = other.local_addr().unwrap();
    echo(&mut victim, b"hello");
    echo(&mut other, b"hello");
    assert!(matches!(
        wait_conn_event(&events, victim_addr, "Connected"),
        Event::Connected
    ));

    common::write_all(&mut victim, b"boom");
    match wait_conn_event(&events, victim_addr, "the panic's error") {
        Event::Error(Error::CallbackPanicked(message)) => assert!(
            message.contains("deliberate test panic in read_cb"),
            "message without the panic text: {message:?}"
        ),
        other => panic!("expected Error(CallbackPanicked), got {other:?}"),
    }
    assert!(matches!(
        wait_conn_event(&events, victim_addr, "Closed"),
        Event::Closed
    ));
    let mut buf = [0u8; 16];
    match victim.read(&mut buf) {
        Ok(0) => {}
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the peer of the panicked connection read {other:?}"),
    }

    // The other connection and the loop are unaffected.
    echo(&mut other, b"still here");
    echo(&mut other, &common::random_data(11, 64 * 1024));
    let mut late = common::std_connect(addr);
    echo(&mut late, b"new connection");
    other.shutdown(Shutdown::Write).unwrap();
    assert!(common::read_to_end(&mut other).is_empty());
    loop {
        match wait_conn_event(&events, other_addr, "the other connection's end") {
            Event::Closed => break,
            Event::Error(err) => panic!("the other connection failed: {err}"),
            _ => {}
        }
    }
    server.close();
}

/// Rule 5 and 10: several threads writing whole records onto one connection
/// at once; the peer receives every record intact (no interleaving inside
/// one write call) and each writer's records in its order.
#[test]
fn concurrent_writers_never_interleave_records() {
    const WRITERS: u8 = 4;
    const RECORDS: u32 = 2000;
    const HEADER: usize = 7;
    fn payload_len(writer: u8, seq: u32) -> usize {
        16 + (seq as usize * 37 + writer as usize * 101) % 1000
    }
    fn payload_byte(writer: u8, seq: u32, i: usize) -> u8 {
        (i as u32)
            .wrapping_mul(31)
            .wrapping_add(seq.wrapping_mul(7))
            .wrapping_add(u32::from(writer) * 59) as u8
    }
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(&lt.handle, addr, TcpOptions::new().event_cb(event_cb)).unwrap();
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let reader = thread::spawn(move || common::read_to_end(&mut peer));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let socket = socket.clone();
            thread::spawn(move || {
                for seq in 0..RECORDS {
                    let len = payload_len(writer, seq);
                    let mut record = Vec::with_capacity(HEADER + len);
                    record.push(writer);
                    record.extend_from_slice(&seq.to_le_bytes());
                    record.extend_from_slice(&(len as u16).to_le_bytes());
                    record.extend((0..len).map(|i| payload_byte(writer, seq, i)));
                    socket.write(&record).unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    socket.close();
    let got = reader.join().unwrap();
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));

    let mut next_seq = [0u32; WRITERS as usize];
    let mut at = 0;
    while at < got.len() {
        assert!(at + HEADER <= got.len(), "truncated header at {at}");
        let writer = got[at];
        assert!(writer < WRITERS, "garbage writer id {writer} at {at}");
        let seq = u32::from_le_bytes(got[at + 1..at + 5].try_into().unwrap());
        let len = usize::from(u16::from_le_bytes(got[at + 5..at + 7].try_into().unwrap()));
        assert_eq!(
            seq, next_seq[writer as usize],
            "writer {writer}: record out of order at {at}"
        );
        assert_eq!(len, payload_len(writer, seq), "bad length at {at}");
        let body = &got[at + HEADER..];
        assert!(body.len() >= len, "truncated record at {at}");
        for (i, &byte) in body[..len].iter().enumerate() {
            assert_eq!(
                byte,
                payload_byte(writer, seq, i),
                "record {writer}/{seq} corrupted at byte {i}"
            );
        }
        next_seq[writer as usize] += 1;
        at += HEADER + len;
    }
    assert_eq!(next_seq, [RECORDS; WRITERS as usize], "records missing");
}

/// Rule 10: the handles are `Send + Sync + Clone` (checked at compile time).
#[test]
fn handles_are_send_sync_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone>() {}
    assert_send_sync_clone::<Socket>();
    assert_send_sync_clone::<LoopHandle>();
    assert_send_sync_clone::<TcpServer>();
}

/// Rule 1 (modes): asking for dont-drain together with a drain `read_cb` is
/// rejected with `Error::InvalidInput`, for a client and for a server.
#[test]
fn dont_drain_with_read_cb_is_invalid_input() {
    let lt = LoopThread::start();
    let (_listener, addr) = common::std_listener();
    let options = || TcpOptions::new().read_cb(|_, _| {}).dont_drain(true);
    let err = tcp_connect_addr(&lt.handle, addr, options()).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "got {err:?}");
    let err = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(options()),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "got {err:?}");
}

/// Rule 1 (modes): the documented rule "dont-drain with a `read_cb` is an
/// error" holds whichever order the builder calls come in.
#[test]
fn dont_drain_before_read_cb_is_invalid_input_too() {
    let lt = LoopThread::start();
    let (_listener, addr) = common::std_listener();
    let options = TcpOptions::new().dont_drain(true).read_cb(|_, _| {});
    let err = tcp_connect_addr(&lt.handle, addr, options).unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "got {err:?}");
}
