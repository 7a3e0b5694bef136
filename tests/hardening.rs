//! Rule 13 ("every input is handled") for the decoders and the StreamPeer
//! string readers: hostile input — floods of empty SLIP frames, lines that
//! sit just past their limit at EOF, frames dripping in one byte at a time,
//! string lengths that claim megabytes — meets a bound, in time and memory
//! linear in what was sent.
//!
//! The "dripping" tests feed one byte per `decode` call. They assert the
//! decoded result only; none measures time. They finish in well under a
//! second when every decoder resumes its search where it stopped, and would
//! run for minutes if one searched its buffer from the start on each call
//! (the quadratic behaviour they guard against), so a regression shows up
//! as a test that does not finish.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io::Write;
use std::net::Shutdown;

use bytes::Bytes;
use common::{connect_stream, LoopThread};
use evstream::codec::{Decoder, Encoder, Endian, LengthDelimitedCodec, LinesCodec, SlipCodec};
use evstream::osc::{OscCodec, OscFraming, OscMessage, OscPacket, OscType};
use evstream::peer::{StreamPeer, StreamPeerBuffer};
use evstream::{Buffer, Eol, Error, Limit, TcpOptions};

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

const END: u8 = 0xC0;
const ESC: u8 = 0xDB;

/// How long the dripped frames are: quadratic rescans over this many
/// one-byte calls would take minutes, linear decoding takes milliseconds.
const DRIP: usize = 256 * KIB;

// ---------------------------------------------------------------------------
// Largest allocation made by the current thread
// ---------------------------------------------------------------------------

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

struct Tracking;

fn note(size: usize) {
    // `try_with`: allocations during thread teardown are not tracked.
    let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
}

unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// Runs `f` and returns its result with the largest single allocation this
/// thread made meanwhile (other tests run on other threads).
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|largest| largest.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Feeds `data` to `codec` one byte per `decode` call — each byte its own
/// chunk, as a peer dripping one byte per packet delivers them — and
/// returns every frame, then what `decode_eof` adds. After each `None` the
/// codec may hold at most `held` bytes.
fn drip<D: Decoder>(codec: &mut D, data: &[u8], held: usize) -> Vec<D::Item>
where
    D::Item: std::fmt::Debug,
{
    let data = Bytes::copy_from_slice(data);
    let mut src = Buffer::new();
    let mut frames = Vec::new();
    for i in 0..data.len() {
        src.push(data.slice(i..i + 1));
        while let Some(frame) = codec.decode(&mut src).expect("decode") {
            frames.push(frame);
        }
        assert!(
            src.len() <= held,
            "holds {} bytes after byte {i}, more than {held}",
            src.len()
        );
    }
    while let Some(frame) = codec.decode_eof(&mut src).expect("decode_eof") {
        frames.push(frame);
    }
    assert!(src.is_empty(), "{} bytes left", src.len());
    frames
}

fn is_frame_limit(result: &Result<impl std::fmt::Debug, Error>, limit: usize) -> bool {
    matches!(
        result,
        Err(Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: l
        }) if *l == limit
    )
}

/// A payload full of the bytes a framing has to look at: SLIP's END and
/// ESC, CR, LF and NUL.
fn awkward_payload(len: usize, avoid: &[u8]) -> Vec<u8> {
    const BYTES: &[u8] = &[b'a', END, b'\r', ESC, b'b', b'\n', 0, b'c', b'\r'];
    BYTES
        .iter()
        .copied()
        .filter(|b| !avoid.contains(b))
        .cycle()
        .take(len)
        .collect()
}

// ---------------------------------------------------------------------------
// 1. SLIP: floods of END bytes
// ---------------------------------------------------------------------------

