//! One connection: its buffers, its state, and the [`Socket`] handle.
//!
//! A connection is split in two halves that never share a lock with user
//! code:
//!
//! * [`Conn`] is the state every thread sees: the input and output
//!   [`Buffer`]s (each behind its own mutex, so a reader and a writer on two
//!   threads do not contend), the watermarks, and a word of *requests*
//!   (close, flush, resume…) that other threads set before waking the loop;
//! * the driver (`driver.rs`) lives on the loop thread, owns the
//!   registration with the poller, reads and writes the socket, runs the
//!   callbacks and the timers.
//!
//! A write from any thread onto an idle connection goes straight to the
//! kernel; only what the kernel does not take is queued for the loop.

mod driver;
mod net;

pub(crate) use driver::{Driver, Target};
pub(crate) use net::{NetListener, NetStream};

use std::any::Any;
use std::fmt;
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Poll, Waker};
use std::time::Duration;

use bytes::Bytes;

use crate::buffer::Buffer;
use crate::error::{Error, Limit, Result, TimeoutKind};
use crate::event_loop::{lock, LoopHandle};

/// A callback shared by every connection of a server, hence `Arc<Mutex<…>>`:
/// the loop calls it from one thread only, so the mutex is never contended.
pub(crate) type Shared<F> = Arc<Mutex<F>>;
pub(crate) type ReadCb = Shared<dyn FnMut(&Socket, Bytes) + Send>;
pub(crate) type NotifyCb = Shared<dyn FnMut(&Socket) + Send>;
pub(crate) type WriteCb = Shared<dyn FnMut(&Socket) + Send>;
pub(crate) type EventCb = Shared<dyn FnMut(&Socket, crate::Event) + Send>;
pub(crate) type ConnectCb = Shared<dyn FnMut(&Socket) + Send>;

/// The user callbacks of one connection.
#[derive(Clone, Default)]
pub(crate) struct Callbacks {
    pub(crate) read: Option<ReadCb>,
    pub(crate) notify: Option<NotifyCb>,
    pub(crate) write: Option<WriteCb>,
    pub(crate) event: Option<EventCb>,
    pub(crate) connect: Option<ConnectCb>,
}

impl Callbacks {
    /// Whether the connection's lifetime is explicit (it has callbacks that
    /// may act on it) rather than tied to the user's handles.
    fn keep_alive(&self) -> bool {
        self.read.is_some() || self.notify.is_some() || self.write.is_some() || self.event.is_some()
    }
}

/// Sizes and limits of one connection, fixed when it is created.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `notify_cb` fires only once the input holds at least this much.
    pub(crate) read_low_watermark: usize,
    /// At or above this the loop stops reading the socket.
    pub(crate) read_high_watermark: usize,
    /// `write_cb` fires when the output drains to this or below.
    pub(crate) write_low_watermark: usize,
    /// Streams stop accepting writes at or above this.
    pub(crate) write_high_watermark: usize,
    /// The most one `read` system call asks for.
    pub(crate) read_chunk_size: usize,
    /// Neither buffer may ever hold more than this.
    pub(crate) max_buffer_size: usize,
    pub(crate) nodelay: bool,
    pub(crate) connect_timeout: Duration,
    /// After a graceful close has sent FIN, how long to wait for the peer's
    /// FIN before releasing the socket.
    pub(crate) close_linger: Duration,
    pub(crate) read_timeout: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) bind: Option<SocketAddr>,
}

impl Config {
    /// The input buffer's effective cap.
    pub(crate) fn input_limit(&self) -> usize {
        self.read_high_watermark.min(self.max_buffer_size)
    }

    /// Reading resumes once a suspended input has been drained to this.
    /// Half the watermark, so a reader taking a few bytes at a time does not
    /// make the loop poll the socket for a few bytes at a time.
    fn resume_threshold(&self) -> usize {
        self.input_limit() / 2
    }
}

// Requests other threads leave for the loop, in `Conn::requests`.
const REQ_FLUSH: u32 = 1 << 0;
const REQ_CLOSE: u32 = 1 << 1;
const REQ_ABORT: u32 = 1 << 2;
const REQ_RESUME: u32 = 1 << 3;
const REQ_TIMERS: u32 = 1 << 4;
const REQ_WRITE_CB: u32 = 1 << 5;
const REQ_SHUTDOWN: u32 = 1 << 6;
const REQ_WRITE_FAILED: u32 = 1 << 7;
const REQ_RESOLVED: u32 = 1 << 8;
/// Something changed what is waiting (output queued, reading paused): arm
/// the idle timers that now apply, without restarting their counts.
const REQ_ARM_TIMERS: u32 = 1 << 9;

