//! The small lock-free protocols of a connection, each in a type of its
//! own so they can be model-checked with loom (`loom_tests.rs`): the
//! wakers waiting on one side, the request word other threads leave for the
//! loop, and the flag word (among them the output-pending flag that lets a
//! writable event skip the flush).

use std::task::Waker;

use crate::sync::AtomicU32;
use std::sync::atomic::Ordering;

/// The wakers waiting on one side of a connection, kept under that side's
/// lock. There is nearly always exactly one, so it lives inline:
/// registering it and taking it to wake allocate nothing (a `Vec` taken to
/// be woken outside the lock would leave an empty one behind, and the next
/// registration would allocate).
#[derive(Default)]
pub(crate) struct Wakers {
    first: Option<Waker>,
    /// Other waiters (rare): out of line, so an idle side stays small (a
    /// boxed `Vec` is one word, a `Vec` three).
    #[allow(clippy::box_collection)]
    more: Option<Box<Vec<Waker>>>,
}

impl Wakers {
    /// Registers `waker` unless an equivalent one is already waiting.
    pub(crate) fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(first) if first.will_wake(waker) => {}
            Some(_) => {
                let more = self.more.get_or_insert_with(Default::default);
                if !more.iter().any(|w| w.will_wake(waker)) {
                    more.push(waker.clone());
                }
            }
        }
    }

    /// Takes every waiting waker, to be woken once the lock is released.
    pub(crate) fn take(&mut self) -> Wakers {
        std::mem::take(self)
    }

    /// Wakes them all. Called with no lock held; a waker that panics is
    /// contained (logged) and the others are still woken.
    pub(crate) fn wake_all(self) {
        let Wakers { first, more } = self;
        for waker in first
            .into_iter()
            .chain(more.into_iter().flat_map(|more| *more))
        {
            crate::sync::run_contained("a waker", || waker.wake());
        }
    }
}

/// Bits other threads leave for the loop (close, flush, resume…). A thread
/// that sets bits in an empty word must wake the loop; one that finds bits
/// already there need not, since the loop takes the whole word when it
/// gets to the connection: a burst of requests costs one wake-up.
pub(crate) struct Requests(AtomicU32);

impl Requests {
    pub(crate) fn new() -> Self {
        Requests(AtomicU32::new(0))
    }

    /// Adds `bits`; returns whether the caller must wake the loop.
    pub(crate) fn add(&self, bits: u32) -> bool {
        self.0.fetch_or(bits, Ordering::AcqRel) == 0
    }

    /// Takes every pending bit (on the loop thread).
    pub(crate) fn take(&self) -> u32 {
        self.0.swap(0, Ordering::AcqRel)
    }
}

/// A word of flags shared by every thread (see the flags in `conn.rs`).
/// Changes are sequentially consistent: the output-pending protocol relies
/// on a writer's set being visible to the loop's load after the kernel
/// event the writer's system call caused.
pub(crate) struct Flags(AtomicU32);

impl Flags {
    pub(crate) fn new(bits: u32) -> Self {
        Flags(AtomicU32::new(bits))
    }

    /// Whether `flag` is set.
    pub(crate) fn get(&self, flag: u32) -> bool {
        self.0.load(Ordering::SeqCst) & flag != 0
    }

    /// Sets `flag`; returns whether it was set before.
    pub(crate) fn set(&self, flag: u32) -> bool {
        self.0.fetch_or(flag, Ordering::SeqCst) & flag != 0
    }

    /// Clears `flag`.
    pub(crate) fn clear(&self, flag: u32) {
        self.0.fetch_and(!flag, Ordering::SeqCst);
    }
}
