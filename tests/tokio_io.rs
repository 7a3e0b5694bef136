//! The `tokio` feature (issue #12, item 9): tokio's I/O traits on the
//! stream types, natively, and hyper 1.x serving and fetching HTTP/1.1 over
//! evstream streams (the `hyper_server` example, run as a test).
//!
//! Run with `cargo test --features tokio --test tokio_io`.
#![cfg(feature = "tokio")]

mod common;

#[path = "../examples/hyper_server.rs"]
mod hyper_server;

use std::io::{Read, Write};

use common::{accept, block_on, std_listener};
use evstream::AsyncIoStream;
use hyper::StatusCode;

/// hyper's server and client, both over evstream streams on evstream
/// tasks, with no tokio runtime: every byte of each exchange arrives.
#[test]
fn hyper_serves_and_fetches_http1_over_evstream_streams() {
    block_on(async {
        let (server, addr) = hyper_server::start().await.expect("start");
        let (status, body) = hyper_server::fetch(addr, "/hello", None)
            .await
            .expect("GET /hello");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"hello from evstream");
        let (status, body) = hyper_server::fetch(addr, "/echo", Some(b"round trip"))
            .await
            .expect("POST /echo");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"round trip");
        let (status, _) = hyper_server::fetch(addr, "/missing", None)
            .await
            .expect("GET /missing");
        assert_eq!(status, StatusCode::NOT_FOUND);
        server.close();
    });
}

/// tokio's extension traits drive the streams inside a tokio runtime:
/// `read_exact`, `read_line` (through `AsyncBufRead`, the chunk lent
/// without a copy), `write_all` and `shutdown` (FIN).
#[test]
fn tokio_io_traits_work_on_the_streams() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let (listener, addr) = std_listener();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut stream = runtime
        .block_on(AsyncIoStream::connect(addr))
        .expect("connect");
    let mut peer = accept(&listener);
    peer.write_all(b"abcd line one\nrest").unwrap();
    runtime.block_on(async {
        let mut four = [0u8; 4];
        AsyncReadExt::read_exact(&mut stream, &mut four)
            .await
            .unwrap();
        assert_eq!(&four, b"abcd");
        let mut line = String::new();
        AsyncBufReadExt::read_line(&mut stream, &mut line)
            .await
            .unwrap();
        assert_eq!(line, " line one\n");
        AsyncWriteExt::write_all(&mut stream, b"from tokio")
            .await
            .unwrap();
        AsyncWriteExt::shutdown(&mut stream).await.unwrap();
    });
    let mut got = Vec::new();
    peer.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"from tokio", "every byte, then FIN");
    drop(peer);
    let rest = runtime.block_on(async {
        let mut rest = Vec::new();
        AsyncReadExt::read_to_end(&mut stream, &mut rest)
            .await
            .unwrap();
        rest
    });
    assert_eq!(rest, b"rest");
}

/// tokio-util's `Framed` takes a stream as it is (no compat wrapper).
#[test]
fn tokio_util_framed_takes_the_stream_natively() {
    use futures::{SinkExt, StreamExt};
    use tokio_util::codec::{Framed, LinesCodec};
    let (listener, addr) = std_listener();
    let stream = block_on(AsyncIoStream::connect(addr)).expect("connect");
    let mut peer = accept(&listener);
    let mut framed = Framed::new(stream, LinesCodec::new());
    block_on(framed.send("hello")).unwrap();
    let mut got = [0u8; 6];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hello\n");
    peer.write_all(b"back\n").unwrap();
    assert_eq!(block_on(framed.next()).unwrap().unwrap(), "back");
}
