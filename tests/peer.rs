//! The peer API over real loopback sockets: Godot's `StreamPeer` /
//! `StreamPeerTCP` / `TCPServer` / `StreamPeerBuffer` (seed 000), Luna's
//! `streamPeerTCP` and `SocketError` (seed 001) and TouchDesigner's `Peer`
//! with `sendOSC` (seed 004), each row of FEATURES.md for those seeds
//! exercised against a plain std peer or evstream's own OSC decoder.
//!
//! Every blocking peer call runs inside [`bounded`], so a broken rule fails
//! the test instead of hanging it; every other wait is on an observable
//! (a channel, a std read with a timeout, a status polled the way a game
//! loop polls it) and bounded by [`WAIT`].

mod common;

use evstream::prelude::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{LoopThread, WAIT};
use evstream::codec::Encoder;
use evstream::osc::{
    encode, osc_packets, OscBundle, OscCodec, OscFraming, OscMessage, OscPacket, OscTime, OscType,
    OscValue, SendOscOptions,
};
use evstream::peer::{
    f16_bits_to_f32, f32_to_f16_bits, ByteOrder, PeerStatus, SendItem, SocketError, StreamPeer,
    StreamPeerBuffer, TcpPeer, TcpPeerServer,
};
use evstream::{
    tcp_connect, AsyncIoStream, Buffer, Error, Event, LoopHandle, Owner, ServerOptions, Socket,
    TcpOptions, TcpServer, TimeoutKind,
};

const KIB: usize = 1024;
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

// ---------------------------------------------------------------------------
// An allocator that remembers the largest single allocation, so a test can
// show that a hostile length prefix was refused without allocating for it.
// ---------------------------------------------------------------------------

struct Tracking;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Runs `body` on its own thread and fails (instead of hanging) if it is not
/// done within twice [`WAIT`]; a panic in `body` is re-raised here.
fn bounded<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let out = body();
        let _ = tx.send(());
        out
    });
    match rx.recv_timeout(WAIT * 2) {
        Err(RecvTimeoutError::Timeout) => {
            panic!(
                "{what}: not done within {:?}: a blocking call hung",
                WAIT * 2
            )
        }
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        },
    }
}

/// Polls `condition` the way a game loop polls a peer each frame, yielding
/// in between; fails after [`WAIT`].
fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        thread::yield_now();
    }
}

/// An evstream stream connected to a std peer the test controls.
fn stream_pair(handle: &LoopHandle, options: TcpOptions) -> (AsyncIoStream, TcpStream) {
    let (listener, addr) = common::std_listener();
    let stream = futures_lite::future::block_on(AsyncIoStream::connect_on(
        handle,
        ("127.0.0.1", addr.port()),
        options,
    ))
    .expect("connect to the std peer");
    let peer = common::accept(&listener);
    (stream, peer)
}

fn read_exact(stream: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    stream
        .read_exact(&mut out)
        .expect("read_exact from evstream");
    out
}

/// A port nothing listens on (bound, then released).
fn unused_port() -> u16 {
    let (listener, addr) = common::std_listener();
    drop(listener);
    addr.port()
}

/// Parks the loop thread in a timer callback until the returned guard is
/// dropped, so nothing on that loop can make progress meanwhile.
struct LoopBlocker {
    release: Option<mpsc::Sender<()>>,
}

impl LoopBlocker {
    fn block(handle: &LoopHandle) -> LoopBlocker {
        let (entered_tx, entered_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        handle.delay(Duration::ZERO, move || {
            let _ = entered_tx.send(());
            let _ = release_rx.recv_timeout(WAIT);
        });
        common::recv(&entered_rx, "loop thread parked");
        LoopBlocker {
            release: Some(release_tx),
        }
    }
}

impl Drop for LoopBlocker {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

fn assert_unexpected_eof<T: std::fmt::Debug>(
    result: Result<T, Error>,
    needed: usize,
    received: usize,
) {
    match result {
        Err(Error::UnexpectedEof {
            needed: n,
            received: r,
        }) if n == needed && r == received => {}
        other => panic!(
            "expected UnexpectedEof {{ needed: {needed}, received: {received} }}, got {other:?}"
        ),
    }
}

/// The type tags of `args` as they appear on the wire (arrays in brackets).
fn tags(args: &[OscType]) -> String {
    let mut out = String::new();
    for arg in args {
        match arg {
            OscType::Array(elements) => {
                out.push('[');
                out.push_str(&tags(elements));
                out.push(']');
            }
            other => out.push(other.type_tag()),
        }
    }
    out
}

/// Everything `send_osc` puts on the wire for these packets and framing.
fn framed_len(packets: &[OscPacket], framing: OscFraming) -> usize {
    let mut codec = OscCodec::new(framing, usize::MAX);
    let mut wire = Buffer::new();
    for packet in packets {
        codec.encode(packet, &mut wire).expect("encode");
    }
    wire.len()
}

/// A server decoding OSC with `on_frame(OscCodec)`; every decoded packet
/// (or error) goes to the channel.
fn osc_server(
    handle: &LoopHandle,
    framing: OscFraming,
) -> (TcpServer, Receiver<evstream::Result<OscPacket>>) {
    let (tx, rx) = mpsc::channel();
    let options = TcpOptions::new().on_frame(OscCodec::new(framing, 64 * KIB), move |_, packet| {
        let _ = tx.send(packet);
    });
    let server = TcpServer::bind(
        handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(options),
    )
    .expect("bind the OSC server");
    (server, rx)
}

fn recv_packet(rx: &Receiver<evstream::Result<OscPacket>>, what: &str) -> OscPacket {
    common::recv(rx, what).unwrap_or_else(|err| panic!("{what}: decoding failed: {err}"))
}

// ---------------------------------------------------------------------------
// StreamPeer on AsyncIoStream: whole and partial reads and writes
// ---------------------------------------------------------------------------

/// Godot put_data/get_data (rules 2, 5): whole writes and reads round-trip
/// through a std echo peer in order, and available_bytes counts exactly what
/// is buffered.
#[test]
fn put_data_and_get_data_round_trip_with_a_std_peer() {
    bounded("round trip", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        assert_eq!(stream.available_bytes(), 0);

        // More than the default write high watermark, so put_data waits.
        let data = common::random_data(1, 3 * 1024 * KIB);
        let len = data.len();
        let echo = thread::spawn(move || {
            let got = read_exact(&mut std_peer, len);
            std_peer.write_all(&got).expect("echo back");
            (std_peer, got)
        });
        stream.put_data(&data).expect("put_data");
        let mut back = vec![0u8; len];
        stream.get_data(&mut back).expect("get_data");
        let (mut std_peer, seen_by_peer) = echo.join().expect("echo thread");
        assert!(seen_by_peer == data, "the std peer got other bytes");
        assert!(back == data, "get_data returned other bytes");
        assert_eq!(stream.available_bytes(), 0);

        std_peer.write_all(b"0123456789").unwrap();
        wait_until("10 bytes available", || stream.available_bytes() == 10);
        let mut five = [0u8; 5];
        stream.get_data(&mut five).unwrap();
        assert_eq!(&five, b"01234");
        assert_eq!(stream.available_bytes(), 5);
        stream.get_data(&mut five).unwrap();
        assert_eq!(&five, b"56789");
        assert_eq!(stream.available_bytes(), 0);
        stream
            .get_data(&mut [])
            .expect("an empty get_data is a no-op");
    });
}

/// Godot get_data at EOF (rule 6, FEATURES "EOF before n is an error that
/// says how many arrived"): the k bytes that came stay readable.
#[test]
fn get_data_short_at_eof_reports_how_many_arrived() {
    bounded("short get_data", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        std_peer.write_all(b"abc").unwrap();
        std_peer.shutdown(Shutdown::Write).unwrap();

        let result = stream.get_data(&mut [0u8; 8]);
        let err = result.as_ref().err().cloned();
        assert_unexpected_eof(result, 8, 3);
        assert_eq!(SocketError::from(&err.unwrap()), SocketError::FileEof);

        assert_eq!(stream.available_bytes(), 3, "the 3 bytes stay readable");
        let mut three = [0u8; 3];
        stream.get_data(&mut three).expect("the bytes that arrived");
        assert_eq!(&three, b"abc");

        assert_unexpected_eof(stream.get_data(&mut [0u8; 1]), 1, 0);
        assert_unexpected_eof(stream.get_partial_data(&mut [0u8; 4]), 4, 0);
        // Typed getters report the end too (Godot's return 0).
        assert_unexpected_eof(stream.get_u16_with(ByteOrder::Little), 2, 0);
        assert_unexpected_eof(stream.get_f64_with(ByteOrder::Big), 8, 0);
    });
}

