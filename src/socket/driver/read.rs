//! Reading: from the socket into the loop's read blocks (see
//! `event_loop/blocks.rs`: no connection holds read memory of its own),
//! then to `read_cb` (drain mode) or into the input buffer (dont-drain
//! mode), within the input's limits.

use std::io;

use bytes::Bytes;

use super::super::conn::{CLOSED, INPUT_SUSPENDED, USER_PAUSED};
use super::connect::Phase;
use super::Driver;
use crate::error::Error;
use crate::event_loop::Core;
use crate::sync::lock;

/// How many bytes one readiness event may read before the loop moves on to
/// other connections (the rest is read on the next turn).
pub(in crate::socket) const READ_BUDGET: usize = 1024 * 1024;

/// How much one read pass must bring in for a reader on the loop thread to
/// try the kernel directly once the input buffer is empty: a failing
/// attempt costs one system call, a successful one saves copying what it
/// reads, so below this the bet does not pay.
const DIRECT_AFTER_PASS: usize = 16 * 1024;

impl Driver {
    /// Reads the socket until it would block, the input reaches its limit,
    /// or this event's budget is spent.
    pub(super) fn read(&mut self, core: &mut Core) {
        if self.eof || self.released || !matches!(self.phase, Phase::Open | Phase::Lingering) {
            return;
        }
        let Some(stream) = self.stream() else {
            return;
        };
        // Closed by the application (perhaps from another thread, before
        // the loop has handled the request): what arrives is discarded.
        let discard = self.closing || self.conn.flag(CLOSED);
        // Validated options never combine dont-drain with a `read_cb`.
        let drain = self.callbacks.read.is_some();
        if !discard && self.conn.flag(USER_PAUSED) {
            return;
        }
        let limited = !discard && !drain;
        let mut space = if limited {
            let mut input = lock(&self.conn.input);
            let room = self.conn.read_room(&input);
            if room > 0 && input.suspended {
                // Room again (a holder let bytes go): no longer suspended.
                input.suspended = false;
                self.conn.clear_flag(INPUT_SUSPENDED);
            }
            room
        } else {
            usize::MAX
        };
        let chunk_size = self.conn.config.read_chunk_size;
        // The loop's list: delivering chunks allocates nothing, and an idle
        // connection keeps no list of its own.
        let mut done = core.take_chunk_list();
        let mut total = 0;
        let mut eof = false;
        let mut error = None;
        let mut hit_limit = false;
        loop {
            if space == 0 {
                hit_limit = true;
                break;
            }
            if total >= READ_BUDGET {
                self.read_more = true;
                break;
            }
            match core
                .read_blocks()
                .read(&*stream, space.min(chunk_size), &mut done)
            {
                Ok((0, _)) => {
                    eof = true;
                    break;
                }
                Ok((n, asked)) => {
                    total += n;
                    if limited {
                        space -= n;
                    }
                    // Edge-triggered: a short read means the kernel queue is
                    // empty and new data will raise a new edge — unless the
                    // peer's FIN is pending, which raises none; the poller
                    // says so (`read_closed`), and then we read on to EOF.
                    if n < asked && !self.read_closed_seen {
                        break;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    error = Some(Error::from(err));
                    break;
                }
            }
        }
        core.read_blocks().finish(&mut done);
        if total > 0 {
            self.read_progress(core);
        }
        if discard {
            done.clear();
        } else if drain {
            if self.outcome.chunks.is_empty() {
                // Usual case: the list itself goes to `report`; `settle`
                // gives it back to the loop.
                std::mem::swap(&mut self.outcome.chunks, &mut done);
            } else {
                self.outcome.chunks.append(&mut done);
            }
        } else {
            self.deliver(&mut done, total, eof, hit_limit);
        }
        core.return_chunk_list(done);
        if eof {
            self.eof = true;
            if !discard {
                self.outcome.eof = true;
            }
        }
        if let Some(err) = error {
            self.fail(err);
        }
    }

    /// Dont-drain mode: appends what was read to the input buffer, wakes its
    /// readers, and decides whether to tell `notify_cb` and whether reading
    /// must stop at the limit.
    pub(super) fn deliver(
        &mut self,
        done: &mut Vec<Bytes>,
        total: usize,
        eof: bool,
        hit_limit: bool,
    ) {
        let (wakers, len) = {
            let mut input = lock(&self.conn.input);
            // The loop has had its turn: direct reads may go on, if the
            // peer seems to stream.
            input.direct_since_pass = 0;
            input.direct_worth_trying = total >= DIRECT_AFTER_PASS;
            if input.closed {
                // Closed while this read was in flight.
                done.clear();
            }
            let wakers = if total > 0 || eof {
                input.append(done.drain(..))
            } else {
                Default::default()
            };
            if hit_limit {
                if self.conn.read_room(&input) == 0 {
                    input.suspended = true;
                    self.conn.set_flag(INPUT_SUSPENDED);
                    self.suspended = true;
                } else {
                    // A reader drained it meanwhile: keep reading.
                    self.read_more = true;
                }
            }
            if eof {
                input.eof = true;
            }
            (wakers, input.buf.len())
        };
        wakers.wake_all();
        // At EOF the reader is told once more, so one waiting for the rest
        // of a frame (in the input, or held by a codec) sees the end. (Only
        // with a `notify_cb`: an outcome with nobody to tell would still make
        // `report` build a handle on every read.)
        let notify = (total > 0 && len >= self.conn.config.read_low_watermark) || eof;
        if notify && self.callbacks.notify.is_some() {
            self.outcome.notify = true;
        }
    }
}
