//! Real consumers over evstream's streams (contract rules 2 and 3: std
//! consumers through the blocking adaptor, futures consumers through
//! `AsyncRead`/`AsyncBufRead`/`AsyncWrite`). Each moves 64 MiB of seeded
//! data and checks it byte for byte (or line for line).

mod common;

use common::assert_same;
use evstream::prelude::*;

/// Drives `future` on this thread, bounded by [`LIMIT`].
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    common::block_on_within(future, LIMIT)
}

use std::io::{self, BufRead, BufReader, ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use asynchronous_codec::{Framed, LinesCodec};
use common::{LoopThread, WAIT};
use evstream::{AsyncIoStream, LoopHandle, ServerOptions, TcpOptions, TcpServer};
use futures::{SinkExt, StreamExt};
use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, AsyncWrite};

const MIB: usize = 1024 * 1024;
/// What every consumer here moves.
const SIZE: usize = 64 * MIB;
/// The bound on one 64 MiB consumer run: a hang catcher, generous because
/// these tests run in debug builds, in parallel, on loaded 2-core machines
/// (the slowest, futures-lite's `read_to_end`, takes about 5 s alone).
const LIMIT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs `consumer` on its own thread and waits for it at most [`LIMIT`], so
/// a consumer that never returns fails the test instead of hanging it.
fn bounded<T: Send + 'static>(what: &str, consumer: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = common::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(consumer());
    });
    match rx.recv_timeout(LIMIT) {
        Ok(value) => {
            worker.join().unwrap();
            value
        }
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("{what} ended without a result"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {LIMIT:?}"),
    }
}

/// Connects a stream-mode stream on `handle`'s loop to a std peer.
fn connect(handle: &LoopHandle) -> (AsyncIoStream, TcpStream) {
    let (listener, addr) = common::std_listener();
    let stream = block_on(AsyncIoStream::connect_on(
        handle,
        ("127.0.0.1", addr.port()),
        TcpOptions::new().stream(true),
    ))
    .expect("connect_on");
    let peer = common::accept(&listener);
    (stream, peer)
}

/// The peer sends `data` then FIN, on a thread; joining gives the socket
/// back (kept open until the test is done with it).
fn send_then_fin<D>(mut peer: TcpStream, data: Arc<D>) -> JoinHandle<TcpStream>
where
    D: AsRef<[u8]> + Send + Sync + ?Sized + 'static,
{
    thread::spawn(move || {
        common::write_all(&mut peer, (*data).as_ref());
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    })
}

/// 64 MiB of seeded random bytes, made once and shared by the tests of
/// this file (making it costs about a second in a debug build).
fn random_64m() -> Arc<Vec<u8>> {
    static DATA: OnceLock<Arc<Vec<u8>>> = OnceLock::new();
    DATA.get_or_init(|| Arc::new(common::random_data(101, SIZE)))
        .clone()
}

/// 64 MiB of text lines built from seeded random data: printable ASCII,
/// lengths from 0 (empty lines) up, every line ended by `\n`. Made once and
/// shared.
fn text_64m() -> Arc<String> {
    const ALPHABET: &[u8] =
        b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.;:-_()";
    static TEXT: OnceLock<Arc<String>> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut table = [0u8; 256];
        for (i, t) in table.iter_mut().enumerate() {
            *t = if i % 90 == 0 {
                b'\n'
            } else {
                ALPHABET[i % ALPHABET.len()]
            };
        }
        let mut text = common::random_data(102, SIZE);
        for b in text.iter_mut() {
            *b = table[*b as usize];
        }
        if let Some(last) = text.last_mut() {
            *last = b'\n';
        }
        Arc::new(String::from_utf8(text).expect("ASCII"))
    })
    .clone()
}

/// The lines of `text` as `lines()` yields them (without `\n`).
fn expected_lines(text: &str) -> impl Iterator<Item = &str> {
    text[..text.len() - 1].split('\n')
}

/// A writer that checks what it is given against `expected`, as it comes.
struct CheckingSink<'a> {
    expected: &'a [u8],
    at: usize,
}

impl AsyncWrite for CheckingSink<'_> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let at = self.at;
        let fits = at + data.len() <= self.expected.len();
        if !fits || data != &self.expected[at..at + data.len()] {
            return Poll::Ready(Err(io::Error::new(
                ErrorKind::InvalidData,
                format!("{} bytes at {at} differ from what was sent", data.len()),
            )));
        }
        self.at += data.len();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

