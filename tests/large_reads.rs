//! Readers with large buffers (64 KiB) mixed with every other kind of
//! reader on one connection: every byte arrives once and in order whatever
//! mix of readers takes it (rule 1), a reader that filled its buffer leaves
//! the rest for the next reader of any kind, and EOF, resets and read
//! timeouts reach a reader that waits with a large buffer (rules 2, 8, 9).
//!
//! These were written for direct reads (kernel straight into the caller's
//! buffer, an experiment measured and reverted; see docs/performance.md),
//! where "the rest" stays in the kernel and must not be stranded there;
//! they hold for any read path.

mod common;

use common::connect_stream;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::pin::pin;
use std::time::Duration;

use common::{assert_same, block_on, LoopThread};
use evstream::{AsyncIoStream, TcpOptions};
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

    let sizes = [65536, 7, 4096, 100_000, 4095, 1, 16384];
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 100_000];
    block_on(async {
        for step in 0.. {
            if step % 8 == 7 {
                // A zero-copy chunk, half of it consumed.
                let chunk = stream.fill_buf().await.expect("fill_buf");
                if chunk.is_empty() {
                    break;
                }
                let half = chunk.len().div_ceil(2);
                got.extend_from_slice(&chunk[..half]);
                AsyncBufReadExt::consume(&mut stream, half);
                continue;
            }
            let size = sizes[step % sizes.len()];
            let n = stream.read(&mut buf[..size]).await.expect("read");
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    });
    writer.join().unwrap();
    assert_same("8 MiB through mixed readers", &got, &data);
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
