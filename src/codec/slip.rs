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
/// anything but ESC_END or ESC_ESC — fails with [`Error::InvalidData`];
/// more than `2 * max_frame + 1` bytes without an END (the most an encoded
/// frame of `max_frame` bytes can take) fail with
/// [`Error::LimitExceeded`]. In both cases the bytes stay in the input.
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
}

impl SlipCodec {
    /// A codec refusing decoded frames over `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        SlipCodec { max_frame }
    }

    fn max_encoded(&self) -> usize {
        self.max_frame.saturating_mul(2).saturating_add(1)
    }
}

impl Decoder for SlipCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        // Leading ENDs are empty frames (the double END). They are skipped
        // by offset and dropped only together with a frame, so a decoder
        // that returns an error or `None` leaves the buffer untouched.
        let mut start = 0;
        while src.get(start) == Some(END) {
            start += 1;
        }
        let Some(end) = src.search_from(start, &[END]) else {
            if src.len() - start > self.max_encoded() {
                return Err(Error::LimitExceeded {
                    what: Limit::FrameLength,
                    limit: self.max_frame,
                });
            }
            return Ok(None);
        };
        // Validate and measure before taking anything, so malformed input
        // stays in the buffer.
        let mut escapes = 0;
        let mut index = start;
        while index < end {
            if src.get(index) == Some(ESC) {
                match src.get(index + 1) {
                    Some(ESC_END) | Some(ESC_ESC) => {
                        escapes += 1;
                        index += 2;
                        continue;
                    }
                    other => {
                        return Err(Error::InvalidData(format!(
                            "SLIP: ESC followed by {} at offset {index}",
                            other.map_or("the frame's END".to_string(), |b| format!("{b:#04x}"))
                        )))
                    }
                }
            }
            index += 1;
        }
        let encoded_len = end - start;
        if encoded_len - escapes > self.max_frame {
            return Err(Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: self.max_frame,
            });
        }
        src.drain(start);
        let raw = src.split_to(encoded_len);
        src.drain(1);
        if escapes == 0 {
            return Ok(Some(raw));
        }
        let mut frame = BytesMut::with_capacity(encoded_len - escapes);
        let mut bytes = raw.iter();
        while let Some(&b) = bytes.next() {
            if b == ESC {
                frame.extend_from_slice(&[match bytes.next() {
                    Some(&ESC_END) => END,
                    _ => ESC,
                }]);
            } else {
                frame.extend_from_slice(&[b]);
            }
        }
        Ok(Some(frame.freeze()))
    }

    fn decode_eof(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            // Only empty frames (ENDs) left: nothing was lost.
            None if src.chunks().all(|chunk| chunk.iter().all(|&b| b == END)) => {
                src.clear();
                Ok(None)
            }
            None => Err(Error::InvalidData(format!(
                "SLIP: connection closed inside a frame ({} bytes without END)",
                src.len()
            ))),
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
    fn a_frame_without_end_is_bounded() {
        let mut codec = SlipCodec::new(4);
        let mut src = Buffer::from(&[1u8; 9][..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(&[1]);
        assert!(matches!(
            codec.decode(&mut src),
            Err(Error::LimitExceeded { limit: 4, .. })
        ));
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
