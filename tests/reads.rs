//! The IOStream-style reads (turbo.lua, Tornado) and their write-side
//! companions against the contract: `read_until` and friends find frames
//! across packet and chunk boundaries and lose no byte (rule 1), frames inside
//! one received chunk are slices of it (performance design, zero copy), a
//! read's `max_bytes` bounds memory and yields a clear error while the loop
//! and other connections go on (rules 4 and 8), `read_bytes` and the
//! streaming reads deliver exact counts and leave the rest buffered (rule 1),
//! cancelled reads give their bytes back in order (rule 1), `send` completes
//! once the kernel has the bytes (rule 5), and `on_close`, `closed`,
//! `reading` and `writing` report the connection's state (rules 7 and 10).

mod common;

use common::{assert_same, block_on};

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{LoopThread, WAIT};
use evstream::{
    AsyncIoStream, Error, EventLoop, Limit, LimitPolicy, LoopHandle, Socket, TcpOptions,
    DEFAULT_READ_CHUNK_SIZE, DEFAULT_READ_HIGH_WATERMARK,
};
use regex::bytes::Regex;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// How long a blocked peer write waits before it reports that it made no
/// progress: the "sender is blocked" checks need that while; it is not a
/// synchronisation.
const SEND_STALL: Duration = Duration::from_millis(300);

/// The tests that move tens or hundreds of MiB run one at a time, so a
/// loaded two-core machine does not have to run them side by side.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|poison| poison.into_inner())
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// `future`, failing the test if it is not done within `limit` (for futures
/// driven by `EventLoop::block_on`, which has no bound of its own).
async fn within<T>(limit: Duration, future: impl Future<Output = T>) -> T {
    futures_lite::future::or(future, async {
        async_io::Timer::after(limit).await;
        panic!("future not done within {limit:?}")
    })
    .await
}

fn poll_once<F: Future>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

/// Polls `future` each time `woken` reports a wake, until it is ready
/// (bounded: in all, by [`WAIT`]).
fn poll_until_ready<F: Future>(
    mut future: Pin<&mut F>,
    waker: &Waker,
    woken: &Receiver<()>,
) -> F::Output {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Poll::Ready(output) = poll_once(future.as_mut(), waker) {
            return output;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        woken
            .recv_timeout(left)
            .unwrap_or_else(|err| panic!("read not done within {WAIT:?}: {err}"));
    }
}

/// An evstream connection (dont-drain, with a `notify_cb` reporting every
/// append on `ready`) and the plain std peer on the other end.
struct Pair {
    stream: AsyncIoStream,
    socket: Socket,
    peer: TcpStream,
    ready: Receiver<()>,
}

impl Pair {
    /// Waits (on notifications) until at least `n` bytes are ready to read.
    fn wait_available(&self, n: usize) {
        wait_for(&self.ready, || self.stream.available() >= n);
    }

    fn send_from_peer(&mut self, data: &[u8]) {
        common::write_all(&mut self.peer, data);
    }
}

/// Waits (on notifications) until the input buffer holds at least `n`
/// bytes (for when a pending read holds the stream borrowed).
fn wait_input(socket: &Socket, ready: &Receiver<()>, n: usize) {
    wait_for(ready, || socket.input_buffer_len() >= n);
}

/// Waits for `done()` on append notifications (bounded in count and time).
fn wait_for(ready: &Receiver<()>, done: impl Fn() -> bool) {
    for _ in 0..100_000 {
        if done() {
            return;
        }
        common::recv(ready, "data notification");
    }
    panic!("condition not met after 100000 notifications");
}

fn pair(handle: &LoopHandle, options: TcpOptions) -> Pair {
    let (listener, _) = common::std_listener();
    pair_on(handle, &listener, options)
}

fn pair_on(handle: &LoopHandle, listener: &TcpListener, options: TcpOptions) -> Pair {
    let addr = listener.local_addr().unwrap();
    let (tx, ready) = common::channel();
    let options = options.notify_cb(move |_| {
        let _ = tx.send(());
    });
    let stream = block_on(AsyncIoStream::connect_on(
        handle,
        ("127.0.0.1", addr.port()),
        options,
    ))
    .expect("connect_on");
    let peer = common::accept(listener);
    peer.set_nodelay(true).unwrap();
    let socket = stream.socket().clone();
    Pair {
        stream,
        socket,
        peer,
        ready,
    }
}

fn assert_frame_limit(result: &evstream::Result<Bytes>, max: usize) {
    match result {
        Err(Error::LimitExceeded {
            what: Limit::FrameLength,
            limit,
        }) if *limit == max => {}
        other => panic!("expected LimitExceeded(FrameLength, {max}), got {other:?}"),
    }
}

/// Checks that `pair`'s connection still exchanges data both ways.
fn exchange(pair: &mut Pair, tag: &str) {
    let line = format!("ping {tag}\n");
    pair.send_from_peer(line.as_bytes());
    let got = block_on(pair.stream.read_until_delimiter(b"\n", 64))
        .expect("read on the other connection");
    assert_eq!(&got[..], line.as_bytes());
    block_on(pair.stream.send(Bytes::from(format!("pong {tag}")))).expect("send");
    let mut reply = vec![0; 5 + tag.len()];
    pair.peer.read_exact(&mut reply).expect("read the reply");
    assert_eq!(reply, format!("pong {tag}").as_bytes());
}

fn is_stall(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A peer that offers `total` bytes, `block` repeated (so byte `i` is
/// `block[i % block.len()]`), then closes. With `stall`, once `armed` is
/// set, the first write that makes no progress for [`SEND_STALL`] reports
/// the bytes sent so far. Returns how many bytes it sent (it stops at the
/// first hard error).
fn flood(
    mut peer: TcpStream,
    total: usize,
    block: Vec<u8>,
    stall: Option<(Sender<usize>, Arc<AtomicBool>)>,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        if stall.is_some() {
            peer.set_write_timeout(Some(SEND_STALL)).unwrap();
        }
        let mut stall = stall;
        let mut sent = 0;
        while sent < total {
            let at = sent % block.len();
            let n = (total - sent).min(block.len() - at).min(256 * KIB);
            match peer.write(&block[at..at + n]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_stall(&err) => match &stall {
                    Some((tx, armed)) => {
                        if armed.load(Ordering::SeqCst) {
                            let _ = tx.send(sent);
                            stall = None;
                            peer.set_write_timeout(Some(WAIT)).unwrap();
                        }
                    }
                    // A plain blocking write timed out after WAIT.
                    None => break,
                },
                Err(_) => break,
            }
        }
        sent
    })
}

/// Newline-free filler for [`flood`].
fn filler() -> Vec<u8> {
    vec![b'x'; 64 * KIB]
}

// ---------------------------------------------------------------------------
// 1. Delimiters across packets and chunks; long sequences of records
// ---------------------------------------------------------------------------

