//! The codec layer (`evstream::codec`) against the contract: `Framed` and
//! `on_frame` decode whole frames from real connections (rule 1: nothing
//! received is lost or invented), frames inside one received chunk are
//! slices of it (performance design: no copy), the `Sink` side writes the
//! exact wire format (rule 5), bad input from a peer yields a clear error
//! with bounded memory and leaves the loop and every other connection
//! running (rules 4 and 8), decoders survive arbitrary input (proptest), and
//! the wire formats agree with tokio-util's and asynchronous-codec's codecs.

mod common;

use common::connect_stream;
use evstream::prelude::*;

use common::block_on;

use std::future::Future;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::Receiver;
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{LoopThread, WAIT};
use evstream::codec::{
    Decoder, Encoder, Endian, Framed, LengthDelimitedCodec, LinesCodec, SlipCodec,
};
use evstream::{
    AsyncIoStream, Buffer, Eol, Error, Event, Limit, LimitPolicy, LoopHandle, ServerOptions,
    Socket, TcpOptions, TcpServer,
};
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Encodes `item` with `codec` into plain bytes.
fn wire<C: Encoder<T>, T>(codec: &mut C, item: T) -> Vec<u8> {
    let mut buf = Buffer::new();
    codec.encode(item, &mut buf).expect("encode");
    buf.to_vec()
}

/// Whether `inner` lies inside `outer`'s memory.
fn is_inside(inner: &[u8], outer: &[u8]) -> bool {
    let start = outer.as_ptr() as usize;
    let end = start + outer.len();
    let p = inner.as_ptr() as usize;
    p >= start && p + inner.len() <= end
}

/// A second connection on the same loop that exchanges lines with a std
/// echo peer: proof that the loop and other connections keep running.
struct Witness {
    framed: Framed<LinesCodec>,
    rounds: usize,
    peer: Option<JoinHandle<()>>,
}

