//! The output side of a connection and the ways to write it.
//!
//! A write onto an idle connection (connected, nothing queued, the loop not
//! already responsible for the output) goes straight to the kernel from the
//! calling thread, under the output lock; only what the kernel does not
//! take is queued, and the kernel's refusal guarantees an edge-triggered
//! writable event that the loop answers. Every write reports the offset in
//! the connection's output at which its bytes end, computed under the same
//! lock, so a completion (`Socket::sent`) waits for exactly those bytes.

use std::io::{self, Write as _};
use std::sync::Arc;
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::conn::{
    Conn, Failure, CLOSED, CONNECTED, HAS_WRITE_CB, HAS_WRITE_TIMEOUT, OUTPUT_PENDING,
    REQ_ARM_TIMERS, REQ_FLUSH, REQ_IO_FAILED, REQ_SHUTDOWN, REQ_WRITE_CB,
};
use super::protocol::Wakers;
use super::{NetStream, Socket};
use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result, TimeoutKind};
use crate::event_loop::MIN_BLOCK_COPY;
use crate::sync::lock;

/// How many chunks one vectored write hands the kernel at most.
pub(super) const MAX_IOVECS: usize = 64;

/// Where the write side of a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteState {
    /// Resolving or connecting: writes are queued.
    Connecting,
    /// Connected: writes go to the kernel.
    Open,
    /// `shutdown_write` or `close` asked for FIN once the output is flushed.
    ShutdownQueued,
    /// FIN was sent.
    Shutdown,
    /// The socket was released.
    Closed,
}

/// The output side of a connection, under `Conn::output`.
pub(crate) struct Output {
    pub(super) buf: Buffer,
    pub(super) state: WriteState,
    /// The socket, once connected; direct writes from any thread use it.
    pub(super) stream: Option<Arc<NetStream>>,
    /// The kernel refused bytes, so an edge-triggered writable event will
    /// come: nobody needs to ask the loop to flush.
    pub(super) awaiting_writable: bool,
    /// The loop has been asked to flush.
    pub(super) flush_queued: bool,
    /// A filter (TLS) sits between this buffer and the socket: every byte
    /// goes through the loop, never straight to the kernel.
    pub(super) filtered: bool,
    /// The filter holds bytes the kernel has not taken yet (flushing is not
    /// done until it has none).
    pub(super) filter_pending: bool,
    pub(super) error: Failure,
    /// A write timeout expired that pending writers have not seen yet.
    pub(super) timed_out: bool,
    /// Bytes ever accepted for sending, and of those, handed to the kernel:
    /// a write is complete once `sent` reaches its end offset.
    pub(super) accepted: u64,
    pub(super) sent: u64,
    pub(super) wakers: Wakers,
}

impl Output {
    pub(super) fn new(state: WriteState, filtered: bool) -> Output {
        Output {
            buf: Buffer::new(),
            state,
            stream: None,
            awaiting_writable: false,
            flush_queued: false,
            filtered,
            filter_pending: false,
            error: Failure::default(),
            timed_out: false,
            accepted: 0,
            sent: 0,
            wakers: Wakers::default(),
        }
    }

    /// Why no byte can be queued now, if none can.
    fn check_writable(&self) -> Result<()> {
        if let Some(err) = self.error.get() {
            return Err(err.clone());
        }
        match self.state {
            WriteState::Connecting | WriteState::Open => Ok(()),
            WriteState::ShutdownQueued | WriteState::Shutdown => Err(Error::WriteClosed),
            WriteState::Closed => Err(Error::Closed),
        }
    }

    /// A write timeout nobody has seen yet, reported once.
    fn take_timeout(&mut self) -> Option<Error> {
        std::mem::take(&mut self.timed_out).then_some(Error::TimedOut(TimeoutKind::Write))
    }

    /// The socket, when a write may go straight to the kernel: connected,
    /// nothing queued, and the loop not already responsible for the output.
    fn idle_stream(&self) -> Option<Arc<NetStream>> {
        let idle = self.buf.is_empty()
            && self.state == WriteState::Open
            && !self.filtered
            && !self.awaiting_writable
            && !self.flush_queued;
        if idle {
            self.stream.clone()
        } else {
            None
        }
    }
}

