//! tokio's I/O traits on [`EvStream`] (the `tokio` feature), natively: no
//! compat wrapper, no tokio runtime. hyper takes the streams through
//! hyper-util's `TokioIo`, tokio-util's codecs take them as they are.
//!
//! The meanings are those of the futures traits: reads lend the front
//! received chunk (no zero-filling of the caller's buffer), `poll_flush`
//! completes once the output is handed to the kernel, `poll_shutdown` is
//! `poll_close` (flush, then FIN).

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, ReadBuf};

use super::mode::{Readable, Writable};
use super::EvStream;

impl<M: Readable> AsyncRead for EvStream<M> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let poll = this.poll_fill_buf_inner(Some(cx.waker())).map_ok(|chunk| {
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            n
        });
        match this.noting_wait(poll) {
            Poll::Ready(Ok(n)) => {
                this.lent.consume(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<M: Readable> AsyncBufRead for EvStream<M> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        futures_lite::io::AsyncBufRead::poll_fill_buf(self, cx)
    }

    fn consume(self: Pin<&mut Self>, amount: usize) {
        self.get_mut().lent.consume(amount);
    }
}

impl<M: Writable> AsyncWrite for EvStream<M> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_lite::io::AsyncWrite::poll_write(self, cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        futures_lite::io::AsyncWrite::poll_write_vectored(self, cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_lite::io::AsyncWrite::poll_flush(self, cx)
    }

    /// Flushes, then shuts down the write direction (FIN); reading goes on.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_lite::io::AsyncWrite::poll_close(self, cx)
    }
}
