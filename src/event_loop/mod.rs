//! The event loop: a poller, a timer heap, deferred calls, tasks and a
//! cross-thread command queue.
//!
//! An [`EventLoop`] owns every socket registered with it. Its thread is the
//! only one that reads from sockets, runs callbacks and fires timers; every
//! other thread talks to it through a [`LoopHandle`], which queues a command
//! and wakes the poller with `Poller::notify`. Calls made on the loop thread
//! itself (from a callback) queue the same way but never wake the poller:
//! the loop drains its queue before it sleeps again.
//!
//! When an `EventLoop` is dropped (its thread ended, it panicked, or the
//! application let it go) it is *stopped for good*: every connection on it
//! is released with [`Error::LoopStopped`], which every pending and later
//! operation on those connections reports, and new work posted to it is
//! refused with the same error.

mod blocks;
mod copy_blocks;
mod core;
mod group;
mod sys;
mod task;
pub mod time;
mod timer;

pub(crate) use self::core::{Core, Source, SourceId, Step};
pub use group::LoopGroup;
pub(crate) use sys::{Readiness, Registration};
pub use task::JoinHandle;
pub(crate) use timer::TimerId;

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

use copy_blocks::CopyBlocks;
pub(crate) use copy_blocks::MIN_BLOCK_COPY;
use sys::Poller;

use crate::error::{Error, Result};
use crate::sync::lock;

thread_local! {
    // The id of the loop running on this thread, 0 when none is.
    static CURRENT_LOOP: Cell<u64> = const { Cell::new(0) };
    // Set while the loop thread polls a future it drives (a spawned task,
    // the future of `block_on`): a wait there returns to the loop. Clear
    // while it runs a callback, where a wait can only block the loop.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

enum Command {
    Wake(SourceId),
    Call(Box<dyn FnOnce(&mut Core) + Send>),
    CancelTimer(u64),
    CancelWakerTimer(u64),
    Run(async_task::Runnable),
}

/// The part of a loop every handle shares.
pub(crate) struct Shared {
    id: u64,
    poller: Arc<Poller>,
    commands: Mutex<VecDeque<Command>>,
    /// Set after a command is queued, so the loop can skip the lock on the
    /// (usual) turns when nothing was posted.
    has_commands: AtomicBool,
    stop: AtomicBool,
    /// Set (under the command lock) once the loop is gone for good.
    dead: AtomicBool,
    next_timer_id: AtomicU64,
    /// Spawned tasks not finished yet: they keep `run` going.
    live_tasks: AtomicUsize,
    /// Connections the loop drives (kept by the core).
    connections: AtomicUsize,
    /// `drain` was asked for: the loop finishes its sources and stops.
    draining: AtomicBool,
    /// A thread is running the loop (`run`, `block_on`, or the thread of
    /// `EventLoop::spawn`), so waiting on it makes sense.
    running: AtomicBool,
    /// `run_once` has driven the loop: a game loop steps it every frame,
    /// so a wait between two steps is not a hang.
    stepped: AtomicBool,
    /// The hang warnings were logged (once per loop each).
    warned_not_running: AtomicBool,
    warned_in_callback: AtomicBool,
    /// Where the loop's connections copy output the kernel did not take
    /// at once (a leaf lock: nothing else is locked while it is held, and
    /// it is taken only for a copy of [`MIN_BLOCK_COPY`] bytes or more).
    output_blocks: Mutex<CopyBlocks>,
}

impl Shared {
    fn on_loop_thread(&self) -> bool {
        CURRENT_LOOP.with(|current| current.get() == self.id)
    }

    /// Logs (once per loop) a wait that cannot end: on a loop that no
    /// thread runs, or inside a callback on the loop's own thread (where
    /// a waiting `block_on` stops the loop that has to end the wait).
    fn note_wait(&self) {
        if self.on_loop_thread() {
            if !IN_TASK.with(Cell::get) && !self.warned_in_callback.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "evstream: a future waits on event loop {} from a callback running on that \
                     loop's own thread; if something blocks on it there (a foreign block_on), \
                     the loop is stopped and the wait never ends. Never block in a callback: \
                     spawn a task (LoopHandle::spawn) or hand the work to another thread",
                    self.id
                );
            }
            return;
        }
        if !self.running.load(Ordering::Acquire)
            && !self.stepped.load(Ordering::Relaxed)
            && !self.dead.load(Ordering::Acquire)
            && !self.warned_not_running.swap(true, Ordering::Relaxed)
        {
            log::warn!(
                "evstream: a future waits on event loop {}, which no thread is running; it \
                 completes only once something runs the loop (EventLoop::run, block_on, \
                 run_once) or if it was started with EventLoop::spawn",
                self.id
            );
        }
    }

    /// Queues a command for the loop thread, waking it if needed.
    ///
    /// # Errors
    ///
    /// [`Error::LoopStopped`] once the loop is gone: nothing would ever run
    /// the command.
    fn post(&self, command: Command) -> Result<()> {
        {
            let mut commands = lock(&self.commands);
            if self.dead.load(Ordering::Acquire) {
                drop(commands);
                // Dropped outside the lock: it may own a task or a socket.
                drop(command);
                return Err(Error::LoopStopped);
            }
            commands.push_back(command);
        }
        self.has_commands.store(true, Ordering::Release);
        if !self.on_loop_thread() {
            // Failure to notify only happens if the poller itself is broken,
            // and then the loop reports the error from `wait`.
            let _ = self.poller.notify();
        }
        Ok(())
    }
}

