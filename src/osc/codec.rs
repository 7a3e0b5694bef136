//! OSC over a byte stream: packet framing for TCP.

use bytes::Bytes;

use super::decode::decode_bytes;
use super::encode::encode;
use super::types::OscPacket;
use crate::buffer::Buffer;
use crate::codec::{Decoder, Encoder, LengthDelimitedCodec, SlipCodec};
use crate::error::{Error, Limit, Result};

/// How OSC packets are delimited on a stream transport such as TCP.
///
/// # Examples
///
/// ```
/// use evstream::osc::{OscCodec, OscFraming};
///
/// let codec = OscCodec::new(OscFraming::Osc11, 64 * 1024);
/// assert_eq!(codec.framing(), OscFraming::Osc11);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OscFraming {
    /// OSC 1.0: each packet preceded by its size as a big-endian int32.
    Osc10,
    /// OSC 1.1: each packet SLIP-encoded (RFC 1055) with an END byte
    /// before and after it ("double END").
    Osc11,
}

#[derive(Debug, Clone)]
enum Framer {
    Length(LengthDelimitedCodec),
    Slip(SlipCodec),
}

/// A [`Decoder`] of [`OscPacket`]s and an [`Encoder`] of them, for OSC over
/// TCP in either [`OscFraming`].
///
/// Use it with [`Framed`](crate::codec::Framed) for a `Stream`/`Sink` of
/// packets, or with [`FrameOptions::on_frame`](crate::codec::FrameOptions::on_frame)
/// for a callback per packet. Each frame is taken with
/// [`LengthDelimitedCodec::osc_1_0`] or [`SlipCodec`] and then decoded
/// with [`decode_bytes`](super::decode_bytes), so blobs share the received
/// bytes.
///
/// Packets over `max_packet` bytes are refused in both directions: on
/// input before the packet is buffered, as the framing codec does, and on
/// output with [`Error::LimitExceeded`].
///
/// # Examples
///
/// ```
/// use evstream::codec::{Decoder, Encoder};
/// use evstream::osc::{OscCodec, OscFraming, OscMessage, OscPacket};
/// use evstream::Buffer;
///
/// for framing in [OscFraming::Osc10, OscFraming::Osc11] {
///     let mut codec = OscCodec::new(framing, 1024);
///     let packet: OscPacket = OscMessage::new("/ping", vec![1.into()]).into();
///     let mut wire = Buffer::new();
///     codec.encode(&packet, &mut wire)?;
///     assert_eq!(codec.decode(&mut wire)?, Some(packet));
///     assert!(wire.is_empty());
/// }
/// # Ok::<(), evstream::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OscCodec {
    framing: OscFraming,
    max_packet: usize,
    framer: Framer,
}

impl OscCodec {
    /// A codec for `framing`, refusing packets over `max_packet` bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::{OscCodec, OscFraming};
    ///
    /// let codec = OscCodec::new(OscFraming::Osc10, 8192);
    /// assert_eq!(codec.max_packet(), 8192);
    /// ```
    pub fn new(framing: OscFraming, max_packet: usize) -> OscCodec {
        let framer = match framing {
            OscFraming::Osc10 => Framer::Length(LengthDelimitedCodec::osc_1_0(max_packet)),
            OscFraming::Osc11 => Framer::Slip(SlipCodec::new(max_packet)),
        };
        OscCodec {
            framing,
            max_packet,
            framer,
        }
    }

    /// The framing this codec reads and writes.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::{OscCodec, OscFraming};
    ///
    /// assert_eq!(OscCodec::new(OscFraming::Osc10, 1).framing(), OscFraming::Osc10);
    /// ```
    pub fn framing(&self) -> OscFraming {
        self.framing
    }

    /// The largest packet accepted, in bytes (without the framing).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::osc::{OscCodec, OscFraming};
    ///
    /// assert_eq!(OscCodec::new(OscFraming::Osc11, 100).max_packet(), 100);
    /// ```
    pub fn max_packet(&self) -> usize {
        self.max_packet
    }

    /// Decodes a frame the framer took; when it is not a valid packet, puts
    /// it back in front of `src` (re-framed; with SLIP, runs of leading END
    /// bytes become one) so the offending bytes stay in the input.
    fn packet(&mut self, frame: Option<Bytes>, src: &mut Buffer) -> Result<Option<OscPacket>> {
        let Some(frame) = frame else {
            return Ok(None);
        };
        match decode_bytes(&frame) {
            Ok(packet) => Ok(Some(packet)),
            Err(err) => {
                let mut restored = Buffer::new();
                self.frame(frame, &mut restored)?;
                restored.append(src);
                *src = restored;
                Err(err)
            }
        }
    }

    fn frame(&mut self, payload: Bytes, dst: &mut Buffer) -> Result<()> {
        match &mut self.framer {
            Framer::Length(codec) => codec.encode(payload, dst),
            Framer::Slip(codec) => codec.encode(payload, dst),
        }
    }
}

impl Decoder for OscCodec {
    type Item = OscPacket;

    /// Takes one framed packet from `src` and decodes it.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] for a malformed frame or packet, and for a
    /// size prefix over `max_packet`; [`Error::LimitExceeded`] for SLIP
    /// input running over `max_packet` without an END. The bytes stay in
    /// `src`.
    fn decode(&mut self, src: &mut Buffer) -> Result<Option<OscPacket>> {
        let frame = match &mut self.framer {
            Framer::Length(codec) => codec.decode(src)?,
            Framer::Slip(codec) => codec.decode(src)?,
        };
        self.packet(frame, src)
    }

    fn decode_eof(&mut self, src: &mut Buffer) -> Result<Option<OscPacket>> {
        let frame = match &mut self.framer {
            Framer::Length(codec) => codec.decode_eof(src)?,
            Framer::Slip(codec) => codec.decode_eof(src)?,
        };
        self.packet(frame, src)
    }
}

impl Encoder<&OscPacket> for OscCodec {
    /// Encodes `item` and appends it, framed, to `dst`.
    ///
    /// # Errors
    ///
    /// As [`encode`](super::encode), and [`Error::LimitExceeded`] for a
    /// packet over `max_packet` bytes; nothing is appended then.
    fn encode(&mut self, item: &OscPacket, dst: &mut Buffer) -> Result<()> {
        let bytes = encode(item)?;
        if bytes.len() > self.max_packet {
            return Err(Error::LimitExceeded {
                what: Limit::FrameLength,
                limit: self.max_packet,
            });
        }
        self.frame(bytes, dst)
    }
}

impl Encoder<OscPacket> for OscCodec {
    /// As `Encoder<&OscPacket>`.
    fn encode(&mut self, item: OscPacket, dst: &mut Buffer) -> Result<()> {
        self.encode(&item, dst)
    }
}
