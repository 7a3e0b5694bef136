//! A TCP server bound on a loop group: it accepts on every loop.

use std::fmt;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Poll, Waker};

use super::server::listen;
use super::{ServerOptions, TcpServer};
use crate::error::{Error, Result};
use crate::event_loop::{LoopGroup, LoopHandle};
use crate::socket::{listen as start_listening, NetListener, Socket, Spread};

/// Whether [`GroupServer::bind`] shards with `SO_REUSEPORT` here: on Linux
/// (where the kernel spreads connections between the listeners of a
/// port), unless the `polling-backend` feature asks for what other
/// platforms do.
const SHARDED: bool = cfg!(all(
    any(target_os = "linux", target_os = "android"),
    not(feature = "polling-backend")
));

/// A TCP server bound on a [`LoopGroup`]: it accepts on every loop of the
/// group, and each connection stays for its whole life on the loop that
/// owns it (nginx's workers, libevent's base per thread).
///
/// Two ways to accept on every loop:
///
/// * **Sharded** (what [`bind`](GroupServer::bind) does on Linux): one
///   listening socket per loop, all bound to the same port with
///   `SO_REUSEPORT`; the kernel spreads incoming connections between them
///   by a hash of their addresses, and each loop accepts its own share
///   with no lock or thread switch between loops.
/// * **Hand-off** ([`bind_hand_off`](GroupServer::bind_hand_off), and
///   what `bind` does elsewhere or with the `polling-backend` feature,
///   where `SO_REUSEPORT` does not balance): one listening socket on one
///   loop, which hands its accepted connections to the loops in turn
///   (round-robin). The spread is exact; the accepting loop pays one
///   cross-thread call per connection handed to another.
///
/// Both work in the two modes of [`TcpServer`]: with callbacks in the
/// options, every connection is handed to them on its own loop; without,
/// [`accept`](GroupServer::accept) and [`incoming`](GroupServer::incoming)
/// take connections from every loop (fairly, in turn), and the stream each
/// returns lives on its loop — spawn the task that serves it there
/// (`stream.socket().loop_handle().spawn(..)`) for no cross-thread
/// wake-ups.
///
/// # Limits and pausing
///
/// [`ServerOptions::max_connections`] bounds the *whole group*: one count
/// of open connections, shared by the listeners of every loop (what a
/// server's limit means to a tokio or libevent user; a limit per loop
/// would let a group of N loops hold N times as many). At the limit every
/// listener stops accepting, and a connection released on any loop lets
/// them go on. Likewise [`pause_accepting`](GroupServer::pause_accepting)
/// pauses every listener, and a [`TcpServer`] from
/// [`listeners`](GroupServer::listeners) shares the group's limit, count
/// and pause switch.
///
/// A loop stopped with [`LoopGroup::stop_loop`] closes its listener and
/// drains its connections while the others keep serving (with hand-off,
/// stopping the loop that holds the listener stops the accepting). Closing
/// a sharded listener resets the connections the kernel had queued on it
/// but no loop had accepted yet, unless `net.ipv4.tcp_migrate_req` is set
/// (Linux 5.14+), which moves them to the other listeners.
///
/// `Send + Sync + Clone`; every clone is the same server.
///
/// # Examples
///
/// A callback echo server on two loops; connections are counted per loop:
///
/// ```
/// use evstream::{GroupServer, LoopGroup, ServerOptions, TcpOptions};
/// use std::io::{Read, Write};
///
/// let group = LoopGroup::with_loops(2)?;
/// let server = GroupServer::bind(
///     &group,
///     "127.0.0.1:0",
///     ServerOptions::new().connection(TcpOptions::new().read_cb(|socket, data| {
///         let _ = socket.write_bytes(data);
///     })),
/// )?;
/// let mut client = std::net::TcpStream::connect(server.local_addr())?;
/// client.write_all(b"ping")?;
/// let mut reply = [0u8; 4];
/// client.read_exact(&mut reply)?;
/// assert_eq!(&reply, b"ping");
/// let served: usize = group.handles().iter().map(|h| h.connection_count()).sum();
/// assert_eq!(served, 1); // on whichever loop took it
/// server.close();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct GroupServer {
    inner: Arc<Inner>,
}

struct Inner {
    /// One per loop (sharded), or the one listener (hand-off).
    servers: Vec<TcpServer>,
    local_addr: SocketAddr,
    sharded: bool,
    /// Where the next `accept` starts looking, so no loop's queue starves.
    next: AtomicUsize,
}

