//! The stream layer against the contract: non-blocking `Read` (rule 2),
//! `AsyncRead`/`AsyncBufRead` readiness and wakers (rules 1 and 3), the
//! notification loop of `stream_read_cb` (rule 1), split halves on two
//! threads and `reunite` (rules 5 and 10), write backpressure (rule 4),
//! `poll_close` (rules 6 and 7), three kinds of user on one connection
//! (rule 10), the blocking adaptor (rule 2), `read_until_close` in both forms
//! and its limit and cancel safety (rule 8), and errors and timeouts reaching
//! pending stream operations (rules 8 and 9).

mod common;

use common::connect_stream;
use evstream::prelude::*;

use common::{assert_same, block_on};

use std::collections::HashSet;
use std::future::{poll_fn, Future};
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use common::{LoopThread, WAIT};
use evstream::{AsyncIoStream, Error, Event, Limit, TcpOptions, TimeoutKind};
use futures_lite::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt,
};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// What `observed` options report from the loop thread.
#[derive(Debug)]
enum Signal {
    /// `stream_read_cb` ran.
    Data,
    Event(Event),
}

/// `options` plus a `stream_read_cb` and an `event_cb` that only report.
fn observed(options: TcpOptions) -> (TcpOptions, Receiver<Signal>) {
    let (tx, rx) = common::channel();
    let data_tx = tx.clone();
    let options = options
        .stream_read_cb(move |_| {
            let _ = data_tx.send(Signal::Data);
        })
        .event_cb(move |_, event| {
            let _ = tx.send(Signal::Event(event));
        });
    (options, rx)
}

fn wait_signal(rx: &Receiver<Signal>, what: &str, pred: impl Fn(&Signal) -> bool) {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(signal) if pred(&signal) => return,
            Ok(signal) => seen.push(signal),
            Err(_) => panic!("no {what} within {WAIT:?}; saw {seen:?}"),
        }
    }
}

/// Waits (on notifications) until the stream has at least `n` bytes ready.
fn wait_available(stream: &AsyncIoStream, rx: &Receiver<Signal>, n: usize) {
    while stream.available() < n {
        wait_signal(rx, "data notification", |s| matches!(s, Signal::Data));
    }
}

fn assert_kind<T: std::fmt::Debug>(result: io::Result<T>, kind: ErrorKind, what: &str) {
    match result {
        Err(err) if err.kind() == kind => {}
        other => panic!("{what}: expected {kind:?}, got {other:?}"),
    }
}

/// Takes exactly `n` ready bytes with non-blocking `Read::read` calls, each
/// of which must return bytes.
fn read_ready(stream: &mut AsyncIoStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    while out.len() < n {
        let want = (n - out.len()).min(buf.len());
        match Read::read(stream, &mut buf[..want]) {
            Ok(k) if k > 0 => out.extend_from_slice(&buf[..k]),
            other => panic!("reading {n} ready bytes: got {other:?} after {}", out.len()),
        }
    }
    out
}

/// Polls `poll_read` with `cx` until `n` bytes came, waiting for a wake on
/// `woken` after each `Pending`.
fn poll_read_exactly(
    stream: &mut AsyncIoStream,
    cx: &mut Context<'_>,
    woken: &Receiver<()>,
    n: usize,
) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; n];
    while out.len() < n {
        let want = n - out.len();
        match Pin::new(&mut *stream).poll_read(cx, &mut buf[..want]) {
            Poll::Ready(Ok(k)) if k > 0 => out.extend_from_slice(&buf[..k]),
            Poll::Ready(other) => panic!("poll_read: {other:?} after {} bytes", out.len()),
            Poll::Pending => common::recv(woken, "wake of a pending poll_read"),
        }
    }
    out
}

/// Whether `whole` is an interleaving of the chunk sequences: some merge of
/// them, each kept in its own order, concatenates to exactly `whole`. This
/// is what "no byte lost, duplicated or reordered, and each reader (writer)
/// sees its bytes in order" means for several readers (writers) taking
/// (queuing) contiguous runs atomically. Returns the furthest offset a merge
/// reached on failure.
fn check_interleaving(whole: &[u8], sequences: &[Vec<&[u8]>]) -> Result<(), usize> {
    let total: usize = sequences.iter().flatten().map(|c| c.len()).sum();
    if total != whole.len() {
        return Err(total.min(whole.len()));
    }
    let k = sequences.len();
    let mut dead: HashSet<Vec<usize>> = HashSet::new();
    // Depth-first over merge states (next chunk index per sequence), with
    // an explicit stack; dead states are remembered so ambiguity (two
    // sequences whose next chunks both match) costs little.
    let mut stack: Vec<(Vec<usize>, usize, usize)> = vec![(vec![0; k], 0, 0)];
    let mut furthest = 0;
    while let Some((indices, pos, next)) = stack.last_mut() {
        furthest = furthest.max(*pos);
        if *pos == whole.len() {
            return Ok(());
        }
        if *next == k {
            dead.insert(indices.clone());
            stack.pop();
            continue;
        }
        let seq = *next;
        *next += 1;
        if let Some(chunk) = sequences[seq].get(indices[seq]) {
            if whole[*pos..].starts_with(chunk) {
                let mut advanced = indices.clone();
                advanced[seq] += 1;
                if !dead.contains(&advanced) {
                    let at = *pos + chunk.len();
                    stack.push((advanced, at, 0));
                }
            }
        }
    }
    Err(furthest)
}

