//! IOStream-style reads (turbo.lua, Tornado): until a delimiter, a pattern,
//! a byte count or the close, straight out of the undrained input buffer.
//!
//! Every read runs on one engine, [`ReadHalf::read_frame`]: it looks for the
//! end of a frame in the input buffer itself and, when the frame is there,
//! takes exactly its bytes (without copying when they lie in one received
//! chunk). While the frame is incomplete it takes the received chunks into a
//! private buffer, so the connection's input buffer drains and reading goes
//! on even when the frame is longer than the read high watermark; that
//! private buffer is bounded by the read's `max_bytes` and goes back to the
//! front of the input buffer if the read fails or is cancelled.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;

use super::{end_or_pending, prepend, Collected, ReadHalf};
use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result};
use crate::socket::Conn;

/// What a read does to the connection when its `max_bytes` is exceeded.
///
/// In both cases the read fails with [`Error::LimitExceeded`] and every
/// byte stays in the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitPolicy {
    /// Close the connection gracefully (Tornado's behaviour). The default:
    /// a peer that breaks the protocol's limits is usually done.
    #[default]
    Close,
    /// Pause reading (turbo.lua's behaviour): the connection stays open and
    /// the application decides, e.g. drains the bytes and resumes.
    Pause,
}

/// Counts an IOStream-style read in progress (`Socket::reading`).
struct ReadingGuard(Arc<Conn>);

impl ReadingGuard {
    fn new(conn: &Arc<Conn>) -> Self {
        conn.reads_in_progress.fetch_add(1, Ordering::AcqRel);
        ReadingGuard(conn.clone())
    }
}