impl Witness {
    fn start(handle: &LoopHandle) -> Witness {
        let (stream, peer) = connect_stream(handle, TcpOptions::new());
        let peer = thread::spawn(move || {
            let mut writer = peer.try_clone().unwrap();
            let mut reader = BufReader::new(peer);
            let mut line = Vec::new();
            // Ends at EOF or on a read timeout; either ends the echo.
            while matches!(reader.read_until(b'\n', &mut line), Ok(1..)) {
                if writer.write_all(&line).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let mut witness = Witness {
            framed: Framed::new(stream, LinesCodec::lf(1024)),
            rounds: 0,
            peer: Some(peer),
        };
        witness.check();
        witness
    }

    /// One line there and back.
    fn check(&mut self) {
        self.rounds += 1;
        let line = format!("witness round {}", self.rounds);
        block_on(self.framed.send(line.as_str())).expect("witness send");
        let echo = block_on(self.framed.next())
            .expect("witness stream ended")
            .expect("witness frame");
        assert_eq!(&echo[..], line.as_bytes(), "the witness connection works");
        assert!(!self.framed.get_ref().socket().is_closed());
    }
}

impl Drop for Witness {
    fn drop(&mut self) {
        self.framed.get_ref().close_connection();
        if let Some(peer) = self.peer.take() {
            if !thread::panicking() {
                peer.join().unwrap();
            }
        }
    }
}

/// Polls `framed` (woken through a channel) until it ends or, while it is
/// pending, `enough(frames, input_buffer_len)` holds. Returns whether it
/// ended.
fn pump<C: Decoder>(
    framed: &mut Framed<C>,
    frames: &mut Vec<C::Item>,
    enough: impl Fn(&[C::Item], usize) -> bool,
) -> bool
where
    C::Item: std::fmt::Debug,
{
    let (waker, rx) = common::channel_waker();
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + WAIT;
    loop {
        match framed.poll_next_unpin(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => frames.push(frame),
            Poll::Ready(Some(Err(err))) => panic!("decode error {err:?} after {frames:?}"),
            Poll::Ready(None) => return true,
            Poll::Pending => {
                // Received but not yet a frame: in the connection's input
                // or held by the codec, which the connection counts too.
                let buffered = framed.get_ref().socket().input_buffer_len();
                assert!(buffered >= framed.read_buffer().len());
                if enough(frames, buffered) {
                    return false;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if rx.recv_timeout(left).is_err() {
                    panic!("stuck: frames {frames:?}, {buffered} bytes buffered");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Framed<LinesCodec> over real connections
// ---------------------------------------------------------------------------

/// Rule 1 (nothing dropped or invented): a million short lines from a std
/// peer come out of `Framed<LinesCodec>` exactly, in order, then the end.
#[test]
fn framed_lines_decodes_a_million_lines_exactly() {
    const LINES: usize = 1_000_000;
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let writer = thread::spawn(move || {
        let mut data = Vec::with_capacity(7 * LINES);
        for i in 0..LINES {
            writeln!(data, "{i:x}").unwrap();
        }
        common::write_all(&mut peer, &data);
        data.len()
    });
    let mut framed = Framed::new(stream, LinesCodec::lf(32));
    let count = block_on(async {
        let mut expected = String::new();
        let mut count = 0usize;
        while let Some(line) = framed.next().await {
            let line = line.expect("frame");
            expected.clear();
            std::fmt::Write::write_fmt(&mut expected, format_args!("{count:x}")).unwrap();
            if line[..] != *expected.as_bytes() {
                panic!("line {count}: got {line:?}, expected {expected:?}");
            }
            count += 1;
        }
        count
    });
    assert!(writer.join().unwrap() > 5 * MIB);
    assert_eq!(count, LINES, "every line, no more");
}

/// One piece the peer sends, the frames it completes, and the bytes left
/// buffered afterwards.
struct Step {
    piece: &'static [u8],
    frames: &'static [&'static [u8]],
    left: usize,
}

fn step(piece: &'static [u8], frames: &'static [&'static [u8]], left: usize) -> Step {
    Step {
        piece,
        frames,
        left,
    }
}

/// Sends `steps` as separate packets (each only after the previous one was
/// buffered and decoded as far as it goes), then closes, and checks the
/// frames after every step and the last frames at EOF.
fn split_terminators(eol: Eol, steps: &[Step], at_eof: &[&[u8]]) {
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let (go, wait) = common::channel::<()>();
    let pieces: Vec<&'static [u8]> = steps.iter().map(|s| s.piece).collect();
    let sender = thread::spawn(move || {
        for piece in pieces {
            common::recv(&wait, "go for the next piece");
            common::write_all(&mut peer, piece);
        }
        common::recv(&wait, "go for the close");
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    let mut framed = Framed::new(stream, LinesCodec::new(eol, 64));
    let mut frames: Vec<Bytes> = Vec::new();
    let mut expected: Vec<&[u8]> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        expected.extend_from_slice(step.frames);
        go.send(()).unwrap();
        let count = expected.len();
        let ended = pump(&mut framed, &mut frames, |frames, buffered| {
            frames.len() >= count && buffered == step.left
        });
        assert!(!ended, "{eol:?} step {n}: ended early");
        assert_eq!(frames, expected, "{eol:?} after step {n}");
        // What the codec holds counts as buffered input (rule 12).
        assert_eq!(framed.get_ref().socket().input_buffer_len(), step.left);
    }
    go.send(()).unwrap();
    expected.extend_from_slice(at_eof);
    assert!(pump(&mut framed, &mut frames, |_, _| false));
    assert_eq!(frames, expected, "{eol:?} at EOF");
    drop(sender.join().unwrap());
}

/// Rule 1: CRLF lines (a lone LF also ends a line, a lone CR belongs to
/// it) with the CR and LF of a terminator arriving in separate packets.
#[test]
fn framed_crlf_lines_with_terminators_split_across_packets() {
    split_terminators(
        Eol::CrLf,
        &[
            step(b"one\r", &[], 4),
            step(b"\ntw", &[b"one"], 2),
            step(b"o\nthr\rx\r\n", &[b"two", b"thr\rx"], 0),
            step(b"four\r\n\r", &[b"four"], 1),
            step(b"\nfive", &[b""], 4),
        ],
        &[b"five"],
    );
}

/// Rule 1: strict CRLF lines (a lone LF belongs to the line), CR and LF
/// split across packets.
#[test]
fn framed_strict_crlf_lines_with_terminators_split_across_packets() {
    split_terminators(
        Eol::CrLfStrict,
        &[
            step(b"one\r", &[], 4),
            step(b"\ntwo\n", &[b"one"], 4),
            step(b"more\r", &[], 9),
            step(b"\n\r\nx", &[b"two\nmore", b""], 1),
        ],
        &[b"x"],
    );
}

/// Rule 1: NUL-terminated frames split across packets; nothing is left at
/// EOF.
#[test]
fn framed_nul_lines_split_across_packets() {
    split_terminators(
        Eol::Nul,
        &[
            step(b"one", &[], 3),
            step(b"\0tw", &[b"one"], 2),
            step(b"o\0\0three\r\n", &[b"two", b""], 7),
            step(b"\0", &[b"three\r\n"], 0),
        ],
        &[],
    );
}

/// Rule 1: LF lines (a CR stays in the line) split across packets.
#[test]
fn framed_lf_lines_split_across_packets() {
    split_terminators(
        Eol::Lf,
        &[
            step(b"a\r", &[], 2),
            step(b"\nb", &[b"a\r"], 1),
            step(b"c\n\nd", &[b"bc", b""], 1),
        ],
        &[b"d"],
    );
}

/// Rule 1: `Any` lines: a CR/LF run is one terminator, a line completes at
/// its first CR or LF, and (documented, as in libevent) a run continuing
/// in a later packet shows up as an empty line.
#[test]
fn framed_any_lines_split_across_packets() {
    split_terminators(
        Eol::Any,
        &[
            step(b"one", &[], 3),
            step(b"\r\ntw", &[b"one"], 2),
            step(b"o\r", &[b"two"], 0),
            step(b"\n\n\rthree\n", &[b"", b"three"], 0),
            step(b"tail", &[], 4),
        ],
        &[b"tail"],
    );
}

// ---------------------------------------------------------------------------
// 2. Zero copy
// ---------------------------------------------------------------------------

/// Performance design (no copy): a line inside one pushed chunk comes out
/// of `LinesCodec` as a slice of that chunk, for every style.
#[test]
fn buffer_lines_are_slices_of_the_chunk() {
    for (eol, data, term) in [
        (Eol::Lf, &b"hello\nworld!\n"[..], 1),
        (Eol::CrLf, b"hello\r\nworld!\r\n", 2),
        (Eol::CrLfStrict, b"hello\r\nworld!\r\n", 2),
        (Eol::Nul, b"hello\0world!\0", 1),
        (Eol::Any, b"hello\r\nworld!\n", 2),
    ] {
        let chunk = Bytes::copy_from_slice(data);
        let mut src = Buffer::new();
        src.push(chunk.clone());
        let mut codec = LinesCodec::new(eol, 64);
        let first = codec.decode(&mut src).unwrap().unwrap();
        let second = codec.decode(&mut src).unwrap().unwrap();
        assert_eq!((&first[..], &second[..]), (&b"hello"[..], &b"world!"[..]));
        assert!(
            is_inside(&first, &chunk) && is_inside(&second, &chunk),
            "{eol:?}"
        );
        assert_eq!(first.as_ptr(), chunk.as_ptr());
        assert_eq!(second.as_ptr() as usize, chunk.as_ptr() as usize + 5 + term);
        assert!(src.is_empty());
    }
}

/// Performance design (no copy): a length-delimited frame inside one
/// pushed chunk is a slice of it, for every prefix size and byte order.
#[test]
fn buffer_length_delimited_frames_are_slices_of_the_chunk() {
    for prefix in [1, 2, 4, 8] {
        for endian in [Endian::Big, Endian::Little] {
            let mut codec = LengthDelimitedCodec::new(prefix, endian, 1024).unwrap();
            let mut data = wire(&mut codec, &b"first frame"[..]);
            data.extend(wire(&mut codec, &b"second"[..]));
            let chunk = Bytes::from(data);
            let mut src = Buffer::new();
            src.push(chunk.clone());
            let first = codec.decode(&mut src).unwrap().unwrap();
            let second = codec.decode(&mut src).unwrap().unwrap();
            assert_eq!(&first[..], b"first frame");
            assert_eq!(&second[..], b"second");
            assert!(is_inside(&first, &chunk) && is_inside(&second, &chunk));
            assert_eq!(first.as_ptr() as usize, chunk.as_ptr() as usize + prefix);
            assert_eq!(
                second.as_ptr() as usize,
                first.as_ptr() as usize + first.len() + prefix,
                "prefix {prefix} {endian:?}"
            );
        }
    }
}

/// Performance design (no copy): a SLIP frame without escapes inside one
/// pushed chunk is a slice of it; one with escapes is decoded correctly.
#[test]
fn buffer_slip_frames_without_escapes_are_slices_of_the_chunk() {
    let mut codec = SlipCodec::new(64);
    let mut data = wire(&mut codec, &b"plain"[..]);
    data.extend(wire(&mut codec, &b"also plain"[..]));
    data.extend(wire(&mut codec, &[1, END, 2, ESC, 3][..]));
    let chunk = Bytes::from(data);
    let mut src = Buffer::new();
    src.push(chunk.clone());
    let first = codec.decode(&mut src).unwrap().unwrap();
    let second = codec.decode(&mut src).unwrap().unwrap();
    let third = codec.decode(&mut src).unwrap().unwrap();
    assert_eq!(&first[..], b"plain");
    assert_eq!(&second[..], b"also plain");
    assert_eq!(&third[..], &[1, END, 2, ESC, 3]);
    assert!(is_inside(&first, &chunk) && is_inside(&second, &chunk));
    assert_eq!(first.as_ptr() as usize, chunk.as_ptr() as usize + 1);
    assert_eq!(
        second.as_ptr() as usize,
        first.as_ptr() as usize + first.len() + 2
    );
    assert_eq!(codec.decode(&mut src).unwrap(), None);
    assert!(src.is_empty());
}

/// Receives two frames sent in one packet through `Framed` and checks the
/// second starts `gap` bytes after the end of the first (one chunk, no
/// copy).
fn adjacent_over_connection<C>(codec: C, packet: Vec<u8>, expected: [&[u8]; 2], gap: usize)
where
    C: Decoder<Item = Bytes>,
{
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let mut framed = Framed::new(stream, codec);
    common::write_all(&mut peer, &packet);
    let first = block_on(framed.next()).unwrap().unwrap();
    let second = block_on(framed.next()).unwrap().unwrap();
    assert_eq!([&first[..], &second[..]], expected);
    assert_eq!(
        second.as_ptr() as usize,
        first.as_ptr() as usize + first.len() + gap,
        "both frames are slices of the one received chunk"
    );
}

/// Performance design (no copy): two lines from one packet are adjacent
/// slices of the received chunk.
#[test]
fn framed_lines_from_one_packet_are_adjacent_slices() {
    adjacent_over_connection(
        LinesCodec::lf(64),
        b"first line\nsecond\n".to_vec(),
        [b"first line", b"second"],
        1,
    );
    adjacent_over_connection(
        LinesCodec::new(Eol::CrLfStrict, 64),
        b"first line\r\nsecond\r\n".to_vec(),
        [b"first line", b"second"],
        2,
    );
}

/// Performance design (no copy): two length-delimited frames from one
/// packet are adjacent slices of the received chunk.
#[test]
fn framed_length_delimited_from_one_packet_are_adjacent_slices() {
    let mut codec = LengthDelimitedCodec::osc_1_0(1024);
    let mut packet = wire(&mut codec, &b"first frame"[..]);
    packet.extend(wire(&mut codec, &b"second"[..]));
    adjacent_over_connection(codec, packet, [b"first frame", b"second"], 4);
    let mut codec = LengthDelimitedCodec::new(2, Endian::Little, 1024).unwrap();
    let mut packet = wire(&mut codec, &b"first frame"[..]);
    packet.extend(wire(&mut codec, &b"second"[..]));
    adjacent_over_connection(codec, packet, [b"first frame", b"second"], 2);
}

/// Performance design (no copy): two SLIP frames from one packet are
/// adjacent slices of the received chunk (END END between them).
#[test]
fn framed_slip_from_one_packet_are_adjacent_slices() {
    let mut codec = SlipCodec::new(1024);
    let mut packet = wire(&mut codec, &b"first frame"[..]);
    packet.extend(wire(&mut codec, &b"second"[..]));
    adjacent_over_connection(codec, packet, [b"first frame", b"second"], 2);
}

// ---------------------------------------------------------------------------
// 3. Sink side: the wire format
// ---------------------------------------------------------------------------

/// Sends `items` through `Framed` (one `send`, then `send_all`), closes,
/// and returns what the std peer received.
fn send_through_framed<C>(codec: C, items: &[Bytes]) -> Vec<u8>
where
    C: Decoder + Encoder<Bytes>,
{
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let reader = thread::spawn(move || common::read_to_end(&mut peer));
    let mut framed = Framed::new(stream, codec);
    block_on(async {
        framed.send(items[0].clone()).await?;
        let mut rest = futures::stream::iter(items[1..].iter().cloned().map(Ok::<Bytes, Error>));
        framed.send_all(&mut rest).await?;
        framed.close().await
    })
    .expect("send");
    reader.join().unwrap()
}

/// An independent line splitter: every line must end with `term`.
fn split_lines(mut data: &[u8], term: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let at = data
            .windows(term.len())
            .position(|w| w == term)
            .expect("every line ends with the terminator");
        out.push(data[..at].to_vec());
        data = &data[at + term.len()..];
    }
    out
}

/// An independent length-prefix parser.
fn split_length_prefixed(mut data: &[u8], prefix: usize, endian: Endian) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        assert!(data.len() >= prefix, "truncated prefix");
        let mut raw = data[..prefix].to_vec();
        if endian == Endian::Little {
            raw.reverse();
        }
        let len = raw.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)) as usize;
        assert!(data.len() >= prefix + len, "truncated payload");
        out.push(data[prefix..prefix + len].to_vec());
        data = &data[prefix + len..];
    }
    out
}

/// An independent strict SLIP parser for the double-END format: each frame
/// is END, the escaped payload, END.
fn split_slip_double_end(data: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < data.len() {
        assert_eq!(data[at], END, "frame {} starts with END", out.len());
        at += 1;
        let mut frame = Vec::new();
        loop {
            let byte = *data.get(at).expect("frame ends with END");
            at += 1;
            match byte {
                END => break,
                ESC => {
                    frame.push(match data.get(at) {
                        Some(&ESC_END) => END,
                        Some(&ESC_ESC) => ESC,
                        other => panic!("bad escape {other:?}"),
                    });
                    at += 1;
                }
                b => frame.push(b),
            }
        }
        out.push(frame);
    }
    out
}

fn assert_frames(got: Vec<Vec<u8>>, items: &[Bytes], what: &str) {
    assert_eq!(got.len(), items.len(), "{what}: frame count");
    for (n, (got, item)) in got.iter().zip(items).enumerate() {
        assert_eq!(&got[..], &item[..], "{what}: frame {n}");
    }
}

const SINK_ITEMS: usize = 100_000;

fn line_items(count: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(format!("item {i} {}", &"abcdefghijklmnop"[..i % 17])))
        .collect()
}

/// Rule 5 (order, nothing dropped): 100k lines through the `Sink` arrive
/// as text lines ended by LF.
#[test]
fn sink_lines_wire_format() {
    let items = line_items(SINK_ITEMS);
    let data = send_through_framed(LinesCodec::lf(64), &items);
    assert_frames(split_lines(&data, b"\n"), &items, "LF");
}

/// Rule 5: the CRLF styles write CR LF, the NUL style a NUL byte.
#[test]
fn sink_lines_wire_format_other_styles() {
    let items = line_items(SINK_ITEMS / 10);
    for (eol, term) in [
        (Eol::CrLf, &b"\r\n"[..]),
        (Eol::CrLfStrict, b"\r\n"),
        (Eol::Nul, b"\0"),
        (Eol::Any, b"\n"),
    ] {
        let data = send_through_framed(LinesCodec::new(eol, 64), &items);
        assert_frames(split_lines(&data, term), &items, &format!("{eol:?}"));
    }
}

fn binary_items(count: usize, max_len: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| {
            let mut data = common::random_data(i as u64, i % (max_len + 1));
            if let Some(first) = data.first_mut() {
                *first = [END, ESC, 0, b'\n'][i % 4];
            }
            Bytes::from(data)
        })
        .collect()
}

/// Rule 5: 100k length-delimited frames through the `Sink` carry the
/// announced prefix: 4-byte big-endian (OSC 1.0).
#[test]
fn sink_length_delimited_wire_format_osc() {
    let items = binary_items(SINK_ITEMS, 120);
    let data = send_through_framed(LengthDelimitedCodec::osc_1_0(1024), &items);
    assert_frames(
        split_length_prefixed(&data, 4, Endian::Big),
        &items,
        "osc 1.0",
    );
}

/// Rule 5: every prefix size (1, 2, 4, 8) in both byte orders is written
/// as a parser of that exact format expects.
#[test]
fn sink_length_delimited_wire_format_every_prefix_and_order() {
    let items = binary_items(SINK_ITEMS / 10, 255);
    for prefix in [1, 2, 4, 8] {
        for endian in [Endian::Big, Endian::Little] {
            let codec = LengthDelimitedCodec::new(prefix, endian, 255).unwrap();
            let data = send_through_framed(codec, &items);
            assert_frames(
                split_length_prefixed(&data, prefix, endian),
                &items,
                &format!("prefix {prefix} {endian:?}"),
            );
        }
    }
}

/// Rule 5: 100k SLIP frames (with END and ESC bytes in the payloads) are
/// written in the double-END format, escapes included.
#[test]
fn sink_slip_wire_format_double_end() {
    let items = binary_items(SINK_ITEMS, 80);
    // An empty frame is skipped by SLIP decoders: send only non-empty ones.
    let items: Vec<Bytes> = items.into_iter().filter(|b| !b.is_empty()).collect();
    let data = send_through_framed(SlipCodec::new(1024), &items);
    assert_frames(split_slip_double_end(&data), &items, "SLIP");
}

// ---------------------------------------------------------------------------
// 4. on_frame, the callback form
// ---------------------------------------------------------------------------

/// Rules 1 and 10: `on_frame` on a server delivers whole lines from three
/// clients whose lines arrive interleaved in arbitrary pieces: each
/// connection's frames in order and unmixed (a decoder per connection),
/// the last unterminated line at EOF through `decode_eof`.
#[test]
fn on_frame_lines_from_three_clients_in_order_and_unmixed() {
    const CLIENTS: usize = 3;
    const LINES: usize = 500;
    let lt = LoopThread::start();
    let (tx, rx) = common::channel::<(SocketAddr, evstream::Result<Bytes>)>();
    let options = TcpOptions::new()
        .on_frame(LinesCodec::lf(1024), move |socket: &Socket, frame| {
            let _ = tx.send((socket.peer_addr().unwrap(), frame));
        })
        .event_cb(|socket, event| {
            if matches!(event, Event::Eof) {
                socket.close();
            }
        });
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(options),
    )
    .unwrap();
    let mut clients = Vec::new();
    let mut expected = Vec::new();
    for c in 0..CLIENTS {
        let stream = common::std_connect(server.local_addr());
        stream.set_nodelay(true).unwrap();
        let mut lines: Vec<Vec<u8>> = (0..LINES)
            .map(|i| format!("client {c} line {i} {}", "#".repeat((i * 7 + c) % 23)).into_bytes())
            .collect();
        lines.push(format!("client {c} tail without terminator").into_bytes());
        let mut data = Vec::new();
        for line in &lines[..LINES] {
            data.extend_from_slice(line);
            data.push(b'\n');
        }
        data.extend_from_slice(&lines[LINES]);
        expected.push((stream.local_addr().unwrap(), lines));
        clients.push((stream, data, 0usize));
    }
    // Round robin over the clients, in pieces that cut lines anywhere.
    let sizes = [1usize, 7, 13, 29, 3, 64, 11, 2];
    let mut turn = 0;
    while clients.iter().any(|(_, data, at)| at < &data.len()) {
        for (c, (stream, data, at)) in clients.iter_mut().enumerate() {
            if *at < data.len() {
                let n = sizes[(turn + c) % sizes.len()].min(data.len() - *at);
                common::write_all(stream, &data[*at..*at + n]);
                *at += n;
            }
        }
        turn += 1;
    }
    for (stream, _, _) in &mut clients {
        stream.shutdown(Shutdown::Write).unwrap();
    }
    let mut got: Vec<Vec<Bytes>> = vec![Vec::new(); CLIENTS];
    let total = CLIENTS * (LINES + 1);
    for _ in 0..total {
        let (addr, frame) = common::recv(&rx, "a frame");
        let c = expected
            .iter()
            .position(|(a, _)| *a == addr)
            .expect("a known client");
        got[c].push(frame.expect("no decode error"));
    }
    for (c, (_, lines)) in expected.iter().enumerate() {
        assert_eq!(got[c].len(), lines.len(), "client {c}: frame count");
        for (i, (g, e)) in got[c].iter().zip(lines).enumerate() {
            assert_eq!(&g[..], &e[..], "client {c} frame {i}");
        }
    }
    // The server closes each connection at EOF: the clients see the end,
    // and no frame came after the last one.
    for (stream, _, _) in &mut clients {
        assert!(common::read_to_end(stream).is_empty());
    }
    assert!(rx.try_recv().is_err(), "no extra frame");
    server.close();
}

// ---------------------------------------------------------------------------
// 5. Bad input
// ---------------------------------------------------------------------------

/// Rule 8: an over-long line is `LimitExceeded(FrameLength)` as soon as the
/// limit is passed, in every style, and the bytes stay in the buffer.
#[test]
fn buffer_overlong_line_is_limit_exceeded_and_kept() {
    for eol in [Eol::Lf, Eol::CrLf, Eol::CrLfStrict, Eol::Nul, Eol::Any] {
        let mut codec = LinesCodec::new(eol, 8);
        let mut src = Buffer::from(&b"12345678"[..]);
        assert_eq!(
            codec.decode(&mut src).unwrap(),
            None,
            "{eol:?}: at the limit"
        );
        src.extend_from_slice(b"9");
        let err = codec.decode(&mut src).unwrap_err();
        assert!(
            matches!(
                err,
                Error::LimitExceeded {
                    what: Limit::FrameLength,
                    limit: 8
                }
            ),
            "{eol:?}: {err:?}"
        );
        assert_eq!(src.to_vec(), b"123456789", "{eol:?}: the bytes stay");
        // A complete line over the limit is refused too.
        let data: &[u8] = if eol == Eol::Nul {
            b"123456789\0"
        } else {
            b"123456789\r\n"
        };
        let mut codec = LinesCodec::new(eol, 8);
        let mut src = Buffer::from(data);
        assert!(matches!(
            codec.decode(&mut src),
            Err(Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: 8
            })
        ));
        assert_eq!(src.to_vec(), data, "{eol:?}: the bytes stay");
    }
}

/// Rule 8 and 4: a length prefix above `max_frame` (up to u64::MAX) is
/// `InvalidData` as soon as the prefix is in, without allocating it (the
/// test would abort otherwise), and the bytes stay.
#[test]
fn buffer_length_prefix_above_max_is_invalid_data_and_kept() {
    for endian in [Endian::Big, Endian::Little] {
        let mut codec = LengthDelimitedCodec::new(8, endian, 1024).unwrap();
        let mut src = Buffer::from(&[0xFFu8; 7][..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None, "prefix incomplete");
        src.extend_from_slice(&[0xFF, b'x', b'y']);
        assert!(matches!(codec.decode(&mut src), Err(Error::InvalidData(_))));
        assert_eq!(src.to_vec(), [&[0xFFu8; 8][..], b"xy"].concat());
        assert!(matches!(
            codec.decode_eof(&mut src),
            Err(Error::InvalidData(_))
        ));
        assert_eq!(src.len(), 10);
    }
    for prefix in [1, 2, 4, 8] {
        for endian in [Endian::Big, Endian::Little] {
            let mut codec = LengthDelimitedCodec::new(prefix, endian, 100).unwrap();
            // 101 in the prefix's size and order.
            let mut raw = 101u64.to_be_bytes()[8 - prefix..].to_vec();
            if endian == Endian::Little {
                raw.reverse();
            }
            let mut src = Buffer::from(raw.clone());
            assert!(
                matches!(codec.decode(&mut src), Err(Error::InvalidData(_))),
                "prefix {prefix} {endian:?}"
            );
            assert_eq!(src.to_vec(), raw);
            // Exactly the maximum is fine.
            let mut ok = wire(&mut codec, vec![7u8; 100]);
            ok.truncate(prefix + 99);
            let mut src = Buffer::from(ok);
            assert_eq!(codec.decode(&mut src).unwrap(), None);
            src.extend_from_slice(&[7]);
            assert_eq!(codec.decode(&mut src).unwrap().unwrap(), vec![7u8; 100]);
        }
    }
}

/// Rule 8: ESC followed by anything but ESC_END/ESC_ESC is `InvalidData`
/// and the frame's bytes stay.
#[test]
fn buffer_malformed_slip_is_invalid_data_and_kept() {
    for bad in [
        &[1u8, ESC, 0x00, 2, END][..],
        &[ESC, b'a', END],
        &[1, 2, ESC, END],
    ] {
        let mut codec = SlipCodec::new(64);
        let mut src = Buffer::from(bad);
        assert!(
            matches!(codec.decode(&mut src), Err(Error::InvalidData(_))),
            "{bad:?}"
        );
        assert_eq!(src.to_vec(), bad, "the bytes stay");
    }
    // Over-long without END: bounded.
    let mut codec = SlipCodec::new(4);
    let mut src = Buffer::from(&[1u8; 10][..]);
    assert!(matches!(
        codec.decode(&mut src),
        Err(Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: 4
        })
    ));
    assert_eq!(src.len(), 10);
}

/// Rule 8 (offending bytes stay, so nothing received is lost): leading
/// END bytes before a malformed SLIP frame are received bytes too.
#[test]
fn buffer_malformed_slip_after_end_keeps_every_byte() {
    let bad = [END, 1, ESC, 0x00, 2, END];
    let mut codec = SlipCodec::new(64);
    let mut src = Buffer::from(&bad[..]);
    assert!(matches!(codec.decode(&mut src), Err(Error::InvalidData(_))));
    assert_eq!(src.to_vec(), bad, "an error leaves the buffer as it was");
}

/// Sends `good` then `bad` in one packet to a `Framed` with `policy`:
/// the good frame, the error once, then the end; the bad bytes stay; the
/// connection is closed (Close) or open and paused (Pause); a second
/// connection on the same loop keeps exchanging frames.
fn framed_bad_input<C>(
    codec: C,
    good: (&[u8], &[u8]),
    bad: &[u8],
    policy: LimitPolicy,
    expected: fn(&Error) -> bool,
) where
    C: Decoder<Item = Bytes>,
{
    let lt = LoopThread::start();
    let mut witness = Witness::start(&lt.handle);
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let socket = stream.socket().clone();
    let mut framed = Framed::new(stream, codec);
    framed.set_limit_policy(policy);
    common::write_all(&mut peer, &[good.0, bad].concat());
    let first = block_on(framed.next())
        .expect("a frame")
        .expect("the good frame");
    assert_eq!(&first[..], good.1);
    let err = block_on(framed.next())
        .expect("the error")
        .expect_err("bad input fails");
    assert!(expected(&err), "unexpected error {err:?}");
    assert!(block_on(framed.next()).is_none(), "the stream ends");
    assert!(block_on(framed.next()).is_none(), "and stays ended");
    assert_eq!(socket.input_buffer_len(), bad.len(), "the bad bytes stay");
    witness.check();
    match policy {
        LimitPolicy::Close => {
            assert!(socket.is_closed(), "closed after the error");
            // The peer sees our FIN, closes too, and the connection is
            // released.
            assert!(common::read_to_end(&mut peer).is_empty());
            drop(peer);
            block_on(socket.closed());
        }
        LimitPolicy::Pause => {
            assert!(!socket.is_closed(), "still open");
            assert!(socket.is_reading_paused(), "paused after the error");
            // Still writable: the application decides.
            socket.write(b"bye").unwrap();
            let mut bye = [0u8; 3];
            peer.read_exact(&mut bye).unwrap();
            assert_eq!(&bye, b"bye");
            socket.close();
            drop(peer);
            block_on(socket.closed());
        }
    }
    witness.check();
}

fn is_invalid_data(err: &Error) -> bool {
    matches!(err, Error::InvalidData(_))
}

fn is_frame_limit_16(err: &Error) -> bool {
    matches!(
        err,
        Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: 16
        }
    )
}