/// Cuts `data` into consecutive chunks of the given lengths.
fn chunks_of<'a>(data: &'a [u8], lengths: &[usize]) -> Vec<&'a [u8]> {
    let mut at = 0;
    lengths
        .iter()
        .map(|&n| {
            let chunk = &data[at..at + n];
            at += n;
            chunk
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Rule 2: non-blocking std Read
// ---------------------------------------------------------------------------

/// Rule 2: `Read` (and `try_read`) on an open stream with nothing buffered
/// is `WouldBlock`, never `Ok(0)`, also after bytes were read; `Ok(0)` comes
/// only after the peer's FIN and the last byte, and stays.
#[test]
fn std_read_would_block_when_empty_and_zero_only_at_eof() {
    let lt = LoopThread::start();
    let (options, signals) = observed(TcpOptions::new());
    let (mut stream, mut peer) = connect_stream(&lt.handle, options);
    let mut buf = [0u8; 64];

    assert_kind(
        Read::read(&mut stream, &mut buf),
        ErrorKind::WouldBlock,
        "read, fresh",
    );
    assert_kind(
        stream.try_read(&mut buf),
        ErrorKind::WouldBlock,
        "try_read, fresh",
    );

    common::write_all(&mut peer, b"abc");
    wait_available(&stream, &signals, 3);
    assert_eq!(read_ready(&mut stream, 3), b"abc");
    assert_kind(
        Read::read(&mut stream, &mut buf),
        ErrorKind::WouldBlock,
        "read, drained",
    );
    assert_kind(
        stream.try_read(&mut buf),
        ErrorKind::WouldBlock,
        "try_read, drained",
    );

    common::write_all(&mut peer, b"defg");
    peer.shutdown(Shutdown::Write).unwrap();
    wait_signal(&signals, "Eof", |s| matches!(s, Signal::Event(Event::Eof)));
    // The bytes before the FIN come first, then the end.
    assert_eq!(read_ready(&mut stream, 4), b"defg");
    assert_eq!(Read::read(&mut stream, &mut buf).unwrap(), 0);
    assert_eq!(Read::read(&mut stream, &mut buf).unwrap(), 0);
    assert_eq!(stream.try_read(&mut buf).unwrap(), 0);
    stream.close_connection();
}

// ---------------------------------------------------------------------------
// Rules 1 and 3: AsyncRead / AsyncBufRead readiness and wakers
// ---------------------------------------------------------------------------

/// Rules 1 and 3: `poll_read` and `poll_fill_buf` on an empty stream return
/// `Pending` (not `WouldBlock`), and the stored waker is woken when bytes
/// are appended.
#[test]
fn pending_read_and_fill_buf_are_woken_when_data_arrives() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let (waker, woken) = common::channel_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 16];

    // Pending through a real read future too.
    let once = block_on(futures_lite::future::poll_once(AsyncReadExt::read(
        &mut stream,
        &mut buf,
    )));
    assert!(once.is_none(), "read future on an empty stream: {once:?}");

    assert!(Pin::new(&mut stream)
        .poll_read(&mut cx, &mut buf)
        .is_pending());
    common::write_all(&mut peer, b"ping");
    common::recv(&woken, "wake of the pending poll_read after data");
    assert_eq!(poll_read_exactly(&mut stream, &mut cx, &woken, 4), b"ping");

    // Drained again: poll_fill_buf waits the same way.
    assert!(Pin::new(&mut stream).poll_fill_buf(&mut cx).is_pending());
    common::write_all(&mut peer, b"pong");
    common::recv(&woken, "wake of the pending poll_fill_buf after data");
    match Pin::new(&mut stream).poll_fill_buf(&mut cx) {
        Poll::Ready(Ok(chunk)) => {
            assert!(!chunk.is_empty() && b"pong".starts_with(chunk), "{chunk:?}")
        }
        other => panic!("poll_fill_buf after the wake: {other:?}"),
    }
    stream.close_connection();
}

/// Rules 1 and 3: a pending `poll_read` is woken by the peer's FIN and then
/// completes with `Ok(0)`.
#[test]
fn pending_read_is_woken_by_eof() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let (waker, woken) = common::channel_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 16];

    assert!(Pin::new(&mut stream)
        .poll_read(&mut cx, &mut buf)
        .is_pending());
    peer.shutdown(Shutdown::Write).unwrap();
    common::recv(&woken, "wake of the pending poll_read at EOF");
    match Pin::new(&mut stream).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Ok(0)) => {}
        other => panic!("poll_read at EOF: {other:?}"),
    }
    stream.close_connection();
}

/// Rules 1, 3 and 8: a pending `poll_read` is woken when the peer resets
/// and then fails with `ConnectionReset` (`Error::Reset`).
#[test]
fn pending_read_is_woken_by_reset_and_reports_it() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let (waker, woken) = common::channel_waker();
    let mut cx = Context::from_waker(&waker);
    let mut buf = [0u8; 16];

    assert!(Pin::new(&mut stream)
        .poll_read(&mut cx, &mut buf)
        .is_pending());
    common::reset(peer);
    common::recv(&woken, "wake of the pending poll_read on reset");
    match Pin::new(&mut stream).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(err)) => {
            assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
            assert!(matches!(Error::from(err), Error::Reset));
        }
        other => panic!("poll_read after a reset: {other:?}"),
    }
}

