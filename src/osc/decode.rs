//! Bytes to packets, strictly and without trusting any size in the input.

use bytes::Bytes;

use super::types::{OscBundle, OscColor, OscMessage, OscMidi, OscPacket, OscTime, OscType};
use super::{BUNDLE_TAG, MAX_DEPTH};
use crate::error::{Error, Result};

/// Decodes one OSC packet (a message or a bundle) that fills `bytes`
/// exactly.
///
/// Decoding is strict: every string must end with a NUL and every string
/// and blob must carry its padding to a multiple of 4 (the padding bytes
/// themselves are not checked), every type tag must have its argument,
/// sizes must stay inside the packet, `[` and `]` must balance, bundles
/// and arrays may nest at most [`MAX_DEPTH`] deep, and nothing may follow
/// the last argument. A message without a type tag string (pre-1.0 OSC)
/// is accepted as one without arguments. Sizes read from the input are
/// checked against the bytes that remain before anything is allocated, so
/// the memory used is proportional to `bytes.len()`; no input panics.
///
/// Blobs are copied; [`decode_bytes`] slices them out of a [`Bytes`]
/// instead.
///
/// # Examples
///
/// ```
/// use evstream::osc::{decode, OscMessage, OscPacket, OscType};
///
/// let packet = decode(b"/oscillator/4/frequency\0,f\0\0\x43\xdc\x00\x00")?;
/// assert_eq!(
///     packet,
///     OscPacket::Message(OscMessage::new("/oscillator/4/frequency", vec![OscType::Float(440.0)])),
/// );
///
/// let err = decode(b"/abc").unwrap_err();
/// assert_eq!(err.to_string(), "invalid data: OSC address at offset 0: string without NUL");
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidData`], saying what is wrong and at which offset, for
/// any malformed packet.
pub fn decode(bytes: &[u8]) -> Result<OscPacket> {
    Reader {
        data: bytes,
        source: None,
    }
    .packet(0, bytes.len(), 0)
}

/// Like [`decode`], but blobs are slices of `bytes` (no copy).
///
/// # Examples
///
/// ```
/// use bytes::Bytes;
/// use evstream::osc::{decode_bytes, encode, OscMessage, OscPacket, OscType};
///
/// let wire = encode(&OscMessage::new("/blob", vec![OscType::Blob(Bytes::from_static(b"abc"))]).into())?;
/// let OscPacket::Message(msg) = decode_bytes(&wire)? else { unreachable!() };
/// let OscType::Blob(blob) = &msg.args[0] else { unreachable!() };
/// assert_eq!(&blob[..], b"abc");
/// assert_eq!(blob.as_ptr(), wire[16..].as_ptr()); // shares the input
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// As [`decode`].
pub fn decode_bytes(bytes: &Bytes) -> Result<OscPacket> {
    Reader {
        data: bytes,
        source: Some(bytes),
    }
    .packet(0, bytes.len(), 0)
}

fn invalid(reason: String) -> Error {
    Error::InvalidData(reason)
}

/// "argument 'x'", formatted only when an error needs it.
struct ArgName(u8);

impl std::fmt::Display for ArgName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "argument '{}'", char::from(self.0))
    }
}

/// The whole top-level packet; positions are absolute offsets in it.
struct Reader<'a> {
    data: &'a [u8],
    /// The same bytes as a `Bytes`, for zero-copy blobs.
    source: Option<&'a Bytes>,
}

