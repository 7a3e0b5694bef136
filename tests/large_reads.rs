//! Readers with large buffers (64 KiB) mixed with every other kind of
//! reader on one connection: every byte arrives once and in order whatever
//! mix of readers takes it (rule 1), a reader that filled its buffer leaves
//! the rest for the next reader of any kind, and EOF, resets and read
//! timeouts reach a reader that waits with a large buffer (rules 2, 8, 9).
//!
//! On the loop's own thread a copying read with nothing buffered may take
//! bytes straight from the kernel into the caller's buffer (a direct read,
//! when the peer streams): "the rest" then stays in the kernel and must
//! not be stranded there, a reset met there must not look like the end,
//! and a reader that never waits must still let the loop turn. The tests
//! below run readers on another thread (where every byte goes through the
//! input buffer) and on the loop's thread (where the two paths meet).

mod common;

use common::connect_stream;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::pin::pin;
use std::time::Duration;

use common::{assert_same, block_on, LoopThread};
use evstream::{AsyncIoStream, EventLoop, TcpOptions};
use futures_lite::future::poll_once;
use futures_lite::io::AsyncBufReadExt;

/// Reads once into `buf`, with the read already waiting when `peer` writes
/// `data`: the read is there for the readable edge the bytes raise.
fn read_while_peer_writes(
    stream: &mut AsyncIoStream,
    peer: &mut TcpStream,
    data: &[u8],
    buf: &mut [u8],
) -> usize {
    block_on(async {
        let mut read = pin!(stream.read(buf));
        // Nothing sent yet: the reader waits.
        assert!(poll_once(read.as_mut()).await.is_none());
        peer.write_all(data).expect("peer writes");
        read.await
    })
    .expect("read while the peer writes")
}

/// A read that fills its 64 KiB buffer leaves the rest; a reader of another
/// kind (here `AsyncBufRead`) gets it, although no new byte arrives to raise
/// another readable edge.
#[test]
fn bytes_a_large_read_left_reach_a_fill_buf_reader() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let data = common::random_data(1, 80 * 1024);

    let mut first = vec![0u8; 64 * 1024];
    let n = read_while_peer_writes(&mut stream, &mut peer, &data, &mut first);
    assert!(n > 0);

    let mut got = first[..n].to_vec();
    block_on(async {
        while got.len() < data.len() {
            let chunk = stream.fill_buf().await.expect("fill_buf");
            assert!(!chunk.is_empty(), "EOF before the peer closed");
            let len = chunk.len();
            got.extend_from_slice(chunk);
            AsyncBufReadExt::consume(&mut stream, len);
        }
    });
    assert_same("80 KiB through a direct read then fill_buf", &got, &data);
    // The peer is still open: nothing more, and the connection still works.
    assert_eq!(stream.available(), 0);
}

/// After a read that filled its 64 KiB buffer, `read_until` gets the rest,
/// and a line split across the two readers comes out whole.
#[test]
fn bytes_a_large_read_left_reach_read_until() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let mut data = vec![b'a'; 64 * 1024 + 100];
    data.extend_from_slice(b"\nrest");

    let mut first = vec![0u8; 64 * 1024];
    let n = read_while_peer_writes(&mut stream, &mut peer, &data, &mut first);
    let line = block_on(stream.read_until_delimiter(b"\n", 1 << 20)).expect("read_until");
    let mut got = first[..n].to_vec();
    got.extend_from_slice(&line);
    assert_same("line across two readers", &got, &data[..data.len() - 4]);
}

/// Readers of every size, zero-copy chunks in between, 8 MiB: every byte
/// once, in order.
#[test]
fn mixed_read_sizes_keep_every_byte_in_order() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect_stream(&lt.handle, TcpOptions::new());
    let data = common::random_data(2, 8 << 20);
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        peer.write_all(&sent).expect("peer writes");
        peer.shutdown(std::net::Shutdown::Write).unwrap();
    });

    let got = block_on(read_mixed(&mut stream));
    writer.join().unwrap();
    assert_same("8 MiB through mixed readers", &got, &data);
}