/// Rule 8: over `Framed`, an over-long line yields `LimitExceeded` once,
/// ends the stream and closes the connection (default policy); other
/// connections keep running.
#[test]
fn framed_overlong_line_closes_by_default() {
    framed_bad_input(
        LinesCodec::lf(16),
        (b"short\n", b"short"),
        &[b'x'; 40],
        LimitPolicy::Close,
        is_frame_limit_16,
    );
}

/// Rule 8: with `LimitPolicy::Pause`, an over-long line yields the error
/// once, ends the stream and pauses the still-open connection.
#[test]
fn framed_overlong_line_pauses_with_pause_policy() {
    framed_bad_input(
        LinesCodec::lf(16),
        (b"short\n", b"short"),
        &[b'x'; 40],
        LimitPolicy::Pause,
        is_frame_limit_16,
    );
}

/// Rule 8: an 8-byte length prefix of u64::MAX over `Framed` is
/// `InvalidData` (no 2^64 allocation is attempted), the stream ends, the
/// connection closes (default) or pauses.
#[test]
fn framed_huge_length_prefix_is_invalid_data() {
    for policy in [LimitPolicy::Close, LimitPolicy::Pause] {
        let mut codec = LengthDelimitedCodec::new(8, Endian::Big, MIB).unwrap();
        let good = wire(&mut codec, &b"good"[..]);
        let bad = [&u64::MAX.to_be_bytes()[..], b"junk"].concat();
        framed_bad_input(codec, (&good, b"good"), &bad, policy, is_invalid_data);
    }
}

