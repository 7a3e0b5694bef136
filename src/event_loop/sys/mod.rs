//! The operating system's readiness poller, behind one small interface.
//!
//! On Linux evstream talks to epoll directly through rustix's safe API:
//! one `epoll_wait` per loop turn, an eventfd read only when another thread
//! actually woke the loop, and `EPOLLRDHUP`, which tells a peer's FIN apart
//! from an empty socket so a short read can end a read pass. (The `polling`
//! crate's epoll backend re-arms a timerfd and its notifier around every
//! wait — five system calls a turn — and does not report `EPOLLRDHUP`.)
//! Elsewhere the `polling` crate provides kqueue and friends.
//!
//! Sources are registered edge-triggered for both directions for their whole
//! life, so pausing reads or queueing output never costs a system call. The
//! price: readers and writers go on until `WouldBlock`, or until a short read
//! without a hang-up proves the kernel has nothing more.

#[cfg(all(target_os = "linux", not(feature = "polling-backend")))]
mod epoll;
#[cfg(all(target_os = "linux", not(feature = "polling-backend")))]
pub(crate) use epoll::{Events, Poller};

#[cfg(any(not(target_os = "linux"), feature = "polling-backend"))]
mod polling;
#[cfg(any(not(target_os = "linux"), feature = "polling-backend"))]
pub(crate) use self::polling::{Events, Poller};

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

/// What the poller reported for one source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Readiness {
    pub(crate) readable: bool,
    pub(crate) writable: bool,
    /// The peer shut down its write side or the connection hung up: a short
    /// read is then no proof that nothing more is pending (a FIN is).
    /// Backends that cannot tell report `true`, so readers go on until
    /// `WouldBlock`.
    pub(crate) read_closed: bool,
}

/// A source registered with a poller, removed from it when dropped — before
/// the last owner of the descriptor can close it.
pub(crate) struct Registration<S: AsFd> {
    poller: Arc<Poller>,
    source: Arc<S>,
}

impl<S: AsFd> Registration<S> {
    /// Registers `source` under `key`, edge-triggered, for both directions.
    pub(crate) fn new(poller: &Arc<Poller>, source: Arc<S>, key: usize) -> io::Result<Self> {
        poller.add(source.as_fd(), key)?;
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

impl<S: AsFd> Drop for Registration<S> {
    fn drop(&mut self) {
        // Failure means the descriptor is already gone from the poller;
        // nothing else can be done about it here.
        let _ = self.poller.delete(self.source.as_fd());
    }
}