impl Drop for ReadingGuard {
    fn drop(&mut self) {
        self.0.reads_in_progress.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ReadHalf {
    /// Waits for a frame whose end `find(buffer, searched)` reports (an
    /// offset one past its last byte; `searched` is how much of `buffer` an
    /// earlier call already looked at), at most `max` bytes long, and takes
    /// it. `find` runs with no lock held, except when `trusted` (evstream's
    /// own finders), which may look in the input buffer in place.
    pub(super) async fn read_frame(
        &mut self,
        max: usize,
        trusted: bool,
        mut find: impl FnMut(&mut Buffer, usize) -> Option<usize>,
    ) -> Result<Bytes> {
        // The common case first, under one lock and with nothing to set up:
        // the whole frame is already buffered.
        if trusted && self.current.is_empty() {
            let ready = self.conn().with_input(|input| {
                let end = find(&mut input.buf, 0)?;
                (end <= max).then(|| input.buf.split_to(end))
            });
            if let Some(frame) = ready {
                return Ok(frame);
            }
        }
        let conn = self.conn().clone();
        let _reading = ReadingGuard::new(&conn);
        let mut pending = Collected {
            conn: conn.clone(),
            buf: Buffer::new(),
        };
        if !self.current.is_empty() {
            pending.buf.push(std::mem::take(&mut self.current));
        }
        let mut searched = 0;
        let too_long = || Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: max,
        };
        let result = poll_fn(|cx| {
            // Under the lock: take what arrived (or, for our own finders,
            // the frame itself when it is all there) and note the end.
            let taken = conn.with_input(|input| {
                if trusted && pending.buf.is_empty() {
                    if let Some(end) = find(&mut input.buf, 0) {
                        return Err(if end <= max {
                            Ok(input.buf.split_to(end))
                        } else {
                            Err(too_long())
                        });
                    }
                    searched = input.buf.len();
                }
                pending.buf.append(&mut input.buf);
                Ok(end_or_pending(input, Some(cx.waker())))
            });
            let end = match taken {
                Err(frame) => return Poll::Ready(frame),
                Ok(end) => end,
            };
            // No lock held: look for the frame in what was taken.
            if let Some(frame_end) = find(&mut pending.buf, searched) {
                if frame_end > max {
                    return Poll::Ready(Err(too_long()));
                }
                let frame = pending.buf.split_to(frame_end);
                // What follows the frame goes back, ahead of anything that
                // arrived meanwhile.
                let rest = std::mem::take(&mut pending.buf);
                if !rest.is_empty() {
                    conn.with_input(|input| prepend(&mut input.buf, rest));
                }
                return Poll::Ready(Ok(frame));
            }
            searched = pending.buf.len();
            if pending.buf.len() >= max {
                return Poll::Ready(Err(too_long()));
            }
            match end {
                Poll::Ready(Ok(())) => Poll::Ready(Err(Error::UnexpectedEof {
                    needed: pending.buf.len() + 1,
                    received: pending.buf.len(),
                })),
                Poll::Ready(Err(err)) => Poll::Ready(Err(Error::from(err))),
                // The waker was registered under the lock: bytes that
                // arrived since wake this task again.
                Poll::Pending => Poll::Pending,
            }
        })
        .await;
        // On failure `pending` gives its bytes back here, outside the lock.
        drop(pending);
        if let Err(Error::LimitExceeded { .. }) = &result {
            match self.policy {
                LimitPolicy::Close => self.socket.close(),
                LimitPolicy::Pause => self.socket.pause_reading(),
            }
        }
        result
    }

    pub(super) async fn read_until(
        &mut self,
        delimiter: &[u8],
        max: usize,
        keep: bool,
    ) -> Result<Bytes> {
        if delimiter.is_empty() {
            return Err(Error::InvalidInput("empty delimiter".into()));
        }
        let overlap = delimiter.len() - 1;
        let mut frame = self
            .read_frame(max, true, |buf, searched| {
                buf.search_from(searched.saturating_sub(overlap), delimiter)
                    .map(|at| at + delimiter.len())
            })
            .await?;
        if !keep {
            frame.truncate(frame.len() - delimiter.len());
        }
        Ok(frame)
    }

    pub(super) async fn read_until_match(
        &mut self,
        max: usize,
        mut matcher: impl FnMut(&[u8]) -> Option<usize>,
    ) -> Result<Bytes> {
        // The matcher is user code: it runs with no lock held.
        self.read_frame(max, false, |buf, _| {
            // A pattern needs contiguous bytes; only what a frame may span
            // (at most `max`) is made contiguous.
            let n = buf.len().min(max);
            if n == 0 {
                return None;
            }
            matcher(buf.contiguous(n)).filter(|&end| end <= n)
        })
        .await
    }

    pub(super) async fn read_bytes(&mut self, n: usize) -> Result<Bytes> {
        if n == 0 {
            return Ok(Bytes::new());
        }
        let limit = self.conn().config.max_buffer_size;
        if n > limit {
            return Err(Error::LimitExceeded {
                what: Limit::InputBuffer,
                limit,
            });
        }
        let result = self
            .read_frame(n, true, |buf, _| (buf.len() >= n).then_some(n))
            .await;
        match result {
            Err(Error::UnexpectedEof { received, .. }) => Err(Error::UnexpectedEof {
                needed: n,
                received,
            }),
            other => other,
        }
    }

    /// Hands received chunks to `on_chunk` as they arrive until `n` bytes
    /// (or, with `None`, the end) have gone by.
    pub(super) async fn read_streaming(
        &mut self,
        n: Option<usize>,
        mut on_chunk: impl FnMut(Bytes),
    ) -> Result<usize> {
        let conn = self.conn().clone();
        let _reading = ReadingGuard::new(&conn);
        let mut delivered = 0usize;
        let mut batch = Vec::new();
        if !self.current.is_empty() {
            let mut first = std::mem::take(&mut self.current);
            if let Some(n) = n {
                if first.len() > n {
                    self.current = first.split_off(n);
                }
            }
            delivered += first.len();
            on_chunk(first);
        }
        loop {
            if n.is_some_and(|n| delivered >= n) {
                return Ok(delivered);
            }
            let end = poll_fn(|cx| {
                conn.with_input(|input| {
                    while let Some(chunk) = input.buf.front_chunk() {
                        let want = n.map_or(usize::MAX, |n| n - delivered);
                        let taken = want.min(chunk.len());
                        if taken == 0 {
                            break;
                        }
                        delivered += taken;
                        batch.push(input.buf.split_to(taken));
                    }
                    if !batch.is_empty() {
                        return Poll::Ready(Ok(false));
                    }
                    end_or_pending(input, Some(cx.waker()))
                        .map(|r| r.map(|()| true).map_err(Error::from))
                })
            })
            .await?;
            // The callback runs with no lock held.
            for chunk in batch.drain(..) {
                on_chunk(chunk);
            }
            if end {
                return match n {
                    Some(n) if delivered < n => Err(Error::UnexpectedEof {
                        needed: n,
                        received: delivered,
                    }),
                    _ => Ok(delivered),
                };
            }
        }
    }
}
