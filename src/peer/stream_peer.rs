//! Godot's `StreamPeer` (and Luna's `streamPeerTCP` calls) as a trait.

use std::future::Future;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::stream::AsyncIoStream;

/// The byte order of typed values (Godot's `big_endian` property).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// Least significant byte first: Godot's default.
    #[default]
    Little,
    /// Most significant byte first (network order).
    Big,
}

macro_rules! typed {
    ($($put:ident, $put_with:ident, $get:ident, $get_with:ident, $try_get:ident, $try_get_with:ident, $ty:ty;)*) => {
        $(
            #[doc = concat!("Writes a `", stringify!($ty), "` in the peer's [`byte_order`](StreamPeer::byte_order) (Godot's `put_*`), blocking like [`put_data`](StreamPeer::put_data).")]
            ///
            /// # Errors
            ///
            /// As [`put_data`](StreamPeer::put_data).
            fn $put(&mut self, value: $ty) -> Result<()> {
                let order = self.byte_order();
                self.$put_with(value, order)
            }

            #[doc = concat!("Writes a `", stringify!($ty), "` in `order`.")]
            ///
            /// # Errors
            ///
            /// As [`put_data`](StreamPeer::put_data).
            fn $put_with(&mut self, value: $ty, order: ByteOrder) -> Result<()> {
                let bytes = match order {
                    ByteOrder::Little => value.to_le_bytes(),
                    ByteOrder::Big => value.to_be_bytes(),
                };
                self.put_data(&bytes)
            }

            #[doc = concat!("Reads a `", stringify!($ty), "` in the peer's [`byte_order`](StreamPeer::byte_order) (Godot's `get_*`), blocking like [`get_data`](StreamPeer::get_data).")]
            ///
            /// # Errors
            ///
            /// As [`get_data`](StreamPeer::get_data) — unlike Godot's
            /// getters, the end of the stream is an error, not a zero.
            fn $get(&mut self) -> Result<$ty> {
                let order = self.byte_order();
                self.$get_with(order)
            }

            #[doc = concat!("Reads a `", stringify!($ty), "` in `order`.")]
            ///
            /// # Errors
            ///
            #[doc = concat!("As [`", stringify!($get), "`](StreamPeer::", stringify!($get), ").")]
            fn $get_with(&mut self, order: ByteOrder) -> Result<$ty> {
                let mut bytes = [0u8; std::mem::size_of::<$ty>()];
                self.get_data(&mut bytes)?;
                Ok(match order {
                    ByteOrder::Little => <$ty>::from_le_bytes(bytes),
                    ByteOrder::Big => <$ty>::from_be_bytes(bytes),
                })
            }

            #[doc = concat!("Reads a `", stringify!($ty), "` in the peer's byte order if all its bytes are there, without waiting: `Ok(None)` (nothing consumed) when they are not yet — for a game loop that polls every frame.")]
            ///
            /// # Errors
            ///
            /// As [`try_get_data`](StreamPeer::try_get_data): the end of
            /// the stream before the value is complete, the connection's
            /// error.
            fn $try_get(&mut self) -> Result<Option<$ty>> {
                let order = self.byte_order();
                self.$try_get_with(order)
            }

            #[doc = concat!("Reads a `", stringify!($ty), "` in `order` if all its bytes are there; see [`", stringify!($try_get), "`](StreamPeer::", stringify!($try_get), ").")]
            ///
            /// # Errors
            ///
            /// As [`try_get_data`](StreamPeer::try_get_data).
            fn $try_get_with(&mut self, order: ByteOrder) -> Result<Option<$ty>> {
                let mut bytes = [0u8; std::mem::size_of::<$ty>()];
                if !self.try_get_data(&mut bytes)? {
                    return Ok(None);
                }
                Ok(Some(match order {
                    ByteOrder::Little => <$ty>::from_le_bytes(bytes),
                    ByteOrder::Big => <$ty>::from_be_bytes(bytes),
                }))
            }
        )*
    };
}