const UNREGISTERED: usize = usize::MAX;

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

/// The input side of a connection.
pub(crate) struct Input {
    pub(crate) buf: Buffer,
    /// The peer sent FIN.
    pub(crate) eof: bool,
    /// The connection failed; reported once the buffer is empty.
    pub(crate) error: Option<Error>,
    /// No more bytes will arrive (closed or released).
    pub(crate) closed: bool,
    /// The loop stopped reading the socket at the high watermark.
    suspended: bool,
    /// A read timeout expired that pending readers have not seen yet.
    pub(crate) timed_out: bool,
    wakers: Wakers,
}

impl Input {
    /// Registers a waker to be woken on the next append, EOF or error.
    pub(crate) fn register(&mut self, waker: &Waker) {
        self.wakers.register(waker);
    }

    fn take_wakers(&mut self) -> Wakers {
        std::mem::take(&mut self.wakers)
    }
}

/// The output side of a connection.
pub(crate) struct Output {
    pub(crate) buf: Buffer,
    pub(crate) state: WriteState,
    /// The socket, once connected; direct writes from any thread use it.
    stream: Option<Arc<NetStream>>,
    /// The kernel refused bytes, so an edge-triggered writable event will
    /// come: nobody needs to ask the loop to flush.
    awaiting_writable: bool,
    /// The loop has been asked to flush.
    flush_queued: bool,
    pub(crate) error: Option<Error>,
    /// A write timeout expired that pending writers have not seen yet.
    pub(crate) timed_out: bool,
    /// Bytes ever accepted for sending, and of those, handed to the kernel:
    /// a write is complete once `sent` reaches its end offset.
    pub(crate) accepted: u64,
    pub(crate) sent: u64,
    wakers: Wakers,
}

impl Output {
    /// Why no byte can be queued now, if none can.
    pub(crate) fn check_writable(&self) -> Result<()> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        match self.state {
            WriteState::Connecting | WriteState::Open => Ok(()),
            WriteState::ShutdownQueued | WriteState::Shutdown => Err(Error::WriteClosed),
            WriteState::Closed => Err(Error::Closed),
        }
    }

    /// Registers a waker to be woken when queued output makes progress or
    /// the connection's state changes.
    pub(crate) fn register(&mut self, waker: &Waker) {
        self.wakers.register(waker);
    }

    fn take_wakers(&mut self) -> Wakers {
        std::mem::take(&mut self.wakers)
    }

    /// The socket, when a write may go straight to the kernel: connected,
    /// nothing queued, and the loop not already responsible for the output.
    fn idle_stream(&self) -> Option<Arc<NetStream>> {
        let idle = self.buf.is_empty()
            && self.state == WriteState::Open
            && !self.awaiting_writable
            && !self.flush_queued;
        if idle {
            Some(
                self.stream
                    .clone()
                    .expect("an open connection has its socket"),
            )
        } else {
            None
        }
    }
}

/// The wakers waiting on one side of a connection. There is nearly always
/// exactly one, so it lives inline: registering it and taking it to wake
/// allocate nothing (a `Vec` taken to be woken outside the lock would leave
/// an empty one behind, and the next registration would allocate).
#[derive(Default)]
pub(crate) struct Wakers {
    first: Option<Waker>,
    more: Vec<Waker>,
}

impl Wakers {
    fn register(&mut self, waker: &Waker) {
        match &self.first {
            None => self.first = Some(waker.clone()),
            Some(first) if first.will_wake(waker) => {}
            Some(_) => {
                if !self.more.iter().any(|w| w.will_wake(waker)) {
                    self.more.push(waker.clone());
                }
            }
        }
    }
}

/// Wakes what was taken from a side (outside its lock: no lock is held
/// while a waker runs).
fn wake_all(wakers: Wakers) {
    if let Some(first) = wakers.first {
        first.wake();
    }
    for waker in wakers.more {
        waker.wake();
    }
}