/// Godot get_partial_data (rule 2: "no data yet" never looks like EOF): 0
/// when nothing is buffered, the bytes when some are, and a distinct
/// UnexpectedEof { received: 0 } at the end.
#[test]
fn get_partial_data_zero_means_nothing_yet_and_eof_is_distinct() {
    bounded("partial reads", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        let mut buf = [0u8; 16];
        assert_eq!(stream.get_partial_data(&mut buf).unwrap(), 0);
        assert_eq!(stream.get_partial_data(&mut []).unwrap(), 0);

        std_peer.write_all(b"hello").unwrap();
        wait_until("5 bytes available", || stream.available_bytes() == 5);
        assert_eq!(stream.get_partial_data(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(stream.get_partial_data(&mut buf).unwrap(), 0);

        std_peer.write_all(b"worlds").unwrap();
        wait_until("6 bytes available", || stream.available_bytes() == 6);
        let mut four = [0u8; 4];
        assert_eq!(stream.get_partial_data(&mut four).unwrap(), 4);
        assert_eq!(&four, b"worl");
        assert_eq!(stream.available_bytes(), 2);
        assert_eq!(stream.get_partial_data(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ds");

        std_peer.shutdown(Shutdown::Write).unwrap();
        let deadline = Instant::now() + WAIT;
        let end = loop {
            match stream.get_partial_data(&mut buf) {
                Ok(0) => {
                    assert!(Instant::now() < deadline, "EOF not seen within {WAIT:?}");
                    thread::yield_now();
                }
                Ok(n) => panic!("{n} bytes out of nowhere"),
                Err(err) => break err,
            }
        };
        assert_unexpected_eof::<()>(Err(end), 16, 0);
        // It stays at the end.
        assert_unexpected_eof(stream.get_partial_data(&mut buf), 16, 0);
    });
}

/// Godot put_partial_data (rule 4: write high watermark): returns how much
/// was taken, 0 at the watermark when the peer does not read, and exactly
/// the accepted bytes reach the peer.
#[test]
fn put_partial_data_returns_what_the_write_watermark_accepts() {
    const HIGH: usize = 64 * KIB;
    const CHUNK: usize = 10_000;
    const LIMIT: usize = 256 * 1024 * KIB;
    fn pattern(range: std::ops::Range<usize>) -> Vec<u8> {
        range.map(|i| (i % 251) as u8).collect()
    }
    bounded("partial writes", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) =
            stream_pair(&lt.handle, TcpOptions::new().write_watermarks(0, HIGH));
        // The std peer does not read: the kernel buffers fill, then the
        // output buffer reaches the watermark.
        let mut accepted = 0usize;
        let deadline = Instant::now() + WAIT;
        loop {
            let chunk = pattern(accepted..accepted + CHUNK);
            let n = stream.put_partial_data(&chunk).expect("put_partial_data");
            assert!(n <= CHUNK, "took {n} of {CHUNK} bytes");
            if n == 0 {
                break;
            }
            accepted += n;
            assert!(
                accepted < LIMIT && Instant::now() < deadline,
                "put_partial_data never returned 0 ({accepted} bytes taken)"
            );
        }
        assert!(accepted >= HIGH, "only {accepted} bytes were taken");
        assert_eq!(stream.put_partial_data(&[]).unwrap(), 0);

        let reader = thread::spawn(move || common::read_to_end(&mut std_peer));
        // Now the peer reads: a whole write waits for room, then goes out.
        let tail = pattern(accepted..accepted + 3 * HIGH);
        stream
            .put_data(&tail)
            .expect("put_data once the peer reads");
        stream.close_connection();
        let got = reader.join().expect("reader");
        assert_eq!(got.len(), accepted + tail.len(), "bytes lost or invented");
        assert!(
            got == pattern(0..accepted + tail.len()),
            "the peer got other bytes than were accepted"
        );
    });
}

// ---------------------------------------------------------------------------
// Typed values and strings
// ---------------------------------------------------------------------------

/// Godot typed values with big_endian (FEATURES "typed values, byte order"):
/// every type crosses the wire in both orders exactly as std's
/// to_le_bytes/to_be_bytes, both ways, and the getters report EOF.
#[test]
fn typed_values_match_std_byte_orders_both_ways() {
    bounded("typed values", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        let half = f32_to_f16_bits(-2.5);
        assert_eq!(half, 0xc100);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let big = order == ByteOrder::Big;
            macro_rules! encode_std {
                ($value:expr) => {
                    if big {
                        $value.to_be_bytes().to_vec()
                    } else {
                        $value.to_le_bytes().to_vec()
                    }
                };
            }
            macro_rules! decode_std {
                ($ty:ty, $bytes:expr) => {{
                    let bytes: [u8; std::mem::size_of::<$ty>()] = $bytes.try_into().unwrap();
                    if big {
                        <$ty>::from_be_bytes(bytes)
                    } else {
                        <$ty>::from_le_bytes(bytes)
                    }
                }};
            }

            // evstream -> std
            stream.put_u8_with(0xfe, order).unwrap();
            stream.put_i8_with(-2, order).unwrap();
            stream.put_u16_with(0xbeef, order).unwrap();
            stream.put_i16_with(-12345, order).unwrap();
            stream.put_u32_with(0xdead_beef, order).unwrap();
            stream.put_i32_with(-123_456_789, order).unwrap();
            stream.put_u64_with(0x0123_4567_89ab_cdef, order).unwrap();
            stream.put_i64_with(i64::MIN + 7, order).unwrap();
            stream.put_f32_with(-0.156_25, order).unwrap();
            stream.put_f64_with(std::f64::consts::PI, order).unwrap();
            stream.put_f16_bits_with(half, order).unwrap();
            let wire = read_exact(&mut std_peer, 1 + 1 + 2 + 2 + 4 + 4 + 8 + 8 + 4 + 8 + 2);
            let mut at = 0;
            let mut take = |n: usize| {
                at += n;
                &wire[at - n..at]
            };
            assert_eq!(decode_std!(u8, take(1)), 0xfe);
            assert_eq!(decode_std!(i8, take(1)), -2);
            assert_eq!(decode_std!(u16, take(2)), 0xbeef);
            assert_eq!(decode_std!(i16, take(2)), -12345);
            assert_eq!(decode_std!(u32, take(4)), 0xdead_beef);
            assert_eq!(decode_std!(i32, take(4)), -123_456_789);
            assert_eq!(decode_std!(u64, take(8)), 0x0123_4567_89ab_cdef);
            assert_eq!(decode_std!(i64, take(8)), i64::MIN + 7);
            assert_eq!(decode_std!(f32, take(4)), -0.156_25);
            assert_eq!(decode_std!(f64, take(8)), std::f64::consts::PI);
            assert_eq!(decode_std!(u16, take(2)), half);

            // std -> evstream
            let mut out = Vec::new();
            out.extend(encode_std!(0x81u8));
            out.extend(encode_std!(-128i8));
            out.extend(encode_std!(0x1234u16));
            out.extend(encode_std!(i16::MIN));
            out.extend(encode_std!(0x8000_0001u32));
            out.extend(encode_std!(-2i32));
            out.extend(encode_std!(u64::MAX - 1));
            out.extend(encode_std!(-3i64));
            out.extend(encode_std!(1.0e-3f32));
            out.extend(encode_std!(-1.0e300f64));
            out.extend(encode_std!(0x3c00u16));
            std_peer.write_all(&out).unwrap();
            assert_eq!(stream.get_u8_with(order).unwrap(), 0x81);
            assert_eq!(stream.get_i8_with(order).unwrap(), -128);
            assert_eq!(stream.get_u16_with(order).unwrap(), 0x1234);
            assert_eq!(stream.get_i16_with(order).unwrap(), i16::MIN);
            assert_eq!(stream.get_u32_with(order).unwrap(), 0x8000_0001);
            assert_eq!(stream.get_i32_with(order).unwrap(), -2);
            assert_eq!(stream.get_u64_with(order).unwrap(), u64::MAX - 1);
            assert_eq!(stream.get_i64_with(order).unwrap(), -3);
            assert_eq!(stream.get_f32_with(order).unwrap(), 1.0e-3);
            assert_eq!(stream.get_f64_with(order).unwrap(), -1.0e300);
            assert_eq!(
                f16_bits_to_f32(stream.get_f16_bits_with(order).unwrap()),
                1.0
            );
        }

        // The getters report the end (Godot's return 0 and cannot say).
        std_peer.write_all(&[1, 2]).unwrap();
        std_peer.shutdown(Shutdown::Write).unwrap();
        assert_unexpected_eof(stream.get_u32_with(ByteOrder::Big), 4, 2);
        assert_eq!(stream.get_u16_with(ByteOrder::Big).unwrap(), 0x0102);
        assert_unexpected_eof(stream.get_u8_with(ByteOrder::Little), 1, 0);
        assert_unexpected_eof(stream.get_i64_with(ByteOrder::Little), 8, 0);
        assert_unexpected_eof(stream.get_f32_with(ByteOrder::Little), 4, 0);
        assert_unexpected_eof(stream.get_f16_bits_with(ByteOrder::Little), 2, 0);
    });
}

