//! IOStream-style reads (turbo.lua, Tornado): until a delimiter, a pattern,
//! a byte count or the close, straight out of the undrained input buffer.
//!
//! Delimiter, count and until-close reads are [`FrameRead`](crate::socket::FrameRead)s:
//! the socket searches its input buffer in place and takes exactly the
//! frame, and while one waits the loop reads past the read high watermark
//! as far as the frame may reach (never past `max_buffer_size`). A
//! user-supplied matcher runs with no lock held, over bytes the read
//! *holds* out of the input buffer (still counted as buffered; given back
//! if the read fails or is cancelled).

use std::future::{poll_fn, Future};
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::mode::Readable;
use super::EvStream;
use crate::error::{Error, Limit, Result};
use crate::socket::{FrameKind, HeldInput, InputEnd};

/// One step of [`read_until_match`](EvStream::read_until_match): pulls what
/// the input buffer has into `hold` and runs `matcher` over (at most
/// `max_bytes` of) it. The frame, or why it never will be, or `Pending`
/// with `waker` stored (for the next append, the end or an error).
pub(crate) fn poll_match(
    hold: &mut HeldInput,
    max_bytes: usize,
    matcher: &mut impl FnMut(&[u8]) -> Option<usize>,
    waker: Option<&Waker>,
) -> Poll<Result<Bytes>> {
    let end = hold.pull(waker);
    let held = hold.held().len();
    // A pattern needs contiguous bytes; only what a frame may span (at
    // most `max_bytes`) is made contiguous.
    let span = held.min(max_bytes);
    if span > 0 {
        let found = matcher(hold.buffer().contiguous(span)).filter(|&at| at <= span);
        if let Some(at) = found {
            let frame = hold.buffer().split_to(at);
            hold.give_back();
            return Poll::Ready(Ok(frame));
        }
    }
    if held >= max_bytes {
        return Poll::Ready(Err(Error::LimitExceeded {
            what: Limit::FrameLength,
            limit: max_bytes,
        }));
    }
    match end {
        InputEnd::Open if hold.is_full() => Poll::Ready(Err(Error::LimitExceeded {
            what: Limit::InputBuffer,
            limit: hold.limit(),
        })),
        InputEnd::Open => {
            // The read deadline runs from the first wait.
            hold.frame_started();
            Poll::Pending
        }
        InputEnd::Ended => Poll::Ready(Err(Error::UnexpectedEof {
            needed: held + 1,
            received: held,
        })),
        InputEnd::Failed(err) => Poll::Ready(Err(err)),
    }
}

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

impl<M: Readable> EvStream<M> {
    /// Runs one frame read, then applies the limit policy to a limit error
    /// (a read to the end has no `max_bytes` of its own: it leaves the
    /// connection as it is).
    async fn read_frame(&mut self, kind: FrameKind<'_>, max: usize) -> Result<Bytes> {
        if let Some(frame) = self.frame_from_lent(kind, max) {
            return Ok(frame);
        }
        self.return_lent();
        let result = {
            let handle = self.socket.loop_handle();
            let mut read = self.socket.frame_read(kind, max);
            poll_fn(|cx| {
                let poll = read.poll(cx.waker());
                if poll.is_pending() {
                    handle.note_wait();
                }
                poll
            })
            .await
        };
        if !matches!(kind, FrameKind::UntilEnd) {
            self.apply_policy(&result);
        }
        result
    }

    /// The common case of a run of short frames, with no lock: the frame
    /// lies whole in the received chunk lent to this stream (by an earlier
    /// frame read or `poll_fill_buf`), and is split off it. The rest stays
    /// lent, and counted as buffered input, for the next read. `None`
    /// sends the read the long way, over the whole input buffer (a frame
    /// across chunks, too long, or not there yet).
    fn frame_from_lent(&mut self, kind: FrameKind<'_>, max: usize) -> Option<Bytes> {
        if matches!(kind, FrameKind::UntilEnd) {
            return None;
        }
        if self.lent.is_empty() {
            self.lent = self.socket.lend_buffered()?;
        }
        let bytes = self.lent.bytes();
        let end = match kind {
            FrameKind::Delimiter(delimiter) => {
                // A frame longer than `max` is the long way's to report.
                let window = &bytes[..bytes.len().min(max)];
                let at = match delimiter {
                    [byte] => memchr::memchr(*byte, window)?,
                    _ => memchr::memmem::find(window, delimiter)?,
                };
                at + delimiter.len()
            }
            FrameKind::Exactly(n) => n,
            FrameKind::UntilEnd => return None,
        };
        (end <= bytes.len() && end <= max).then(|| self.lent.take(end))
    }