/// A `Send + Sync + Clone` handle to an [`EventLoop`], usable from any thread.
///
/// Everything that creates work for a loop (connecting, binding a server,
/// setting a timer, spawning a task, stopping it) goes through a handle.
/// Handles stay valid after the loop has stopped for good; work posted to it
/// then fails with [`Error::LoopStopped`] (or, for fire-and-forget calls
/// such as [`delay`](LoopHandle::delay), is dropped).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let mut ev = evstream::EventLoop::new()?;
/// let handle = ev.handle();
/// let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let flag = fired.clone();
/// handle.delay(Duration::from_millis(10), move || {
///     flag.store(true, std::sync::atomic::Ordering::SeqCst)
/// });
/// ev.run()?; // returns once the timer has fired: nothing is left to wait for
/// assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
/// # std::io::Result::Ok(())
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    shared: Arc<Shared>,
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("id", &self.shared.id)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl PartialEq for LoopHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}
impl Eq for LoopHandle {}

impl LoopHandle {
    /// A copy of `data` in the loop's output blocks, for output the kernel
    /// did not take at once; see `copy_blocks.rs`.
    pub(crate) fn copy_output(&self, data: &[u8]) -> bytes::Bytes {
        lock(&self.shared.output_blocks).copy(data)
    }

    /// Asks the loop to stop.
    ///
    /// `run` (or `block_on`) returns after the turn in progress; sources
    /// stay registered and go on if the loop is run again. Stopping a loop
    /// that is not running makes its next `run` return at once. A loop
    /// started with [`EventLoop::spawn`] ends its thread and is then stopped
    /// for good (see [`is_stopped`](LoopHandle::is_stopped)).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.poller.notify();
    }

    /// Whether the loop is gone for good (its [`EventLoop`] was dropped):
    /// its connections have failed with [`Error::LoopStopped`] and new work
    /// is refused.
    pub fn is_stopped(&self) -> bool {
        self.shared.dead.load(Ordering::Acquire)
    }

    /// Stops the loop gracefully: servers on it stop accepting (their
    /// listening sockets are closed), every connection on it is closed as
    /// [`Socket::close`](crate::Socket::close) does — queued output is
    /// flushed, then FIN — and once the last one is released the loop
    /// stops ([`run`](EventLoop::run) and
    /// [`run_until_stopped`](EventLoop::run_until_stopped) return; a loop
    /// of [`EventLoop::spawn`] or of a [`LoopGroup`] ends its thread and is
    /// then stopped for good, failing what is left, such as tasks, with
    /// [`Error::LoopStopped`]).
    ///
    /// Each close is bounded by the connection's
    /// [`close_linger`](crate::TcpOptions::close_linger), so a peer that
    /// never reads cannot hold the loop. Connections made on the loop
    /// while it drains are closed the same way. Idempotent; a loop that is
    /// gone ignores it.
    ///
    /// # Examples
    ///
    /// ```
    /// let handle = evstream::EventLoop::spawn()?;
    /// handle.drain(); // nothing to finish: the loop stops at once
    /// # std::io::Result::Ok(())
    /// ```
    pub fn drain(&self) {
        let _ = self.call(|core| core.begin_drain());
    }

    /// Whether [`drain`](LoopHandle::drain) has started on this loop.
    pub fn is_draining(&self) -> bool {
        self.shared.draining.load(Ordering::Acquire)
    }

    /// How many connections the loop drives now: those being set up,
    /// open, or closing (not yet released). Servers are not counted. A
    /// metric like tokio's `RuntimeMetrics`, read without locking: it may
    /// lag the loop by a turn.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{tcp_connect, EventLoop, ServerOptions, TcpOptions, TcpServer};
    ///
    /// let mut ev = EventLoop::new()?;
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
    /// let client = tcp_connect(&ev.handle(), "127.0.0.1", server.local_addr().port(), TcpOptions::new())?;
    /// let accepted = ev.block_on(server.accept())??;
    /// assert_eq!(ev.handle().connection_count(), 2); // both ends live on this loop
    /// # drop((client, accepted));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// How many spawned tasks on the loop have not finished yet.
    pub fn task_count(&self) -> usize {
        self.shared.live_tasks.load(Ordering::Relaxed)
    }

    /// True when called from the thread currently running this loop, i.e.
    /// from a callback or from a future driven by [`EventLoop::block_on`].
    pub fn is_loop_thread(&self) -> bool {
        self.shared.on_loop_thread()
    }

    /// Whether a thread is running the loop now ([`EventLoop::run`],
    /// [`block_on`](EventLoop::block_on), or the thread of
    /// [`EventLoop::spawn`], which includes the [`default_loop`]). A
    /// future waiting on a loop that nobody runs waits until someone
    /// does; evstream logs a warning the first time it sees one.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// A future of this loop is about to wait (return `Pending`): log a
    /// wait that cannot end (see `Shared::note_wait`).
    pub(crate) fn note_wait(&self) {
        self.shared.note_wait();
    }

    /// Calls `callback` on the loop thread once `after` has passed
    /// (cl-async's `delay`). `Duration::ZERO` runs it on the next turn; a
    /// duration too long to represent as a deadline (`Duration::MAX`) means
    /// never.
    ///
    /// A pending timer keeps [`EventLoop::run`] from returning. A panic in
    /// the callback is caught and logged; the loop goes on. On a loop that
    /// is stopped for good the callback is dropped without running.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let mut ev = evstream::EventLoop::new()?;
    /// let (tx, rx) = mpsc::channel();
    /// let tx2 = tx.clone();
    /// ev.handle().delay(Duration::from_millis(20), move || tx.send("late").unwrap());
    /// ev.handle().delay(Duration::ZERO, move || tx2.send("soon").unwrap());
    /// ev.run()?;
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["soon", "late"]);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn delay<F>(&self, after: Duration, callback: F) -> Timer
    where
        F: FnOnce() + Send + 'static,
    {
        let id = self.next_timer_id();
        let callback: Box<dyn FnOnce() + Send> = Box::new(callback);
        let _ = self
            .shared
            .post(Command::Call(Box::new(move |core: &mut Core| {
                core.add_user_timer(after, id, callback);
            })));
        Timer {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// Spawns `future` as a task on the loop thread and returns a handle to
    /// await its output.
    ///
    /// The task is polled on the loop thread whenever its waker fires; a
    /// pending task keeps [`EventLoop::run`] from returning. Dropping the
    /// [`JoinHandle`] detaches the task: it runs to completion anyway (as
    /// with tokio). A panic in the task is caught and logged, and the
    /// handle reports it as [`Error::TaskPanicked`]; on a loop that is
    /// stopped for good the task is dropped and the handle reports
    /// [`Error::LoopStopped`].
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ev = evstream::EventLoop::new()?;
    /// let task = ev.handle().spawn(async { 1 + 1 });
    /// assert_eq!(ev.block_on(task)??, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        task::spawn(&self.shared, future)
    }

    /// Runs `f` with the loop's core on the loop thread.
    ///
    /// # Errors
    ///
    /// [`Error::LoopStopped`] if the loop is gone for good (`f` is dropped).
    pub(crate) fn call(&self, f: impl FnOnce(&mut Core) + Send + 'static) -> Result<()> {
        self.shared.post(Command::Call(Box::new(f)))
    }

    /// Cancels a waker timer of `time` (nothing happens if it fired, or
    /// the loop is gone).
    pub(crate) fn cancel_waker_timer(&self, id: u64) {
        let _ = self.shared.post(Command::CancelWakerTimer(id));
    }

    /// A fresh id for a timer of this loop.
    pub(crate) fn next_timer_id(&self) -> u64 {
        self.shared.next_timer_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Asks the loop to call `on_wake` of the source `id` (nothing happens
    /// if that source is gone, or the loop is).
    pub(crate) fn wake_source(&self, id: SourceId) {
        let _ = self.shared.post(Command::Wake(id));
    }
}

/// A timer set with [`LoopHandle::delay`]; [`cancel`](Timer::cancel) it to
/// stop the callback from running. Dropping it does not cancel it.
#[derive(Debug, Clone)]
pub struct Timer {
    shared: Weak<Shared>,
    id: u64,
}

impl Timer {
    /// Cancels the timer if it has not fired yet.
    pub fn cancel(&self) {
        if let Some(shared) = self.shared.upgrade() {
            let _ = shared.post(Command::CancelTimer(self.id));
        }
    }
}

/// Marks the current thread as running a loop for as long as it lives.
struct LoopThreadGuard {
    previous: u64,
}

impl LoopThreadGuard {
    fn enter(id: u64) -> Self {
        let previous = CURRENT_LOOP.with(|current| current.replace(id));
        LoopThreadGuard { previous }
    }
}

impl Drop for LoopThreadGuard {
    fn drop(&mut self) {
        CURRENT_LOOP.with(|current| current.set(self.previous));
    }
}

/// Marks the loop as running (see [`LoopHandle::is_running`]) for as long
/// as it lives.
struct RunningGuard<'a>(&'a Shared);

impl<'a> RunningGuard<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.running.store(true, Ordering::Release);
        RunningGuard(shared)
    }
}

impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// Marks the loop thread as polling a future the loop drives (a task, the
/// future of `block_on`) rather than running a callback.
pub(crate) struct TaskGuard {
    previous: bool,
}

impl TaskGuard {
    pub(crate) fn enter() -> Self {
        TaskGuard {
            previous: IN_TASK.with(|flag| flag.replace(true)),
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        IN_TASK.with(|flag| flag.set(self.previous));
    }
}

/// An event loop: cl-async's `with-event-loop`, on `polling`.
///
/// The loop owns its sockets and their buffers. [`run`](EventLoop::run)
/// drives it on the calling thread until nothing is left that can produce an
/// event, [`block_on`](EventLoop::block_on) drives it until a future
/// completes, and [`EventLoop::spawn`] runs one on a background thread.
///
/// # Examples
///
/// ```
/// use evstream::{tcp_connect, EventLoop, ServerOptions, TcpOptions, TcpServer};
///
/// let mut ev = EventLoop::new()?;
/// let handle = ev.handle();
/// // A server that echoes one message and closes.
/// let server = TcpServer::bind(
///     &handle,
///     "127.0.0.1:0",
///     ServerOptions::new().connection(TcpOptions::new().read_cb(|socket, data| {
///         socket.write_bytes(data).unwrap();
///         socket.close();
///     })),
/// )?;
/// let port = server.local_addr().port();
/// let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let sink = got.clone();
/// let stop = server.clone();
/// tcp_connect(
///     &handle,
///     "127.0.0.1",
///     port,
///     TcpOptions::new()
///         .data(&b"hello"[..])
///         .read_cb(move |_, data| sink.lock().unwrap().extend_from_slice(&data))
///         .event_cb(move |socket, event| {
///             if matches!(event, evstream::Event::Eof) {
///                 socket.close();
///                 stop.close();
///             }
///         }),
/// )?;
/// ev.run()?; // returns when the client and the server are both closed
/// assert_eq!(&got.lock().unwrap()[..], b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EventLoop {
    core: Core,
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("id", &self.core.shared.id)
            .field("sources", &self.core.source_count())
            .finish()
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        let _guard = LoopThreadGuard::enter(self.core.shared.id);
        self.core.shut_down();
    }
}