/// Godot's `StreamPeer`: whole and partial reads and writes, typed values
/// in the peer's byte order (Godot's `big_endian` property: little-endian
/// unless set) or an explicit one (the `_with` variants), non-blocking
/// typed reads for game loops (`try_get_*`), and length-prefixed strings
/// wire-compatible with Godot.
///
/// Implemented for [`AsyncIoStream`] (and so for [`TcpPeer`](crate::peer::TcpPeer))
/// and for the in-memory [`StreamPeerBuffer`].
///
/// Unlike Godot: the typed getters return `Result` and report the end of
/// the stream; [`get_data`](StreamPeer::get_data) says how many bytes
/// arrived before it; and nothing blocks the event loop — on the loop thread
/// a call that would have to wait fails with
/// [`Error::WouldDeadlock`] (`SocketError::Busy`) instead, while
/// [`put_data`](StreamPeer::put_data) queues.
///
/// The byte order is per peer: [`TcpPeer`](crate::peer::TcpPeer) and
/// [`StreamPeerBuffer`] have `set_big_endian`; an [`AsyncIoStream`] used
/// directly as a peer is little-endian (Godot's default) — wrap it in a
/// `TcpPeer` (`TcpPeer::from(stream)`) for another default, or use the
/// `_with` variants.
///
/// # Examples
///
/// ```
/// use evstream::peer::{ByteOrder, StreamPeer, StreamPeerBuffer};
///
/// let mut peer = StreamPeerBuffer::new();
/// peer.set_big_endian(true); // Godot's `big_endian = true`
/// peer.put_u16(0x0102)?;
/// peer.put_utf8_string("héllo")?;
/// peer.put_f32_with(1.5, ByteOrder::Little)?; // an explicit order
/// peer.seek(0);
/// assert_eq!(peer.get_u16()?, 0x0102);
/// assert_eq!(peer.get_utf8_string()?, "héllo");
/// assert_eq!(peer.get_f32_with(ByteOrder::Little)?, 1.5);
/// assert!(peer.get_u8().is_err()); // the end is an error, not 0
/// # Ok::<(), evstream::Error>(())
/// ```
pub trait StreamPeer {
    /// Writes all of `data` (Godot's `put_data`): waits while the output is
    /// at its write high watermark, except on the loop thread, where it
    /// queues everything at once.
    ///
    /// # Errors
    ///
    /// The connection's error, [`Error::Closed`], [`Error::WriteClosed`],
    /// [`Error::LimitExceeded`] beyond `max_buffer_size`.
    fn put_data(&mut self, data: &[u8]) -> Result<()>;

    /// Writes what can be taken now and returns how much (Godot's
    /// `put_partial_data`); 0 when the output is full.
    ///
    /// # Errors
    ///
    /// As [`put_data`](StreamPeer::put_data).
    fn put_partial_data(&mut self, data: &[u8]) -> Result<usize>;