/// Godot put_utf8_string/get_utf8_string wire compatibility (FEATURES
/// "length-prefixed strings ... wire-compatible, plus raw variants"):
/// [u32 LE byte length][UTF-8] both ways.
#[test]
fn utf8_strings_are_godot_wire_compatible() {
    bounded("strings", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        let text = "héllo wörld ✓";
        stream.put_utf8_string(text).unwrap();
        stream.put_string("ascii").unwrap();
        stream.put_utf8_string("").unwrap();
        stream.put_string_raw("raw").unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(&(text.len() as u32).to_le_bytes());
        expected.extend_from_slice(text.as_bytes());
        expected.extend_from_slice(&[5, 0, 0, 0]);
        expected.extend_from_slice(b"ascii");
        expected.extend_from_slice(&[0, 0, 0, 0]);
        expected.extend_from_slice(b"raw");
        assert_eq!(read_exact(&mut std_peer, expected.len()), expected);

        let sent = "grüße 🎮";
        let mut wire = Vec::new();
        for s in [sent, "second", ""] {
            wire.extend_from_slice(&(s.len() as u32).to_le_bytes());
            wire.extend_from_slice(s.as_bytes());
        }
        wire.extend_from_slice("naïve".as_bytes());
        wire.extend_from_slice(&[2, 0, 0, 0, 0xff, 0xfe]);
        std_peer.write_all(&wire).unwrap();
        assert_eq!(stream.get_utf8_string().unwrap(), sent);
        assert_eq!(stream.get_string().unwrap(), "second");
        assert_eq!(stream.get_utf8_string().unwrap(), "");
        assert_eq!(stream.get_string_raw("naïve".len()).unwrap(), "naïve");
        match stream.get_utf8_string() {
            Err(err @ Error::InvalidData(_)) => {
                assert_eq!(SocketError::from(&err), SocketError::InvalidData)
            }
            other => panic!("invalid UTF-8 gave {other:?}"),
        }
    });
}

