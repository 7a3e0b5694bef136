//! The loop side of a listening socket: accepting connections and handing
//! each to its own driver — and, for a server without callbacks, the
//! bounded queue where accepted connections wait for `accept()`.
//!
//! # Two modes
//!
//! A server whose connection options have callbacks hands every
//! connection to them (callback mode: the connections' lifetime is
//! explicit). A server without callbacks is in *accept mode*: each
//! connection is queued, with a handle that keeps it open, until the
//! application takes it with `accept()`. The queue holds at most the
//! server's backlog; when it is full the acceptor stops taking connections
//! from the kernel (which then queues them in its own listen backlog and,
//! past that, makes clients wait), and starts again when the application
//! takes one. Memory stays bounded by configuration whatever the clients
//! do.
//!
//! # When the acceptor stops taking connections
//!
//! Besides a full accept queue, three things make the acceptor leave
//! connections in the kernel's listen backlog (where clients wait, and are
//! not refused by us); as every source is registered edge-triggered, a
//! stopped acceptor costs nothing until something wakes it, and then it
//! accepts until `WouldBlock` again:
//!
//! * the server's [`Gate`] is at its connection limit: every accepted
//!   connection holds a slot of it from `accept` until its driver releases
//!   the socket, and the release that makes room wakes the stalled
//!   acceptors (every listener of a group server shares one gate);
//! * the gate is paused by hand; resuming wakes every acceptor;
//! * `accept` failed for want of descriptors or memory (`EMFILE`,
//!   `ENFILE`, `ENOBUFS`…): the acceptor backs off for [`ACCEPT_RETRY`],
//!   ignoring readiness meanwhile, so a flood of connects it cannot take
//!   does not keep the loop busy.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use super::connect::{accepted, Setup};
use super::protocol::Wakers;
use super::{NetListener, NetStream, Socket};
use crate::error::{Error, Result};
use crate::event_loop::{Core, LoopHandle, Readiness, Registration, Source, SourceId, Step};
use crate::sync::lock;

/// After an accept error such as EMFILE, try again after this long: the
/// edge that announced the waiting connections has been consumed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
const TOKEN_RETRY: u64 = 1;
const UNREGISTERED: u64 = u64::MAX;

/// The connection limit and the pause switch of one server, shared by
/// every listener of a group server (so the limit is the group's total).
///
/// Every connection accepted holds a slot from the moment the acceptor
/// takes it from the kernel until its socket is released (closed, failed,
/// or abandoned with its loop). The acceptor reserves the slot *before*
/// calling `accept`, so the limit is never overshot, not even by loops
/// accepting at once.
pub(crate) struct Gate {
    /// `usize::MAX` when there is no limit.
    max: usize,
    /// Slots held: open connections, plus a reservation for an `accept`
    /// under way.
    open: AtomicUsize,
    /// Connections taken from the kernel and not yet released: what
    /// `connection_count` reports. Kept apart from `open` because a
    /// reservation for an `accept` that finds nothing (a loop woken by a
    /// release elsewhere in a group) is not a connection.
    connections: AtomicUsize,
    /// Paused by hand.
    paused: AtomicBool,
    /// Some acceptor stopped at the limit and waits for a release to wake
    /// it. Set before its last look at `open` and cleared by the release
    /// that wakes it (both `SeqCst`): either that look sees the room, or
    /// the release sees the flag.
    stalled: AtomicBool,
    /// The listeners to wake when there is room again or accepting
    /// resumes.
    acceptors: Mutex<Vec<Weak<ListenerShared>>>,
}

impl Gate {
    /// A gate for one server (or one group server); `max` of `None` is no
    /// limit.
    pub(crate) fn new(max: Option<usize>) -> Arc<Gate> {
        Arc::new(Gate {
            max: max.unwrap_or(usize::MAX),
            open: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            paused: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            acceptors: Mutex::new(Vec::new()),
        })
    }

    fn add_acceptor(&self, listener: &Arc<ListenerShared>) {
        let mut acceptors = lock(&self.acceptors);
        acceptors.retain(|weak| weak.strong_count() > 0);
        acceptors.push(Arc::downgrade(listener));
    }