/// Rule 3: `poll_fill_buf` lends the front chunk without copying (two calls
/// without `consume` return the same memory; a partial `consume` leaves the
/// rest of that same chunk), and consuming walks across several received
/// chunks, interleaved with `Read::read`, keeping every byte in order.
#[test]
fn fill_buf_lends_the_front_chunk_without_copying() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let data = common::random_data(3, 256 * KIB);
    common::write_all(&mut peer, &data);
    peer.shutdown(Shutdown::Write).unwrap();

    let mut got = Vec::with_capacity(data.len());
    let mut chunks = 0;
    // Where the previous lent slice continues, if it was consumed in part.
    let mut continues_at: Option<(usize, usize)> = None;
    for step in 0usize.. {
        assert!(step < 10 * data.len(), "no end after {} bytes", got.len());
        let (ptr, len) = {
            let chunk = block_on(AsyncBufReadExt::fill_buf(&mut stream)).expect("fill_buf");
            (chunk.as_ptr() as usize, chunk.len())
        };
        if len == 0 {
            break;
        }
        match continues_at {
            Some(expected) => assert_eq!((ptr, len), expected, "rest of a lent chunk"),
            None => chunks += 1,
        }
        let again = block_on(AsyncBufReadExt::fill_buf(&mut stream)).expect("fill_buf again");
        assert_eq!(
            (again.as_ptr() as usize, again.len()),
            (ptr, len),
            "lent twice"
        );
        let take = len.min(777 + step % 1000);
        got.extend_from_slice(&again[..take]);
        AsyncBufReadExt::consume(&mut stream, take);
        continues_at = (take < len).then_some((ptr + take, len - take));
        if take < len && step % 3 == 0 {
            // A plain read takes from the lent chunk first.
            let mut buf = [0u8; 100];
            let n = Read::read(&mut stream, &mut buf).expect("read from a lent chunk");
            assert!(n > 0 && n <= len - take);
            got.extend_from_slice(&buf[..n]);
            continues_at = (take + n < len).then_some((ptr + take + n, len - take - n));
        }
    }
    assert_same("fill_buf/consume", &got, &data);
    assert!(chunks >= 2, "the data came in {chunks} chunk(s)");
    assert_eq!(Read::read(&mut stream, &mut [0u8; 8]).unwrap(), 0);
}

/// Rule 1 (nothing is ever dropped): a stream dropped while it lends a
/// partly consumed chunk gives the rest back to the front of the input
/// buffer, where the next reader finds it in order.
#[test]
fn dropping_a_stream_with_a_lent_chunk_gives_the_bytes_back() {
    let lt = LoopThread::start();
    let (options, signals) = observed(TcpOptions::new());
    let (mut stream, mut peer) = connect_stream(&lt.handle, options);
    let data = common::random_data(13, 100 * KIB);
    common::write_all(&mut peer, &data);
    wait_available(&stream, &signals, data.len());

    let first = block_on(AsyncBufReadExt::fill_buf(&mut stream))
        .expect("fill_buf")
        .len();
    assert!(first > 10);
    AsyncBufReadExt::consume(&mut stream, 10);
    let socket = stream.socket().clone();
    drop(stream);

    assert_eq!(socket.input_buffer_len(), data.len() - 10);
    let mut other = AsyncIoStream::new(socket);
    assert_eq!(read_ready(&mut other, data.len() - 10), &data[10..]);
    other.close_connection();
}

/// Rule 1: a `stream_read_cb` that reads only one byte per notification is
/// called again while it keeps taking bytes, so it receives every byte of
/// 256 KiB sent in small writes (with reading suspended at a 16 KiB
/// watermark on the way): nothing stalls, nothing is lost.
#[test]
fn read_callback_taking_one_byte_per_call_gets_every_byte() {
    let lt = LoopThread::start();
    let data = Arc::new(common::random_data(4, 256 * KIB));
    let got = Arc::new(Mutex::new(Vec::with_capacity(data.len())));
    let (done_tx, done) = common::channel();
    let (cb_got, len) = (got.clone(), data.len());
    let options = TcpOptions::new()
        .read_watermarks(0, 16 * KIB)
        .stream_read_cb(move |stream| {
            let mut byte = [0u8; 1];
            let result = Read::read(stream, &mut byte);
            let mut got = cb_got.lock().unwrap();
            match result {
                Ok(1) => got.push(byte[0]),
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                other => {
                    let _ = done_tx.send(Err(format!("{other:?} after {}", got.len())));
                }
            }
            if got.len() == len {
                let _ = done_tx.send(Ok(()));
            }
        });
    let (stream, mut peer) = connect_stream(&lt.handle, options);
    let sent = data.clone();
    let writer = thread::spawn(move || {
        for piece in sent.chunks(1000) {
            common::write_all(&mut peer, piece);
        }
        peer
    });

    let outcome = common::recv(&done, "every byte through one-byte reads");
    outcome.expect("callback read");
    let _peer = writer.join().unwrap();
    assert_same("one byte per notification", &got.lock().unwrap(), &data);
    assert_eq!(stream.available(), 0);
    stream.close_connection();
}

// ---------------------------------------------------------------------------
// Rules 5 and 10: split halves on two threads, reunite
// ---------------------------------------------------------------------------

