//! Rule 13 (a dripping peer meets a bound): the read deadline bounds a
//! whole read — a line, `read_bytes`, a frame of `Framed` or `on_frame` —
//! however steadily the bytes trickle in, where the idle read timeout
//! restarts on every byte (slowloris).

mod common;

use std::future::poll_fn;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

use evstream::codec::{FrameOptions, Framed, LinesCodec};
use evstream::{AsyncIoStream, Error, ServerOptions, Socket, TcpOptions, TcpServer, TimeoutKind};
use futures::StreamExt;

use common::{block_on, recv, LoopThread};

const DEADLINE: Duration = Duration::from_millis(300);

/// A peer that writes one byte every 10 ms (never a newline) until told
/// to stop or the connection breaks — or, so that a read the deadline
/// misses fails (with the idle read timeout) instead of hanging, after
/// `common::WAIT`.
fn drip(mut peer: TcpStream, stop: Arc<AtomicBool>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let started = Instant::now();
        while !stop.load(Ordering::SeqCst) && started.elapsed() < common::WAIT {
            if peer.write_all(b"x").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
    })
}

fn is_deadline(err: &Error) -> bool {
    matches!(err, Error::TimedOut(TimeoutKind::ReadDeadline))
}

/// `read_until` and `read_bytes` against a dripping peer fail with the
/// read deadline, though the idle read timeout (longer) never fires.
#[test]
fn a_dripping_peer_meets_the_read_deadline_of_a_read() {
    let lt = LoopThread::start();
    let options = TcpOptions::new()
        .read_timeout(Duration::from_secs(5))
        .read_deadline(DEADLINE);
    let (mut stream, peer) = common::connect_stream(&lt.handle, options);
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(peer, stop.clone());
    let started = Instant::now();
    let err = block_on(stream.read_until_delimiter(b"\n", 1 << 20)).expect_err("never a newline");
    assert!(is_deadline(&err), "{err}");
    assert!(started.elapsed() >= DEADLINE, "not before the deadline");
    assert_eq!(
        std::io::Error::from(err).kind(),
        std::io::ErrorKind::TimedOut
    );
    // The bytes stay; a new read gets a deadline of its own.
    assert!(stream.available() > 0);
    let err = block_on(stream.read_bytes(1 << 19)).expect_err("never that many");
    assert!(is_deadline(&err), "{err}");
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}

/// A read that completes within the deadline is not affected, nor the one
/// after it.
#[test]
fn reads_within_the_deadline_complete() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) =
        common::connect_stream(&lt.handle, TcpOptions::new().read_deadline(DEADLINE));
    for i in 0..3 {
        let line = format!("line {i}\n");
        peer.write_all(line.as_bytes()).unwrap();
        let got = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
        assert_eq!(got, line.as_bytes());
    }
    // Well past the first deadline, with no read waiting: nothing fails.
    let (tx, rx) = common::channel();
    lt.handle.delay(DEADLINE * 2, move || {
        let _ = tx.send(());
    });
    recv(&rx, "a later turn");
    peer.write_all(b"late line\n").unwrap();
    let got = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
    assert_eq!(&got[..], b"late line\n");
}

/// `Framed`: a frame that never completes fails the stream with the read
/// deadline.
#[test]
fn a_frame_that_never_completes_meets_the_deadline_in_framed() {
    let lt = LoopThread::start();
    let (stream, mut peer) =
        common::connect_stream(&lt.handle, TcpOptions::new().read_deadline(DEADLINE));
    peer.write_all(b"whole\n").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(peer, stop.clone());
    let mut framed = Framed::new(stream, LinesCodec::lf(1 << 20));
    assert_eq!(&block_on(framed.next()).unwrap().unwrap()[..], b"whole");
    let err = block_on(framed.next())
        .unwrap()
        .expect_err("a frame that never ends");
    assert!(is_deadline(&err), "{err}");
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}

/// `on_frame` on a server: a slowloris client gets its connection closed
/// once its frame passes the deadline; the callback sees the error.
#[test]
fn an_on_frame_server_closes_a_slowloris_client() {
    let lt = LoopThread::start();
    let (tx, rx) = common::channel::<evstream::Result<Vec<u8>>>();
    let tx = Mutex::new(tx);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().read_deadline(DEADLINE).on_frame(
            LinesCodec::lf(1 << 20),
            move |_: &Socket, line: evstream::Result<bytes::Bytes>| {
                let _ = tx.lock().unwrap().send(line.map(|l| l.to_vec()));
            },
        )),
    )
    .unwrap();
    let mut client = TcpStream::connect(server.local_addr()).unwrap();
    client.set_read_timeout(Some(common::WAIT)).unwrap();
    client.write_all(b"hello\n").unwrap();
    assert_eq!(recv(&rx, "the first line").unwrap(), b"hello");
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(client.try_clone().unwrap(), stop.clone());
    let err = recv(&rx, "the deadline").expect_err("the dripped frame");
    assert!(is_deadline(&err), "{err}");
    // The server closed the connection: the client reads EOF.
    let mut rest = Vec::new();
    let _ = client.read_to_end(&mut rest);
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}

/// Options for the dripping tests: the deadline, and an idle read timeout
/// (longer, restarted by every byte) that ends a read the deadline misses
/// once the dripping stops.
fn dripping_options() -> TcpOptions {
    TcpOptions::new()
        .read_timeout(Duration::from_secs(5))
        .read_deadline(DEADLINE)
}

