//! A listening TCP server (cl-async's `tcp-server`).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;

use super::TcpOptions;
use crate::error::{Error, Result};
use crate::event_loop::LoopHandle;
use crate::socket::{listen as start_listening, Gate, NetListener, ServerHandle, Socket};

/// Options for [`TcpServer::bind`].
///
/// # Examples
///
/// ```
/// use evstream::{ServerOptions, TcpOptions};
///
/// let options = ServerOptions::new()
///     .backlog(64)
///     .max_connections(10_000)
///     .connection(TcpOptions::new().read_cb(|socket, data| {
///         let _ = socket.write_bytes(data); // echo
///     }));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct ServerOptions {
    backlog: i32,
    reuse_address: bool,
    reuse_port: bool,
    /// At most this many accepted connections open at once.
    max_connections: Option<usize>,
    connection: TcpOptions,
    /// TLS for accepted connections, applied when the server binds (so the
    /// order of `connection` and `tls` does not matter).
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::TlsServerOptions>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::new()
    }
}

impl ServerOptions {
    /// Defaults: backlog 1024, `SO_REUSEADDR` on, `SO_REUSEPORT` off, no
    /// connection limit, and default [`TcpOptions`] for each connection.
    pub fn new() -> Self {
        ServerOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            max_connections: None,
            connection: TcpOptions::new(),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The listen backlog (at least 0; the kernel caps it at
    /// `net.core.somaxconn`): how many connections the kernel keeps waiting
    /// for the server to take them, and, for a server without callbacks,
    /// how many accepted connections wait for [`accept`](TcpServer::accept)
    /// at most (0 counts as 1 there).
    pub fn backlog(mut self, backlog: i32) -> Self {
        self.backlog = backlog;
        self
    }

    /// `SO_REUSEADDR` (on by default), so a restarted server can bind while
    /// old connections sit in `TIME_WAIT`.
    pub fn reuse_address(mut self, reuse: bool) -> Self {
        self.reuse_address = reuse;
        self
    }

    /// `SO_REUSEPORT`, so several loops can each bind a server to the same
    /// port and let the kernel spread connections between them.
    pub fn reuse_port(mut self, reuse: bool) -> Self {
        self.reuse_port = reuse;
        self
    }

    /// At most `limit` accepted connections open at once (nginx's
    /// `worker_connections`, a tokio server's semaphore around `accept`).
    ///
    /// A connection counts from the moment the server takes it from the
    /// kernel until its socket is released: closed (after the graceful
    /// close has flushed and the peer's FIN or the close linger came),
    /// aborted, failed, or dropped (accept mode). In accept mode the
    /// connections waiting for [`accept`](TcpServer::accept) count too.
    ///
    /// At the limit the server stops calling `accept`: new clients wait in
    /// the kernel's listen backlog (their connect completes, nothing is
    /// refused by evstream; past the backlog the kernel makes them retry).
    /// When one of the server's connections is released, accepting resumes
    /// at once — in the order the kernel queued them, so no connection is
    /// lost. Both callback mode and accept mode hold the limit.
    ///
    /// On a [`GroupServer`](crate::GroupServer) the limit is the *whole
    /// group's* total, shared by the listeners of every loop (what a
    /// server's limit means in tokio or libevent), not a limit per loop.
    ///
    /// No limit by default. See also
    /// [`TcpServer::pause_accepting`] to stop accepting by hand, and
    /// [`TcpServer::connection_count`].
    ///
    /// # Errors
    ///
    /// None here (a builder); a `limit` of 0 — a server that could never
    /// accept — makes [`TcpServer::bind`] (and every other bind) fail with
    /// [`Error::InvalidInput`]. To accept nothing for a while, bind with a
    /// limit and call [`pause_accepting`](TcpServer::pause_accepting).
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// At most one connection at a time: a second client waits in the
    /// kernel's backlog until the first is closed.
    ///
    /// ```
    /// use evstream::{EventLoop, ServerOptions, TcpServer};
    ///
    /// let mut ev = EventLoop::new()?;
    /// let options = ServerOptions::new().max_connections(1);
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", options)?;
    /// assert_eq!(server.max_connections(), Some(1));
    /// let first = std::net::TcpStream::connect(server.local_addr())?;
    /// let second = std::net::TcpStream::connect(server.local_addr())?; // waits in the backlog
    /// let (accepted, _) = ev.block_on(server.accept())??;
    /// assert_eq!(server.connection_count(), 1);
    /// drop((first, accepted)); // both ends close: the slot is free again
    /// let (_accepted, peer) = ev.block_on(server.accept())??;
    /// assert_eq!(peer, second.local_addr()?);
    ///
    /// // 0 is refused where the options are used.
    /// let zero = ServerOptions::new().max_connections(0);
    /// let refused = TcpServer::bind(&ev.handle(), "127.0.0.1:0", zero);
    /// assert!(matches!(refused, Err(evstream::Error::InvalidInput(_))));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_connections(mut self, limit: usize) -> Self {
        self.max_connections = Some(limit);
        self
    }

    /// A new gate with the connection limit, for one server (or group).
    pub(crate) fn gate(&self) -> Arc<Gate> {
        Gate::new(self.max_connections)
    }

    /// The options of each accepted connection, TLS included.
    pub(crate) fn connection_setup(&self) -> Result<crate::socket::Setup> {
        let connection = self.connection.clone();
        #[cfg(feature = "tls")]
        let connection = match &self.tls {
            Some(tls) => connection.tls_server(tls.clone()),
            None => connection,
        };
        connection.into_setup()
    }

    /// Refuses settings that cannot work.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.backlog < 0 {
            return Err(Error::InvalidInput("the backlog must be at least 0".into()));
        }
        if self.max_connections == Some(0) {
            return Err(Error::InvalidInput(
                "max_connections must be at least 1 (a server with a limit of 0 could never \
                 accept; to accept nothing for a while, use pause_accepting)"
                    .into(),
            ));
        }
        self.connection_setup().map(drop)
    }

    /// Options (callbacks included) for every accepted connection. Its
    /// `connect_cb` runs once per accepted connection. Options without
    /// any callback make an accept-mode server (see [`TcpServer`]).
    pub fn connection(mut self, options: TcpOptions) -> Self {
        self.connection = options;
        self
    }

    /// TLS for every accepted connection (feature `tls`): each one's
    /// handshake runs once it is accepted, bounded by the connection's
    /// connect timeout, and the connection counts as connected only once it
    /// completes (in any order with [`connection`](ServerOptions::connection)).
    /// The negotiated protocol, SNI name and peer certificates are in
    /// [`Socket::tls_info`](crate::Socket::tls_info).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, options: impl Into<crate::tls::TlsServerOptions>) -> Self {
        self.tls = Some(options.into());
        self
    }

    /// The bound of an accept-mode server's queue: the backlog, at least 1.
    pub(crate) fn queue_capacity(&self) -> usize {
        usize::try_from(self.backlog.max(1)).unwrap_or(1)
    }
}