/// Bounded memory against a hostile peer (rule 4, rule 8): a length prefix
/// of 0xFFFFFFFF, or one over the limit with no payload, is InvalidData at
/// once, without allocating for it or waiting for the payload.
#[test]
fn hostile_string_length_is_invalid_data_without_allocating() {
    bounded("hostile length", || {
        let lt = LoopThread::start();
        let (mut stream, mut std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        std_peer
            .write_all(&[0xff, 0xff, 0xff, 0xff, b'x', b'y'])
            .unwrap();
        wait_until("6 bytes available", || stream.available_bytes() == 6);
        assert!(matches!(
            stream.get_utf8_string(),
            Err(Error::InvalidData(_))
        ));
        assert_eq!(stream.available_bytes(), 2, "the payload was not read");
        let mut xy = [0u8; 2];
        stream.get_data(&mut xy).unwrap();
        assert_eq!(&xy, b"xy");

        // Over the default 16 MiB limit, and no payload follows: refused
        // without waiting for it.
        std_peer
            .write_all(&(16 * 1024 * 1024u32 + 1).to_le_bytes())
            .unwrap();
        assert!(matches!(stream.get_string(), Err(Error::InvalidData(_))));

        // An explicit maximum.
        std_peer.write_all(&9u32.to_le_bytes()).unwrap();
        std_peer.write_all(b"123456789").unwrap();
        assert!(matches!(
            stream.get_utf8_string_max(8),
            Err(Error::InvalidData(_))
        ));
        let mut rest = [0u8; 9];
        stream.get_data(&mut rest).unwrap();
        std_peer.write_all(&8u32.to_le_bytes()).unwrap();
        std_peer.write_all(b"12345678").unwrap();
        assert_eq!(stream.get_utf8_string_max(8).unwrap(), "12345678");

        let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
        assert!(
            largest < 1024 * 1024 * KIB,
            "something allocated {largest} bytes"
        );
    });
}

// ---------------------------------------------------------------------------
// Loop-thread rules
// ---------------------------------------------------------------------------

/// What a read callback observed on the loop thread.
#[derive(Debug)]
struct OnLoop {
    get_short: evstream::Result<()>,
    get_u32_short: evstream::Result<u32>,
    available: usize,
    partial_nothing: evstream::Result<usize>,
    get_enough: evstream::Result<[u8; 2]>,
    put_big: evstream::Result<()>,
    put_returned_in: Duration,
    put_typed: evstream::Result<()>,
}

/// Godot's pitfall "get_data blocking the caller's loop" (rule 2, rule 10):
/// on the loop thread get_data without enough buffered is WouldDeadlock
/// (SocketError::Busy) and leaves the bytes; put_data queues and returns.
#[test]
fn on_the_loop_thread_get_data_would_deadlock_and_put_data_queues() {
    const BIG: usize = 4 * 1024 * KIB;
    bounded("loop thread rules", || {
        let lt = LoopThread::start();
        let (tx, rx) = mpsc::channel();
        let done = Arc::new(AtomicBool::new(false));
        let big = Bytes::from(common::random_data(8, BIG));
        let payload = big.clone();
        let options = TcpOptions::new().stream_read_cb(move |stream| {
            if stream.available_bytes() < 2 || done.swap(true, Ordering::SeqCst) {
                return;
            }
            assert!(stream.socket().loop_handle().is_loop_thread());
            let get_short = stream.get_data(&mut [0u8; 8]);
            let get_u32_short = stream.get_u32_with(ByteOrder::Little);
            let available = stream.available_bytes();
            let mut two = [0u8; 2];
            let get_enough = stream.get_data(&mut two).map(|()| two);
            let partial_nothing = stream.get_partial_data(&mut [0u8; 4]);
            let started = Instant::now();
            let put_big = stream.put_data(&payload);
            let put_returned_in = started.elapsed();
            let put_typed = stream.put_u32_with(0xfeed_f00d, ByteOrder::Big);
            let _ = tx.send(OnLoop {
                get_short,
                get_u32_short,
                available,
                partial_nothing,
                get_enough,
                put_big,
                put_returned_in,
                put_typed,
            });
        });
        let server = TcpServer::bind(
            &lt.handle,
            "127.0.0.1:0",
            ServerOptions::new().connection(options),
        )
        .unwrap();
        let mut client = common::std_connect(server.local_addr());
        client.write_all(b"hi").unwrap();
        let seen = common::recv(&rx, "read callback results");

        let err = seen.get_short.expect_err("get_data of 8 with 2 buffered");
        assert!(matches!(err, Error::WouldDeadlock), "{err:?}");
        assert_eq!(SocketError::from(&err), SocketError::Busy);
        assert!(matches!(seen.get_u32_short, Err(Error::WouldDeadlock)));
        assert_eq!(seen.available, 2, "the refused reads took nothing");
        assert_eq!(seen.get_enough.expect("enough buffered"), *b"hi");
        assert_eq!(seen.partial_nothing.expect("partial read"), 0);
        seen.put_big.expect("put_data on the loop thread");
        seen.put_typed.expect("put_u32 on the loop thread");
        // Nobody reads yet, so the 4 MiB could only have been queued:
        // waiting would have deadlocked (the loop sends them).
        assert!(
            seen.put_returned_in < WAIT,
            "put_data took {:?}",
            seen.put_returned_in
        );
        let got = read_exact(&mut client, BIG + 4);
        assert!(got[..BIG] == big[..], "queued bytes differ");
        assert_eq!(got[BIG..], 0xfeed_f00du32.to_be_bytes());
    });
}

// ---------------------------------------------------------------------------
// TcpPeer (Godot StreamPeerTCP / Luna streamPeerTCP)
// ---------------------------------------------------------------------------

/// Godot pitfalls "status stuck at CONNECTING without poll()" and "writes
/// silently dropped while connecting" (rules 5, 7): the status goes None →
/// Connecting → Connected with no poll(), queued writes arrive, addresses
/// and no-delay work, and disconnect_from_host sends the tail then FIN.
#[test]
fn tcp_peer_connects_without_poll_and_keeps_writes_made_while_connecting() {
    bounded("tcp peer", || {
        let lt = LoopThread::start();
        let (listener, addr) = common::std_listener();
        let mut peer = TcpPeer::with_loop(lt.handle.clone());
        assert_eq!(peer.status(), PeerStatus::None);
        assert_eq!(peer.connected_host(), None);
        assert_eq!(peer.connected_port(), 0);
        assert_eq!(peer.local_port(), 0);
        assert!(peer.poll().is_ok());
        assert!(peer.stream().is_none());
        peer.set_no_delay(false)
            .expect("no-delay before connecting");
        assert!(matches!(peer.put_data(b"x"), Err(Error::Closed)));

        {
            // The loop cannot run: the connection is certainly in progress.
            let _parked = LoopBlocker::block(&lt.handle);
            peer.connect_to_host("127.0.0.1", addr.port()).unwrap();
            assert_eq!(peer.status(), PeerStatus::Connecting);
            peer.put_data(b"queued while connecting|").unwrap();
            peer.put_u16_with(0x0102, ByteOrder::Big).unwrap();
            assert!(matches!(
                peer.connect_to_host("127.0.0.1", addr.port()),
                Err(Error::InvalidInput(_))
            ));
        }
        wait_until("Connected without poll()", || {
            peer.status() == PeerStatus::Connected
        });
        let mut accepted = common::accept(&listener);
        assert_eq!(
            read_exact(&mut accepted, 26),
            b"queued while connecting|\x01\x02"
        );
        assert!(peer.poll().is_ok());
        assert_eq!(peer.connected_host(), Some(LOCALHOST));
        assert_eq!(peer.connected_port(), addr.port());
        assert_eq!(
            peer.local_port(),
            accepted.peer_addr().unwrap().port(),
            "local_port is the source port the server sees"
        );
        peer.set_no_delay(true).expect("no-delay on");
        peer.set_no_delay(false).expect("no-delay off");
        assert!(peer.stream().is_some());

        accepted.write_all(b"pong").unwrap();
        let mut pong = [0u8; 4];
        peer.get_data(&mut pong).unwrap();
        assert_eq!(&pong, b"pong");

        peer.put_data(b"tail").unwrap();
        peer.disconnect_from_host();
        assert_eq!(peer.status(), PeerStatus::None);
        assert_eq!(peer.connected_port(), 0);
        let err = peer.put_data(b"late").expect_err("write after disconnect");
        assert_eq!(SocketError::from(&err), SocketError::Unavailable);
        assert_eq!(common::read_to_end(&mut accepted), b"tail");

        // The same peer connects again.
        peer.connect_to_host("127.0.0.1", addr.port()).unwrap();
        let mut again = common::accept(&listener);
        peer.put_data(b"again").unwrap();
        assert_eq!(read_exact(&mut again, 5), b"again");
        wait_until("Connected again", || peer.status() == PeerStatus::Connected);
        peer.disconnect_from_host();
    });
}

/// Luna's ConnectToHost on a refused port (rule 8): status Error, poll()
/// returns the error, last_error is Refused and its code CONNECT_FAILED.
#[test]
fn tcp_peer_refused_reports_error_status_and_connect_failed() {
    bounded("refused", || {
        let lt = LoopThread::start();
        let port = unused_port();
        let mut peer = TcpPeer::with_loop(lt.handle.clone());
        peer.connect_to_host("127.0.0.1", port).unwrap();
        wait_until("status Error", || peer.status() == PeerStatus::Error);
        let err = peer.poll().expect_err("poll reports the failure");
        assert!(matches!(err, Error::Refused), "{err:?}");
        assert_eq!(SocketError::from(&err), SocketError::ConnectFailed);
        assert_eq!(SocketError::of(&peer.poll()), SocketError::ConnectFailed);
        assert_eq!(SocketError::ConnectFailed.as_str(), "CONNECT_FAILED");
        assert!(matches!(peer.last_error(), Some(Error::Refused)));
        assert!(peer.put_data(b"x").is_err());
        assert!(peer.get_partial_data(&mut [0u8; 4]).is_err());
        assert_eq!(peer.connected_port(), 0);
        peer.disconnect_from_host();
        assert_eq!(peer.status(), PeerStatus::None);
        assert!(peer.poll().is_ok());
    });
}

/// Godot/Luna bind(port, host) (FEATURES "bind sets the source address"):
/// the server sees the connection come from that port.
#[test]
fn tcp_peer_bind_sets_the_source_port() {
    bounded("bind", || {
        let lt = LoopThread::start();
        let (listener, addr) = common::std_listener();
        let source = unused_port();
        let mut peer = TcpPeer::with_loop(lt.handle.clone());
        peer.bind(source, Some(LOCALHOST)).unwrap();
        peer.connect_to_host("127.0.0.1", addr.port()).unwrap();
        let mut accepted = common::accept(&listener);
        assert_eq!(
            accepted.peer_addr().unwrap(),
            SocketAddr::new(LOCALHOST, source)
        );
        wait_until("Connected", || peer.status() == PeerStatus::Connected);
        assert_eq!(peer.local_port(), source);
        assert!(matches!(peer.bind(0, None), Err(Error::InvalidInput(_))));
        peer.put_data(b"from the bound port").unwrap();
        assert_eq!(read_exact(&mut accepted, 19), b"from the bound port");
        peer.disconnect_from_host();
    });
}

// ---------------------------------------------------------------------------
// TcpPeerServer (Godot TCPServer)
// ---------------------------------------------------------------------------

/// Godot TCPServer (FEATURES "poll-style server methods"): connections wait
/// until taken, a taken one exchanges data, stop() closes the pending ones,
/// refuses new ones and leaves taken ones running.
#[test]
fn tcp_peer_server_queues_connections_until_taken_and_stop_closes_pending() {
    bounded("peer server", || {
        let lt = LoopThread::start();
        let mut server = TcpPeerServer::with_loop(lt.handle.clone());
        assert!(!server.is_listening());
        assert_eq!(server.local_port(), 0);
        server.listen(0, Some(LOCALHOST)).unwrap();
        assert!(server.is_listening());
        let port = server.local_port();
        assert_ne!(port, 0);
        assert!(matches!(
            server.listen(0, Some(LOCALHOST)),
            Err(Error::InvalidInput(_))
        ));
        let addr = SocketAddr::new(LOCALHOST, port);
        assert!(!server.is_connection_available());
        assert!(server.take_connection().is_none());

        let mut client = common::std_connect(addr);
        wait_until("connection available", || server.is_connection_available());
        let mut peer = server.take_connection().expect("a connection");
        assert!(!server.is_connection_available());
        assert!(server.take_connection().is_none());
        assert_eq!(peer.status(), PeerStatus::Connected);
        assert_eq!(peer.connected_host(), Some(LOCALHOST));
        assert_eq!(peer.connected_port(), client.local_addr().unwrap().port());
        assert_eq!(peer.local_port(), port);
        client.write_all(b"ping").unwrap();
        let mut ping = [0u8; 4];
        peer.get_data(&mut ping).unwrap();
        assert_eq!(&ping, b"ping");
        peer.put_data(b"pong").unwrap();
        assert_eq!(read_exact(&mut client, 4), b"pong");

        // Two connections queue in order.
        let first = common::std_connect(addr);
        let mut second = common::std_connect(addr);
        wait_until("first pending", || server.is_connection_available());
        let mut taken = server.take_connection().expect("first pending");
        wait_until("second pending", || server.is_connection_available());
        assert_eq!(taken.connected_port(), first.local_addr().unwrap().port());
        taken.disconnect_from_host();

        // stop(): the pending one is closed, new ones refused.
        server.stop();
        assert!(!server.is_listening());
        assert_eq!(server.local_port(), 0);
        assert!(!server.is_connection_available());
        assert!(server.take_connection().is_none());
        let mut byte = [0u8; 1];
        match second.read(&mut byte) {
            Ok(0) => {}
            Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("pending connection not closed by stop(): {other:?}"),
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match TcpStream::connect_timeout(&addr, WAIT) {
                Err(err) if err.kind() == ErrorKind::ConnectionRefused => break,
                Ok(_) => {} // still closing the listener; try again
                Err(err) => panic!("connect after stop: {err}"),
            }
            assert!(Instant::now() < deadline, "still accepting after stop()");
            thread::yield_now();
        }
        assert!(!server.is_connection_available());

        // A connection already taken goes on.
        peer.put_data(b"still here").unwrap();
        assert_eq!(read_exact(&mut client, 10), b"still here");
        server
            .listen(0, Some(LOCALHOST))
            .expect("listen again after stop");
        assert!(server.is_listening());
        server.stop();
    });
}

/// Godot TCPServer.stop() racing with an accept (rule 7: no connection is
/// left open with nobody able to reach it): a client that connects just
/// before stop() is closed or refused, never left pending.
#[test]
fn tcp_peer_server_stop_right_after_a_connect_leaves_nothing_pending() {
    bounded("stop race", || {
        let lt = LoopThread::start();
        for round in 0..50 {
            let mut server = TcpPeerServer::with_loop(lt.handle.clone());
            server.listen(0, Some(LOCALHOST)).unwrap();
            let addr = SocketAddr::new(LOCALHOST, server.local_port());
            let mut client = common::std_connect(addr);
            server.stop();
            let mut byte = [0u8; 1];
            match client.read(&mut byte) {
                Ok(0) => {}
                Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
                other => panic!(
                    "round {round}: a connection made just before stop() was left open: {other:?} \
                     (pending after stop: {})",
                    server.is_connection_available()
                ),
            }
            assert!(
                !server.is_connection_available(),
                "round {round}: pending after stop()"
            );
        }
    });
}

// ---------------------------------------------------------------------------
// SocketError codes of real failures
// ---------------------------------------------------------------------------

/// Luna's SocketError (FEATURES "error codes ... via From"): a read timeout,
/// a reset, a closed peer and bad parameters map to TIMEOUT,
/// CONNECTION_CLOSED, UNAVAILABLE and INVALID_PARAMETER (refused, EOF and
/// busy are checked where they happen above).
#[test]
fn socket_error_codes_of_real_failures() {
    bounded("socket errors", || {
        let lt = LoopThread::start();

        // Timeout: the peer sends nothing within the read timeout.
        let (mut stream, _silent) = stream_pair(
            &lt.handle,
            TcpOptions::new().read_timeout(Duration::from_millis(300)),
        );
        let err = stream
            .get_data(&mut [0u8; 4])
            .expect_err("read timeout expires");
        assert!(matches!(err, Error::TimedOut(TimeoutKind::Read)), "{err:?}");
        assert_eq!(SocketError::from(&err), SocketError::Timeout);
        assert_eq!(SocketError::from(err).as_str(), "TIMEOUT");

        // Reset by the peer.
        let (mut stream, std_peer) = stream_pair(&lt.handle, TcpOptions::new());
        common::reset(std_peer);
        let err = stream.get_data(&mut [0u8; 4]).expect_err("reset");
        assert!(matches!(err, Error::Reset), "{err:?}");
        assert_eq!(SocketError::from(&err), SocketError::ConnectionClosed);

        // Not connected.
        let mut peer = TcpPeer::with_loop(lt.handle.clone());
        let err = peer.get_data(&mut [0u8; 1]).expect_err("not connected");
        assert_eq!(SocketError::from(&err), SocketError::Unavailable);

        // Connecting twice is a bad parameter.
        let (listener, addr) = common::std_listener();
        peer.connect_to_host("127.0.0.1", addr.port()).unwrap();
        let result = peer.connect_to_host("127.0.0.1", addr.port());
        assert_eq!(SocketError::of(&result), SocketError::InvalidParameter);
        let _accepted = common::accept(&listener);
        assert_eq!(SocketError::of(&peer.put_data(b"ok")), SocketError::Success);
        peer.disconnect_from_host();
    });
}

// ---------------------------------------------------------------------------
// StreamPeerBuffer
// ---------------------------------------------------------------------------

/// Godot StreamPeerBuffer (FEATURES "in-memory peer"): seek, position,
/// resize, clear, overwrite at the cursor, the end as an error — and it
/// serialises byte for byte what a TcpPeer sends for the same calls.
#[test]
fn stream_peer_buffer_has_godot_semantics_and_matches_the_wire() {
    fn script(peer: &mut dyn StreamPeer) {
        peer.put_u32_with(0xa1b2_c3d4, ByteOrder::Little).unwrap();
        peer.put_i16_with(-2, ByteOrder::Big).unwrap();
        peer.put_utf8_string("Godot ✓").unwrap();
        peer.put_f64_with(-0.5, ByteOrder::Big).unwrap();
        peer.put_f16_bits_with(f32_to_f16_bits(0.5), ByteOrder::Little)
            .unwrap();
        peer.put_string_raw("end").unwrap();
    }
    bounded("buffer", || {
        let mut buffer = StreamPeerBuffer::new();
        assert!(buffer.is_empty());
        script(&mut buffer);
        let expected = buffer.data().to_vec();
        assert_eq!(buffer.position(), expected.len());
        assert_eq!(buffer.available_bytes(), 0);

        // The same calls on a TcpPeer put the same bytes on the wire.
        let lt = LoopThread::start();
        let (listener, addr) = common::std_listener();
        let mut peer = TcpPeer::with_loop(lt.handle.clone());
        peer.connect_to_host("127.0.0.1", addr.port()).unwrap();
        let mut accepted = common::accept(&listener);
        script(&mut peer);
        assert_eq!(read_exact(&mut accepted, expected.len()), expected);
        // And what the wire brings back reads the same from both.
        accepted.write_all(&expected).unwrap();
        buffer.seek(0);
        for source in [&mut buffer as &mut dyn StreamPeer, &mut peer] {
            assert_eq!(source.get_u32_with(ByteOrder::Little).unwrap(), 0xa1b2_c3d4);
            assert_eq!(source.get_i16_with(ByteOrder::Big).unwrap(), -2);
            assert_eq!(source.get_utf8_string().unwrap(), "Godot ✓");
            assert_eq!(source.get_f64_with(ByteOrder::Big).unwrap(), -0.5);
            let half = source.get_f16_bits_with(ByteOrder::Little).unwrap();
            assert_eq!(f16_bits_to_f32(half), 0.5);
            assert_eq!(source.get_string_raw(3).unwrap(), "end");
        }
        peer.disconnect_from_host();

        // The end of a buffer is the end: an error, never a silent 0.
        assert_unexpected_eof(buffer.get_u8_with(ByteOrder::Little), 1, 0);
        assert_unexpected_eof(buffer.get_partial_data(&mut [0u8; 2]), 2, 0);

        // seek clamps; get_data short says how much is left and takes nothing.
        buffer.seek(usize::MAX);
        assert_eq!(buffer.position(), expected.len());
        buffer.seek(expected.len() - 3);
        assert_unexpected_eof(buffer.get_data(&mut [0u8; 5]), 5, 3);
        assert_eq!(buffer.position(), expected.len() - 3);
        let mut two = [0u8; 2];
        assert_eq!(buffer.get_partial_data(&mut two).unwrap(), 2);
        assert_eq!(&two, b"en");

        // Writes overwrite at the cursor and extend the buffer.
        let mut buffer = StreamPeerBuffer::from_vec(b"abcdef".to_vec());
        buffer.seek(4);
        buffer.put_data(b"XYZ").unwrap();
        assert_eq!(buffer.data(), b"abcdXYZ");
        assert_eq!(buffer.position(), 7);
        buffer.seek(1);
        assert_eq!(buffer.put_partial_data(b"12").unwrap(), 2);
        assert_eq!(buffer.data(), b"a12dXYZ");
        // resize grows with zeros and clamps the cursor when shrinking.
        buffer.resize(9);
        assert_eq!(buffer.data(), b"a12dXYZ\0\0");
        assert_eq!(buffer.position(), 3);
        buffer.resize(2);
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.position(), 2);
        buffer.clear();
        assert!(buffer.is_empty());
        assert_eq!(buffer.position(), 0);
        buffer.put_u16_with(0x0102, ByteOrder::Big).unwrap();
        assert_eq!(buffer.clone().into_vec(), vec![1, 2]);
    });
}