/// Rule 1: a pending `read_until` whose delimiter arrives split over three
/// separate packets ("HEAD" "ER\r" "\n\r\nbody") completes only once the
/// whole delimiter is there, with every byte, and leaves the rest buffered.
#[test]
fn read_until_completes_when_split_delimiter_arrives() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let (waker, woken) = common::channel_waker();
    let socket = p.socket.clone();
    {
        let mut read = pin!(p.stream.read_until_delimiter(b"\r\n\r\n", 1024));
        assert!(poll_once(read.as_mut(), &waker).is_pending());
        for part in [&b"HEAD"[..], b"ER\r"] {
            common::write_all(&mut p.peer, part);
            // Wait until evstream has the part, so the next one is a
            // separate packet, and let the read see it.
            common::recv(&woken, "wake-up for a partial header");
            assert!(
                poll_once(read.as_mut(), &waker).is_pending(),
                "no complete delimiter yet after {part:?}"
            );
        }
        common::write_all(&mut p.peer, b"\n\r\nbody");
        let header = poll_until_ready(read.as_mut(), &waker, &woken).expect("read_until");
        assert_eq!(&header[..], b"HEADER\r\n\r\n");
    }
    assert!(!socket.reading());
    let body = block_on(p.stream.read_bytes(4)).expect("read_bytes");
    assert_eq!(&body[..], b"body");
}

/// Rule 1: a multi-byte delimiter that spans chunks already in the input
/// buffer (each part received before the read starts) is found, for
/// `read_until` and `read_until_excluding`.
#[test]
fn delimiter_spanning_buffered_chunks_is_found() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let mut expected = 0;
    for part in [&b"HEAD"[..], b"ER\r", b"\n\r", b"\nbody\r", b"\nnext"] {
        p.send_from_peer(part);
        expected += part.len();
        p.wait_available(expected);
    }
    let header = block_on(p.stream.read_until_delimiter(b"\r\n\r\n", 1024)).expect("read_until");
    assert_eq!(&header[..], b"HEADER\r\n\r\n");
    let body = block_on(p.stream.read_until_excluding(b"\r\n", 1024)).expect("excluding");
    assert_eq!(
        &body[..],
        b"body",
        "the delimiter is consumed, not returned"
    );
    assert_eq!(p.stream.available(), 4);
    let mut rest = [0u8; 4];
    assert_eq!(p.stream.peek_buffered(&mut rest), 4);
    assert_eq!(&rest, b"next");
}

/// Rule 1: 100 000 `key=value\n` records read with `read_until` (driven by
/// `EventLoop::block_on` on the loop's own thread) arrive complete and in
/// order, and the end then reads as `UnexpectedEof` with nothing received.
#[test]
fn read_until_consumes_100k_records_without_loss() {
    const RECORDS: usize = 100_000;
    let (listener, addr) = common::std_listener();
    let peer = thread::spawn(move || {
        let mut peer = common::accept(&listener);
        let mut batch = Vec::with_capacity(80 * KIB);
        for i in 0..RECORDS {
            writeln!(batch, "key{i}=value{i}").unwrap();
            if batch.len() >= 64 * KIB {
                common::write_all(&mut peer, &batch);
                batch.clear();
            }
        }
        common::write_all(&mut peer, &batch);
        // Dropping the stream sends FIN.
    });
    let mut ev = EventLoop::new().expect("loop");
    let handle = ev.handle();
    let read = ev
        .block_on(within(WAIT, async move {
            let mut stream =
                AsyncIoStream::connect_on(&handle, ("127.0.0.1", addr.port()), TcpOptions::new())
                    .await
                    .expect("connect_on");
            let mut expected = Vec::new();
            for i in 0..RECORDS {
                let line = stream
                    .read_until_delimiter(b"\n", 64)
                    .await
                    .unwrap_or_else(|err| panic!("record {i}: {err}"));
                expected.clear();
                writeln!(expected, "key{i}=value{i}").unwrap();
                assert_eq!(line, expected, "record {i}");
            }
            let end = stream.read_until_delimiter(b"\n", 64).await;
            assert!(
                matches!(end, Err(Error::UnexpectedEof { received: 0, .. })),
                "after the last record: {end:?}"
            );
            RECORDS
        }))
        .expect("block_on");
    assert_eq!(read, RECORDS);
    peer.join().unwrap();
}

type ChainResult = Result<AsyncIoStream, String>;

/// Reads record `i` of `n` with `read_until_delimiter_cb` and chains the next read
/// from its callback.
fn read_record(
    stream: AsyncIoStream,
    handle: LoopHandle,
    i: usize,
    n: usize,
    done: Sender<ChainResult>,
) {
    stream.read_until_delimiter_cb(b"\n".to_vec(), 64, move |stream, result| {
        if !handle.is_loop_thread() {
            let _ = done.send(Err(format!("record {i}: callback off the loop thread")));
            return;
        }
        match result {
            Ok(line) if line == format!("key{i}=value{i}\n").as_bytes() => {
                if i + 1 == n {
                    let _ = done.send(Ok(stream));
                } else {
                    read_record(stream, handle, i + 1, n, done);
                }
            }
            Ok(line) => {
                let _ = done.send(Err(format!("record {i}: got {line:?}")));
            }
            Err(err) => {
                let _ = done.send(Err(format!("record {i}: {err}")));
            }
        }
    });
}

/// Rules 1 and 10: a chain of 10 000 `read_until_delimiter_cb` calls, each issued
/// from the previous callback on the loop thread with the stream it handed
/// back, reads every record in order; the stream then reads what follows.
#[test]
fn read_until_cb_chain_consumes_10k_records() {
    const RECORDS: usize = 10_000;
    let lt = LoopThread::start();
    let p = pair(&lt.handle, TcpOptions::new());
    let Pair {
        stream, mut peer, ..
    } = p;
    let writer = thread::spawn(move || {
        let mut data = Vec::new();
        for i in 0..RECORDS {
            writeln!(data, "key{i}=value{i}").unwrap();
        }
        data.extend_from_slice(b"end\n");
        // Many writes, so records straddle packets.
        for piece in data.chunks(1000) {
            common::write_all(&mut peer, piece);
        }
        peer
    });
    let (done_tx, done_rx) = common::channel();
    read_record(stream, lt.handle.clone(), 0, RECORDS, done_tx);
    let mut stream = common::recv(&done_rx, "the end of the read chain").expect("chain");
    let end = block_on(stream.read_until_delimiter(b"\n", 64)).expect("trailing record");
    assert_eq!(&end[..], b"end\n");
    drop(writer.join().unwrap());
}

// ---------------------------------------------------------------------------
// 2. Zero copy
// ---------------------------------------------------------------------------