    /// Fills all of `dst` (Godot's `get_data`), waiting for the bytes —
    /// but never on the loop thread.
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedEof`] with how many bytes arrived before the end
    /// (they stay readable); [`Error::WouldDeadlock`] on the loop thread
    /// when not enough is buffered; the connection's error.
    fn get_data(&mut self, dst: &mut [u8]) -> Result<()>;

    /// Takes what is buffered now into `dst` and returns how much (Godot's
    /// `get_partial_data`): 0 means nothing yet.
    ///
    /// # Errors
    ///
    /// The end of the stream is distinct from "nothing yet":
    /// [`Error::UnexpectedEof`] (`received: 0`) once every byte has been
    /// read; the connection's error.
    fn get_partial_data(&mut self, dst: &mut [u8]) -> Result<usize>;

    /// How many bytes can be read without waiting (Godot's
    /// `get_available_bytes`).
    fn available_bytes(&self) -> usize;

    /// The byte order of the typed calls without an explicit one (Godot's
    /// `big_endian`): little-endian unless the peer was set otherwise.
    fn byte_order(&self) -> ByteOrder {
        ByteOrder::Little
    }

    /// Fills all of `dst` if that many bytes are buffered, without
    /// waiting: `Ok(true)`; `Ok(false)` (nothing consumed) when they are
    /// not there yet. For game loops that poll every frame.
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedEof`] once the stream has ended with fewer bytes
    /// (they stay readable); the connection's error.
    fn try_get_data(&mut self, dst: &mut [u8]) -> Result<bool> {
        if self.available_bytes() < dst.len() {
            return Ok(false);
        }
        self.get_data(dst).map(|()| true)
    }

    typed! {
        put_u8, put_u8_with, get_u8, get_u8_with, try_get_u8, try_get_u8_with, u8;
        put_i8, put_i8_with, get_i8, get_i8_with, try_get_i8, try_get_i8_with, i8;
        put_u16, put_u16_with, get_u16, get_u16_with, try_get_u16, try_get_u16_with, u16;
        put_i16, put_i16_with, get_i16, get_i16_with, try_get_i16, try_get_i16_with, i16;
        put_u32, put_u32_with, get_u32, get_u32_with, try_get_u32, try_get_u32_with, u32;
        put_i32, put_i32_with, get_i32, get_i32_with, try_get_i32, try_get_i32_with, i32;
        put_u64, put_u64_with, get_u64, get_u64_with, try_get_u64, try_get_u64_with, u64;
        put_i64, put_i64_with, get_i64, get_i64_with, try_get_i64, try_get_i64_with, i64;
        put_f32, put_f32_with, get_f32, get_f32_with, try_get_f32, try_get_f32_with, f32;
        put_f64, put_f64_with, get_f64, get_f64_with, try_get_f64, try_get_f64_with, f64;
    }

    /// Writes a half-precision float given as its IEEE 754 bits, in the
    /// peer's byte order (Godot's `put_half`).
    ///
    /// # Errors
    ///
    /// As [`put_data`](StreamPeer::put_data).
    fn put_f16_bits(&mut self, bits: u16) -> Result<()> {
        self.put_u16(bits)
    }

    /// Writes a half-precision float's bits in `order`.
    ///
    /// # Errors
    ///
    /// As [`put_data`](StreamPeer::put_data).
    fn put_f16_bits_with(&mut self, bits: u16, order: ByteOrder) -> Result<()> {
        self.put_u16_with(bits, order)
    }

    /// Reads a half-precision float as its IEEE 754 bits, in the peer's
    /// byte order (Godot's `get_half`); [`f16_bits_to_f32`] converts it.
    ///
    /// # Errors
    ///
    /// As [`get_data`](StreamPeer::get_data).
    fn get_f16_bits(&mut self) -> Result<u16> {
        self.get_u16()
    }

    /// Reads a half-precision float's bits in `order`.
    ///
    /// # Errors
    ///
    /// As [`get_data`](StreamPeer::get_data).
    fn get_f16_bits_with(&mut self, order: ByteOrder) -> Result<u16> {
        self.get_u16_with(order)
    }

    /// Godot's `put_utf8_string`: a `u32` byte length (in the peer's byte
    /// order, as Godot writes it: little-endian by default), then the
    /// UTF-8 bytes, no NUL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a string over 4 GiB, else as
    /// [`put_data`](StreamPeer::put_data).
    fn put_utf8_string(&mut self, value: &str) -> Result<()> {
        let len = u32::try_from(value.len())
            .map_err(|_| Error::InvalidInput("string longer than 4 GiB".into()))?;
        let mut bytes = Vec::with_capacity(4 + value.len());
        bytes.extend_from_slice(&match self.byte_order() {
            ByteOrder::Little => len.to_le_bytes(),
            ByteOrder::Big => len.to_be_bytes(),
        });
        bytes.extend_from_slice(value.as_bytes());
        self.put_data(&bytes)
    }

    /// Godot's `get_utf8_string`: a `u32` byte length (in the peer's byte
    /// order), then that many UTF-8 bytes. At most `max_len` bytes are accepted, so a
    /// hostile length cannot make the reader allocate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] for a length over `max_len` or bytes that are
    /// not UTF-8; else as [`get_data`](StreamPeer::get_data).
    fn get_utf8_string_max(&mut self, max_len: usize) -> Result<String> {
        let len = self.get_u32()? as usize;
        if len > max_len {
            return Err(Error::InvalidData(format!(
                "string length {len} above the {max_len} byte maximum"
            )));
        }
        self.get_string_raw(len)
    }

    /// [`get_utf8_string_max`](StreamPeer::get_utf8_string_max) with a
    /// 16 MiB limit.
    ///
    /// # Errors
    ///
    /// As [`get_utf8_string_max`](StreamPeer::get_utf8_string_max).
    fn get_utf8_string(&mut self) -> Result<String> {
        self.get_utf8_string_max(16 * 1024 * 1024)
    }

    /// Godot's `put_string` (same wire format as
    /// [`put_utf8_string`](StreamPeer::put_utf8_string); Godot meant ASCII).
    ///
    /// # Errors
    ///
    /// As [`put_utf8_string`](StreamPeer::put_utf8_string).
    fn put_string(&mut self, value: &str) -> Result<()> {
        self.put_utf8_string(value)
    }

    /// Godot's `get_string()` with no length: as
    /// [`get_utf8_string`](StreamPeer::get_utf8_string).
    ///
    /// # Errors
    ///
    /// As [`get_utf8_string`](StreamPeer::get_utf8_string).
    fn get_string(&mut self) -> Result<String> {
        self.get_utf8_string()
    }

    /// The raw variant: the UTF-8 bytes only, no length.
    ///
    /// # Errors
    ///
    /// As [`put_data`](StreamPeer::put_data).
    fn put_string_raw(&mut self, value: &str) -> Result<()> {
        self.put_data(value.as_bytes())
    }

    /// The raw variant: exactly `len` bytes as UTF-8 (Godot's
    /// `get_string(bytes)`).
    ///
    /// Memory follows the bytes that arrive, not `len`: the string is read
    /// in pieces of what is buffered, or at most 64 KiB when it has to
    /// wait, so a peer that announces megabytes and sends four
    /// bytes costs at most one piece.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidData`] if they are not UTF-8; else as
    /// [`get_data`](StreamPeer::get_data), with
    /// [`Error::UnexpectedEof`] counting every byte of the string that
    /// arrived (the bytes of pieces read before the end are consumed).
    fn get_string_raw(&mut self, len: usize) -> Result<String> {
        let mut bytes = Vec::new();
        while bytes.len() < len {
            let got = bytes.len();
            let piece = (len - got).min(self.available_bytes().max(STRING_PIECE));
            bytes.resize(got + piece, 0);
            match self.get_data(&mut bytes[got..]) {
                Ok(()) => {}
                Err(Error::UnexpectedEof { received, .. }) => {
                    return Err(Error::UnexpectedEof {
                        needed: len,
                        received: got + received,
                    })
                }
                Err(err) => return Err(err),
            }
        }
        String::from_utf8(bytes)
            .map_err(|err| Error::InvalidData(format!("string is not UTF-8: {err}")))
    }
}