/// The state of one connection that every thread shares.
pub(crate) struct Conn {
    pub(crate) handle: LoopHandle,
    /// Shared by every connection made with the same options.
    pub(crate) config: Arc<Config>,
    /// The slab key of the driver, `UNREGISTERED` until the loop has it.
    key: AtomicUsize,
    requests: AtomicU32,
    pub(crate) input: Mutex<Input>,
    pub(crate) output: Mutex<Output>,
    /// (local, peer), once connected over TCP.
    addrs: OnceLock<(SocketAddr, SocketAddr)>,
    /// (local, peer) paths, once connected over a Unix socket.
    unix_paths: OnceLock<(Option<PathBuf>, Option<PathBuf>)>,
    /// Set once the connection is established (TCP or Unix).
    connected: AtomicBool,
    /// Set by `close`/`abort` and when the loop releases the socket.
    closed: AtomicBool,
    user_paused: AtomicBool,
    /// False only when the output buffer is empty and the kernel has refused
    /// no byte since: the loop then skips its flush (and the output lock) on
    /// a writable event. Set under the output lock *before* a direct write's
    /// system call, so a writable edge that write causes always finds it set.
    pub(crate) output_pending: AtomicBool,
    timeouts: Mutex<(Option<Duration>, Option<Duration>)>,
    resolved: Mutex<Option<Result<Vec<SocketAddr>>>>,
    user_data: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    handles: AtomicUsize,
    /// Run on the loop thread when the socket is released.
    pub(crate) close_callbacks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// Reads in progress through the IOStream-style helpers.
    pub(crate) reads_in_progress: AtomicUsize,
    /// Per-connection state of a layer above (the `on_frame` decoder), so a
    /// server's shared callbacks keep one decoder per connection.
    pub(crate) extension: Mutex<Option<Box<dyn Any + Send>>>,
    lifetime_is_explicit: bool,
    has_write_cb: bool,
    /// The host name the connection was asked for, if one was.
    host: Option<String>,
    /// What owns the connection (its server), for layers above.
    pub(crate) owner: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
}

impl Conn {
    pub(crate) fn new(
        handle: LoopHandle,
        config: Arc<Config>,
        callbacks: &Callbacks,
        initial_state: WriteState,
        host: Option<String>,
    ) -> Arc<Conn> {
        let timeouts = (config.read_timeout, config.write_timeout);
        Arc::new(Conn {
            handle,
            key: AtomicUsize::new(UNREGISTERED),
            requests: AtomicU32::new(0),
            input: Mutex::new(Input {
                buf: Buffer::new(),
                eof: false,
                error: None,
                closed: false,
                suspended: false,
                timed_out: false,
                wakers: Wakers::default(),
            }),
            output: Mutex::new(Output {
                buf: Buffer::new(),
                state: initial_state,
                stream: None,
                awaiting_writable: false,
                flush_queued: false,
                error: None,
                timed_out: false,
                accepted: 0,
                sent: 0,
                wakers: Wakers::default(),
            }),
            addrs: OnceLock::new(),
            unix_paths: OnceLock::new(),
            connected: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            user_paused: AtomicBool::new(false),
            output_pending: AtomicBool::new(false),
            timeouts: Mutex::new(timeouts),
            resolved: Mutex::new(None),
            user_data: Mutex::new(None),
            handles: AtomicUsize::new(0),
            close_callbacks: Mutex::new(Vec::new()),
            reads_in_progress: AtomicUsize::new(0),
            extension: Mutex::new(None),
            lifetime_is_explicit: callbacks.keep_alive(),
            has_write_cb: callbacks.write.is_some(),
            host,
            owner: Mutex::new(None),
            config,
        })
    }

    /// Leaves `bits` for the loop and wakes the driver if nobody has yet.
    fn request(&self, bits: u32) {
        let previous = self.requests.fetch_or(bits, Ordering::AcqRel);
        if previous == 0 {
            let key = self.key.load(Ordering::Acquire);
            // Before registration the driver reads the requests itself when
            // the loop first wakes it.
            if key != UNREGISTERED {
                self.handle.wake_source(key);
            }
        }
    }

    /// Hands the result of a name lookup to the driver.
    pub(crate) fn set_resolved(&self, result: Result<Vec<SocketAddr>>) {
        *lock(&self.resolved) = Some(result);
        self.request(REQ_RESOLVED);
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
        if lock(&self.timeouts).1.is_some() {
            requests |= REQ_ARM_TIMERS;
        }
        requests
    }

