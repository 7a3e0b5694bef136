//! The portable backend, on the `polling` crate (kqueue, event ports,
//! and epoll when the `polling-backend` feature asks for it).
//!
//! `polling::Poller::add` is `unsafe`: a descriptor must be deleted from the
//! poller before it is closed. [`Poller::add`] passes that contract on to
//! its caller, [`Registration`](super::Registration), which owns the
//! descriptor and deletes it in `Drop` before releasing it.

use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

use polling::{Event, PollMode};

use super::Readiness;

pub(crate) struct Poller {
    inner: polling::Poller,
}

pub(crate) struct Events {
    inner: polling::Events,
}

impl Events {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity.max(1)).expect("non-zero");
        Events {
            inner: polling::Events::with_capacity(capacity),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.inner.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Readiness)> + '_ {
        self.inner.iter().map(|event| {
            (
                event.key as u64,
                Readiness {
                    readable: event.readable,
                    writable: event.writable,
                    // `polling` cannot report a half-close: read on until
                    // `WouldBlock`.
                    read_closed: true,
                },
            )
        })
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        let inner = polling::Poller::new()?;
        if !inner.supports_edge() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "evstream needs an edge-triggered poller (epoll or kqueue)",
            ));
        }
        Ok(Poller { inner })
    }

    /// Registers `fd` under `token`, edge-triggered, for both directions.
    /// (On a 32-bit target the token keeps only the source's slot, not its
    /// generation: a stale event then reaches a newer source as a spurious
    /// wake-up, which sources tolerate.)
    ///
    /// # Safety
    ///
    /// The caller must delete `fd` from the poller before it is closed.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        // SAFETY: our caller holds `polling`'s invariant (see `# Safety`).
        unsafe {
            self.inner
                .add_with_mode(fd.as_raw_fd(), Event::all(token as usize), PollMode::Edge)
        }
    }

    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        self.inner.delete(fd)
    }

    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        self.inner.wait(&mut events.inner, timeout).map(|_| ())
    }

    pub(crate) fn notify(&self) -> io::Result<()> {
        self.inner.notify()
    }
}
