//! Writes beyond `AsyncWrite`: zero-copy writes of `Bytes`, and writes with
//! completion (turbo's `write(data, callback)`).

use std::future::poll_fn;

use bytes::{Buf, Bytes};

use super::mode::Writable;
use super::EvStream;
use crate::error::Result;

impl<M: Writable> EvStream<M> {
    /// Queues `data` without copying it, as much as fits under the write
    /// high watermark; returns how many bytes were taken.
    ///
    /// # Errors
    ///
    /// `WouldBlock` at the watermark; [`Error::Closed`](crate::Error::Closed),
    /// [`Error::WriteClosed`](crate::Error::WriteClosed) or the connection's
    /// error.
    pub fn try_write_bytes(&mut self, data: &Bytes) -> std::io::Result<usize> {
        match self.socket.try_write(data, Some(data), None) {
            std::task::Poll::Ready(result) => result.map(|(n, _)| n).map_err(std::io::Error::from),
            std::task::Poll::Pending => Err(std::io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Writes all of `data` without copying it, waiting while the output is
    /// at its write high watermark; returns the offset in the connection's
    /// output at which `data` ends.
    async fn write_all_tracked(&mut self, mut data: Bytes) -> Result<u64> {
        let mut end = 0;
        while !data.is_empty() {
            let (n, at) = poll_fn(|cx| {
                let poll = self.socket.try_write(&data, Some(&data), Some(cx.waker()));
                self.noting_wait(poll)
            })
            .await?;
            data.advance(n);
            end = at;
        }
        Ok(end)
    }

    /// Writes all of `data` without copying it, waiting while the output is
    /// at its write high watermark.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed), [`Error::WriteClosed`](crate::Error::WriteClosed),
    /// a write timeout or the connection's error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped, a prefix of `data` may already be
    /// queued and will be sent.
    pub async fn write_all_bytes(&mut self, data: Bytes) -> Result<()> {
        self.write_all_tracked(data).await.map(drop)
    }

    /// How many bytes wait in the output buffer.
    pub fn output_buffer_len(&self) -> usize {
        self.socket.output_buffer_len()
    }

    /// Writes `data` (without copying it, waiting at the write high
    /// watermark) and completes once it has been handed to the kernel:
    /// turbo's `write(data, callback)` as a future.
    ///
    /// # Errors
    ///
    /// As [`write_all_bytes`](Self::write_all_bytes), or
    /// [`Error::Closed`](crate::Error::Closed) if the connection is released
    /// before the bytes went out.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped, a prefix of `data` may already be queued
    /// and will be sent.
    pub async fn send(&mut self, data: impl Into<Bytes>) -> Result<()> {
        let end = self.write_all_tracked(data.into()).await?;
        poll_fn(|cx| {
            let poll = self.socket.poll_sent(end, cx.waker());
            self.noting_wait(poll)
        })
        .await
    }

    /// Callback form of [`send`](Self::send): `callback` runs on the loop
    /// thread with the stream and the result once `data` has reached the
    /// kernel.
    pub fn send_cb(
        self,
        data: impl Into<Bytes>,
        callback: impl FnOnce(Self, Result<()>) + Send + 'static,
    ) {
        let data = data.into();
        let handle = self.socket.loop_handle().clone();
        let mut stream = self;
        handle.spawn(async move {
            let result = stream.send(data).await;
            callback(stream, result)
        });
    }
}
