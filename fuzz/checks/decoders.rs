//! Every decoder fed the same bytes in different chunkings — all at once,
//! split where the input says, one byte per call — must produce the same
//! frames and the same first error, never panic, and after `Ok(None)` hold
//! no more than its limit (plus what framing adds). The OSC packet decoder
//! must agree between `decode` and `decode_bytes`, and what it accepts must
//! re-encode to a packet that decodes the same.

use bytes::Bytes;
use evstream::codec::{Decoder, Endian, LengthDelimitedCodec, LinesCodec, SlipCodec};
use evstream::osc::{self, OscCodec, OscFraming};
use evstream::{Buffer, Eol};

use super::input::Input;

const STYLES: [Eol; 5] = [Eol::Lf, Eol::CrLf, Eol::CrLfStrict, Eol::Nul, Eol::Any];
const LIMITS: [usize; 12] = [0, 1, 2, 3, 4, 5, 8, 16, 20, 64, 255, 1024];

/// What a decoder produced, rendered so runs can be compared.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Frame(String),
    Error(String),
}

/// Feeds `pieces` in order, decoding after each, then finishes with
/// `decode_eof`. Stops at the first error. Checks the memory bound after
/// every `Ok(None)`, and that asking again changes nothing.
fn run<D: Decoder>(
    mut codec: D,
    pieces: &[&[u8]],
    held: usize,
    render: &dyn Fn(&D::Item) -> String,
) -> Vec<Outcome> {
    let mut src = Buffer::new();
    let mut out = Vec::new();
    for piece in pieces {
        src.push(Bytes::copy_from_slice(piece));
        loop {
            match codec.decode(&mut src) {
                Ok(Some(frame)) => out.push(Outcome::Frame(render(&frame))),
                Ok(None) => {
                    assert!(
                        src.len() <= held,
                        "holds {} bytes after Ok(None), bound {held}",
                        src.len()
                    );
                    let len = src.len();
                    assert!(matches!(codec.decode(&mut src), Ok(None)), "asked again");
                    assert_eq!(src.len(), len, "asking again changed the buffer");
                    break;
                }
                Err(err) => {
                    out.push(Outcome::Error(err.to_string()));
                    return out;
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut src) {
            Ok(Some(frame)) => out.push(Outcome::Frame(render(&frame))),
            Ok(None) => {
                assert!(
                    src.is_empty(),
                    "decode_eof: Ok(None) with {} bytes",
                    src.len()
                );
                return out;
            }
            Err(err) => {
                assert!(!src.is_empty(), "an error at EOF with nothing left: {err}");
                out.push(Outcome::Error(err.to_string()));
                return out;
            }
        }
    }
}

fn hex(frame: &Bytes) -> String {
    frame.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `make()` over the three chunkings and compares them.
fn same_in_every_chunking<D: Decoder>(
    make: &dyn Fn() -> D,
    data: &[u8],
    cut: &[&[u8]],
    held: usize,
    render: &dyn Fn(&D::Item) -> String,
    normalise: &dyn Fn(Vec<Outcome>) -> Vec<Outcome>,
) {
    let whole = normalise(run(make(), &[data], held, render));
    let split = normalise(run(make(), cut, held, render));
    assert_eq!(whole, split, "split where the input says");
    if data.len() <= 4096 {
        let bytes: Vec<&[u8]> = data.chunks(1).collect();
        let dripped = normalise(run(make(), &bytes, held, render));
        assert_eq!(whole, dripped, "one byte per call");
    }
}

fn keep(outcomes: Vec<Outcome>) -> Vec<Outcome> {
    outcomes
}

/// `Eol::Any`: a CR/LF run split between reads shows up as an extra empty
/// line (documented, as in libevent), so empty lines are left out of the
/// comparison.
fn without_empty_lines(outcomes: Vec<Outcome>) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .filter(|o| *o != Outcome::Frame(String::new()))
        .collect()
}

/// The OSC packet decoder on one whole packet.
fn osc_packet(data: &[u8]) {
    let copied = osc::decode(data);
    let shared = osc::decode_bytes(&Bytes::copy_from_slice(data));
    assert_eq!(format!("{copied:?}"), format!("{shared:?}"));
    if let Ok(packet) = copied {
        let wire = osc::encode(&packet).expect("a decoded packet encodes");
        let again = osc::decode(&wire).expect("a re-encoded packet decodes");
        assert_eq!(format!("{packet:?}"), format!("{again:?}"));
    }
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.byte();
    let limit = LIMITS[usize::from(input.byte()) % LIMITS.len()];
    let cuts = usize::from(input.byte() % 16);
    let mut points: Vec<usize> = (0..cuts).map(|_| usize::from(input.u16())).collect();
    let data = input.rest();
    points.iter_mut().for_each(|p| *p %= data.len() + 1);
    points.sort_unstable();
    let mut cut = Vec::new();
    let mut from = 0;
    for p in points.into_iter().chain([data.len()]) {
        cut.push(&data[from..p]);
        from = p;
    }

    let bytes = &|frame: &Bytes| hex(frame);
    let packet = &|p: &osc::OscPacket| format!("{p:?}");
    match which % 17 {
        n @ 0..=4 => {
            let eol = STYLES[usize::from(n)];
            let normalise: &dyn Fn(Vec<Outcome>) -> Vec<Outcome> = if eol == Eol::Any {
                &without_empty_lines
            } else {
                &keep
            };
            same_in_every_chunking(
                &|| LinesCodec::new(eol, limit),
                data,
                &cut,
                limit + 1,
                &|line: &Bytes| {
                    assert!(line.len() <= limit, "a line over the limit");
                    hex(line)
                },
                normalise,
            );
        }
        n @ 5..=12 => {
            let prefix = [1, 2, 4, 8][usize::from(n - 5) % 4];
            let endian = if n >= 9 { Endian::Little } else { Endian::Big };
            same_in_every_chunking(
                &|| LengthDelimitedCodec::new(prefix, endian, limit).expect("a valid prefix"),
                data,
                &cut,
                prefix + limit,
                &|frame: &Bytes| {
                    assert!(frame.len() <= limit, "a frame over the limit");
                    hex(frame)
                },
                &keep,
            );
        }
        13 => same_in_every_chunking(
            &|| SlipCodec::new(limit),
            data,
            &cut,
            2 * limit + 2,
            &|frame: &Bytes| {
                assert!(frame.len() <= limit, "a frame over the limit");
                assert!(!frame.is_empty(), "an empty SLIP frame");
                bytes(frame)
            },
            &keep,
        ),
        14 => same_in_every_chunking(
            &|| OscCodec::new(OscFraming::Osc10, limit),
            data,
            &cut,
            4 + limit,
            packet,
            &keep,
        ),
        15 => same_in_every_chunking(
            &|| OscCodec::new(OscFraming::Osc11, limit),
            data,
            &cut,
            2 * limit + 2,
            packet,
            &keep,
        ),
        _ => osc_packet(data),
    }
}
