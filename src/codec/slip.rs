//! SLIP framing (RFC 1055), double-END as OSC 1.1 over TCP uses it.

use bytes::{Bytes, BytesMut};

use super::{Decoder, Encoder};
use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result};

const END: u8 = 0xC0;
const ESC: u8 = 0xDB;
const ESC_END: u8 = 0xDC;
const ESC_ESC: u8 = 0xDD;

/// SLIP frames (RFC 1055): each packet is followed by END (`0xC0`), with
/// END and ESC inside it escaped as ESC ESC_END and ESC ESC_ESC. The
/// encoder also sends an END *before* each packet (the "double END" of OSC
/// 1.1), which flushes any line noise; the decoder skips empty frames.
///
/// A frame without escapes that lies in one received chunk is returned as
/// a slice of it, without copying. Malformed input — ESC followed by
/// anything but ESC_END or ESC_ESC — fails with [`Error::InvalidData`]; a
/// frame whose decoded bytes pass `max_frame` fails with
/// [`Error::LimitExceeded`] as soon as the byte that passes it arrives,
/// without waiting for its END. In both cases the frame's bytes stay in the
/// input. Whichever comes first in the input is the error reported, so the
/// result does not depend on how the bytes were split into reads.
///
/// Empty frames (runs of END) are consumed as they are skipped: a run of
/// END bytes in front of a frame is reduced to one END at once, and that
/// one goes with the frame. So a flood of END bytes costs neither memory
/// nor time, and a decoder waiting for the rest of a frame holds at most
/// `2 * max_frame + 2` bytes (one END, every byte escaped, a last ESC).
///
/// Each call resumes scanning where the previous one stopped, so a frame
/// arriving in many pieces costs time linear in its length. The codec
/// remembers that position between calls: use it on one byte stream (a
/// fresh codec for another).
///
/// # Examples
///
/// ```
/// use evstream::codec::{Decoder, Encoder, SlipCodec};
/// use evstream::Buffer;
///
/// let mut codec = SlipCodec::new(1024);
/// let mut wire = Buffer::new();
/// codec.encode(&[1u8, 0xC0, 2][..], &mut wire).unwrap();
/// assert_eq!(wire.to_vec(), [0xC0, 1, 0xDB, 0xDC, 2, 0xC0]);
/// assert_eq!(&codec.decode(&mut wire).unwrap().unwrap()[..], &[1, 0xC0, 2]);
/// ```
#[derive(Debug, Clone)]
pub struct SlipCodec {
    max_frame: usize,
    /// Offset (from the front of the buffer) of the first byte not yet
    /// examined; the bytes before it belong to the frame being received.
    scanned: usize,
    /// Decoded length of the bytes before `scanned`.
    decoded: usize,
    /// The last byte examined is an ESC whose partner has not arrived.
    escaping: bool,
}

/// What a scan of the received bytes found.
enum Scan {
    /// The frame's END is at this offset.
    End(usize),
    /// Every byte was examined; the frame goes on.
    More,
}

