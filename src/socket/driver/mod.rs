//! The loop-thread half of a connection.
//!
//! One `Driver` per connection lives in the loop's slab. Its concerns, one
//! file each: connecting (`connect.rs`), reading (`read.rs`), flushing
//! (`write.rs`), closing and lingering (`close.rs`), idle and linger timers
//! (`timers.rs`), and reporting to the callbacks (`report.rs`). This file
//! holds the state they share and the loop's entry points, each of which
//! ends in [`Driver::settle`].

mod close;
mod connect;
mod read;
mod report;
mod timers;
#[cfg(feature = "tls")]
mod tls;
mod write;

pub(super) use read::READ_BUDGET;

/// The TLS settings a driver starts with (none can exist without the `tls`
/// feature).
#[cfg(feature = "tls")]
pub(super) use tls::TlsStart;
#[cfg(not(feature = "tls"))]
pub(super) enum TlsStart {}

use std::sync::Arc;
use std::time::Instant;

use super::conn::{
    Conn, EXPLICIT_LIFETIME, REQ_ABORT, REQ_CLOSE, REQ_FLUSH, REQ_IO_FAILED, REQ_RESOLVED,
    REQ_RESUME, REQ_SHUTDOWN, REQ_TIMERS, REQ_WRITE_CB,
};
use super::connect::Start;
use super::{Callbacks, NetStream, Socket};
use crate::error::Error;
use crate::event_loop::{Core, Readiness, Registration, Source, SourceId, Step, TimerId};
use crate::sync::lock;

use connect::Phase;
use report::Outcome;
use timers::Timing;

pub(super) struct Driver {
    conn: Arc<Conn>,
    /// Shared by every connection made with the same options.
    callbacks: Arc<Callbacks>,
    phase: Phase,
    registration: Option<Registration<NetStream>>,
    outcome: Outcome,
    // A handle for callbacks, kept only when the lifetime is explicit (a
    // kept handle would otherwise stop "last handle dropped" from closing).
    socket: Option<Socket>,
    eof: bool,
    closing: bool,
    released: bool,
    suspended: bool,
    read_more: bool,
    // A reader in `notify_cb` took bytes: call it again next turn (see
    // `report`).
    renotify: bool,
    // The poller reported a hang-up: a short read is no longer proof that
    // the kernel has nothing more (a pending FIN raises no new edge).
    read_closed_seen: bool,
    /// The idle timers, made only when a timeout is set or the connection
    /// closes (the linger measures output progress with them).
    timing: Option<Box<Timing>>,
    connect_timer: Option<TimerId>,
    linger_timer: Option<TimerId>,
    /// TLS settings until the socket is connected, then the TLS layer.
    #[cfg(feature = "tls")]
    tls_start: Option<TlsStart>,
    #[cfg(feature = "tls")]
    tls: Option<Box<tls::TlsLayer>>,
}