impl fmt::Debug for GroupServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupServer")
            .field("local_addr", &self.inner.local_addr)
            .field("sharded", &self.inner.sharded)
            .field("listeners", &self.inner.servers.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl GroupServer {
    /// Binds `addr` (port 0 picks a free port) on every loop of `group`
    /// that is running and not draining: sharded with `SO_REUSEPORT` on
    /// Linux, with a hand-off elsewhere (see [`GroupServer`]). In callback
    /// or accept mode as `options`' connection options say, as
    /// [`TcpServer::bind`]. Sharding sets `SO_REUSEPORT` whatever
    /// [`ServerOptions::reuse_port`] says; the backlog applies to each
    /// listener.
    ///
    /// # Errors
    ///
    /// As [`TcpServer::bind`]; [`Error::LoopStopped`] if no loop of the
    /// group is running.
    pub fn bind(
        group: &LoopGroup,
        addr: impl ToSocketAddrs,
        options: ServerOptions,
    ) -> Result<GroupServer> {
        if SHARDED {
            bind_sharded(group, addr, options)
        } else {
            GroupServer::bind_hand_off(group, addr, options)
        }
    }

    /// Binds one listening socket on `addr`, on the first running loop of
    /// `group`, which hands the connections it accepts to the running
    /// loops in turn (itself included): an exact round-robin spread on any
    /// platform (see [`GroupServer`]).
    ///
    /// # Errors
    ///
    /// As [`bind`](GroupServer::bind).
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let server = GroupServer::bind_hand_off(&group, "127.0.0.1:0", ServerOptions::new())?;
    /// assert!(!server.is_sharded());
    /// assert_eq!(server.listeners().len(), 1);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn bind_hand_off(
        group: &LoopGroup,
        addr: impl ToSocketAddrs,
        options: ServerOptions,
    ) -> Result<GroupServer> {
        options.validate()?;
        let loops = live_loops(group)?;
        let (listener, local_addr) = bind_first(addr, &options)?;
        let mut setup = options.connection_setup()?;
        setup.spread = Some(Arc::new(Spread::new(loops.clone())));
        let server = start_listening(
            &loops[0],
            NetListener::Tcp(listener),
            Some(local_addr),
            None,
            setup,
            options.queue_capacity(),
            options.gate(),
        )?;
        Ok(GroupServer::new(
            vec![TcpServer::from_handle(server)],
            local_addr,
            false,
        ))
    }

    fn new(servers: Vec<TcpServer>, local_addr: SocketAddr, sharded: bool) -> GroupServer {
        GroupServer {
            inner: Arc::new(Inner {
                servers,
                local_addr,
                sharded,
                next: AtomicUsize::new(0),
            }),
        }
    }

    /// The address the server listens on (every listener has it).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Whether the server shards with one `SO_REUSEPORT` listener per
    /// loop, rather than handing off from one.
    pub fn is_sharded(&self) -> bool {
        self.inner.sharded
    }

    /// The listeners: one per loop when sharded (in the group's order,
    /// stopped loops left out), the one that hands off otherwise. Each is
    /// a [`TcpServer`] on its loop: an accept-mode server can run one
    /// accept loop per loop on it, so that no connection ever crosses a
    /// thread.
    pub fn listeners(&self) -> &[TcpServer] {
        &self.inner.servers
    }

    /// Stops listening on every loop and releases the sockets; see
    /// [`TcpServer::close`]. Idempotent.
    pub fn close(&self) {
        for server in &self.inner.servers {
            server.close();
        }
    }

    /// Whether every listener is closed ([`close`](GroupServer::close), or
    /// every loop stopped).
    pub fn is_closed(&self) -> bool {
        self.inner.servers.iter().all(TcpServer::is_closed)
    }

    /// Whether the server queues its connections for
    /// [`accept`](GroupServer::accept); see [`TcpServer::is_accept_mode`].
    pub fn is_accept_mode(&self) -> bool {
        self.inner.servers[0].is_accept_mode()
    }

    /// How many accepted connections wait for `accept`, on every loop.
    pub fn queued(&self) -> usize {
        self.inner.servers.iter().map(TcpServer::queued).sum()
    }

    /// Stops taking connections on every loop until
    /// [`resume_accepting`](GroupServer::resume_accepting), from any
    /// thread; see [`TcpServer::pause_accepting`].
    ///
    /// # Errors
    ///
    /// None: pausing a closed server does nothing.
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new())?;
    /// server.pause_accepting();
    /// // One switch for the whole group.
    /// assert!(server.listeners().iter().all(|listener| listener.is_accepting_paused()));
    /// server.resume_accepting();
    /// assert!(!server.is_accepting_paused());
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn pause_accepting(&self) {
        // The listeners share one switch.
        self.inner.servers[0].pause_accepting();
    }

    /// Takes connections again on every loop after
    /// [`pause_accepting`](GroupServer::pause_accepting); see
    /// [`TcpServer::resume_accepting`].
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new())?;
    /// server.pause_accepting();
    /// server.resume_accepting();
    /// let _client = std::net::TcpStream::connect(server.local_addr())?;
    /// let acceptor = server.clone();
    /// let (_stream, _peer) = group.block_on(async move { acceptor.accept().await })??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_accepting(&self) {
        self.inner.servers[0].resume_accepting();
    }

    /// Whether accepting is paused by hand; see
    /// [`TcpServer::is_accepting_paused`].
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new())?;
    /// assert!(!server.is_accepting_paused());
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn is_accepting_paused(&self) -> bool {
        self.inner.servers[0].is_accepting_paused()
    }

    /// How many connections the server has open on all its loops: what
    /// [`ServerOptions::max_connections`] bounds; see
    /// [`TcpServer::connection_count`].
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let options = ServerOptions::new().max_connections(100);
    /// let server = GroupServer::bind(&group, "127.0.0.1:0", options)?;
    /// let _clients = [
    ///     std::net::TcpStream::connect(server.local_addr())?,
    ///     std::net::TcpStream::connect(server.local_addr())?,
    /// ];
    /// let acceptor = server.clone();
    /// let accepted = group.block_on(async move {
    ///     (acceptor.accept().await, acceptor.accept().await)
    /// })?;
    /// let _streams = (accepted.0?, accepted.1?);
    /// assert_eq!(server.connection_count(), 2); // on whichever loops took them
    /// assert_eq!(server.max_connections(), Some(100)); // for the whole group
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.inner.servers[0].connection_count()
    }

    /// The whole group's connection limit, set with
    /// [`ServerOptions::max_connections`], if any.
    ///
    /// # Errors
    ///
    /// None.
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new())?;
    /// assert_eq!(server.max_connections(), None);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn max_connections(&self) -> Option<usize> {
        self.inner.servers[0].max_connections()
    }

    /// The next queued connection of any listener, looking at each in
    /// turn from a rotating start; `Pending` with `waker` registered on
    /// every listener still open.
    pub(crate) fn poll_accept_socket(
        &self,
        waker: &Waker,
    ) -> Poll<Result<(Socket, Option<SocketAddr>)>> {
        let servers = &self.inner.servers;
        let n = servers.len();
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut ended: Option<Error> = None;
        let mut open = false;
        for k in 0..n {
            match servers[(start + k) % n].poll_accept_socket(waker) {
                Poll::Ready(Ok(accepted)) => return Poll::Ready(Ok(accepted)),
                Poll::Ready(Err(err @ Error::InvalidInput(_))) => return Poll::Ready(Err(err)),
                Poll::Ready(Err(err)) => {
                    // One loop stopped or drained: the others go on.
                    if !matches!(ended, Some(Error::LoopStopped)) {
                        ended = Some(err);
                    }
                }
                Poll::Pending => open = true,
            }
        }
        if open {
            return Poll::Pending;
        }
        // Every listener is gone: closed (by the application, or drained
        // with their loops), or `LoopStopped` if a loop stopped under one.
        Poll::Ready(Err(ended.unwrap_or(Error::Closed)))
    }
}