// ---------------------------------------------------------------------------
// std consumers through the blocking adaptor (rule 2)
// ---------------------------------------------------------------------------

/// Rule 2: `std::io::copy` from the `Blocking` adaptor into a `Vec` gets all
/// 64 MiB the peer sent before its FIN.
#[test]
fn io_copy_from_blocking_into_a_vec() {
    let lt = LoopThread::start();
    let (stream, peer) = connect(&lt.handle);
    let data = random_64m();
    let sender = send_then_fin(peer, data.clone());
    let (copied, out) = bounded("io::copy", move || {
        let mut blocking = stream.blocking();
        blocking.set_read_timeout(Some(WAIT));
        let mut out = Vec::new();
        let copied = io::copy(&mut blocking, &mut out).expect("io::copy");
        (copied, out)
    });
    let _peer = sender.join().unwrap();
    assert_eq!(copied, SIZE as u64);
    assert_same("io::copy", &out, &data);
}

/// Rule 2: `BufReader::lines` over the `Blocking` adaptor yields every line
/// of 64 MiB of text, each equal to the one sent.
#[test]
fn bufreader_lines_over_blocking() {
    let lt = LoopThread::start();
    let (stream, peer) = connect(&lt.handle);
    let text = text_64m();
    let sender = send_then_fin(peer, text.clone());
    let count = bounded("BufReader::lines", move || {
        let mut blocking = stream.blocking();
        blocking.set_read_timeout(Some(WAIT));
        let mut expected = expected_lines(&text);
        let mut count = 0usize;
        for line in BufReader::new(blocking).lines() {
            let line = line.expect("line");
            let want = expected
                .next()
                .unwrap_or_else(|| panic!("extra line {count}: {line:?}"));
            assert_eq!(line, want, "line {count}");
            count += 1;
        }
        assert!(expected.next().is_none(), "only {count} lines arrived");
        count
    });
    assert!(count > 100_000, "{count} lines");
    let _peer = sender.join().unwrap();
}

/// Rules 2 and 3: the adaptor's own `BufRead` (chunks lent without copying)
/// under `read_until` gets every line of 64 MiB of text.
#[test]
fn blocking_bufread_read_until() {
    let lt = LoopThread::start();
    let (stream, peer) = connect(&lt.handle);
    let text = text_64m();
    let sender = send_then_fin(peer, text.clone());
    bounded("BufRead::read_until", move || {
        let mut blocking = stream.blocking();
        blocking.set_read_timeout(Some(WAIT));
        let mut expected = text.split_inclusive('\n');
        let mut line = Vec::new();
        let mut count = 0usize;
        loop {
            line.clear();
            if BufRead::read_until(&mut blocking, b'\n', &mut line).expect("read_until") == 0 {
                break;
            }
            let want = expected.next().expect("no more lines were sent");
            assert_eq!(line, want.as_bytes(), "line {count}");
            count += 1;
        }
        assert!(expected.next().is_none(), "only {count} lines arrived");
    });
    let _peer = sender.join().unwrap();
}

// ---------------------------------------------------------------------------
// futures consumers (rule 3)
// ---------------------------------------------------------------------------

/// Rule 3: `futures_lite::io::copy` from the stream into a writer that
/// checks every byte moves all 64 MiB.
#[test]
fn futures_lite_copy_into_a_checking_sink() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect(&lt.handle);
    let data = random_64m();
    let sender = send_then_fin(peer, data.clone());
    let (copied, checked) = bounded("futures_lite::io::copy", move || {
        let mut sink = CheckingSink {
            expected: &data,
            at: 0,
        };
        let copied = block_on(futures_lite::io::copy(&mut stream, &mut sink)).expect("copy");
        (copied, sink.at)
    });
    let _peer = sender.join().unwrap();
    assert_eq!(copied, SIZE as u64);
    assert_eq!(checked, SIZE);
}

