//! Rule 13 (every input is handled): every option value either works or is
//! refused with a clear error by the call that takes the options; a huge
//! `Duration` means "never" and never overflows; and the knobs a server
//! needs (socket buffer sizes, starting paused) do what they say.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use evstream::{AsyncIoStream, Error, Event, ServerOptions, TcpOptions, TcpServer};
use futures_lite::io::AsyncWriteExt;

use common::{accept, block_on, recv, std_listener, LoopThread};

/// Options that must be refused by the call that takes them.
#[test]
fn options_that_cannot_work_are_refused_up_front() {
    let lt = LoopThread::start();
    let (_listener, addr) = std_listener();
    let refused = [
        (
            "write high watermark 0",
            TcpOptions::new().write_watermarks(0, 0),
        ),
        (
            "read high watermark 0",
            TcpOptions::new().read_watermarks(0, 0),
        ),
        (
            "read low above high",
            TcpOptions::new().read_watermarks(10, 5),
        ),
        (
            "write low above high",
            TcpOptions::new().write_watermarks(10, 5),
        ),
        ("read chunk size 0", TcpOptions::new().read_chunk_size(0)),
        ("max buffer size 0", TcpOptions::new().max_buffer_size(0)),
        ("send buffer 0", TcpOptions::new().send_buffer_size(0)),
        ("receive buffer 0", TcpOptions::new().recv_buffer_size(0)),
    ];
    for (what, options) in refused {
        let err = evstream::tcp_connect_addr(&lt.handle, addr, options.clone()).expect_err(what);
        assert!(matches!(err, Error::InvalidInput(_)), "{what}: {err}");
        let err = TcpServer::bind(
            &lt.handle,
            "127.0.0.1:0",
            ServerOptions::new().connection(options),
        )
        .expect_err(what);
        assert!(matches!(err, Error::InvalidInput(_)), "{what}: {err}");
    }
    let err = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new().backlog(-1))
        .expect_err("a negative backlog");
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

/// Exchanges a few KiB each way over a connection made with `options`,
/// against a std echo peer, and closes it: the options work.
fn round_trip(what: &str, options: TcpOptions) {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        let mut buf = vec![0u8; 8192];
        let mut echoed = 0;
        while echoed < 8192 {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
            echoed += n;
        }
        s.shutdown(Shutdown::Write).unwrap();
    });
    let mut stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", addr.port()),
        options,
    ))
    .unwrap_or_else(|err| panic!("{what}: connect: {err}"));
    let data = common::random_data(3, 8192);
    block_on(AsyncWriteExt::write_all(&mut stream, &data))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let got = block_on(stream.read_until_close()).unwrap_or_else(|e| panic!("{what}: {e}"));
    common::assert_same(what, &got, &data);
    peer.join().unwrap();
}

/// Extreme values that must work: the smallest watermarks and chunks, the
/// largest limits, zero and `Duration::MAX` timeouts.
#[test]
fn extreme_option_values_work() {
    let cases = [
        (
            "write high watermark 1",
            TcpOptions::new().write_watermarks(0, 1),
        ),
        (
            "read high watermark 1",
            TcpOptions::new().read_watermarks(0, 1),
        ),
        ("read chunk 1", TcpOptions::new().read_chunk_size(1)),
        (
            "everything 1",
            TcpOptions::new()
                .read_watermarks(1, 1)
                .write_watermarks(1, 1)
                .read_chunk_size(1),
        ),
        (
            "huge limits",
            TcpOptions::new()
                .read_watermarks(0, usize::MAX)
                .write_watermarks(usize::MAX, usize::MAX)
                .read_chunk_size(usize::MAX)
                .max_buffer_size(usize::MAX),
        ),
        (
            "timeouts MAX",
            TcpOptions::new()
                .read_timeout(Duration::MAX)
                .write_timeout(Duration::MAX)
                .connect_timeout(Duration::MAX)
                .close_linger(Duration::MAX),
        ),
        (
            "close linger 0",
            TcpOptions::new().close_linger(Duration::ZERO),
        ),
        (
            "small kernel buffers",
            TcpOptions::new().send_buffer_size(1).recv_buffer_size(1),
        ),
    ];
    for (what, options) in cases {
        round_trip(what, options);
    }
}