/// The running, non-draining loops of `group`.
fn live_loops(group: &LoopGroup) -> Result<Vec<LoopHandle>> {
    let loops: Vec<LoopHandle> = group
        .handles()
        .iter()
        .filter(|h| !h.is_stopped() && !h.is_draining())
        .cloned()
        .collect();
    if loops.is_empty() {
        return Err(Error::LoopStopped);
    }
    Ok(loops)
}

/// Binds the first address of `addr` that binds.
fn bind_first(
    addr: impl ToSocketAddrs,
    options: &ServerOptions,
) -> Result<(TcpListener, SocketAddr)> {
    let mut last_error = None;
    for addr in addr.to_socket_addrs().map_err(Error::from)? {
        match listen(addr, options).and_then(|l| l.local_addr().map(|a| (l, a))) {
            Ok(bound) => return Ok(bound),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .map(Error::from)
        .unwrap_or_else(|| Error::InvalidInput("address resolved to nothing".into())))
}

/// One `SO_REUSEPORT` listener per live loop: the first binds `addr`
/// (a port 0 is chosen there), the others the address it got.
fn bind_sharded(
    group: &LoopGroup,
    addr: impl ToSocketAddrs,
    options: ServerOptions,
) -> Result<GroupServer> {
    options.validate()?;
    let options = options.reuse_port(true);
    let loops = live_loops(group)?;
    let (first, local_addr) = bind_first(addr, &options)?;
    let mut listeners = vec![first];
    for _ in 1..loops.len() {
        listeners.push(listen(local_addr, &options)?);
    }
    let mut servers = Vec::with_capacity(loops.len());
    // One limit for the whole group.
    let gate = options.gate();
    for (handle, listener) in loops.iter().zip(listeners) {
        let started = options.connection_setup().and_then(|setup| {
            start_listening(
                handle,
                NetListener::Tcp(listener),
                Some(local_addr),
                None,
                setup,
                options.queue_capacity(),
                gate.clone(),
            )
        });
        match started {
            Ok(server) => servers.push(TcpServer::from_handle(server)),
            Err(err) => {
                for server in &servers {
                    server.close();
                }
                return Err(err);
            }
        }
    }
    Ok(GroupServer::new(servers, local_addr, true))
}
