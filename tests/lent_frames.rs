//! Frames split off a lent chunk (rules 1, 4 and 12): the IOStream-style
//! reads take a frame that lies whole in the received chunk the stream has
//! been lent without taking the connection's lock, and leave the rest of
//! the chunk lent. These tests hold that shortcut to the same outcomes as
//! the long way: the same bytes in the same order whatever the mix of
//! reads, the rest still counted as buffered, limits still enforced, and
//! the rest handed to a codec or a later reader.

mod common;

use std::io::Write;
use std::net::Shutdown;
use std::sync::Mutex;
use std::thread;

use bytes::Bytes;
use evstream::codec::{Framed, LinesCodec};
use evstream::prelude::*;
use evstream::{AsyncIoStream, Error, Limit, TcpOptions};
use futures::StreamExt;

use common::{accept, block_on, connect_stream, recv, std_listener, LoopThread};

/// A small deterministic generator (the tests need no crate for it).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
}

/// Lines of 0..120 letters, a quarter of them ended by `\r\n`, the rest by
/// `\n`.
fn line_data(rng: &mut Lcg, len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len + 128);
    while data.len() < len {
        for _ in 0..rng.below(120) {
            data.push(b'a' + rng.below(26) as u8);
        }
        if rng.below(4) == 0 {
            data.extend_from_slice(b"\r\n");
        } else {
            data.push(b'\n');
        }
    }
    data
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Every IOStream-style read, the byte-stream reads and `fill_buf` mixed
/// at random on one stream, against a peer writing in random pieces: each
/// read returns exactly what a model of the byte sequence says, and the
/// end comes where the bytes end.
#[test]
fn a_random_mix_of_reads_agrees_with_a_model() {
    const MAX: usize = 1 << 20;
    let lt = LoopThread::start();
    for seed in 1..=6u64 {
        let mut rng = Lcg(seed);
        let data = line_data(&mut rng, 256 * 1024);
        let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
        let sent = data.clone();
        let mut writer_rng = Lcg(seed ^ 0x5eed);
        let writer = thread::spawn(move || {
            let mut at = 0;
            while at < sent.len() {
                let n = (1 + writer_rng.below(9000)).min(sent.len() - at);
                peer.write_all(&sent[at..at + n]).unwrap();
                at += n;
            }
            peer.shutdown(Shutdown::Write).unwrap();
            peer
        });
        let mut at = 0;
        let mut ops = 0;
        block_on(async {
            loop {
                let rest = &data[at..];
                ops += 1;
                match rng.below(6) {
                    op @ (0 | 1) => {
                        let delimiter: &[u8] = if op == 0 { b"\n" } else { b"\r\n" };
                        let got = stream.read_until_delimiter(delimiter, MAX).await;
                        match find(rest, delimiter) {
                            Some(i) => {
                                let frame = got.unwrap_or_else(|e| {
                                    panic!("seed {seed} op {ops}: read_until failed: {e}")
                                });
                                assert_eq!(
                                    &frame[..],
                                    &rest[..i + delimiter.len()],
                                    "seed {seed} op {ops}"
                                );
                                at += frame.len();
                            }
                            None => {
                                assert!(
                                    matches!(got, Err(Error::UnexpectedEof { .. })),
                                    "seed {seed} op {ops}: {got:?}"
                                );
                                break;
                            }
                        }
                    }
                    2 => {
                        let n = 1 + rng.below(200);
                        let got = stream.read_bytes(n).await;
                        if rest.len() >= n {
                            assert_eq!(&got.unwrap()[..], &rest[..n], "seed {seed} op {ops}");
                            at += n;
                        } else {
                            assert!(
                                matches!(got, Err(Error::UnexpectedEof { .. })),
                                "seed {seed} op {ops}: {got:?}"
                            );
                            break;
                        }
                    }
                    3 => {
                        let mut buf = vec![0u8; 1 + rng.below(300)];
                        let n = stream.read(&mut buf).await.unwrap();
                        assert_eq!(&buf[..n], &rest[..n], "seed {seed} op {ops}");
                        if n == 0 {
                            assert!(rest.is_empty(), "seed {seed} op {ops}: early end");
                            break;
                        }
                        at += n;
                    }
                    4 => {
                        let chunk = futures::AsyncBufReadExt::fill_buf(&mut stream)
                            .await
                            .unwrap();
                        if chunk.is_empty() {
                            assert!(rest.is_empty(), "seed {seed} op {ops}: early end");
                            break;
                        }
                        assert_eq!(chunk, &rest[..chunk.len()], "seed {seed} op {ops}");
                        let take = rng.below(chunk.len().min(300) as u64 + 1);
                        futures::AsyncBufRead::consume(std::pin::Pin::new(&mut stream), take);
                        at += take;
                    }
                    _ => {
                        let frame = stream.read_until_match(MAX, memchr_newline).await;
                        match rest.iter().position(|&b| b == b'\n') {
                            Some(i) => {
                                assert_eq!(
                                    &frame.unwrap()[..],
                                    &rest[..=i],
                                    "seed {seed} op {ops}"
                                );
                                at += i + 1;
                            }
                            None => {
                                assert!(
                                    matches!(frame, Err(Error::UnexpectedEof { .. })),
                                    "seed {seed} op {ops}: {frame:?}"
                                );
                                break;
                            }
                        }
                    }
                }
            }
            let tail = stream.read_until_close().await.unwrap();
            assert_eq!(
                &tail[..],
                &data[at..],
                "seed {seed}: what is left after {ops} reads"
            );
        });
        writer.join().unwrap();
    }
}

fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n').map(|i| i + 1)
}

/// Sends `data` and FIN from a std peer, and returns a stream that has
/// every byte of it buffered (and has seen the end).
fn stream_holding(lt: &LoopThread, data: &[u8]) -> AsyncIoStream {
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    peer.write_all(data).unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    common::wait_until("every byte buffered", || stream.available() == data.len());
    stream
}

/// Rule 4: what stays lent after a frame is split off still counts as
/// buffered input, for the stream and for its socket.
#[test]
fn the_rest_of_a_lent_chunk_stays_counted() {
    let lt = LoopThread::start();
    let mut stream = stream_holding(&lt, b"one\ntwo\nthree\n");
    let first = block_on(stream.read_until_delimiter(b"\n", 64)).unwrap();
    assert_eq!(&first[..], b"one\n");
    assert_eq!(stream.available(), 10, "two\\nthree\\n is still buffered");
    assert_eq!(stream.socket().input_buffer_len(), 10);
    let mut peeked = [0u8; 16];
    let n = stream.peek_buffered(&mut peeked);
    assert_eq!(&peeked[..n], b"two\nthree\n");
    let second = block_on(stream.read_bytes(4)).unwrap();
    assert_eq!(&second[..], b"two\n");
    assert_eq!(stream.available(), 6);
}

/// Rules 1 and 4: a frame longer than `max_bytes` fails with
/// `LimitExceeded(FrameLength)` even when its delimiter lies in the chunk
/// the stream holds, and the bytes stay buffered.
#[test]
fn a_frame_over_max_bytes_in_a_lent_chunk_is_refused() {
    let lt = LoopThread::start();
    let mut stream = stream_holding(&lt, b"x\naaaa\nb\n");
    stream.set_limit_policy(evstream::LimitPolicy::Pause);
    assert_eq!(
        &block_on(stream.read_until_delimiter(b"\n", 64)).unwrap()[..],
        b"x\n"
    );
    match block_on(stream.read_until_delimiter(b"\n", 3)) {
        Err(Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: 3,
        }) => {}
        other => panic!("expected FrameLength, got {other:?}"),
    }
    assert_eq!(stream.available(), 7, "the refused frame stays buffered");
    // The pause policy stopped reading; the peer's FIN may not have been
    // read before it, so the application resumes to see the end.
    stream.socket().resume_reading();
    assert_eq!(
        &block_on(stream.read_until_delimiter(b"\n", 5)).unwrap()[..],
        b"aaaa\n"
    );
    match block_on(stream.read_bytes(3)) {
        Err(Error::UnexpectedEof {
            needed: 3,
            received: 2,
        }) => {}
        other => panic!("expected UnexpectedEof, got {other:?}"),
    }
}