/// Rule 8: malformed SLIP (ESC then 0x00) over `Framed` is `InvalidData`,
/// the stream ends, the connection closes (default) or pauses.
#[test]
fn framed_malformed_slip_is_invalid_data() {
    for policy in [LimitPolicy::Close, LimitPolicy::Pause] {
        framed_bad_input(
            SlipCodec::new(64),
            (&[END, b'o', b'k', END], b"ok"),
            &[1, ESC, 0x00, 2, END],
            policy,
            is_invalid_data,
        );
    }
}

const FLOOD_MAX_LINE: usize = 64 * KIB;
const FLOOD_HIGH_WATERMARK: usize = 256 * KIB;
const FLOOD_CHUNK: usize = 64 * KIB;
const FLOOD_TOTAL: usize = 64 * MIB;
/// What the input buffer may hold for a peer flooding a line without a
/// terminator: the line limit plus the read watermark (twice: the decoder
/// takes the buffer while it searches, so the loop may refill it once)
/// plus one read — configuration, never the peer's 64 MiB.
const FLOOD_BOUND: usize = FLOOD_MAX_LINE + 2 * FLOOD_HIGH_WATERMARK + FLOOD_CHUNK;

fn flood_options() -> TcpOptions {
    TcpOptions::new()
        .read_watermarks(0, FLOOD_HIGH_WATERMARK)
        .read_chunk_size(FLOOD_CHUNK)
}