    /// Appends `data` to the output, writing straight to the kernel when the
    /// connection is idle. `owned`, when the caller has it, is a `Bytes`
    /// that `data` is a prefix of, so a remainder can be queued without
    /// copying. Refuses to grow the
    /// output past `max_buffer_size`.
    fn write_inner(&self, data: &[u8], owned: Option<&Bytes>) -> Result<()> {
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

    /// The stream form of a write: accepts as much of `data` as fits under
    /// the write high watermark and returns how much, or `Pending` (with
    /// `waker` registered) when the output is at the watermark.
    pub(crate) fn try_write(
        &self,
        data: &[u8],
        owned: Option<&Bytes>,
        waker: Option<&Waker>,
    ) -> Poll<Result<usize>> {
        if self.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(Error::Closed));
        }
        let (result, requests) = {
            let mut out = lock(&self.output);
            if let Err(err) = out.check_writable() {
                return Poll::Ready(Err(err));
            }
            let high = self
                .config
                .write_high_watermark
                .min(self.config.max_buffer_size);
            if out.buf.len() >= high {
                if out.timed_out {
                    out.timed_out = false;
                    return Poll::Ready(Err(Error::TimedOut(TimeoutKind::Write)));
                }
                if let Some(waker) = waker {
                    out.register(waker);
                }
                return Poll::Pending;
            }
            let accept = data.len().min(high - out.buf.len());
            let (result, requests) = self.write_locked(&mut out, &data[..accept], owned);
            (result.map(|()| accept), requests)
        };
        if requests != 0 {
            self.request(requests);
        }
        Poll::Ready(result)
    }

    /// The common part of every write, under the output lock. Returns the
    /// result and the requests to leave for the loop once unlocked.
    fn write_locked(
        &self,
        out: &mut Output,
        data: &[u8],
        owned: Option<&Bytes>,
    ) -> (Result<()>, u32) {
        let mut requests = 0;
        if data.is_empty() {
            return (Ok(()), 0);
        }
        let mut written = 0;
        let mut result = Ok(());
        self.output_pending.store(true, Ordering::SeqCst);
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
                out.error = Some(err.clone());
                requests |= REQ_WRITE_FAILED;
            } else if written == data.len() && self.has_write_cb {
                requests |= REQ_WRITE_CB;
            } else if written > 0 && written < data.len() {
                // A short write also means the kernel buffer is full.
                out.awaiting_writable = true;
            }
        }
        if result.is_ok() {
            out.accepted += data.len() as u64;
        }
        if result.is_ok() && written < data.len() {
            match owned {
                // `data` is a prefix of `bytes`: queue the part not written.
                Some(bytes) => out.buf.push(bytes.slice(written..data.len())),
                None => out.buf.extend_from_slice(&data[written..]),
            }
            requests |= self.queued_requests(out);
        }
        self.settle_output_pending(out);
        (result, requests)
    }

    /// Clears `output_pending` when nothing is queued or awaiting the
    /// kernel (under the output lock).
    fn settle_output_pending(&self, out: &Output) {
        if out.buf.is_empty() && !out.awaiting_writable {
            self.output_pending.store(false, Ordering::SeqCst);
        }
    }

    /// `Ready` once the output is below the write high watermark, so a
    /// `Sink` may accept an item.
    pub(crate) fn poll_write_ready(&self, waker: &Waker) -> Poll<Result<()>> {
        if self.closed.load(Ordering::Acquire) {
            return Poll::Ready(Err(Error::Closed));
        }
        let mut out = lock(&self.output);
        out.check_writable()?;
        let high = self
            .config
            .write_high_watermark
            .min(self.config.max_buffer_size);
        if out.buf.len() < high {
            return Poll::Ready(Ok(()));
        }
        if out.timed_out {
            out.timed_out = false;
            return Poll::Ready(Err(Error::TimedOut(TimeoutKind::Write)));
        }
        out.register(waker);
        Poll::Pending
    }

    /// Queues every chunk of `data` (an encoded batch) in one go: on an
    /// idle connection one vectored write hands the kernel what it takes,
    /// and the rest is queued without copying.
    pub(crate) fn write_chunks(&self, mut data: Buffer) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut requests = 0;
        {
            let mut out = lock(&self.output);
            self.check_room(&out, data.len())?;
            out.accepted += data.len() as u64;
            self.output_pending.store(true, Ordering::SeqCst);
            if let Some(stream) = out.idle_stream() {
                while !data.is_empty() {
                    let mut slices = [io::IoSlice::new(&[]); 64];
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
                            out.error = Some(err.clone());
                            drop(out);
                            self.request(REQ_WRITE_FAILED);
                            return Err(err);
                        }
                    }
                }
                if !data.is_empty() {
                    // A short write: the kernel buffer is full.
                    out.awaiting_writable = true;
                } else if self.has_write_cb {
                    requests |= REQ_WRITE_CB;
                }
            }
            if !data.is_empty() {
                out.buf.append(&mut data);
                requests |= self.queued_requests(&mut out);
            }
            self.settle_output_pending(&out);
        }
        if requests != 0 {
            self.request(requests);
        }
        Ok(())
    }

    /// `Ready` once the output buffer is empty (handed to the kernel).
    pub(crate) fn poll_flushed(&self, waker: Option<&Waker>) -> Poll<Result<()>> {
        let mut out = lock(&self.output);
        if let Some(err) = &out.error {
            return Poll::Ready(Err(err.clone()));
        }
        if out.buf.is_empty() {
            return Poll::Ready(Ok(()));
        }
        if out.state == WriteState::Closed {
            return Poll::Ready(Err(Error::Closed));
        }
        if out.timed_out {
            out.timed_out = false;
            return Poll::Ready(Err(Error::TimedOut(TimeoutKind::Write)));
        }
        if let Some(waker) = waker {
            out.register(waker);
        }
        Poll::Pending
    }

    /// `Ready` once FIN has been handed to the kernel (or the socket is
    /// released with nothing left to send).
    pub(crate) fn poll_shut_down(&self, waker: &Waker) -> Poll<Result<()>> {
        let mut out = lock(&self.output);
        match out.state {
            WriteState::Shutdown => Poll::Ready(Ok(())),
            WriteState::Closed => Poll::Ready(match &out.error {
                Some(err) if !out.buf.is_empty() => Err(err.clone()),
                _ => Ok(()),
            }),
            _ => {
                if let Some(err) = &out.error {
                    return Poll::Ready(Err(err.clone()));
                }
                out.register(waker);
                Poll::Pending
            }
        }
    }

    /// `Ready` once the kernel has taken every byte accepted before
    /// `target` (an `Output::accepted` offset).
    pub(crate) fn poll_sent(&self, target: u64, waker: &Waker) -> Poll<Result<()>> {
        let mut out = lock(&self.output);
        if out.sent >= target {
            return Poll::Ready(Ok(()));
        }
        if let Some(err) = &out.error {
            return Poll::Ready(Err(err.clone()));
        }
        if out.state == WriteState::Closed {
            return Poll::Ready(Err(Error::Closed));
        }
        out.register(waker);
        Poll::Pending
    }

    /// `Ready` once the loop has released the socket.
    pub(crate) fn poll_released(&self, waker: &Waker) -> Poll<()> {
        let mut out = lock(&self.output);
        if out.state == WriteState::Closed {
            return Poll::Ready(());
        }
        out.register(waker);
        Poll::Pending
    }

    /// `Ready` once connected, or with the reason it never will be.
    pub(crate) fn poll_connected(&self, waker: &Waker) -> Poll<Result<()>> {
        let mut out = lock(&self.output);
        match out.state {
            WriteState::Connecting => {
                if let Some(err) = &out.error {
                    return Poll::Ready(Err(err.clone()));
                }
                out.register(waker);
                Poll::Pending
            }
            WriteState::Closed if !self.connected.load(Ordering::Acquire) => {
                Poll::Ready(Err(out.error.clone().unwrap_or(Error::Closed)))
            }
            _ => Poll::Ready(Ok(())),
        }
    }

    /// Runs `f` on the input and, if it consumed enough to leave a suspended
    /// input below the resume threshold, asks the loop to read again.
    pub(crate) fn with_input<R>(&self, f: impl FnOnce(&mut Input) -> R) -> R {
        let (result, resume) = {
            let mut input = lock(&self.input);
            let result = f(&mut input);
            let resume = input.suspended && input.buf.len() <= self.config.resume_threshold();
            if resume {
                input.suspended = false;
            }
            (result, resume)
        };
        if resume {
            self.request(REQ_RESUME);
        }
        result
    }

    /// Non-blocking read with the contract's rules: bytes if any, then the
    /// stored error, `Ok(0)` at the end, `WouldBlock` otherwise.
    pub(crate) fn read_input(&self, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        self.with_input(|input| {
            if !input.buf.is_empty() {
                return Ok(input.buf.read(dst));
            }
            if let Some(err) = &input.error {
                return Err(err.clone().into());
            }
            if input.eof || input.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        })
    }

    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // Input ends now, not when the loop gets to the request: bytes
            // read after this call are discarded, and readers see the end
            // once the buffered bytes are taken.
            let wakers = {
                let mut input = lock(&self.input);
                input.closed = true;
                input.take_wakers()
            };
            wake_all(wakers);
            self.request(REQ_CLOSE);
        }
    }

    pub(crate) fn abort(&self) {
        self.closed.store(true, Ordering::Release);
        self.request(REQ_ABORT);
    }

    pub(crate) fn shutdown_write(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
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
            if let Some(err) = &out.error {
                return Err(err.clone());
            }
            out.state = WriteState::ShutdownQueued;
        }
        self.request(REQ_SHUTDOWN);
        Ok(())
    }
}

