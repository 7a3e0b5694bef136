//! TLS between the socket and the buffers (feature `tls`): the driver's
//! read and flush go through a [`TlsSession`] instead of the socket, so the
//! buffers — and every layer above them — hold plaintext (libevent's
//! filter bufferevent).

use std::io::{self, IoSlice, Read};

use bytes::Bytes;
use std::net::Shutdown;
use std::sync::Arc;

use super::super::conn::{CLOSED, CONNECTED, INPUT_SUSPENDED, OUTPUT_PENDING, USER_PAUSED};
use super::super::output::{WriteState, MAX_IOVECS};
use super::super::protocol::Wakers;
use super::connect::Phase;
use super::read::READ_BUDGET;
use super::Driver;
use crate::error::Error;
use crate::event_loop::{Core, SourceId};
use crate::sync::lock;
use crate::tls::{TlsSession, TlsSetup};

/// The TLS state of a connection.
pub(super) struct TlsLayer {
    session: TlsSession,
    /// The handshake has completed (the connection is open).
    established: bool,
    /// Ciphertext that arrived before a STARTTLS upgrade (read into the
    /// input buffer in clear), read ahead of the socket's.
    early: Option<io::Cursor<Bytes>>,
}

impl TlsLayer {
    pub(super) fn new(setup: &TlsSetup, read_chunk_size: usize) -> crate::error::Result<Self> {
        let mut session = setup.session()?;
        session.set_max_chunk_size(read_chunk_size);
        Ok(TlsLayer {
            session,
            established: false,
            early: None,
        })
    }
}

impl Driver {
    /// The socket is connected: start the handshake (the connection opens
    /// when it completes, within the connect timeout).
    pub(super) fn start_handshake(&mut self, core: &mut Core, id: SourceId) {
        self.phase = Phase::Handshaking;
        if self.connect_timer.is_none() {
            // An accepted connection: its handshake is bounded too.
            self.connect_timer = core.add_timer_after(
                self.conn.config.connect_timeout,
                id,
                super::connect::TOKEN_CONNECT,
            );
        }
        self.flush_tls(core);
        self.read_tls(core, id);
    }

    /// Reads ciphertext and delivers the plaintext, within the input's
    /// limits; completes the handshake; ends the input at `close_notify`.
    pub(super) fn read_tls(&mut self, core: &mut Core, id: SourceId) {
        if self.eof || self.released {
            return;
        }
        let Some(stream) = self.stream() else {
            return;
        };
        let discard = self.closing || self.conn.flag(CLOSED);
        let drain = self.callbacks.read.is_some();
        if !discard && self.conn.flag(USER_PAUSED) {
            return;
        }
        let limited = !discard && !drain;
        let space = if limited {
            let mut input = lock(&self.conn.input);
            let room = self.conn.read_room(&input);
            if room > 0 && input.suspended {
                input.suspended = false;
                self.conn.clear_flag(INPUT_SUSPENDED);
            }
            room
        } else {
            usize::MAX
        };
        let budget = space.min(READ_BUDGET);
        let stop_when_short = !self.read_closed_seen;
        let mut done = core.take_chunk_list();
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let outcome = match tls.early.as_mut() {
            Some(early) => {
                let outcome = tls
                    .session
                    .read_from(early.chain(&*stream), &mut done, budget);
                if early.position() as usize == early.get_ref().len() {
                    tls.early = None;
                }
                outcome
            }
            None => {
                // Edge-triggered, like the plaintext read: a short read means
                // the kernel queue is empty and new data raises a new edge —
                // unless the peer's FIN may be pending (then read to EOF).
                let edge = EdgeReader {
                    socket: &*stream,
                    drained: false,
                    stop_when_short,
                };
                tls.session.read_from(edge, &mut done, budget)
            }
        };
        let handshake_completed = outcome.handshake_completed;
        if outcome.socket_bytes > 0 {
            self.read_progress(core);
        }
        let hit_limit = outcome.budget_exhausted && budget == space;
        if outcome.budget_exhausted && !hit_limit {
            self.read_more = true;
        }
        let eof = outcome.end.is_some();
        if discard {
            done.clear();
        } else if drain {
            if self.outcome.chunks.is_empty() {
                std::mem::swap(&mut self.outcome.chunks, &mut done);
            } else {
                self.outcome.chunks.append(&mut done);
            }
        } else if outcome.plaintext > 0 || eof || hit_limit {
            self.deliver(&mut done, outcome.plaintext, eof, hit_limit);
        }
        core.return_chunk_list(done);
        if handshake_completed {
            self.handshake_done(core, id);
        }
        // Reading may have produced records to send: handshake messages,
        // session tickets, a KeyUpdate answer, an alert.
        if self
            .tls
            .as_ref()
            .is_some_and(|tls| tls.session.wants_write())
        {
            self.flush_tls(core);
        }
        if eof {
            self.eof = true;
            if !discard {
                self.outcome.eof = true;
            }
        }
        if let Some(err) = outcome.error {
            // Best effort: rustls queued the alert that tells the peer why.
            if let Some(tls) = self.tls.as_mut() {
                let _ = tls.session.write_to(&*stream);
            }
            self.fail(err);
        }
    }