/// A listening TCP server on a loop (cl-async's `tcp-server`, tokio's
/// `TcpListener`). `Send + Sync + Clone`; every clone is the same server.
///
/// Each accepted connection gets the server's per-connection
/// [`TcpOptions`]. A server works in one of two modes, decided by those
/// options:
///
/// * **Callback mode** — the options have callbacks (`read_cb`,
///   `notify_cb`, `event_cb`, `connect_cb`, `stream_connect_cb`…): every
///   connection is handed to them as it is accepted, and the server lives
///   until [`close`](TcpServer::close)d.
/// * **Accept mode** — no callbacks (as from [`TcpServer::listen`]): every
///   connection waits in a bounded queue (the backlog) until the
///   application takes it with [`accept`](TcpServer::accept) or
///   [`incoming`](TcpServer::incoming). When the queue is full the server
///   stops taking connections from the kernel until one is accepted. The
///   server is closed by `close()` or when its last handle is dropped
///   (nobody could accept any more); connections still queued are closed
///   then.
///
/// # Examples
///
/// ```
/// use evstream::{EventLoop, ServerOptions, TcpServer};
///
/// let ev = EventLoop::new()?;
/// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
/// assert_ne!(server.local_addr().port(), 0);
/// server.close();
/// # Ok::<(), evstream::Error>(())
/// ```
#[derive(Clone)]
pub struct TcpServer {
    shared: Arc<ServerHandle>,
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("local_addr", &self.shared.local_addr())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// What a connection belongs to (TouchDesigner's `Peer.owner`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Owner {
    /// Accepted by this server.
    Server(TcpServer),
    /// Accepted by this Unix domain socket server.
    UnixServer(UnixServer),
    /// Made with `tcp_connect` on this loop.
    Loop(LoopHandle),
}

