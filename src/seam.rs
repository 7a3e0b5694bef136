//! Not part of the API: a test seam for the `read_helpers` fuzz target
//! and its corpus replay. It runs the state machines behind the
//! IOStream-style reads (`read_until_delimiter`, `read_bytes`,
//! `read_until_close`, `read_until_match`) on a connection with no socket
//! under it, fed the input in the chunks the caller chooses, so a check
//! can compare the outcome of every chunking of the same bytes. Nothing
//! here is covered by semver.

use std::sync::OnceLock;
use std::task::{Poll, Waker};

use bytes::Bytes;

use crate::error::Result;
use crate::event_loop::{EventLoop, LoopHandle};
use crate::socket::{FrameKind, FrameRead, HeldInput, Socket};
use crate::stream::poll_match;
use crate::TcpOptions;

/// Which read helper to run.
pub enum ReadHelper<'a> {
    /// `read_until_delimiter(delimiter, max_bytes)`.
    Delimiter(&'a [u8], usize),
    /// `read_bytes(n)` (`1..=max_buffer_size`).
    Exactly(usize),
    /// `read_until_close()`.
    UntilClose,
    /// `read_until_match(max_bytes, matcher)`.
    Match(usize, &'a mut dyn FnMut(&[u8]) -> Option<usize>),
}

/// How a read over a chunked input ended.
#[derive(Debug)]
pub struct Outcome {
    /// The read's result, or `None` if it was still waiting when the input
    /// ran out (or the loop could read no more of it).
    pub result: Option<Result<Bytes>>,
    /// How many input bytes the connection took (the loop reads no more
    /// than its limits allow).
    pub fed: usize,
    /// What the input buffer holds once the read is over (or dropped).
    pub buffered: Vec<u8>,
}

fn loop_handle() -> LoopHandle {
    static HANDLE: OnceLock<LoopHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let event_loop = EventLoop::new().expect("an event loop");
            let handle = event_loop.handle();
            // Never run: the detached connections only need a handle.
            std::mem::forget(event_loop);
            handle
        })
        .clone()
}

enum Running<'a, 'm> {
    Frame(FrameRead<'a>),
    Match(HeldInput, usize, &'m mut dyn FnMut(&[u8]) -> Option<usize>),
}

impl Running<'_, '_> {
    fn poll(&mut self) -> Option<Result<Bytes>> {
        let poll = match self {
            Running::Frame(read) => read.poll(Waker::noop()),
            Running::Match(hold, max, matcher) => {
                poll_match(hold, *max, matcher, Some(Waker::noop()))
            }
        };
        match poll {
            Poll::Ready(result) => Some(result),
            Poll::Pending => None,
        }
    }
}

/// Runs `read` on a fresh connection configured by `options` (its limits
/// and watermarks), polling it once before any input and again after every
/// chunk the loop takes; after the last chunk, the peer's FIN if `end`.
///
/// # Panics
///
/// If no event loop can be created (for the handle the connection keeps).
pub fn read_chunked(
    options: &TcpOptions,
    read: ReadHelper<'_>,
    chunks: &[&[u8]],
    end: bool,
) -> Outcome {
    let socket = Socket::detached(loop_handle(), options.config.clone());
    let (result, fed) = {
        let mut running = match read {
            ReadHelper::Delimiter(delimiter, max) => {
                Running::Frame(socket.frame_read(FrameKind::Delimiter(delimiter), max))
            }
            ReadHelper::Exactly(n) => Running::Frame(socket.frame_read(FrameKind::Exactly(n), n)),
            ReadHelper::UntilClose => {
                Running::Frame(socket.frame_read(FrameKind::UntilEnd, socket.max_buffer_size()))
            }
            ReadHelper::Match(max, matcher) => Running::Match(socket.hold_input(), max, matcher),
        };
        let mut fed = 0;
        let mut result = running.poll();
        let mut stuck = false;
        'input: for chunk in chunks {
            let mut rest = *chunk;
            while result.is_none() && !rest.is_empty() {
                let n = socket.feed(rest);
                if n == 0 {
                    // The loop would not read: the read waits for ever.
                    stuck = true;
                    break 'input;
                }
                fed += n;
                rest = &rest[n..];
                result = running.poll();
            }
        }
        if result.is_none() && end && !stuck {
            socket.feed_end();
            result = running.poll();
        }
        (result, fed)
    };
    Outcome {
        result,
        fed,
        buffered: socket.buffered(),
    }
}