/// Rules 5 and 10: the split halves work on two threads at once, 64 MiB each
/// way concurrently (futures `write_all` on the output half, `fill_buf` /
/// `consume` on the input half); reuniting after about half (the input half
/// lending part of a chunk) and finishing both directions on the reunited
/// stream loses, duplicates and reorders no byte.
#[test]
fn split_halves_full_duplex_then_reunite_mid_stream() {
    const TOTAL: usize = 64 * MIB;
    // Not a multiple of any block size, so the halves stop mid-chunk.
    const HALF: usize = 32 * MIB + 12_345;
    let lt = LoopThread::start();
    let (stream, peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let ours = Arc::new(common::random_data(21, TOTAL));
    let theirs = Arc::new(common::random_data(22, TOTAL));

    let mut peer_tx = peer.try_clone().unwrap();
    let sent = theirs.clone();
    let peer_sender = thread::spawn(move || {
        common::write_all(&mut peer_tx, &sent);
        peer_tx.shutdown(Shutdown::Write).unwrap();
    });
    let expected = ours.clone();
    let mut peer_rx = peer;
    let peer_receiver = thread::spawn(move || {
        let mut buf = vec![0u8; 256 * KIB];
        let mut at = 0;
        loop {
            let n = peer_rx.read(&mut buf).expect("peer read");
            if n == 0 {
                return (at, peer_rx);
            }
            assert!(at + n <= TOTAL, "peer got more than was sent");
            assert_same("peer received", &buf[..n], &expected[at..at + n]);
            at += n;
        }
    });

    let (input, output) = stream.into_split();
    let to_send = ours.clone();
    let writer = thread::spawn(move || {
        let mut output = output;
        block_on(futures::AsyncWriteExt::write_all(
            &mut output,
            &to_send[..HALF],
        ))
        .expect("write_all on the output half");
        output
    });
    let to_check = theirs.clone();
    let reader = thread::spawn(move || {
        let mut input = input;
        let mut at = 0;
        while at < HALF {
            let chunk = block_on(AsyncBufReadExt::fill_buf(&mut input)).expect("fill_buf");
            assert!(!chunk.is_empty(), "EOF after {at} bytes");
            let take = chunk.len().min(HALF - at);
            assert_same("input half", &chunk[..take], &to_check[at..at + take]);
            at += take;
            AsyncBufReadExt::consume(&mut input, take);
        }
        // Make sure the half is lending part of a chunk when reunited.
        let lent = block_on(AsyncBufReadExt::fill_buf(&mut input)).expect("fill_buf");
        assert!(!lent.is_empty(), "EOF after {at} bytes");
        input
    });
    let output = writer.join().expect("writer thread");
    let input = reader.join().expect("reader thread");

    let mut stream = AsyncIoStream::reunite(input, output).expect("halves of one connection");
    let (mut written, mut read) = (HALF, HALF);
    let mut buf = vec![0u8; 256 * KIB];
    block_on(poll_fn(|cx| loop {
        let mut progress = false;
        if written < TOTAL {
            let end = (written + 256 * KIB).min(TOTAL);
            match Pin::new(&mut stream).poll_write(cx, &ours[written..end]) {
                Poll::Ready(Ok(n)) => {
                    assert!(n > 0);
                    written += n;
                    progress = true;
                }
                Poll::Ready(Err(err)) => panic!("write after reunite: {err}"),
                Poll::Pending => {}
            }
        }
        if read < TOTAL {
            match Pin::new(&mut stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(0)) => panic!("EOF after {read} bytes"),
                Poll::Ready(Ok(n)) => {
                    assert!(read + n <= TOTAL, "read more than the peer sent");
                    assert_same("after reunite", &buf[..n], &theirs[read..read + n]);
                    read += n;
                    progress = true;
                }
                Poll::Ready(Err(err)) => panic!("read after reunite: {err}"),
                Poll::Pending => {}
            }
        }
        if written == TOTAL && read == TOTAL {
            return Poll::Ready(());
        }
        if !progress {
            return Poll::Pending;
        }
    }));
    block_on(AsyncWriteExt::close(&mut stream)).expect("close");
    assert_eq!(
        block_on(AsyncReadExt::read(&mut stream, &mut buf)).unwrap(),
        0
    );

    peer_sender.join().expect("peer sender");
    let (peer_got, _peer) = peer_receiver.join().expect("peer receiver");
    assert_eq!(peer_got, TOTAL);
}

/// Rule 10 (split/reunite): halves of different connections are refused
/// and both handed back.
#[test]
fn reunite_refuses_halves_of_different_connections() {
    let lt = LoopThread::start();
    let (a, _peer_a) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let (b, _peer_b) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let (a_in, _a_out) = a.into_split();
    let (_b_in, b_out) = b.into_split();
    let a_socket = a_in.socket().clone();
    let b_socket = b_out.socket().clone();
    let err = AsyncIoStream::reunite(a_in, b_out).expect_err("different connections");
    assert!(err.input.socket() == &a_socket);
    assert!(err.output.socket() == &b_socket);
}

// ---------------------------------------------------------------------------
// Rule 4: write backpressure
// ---------------------------------------------------------------------------

