//! The loop's state, owned by the thread that runs it: the sources (with
//! generational ids), the timer heap, queued work, and one turn of the loop.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use slab::Slab;

use super::blocks::ReadBlocks;
use super::sys::{Events, Poller, Readiness};
use super::time::WakerTimer;
use super::timer::{TimerHeap, TimerId, TimerTarget};
use super::{Command, LoopHandle, Shared, TaskGuard};
use crate::error::Error;
use crate::sync::{lock, panic_message, run_contained};

/// What a source tells the loop after handling an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep the source registered.
    Keep,
    /// The source is finished: drop it (which deregisters its descriptor).
    Remove,
}

/// Identifies a source of one loop: its slot in the slab and that slot's
/// generation, so a wake, a timer or an event meant for a source that is
/// gone can never reach a newer one in the same slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SourceId {
    index: u32,
    generation: u32,
}

impl SourceId {
    /// The id as a poller token.
    pub(crate) fn token(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// The id a poller token stands for.
    pub(crate) fn from_token(token: u64) -> SourceId {
        SourceId {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

/// Something the loop drives: a connection or a listening server.
///
/// Sources live in the loop's slab and run only on the loop thread. Other
/// threads reach one by changing state it shares with them and then asking
/// the loop to [`wake`](LoopHandle::wake_source) it.
pub(crate) trait Source: Send {
    /// The poller reported readiness.
    fn on_ready(&mut self, core: &mut Core, id: SourceId, ready: Readiness) -> Step;
    /// Another thread (or this one) asked the source to look at its shared
    /// state again. Spurious wakes are allowed and must be harmless.
    fn on_wake(&mut self, core: &mut Core, id: SourceId) -> Step;
    /// A timer the source set has expired (cancelled timers never fire;
    /// timers of an earlier source in the same slot never reach this one).
    fn on_timer(&mut self, core: &mut Core, id: SourceId, token: u64) -> Step;
    /// The loop drops the source without its asking: one of its handlers
    /// panicked, or the loop itself is going away. Whoever waits on the
    /// source must see `reason`.
    fn abandon(&mut self, reason: Error);
    /// The loop is draining ([`LoopHandle::drain`]): finish gracefully.
    /// A server stops accepting and goes; a connection closes as
    /// `Socket::close` does (flush, FIN) and goes once that is done.
    fn drain(&mut self, core: &mut Core, id: SourceId) -> Step;
    /// Whether the source is a connection: counted by
    /// [`LoopHandle::connection_count`].
    fn is_connection(&self) -> bool {
        false
    }
}

struct Slot {
    generation: u32,
    /// `None` while the source runs (it is taken out) or while reserved.
    source: Option<Box<dyn Source>>,
    /// The source is a connection (counted in `Shared::connections`).
    connection: bool,
}

/// The loop's state, owned by the thread that runs it.
pub(crate) struct Core {
    pub(super) shared: Arc<Shared>,
    sources: Slab<Slot>,
    next_generation: u32,
    timers: TimerHeap,
    pub(super) user_timers: HashMap<u64, Box<dyn FnOnce() + Send>>,
    /// Timers of `time` (sleep, timeout, interval): each wakes a waker.
    waker_timers: HashMap<u64, (TimerId, Arc<WakerTimer>)>,
    // Sources to wake on this turn, from the loop thread itself.
    pending_wakes: VecDeque<SourceId>,
    now: Cell<Option<Instant>>,
    events: Events,
    ready: Vec<(u64, Readiness)>,
    pub(super) commands: VecDeque<Command>,
    // Lent to one connection at a time for the chunks one event reads, so
    // idle connections do not each keep a list's allocation.
    chunk_list: Vec<Bytes>,
    /// What every connection of the loop reads into.
    read_blocks: ReadBlocks,
    /// The loop is draining (`LoopHandle::drain`): every source is asked
    /// to finish, and the loop stops once none is left.
    draining: bool,
    /// Sources filled while draining, to be asked to finish too.
    to_drain: Vec<SourceId>,
}

impl Core {
    pub(super) fn new(shared: Arc<Shared>) -> Core {
        Core {
            shared,
            sources: Slab::new(),
            next_generation: 0,
            timers: TimerHeap::default(),
            user_timers: HashMap::new(),
            waker_timers: HashMap::new(),
            pending_wakes: VecDeque::new(),
            now: Cell::new(None),
            events: Events::with_capacity(1024),
            ready: Vec::new(),
            commands: VecDeque::new(),
            chunk_list: Vec::new(),
            read_blocks: ReadBlocks::default(),
            draining: false,
            to_drain: Vec::new(),
        }
    }

    /// The loop's read blocks.
    pub(crate) fn read_blocks(&mut self) -> &mut ReadBlocks {
        &mut self.read_blocks
    }

    /// Lends the loop's list for the chunks one event reads (empty).
    pub(crate) fn take_chunk_list(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.chunk_list)
    }

    /// Takes a list back after use, keeping the larger allocation.
    pub(crate) fn return_chunk_list(&mut self, mut list: Vec<Bytes>) {
        if list.capacity() > self.chunk_list.capacity() {
            list.clear();
            self.chunk_list = list;
        }
    }

    /// The loop's clock: read at most once per turn after waiting, and only
    /// if someone asks (a turn with no timers and no timeouts reads none).
    pub(crate) fn now(&self) -> Instant {
        match self.now.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.now.set(Some(now));
                now
            }
        }
    }

    pub(crate) fn poller(&self) -> &Arc<Poller> {
        &self.shared.poller
    }

    pub(crate) fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.shared.clone(),
        }
    }

    /// Reserves a slot for a source that is about to be built.
    pub(crate) fn reserve(&mut self) -> SourceId {
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let index = self.sources.insert(Slot {
            generation,
            source: None,
            connection: false,
        });
        SourceId {
            index: u32::try_from(index).expect("fewer than 2^32 sources"),
            generation,
        }
    }

    fn slot(&mut self, id: SourceId) -> Option<&mut Slot> {
        self.sources
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
    }

    /// Puts a source into a reserved slot and wakes it on this turn.
    pub(crate) fn fill(&mut self, id: SourceId, source: Box<dyn Source>) {
        let draining = self.draining;
        let Some(slot) = self.slot(id) else {
            return;
        };
        let connection = source.is_connection();
        slot.connection = connection;
        slot.source = Some(source);
        if connection {
            self.shared.connections.fetch_add(1, Ordering::Relaxed);
        }
        self.pending_wakes.push_back(id);
        if draining {
            // Made on a draining loop (a connect posted before the drain):
            // it finishes like the others.
            self.to_drain.push(id);
        }
    }

    /// Removes the source in slot `index` from the slab, keeping the
    /// connection count.
    fn remove_slot(&mut self, index: usize) {
        if self.sources.remove(index).connection {
            self.shared.connections.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Starts draining: every source is asked to finish gracefully
    /// (servers stop accepting, connections close as `close()` does), and
    /// once none is left the loop stops (see `LoopHandle::drain`).
    pub(super) fn begin_drain(&mut self) {
        if self.draining {
            return;
        }
        self.draining = true;
        self.shared.draining.store(true, Ordering::Release);
        let ids: Vec<SourceId> = self
            .sources
            .iter()
            .filter(|(_, slot)| slot.source.is_some())
            .map(|(index, slot)| SourceId {
                index: index as u32,
                generation: slot.generation,
            })
            .collect();
        for id in ids {
            self.dispatch(id, |s, core| s.drain(core, id));
        }
    }

    /// Releases a reserved slot that will not be filled.
    pub(crate) fn unreserve(&mut self, id: SourceId) {
        if self.slot(id).is_some_and(|slot| slot.source.is_none()) {
            self.sources.remove(id.index as usize);
        }
    }

    /// Calls `on_timer(token)` of the source `id` at `deadline`.
    pub(crate) fn add_timer(&mut self, deadline: Instant, id: SourceId, token: u64) -> TimerId {
        self.timers
            .push(deadline, TimerTarget::Source { id, token })
    }

    /// Calls `on_timer(token)` of the source `id` once `after` has passed
    /// from now; a delay too long to represent sets no timer ("never").
    pub(crate) fn add_timer_after(
        &mut self,
        after: Duration,
        id: SourceId,
        token: u64,
    ) -> Option<TimerId> {
        super::timer::deadline_after(self.now(), after)
            .map(|deadline| self.add_timer(deadline, id, token))
    }

    /// Cancels a timer that has not fired.
    pub(crate) fn cancel_timer(&mut self, timer: TimerId) {
        self.timers.cancel(timer);
    }

    pub(super) fn add_user_timer(
        &mut self,
        after: Duration,
        id: u64,
        callback: Box<dyn FnOnce() + Send>,
    ) {
        // A delay beyond what an `Instant` holds never fires.
        if let Some(deadline) = super::timer::deadline_after(self.now(), after) {
            self.user_timers.insert(id, callback);
            self.timers.push(deadline, TimerTarget::User(id));
        }
    }

    /// Wakes `timer`'s waker at `deadline` (a timer of `time`), unless it
    /// is cancelled first (by `id`).
    pub(super) fn add_waker_timer(&mut self, id: u64, deadline: Instant, timer: Arc<WakerTimer>) {
        let timer_id = self.timers.push(deadline, TimerTarget::Waker(id));
        self.waker_timers.insert(id, (timer_id, timer));
    }

    /// Calls `on_wake` of the source `id` later on this turn.
    pub(crate) fn wake_later(&mut self, id: SourceId) {
        self.pending_wakes.push_back(id);
    }

    /// Runs one handler of the source `id`. A panic in it is contained: the
    /// source is abandoned (its waiters see the error) and the loop and
    /// every other source go on.
    fn dispatch(&mut self, id: SourceId, f: impl FnOnce(&mut dyn Source, &mut Core) -> Step) {
        let Some(mut source) = self.slot(id).and_then(|slot| slot.source.take()) else {
            return;
        };
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *source, self)));
        match step {
            Ok(Step::Keep) => {
                if let Some(slot) = self.slot(id) {
                    slot.source = Some(source);
                }
            }
            Ok(Step::Remove) => {
                self.remove_slot(id.index as usize);
                run_contained("dropping a finished source", move || drop(source));
            }
            Err(payload) => {
                let message = panic_message(&*payload);
                log::error!("evstream: the loop's handling of a source panicked: {message}");
                self.remove_slot(id.index as usize);
                run_contained("abandoning a source", move || {
                    source.abandon(Error::Internal(message));
                    drop(source);
                });
            }
        }
    }

    pub(super) fn run_commands(&mut self) {
        // Take the whole queue at once so the lock is not held while
        // commands run (they may post more). The flag is cleared before the
        // queue is taken: a command posted in between is either taken now
        // or sets the flag again.
        if self.shared.has_commands.swap(false, Ordering::AcqRel) {
            std::mem::swap(&mut self.commands, &mut *lock(&self.shared.commands));
        }
        while let Some(command) = self.commands.pop_front() {
            match command {
                Command::Wake(id) => self.dispatch(id, |s, core| s.on_wake(core, id)),
                Command::Call(f) => {
                    run_contained("a call on the loop", || f(self));
                }
                Command::CancelTimer(id) => {
                    self.user_timers.remove(&id);
                }
                Command::CancelWakerTimer(id) => {
                    if let Some((timer, _)) = self.waker_timers.remove(&id) {
                        self.timers.cancel(timer);
                    }
                }
                // Panics in the task are caught inside it (see `spawn`).
                Command::Run(runnable) => {
                    let _task = TaskGuard::enter();
                    runnable.run();
                }
            }
        }
        // Only the wakes queued before this pass: a source that asks to run
        // again (a reader with more to read) waits for the next pass, after
        // the poller, the timers and the other sources have had their turn.
        for _ in 0..self.pending_wakes.len() {
            let Some(id) = self.pending_wakes.pop_front() else {
                break;
            };
            self.dispatch(id, |s, core| s.on_wake(core, id));
        }
        if !self.to_drain.is_empty() {
            for id in std::mem::take(&mut self.to_drain) {
                self.dispatch(id, |s, core| s.drain(core, id));
            }
        }
    }

    fn run_timers(&mut self) {
        if self.timers.next_deadline().is_none() {
            return;
        }
        while let Some(target) = self.timers.pop_due(self.now()) {
            match target {
                TimerTarget::Source { id, token } => {
                    self.dispatch(id, |s, core| s.on_timer(core, id, token))
                }
                TimerTarget::User(id) => {
                    if let Some(callback) = self.user_timers.remove(&id) {
                        run_contained("a delay() callback", callback);
                    }
                }
                TimerTarget::Waker(id) => {
                    if let Some((_, timer)) = self.waker_timers.remove(&id) {
                        timer.fire();
                    }
                }
            }
        }
    }

    fn has_queued_work(&self) -> bool {
        !self.pending_wakes.is_empty() || self.shared.has_commands.load(Ordering::Acquire)
    }

    /// True when nothing is left that could ever produce an event.
    pub(super) fn is_idle(&self) -> bool {
        self.sources.is_empty()
            && self.shared.live_tasks.load(Ordering::Acquire) == 0
            && self.user_timers.is_empty()
            && self.waker_timers.is_empty()
            && !self.has_queued_work()
    }

    /// How many sources (connections, servers) the loop drives.
    pub(super) fn source_count(&self) -> usize {
        self.sources.len()
    }

    /// One turn: run queued work and due timers, then wait for I/O (never
    /// past the next timer, not at all when `must_not_sleep` says so just
    /// before waiting) and dispatch it.
    pub(super) fn turn(&mut self, must_not_sleep: &dyn Fn() -> bool) -> io::Result<()> {
        self.run_commands();
        self.now.set(None);
        self.run_timers();
        self.run_commands();
        if self.draining && self.sources.is_empty() {
            // Drained: every server and connection has finished.
            self.shared.stop.store(true, Ordering::SeqCst);
        }

        // Nothing left that could wake us (the last timer just fired, say):
        // sleeping would be forever, so only poll; `run` then sees it idle.
        let timeout = if must_not_sleep()
            || self.has_queued_work()
            || self.is_idle()
            || self.shared.stop.load(Ordering::Relaxed)
        {
            Some(Duration::ZERO)
        } else {
            // A fresh reading, not this turn's cached one: the callbacks run
            // since may have taken long enough for a timer to fall due.
            self.timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()))
        };
        self.shared.poller.wait(&mut self.events, timeout)?;
        self.now.set(None);

        self.ready.clear();
        self.ready.extend(self.events.iter());
        for i in 0..self.ready.len() {
            let (token, ready) = self.ready[i];
            let id = SourceId::from_token(token);
            self.dispatch(id, |s, core| s.on_ready(core, id, ready));
        }
        Ok(())
    }

    /// The loop is going away: nothing will run again. Queued calls still
    /// run (a connection being set up is created, so that it can fail), and
    /// then every source and task is abandoned with [`Error::LoopStopped`],
    /// so nothing waits for ever on a loop that is gone.
    pub(super) fn shut_down(&mut self) {
        let queued = {
            let mut commands = lock(&self.shared.commands);
            self.shared.dead.store(true, Ordering::Release);
            std::mem::take(&mut *commands)
        };
        self.commands.extend(queued);
        while let Some(command) = self.commands.pop_front() {
            if let Command::Call(f) = command {
                run_contained("a call on a stopping loop", || f(self));
            }
            // Dropping a `Run` cancels its task: its handle sees the end.
        }
        self.pending_wakes.clear();
        self.user_timers.clear();
        // Their futures learn that the loop is gone, rather than wait.
        for (_, (_, timer)) in self.waker_timers.drain() {
            timer.abandon();
        }
        let sources: Vec<Box<dyn Source>> = self
            .sources
            .drain()
            .filter_map(|slot| slot.source)
            .collect();
        self.shared.connections.store(0, Ordering::Relaxed);
        for mut source in sources {
            run_contained("abandoning a source", move || {
                source.abandon(Error::LoopStopped);
                drop(source);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event_loop::EventLoop;
    use std::sync::atomic::AtomicUsize;

    /// Counts what reaches it.
    struct Probe {
        wakes: Arc<AtomicUsize>,
        timers: Arc<AtomicUsize>,
    }

    impl Source for Probe {
        fn on_ready(&mut self, _: &mut Core, _: SourceId, _: Readiness) -> Step {
            Step::Keep
        }
        fn on_wake(&mut self, _: &mut Core, _: SourceId) -> Step {
            self.wakes.fetch_add(1, Ordering::SeqCst);
            Step::Keep
        }
        fn on_timer(&mut self, _: &mut Core, _: SourceId, _: u64) -> Step {
            self.timers.fetch_add(1, Ordering::SeqCst);
            Step::Keep
        }
        fn abandon(&mut self, _: Error) {}
        fn drain(&mut self, _: &mut Core, _: SourceId) -> Step {
            Step::Remove
        }
    }

    fn probe() -> (Box<Probe>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let (wakes, timers) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let probe = Probe {
            wakes: wakes.clone(),
            timers: timers.clone(),
        };
        (Box::new(probe), wakes, timers)
    }

    /// Rule 12 (identities): a wake or a timer meant for a source that is
    /// gone never reaches a newer source in the same slot, and a cancelled
    /// timer never fires.
    #[test]
    fn stale_wakes_and_timers_never_reach_a_newer_source_in_the_slot() {
        let mut ev = EventLoop::new().unwrap();
        let core = &mut ev.core;
        let (old, _, _) = probe();
        let old_id = core.reserve();
        core.fill(old_id, old);
        core.add_timer(Instant::now(), old_id, 1);
        core.sources.remove(old_id.index as usize);
        let (new, wakes, timers) = probe();
        let new_id = core.reserve();
        assert_eq!(new_id.index, old_id.index, "the slot is reused");
        core.fill(new_id, new);
        core.run_commands();
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "its own first wake");
        ev.handle().wake_source(old_id);
        let cancelled = ev.core.add_timer(Instant::now(), new_id, 2);
        ev.core.cancel_timer(cancelled);
        ev.core.turn(&|| true).unwrap();
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "a stale wake reached it");
        assert_eq!(
            timers.load(Ordering::SeqCst),
            0,
            "a stale or cancelled timer fired"
        );
        ev.core.add_timer(Instant::now(), new_id, 3);
        ev.core.turn(&|| true).unwrap();
        assert_eq!(timers.load(Ordering::SeqCst), 1, "its own timer fires");
    }

    /// A panic in a source's handler is contained: the source is abandoned
    /// and the loop goes on with the others.
    #[test]
    fn a_panicking_source_is_abandoned_and_the_loop_goes_on() {
        struct Panicky(Arc<AtomicUsize>);
        impl Source for Panicky {
            fn on_ready(&mut self, _: &mut Core, _: SourceId, _: Readiness) -> Step {
                Step::Keep
            }
            fn on_wake(&mut self, _: &mut Core, _: SourceId) -> Step {
                panic!("a source that panics");
            }
            fn on_timer(&mut self, _: &mut Core, _: SourceId, _: u64) -> Step {
                Step::Keep
            }
            fn abandon(&mut self, reason: Error) {
                assert!(matches!(reason, Error::Internal(_)));
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn drain(&mut self, _: &mut Core, _: SourceId) -> Step {
                Step::Remove
            }
        }
        let mut ev = EventLoop::new().unwrap();
        let abandoned = Arc::new(AtomicUsize::new(0));
        let id = ev.core.reserve();
        ev.core.fill(id, Box::new(Panicky(abandoned.clone())));
        let (other, wakes, _) = probe();
        let other_id = ev.core.reserve();
        ev.core.fill(other_id, other);
        ev.core.run_commands();
        assert_eq!(abandoned.load(Ordering::SeqCst), 1);
        assert_eq!(ev.core.source_count(), 1, "the panicking source is gone");
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "the other one ran");
    }
}