impl Reader<'_> {
    /// The packet in `start..end`, at bundle nesting `depth` (0 at the top).
    fn packet(&self, start: usize, end: usize, depth: usize) -> Result<OscPacket> {
        let len = end - start;
        if len == 0 {
            return Err(invalid(format!("OSC packet at offset {start} is empty")));
        }
        if len % 4 != 0 {
            return Err(invalid(format!(
                "OSC packet at offset {start} has {len} bytes, not a multiple of 4"
            )));
        }
        match self.data[start] {
            b'/' => self.message(start, end).map(OscPacket::Message),
            b'#' => self.bundle(start, end, depth + 1).map(OscPacket::Bundle),
            other => Err(invalid(format!(
                "OSC packet at offset {start} starts with {other:#04x}, neither '/' nor '#bundle'"
            ))),
        }
    }

    fn bundle(&self, start: usize, end: usize, depth: usize) -> Result<OscBundle> {
        if depth > MAX_DEPTH {
            return Err(invalid(format!(
                "OSC bundle at offset {start} nested more than {MAX_DEPTH} deep"
            )));
        }
        if !self.data[start..end].starts_with(BUNDLE_TAG) {
            return Err(invalid(format!(
                "OSC packet at offset {start} starts with '#' but not with \"#bundle\\0\""
            )));
        }
        let mut pos = start + BUNDLE_TAG.len();
        let timetag = self.time(&mut pos, end, "bundle time tag")?;
        let mut content = Vec::new();
        while pos < end {
            let size = self.take(&mut pos, end, 4, "bundle element size")?;
            let size = i32::from_be_bytes(size.try_into().expect("4 bytes"));
            let left = end - pos;
            let Ok(size) = usize::try_from(size) else {
                return Err(invalid(format!(
                    "OSC bundle element at offset {} has a negative size ({size})",
                    pos - 4
                )));
            };
            if size > left {
                return Err(invalid(format!(
                    "OSC bundle element at offset {} of {size} bytes runs past the end \
                     of the packet ({left} bytes left)",
                    pos - 4
                )));
            }
            if size % 4 != 0 {
                return Err(invalid(format!(
                    "OSC bundle element at offset {} has {size} bytes, not a multiple of 4",
                    pos - 4
                )));
            }
            content.push(self.packet(pos, pos + size, depth)?);
            pos += size;
        }
        Ok(OscBundle { timetag, content })
    }

    fn message(&self, start: usize, end: usize) -> Result<OscMessage> {
        let mut pos = start;
        let addr = self.string(&mut pos, end, "address")?;
        if pos == end {
            // OSC before 1.0: no type tag string, no arguments.
            return Ok(OscMessage {
                addr,
                args: Vec::new(),
            });
        }
        if self.data[pos] != b',' {
            return Err(invalid(format!(
                "OSC type tag string at offset {pos} does not start with ','"
            )));
        }
        let tags_at = pos;
        let tags = self.string_bytes(&mut pos, end, "type tag string")?;
        // Open arrays: the enclosing lists, innermost last.
        let mut open: Vec<Vec<OscType>> = Vec::new();
        let mut args = Vec::new();
        for (index, &tag) in tags.iter().enumerate().skip(1) {
            match tag {
                b'[' => {
                    if open.len() >= MAX_DEPTH {
                        return Err(invalid(format!(
                            "OSC arrays nested more than {MAX_DEPTH} deep (type tag {index} \
                             of the string at offset {tags_at})"
                        )));
                    }
                    open.push(std::mem::take(&mut args));
                }
                b']' => {
                    let Some(outer) = open.pop() else {
                        return Err(invalid(format!(
                            "OSC type tag ']' without '[' (type tag {index} of the string \
                             at offset {tags_at})"
                        )));
                    };
                    let array = std::mem::replace(&mut args, outer);
                    args.push(OscType::Array(array));
                }
                _ => args.push(self.arg(tag, &mut pos, end)?),
            }
        }
        if !open.is_empty() {
            return Err(invalid(format!(
                "OSC type tag '[' without ']' ({} unclosed in the string at offset {tags_at})",
                open.len()
            )));
        }
        if pos != end {
            return Err(invalid(format!(
                "OSC message at offset {start} has {} bytes after its last argument",
                end - pos
            )));
        }
        Ok(OscMessage { addr, args })
    }

    fn arg(&self, tag: u8, pos: &mut usize, end: usize) -> Result<OscType> {
        let at = *pos;
        Ok(match tag {
            b'i' => OscType::Int(i32::from_be_bytes(self.word(pos, end, tag)?)),
            b'f' => OscType::Float(f32::from_bits(u32::from_be_bytes(
                self.word(pos, end, tag)?,
            ))),
            b's' => OscType::String(self.string(pos, end, "string argument")?),
            b'S' => OscType::Symbol(self.string(pos, end, "symbol argument")?),
            b'b' => OscType::Blob(self.blob(pos, end)?),
            b'h' => OscType::Long(i64::from_be_bytes(self.double_word(pos, end, tag)?)),
            b'd' => OscType::Double(f64::from_bits(u64::from_be_bytes(
                self.double_word(pos, end, tag)?,
            ))),
            b't' => OscType::Time(self.time(pos, end, "time tag argument")?),
            b'c' => {
                let code = u32::from_be_bytes(self.word(pos, end, tag)?);
                OscType::Char(char::from_u32(code).ok_or_else(|| {
                    invalid(format!(
                        "OSC char argument at offset {at} is {code:#x}, not a Unicode scalar value"
                    ))
                })?)
            }
            b'r' => {
                let [r, g, b, a] = self.word(pos, end, tag)?;
                OscType::Color(OscColor { r, g, b, a })
            }
            b'm' => {
                let [port, status, data1, data2] = self.word(pos, end, tag)?;
                OscType::Midi(OscMidi {
                    port,
                    status,
                    data1,
                    data2,
                })
            }
            b'T' => OscType::Bool(true),
            b'F' => OscType::Bool(false),
            b'N' => OscType::Nil,
            b'I' => OscType::Inf,
            other => {
                return Err(invalid(format!(
                    "unknown OSC type tag {:?} ({other:#04x})",
                    char::from(other)
                )))
            }
        })
    }

    /// `n` bytes at `*pos`, or an error naming `what` when fewer remain.
    fn take(
        &self,
        pos: &mut usize,
        end: usize,
        n: usize,
        what: impl std::fmt::Display,
    ) -> Result<&[u8]> {
        let left = end - *pos;
        if left < n {
            return Err(invalid(format!(
                "OSC {what} at offset {} needs {n} bytes but the packet ends after {left}",
                *pos
            )));
        }
        let bytes = &self.data[*pos..*pos + n];
        *pos += n;
        Ok(bytes)
    }

    fn word(&self, pos: &mut usize, end: usize, tag: u8) -> Result<[u8; 4]> {
        let bytes = self.take(pos, end, 4, ArgName(tag))?;
        Ok(bytes.try_into().expect("4 bytes"))
    }

    fn double_word(&self, pos: &mut usize, end: usize, tag: u8) -> Result<[u8; 8]> {
        let bytes = self.take(pos, end, 8, ArgName(tag))?;
        Ok(bytes.try_into().expect("8 bytes"))
    }

    fn time(&self, pos: &mut usize, end: usize, what: &str) -> Result<OscTime> {
        let bytes = self.take(pos, end, 8, what)?;
        Ok(OscTime {
            seconds: u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes")),
            fraction: u32::from_be_bytes(bytes[4..].try_into().expect("4 bytes")),
        })
    }

    /// The bytes of an OSC string before its NUL; `*pos` moves past the
    /// padding.
    fn string_bytes(&self, pos: &mut usize, end: usize, what: &str) -> Result<&[u8]> {
        let at = *pos;
        let Some(nul) = memchr::memchr(0, &self.data[at..end]) else {
            return Err(invalid(format!(
                "OSC {what} at offset {at}: string without NUL"
            )));
        };
        let padded = (nul + 1).next_multiple_of(4);
        if padded > end - at {
            return Err(invalid(format!(
                "OSC {what} at offset {at}: the packet ends inside the string's padding"
            )));
        }
        *pos = at + padded;
        Ok(&self.data[at..at + nul])
    }

    fn string(&self, pos: &mut usize, end: usize, what: &str) -> Result<String> {
        let at = *pos;
        let bytes = self.string_bytes(pos, end, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(err) => Err(invalid(format!(
                "OSC {what} at offset {at} is not valid UTF-8 ({err})"
            ))),
        }
    }

    fn blob(&self, pos: &mut usize, end: usize) -> Result<Bytes> {
        let at = *pos;
        let size = i32::from_be_bytes(self.word(pos, end, b'b')?);
        let Ok(size) = usize::try_from(size) else {
            return Err(invalid(format!(
                "OSC blob at offset {at} has a negative size ({size})"
            )));
        };
        // Checked before anything is allocated.
        let left = end - *pos;
        if size > left {
            return Err(invalid(format!(
                "OSC blob at offset {at} of {size} bytes runs past the end of the packet \
                 ({left} bytes left)"
            )));
        }
        if size.next_multiple_of(4) > left {
            return Err(invalid(format!(
                "OSC blob at offset {at}: the packet ends inside the blob's padding"
            )));
        }
        let start = *pos;
        *pos += size.next_multiple_of(4);
        Ok(match self.source {
            Some(source) => source.slice(start..start + size),
            None => Bytes::copy_from_slice(&self.data[start..start + size]),
        })
    }
}