/// Rule 13: 4 MiB of END bytes (empty frames) are consumed as they are
/// skipped, not held.
#[test]
fn slip_end_flood_is_consumed_not_held() {
    let mut codec = SlipCodec::new(1024);
    let mut src = Buffer::from(vec![END; 4 * MIB]);
    assert_eq!(codec.decode(&mut src).unwrap(), None);
    assert!(src.len() <= 1, "holds {} bytes of ENDs", src.len());
    src.extend_from_slice(&[1, 2, END]);
    assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], &[1, 2]);
    assert!(src.is_empty());
}

/// Rule 13: the same flood through OSC 1.1 framing.
#[test]
fn osc11_end_flood_is_consumed_not_held() {
    let mut codec = OscCodec::new(OscFraming::Osc11, 1024);
    let mut src = Buffer::from(vec![END; 4 * MIB]);
    assert_eq!(codec.decode(&mut src).unwrap(), None);
    assert!(src.len() <= 1, "holds {} bytes of ENDs", src.len());
    assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
    assert!(src.is_empty());
}

/// Rule 13: END bytes arriving one per call are dropped as they come, so
/// the codec never holds more than one of them and each call is O(1).
#[test]
fn slip_ends_dripping_one_per_call_are_not_accumulated() {
    let mut codec = SlipCodec::new(16);
    let mut data = vec![END; 200_000];
    data.extend_from_slice(&[7, 8, END, END, END]);
    let frames = drip(&mut codec, &data, 1 + 2);
    assert_eq!(frames, [Bytes::from_static(&[7, 8])]);
}

/// Rule 13: with a zero maximum, a byte after the ENDs is already too
/// much; it is refused at once, not held while waiting for an END.
#[test]
fn slip_zero_limit_refuses_a_byte_after_ends() {
    let mut codec = SlipCodec::new(0);
    let mut src = Buffer::from(&[END, END, 0][..]);
    let result = codec.decode(&mut src);
    assert!(is_frame_limit(&result, 0), "{result:?}");
    // Empty frames are still fine with a zero maximum.
    let mut codec = SlipCodec::new(0);
    let mut src = Buffer::from(&[END, END, END][..]);
    assert_eq!(codec.decode(&mut src).unwrap(), None);
    assert!(src.len() <= 1);
}

/// Rule 13: a SLIP frame is refused as soon as its decoded length passes
/// the maximum, before its END arrives, and the bytes stay.
#[test]
fn slip_frame_is_refused_once_its_decoded_length_passes_the_limit() {
    let mut codec = SlipCodec::new(4);
    let mut src = Buffer::from(&[END, 1, 2, 3, 4][..]);
    assert_eq!(codec.decode(&mut src).unwrap(), None);
    src.extend_from_slice(&[5]);
    let result = codec.decode(&mut src);
    assert!(is_frame_limit(&result, 4), "{result:?}");
    assert_eq!(src.to_vec(), [END, 1, 2, 3, 4, 5], "the bytes stay");

    // Escaped bytes count once: four of them fit.
    let mut codec = SlipCodec::new(4);
    let mut src = Buffer::from(&[END, ESC, 0xDC, ESC, 0xDD, ESC, 0xDC, ESC, 0xDD, END][..]);
    assert_eq!(
        &codec.decode(&mut src).unwrap().unwrap()[..],
        &[END, ESC, END, ESC]
    );
}

// ---------------------------------------------------------------------------
// 2. Lines at EOF never exceed the limit
// ---------------------------------------------------------------------------

/// Rule 13: for `Lf` a `\r` is line content, so with a zero maximum a lone
/// `\r` is already over the limit — refused by `decode`, and at EOF.
#[test]
fn lf_line_of_a_lone_cr_over_a_zero_limit_is_refused() {
    let mut codec = LinesCodec::lf(0);
    let mut src = Buffer::from(&b"\r"[..]);
    let result = codec.decode(&mut src);
    assert!(is_frame_limit(&result, 0), "decode: {result:?}");
    let result = codec.decode_eof(&mut src);
    assert!(is_frame_limit(&result, 0), "decode_eof: {result:?}");
    assert_eq!(src.to_vec(), b"\r", "the bytes stay");

    let mut codec = LinesCodec::lf(3);
    let mut src = Buffer::from(&b"abc\r"[..]);
    assert!(is_frame_limit(&codec.decode(&mut src), 3));
}

