//! A loop group: N loops on N threads, created and stopped as one
//! (libevent's base per thread, tokio's multi-thread runtime without work
//! stealing).

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;

use super::{EventLoop, JoinHandle, LoopHandle};
use crate::error::{Error, Result};
use crate::sync::lock;

/// N event loops on N threads, created and stopped as one: how evstream
/// uses many cores.
///
/// One [`EventLoop`] is one thread. A group runs several, each on its own
/// thread, the way libevent programs run one `event_base` per thread and
/// nginx one worker per core. A connection belongs to one loop for its
/// whole life (its callbacks run there, its tasks should be spawned there),
/// so there is no work stealing and no lock shared between loops; the
/// group only *places* work:
///
/// * [`spawn`](LoopGroup::spawn) and [`block_on`](LoopGroup::block_on) on
///   the least loaded loop (connections + tasks), [`spawn_on`](LoopGroup::spawn_on)
///   on a chosen one;
/// * outgoing connections on [`next`](LoopGroup::next) (round-robin) or a
///   loop the caller picks ([`handle`](LoopGroup::handle)) — pass the
///   handle to [`tcp_connect`](crate::tcp_connect) or
///   [`AsyncIoStream::connect_on`](crate::AsyncIoStream::connect_on);
/// * incoming ones with a [`GroupServer`](crate::GroupServer), which
///   accepts on every loop.
///
/// Every [`Socket`](crate::Socket) and stream works from any thread, so a
/// task on one loop can write to or close a connection of another.
///
/// The group is `Send + Sync`; share it with an `Arc`. Dropping it stops
/// every loop at once, as [`stop`](LoopGroup::stop) does.
///
/// # Examples
///
/// An echo server accepting on every loop, and clients spread over them:
///
/// ```
/// use evstream::{AsyncIoStream, GroupServer, LoopGroup, ServerOptions, TcpOptions};
///
/// let group = LoopGroup::with_loops(2)?;
/// let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new())?;
/// let addr = server.local_addr();
/// let acceptor = server.clone();
/// group.spawn(async move {
///     while let Ok((mut stream, _)) = acceptor.accept().await {
///         // Served on the loop that owns the connection.
///         stream.socket().loop_handle().clone().spawn(async move {
///             let mut buf = [0u8; 64];
///             while let Ok(n @ 1..) = stream.read(&mut buf).await {
///                 let _ = stream.write_all(&buf[..n]).await;
///             }
///         });
///     }
/// });
/// let on = group.next().clone(); // outgoing connections: round-robin
/// let echoed = group.block_on(async move {
///     let mut client = AsyncIoStream::connect_on(&on, addr, TcpOptions::new()).await?;
///     client.write_all(b"hi").await?;
///     let mut reply = [0u8; 2];
///     client.read_exact(&mut reply).await?;
///     Ok::<_, evstream::Error>(reply)
/// })??;
/// assert_eq!(&echoed, b"hi");
/// group.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LoopGroup {
    handles: Vec<LoopHandle>,
    threads: Mutex<Vec<Option<thread::JoinHandle<()>>>>,
    /// Round-robin position of `next` (and where `least_loaded` starts).
    next: AtomicUsize,
}

impl fmt::Debug for LoopGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopGroup")
            .field("loops", &self.handles)
            .finish()
    }
}