/// A handle to one TCP connection: cl-async's socket, libevent's
/// bufferevent.
///
/// `Socket` is `Send + Sync + Clone`; every clone refers to the same
/// connection. The event loop owns the descriptor and the buffers; the
/// handle queues output, reads buffered input and asks the loop to pause,
/// resume or close.
///
/// # Lifetime
///
/// A connection with callbacks (`read_cb`, `notify_cb`, `write_cb` or
/// `event_cb`) lives until it is closed or fails. One without callbacks is
/// also closed gracefully — queued output is still flushed — when the last
/// handle to it is dropped.
///
/// # Reading in dont-drain mode
///
/// In dont-drain mode the loop leaves received bytes in the input buffer.
/// [`read`](Socket::read) takes them with non-blocking semantics:
/// `Err(WouldBlock)` when nothing is buffered and the connection is open,
/// `Ok(0)` only at the end once every byte has been read. Reading works
/// after EOF, after `close()` and after a failure: bytes already received
/// are never dropped.
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketRef>,
}

// Counts the user's handles so the last drop can close a connection whose
// lifetime is not explicit. One `SocketRef` per handle family.
struct SocketRef {
    conn: Arc<Conn>,
}

impl Drop for SocketRef {
    fn drop(&mut self) {
        let remaining = self.conn.handles.fetch_sub(1, Ordering::AcqRel) - 1;
        if remaining == 0 && !self.conn.lifetime_is_explicit {
            self.conn.close();
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("local_addr", &self.local_addr())
            .field("peer_addr", &self.peer_addr())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner.conn, &other.inner.conn)
    }
}
impl Eq for Socket {}