/// How many bytes [`StreamPeer::get_string_raw`] asks for at most when
/// fewer are buffered: the most a string read allocates ahead of the bytes
/// that arrived.
const STRING_PIECE: usize = 64 * 1024;

/// Converts IEEE 754 half-precision bits to `f32` (for
/// [`StreamPeer::get_f16_bits`]).
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exponent = u32::from((bits >> 10) & 0x1f);
    let mantissa = u32::from(bits & 0x3ff);
    let value = match (exponent, mantissa) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalise it.
            let shift = mantissa.leading_zeros() - 21;
            let mantissa = (mantissa << shift) & 0x3ff;
            sign | ((127 - 15 - shift + 1) << 23) | (mantissa << 13)
        }
        (0x1f, _) => sign | 0x7f80_0000 | (mantissa << 13),
        _ => sign | ((exponent + 127 - 15) << 23) | (mantissa << 13),
    };
    f32::from_bits(value)
}

/// Converts an `f32` to IEEE 754 half-precision bits, rounding to nearest
/// (for [`StreamPeer::put_f16_bits`]).
pub fn f32_to_f16_bits(value: f32) -> u16 {
    let bits = value.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exponent = ((bits >> 23) & 0xff) as i32;
    let mantissa = bits & 0x7f_ffff;
    if exponent == 0xff {
        return sign | 0x7c00 | if mantissa != 0 { 0x200 } else { 0 };
    }
    let half_exponent = exponent - 127 + 15;
    if half_exponent >= 0x1f {
        return sign | 0x7c00;
    }
    if half_exponent <= 0 {
        if half_exponent < -10 {
            return sign;
        }
        let mantissa = mantissa | 0x80_0000;
        let shift = (14 - half_exponent) as u32;
        let half = (mantissa >> shift) as u16;
        let round = (mantissa >> (shift - 1)) & 1;
        return sign | (half + round as u16);
    }
    let half = sign | ((half_exponent as u16) << 10) | (mantissa >> 13) as u16;
    // Round to nearest; a carry into the exponent is still correct.
    half + ((mantissa >> 12) & 1) as u16
}