    /// Reserves a slot if one is free.
    fn try_acquire(&self) -> bool {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |open| {
                (open < self.max).then_some(open + 1)
            })
            .is_ok()
    }

    /// Reserves a slot, or records that an acceptor waits for one (the
    /// release that frees one then wakes it).
    fn acquire(&self) -> bool {
        if self.try_acquire() {
            return true;
        }
        self.stalled.store(true, Ordering::SeqCst);
        // A slot released between the first look and the flag woke nobody.
        self.try_acquire()
    }

    /// A reserved slot now holds a connection taken from the kernel.
    fn connection_accepted(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    /// A connection accepted through this gate was released: its slot is
    /// free.
    fn release_connection(&self) {
        self.connections.fetch_sub(1, Ordering::SeqCst);
        self.release();
    }

    /// Gives a slot back: a connection was released, or an `accept` took
    /// nothing. Wakes the acceptors stalled at the limit.
    fn release(&self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        if self.stalled.swap(false, Ordering::SeqCst) {
            self.wake_acceptors();
        }
    }

    fn wake_acceptors(&self) {
        let acceptors: Vec<Arc<ListenerShared>> = lock(&self.acceptors)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for acceptor in acceptors {
            acceptor.wake_acceptor();
        }
    }

    /// Stops every acceptor of the server from taking connections.
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Lets every acceptor of the server take connections again.
    pub(crate) fn resume(&self) {
        if self.paused.swap(false, Ordering::SeqCst) {
            self.wake_acceptors();
        }
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet released (not counting a slot
    /// reserved for an `accept` under way).
    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub(crate) fn max(&self) -> Option<usize> {
        (self.max != usize::MAX).then_some(self.max)
    }
}

/// What every handle to a server shares with its acceptor.
pub(crate) struct ListenerShared {
    handle: LoopHandle,
    /// Set for a TCP server.
    local_addr: Option<SocketAddr>,
    /// Set for a Unix domain socket server.
    local_path: Option<PathBuf>,
    source: AtomicU64,
    closed: AtomicBool,
    /// The accept queue of a server without callbacks; `None` in callback
    /// mode.
    queue: Option<Mutex<AcceptQueue>>,
    /// User handles alive ([`ServerHandle`]s): an accept-mode server is
    /// closed when the last one goes, since nobody could accept any more.
    handles: AtomicUsize,
    /// The connection limit and pause switch (shared within a group).
    gate: Arc<Gate>,
}

/// Accepted connections waiting for `accept()`.
struct AcceptQueue {
    ready: VecDeque<(Socket, Option<SocketAddr>)>,
    capacity: usize,
    /// The acceptor stopped taking connections from the kernel because
    /// the queue was full; taking one must wake it.
    paused: bool,
    /// Why no connection will come any more (the server closed, its loop
    /// stopped).
    ended: Option<Error>,
    wakers: Wakers,
}

impl AcceptQueue {
    fn is_full(&self) -> bool {
        self.ready.len() >= self.capacity
    }
}

/// A user's handle to a server (what `TcpServer` and `UnixServer` wrap):
/// the last one dropped closes a server in accept mode.
pub(crate) struct ServerHandle(Arc<ListenerShared>);

impl ServerHandle {
    pub(crate) fn new(shared: Arc<ListenerShared>) -> Self {
        shared.handles.fetch_add(1, Ordering::AcqRel);
        ServerHandle(shared)
    }
}

impl std::ops::Deref for ServerHandle {
    type Target = Arc<ListenerShared>;
    fn deref(&self) -> &Arc<ListenerShared> {
        &self.0
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        let remaining = self.0.handles.fetch_sub(1, Ordering::AcqRel) - 1;
        if remaining == 0 && self.0.queue.is_some() {
            self.0.close();
        }
    }
}

impl ListenerShared {
    /// The address of a TCP server.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The path of a Unix domain socket server.
    pub(crate) fn local_path(&self) -> Option<&Path> {
        self.local_path.as_deref()
    }

    /// The loop the server accepts on.
    pub(crate) fn handle(&self) -> &LoopHandle {
        &self.handle
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The server's connection limit and pause switch.
    pub(crate) fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// A connection this server accepted released its socket: its slot is
    /// free.
    pub(super) fn connection_released(&self) {
        self.gate.release_connection();
    }

    /// Asks the acceptor to look at the listening socket again.
    fn wake_acceptor(&self) {
        let token = self.source.load(Ordering::SeqCst);
        if token != UNREGISTERED {
            self.handle.wake_source(SourceId::from_token(token));
        }
    }

    /// Stops accepting and releases the listening socket. Idempotent.
    /// Connections waiting in the accept queue are closed (gracefully: no
    /// handle to them was handed out), and waiting `accept()`s fail with
    /// [`Error::Closed`].
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.wake_acceptor();
        }
        self.end_queue(Error::Closed);
    }

    /// No connection will be queued any more: fail waiting `accept()`s with
    /// `reason`, and close the connections nobody took.
    fn end_queue(&self, reason: Error) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (waiting, wakers) = {
            let mut queue = lock(queue);
            if queue.ended.is_none() {
                queue.ended = Some(reason);
            }
            (std::mem::take(&mut queue.ready), queue.wakers.take())
        };
        // Dropped unlocked: the last handle of each closes it.
        drop(waiting);
        wakers.wake_all();
    }

    /// Whether the server queues its connections for `accept()` (it has no
    /// callbacks).
    pub(crate) fn is_accept_mode(&self) -> bool {
        self.queue.is_some()
    }

    /// Takes the oldest queued connection once it is open, or `Pending`
    /// with `waker` stored. A connection that failed before it opened is
    /// skipped. Cancel safe: a connection leaves the queue only here, when
    /// it is returned.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for a server in callback mode;
    /// [`Error::Closed`] once the server is closed, [`Error::LoopStopped`]
    /// if its loop stopped.
    pub(crate) fn poll_accept(&self, waker: &Waker) -> Poll<Result<(Socket, Option<SocketAddr>)>> {
        let Some(queue) = &self.queue else {
            return Poll::Ready(Err(Error::InvalidInput(
                "this server hands its connections to its callbacks; bind one without \
                 callbacks to accept()"
                    .into(),
            )));
        };
        loop {
            let mut q = lock(queue);
            if let Some(reason) = &q.ended {
                return Poll::Ready(Err(reason.clone()));
            }
            // Registered with the queue in every case: a newer connection,
            // or the front one taken by another `accept()`, wakes it.
            q.wakers.register(waker);
            let Some((front, _)) = q.ready.front() else {
                return Poll::Pending;
            };
            let opened = front.poll_connected(waker);
            if opened.is_pending() {
                return Poll::Pending;
            }
            let (socket, peer) = q.ready.pop_front().expect("the front is there");
            let resume = std::mem::take(&mut q.paused);
            let others = if q.ready.is_empty() {
                Wakers::default()
            } else {
                q.wakers.take()
            };
            drop(q);
            if resume {
                // The acceptor stopped at a full queue: there is room now.
                self.wake_acceptor();
            }
            others.wake_all();
            match opened {
                Poll::Ready(Ok(())) => return Poll::Ready(Ok((socket, peer))),
                Poll::Ready(Err(err)) => {
                    log::debug!("evstream: an accepted connection failed before accept(): {err}");
                }
                Poll::Pending => unreachable!("checked above"),
            }
        }
    }

    /// How many accepted connections wait for `accept()`.
    pub(crate) fn queued(&self) -> usize {
        self.queue
            .as_ref()
            .map_or(0, |queue| lock(queue).ready.len())
    }
}

