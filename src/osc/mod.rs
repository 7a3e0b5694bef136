//! Open Sound Control (OSC 1.0 and 1.1): packets, their binary encoding,
//! TouchDesigner-style type inference and framing over TCP.
//!
//! # Packets
//!
//! An [`OscPacket`] is an [`OscMessage`] — an address pattern starting with
//! `/` and typed arguments ([`OscType`]) — or an [`OscBundle`]: a time tag
//! ([`OscTime`]) and packets, bundles included. [`encode`] and
//! [`encode_into`] produce the wire format; [`decode`] and
//! [`decode_bytes`] read it back, strictly and without panicking or
//! trusting any size in the input.
//!
//! The wire format is big-endian with every item aligned to 4 bytes:
//!
//! * strings: the bytes, a NUL, then NULs up to a multiple of 4;
//! * blobs: an int32 size, the bytes, then NULs up to a multiple of 4;
//! * a message: the address, the type tag string (`,` then one tag per
//!   argument, `[` and `]` around arrays), then the arguments' data;
//! * a bundle: `#bundle\0`, the 8-byte time tag, then each element as an
//!   int32 size followed by that many bytes of packet.
//!
//! All types of OSC 1.0 and 1.1 and the common non-standard ones are
//! supported: `i f s b h t d S c r m T F N I [ ]` (see [`OscType`]).
//!
//! # TouchDesigner's `sendOSC`
//!
//! [`infer_args`], [`osc_message`] and [`osc_packets`] type plain values
//! ([`OscValue`]) the way TouchDesigner's `Peer.sendOSC` does, under the
//! same three options ([`SendOscOptions`]); the table is on
//! [`infer_args`].
//!
//! # Streams
//!
//! OSC over UDP sends one packet per datagram. Over TCP, packets need
//! framing: [`OscCodec`] implements the crate's
//! [`Decoder`](crate::codec::Decoder) and [`Encoder`](crate::codec::Encoder)
//! for OSC 1.0 (int32 size prefix) and OSC 1.1 (SLIP, double END), chosen
//! by [`OscFraming`].
//!
//! # Examples
//!
//! ```
//! use evstream::osc::{decode, encode, osc_packets, OscPacket, OscType, SendOscOptions};
//!
//! let packets = osc_packets(
//!     &[("/abc", vec![1.into(), "apple".into(), true.into()])],
//!     &SendOscOptions::default(),
//! )?;
//! let wire = encode(&packets[0])?;
//! assert_eq!(&wire[..], b"/abc\0\0\0\0,isT\0\0\0\0\0\0\0\x01apple\0\0\0");
//!
//! let OscPacket::Message(msg) = decode(&wire)? else { unreachable!() };
//! assert_eq!(msg.args, [OscType::Int(1), OscType::String("apple".into()), OscType::Bool(true)]);
//! # Ok::<(), evstream::Error>(())
//! ```

mod codec;
mod decode;
mod encode;
mod infer;
mod types;

#[cfg(test)]
mod tests;

pub use codec::{OscCodec, OscFraming};
pub use decode::{decode, decode_bytes};
pub use encode::{encode, encode_into};
pub use infer::{infer_args, osc_message, osc_packets, OscValue, SendOscOptions};
pub use types::{OscBundle, OscColor, OscMessage, OscMidi, OscPacket, OscTime, OscType};

/// How deep bundles may nest in bundles, and arrays in arrays: a top-level
/// bundle or array is at depth 1. [`encode`] refuses deeper packets and
/// [`decode`] rejects them, so recursion and memory stay bounded.
///
/// # Examples
///
/// ```
/// use evstream::osc::{encode, OscBundle, OscPacket, OscTime, MAX_DEPTH};
///
/// let mut packet = OscPacket::Bundle(OscBundle::new(OscTime::IMMEDIATELY, vec![]));
/// for _ in 1..MAX_DEPTH {
///     packet = OscBundle::new(OscTime::IMMEDIATELY, vec![packet]).into();
/// }
/// assert!(encode(&packet).is_ok());
/// let deeper = OscBundle::new(OscTime::IMMEDIATELY, vec![packet]).into();
/// assert!(encode(&deeper).is_err());
/// ```
pub const MAX_DEPTH: usize = 32;

/// The first 8 bytes of every bundle.
const BUNDLE_TAG: &[u8; 8] = b"#bundle\0";
