//! Packets to bytes.

use bytes::Bytes;

use super::types::{OscBundle, OscMessage, OscPacket, OscTime, OscType};
use super::{BUNDLE_TAG, MAX_DEPTH};
use crate::error::{Error, Result};

/// Encodes `packet` into a new buffer.
///
/// # Examples
///
/// ```
/// use evstream::osc::{encode, OscMessage, OscType};
///
/// let bytes = encode(&OscMessage::new("/a", vec![OscType::Int(1)]).into())?;
/// assert_eq!(&bytes[..], b"/a\0\0,i\0\0\0\0\0\x01");
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::InvalidInput`] when the packet cannot be encoded: an address
/// that does not start with `/`, an address or string containing NUL, an
/// element or blob over `i32::MAX` bytes, or bundles or arrays nested more
/// than [`MAX_DEPTH`] deep.
pub fn encode(packet: &OscPacket) -> Result<Bytes> {
    let mut out = Vec::new();
    encode_into(packet, &mut out)?;
    Ok(Bytes::from(out))
}

/// Appends the encoding of `packet` to `out`.
///
/// # Examples
///
/// ```
/// use evstream::osc::{encode_into, OscBundle, OscTime};
///
/// let mut out = b"xyz".to_vec();
/// encode_into(&OscBundle::new(OscTime::IMMEDIATELY, vec![]).into(), &mut out)?;
/// assert_eq!(&out[..], b"xyz#bundle\0\0\0\0\0\0\0\0\x01");
/// # Ok::<(), evstream::Error>(())
/// ```
///
/// # Errors
///
/// As [`encode`]; `out` is left as it was then.
pub fn encode_into(packet: &OscPacket, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let mut writer = Writer { out, start };
    let result = writer.packet(packet, 0);
    if result.is_err() {
        writer.out.truncate(start);
    }
    result
}

/// Appends to `out`; padding is relative to `start`, where the packet
/// begins, so a packet appended after unaligned bytes is still well formed.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
    start: usize,
}

impl Writer<'_> {
    fn packet(&mut self, packet: &OscPacket, depth: usize) -> Result<()> {
        match packet {
            OscPacket::Message(message) => self.message(message),
            OscPacket::Bundle(bundle) => self.bundle(bundle, depth + 1),
        }
    }

    fn bundle(&mut self, bundle: &OscBundle, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidInput(format!(
                "OSC bundles nested more than {MAX_DEPTH} deep"
            )));
        }
        self.out.extend_from_slice(BUNDLE_TAG);
        self.time(bundle.timetag);
        for element in &bundle.content {
            let at = self.out.len();
            self.out.extend_from_slice(&[0; 4]);
            self.packet(element, depth)?;
            let size = size_i32(self.out.len() - at - 4, "bundle element")?;
            self.out[at..at + 4].copy_from_slice(&size.to_be_bytes());
        }
        Ok(())
    }

    fn message(&mut self, message: &OscMessage) -> Result<()> {
        if !message.addr.starts_with('/') {
            return Err(Error::InvalidInput(format!(
                "OSC address {:?} does not start with '/'",
                message.addr
            )));
        }
        self.string(&message.addr, "address")?;
        self.out.push(b',');
        self.tags(&message.args, 1)?;
        self.out.push(0);
        self.pad();
        self.args(&message.args)
    }

    fn tags(&mut self, args: &[OscType], depth: usize) -> Result<()> {
        for arg in args {
            if let OscType::Array(elements) = arg {
                if depth > MAX_DEPTH {
                    return Err(Error::InvalidInput(format!(
                        "OSC arrays nested more than {MAX_DEPTH} deep"
                    )));
                }
                self.out.push(b'[');
                self.tags(elements, depth + 1)?;
                self.out.push(b']');
            } else {
                // Every other tag is ASCII.
                self.out.push(arg.type_tag() as u8);
            }
        }
        Ok(())
    }

    fn args(&mut self, args: &[OscType]) -> Result<()> {
        for arg in args {
            match arg {
                OscType::Int(v) => self.out.extend_from_slice(&v.to_be_bytes()),
                OscType::Float(v) => self.out.extend_from_slice(&v.to_bits().to_be_bytes()),
                OscType::String(s) => self.string(s, "string")?,
                OscType::Symbol(s) => self.string(s, "symbol")?,
                OscType::Blob(blob) => {
                    let size = size_i32(blob.len(), "blob")?;
                    self.out.extend_from_slice(&size.to_be_bytes());
                    self.out.extend_from_slice(blob);
                    self.pad();
                }
                OscType::Long(v) => self.out.extend_from_slice(&v.to_be_bytes()),
                OscType::Time(t) => self.time(*t),
                OscType::Double(v) => self.out.extend_from_slice(&v.to_bits().to_be_bytes()),
                OscType::Char(c) => self.out.extend_from_slice(&u32::from(*c).to_be_bytes()),
                OscType::Color(c) => self.out.extend_from_slice(&[c.r, c.g, c.b, c.a]),
                OscType::Midi(m) => {
                    self.out
                        .extend_from_slice(&[m.port, m.status, m.data1, m.data2]);
                }
                OscType::Bool(_) | OscType::Nil | OscType::Inf => {}
                OscType::Array(elements) => self.args(elements)?,
            }
        }
        Ok(())
    }

    fn time(&mut self, time: OscTime) {
        self.out.extend_from_slice(&time.seconds.to_be_bytes());
        self.out.extend_from_slice(&time.fraction.to_be_bytes());
    }

    /// An OSC string: the bytes, a NUL, and NULs up to a multiple of 4.
    fn string(&mut self, s: &str, what: &str) -> Result<()> {
        if memchr::memchr(0, s.as_bytes()).is_some() {
            return Err(Error::InvalidInput(format!(
                "OSC {what} {s:?} contains a NUL byte"
            )));
        }
        self.out.extend_from_slice(s.as_bytes());
        self.out.push(0);
        self.pad();
        Ok(())
    }

    /// NULs up to the next multiple of 4 from the packet's start.
    fn pad(&mut self) {
        let len = self.out.len() - self.start;
        let padded = len.next_multiple_of(4);
        self.out.resize(self.start + padded, 0);
    }
}

fn size_i32(len: usize, what: &str) -> Result<i32> {
    i32::try_from(len).map_err(|_| {
        Error::InvalidInput(format!(
            "OSC {what} of {len} bytes is over the int32 size limit"
        ))
    })
}
