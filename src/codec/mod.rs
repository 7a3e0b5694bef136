//! Framing: decoders that read whole frames straight out of a connection's
//! undrained input [`Buffer`], and encoders that write into its output.
//!
//! A [`Decoder`] looks at the received bytes where they lie (peek, search),
//! then takes exactly one frame. Frames that lie inside one received chunk
//! come out as `Bytes` slices of that chunk, without the copy a `BufReader`
//! or tokio's `Framed` would make.
//!
//! Two ways to use a codec:
//!
//! * [`Framed`]: a `futures` `Stream` of frames and `Sink` of items over an
//!   [`AsyncIoStream`](crate::AsyncIoStream); [`FramedRead`] and
//!   [`FramedWrite`] over its split halves;
//! * [`FrameOptions::on_frame`] (an extension of [`TcpOptions`](crate::TcpOptions)):
//!   the read callback receives whole frames, on the loop thread.
//!
//! Built in: [`LinesCodec`], [`LengthDelimitedCodec`] and [`SlipCodec`].
//! Decoders run without any lock of the connection held: received bytes are
//! taken out of the input buffer and *held* by the codec while it decodes
//! them — they still count as buffered input (`max_buffer_size`,
//! `input_buffer_len()`), an incomplete frame waits there (bounded by the
//! codec's maximum frame and `max_buffer_size`) while the connection goes on
//! reading, and frames are decoded one at a time, only when asked for. A
//! codec must be the only reader of its connection while it runs; every
//! byte it holds and has not delivered as a frame goes back to the front of
//! the input buffer when it is dropped or unwrapped.

mod callback;
mod framed;
mod half;
mod length;
mod lines;
mod reader;
mod slip;

pub use callback::FrameOptions;
pub use framed::Framed;
pub use half::{FramedRead, FramedWrite};
pub use length::{Endian, LengthDelimitedCodec};
pub use lines::LinesCodec;
pub use slip::SlipCodec;

use crate::buffer::Buffer;
use crate::error::{Error, Result};

/// Takes frames from the front of a byte buffer.
///
/// # Examples
///
/// A decoder for frames ended by a `;`:
///
/// ```
/// use bytes::Bytes;
/// use evstream::codec::Decoder;
/// use evstream::Buffer;
///
/// struct Semicolons;
///
/// impl Decoder for Semicolons {
///     type Item = Bytes;
///     fn decode(&mut self, src: &mut Buffer) -> evstream::Result<Option<Bytes>> {
///         Ok(src.find_byte(b';').map(|end| {
///             let frame = src.split_to(end);
///             src.drain(1);
///             frame
///         }))
///     }
/// }
///
/// let mut src = Buffer::from(&b"ab;cd"[..]);
/// assert_eq!(Semicolons.decode(&mut src).unwrap(), Some(Bytes::from_static(b"ab")));
/// assert_eq!(Semicolons.decode(&mut src).unwrap(), None); // "cd" waits
/// ```
pub trait Decoder {
    /// What one frame decodes to.
    type Item;

    /// Takes one whole frame from the front of `src`, or returns `Ok(None)`
    /// and leaves `src` as it is when the frame is not complete yet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] for malformed input and
    /// [`Error::LimitExceeded`] for a frame over the codec's limit. A
    /// decoder must leave the offending bytes in `src`, so nothing received
    /// is lost.
    fn decode(&mut self, src: &mut Buffer) -> Result<Option<Self::Item>>;

    /// Called once the peer has closed, while bytes remain that `decode`
    /// did not take. The default takes a last frame if `decode` finds one
    /// and otherwise reports the leftover bytes as an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] when bytes remain that make no frame.
    fn decode_eof(&mut self, src: &mut Buffer) -> Result<Option<Self::Item>> {
        match self.decode(src)? {
            Some(frame) => Ok(Some(frame)),
            None if src.is_empty() => Ok(None),
            None => Err(Error::InvalidData(format!(
                "connection closed inside a frame ({} bytes left)",
                src.len()
            ))),
        }
    }
}

/// Turns items into bytes appended to an output [`Buffer`].
pub trait Encoder<Item> {
    /// Appends the encoding of `item` to `dst` (pushing `Bytes` chunks
    /// where it can, so payloads are not copied).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] or [`Error::LimitExceeded`] for an item the
    /// codec cannot encode; nothing is appended then.
    fn encode(&mut self, item: Item, dst: &mut Buffer) -> Result<()>;
}
