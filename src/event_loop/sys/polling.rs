//! The portable backend, on the `polling` crate (kqueue, event ports,
//! and epoll when the `polling-backend` feature asks for it).
//!
//! The one place evstream needs `unsafe`: `polling::Poller::add` requires
//! that a descriptor be deleted from the poller before it is closed, which
//! [`Registration`](super::Registration) guarantees by owning the descriptor
//! and deleting it in `Drop` before releasing it.
#![allow(unsafe_code)]

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

    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, Readiness)> + '_ {
        self.inner.iter().map(|event| {
            (
                event.key,
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

    pub(crate) fn add(&self, fd: BorrowedFd<'_>, key: usize) -> io::Result<()> {
        // SAFETY: only `Registration::new` calls this, and the registration
        // owns the descriptor and deletes it from the poller in `Drop`
        // before the descriptor can be closed.
        unsafe {
            self.inner
                .add_with_mode(fd.as_raw_fd(), Event::all(key), PollMode::Edge)
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