// ---------------------------------------------------------------------------
// TouchDesigner Peer calls
// ---------------------------------------------------------------------------

/// TouchDesigner sendBytes/send (seed 004, rule 5): mixed items go out
/// exactly, in order, and the returned count is the bytes sent.
#[test]
fn send_bytes_and_send_put_exactly_those_bytes_on_the_wire() {
    bounded("send_bytes", || {
        let lt = LoopThread::start();
        let (listener, addr) = common::std_listener();
        let socket = tcp_connect(&lt.handle, "127.0.0.1", addr.port(), TcpOptions::new()).unwrap();
        // Queued while connecting, never dropped.
        let n = socket
            .send_bytes(&[
                "TYPE".into(),
                23.into(),
                255.into(),
                12.into(),
                0x34.into(),
                b"\x01\x00\x02".into(),
            ])
            .unwrap();
        assert_eq!(n, 11);
        let mut accepted = common::accept(&listener);
        assert_eq!(
            read_exact(&mut accepted, 11),
            b"TYPE\x17\xff\x0c\x34\x01\x00\x02"
        );

        // The seed's own example.
        let n = socket
            .send_bytes(&[
                SendItem::Text("TYPE"),
                SendItem::Byte(23),
                SendItem::Byte(255),
                SendItem::Byte(12),
                SendItem::Byte(0x34),
                SendItem::Bytes(b"\x01\x00\x02\x00\x03\x00\x00\x00"),
            ])
            .unwrap();
        assert_eq!(n, 16);
        assert_eq!(
            read_exact(&mut accepted, 16),
            b"TYPE\x17\xff\x0c\x34\x01\x00\x02\x00\x03\x00\x00\x00"
        );
        assert_eq!(socket.send_bytes(&[]).unwrap(), 0);

        assert_eq!(socket.send(&["Hello", "World"], "\r\n").unwrap(), 14);
        assert_eq!(read_exact(&mut accepted, 14), b"Hello\r\nWorld\r\n");
        assert_eq!(socket.send(&["no", "terminator"], "").unwrap(), 12);
        assert_eq!(socket.send(&["nul"], "\0").unwrap(), 4);
        assert_eq!(read_exact(&mut accepted, 16), b"noterminatornul\0");

        socket.close();
        assert!(matches!(socket.send(&["late"], ""), Err(Error::Closed)));
        assert!(matches!(socket.send_bytes(&[1.into()]), Err(Error::Closed)));
        assert_eq!(common::read_to_end(&mut accepted), b"");
    });
}

