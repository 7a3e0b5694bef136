//! A connection with no socket under it, for the read-helper fuzz target
//! and its corpus replay (`crate::seam`): bytes are fed in as the loop
//! would append them (never past what the loop would read), so the read
//! state machines run exactly as on a live connection, with the chunking
//! chosen by the caller.

use std::sync::Arc;

use bytes::Bytes;

use super::conn::{Conn, Origin};
use super::{Callbacks, Config, Socket};
use crate::event_loop::LoopHandle;

impl Socket {
    /// A connection that is never registered with `handle`'s loop: its
    /// requests (resume, deadline) are recorded and never acted on.
    pub(crate) fn detached(handle: LoopHandle, config: Arc<Config>) -> Socket {
        let conn = Conn::new(
            handle,
            config,
            &Callbacks::default(),
            Origin::default(),
            false,
        );
        Socket::from_conn(conn)
    }

    /// Appends up to `room` of `chunk` as one received chunk, where `room`
    /// is what the loop would read now; returns how many bytes it took.
    pub(crate) fn feed(&self, chunk: &[u8]) -> usize {
        let conn = self.conn();
        let wakers = conn.with_input(|input| {
            let n = conn.read_room(input).min(chunk.len());
            if n == 0 {
                return (0, None);
            }
            (n, Some(input.append([Bytes::copy_from_slice(&chunk[..n])])))
        });
        match wakers {
            (n, Some(wakers)) => {
                wakers.wake_all();
                n
            }
            (n, None) => n,
        }
    }

    /// The peer's FIN.
    pub(crate) fn feed_end(&self) {
        let wakers = self.conn().with_input(|input| {
            input.eof = true;
            input.wakers.take()
        });
        wakers.wake_all();
    }

    /// Copies out every buffered byte (held ones are back by then).
    pub(crate) fn buffered(&self) -> Vec<u8> {
        let conn = self.conn();
        let len = conn.with_input(|input| input.buf.len());
        let mut out = vec![0; len];
        let n = self.peek_input(&mut out);
        out.truncate(n);
        out
    }
}