/// Rules 4 and 8: a peer offering 64 MiB without a newline to a
/// `Framed<LinesCodec>` (max 64 KiB) gets `LimitExceeded` naming the limit
/// while the input buffer stays bounded by configuration; the connection is
/// closed (default policy) and released; another connection keeps working.
#[test]
fn framed_line_flood_is_bounded_and_closed() {
    let lt = LoopThread::start();
    let mut witness = Witness::start(&lt.handle);
    let (stream, mut peer) = connect_stream(&lt.handle, flood_options());
    let socket = stream.socket().clone();
    let mut framed = Framed::new(stream, LinesCodec::lf(FLOOD_MAX_LINE));
    let flood = thread::spawn(move || {
        let block = vec![b'x'; MIB];
        let mut sent = 0;
        // Ends early if the connection is reset; either way it ends.
        while sent < FLOOD_TOTAL && peer.write_all(&block).is_ok() {
            sent += block.len();
        }
        sent
    });
    let err = block_on(framed.next())
        .expect("the error")
        .expect_err("the line is too long");
    let buffered = socket.input_buffer_len();
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: FLOOD_MAX_LINE
            }
        ),
        "{err:?}"
    );
    assert!(
        buffered > FLOOD_MAX_LINE && buffered <= FLOOD_BOUND,
        "{buffered} bytes buffered at the error"
    );
    assert!(block_on(framed.next()).is_none(), "the stream ends");
    assert!(socket.is_closed(), "closed by default");
    witness.check();
    block_on(socket.closed());
    assert!(socket.input_buffer_len() <= FLOOD_BOUND);
    flood.join().unwrap();
    witness.check();
}

/// Rules 4 and 8: with `LimitPolicy::Pause`, the same flood leaves the
/// connection open and paused; the sender is pushed back (its writes block)
/// long before 64 MiB, and the input buffer stays bounded.
#[test]
fn framed_line_flood_with_pause_policy_blocks_the_sender() {
    let lt = LoopThread::start();
    let mut witness = Witness::start(&lt.handle);
    let (stream, mut peer) = connect_stream(&lt.handle, flood_options());
    let socket = stream.socket().clone();
    let mut framed = Framed::new(stream, LinesCodec::lf(FLOOD_MAX_LINE));
    framed.set_limit_policy(LimitPolicy::Pause);
    let (report, reported) = common::channel::<(usize, bool)>();
    let (finish, finished) = common::channel::<()>();
    let flood = thread::spawn(move || {
        // A write that makes no progress for this long is blocked by flow
        // control (the timeout is what this test observes).
        peer.set_write_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let block = vec![b'x'; MIB];
        let mut sent = 0;
        let mut blocked = false;
        while sent < FLOOD_TOTAL {
            let n = (FLOOD_TOTAL - sent).min(block.len());
            match peer.write(&block[..n]) {
                Ok(n) => sent += n,
                Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    blocked = true;
                    break;
                }
                Err(err) => panic!("flood write failed: {err}"),
            }
        }
        report.send((sent, blocked)).unwrap();
        let _ = finished.recv_timeout(WAIT);
        drop(peer);
    });
    let err = block_on(framed.next())
        .expect("the error")
        .expect_err("the line is too long");
    assert!(
        matches!(
            err,
            Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: FLOOD_MAX_LINE
            }
        ),
        "{err:?}"
    );
    assert!(block_on(framed.next()).is_none(), "the stream ends");
    let (sent, blocked) = common::recv(&reported, "the flood's report");
    assert!(
        blocked && sent < FLOOD_TOTAL,
        "sender pushed back after {sent} bytes"
    );
    let buffered = socket.input_buffer_len();
    assert!(
        buffered > FLOOD_MAX_LINE && buffered <= FLOOD_BOUND,
        "{buffered} bytes buffered"
    );
    assert!(!socket.is_closed(), "still open");
    assert!(socket.is_reading_paused(), "paused");
    witness.check();
    finish.send(()).unwrap();
    socket.abort();
    flood.join().unwrap();
    witness.check();
}

