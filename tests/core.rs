//! The connection core (rules 1, 6, 10, 11 and 12): defects that came from
//! layers reaching into a connection's state, each with the test that
//! caught it.

mod common;

use std::future::Future;
use std::io::{ErrorKind, Write};
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Wake, Waker};
use std::thread;

use evstream::codec::{Framed, LinesCodec};
use evstream::prelude::*;
use evstream::{
    AsyncIoStream, Error, Event, EventLoop, Limit, ServerOptions, TcpOptions, TcpServer,
};
use futures::StreamExt;

use common::{accept, block_on, recv, std_listener, LoopThread, WAIT};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Rules 1 and 6: a `notify_cb` that takes at most 7 bytes per call, when
/// the peer sends 8 bytes and FIN, is called until it has read every byte
/// *and then* seen the end (`Ok(0)`), even though the end arrived with the
/// bytes in one notification.
#[test]
fn a_reader_taking_a_little_at_a_time_sees_the_end() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (tx, rx) = common::channel::<std::io::Result<usize>>();
    let tx = Mutex::new(tx);
    let socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new().notify_cb(move |socket| {
            let mut buf = [0u8; 7];
            let _ = tx.lock().unwrap().send(socket.read(&mut buf));
        }),
    )
    .unwrap();
    // Paused, so that the bytes and the FIN are read in one pass.
    socket.pause_reading();
    let mut peer = accept(&listener);
    peer.write_all(b"12345678").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    socket.resume_reading();
    let mut got = 0;
    loop {
        match recv(&rx, "a notification") {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => panic!("read failed: {err}"),
        }
    }
    assert_eq!(got, 8, "every byte before the end");
}

/// The same through `stream_read_cb` (a stream per notification).
#[test]
fn a_stream_reader_taking_a_little_at_a_time_sees_the_end() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (tx, rx) = common::channel::<std::io::Result<usize>>();
    let tx = Mutex::new(tx);
    let _socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new().stream_read_cb(move |stream| {
            let mut buf = [0u8; 3];
            let _ = tx
                .lock()
                .unwrap()
                .send(std::io::Read::read(stream, &mut buf));
        }),
    )
    .unwrap();
    let mut peer = accept(&listener);
    peer.write_all(b"12345678").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut got = 0;
    loop {
        match recv(&rx, "a notification") {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => panic!("read failed: {err}"),
        }
    }
    assert_eq!(got, 8);
}

/// Rules 4 and 12: `read_until` honours `max_buffer_size`. A peer sending
/// 16 MiB without a delimiter to a connection limited to 64 KiB gets the
/// read failed with `LimitExceeded(InputBuffer)`, and the connection never
/// held more than the limit.
#[test]
fn read_until_is_bounded_by_max_buffer_size() {
    const LIMIT: usize = 64 * KIB;
    let lt = LoopThread::start();
    let (mut stream, mut peer) = common::connect_stream(
        &lt.handle,
        TcpOptions::new()
            .max_buffer_size(LIMIT)
            .read_watermarks(0, 16 * KIB),
    );
    let flood = thread::spawn(move || {
        // The connection discards what comes once the limit policy has
        // closed it, so the whole flood is written (or reset).
        let chunk = vec![b'x'; 64 * KIB];
        let mut sent = 0;
        while sent < 16 * MIB {
            match peer.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
    });
    let err = block_on(stream.read_until_delimiter(b"\n", usize::MAX)).expect_err("no delimiter");
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: Limit::InputBuffer,
                limit: LIMIT
            }
        ),
        "{err:?}"
    );
    assert!(
        stream.available() <= LIMIT,
        "the connection holds {} bytes",
        stream.available()
    );
    flood.join().unwrap();
}

/// The same for `read_until_regex` (a matcher that runs out of the lock).
#[test]
fn read_until_regex_is_bounded_by_max_buffer_size() {
    const LIMIT: usize = 64 * KIB;
    let lt = LoopThread::start();
    let (mut stream, mut peer) =
        common::connect_stream(&lt.handle, TcpOptions::new().max_buffer_size(LIMIT));
    let flood = thread::spawn(move || {
        let chunk = vec![b'x'; 64 * KIB];
        for _ in 0..256 {
            if peer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let pattern = regex::bytes::Regex::new("\n").unwrap();
    let err = block_on(stream.read_until_regex(&pattern, usize::MAX)).expect_err("no match");
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: Limit::InputBuffer,
                limit: LIMIT
            }
        ),
        "{err:?}"
    );
    assert!(stream.available() <= LIMIT);
    flood.join().unwrap();
}

