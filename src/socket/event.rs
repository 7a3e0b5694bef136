//! The events a connection reports to its `event_cb`.

use crate::error::{Direction, Error};

/// Something that happened to a connection, delivered to its `event_cb` on
/// the loop thread.
///
/// Every connection gets exactly one [`Event::Closed`], last, when the loop
/// releases its socket, whatever the reason.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// The connection is established (also passed to `connect_cb`).
    Connected,
    /// The peer shut down its write side. Buffered input stays readable and
    /// this side may go on writing until it closes.
    Eof,
    /// An idle timeout expired while that direction was waiting. The
    /// connection stays open; close it from the callback if that is the
    /// policy you want. The timeout is re-armed by the next progress.
    Timeout(Direction),
    /// The connection failed. The socket is released right after this event;
    /// bytes already in the input buffer stay readable.
    Error(Error),
    /// The loop released the socket. No callback runs for this connection
    /// after this one.
    Closed,
}

impl Event {
    /// The error carried by [`Event::Error`], if this is one.
    pub fn error(&self) -> Option<&Error> {
        match self {
            Event::Error(err) => Some(err),
            _ => None,
        }
    }
}