/// What the `on_frame` server tells the test.
#[derive(Debug)]
enum Msg {
    Frame(SocketAddr, evstream::Result<Bytes>),
    Closed(SocketAddr),
}

/// An `on_frame` server that echoes each frame (re-encoded with `codec`)
/// and reports frames and `Closed` events.
fn echo_server<C>(handle: &LoopHandle, codec: C) -> (TcpServer, Receiver<Msg>)
where
    C: Decoder<Item = Bytes> + Encoder<Bytes> + Clone + Send + 'static,
{
    let (tx, rx) = common::channel();
    let events = tx.clone();
    let mut encoder = codec.clone();
    let options = TcpOptions::new()
        .on_frame(
            codec,
            common::stateful(move |socket: &Socket, frame: evstream::Result<Bytes>| {
                if let Ok(frame) = &frame {
                    socket.write(&wire(&mut encoder, frame.clone())).unwrap();
                }
                let _ = tx.send(Msg::Frame(socket.peer_addr().unwrap(), frame));
            }),
        )
        .event_cb(move |socket, event| {
            if matches!(event, Event::Closed) {
                let _ = events.send(Msg::Closed(socket.peer_addr().unwrap()));
            }
        });
    let server = TcpServer::bind(
        handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(options),
    )
    .unwrap();
    (server, rx)
}

/// Rule 8: a client of an `on_frame` server sends one good frame, then
/// `bad`: the callback gets the frame, then the error exactly once, then the
/// connection is closed; another client on the same server keeps working
/// before and after.
fn on_frame_bad_input<C>(codec: C, good: &[u8], bad: &[u8], expected: fn(&Error) -> bool)
where
    C: Decoder<Item = Bytes> + Encoder<Bytes> + Clone + Send + 'static,
{
    let lt = LoopThread::start();
    let (server, rx) = echo_server(&lt.handle, codec.clone());
    let mut encoder = codec;
    let good_wire = wire(&mut encoder, Bytes::copy_from_slice(good));
    let mut other = common::std_connect(server.local_addr());
    let exchange = |other: &mut TcpStream| {
        common::write_all(other, &good_wire);
        let mut echo = vec![0u8; good_wire.len()];
        other.read_exact(&mut echo).unwrap();
        assert_eq!(echo, good_wire, "the other client works");
    };
    exchange(&mut other);
    let mut bad_client = common::std_connect(server.local_addr());
    let bad_addr = bad_client.local_addr().unwrap();
    common::write_all(&mut bad_client, &[&good_wire[..], bad].concat());
    // The good frame is echoed, then the server closes: EOF.
    assert_eq!(common::read_to_end(&mut bad_client), good_wire);
    exchange(&mut other);
    drop(bad_client);
    let mut seen = Vec::new();
    loop {
        match common::recv(&rx, "the bad connection's Closed") {
            Msg::Closed(addr) if addr == bad_addr => break,
            Msg::Frame(addr, frame) if addr == bad_addr => seen.push(frame),
            _ => {}
        }
    }
    assert_eq!(seen.len(), 2, "one frame, one error: {seen:?}");
    assert_eq!(&seen[0].as_ref().unwrap()[..], good);
    let err = seen[1].as_ref().expect_err("then the error");
    assert!(expected(err), "unexpected error {err:?}");
    exchange(&mut other);
    server.close();
}

/// Rule 8: `on_frame` with an over-long line: error once, connection
/// closed, other client unaffected.
#[test]
fn on_frame_overlong_line_reports_once_and_closes() {
    on_frame_bad_input(LinesCodec::lf(16), b"short", &[b'x'; 40], is_frame_limit_16);
}

/// Rule 8: `on_frame` with a u64::MAX length prefix: `InvalidData` once,
/// connection closed, other client unaffected.
#[test]
fn on_frame_huge_length_prefix_reports_once_and_closes() {
    on_frame_bad_input(
        LengthDelimitedCodec::new(8, Endian::Big, MIB).unwrap(),
        b"good",
        &[&u64::MAX.to_be_bytes()[..], b"junk"].concat(),
        is_invalid_data,
    );
}

/// Rule 8: `on_frame` with malformed SLIP: `InvalidData` once, connection
/// closed, other client unaffected.
#[test]
fn on_frame_malformed_slip_reports_once_and_closes() {
    on_frame_bad_input(
        SlipCodec::new(64),
        b"good",
        &[1, ESC, 0x00, 2, END],
        is_invalid_data,
    );
}

// ---------------------------------------------------------------------------
// 6. Property tests at the Buffer level
// ---------------------------------------------------------------------------

/// A codec configuration for the property tests.
#[derive(Debug, Clone)]
enum Spec {
    Lines(Eol, usize),
    Length(usize, Endian, usize),
    Slip(usize),
}

impl Spec {
    fn decoder(&self) -> Box<dyn Decoder<Item = Bytes>> {
        match *self {
            Spec::Lines(eol, max) => Box::new(LinesCodec::new(eol, max)),
            Spec::Length(prefix, endian, max) => {
                Box::new(LengthDelimitedCodec::new(prefix, endian, max).unwrap())
            }
            Spec::Slip(max) => Box::new(SlipCodec::new(max)),
        }
    }

    fn encode(&self, payload: &[u8], dst: &mut Buffer) {
        let result = match *self {
            Spec::Lines(eol, max) => LinesCodec::new(eol, max).encode(payload, dst),
            Spec::Length(prefix, endian, max) => LengthDelimitedCodec::new(prefix, endian, max)
                .unwrap()
                .encode(Bytes::copy_from_slice(payload), dst),
            Spec::Slip(max) => SlipCodec::new(max).encode(payload, dst),
        };
        result.expect("a valid payload encodes");
    }

    /// Turns arbitrary bytes into a payload this codec can carry exactly.
    fn valid_payload(&self, mut raw: Vec<u8>) -> Vec<u8> {
        match *self {
            Spec::Lines(eol, max) => {
                raw.truncate(max);
                match eol {
                    Eol::Lf | Eol::CrLf => raw.retain(|&b| b != b'\n'),
                    Eol::Nul => raw.retain(|&b| b != 0),
                    Eol::CrLfStrict => {
                        for i in 1..raw.len() {
                            if raw[i - 1] == b'\r' && raw[i] == b'\n' {
                                raw[i] = b'n';
                            }
                        }
                    }
                    Eol::Any => {
                        raw.retain(|&b| b != b'\n' && b != b'\r');
                        if raw.is_empty() {
                            raw.push(b'a');
                        }
                    }
                }
            }
            Spec::Length(prefix, _, max) => {
                let cap = if prefix == 1 { max.min(255) } else { max };
                raw.truncate(cap);
            }
            Spec::Slip(max) => {
                raw.truncate(max);
                if raw.is_empty() {
                    raw.push(END);
                }
            }
        }
        raw
    }
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    let eol = prop::sample::select(vec![
        Eol::Lf,
        Eol::CrLf,
        Eol::CrLfStrict,
        Eol::Nul,
        Eol::Any,
    ]);
    let endian = prop::sample::select(vec![Endian::Big, Endian::Little]);
    prop_oneof![
        // `Any` folds a run of terminators into one, so its payloads are
        // never empty, which needs a limit of at least 1.
        (eol, 0usize..48).prop_map(|(eol, max)| {
            let max = if eol == Eol::Any { max.max(1) } else { max };
            Spec::Lines(eol, max)
        }),
        (
            prop::sample::select(vec![1usize, 2, 4, 8]),
            endian,
            0usize..300
        )
            .prop_map(|(prefix, endian, max)| Spec::Length(prefix, endian, max)),
        (1usize..64).prop_map(Spec::Slip),
    ]
}

/// Bytes biased towards the ones codecs care about.
fn noisy_bytes(max_len: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            2 => prop::sample::select(vec![b'\n', b'\r', 0, END, ESC, ESC_END, ESC_ESC]),
        ],
        0..max_len,
    )
}

fn proptest_config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// How much a decoder may take from the buffer when it returns no frame.
#[derive(Clone, Copy)]
struct Kept {
    /// On `Ok(None)`, leading END bytes (empty SLIP frames) may go.
    none_may_skip_ends: bool,
    /// On `Err`, leading END bytes may go.
    err_may_skip_ends: bool,
}

