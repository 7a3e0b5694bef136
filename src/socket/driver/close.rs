//! Closing: graceful close (flush, FIN, linger for the peer's FIN),
//! release of the socket, and failure.

use std::time::{Duration, Instant};

use super::super::conn::{CLOSED, OUTPUT_PENDING};
use super::super::output::WriteState;
use super::connect::Phase;
use super::timers::TOKEN_LINGER;
use super::Driver;
use crate::error::Error;
use crate::event_loop::{Core, SourceId};
use crate::sync::lock;

impl Driver {
    /// Starts (or continues) a graceful close: flush, FIN, linger, release.
    pub(super) fn begin_close(&mut self, core: &mut Core, id: SourceId) {
        self.closing = true;
        let wakers = {
            let mut input = lock(&self.conn.input);
            input.closed = true;
            input.wakers.take()
        };
        wakers.wake_all();
        if !matches!(self.phase, Phase::Open) {
            return;
        }
        {
            let mut out = lock(&self.conn.output);
            if out.state == WriteState::Open {
                out.state = WriteState::ShutdownQueued;
            }
        }
        self.flush(core);
        // Discard what the peer sends meanwhile, so it is never blocked
        // writing to us while we wait for it to read.
        self.read(core);
        // A peer that never reads must not hold the connection for ever.
        if !self.released && matches!(self.phase, Phase::Open) {
            let from = self.timing(core).write.last_progress().max(core.now());
            self.arm_linger_timer(core, id, from);
        }
    }

    /// Arms the linger timer: while closing, it bounds how long the output
    /// may go without progress and how long to wait for the peer's FIN.
    pub(super) fn arm_linger_timer(&mut self, core: &mut Core, id: SourceId, from: Instant) {
        if let Some(timer) = self.linger_timer.take() {
            core.cancel_timer(timer);
        }
        // A linger too long to represent never fires.
        self.linger_timer = from
            .checked_add(self.conn.config.close_linger)
            .map(|deadline| core.add_timer(deadline, id, TOKEN_LINGER));
    }

    /// The linger timer fired.
    pub(super) fn linger_expired(&mut self, core: &Core, now: Instant) {
        self.linger_timer = None;
        if !self.closing {
            return;
        }
        match self.phase {
            // The peer never sent its FIN: release anyway.
            Phase::Lingering => self.release(None, false),
            // Still flushing: give up only if the output has made no
            // progress for the whole linger time (a peer that stopped
            // reading); a slow reader keeps going.
            Phase::Open => {
                let last = self.timing(core).write.last_progress();
                let stalled = last
                    .checked_add(self.conn.config.close_linger)
                    .is_some_and(|deadline| now >= deadline);
                if stalled {
                    self.release(None, true);
                } else {
                    self.timing(core).pending_linger_rearm = Some(last);
                }
            }
            _ => {}
        }
    }

    /// Ends the connection with an error.
    pub(super) fn fail(&mut self, err: Error) {
        self.release(Some(err), false);
    }

    /// Releases the socket: deregisters it, closes it (with a reset when
    /// aborting), and marks both buffers finished. Buffered input stays.
    pub(super) fn release(&mut self, error: Option<Error>, abort: bool) {
        if self.released {
            return;
        }
        self.released = true;
        if abort {
            if let Some(registration) = &self.registration {
                let _ = socket2::SockRef::from(&**registration.source())
                    .set_linger(Some(Duration::ZERO));
            }
        }
        // Deleting the registration first keeps the descriptor open until
        // the poller has forgotten it; the last `Arc` closes it below.
        self.registration = None;
        let out_wakers = {
            let mut out = lock(&self.conn.output);
            out.state = WriteState::Closed;
            out.stream = None;
            if abort {
                out.buf.clear();
            }
            if let Some(err) = &error {
                out.error.set(err);
            }
            self.conn.clear_flag(OUTPUT_PENDING);
            out.wakers.take()
        };
        let in_wakers = {
            let mut input = lock(&self.conn.input);
            input.closed = true;
            // The descriptor closes with the last reference.
            input.direct = None;
            if let Some(err) = &error {
                input.error.set(err);
            }
            input.wakers.take()
        };
        self.conn.set_flag(CLOSED);
        self.conn.set_source(None);
        if let Some(listener) = &self.conn.listener {
            // The server's connection limit has room again.
            listener.connection_released();
        }
        out_wakers.wake_all();
        in_wakers.wake_all();
        self.outcome.error = error.map(Box::new);
    }

    /// Cancels the timers of a released connection.
    pub(super) fn cancel_timers(&mut self, core: &mut Core) {
        for timer in [self.connect_timer.take(), self.linger_timer.take()]
            .into_iter()
            .flatten()
        {
            core.cancel_timer(timer);
        }
    }

    /// Releases the connection once both directions are done.
    pub(super) fn check_finished(&mut self, core: &mut Core, id: SourceId) {
        if self.released || !matches!(self.phase, Phase::Open | Phase::Lingering) {
            return;
        }
        // Only a closing connection or one whose peer has finished can be
        // done; skip the lock on every other event.
        if !self.closing && !self.eof {
            return;
        }
        let write_done = {
            let out = lock(&self.conn.output);
            out.state == WriteState::Shutdown && out.buf.is_empty()
        };
        if !write_done {
            return;
        }
        if self.eof {
            self.release(None, false);
        } else if self.closing && matches!(self.phase, Phase::Open) {
            self.phase = Phase::Lingering;
            let now = core.now();
            self.arm_linger_timer(core, id, now);
            self.read(core);
            if self.eof {
                self.release(None, false);
            }
        }
    }
}