/// The names 127.0.0.1 has in /etc/hosts, if any.
fn hosts_names_of_loopback() -> Vec<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or(""))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next() == Some("127.0.0.1")).then(|| fields.map(str::to_string).collect())
        })
        .flat_map(|names: Vec<String>| names)
        .collect()
}

/// TouchDesigner Peer identity (seed 004: owner, address, port, hostname,
/// close() -> bool): hostname is the name connected to (or the peer's IP
/// for an accepted connection), resolve_hostname does reverse DNS, owner is
/// the server or the loop, close_peer is true once then false.
#[test]
fn hostname_owner_and_close_peer_identify_and_close_the_connection() {
    bounded("identity", || {
        let lt = LoopThread::start();
        let (accepted_tx, accepted_rx) = mpsc::channel::<Socket>();
        let server = TcpServer::bind(
            &lt.handle,
            "127.0.0.1:0",
            ServerOptions::new().connection(TcpOptions::new().connect_cb(move |socket| {
                let _ = accepted_tx.send(socket.clone());
            })),
        )
        .unwrap();
        let port = server.local_addr().port();
        let (event_cb, events) = common::event_channel();
        let client = tcp_connect(
            &lt.handle,
            "localhost",
            port,
            TcpOptions::new().event_cb(event_cb),
        )
        .unwrap();
        common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
        let accepted = common::recv(&accepted_rx, "accepted connection");

        // address / port
        assert_eq!(client.peer_addr(), Some(server.local_addr()));
        assert_eq!(accepted.peer_addr(), client.local_addr());
        // hostname: the name used to connect; for an accepted connection
        // the peer's address as text.
        assert_eq!(client.hostname().as_deref(), Some("localhost"));
        assert_eq!(accepted.hostname().as_deref(), Some("127.0.0.1"));
        let resolved = accepted
            .resolve_hostname()
            .expect("reverse lookup of 127.0.0.1");
        assert!(!resolved.is_empty());
        let names = hosts_names_of_loopback();
        if !names.is_empty() {
            assert!(
                names.contains(&resolved),
                "127.0.0.1 resolved to {resolved:?}, not one of {names:?} from /etc/hosts"
            );
        }

        // owner: the server for an accepted connection, the loop otherwise.
        match accepted.owner() {
            Owner::Server(owner) => assert_eq!(owner.local_addr(), server.local_addr()),
            other => panic!("an accepted connection is owned by its server, got {other:?}"),
        }
        match client.owner() {
            Owner::Loop(handle) => assert!(handle == lt.handle),
            other => panic!("a tcp_connect connection is owned by its loop, got {other:?}"),
        }

        // close() -> bool
        assert!(accepted.close_peer(), "first close closes");
        assert!(!accepted.close_peer(), "second close has nothing to do");
        assert!(accepted.is_closed());
        common::wait_event(&events, "Eof", |e| matches!(e, Event::Eof));
        assert!(client.close_peer());
        common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
        assert!(!client.close_peer());
        server.close();
    });
}

