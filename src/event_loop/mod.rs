//! The event loop: a poller, a timer heap, deferred calls and a cross-thread
//! command queue.
//!
//! An [`EventLoop`] owns every socket registered with it. Its thread is the
//! only one that reads from sockets, runs callbacks and fires timers; every
//! other thread talks to it through a [`LoopHandle`], which queues a command
//! and wakes the poller with `Poller::notify`. Calls made on the loop thread
//! itself (from a callback) queue the same way but never wake the poller:
//! the loop drains its queue before it sleeps again.

mod sys;
mod timer;

pub(crate) use sys::{read_into_spare, Readiness, Registration};

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use std::thread;
use std::time::{Duration, Instant};

use slab::Slab;
use sys::{Events, Poller};

use timer::{TimerHeap, TimerTarget};

/// Locks a mutex, ignoring poisoning.
///
/// evstream never runs user code while holding one of its own locks, and
/// every state behind them stays consistent between statements, so a panic
/// elsewhere is no reason to make the state unreachable.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Turns a caught panic payload into a message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

thread_local! {
    // The id of the loop running on this thread, 0 when none is.
    static CURRENT_LOOP: Cell<u64> = const { Cell::new(0) };
}

static NEXT_LOOP_ID: AtomicU64 = AtomicU64::new(1);

/// What a source tells the loop after handling an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Keep the source registered.
    Keep,
    /// The source is finished: drop it (which deregisters its descriptor).
    Remove,
}

/// Something the loop drives: a connection or a listening server.
///
/// Sources live in the loop's slab and run only on the loop thread. Other
/// threads reach one by changing state it shares with them and then asking
/// the loop to [`wake`](LoopHandle::wake_source) it.
pub(crate) trait Source: Send {
    /// The poller reported readiness.
    fn on_ready(&mut self, core: &mut Core, key: usize, ready: Readiness) -> Step;
    /// Another thread (or this one) asked the source to look at its shared
    /// state again. Spurious wakes are allowed and must be harmless.
    fn on_wake(&mut self, core: &mut Core, key: usize) -> Step;
    /// A timer the source set has expired. Timers are not cancelled, so the
    /// source must check that the deadline still applies.
    fn on_timer(&mut self, core: &mut Core, key: usize, token: u64) -> Step;
}

enum Command {
    Wake(usize),
    Call(Box<dyn FnOnce(&mut Core) + Send>),
    CancelTimer(u64),
    PollTask(usize),
}

type TaskFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A future spawned on the loop with [`LoopHandle::spawn`].
struct Task {
    future: Option<TaskFuture>,
    state: Arc<TaskWaker>,
    waker: Waker,
}

/// Wakes a spawned task by queueing a poll of it on its loop.
struct TaskWaker {
    key: usize,
    scheduled: AtomicBool,
    shared: Weak<Shared>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            if let Some(shared) = self.shared.upgrade() {
                shared.post(Command::PollTask(self.key));
            }
        }
    }
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
    next_timer_id: AtomicU64,
}

impl Shared {
    fn on_loop_thread(&self) -> bool {
        CURRENT_LOOP.with(|current| current.get() == self.id)
    }

    fn post(&self, command: Command) {
        lock(&self.commands).push_back(command);
        self.has_commands.store(true, Ordering::Release);
        if !self.on_loop_thread() {
            // Failure to notify only happens if the poller itself is broken,
            // and then the loop reports the error from `wait`.
            let _ = self.poller.notify();
        }
    }
}

/// A `Send + Sync + Clone` handle to an [`EventLoop`], usable from any thread.
///
/// Everything that creates work for a loop (connecting, binding a server,
/// setting a timer, stopping it) goes through a handle. Handles stay valid
/// after the loop has stopped; work posted to a loop that never runs again is
/// simply never done.
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
    /// Asks the loop to stop.
    ///
    /// `run` (or `block_on`) returns after the turn in progress; sources
    /// stay registered and go on if the loop is run again. Stopping a loop
    /// that is not running makes its next `run` return at once.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.shared.poller.notify();
    }

    /// True when called from the thread currently running this loop, i.e.
    /// from a callback or from a future driven by [`EventLoop::block_on`].
    pub fn is_loop_thread(&self) -> bool {
        self.shared.on_loop_thread()
    }

    /// Calls `callback` on the loop thread once `after` has passed
    /// (cl-async's `delay`). `Duration::ZERO` runs it on the next turn.
    ///
    /// A pending timer keeps [`EventLoop::run`] from returning. A panic in
    /// the callback is caught and printed to standard error; the loop goes
    /// on.
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
        let id = self.shared.next_timer_id.fetch_add(1, Ordering::Relaxed);
        let callback: Box<dyn FnOnce() + Send> = Box::new(callback);
        self.shared
            .post(Command::Call(Box::new(move |core: &mut Core| {
                let deadline = core.now() + after;
                core.user_timers.insert(id, callback);
                core.timers.push(deadline, TimerTarget::User(id));
            })));
        Timer {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// Runs `future` to completion on the loop thread (a minimal executor,
    /// so callback-style APIs can be written as `async` code).
    ///
    /// The task is polled on the loop thread whenever its waker fires; a
    /// pending task keeps [`EventLoop::run`] from returning. A panic in the
    /// task is caught and printed to standard error, and the task dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut ev = evstream::EventLoop::new()?;
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// ev.handle().spawn(async move { tx.send(1 + 1).unwrap() });
    /// ev.run()?;
    /// assert_eq!(rx.try_recv(), Ok(2));
    /// # std::io::Result::Ok(())
    /// ```
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let future: TaskFuture = Box::pin(future);
        self.call(move |core| {
            let entry = core.tasks.vacant_entry();
            let key = entry.key();
            let state = Arc::new(TaskWaker {
                key,
                scheduled: AtomicBool::new(true),
                shared: Arc::downgrade(&core.shared),
            });
            entry.insert(Task {
                future: Some(future),
                waker: Waker::from(state.clone()),
                state,
            });
            core.commands.push_back(Command::PollTask(key));
        });
    }

    /// Runs `f` with the loop's core on the loop thread.
    pub(crate) fn call(&self, f: impl FnOnce(&mut Core) + Send + 'static) {
        self.shared.post(Command::Call(Box::new(f)));
    }

    /// Asks the loop to call `on_wake` of the source at `key`.
    pub(crate) fn wake_source(&self, key: usize) {
        self.shared.post(Command::Wake(key));
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
            shared.post(Command::CancelTimer(self.id));
        }
    }
}

