//! Flushing: queued output to the kernel with vectored writes, then FIN
//! once a shutdown was asked for.

use std::io::{self, IoSlice, Write};
use std::net::Shutdown;

use super::super::conn::OUTPUT_PENDING;
use super::super::output::{WriteState, MAX_IOVECS};
use super::super::protocol::Wakers;
use super::Driver;
use crate::error::Error;
use crate::event_loop::Core;
use crate::sync::lock;

impl Driver {
    /// Hands queued output to the kernel until it is empty or the kernel
    /// refuses more; sends FIN once empty if a shutdown was asked for.
    pub(super) fn flush(&mut self, core: &mut Core) {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.flush_tls(core);
        }
        let Some(stream) = self.stream() else {
            return;
        };
        let mut error = None;
        let (before, after, wakers) = {
            let mut out = lock(&self.conn.output);
            out.flush_queued = false;
            if !matches!(out.state, WriteState::Open | WriteState::ShutdownQueued) {
                return;
            }
            let before = out.buf.len();
            while !out.buf.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let count = out.buf.fill_io_slices(&mut slices);
                match (&*stream).write_vectored(&slices[..count]) {
                    Ok(0) => {
                        error = Some(Error::from(io::Error::from(io::ErrorKind::WriteZero)));
                        break;
                    }
                    Ok(n) => {
                        out.buf.drain(n);
                        out.sent += n as u64;
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(err) => {
                        error = Some(Error::from(err));
                        break;
                    }
                }
            }
            let after = out.buf.len();
            out.awaiting_writable = after > 0;
            if after == 0 {
                self.conn.clear_flag(OUTPUT_PENDING);
            }
            let mut changed = after < before;
            if changed {
                // Progress: a timeout nobody saw no longer applies.
                out.timed_out = false;
            }
            if error.is_none() && after == 0 && out.state == WriteState::ShutdownQueued {
                // Closing after the peer's FIN: the release follows at once
                // and its close(2) sends our FIN (the receive queue is
                // empty past the end, so it is a FIN, not a reset), which
                // spares a system call per connection.
                let released_next = self.closing && self.eof;
                if !released_next {
                    match stream.shutdown(Shutdown::Write) {
                        Ok(()) => {}
                        Err(err) if err.kind() == io::ErrorKind::NotConnected => {}
                        Err(err) => error = Some(Error::from(err)),
                    }
                }
                out.state = WriteState::Shutdown;
                changed = true;
            }
            let wakers = if changed {
                out.wakers.take()
            } else {
                Wakers::default()
            };
            (before, after, wakers)
        };
        wakers.wake_all();
        if after < before {
            // A closing connection's linger measures progress too.
            self.write_progress(core);
            // Any progress that ends at or below the low watermark: what
            // was queued may already have been below it (a partial direct
            // write), and a producer refilling from write_cb must hear of it.
            if self.callbacks.write.is_some() && after <= self.conn.config.write_low_watermark {
                self.outcome.write_cb = true;
            }
        }
        if let Some(err) = error {
            self.fail(err);
        }
    }
}
