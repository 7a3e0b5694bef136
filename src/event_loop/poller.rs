//! The poller registration, the only place evstream needs `unsafe`.
//!
//! `polling::Poller::add` is `unsafe` because the poller must not outlive
//! the descriptor's registration: a descriptor closed while still registered
//! could, after the number is reused, deliver events for a different file.
//! [`Registration`] makes that impossible to get wrong elsewhere: it owns the
//! descriptor (as an `Arc`, so other threads may write to it) and deletes it
//! from the poller in `Drop`, before the last owner can close it.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use polling::{Event, PollMode, Poller};

/// A source registered with a poller, edge-triggered, for both readiness
/// directions.
///
/// Interest in both directions stays on for the whole life of the source,
/// so pausing reads or queueing output never costs an `epoll_ctl`; the
/// price is that readers and writers must go on until the kernel says
/// `WouldBlock` (or a short read/write proves it would), since the next
/// event only comes with the next change. Platforms whose poller has no
/// edge-triggered mode (those without epoll or kqueue) are refused.
pub(crate) struct Registration<S: AsFd + AsRawFd> {
    poller: Arc<Poller>,
    source: Arc<S>,
}

impl<S: AsFd + AsRawFd> Registration<S> {
    /// Registers `source` under `key` for readable and writable events.
    pub(crate) fn new(poller: &Arc<Poller>, source: Arc<S>, key: usize) -> io::Result<Self> {
        if !poller.supports_edge() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "evstream needs an edge-triggered poller (epoll or kqueue)",
            ));
        }
        // SAFETY: the returned `Registration` holds an `Arc` of the source, so
        // the descriptor cannot be closed while it is registered: `Drop`
        // deletes it from the poller first, and only then is that `Arc`
        // released. No other code in the crate registers descriptors.
        unsafe { poller.add_with_mode(source.as_raw_fd(), Event::all(key), PollMode::Edge)? };
        Ok(Registration {
            poller: poller.clone(),
            source,
        })
    }

    /// The registered source.
    pub(crate) fn source(&self) -> &Arc<S> {
        &self.source
    }
}

impl<S: AsFd + AsRawFd> Drop for Registration<S> {
    fn drop(&mut self) {
        // Failure means the descriptor is already gone from the poller;
        // nothing else can be done about it here.
        let _ = self.poller.delete(&*self.source);
    }
}