/// Registers `listener` on `handle`'s loop and starts accepting, each
/// accepted connection made from `setup`: handed to its callbacks if it
/// has any, else queued for `accept()` (at most `backlog` at a time). The
/// connections hold slots of `gate` (which other listeners of a group
/// server may share) while they are open.
///
/// # Errors
///
/// [`Error::LoopStopped`] if the loop is gone.
pub(crate) fn listen(
    handle: &LoopHandle,
    listener: NetListener,
    local_addr: Option<SocketAddr>,
    local_path: Option<PathBuf>,
    setup: Setup,
    backlog: usize,
    gate: Arc<Gate>,
) -> Result<ServerHandle> {
    let queue = (!setup.callbacks.any()).then(|| {
        Mutex::new(AcceptQueue {
            ready: VecDeque::new(),
            capacity: backlog.max(1),
            paused: false,
            ended: None,
            wakers: Wakers::default(),
        })
    });
    let shared = Arc::new(ListenerShared {
        handle: handle.clone(),
        local_addr,
        local_path,
        source: AtomicU64::new(UNREGISTERED),
        closed: AtomicBool::new(false),
        queue,
        handles: AtomicUsize::new(0),
        gate,
    });
    shared.gate.add_acceptor(&shared);
    let user = ServerHandle::new(shared.clone());
    let server = shared.clone();
    handle.call(move |core| {
        let id = core.reserve();
        server.source.store(id.token(), Ordering::SeqCst);
        if server.is_closed() {
            core.unreserve(id);
            return;
        }
        match Registration::new(core.poller(), Arc::new(listener), id.token()) {
            Ok(registration) => core.fill(
                id,
                Box::new(Acceptor {
                    shared: server,
                    registration,
                    setup,
                    retry_pending: false,
                    failing: false,
                    held: None,
                }),
            ),
            Err(err) => {
                log::error!("evstream: cannot register a server socket: {err}");
                server.closed.store(true, Ordering::SeqCst);
                server.end_queue(Error::from(err));
                core.unreserve(id);
            }
        }
    })?;
    Ok(user)
}

/// The loop-side half of a server.
struct Acceptor {
    shared: Arc<ListenerShared>,
    registration: Registration<NetListener>,
    setup: Setup,
    /// Backing off after a failed `accept`: only the retry timer accepts.
    retry_pending: bool,
    /// `accept` has failed since it last succeeded (logged once).
    failing: bool,
    /// A connection taken from the kernel just as accepting was paused:
    /// handed over when accepting resumes (it holds its slot meanwhile).
    held: Option<(NetStream, Option<SocketAddr>)>,
}