/// Performance design: frames read from one received chunk are slices of it
/// (consecutive frames are adjacent in memory), for `read_until`,
/// `read_until_excluding` and `read_bytes`.
#[test]
fn frames_inside_one_chunk_are_not_copied() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let packet = b"one\ntwo\nthree\r\nfour\r\n0123456789abcdefghij";
    p.send_from_peer(packet);
    p.wait_available(packet.len());

    let one = block_on(p.stream.read_until_delimiter(b"\n", 64)).unwrap();
    let two = block_on(p.stream.read_until_delimiter(b"\n", 64)).unwrap();
    assert_eq!((&one[..], &two[..]), (&b"one\n"[..], &b"two\n"[..]));
    assert_eq!(
        two.as_ptr() as usize,
        one.as_ptr() as usize + one.len(),
        "read_until frames of one chunk share its memory"
    );

    let three = block_on(p.stream.read_until_excluding(b"\r\n", 64)).unwrap();
    let four = block_on(p.stream.read_until_excluding(b"\r\n", 64)).unwrap();
    assert_eq!((&three[..], &four[..]), (&b"three"[..], &b"four"[..]));
    assert_eq!(
        three.as_ptr() as usize,
        two.as_ptr() as usize + two.len(),
        "read_until_excluding frames share the chunk's memory"
    );
    assert_eq!(
        four.as_ptr() as usize,
        three.as_ptr() as usize + three.len() + 2,
        "read_until_excluding frames share the chunk's memory"
    );

    let a = block_on(p.stream.read_bytes(10)).unwrap();
    let b = block_on(p.stream.read_bytes(10)).unwrap();
    assert_eq!((&a[..], &b[..]), (&b"0123456789"[..], &b"abcdefghij"[..]));
    assert_eq!(
        a.as_ptr() as usize,
        four.as_ptr() as usize + four.len() + 2,
        "read_bytes frames share the chunk's memory"
    );
    assert_eq!(
        b.as_ptr() as usize,
        a.as_ptr() as usize + a.len(),
        "read_bytes frames share the chunk's memory"
    );
}

// ---------------------------------------------------------------------------
// 3. max_bytes
// ---------------------------------------------------------------------------

/// The most the input may hold after a read failed on `max_bytes`: the
/// bytes the read had taken (less than `max_bytes` plus one refill of the
/// input buffer) plus one more refill by the loop meanwhile, plus a read
/// chunk of slack. A small multiple of the configuration, never the peer's
/// 64 MiB.
fn limit_bound(max_bytes: usize) -> usize {
    max_bytes + 2 * DEFAULT_READ_HIGH_WATERMARK + DEFAULT_READ_CHUNK_SIZE
}

/// Rules 4 and 8: a peer offering 64 MiB without a newline to a
/// `read_until` with `max_bytes` 1 MiB gets `LimitExceeded(FrameLength,
/// 1 MiB)`; the input stays within a small bound of the limit; the default
/// policy closes the connection (discarding what follows) while the bytes
/// received stay readable; another connection on the loop is unaffected.
#[test]
fn over_long_line_fails_and_closes_with_memory_bounded() {
    let _heavy = heavy();
    let lt = LoopThread::start();
    let mut other = pair(&lt.handle, TcpOptions::new());
    let Pair {
        mut stream,
        socket,
        peer,
        ..
    } = pair(&lt.handle, TcpOptions::new());
    let offered = 64 * MIB;
    let peer = flood(peer, offered, filler(), None);

    let result = block_on(stream.read_until_delimiter(b"\n", MIB));
    assert_frame_limit(&result, MIB);
    assert!(
        socket.is_closed(),
        "the default policy closes the connection"
    );
    let held = socket.input_buffer_len();
    assert!(
        (MIB..=limit_bound(MIB)).contains(&held),
        "input holds {held} bytes after the limit error (limit {MIB})"
    );
    exchange(&mut other, "after");

    // The received bytes stay readable, in order.
    let first = block_on(stream.read_bytes(MIB)).expect("read the buffered bytes");
    assert!(first.iter().all(|&b| b == b'x'));

    // The closed connection discards the rest of the flood and goes away.
    let sent = peer.join().unwrap();
    block_on(socket.closed());
    assert_eq!(
        socket.input_buffer_len(),
        held - MIB,
        "nothing is appended after the close (peer sent {sent})"
    );
    exchange(&mut other, "end");
}

/// Rules 4 and 8: with `LimitPolicy::Pause`, the same flood leaves the
/// connection open with reading paused, the sender blocked far below what
/// it offers and the input bounded; after the application drains the
/// buffered bytes and resumes, the rest of the 64 MiB arrives, every byte.
#[test]
fn over_long_line_with_pause_policy_blocks_sender_and_resumes() {
    let _heavy = heavy();
    let lt = LoopThread::start();
    let mut other = pair(&lt.handle, TcpOptions::new());
    let Pair {
        mut stream,
        socket,
        peer,
        ..
    } = pair(&lt.handle, TcpOptions::new());
    stream.set_limit_policy(LimitPolicy::Pause);
    let offered = 64 * MIB;
    let (stall_tx, stall_rx) = common::channel();
    let armed = Arc::new(AtomicBool::new(false));
    let peer = flood(peer, offered, filler(), Some((stall_tx, armed.clone())));

    let result = block_on(stream.read_until_delimiter(b"\n", MIB));
    assert_frame_limit(&result, MIB);
    armed.store(true, Ordering::SeqCst);
    assert!(!socket.is_closed(), "the pause policy keeps the connection");
    assert!(
        socket.is_reading_paused(),
        "the pause policy pauses reading"
    );

    let sent_at_stall = common::recv(&stall_rx, "the sender blocking");
    let held = socket.input_buffer_len();
    assert!(
        (MIB..=limit_bound(MIB)).contains(&held),
        "input holds {held} bytes after the limit error (limit {MIB})"
    );
    assert!(
        sent_at_stall <= offered / 2,
        "the sender got {sent_at_stall} of {offered} bytes through before blocking"
    );
    exchange(&mut other, "while paused");

    // Drain what is buffered, resume: the rest arrives.
    let buffered = block_on(stream.read_bytes(held)).expect("drain");
    assert!(buffered.iter().all(|&b| b == b'x'));
    socket.resume_reading();
    let mut rest = 0;
    let mut bad = 0;
    block_on(stream.read_until_close_streaming(|chunk| {
        rest += chunk.len();
        bad += chunk.iter().filter(|&&b| b != b'x').count();
    }))
    .expect("the rest of the flood");
    assert_eq!(bad, 0);
    assert_eq!(held + rest, offered, "every byte offered arrives");
    assert_eq!(peer.join().unwrap(), offered);
    exchange(&mut other, "end");
}

