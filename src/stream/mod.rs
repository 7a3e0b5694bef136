//! The stream types: cl-async's `async-input-stream`, `async-output-stream`
//! and `async-io-stream`, over a connection whose input buffer the loop
//! leaves undrained.
//!
//! Each type is a view of a [`Socket`]: the bytes live in the connection's
//! buffers, not in the stream, so splitting, reuniting, or reading the same
//! connection from a callback, a futures task and a blocking thread never
//! loses, duplicates or reorders a byte. The one thing a stream keeps of its
//! own is the chunk that [`AsyncBufRead::poll_fill_buf`] handed out (so it
//! can be lent without copying); a stream dropped before consuming it puts
//! the rest back at the front of the input buffer.

mod blocking;
mod read;

pub use blocking::Blocking;
pub use read::LimitPolicy;

use std::fmt;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};

use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result, TimeoutKind};
use crate::event_loop::{default_loop, lock, LoopHandle};
use crate::socket::{Conn, Socket};
use crate::tcp::{tcp_connect, unix_connect, TcpOptions};

/// The read side shared by [`AsyncInputStream`] and [`AsyncIoStream`].
struct ReadHalf {
    socket: Socket,
    /// The chunk `poll_fill_buf` lent out, not yet consumed.
    current: Bytes,
    /// What an IOStream-style read does when its limit is exceeded.
    policy: LimitPolicy,
}

impl ReadHalf {
    fn new(socket: Socket) -> Self {
        ReadHalf {
            socket,
            current: Bytes::new(),
            policy: LimitPolicy::default(),
        }
    }

    fn conn(&self) -> &Arc<Conn> {
        self.socket.conn()
    }

    /// Moves the state out, leaving an empty half behind (whose drop then
    /// has nothing to give back).
    fn take(&mut self) -> ReadHalf {
        ReadHalf {
            socket: self.socket.clone(),
            current: std::mem::take(&mut self.current),
            policy: self.policy,
        }
    }

    /// The read rules of the contract, shared by `Read` (no waker:
    /// `Pending` becomes `WouldBlock`) and `AsyncRead`.
    fn poll_read(&mut self, waker: Option<&Waker>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !self.current.is_empty() {
            let n = dst.len().min(self.current.len());
            dst[..n].copy_from_slice(&self.current[..n]);
            self.current.advance(n);
            return Poll::Ready(Ok(n));
        }
        self.conn().with_input(|input| {
            if !input.buf.is_empty() {
                return Poll::Ready(Ok(input.buf.read(dst)));
            }
            end_or_pending(input, waker).map(|r| r.map(|()| 0))
        })
    }

    fn poll_fill_buf(&mut self, waker: Option<&Waker>) -> Poll<io::Result<&[u8]>> {
        if self.current.is_empty() {
            let next = self
                .conn()
                .with_input(|input| match input.buf.pop_front_chunk() {
                    Some(chunk) => Poll::Ready(Ok(chunk)),
                    None => end_or_pending(input, waker).map(|r| r.map(|()| Bytes::new())),
                });
            match next {
                Poll::Ready(Ok(chunk)) => self.current = chunk,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(&self.current[..]))
    }

    fn consume(&mut self, amount: usize) {
        self.current.advance(amount.min(self.current.len()));
    }

    fn available(&self) -> usize {
        self.current.len() + self.socket.input_buffer_len()
    }

    fn peek(&self, dst: &mut [u8]) -> usize {
        let from_current = dst.len().min(self.current.len());
        dst[..from_current].copy_from_slice(&self.current[..from_current]);
        let input = lock(&self.conn().input);
        from_current + input.buf.copy_out(&mut dst[from_current..])
    }

    /// Collects everything until the end. The collected bytes go back to
    /// the front of the input buffer if this is cancelled or fails.
    async fn read_until_close(&mut self) -> Result<Bytes> {
        let limit = self.conn().config.max_buffer_size;
        let mut collected = Collected {
            conn: self.conn().clone(),
            buf: Buffer::new(),
        };
        if !self.current.is_empty() {
            collected.buf.push(std::mem::take(&mut self.current));
        }
        poll_fn(|cx| {
            self.conn().with_input(|input| {
                while let Some(chunk) = input.buf.pop_front_chunk() {
                    collected.buf.push(chunk);
                }
                if collected.buf.len() > limit {
                    return Poll::Ready(Err(Error::LimitExceeded {
                        what: Limit::InputBuffer,
                        limit,
                    }));
                }
                end_or_pending(input, Some(cx.waker())).map(|r| r.map_err(Error::from))
            })
        })
        .await?;
        let mut buf = std::mem::take(&mut collected.buf);
        let len = buf.len();
        Ok(buf.split_to(len))
    }
}

impl Drop for ReadHalf {
    fn drop(&mut self) {
        if !self.current.is_empty() {
            let mut rest = Buffer::new();
            rest.push(std::mem::take(&mut self.current));
            self.conn()
                .with_input(|input| prepend(&mut input.buf, rest));
        }
    }
}

/// Bytes taken by `read_until_close`; given back unless it completed.
struct Collected {
    conn: Arc<Conn>,
    buf: Buffer,
}

impl Drop for Collected {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let taken = std::mem::take(&mut self.buf);
            self.conn.with_input(|input| prepend(&mut input.buf, taken));
        }
    }
}