/// Rule 13: for the CR LF styles a trailing `\r` may start the terminator,
/// so `decode` waits for the next byte; at EOF no LF can follow, the `\r`
/// is line content (as everywhere in these styles), and the line is
/// checked against the limit like any other.
#[test]
fn crlf_line_ending_in_cr_at_eof_is_checked_against_the_limit() {
    for eol in [Eol::CrLf, Eol::CrLfStrict] {
        let mut codec = LinesCodec::new(eol, 0);
        let mut src = Buffer::from(&b"\r"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None, "{eol:?}");
        let result = codec.decode_eof(&mut src);
        assert!(is_frame_limit(&result, 0), "{eol:?}: {result:?}");
        assert_eq!(src.to_vec(), b"\r", "{eol:?}: the bytes stay");

        let mut codec = LinesCodec::new(eol, 3);
        let mut src = Buffer::from(&b"abc\r"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None, "{eol:?}");
        assert!(is_frame_limit(&codec.decode_eof(&mut src), 3), "{eol:?}");

        // Within the limit the last line is returned as it is.
        let mut codec = LinesCodec::new(eol, 4);
        let mut src = Buffer::from(&b"abc\r"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None, "{eol:?}");
        assert_eq!(
            &codec.decode_eof(&mut src).unwrap().unwrap()[..],
            b"abc\r",
            "{eol:?}"
        );
        assert!(src.is_empty());
    }
}

