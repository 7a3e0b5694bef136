//! The idle timeouts of each direction, and what each timer does when it
//! fires.

use std::time::{Duration, Instant};

use super::super::conn::USER_PAUSED;
use super::connect::{Phase, TOKEN_CONNECT};
use super::Driver;
use crate::event_loop::{Core, SourceId, TimerId};
use crate::sync::lock;

const TOKEN_READ: u64 = 1;
const TOKEN_WRITE: u64 = 2;
pub(super) const TOKEN_LINGER: u64 = 4;
const TOKEN_DEADLINE: u64 = 5;

/// One direction's idle timeout: it counts only while that direction waits
/// (for bytes to read, or for queued output to go), and any progress
/// restarts it. Its heap timer is not moved on progress: when it fires,
/// `fire` re-checks the deadline from `last` (and `update` arms a new one).
pub(super) struct IdleTimer {
    timeout: Option<Duration>,
    /// The last progress, or when waiting began. Kept current only when
    /// something looks at it (a timeout, or a caller's `record`), so the
    /// hot path reads no clock otherwise.
    last: Instant,
    waiting: bool,
    armed: bool,
    timed_out: bool,
}

impl IdleTimer {
    pub(super) fn new(timeout: Option<Duration>, now: Instant) -> Self {
        IdleTimer {
            timeout,
            last: now,
            waiting: false,
            armed: false,
            timed_out: false,
        }
    }

    /// New timeout (`set_timeouts`), counted from `now`. Disarming makes
    /// `update` arm a timer at the new deadline (a shorter timeout must not
    /// wait for the old timer).
    pub(super) fn set(&mut self, timeout: Option<Duration>, now: Instant) {
        self.timeout = timeout;
        self.last = now;
        self.armed = false;
        self.timed_out = false;
    }

    /// The count starts again from now (the connection opened).
    pub(super) fn restart(&mut self, core: &Core) {
        self.last = core.now();
    }

    /// The last progress recorded.
    pub(super) fn last_progress(&self) -> Instant {
        self.last
    }

    /// Bytes moved: the count restarts; `record` keeps the time even
    /// without a timeout.
    pub(super) fn progress(&mut self, core: &Core, record: bool) {
        if self.timeout.is_some() || record {
            self.last = core.now();
        }
        self.timed_out = false;
    }

    /// The deadline of the count in progress; `None` for "never" (no
    /// timeout, or one too long to represent).
    fn deadline(&self) -> Option<Instant> {
        self.timeout
            .and_then(|timeout| self.last.checked_add(timeout))
    }

    /// Notes whether the direction waits now, and arms a timer if it does
    /// and none is pending.
    fn update(&mut self, core: &mut Core, id: SourceId, token: u64, waiting: bool) {
        if self.timeout.is_none() {
            self.waiting = waiting;
            return;
        }
        if waiting && !self.waiting {
            self.last = core.now();
        }
        self.waiting = waiting;
        if waiting && !self.armed && !self.timed_out {
            if let Some(deadline) = self.deadline() {
                core.add_timer(deadline, id, token);
                self.armed = true;
            }
        }
    }

    /// Its timer fired at `now`: whether the direction has timed out.
    fn fire(&mut self, now: Instant) -> bool {
        self.armed = false;
        let due = self.waiting
            && !self.timed_out
            && self.deadline().is_some_and(|deadline| now >= deadline);
        if due {
            self.timed_out = true;
        }
        due
    }
}

/// A connection's idle timers, out of line: most connections set none.
pub(super) struct Timing {
    pub(super) read: IdleTimer,
    /// Its `last` is also the linger's measure of output progress.
    pub(super) write: IdleTimer,
    /// The linger timer fired while output was still moving: re-arm it from
    /// this last progress.
    pub(super) pending_linger_rearm: Option<Instant>,
    /// The timer of the read deadline in force.
    deadline_timer: Option<TimerId>,
}

impl Timing {
    pub(super) fn new(read: Option<Duration>, write: Option<Duration>, now: Instant) -> Self {
        Timing {
            read: IdleTimer::new(read, now),
            write: IdleTimer::new(write, now),
            pending_linger_rearm: None,
            deadline_timer: None,
        }
    }
}

