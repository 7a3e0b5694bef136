//! The std and futures I/O traits on [`EvStream`], written once for every
//! mode that can read and every mode that can write.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_lite::io::{AsyncBufRead, AsyncRead, AsyncWrite};

use super::mode::{Mode, Readable, Writable};
use super::EvStream;

impl<M: Mode> EvStream<M> {
    /// Passes `poll` on, noting a wait (a hang the loop can detect is
    /// logged: see `LoopHandle::note_wait`).
    pub(super) fn noting_wait<T>(&self, poll: Poll<T>) -> Poll<T> {
        if poll.is_pending() {
            self.socket.loop_handle().note_wait();
        }
        poll
    }
}

impl<M: Readable> EvStream<M> {
    /// The read rules of the contract, shared by `Read` (no waker: `Pending`
    /// becomes `WouldBlock`) and `AsyncRead`.
    pub(super) fn poll_read_inner(
        &mut self,
        waker: Option<&Waker>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if dst.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if !self.lent.is_empty() {
            let n = dst.len().min(self.lent.len());
            dst[..n].copy_from_slice(&self.lent.bytes()[..n]);
            self.lent.consume(n);
            return Poll::Ready(Ok(n));
        }
        self.socket.poll_read(dst, waker)
    }

    pub(super) fn poll_fill_buf_inner(&mut self, waker: Option<&Waker>) -> Poll<io::Result<&[u8]>> {
        if self.lent.is_empty() {
            match self.socket.poll_lend(waker) {
                Poll::Ready(Ok(lent)) => self.lent = lent,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(self.lent.bytes()))
    }

    /// How many received bytes are ready to read now (including a chunk
    /// lent by `poll_fill_buf` and not consumed yet).
    pub fn available(&self) -> usize {
        self.socket.input_buffer_len()
    }

    /// Copies ready bytes into `dst` without taking them and without
    /// waiting; returns how many were copied (0 when none are buffered).
    /// The async [`peek`](EvStream::peek) waits for some.
    pub fn peek_buffered(&self, dst: &mut [u8]) -> usize {
        let lent = self.lent.bytes();
        let from_lent = dst.len().min(lent.len());
        dst[..from_lent].copy_from_slice(&lent[..from_lent]);
        from_lent + self.socket.peek_input(&mut dst[from_lent..])
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
}

impl<M: Readable> Read for EvStream<M> {
    /// Non-blocking: buffered bytes, else `WouldBlock` while the connection
    /// is open, `Ok(0)` only at the end.
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        match self.poll_read_inner(None, dst) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<M: Readable> AsyncRead for EvStream<M> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.poll_read_inner(Some(cx.waker()), dst);
        this.noting_wait(poll)
    }
}

impl<M: Readable> AsyncBufRead for EvStream<M> {
    /// Lends the front received chunk without copying.
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        let this = self.get_mut();
        if this.lent.is_empty() {
            let ready = this.poll_fill_buf_inner(Some(cx.waker())).map_ok(drop);
            if this.noting_wait(ready)?.is_pending() {
                return Poll::Pending;
            }
        }
        this.poll_fill_buf_inner(Some(cx.waker()))
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        self.get_mut().lent.consume(amount);
    }
}

impl<M: Writable> EvStream<M> {
    pub(super) fn poll_write_inner(
        &mut self,
        waker: Option<&Waker>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.socket
            .try_write(data, None, waker)
            .map(|result| result.map(|(n, _)| n).map_err(io::Error::from))
    }

    pub(super) fn poll_write_vectored_inner(
        &mut self,
        waker: Option<&Waker>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut total = 0;
        for buf in bufs.iter().filter(|b| !b.is_empty()) {
            // Only the first slice may register the waker: once something is
            // accepted the call reports progress instead of waiting.
            let waker = if total == 0 { waker } else { None };
            match self.socket.try_write(buf, None, waker) {
                Poll::Ready(Ok((n, _))) => {
                    total += n;
                    if n < buf.len() {
                        break;
                    }
                }
                Poll::Ready(Err(_)) | Poll::Pending if total > 0 => break,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err.into())),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(total))
    }

    pub(super) fn poll_close_inner(&mut self, waker: &Waker) -> Poll<io::Result<()>> {
        self.socket
            .poll_close_write(waker)
            .map(|r| r.map_err(io::Error::from))
    }

    pub(super) fn poll_flush_inner(&mut self, waker: Option<&Waker>) -> Poll<io::Result<()>> {
        self.socket
            .poll_flushed(waker)
            .map(|r| r.map_err(io::Error::from))
    }
}

impl<M: Writable> EvStream<M> {
    /// Non-blocking write, as [`Write::write`] (tokio's `try_write`):
    /// accepts what fits under the write high watermark.
    ///
    /// # Errors
    ///
    /// `WouldBlock` at the watermark; `Closed`, `WriteClosed` or the
    /// connection's error.
    pub fn try_write(&mut self, data: &[u8]) -> io::Result<usize> {
        Write::write(self, data)
    }
}

impl<M: Writable> Write for EvStream<M> {
    /// Non-blocking: accepts what fits under the write high watermark,
    /// `WouldBlock` at it.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self.poll_write_inner(None, data) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// `WouldBlock` until the output buffer has been handed to the kernel.
    fn flush(&mut self) -> io::Result<()> {
        match self.poll_flush_inner(None) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl<M: Writable> AsyncWrite for EvStream<M> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.poll_write_inner(Some(cx.waker()), data);
        this.noting_wait(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.poll_write_vectored_inner(Some(cx.waker()), bufs);
        this.noting_wait(poll)
    }

    /// Completes when the output buffer has been handed to the kernel.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.poll_flush_inner(Some(cx.waker()));
        this.noting_wait(poll)
    }

    /// Flushes, then shuts down the write direction (FIN). Reading goes on.
    /// Idempotent.
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.poll_close_inner(cx.waker());
        this.noting_wait(poll)
    }
}