impl Acceptor {
    fn accept_all(&mut self, core: &mut Core, id: SourceId) {
        if self.retry_pending {
            // Backing off: the retry timer tries again; a readiness edge
            // (a flood of new connections) must not.
            return;
        }
        let gate = self.shared.gate.clone();
        loop {
            if let Some(queue) = &self.shared.queue {
                let mut queue = lock(queue);
                if queue.is_full() {
                    // Leave the rest in the kernel's backlog until the
                    // application takes one (which wakes this source).
                    queue.paused = true;
                    return;
                }
            }
            if gate.is_paused() {
                // `resume` wakes this source.
                return;
            }
            let (stream, peer) = match self.held.take() {
                Some(held) => held,
                None => {
                    if !gate.acquire() {
                        // At the limit: the release that makes room wakes
                        // this source.
                        return;
                    }
                    match self.registration.source().accept() {
                        Ok(accepted) => {
                            gate.connection_accepted();
                            accepted
                        }
                        Err(err) => {
                            gate.release();
                            if self.accept_failed(core, id, err) {
                                continue;
                            }
                            return;
                        }
                    }
                }
            };
            if self.failing {
                self.failing = false;
                log::info!("evstream: accepting again");
            }
            if gate.is_paused() {
                // Paused while this one was being accepted: a connection
                // made after `pause_accepting` returned is not handed over
                // before `resume_accepting`.
                self.held = Some((stream, peer));
                return;
            }
            let conn = accepted(core, &self.shared, &self.setup, stream, peer);
            if let Some(queue) = &self.shared.queue {
                // The handle exists before the driver first runs, so the
                // connection stays open for `accept()`.
                let socket = Socket::from_conn(conn);
                let wakers = {
                    let mut queue = lock(queue);
                    if queue.ended.is_some() {
                        None
                    } else {
                        queue.ready.push_back((socket, peer));
                        Some(queue.wakers.take())
                    }
                };
                // (A server closed meanwhile: the socket was dropped
                // above, which closes it.)
                if let Some(wakers) = wakers {
                    wakers.wake_all();
                }
            }
        }
    }

    /// Handles a failed `accept`: whether to go on accepting at once (a
    /// connection that went away, a signal), else backs off.
    fn accept_failed(&mut self, core: &mut Core, id: SourceId, err: io::Error) -> bool {
        match err.kind() {
            io::ErrorKind::WouldBlock => false,
            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => true,
            _ => {
                // Out of descriptors (EMFILE, ENFILE) or memory: the
                // waiting connections stay in the kernel's backlog; try
                // again shortly, not on every new connection.
                if !self.failing {
                    self.failing = true;
                    log::warn!("evstream: accept failed ({err}); retrying every {ACCEPT_RETRY:?}");
                } else {
                    log::debug!("evstream: accept failed again ({err})");
                }
                self.retry_pending = true;
                core.add_timer_after(ACCEPT_RETRY, id, TOKEN_RETRY);
                false
            }
        }
    }
}

impl Drop for Acceptor {
    fn drop(&mut self) {
        // A connection held through a pause is closed with the server.
        if self.held.take().is_some() {
            self.shared.gate.release_connection();
        }
    }
}

impl Source for Acceptor {
    fn on_ready(&mut self, core: &mut Core, id: SourceId, ready: Readiness) -> Step {
        if self.shared.is_closed() {
            return Step::Remove;
        }
        if ready.readable {
            self.accept_all(core, id);
        }
        Step::Keep
    }

    fn on_wake(&mut self, core: &mut Core, id: SourceId) -> Step {
        if self.shared.is_closed() {
            return Step::Remove;
        }
        // Connections may have queued before registration.
        self.accept_all(core, id);
        Step::Keep
    }

    fn on_timer(&mut self, core: &mut Core, id: SourceId, token: u64) -> Step {
        if self.shared.is_closed() {
            return Step::Remove;
        }
        if token == TOKEN_RETRY {
            self.retry_pending = false;
            self.accept_all(core, id);
        }
        Step::Keep
    }

    fn drain(&mut self, _: &mut Core, _: SourceId) -> Step {
        // Stop accepting: connections waiting for `accept()` are closed
        // and the listening socket goes with this source.
        self.shared.close();
        Step::Remove
    }

    fn abandon(&mut self, reason: Error) {
        log::debug!("evstream: server abandoned: {reason}");
        self.shared.closed.store(true, Ordering::SeqCst);
        self.shared.end_queue(reason);
    }
}