/// Rules 4 and 5: with a peer that does not read, `Write::write` ends in
/// `WouldBlock`, `poll_write` in `Pending`, and `flush` in `WouldBlock`,
/// with the output buffer never above its 1 MiB write high watermark; once
/// the peer reads, the pending write is woken and completes, and every byte
/// arrives intact and in order.
#[test]
fn write_backpressure_at_the_high_watermark() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect_stream(&lt.handle, TcpOptions::new().write_watermarks(0, MIB));
    let data = Arc::new(common::random_data(5, 64 * MIB));

    let mut at = 0;
    loop {
        assert!(
            at < data.len(),
            "64 MiB accepted with a peer that does not read"
        );
        let end = (at + 64 * KIB).min(data.len());
        match Write::write(&mut stream, &data[at..end]) {
            Ok(n) => {
                assert!(n > 0);
                at += n;
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => break,
            Err(err) => panic!("write: {err}"),
        }
        assert!(stream.output_buffer_len() <= MIB);
    }
    assert!(stream.output_buffer_len() <= MIB);
    assert_kind(
        Write::write(&mut stream, &data[at..at + 1]),
        ErrorKind::WouldBlock,
        "write again at the watermark",
    );
    assert_kind(Write::flush(&mut stream), ErrorKind::WouldBlock, "flush");
    let (waker, woken) = common::channel_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut stream)
        .poll_write(&mut cx, &data[at..at + 64 * KIB])
        .is_pending());
    assert!(stream.output_buffer_len() <= MIB);

    let mut peer = peer;
    let reader = thread::spawn(move || common::read_to_end(&mut peer));
    common::recv(&woken, "wake of the pending poll_write once the peer reads");
    let mut woke_with = None;
    for _ in 0..100 {
        match Pin::new(&mut stream).poll_write(&mut cx, &data[at..at + 64 * KIB]) {
            Poll::Ready(result) => {
                woke_with = Some(result.expect("poll_write after the wake"));
                break;
            }
            Poll::Pending => common::recv(&woken, "another wake of poll_write"),
        }
    }
    let n = woke_with.expect("poll_write completes once the peer reads");
    assert!(n > 0);
    at += n;
    block_on(AsyncWriteExt::write_all(&mut stream, &data[at..])).expect("write the rest");
    block_on(AsyncWriteExt::close(&mut stream)).expect("close");
    assert_eq!(stream.output_buffer_len(), 0);
    let received = reader.join().expect("peer reader");
    assert_same("after backpressure", &received, &data);
}

// ---------------------------------------------------------------------------
// Rules 6 and 7: poll_close
// ---------------------------------------------------------------------------

/// Rules 6 and 7: `poll_close` flushes then shuts down the write side — the
/// peer gets every byte then EOF; a second close is harmless; writing after
/// it fails with `BrokenPipe` (`Error::WriteClosed`); the read side keeps
/// working.
#[test]
fn poll_close_flushes_sends_fin_and_keeps_reading() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let data = common::random_data(6, 3 * MIB);
    let mut peer_tx = peer.try_clone().unwrap();
    let mut peer_rx = peer;
    let reader = thread::spawn(move || common::read_to_end(&mut peer_rx));

    block_on(AsyncWriteExt::write_all(&mut stream, &data)).expect("write_all");
    block_on(AsyncWriteExt::close(&mut stream)).expect("close");
    let received = reader.join().expect("peer reader");
    assert_same("before EOF", &received, &data);

    block_on(AsyncWriteExt::close(&mut stream)).expect("second close");
    let err = block_on(AsyncWriteExt::write(&mut stream, b"late")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe, "{err}");
    assert!(matches!(Error::from(err), Error::WriteClosed));

    common::write_all(&mut peer_tx, b"still listening");
    peer_tx.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    block_on(AsyncReadExt::read_to_end(&mut stream, &mut back)).expect("read after close");
    assert_eq!(back, b"still listening");
}

// ---------------------------------------------------------------------------
// Rule 10: three kinds of user on one connection
// ---------------------------------------------------------------------------

#[derive(Default)]
struct CallbackUser {
    reads: Vec<Vec<u8>>,
    writes: Vec<usize>,
    written: usize,
    write_closed: bool,
    errors: Vec<String>,
}