/// Reads `stream` to its end with readers of every size, zero-copy chunks
/// and `read_until` in between, and returns what they got.
async fn read_mixed(stream: &mut AsyncIoStream) -> Vec<u8> {
    let sizes = [65536, 7, 4096, 100_000, 4095, 1, 16384];
    let mut got = Vec::new();
    let mut buf = vec![0u8; 100_000];
    for step in 0.. {
        if step % 8 == 7 {
            // A zero-copy chunk, half of it consumed.
            let chunk = stream.fill_buf().await.expect("fill_buf");
            if chunk.is_empty() {
                break;
            }
            let half = chunk.len().div_ceil(2);
            got.extend_from_slice(&chunk[..half]);
            AsyncBufReadExt::consume(stream, half);
            continue;
        }
        if step % 16 == 12 {
            // Up to a delimiter, through the buffer's search.
            if AsyncBufReadExt::read_until(stream, b'\n', &mut got)
                .await
                .expect("read_until")
                == 0
            {
                break;
            }
            continue;
        }
        let size = sizes[step % sizes.len()];
        let n = stream.read(&mut buf[..size]).await.expect("read");
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

// On the loop's own thread (`EventLoop::block_on`) a copying read with
// nothing buffered takes bytes straight from the kernel, and every other
// reader goes through the input buffer: the two paths meet below.

/// A connected stream on `ev` and its std peer.
fn connect_on_loop(ev: &mut EventLoop) -> (AsyncIoStream, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = ev.handle();
    let stream = ev
        .block_on(AsyncIoStream::connect_on(&handle, addr, TcpOptions::new()))
        .expect("block_on")
        .expect("connect_on");
    (stream, common::accept(&listener))
}

/// `future`, failing the test if it is not done within [`common::WAIT`]
/// (`EventLoop::block_on` has no bound of its own).
async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    futures_lite::future::or(future, async {
        async_io::Timer::after(common::WAIT).await;
        panic!("not done within {:?}", common::WAIT)
    })
    .await
}

/// 8 MiB read on the loop thread by readers of every kind, some straight
/// from the kernel and some from the input buffer: every byte once, in
/// order, then the end.
#[test]
fn direct_and_buffered_reads_on_the_loop_thread_keep_every_byte_in_order() {
    let mut ev = EventLoop::new().unwrap();
    let (mut stream, peer) = connect_on_loop(&mut ev);
    let data = common::random_data(3, 8 << 20);
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        // Writes of uneven sizes, so reads end at every kind of boundary.
        for (i, piece) in sent.chunks(150_001).enumerate() {
            let cut = (i * 7919) % piece.len();
            peer.write_all(&piece[..cut]).expect("peer writes");
            peer.write_all(&piece[cut..]).expect("peer writes");
        }
        peer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let got = ev
        .block_on(within(read_mixed(&mut stream)))
        .expect("block_on");
    writer.join().unwrap();
    assert_same("8 MiB on the loop thread", &got, &data);
}

/// A reset that a read on the loop thread meets in the kernel (the loop has
/// not seen it yet: it is busy in that very future) is reported as
/// `ConnectionReset`, now and on later reads; it never looks like the end.
#[test]
fn a_reset_met_by_a_read_on_the_loop_thread_is_an_error_not_eof() {
    let mut ev = EventLoop::new().unwrap();
    let (mut stream, peer) = connect_on_loop(&mut ev);
    let (step_tx, step_rx) = std::sync::mpsc::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    // The peer does each step when told, and says when it is done.
    let peer_thread = std::thread::spawn(move || {
        let mut peer = peer;
        step_rx.recv().unwrap();
        peer.write_all(&[1u8; 48 * 1024]).expect("peer writes");
        done_tx.send(()).unwrap();
        step_rx.recv().unwrap();
        peer.write_all(b"before the reset").expect("peer writes");
        common::reset(peer);
        done_tx.send(()).unwrap();
    });
    // Each step happens while this future keeps the loop thread, so the
    // loop reads nothing in between.
    let step = move || {
        step_tx.send(()).unwrap();
        done_rx.recv_timeout(common::WAIT).expect("peer step");
    };
    let outcome = ev
        .block_on(within(async move {
            let mut buf = vec![0u8; 64 * 1024];
            // A first burst, which the loop reads in one pass: the peer
            // streams, so the next read asks the kernel directly.
            step();
            let mut first = 0;
            while first < 48 * 1024 {
                first += stream.read(&mut buf).await.expect("first burst");
            }
            step();
            let mut got = Vec::new();
            let err = loop {
                match stream.read(&mut buf).await {
                    Ok(0) => panic!("a reset read as the end after {got:?}"),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(err) => break err,
                }
            };
            let again = stream.read(&mut buf).await.expect_err("still reset");
            (got, err.kind(), again.kind())
        }))
        .expect("block_on");
    peer_thread.join().unwrap();
    let (got, first, again) = outcome;
    // Linux may drop what was queued when the reset arrives; what is read
    // is a prefix of what was sent.
    assert!(b"before the reset".starts_with(&got), "got {got:?}");
    assert_eq!(first, ErrorKind::ConnectionReset);
    assert_eq!(again, ErrorKind::ConnectionReset);
}

/// A reader on the loop thread that never has to wait (the kernel holds a
/// backlog of several MiB) still lets the loop turn: another task on the
/// same loop runs while it reads. Between two turns the reader takes at
/// most one read budget (1 MiB, and one read of 64 KiB past it) straight
/// from the kernel and what one read pass of the loop brought in (1 MiB
/// at most), so the other task runs at least once per 2 MiB + 64 KiB.
/// (Without the budget it ran only when a read happened to find the
/// kernel empty: 0 to 3 times for 4 MiB here.)
#[test]
fn a_read_on_the_loop_thread_that_never_waits_lets_other_tasks_run() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    use std::sync::Arc;
    const MIB: usize = 1 << 20;
    let mut ev = EventLoop::new().unwrap();
    let (mut stream, peer) = connect_on_loop(&mut ev);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (backlog_tx, backlog_rx) = std::sync::mpsc::channel::<usize>();
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        let block = vec![7u8; MIB];
        // Read at full speed, 16 MiB let the kernel grow both socket
        // buffers to their maximum.
        for _ in 0..16 {
            peer.write_all(&block).expect("peer writes");
        }
        go_rx.recv().expect("reader ready");
        // As much as the kernel takes without a reader.
        peer.set_nonblocking(true).unwrap();
        let mut backlog = 0;
        loop {
            match peer.write(&block) {
                Ok(n) => backlog += n,
                Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                Err(err) => panic!("peer write: {err}"),
            }
        }
        peer.set_nonblocking(false).unwrap();
        backlog_tx.send(backlog).unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let handle = ev.handle();
    let (backlog, ticks_seen) = ev
        .block_on(within(async {
            let mut buf = vec![0u8; 64 * 1024];
            let mut warm = 0;
            while warm < 16 * MIB {
                warm += stream.read(&mut buf).await.expect("read");
            }
            go_tx.send(()).unwrap();
            // Waiting here keeps the loop thread: nothing reads the backlog.
            let backlog = backlog_rx.recv_timeout(common::WAIT).expect("backlog");
            let ticks = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let (counter, stop_ticking) = (ticks.clone(), stop.clone());
            // Counts how often the loop lets it run.
            let ticker = handle.spawn(async move {
                while !stop_ticking.load(Relaxed) {
                    counter.fetch_add(1, Relaxed);
                    futures_lite::future::yield_now().await;
                }
            });
            // The reader never parks of its own accord: it yields only
            // when a read returns `Pending`.
            let mut read = 0;
            while read < backlog {
                let n = stream.read(&mut buf).await.expect("read");
                assert!(n > 0, "the end before the backlog");
                read += n;
            }
            let seen = ticks.load(Relaxed);
            stop.store(true, Relaxed);
            ticker.await.expect("ticker");
            assert_eq!(stream.read(&mut buf).await.expect("read the end"), 0);
            (backlog, seen)
        }))
        .expect("block_on");
    writer.join().unwrap();
    assert!(
        ticks_seen >= backlog / (2 * MIB + 64 * 1024),
        "another task ran {ticks_seen} times while a backlog of {backlog} bytes was read"
    );
}