/// A zero idle timeout works: it fires as soon as the direction waits (so
/// a read that has to wait times out at once), and the connection stays
/// usable: bytes that arrive are read.
#[test]
fn a_zero_read_timeout_fires_at_once_and_the_connection_goes_on() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (cb, events) = common::event_channel();
    let (ready_tx, ready) = common::channel();
    let ready_tx = std::sync::Mutex::new(ready_tx);
    let socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_timeout(Duration::ZERO)
            .event_cb(cb)
            .notify_cb(move |socket| {
                let _ = ready_tx.lock().unwrap().send(socket.input_buffer_len());
            }),
    )
    .unwrap();
    let mut peer = accept(&listener);
    common::wait_event(&events, "the read timeout", |e| {
        matches!(e, Event::Timeout(evstream::Direction::Read))
    });
    peer.write_all(b"still open").unwrap();
    while recv(&ready, "the bytes") < 10 {}
    let mut buf = [0u8; 10];
    assert_eq!(socket.read(&mut buf).unwrap(), 10);
    assert_eq!(&buf, b"still open");
    assert!(!socket.is_closed());
}

/// `Duration::MAX` in the runtime setters and timers means never: no panic
/// on the loop thread, and the loop goes on serving.
#[test]
fn duration_max_never_overflows_at_runtime() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    stream
        .socket()
        .set_timeouts(Some(Duration::MAX), Some(Duration::MAX));
    let timer = lt.handle.delay(Duration::MAX, || panic!("fired"));
    timer.cancel();
    let (tx, rx) = common::channel();
    lt.handle.delay(Duration::MAX, move || {
        let _ = tx.send(());
    });
    peer.write_all(b"ok\n").unwrap();
    assert_eq!(
        &block_on(stream.read_until_delimiter(b"\n", 8)).unwrap()[..],
        b"ok\n"
    );
    assert!(rx.try_recv().is_err(), "a Duration::MAX delay never fires");
    // The blocking adaptor with Duration::MAX waits normally.
    let mut blocking = stream.blocking();
    blocking.set_read_timeout(Some(Duration::MAX));
    peer.write_all(b"more").unwrap();
    let mut buf = [0u8; 4];
    blocking.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"more");
}

/// `start_paused`: nothing is read (the peer is pushed back) until
/// `resume_reading`, so the application can set up first.
#[test]
fn a_connection_can_start_with_reading_paused() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (tx, rx) = common::channel::<usize>();
    let tx = std::sync::Mutex::new(tx);
    let socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .start_paused(true)
            .notify_cb(move |socket| {
                let _ = tx.lock().unwrap().send(socket.input_buffer_len());
            }),
    )
    .unwrap();
    let mut peer = accept(&listener);
    peer.write_all(b"early bytes").unwrap();
    assert!(socket.is_reading_paused());
    // The loop reads nothing while paused: a marker after the write proves
    // the loop has had turns since.
    let (marker_tx, marker_rx) = common::channel();
    lt.handle.delay(Duration::from_millis(50), move || {
        let _ = marker_tx.send(());
    });
    recv(&marker_rx, "a later loop turn");
    assert_eq!(socket.input_buffer_len(), 0, "read while paused");
    socket.resume_reading();
    assert_eq!(recv(&rx, "the bytes after resume"), 11);
}

/// Small kernel buffers make backpressure start early: with a peer that
/// does not read, the kernel takes little, and a stream's writes wait at
/// the watermark instead of the kernel absorbing megabytes.
#[test]
fn small_kernel_buffers_make_backpressure_start_early() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .send_buffer_size(4096)
            .write_watermarks(0, 16 * 1024),
    )
    .unwrap();
    let peer = accept(&listener);
    let (send, recv_size) = {
        let sock = socket2::SockRef::from(&peer);
        (
            sock.send_buffer_size().unwrap(),
            sock.recv_buffer_size().unwrap(),
        )
    };
    assert!(send > 0 && recv_size > 0);
    let mut stream = AsyncIoStream::new(socket);
    // Write until the stream pushes back; count what was accepted.
    let mut accepted = 0usize;
    let chunk = vec![0u8; 4096];
    loop {
        match std::io::Write::write(&mut stream, &chunk) {
            Ok(n) => accepted += n,
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(err) => panic!("{err}"),
        }
        assert!(accepted < 64 * 1024 * 1024, "no backpressure");
    }
    // The peer's receive buffer plus ours plus the watermark: far below
    // what default buffers (several MiB) would absorb.
    assert!(
        accepted < recv_size + 4 * 4096 + 16 * 1024 + 256 * 1024,
        "{accepted} bytes accepted before backpressure"
    );
    drop(peer);
}