    /// The handshake completed: the connection opens (or, after a STARTTLS
    /// upgrade, goes on encrypted).
    fn handshake_done(&mut self, core: &mut Core, id: SourceId) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        tls.established = true;
        let _ = self.conn.cold().tls_info.set(tls.session.info());
        if !self.conn.flag(CONNECTED) {
            return self.finish_open(core, id);
        }
        // An upgrade: whoever waits in `start_tls` goes on.
        if let Some(timer) = self.connect_timer.take() {
            core.cancel_timer(timer);
        }
        self.phase = Phase::Open;
        let wakers = lock(&self.conn.output).wakers.take();
        wakers.wake_all();
        if self.closing {
            self.begin_close(core, id);
        } else {
            self.flush_tls(core);
        }
    }

    /// Starts a STARTTLS upgrade asked for, once the plaintext written
    /// before it has gone out in clear.
    pub(super) fn try_start_tls(&mut self, core: &mut Core, id: SourceId) {
        if self.tls.is_some() || self.released || !matches!(self.phase, Phase::Open) {
            return;
        }
        let Some(setup) = self.tls_start.clone() else {
            return;
        };
        self.flush(core);
        if self.released || !lock(&self.conn.output).buf.is_empty() {
            // The rest goes on the next writable event; then we start.
            return;
        }
        self.tls_start = None;
        let mut layer = match TlsLayer::new(&setup, self.conn.config.read_chunk_size) {
            Ok(layer) => layer,
            Err(err) => return self.fail(err),
        };
        // Input the application has not read is the peer's first records.
        let mut early = lock(&self.conn.input).take_all();
        if !early.is_empty() {
            let len = early.len();
            layer.early = Some(io::Cursor::new(early.split_to(len)));
        }
        self.tls = Some(Box::new(layer));
        self.start_handshake(core, id);
    }

    /// Moves queued plaintext into the session and ciphertext to the kernel
    /// until neither makes progress; sends `close_notify` and then FIN once
    /// a shutdown was asked for and everything before it has gone.
    pub(super) fn flush_tls(&mut self, core: &mut Core) {
        let Some(stream) = self.stream() else {
            return;
        };
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        let mut error = None;
        let (before, after, wakers) = {
            let mut out = lock(&self.conn.output);
            out.flush_queued = false;
            let plaintext_flows = tls.established
                && matches!(out.state, WriteState::Open | WriteState::ShutdownQueued);
            let before = out.buf.len();
            loop {
                let mut progress = false;
                if plaintext_flows && !out.buf.is_empty() {
                    let mut slices = [IoSlice::new(&[]); MAX_IOVECS / 4];
                    let count = out.buf.fill_io_slices(&mut slices);
                    match tls.session.write_plaintext(&slices[..count]) {
                        Ok(0) => {}
                        Ok(n) => {
                            out.buf.drain(n);
                            out.sent += n as u64;
                            progress = true;
                        }
                        Err(err) => {
                            error = Some(err);
                            break;
                        }
                    }
                }
                if plaintext_flows && out.buf.is_empty() && out.state == WriteState::ShutdownQueued
                {
                    tls.session.send_close_notify();
                }
                match tls.session.write_to(&*stream) {
                    Ok(written) => progress |= written.written > 0,
                    Err(err) => {
                        error = Some(Error::from(err));
                        break;
                    }
                }
                if !progress {
                    break;
                }
            }
            let after = out.buf.len();
            out.filter_pending = tls.session.wants_write();
            // The kernel refused ciphertext: a writable edge will come. (Or
            // plaintext waits for the handshake, which flushes again.)
            out.awaiting_writable = out.filter_pending;
            if after == 0 && !out.filter_pending {
                self.conn.clear_flag(OUTPUT_PENDING);
            } else {
                self.conn.set_flag(OUTPUT_PENDING);
            }
            let mut changed = after < before;
            if changed {
                out.timed_out = false;
            }
            let fin_due = error.is_none()
                && out.state == WriteState::ShutdownQueued
                && after == 0
                && tls.session.close_notify_flushed();
            if fin_due {
                match stream.shutdown(Shutdown::Write) {
                    Ok(()) => {}
                    Err(err) if err.kind() == io::ErrorKind::NotConnected => {}
                    Err(err) => error = Some(Error::from(err)),
                }
                out.state = WriteState::Shutdown;
                changed = true;
            }
            let wakers = if changed || !out.filter_pending {
                out.wakers.take()
            } else {
                Wakers::default()
            };
            (before, after, wakers)
        };
        wakers.wake_all();
        if after < before {
            self.write_progress(core);
            if self.callbacks.write.is_some() && after <= self.conn.config.write_low_watermark {
                self.outcome.write_cb = true;
            }
        }
        if let Some(err) = error {
            self.fail(err);
        }
    }
}

/// The socket as the session reads it: once a read comes back short, the
/// kernel has nothing more until the next readiness edge, so the next read
/// reports `WouldBlock` without a system call.
struct EdgeReader<R> {
    socket: R,
    drained: bool,
    stop_when_short: bool,
}

impl<R: Read> Read for EdgeReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.drained {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.socket.read(buf)?;
        if self.stop_when_short && n > 0 && n < buf.len() {
            self.drained = true;
        }
        Ok(n)
    }
}

/// The TLS settings a driver starts with.
pub(in crate::socket) type TlsStart = Arc<TlsSetup>;
