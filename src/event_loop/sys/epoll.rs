//! epoll through rustix (Linux).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{eventfd, EventfdFlags, Timespec};

use super::{NotifyLatch, Readiness};

/// The key of the eventfd that wakes the loop.
const NOTIFY_KEY: u64 = u64::MAX;

pub(crate) struct Poller {
    epoll: OwnedFd,
    wake: OwnedFd,
    /// Closed by `notify` until the loop has consumed the wake-up, so a
    /// burst of notifications costs one `write`.
    latch: NotifyLatch,
}

/// How many events one `epoll_wait` returns at most.
const BATCH: usize = 256;

/// The events of one wait, as (key, flags): rustix's event type may carry a
/// pointer and is not `Send`, and a loop must be movable to its thread.
pub(crate) struct Events {
    list: Vec<(u64, EventFlags)>,
}

impl Events {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Events {
            list: Vec::with_capacity(capacity.min(BATCH)),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.list.clear();
    }

    /// The readiness of each source, by key.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, Readiness)> + '_ {
        self.list.iter().filter_map(|&(key, flags)| {
            if key == NOTIFY_KEY {
                return None;
            }
            let failed = flags.intersects(EventFlags::ERR | EventFlags::HUP);
            Some((
                key,
                Readiness {
                    readable: failed
                        || flags.intersects(EventFlags::IN | EventFlags::PRI | EventFlags::RDHUP),
                    writable: failed || flags.contains(EventFlags::OUT),
                    read_closed: failed || flags.contains(EventFlags::RDHUP),
                },
            ))
        })
    }
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let wake = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        // Level-triggered: it stays ready until the loop reads it.
        epoll::add(
            &epoll,
            &wake,
            EventData::new_u64(NOTIFY_KEY),
            EventFlags::IN,
        )?;
        Ok(Poller {
            epoll,
            wake,
            latch: NotifyLatch::new(),
        })
    }

    /// Registers `fd` under `token`, edge-triggered, for both directions.
    ///
    /// # Safety
    ///
    /// The caller must delete `fd` from the poller before it is closed (the
    /// contract of `polling::Poller::add`, kept the same for both backends so
    /// [`Registration`](super::Registration) is the one place that holds it).
    /// epoll itself forgets a closed descriptor, but not one that was
    /// duplicated, and events of a reused descriptor number would reach the
    /// wrong source.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        let flags = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        epoll::add(&self.epoll, fd, EventData::new_u64(token), flags)?;
        Ok(())
    }

    pub(crate) fn delete(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        epoll::delete(&self.epoll, fd)?;
        Ok(())
    }

    pub(crate) fn wait(&self, events: &mut Events, timeout: Option<Duration>) -> io::Result<()> {
        events.clear();
        // Round up to whole milliseconds (what epoll_wait takes), so a
        // timer is never woken for just before its deadline.
        // (64-bit arithmetic: this runs on every turn.)
        let timeout = timeout.map(|t| {
            let whole_millis = u64::from(t.subsec_nanos().div_ceil(1_000_000));
            let millis = t
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(whole_millis)
                .min(i32::MAX as u64);
            Timespec {
                tv_sec: (millis / 1000) as _,
                tv_nsec: ((millis % 1000) * 1_000_000) as _,
            }
        });
        let mut buffer = [MaybeUninit::<epoll::Event>::uninit(); BATCH];
        let ready = loop {
            match epoll::wait(&self.epoll, &mut buffer, timeout.as_ref()) {
                Ok((ready, _)) => break ready,
                Err(rustix::io::Errno::INTR) => continue,
                Err(err) => return Err(err.into()),
            }
        };
        events
            .list
            .extend(ready.iter().map(|event| (event.data.u64(), event.flags)));
        if events.list.iter().any(|&(key, _)| key == NOTIFY_KEY) {
            // Drain first, then reset: a notify between the two sees `true`
            // and writes nothing, but its command is already queued and
            // runs on the coming turn; one after the reset writes again.
            // (Resetting first could let a write be drained while the flag
            // stays set, and no notification would ever be written again.)
            let mut counter = [0u8; 8];
            let _ = rustix::io::read(&self.wake, &mut counter);
            self.latch.reopen();
        }
        Ok(())
    }

    pub(crate) fn notify(&self) -> io::Result<()> {
        if self.latch.close() {
            match rustix::io::write(&self.wake, &1u64.to_ne_bytes()) {
                // The counter is saturated: the loop is woken anyway.
                Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }
}

impl AsFd for Poller {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}