impl Owner {
    /// What owns `socket`: the server that accepted it, or its loop.
    pub(crate) fn of(socket: &Socket) -> Owner {
        match socket.listener() {
            Some(shared) if shared.local_path().is_some() => Owner::UnixServer(UnixServer {
                shared: Arc::new(ServerHandle::new(shared.clone())),
            }),
            Some(shared) => Owner::Server(TcpServer {
                shared: Arc::new(ServerHandle::new(shared.clone())),
            }),
            None => Owner::Loop(socket.loop_handle().clone()),
        }
    }
}

impl TcpServer {
    /// The server of a listener already started (a group server's).
    pub(crate) fn from_handle(handle: ServerHandle) -> TcpServer {
        TcpServer {
            shared: Arc::new(handle),
        }
    }

    /// Binds a listening socket to `addr` (port 0 picks a free port) and
    /// starts accepting on `handle`'s loop: in callback mode if
    /// `options`' connection options have callbacks, else in accept mode
    /// (see [`TcpServer`]).
    ///
    /// The socket is bound on the calling thread, so an address in use is
    /// reported here and [`local_addr`](TcpServer::local_addr) is known at
    /// once. A host name in `addr` is resolved on the calling thread too
    /// (std's `ToSocketAddrs`); the async [`TcpServer::listen`] resolves
    /// off it.
    ///
    /// # Errors
    ///
    /// Invalid connection options, an address that does not resolve, the
    /// operating system refusing to bind or listen, or a loop stopped for
    /// good ([`Error::LoopStopped`]).
    pub fn bind(
        handle: &LoopHandle,
        addr: impl ToSocketAddrs,
        options: ServerOptions,
    ) -> Result<TcpServer> {
        options.validate()?;
        let mut last_error = None;
        let addrs = addr.to_socket_addrs().map_err(Error::from)?;
        for addr in addrs {
            match listen(addr, &options) {
                Ok(listener) => {
                    let local_addr = listener.local_addr()?;
                    let capacity = options.queue_capacity();
                    let shared = start_listening(
                        handle,
                        NetListener::Tcp(listener),
                        Some(local_addr),
                        None,
                        options.connection_setup()?,
                        capacity,
                        options.gate(),
                    )?;
                    return Ok(TcpServer {
                        shared: Arc::new(shared),
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error
            .map(Error::from)
            .unwrap_or_else(|| Error::InvalidInput("address resolved to nothing".into())))
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared
            .local_addr()
            .expect("a TCP server has an address")
    }

    /// The loop the server accepts on.
    pub fn loop_handle(&self) -> &LoopHandle {
        self.shared.handle()
    }

    /// Stops listening and releases the socket (cl-async's
    /// `close-tcp-server`). Connections already accepted go on; in accept
    /// mode, those still waiting for `accept()` are closed and pending
    /// `accept()`s fail with [`Error::Closed`]. Idempotent.
    pub fn close(&self) {
        self.shared.close();
    }

    /// Whether [`close`](TcpServer::close) was called (or, in accept mode,
    /// every handle was dropped, or the loop stopped).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Whether the server queues its connections for
    /// [`accept`](TcpServer::accept) (it has no callbacks) rather than
    /// handing them to callbacks.
    pub fn is_accept_mode(&self) -> bool {
        self.shared.is_accept_mode()
    }

    /// How many accepted connections wait for [`accept`](TcpServer::accept)
    /// (at most the backlog; 0 in callback mode).
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Stops taking connections from the kernel until
    /// [`resume_accepting`](TcpServer::resume_accepting), from any thread.
    ///
    /// New clients wait in the kernel's listen backlog meanwhile (their
    /// connect completes; past the backlog the kernel makes them retry);
    /// connections already accepted go on, and in accept mode those
    /// already queued can still be taken with [`accept`](TcpServer::accept).
    /// Takes effect at once: no connection that the kernel queued after
    /// this call returns is handed to the callbacks or the accept queue
    /// before accepting resumes (the acceptor looks at the switch again
    /// after every `accept`, and keeps one it took in that instant until
    /// it resumes). Idempotent; it does not close the server, and the
    /// connection limit ([`ServerOptions::max_connections`]) still applies
    /// once resumed. For a listener of a [`GroupServer`](crate::GroupServer)
    /// it pauses the whole group (one switch for every loop).
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
    /// use std::time::Duration;
    /// use evstream::{EventLoop, ServerOptions, TcpServer};
    ///
    /// let mut ev = EventLoop::new()?;
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
    /// server.pause_accepting();
    /// assert!(server.is_accepting_paused());
    /// let client = std::net::TcpStream::connect(server.local_addr())?; // waits in the backlog
    /// let wait = ev.handle().timeout(Duration::from_millis(50), server.accept());
    /// let waited = ev.block_on(wait)?;
    /// assert!(waited.is_err(), "not accepted while paused");
    /// server.resume_accepting();
    /// let (_stream, peer) = ev.block_on(server.accept())??;
    /// assert_eq!(peer, client.local_addr()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause_accepting(&self) {
        self.shared.gate().pause();
    }

    /// Takes connections from the kernel again after
    /// [`pause_accepting`](TcpServer::pause_accepting), from any thread:
    /// those that waited in the backlog meanwhile are accepted at once, in
    /// order (up to the connection limit). Idempotent.
    ///
    /// # Errors
    ///
    /// None: resuming a closed server does nothing.
    ///
    /// # Panics
    ///
    /// Never.
    ///
    /// # Examples
    ///
    /// ```
    /// use evstream::{EventLoop, ServerOptions, TcpServer};
    ///
    /// let mut ev = EventLoop::new()?;
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
    /// server.pause_accepting();
    /// let _client = std::net::TcpStream::connect(server.local_addr())?;
    /// server.resume_accepting();
    /// assert!(!server.is_accepting_paused());
    /// let (_stream, _peer) = ev.block_on(server.accept())??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_accepting(&self) {
        self.shared.gate().resume();
    }

    /// Whether accepting is paused by hand
    /// ([`pause_accepting`](TcpServer::pause_accepting)). A server waiting
    /// at its connection limit is not paused in this sense.
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
    /// use evstream::{EventLoop, ServerOptions, TcpServer};
    ///
    /// let ev = EventLoop::new()?;
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
    /// assert!(!server.is_accepting_paused());
    /// server.pause_accepting();
    /// assert!(server.is_accepting_paused());
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn is_accepting_paused(&self) -> bool {
        self.shared.gate().is_paused()
    }

    /// How many connections this server accepted are open now: from the
    /// moment it takes one from the kernel until its socket is released
    /// (in accept mode, those waiting for `accept` included). What
    /// [`ServerOptions::max_connections`] bounds; for a listener of a
    /// [`GroupServer`](crate::GroupServer), the whole group's count. Read
    /// without locking: it may count a connection being accepted at that
    /// instant, and lags a close by the loop turn that releases it.
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
    /// use evstream::{EventLoop, ServerOptions, TcpServer};
    ///
    /// let mut ev = EventLoop::new()?;
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
    /// assert_eq!(server.connection_count(), 0);
    /// let _client = std::net::TcpStream::connect(server.local_addr())?;
    /// let (_stream, _peer) = ev.block_on(server.accept())??;
    /// assert_eq!(server.connection_count(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.shared.gate().connections()
    }

    /// The connection limit set with [`ServerOptions::max_connections`],
    /// if any.
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
    /// use evstream::{EventLoop, ServerOptions, TcpServer};
    ///
    /// let ev = EventLoop::new()?;
    /// let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new())?;
    /// assert_eq!(server.max_connections(), None);
    /// # Ok::<(), evstream::Error>(())
    /// ```
    pub fn max_connections(&self) -> Option<usize> {
        self.shared.gate().max()
    }

    /// The oldest queued connection once it is open, with the peer's
    /// address if known; see `ListenerShared::poll_accept`.
    pub(crate) fn poll_accept_socket(
        &self,
        waker: &std::task::Waker,
    ) -> std::task::Poll<Result<(Socket, Option<SocketAddr>)>> {
        self.shared.poll_accept(waker)
    }
}

pub(crate) fn listen(addr: SocketAddr, options: &ServerOptions) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(options.reuse_address)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    // Accepted sockets inherit the receive buffer (and so the window
    // scale they offer) from the listener.
    if let Some(size) = options.connection.config.recv_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(options.backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A listening Unix domain socket server: the same connections, callbacks
/// and streams as [`TcpServer`], over a path (Godot's `StreamPeerUDS`
/// peers connect to it). `Send + Sync + Clone`.
///
/// # Examples
///
/// ```
/// use evstream::{EventLoop, ServerOptions, UnixServer};
///
/// let dir = std::env::temp_dir().join(format!("evstream-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("server.sock");
/// let ev = EventLoop::new()?;
/// let server = UnixServer::bind(&ev.handle(), &path, ServerOptions::new())?;
/// assert_eq!(server.local_path(), path);
/// server.close(); // also removes the socket file
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct UnixServer {
    shared: Arc<ServerHandle>,
}

impl fmt::Debug for UnixServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixServer")
            .field("local_path", &self.shared.local_path())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl UnixServer {
    /// Binds a Unix domain socket at `path` (which must not exist) and
    /// starts accepting on `handle`'s loop, in callback or accept mode as
    /// [`TcpServer::bind`]. `backlog` and the per-connection options apply;
    /// the TCP-only ones are ignored.
    ///
    /// # Errors
    ///
    /// Invalid connection options, or the operating system refusing to
    /// bind (the path exists, a directory is missing…) or listen.
    pub fn bind(
        handle: &LoopHandle,
        path: impl AsRef<Path>,
        options: ServerOptions,
    ) -> Result<UnixServer> {
        use socket2::{Domain, SockAddr, Socket, Type};
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(&path)?)?;
        socket.listen(options.backlog)?;
        socket.set_nonblocking(true)?;
        let listener = std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket));
        let capacity = options.queue_capacity();
        let shared = start_listening(
            handle,
            NetListener::Unix(listener),
            None,
            Some(path),
            options.connection_setup()?,
            capacity,
            options.gate(),
        )?;
        Ok(UnixServer {
            shared: Arc::new(shared),
        })
    }

    /// The path the server listens on.
    pub fn local_path(&self) -> &Path {
        self.shared.local_path().expect("a Unix server has a path")
    }

    /// The loop the server accepts on.
    pub fn loop_handle(&self) -> &LoopHandle {
        self.shared.handle()
    }

    /// Stops listening and removes the socket file. Connections already
    /// accepted go on (in accept mode, those not yet accepted are closed).
    /// Idempotent.
    pub fn close(&self) {
        if !self.is_closed() {
            let _ = std::fs::remove_file(self.local_path());
        }
        self.shared.close();
    }

    /// Whether [`close`](UnixServer::close) was called (or, in accept mode,
    /// every handle was dropped, or the loop stopped).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Whether the server queues its connections for
    /// [`accept`](UnixServer::accept); see [`TcpServer::is_accept_mode`].
    pub fn is_accept_mode(&self) -> bool {
        self.shared.is_accept_mode()
    }

    /// How many accepted connections wait for [`accept`](UnixServer::accept).
    pub fn queued(&self) -> usize {
        self.shared.queued()
    }

    /// Stops taking connections until
    /// [`resume_accepting`](UnixServer::resume_accepting), from any
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
    /// use evstream::{EventLoop, ServerOptions, UnixServer};
    ///
    /// let dir = std::env::temp_dir().join(format!("evstream-pause-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let ev = EventLoop::new()?;
    /// let server = UnixServer::bind(&ev.handle(), dir.join("s.sock"), ServerOptions::new())?;
    /// server.pause_accepting();
    /// assert!(server.is_accepting_paused());
    /// server.resume_accepting();
    /// assert!(!server.is_accepting_paused());
    /// server.close();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause_accepting(&self) {
        self.shared.gate().pause();
    }

    /// Takes connections again after
    /// [`pause_accepting`](UnixServer::pause_accepting); see
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
    /// # use evstream::{EventLoop, ServerOptions, UnixServer};
    /// # let dir = std::env::temp_dir().join(format!("evstream-resume-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let ev = EventLoop::new()?;
    /// let server = UnixServer::bind(&ev.handle(), dir.join("s.sock"), ServerOptions::new())?;
    /// server.resume_accepting(); // not paused: nothing changes
    /// assert!(!server.is_accepting_paused());
    /// # server.close();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn resume_accepting(&self) {
        self.shared.gate().resume();
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
    /// # use evstream::{EventLoop, ServerOptions, UnixServer};
    /// # let dir = std::env::temp_dir().join(format!("evstream-paused-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let ev = EventLoop::new()?;
    /// let server = UnixServer::bind(&ev.handle(), dir.join("s.sock"), ServerOptions::new())?;
    /// assert!(!server.is_accepting_paused());
    /// # server.close();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_accepting_paused(&self) -> bool {
        self.shared.gate().is_paused()
    }

    /// How many connections this server accepted are open now; see
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
    /// use evstream::{EventLoop, ServerOptions, UnixServer};
    ///
    /// let dir = std::env::temp_dir().join(format!("evstream-count-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("s.sock");
    /// let mut ev = EventLoop::new()?;
    /// let server = UnixServer::bind(&ev.handle(), &path, ServerOptions::new().max_connections(8))?;
    /// let _client = std::os::unix::net::UnixStream::connect(&path)?;
    /// let (_stream, _) = ev.block_on(server.accept())??;
    /// assert_eq!(server.connection_count(), 1);
    /// assert_eq!(server.max_connections(), Some(8));
    /// server.close();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn connection_count(&self) -> usize {
        self.shared.gate().connections()
    }

    /// The connection limit set with [`ServerOptions::max_connections`],
    /// if any.
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
    /// # use evstream::{EventLoop, ServerOptions, UnixServer};
    /// # let dir = std::env::temp_dir().join(format!("evstream-max-doc-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// # let ev = EventLoop::new()?;
    /// let server = UnixServer::bind(&ev.handle(), dir.join("s.sock"), ServerOptions::new())?;
    /// assert_eq!(server.max_connections(), None);
    /// # server.close();
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_connections(&self) -> Option<usize> {
        self.shared.gate().max()
    }

    /// See [`TcpServer::poll_accept_socket`].
    pub(crate) fn poll_accept_socket(
        &self,
        waker: &std::task::Waker,
    ) -> std::task::Poll<Result<(Socket, Option<SocketAddr>)>> {
        self.shared.poll_accept(waker)
    }
}