impl EventLoop {
    /// Creates a loop with its own poller.
    ///
    /// # Errors
    ///
    /// Fails if the operating system cannot create a poller.
    pub fn new() -> io::Result<EventLoop> {
        let shared = Arc::new(Shared {
            id: NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed),
            poller: Arc::new(Poller::new()?),
            commands: Mutex::new(VecDeque::new()),
            has_commands: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            dead: AtomicBool::new(false),
            next_timer_id: AtomicU64::new(1),
            live_tasks: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            running: AtomicBool::new(false),
            stepped: AtomicBool::new(false),
            warned_not_running: AtomicBool::new(false),
            warned_in_callback: AtomicBool::new(false),
            output_blocks: Mutex::new(CopyBlocks::default()),
        });
        Ok(EventLoop {
            core: Core::new(shared),
        })
    }

    /// A handle for other threads and for callbacks.
    pub fn handle(&self) -> LoopHandle {
        self.core.handle()
    }

    /// Runs the loop on this thread until nothing is left that can produce
    /// an event — no connection, no server, no pending timer or command —
    /// or until [`LoopHandle::stop`] is called.
    ///
    /// # Errors
    ///
    /// Fails only if the poller itself fails; errors of single connections
    /// go to their callbacks.
    pub fn run(&mut self) -> io::Result<()> {
        self.drive(true)
    }

    /// Runs the loop until [`LoopHandle::stop`], even while it is idle.
    ///
    /// # Errors
    ///
    /// Fails only if the poller itself fails.
    pub fn run_until_stopped(&mut self) -> io::Result<()> {
        self.drive(false)
    }

    fn drive(&mut self, until_idle: bool) -> io::Result<()> {
        let _guard = LoopThreadGuard::enter(self.core.shared.id);
        let shared = self.core.shared.clone();
        let _running = RunningGuard::enter(&shared);
        loop {
            if self.core.shared.stop.swap(false, Ordering::SeqCst) {
                return Ok(());
            }
            if until_idle {
                self.core.run_commands();
                if self.core.is_idle() {
                    return Ok(());
                }
            }
            self.core.turn(&|| false)?;
        }
    }

    /// Runs one turn without sleeping: queued work, due timers and whatever
    /// I/O is ready now. Useful for game loops that own the frame rate.
    ///
    /// # Errors
    ///
    /// Fails only if the poller itself fails.
    pub fn run_once(&mut self) -> io::Result<()> {
        let _guard = LoopThreadGuard::enter(self.core.shared.id);
        self.core.shared.stepped.store(true, Ordering::Relaxed);
        self.core.turn(&|| true)
    }

    /// Drives `future` on this thread while the loop runs, and returns its
    /// output.
    ///
    /// The future is polled on the loop thread, between turns, so wakers
    /// fired by the loop itself cost no cross-thread wake-up. The loop keeps
    /// running while the future is pending even if it has no sources. A call
    /// to [`LoopHandle::stop`] is ignored until the future is done.
    ///
    /// # Errors
    ///
    /// Fails only if the poller itself fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ev = evstream::EventLoop::new()?;
    /// let answer = ev.block_on(async { 6 * 7 })?;
    /// assert_eq!(answer, 42);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn block_on<F: Future>(&mut self, future: F) -> io::Result<F::Output> {
        let _guard = LoopThreadGuard::enter(self.core.shared.id);
        let shared = self.core.shared.clone();
        let _running = RunningGuard::enter(&shared);
        let signal = Arc::new(BlockOnWaker {
            woken: AtomicBool::new(true),
            shared: Arc::downgrade(&self.core.shared),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if signal.woken.swap(false, Ordering::SeqCst) {
                let poll = {
                    let _task = TaskGuard::enter();
                    future.as_mut().poll(&mut cx)
                };
                if let Poll::Ready(output) = poll {
                    return Ok(output);
                }
                // Work the future queued on this thread runs before any sleep.
                self.core.run_commands();
            }
            self.core.turn(&|| signal.woken.load(Ordering::SeqCst))?;
        }
    }

    /// Starts a loop on a background thread and returns its handle.
    ///
    /// The loop runs until [`LoopHandle::stop`] is called, whether or not it
    /// has work; connections and servers are created on it through the
    /// handle.
    ///
    /// # Errors
    ///
    /// Fails if the poller or the thread cannot be created.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use std::time::Duration;
    ///
    /// let handle = evstream::EventLoop::spawn()?;
    /// let (tx, rx) = mpsc::channel();
    /// let on_loop = handle.clone();
    /// handle.delay(Duration::ZERO, move || tx.send(on_loop.is_loop_thread()).unwrap());
    /// assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
    /// assert!(!handle.is_loop_thread());
    /// handle.stop();
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spawn() -> io::Result<LoopHandle> {
        EventLoop::spawn_named("evstream-loop".into()).map(|(handle, _)| handle)
    }

    /// Starts a loop on a background thread named `name`; returns its
    /// handle and the thread's.
    pub(crate) fn spawn_named(name: String) -> io::Result<(LoopHandle, thread::JoinHandle<()>)> {
        let mut event_loop = EventLoop::new()?;
        let handle = event_loop.handle();
        // Running from now on: the thread is about to run it, and a wait
        // started before it gets there is not a hang.
        handle.shared.running.store(true, Ordering::Release);
        let thread = thread::Builder::new().name(name).spawn(move || {
            if let Err(err) = event_loop.run_until_stopped() {
                log::error!("evstream: event loop failed: {err}");
            }
            // Dropping it here stops it for good: its connections fail
            // with `LoopStopped` rather than wait for ever.
        });
        match thread {
            Ok(thread) => Ok((handle, thread)),
            Err(err) => {
                handle.shared.running.store(false, Ordering::Release);
                Err(err)
            }
        }
    }
}

