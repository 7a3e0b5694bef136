//! The shape Rust users expect (issue #12): the std and futures traits in
//! scope at once without traps, addresses the way std takes them, the
//! connection calls on the stream types, the owned write half's FIN,
//! framing a half, typed reads, and the game-loop peer calls.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
// In scope on purpose, beside std's `Read` and `Write`: the calls below
// must resolve to the streams' inherent async methods without any of these
// traits being needed (so the compiler sees them unused).
#[allow(unused_imports)]
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use common::{accept, block_on, std_listener, LoopThread};
use evstream::codec::{FramedRead, FramedWrite, LinesCodec};
use evstream::peer::{ByteOrder, StreamPeer, TcpPeer};
use evstream::{AsyncIoStream, Error, TcpOptions, TcpServer};

/// A loopback echo server on the default loop, in the async shape.
fn echo_server() -> SocketAddr {
    let server = block_on(TcpServer::listen("127.0.0.1:0")).expect("listen");
    let addr = server.local_addr();
    evstream::spawn(async move {
        while let Ok((stream, _)) = server.accept().await {
            evstream::spawn(common::echo_until_eof(stream));
        }
    });
    addr
}

/// The program of the issue's "done when", as written: both trait
/// families in scope, no fully qualified call. `close` is the futures
/// close (flush + FIN), so the echo server's `read` ends and it closes
/// too, which ends our `read_to_end`.
#[test]
fn the_issue_program_runs_with_both_trait_families_in_scope() {
    let addr = echo_server();
    let echoed = block_on(async {
        let mut s = evstream::AsyncIoStream::connect(addr).await?;
        s.write_all(b"ping").await?;
        s.close().await?; // flush + FIN, the futures meaning
        let mut v = Vec::new();
        s.read_to_end(&mut v).await?;
        Ok::<_, Box<dyn std::error::Error>>(v)
    })
    .expect("the program runs");
    assert_eq!(echoed, b"ping");
}

/// Through a `&mut` too (a helper taking the stream), the calls resolve
/// to the async methods, and the std ones stay reachable through the
/// trait and `try_*`.
#[test]
fn the_async_meaning_holds_through_references_and_std_stays_reachable() {
    async fn exchange(s: &mut AsyncIoStream, message: &[u8]) -> std::io::Result<Vec<u8>> {
        s.write_all(message).await?;
        s.flush().await?;
        let mut reply = vec![0u8; message.len()];
        s.read_exact(&mut reply).await?;
        Ok(reply)
    }
    let addr = echo_server();
    let mut s = block_on(AsyncIoStream::connect(addr)).expect("connect");
    assert_eq!(block_on(exchange(&mut s, b"one")).unwrap(), b"one");
    // The std calls: non-blocking, through the trait or `try_*`.
    assert_eq!(
        Read::read(&mut s, &mut [0u8; 4]).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "nothing buffered: WouldBlock, never Ok(0)"
    );
    assert_eq!(s.try_write(b"two").unwrap(), 3);
    let _ = Write::flush(&mut s);
    let mut two = [0u8; 3];
    block_on(s.read_exact(&mut two)).unwrap();
    assert_eq!(&two, b"two");
    // And through the blocking adaptor.
    let mut blocking = s.blocking();
    blocking.write_all(b"three").unwrap();
    blocking.flush().unwrap();
    let mut three = [0u8; 5];
    blocking.read_exact(&mut three).unwrap();
    assert_eq!(&three, b"three");
}

/// `read_until_delimiter` is evstream's framed read; the futures
/// `read_until(byte, &mut Vec)` works on the same stream.
#[test]
fn read_until_delimiter_and_the_futures_read_until_both_work() {
    use futures_lite::AsyncBufReadExt;
    let (listener, addr) = std_listener();
    let mut s = block_on(AsyncIoStream::connect(addr)).expect("connect");
    let mut peer = accept(&listener);
    peer.write_all(b"first\r\nsecond\nrest").unwrap();
    let first = block_on(s.read_until_delimiter(b"\r\n", 64)).unwrap();
    assert_eq!(&first[..], b"first\r\n");
    let mut second = Vec::new();
    block_on(s.read_until(b'\n', &mut second)).unwrap();
    assert_eq!(second, b"second\n");
}