// ---------------------------------------------------------------------------
// TouchDesigner sendOSC, decoded by evstream's own OSC codec
// ---------------------------------------------------------------------------

/// TouchDesigner's example values `[1, b'abc', 'apple', [6,7,8], True,
/// None, float('inf')]` and a second message.
fn touchdesigner_messages() -> Vec<(&'static str, Vec<OscValue>)> {
    vec![
        (
            "/abc",
            vec![
                1.into(),
                b"abc".to_vec().into(),
                "apple".into(),
                vec![OscValue::from(6), 7.into(), 8.into()].into(),
                true.into(),
                OscValue::None,
                f64::INFINITY.into(),
            ],
        ),
        (
            "/xyz",
            vec![false.into(), (-1.5f64).into(), f64::NEG_INFINITY.into()],
        ),
    ]
}

/// What seed 004 says each option combination sends for
/// [`touchdesigner_messages`]; `None` where the options cannot be used.
fn expected_args(non_standard: bool, wide: bool) -> Option<[Vec<OscType>; 2]> {
    let blob = OscType::Blob(Bytes::from_static(b"abc"));
    let apple = OscType::String("apple".into());
    match (non_standard, wide) {
        (true, false) => Some([
            vec![
                OscType::Int(1),
                blob,
                apple,
                OscType::Array(vec![OscType::Int(6), OscType::Int(7), OscType::Int(8)]),
                OscType::Bool(true),
                OscType::Nil,
                OscType::Inf,
            ],
            vec![
                OscType::Bool(false),
                OscType::Float(-1.5),
                OscType::Float(f32::NEG_INFINITY),
            ],
        ]),
        (true, true) => Some([
            vec![
                OscType::Long(1),
                blob,
                apple,
                OscType::Array(vec![OscType::Long(6), OscType::Long(7), OscType::Long(8)]),
                OscType::Bool(true),
                OscType::Nil,
                OscType::Inf,
            ],
            vec![
                OscType::Bool(false),
                OscType::Double(-1.5),
                OscType::Double(f64::NEG_INFINITY),
            ],
        ]),
        (false, false) => Some([
            vec![
                OscType::Int(1),
                blob,
                apple,
                OscType::Int(6),
                OscType::Int(7),
                OscType::Int(8),
                OscType::Int(1),
                OscType::Int(0),
                OscType::Float(f32::INFINITY),
            ],
            vec![
                OscType::Int(0),
                OscType::Float(-1.5),
                OscType::Float(f32::NEG_INFINITY),
            ],
        ]),
        // use64BitPrecision requires useNonStandardTypes.
        (false, true) => None,
    }
}