/// Rule 10: a `stream_read_cb` on the loop thread, a futures task on another
/// thread and a blocking thread (`Blocking`) read and write one connection
/// at the same time. The three readers' chunks merge, each in its own
/// order, into exactly the (4 MiB or more) the peer sent; the three
/// writers' accepted runs merge, each in its own order, into exactly what
/// the peer received.
#[test]
fn callback_task_and_blocking_thread_share_one_connection() {
    const PEER_BYTES: usize = 4 * MIB;
    // If a reader has not had a byte yet (a thread scheduled late on a
    // loaded machine), the peer goes on sending, up to this much.
    const PEER_MAX: usize = 16 * MIB;
    const QUOTA: usize = MIB;
    const CB_QUOTA: usize = 512 * KIB;
    let lt = LoopThread::start();
    let from_peer = Arc::new(common::random_data(30, PEER_MAX));
    // Set by each reader (callback, task, thread) on its first chunk.
    let got_some: Arc<[AtomicBool; 3]> = Arc::new(Default::default());
    let cb_data = Arc::new(common::random_data(31, CB_QUOTA));
    let task_data = Arc::new(common::random_data(32, QUOTA));
    let thread_data = Arc::new(common::random_data(33, QUOTA));

    let user = Arc::new(Mutex::new(CallbackUser::default()));
    let (cb_user, cb_bytes, cb_got) = (user.clone(), cb_data.clone(), got_some.clone());
    let options = TcpOptions::new().stream_read_cb(move |stream| {
        // Each read and write is recorded under the lock it was made
        // under, so the record is complete whenever the test looks.
        let mut user = cb_user.lock().unwrap();
        let mut buf = [0u8; 1500];
        match Read::read(stream, &mut buf) {
            Ok(0) => {}
            Ok(n) => {
                user.reads.push(buf[..n].to_vec());
                cb_got[0].store(true, Ordering::SeqCst);
            }
            Err(err) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => user.errors.push(format!("read: {err}")),
        }
        if !user.write_closed && user.written < CB_QUOTA {
            let end = (user.written + 3000).min(CB_QUOTA);
            match Write::write(stream, &cb_bytes[user.written..end]) {
                Ok(n) => {
                    user.written += n;
                    user.writes.push(n);
                }
                Err(err) if err.kind() == ErrorKind::WouldBlock => {}
                Err(_) => user.write_closed = true,
            }
        }
    });
    let (stream, peer) = connect_stream(&lt.handle, options);

    let mut peer_tx = peer.try_clone().unwrap();
    let (data, flags) = (from_peer.clone(), got_some.clone());
    let peer_sender = thread::spawn(move || {
        common::write_all(&mut peer_tx, &data[..PEER_BYTES]);
        let mut sent = PEER_BYTES;
        while sent < PEER_MAX && !flags.iter().all(|f| f.load(Ordering::SeqCst)) {
            let end = sent + 4 * KIB;
            common::write_all(&mut peer_tx, &data[sent..end]);
            sent = end;
        }
        peer_tx.shutdown(Shutdown::Write).unwrap();
        sent
    });
    let mut peer_rx = peer;
    let peer_receiver = thread::spawn(move || {
        let received = common::read_to_end(&mut peer_rx);
        (received, peer_rx)
    });

    // The futures task: alternately writes and reads, sizes varying.
    let mut task_stream = AsyncIoStream::new(stream.socket().clone());
    let (bytes, flags) = (task_data.clone(), got_some.clone());
    let task = thread::spawn(move || {
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        block_on(async {
            let (mut at, mut eof) = (0, false);
            let mut buf = vec![0u8; 4096];
            for i in 1usize.. {
                if eof && at == QUOTA {
                    break;
                }
                if at < QUOTA {
                    let end = (at + 1 + i * 37 % 4096).min(QUOTA);
                    let n = AsyncWriteExt::write(&mut task_stream, &bytes[at..end])
                        .await
                        .expect("task write");
                    assert!(n > 0);
                    at += n;
                    writes.push(n);
                }
                if !eof {
                    let size = 1 + i * 53 % 4096;
                    let n = AsyncReadExt::read(&mut task_stream, &mut buf[..size])
                        .await
                        .expect("task read");
                    if n == 0 {
                        eof = true;
                    } else {
                        reads.push(buf[..n].to_vec());
                        flags[1].store(true, Ordering::SeqCst);
                    }
                }
            }
        });
        (reads, writes)
    });

    // The blocking thread: the same through `Blocking`.
    let mut blocking = AsyncIoStream::new(stream.socket().clone()).blocking();
    blocking.set_read_timeout(Some(WAIT));
    blocking.set_write_timeout(Some(WAIT));
    let (bytes, flags) = (thread_data.clone(), got_some.clone());
    let blocker = thread::spawn(move || {
        let (mut reads, mut writes) = (Vec::new(), Vec::new());
        let (mut at, mut eof) = (0, false);
        let mut buf = vec![0u8; 4096];
        for i in 1usize.. {
            if eof && at == QUOTA {
                break;
            }
            if at < QUOTA {
                let end = (at + 1 + i * 61 % 4096).min(QUOTA);
                let n = Write::write(&mut blocking, &bytes[at..end]).expect("blocking write");
                assert!(n > 0);
                at += n;
                writes.push(n);
            }
            if !eof {
                let size = 1 + i * 29 % 4096;
                let n = Read::read(&mut blocking, &mut buf[..size]).expect("blocking read");
                if n == 0 {
                    eof = true;
                } else {
                    reads.push(buf[..n].to_vec());
                    flags[2].store(true, Ordering::SeqCst);
                }
            }
        }
        (reads, writes)
    });

    let (task_reads, task_writes) = task.join().expect("futures task");
    let (thread_reads, thread_writes) = blocker.join().expect("blocking thread");
    let peer_sent = peer_sender.join().expect("peer sender");
    stream.socket().shutdown_write().expect("shutdown_write");
    let (received, _peer) = peer_receiver.join().expect("peer receiver");

    let user = user.lock().unwrap();
    assert!(user.errors.is_empty(), "callback errors: {:?}", user.errors);
    let readers: Vec<Vec<&[u8]>> = [&user.reads, &task_reads, &thread_reads]
        .iter()
        .map(|reads| reads.iter().map(Vec::as_slice).collect())
        .collect();
    for (name, reads) in ["callback", "task", "thread"].iter().zip(&readers) {
        assert!(!reads.is_empty(), "the {name} reader got no byte");
    }
    if let Err(at) = check_interleaving(&from_peer[..peer_sent], &readers) {
        panic!("the readers' chunks do not merge into the peer's bytes (stuck at {at})");
    }

    assert!(user.written > 0, "the callback wrote nothing");
    assert_eq!(task_writes.iter().sum::<usize>(), QUOTA);
    assert_eq!(thread_writes.iter().sum::<usize>(), QUOTA);
    let writers = vec![
        chunks_of(&cb_data, &user.writes),
        chunks_of(&task_data, &task_writes),
        chunks_of(&thread_data, &thread_writes),
    ];
    if let Err(at) = check_interleaving(&received, &writers) {
        panic!(
            "the peer's {} bytes are no merge of the writers' runs (stuck at {at})",
            received.len()
        );
    }
    stream.close_connection();
}