impl Conn {
    /// `Closed` once `close()`/`abort()` was called or the socket released
    /// (or the reason it failed, if it did).
    fn check_open(&self) -> Result<()> {
        if self.flag(CLOSED) {
            Err(lock(&self.output).error.cloned().unwrap_or(Error::Closed))
        } else {
            Ok(())
        }
    }

    /// Why `len` more bytes cannot be queued, if they cannot: the write side
    /// is done, or the output would grow past `max_buffer_size`.
    fn check_room(&self, out: &Output, len: usize) -> Result<()> {
        out.check_writable()?;
        let limit = self.config.max_buffer_size;
        if out.buf.len() + len > limit {
            return Err(Error::LimitExceeded {
                what: Limit::OutputBuffer,
                limit,
            });
        }
        Ok(())
    }

    /// After output was queued (the kernel did not take it all): ask the
    /// loop to flush unless an edge or a flush is already due, and to arm the
    /// write timeout. Returns the request bits to leave once unlocked.
    fn queued_requests(&self, out: &mut Output) -> u32 {
        let mut requests = 0;
        if out.state != WriteState::Open {
            // Still connecting: the connection flushes when it opens.
            return 0;
        }
        if !out.awaiting_writable && !out.flush_queued {
            out.flush_queued = true;
            requests |= REQ_FLUSH;
        }
        if self.flag(HAS_WRITE_TIMEOUT) {
            requests |= REQ_ARM_TIMERS;
        }
        requests
    }

    /// Clears the output-pending flag when nothing is queued or awaiting the
    /// kernel (under the output lock).
    pub(super) fn settle_output_pending(&self, out: &Output) {
        if out.buf.is_empty() && !out.awaiting_writable {
            self.clear_flag(OUTPUT_PENDING);
        }
    }

    /// Queues all of `data`, refusing to grow the output past
    /// `max_buffer_size`; returns the end offset of `data`.
    fn write_all_now(&self, data: &[u8], owned: Option<&Bytes>) -> Result<u64> {
        self.check_open()?;
        let (result, requests) = {
            let mut out = lock(&self.output);
            self.check_room(&out, data.len())?;
            self.write_locked(&mut out, data, owned)
        };
        if requests != 0 {
            self.request(requests);
        }
        result
    }

    /// The common part of every write, under the output lock: a direct
    /// write when the connection is idle, the rest queued. Returns the end
    /// offset of `data` and the requests to leave once unlocked.
    fn write_locked(
        &self,
        out: &mut Output,
        data: &[u8],
        owned: Option<&Bytes>,
    ) -> (Result<u64>, u32) {
        if data.is_empty() {
            return (Ok(out.accepted), 0);
        }
        let mut requests = 0;
        let mut written = 0;
        let mut result = Ok(());
        self.set_flag(OUTPUT_PENDING);
        if let Some(stream) = out.idle_stream() {
            while written < data.len() {
                match (&*stream).write(&data[written..]) {
                    Ok(0) => {
                        result = Err(Error::from(io::Error::from(io::ErrorKind::WriteZero)));
                        break;
                    }
                    Ok(n) => written += n,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                        // The kernel buffer is full, so an edge-triggered
                        // writable event will follow when it drains.
                        out.awaiting_writable = true;
                        break;
                    }
                    Err(err) => {
                        result = Err(Error::from(err));
                        break;
                    }
                }
            }
            out.sent += written as u64;
            if let Err(err) = &result {
                out.error.set(err);
                requests |= REQ_IO_FAILED;
            } else if written == data.len() && self.flag(HAS_WRITE_CB) {
                requests |= REQ_WRITE_CB;
            } else if written > 0 && written < data.len() {
                // A short write also means the kernel buffer is full.
                out.awaiting_writable = true;
            }
        }
        if let Err(err) = result {
            self.settle_output_pending(out);
            return (Err(err), requests);
        }
        out.accepted += data.len() as u64;
        if written < data.len() {
            match owned {
                // `data` is a prefix of `bytes`: queue the part not written.
                Some(bytes) => out.buf.push(bytes.slice(written..data.len())),
                // Large: into the loop's reused blocks. Small: coalesced
                // into the buffer's last chunk.
                None if data.len() - written >= MIN_BLOCK_COPY => {
                    out.buf.push(self.handle.copy_output(&data[written..]))
                }
                None => out.buf.extend_from_slice(&data[written..]),
            }
            requests |= self.queued_requests(out);
        }
        self.settle_output_pending(out);
        (Ok(out.accepted), requests)
    }

    /// `Ready` once the kernel has taken every byte accepted before
    /// `target` (an end offset returned by a write).
    pub(super) fn poll_sent(&self, target: u64, waker: &Waker) -> Poll<Result<()>> {
        let mut out = lock(&self.output);
        if out.sent >= target {
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = out.error.get() {
            return Poll::Ready(Err(err.clone()));
        }
        if out.state == WriteState::Closed {
            return Poll::Ready(Err(Error::Closed));
        }
        out.wakers.register(waker);
        Poll::Pending
    }

    pub(super) fn shutdown_write(&self) -> Result<()> {
        if self.flag(CLOSED) {
            // After close() the write side is the loop's to shut down.
            return Err(Error::Closed);
        }
        {
            let mut out = lock(&self.output);
            match out.state {
                WriteState::ShutdownQueued | WriteState::Shutdown => return Ok(()),
                WriteState::Closed => return Err(Error::Closed),
                WriteState::Connecting | WriteState::Open => {}
            }
            if let Some(err) = out.error.get() {
                return Err(err.clone());
            }
            out.state = WriteState::ShutdownQueued;
        }
        self.request(REQ_SHUTDOWN);
        Ok(())
    }
}