/// Rule 12: bytes a pending read has seen stay visible to `available()`
/// and `input_buffer_len()`, and the read lets the loop read past the
/// watermark up to what its frame may need.
#[test]
fn bytes_seen_by_a_pending_read_stay_counted() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) =
        common::connect_stream(&lt.handle, TcpOptions::new().read_watermarks(0, 4 * KIB));
    // 12 KiB without a newline, three times the watermark.
    peer.write_all(&vec![b'a'; 12 * KIB]).unwrap();
    let socket = stream.socket().clone();
    let (waker, woken) = common::channel_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut read = std::pin::pin!(stream.read_until_delimiter(b"\n", 64 * KIB));
    loop {
        assert!(read.as_mut().poll(&mut cx).is_pending());
        assert!(socket.reading());
        if socket.input_buffer_len() == 12 * KIB {
            break;
        }
        recv(&woken, "more bytes for the pending read");
    }
    peer.write_all(b"\n").unwrap();
    let line = loop {
        if let Poll::Ready(line) = read.as_mut().poll(&mut cx) {
            break line.unwrap();
        }
        recv(&woken, "the newline");
    };
    assert_eq!(line.len(), 12 * KIB + 1);
    assert_eq!(socket.input_buffer_len(), 0);
}

/// Rule 12: `Framed::into_inner` gives back every byte it did not deliver
/// as a frame; reading on with `read_until_close` gets the rest.
#[test]
fn framed_into_inner_keeps_frames_not_yet_taken() {
    let lt = LoopThread::start();
    let (stream, mut peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    peer.write_all(b"first\nsecond\nthird").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut framed = Framed::new(stream, LinesCodec::lf(64));
    let first = block_on(framed.next()).unwrap().unwrap();
    assert_eq!(&first[..], b"first");
    let mut stream = framed.into_inner();
    let rest = block_on(stream.read_until_close()).unwrap();
    assert_eq!(&rest[..], b"second\nthird");
}

/// Rule 12: switching from a codec to `read_until` on the same connection
/// after many frames loses nothing, whatever the codec had read ahead.
#[test]
fn a_codec_hands_over_to_read_until_without_losing_a_line() {
    let lt = LoopThread::start();
    let (stream, mut peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    let writer = thread::spawn(move || {
        let mut all = Vec::new();
        for i in 0..20_000 {
            all.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        peer.write_all(&all).unwrap();
        peer
    });
    let mut framed = Framed::new(stream, LinesCodec::lf(64));
    for i in 0..10_000 {
        let line = block_on(framed.next()).unwrap().unwrap();
        assert_eq!(line, format!("line {i}").as_bytes());
    }
    let mut stream = framed.into_inner();
    for i in 10_000..20_000 {
        let line = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
        assert_eq!(line, format!("line {i}\n").as_bytes());
    }
    drop(writer.join().unwrap());
}

/// Rule 10: connections sharing options never serialise on their
/// callbacks: two connections on two loops are inside the same callback at
/// once (a callback waiting for another connection's would deadlock if
/// calling one took a lock).
#[test]
fn callbacks_of_connections_sharing_options_run_at_once() {
    let a = LoopThread::start();
    let b = LoopThread::start();
    let meeting = Arc::new((Mutex::new(0usize), Condvar::new()));
    let (tx, rx) = common::channel::<bool>();
    let tx = Mutex::new(tx);
    let options = TcpOptions::new().read_cb(move |_, _| {
        // Both connections must be in here at the same time (bounded).
        let (count, arrived) = &*meeting;
        let mut count = count.lock().unwrap();
        *count += 1;
        arrived.notify_all();
        let (_count, waited) = arrived
            .wait_timeout_while(count, WAIT, |count| *count < 2)
            .unwrap();
        let _ = tx.lock().unwrap().send(!waited.timed_out());
    });
    let (listener, addr) = std_listener();
    let _one = evstream::tcp_connect_addr(&a.handle, addr, options.clone()).unwrap();
    let _two = evstream::tcp_connect_addr(&b.handle, addr, options).unwrap();
    let mut peers = [accept(&listener), accept(&listener)];
    for peer in &mut peers {
        peer.write_all(b"go").unwrap();
    }
    assert!(
        recv(&rx, "one callback"),
        "the callbacks ran one after the other"
    );
    assert!(recv(&rx, "the other callback"));
}

/// A waker that panics when woken.
struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("a waker that panics");
    }
}

/// Rule 10: a waker that panics is contained: the loop that woke it goes on
/// serving every connection.
#[test]
fn a_panicking_waker_does_not_stop_the_loop() {
    let lt = LoopThread::start();
    let (stream, mut peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    let waker = Waker::from(Arc::new(PanickingWaker));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut buf = [0u8; 8];
    let mut reader = stream;
    assert!(
        futures::AsyncRead::poll_read(std::pin::Pin::new(&mut reader), &mut cx, &mut buf)
            .is_pending()
    );
    // The loop wakes the panicking waker when these bytes arrive.
    peer.write_all(b"boom").unwrap();
    // Another connection on the same loop still works afterwards.
    let (mut other, mut other_peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    other_peer.write_all(b"still here\n").unwrap();
    let line = block_on(other.read_until_delimiter(b"\n", 64)).expect("the loop goes on");
    assert_eq!(&line[..], b"still here\n");
    let got = block_on(reader.read_bytes(4)).expect("the woken reader's bytes");
    assert_eq!(&got[..], b"boom");
}

/// Rule 11: a loop that stopped for good fails every pending and later
/// operation on its connections with `LoopStopped`, never hangs.
#[test]
fn a_stopped_loop_fails_pending_and_later_operations() {
    let handle = EventLoop::spawn().unwrap();
    let (mut stream, _peer) = common::connect_stream(&handle, TcpOptions::new());
    let socket = stream.socket().clone();
    let pending = thread::spawn(move || block_on(stream.read_bytes(10)));
    handle.stop();
    let result = pending.join().unwrap();
    assert!(
        matches!(result, Err(Error::LoopStopped)),
        "pending read: {result:?}"
    );
    // The read failed as the loop went away: it is gone for good now.
    assert!(handle.is_stopped());
    assert!(matches!(socket.write(b"late"), Err(Error::LoopStopped)));
    let (_listener, addr) = std_listener();
    let later = block_on(AsyncIoStream::connect_on(
        &handle,
        ("127.0.0.1", addr.port()),
        TcpOptions::new(),
    ));
    assert!(matches!(later, Err(Error::LoopStopped)), "{later:?}");
    let server = TcpServer::bind(&handle, "127.0.0.1:0", ServerOptions::new());
    assert!(matches!(server, Err(Error::LoopStopped)));
    let task = block_on(handle.spawn(async { 1 }));
    assert!(matches!(task, Err(Error::LoopStopped)));
}

/// Rule 5 (write completion): the offset `write_tracked` returns is where
/// *its* bytes end, even with other threads writing at the same time.
#[test]
fn write_tracked_offsets_are_those_of_the_write() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let socket = evstream::tcp_connect_addr(&lt.handle, addr, TcpOptions::new()).unwrap();
    let mut peer = accept(&listener);
    let reader = thread::spawn(move || common::read_to_end(&mut peer).len());
    let ends = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = [3usize, 5]
        .into_iter()
        .map(|len| {
            let (socket, ends) = (socket.clone(), ends.clone());
            thread::spawn(move || {
                let record = vec![b'r'; len];
                for _ in 0..20_000 {
                    let end = socket.write_tracked(&record).unwrap();
                    ends.lock().unwrap().push((end, len as u64));
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let mut ends = std::mem::take(&mut *ends.lock().unwrap());
    ends.sort();
    // The writes tile the output: each starts where the one before ended.
    let mut at = 0;
    for (end, len) in &ends {
        assert_eq!(end - len, at, "a write's offset includes another's bytes");
        at = *end;
    }
    socket.close();
    assert_eq!(reader.join().unwrap() as u64, at);
}

/// Rule 10: a panicking callback fails only its own connection (with
/// `CallbackPanicked`, then `Closed`); the loop serves the others.
#[test]
fn a_panicking_callback_fails_only_its_connection() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (cb, events) = common::event_channel();
    let _bad = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_cb(|_, _| panic!("a read_cb that panics"))
            .event_cb(cb),
    )
    .unwrap();
    let mut bad_peer = accept(&listener);
    bad_peer.write_all(b"x").unwrap();
    common::wait_event(&events, "the panic reported", |event| {
        matches!(event, Event::Error(Error::CallbackPanicked(_)))
    });
    common::wait_event(&events, "Closed", |event| matches!(event, Event::Closed));
    let (mut other, mut other_peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    other_peer.write_all(b"ok\n").unwrap();
    assert_eq!(
        &block_on(other.read_until_delimiter(b"\n", 8)).unwrap()[..],
        b"ok\n"
    );
}