    fn apply_policy<T>(&self, result: &Result<T>) {
        if let Err(Error::LimitExceeded { .. }) = result {
            match self.policy {
                LimitPolicy::Close => self.socket.close(),
                LimitPolicy::Pause => self.socket.pause_reading(),
            }
        }
    }

    /// What IOStream-style reads do when their `max_bytes` is exceeded
    /// (close, the default, or pause).
    pub fn set_limit_policy(&mut self, policy: LimitPolicy) {
        self.policy = policy;
    }

    /// Reads up to and including the first `delimiter` (turbo's and
    /// Tornado's `read_until`; named apart from the futures
    /// `read_until(byte, &mut Vec)`, which works too). The frame, delimiter
    /// included, may be at most `max_bytes` long, and comes out as one
    /// `Bytes`, without a copy when it lies in one received chunk.
    ///
    /// # Examples
    ///
    /// ```
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # let peer = std::thread::spawn(move || {
    /// #     use std::io::Write;
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     s.write_all(b"HELO there\r\nrest").unwrap();
    /// # });
    /// futures_lite::future::block_on(async {
    ///     let mut stream = evstream::AsyncIoStream::connect(addr).await?;
    ///     let line = stream.read_until_delimiter(b"\r\n", 1024).await?;
    ///     assert_eq!(&line[..], b"HELO there\r\n");
    ///     Ok::<(), evstream::Error>(())
    /// })?;
    /// # peer.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::LimitExceeded`] (`FrameLength`, naming `max_bytes`) when
    /// `max_bytes` arrive without a delimiter, or (`InputBuffer`) when the
    /// connection's `max_buffer_size` fills first — the bytes stay in the
    /// input buffer and the [`LimitPolicy`] applies;
    /// [`Error::UnexpectedEof`] if the connection ends first (the bytes stay
    /// too); [`Error::InvalidInput`] for an empty delimiter; the
    /// connection's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes leave the input buffer only with the whole frame.
    pub async fn read_until_delimiter(
        &mut self,
        delimiter: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        if delimiter.is_empty() {
            return Err(Error::InvalidInput("empty delimiter".into()));
        }
        self.read_frame(FrameKind::Delimiter(delimiter), max_bytes)
            .await
    }