/// Puts `front` before what `buf` holds, moving chunks without copying.
/// Only on rare paths (a stream dropped while lending a chunk, a cancelled
/// `read_until_close`), so rebuilding the chain is fine.
pub(crate) fn prepend(buf: &mut Buffer, mut front: Buffer) {
    let mut rest = std::mem::take(buf);
    buf.append(&mut front);
    buf.append(&mut rest);
}

/// With the input buffer empty: the end, the stored error, a pending read
/// timeout, or `Pending` with the waker registered.
fn end_or_pending(input: &mut crate::socket::Input, waker: Option<&Waker>) -> Poll<io::Result<()>> {
    if let Some(err) = &input.error {
        return Poll::Ready(Err(err.clone().into()));
    }
    if input.eof || input.closed {
        return Poll::Ready(Ok(()));
    }
    if input.timed_out {
        input.timed_out = false;
        return Poll::Ready(Err(Error::TimedOut(TimeoutKind::Read).into()));
    }
    if let Some(waker) = waker {
        input.register(waker);
    }
    Poll::Pending
}

/// The write side shared by [`AsyncOutputStream`] and [`AsyncIoStream`].
struct WriteHalf {
    socket: Socket,
}

impl WriteHalf {
    fn conn(&self) -> &Arc<Conn> {
        self.socket.conn()
    }

    fn poll_write(&mut self, waker: Option<&Waker>, data: &[u8]) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.conn()
            .try_write(data, None, waker)
            .map(|r| r.map_err(io::Error::from))
    }

    fn poll_write_vectored(
        &mut self,
        waker: Option<&Waker>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut total = 0;
        for buf in bufs.iter().filter(|b| !b.is_empty()) {
            // Only the first slice may register the waker: once something is
            // accepted the call reports progress instead of waiting.
            let waker = if total == 0 { waker } else { None };
            match self.conn().try_write(buf, None, waker) {
                Poll::Ready(Ok(n)) => {
                    total += n;
                    if n < buf.len() {
                        break;
                    }
                }
                Poll::Ready(Err(err)) if total == 0 => return Poll::Ready(Err(err.into())),
                Poll::Ready(Err(_)) | Poll::Pending if total > 0 => break,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(total))
    }

    fn poll_flush(&mut self, waker: Option<&Waker>) -> Poll<io::Result<()>> {
        self.conn()
            .poll_flushed(waker)
            .map(|r| r.map_err(io::Error::from))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let conn = self.conn().clone();
        match conn.poll_flushed(Some(cx.waker())) {
            Poll::Ready(Ok(())) => {}
            // Closing a connection that is already gone is harmless.
            Poll::Ready(Err(Error::Closed)) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
            Poll::Pending => return Poll::Pending,
        }
        match conn.shutdown_write() {
            Ok(()) | Err(Error::Closed) => {}
            Err(err) => return Poll::Ready(Err(err.into())),
        }
        conn.poll_shut_down(cx.waker())
            .map(|r| r.map_err(io::Error::from))
    }
}