/// Rule 4: a frame longer than the read high watermark (64 KiB) but within
/// `max_bytes` (2 MiB) is still read: the read takes the chunks as they
/// come, so the input buffer never has to hold the whole line.
#[test]
fn frame_longer_than_read_watermark_within_max_bytes_is_read() {
    let _heavy = heavy();
    let lt = LoopThread::start();
    let Pair {
        mut stream,
        mut peer,
        ..
    } = pair(&lt.handle, TcpOptions::new().read_watermarks(0, 64 * KIB));
    let line: Vec<u8> = (0..MIB).map(|i| b'a' + (i % 26) as u8).collect();
    let sent = line.clone();
    let writer = thread::spawn(move || {
        common::write_all(&mut peer, &sent);
        common::write_all(&mut peer, b"\ntail\n");
        peer
    });
    let got = block_on(stream.read_until_delimiter(b"\n", 2 * MIB)).expect("the long line");
    assert_eq!(got.len(), MIB + 1);
    assert_same("long line", &got[..MIB], &line);
    assert_eq!(got[MIB], b'\n');
    let tail = block_on(stream.read_until_delimiter(b"\n", 2 * MIB)).expect("the next line");
    assert_eq!(&tail[..], b"tail\n");
    drop(writer.join().unwrap());
}

/// Rule 8: `max_bytes` counts the delimiter: a frame of exactly `max_bytes`
/// is read, one byte more fails with the bytes left in the buffer (and,
/// with the pause policy, the connection open).
#[test]
fn max_bytes_boundary_includes_the_delimiter() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    p.stream.set_limit_policy(LimitPolicy::Pause);
    p.send_from_peer(b"abcd\nabcde\n");
    p.wait_available(11);
    let first = block_on(p.stream.read_until_delimiter(b"\n", 5)).expect("a frame of max_bytes");
    assert_eq!(&first[..], b"abcd\n");
    let too_long = block_on(p.stream.read_until_delimiter(b"\n", 5));
    assert_frame_limit(&too_long, 5);
    assert_eq!(p.stream.available(), 6, "the bytes stay buffered");
    assert!(!p.socket.is_closed());
    let second = block_on(p.stream.read_until_excluding(b"\n", 6)).expect("with a larger limit");
    assert_eq!(&second[..], b"abcde");
}

// ---------------------------------------------------------------------------
// 4. read_bytes
// ---------------------------------------------------------------------------

/// Rule 1: `read_bytes(n)` waits across separate packets for exactly `n`
/// bytes and leaves the following ones buffered; a 1 MiB `read_bytes` over
/// many small writes gets every byte.
#[test]
fn read_bytes_collects_exact_count_across_packets() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let (waker, woken) = common::channel_waker();
    {
        let mut read = pin!(p.stream.read_bytes(10));
        assert!(poll_once(read.as_mut(), &waker).is_pending());
        for part in [&b"0123"[..], b"4567"] {
            common::write_all(&mut p.peer, part);
            common::recv(&woken, "wake-up for a partial read");
            assert!(poll_once(read.as_mut(), &waker).is_pending());
        }
        common::write_all(&mut p.peer, b"89AB");
        let got = poll_until_ready(read.as_mut(), &waker, &woken).expect("read_bytes");
        assert_eq!(&got[..], b"0123456789");
    }
    assert_eq!(&block_on(p.stream.read_bytes(2)).unwrap()[..], b"AB");

    let data = common::random_data(4, MIB);
    let sent = data.clone();
    let Pair {
        mut stream,
        mut peer,
        ..
    } = p;
    let writer = thread::spawn(move || {
        for piece in sent.chunks(4 * KIB) {
            common::write_all(&mut peer, piece);
        }
        common::write_all(&mut peer, b"trailer");
        peer
    });
    let got = block_on(stream.read_bytes(MIB)).expect("1 MiB");
    assert_same("read_bytes(1 MiB)", &got, &data);
    assert_eq!(&block_on(stream.read_bytes(7)).unwrap()[..], b"trailer");
    drop(writer.join().unwrap());
}

/// Rules 6 and 8: the connection ending before `n` bytes gives
/// `UnexpectedEof { needed: n, received }`, and the received bytes stay
/// readable; at the very end a read reports nothing received.
#[test]
fn read_bytes_at_eof_reports_unexpected_eof_and_keeps_bytes() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let data = common::random_data(5, 100);
    p.send_from_peer(&data);
    p.peer.shutdown(Shutdown::Write).unwrap();
    let result = block_on(p.stream.read_bytes(1000));
    match result {
        Err(Error::UnexpectedEof {
            needed: 1000,
            received: 100,
        }) => {}
        other => panic!("expected UnexpectedEof(1000, 100), got {other:?}"),
    }
    assert_eq!(p.stream.available(), 100);
    let kept = block_on(p.stream.read_bytes(100)).expect("the kept bytes");
    assert_same("kept bytes", &kept, &data);
    match block_on(p.stream.read_bytes(1)) {
        Err(Error::UnexpectedEof {
            needed: 1,
            received: 0,
        }) => {}
        other => panic!("expected UnexpectedEof(1, 0), got {other:?}"),
    }
}

/// Rules 6 and 8: `read_until` at EOF without the delimiter gives
/// `UnexpectedEof` saying what arrived, and those bytes stay readable.
#[test]
fn read_until_at_eof_reports_unexpected_eof_and_keeps_bytes() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    p.send_from_peer(b"partial");
    p.peer.shutdown(Shutdown::Write).unwrap();
    let result = block_on(p.stream.read_until_delimiter(b"\n", 64));
    match result {
        Err(Error::UnexpectedEof {
            needed,
            received: 7,
        }) if needed > 7 => {}
        other => panic!("expected UnexpectedEof with 7 received, got {other:?}"),
    }
    let kept = block_on(p.stream.read_bytes(7)).expect("the kept bytes");
    assert_eq!(&kept[..], b"partial");
}

/// Rules 4 and 8: `read_bytes(n)` above `max_buffer_size` fails at once with
/// `LimitExceeded(InputBuffer, max_buffer_size)`; `read_bytes(0)` is empty;
/// the connection goes on working.
#[test]
fn read_bytes_limits_and_zero() {
    let lt = LoopThread::start();
    let limit = 64 * KIB;
    let mut p = pair(&lt.handle, TcpOptions::new().max_buffer_size(limit));
    match block_on(p.stream.read_bytes(limit + 1)) {
        Err(Error::LimitExceeded {
            what: Limit::InputBuffer,
            limit: reported,
        }) if reported == limit => {}
        other => panic!("expected LimitExceeded(InputBuffer, {limit}), got {other:?}"),
    }
    let empty = block_on(p.stream.read_bytes(0)).expect("read_bytes(0)");
    assert!(empty.is_empty());
    p.send_from_peer(b"still here");
    let got = block_on(p.stream.read_bytes(10)).expect("later read");
    assert_eq!(&got[..], b"still here");
}

// ---------------------------------------------------------------------------
// 5. Streaming reads
// ---------------------------------------------------------------------------