    /// As [`read_until_delimiter`](Self::read_until_delimiter), without the delimiter in the
    /// result (it is still consumed).
    ///
    /// # Errors
    ///
    /// As [`read_until_delimiter`](Self::read_until_delimiter).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn read_until_excluding(
        &mut self,
        delimiter: &[u8],
        max_bytes: usize,
    ) -> Result<Bytes> {
        let mut frame = self.read_until_delimiter(delimiter, max_bytes).await?;
        frame.truncate(frame.len() - delimiter.len());
        Ok(frame)
    }

    /// Reads a frame whose end `matcher` finds: it sees the buffered bytes
    /// (up to `max_bytes`, made contiguous) and returns the offset one past
    /// the frame's last byte, or `None` to wait for more. The predicate form
    /// of Tornado's `read_until_regex`. The matcher runs with no lock held.
    ///
    /// # Errors
    ///
    /// As [`read_until_delimiter`](Self::read_until_delimiter).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the bytes the read holds go back to the front of the
    /// input buffer, in order.
    pub async fn read_until_match(
        &mut self,
        max_bytes: usize,
        mut matcher: impl FnMut(&[u8]) -> Option<usize>,
    ) -> Result<Bytes> {
        self.return_lent();
        let mut hold = self.socket.hold_input();
        let handle = self.socket.loop_handle().clone();
        let result = poll_fn(|cx| {
            let poll = poll_match(&mut hold, max_bytes, &mut matcher, Some(cx.waker()));
            if poll.is_pending() {
                handle.note_wait();
            }
            poll
        })
        .await;
        // On failure the held bytes go back here.
        drop(hold);
        self.apply_policy(&result);
        result
    }

    /// Reads up to the end of the first match of `pattern` (turbo's
    /// `read_until_pattern`, Tornado's `read_until_regex`). The pattern
    /// runs on what is buffered so far, so a match that more bytes could
    /// extend is taken as it stands.
    ///
    /// # Errors
    ///
    /// As [`read_until_delimiter`](Self::read_until_delimiter).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    #[cfg(feature = "regex")]
    pub async fn read_until_regex(
        &mut self,
        pattern: &regex::bytes::Regex,
        max_bytes: usize,
    ) -> Result<Bytes> {
        self.read_until_match(max_bytes, |bytes| pattern.find(bytes).map(|m| m.end()))
            .await
    }

    /// Reads exactly `n` bytes (turbo's `read_bytes`).
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedEof`] (saying how many arrived; they stay
    /// buffered) if the connection ends first; [`Error::LimitExceeded`] if
    /// `n` is above `max_buffer_size` (use
    /// [`read_bytes_streaming`](Self::read_bytes_streaming)).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn read_bytes(&mut self, n: usize) -> Result<Bytes> {
        if n == 0 {
            return Ok(Bytes::new());
        }
        let limit = self.socket.max_buffer_size();
        if n > limit {
            return Err(Error::LimitExceeded {
                what: Limit::InputBuffer,
                limit,
            });
        }
        self.read_frame(FrameKind::Exactly(n), n).await
    }

    /// Reads everything until the peer closes and returns it as one `Bytes`
    /// (no copy when it all arrived in one chunk).
    ///
    /// # Errors
    ///
    /// The connection's error, or [`Error::LimitExceeded`] when more than
    /// `max_buffer_size` arrives before the end; the bytes stay in the input
    /// buffer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes leave the input buffer only at the end.
    pub async fn read_until_close(&mut self) -> Result<Bytes> {
        let limit = self.socket.max_buffer_size();
        self.read_frame(FrameKind::UntilEnd, limit).await
    }

    /// Hands the next `n` bytes to `on_chunk` as they arrive, chunk by chunk
    /// without copying (turbo's `streaming_callback`).
    ///
    /// # Errors
    ///
    /// [`Error::UnexpectedEof`] if the connection ends first (the chunks
    /// before it were delivered); the connection's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: chunks are taken only as they are delivered.
    pub async fn read_bytes_streaming(
        &mut self,
        n: usize,
        on_chunk: impl FnMut(Bytes),
    ) -> Result<()> {
        self.read_streaming(Some(n), on_chunk).await.map(|_| ())
    }

    /// Hands every chunk to `on_chunk` as it arrives until the peer closes;
    /// returns the byte count. Memory stays bounded whatever the peer sends.
    ///
    /// # Errors
    ///
    /// The connection's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: chunks are taken only as they are delivered.
    pub async fn read_until_close_streaming(
        &mut self,
        on_chunk: impl FnMut(Bytes),
    ) -> Result<usize> {
        self.read_streaming(None, on_chunk).await
    }

    /// Hands received chunks to `on_chunk` as they arrive until `n` bytes
    /// (or, with `None`, the end) have gone by.
    async fn read_streaming(
        &mut self,
        n: Option<usize>,
        mut on_chunk: impl FnMut(Bytes),
    ) -> Result<usize> {
        let mut delivered = 0usize;
        // One deadline for the whole read, not one per chunk.
        let mut deadline = self.socket.read_deadline();
        loop {
            let want = n.map_or(usize::MAX, |n| n - delivered);
            if want == 0 {
                return Ok(delivered);
            }
            let chunk = if self.lent.is_empty() {
                poll_fn(|cx| {
                    let poll = self.socket.poll_chunk(want, Some(cx.waker()));
                    if poll.is_pending() {
                        deadline.waiting();
                        self.socket.loop_handle().note_wait();
                    }
                    poll
                })
                .await
                .map_err(Error::from)?
            } else {
                self.lent.take(want)
            };
            if chunk.is_empty() {
                return match n {
                    Some(n) => Err(Error::UnexpectedEof {
                        needed: n,
                        received: delivered,
                    }),
                    None => Ok(delivered),
                };
            }
            delivered += chunk.len();
            // The callback runs with no lock held.
            on_chunk(chunk);
        }
    }

    /// Callback form of [`read_until_delimiter`](Self::read_until_delimiter): `callback` runs on
    /// the loop thread with the stream (to issue the next read) and the
    /// result.
    pub fn read_until_delimiter_cb(
        self,
        delimiter: impl Into<Vec<u8>>,
        max_bytes: usize,
        callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
    ) {
        let delimiter = delimiter.into();
        self.on_loop(move |mut stream| async move {
            let result = stream.read_until_delimiter(&delimiter, max_bytes).await;
            callback(stream, result)
        });
    }

    /// Callback form of [`read_until_match`](Self::read_until_match).
    pub fn read_until_match_cb(
        self,
        max_bytes: usize,
        matcher: impl FnMut(&[u8]) -> Option<usize> + Send + 'static,
        callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
    ) {
        self.on_loop(move |mut stream| async move {
            let result = stream.read_until_match(max_bytes, matcher).await;
            callback(stream, result)
        });
    }

    /// Callback form of [`read_until_regex`](Self::read_until_regex).
    #[cfg(feature = "regex")]
    pub fn read_until_regex_cb(
        self,
        pattern: regex::bytes::Regex,
        max_bytes: usize,
        callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
    ) {
        self.on_loop(move |mut stream| async move {
            let result = stream.read_until_regex(&pattern, max_bytes).await;
            callback(stream, result)
        });
    }

    /// Callback form of [`read_bytes`](Self::read_bytes), with an optional
    /// streaming callback: with one, `on_chunk` receives the bytes as they
    /// arrive and the final callback gets an empty `Bytes` (turbo's
    /// `read_bytes(n, callback, streaming_callback)`).
    pub fn read_bytes_cb(
        self,
        n: usize,
        on_chunk: Option<Box<dyn FnMut(Bytes) + Send>>,
        callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
    ) {
        self.on_loop(move |mut stream| async move {
            let result = match on_chunk {
                Some(on_chunk) => stream
                    .read_bytes_streaming(n, on_chunk)
                    .await
                    .map(|()| Bytes::new()),
                None => stream.read_bytes(n).await,
            };
            callback(stream, result)
        });
    }

    /// Callback form of [`read_until_close`](Self::read_until_close): the
    /// callback runs on the loop thread with everything received once the
    /// peer closes (or with the error).
    pub fn read_until_close_cb(self, callback: impl FnOnce(Result<Bytes>) + Send + 'static) {
        self.on_loop(move |mut stream| async move { callback(stream.read_until_close().await) });
    }

    /// Callback form of reading until the peer closes, with an optional
    /// streaming callback (then the final callback gets an empty `Bytes`),
    /// turbo's `read_until_close(callback, streaming_callback)`.
    pub fn read_until_close_streaming_cb(
        self,
        on_chunk: Option<Box<dyn FnMut(Bytes) + Send>>,
        callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
    ) {
        self.on_loop(move |mut stream| async move {
            let result = match on_chunk {
                Some(on_chunk) => stream
                    .read_until_close_streaming(on_chunk)
                    .await
                    .map(|_| Bytes::new()),
                None => stream.read_until_close().await,
            };
            callback(stream, result)
        });
    }

    /// Runs `op(self)` as a task on the connection's loop.
    fn on_loop<F, Fut>(self, op: F)
    where
        F: FnOnce(Self) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handle = self.socket.loop_handle().clone();
        handle.spawn(op(self));
    }
}