impl SlipCodec {
    /// A codec refusing decoded frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        SlipCodec {
            max_frame,
            scanned: 0,
            decoded: 0,
            escaping: false,
        }
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.decoded = 0;
        self.escaping = false;
    }

    fn too_long(&self) -> Error {
        Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: self.max_frame,
        }
    }

    /// Adds `n` decoded bytes, failing once the frame passes the limit.
    fn count(&mut self, n: usize) -> Result<()> {
        self.decoded += n;
        if self.decoded > self.max_frame {
            return Err(self.too_long());
        }
        Ok(())
    }

    /// Examines the bytes from `self.scanned` on, chunk slice by chunk
    /// slice, until the frame's END, an error, or the end of the buffer.
    fn scan(&mut self, src: &Buffer) -> Result<Scan> {
        let mut pos = self.scanned;
        for chunk in src.chunks_from(pos) {
            let mut rest = chunk;
            while !rest.is_empty() {
                if self.escaping {
                    match rest[0] {
                        ESC_END | ESC_ESC => {
                            self.escaping = false;
                            self.count(1)?;
                            rest = &rest[1..];
                            pos += 1;
                            continue;
                        }
                        other => {
                            let what = if other == END {
                                "the frame's END".to_string()
                            } else {
                                format!("{other:#04x}")
                            };
                            return Err(Error::InvalidData(format!(
                                "SLIP: ESC followed by {what} at offset {}",
                                pos - 1
                            )));
                        }
                    }
                }
                match memchr::memchr2(END, ESC, rest) {
                    None => {
                        self.count(rest.len())?;
                        pos += rest.len();
                        rest = &[];
                    }
                    Some(at) => {
                        self.count(at)?;
                        pos += at;
                        if rest[at] == END {
                            return Ok(Scan::End(pos));
                        }
                        self.escaping = true;
                        pos += 1;
                        rest = &rest[at + 1..];
                    }
                }
            }
            self.scanned = pos;
        }
        self.scanned = pos;
        Ok(Scan::More)
    }

    /// Reduces a run of END bytes at the front of `src` to one END and
    /// returns where the frame's bytes start (after that END, if any).
    fn skip_empty_frames(src: &mut Buffer) -> usize {
        let mut ends = 0;
        for chunk in src.chunks() {
            let run = chunk.iter().take_while(|&&b| b == END).count();
            ends += run;
            if run < chunk.len() {
                break;
            }
        }
        if ends > 1 {
            src.drain(ends - 1);
        }
        usize::from(ends > 0)
    }
}

/// Decodes an escaped frame that `scan` validated.
fn unescape(raw: &[u8], decoded_len: usize) -> Bytes {
    let mut frame = BytesMut::with_capacity(decoded_len);
    let mut rest = raw;
    while let Some(at) = memchr::memchr(ESC, rest) {
        frame.extend_from_slice(&rest[..at]);
        frame.extend_from_slice(&[if rest.get(at + 1) == Some(&ESC_END) {
            END
        } else {
            ESC
        }]);
        rest = rest.get(at + 2..).unwrap_or_default();
    }
    frame.extend_from_slice(rest);
    frame.freeze()
}

