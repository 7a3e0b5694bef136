//! Length-prefixed frames.

use bytes::Bytes;

use super::{Decoder, Encoder};
use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result};

/// The byte order of a length prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endian {
    /// Most significant byte first (network order).
    Big,
    /// Least significant byte first.
    Little,
}

/// Frames preceded by their payload length as a 1, 2, 4 or 8-byte unsigned
/// integer in a chosen byte order (OSC 1.0 over TCP uses a 4-byte
/// big-endian prefix).
///
/// A prefix announcing more than `max_frame` bytes fails with
/// [`Error::InvalidData`] as soon as the prefix has arrived — before any
/// buffer of that size exists — and the bytes stay in the input.
///
/// # Examples
///
/// ```
/// use evstream::codec::{Decoder, Encoder, Endian, LengthDelimitedCodec};
/// use evstream::Buffer;
///
/// let mut codec = LengthDelimitedCodec::new(2, Endian::Big, 1024).unwrap();
/// let mut wire = Buffer::new();
/// codec.encode(&b"hello"[..], &mut wire).unwrap();
/// assert_eq!(wire.to_vec(), b"\x00\x05hello");
/// assert_eq!(&codec.decode(&mut wire).unwrap().unwrap()[..], b"hello");
/// ```
#[derive(Debug, Clone)]
pub struct LengthDelimitedCodec {
    prefix: usize,
    endian: Endian,
    max_frame: usize,
}

impl LengthDelimitedCodec {
    /// A codec with a `prefix`-byte length (1, 2, 4 or 8) in `endian`
    /// order, refusing frames over `max_frame` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for another prefix size.
    pub fn new(prefix: usize, endian: Endian, max_frame: usize) -> Result<Self> {
        if !matches!(prefix, 1 | 2 | 4 | 8) {
            return Err(Error::InvalidInput(format!(
                "length prefix of {prefix} bytes (1, 2, 4 or 8 expected)"
            )));
        }
        Ok(LengthDelimitedCodec {
            prefix,
            endian,
            max_frame,
        })
    }

    /// OSC 1.0 over TCP: a 4-byte big-endian size before each packet.
    pub fn osc_1_0(max_frame: usize) -> Self {
        LengthDelimitedCodec {
            prefix: 4,
            endian: Endian::Big,
            max_frame,
        }
    }

    /// The largest frame accepted.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Decoder for LengthDelimitedCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        let mut prefix = [0u8; 8];
        if src.copy_out(&mut prefix[..self.prefix]) < self.prefix {
            return Ok(None);
        }
        let raw = &prefix[..self.prefix];
        let mut value: u64 = 0;
        match self.endian {
            Endian::Big => raw.iter().for_each(|&b| value = value << 8 | u64::from(b)),
            Endian::Little => raw
                .iter()
                .rev()
                .for_each(|&b| value = value << 8 | u64::from(b)),
        }
        if value > self.max_frame as u64 {
            return Err(Error::InvalidData(format!(
                "length prefix announces {value} bytes, above the {} byte maximum frame",
                self.max_frame
            )));
        }
        let len = value as usize;
        if src.len() - self.prefix < len {
            return Ok(None);
        }
        src.drain(self.prefix);
        Ok(Some(src.split_to(len)))
    }
}

impl<T: Into<Bytes>> Encoder<T> for LengthDelimitedCodec {
    fn encode(&mut self, item: T, dst: &mut Buffer) -> Result<()> {
        let payload: Bytes = item.into();
        let too_big = payload.len() > self.max_frame
            || (self.prefix < 8 && payload.len() as u64 >= 1u64 << (8 * self.prefix));
        if too_big {
            return Err(Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: self.max_frame,
            });
        }
        let bytes = (payload.len() as u64).to_be_bytes();
        let mut prefix = [0u8; 8];
        prefix[..self.prefix].copy_from_slice(&bytes[8 - self.prefix..]);
        if self.endian == Endian::Little {
            prefix[..self.prefix].reverse();
        }
        dst.extend_from_slice(&prefix[..self.prefix]);
        dst.push(payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prefix_size_and_order_round_trips() {
        for prefix in [1, 2, 4, 8] {
            for endian in [Endian::Big, Endian::Little] {
                let mut codec = LengthDelimitedCodec::new(prefix, endian, 200).unwrap();
                let mut wire = Buffer::new();
                codec.encode(vec![7u8; 200], &mut wire).unwrap();
                codec.encode(Bytes::new(), &mut wire).unwrap();
                assert_eq!(wire.len(), 2 * prefix + 200);
                assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), vec![7u8; 200]);
                assert_eq!(codec.decode(&mut wire).unwrap().unwrap(), Bytes::new());
                assert!(wire.is_empty());
            }
        }
    }

    #[test]
    fn little_endian_prefix_is_least_significant_first() {
        let mut codec = LengthDelimitedCodec::new(4, Endian::Little, 1 << 20).unwrap();
        let mut wire = Buffer::new();
        codec.encode(vec![0u8; 0x0102], &mut wire).unwrap();
        assert_eq!(&wire.to_vec()[..4], &[0x02, 0x01, 0, 0]);
    }

    #[test]
    fn a_huge_prefix_is_refused_before_the_payload_and_kept() {
        let mut codec = LengthDelimitedCodec::new(8, Endian::Big, 1024).unwrap();
        let mut src = Buffer::from(&u64::MAX.to_be_bytes()[..]);
        assert!(matches!(codec.decode(&mut src), Err(Error::InvalidData(_))));
        assert_eq!(src.len(), 8);
    }

    #[test]
    fn a_partial_frame_waits() {
        let mut codec = LengthDelimitedCodec::osc_1_0(64);
        let mut src = Buffer::from(&b"\x00\x00\x00\x05hel"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(b"lo");
        assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"hello");
    }

    #[test]
    fn a_payload_the_prefix_cannot_express_is_refused() {
        let mut codec = LengthDelimitedCodec::new(1, Endian::Big, 1000).unwrap();
        assert!(codec.encode(vec![0u8; 256], &mut Buffer::new()).is_err());
        assert!(LengthDelimitedCodec::new(3, Endian::Big, 10).is_err());
    }
}