/// Every byte stays (the `Decoder` contract).
const EXACT: Kept = Kept {
    none_may_skip_ends: false,
    err_may_skip_ends: false,
};

/// Checks that `after` is `before`, or — if `may_skip_ends` — `before`
/// without some leading END bytes.
fn check_kept(before: &[u8], after: &[u8], may_skip_ends: bool) -> Result<(), TestCaseError> {
    prop_assert!(after.len() <= before.len(), "bytes invented");
    let (skipped, rest) = before.split_at(before.len() - after.len());
    prop_assert_eq!(rest, after, "the kept bytes are the received ones");
    if may_skip_ends {
        prop_assert!(skipped.iter().all(|&b| b == END), "only END bytes skipped");
    } else {
        prop_assert!(skipped.is_empty(), "{} bytes consumed", skipped.len());
    }
    Ok(())
}

/// Feeds `data` in chunks of `sizes` (cycled) to `decoder`, decoding all
/// it can after each chunk and at the end with `decode_eof`. Checks that
/// no call panics (proptest fails on a panic), that a frame always takes
/// bytes, and that a call without a frame keeps the bytes as `kept` says.
/// Returns the frames and whether an error ended the feed.
fn feed(
    decoder: &mut dyn Decoder<Item = Bytes>,
    data: &[u8],
    sizes: &[usize],
    kept: Kept,
) -> Result<(Vec<Bytes>, bool), TestCaseError> {
    let mut src = Buffer::new();
    let mut frames = Vec::new();
    let mut at = 0;
    let mut turn = 0;
    let mut ended = false;
    while !ended {
        if at < data.len() {
            let n = sizes[turn % sizes.len()].min(data.len() - at);
            turn += 1;
            src.push(Bytes::copy_from_slice(&data[at..at + n]));
            at += n;
        } else {
            ended = true;
        }
        // Bounded: every frame takes at least one byte.
        for _ in 0..=data.len() {
            let before = src.to_vec();
            let result = if ended {
                decoder.decode_eof(&mut src)
            } else {
                decoder.decode(&mut src)
            };
            match result {
                Ok(Some(frame)) => {
                    prop_assert!(src.len() < before.len(), "a frame takes bytes");
                    frames.push(frame);
                }
                Ok(None) => {
                    check_kept(&before, &src.to_vec(), kept.none_may_skip_ends)?;
                    break;
                }
                Err(_) => {
                    check_kept(&before, &src.to_vec(), kept.err_may_skip_ends)?;
                    return Ok((frames, true));
                }
            }
        }
    }
    Ok((frames, false))
}

proptest! {
    #![proptest_config(proptest_config())]

    /// Rule 8: arbitrary bytes in arbitrary chunks never make a line or
    /// length decoder panic, and an error consumes nothing.
    #[test]
    fn prop_random_input_lines_and_length(
        spec in spec_strategy().prop_filter("not SLIP", |s| !matches!(s, Spec::Slip(_))),
        data in noisy_bytes(400),
        sizes in prop::collection::vec(1usize..64, 1..16),
    ) {
        let mut decoder = spec.decoder();
        feed(&mut *decoder, &data, &sizes, EXACT)?;
    }

    /// Rule 8: arbitrary bytes in arbitrary chunks never make the SLIP
    /// decoder panic, and an error leaves the offending frame in place
    /// (the strict form, every byte kept, is the next test).
    #[test]
    fn prop_random_input_slip(
        max in 1usize..64,
        data in noisy_bytes(400),
        sizes in prop::collection::vec(1usize..64, 1..16),
    ) {
        let mut decoder = SlipCodec::new(max);
        let kept = Kept { none_may_skip_ends: true, err_may_skip_ends: true };
        feed(&mut decoder, &data, &sizes, kept)?;
    }

    /// Rule 1: a valid encoded stream split into arbitrary chunks, fed
    /// incrementally, decodes to exactly the payloads: no byte lost or
    /// invented, nothing left over, no error.
    #[test]
    fn prop_valid_stream_round_trips(
        spec in spec_strategy(),
        raw in prop::collection::vec(noisy_bytes(80), 0..24),
        sizes in prop::collection::vec(1usize..64, 1..16),
    ) {
        let payloads: Vec<Vec<u8>> = raw.into_iter().map(|p| spec.valid_payload(p)).collect();
        let mut wire = Buffer::new();
        for payload in &payloads {
            spec.encode(payload, &mut wire);
        }
        let mut decoder = spec.decoder();
        // SLIP skips the empty frames of its double END without a frame.
        let kept = Kept {
            none_may_skip_ends: matches!(spec, Spec::Slip(_)),
            err_may_skip_ends: false,
        };
        let (frames, failed) = feed(&mut *decoder, &wire.to_vec(), &sizes, kept)?;
        prop_assert!(!failed, "a valid stream fails to decode");
        let frames: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(frames, payloads);
    }
}

/// Rule 8 (strict form of the SLIP property): an error leaves every byte
/// of data in the buffer ("a decoder must leave the offending bytes in
/// `src`, so nothing received is lost"). Runs of END before it are empty
/// frames, which the decoder consumes as it skips them (rule 13: a flood of
/// ENDs must not be held), so those may go — never data.
#[test]
fn prop_random_input_slip_error_consumes_nothing() {
    let mut runner = proptest::test_runner::TestRunner::new(proptest_config());
    runner
        .run(
            &(
                1usize..64,
                noisy_bytes(400),
                prop::collection::vec(1usize..64, 1..16),
            ),
            |(max, data, sizes)| {
                let mut decoder = SlipCodec::new(max);
                let kept = Kept {
                    none_may_skip_ends: true,
                    err_may_skip_ends: true,
                };
                feed(&mut decoder, &data, &sizes, kept).map(|_| ())
            },
        )
        .unwrap();
}

// ---------------------------------------------------------------------------
// 7. Interop with tokio-util and asynchronous-codec
// ---------------------------------------------------------------------------

/// Runs `future` on a tokio current-thread runtime, bounded by [`WAIT`].
fn tokio_run<F: Future>(future: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(WAIT, future).await })
        .expect("done within WAIT")
}

/// An `on_frame` server that answers each frame with `reply(frame)`,
/// encoded by `encoder`.
fn reply_server<D, E>(
    handle: &LoopHandle,
    decoder: D,
    mut encoder: E,
    reply: fn(&[u8]) -> Bytes,
) -> TcpServer
where
    D: Decoder<Item = Bytes> + Clone + Send + 'static,
    E: Encoder<Bytes> + Send + 'static,
{
    let options = TcpOptions::new().on_frame(
        decoder,
        common::stateful(move |socket: &Socket, frame: evstream::Result<Bytes>| {
            let frame = frame.expect("the peer's frames decode");
            socket.write(&wire(&mut encoder, reply(&frame))).unwrap();
        }),
    );
    TcpServer::bind(
        handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(options),
    )
    .unwrap()
}

fn echo_prefixed(line: &[u8]) -> Bytes {
    Bytes::from([&b"echo:"[..], line].concat())
}

fn reversed(frame: &[u8]) -> Bytes {
    frame.iter().rev().copied().collect()
}

/// Wire compatibility (rule 5 across implementations): tokio-util's
/// `LinesCodec` over `AsyncIoStream` (through `compat`) and our
/// `LinesCodec` in an `on_frame` server understand each other both ways.
#[test]
fn interop_tokio_util_lines() {
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let lt = LoopThread::start();
    let server = reply_server(
        &lt.handle,
        LinesCodec::lf(1024),
        LinesCodec::lf(1024),
        echo_prefixed,
    );
    let addr = server.local_addr().to_string();
    tokio_run(async move {
        let stream = AsyncIoStream::connect(&addr).await.unwrap();
        let mut framed =
            tokio_util::codec::Framed::new(stream.compat(), tokio_util::codec::LinesCodec::new());
        for i in 0..1000 {
            framed
                .send(format!("line {i} {}", "z".repeat(i % 50)))
                .await
                .unwrap();
        }
        for i in 0..1000 {
            let got = framed.next().await.unwrap().unwrap();
            assert_eq!(got, format!("echo:line {i} {}", "z".repeat(i % 50)));
        }
    });
    server.close();
}