/// Every address form std takes connects, host names resolve off the
/// caller's thread, and addresses are tried in order.
#[test]
fn connect_takes_what_std_to_socket_addrs_takes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let port = addr.port();
    let refusing = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    block_on(async {
        let forms = [
            AsyncIoStream::connect(addr).await,
            AsyncIoStream::connect(format!("127.0.0.1:{port}")).await,
            AsyncIoStream::connect(&*format!("localhost:{port}")).await,
            AsyncIoStream::connect(("localhost", port)).await,
            AsyncIoStream::connect((std::net::Ipv4Addr::LOCALHOST, port)).await,
            AsyncIoStream::connect(&[refusing, addr][..]).await,
        ];
        for (i, stream) in forms.into_iter().enumerate() {
            let stream = stream.unwrap_or_else(|err| panic!("form {i}: {err}"));
            assert_eq!(stream.peer_addr().unwrap(), addr, "form {i}");
        }
        assert!(matches!(
            AsyncIoStream::connect("no port").await,
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            AsyncIoStream::connect(refusing).await,
            Err(Error::Refused)
        ));
    });
}

/// `connect_with` applies its options on the default loop: here a read
/// timeout that fails a read nobody answers.
#[test]
fn connect_with_applies_options_on_the_default_loop() {
    let (listener, addr) = std_listener();
    let options = TcpOptions::new().read_timeout(Duration::from_millis(50));
    let mut s = block_on(AsyncIoStream::connect_with(addr, options)).expect("connect");
    let _peer = accept(&listener);
    let err = block_on(s.read(&mut [0u8; 1])).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

/// The connection calls on the stream types: io::Result addresses,
/// TCP_NODELAY, shutting down the write side.
#[test]
fn addresses_nodelay_and_shutdown_write_on_the_stream() {
    let (listener, addr) = std_listener();
    let s = block_on(AsyncIoStream::connect(addr)).expect("connect");
    let mut peer = accept(&listener);
    assert_eq!(s.peer_addr().unwrap(), addr);
    assert_eq!(s.local_addr().unwrap(), peer.peer_addr().unwrap());
    assert!(s.nodelay().unwrap(), "on by default");
    s.set_nodelay(false).unwrap();
    assert!(!s.nodelay().unwrap());
    let (input, output) = s.into_split();
    assert_eq!(input.peer_addr().unwrap(), addr);
    output.shutdown_write().unwrap();
    assert!(
        common::read_to_end(&mut peer).is_empty(),
        "FIN, nothing else"
    );
    drop((input, output));
}

/// Dropping the owned write half sends FIN while the read half lives: the
/// peer sees the end and can still answer.
#[test]
fn dropping_the_write_half_sends_fin_and_reading_goes_on() {
    let (listener, addr) = std_listener();
    let s = block_on(AsyncIoStream::connect(addr)).expect("connect");
    let mut peer = accept(&listener);
    let (mut input, mut output) = s.into_split();
    block_on(output.write_all(b"request")).unwrap();
    drop(output);
    assert_eq!(
        common::read_to_end(&mut peer),
        b"request",
        "ends at the FIN"
    );
    peer.write_all(b"reply").unwrap();
    drop(peer);
    let mut reply = Vec::new();
    block_on(input.read_to_end(&mut reply)).unwrap();
    assert_eq!(reply, b"reply");
}

/// Reuniting the halves is not dropping the write half: no FIN.
#[test]
fn reuniting_the_halves_sends_no_fin() {
    let (listener, addr) = std_listener();
    let s = block_on(AsyncIoStream::connect(addr)).expect("connect");
    let mut peer = accept(&listener);
    let (input, output) = s.into_split();
    let mut s = input.reunite(output).expect("same connection");
    block_on(s.write_all(b"after reunite")).unwrap();
    let mut got = [0u8; 13];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"after reunite", "the write side is still open");
    s.close_connection();
    assert!(common::read_to_end(&mut peer).is_empty());
}