/// The process-wide default loop, started on a background thread on first
/// use and never stopped: what [`AsyncIoStream::connect`] uses, so a user
/// with no loop of their own gets going in one line.
///
/// [`AsyncIoStream::connect`]: crate::AsyncIoStream::connect
///
/// # Panics
///
/// If the operating system cannot create the loop's poller or thread the
/// first time.
pub fn default_loop() -> LoopHandle {
    static DEFAULT: std::sync::OnceLock<LoopHandle> = std::sync::OnceLock::new();
    DEFAULT
        .get_or_init(|| EventLoop::spawn().expect("evstream: cannot start the default event loop"))
        .clone()
}

struct BlockOnWaker {
    woken: AtomicBool,
    shared: Weak<Shared>,
}

impl Wake for BlockOnWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) {
            if let Some(shared) = self.shared.upgrade() {
                if !shared.on_loop_thread() {
                    let _ = shared.poller.notify();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    #[test]
    fn run_returns_at_once_when_idle() {
        let mut ev = EventLoop::new().unwrap();
        ev.run().unwrap();
    }

    #[test]
    fn cancelled_timer_does_not_fire_and_does_not_keep_the_loop_alive() {
        let mut ev = EventLoop::new().unwrap();
        let fired = Arc::new(AtomicUsize::new(0));
        let count = fired.clone();
        let timer = ev.handle().delay(Duration::from_secs(3600), move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        timer.cancel();
        ev.run().unwrap();
        assert_eq!(fired.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn panicking_timer_callback_does_not_stop_the_loop() {
        let mut ev = EventLoop::new().unwrap();
        let (tx, rx) = mpsc::channel();
        ev.handle().delay(Duration::ZERO, || panic!("boom"));
        ev.handle()
            .delay(Duration::from_millis(5), move || tx.send(()).unwrap());
        ev.run().unwrap();
        rx.try_recv().expect("the second timer ran");
    }

    #[test]
    fn stop_from_another_thread_ends_run_until_stopped() {
        let mut ev = EventLoop::new().unwrap();
        let handle = ev.handle();
        let stopper = thread::spawn(move || handle.stop());
        ev.run_until_stopped().unwrap();
        stopper.join().unwrap();
    }

    #[test]
    fn block_on_is_woken_from_another_thread() {
        let mut ev = EventLoop::new().unwrap();
        let (tx, rx) = futures_lite::future::block_on(async { async_channel_pair() });
        let sender = thread::spawn(move || tx.send(7u32).unwrap());
        let value = ev.block_on(rx).unwrap();
        assert_eq!(value, 7);
        sender.join().unwrap();
    }

    /// A minimal one-shot channel, so the test depends on no channel crate.
    fn async_channel_pair() -> (OneshotSender, OneshotReceiver) {
        let slot = Arc::new(Mutex::new((None, None::<Waker>)));
        (OneshotSender(slot.clone()), OneshotReceiver(slot))
    }
    struct OneshotSender(Arc<Mutex<(Option<u32>, Option<Waker>)>>);
    impl OneshotSender {
        fn send(self, value: u32) -> Result<(), ()> {
            let waker = {
                let mut slot = self.0.lock().unwrap();
                slot.0 = Some(value);
                slot.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
            Ok(())
        }
    }
    struct OneshotReceiver(Arc<Mutex<(Option<u32>, Option<Waker>)>>);
    impl Future for OneshotReceiver {
        type Output = u32;
        fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            let mut slot = self.0.lock().unwrap();
            match slot.0.take() {
                Some(value) => Poll::Ready(value),
                None => {
                    slot.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }
}
