//! The loop's timer heap.
//!
//! Timers are never removed from the heap eagerly: cancelling a user timer
//! removes its callback, and a connection's idle timer re-checks its own
//! deadline when it pops. That keeps "progress resets the idle timeout" a
//! single store of an `Instant` on the hot path instead of a heap operation.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::Instant;

/// Who a timer is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimerTarget {
    /// A source in the loop's slab, with a token the source chose.
    Source { key: usize, token: u64 },
    /// A callback registered with `LoopHandle::delay`.
    User(u64),
}

#[derive(Debug)]
struct Entry {
    deadline: Instant,
    // Breaks ties so timers with the same deadline fire in the order set.
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

/// A min-heap of deadlines.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

impl TimerHeap {
    pub(crate) fn push(&mut self, deadline: Instant, target: TimerTarget) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            deadline,
            seq: self.seq,
            target,
        }));
    }

    /// The earliest deadline, if any timer is set.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.deadline)
    }

    /// Removes and returns the earliest timer if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerTarget> {
        match self.heap.peek() {
            Some(Reverse(entry)) if entry.deadline <= now => {
                self.heap.pop().map(|Reverse(entry)| entry.target)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