/// Rule 1: `read_bytes_streaming` hands over chunks as they arrive (before
/// all `n` bytes are there), their concatenation is what was sent, and the
/// bytes after `n` stay for the next read.
#[test]
fn read_bytes_streaming_delivers_chunks_as_they_arrive() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let data = common::random_data(6, 9000);
    let chunks = RefCell::new(Vec::<Bytes>::new());
    let (waker, woken) = common::channel_waker();
    {
        let mut read = pin!(p
            .stream
            .read_bytes_streaming(data.len(), |chunk| chunks.borrow_mut().push(chunk)));
        assert!(poll_once(read.as_mut(), &waker).is_pending());
        for part in [&data[..3000], &data[3000..6000]] {
            common::write_all(&mut p.peer, part);
            common::recv(&woken, "wake-up for a streamed part");
            assert!(poll_once(read.as_mut(), &waker).is_pending());
        }
        let early: usize = chunks.borrow().iter().map(Bytes::len).sum();
        assert!(
            early > 0 && early <= 6000,
            "chunks arrive before all n bytes ({early} delivered)"
        );
        let mut last = data[6000..].to_vec();
        last.extend_from_slice(b"NEXT");
        common::write_all(&mut p.peer, &last);
        poll_until_ready(read.as_mut(), &waker, &woken).expect("read_bytes_streaming");
    }
    let chunks = chunks.into_inner();
    assert!(chunks.len() >= 2, "{} callbacks", chunks.len());
    assert_same("streamed bytes", &chunks.concat(), &data);
    assert_eq!(&block_on(p.stream.read_bytes(4)).unwrap()[..], b"NEXT");
}