/// The writing API of a connection, for the stream, codec and peer layers.
impl Socket {
    /// Queues all of `data` (callback style: no watermark, only
    /// `max_buffer_size`); returns the offset at which it ends.
    pub(crate) fn write_all_now(&self, data: &[u8], owned: Option<&Bytes>) -> Result<u64> {
        self.conn().write_all_now(data, owned)
    }

    /// The stream form of a write: accepts as much of `data` as fits under
    /// the write high watermark and returns how much and the offset at
    /// which it ends, or `Pending` (with `waker` stored) when the output is
    /// at the watermark.
    pub(crate) fn try_write(
        &self,
        data: &[u8],
        owned: Option<&Bytes>,
        waker: Option<&Waker>,
    ) -> Poll<Result<(usize, u64)>> {
        let conn = self.conn();
        if let Err(err) = conn.check_open() {
            return Poll::Ready(Err(err));
        }
        let (result, requests) = {
            let mut out = lock(&conn.output);
            if let Err(err) = out.check_writable() {
                return Poll::Ready(Err(err));
            }
            let high = conn.config.output_limit();
            if out.buf.len() >= high {
                if let Some(err) = out.take_timeout() {
                    return Poll::Ready(Err(err));
                }
                if let Some(waker) = waker {
                    out.wakers.register(waker);
                }
                return Poll::Pending;
            }
            let accept = data.len().min(high - out.buf.len());
            let (result, requests) = conn.write_locked(&mut out, &data[..accept], owned);
            (result.map(|end| (accept, end)), requests)
        };
        if requests != 0 {
            conn.request(requests);
        }
        Poll::Ready(result)
    }

    /// `Ready` once the output is below the write high watermark, so a
    /// `Sink` may accept an item.
    pub(crate) fn poll_write_ready(&self, waker: &Waker) -> Poll<Result<()>> {
        let conn = self.conn();
        conn.check_open()?;
        let mut out = lock(&conn.output);
        out.check_writable()?;
        if out.buf.len() < conn.config.output_limit() {
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = out.take_timeout() {
            return Poll::Ready(Err(err));
        }
        out.wakers.register(waker);
        Poll::Pending
    }

    /// Queues every chunk of `data` (an encoded batch) in one go: on an
    /// idle connection one vectored write hands the kernel what it takes,
    /// and the rest is queued without copying. Returns the end offset.
    pub(crate) fn write_buffer(&self, mut data: Buffer) -> Result<u64> {
        let conn = self.conn();
        conn.check_open()?;
        let mut requests = 0;
        let end = {
            let mut out = lock(&conn.output);
            conn.check_room(&out, data.len())?;
            if data.is_empty() {
                return Ok(out.accepted);
            }
            out.accepted += data.len() as u64;
            conn.set_flag(OUTPUT_PENDING);
            if let Some(stream) = out.idle_stream() {
                while !data.is_empty() {
                    let mut slices = [io::IoSlice::new(&[]); MAX_IOVECS];
                    let count = data.fill_io_slices(&mut slices);
                    match (&*stream).write_vectored(&slices[..count]) {
                        // The kernel took nothing: queue the rest as for a
                        // full buffer.
                        Ok(0) => break,
                        Ok(n) => {
                            data.drain(n);
                            out.sent += n as u64;
                        }
                        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                            out.awaiting_writable = true;
                            break;
                        }
                        Err(err) => {
                            let err = Error::from(err);
                            out.error.set(&err);
                            conn.settle_output_pending(&out);
                            drop(out);
                            conn.request(REQ_IO_FAILED);
                            return Err(err);
                        }
                    }
                }
                if !data.is_empty() {
                    // A short write: the kernel buffer is full.
                    out.awaiting_writable = true;
                } else if conn.flag(HAS_WRITE_CB) {
                    requests |= REQ_WRITE_CB;
                }
            }
            if !data.is_empty() {
                out.buf.append(&mut data);
                requests |= conn.queued_requests(&mut out);
            }
            conn.settle_output_pending(&out);
            out.accepted
        };
        if requests != 0 {
            conn.request(requests);
        }
        Ok(end)
    }