/// EOF reaches a reader waiting with a large buffer, after every byte.
#[test]
fn eof_reaches_a_large_reader_after_every_byte() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let data = common::random_data(3, 300 * 1024);
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    block_on(async {
        let mut read = pin!(stream.read(&mut buf));
        assert!(poll_once(read.as_mut()).await.is_none());
        peer.write_all(&data).expect("peer writes");
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        let n = read.await.expect("first read");
        got.extend_from_slice(&buf[..n]);
        loop {
            let n = stream.read(&mut buf).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    assert_same("300 KiB then EOF", &got, &data);
    // The end stays the end.
    assert_eq!(block_on(stream.read(&mut buf)).expect("read at EOF"), 0);
}

/// A reset reaches a reader with a large buffer as `ConnectionReset`, after
/// the bytes before it; later reads see it too.
#[test]
fn reset_reaches_a_large_reader() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let mut buf = vec![0u8; 64 * 1024];
    let n = read_while_peer_writes(&mut stream, &mut peer, b"before the reset", &mut buf);
    assert_eq!(&buf[..n], b"before the reset");
    common::reset(peer);
    let err = block_on(stream.read(&mut buf)).expect_err("reset");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    let again = block_on(stream.read(&mut buf)).expect_err("still reset");
    assert_eq!(again.kind(), ErrorKind::ConnectionReset, "{again}");
}

/// A large reader that gets nothing after some progress times out.
#[test]
fn read_timeout_reaches_a_large_reader() {
    let lt = LoopThread::start();
    let options = TcpOptions::new().read_timeout(Duration::from_millis(200));
    let (mut stream, mut peer) = connect_stream(&lt.handle, options);
    let mut buf = vec![0u8; 64 * 1024];
    // Bytes first, read in full: progress, then silence.
    peer.write_all(b"some bytes").expect("peer writes");
    let n = block_on(stream.read(&mut buf)).expect("read");
    assert_eq!(&buf[..n], b"some bytes");
    let err = block_on(stream.read(&mut buf)).expect_err("timed out");
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
}

/// A codec hands over to plain reads on the loop thread: `Framed` takes
/// lines (holding what it read ahead), `into_inner` gives the rest back,
/// and reads that may now go straight to the kernel continue exactly
/// where the last line ended, through a 4 MiB tail, to the end.
#[test]
fn a_codec_hands_over_to_direct_reads_on_the_loop_thread() {
    use evstream::codec::{Framed, LinesCodec};
    use futures_lite::StreamExt;
    let mut ev = EventLoop::new().unwrap();
    let (stream, peer) = connect_on_loop(&mut ev);
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i}\n")).collect();
    let tail = common::random_data(5, 4 << 20);
    let mut sent = lines.concat().into_bytes();
    sent.extend_from_slice(&tail);
    let writer = std::thread::spawn(move || {
        let mut peer = peer;
        peer.write_all(&sent).expect("peer writes");
        peer.shutdown(std::net::Shutdown::Write).unwrap();
    });
    let (got_lines, rest) = ev
        .block_on(within(async move {
            let mut framed = Framed::new(stream, LinesCodec::lf(1024));
            let mut got_lines = Vec::new();
            while got_lines.len() < 1000 {
                let line = framed.next().await.expect("a line").expect("line");
                got_lines.push(String::from_utf8(line.to_vec()).unwrap() + "\n");
            }
            let mut stream = framed.into_inner();
            let mut rest = Vec::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = stream.read(&mut buf).await.expect("read");
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&buf[..n]);
            }
            (got_lines, rest)
        }))
        .expect("block_on");
    writer.join().unwrap();
    assert_eq!(got_lines, lines);
    assert_same("the tail after the codec", &rest, &tail);
}