macro_rules! impl_read {
    ($ty:ty, $($half:ident).+) => {
        impl Read for $ty {
            /// Non-blocking: buffered bytes, else `WouldBlock` while the
            /// connection is open, `Ok(0)` only at the end.
            fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
                match self.$($half).+.poll_read(None, dst) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }

        impl AsyncRead for $ty {
            fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, dst: &mut [u8]) -> Poll<io::Result<usize>> {
                self.$($half).+.poll_read(Some(cx.waker()), dst)
            }
        }

        impl AsyncBufRead for $ty {
            /// Lends the front received chunk without copying.
            fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
                self.get_mut().$($half).+.poll_fill_buf(Some(cx.waker()))
            }

            fn consume(mut self: Pin<&mut Self>, amount: usize) {
                self.$($half).+.consume(amount)
            }
        }

        impl $ty {
            /// How many received bytes are ready to read now.
            pub fn available(&self) -> usize {
                self.$($half).+.available()
            }

            /// Copies ready bytes into `dst` without taking them; returns
            /// how many were copied.
            pub fn peek(&self, dst: &mut [u8]) -> usize {
                self.$($half).+.peek(dst)
            }

            /// Non-blocking read, as [`Read::read`] (tokio's `try_read`).
            ///
            /// # Errors
            ///
            /// `WouldBlock` when nothing is ready and the connection is open;
            /// the connection's error once its buffered bytes are read.
            pub fn try_read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
                Read::read(self, dst)
            }

            /// Reads everything until the peer closes and returns it as one
            /// `Bytes` (no copy when it all arrived in one chunk).
            ///
            /// # Errors
            ///
            /// The connection's error, or [`Error::LimitExceeded`] when more
            /// than `max_buffer_size` arrives; the bytes collected so far are
            /// then back at the front of the input buffer.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: if the future is dropped, every byte it collected
            /// goes back to the front of the input buffer, in order.
            pub async fn read_until_close(&mut self) -> Result<Bytes> {
                self.$($half).+.read_until_close().await
            }

            /// What IOStream-style reads do when their `max_bytes` is
            /// exceeded (close, the default, or pause).
            pub fn set_limit_policy(&mut self, policy: LimitPolicy) {
                self.$($half).+.policy = policy;
            }

            /// Reads up to and including the first `delimiter` (turbo's and
            /// Tornado's `read_until`). The frame, delimiter included, may be
            /// at most `max_bytes` long.
            ///
            /// # Errors
            ///
            /// [`Error::LimitExceeded`] (`FrameLength`, naming `max_bytes`)
            /// when `max_bytes` arrive without a delimiter — the bytes stay
            /// in the input buffer and the [`LimitPolicy`] applies;
            /// [`Error::UnexpectedEof`] if the connection ends first (the
            /// bytes stay too); the connection's error.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: every byte taken goes back to the front of the
            /// input buffer.
            pub async fn read_until(&mut self, delimiter: &[u8], max_bytes: usize) -> Result<Bytes> {
                self.$($half).+.read_until(delimiter, max_bytes, true).await
            }

            /// As [`read_until`](Self::read_until), without the delimiter in
            /// the result (it is still consumed).
            ///
            /// # Errors
            ///
            /// As [`read_until`](Self::read_until).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn read_until_excluding(&mut self, delimiter: &[u8], max_bytes: usize) -> Result<Bytes> {
                self.$($half).+.read_until(delimiter, max_bytes, false).await
            }

            /// Reads a frame whose end `matcher` finds: it sees the buffered
            /// bytes (up to `max_bytes`, made contiguous) and returns the
            /// offset one past the frame's last byte, or `None` to wait for
            /// more. The predicate form of Tornado's `read_until_regex`.
            ///
            /// # Errors
            ///
            /// As [`read_until`](Self::read_until).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn read_until_match(
                &mut self,
                max_bytes: usize,
                matcher: impl FnMut(&[u8]) -> Option<usize>,
            ) -> Result<Bytes> {
                self.$($half).+.read_until_match(max_bytes, matcher).await
            }

            /// Reads up to the end of the first match of `pattern` (turbo's
            /// `read_until_pattern`, Tornado's `read_until_regex`). The
            /// pattern runs on what is buffered so far, so a match that more
            /// bytes could extend is taken as it stands.
            ///
            /// # Errors
            ///
            /// As [`read_until`](Self::read_until).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            #[cfg(feature = "regex")]
            pub async fn read_until_regex(&mut self, pattern: &regex::bytes::Regex, max_bytes: usize) -> Result<Bytes> {
                self.$($half).+
                    .read_until_match(max_bytes, |bytes| pattern.find(bytes).map(|m| m.end()))
                    .await
            }

            /// Reads exactly `n` bytes (turbo's `read_bytes`).
            ///
            /// # Errors
            ///
            /// [`Error::UnexpectedEof`] (saying how many arrived; they stay
            /// buffered) if the connection ends first;
            /// [`Error::LimitExceeded`] if `n` is above `max_buffer_size`
            /// (use [`read_bytes_streaming`](Self::read_bytes_streaming)).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn read_bytes(&mut self, n: usize) -> Result<Bytes> {
                self.$($half).+.read_bytes(n).await
            }

            /// Hands the next `n` bytes to `on_chunk` as they arrive, chunk
            /// by chunk without copying (turbo's `streaming_callback`).
            ///
            /// # Errors
            ///
            /// [`Error::UnexpectedEof`] if the connection ends first (the
            /// chunks before it were delivered); the connection's error.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: chunks are taken only as they are delivered.
            pub async fn read_bytes_streaming(&mut self, n: usize, on_chunk: impl FnMut(Bytes)) -> Result<()> {
                self.$($half).+.read_streaming(Some(n), on_chunk).await.map(|_| ())
            }

            /// Hands every chunk to `on_chunk` as it arrives until the peer
            /// closes; returns the byte count. Memory stays bounded whatever
            /// the peer sends.
            ///
            /// # Errors
            ///
            /// The connection's error.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: chunks are taken only as they are delivered.
            pub async fn read_until_close_streaming(&mut self, on_chunk: impl FnMut(Bytes)) -> Result<usize> {
                self.$($half).+.read_streaming(None, on_chunk).await
            }

            /// Callback form of [`read_until`](Self::read_until): `callback`
            /// runs on the loop thread with the stream (to issue the next
            /// read) and the result.
            pub fn read_until_cb(
                self,
                delimiter: impl Into<Vec<u8>>,
                max_bytes: usize,
                callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
            ) {
                let delimiter = delimiter.into();
                self.on_loop(move |mut stream| async move {
                    let result = stream.read_until(&delimiter, max_bytes).await;
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

            /// Callback form of [`read_bytes`](Self::read_bytes), with an
            /// optional streaming callback: with one, `on_chunk` receives
            /// the bytes as they arrive and the final callback gets an empty
            /// `Bytes` (turbo's `read_bytes(n, callback, streaming_callback)`).
            pub fn read_bytes_cb(
                self,
                n: usize,
                on_chunk: Option<Box<dyn FnMut(Bytes) + Send>>,
                callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
            ) {
                self.on_loop(move |mut stream| async move {
                    let result = match on_chunk {
                        Some(on_chunk) => stream.read_bytes_streaming(n, on_chunk).await.map(|()| Bytes::new()),
                        None => stream.read_bytes(n).await,
                    };
                    callback(stream, result)
                });
            }

            /// Callback form of reading until the peer closes, with an
            /// optional streaming callback (then the final callback gets an
            /// empty `Bytes`), turbo's `read_until_close(callback,
            /// streaming_callback)`.
            pub fn read_until_close_streaming_cb(
                self,
                on_chunk: Option<Box<dyn FnMut(Bytes) + Send>>,
                callback: impl FnOnce(Self, Result<Bytes>) + Send + 'static,
            ) {
                self.on_loop(move |mut stream| async move {
                    let result = match on_chunk {
                        Some(on_chunk) => stream.read_until_close_streaming(on_chunk).await.map(|_| Bytes::new()),
                        None => stream.read_until_close().await,
                    };
                    callback(stream, result)
                });
            }

            /// Runs `op(self)` as a task on the connection's loop.
            fn on_loop<F, Fut>(self, op: F)
            where
                F: FnOnce(Self) -> Fut + Send + 'static,
                Fut: std::future::Future<Output = ()> + Send + 'static,
            {
                let handle = self.$($half).+.socket.loop_handle().clone();
                handle.spawn(op(self));
            }
        }
    };
}

