//! Lines with a required maximum length.

use bytes::Bytes;

use super::{Decoder, Encoder};
use crate::buffer::{Buffer, Eol};
use crate::error::{Error, Limit, Result};

/// Lines ended as an [`Eol`] style says, each at most `max_length` bytes
/// (terminator excluded). Frames are the lines without their terminator,
/// as `Bytes` slices of the received chunk when the line lies in one.
///
/// A line longer than `max_length` fails with [`Error::LimitExceeded`]
/// (`FrameLength`) as soon as more than `max_length` bytes without a
/// terminator have arrived (in the CR LF styles a last `\r`, which may
/// start the terminator, is not counted), so memory stays bounded by the
/// limit; the bytes stay buffered. At EOF, a last line without terminator
/// is returned as it is — a trailing `\r` included, since no LF can follow
/// it any more — if it is within the limit, and refused otherwise: no line
/// returned is ever longer than `max_length`.
///
/// Each call resumes the search where the previous one stopped, so a line
/// arriving in many pieces costs time linear in its length whatever the
/// style. The codec remembers that position between calls: use it on one
/// byte stream (a fresh codec for another).
///
/// Encoding appends the item and the style's terminator (`\n` for `Lf` and
/// `Any`, `\r\n` for `CrLf` and `CrLfStrict`, NUL for `Nul`).
///
/// # Examples
///
/// ```
/// use evstream::codec::{Decoder, LinesCodec};
/// use evstream::{Buffer, Eol};
///
/// let mut codec = LinesCodec::new(Eol::CrLf, 1024);
/// let mut src = Buffer::from(&b"one\r\ntwo\nthr"[..]);
/// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"one");
/// assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"two");
/// assert_eq!(codec.decode(&mut src).unwrap(), None);
/// assert_eq!(&codec.decode_eof(&mut src).unwrap().unwrap()[..], b"thr");
/// ```
#[derive(Debug, Clone)]
pub struct LinesCodec {
    eol: Eol,
    max_length: usize,
    // How much of the buffer was searched without finding a line end, so a
    // long line arriving in pieces is not searched again from the start.
    // Reset whenever bytes are taken or an error is returned.
    searched: usize,
}

impl LinesCodec {
    /// Lines in the given style, at most `max_length` bytes each.
    pub fn new(eol: Eol, max_length: usize) -> Self {
        LinesCodec {
            eol,
            max_length,
            searched: 0,
        }
    }

    /// `\n`-terminated lines (a preceding `\r` stays in the line).
    pub fn lf(max_length: usize) -> Self {
        Self::new(Eol::Lf, max_length)
    }

    /// The maximum line length.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    fn too_long(&self) -> Error {
        Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: self.max_length,
        }
    }

    fn terminator(&self) -> &'static [u8] {
        match self.eol {
            Eol::Lf | Eol::Any => b"\n",
            Eol::CrLf | Eol::CrLfStrict => b"\r\n",
            Eol::Nul => b"\0",
        }
    }
}

impl Decoder for LinesCodec {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        // Resume where the last call stopped: those bytes hold no line end.
        match src.find_eol_from(self.searched, self.eol) {
            Some((line_len, terminator_len)) => {
                self.searched = 0;
                if line_len > self.max_length {
                    return Err(self.too_long());
                }
                // One split for the line and its terminator, which is then
                // cut off the `Bytes` (cheaper than a second buffer call).
                let mut line = src.split_to(line_len + terminator_len);
                line.truncate(line_len);
                Ok(Some(line))
            }
            None => {
                // In the CR LF styles a `\r` at the end may be the start of
                // the terminator, which does not count against the limit.
                let pending_cr = matches!(self.eol, Eol::CrLf | Eol::CrLfStrict)
                    && src.len() > self.max_length
                    && src.get(src.len() - 1) == Some(b'\r');
                if src.len() - usize::from(pending_cr) > self.max_length {
                    // Start afresh next time: after an error the caller may
                    // take bytes out of the buffer.
                    self.searched = 0;
                    return Err(self.too_long());
                }
                self.searched = src.len();
                Ok(None)
            }
        }
    }

    /// Returns the last line, unterminated, once the peer has closed.
    ///
    /// A `\r` at the very end is line content here in every style: in the
    /// CR LF styles `decode` waited for the LF that could have followed it,
    /// and none can come any more. The line is checked against the limit
    /// like any other.
    fn decode_eof(&mut self, src: &mut Buffer) -> Result<Option<Bytes>> {
        if let Some(line) = self.decode(src)? {
            return Ok(Some(line));
        }
        self.searched = 0;
        if src.is_empty() {
            return Ok(None);
        }
        if src.len() > self.max_length {
            return Err(self.too_long());
        }
        let len = src.len();
        Ok(Some(src.split_to(len)))
    }
}