impl Decoder for SlipCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        // Leading ENDs are empty frames (the double END): all but one are
        // dropped here, so they cost nothing however many arrive. The last
        // one is dropped with the frame that follows it, so an error leaves
        // the frame exactly as it arrived, END included.
        let start = Self::skip_empty_frames(src);
        if self.scanned < start {
            self.scanned = start;
        }
        let end = match self.scan(src) {
            Ok(Scan::End(end)) => end,
            Ok(Scan::More) => return Ok(None),
            Err(err) => {
                // Start afresh next time: after an error the caller may
                // take bytes out of the buffer.
                self.reset();
                return Err(err);
            }
        };
        let decoded_len = self.decoded;
        self.reset();
        let encoded_len = end - start;
        src.drain(start);
        let raw = src.split_to(encoded_len);
        src.drain(1);
        if decoded_len == encoded_len {
            return Ok(Some(raw));
        }
        Ok(Some(unescape(&raw, decoded_len)))
    }

    fn decode_eof(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            // Only empty frames (ENDs) left: nothing was lost.
            None if src.chunks().all(|chunk| chunk.iter().all(|&b| b == END)) => {
                self.reset();
                src.clear();
                Ok(None)
            }
            None => {
                self.reset();
                Err(Error::InvalidData(format!(
                    "SLIP: connection closed inside a frame ({} bytes without END)",
                    src.len()
                )))
            }
        }
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for SlipCodec {
    fn encode(&mut self, item: T, dst: &mut Buffer) -> Result<()> {
        let payload = item.as_ref();
        if payload.len() > self.max_frame {
            return Err(Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: self.max_frame,
            });
        }
        let escapes = payload.iter().filter(|&&b| b == END || b == ESC).count();
        let mut out = BytesMut::with_capacity(payload.len() + escapes + 2);
        out.extend_from_slice(&[END]);
        let mut rest = payload;
        while let Some(at) = memchr::memchr2(END, ESC, rest) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(&[ESC, if rest[at] == END { ESC_END } else { ESC_ESC }]);
            rest = &rest[at + 1..];
        }
        out.extend_from_slice(rest);
        out.extend_from_slice(&[END]);
        dst.push(out.freeze());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        let mut codec = SlipCodec::new(16);
        let mut wire = Buffer::new();
        let payload = [END, ESC, 0, END, ESC_END, ESC_ESC];
        codec.encode(payload, &mut wire).unwrap();
        assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), &payload[..]);
        assert!(wire.is_empty());
    }

    #[test]
    fn bad_escape_is_invalid_data_and_kept() {
        let mut codec = SlipCodec::new(16);
        let mut src = Buffer::from(&[1, ESC, 7, END][..]);
        assert!(matches!(codec.decode(&mut src), Err(Error::InvalidData(_))));
        assert_eq!(src.len(), 4);
        let mut src = Buffer::from(&[1, ESC, END][..]);
        assert!(matches!(codec.decode(&mut src), Err(Error::InvalidData(_))));
    }

    #[test]
    fn a_frame_without_end_is_bounded_by_its_decoded_length() {
        let mut codec = SlipCodec::new(4);
        let mut src = Buffer::from(&[1u8; 4][..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(&[1]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(Error::LimitExceeded { limit: 4, .. })
        ));
        assert_eq!(src.len(), 5, "the bytes stay");
        // Escaped bytes count once each.
        let mut codec = SlipCodec::new(4);
        let mut src =
            Buffer::from(&[ESC, ESC_ESC, ESC, ESC_END, ESC, ESC_ESC, ESC, ESC_END, ESC][..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(&[ESC_END]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(Error::LimitExceeded { limit: 4, .. })
        ));
    }

    #[test]
    fn scanning_resumes_across_calls_and_chunks() {
        // An escape split across calls, an END run before the frame.
        let wire = [END, END, END, 1, ESC, ESC_END, 2, ESC, ESC_ESC, END, END];
        let mut codec = SlipCodec::new(8);
        let mut src = Buffer::new();
        let mut frames = Vec::new();
        for &b in &wire {
            src.push(Bytes::copy_from_slice(&[b]));
            while let Some(frame) = codec.decode(&mut src).unwrap() {
                frames.push(frame);
            }
            assert!(src.len() <= 2 * 8 + 2, "holds {}", src.len());
        }
        assert_eq!(frames, [Bytes::from_static(&[1, END, 2, ESC])]);
        assert_eq!(codec.decode_eof(&mut src).unwrap(), None);
        assert!(src.is_empty());
    }

    #[test]
    fn the_first_violation_in_the_input_is_the_error() {
        // A bad escape after the limit was passed: the limit, whether the
        // bytes arrive at once or one by one.
        let wire = [1u8, 2, 3, ESC, 7, END];
        let mut at_once = SlipCodec::new(2);
        let result = at_once.decode(&mut Buffer::from(&wire[..]));
        assert!(
            matches!(result, Err(Error::LimitExceeded { .. })),
            "{result:?}"
        );
        // A bad escape before the limit is passed: invalid data.
        let wire = [1u8, ESC, 7, 3, 4, END];
        let result = SlipCodec::new(2).decode(&mut Buffer::from(&wire[..]));
        assert!(matches!(result, Err(Error::InvalidData(_))), "{result:?}");
    }

    #[test]
    fn plain_frame_is_a_slice_of_the_received_chunk() {
        let chunk = Bytes::from_static(&[END, 1, 2, 3, END]);
        let mut src = Buffer::new();
        src.push(chunk.clone());
        let frame = SlipCodec::new(8).decode(&mut src).unwrap().unwrap();
        assert_eq!(frame.as_ptr(), chunk[1..].as_ptr());
    }
}