macro_rules! impl_write {
    ($ty:ty, $($half:ident).+) => {
        impl Write for $ty {
            /// Non-blocking: accepts what fits under the write high
            /// watermark, `WouldBlock` at it.
            fn write(&mut self, data: &[u8]) -> io::Result<usize> {
                match self.$($half).+.poll_write(None, data) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }

            /// `WouldBlock` until the output buffer has been handed to the
            /// kernel.
            fn flush(&mut self) -> io::Result<()> {
                match self.$($half).+.poll_flush(None) {
                    Poll::Ready(result) => result,
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }

        impl AsyncWrite for $ty {
            fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
                self.$($half).+.poll_write(Some(cx.waker()), data)
            }

            fn poll_write_vectored(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                self.$($half).+.poll_write_vectored(Some(cx.waker()), bufs)
            }

            /// Completes when the output buffer has been handed to the
            /// kernel.
            fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.$($half).+.poll_flush(Some(cx.waker()))
            }

            /// Flushes, then shuts down the write direction (FIN). Reading
            /// goes on. Idempotent.
            fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.$($half).+.poll_close(cx)
            }
        }

        impl $ty {
            /// Queues `data` without copying it, as much as fits under the
            /// write high watermark; returns how many bytes were taken.
            ///
            /// # Errors
            ///
            /// `WouldBlock` at the watermark; [`Error::Closed`],
            /// [`Error::WriteClosed`] or the connection's error.
            pub fn try_write_bytes(&mut self, data: &Bytes) -> io::Result<usize> {
                match self.$($half).+.conn().try_write(data, Some(data), None) {
                    Poll::Ready(result) => result.map_err(io::Error::from),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }

            /// Writes all of `data` without copying it, waiting while the
            /// output is at its write high watermark.
            ///
            /// # Errors
            ///
            /// [`Error::Closed`], [`Error::WriteClosed`], a write timeout or
            /// the connection's error.
            ///
            /// # Cancel safety
            ///
            /// Not cancel safe: if dropped, a prefix of `data` may already be
            /// queued and will be sent.
            pub async fn write_all_bytes(&mut self, mut data: Bytes) -> Result<()> {
                let conn = self.$($half).+.conn().clone();
                while !data.is_empty() {
                    let n = poll_fn(|cx| conn.try_write(&data, Some(&data), Some(cx.waker()))).await?;
                    data.advance(n);
                }
                Ok(())
            }

            /// How many bytes wait in the output buffer.
            pub fn output_buffer_len(&self) -> usize {
                self.$($half).+.socket.output_buffer_len()
            }

            /// Writes `data` (without copying it, waiting at the write high
            /// watermark) and completes once it has been handed to the
            /// kernel: turbo's `write(data, callback)` as a future.
            ///
            /// # Errors
            ///
            /// As [`write_all_bytes`](Self::write_all_bytes), or
            /// [`Error::Closed`] if the connection is released before the
            /// bytes went out.
            ///
            /// # Cancel safety
            ///
            /// Not cancel safe: if dropped, a prefix of `data` may already
            /// be queued and will be sent.
            pub async fn send(&mut self, data: impl Into<Bytes>) -> Result<()> {
                self.write_all_bytes(data.into()).await?;
                let conn = self.$($half).+.conn().clone();
                let end = lock(&conn.output).accepted;
                poll_fn(|cx| conn.poll_sent(end, cx.waker())).await
            }

            /// Callback form of [`send`](Self::send): `callback` runs on the
            /// loop thread with the stream and the result once `data` has
            /// reached the kernel.
            pub fn send_cb(
                self,
                data: impl Into<Bytes>,
                callback: impl FnOnce(Self, Result<()>) + Send + 'static,
            ) {
                let data = data.into();
                let handle = self.$($half).+.socket.loop_handle().clone();
                let mut stream = self;
                handle.spawn(async move {
                    let result = stream.send(data).await;
                    callback(stream, result)
                });
            }
        }
    };
}