// ---------------------------------------------------------------------------
// Rule 2: the blocking adaptor
// ---------------------------------------------------------------------------

/// Rule 2: on the loop thread — in a `delay` callback with nothing
/// buffered, and in a `stream_read_cb` once the ready bytes are taken — a
/// blocking read that would have to wait fails with `Deadlock`
/// (`Error::WouldDeadlock`) instead of stopping the loop; ready bytes are
/// still returned.
#[test]
fn blocking_read_on_the_loop_thread_fails_instead_of_deadlocking() {
    let lt = LoopThread::start();
    let (cb_tx, cb_results) = common::channel();
    let options = TcpOptions::new().stream_read_cb(move |stream| {
        let mut blocking = AsyncIoStream::new(stream.socket().clone()).blocking();
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        let mut end = None;
        for _ in 0..10 {
            match Read::read(&mut blocking, &mut buf) {
                Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                other => {
                    end = Some(other);
                    break;
                }
            }
        }
        let _ = cb_tx.send((got, end));
    });
    let (stream, mut peer) = connect_stream(&lt.handle, options);

    let (tx, result) = common::channel();
    let socket = stream.socket().clone();
    let handle = lt.handle.clone();
    lt.handle.delay(Duration::ZERO, move || {
        let mut blocking = AsyncIoStream::new(socket).blocking();
        let read = Read::read(&mut blocking, &mut [0u8; 8]);
        let _ = tx.send((handle.is_loop_thread(), read));
    });
    let (on_loop, read) = common::recv(&result, "blocking read in a delay callback");
    assert!(on_loop);
    let err = read.expect_err("a blocking read with nothing buffered on the loop thread");
    assert_eq!(err.kind(), ErrorKind::Deadlock, "{err}");
    assert!(matches!(Error::from(err), Error::WouldDeadlock));

    common::write_all(&mut peer, b"hello");
    let mut got = Vec::new();
    while got.len() < 5 {
        let (bytes, end) = common::recv(&cb_results, "blocking read in stream_read_cb");
        got.extend_from_slice(&bytes);
        match end {
            Some(Err(err)) if err.kind() == ErrorKind::Deadlock => {}
            other => panic!("after the ready bytes: {other:?}"),
        }
    }
    assert_eq!(got, b"hello");
    stream.close_connection();
}

/// Rules 2 and 9: a blocking read with a read timeout fails with
/// `TimedOut` once that time has passed without bytes, and the stream keeps
/// working afterwards.
#[test]
fn blocking_read_timeout_is_timed_out() {
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let mut blocking = stream.blocking();
    blocking.set_read_timeout(Some(Duration::from_millis(300)));
    let start = Instant::now();
    let err = Read::read(&mut blocking, &mut [0u8; 8]).expect_err("nothing was sent");
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(matches!(
        Error::from(err),
        Error::TimedOut(TimeoutKind::Read)
    ));

    blocking.set_read_timeout(Some(WAIT));
    common::write_all(&mut peer, b"late");
    let mut buf = [0u8; 4];
    Read::read_exact(&mut blocking, &mut buf).expect("read after the timeout");
    assert_eq!(&buf, b"late");
    blocking.into_inner().close_connection();
}

/// Rule 9 at the blocking adaptor's seam: an idle read timeout that fired
/// for an async read nobody polled again is reported by the next
/// `BufRead::fill_buf` as `TimedOut`, not taken for the end (`Ok(&[])`).
#[test]
fn blocking_fill_buf_reports_a_timeout_that_fired_before_it() {
    use std::io::BufRead;
    let lt = LoopThread::start();
    let options = TcpOptions::new().read_timeout(Duration::from_millis(50));
    let (mut stream, _peer) = connect_stream(&lt.handle, options);
    let (waker, woken) = common::channel_waker();
    {
        let mut fill = futures::AsyncBufReadExt::fill_buf(&mut stream);
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::pin::Pin::new(&mut fill).poll(&mut cx).is_pending());
        common::recv(&woken, "the read timeout waking the reader");
    }
    let mut blocking = stream.blocking();
    blocking.set_read_timeout(Some(WAIT));
    let err = blocking.fill_buf().expect_err("the timeout, not the end");
    assert!(
        matches!(Error::from(err), Error::TimedOut(TimeoutKind::Read)),
        "the idle read timeout"
    );
}

// ---------------------------------------------------------------------------
// Rule 8 and the read helpers: read_until_close
// ---------------------------------------------------------------------------