/// `FramedRead` and `FramedWrite` over the halves; `into_inner` gives back
/// the bytes not yet delivered as frames.
#[test]
fn framed_read_and_write_over_the_halves() {
    let lt = LoopThread::start();
    let (s, mut peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    let (input, output) = s.into_split();
    let mut frames_in = FramedRead::new(input, LinesCodec::lf(64));
    let mut frames_out = FramedWrite::new(output, LinesCodec::lf(64));
    block_on(frames_out.send("to the peer")).unwrap();
    let mut got = [0u8; 12];
    peer.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"to the peer\n");
    peer.write_all(b"one\ntwo\nthree and no newline").unwrap();
    assert_eq!(
        block_on(frames_in.next()).unwrap().unwrap(),
        Bytes::from("one")
    );
    let mut input = frames_in.into_inner();
    let mut rest = Vec::new();
    drop(frames_out.into_inner()); // the write half: FIN
    drop(peer);
    block_on(input.read_to_end(&mut rest)).unwrap();
    assert_eq!(rest, b"two\nthree and no newline", "nothing decoded ahead");
}

/// Typed reads and writes, big-endian like tokio's, with `_le` variants.
#[test]
fn typed_reads_and_writes_in_both_orders() {
    let (listener, addr) = std_listener();
    let mut s = block_on(AsyncIoStream::connect(addr)).expect("connect");
    let mut peer = accept(&listener);
    let mut wire = Vec::new();
    wire.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
    wire.extend_from_slice(&0xdead_beef_u32.to_le_bytes());
    wire.extend_from_slice(&(-2i16).to_be_bytes());
    wire.extend_from_slice(&1.5f64.to_le_bytes());
    wire.push(7);
    peer.write_all(&wire[..5]).unwrap();
    block_on(async {
        assert_eq!(s.read_u32().await.unwrap(), 0xdead_beef);
        // One byte of the next value is there: it waits for the rest.
        let (got, ()) = futures::join!(s.read_u32_le(), async {
            peer.write_all(&wire[5..]).unwrap();
        });
        assert_eq!(got.unwrap(), 0xdead_beef);
        assert_eq!(s.read_i16().await.unwrap(), -2);
        assert_eq!(s.read_f64_le().await.unwrap(), 1.5);
        assert_eq!(s.read_u8().await.unwrap(), 7);
        s.write_u16(0x0102).await.unwrap();
        s.write_i32_le(-3).await.unwrap();
        s.flush().await.unwrap();
    });
    let mut back = [0u8; 6];
    peer.read_exact(&mut back).unwrap();
    assert_eq!(back, [1, 2, 0xfd, 0xff, 0xff, 0xff]);
    drop(peer);
    assert!(matches!(
        block_on(s.read_u64()),
        Err(Error::UnexpectedEof {
            needed: 8,
            received: 0
        })
    ));
}

/// A game loop: a per-peer byte order (Godot's `big_endian`) and
/// non-blocking typed reads that take nothing until the value is whole.
#[test]
fn a_game_loop_peer_with_a_byte_order_and_try_get() {
    let (listener, addr) = std_listener();
    let mut peer = TcpPeer::new();
    peer.set_big_endian(true);
    peer.connect_to_host("127.0.0.1", addr.port()).unwrap();
    let mut remote = accept(&listener);
    peer.put_u32(0x0102_0304).unwrap();
    peer.put_u16_with(0x0506, ByteOrder::Little).unwrap();
    let mut got = [0u8; 6];
    remote.read_exact(&mut got).unwrap();
    assert_eq!(got, [1, 2, 3, 4, 6, 5]);

    remote.write_all(&[0xaa, 0xbb]).unwrap();
    common::wait_until("two bytes arrived", || peer.available_bytes() == 2);
    assert_eq!(peer.try_get_u32().unwrap(), None, "not whole yet");
    assert_eq!(peer.available_bytes(), 2, "nothing taken");
    remote.write_all(&[0xcc, 0xdd]).unwrap();
    common::wait_until("the value whole", || peer.available_bytes() == 4);
    assert_eq!(peer.try_get_u32().unwrap(), Some(0xaabb_ccdd));
    drop(remote);
    common::wait_until("the end seen", || {
        peer.stream().is_some_and(|s| s.socket().is_eof())
    });
    assert!(matches!(
        peer.try_get_u8(),
        Err(Error::UnexpectedEof {
            needed: 1,
            received: 0
        })
    ));
}