/// The read side of a connection: cl-async's `async-input-stream`.
///
/// Implements `std::io::Read` (non-blocking), and `AsyncRead` and
/// `AsyncBufRead` (zero-copy `poll_fill_buf`). Obtained from
/// [`AsyncIoStream::into_split`] or [`AsyncInputStream::new`].
pub struct AsyncInputStream {
    read: ReadHalf,
}

/// The write side of a connection: cl-async's `async-output-stream`.
///
/// Implements `std::io::Write` (non-blocking, `WouldBlock` at the write high
/// watermark) and `AsyncWrite` (`Pending` there). Closing it
/// (`poll_close`) shuts down the write direction only.
pub struct AsyncOutputStream {
    write: WriteHalf,
}

/// Both sides of a connection: cl-async's `async-io-stream`.
///
/// A view of a [`Socket`] whose input buffer the loop leaves undrained
/// (dont-drain mode). It implements, over that connection's buffers:
///
/// * `std::io::Read` and `Write`, **non-blocking**: `read` returns buffered
///   bytes, `Err(WouldBlock)` when none are buffered and the connection is
///   open, and `Ok(0)` only at the end once every byte was read; `write`
///   accepts what fits under the write high watermark; `flush` returns
///   `WouldBlock` until the output is handed to the kernel. For std
///   consumers that expect blocking calls, wrap it in [`Blocking`].
/// * `AsyncRead`, `AsyncBufRead` (the front received chunk is lent without
///   copying) and `AsyncWrite` (backpressure at the write high watermark;
///   `poll_flush` = output handed to the kernel; `poll_close` = flush then
///   shut down the write side). They never return `WouldBlock` or
///   `Interrupted`.
///
/// # Who may do what
///
/// The stream is `Send + Sync`; move it (or its split halves) to any thread
/// or executor. Several readers of one connection (a `notify_cb`, a task
/// holding this stream, a thread with a [`Socket`] clone) each take bytes
/// atomically from the same input buffer: no byte is lost or duplicated,
/// and each reader sees its bytes in order. Writers are likewise serialised
/// per call. Blocking calls ([`Blocking`]) must not run on the loop thread;
/// there they return [`Error::WouldDeadlock`] instead of waiting.
///
/// # Lifetime
///
/// A connection made without callbacks (as by [`AsyncIoStream::connect`])
/// is closed gracefully when its last stream or socket handle is dropped.
///
/// # Examples
///
/// ```
/// use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
/// use evstream::AsyncIoStream;
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # let peer = std::thread::spawn(move || {
/// #     use std::io::{Read, Write};
/// #     let (mut s, _) = listener.accept().unwrap();
/// #     let mut b = [0u8; 4];
/// #     s.read_exact(&mut b).unwrap();
/// #     s.write_all(b"pong").unwrap();
/// # });
/// futures_lite::future::block_on(async {
///     let mut stream = AsyncIoStream::connect(&addr.to_string()).await?;
///     stream.write_all(b"ping").await?;
///     let mut reply = [0u8; 4];
///     stream.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"pong");
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # peer.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncIoStream {
    read: ReadHalf,
    write: WriteHalf,
}

