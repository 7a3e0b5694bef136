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
//!   [`AsyncIoStream`](crate::AsyncIoStream);
//! * [`TcpOptions::on_frame`](crate::TcpOptions::on_frame): the read
//!   callback receives whole frames, on the loop thread.
//!
//! Built in: [`LinesCodec`], [`LengthDelimitedCodec`] and [`SlipCodec`].
//! Decoders run without any lock of the connection held: received bytes are
//! taken out of the input buffer into the codec's own buffer and decoded
//! there; an incomplete frame waits there (bounded by the codec's maximum
//! frame) while the connection goes on reading. A codec must be the only
//! reader of its connection; bytes it holds go back to the input buffer when
//! it is dropped or unwrapped.

mod framed;
mod length;
mod lines;
mod slip;

pub use framed::Framed;
pub use length::{Endian, LengthDelimitedCodec};
pub use lines::LinesCodec;
pub use slip::SlipCodec;

use std::sync::Arc;

use crate::buffer::Buffer;
use crate::error::{Error, Result};
use crate::socket::{Conn, Input};

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

/// How many frames one batch decodes at most before handing them out.
const BATCH: usize = 256;

/// What a batch of decoding found.
pub(crate) struct Batch<T> {
    pub(crate) frames: Vec<T>,
    /// The decoder failed; frames before the failure are in `frames`.
    pub(crate) error: Option<Error>,
    /// The input is finished (EOF, closed or failed) and fully decoded.
    pub(crate) finished: bool,
}

/// Decodes up to [`BATCH`] frames from `conn`'s input, with the input lock
/// released while the decoder runs. `pending` holds what earlier batches
/// took but could not decode (an incomplete frame); what this batch leaves
/// stays there too, out of the input buffer, so the connection keeps
/// reading even when a frame is longer than the read high watermark (the
/// decoder's own maximum frame bounds it). `register` runs under the lock
/// before decoding, so a waker stored there cannot miss bytes appended
/// during the decode.
pub(crate) fn decode_batch<D: Decoder>(
    conn: &Arc<Conn>,
    decoder: &mut D,
    pending: &mut Buffer,
    register: impl FnOnce(&mut Input),
) -> Batch<D::Item> {
    let (ended, stored_error) = conn.with_input(|input| {
        pending.append(&mut input.buf);
        let ended = input.eof || input.closed || input.error.is_some();
        register(input);
        (ended, input.error.clone())
    });
    let mut batch = Batch {
        frames: Vec::new(),
        error: None,
        finished: false,
    };
    while batch.frames.len() < BATCH {
        match decoder.decode(pending) {
            Ok(Some(frame)) => batch.frames.push(frame),
            Ok(None) => {
                if ended {
                    match decoder.decode_eof(pending) {
                        Ok(Some(frame)) => {
                            batch.frames.push(frame);
                            continue;
                        }
                        Ok(None) => {
                            batch.finished = true;
                            batch.error = stored_error;
                        }
                        Err(err) => batch.error = Some(err),
                    }
                }
                break;
            }
            Err(err) => {
                batch.error = Some(err);
                break;
            }
        }
    }
    if batch.error.is_some() && !pending.is_empty() {
        // Bad input stays readable where it came from, in order.
        let bad = std::mem::take(pending);
        conn.with_input(|input| crate::stream::prepend(&mut input.buf, bad));
    }
    batch
}

/// Puts bytes a codec holds back at the front of the connection's input,
/// when the codec is dropped or unwrapped.
pub(crate) fn give_back(conn: &Arc<Conn>, pending: &mut Buffer) {
    if !pending.is_empty() {
        let held = std::mem::take(pending);
        conn.with_input(|input| crate::stream::prepend(&mut input.buf, held));
    }
}