/// The loop's state, owned by the thread that runs it.
pub(crate) struct Core {
    shared: Arc<Shared>,
    sources: Slab<Option<Box<dyn Source>>>,
    tasks: Slab<Task>,
    timers: TimerHeap,
    user_timers: HashMap<u64, Box<dyn FnOnce() + Send>>,
    // Sources to wake on this turn, from the loop thread itself.
    pending_wakes: VecDeque<usize>,
    now: Cell<Option<Instant>>,
    events: Events,
    ready: Vec<(usize, Readiness)>,
    commands: VecDeque<Command>,
    // Lent to one connection at a time for the chunks one event reads, so
    // idle connections do not each keep a list's allocation.
    chunk_list: Vec<Bytes>,
}

impl Core {
    /// Lends the loop's list for the chunks one event reads (empty).
    pub(crate) fn take_chunk_list(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.chunk_list)
    }

    /// Takes a list back after use, keeping the larger allocation.
    pub(crate) fn return_chunk_list(&mut self, mut list: Vec<Bytes>) {
        if list.capacity() > self.chunk_list.capacity() {
            list.clear();
            self.chunk_list = list;
        }
    }

    /// The loop's clock: read at most once per turn after waiting, and only
    /// if someone asks (a turn with no timers and no timeouts reads none).
    pub(crate) fn now(&self) -> Instant {
        match self.now.get() {
            Some(now) => now,
            None => {
                let now = Instant::now();
                self.now.set(Some(now));
                now
            }
        }
    }

    pub(crate) fn poller(&self) -> &Arc<Poller> {
        &self.shared.poller
    }

    pub(crate) fn handle(&self) -> LoopHandle {
        LoopHandle {
            shared: self.shared.clone(),
        }
    }

    /// Reserves a slab key for a source that is about to be built.
    pub(crate) fn reserve_key(&mut self) -> usize {
        self.sources.insert(None)
    }

    /// Puts a source into a reserved key and wakes it on this turn.
    pub(crate) fn fill(&mut self, key: usize, source: Box<dyn Source>) {
        if let Some(slot) = self.sources.get_mut(key) {
            *slot = Some(source);
            self.pending_wakes.push_back(key);
        }
    }

    /// Releases a reserved key that will not be filled.
    pub(crate) fn unreserve(&mut self, key: usize) {
        if matches!(self.sources.get(key), Some(None)) {
            self.sources.remove(key);
        }
    }

    /// Calls `on_timer(token)` of the source at `key` at `deadline`.
    pub(crate) fn add_timer(&mut self, deadline: Instant, key: usize, token: u64) {
        self.timers
            .push(deadline, TimerTarget::Source { key, token });
    }

    /// Calls `on_wake` of the source at `key` later on this turn.
    pub(crate) fn wake_later(&mut self, key: usize) {
        self.pending_wakes.push_back(key);
    }

    fn dispatch(&mut self, key: usize, f: impl FnOnce(&mut dyn Source, &mut Core) -> Step) {
        let Some(mut source) = self.sources.get_mut(key).and_then(Option::take) else {
            return;
        };
        match f(&mut *source, self) {
            Step::Keep => {
                if let Some(slot) = self.sources.get_mut(key) {
                    *slot = Some(source);
                }
            }
            Step::Remove => {
                self.sources.remove(key);
                drop(source);
            }
        }
    }

    fn run_commands(&mut self) {
        // Take the whole queue at once so the lock is not held while
        // commands run (they may post more). The flag is cleared before the
        // queue is taken: a command posted in between is either taken now
        // or sets the flag again.
        if self.shared.has_commands.swap(false, Ordering::AcqRel) {
            std::mem::swap(&mut self.commands, &mut *lock(&self.shared.commands));
        }
        while let Some(command) = self.commands.pop_front() {
            match command {
                Command::Wake(key) => self.dispatch(key, |s, core| s.on_wake(core, key)),
                Command::Call(f) => f(self),
                Command::CancelTimer(id) => {
                    self.user_timers.remove(&id);
                }
                Command::PollTask(key) => self.poll_task(key),
            }
        }
        // Only the wakes queued before this pass: a source that asks to run
        // again (a reader with more to read) waits for the next pass, after
        // the poller, the timers and the other sources have had their turn.
        for _ in 0..self.pending_wakes.len() {
            let Some(key) = self.pending_wakes.pop_front() else {
                break;
            };
            self.dispatch(key, |s, core| s.on_wake(core, key));
        }
    }

    fn poll_task(&mut self, key: usize) {
        let Some(task) = self.tasks.get_mut(key) else {
            return;
        };
        let Some(mut future) = task.future.take() else {
            return;
        };
        let waker = task.waker.clone();
        // Cleared before polling: a wake during the poll schedules another.
        task.state.scheduled.store(false, Ordering::Release);
        let mut cx = Context::from_waker(&waker);
        let polled = panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)));
        match polled {
            Ok(Poll::Pending) => {
                if let Some(task) = self.tasks.get_mut(key) {
                    task.future = Some(future);
                }
            }
            Ok(Poll::Ready(())) => {
                self.tasks.remove(key);
            }
            Err(payload) => {
                eprintln!(
                    "evstream: a spawned task panicked: {}",
                    panic_message(&*payload)
                );
                self.tasks.remove(key);
            }
        }
    }

    fn run_timers(&mut self) {
        if self.timers.next_deadline().is_none() {
            return;
        }
        while let Some(target) = self.timers.pop_due(self.now()) {
            match target {
                TimerTarget::Source { key, token } => {
                    self.dispatch(key, |s, core| s.on_timer(core, key, token))
                }
                TimerTarget::User(id) => {
                    if let Some(callback) = self.user_timers.remove(&id) {
                        if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(callback)) {
                            eprintln!(
                                "evstream: a delay() callback panicked: {}",
                                panic_message(&*payload)
                            );
                        }
                    }
                }
            }
        }
    }

    fn has_queued_work(&self) -> bool {
        !self.pending_wakes.is_empty() || self.shared.has_commands.load(Ordering::Acquire)
    }

    /// True when nothing is left that could ever produce an event.
    fn is_idle(&self) -> bool {
        self.sources.is_empty()
            && self.tasks.is_empty()
            && self.user_timers.is_empty()
            && !self.has_queued_work()
    }

    /// One turn: run queued work and due timers, then wait for I/O (never
    /// past the next timer, not at all when `must_not_sleep` says so just
    /// before waiting) and dispatch it.
    fn turn(&mut self, must_not_sleep: &dyn Fn() -> bool) -> io::Result<()> {
        self.run_commands();
        self.now.set(None);
        self.run_timers();
        self.run_commands();

        // Nothing left that could wake us (the last timer just fired, say):
        // sleeping would be forever, so only poll; `run` then sees it idle.
        let timeout = if must_not_sleep() || self.has_queued_work() || self.is_idle() {
            Some(Duration::ZERO)
        } else {
            // A fresh reading, not this turn's cached one: the callbacks run
            // since may have taken long enough for a timer to fall due.
            self.timers
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()))
        };
        self.shared.poller.wait(&mut self.events, timeout)?;
        self.now.set(None);

        self.ready.clear();
        self.ready.extend(self.events.iter());
        for i in 0..self.ready.len() {
            let (key, ready) = self.ready[i];
            self.dispatch(key, |s, core| s.on_ready(core, key, ready));
        }
        Ok(())
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
            .field("sources", &self.core.sources.len())
            .finish()
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
            next_timer_id: AtomicU64::new(1),
        });
        Ok(EventLoop {
            core: Core {
                shared,
                sources: Slab::new(),
                tasks: Slab::new(),
                timers: TimerHeap::default(),
                user_timers: HashMap::new(),
                pending_wakes: VecDeque::new(),
                now: Cell::new(None),
                events: Events::with_capacity(1024),
                ready: Vec::new(),
                commands: VecDeque::new(),
                chunk_list: Vec::new(),
            },
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
        let signal = Arc::new(BlockOnWaker {
            woken: AtomicBool::new(true),
            shared: Arc::downgrade(&self.core.shared),
        });
        let waker = Waker::from(signal.clone());
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if signal.woken.swap(false, Ordering::SeqCst) {
                if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
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
        let mut event_loop = EventLoop::new()?;
        let handle = event_loop.handle();
        thread::Builder::new()
            .name("evstream-loop".into())
            .spawn(move || {
                if let Err(err) = event_loop.run_until_stopped() {
                    eprintln!("evstream: event loop failed: {err}");
                }
            })?;
        Ok(handle)
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