/// Rule 12 at a seam: after frames taken from a lent chunk, a codec gets
/// the rest in order, and after the codec, `read_until_close` gets what it
/// left.
#[test]
fn a_codec_after_frames_from_a_lent_chunk_gets_the_rest() {
    let lt = LoopThread::start();
    let mut stream = stream_holding(&lt, b"first\nsecond\nthird\nfourth\ntail");
    assert_eq!(
        &block_on(stream.read_until_delimiter(b"\n", 64)).unwrap()[..],
        b"first\n"
    );
    let mut framed = Framed::new(stream, LinesCodec::lf(64));
    let line = block_on(framed.next()).unwrap().unwrap();
    assert_eq!(&line[..], b"second");
    let mut stream = framed.into_inner();
    assert_eq!(
        &block_on(stream.read_until_delimiter(b"\n", 64)).unwrap()[..],
        b"third\n"
    );
    let rest = block_on(stream.read_until_close()).unwrap();
    assert_eq!(&rest[..], b"fourth\ntail");
}

/// Rules 1 and 6: a `stream_read_cb` that takes one line per call (its
/// stream lends the chunk and gives the rest back when dropped) is called
/// for every line and then sees the end.
#[test]
fn a_stream_read_cb_taking_a_line_per_call_gets_every_line_and_the_end() {
    let lt = LoopThread::start();
    let (listener, addr) = std_listener();
    let (tx, rx) = common::channel::<Option<Result<Bytes, Error>>>();
    let tx = Mutex::new(tx);
    let _socket = evstream::tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new().stream_read_cb(move |stream| {
            let mut read = std::pin::pin!(stream.read_until_delimiter(b"\n", 64));
            let polled = match common::poll_once_by_hand(&mut read) {
                std::task::Poll::Ready(result) => Some(result),
                std::task::Poll::Pending => None,
            };
            let _ = tx.lock().unwrap().send(polled);
        }),
    )
    .unwrap();
    let mut peer = accept(&listener);
    peer.write_all(b"a\nbb\nccc\ndddd\n").unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let mut lines = Vec::new();
    loop {
        match recv(&rx, "a notification") {
            Some(Ok(line)) => lines.push(line),
            Some(Err(Error::UnexpectedEof { received: 0, .. })) => break,
            Some(Err(err)) => panic!("read failed: {err}"),
            None => {}
        }
    }
    assert_eq!(lines, [&b"a\n"[..], b"bb\n", b"ccc\n", b"dddd\n"]);
}

/// The blocking adaptor over a stream that holds a lent chunk: std's
/// `BufRead` gets the rest in order, then the end.
#[test]
fn std_bufread_after_frames_from_a_lent_chunk_gets_the_rest() {
    use std::io::{BufRead, Read};
    let lt = LoopThread::start();
    let mut stream = stream_holding(&lt, b"first\nsecond\nthird\ntail");
    assert_eq!(
        &block_on(stream.read_until_delimiter(b"\n", 64)).unwrap()[..],
        b"first\n"
    );
    let mut blocking = stream.blocking();
    let mut line = String::new();
    blocking.read_line(&mut line).unwrap();
    assert_eq!(line, "second\n");
    let mut rest = Vec::new();
    blocking.read_to_end(&mut rest).unwrap();
    assert_eq!(rest, b"third\ntail");
    assert_eq!(blocking.fill_buf().unwrap(), b"", "the end, again");
}