/// Runs `read` against the dripping peer: it must fail with the read
/// deadline, not before the deadline (its own, from when it started).
fn meets_the_deadline<T: std::fmt::Debug>(what: &str, read: impl FnOnce() -> evstream::Result<T>) {
    let started = Instant::now();
    let err = read().expect_err(what);
    assert!(is_deadline(&err), "{what}: {err}");
    assert!(started.elapsed() >= DEADLINE, "{what}: before its deadline");
}

/// A newline matcher (never matches: the peer sends none).
fn newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n').map(|at| at + 1)
}

/// `read_until_match` (and `read_until_regex`, built on it),
/// `read_until_excluding` and `read_until_close` against a dripping peer
/// fail with the read deadline, each with a deadline of its own.
#[test]
fn a_dripping_peer_meets_the_read_deadline_of_a_matcher_read() {
    let lt = LoopThread::start();
    let (mut stream, peer) = common::connect_stream(&lt.handle, dripping_options());
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(peer, stop.clone());
    meets_the_deadline("read_until_match", || {
        block_on(stream.read_until_match(1 << 20, newline))
    });
    // The bytes the matcher held are back in the input buffer.
    assert!(stream.available() > 0);
    #[cfg(feature = "regex")]
    {
        let pattern = regex::bytes::Regex::new("\n").unwrap();
        meets_the_deadline("read_until_regex", || {
            block_on(stream.read_until_regex(&pattern, 1 << 20))
        });
    }
    meets_the_deadline("read_until_excluding", || {
        block_on(stream.read_until_excluding(b"\n", 1 << 20))
    });
    meets_the_deadline("read_until_close", || block_on(stream.read_until_close()));
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}

/// The streaming reads deliver the dripped bytes as they come, and the
/// whole read — not each chunk — meets the deadline.
#[test]
fn a_dripping_peer_meets_the_read_deadline_of_a_streaming_read() {
    let lt = LoopThread::start();
    let (mut stream, peer) = common::connect_stream(&lt.handle, dripping_options());
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(peer, stop.clone());
    meets_the_deadline("read_bytes_streaming", || {
        block_on(stream.read_bytes_streaming(1 << 20, |_| {}))
    });
    meets_the_deadline("read_until_close_streaming", || {
        block_on(stream.read_until_close_streaming(|_| {}))
    });
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}

/// The callback forms run the same reads on the loop: the callback gets
/// the deadline error.
#[test]
fn a_dripping_peer_meets_the_read_deadline_of_a_callback_read() {
    let lt = LoopThread::start();
    let (stream, peer) = common::connect_stream(&lt.handle, dripping_options());
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(peer, stop.clone());
    type Done = (AsyncIoStream, evstream::Result<bytes::Bytes>);
    let (tx, rx) = common::channel::<Done>();
    let done = move |stream, result| {
        let _ = tx.send((stream, result));
    };
    stream.read_until_match_cb(1 << 20, newline, done.clone());
    let (stream, result) = recv(&rx, "read_until_match_cb");
    meets_the_deadline_result("read_until_match_cb", result);
    stream.read_bytes_cb(1 << 20, Some(Box::new(|_| {})), done.clone());
    let (stream, result) = recv(&rx, "read_bytes_cb, streaming");
    meets_the_deadline_result("read_bytes_cb, streaming", result);
    stream.read_until_delimiter_cb(b"\n".to_vec(), 1 << 20, done);
    let (_stream, result) = recv(&rx, "read_until_delimiter_cb");
    meets_the_deadline_result("read_until_delimiter_cb", result);
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}

fn meets_the_deadline_result(what: &str, result: evstream::Result<bytes::Bytes>) {
    let err = result.expect_err(what);
    assert!(is_deadline(&err), "{what}: {err}");
}

/// A codec handing the stream back in the middle of a frame (its deadline
/// running) leaves no deadline behind: a read that starts after the
/// codec's deadline has passed gets a whole deadline of its own.
#[test]
fn a_read_after_a_codec_hand_over_has_its_own_deadline() {
    let lt = LoopThread::start();
    let (stream, mut peer) = common::connect_stream(&lt.handle, dripping_options());
    peer.write_all(b"part").unwrap();
    let mut framed = Framed::new(stream, LinesCodec::lf(1 << 20));
    // Until the codec holds part of a frame: its deadline runs.
    block_on(poll_fn(|cx| match framed.poll_next_unpin(cx) {
        Poll::Ready(item) => panic!("no frame yet: {item:?}"),
        Poll::Pending if framed.read_buffer().is_empty() => Poll::Pending,
        Poll::Pending => Poll::Ready(()),
    }));
    let mut stream = framed.into_inner();
    assert_eq!(stream.available(), 4, "the codec gave its bytes back");
    // Past the codec's deadline, with no read waiting.
    let (tx, rx) = common::channel();
    lt.handle.delay(DEADLINE * 2, move || {
        let _ = tx.send(());
    });
    recv(&rx, "a turn past the codec's deadline");
    let stop = Arc::new(AtomicBool::new(false));
    let dripper = drip(peer, stop.clone());
    meets_the_deadline("read_until_delimiter after Framed", || {
        block_on(stream.read_until_delimiter(b"\n", 1 << 20))
    });
    stop.store(true, Ordering::SeqCst);
    dripper.join().unwrap();
}
