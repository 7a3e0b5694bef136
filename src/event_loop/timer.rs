//! The loop's timer heap.
//!
//! A timer can be cancelled: its id goes into a set of cancelled ids and the
//! entry is skipped (and dropped) when it reaches the top of the heap, so
//! cancelling costs no heap operation. Connections' idle timers are not
//! cancelled on progress either: they re-check their own deadline when they
//! fire, which keeps "progress resets the idle timeout" a single store of an
//! `Instant` on the hot path.
//!
//! A deadline that does not fit in an `Instant` (a `Duration::MAX` timeout)
//! means "never": [`deadline_after`] returns `None` and no timer is set.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashSet};
use std::time::{Duration, Instant};

use super::SourceId;

/// Who a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerTarget {
    /// A source in the loop's slab, with a token the source chose.
    Source { id: SourceId, token: u64 },
    /// A callback registered with `LoopHandle::delay`.
    User(u64),
    /// A future of `time` (sleep, timeout, interval) to wake.
    Waker(u64),
}

/// Cancelled entries are swept out of the heap once there are at least
/// this many and they outnumber the live ones.
const COMPACT_AT: usize = 64;

/// Identifies one timer of a heap, to cancel it (never zero, so an
/// `Option<TimerId>` is 8 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TimerId(std::num::NonZeroU64);

/// `now + after`, or `None` when that is too far to represent: "never".
pub(crate) fn deadline_after(now: Instant, after: Duration) -> Option<Instant> {
    now.checked_add(after)
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    // Breaks ties so timers with the same deadline fire in the order set;
    // also the timer's id.
    seq: u64,
    target: TimerTarget,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// A min-heap of deadlines with lazy cancellation.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Ids of cancelled timers still in the heap.
    cancelled: HashSet<u64>,
    seq: u64,
}

impl TimerHeap {
    pub(crate) fn push(&mut self, deadline: Instant, target: TimerTarget) -> TimerId {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            deadline,
            seq: self.seq,
            target,
        }));
        TimerId(std::num::NonZeroU64::new(self.seq).expect("sequence numbers start at 1"))
    }

    /// Cancels a timer that has not fired yet (a fired or unknown id is
    /// ignored).
    pub(crate) fn cancel(&mut self, id: TimerId) {
        self.cancelled.insert(id.0.get());
        if self.cancelled.len() > self.heap.len() {
            // Some ids were of timers that had already fired: forget them.
            let live: HashSet<u64> = self.heap.iter().map(|Reverse(e)| e.seq).collect();
            self.cancelled.retain(|seq| live.contains(seq));
        } else if self.cancelled.len() >= COMPACT_AT && self.cancelled.len() * 2 > self.heap.len() {
            // Mostly cancelled entries (timeouts that did not expire, say):
            // rebuild without them, so the heap stays as large as the
            // live timers, not as all those set in the longest timeout.
            let cancelled = std::mem::take(&mut self.cancelled);
            let heap = std::mem::take(&mut self.heap);
            self.heap = heap
                .into_iter()
                .filter(|Reverse(e)| !cancelled.contains(&e.seq))
                .collect();
        }
        self.drop_cancelled_top();
    }

    fn drop_cancelled_top(&mut self) {
        while let Some(Reverse(top)) = self.heap.peek() {
            if !self.cancelled.remove(&top.seq) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.is_empty() {
            // Ids of timers that had already fired when cancelled.
            self.cancelled.clear();
        }
    }

    /// The earliest deadline of a live timer, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        // Cancelled entries never stay on top (see `drop_cancelled_top`).
        self.heap.peek().map(|Reverse(entry)| entry.deadline)
    }

    /// Removes and returns the earliest live timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerTarget> {
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.deadline <= now => {
                let target = self.heap.pop().map(|Reverse(entry)| entry.target);
                self.drop_cancelled_top();
                target
            }
            _ => None,
        }
    }

    /// How many timers are in the heap, cancelled ones not yet dropped
    /// included.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_then_insertion_order() {
        let start = Instant::now();
        let mut heap = TimerHeap::default();
        heap.push(start + Duration::from_millis(20), TimerTarget::User(1));
        heap.push(start + Duration::from_millis(10), TimerTarget::User(2));
        heap.push(start + Duration::from_millis(10), TimerTarget::User(3));
        assert_eq!(
            heap.next_deadline(),
            Some(start + Duration::from_millis(10))
        );
        assert_eq!(heap.pop_due(start), None);
        let now = start + Duration::from_millis(15);
        assert_eq!(heap.pop_due(now), Some(TimerTarget::User(2)));
        assert_eq!(heap.pop_due(now), Some(TimerTarget::User(3)));
        assert_eq!(heap.pop_due(now), None);
        assert_eq!(
            heap.pop_due(start + Duration::from_millis(20)),
            Some(TimerTarget::User(1))
        );
        assert_eq!(heap.next_deadline(), None);
    }

    #[test]
    fn cancelled_timers_never_fire_and_leave_the_heap() {
        let start = Instant::now();
        let mut heap = TimerHeap::default();
        let first = heap.push(start + Duration::from_millis(10), TimerTarget::User(1));
        let second = heap.push(start + Duration::from_millis(20), TimerTarget::User(2));
        heap.push(start + Duration::from_millis(30), TimerTarget::User(3));
        heap.cancel(second);
        heap.cancel(first);
        // The cancelled head is gone at once: the loop does not wake for it.
        assert_eq!(
            heap.next_deadline(),
            Some(start + Duration::from_millis(30))
        );
        assert_eq!(heap.len(), 1);
        let late = start + Duration::from_secs(1);
        assert_eq!(heap.pop_due(late), Some(TimerTarget::User(3)));
        assert_eq!(heap.pop_due(late), None);
        // Cancelling a timer that already fired is harmless.
        heap.cancel(first);
        assert_eq!(heap.next_deadline(), None);
        assert!(heap.cancelled.is_empty());
    }

    #[test]
    fn cancelled_entries_do_not_pile_up() {
        let start = Instant::now();
        let mut heap = TimerHeap::default();
        let keep = heap.push(start + Duration::from_secs(1), TimerTarget::User(0));
        for i in 0..10_000u64 {
            // A long timeout set and cancelled, over and over.
            let id = heap.push(start + Duration::from_secs(60), TimerTarget::Waker(i));
            heap.cancel(id);
        }
        assert!(heap.len() < 2 * COMPACT_AT, "{} entries left", heap.len());
        assert_eq!(
            heap.pop_due(start + Duration::from_secs(1)),
            Some(TimerTarget::User(0))
        );
        heap.cancel(keep);
        assert_eq!(heap.pop_due(start + Duration::from_secs(3600)), None);
    }

    #[test]
    fn a_deadline_beyond_what_an_instant_holds_is_never() {
        let now = Instant::now();
        assert_eq!(deadline_after(now, Duration::MAX), None);
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            Some(now + Duration::from_secs(1))
        );
    }
}