/// Rules 1 and 6: `read_until_close` returns everything the peer sent
/// (8 MiB) once it closes, intact.
#[test]
fn read_until_close_returns_everything_at_eof() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let data = Arc::new(common::random_data(7, 8 * MIB));
    let sent = data.clone();
    let sender = thread::spawn(move || {
        common::write_all(&mut peer, &sent);
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    let all = block_on(stream.read_until_close()).expect("read_until_close");
    let _peer = sender.join().unwrap();
    assert_same("read_until_close", &all, &data);
}

/// Rules 1, 6 and 10: `read_until_close_cb` calls back on the loop thread
/// at EOF with everything the peer sent (8 MiB), intact.
#[test]
fn read_until_close_cb_fires_on_the_loop_thread_with_everything() {
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new().stream(true));
    let data = Arc::new(common::random_data(9, 8 * MIB));
    let (tx, rx) = common::channel();
    let handle = lt.handle.clone();
    stream.read_until_close_cb(move |result| {
        let _ = tx.send((handle.is_loop_thread(), result));
    });
    let sent = data.clone();
    let sender = thread::spawn(move || {
        common::write_all(&mut peer, &sent);
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    let (on_loop, result) = common::recv(&rx, "read_until_close_cb");
    let _peer = sender.join().unwrap();
    assert!(on_loop, "read_until_close_cb ran off the loop thread");
    assert_same("read_until_close_cb", &result.expect("result"), &data);
}

/// Rules 4 and 8: `read_until_close` fails with `LimitExceeded(InputBuffer)`
/// when more than `max_buffer_size` arrives, holding no more than that
/// limit, and every byte stays in the input buffer: reading afterwards
/// yields everything in order.
#[test]
fn read_until_close_over_the_limit_gives_the_bytes_back() {
    const LIMIT: usize = 64 * KIB;
    let lt = LoopThread::start();
    let (mut stream, mut peer) =
        connect_stream(&lt.handle, TcpOptions::new().max_buffer_size(LIMIT));
    let data = Arc::new(common::random_data(8, 256 * KIB));
    let sent = data.clone();
    let sender = thread::spawn(move || {
        common::write_all(&mut peer, &sent);
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    let err = block_on(stream.read_until_close()).expect_err("more than the limit");
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
    assert_eq!(
        stream.available(),
        LIMIT,
        "the input holds the limit, no more"
    );
    let mut all = Vec::new();
    block_on(AsyncReadExt::read_to_end(&mut stream, &mut all)).expect("read the rest");
    let _peer = sender.join().unwrap();
    assert_same("after LimitExceeded", &all, &data);
}

/// Rules 1 and 12 (nothing is ever dropped): `read_until_close` is cancel
/// safe: while it waits the bytes stay in (and are counted by) the input
/// buffer, and dropped, it leaves them there, so a later read gets the
/// whole content in order.
#[test]
fn read_until_close_is_cancel_safe() {
    let lt = LoopThread::start();
    let (options, signals) = observed(TcpOptions::new());
    let (mut stream, mut peer) = connect_stream(&lt.handle, options);
    let data = common::random_data(10, 1000 * KIB);
    let (first, rest) = data.split_at(300 * KIB);
    common::write_all(&mut peer, first);
    wait_available(&stream, &signals, first.len());
    let socket = stream.socket().clone();
    {
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut collecting = pin!(stream.read_until_close());
        assert!(collecting.as_mut().poll(&mut cx).is_pending());
        assert_eq!(socket.input_buffer_len(), first.len());
        assert!(socket.reading());
    }
    assert_eq!(socket.input_buffer_len(), first.len());
    assert!(!socket.reading());

    common::write_all(&mut peer, rest);
    peer.shutdown(Shutdown::Write).unwrap();
    let all = block_on(stream.read_until_close()).expect("read_until_close");
    assert_same("after a cancelled read_until_close", &all, &data);
    stream.close_connection();
}

// ---------------------------------------------------------------------------
// Rules 8 and 9: connect errors and timeouts through streams
// ---------------------------------------------------------------------------

/// Rule 8: `AsyncIoStream::connect` to a port nobody listens on fails with
/// `Error::Refused`.
#[test]
fn connect_to_a_refused_port_is_refused() {
    let port = {
        let (listener, addr) = common::std_listener();
        drop(listener);
        addr.port()
    };
    let err =
        block_on(AsyncIoStream::connect(&format!("127.0.0.1:{port}"))).expect_err("nobody listens");
    assert!(matches!(err, Error::Refused), "{err:?}");
}

/// Rule 9: the read timeout set with `connect_on` reaches a pending
/// `AsyncRead` read as `TimedOut`; the connection stays usable, and after
/// progress the re-armed timeout reaches a pending `fill_buf` too.
#[test]
fn read_timeout_reaches_pending_stream_reads() {
    let timeout = Duration::from_millis(300);
    let lt = LoopThread::start();
    let start = Instant::now();
    let (mut stream, mut peer) =
        connect_stream(&lt.handle, TcpOptions::new().read_timeout(timeout));
    let mut buf = [0u8; 8];
    let err = block_on(AsyncReadExt::read(&mut stream, &mut buf)).expect_err("timeout");
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(matches!(
        Error::from(err),
        Error::TimedOut(TimeoutKind::Read)
    ));
    assert!(start.elapsed() >= timeout);

    // Progress restarts the timeout: it counts from the byte's arrival.
    let progress = Instant::now();
    common::write_all(&mut peer, b"x");
    let n = block_on(AsyncReadExt::read(&mut stream, &mut buf)).expect("read after timeout");
    assert_eq!(&buf[..n], b"x");

    let err = block_on(AsyncBufReadExt::fill_buf(&mut stream))
        .map(<[u8]>::len)
        .expect_err("second timeout");
    assert_eq!(err.kind(), ErrorKind::TimedOut, "{err}");
    assert!(progress.elapsed() >= timeout);
    stream.close_connection();
}