    /// `Ready` once the output buffer is empty (handed to the kernel).
    pub(crate) fn poll_flushed(&self, waker: Option<&Waker>) -> Poll<Result<()>> {
        let mut out = lock(&self.conn().output);
        if let Some(err) = out.error.get() {
            return Poll::Ready(Err(err.clone()));
        }
        if out.buf.is_empty() && !out.filter_pending {
            return Poll::Ready(Ok(()));
        }
        if out.state == WriteState::Closed {
            return Poll::Ready(Err(Error::Closed));
        }
        if let Some(err) = out.take_timeout() {
            return Poll::Ready(Err(err));
        }
        if let Some(waker) = waker {
            out.wakers.register(waker);
        }
        Poll::Pending
    }

    /// `Ready` once FIN has been handed to the kernel (or the socket is
    /// released with nothing left to send).
    pub(crate) fn poll_shut_down(&self, waker: &Waker) -> Poll<Result<()>> {
        let mut out = lock(&self.conn().output);
        match out.state {
            WriteState::Shutdown => Poll::Ready(Ok(())),
            WriteState::Closed => Poll::Ready(match out.error.get() {
                Some(err) if !out.buf.is_empty() => Err(err.clone()),
                _ => Ok(()),
            }),
            _ => {
                if let Some(err) = out.error.get() {
                    return Poll::Ready(Err(err.clone()));
                }
                out.wakers.register(waker);
                Poll::Pending
            }
        }
    }

    /// Flush then FIN (`AsyncWrite::poll_close`): `Ready` once FIN is sent.
    /// Closing a connection that is already gone is not an error.
    pub(crate) fn poll_close_write(&self, waker: &Waker) -> Poll<Result<()>> {
        match self.poll_flushed(Some(waker)) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(Error::Closed)) => return Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
            Poll::Pending => return Poll::Pending,
        }
        match self.conn().shutdown_write() {
            Ok(()) | Err(Error::Closed) => {}
            Err(err) => return Poll::Ready(Err(err)),
        }
        self.poll_shut_down(waker)
    }

    /// `Ready` once every byte up to `offset` (from a write) has been handed
    /// to the kernel.
    pub(crate) fn poll_sent(&self, offset: u64, waker: &Waker) -> Poll<Result<()>> {
        self.conn().poll_sent(offset, waker)
    }

    /// `Ready` once connected, or with the reason it never will be.
    pub(crate) fn poll_connected(&self, waker: &Waker) -> Poll<Result<()>> {
        let conn = self.conn();
        let mut out = lock(&conn.output);
        match out.state {
            WriteState::Connecting => {
                if let Some(err) = out.error.get() {
                    return Poll::Ready(Err(err.clone()));
                }
                out.wakers.register(waker);
                Poll::Pending
            }
            WriteState::Closed if !conn.flag(CONNECTED) => {
                Poll::Ready(Err(out.error.cloned().unwrap_or(Error::Closed)))
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    /// `Ready` once the loop has released the socket.
    pub(crate) fn poll_released(&self, waker: &Waker) -> Poll<()> {
        let mut out = lock(&self.conn().output);
        if out.state == WriteState::Closed {
            return Poll::Ready(());
        }
        out.wakers.register(waker);
        Poll::Pending
    }
}