/// Wire compatibility: tokio-util's default `LengthDelimitedCodec` (4-byte
/// big-endian) matches `LengthDelimitedCodec::new(4, Big, ..)`, and its
/// 2-byte little-endian variant matches `new(2, Little, ..)`, both ways,
/// for empty, small and large frames.
#[test]
fn interop_tokio_util_length_delimited() {
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let lt = LoopThread::start();
    let configs = [
        (
            LengthDelimitedCodec::new(4, Endian::Big, MIB).unwrap(),
            tokio_util::codec::LengthDelimitedCodec::new(),
            vec![0usize, 1, 255, 256, 65_535, 65_536, 300_000, 17],
        ),
        (
            LengthDelimitedCodec::new(2, Endian::Little, 65_535).unwrap(),
            tokio_util::codec::LengthDelimitedCodec::builder()
                .length_field_length(2)
                .little_endian()
                .new_codec(),
            vec![0usize, 1, 255, 256, 4097, 65_535, 3],
        ),
    ];
    for (ours, theirs, sizes) in configs {
        let server = reply_server(&lt.handle, ours.clone(), ours, reversed);
        let addr = server.local_addr().to_string();
        tokio_run(async move {
            let stream = AsyncIoStream::connect(&addr).await.unwrap();
            let mut framed = tokio_util::codec::Framed::new(stream.compat(), theirs);
            let payloads: Vec<Bytes> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| Bytes::from(common::random_data(i as u64 + 1, n)))
                .collect();
            for payload in &payloads {
                framed.send(payload.clone()).await.unwrap();
            }
            for payload in &payloads {
                let got = framed.next().await.unwrap().unwrap();
                assert_eq!(
                    &got[..],
                    &reversed(payload)[..],
                    "frame of {}",
                    payload.len()
                );
            }
        });
        server.close();
    }
}

/// Wire compatibility: asynchronous-codec's `LengthCodec` (8-byte
/// big-endian) and `LinesCodec` over `AsyncIoStream` directly agree with
/// ours both ways.
#[test]
fn interop_asynchronous_codec() {
    let lt = LoopThread::start();
    let ours = LengthDelimitedCodec::new(8, Endian::Big, MIB).unwrap();
    let server = reply_server(&lt.handle, ours.clone(), ours, reversed);
    let stream = block_on(AsyncIoStream::connect(&server.local_addr().to_string())).unwrap();
    let mut framed = asynchronous_codec::Framed::new(stream, asynchronous_codec::LengthCodec);
    let payloads: Vec<Bytes> = [0usize, 1, 8, 1000, 200_000, 5]
        .iter()
        .map(|&n| Bytes::from(common::random_data(n as u64, n)))
        .collect();
    block_on(async {
        for payload in &payloads {
            framed.send(payload.clone()).await.unwrap();
        }
        for payload in &payloads {
            let got = framed.next().await.unwrap().unwrap();
            assert_eq!(&got[..], &reversed(payload)[..]);
        }
    });
    server.close();

    let server = reply_server(
        &lt.handle,
        LinesCodec::lf(1024),
        LinesCodec::lf(1024),
        echo_prefixed,
    );
    let stream = block_on(AsyncIoStream::connect(&server.local_addr().to_string())).unwrap();
    let mut framed = asynchronous_codec::Framed::new(stream, asynchronous_codec::LinesCodec);
    block_on(async {
        for i in 0..200 {
            // asynchronous-codec sends lines as given, terminator included.
            framed.send(format!("line {i}\n")).await.unwrap();
        }
        for i in 0..200 {
            let got = framed.next().await.unwrap().unwrap();
            assert_eq!(got, format!("echo:line {i}\n"));
        }
    });
    server.close();
}

/// Rule 12 where codecs meet on one connection: what a codec holds counts
/// as buffered input exactly, whether it is the connection's first holder
/// (which keeps its count apart), a second one alive at the same time, or
/// one made after another was taken apart with `into_inner`.
#[test]
fn codecs_one_after_another_and_side_by_side_count_exactly() {
    let lt = LoopThread::start();
    let (stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    let socket = stream.socket().clone();
    let buffered_is = |n: usize| {
        common::wait_until(&format!("{n} bytes buffered"), || {
            socket.input_buffer_len() == n
        })
    };

    // The first codec; it keeps "tw" of an unfinished line.
    let mut first = Framed::new(stream, LinesCodec::lf(64));
    common::write_all(&mut peer, b"one\ntw");
    assert_eq!(block_on(first.next()).unwrap().unwrap(), &b"one"[..]);
    buffered_is(2);

    // Taken apart: the bytes go back to the connection, still counted once.
    let stream = first.into_inner();
    buffered_is(2);

    // A second codec on the same stream gets them first.
    let mut second = Framed::new(stream, LinesCodec::lf(64));
    common::write_all(&mut peer, b"o\nthree");
    assert_eq!(block_on(second.next()).unwrap().unwrap(), &b"two"[..]);
    buffered_is(5);

    // A third codec alive beside the second, on another handle to the same
    // socket: it takes what the second left once that one gives it back.
    let mut third = Framed::new(AsyncIoStream::new(socket.clone()), LinesCodec::lf(64));
    let second_stream = second.into_inner();
    common::write_all(&mut peer, b"\nfour\nfi");
    assert_eq!(block_on(third.next()).unwrap().unwrap(), &b"three"[..]);
    assert_eq!(block_on(third.next()).unwrap().unwrap(), &b"four"[..]);
    buffered_is(2);
    // And a fourth beside it, made while the third still holds "fi".
    let mut fourth = Framed::new(second_stream, LinesCodec::lf(64));
    drop(third);
    buffered_is(2);
    common::write_all(&mut peer, b"ve\nsix");
    assert_eq!(block_on(fourth.next()).unwrap().unwrap(), &b"five"[..]);
    buffered_is(3);
    drop(fourth);
    buffered_is(3);
    peer.shutdown(Shutdown::Write).unwrap();
    let mut last = Framed::new(AsyncIoStream::new(socket.clone()), LinesCodec::lf(64));
    assert_eq!(block_on(last.next()).unwrap().unwrap(), &b"six"[..]);
    assert!(block_on(last.next()).is_none());
    buffered_is(0);
}

/// Rule 4 through a codec: with a read high watermark far below what the
/// peer sends, the loop stops reading again and again while the codec
/// holds a full input, and each time the frames the codec consumes must
/// let it read on. Every line arrives, in order (a lost resume would stall
/// the read and fail the bounded wait), and the input stays bounded.
#[test]
fn a_codec_reading_past_many_read_suspensions_gets_every_line() {
    const LINES: usize = 40_000;
    let lt = LoopThread::start();
    let options = TcpOptions::new()
        .read_watermarks(0, 4 * 1024)
        .read_chunk_size(1024)
        .max_buffer_size(16 * 1024);
    let (stream, mut peer) = connect_stream(&lt.handle, options);
    let socket = stream.socket().clone();
    let sender = thread::spawn(move || {
        let mut data = Vec::new();
        for n in 0..LINES {
            data.extend_from_slice(format!("line {n:08}\n").as_bytes());
        }
        common::write_all(&mut peer, &data);
        peer.shutdown(Shutdown::Write).unwrap();
        peer
    });
    let mut framed = Framed::new(stream, LinesCodec::lf(64));
    let mut highest = 0;
    for n in 0..LINES {
        let line = block_on(framed.next()).expect("a line").expect("no error");
        assert_eq!(line, format!("line {n:08}").as_bytes(), "line {n}");
        highest = highest.max(socket.input_buffer_len());
    }
    assert!(
        block_on(framed.next()).is_none(),
        "the end after the last line"
    );
    assert!(highest <= 16 * 1024, "{highest} bytes buffered at most");
    drop(sender.join().unwrap());
}