impl_read!(AsyncInputStream, read);
impl_read!(AsyncIoStream, read);
impl_write!(AsyncOutputStream, write);
impl_write!(AsyncIoStream, write);

impl fmt::Debug for AsyncIoStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncIoStream")
            .field("socket", &self.read.socket)
            .field("lent", &self.read.current.len())
            .finish()
    }
}

impl fmt::Debug for AsyncInputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncInputStream")
            .field("socket", &self.read.socket)
            .finish()
    }
}

impl fmt::Debug for AsyncOutputStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncOutputStream")
            .field("socket", &self.write.socket)
            .finish()
    }
}

impl AsyncInputStream {
    /// A read-only stream over `socket`'s input buffer. Meant for sockets in
    /// dont-drain mode; in drain mode the loop hands bytes to `read_cb` and
    /// the stream only sees the end.
    pub fn new(socket: Socket) -> Self {
        AsyncInputStream {
            read: ReadHalf::new(socket),
        }
    }

    /// The connection's socket handle.
    pub fn socket(&self) -> &Socket {
        &self.read.socket
    }

    /// Puts the halves back together. Every byte buffered in either half
    /// (including a chunk lent by `poll_fill_buf`) is kept.
    ///
    /// # Errors
    ///
    /// The halves back, if they belong to different connections.
    pub fn reunite(
        self,
        output: AsyncOutputStream,
    ) -> std::result::Result<AsyncIoStream, ReuniteError> {
        AsyncIoStream::reunite(self, output)
    }

    /// Calls `callback` on the loop thread with everything received once
    /// the peer closes (or with the error): the callback form of
    /// [`read_until_close`](AsyncInputStream::read_until_close).
    pub fn read_until_close_cb(self, callback: impl FnOnce(Result<Bytes>) + Send + 'static) {
        let handle = self.read.socket.loop_handle().clone();
        let mut stream = self;
        handle.spawn(async move { callback(stream.read_until_close().await) });
    }
}