/// Godot's `StreamPeerBuffer`: a byte buffer with a cursor, for tests and
/// serialisation. Writes overwrite at the cursor and extend the buffer;
/// reads advance the cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamPeerBuffer {
    data: Vec<u8>,
    position: usize,
    order: ByteOrder,
}

impl StreamPeerBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        StreamPeerBuffer::default()
    }

    /// A buffer holding `data`, with the cursor at the start.
    pub fn from_vec(data: Vec<u8>) -> Self {
        StreamPeerBuffer {
            data,
            position: 0,
            order: ByteOrder::default(),
        }
    }

    /// Sets the byte order of the typed calls (Godot's `big_endian`).
    pub fn set_big_endian(&mut self, big_endian: bool) {
        self.order = if big_endian {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        };
    }

    /// Whether the typed calls are big-endian (Godot's `big_endian`).
    pub fn is_big_endian(&self) -> bool {
        self.order == ByteOrder::Big
    }

    /// Sets the byte order of the typed calls.
    pub fn set_byte_order(&mut self, order: ByteOrder) {
        self.order = order;
    }

    /// The whole contents (Godot's `data_array`).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The contents, consuming the buffer.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }

    /// Moves the cursor, clamped to the size (Godot's `seek`).
    pub fn seek(&mut self, position: usize) {
        self.position = position.min(self.data.len());
    }

    /// The cursor (Godot's `get_position`).
    pub fn position(&self) -> usize {
        self.position
    }

    /// The size (Godot's `get_size`).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Resizes, filling with zeros (Godot's `resize`).
    pub fn resize(&mut self, len: usize) {
        self.data.resize(len, 0);
        self.position = self.position.min(len);
    }

    /// Empties the buffer (Godot's `clear`).
    pub fn clear(&mut self) {
        self.data.clear();
        self.position = 0;
    }
}

impl StreamPeer for StreamPeerBuffer {
    fn put_data(&mut self, data: &[u8]) -> Result<()> {
        let end = self.position + data.len();
        if end > self.data.len() {
            self.data.resize(end, 0);
        }
        self.data[self.position..end].copy_from_slice(data);
        self.position = end;
        Ok(())
    }

    fn put_partial_data(&mut self, data: &[u8]) -> Result<usize> {
        self.put_data(data).map(|()| data.len())
    }

    fn get_data(&mut self, dst: &mut [u8]) -> Result<()> {
        let available = self.available_bytes();
        if available < dst.len() {
            return Err(Error::UnexpectedEof {
                needed: dst.len(),
                received: available,
            });
        }
        dst.copy_from_slice(&self.data[self.position..self.position + dst.len()]);
        self.position += dst.len();
        Ok(())
    }

    fn get_partial_data(&mut self, dst: &mut [u8]) -> Result<usize> {
        let n = dst.len().min(self.available_bytes());
        if n == 0 && !dst.is_empty() {
            // An in-memory buffer never gets more: its end is the end.
            return Err(Error::UnexpectedEof {
                needed: dst.len(),
                received: 0,
            });
        }
        dst[..n].copy_from_slice(&self.data[self.position..self.position + n]);
        self.position += n;
        Ok(n)
    }

    fn available_bytes(&self) -> usize {
        self.data.len() - self.position
    }

    /// As the trait's, but an in-memory buffer never receives more: a
    /// string longer than what is left fails at once, without allocating
    /// or consuming anything.
    fn get_string_raw(&mut self, len: usize) -> Result<String> {
        let available = self.available_bytes();
        if available < len {
            return Err(Error::UnexpectedEof {
                needed: len,
                received: available,
            });
        }
        // Consumed whether or not they are UTF-8, as `get_data` would.
        let bytes = self.data[self.position..self.position + len].to_vec();
        self.position += len;
        String::from_utf8(bytes)
            .map_err(|err| Error::InvalidData(format!("string is not UTF-8: {err}")))
    }

    fn byte_order(&self) -> ByteOrder {
        self.order
    }

    fn try_get_data(&mut self, dst: &mut [u8]) -> Result<bool> {
        // An in-memory buffer never gets more: a short one is at its end.
        self.get_data(dst).map(|()| true)
    }
}