impl Socket {
    pub(crate) fn from_conn(conn: Arc<Conn>) -> Socket {
        conn.handles.fetch_add(1, Ordering::AcqRel);
        Socket {
            inner: Arc::new(SocketRef { conn }),
        }
    }

    pub(crate) fn conn(&self) -> &Arc<Conn> {
        &self.inner.conn
    }

    /// The loop this connection belongs to.
    pub fn loop_handle(&self) -> &LoopHandle {
        &self.inner.conn.handle
    }

    /// Queues a copy of `data` for sending, in order after earlier writes.
    ///
    /// On an idle connection the bytes go to the kernel at once, from the
    /// calling thread; what the kernel does not take is queued and sent by
    /// the loop. Writes made while the connection is still resolving or
    /// connecting are queued and sent once it is up, never dropped.
    ///
    /// Unlike the stream types, this callback-style call does not apply the
    /// write high watermark: it only refuses to grow the output beyond
    /// `max_buffer_size`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`/`abort()` or once the socket is
    /// released, [`Error::WriteClosed`] after [`shutdown_write`](Socket::shutdown_write),
    /// the connection's error if it failed, and [`Error::LimitExceeded`]
    /// (nothing queued) if the output would exceed `max_buffer_size`.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.check_open()?;
        self.inner.conn.write_inner(data, None)
    }

    /// Queues `data` for sending without copying it.
    ///
    /// # Errors
    ///
    /// As [`write`](Socket::write).
    pub fn write_bytes(&self, data: Bytes) -> Result<()> {
        self.check_open()?;
        self.inner.conn.write_inner(&data, Some(&data))
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.conn.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Closes the connection gracefully: queued output is flushed, then FIN
    /// is sent, then the socket is released. Idempotent.
    ///
    /// Bytes already in the input buffer stay readable; bytes that arrive
    /// after this call are discarded.
    pub fn close(&self) {
        self.inner.conn.close();
    }

    /// Closes the connection at once: queued output is dropped and the peer
    /// gets a reset. Idempotent; also ends a graceful close in progress.
    pub fn abort(&self) {
        self.inner.conn.abort();
    }

    /// Shuts down the write direction once queued output is flushed (FIN),
    /// while reading goes on. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the connection is already closed, or its error
    /// if it failed.
    pub fn shutdown_write(&self) -> Result<()> {
        self.inner.conn.shutdown_write()
    }

    /// Stops reading from the socket (cl-async's `disable-socket`). The
    /// peer is pushed back by TCP flow control once the kernel buffer fills.
    /// The read timeout does not count while reading is paused.
    pub fn pause_reading(&self) {
        self.inner.conn.user_paused.store(true, Ordering::Release);
        self.inner.conn.request(REQ_ARM_TIMERS);
    }

    /// Resumes reading after [`pause_reading`](Socket::pause_reading).
    pub fn resume_reading(&self) {
        self.inner.conn.user_paused.store(false, Ordering::Release);
        self.inner.conn.request(REQ_RESUME);
    }

    /// Whether reading is paused by [`pause_reading`](Socket::pause_reading).
    pub fn is_reading_paused(&self) -> bool {
        self.inner.conn.user_paused.load(Ordering::Acquire)
    }

    /// Sets the read and write idle timeouts (cl-async's
    /// `set-socket-timeouts`); `None` disables one. Each counts only while
    /// its direction is waiting and restarts on progress.
    pub fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) {
        *lock(&self.inner.conn.timeouts) = (read, write);
        self.inner.conn.request(REQ_TIMERS);
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.conn.addrs.get().map(|&(_, peer)| peer)
    }

    /// This side's address, once connected.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.conn.addrs.get().map(|&(local, _)| local)
    }

    /// The host name given to `tcp_connect`, if the connection was made by
    /// name or address string.
    pub fn host(&self) -> Option<&str> {
        self.inner.conn.host.as_deref()
    }

    /// Whether `close()` or `abort()` was called or the connection ended
    /// (cl-async's `socket-closed-p`).
    pub fn is_closed(&self) -> bool {
        self.inner.conn.closed.load(Ordering::Acquire)
    }

    /// Whether the connection is established and not closed.
    pub fn is_connected(&self) -> bool {
        !self.is_closed() && self.inner.conn.connected.load(Ordering::Acquire)
    }

    /// The peer's path, for a connection over a Unix socket bound to one.
    pub fn peer_path(&self) -> Option<PathBuf> {
        self.inner
            .conn
            .unix_paths
            .get()
            .and_then(|(_, peer)| peer.clone())
    }

    /// This side's path, for a connection over a Unix socket bound to one.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.inner
            .conn
            .unix_paths
            .get()
            .and_then(|(local, _)| local.clone())
    }

    /// Attaches typed user data to the connection (cl-async's
    /// `socket-data`), replacing any earlier value.
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) {
        *lock(&self.inner.conn.user_data) = Some(Arc::new(value));
    }

    /// The user data, if some of type `T` is attached.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        lock(&self.inner.conn.user_data)
            .clone()
            .and_then(|data| data.downcast::<T>().ok())
    }

    /// How many received bytes wait in the input buffer.
    pub fn input_buffer_len(&self) -> usize {
        lock(&self.inner.conn.input).buf.len()
    }

    /// How many bytes wait in the output buffer for the kernel.
    pub fn output_buffer_len(&self) -> usize {
        lock(&self.inner.conn.output).buf.len()
    }

    /// Takes buffered input into `dst` without blocking.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is buffered and more may come; the
    /// connection's error (for example `ConnectionReset`) once the buffer is
    /// empty after a failure. `Ok(0)` means the end: EOF or close, with
    /// every byte read.
    pub fn read(&self, dst: &mut [u8]) -> io::Result<usize> {
        self.inner.conn.read_input(dst)
    }

    /// Copies buffered input into `dst` without taking it; returns how many
    /// bytes were copied (0 when nothing is buffered).
    pub fn peek(&self, dst: &mut [u8]) -> usize {
        lock(&self.inner.conn.input).buf.copy_out(dst)
    }

    /// Takes up to `max` buffered bytes as one `Bytes`, without copying when
    /// they lie in one received chunk.
    ///
    /// # Errors
    ///
    /// As [`read`](Socket::read); an empty `Bytes` means the end.
    pub fn read_chunk(&self, max: usize) -> io::Result<Bytes> {
        self.inner.conn.with_input(|input| {
            if !input.buf.is_empty() {
                let front = input.buf.front_chunk().map_or(0, Bytes::len);
                return Ok(input.buf.split_to(front.min(max)));
            }
            if let Some(err) = &input.error {
                return Err(err.clone().into());
            }
            if input.eof || input.closed || max == 0 {
                Ok(Bytes::new())
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            }
        })
    }

    /// The error the connection failed with, if it did.
    pub fn error(&self) -> Option<Error> {
        let conn = &self.inner.conn;
        let input_error = lock(&conn.input).error.clone();
        input_error.or_else(|| lock(&conn.output).error.clone())
    }

    /// Sets `TCP_NODELAY` on the connected socket (it is on by default).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when there is no connected socket (not connected
    /// yet, or released), or the operating system's error.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        let stream = lock(&self.inner.conn.output).stream.clone();
        match stream {
            Some(stream) => stream.set_nodelay(nodelay).map_err(Error::from),
            None => Err(Error::Closed),
        }
    }

    /// Whether the peer has sent FIN.
    pub fn is_eof(&self) -> bool {
        lock(&self.inner.conn.input).eof
    }

    /// Queues `data` like [`write`](Socket::write) and returns the offset
    /// in the connection's output at which it ends, for
    /// [`sent`](Socket::sent).
    ///
    /// # Errors
    ///
    /// As [`write`](Socket::write).
    pub fn write_tracked(&self, data: &[u8]) -> Result<u64> {
        self.check_open()?;
        self.inner.conn.write_inner(data, None)?;
        Ok(lock(&self.inner.conn.output).accepted)
    }

    /// Completes once every byte queued up to `offset` (from
    /// [`write_tracked`](Socket::write_tracked)) has been handed to the
    /// kernel: turbo's `write(data, callback)`.
    ///
    /// # Errors
    ///
    /// The connection's error, or [`Error::Closed`] if it was released
    /// before those bytes went out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; the bytes are sent either way.
    pub async fn sent(&self, offset: u64) -> Result<()> {
        let conn = self.inner.conn.clone();
        std::future::poll_fn(|cx| conn.poll_sent(offset, cx.waker())).await
    }

    /// Calls `callback` on the loop thread once the connection is released
    /// (turbo's `set_close_callback`). If it already is, the callback runs on
    /// the loop's next turn.
    pub fn on_close(&self, callback: impl FnOnce() + Send + 'static) {
        let conn = &self.inner.conn;
        // Checked under the output lock, which the loop takes to mark the
        // release: the callback is either queued for the release or, if that
        // has happened, scheduled now.
        let out = lock(&conn.output);
        if out.state == WriteState::Closed {
            drop(out);
            conn.handle.delay(Duration::ZERO, callback);
        } else {
            lock(&conn.close_callbacks).push(Box::new(callback));
        }
    }

    /// Completes once the connection is released, whatever the reason.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn closed(&self) {
        let conn = self.inner.conn.clone();
        std::future::poll_fn(|cx| conn.poll_released(cx.waker())).await
    }

    /// Whether an IOStream-style read (`read_until`, `read_bytes`…) is in
    /// progress on this connection (turbo's `reading()`).
    pub fn reading(&self) -> bool {
        self.inner.conn.reads_in_progress.load(Ordering::Acquire) > 0
    }

    /// Whether output is waiting to be handed to the kernel (turbo's
    /// `writing()`).
    pub fn writing(&self) -> bool {
        !lock(&self.inner.conn.output).buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn socket_is_send_sync_clone() {
        assert_send_sync::<Socket>();
        assert_send_sync::<LoopHandle>();
    }
}