/// TouchDesigner sendOSC end to end (seed 004: type inference, asBundle,
/// both OSC-over-TCP framings): every option combination yields exactly the
/// documented tags at an on_frame(OscCodec) server, as_bundle wraps all
/// messages in one bundle, and an impossible combination sends nothing.
#[test]
fn send_osc_touchdesigner_example_under_every_option_combination() {
    bounded("send_osc", || {
        let lt = LoopThread::start();
        for framing in [OscFraming::Osc10, OscFraming::Osc11] {
            let (server, packets) = osc_server(&lt.handle, framing);
            let socket = tcp_connect(
                &lt.handle,
                "127.0.0.1",
                server.local_addr().port(),
                TcpOptions::new(),
            )
            .unwrap();
            let messages = touchdesigner_messages();
            for as_bundle in [false, true] {
                for non_standard in [true, false] {
                    for wide in [false, true] {
                        let options = SendOscOptions::new()
                            .as_bundle(as_bundle)
                            .use_non_standard_types(non_standard)
                            .use_64bit_precision(wide);
                        let what = format!("{framing:?} {options:?}");
                        let result = socket.send_osc(&messages, &options, framing);
                        let Some([first, second]) = expected_args(non_standard, wide) else {
                            assert!(
                                matches!(result, Err(Error::InvalidInput(_))),
                                "{what}: {result:?}"
                            );
                            // Nothing was sent: the next packet is the marker.
                            let marker = OscMessage::new("/marker", vec![OscType::Int(7)]);
                            socket
                                .send_osc(
                                    &[("/marker", vec![OscValue::from(7)])],
                                    &SendOscOptions::new(),
                                    framing,
                                )
                                .unwrap();
                            assert_eq!(
                                recv_packet(&packets, &what),
                                OscPacket::Message(marker),
                                "{what}: something was sent before the marker"
                            );
                            continue;
                        };
                        let sent = result.unwrap_or_else(|err| panic!("{what}: {err}"));
                        let expected_packets = osc_packets(&messages, &options).unwrap();
                        assert_eq!(sent, framed_len(&expected_packets, framing), "{what}");

                        let first_tags = tags(&first);
                        let second_tags = tags(&second);
                        let expected_tags = match (non_standard, wide) {
                            (true, false) => ("ibs[iii]TNI", "Fff"),
                            (true, true) => ("hbs[hhh]TNI", "Fdd"),
                            _ => ("ibsiiiiif", "iff"),
                        };
                        assert_eq!(
                            (first_tags.as_str(), second_tags.as_str()),
                            expected_tags,
                            "{what}"
                        );
                        let first = OscMessage::new("/abc", first);
                        let second = OscMessage::new("/xyz", second);
                        if as_bundle {
                            let packet = recv_packet(&packets, &what);
                            assert_eq!(
                                packet,
                                OscPacket::Bundle(OscBundle::new(
                                    OscTime::IMMEDIATELY,
                                    vec![first.into(), second.into()]
                                )),
                                "{what}"
                            );
                        } else {
                            assert_eq!(recv_packet(&packets, &what), first.into(), "{what}");
                            assert_eq!(recv_packet(&packets, &what), second.into(), "{what}");
                        }
                    }
                }
            }

            // Integer magnitude: 32 or 64 bits as the value needs, and an
            // error without non-standard types.
            let big = [(
                "/big",
                vec![
                    OscValue::from(1i64 << 40),
                    OscValue::from(-(1i64 << 31)),
                    OscValue::from(1i64 << 31),
                ],
            )];
            socket
                .send_osc(&big, &SendOscOptions::new(), framing)
                .unwrap();
            assert_eq!(
                recv_packet(&packets, "big ints"),
                OscMessage::new(
                    "/big",
                    vec![
                        OscType::Long(1 << 40),
                        OscType::Int(i32::MIN),
                        OscType::Long(1 << 31)
                    ]
                )
                .into()
            );
            let standard = SendOscOptions::new().use_non_standard_types(false);
            assert!(matches!(
                socket.send_osc(&big, &standard, framing),
                Err(Error::InvalidInput(_))
            ));
            // An empty bundle is still one bundle.
            let none: [(&str, Vec<OscValue>); 0] = [];
            socket
                .send_osc(&none, &SendOscOptions::new().as_bundle(true), framing)
                .unwrap();
            assert_eq!(
                recv_packet(&packets, "empty bundle"),
                OscBundle::new(OscTime::IMMEDIATELY, vec![]).into()
            );
            assert!(
                packets.try_recv().is_err(),
                "{framing:?}: an extra packet arrived"
            );
            socket.close();
            server.close();
        }
    });
}

/// OSC over TCP framing on the wire (seed 004 / OSC 1.0 and 1.1 specs):
/// send_osc writes an int32 big-endian size then the packet for Osc10, and
/// END + SLIP-escaped packet + END (double END) for Osc11 — checked by a
/// std peer, independently of evstream's decoder.
#[test]
fn send_osc_framing_on_the_wire_follows_osc_1_0_and_1_1() {
    const END: u8 = 0xC0;
    const ESC: u8 = 0xDB;
    bounded("osc framing", || {
        let lt = LoopThread::start();
        for framing in [OscFraming::Osc10, OscFraming::Osc11] {
            let (listener, addr) = common::std_listener();
            let socket =
                tcp_connect(&lt.handle, "127.0.0.1", addr.port(), TcpOptions::new()).unwrap();
            let mut accepted = common::accept(&listener);
            // A blob with END and ESC bytes, which SLIP must escape.
            let values = vec![
                OscValue::from(&[END, ESC, 1, END][..]),
                "s".into(),
                2.into(),
            ];
            let packet = osc_packets(&[("/slip", values.clone())], &SendOscOptions::new())
                .unwrap()
                .remove(0);
            let payload = encode(&packet).unwrap();
            let sent = socket
                .send_osc(&[("/slip", values)], &SendOscOptions::new(), framing)
                .unwrap();
            let wire = read_exact(&mut accepted, sent);
            match framing {
                OscFraming::Osc10 => {
                    assert_eq!(sent, 4 + payload.len());
                    assert_eq!(wire[..4], (payload.len() as u32).to_be_bytes());
                    assert_eq!(wire[4..], payload[..]);
                }
                OscFraming::Osc11 => {
                    assert_eq!(wire.first(), Some(&END), "leading END");
                    assert_eq!(wire.last(), Some(&END), "trailing END");
                    let body = &wire[1..wire.len() - 1];
                    assert!(!body.contains(&END), "an unescaped END inside");
                    let mut unescaped = Vec::new();
                    let mut bytes = body.iter();
                    while let Some(&b) = bytes.next() {
                        if b == ESC {
                            match bytes.next() {
                                Some(0xDC) => unescaped.push(END),
                                Some(0xDD) => unescaped.push(ESC),
                                other => panic!("bad SLIP escape {other:?}"),
                            }
                        } else {
                            unescaped.push(b);
                        }
                    }
                    assert_eq!(unescaped, payload[..]);
                }
            }
            socket.close();
            assert_eq!(common::read_to_end(&mut accepted), b"", "nothing more");
        }
    });
}