/// Runs `future` on this thread unless `on_loop_thread`, where waiting
/// would stop the loop that has to make it progress.
fn wait_off_loop<T>(on_loop_thread: bool, future: impl Future<Output = Result<T>>) -> Result<T> {
    if on_loop_thread {
        return Err(Error::WouldDeadlock);
    }
    futures_lite::future::block_on(future)
}

impl StreamPeer for AsyncIoStream {
    fn put_data(&mut self, data: &[u8]) -> Result<()> {
        if self.socket().loop_handle().is_loop_thread() {
            // On the loop thread waiting is impossible: queue it all.
            return self.socket().write(data);
        }
        let data = Bytes::copy_from_slice(data);
        futures_lite::future::block_on(self.write_all_bytes(data))
    }

    fn put_partial_data(&mut self, data: &[u8]) -> Result<usize> {
        match std::io::Write::write(self, data) {
            Ok(n) => Ok(n),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(err) => Err(Error::from(err)),
        }
    }

    fn get_data(&mut self, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        let frame = if self.available() >= dst.len() {
            // Enough is buffered: no waiting, on any thread.
            futures_lite::future::block_on(self.read_bytes(dst.len()))?
        } else {
            let n = dst.len();
            let on_loop_thread = self.socket().loop_handle().is_loop_thread();
            wait_off_loop(on_loop_thread, self.read_bytes(n))?
        };
        dst.copy_from_slice(&frame);
        Ok(())
    }