impl Driver {
    fn new(
        conn: Arc<Conn>,
        callbacks: Arc<Callbacks>,
        start: Start,
        now: Instant,
        tls: Option<TlsStart>,
    ) -> Self {
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        let (read_timeout, write_timeout) = (conn.config.read_timeout, conn.config.write_timeout);
        let socket = conn
            .flag(EXPLICIT_LIFETIME)
            .then(|| Socket::from_conn(conn.clone()));
        Driver {
            conn,
            callbacks,
            phase: Phase::New(Some(Box::new(start))),
            registration: None,
            outcome: Outcome::default(),
            socket,
            eof: false,
            closing: false,
            released: false,
            suspended: false,
            read_more: false,
            renotify: false,
            read_closed_seen: false,
            timing: (read_timeout.is_some() || write_timeout.is_some())
                .then(|| Box::new(Timing::new(read_timeout, write_timeout, now))),
            connect_timer: None,
            linger_timer: None,
            #[cfg(feature = "tls")]
            tls_start: tls,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Registers a driver for `conn` in `core` and starts it there.
    pub(super) fn spawn(
        core: &mut Core,
        conn: Arc<Conn>,
        callbacks: Arc<Callbacks>,
        start: Start,
        tls: Option<TlsStart>,
    ) {
        let id = core.reserve();
        conn.set_source(Some(id));
        let driver = Driver::new(conn, callbacks, start, core.now(), tls);
        core.fill(id, Box::new(driver));
    }

    /// Reads through TLS when the connection has it, else the socket.
    fn read_any(&mut self, core: &mut Core, id: SourceId) {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.read_tls(core, id);
        }
        let _ = id;
        self.read(core);
    }

    fn stream(&self) -> Option<Arc<NetStream>> {
        self.registration.as_ref().map(|r| r.source().clone())
    }

    fn handle_requests(&mut self, core: &mut Core, id: SourceId, bits: u32) {
        if bits & REQ_RESOLVED != 0 && matches!(self.phase, Phase::Resolving) {
            let resolved = lock(&self.conn.cold().resolved).take();
            match resolved {
                Some(Ok(addrs)) => self.connect_to(core, id, addrs),
                Some(Err(err)) => self.fail(err),
                None => {}
            }
        }
        if bits & REQ_ABORT != 0 {
            self.release(None, true);
            return;
        }
        if bits & REQ_IO_FAILED != 0 {
            let err = lock(&self.conn.output).error.cloned();
            if let Some(err) = err {
                self.fail(err);
                return;
            }
        }
        if bits & REQ_TIMERS != 0 {
            // set_timeouts: new values, counted from now. Clearing the armed
            // flags arms timers at the new deadlines (a shorter timeout must
            // not wait for the old timer); stale timers check their deadline.
            let set = *lock(&self.conn.cold().timeouts);
            let (read, write) = set.unwrap_or((
                self.conn.config.read_timeout,
                self.conn.config.write_timeout,
            ));
            let now = core.now();
            let timing = self.timing(core);
            timing.read.set(read, now);
            timing.write.set(write, now);
        }
        // REQ_ARM_TIMERS needs nothing here: `settle` arms what applies.
        if bits & REQ_CLOSE != 0 && !self.closing {
            self.begin_close(core, id);
        }
        if bits & (REQ_FLUSH | REQ_SHUTDOWN) != 0 {
            self.flush(core);
        }
        if bits & REQ_RESUME != 0 {
            self.suspended = false;
            self.read_any(core, id);
        }
        if bits & REQ_WRITE_CB != 0 {
            self.outcome.write_cb = true;
        }
        if bits & super::conn::REQ_DEADLINE != 0 {
            self.arm_deadline(core, id);
        }
        #[cfg(feature = "tls")]
        if bits & super::conn::REQ_START_TLS != 0 {
            let upgrade = lock(&self.conn.cold().tls_upgrade).take();
            if upgrade.is_some() {
                self.tls_start = upgrade;
                self.try_start_tls(core, id);
            }
        }
    }

    /// Reports what happened, releases a finished connection, re-arms
    /// timers: the common tail of every entry point.
    fn settle(&mut self, core: &mut Core, id: SourceId) -> Step {
        self.report();
        if !self.released {
            self.check_finished(core, id);
            self.report();
        }
        if self.outcome.chunks.capacity() != 0 {
            core.return_chunk_list(std::mem::take(&mut self.outcome.chunks));
        }
        if self.released {
            self.cancel_timers(core);
            self.report_release();
            self.run_close_callbacks();
            self.socket = None;
            return Step::Remove;
        }
        let rearm = self
            .timing
            .as_mut()
            .and_then(|timing| timing.pending_linger_rearm.take());
        if let Some(from) = rearm {
            self.arm_linger_timer(core, id, from);
        }
        #[cfg(feature = "tls")]
        if self.tls_start.is_some() {
            // A STARTTLS upgrade waiting for its plaintext to go out.
            self.try_start_tls(core, id);
        }
        if self.read_more || self.renotify {
            // `on_wake` sees the flags and reads or notifies again, after
            // the other sources that were ready on this turn.
            core.wake_later(id);
        }
        self.update_timers(core, id);
        Step::Keep
    }
}

impl Source for Driver {
    fn on_ready(&mut self, core: &mut Core, id: SourceId, ready: Readiness) -> Step {
        self.read_closed_seen |= ready.read_closed;
        match self.phase {
            Phase::Connecting(_) => {
                self.check_connect(core, id, ready.writable);
                // Bytes may have arrived with the connect completion, and
                // that edge will not come again.
                if ready.readable && matches!(self.phase, Phase::Open | Phase::Handshaking) {
                    self.read_any(core, id);
                }
            }
            Phase::Open | Phase::Lingering | Phase::Handshaking => {
                // Events carry the whole readiness mask, so nearly every
                // readable event is writable too: flush only if something
                // may be waiting for the kernel.
                if ready.writable && self.conn.output_pending() {
                    self.flush(core);
                }
                if ready.readable {
                    self.read_any(core, id);
                }
            }
            Phase::New(_) | Phase::Resolving => {}
        }
        self.settle(core, id)
    }

    fn on_wake(&mut self, core: &mut Core, id: SourceId) -> Step {
        if let Phase::New(start) = &mut self.phase {
            let start = start.take().expect("a new driver has its start");
            self.phase = Phase::Resolving;
            self.start(core, id, *start);
        }
        let bits = self.conn.take_requests();
        if bits != 0 && !self.released {
            self.handle_requests(core, id, bits);
        }
        if self.read_more && !self.released {
            self.read_more = false;
            self.read_any(core, id);
        }
        if self.renotify && !self.released {
            self.renotify = false;
            let (len, ended) = {
                let input = lock(&self.conn.input);
                (
                    input.buf.len(),
                    input.eof || input.closed || input.error.is_some(),
                )
            };
            // Called again while bytes wait (above the low watermark), and
            // once more after the last of them at the end, so the reader
            // sees the end itself.
            if (len > 0 && len >= self.conn.config.read_low_watermark) || ended {
                self.outcome.notify = true;
            }
        }
        self.settle(core, id)
    }

    fn on_timer(&mut self, core: &mut Core, id: SourceId, token: u64) -> Step {
        self.on_timer_token(core, id, token);
        self.settle(core, id)
    }

    fn abandon(&mut self, reason: Error) {
        self.release(Some(reason), false);
        self.report_release();
        self.run_close_callbacks();
        self.socket = None;
    }

    fn drain(&mut self, _: &mut Core, _: SourceId) -> Step {
        // As the application's `close()`: the request wakes this driver,
        // which flushes, sends FIN and goes once released.
        self.conn.close();
        Step::Keep
    }

    fn is_connection(&self) -> bool {
        true
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // A driver dropped without being released (the loop went away in a
        // way `abandon` did not cover): make every waiter see the end.
        self.release(Some(Error::LoopStopped), false);
    }
}