impl AsyncOutputStream {
    /// A write-only stream over `socket`'s output buffer.
    pub fn new(socket: Socket) -> Self {
        AsyncOutputStream {
            write: WriteHalf { socket },
        }
    }

    /// The connection's socket handle.
    pub fn socket(&self) -> &Socket {
        &self.write.socket
    }
}

impl AsyncIoStream {
    /// A stream over `socket`'s buffers (see the type's docs). The socket
    /// should be in dont-drain mode (the default when it has no `read_cb`).
    pub fn new(socket: Socket) -> Self {
        AsyncIoStream {
            read: ReadHalf::new(socket.clone()),
            write: WriteHalf { socket },
        }
    }

    /// Connects to `addr` (`"host:port"`, `"[v6]:port"`) on the default
    /// loop, which starts on a background thread on first use, and
    /// completes once connected — the one-line way in for a user with no
    /// loop of their own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an address without a port,
    /// [`Error::Resolve`], [`Error::Refused`], [`Error::TimedOut`]…
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future drops the half-made connection,
    /// which is then closed.
    pub async fn connect(addr: &str) -> Result<AsyncIoStream> {
        let (host, port) = split_host_port(addr)?;
        Self::connect_with(&default_loop(), host, port, TcpOptions::new()).await
    }

    /// Connects to `host:port` on `handle`'s loop with `options` (which must
    /// not set a drain-mode `read_cb`) and completes once connected.
    ///
    /// # Errors
    ///
    /// As [`connect`](AsyncIoStream::connect), plus invalid options.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_with(
        handle: &LoopHandle,
        host: &str,
        port: u16,
        options: TcpOptions,
    ) -> Result<AsyncIoStream> {
        let socket = tcp_connect(handle, host, port, options.dont_drain(true))?;
        let conn = socket.conn().clone();
        poll_fn(|cx| conn.poll_connected(cx.waker())).await?;
        Ok(AsyncIoStream::new(socket))
    }

    /// Connects to the Unix domain socket at `path` on the default loop and
    /// completes once connected (Godot's `StreamPeerUDS`): the same stream,
    /// over a local socket.
    ///
    /// # Errors
    ///
    /// `Error::Io` (`NotFound`) when nothing is at `path`,
    /// [`Error::Refused`] when nothing listens there.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_unix(path: impl AsRef<std::path::Path>) -> Result<AsyncIoStream> {
        let socket = unix_connect(&default_loop(), path, TcpOptions::new().stream(true))?;
        let conn = socket.conn().clone();
        poll_fn(|cx| conn.poll_connected(cx.waker())).await?;
        Ok(AsyncIoStream::new(socket))
    }

    /// The connection's socket handle (addresses, timeouts, pause/resume,
    /// close, user data).
    pub fn socket(&self) -> &Socket {
        &self.read.socket
    }

    /// Takes back the chunk `poll_fill_buf` lent out, for a layer (a codec)
    /// that reads the input buffer directly.
    pub(crate) fn take_lent(&mut self) -> Bytes {
        std::mem::take(&mut self.read.current)
    }

    /// Hands a lent chunk back (see [`take_lent`](Self::take_lent)).
    pub(crate) fn put_lent(&mut self, chunk: Bytes) {
        debug_assert!(self.read.current.is_empty());
        self.read.current = chunk;
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.read.socket.peer_addr()
    }

    /// This side's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.read.socket.local_addr()
    }

    /// Closes the whole connection gracefully (flush, FIN, release); see
    /// [`Socket::close`]. To shut down only the write side, use
    /// `AsyncWriteExt::close` or [`Socket::shutdown_write`].
    pub fn close(&self) {
        self.read.socket.close();
    }

    /// Splits into a read half and a write half, usable from different
    /// threads. Closing the write half shuts down the write direction only.
    pub fn into_split(mut self) -> (AsyncInputStream, AsyncOutputStream) {
        let read = self.read.take();
        let write = WriteHalf {
            socket: self.write.socket.clone(),
        };
        (AsyncInputStream { read }, AsyncOutputStream { write })
    }

    /// Puts split halves back together, keeping every buffered byte.
    ///
    /// # Errors
    ///
    /// The halves back, if they belong to different connections.
    pub fn reunite(
        mut input: AsyncInputStream,
        output: AsyncOutputStream,
    ) -> std::result::Result<AsyncIoStream, ReuniteError> {
        if input.read.socket != output.write.socket {
            return Err(ReuniteError { input, output });
        }
        let read = input.read.take();
        Ok(AsyncIoStream {
            read,
            write: WriteHalf {
                socket: output.write.socket.clone(),
            },
        })
    }

    /// A blocking adaptor for std consumers (`io::copy`, `BufReader`,
    /// parsers taking `impl Read`); see [`Blocking`].
    pub fn blocking(self) -> Blocking<AsyncIoStream> {
        Blocking::new(self)
    }

    /// Calls `callback` on the loop thread with everything received once
    /// the peer closes (or with the error): the callback form of
    /// [`read_until_close`](AsyncIoStream::read_until_close).
    pub fn read_until_close_cb(self, callback: impl FnOnce(Result<Bytes>) + Send + 'static) {
        let handle = self.read.socket.loop_handle().clone();
        let mut stream = self;
        handle.spawn(async move { callback(stream.read_until_close().await) });
    }
}