impl LoopGroup {
    /// A group of one loop per core (`std::thread::available_parallelism`,
    /// 1 if unknown), like tokio's multi-thread runtime's default worker
    /// count.
    ///
    /// # Errors
    ///
    /// As [`with_loops`](LoopGroup::with_loops).
    ///
    /// # Examples
    ///
    /// ```
    /// let group = evstream::LoopGroup::new()?;
    /// assert!(group.len() >= 1);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn new() -> Result<LoopGroup> {
        LoopGroup::with_loops(thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// A group of `loops` loops, each started on a thread of its own
    /// (named `evstream-group-<i>`) and running until the group stops.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for 0 loops; an I/O error if a poller or a
    /// thread cannot be created (the loops already started are stopped).
    ///
    /// # Examples
    ///
    /// ```
    /// let group = evstream::LoopGroup::with_loops(2)?;
    /// assert_eq!(group.len(), 2);
    /// assert_ne!(group.handle(0), group.handle(1));
    /// assert!(evstream::LoopGroup::with_loops(0).is_err());
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn with_loops(loops: usize) -> Result<LoopGroup> {
        if loops == 0 {
            return Err(Error::InvalidInput(
                "a loop group needs at least one loop".into(),
            ));
        }
        let mut group = LoopGroup {
            handles: Vec::with_capacity(loops),
            threads: Mutex::new(Vec::with_capacity(loops)),
            next: AtomicUsize::new(0),
        };
        for i in 0..loops {
            // On failure, dropping `group` stops the loops already started.
            let (handle, thread) = EventLoop::spawn_named(format!("evstream-group-{i}"))?;
            group.handles.push(handle);
            lock(&group.threads).push(Some(thread));
        }
        Ok(group)
    }

    /// How many loops the group has (stopped ones included).
    #[allow(clippy::len_without_is_empty)] // never empty
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// The handle of loop `index`.
    ///
    /// # Panics
    ///
    /// If `index >= len()`, as slice indexing does.
    pub fn handle(&self, index: usize) -> &LoopHandle {
        &self.handles[index]
    }

    /// Every loop's handle, in order.
    pub fn handles(&self) -> &[LoopHandle] {
        &self.handles
    }

    /// The index of the loop `handle` belongs to, if it is one of this
    /// group's.
    pub fn index_of(&self, handle: &LoopHandle) -> Option<usize> {
        self.handles.iter().position(|h| h == handle)
    }

    /// The next loop in round-robin order that is neither stopped nor
    /// draining (any loop, if none is left): where to place an outgoing
    /// connection.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = evstream::LoopGroup::with_loops(2)?;
    /// let (a, b, c) = (group.next(), group.next(), group.next());
    /// assert_ne!(a, b);
    /// assert_eq!(a, c);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn next(&self) -> &LoopHandle {
        let n = self.handles.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.handles[(start + k) % n])
            .find(|h| is_live(h))
            .unwrap_or(&self.handles[start % n])
    }

    /// The live loop with the fewest connections plus unfinished tasks
    /// (see [`LoopHandle::connection_count`] and
    /// [`LoopHandle::task_count`]); ties go round-robin. The counts are
    /// read without locking, so two calls at the same moment may pick
    /// the same loop.
    pub fn least_loaded(&self) -> &LoopHandle {
        let n = self.handles.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.handles[(start + k) % n])
            .filter(|h| is_live(h))
            .min_by_key(|h| h.connection_count() + h.task_count())
            .unwrap_or(&self.handles[start % n])
    }

    /// Spawns `future` on the [least loaded](LoopGroup::least_loaded)
    /// loop; see [`LoopHandle::spawn`]. Dropping the [`JoinHandle`]
    /// detaches the task. A task that serves one connection is best
    /// spawned on that connection's loop
    /// (`stream.socket().loop_handle().spawn(..)`), where its wake-ups
    /// cost no thread switch.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = evstream::LoopGroup::with_loops(2)?;
    /// let task = group.spawn(async { 6 * 7 });
    /// assert_eq!(futures_lite::future::block_on(task)?, 42);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.least_loaded().spawn(future)
    }

    /// Spawns `future` on loop `index`; see [`LoopHandle::spawn`].
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    pub fn spawn_on<F>(&self, index: usize, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handles[index].spawn(future)
    }

    /// Runs `future` on the [least loaded](LoopGroup::least_loaded) loop
    /// and waits for its output on the calling thread (tokio's
    /// `Runtime::block_on`, except that the future runs on a loop thread,
    /// beside the connections it uses, so it must be `Send`).
    ///
    /// # Errors
    ///
    /// [`Error::WouldDeadlock`] when called on one of the group's own loop
    /// threads (blocking it could stop the loop the future needs);
    /// [`Error::TaskPanicked`] if the future panicked;
    /// [`Error::LoopStopped`] if its loop stopped first.
    ///
    /// # Examples
    ///
    /// ```
    /// let group = evstream::LoopGroup::with_loops(2)?;
    /// let on_a_loop = group.block_on(async {
    ///     std::thread::current().name().unwrap_or("").starts_with("evstream-group-")
    /// })?;
    /// assert!(on_a_loop);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn block_on<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.handles.iter().any(LoopHandle::is_loop_thread) {
            return Err(Error::WouldDeadlock);
        }
        futures_lite::future::block_on(self.spawn(future))
    }

    /// Drains loop `index` (see [`LoopHandle::drain`]): its servers stop
    /// accepting, its connections are closed gracefully (queued output is
    /// flushed, then FIN), then its thread ends and the loop is stopped
    /// for good. The other loops keep serving, and [`next`](LoopGroup::next),
    /// [`least_loaded`](LoopGroup::least_loaded) and group servers no
    /// longer place work on it. Waits for the thread to end — for at most
    /// about the connections' close linger — unless called on that loop's
    /// own thread. Idempotent.
    ///
    /// # Panics
    ///
    /// If `index >= len()`.
    pub fn stop_loop(&self, index: usize) {
        let handle = &self.handles[index];
        handle.drain();
        if handle.is_loop_thread() {
            return;
        }
        let thread = lock(&self.threads)[index].take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Drains every loop (see [`stop_loop`](LoopGroup::stop_loop)) and
    /// waits for their threads to end: a graceful shutdown.
    pub fn drain(&self) {
        for handle in &self.handles {
            handle.drain();
        }
        self.join_all();
    }

    /// Stops every loop now and waits for their threads to end (except
    /// the caller's own, when called on one of them). Connections still
    /// open fail with [`Error::LoopStopped`], unfinished tasks are
    /// dropped. Idempotent; dropping the group does the same.
    pub fn stop(&self) {
        for handle in &self.handles {
            handle.stop();
        }
        self.join_all();
    }

    fn join_all(&self) {
        let threads: Vec<_> = {
            let mut threads = lock(&self.threads);
            threads
                .iter_mut()
                .zip(&self.handles)
                .filter(|(_, handle)| !handle.is_loop_thread())
                .filter_map(|(thread, _)| thread.take())
                .collect()
        };
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for LoopGroup {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_live(handle: &LoopHandle) -> bool {
    !handle.is_stopped() && !handle.is_draining()
}
