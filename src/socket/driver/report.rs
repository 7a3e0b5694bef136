//! Reporting: running the user callbacks for what one pass produced, in
//! order, with no lock held and panics contained to the connection.

use bytes::Bytes;

use super::super::callbacks::invoke;
use super::super::{Event, Socket};
use super::Driver;
use crate::error::{Direction, Error};
use crate::sync::{lock, run_contained};

/// What one pass over the socket produced, to be reported in order once the
/// state is settled.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) connected: bool,
    pub(super) chunks: Vec<Bytes>,
    pub(super) notify: bool,
    pub(super) write_cb: bool,
    pub(super) eof: bool,
    pub(super) read_timed_out: bool,
    pub(super) write_timed_out: bool,
    /// Out of line: a connection fails once.
    pub(super) error: Option<Box<Error>>,
}

impl Outcome {
    fn has_something(&self) -> bool {
        self.connected
            || !self.chunks.is_empty()
            || self.notify
            || self.write_cb
            || self.eof
            || self.read_timed_out
            || self.write_timed_out
    }
}

impl Driver {
    fn callback_socket(&self) -> Socket {
        match &self.socket {
            Some(socket) => socket.clone(),
            None => Socket::from_conn(self.conn.clone()),
        }
    }

    /// The input buffer's length, and whether the input has ended.
    fn input_state(&self) -> (usize, bool) {
        let input = lock(&self.conn.input);
        let ended = input.eof || input.closed || input.error.is_some();
        (input.buf.len(), ended)
    }

    /// Runs the callbacks for everything that happened, in order. A panic
    /// in one of them ends the connection with `CallbackPanicked`.
    pub(super) fn report(&mut self) {
        if !self.outcome.has_something() {
            return;
        }
        if !self.callbacks.any() {
            // Nobody to tell. Making a handle here could also close a
            // connection whose lifetime follows its handles.
            let error = self.outcome.error.take();
            let mut chunks = std::mem::take(&mut self.outcome.chunks);
            chunks.clear();
            self.outcome = Outcome {
                error,
                chunks,
                ..Outcome::default()
            };
            return;
        }
        let mut outcome = std::mem::take(&mut self.outcome);
        // The chunk list (the loop's, lent by `read`) keeps its allocation.
        let mut chunks = std::mem::take(&mut outcome.chunks);
        // Borrowed, not cloned: this runs for every event.
        let temporary;
        let socket = match &self.socket {
            Some(socket) => socket,
            None => {
                temporary = Socket::from_conn(self.conn.clone());
                &temporary
            }
        };
        let callbacks = self.callbacks.clone();
        let mut panicked: Option<String> = None;
        let mut run = |call: &mut dyn FnMut()| {
            if panicked.is_none() {
                if let Err(message) = invoke(call) {
                    panicked = Some(message);
                }
            }
        };
        if outcome.connected {
            if let Some(cb) = &callbacks.connect {
                run(&mut || cb(socket));
            }
            if let Some(cb) = &callbacks.event {
                run(&mut || cb(socket, Event::Connected));
            }
        }
        if let Some(cb) = &callbacks.read {
            for chunk in chunks.drain(..) {
                let mut chunk = Some(chunk);
                run(&mut || cb(socket, chunk.take().unwrap_or_default()));
            }
        }
        chunks.clear();
        if outcome.notify {
            if let Some(cb) = &callbacks.notify {
                let (before, _) = self.input_state();
                run(&mut || cb(socket));
                let (after, ended) = self.input_state();
                // A reader that takes part of what is ready each time is
                // called again until it stops making progress, so it never
                // stalls on bytes that are buffered but not new (reading
                // suspended at the watermark, say), and — once the input has
                // ended — until it has taken the last byte and then seen the
                // end itself.
                self.renotify = after < before && (after > 0 || ended);
            }
        }
        if outcome.write_cb {
            if let Some(cb) = &callbacks.write {
                run(&mut || cb(socket));
            }
        }
        if let Some(cb) = &callbacks.event {
            if outcome.eof {
                run(&mut || cb(socket, Event::Eof));
            }
            if outcome.read_timed_out {
                run(&mut || cb(socket, Event::Timeout(Direction::Read)));
            }
            if outcome.write_timed_out {
                run(&mut || cb(socket, Event::Timeout(Direction::Write)));
            }
        }
        self.outcome.chunks = chunks;
        if let Some(message) = panicked {
            self.fail(Error::CallbackPanicked(message));
        }
        // Failure events are reported last, by `report_release`.
        if let Some(err) = outcome.error {
            self.outcome.error.get_or_insert(err);
        }
    }

    /// The last callbacks of a released connection: its error, then
    /// `Closed`. Panics here have nowhere left to go and are logged.
    pub(super) fn report_release(&mut self) {
        let error = self.outcome.error.take();
        self.outcome = Outcome::default();
        let Some(cb) = self.callbacks.event.clone() else {
            return;
        };
        let socket = self.callback_socket();
        if let Some(err) = error {
            run_contained("event_cb", || cb(&socket, Event::Error(*err)));
        }
        run_contained("event_cb", || cb(&socket, Event::Closed));
    }

    /// Runs the `on_close` callbacks, once, after the final event.
    pub(super) fn run_close_callbacks(&mut self) {
        let Some(cold) = self.conn.cold_if_any() else {
            return;
        };
        let callbacks = std::mem::take(&mut *lock(&cold.close_callbacks));
        for callback in callbacks {
            run_contained("an on_close callback", callback);
        }
    }
}