    fn get_partial_data(&mut self, dst: &mut [u8]) -> Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        match std::io::Read::read(self, dst) {
            Ok(0) => Err(Error::UnexpectedEof {
                needed: dst.len(),
                received: 0,
            }),
            Ok(n) => Ok(n),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
            Err(err) => Err(Error::from(err)),
        }
    }

    fn available_bytes(&self) -> usize {
        self.available()
    }

    fn try_get_data(&mut self, dst: &mut [u8]) -> Result<bool> {
        let available = self.available();
        if available >= dst.len() {
            // Enough is buffered: no waiting, on any thread.
            return self.get_data(dst).map(|()| true);
        }
        let socket = self.socket();
        if let Some(err) = socket.error() {
            return Err(err);
        }
        if socket.is_eof() || socket.is_closed() {
            return Err(Error::UnexpectedEof {
                needed: dst.len(),
                received: available,
            });
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_typed_value_round_trips_in_both_orders() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let mut peer = StreamPeerBuffer::new();
            peer.put_u8_with(0xfe, order).unwrap();
            peer.put_i8_with(-2, order).unwrap();
            peer.put_u16_with(0xbeef, order).unwrap();
            peer.put_i16_with(-2, order).unwrap();
            peer.put_u32_with(0xdead_beef, order).unwrap();
            peer.put_i32_with(-3, order).unwrap();
            peer.put_u64_with(u64::MAX - 1, order).unwrap();
            peer.put_i64_with(i64::MIN, order).unwrap();
            peer.put_f32_with(-0.25, order).unwrap();
            peer.put_f64_with(1e300, order).unwrap();
            peer.put_f16_bits_with(0x3c00, order).unwrap();
            peer.seek(0);
            assert_eq!(peer.get_u8_with(order).unwrap(), 0xfe);
            assert_eq!(peer.get_i8_with(order).unwrap(), -2);
            assert_eq!(peer.get_u16_with(order).unwrap(), 0xbeef);
            assert_eq!(peer.get_i16_with(order).unwrap(), -2);
            assert_eq!(peer.get_u32_with(order).unwrap(), 0xdead_beef);
            assert_eq!(peer.get_i32_with(order).unwrap(), -3);
            assert_eq!(peer.get_u64_with(order).unwrap(), u64::MAX - 1);
            assert_eq!(peer.get_i64_with(order).unwrap(), i64::MIN);
            assert_eq!(peer.get_f32_with(order).unwrap(), -0.25);
            assert_eq!(peer.get_f64_with(order).unwrap(), 1e300);
            assert_eq!(f16_bits_to_f32(peer.get_f16_bits_with(order).unwrap()), 1.0);
            assert!(matches!(
                peer.get_u32_with(order),
                Err(Error::UnexpectedEof {
                    needed: 4,
                    received: 0
                })
            ));
        }
    }

    #[test]
    fn byte_order_is_the_one_asked_for() {
        let mut peer = StreamPeerBuffer::new();
        peer.put_u32_with(0x0102_0304, ByteOrder::Big).unwrap();
        peer.put_u32_with(0x0102_0304, ByteOrder::Little).unwrap();
        assert_eq!(peer.data(), [1, 2, 3, 4, 4, 3, 2, 1]);
    }

    #[test]
    fn the_peer_byte_order_applies_to_calls_without_one() {
        let mut peer = StreamPeerBuffer::new();
        assert!(!peer.is_big_endian(), "Godot's default is little-endian");
        peer.put_u16(0x0102).unwrap();
        peer.set_big_endian(true);
        peer.put_u16(0x0102).unwrap();
        peer.put_utf8_string("a").unwrap();
        assert_eq!(peer.data(), [2, 1, 1, 2, 0, 0, 0, 1, b'a']);
        peer.seek(2);
        assert_eq!(peer.get_u16().unwrap(), 0x0102);
        assert_eq!(peer.get_utf8_string().unwrap(), "a");
    }

    #[test]
    fn try_get_takes_nothing_until_the_value_is_whole() {
        let mut peer = StreamPeerBuffer::from_vec(vec![1, 2, 3]);
        assert!(matches!(
            peer.try_get_u32(),
            Err(Error::UnexpectedEof {
                needed: 4,
                received: 3
            })
        ));
        assert_eq!(peer.available_bytes(), 3, "nothing was taken");
        assert_eq!(peer.try_get_u16_with(ByteOrder::Big).unwrap(), Some(0x0102));
    }

    #[test]
    fn utf8_string_is_godot_wire_compatible() {
        let mut peer = StreamPeerBuffer::new();
        peer.put_utf8_string("añb").unwrap();
        // Godot: u32 little-endian byte length, UTF-8 bytes, no NUL.
        assert_eq!(peer.data(), [4, 0, 0, 0, b'a', 0xc3, 0xb1, b'b']);
        peer.seek(0);
        assert_eq!(peer.get_utf8_string().unwrap(), "añb");
    }

    #[test]
    fn hostile_string_length_is_refused_without_allocating() {
        let mut peer = StreamPeerBuffer::from_vec(vec![0xff, 0xff, 0xff, 0xff, b'x']);
        assert!(matches!(peer.get_utf8_string(), Err(Error::InvalidData(_))));
        let mut peer = StreamPeerBuffer::from_vec(vec![2, 0, 0, 0, 0xff, 0xfe]);
        assert!(matches!(peer.get_utf8_string(), Err(Error::InvalidData(_))));
    }

    #[test]
    fn short_get_data_says_how_much_arrived() {
        let mut peer = StreamPeerBuffer::from_vec(vec![1, 2, 3]);
        let mut dst = [0u8; 5];
        assert!(matches!(
            peer.get_data(&mut dst),
            Err(Error::UnexpectedEof {
                needed: 5,
                received: 3
            })
        ));
        assert_eq!(peer.available_bytes(), 3, "nothing was taken");
        assert_eq!(peer.get_partial_data(&mut dst).unwrap(), 3);
        assert!(peer.get_partial_data(&mut dst).is_err());
    }

    #[test]
    fn half_floats_convert_both_ways() {
        for (value, bits) in [
            (0.0f32, 0x0000u16),
            (-0.0, 0x8000),
            (1.0, 0x3c00),
            (-2.0, 0xc000),
            (65504.0, 0x7bff),
            (0.5, 0x3800),
            (f32::INFINITY, 0x7c00),
            (5.960_464_5e-8, 0x0001),
        ] {
            assert_eq!(f32_to_f16_bits(value), bits, "{value}");
            assert_eq!(f16_bits_to_f32(bits), value, "{bits:#06x}");
        }
        assert!(f16_bits_to_f32(f32_to_f16_bits(f32::NAN)).is_nan());
    }

    #[test]
    fn writes_overwrite_at_the_cursor() {
        let mut peer = StreamPeerBuffer::from_vec(vec![0; 4]);
        peer.seek(2);
        peer.put_data(&[9, 9, 9]).unwrap();
        assert_eq!(peer.data(), [0, 0, 9, 9, 9]);
        peer.resize(2);
        assert_eq!(peer.position(), 2);
        peer.clear();
        assert!(peer.is_empty());
    }
}