impl AsyncInputStream {
    /// A blocking adaptor; see [`Blocking`].
    pub fn blocking(self) -> Blocking<AsyncInputStream> {
        Blocking::new(self)
    }
}

impl AsyncOutputStream {
    /// A blocking adaptor; see [`Blocking`].
    pub fn blocking(self) -> Blocking<AsyncOutputStream> {
        Blocking::new(self)
    }
}

impl From<Socket> for AsyncIoStream {
    fn from(socket: Socket) -> Self {
        AsyncIoStream::new(socket)
    }
}

/// The halves given to [`AsyncIoStream::reunite`] belong to different
/// connections; both are handed back.
pub struct ReuniteError {
    /// The read half.
    pub input: AsyncInputStream,
    /// The write half.
    pub output: AsyncOutputStream,
}

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different connections")
    }
}

impl std::error::Error for ReuniteError {}

/// Splits `"host:port"` or `"[v6]:port"`.
fn split_host_port(addr: &str) -> Result<(&str, u16)> {
    let invalid = || Error::InvalidInput(format!("{addr:?} is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port))
}

/// Stream mode for [`TcpOptions`] (cl-async's `:stream t`).
impl TcpOptions {
    /// Stream mode: dont-drain, so the bytes wait in the input buffer for a
    /// stream to read them (cl-async's `:stream t`).
    pub fn stream(self, on: bool) -> Self {
        self.dont_drain(on)
    }

    /// Stream mode with a read callback that receives the connection's
    /// stream: `callback(&mut stream)` runs when new bytes are ready and
    /// only signals it; read as much as you like, the rest stays buffered
    /// (and the callback runs again while it keeps taking some).
    pub fn stream_read_cb(
        self,
        mut callback: impl FnMut(&mut AsyncIoStream) + Send + 'static,
    ) -> Self {
        self.notify_cb(move |socket| {
            let mut stream = AsyncIoStream::new(socket.clone());
            callback(&mut stream);
        })
    }

    /// Stream mode: `callback(stream)` receives each new connection's
    /// stream to keep, move to a thread or hand to an executor.
    pub fn stream_connect_cb(
        self,
        mut callback: impl FnMut(AsyncIoStream) + Send + 'static,
    ) -> Self {
        self.dont_drain(true)
            .connect_cb(move |socket| callback(AsyncIoStream::new(socket.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(split_host_port("localhost:80").unwrap(), ("localhost", 80));
        assert_eq!(split_host_port("[::1]:8080").unwrap(), ("::1", 8080));
        assert_eq!(split_host_port("127.0.0.1:1").unwrap(), ("127.0.0.1", 1));
        assert!(split_host_port("nohost").is_err());
        assert!(split_host_port("host:notaport").is_err());
    }

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        fn check(stream: &mut AsyncIoStream, input: &mut AsyncInputStream) {
            assert_send(&stream.read_until_close());
            assert_send(&input.read_until_close());
            assert_send(&AsyncIoStream::connect("127.0.0.1:1"));
        }
        let _ = check;
    }

    #[test]
    fn streams_are_send_sync() {
        assert_send_sync::<AsyncIoStream>();
        assert_send_sync::<AsyncInputStream>();
        assert_send_sync::<AsyncOutputStream>();
    }
}