/// Rule 13: whatever the style, no line returned — by `decode` or at EOF —
/// is longer than the maximum.
#[test]
fn no_line_over_the_limit_is_ever_returned() {
    let inputs: &[&[u8]] = &[
        b"\r", b"\r\r", b"ab\r", b"abc", b"abcd", b"a\rb", b"ab\r\n", b"abc\r\n", b"\n", b"\0",
    ];
    for eol in [Eol::Lf, Eol::CrLf, Eol::CrLfStrict, Eol::Nul, Eol::Any] {
        for max in 0..4 {
            for input in inputs {
                let mut codec = LinesCodec::new(eol, max);
                let mut src = Buffer::from(*input);
                loop {
                    match codec.decode(&mut src) {
                        Ok(Some(line)) => assert!(line.len() <= max, "{eol:?} {max} {input:?}"),
                        Ok(None) => {
                            if let Ok(Some(line)) = codec.decode_eof(&mut src) {
                                assert!(line.len() <= max, "{eol:?} {max} {input:?} at EOF");
                                continue;
                            }
                            break;
                        }
                        Err(_) => break,
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 3. Linear time whatever the chunking: one byte per decode call
// ---------------------------------------------------------------------------

/// One line of `DRIP` bytes, then a short one, through `eol`, one byte per
/// call; `content` avoids the style's terminator bytes.
fn drip_lines(eol: Eol, content: &[u8], terminator: &[u8]) {
    let line = awkward_payload(DRIP, content);
    let mut data = line.clone();
    data.extend_from_slice(terminator);
    data.extend_from_slice(b"x");
    data.extend_from_slice(terminator);
    let mut codec = LinesCodec::new(eol, DRIP);
    let frames = drip(&mut codec, &data, DRIP + 1);
    assert_eq!(frames.len(), 2, "{eol:?}");
    assert!(frames[0] == line, "{eol:?}: the long line differs");
    assert_eq!(&frames[1][..], b"x");
}

#[test]
fn lf_lines_dripping_one_byte_per_call() {
    drip_lines(Eol::Lf, b"\n", b"\n");
}

#[test]
fn crlf_lines_dripping_one_byte_per_call() {
    drip_lines(Eol::CrLf, b"\n", b"\r\n");
}

/// A lone LF is content in `CrLfStrict`, and a lone CR too.
#[test]
fn crlf_strict_lines_dripping_one_byte_per_call() {
    let line: Vec<u8> = b"a\rb\nc".iter().copied().cycle().take(DRIP).collect();
    let mut data = line.clone();
    data.extend_from_slice(b"\r\nx\r\n");
    let mut codec = LinesCodec::new(Eol::CrLfStrict, DRIP);
    let frames = drip(&mut codec, &data, DRIP + 1);
    assert_eq!(frames.len(), 2);
    assert!(frames[0] == line, "the long line differs");
    assert_eq!(&frames[1][..], b"x");
}

#[test]
fn nul_lines_dripping_one_byte_per_call() {
    drip_lines(Eol::Nul, b"\0", b"\0");
}

#[test]
fn any_lines_dripping_one_byte_per_call() {
    drip_lines(Eol::Any, b"\r\n", b"\n");
}

#[test]
fn length_delimited_dripping_one_byte_per_call() {
    for (prefix, endian) in [(1, Endian::Big), (2, Endian::Little), (8, Endian::Big)] {
        // As long as the prefix can say, up to DRIP.
        let max = DRIP.min((1usize << (8 * prefix.min(4))) - 1);
        let mut codec = LengthDelimitedCodec::new(prefix, endian, max).unwrap();
        let payload = awkward_payload(max, &[]);
        let mut wire = Buffer::new();
        codec.encode(payload.clone(), &mut wire).unwrap();
        codec.encode(&b"x"[..], &mut wire).unwrap();
        let frames = drip(&mut codec, &wire.to_vec(), prefix + max);
        assert_eq!(frames.len(), 2, "prefix {prefix}");
        assert!(
            frames[0] == payload,
            "prefix {prefix}: the long frame differs"
        );
        assert_eq!(&frames[1][..], b"x");
    }
}

#[test]
fn slip_dripping_one_byte_per_call() {
    let mut codec = SlipCodec::new(DRIP);
    let payload = awkward_payload(DRIP, &[]);
    let mut wire = Buffer::new();
    codec.encode(&payload[..], &mut wire).unwrap();
    codec.encode(&b"x"[..], &mut wire).unwrap();
    let frames = drip(&mut codec, &wire.to_vec(), 2 * DRIP + 2);
    assert_eq!(frames.len(), 2);
    assert!(frames[0] == payload, "the long frame differs");
    assert_eq!(&frames[1][..], b"x");
}

fn drip_osc(framing: OscFraming) {
    let blob = Bytes::from(awkward_payload(DRIP, &[]));
    let packet: OscPacket = OscMessage::new("/blob", vec![OscType::Blob(blob)]).into();
    let small: OscPacket = OscMessage::new("/x", vec![OscType::Int(1)]).into();
    let mut codec = OscCodec::new(framing, DRIP + 64);
    let mut wire = Buffer::new();
    codec.encode(&packet, &mut wire).unwrap();
    codec.encode(&small, &mut wire).unwrap();
    let frames = drip(&mut codec, &wire.to_vec(), 2 * (DRIP + 64) + 2);
    assert_eq!(frames.len(), 2, "{framing:?}");
    assert!(frames[0] == packet, "{framing:?}: the long packet differs");
    assert_eq!(frames[1], small);
}

#[test]
fn osc10_dripping_one_byte_per_call() {
    drip_osc(OscFraming::Osc10);
}

#[test]
fn osc11_dripping_one_byte_per_call() {
    drip_osc(OscFraming::Osc11);
}

// ---------------------------------------------------------------------------
// 4. StreamPeer strings: memory follows the bytes that arrived
// ---------------------------------------------------------------------------

/// Rule 13: a length prefix claiming ~10.8 MB followed by nothing costs
/// no megabytes, and the error says how many bytes arrived.
#[test]
fn stream_peer_buffer_string_claim_allocates_only_what_arrived() {
    let (result, largest) = largest_allocation(|| {
        StreamPeerBuffer::from_vec(vec![0xa5, 0xa5, 0xa5, 0x00, b'h', b'i']).get_utf8_string()
    });
    assert!(
        matches!(
            result,
            Err(Error::UnexpectedEof {
                needed: 0x00a5_a5a5,
                received: 2
            })
        ),
        "{result:?}"
    );
    assert!(largest < 256 * KIB, "allocated {largest} bytes");
}

/// An in-memory peer that holds whatever was queued, through the trait's
/// default string readers (it overrides none of them).
struct Queue(VecDeque<u8>);

impl StreamPeer for Queue {
    fn put_data(&mut self, data: &[u8]) -> evstream::Result<()> {
        self.0.extend(data);
        Ok(())
    }

    fn put_partial_data(&mut self, data: &[u8]) -> evstream::Result<usize> {
        self.0.extend(data);
        Ok(data.len())
    }

    fn get_data(&mut self, dst: &mut [u8]) -> evstream::Result<()> {
        if self.0.len() < dst.len() {
            return Err(Error::UnexpectedEof {
                needed: dst.len(),
                received: self.0.len(),
            });
        }
        let n = dst.len();
        for (d, s) in dst.iter_mut().zip(self.0.drain(..n)) {
            *d = s;
        }
        Ok(())
    }

    fn get_partial_data(&mut self, dst: &mut [u8]) -> evstream::Result<usize> {
        let n = dst.len().min(self.0.len());
        self.get_data(&mut dst[..n]).map(|()| n)
    }

    fn available_bytes(&self) -> usize {
        self.0.len()
    }
}

/// Rule 13: the trait's default `get_string_raw` (what every `StreamPeer`
/// inherits) allocates as bytes arrive, not what the caller asks for.
#[test]
fn default_string_reader_allocates_as_bytes_arrive() {
    let mut peer = Queue(b"abcd".iter().copied().collect());
    let (result, largest) = largest_allocation(|| peer.get_string_raw(100 * MIB));
    assert!(
        matches!(
            result,
            Err(Error::UnexpectedEof {
                needed: 104_857_600,
                received: 4
            })
        ),
        "{result:?}"
    );
    assert!(largest < 256 * KIB, "allocated {largest} bytes");

    // A string longer than one piece still arrives whole.
    let text = "grüße ✓ ".repeat(40_000);
    let mut peer = Queue(VecDeque::new());
    peer.put_utf8_string(&text).unwrap();
    peer.put_string_raw("tail").unwrap();
    assert_eq!(peer.get_utf8_string().unwrap(), text);
    assert_eq!(peer.get_string_raw(4).unwrap(), "tail");
    // Invalid UTF-8 split across pieces is still InvalidData.
    let mut peer = Queue(VecDeque::new());
    let mut bad = vec![b'a'; 200 * KIB];
    bad.push(0xff);
    peer.put_data(&bad).unwrap();
    assert!(matches!(
        peer.get_string_raw(bad.len()),
        Err(Error::InvalidData(_))
    ));
}

/// Rule 13 on a connection: a peer claiming a ~10.8 MB string and then
/// closing after three bytes costs this thread no megabytes.
#[test]
fn stream_string_claim_allocates_only_what_arrived() {
    let lt = LoopThread::start();
    let (mut stream, mut peer) = connect_stream(&lt.handle, TcpOptions::new());
    peer.write_all(&[0xa5, 0xa5, 0xa5, 0x00, b'x', b'y', b'z'])
        .unwrap();
    peer.shutdown(Shutdown::Write).unwrap();
    let (result, largest) = largest_allocation(|| stream.get_utf8_string());
    assert!(
        matches!(
            result,
            Err(Error::UnexpectedEof {
                needed: 0x00a5_a5a5,
                received: 3
            })
        ),
        "{result:?}"
    );
    assert!(largest < 256 * KIB, "allocated {largest} bytes");
}
