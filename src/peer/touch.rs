//! TouchDesigner's `Peer` calls, on any connection's [`Socket`], as the
//! [`TouchPeer`] extension trait.

use std::net::IpAddr;

use crate::buffer::Buffer;
use crate::codec::Encoder;
use crate::error::{Error, Result};
use crate::osc::{osc_packets, OscCodec, OscFraming, OscValue, SendOscOptions};
use crate::socket::Socket;
use crate::tcp::Owner;

/// One item of [`Socket::send_bytes`]: text, a byte slice or a single byte
/// value — what TouchDesigner's `sendBytes(*messages)` mixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendItem<'a> {
    /// Text, sent as its UTF-8 bytes.
    Text(&'a str),
    /// Bytes, sent as they are.
    Bytes(&'a [u8]),
    /// One byte value.
    Byte(u8),
}

impl<'a> From<&'a str> for SendItem<'a> {
    fn from(text: &'a str) -> Self {
        SendItem::Text(text)
    }
}

impl<'a> From<&'a [u8]> for SendItem<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        SendItem::Bytes(bytes)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for SendItem<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        SendItem::Bytes(bytes)
    }
}

impl From<u8> for SendItem<'_> {
    fn from(byte: u8) -> Self {
        SendItem::Byte(byte)
    }
}

impl SendItem<'_> {
    fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            SendItem::Text(text) => out.extend_from_slice(text.as_bytes()),
            SendItem::Bytes(bytes) => out.extend_from_slice(bytes),
            SendItem::Byte(byte) => out.push(*byte),
        }
    }
}

/// TouchDesigner's `Peer` calls on a connection, as an extension of
/// [`Socket`] (bring it into scope with `use evstream::peer::TouchPeer` or
/// `evstream::prelude::*`).
pub trait TouchPeer {
    /// Sends text, byte slices and single byte values, in order, with no
    /// terminator (TouchDesigner's `sendBytes`); returns the number of bytes
    /// queued.
    ///
    /// # Errors
    ///
    /// As [`Socket::write`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(peer: &evstream::Socket) -> evstream::Result<()> {
    /// use evstream::peer::TouchPeer;
    /// use evstream::peer::SendItem;
    /// // TouchDesigner: n.sendBytes('TYPE', 23, 255, 12, 0x34, b'\x01\x00')
    /// let sent = peer.send_bytes(&[
    ///     "TYPE".into(), 23.into(), 255.into(), 12.into(), 0x34.into(), b"\x01\x00".into(),
    /// ])?;
    /// assert_eq!(sent, 11);
    /// # Ok(()) }
    /// ```
    fn send_bytes(&self, items: &[SendItem<'_>]) -> Result<usize>;

    /// Sends strings, each followed by `terminator` (TouchDesigner's
    /// `send(*messages, terminator=…)`, with the terminator explicit: its
    /// default of a NUL surprises), returning the number of bytes queued.
    ///
    /// # Errors
    ///
    /// As [`Socket::write`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(peer: &evstream::Socket) -> evstream::Result<()> {
    /// use evstream::peer::TouchPeer;
    /// // TouchDesigner: n.send('Hello', 'World', terminator='\r\n')
    /// assert_eq!(peer.send(&["Hello", "World"], "\r\n")?, 14);
    /// # Ok(()) }
    /// ```
    fn send(&self, messages: &[&str], terminator: &str) -> Result<usize>;

    /// The peer's host name as known without a lookup: the name given to
    /// `tcp_connect`, else the peer's address as text (TouchDesigner's
    /// `hostname` when the name is not known).
    fn hostname(&self) -> Option<String>;

    /// Looks the peer's address up in reverse DNS (TouchDesigner's
    /// `hostname`), blocking the calling thread; on the loop thread prefer
    /// [`hostname`](Socket::hostname).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] before the connection is up, [`Error::Resolve`]
    /// when the lookup fails.
    fn resolve_hostname(&self) -> Result<String>;

    /// Sends OSC (TouchDesigner's `sendOSC`): each `(address, values)` pair
    /// becomes a message whose argument types are inferred as
    /// TouchDesigner documents (see [`crate::osc::infer_args`]); with
    /// `options.as_bundle` all of them go in one bundle. `framing` is OSC
    /// over TCP's: [`OscFraming::Osc10`] (int32 size prefix) or
    /// [`OscFraming::Osc11`] (SLIP, double END). Returns the number of
    /// bytes queued.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a value the options cannot send (an
    /// integer over 32 bits without non-standard types, say) — nothing is
    /// sent then; else as [`Socket::write`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn f(peer: &evstream::Socket) -> evstream::Result<()> {
    /// use evstream::peer::TouchPeer;
    /// use evstream::osc::{OscFraming, OscValue, SendOscOptions};
    /// // TouchDesigner: n.sendOSC('/abc', [1, b'abc', 'apple', True, None, float('inf')])
    /// let values: Vec<OscValue> = vec![
    ///     1.into(), (&b"abc"[..]).into(), "apple".into(), true.into(), OscValue::None, f64::INFINITY.into(),
    /// ];
    /// peer.send_osc(&[("/abc", values)], &SendOscOptions::default(), OscFraming::Osc10)?;
    /// # Ok(()) }
    /// ```
    fn send_osc<A: AsRef<str>, V: AsRef<[OscValue]>>(
        &self,
        messages: &[(A, V)],
        options: &SendOscOptions,
        framing: OscFraming,
    ) -> Result<usize>;

    /// Closes the connection gracefully and says whether this call did it
    /// (TouchDesigner's `close() -> bool`): `false` if it was already
    /// closed.
    fn close_peer(&self) -> bool;

    /// The server that accepted this connection, or the loop it was made on
    /// (TouchDesigner's `Peer.owner`).
    fn owner(&self) -> Owner;
}

impl TouchPeer for Socket {
    fn owner(&self) -> Owner {
        Owner::of(self)
    }

    fn send_bytes(&self, items: &[SendItem<'_>]) -> Result<usize> {
        let mut out = Vec::new();
        for item in items {
            item.append_to(&mut out);
        }
        self.write(&out)?;
        Ok(out.len())
    }

    fn send(&self, messages: &[&str], terminator: &str) -> Result<usize> {
        let mut out = Vec::new();
        for message in messages {
            out.extend_from_slice(message.as_bytes());
            out.extend_from_slice(terminator.as_bytes());
        }
        self.write(&out)?;
        Ok(out.len())
    }

    fn hostname(&self) -> Option<String> {
        self.host()
            .map(str::to_string)
            .or_else(|| self.peer_addr().map(|addr| addr.ip().to_string()))
    }

    fn resolve_hostname(&self) -> Result<String> {
        let ip: IpAddr = self.peer_addr().ok_or(Error::Closed)?.ip();
        dns_lookup::lookup_addr(&ip).map_err(|err| Error::Resolve {
            host: ip.to_string(),
            reason: format!("{err:?}"),
        })
    }

    fn send_osc<A: AsRef<str>, V: AsRef<[OscValue]>>(
        &self,
        messages: &[(A, V)],
        options: &SendOscOptions,
        framing: OscFraming,
    ) -> Result<usize> {
        let packets = osc_packets(messages, options)?;
        let mut codec = OscCodec::new(framing, usize::MAX);
        let mut wire = Buffer::new();
        for packet in &packets {
            codec.encode(packet, &mut wire)?;
        }
        let len = wire.len();
        self.write_buffer(wire)?;
        Ok(len)
    }

    fn close_peer(&self) -> bool {
        let was_open = !self.is_closed();
        self.close();
        was_open
    }
}
