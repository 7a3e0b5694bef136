//! The user callbacks of a connection, and how the loop runs them.
//!
//! Callbacks are `Fn + Send + Sync` behind an `Arc`: every connection of a
//! server (and, with a loop group, every loop) shares one set, and calling
//! one takes no lock, so connections never serialise on their callbacks
//! and a callback may wait for another connection's without deadlock.
//! State a callback keeps goes in the closure's own synchronised captures,
//! or per connection in the socket's user data.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use bytes::Bytes;

use super::{Event, Socket};
use crate::sync::panic_message;

pub(crate) type ReadCb = Arc<dyn Fn(&Socket, Bytes) + Send + Sync>;
pub(crate) type NotifyCb = Arc<dyn Fn(&Socket) + Send + Sync>;
pub(crate) type WriteCb = Arc<dyn Fn(&Socket) + Send + Sync>;
pub(crate) type EventCb = Arc<dyn Fn(&Socket, Event) + Send + Sync>;
pub(crate) type ConnectCb = Arc<dyn Fn(&Socket) + Send + Sync>;

/// The user callbacks of one connection.
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) read: Option<ReadCb>,
    pub(crate) notify: Option<NotifyCb>,
    pub(crate) write: Option<WriteCb>,
    pub(crate) event: Option<EventCb>,
    pub(crate) connect: Option<ConnectCb>,
}

impl Callbacks {
    /// Whether the connection's lifetime is explicit (it has callbacks that
    /// may act on it) rather than tied to the user's handles.
    pub(crate) fn keep_alive(&self) -> bool {
        self.read.is_some() || self.notify.is_some() || self.write.is_some() || self.event.is_some()
    }

    /// Whether any callback at all is set.
    pub(crate) fn any(&self) -> bool {
        self.keep_alive() || self.connect.is_some()
    }
}

/// Runs a user callback, catching a panic (returned as its message).
pub(super) fn invoke(call: impl FnOnce()) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(call)).map_err(|payload| panic_message(&*payload))
}
