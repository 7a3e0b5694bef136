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

use bytes::BytesMut;

/// The poller's wake-up latch: a burst of notifications from other threads
/// costs one eventfd write. `notify` signals only if the latch was open; the
/// loop, woken, drains the eventfd and *then* reopens the latch (reopening
/// first could let a write be drained while the latch stays closed, and no
/// notification would ever be written again). Model-checked with loom.
#[cfg_attr(
    any(not(target_os = "linux"), feature = "polling-backend"),
    allow(dead_code)
)]
pub(crate) struct NotifyLatch {
    notified: crate::sync::AtomicBool,
}

#[cfg_attr(
    any(not(target_os = "linux"), feature = "polling-backend"),
    allow(dead_code)
)]
impl NotifyLatch {
    pub(crate) fn new() -> Self {
        NotifyLatch {
            notified: crate::sync::AtomicBool::new(false),
        }
    }

    /// Closes the latch; returns whether the caller must signal (it was
    /// open).
    pub(crate) fn close(&self) -> bool {
        !self
            .notified
            .swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// Reopens the latch, after the signal has been consumed. (A swap, not
    /// a store: the same cost on x86, and loom models a store racing a
    /// swap wrongly, tokio-rs/loom#254.)
    pub(crate) fn reopen(&self) {
        self.notified
            .swap(false, std::sync::atomic::Ordering::SeqCst);
    }
}

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
    /// Registers `source` under `token`, edge-triggered, for both
    /// directions.
    #[allow(unsafe_code)]
    pub(crate) fn new(poller: &Arc<Poller>, source: Arc<S>, token: u64) -> io::Result<Self> {
        // SAFETY: the registration owns (a share of) the descriptor, and its
        // `Drop` deletes it from the poller before giving that share up, so
        // the descriptor cannot be closed while still registered.
        unsafe { poller.add(source.as_fd(), token)? };
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

/// Reads from `stream` into the spare capacity of `block`, at most `max`
/// bytes, and extends `block` by what was read. Returns that count.
///
/// The spare capacity is not zeroed first: zero-filling every read block
/// cost about a tenth of the receiver's CPU in the bulk benchmark and made
/// every idle connection's block resident.
#[allow(unsafe_code)]
pub(crate) fn read_into_spare(
    stream: impl AsFd,
    block: &mut BytesMut,
    max: usize,
) -> io::Result<usize> {
    let spare = block.spare_capacity_mut();
    let len = spare.len().min(max);
    let (filled, _) = rustix::io::read(stream, &mut spare[..len])?;
    let n = filled.len();
    // SAFETY: `rustix::io::read` initialised the first `n` bytes of the
    // spare capacity, which begins right after `block.len()`, and `n` is at
    // most that capacity.
    unsafe { block.set_len(block.len() + n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn read_into_spare_appends_exactly_what_was_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut writer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (reader, _) = listener.accept().unwrap();
        writer.write_all(b"hello world").unwrap();
        let mut block = BytesMut::with_capacity(64);
        block.extend_from_slice(b">");
        let mut got = 0;
        while got < 5 {
            got += read_into_spare(&reader, &mut block, 5 - got).unwrap();
        }
        assert_eq!(&block[..], b">hello");
        let mut small = BytesMut::with_capacity(3);
        let n = read_into_spare(&reader, &mut small, 100).unwrap();
        assert!(n <= small.capacity());
        assert_eq!(&small[..], &b" world"[..n]);
    }
}

/// Model check (loom) of the wake-up latch: a command posted from another
/// thread is never left in the queue with no signal to come for it.
#[cfg(all(test, evstream_loom))]
mod loom_tests {
    use super::NotifyLatch;
    use loom::sync::atomic::{AtomicBool, AtomicU64};
    use loom::sync::{Arc, Mutex};
    use loom::thread;
    use std::sync::atomic::Ordering::SeqCst;

    struct Loop {
        latch: NotifyLatch,
        // The eventfd's counter.
        eventfd: AtomicU64,
        commands: Mutex<Vec<u32>>,
        has_commands: AtomicBool,
    }

    impl Loop {
        // `Shared::post` then `Poller::notify`.
        fn post(&self, command: u32) {
            self.commands.lock().unwrap().push(command);
            // `store` in `Shared::post`; a swap here because loom models a
            // store racing a swap wrongly (tokio-rs/loom#254).
            self.has_commands.swap(true, SeqCst);
            if self.latch.close() {
                self.eventfd.fetch_add(1, SeqCst);
            }
        }

        // One turn: `Poller::wait` woken by the eventfd (drain, then reopen)
        // and `run_commands`.
        fn turn(&self, done: &mut Vec<u32>) {
            if self.eventfd.swap(0, SeqCst) > 0 {
                self.latch.reopen();
            }
            if self.has_commands.swap(false, SeqCst) {
                done.append(&mut self.commands.lock().unwrap());
            }
        }
    }

    #[test]
    fn loom_a_posted_command_always_has_a_wake_up_to_come() {
        loom::model(|| {
            let ev = Arc::new(Loop {
                latch: NotifyLatch::new(),
                eventfd: AtomicU64::new(0),
                commands: Mutex::new(Vec::new()),
                has_commands: AtomicBool::new(false),
            });
            let posters: Vec<_> = (1..=2)
                .map(|command| {
                    let ev = ev.clone();
                    thread::spawn(move || ev.post(command))
                })
                .collect();
            let mut done = Vec::new();
            ev.turn(&mut done);
            for poster in posters {
                poster.join().unwrap();
            }
            // What is still queued must have a signal pending, or the loop
            // would sleep on it for ever.
            let queued = !ev.commands.lock().unwrap().is_empty();
            assert!(
                !queued || ev.eventfd.load(SeqCst) > 0,
                "a command is queued with no wake-up to come"
            );
            ev.turn(&mut done);
            done.sort();
            assert_eq!(done, [1, 2]);
        });
    }
}