/// Rules 1 and 10: `read_bytes_cb` with a streaming callback hands chunks
/// to it on the loop thread as they arrive, then calls the final callback
/// (on the loop thread) with an empty `Bytes` and the stream, which reads
/// the bytes after `n`.
#[test]
fn read_bytes_cb_with_streaming_callback() {
    let lt = LoopThread::start();
    let Pair {
        stream, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    let data = common::random_data(7, 20_000);
    let (chunk_tx, chunk_rx) = common::channel::<(Bytes, bool)>();
    let (done_tx, done_rx) = common::channel();
    let on_loop = lt.handle.clone();
    let on_loop2 = lt.handle.clone();
    stream.read_bytes_cb(
        data.len(),
        Some(Box::new(move |chunk| {
            let _ = chunk_tx.send((chunk, on_loop.is_loop_thread()));
        })),
        move |stream, result| {
            let _ = done_tx.send((result, on_loop2.is_loop_thread(), stream));
        },
    );
    let mut got = Vec::new();
    let mut callbacks = 0;
    common::write_all(&mut peer, &data[..8000]);
    while got.len() < 8000 {
        let (chunk, on_loop) = common::recv(&chunk_rx, "a streamed chunk");
        assert!(on_loop, "streaming callback off the loop thread");
        got.extend_from_slice(&chunk);
        callbacks += 1;
    }
    assert!(
        done_rx.try_recv().is_err(),
        "the final callback waits for all n bytes"
    );
    let mut last = data[8000..].to_vec();
    last.extend_from_slice(b"NEXT");
    common::write_all(&mut peer, &last);
    while got.len() < data.len() {
        let (chunk, on_loop) = common::recv(&chunk_rx, "a streamed chunk");
        assert!(on_loop, "streaming callback off the loop thread");
        got.extend_from_slice(&chunk);
        callbacks += 1;
    }
    let (result, on_loop, mut stream) = common::recv(&done_rx, "the final callback");
    assert!(on_loop, "final callback off the loop thread");
    let last_result = result.expect("read_bytes_cb");
    assert!(
        last_result.is_empty(),
        "with a streaming callback the result is empty"
    );
    assert!(callbacks >= 2, "{callbacks} streaming callbacks");
    assert_same("streamed bytes", &got, &data);
    assert_eq!(&block_on(stream.read_bytes(4)).unwrap()[..], b"NEXT");
}

/// Rule 4: `read_until_close_streaming` over 256 MiB counts every byte (in
/// order, checked by sampling a position pattern); no chunk it hands over is
/// larger than the read high watermark, and when the consumer stops polling
/// halfway the sender blocks with the input buffer at most at the watermark.
#[test]
fn read_until_close_streaming_counts_256_mib_with_bounded_memory() {
    let _heavy = heavy();
    let lt = LoopThread::start();
    let Pair {
        mut stream,
        socket,
        peer,
        ..
    } = pair(&lt.handle, TcpOptions::new());
    let total = 256 * MIB;
    // Byte i is `i as u8`.
    let pattern: Vec<u8> = (0..MIB).map(|i| i as u8).collect();
    let (stall_tx, stall_rx) = common::channel();
    let armed = Arc::new(AtomicBool::new(false));
    let writer = flood(peer, total, pattern, Some((stall_tx, armed.clone())));
    let count = Cell::new(0usize);
    let callbacks = Cell::new(0usize);
    let largest = Cell::new(0usize);
    let out_of_order = Cell::new(None);
    let (waker, woken) = common::channel_waker();
    let counted = {
        let mut read = pin!(stream.read_until_close_streaming(|chunk| {
            let at = count.get();
            let last = chunk[chunk.len() - 1];
            if out_of_order.get().is_none()
                && (chunk[0] != at as u8 || last != (at + chunk.len() - 1) as u8)
            {
                out_of_order.set(Some(at));
            }
            count.set(at + chunk.len());
            callbacks.set(callbacks.get() + 1);
            largest.set(largest.get().max(chunk.len()));
        }));
        // Consume half, then stop polling until the sender is blocked.
        let deadline = Instant::now() + WAIT;
        while count.get() < total / 2 {
            if let Poll::Ready(result) = poll_once(read.as_mut(), &waker) {
                panic!("ended after {} bytes: {result:?}", count.get());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            woken
                .recv_timeout(left)
                .expect("half of the stream within WAIT");
        }
        armed.store(true, Ordering::SeqCst);
        let sent = common::recv(&stall_rx, "the sender blocking");
        let held = socket.input_buffer_len();
        assert!(
            held <= DEFAULT_READ_HIGH_WATERMARK,
            "the input grew to {held} bytes while the consumer was idle (sender at {sent})"
        );
        poll_until_ready(read.as_mut(), &waker, &woken)
    };
    let counted = counted.expect("read_until_close_streaming");
    assert_eq!(writer.join().unwrap(), total);
    assert_eq!(
        out_of_order.get(),
        None,
        "a chunk out of place at this offset"
    );
    assert_eq!(counted, total);
    assert_eq!(count.get(), total);
    assert!(callbacks.get() >= 2);
    assert!(
        largest.get() <= DEFAULT_READ_HIGH_WATERMARK,
        "a chunk of {} bytes",
        largest.get()
    );
}

/// Rules 1 and 10: the callback forms of reading to the end:
/// `read_until_close_streaming_cb` with a streaming callback (chunks, then
/// an empty final result), without one (everything at once), and
/// `read_until_close_cb`, all on the loop thread.
#[test]
fn read_until_close_callback_forms() {
    let lt = LoopThread::start();
    let data = common::random_data(8, 300 * KIB);

    // With a streaming callback.
    let Pair {
        stream, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    let (chunk_tx, chunk_rx) = common::channel::<Bytes>();
    let (done_tx, done_rx) = common::channel();
    let on_loop = lt.handle.clone();
    stream.read_until_close_streaming_cb(
        Some(Box::new(move |chunk| {
            let _ = chunk_tx.send(chunk);
        })),
        move |stream, result| {
            let _ = done_tx.send((result, on_loop.is_loop_thread(), stream));
        },
    );
    common::write_all(&mut peer, &data);
    drop(peer);
    let (result, on_loop, _stream) = common::recv(&done_rx, "the final callback");
    assert!(on_loop);
    assert!(result.expect("streaming to the end").is_empty());
    let got: Vec<u8> = chunk_rx.try_iter().flat_map(|c| c.to_vec()).collect();
    assert_same("streamed to the end", &got, &data);

    // Without one.
    let Pair {
        stream, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    let (done_tx, done_rx) = common::channel();
    let on_loop = lt.handle.clone();
    stream.read_until_close_streaming_cb(None, move |_, result| {
        let _ = done_tx.send((result, on_loop.is_loop_thread()));
    });
    common::write_all(&mut peer, &data);
    drop(peer);
    let (result, on_loop) = common::recv(&done_rx, "the final callback");
    assert!(on_loop);
    assert_same("read to the end", &result.expect("to the end"), &data);

    // read_until_close_cb.
    let Pair {
        stream, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    let (done_tx, done_rx) = common::channel();
    let on_loop = lt.handle.clone();
    stream.read_until_close_cb(move |result| {
        let _ = done_tx.send((result, on_loop.is_loop_thread()));
    });
    common::write_all(&mut peer, &data);
    drop(peer);
    let (result, on_loop) = common::recv(&done_rx, "read_until_close_cb");
    assert!(on_loop);
    assert_same("read_until_close_cb", &result.expect("to the end"), &data);
}

// ---------------------------------------------------------------------------
// 6. Patterns and matchers
// ---------------------------------------------------------------------------

/// Rule 1: `read_until_regex` with `\r?\n\r?\n` finds LF-only and CRLF
/// header terminators, including one arriving split over packets while the
/// read waits; the result ends at the match and the rest stays buffered;
/// a pattern not found within `max_bytes` fails with `FrameLength`.
#[test]
fn read_until_regex_finds_header_terminators() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let end_of_headers = Regex::new(r"\r?\n\r?\n").unwrap();

    let request = b"GET / HTTP/1.0\nHost: a\n\nBODY1";
    p.send_from_peer(request);
    p.wait_available(request.len());
    let head = block_on(p.stream.read_until_regex(&end_of_headers, 1024)).expect("LF headers");
    assert_eq!(&head[..], b"GET / HTTP/1.0\nHost: a\n\n");
    assert_eq!(&block_on(p.stream.read_bytes(5)).unwrap()[..], b"BODY1");

    let (waker, woken) = common::channel_waker();
    {
        let mut read = pin!(p.stream.read_until_regex(&end_of_headers, 1024));
        assert!(poll_once(read.as_mut(), &waker).is_pending());
        for part in [&b"HTTP/1.1 200 OK\r\n"[..], b"A: b\r\n\r"] {
            common::write_all(&mut p.peer, part);
            common::recv(&woken, "wake-up for partial headers");
            assert!(poll_once(read.as_mut(), &waker).is_pending());
        }
        common::write_all(&mut p.peer, b"\nrest");
        let head = poll_until_ready(read.as_mut(), &waker, &woken).expect("CRLF headers");
        assert_eq!(&head[..], b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n");
    }
    assert_eq!(&block_on(p.stream.read_bytes(4)).unwrap()[..], b"rest");

    p.stream.set_limit_policy(LimitPolicy::Pause);
    let junk = [b'h'; 40];
    p.send_from_peer(&junk);
    p.wait_available(40);
    let result = block_on(p.stream.read_until_regex(&end_of_headers, 16));
    assert_frame_limit(&result, 16);
    assert_eq!(p.stream.available(), 40, "the bytes stay buffered");
}

/// Rule 1: `read_until_match` with a matcher that returns the frame's end
/// offset reads length-prefixed frames (including an empty one) that arrive
/// byte by byte, then a `;`-terminated frame in the middle of a buffer.
#[test]
fn read_until_match_uses_the_matchers_offset() {
    let lt = LoopThread::start();
    let Pair {
        mut stream,
        mut peer,
        ..
    } = pair(&lt.handle, TcpOptions::new());
    let length_prefixed = |bytes: &[u8]| {
        let end = 1 + *bytes.first()? as usize;
        (end <= bytes.len()).then_some(end)
    };
    let frames = b"\x03abc\x00\x05hello".to_vec();
    let writer = thread::spawn(move || {
        for &byte in &frames {
            common::write_all(&mut peer, &[byte]);
        }
        common::write_all(&mut peer, b"one;two;three");
        peer
    });
    let a = block_on(stream.read_until_match(64, length_prefixed)).unwrap();
    let b = block_on(stream.read_until_match(64, length_prefixed)).unwrap();
    let c = block_on(stream.read_until_match(64, length_prefixed)).unwrap();
    assert_eq!(
        (&a[..], &b[..], &c[..]),
        (&b"\x03abc"[..], &b"\x00"[..], &b"\x05hello"[..])
    );

    let semicolon = |bytes: &[u8]| bytes.iter().position(|&b| b == b';').map(|at| at + 1);
    let one = block_on(stream.read_until_match(64, semicolon)).unwrap();
    let two = block_on(stream.read_until_match(64, semicolon)).unwrap();
    assert_eq!((&one[..], &two[..]), (&b"one;"[..], &b"two;"[..]));
    assert_eq!(&block_on(stream.read_bytes(5)).unwrap()[..], b"three");
    drop(writer.join().unwrap());
}

/// Rules 1 and 10: `read_until_match_cb` and `read_until_regex_cb` run
/// their callbacks on the loop thread with the frame and the stream.
#[test]
fn match_and_regex_callback_forms() {
    let lt = LoopThread::start();
    let Pair {
        stream, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    common::write_all(&mut peer, b"12345|name: x\r\n\r\ntail");
    let (tx, rx) = common::channel();
    let on_loop = lt.handle.clone();
    let tx2 = tx.clone();
    stream.read_until_match_cb(
        64,
        |bytes: &[u8]| bytes.iter().position(|&b| b == b'|').map(|at| at + 1),
        move |stream, result| {
            let _ = tx.send((result, on_loop.is_loop_thread()));
            let on_loop = on_loop.clone();
            stream.read_until_regex_cb(
                Regex::new(r"\r?\n\r?\n").unwrap(),
                64,
                move |stream, result| {
                    let _ = tx2.send((result, on_loop.is_loop_thread()));
                    drop(stream);
                },
            );
        },
    );
    let (first, on_loop) = common::recv(&rx, "read_until_match_cb");
    assert!(on_loop);
    assert_eq!(&first.unwrap()[..], b"12345|");
    let (second, on_loop) = common::recv(&rx, "read_until_regex_cb");
    assert!(on_loop);
    assert_eq!(&second.unwrap()[..], b"name: x\r\n\r\n");
}

// ---------------------------------------------------------------------------
// 7. Cancel safety
// ---------------------------------------------------------------------------

/// Rules 1 and 12: a `read_until` polled once and dropped, while more
/// bytes arrived behind it, loses none: the bytes it has seen stay counted
/// as buffered input while it waits, and the next read gets them all in
/// order.
#[test]
fn cancelled_read_until_gives_bytes_back_in_order() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    p.send_from_peer(b"abc");
    p.wait_available(3);
    {
        let mut read = pin!(p.stream.read_until_delimiter(b"\n", 64));
        assert!(poll_once(read.as_mut(), Waker::noop()).is_pending());
        assert_eq!(
            p.socket.input_buffer_len(),
            3,
            "the bytes a pending read has seen stay counted"
        );
        assert!(p.socket.reading());
        common::write_all(&mut p.peer, b"de");
        wait_input(&p.socket, &p.ready, 5);
    }
    assert!(
        !p.socket.reading(),
        "a dropped read is no longer in progress"
    );
    assert_eq!(p.stream.available(), 5);
    p.send_from_peer(b"f\n");
    let line = block_on(p.stream.read_until_delimiter(b"\n", 64)).expect("read_until after cancel");
    assert_eq!(&line[..], b"abcdef\n");
}

/// Rule 1: the same for `read_bytes`.
#[test]
fn cancelled_read_bytes_gives_bytes_back_in_order() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    p.send_from_peer(b"12345");
    p.wait_available(5);
    {
        let mut read = pin!(p.stream.read_bytes(10));
        assert!(poll_once(read.as_mut(), Waker::noop()).is_pending());
        assert_eq!(
            p.socket.input_buffer_len(),
            5,
            "the bytes a pending read has seen stay counted"
        );
        common::write_all(&mut p.peer, b"678");
        wait_input(&p.socket, &p.ready, 8);
    }
    assert_eq!(p.stream.available(), 8);
    p.send_from_peer(b"90");
    let got = block_on(p.stream.read_bytes(10)).expect("read_bytes after cancel");
    assert_eq!(&got[..], b"1234567890");
}

// ---------------------------------------------------------------------------
// 8. send
// ---------------------------------------------------------------------------

/// Rule 5: `send(data).await` (data accepted into the output buffer at
/// once) stays pending while the peer reads nothing and the kernel cannot
/// take it all, and completes with the output buffer empty once the peer
/// reads; the peer receives every byte.
#[test]
fn send_completes_once_the_kernel_has_the_data() {
    let lt = LoopThread::start();
    let Pair {
        mut stream,
        socket,
        mut peer,
        ..
    } = pair(&lt.handle, TcpOptions::new().write_watermarks(0, 16 * MIB));
    let data = common::random_data(9, 8 * MIB);
    let len = data.len();
    let reader = {
        let mut send = pin!(stream.send(data.clone()));
        assert!(
            poll_once(send.as_mut(), Waker::noop()).is_pending(),
            "send completed while the peer had not read anything"
        );
        assert!(socket.output_buffer_len() > 0);
        assert!(socket.writing());
        let reader = thread::spawn(move || {
            let mut got = vec![0; len];
            peer.read_exact(&mut got).expect("peer read");
            got
        });
        block_on(send.as_mut()).expect("send");
        reader
    };
    assert_eq!(stream.output_buffer_len(), 0);
    assert!(!socket.writing());
    assert_same("peer received", &reader.join().unwrap(), &data);
}

/// Rule 5: `send` of 64 MiB (all accepted into the output buffer at once,
/// thanks to a 128 MiB write high watermark) to a peer reading at its own
/// pace with a small receive buffer completes only once the kernel took it
/// all: by then the output buffer is empty and the peer has read all but
/// what the kernel buffers can hold.
#[test]
fn send_of_64_mib_completes_only_after_peer_read_most() {
    let _heavy = heavy();
    let lt = LoopThread::start();
    let (listener, _) = common::std_listener();
    // Inherited by the accepted socket: the peer's kernel holds little.
    socket2::SockRef::from(&listener)
        .set_recv_buffer_size(128 * KIB)
        .unwrap();
    let Pair {
        mut stream,
        mut peer,
        ..
    } = pair_on(
        &lt.handle,
        &listener,
        TcpOptions::new().write_watermarks(0, 128 * MIB),
    );
    let total = 64 * MIB;
    let data = Bytes::from(common::random_data(10, total));
    let expected = data.clone();
    let read_so_far = Arc::new(AtomicUsize::new(0));
    let progress = read_so_far.clone();
    let reader = thread::spawn(move || {
        let mut buf = vec![0; 16 * KIB];
        let mut at = 0;
        let mut mismatch = None;
        while at < total {
            let n = peer.read(&mut buf).expect("peer read");
            assert!(n > 0, "EOF after {at} bytes");
            if mismatch.is_none() && buf[..n] != expected[at..at + n] {
                mismatch = Some(at);
            }
            at += n;
            progress.store(at, Ordering::SeqCst);
        }
        mismatch
    });
    block_on(stream.send(data)).expect("send 64 MiB");
    let read_at_completion = read_so_far.load(Ordering::SeqCst);
    assert_eq!(
        stream.output_buffer_len(),
        0,
        "send completes with the output sent"
    );
    // The sender's kernel buffer is at most 4 MiB (net.ipv4.tcp_wmem) and the
    // peer's about 256 KiB: the rest must have been read already.
    assert!(
        read_at_completion >= total - 8 * MIB,
        "send completed when the peer had read only {read_at_completion} of {total} bytes"
    );
    assert_eq!(
        reader.join().unwrap(),
        None,
        "the peer got the bytes in order"
    );
}

/// Rules 5 and 10: `send_cb` calls back on the loop thread with success
/// and the stream once the bytes reached the kernel; the peer gets them.
#[test]
fn send_cb_fires_on_the_loop_thread() {
    let lt = LoopThread::start();
    let Pair {
        stream, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    let (tx, rx) = common::channel();
    let on_loop = lt.handle.clone();
    stream.send_cb(Bytes::from_static(b"hello"), move |stream, result| {
        let _ = tx.send((result, on_loop.is_loop_thread(), stream.output_buffer_len()));
        drop(stream);
    });
    let (result, on_loop, queued) = common::recv(&rx, "send_cb");
    result.expect("send_cb");
    assert!(on_loop, "send_cb ran off the loop thread");
    assert_eq!(queued, 0);
    let mut got = [0u8; 5];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello");
}

// ---------------------------------------------------------------------------
// 9. on_close, closed, reading, writing
// ---------------------------------------------------------------------------

/// A close callback that counts its calls and reports whether it ran on the
/// loop thread.
fn close_probe(
    handle: &LoopHandle,
) -> (
    impl FnOnce() + Send + 'static,
    Arc<AtomicUsize>,
    Receiver<bool>,
) {
    let (tx, rx) = common::channel();
    let count = Arc::new(AtomicUsize::new(0));
    let calls = count.clone();
    let handle = handle.clone();
    (
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(handle.is_loop_thread());
        },
        count,
        rx,
    )
}

/// Rules 7 and 10: `on_close` runs once, on the loop thread, after a
/// graceful close; `closed()` completes; a callback registered after the
/// release still runs (on the loop's next turn, on the loop thread), and
/// the first one has not run again by then.
#[test]
fn on_close_fires_once_after_close() {
    let lt = LoopThread::start();
    let Pair {
        stream,
        socket,
        mut peer,
        ..
    } = pair(&lt.handle, TcpOptions::new());
    let (callback, count, fired) = close_probe(&lt.handle);
    socket.on_close(callback);
    assert!(fired.try_recv().is_err(), "on_close ran before the close");
    stream.close_connection();
    assert!(common::read_to_end(&mut peer).is_empty());
    drop(peer);
    assert!(
        common::recv(&fired, "on_close"),
        "on_close ran off the loop thread"
    );
    block_on(socket.closed());
    assert!(socket.is_closed());

    let (late, late_count, late_fired) = close_probe(&lt.handle);
    socket.on_close(late);
    assert!(
        common::recv(&late_fired, "on_close registered after release"),
        "late on_close ran off the loop thread"
    );
    assert_eq!(late_count.load(Ordering::SeqCst), 1);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "on_close ran more than once"
    );
    assert!(fired.try_recv().is_err());
}

/// Rules 7, 8 and 10: after the peer resets the connection, `on_close` runs
/// once on the loop thread and `closed()` completes.
#[test]
fn on_close_fires_after_peer_reset() {
    let lt = LoopThread::start();
    let Pair { socket, peer, .. } = pair(&lt.handle, TcpOptions::new());
    let (callback, count, fired) = close_probe(&lt.handle);
    socket.on_close(callback);
    common::reset(peer);
    assert!(common::recv(&fired, "on_close after a reset"));
    block_on(socket.closed());
    assert!(socket.is_closed());
    // Anything that would run it again has run by the time a later
    // registration fires.
    let (late, _, late_fired) = close_probe(&lt.handle);
    socket.on_close(late);
    assert!(common::recv(&late_fired, "late on_close"));
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

/// Rule 10 (turbo's `reading()`): `reading()` is true while a `read_until`
/// is pending and false once it completed.
#[test]
fn reading_reports_a_pending_read() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    let (waker, woken) = common::channel_waker();
    assert!(!p.socket.reading());
    {
        let mut read = pin!(p.stream.read_until_delimiter(b"\n", 64));
        assert!(poll_once(read.as_mut(), &waker).is_pending());
        assert!(p.socket.reading(), "a pending read_until is reading");
        common::write_all(&mut p.peer, b"hi\n");
        let line = poll_until_ready(read.as_mut(), &waker, &woken).expect("read_until");
        assert_eq!(&line[..], b"hi\n");
        assert!(!p.socket.reading(), "a completed read is not reading");
    }
    assert!(!p.socket.reading());
}

/// Rule 5 (turbo's `writing()`): `writing()` is true while output waits in
/// the buffer for a peer that does not read, and false once `sent()` says
/// it all reached the kernel.
#[test]
fn writing_reports_queued_output() {
    let _heavy = heavy();
    let lt = LoopThread::start();
    let Pair {
        socket, mut peer, ..
    } = pair(&lt.handle, TcpOptions::new());
    assert!(!socket.writing());
    let data = common::random_data(11, 16 * MIB);
    let end = socket.write_tracked(&data).expect("write_tracked");
    assert_eq!(end, data.len() as u64);
    // The peer reads nothing yet: its kernel buffers fill and the rest waits.
    assert!(
        socket.output_buffer_len() > 0,
        "precondition: 16 MiB do not all fit in the kernel"
    );
    assert!(socket.writing());
    let len = data.len();
    let reader = thread::spawn(move || {
        let mut got = vec![0; len];
        peer.read_exact(&mut got).expect("peer read");
        got
    });
    block_on(socket.sent(end)).expect("sent");
    assert!(!socket.writing());
    assert_eq!(socket.output_buffer_len(), 0);
    assert_same("peer received", &reader.join().unwrap(), &data);
}

// ---------------------------------------------------------------------------
// 10. Policy interplay
// ---------------------------------------------------------------------------

/// Rules 4 and 8: after `LimitExceeded` with the pause policy the
/// application reads the buffered bytes itself (with `read_bytes` and
/// `Read`), resumes reading, and the protocol goes on with what the peer
/// sent meanwhile.
#[test]
fn pause_policy_lets_the_application_drain_and_continue() {
    let lt = LoopThread::start();
    let mut p = pair(&lt.handle, TcpOptions::new());
    p.stream.set_limit_policy(LimitPolicy::Pause);
    let oversized = [b'A'; 100];
    p.send_from_peer(&oversized);
    p.wait_available(100);
    let result = block_on(p.stream.read_until_delimiter(b"\n", 64));
    assert_frame_limit(&result, 64);
    assert!(p.socket.is_reading_paused());
    assert!(!p.socket.is_closed());
    assert_eq!(p.stream.available(), 100, "the bytes stay buffered");

    // The peer goes on while reading is paused.
    p.send_from_peer(b"\nhello\nworld\n");

    let head = block_on(p.stream.read_bytes(60)).expect("read_bytes of the buffered bytes");
    let mut tail = [0u8; 40];
    let mut got = 0;
    while got < tail.len() {
        match Read::read(&mut p.stream, &mut tail[got..]) {
            Ok(0) => panic!("EOF while draining"),
            Ok(n) => got += n,
            Err(err) => panic!("Read while draining: {err}"),
        }
    }
    assert!(head.iter().chain(&tail).all(|&b| b == b'A'));

    p.socket.resume_reading();
    assert!(!p.socket.is_reading_paused());
    let rest: Vec<Bytes> = (0..3)
        .map(|_| block_on(p.stream.read_until_delimiter(b"\n", 64)).expect("the protocol goes on"))
        .collect();
    assert_eq!(rest, [&b"\n"[..], b"hello\n", b"world\n"]);
}