/// Rule 3: `AsyncReadExt::read_to_end` gets all 64 MiB, ending at the
/// peer's FIN.
#[test]
fn async_read_to_end() {
    let lt = LoopThread::start();
    let (mut stream, peer) = connect(&lt.handle);
    let data = random_64m();
    let sender = send_then_fin(peer, data.clone());
    let (n, out) = bounded("AsyncReadExt::read_to_end", move || {
        let mut out = Vec::new();
        let n = block_on(AsyncReadExt::read_to_end(&mut stream, &mut out)).expect("read_to_end");
        (n, out)
    });
    let _peer = sender.join().unwrap();
    assert_eq!(n, SIZE);
    assert_same("read_to_end", &out, &data);
}

/// Rule 3: futures-lite's `AsyncBufReadExt::lines` over the stream yields
/// every line of 64 MiB of text.
#[test]
fn async_bufread_lines() {
    let lt = LoopThread::start();
    let (stream, peer) = connect(&lt.handle);
    let text = text_64m();
    let sender = send_then_fin(peer, text.clone());
    bounded("AsyncBufReadExt::lines", move || {
        let mut expected = expected_lines(&text);
        let count = block_on(async {
            let mut lines = AsyncBufReadExt::lines(stream);
            let mut count = 0usize;
            while let Some(line) = futures_lite::StreamExt::next(&mut lines).await {
                let line = line.expect("line");
                let want = expected
                    .next()
                    .unwrap_or_else(|| panic!("extra line {count}: {line:?}"));
                assert_eq!(line, want, "line {count}");
                count += 1;
            }
            count
        });
        assert!(expected.next().is_none(), "only {count} lines arrived");
    });
    let _peer = sender.join().unwrap();
}

/// Rules 3 and 5: asynchronous-codec's `Framed` with `LinesCodec` over the
/// stream, both directions at once: 64 MiB of lines go out through the
/// `Sink` to a peer that echoes them, and come back through the `Stream`,
/// each line equal to the one sent; closing the sink ends the exchange.
#[test]
fn framed_lines_codec_both_directions() {
    let lt = LoopThread::start();
    let (stream, mut peer) = connect(&lt.handle);
    let echo = thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = peer.read(&mut buf).expect("echo read");
            if n == 0 {
                peer.shutdown(Shutdown::Write).unwrap();
                return peer;
            }
            common::write_all(&mut peer, &buf[..n]);
        }
    });
    let text = text_64m();
    let (sent, received) = bounded("Framed<LinesCodec>", move || {
        let (mut sink, mut source) = Framed::new(stream, LinesCodec).split();
        block_on(futures::future::join(
            async {
                let mut sent = 0usize;
                for line in text.split_inclusive('\n') {
                    sink.feed(line.to_string()).await.expect("send a line");
                    sent += 1;
                }
                sink.close().await.expect("close the sink");
                sent
            },
            async {
                let mut expected = text.split_inclusive('\n');
                let mut count = 0usize;
                while let Some(line) = source.next().await {
                    let line = line.expect("receive a line");
                    let want = expected
                        .next()
                        .unwrap_or_else(|| panic!("extra line {count}: {line:?}"));
                    assert_eq!(line, want, "line {count}");
                    count += 1;
                }
                assert!(expected.next().is_none(), "only {count} lines came back");
                count
            },
        ))
    });
    assert_eq!(sent, received);
    let _peer = echo.join().unwrap();
}

// ---------------------------------------------------------------------------
// Server side: stream_connect_cb
// ---------------------------------------------------------------------------

/// Rules 2 and 10: a `TcpServer` in stream mode hands each accepted
/// connection's stream to `stream_connect_cb`; moved to another thread and
/// read to the end through `Blocking`, it yields all 64 MiB a std client
/// sent.
#[test]
fn server_stream_connect_cb_read_to_end_on_a_thread() {
    let lt = LoopThread::start();
    let (tx, accepted) = common::channel();
    let tx = Mutex::new(tx);
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().stream_connect_cb(move |stream| {
            let _ = tx.lock().unwrap().send(stream);
        })),
    )
    .expect("bind");
    let data = random_64m();
    let client = common::std_connect(server.local_addr());
    let sender = send_then_fin(client, data.clone());

    let stream = common::recv(&accepted, "accepted stream");
    let out = bounded("Blocking read_to_end", move || {
        let mut blocking = stream.blocking();
        blocking.set_read_timeout(Some(WAIT));
        let mut out = Vec::new();
        Read::read_to_end(&mut blocking, &mut out).expect("read_to_end");
        out
    });
    let _client = sender.join().unwrap();
    assert_same("accepted stream", &out, &data);
    server.close();
}