impl<T: AsRef<[u8]>> Encoder<T> for LinesCodec {
    fn encode(&mut self, item: T, dst: &mut Buffer) -> Result<()> {
        let line = item.as_ref();
        if line.len() > self.max_length {
            return Err(self.too_long());
        }
        dst.extend_from_slice(line);
        dst.extend_from_slice(self.terminator());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_long_line_is_refused_at_the_limit_and_kept() {
        let mut codec = LinesCodec::lf(4);
        let mut src = Buffer::from(&b"abcd"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(b"e");
        let err = codec.decode(&mut src).unwrap_err();
        assert!(matches!(err, Error::LimitExceeded { limit: 4, .. }));
        assert_eq!(src.len(), 5, "the bytes stay");
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_even_split_before_its_crlf() {
        let mut codec = LinesCodec::new(Eol::CrLf, 3);
        let mut src = Buffer::from(&b"abc\r"[..]);
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.extend_from_slice(b"\n");
        assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"abc");
    }

    #[test]
    fn incremental_search_finds_a_terminator_in_a_later_chunk() {
        let mut codec = LinesCodec::lf(100);
        let mut src = Buffer::new();
        src.push(Bytes::from_static(b"abc"));
        assert_eq!(codec.decode(&mut src).unwrap(), None);
        src.push(Bytes::from_static(b"def\nx"));
        assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"abcdef");
        assert_eq!(src.to_vec(), b"x");
    }

    #[test]
    fn a_resumed_search_still_sees_a_cr_from_the_previous_call() {
        for eol in [Eol::CrLf, Eol::CrLfStrict] {
            let mut codec = LinesCodec::new(eol, 100);
            let mut src = Buffer::new();
            for piece in [&b"ab"[..], b"\r"] {
                src.push(Bytes::copy_from_slice(piece));
                assert_eq!(codec.decode(&mut src).unwrap(), None, "{eol:?}");
            }
            src.push(Bytes::from_static(b"\ncd\r\n"));
            assert_eq!(
                &codec.decode(&mut src).unwrap().unwrap()[..],
                b"ab",
                "{eol:?}"
            );
            assert_eq!(
                &codec.decode(&mut src).unwrap().unwrap()[..],
                b"cd",
                "{eol:?}"
            );
            assert!(src.is_empty());
        }
    }

    #[test]
    fn the_search_starts_afresh_after_an_error() {
        let mut codec = LinesCodec::new(Eol::CrLf, 3);
        let mut src = Buffer::from(&b"abcd"[..]);
        assert!(codec.decode(&mut src).is_err());
        // The caller takes the offending bytes; the rest is searched from
        // its start.
        src.drain(4);
        src.extend_from_slice(b"x\n");
        assert_eq!(&codec.decode(&mut src).unwrap().unwrap()[..], b"x");
    }

    #[test]
    fn encodes_with_the_style_terminator() {
        let mut dst = Buffer::new();
        LinesCodec::new(Eol::CrLf, 10)
            .encode("hi", &mut dst)
            .unwrap();
        LinesCodec::new(Eol::Nul, 10)
            .encode(b"yo", &mut dst)
            .unwrap();
        assert_eq!(dst.to_vec(), b"hi\r\nyo\0");
        assert!(LinesCodec::lf(1).encode("too long", &mut dst).is_err());
    }
}