impl Driver {
    /// The timers, made now (with no timeouts) if there were none.
    pub(super) fn timing(&mut self, core: &Core) -> &mut Timing {
        let now = core.now();
        self.timing
            .get_or_insert_with(|| Box::new(Timing::new(None, None, now)))
    }

    /// Bytes were read: the read timeout's count restarts.
    pub(super) fn read_progress(&mut self, core: &Core) {
        if let Some(timing) = self.timing.as_mut() {
            timing.read.progress(core, false);
        }
    }

    /// Output went to the kernel: the write timeout's count restarts, and a
    /// closing connection's linger notes the time.
    pub(super) fn write_progress(&mut self, core: &Core) {
        if self.closing {
            self.timing(core).write.progress(core, true);
        } else if let Some(timing) = self.timing.as_mut() {
            timing.write.progress(core, false);
        }
    }

    /// Arms the idle timers of the directions that are waiting.
    pub(super) fn update_timers(&mut self, core: &mut Core, id: SourceId) {
        let Some(mut timing) = self.timing.take() else {
            return;
        };
        let open = matches!(self.phase, Phase::Open);
        let read_waiting =
            open && !self.eof && !self.closing && !self.suspended && !self.conn.flag(USER_PAUSED);
        timing.read.update(core, id, TOKEN_READ, read_waiting);
        // The output lock only when a write timeout needs the answer.
        let write_waiting = timing.write.timeout.is_some()
            && matches!(self.phase, Phase::Open | Phase::Lingering)
            && !lock(&self.conn.output).buf.is_empty();
        timing.write.update(core, id, TOKEN_WRITE, write_waiting);
        self.timing = Some(timing);
    }

    /// A read began waiting under a read deadline: a timer at it (the one
    /// of an earlier read, if any, is cancelled).
    pub(super) fn arm_deadline(&mut self, core: &mut Core, id: SourceId) {
        let deadline = lock(&self.conn.input).deadline;
        let timing = self.timing(core);
        if let Some(timer) = timing.deadline_timer.take() {
            core.cancel_timer(timer);
        }
        if let Some(deadline) = deadline {
            let timer = core.add_timer(deadline, id, TOKEN_DEADLINE);
            self.timing(core).deadline_timer = Some(timer);
        }
    }

    /// The deadline timer fired: if the read it was for has not completed,
    /// it fails (once), and `notify_cb` runs so a codec callback sees it.
    fn deadline_expired(&mut self, core: &mut Core, id: SourceId, now: Instant) {
        if let Some(timing) = self.timing.as_mut() {
            timing.deadline_timer = None;
        }
        let (wakers, later) = {
            let mut input = lock(&self.conn.input);
            match input.deadline {
                Some(deadline) if now >= deadline => {
                    input.deadline_passed = true;
                    (input.wakers.take(), false)
                }
                Some(_) => (Default::default(), true),
                None => (Default::default(), false),
            }
        };
        if later {
            // A newer read's deadline.
            return self.arm_deadline(core, id);
        }
        wakers.wake_all();
        if self.callbacks.notify.is_some() {
            self.outcome.notify = true;
        }
    }

    pub(super) fn on_timer_token(&mut self, core: &mut Core, id: SourceId, token: u64) {
        let now = core.now();
        match token {
            TOKEN_CONNECT => self.connect_timed_out(),
            TOKEN_LINGER => self.linger_expired(core, now),
            TOKEN_DEADLINE => self.deadline_expired(core, id, now),
            TOKEN_READ if self.timing.as_mut().is_some_and(|t| t.read.fire(now)) => {
                self.outcome.read_timed_out = true;
                let wakers = {
                    let mut input = lock(&self.conn.input);
                    input.timed_out = true;
                    input.wakers.take()
                };
                wakers.wake_all();
            }
            TOKEN_WRITE if self.timing.as_mut().is_some_and(|t| t.write.fire(now)) => {
                self.outcome.write_timed_out = true;
                let wakers = {
                    let mut out = lock(&self.conn.output);
                    out.timed_out = true;
                    out.wakers.take()
                };
                wakers.wake_all();
            }
            _ => {}
        }
    }
}
