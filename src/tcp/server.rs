//! A listening TCP server (cl-async's `tcp-server`).

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::TcpOptions;
use crate::error::{Error, Result};
use crate::event_loop::{Core, LoopHandle, Readiness, Registration, Source, Step};
use crate::socket::{Callbacks, Config, Conn, Driver, NetListener, Target, WriteState};

const UNREGISTERED: usize = usize::MAX;
/// After an accept error such as EMFILE, try again after this long: the
/// edge that announced the waiting connections has been consumed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
const TOKEN_RETRY: u64 = 1;

/// Options for [`TcpServer::bind`].
///
/// # Examples
///
/// ```
/// use evstream::{ServerOptions, TcpOptions};
///
/// let options = ServerOptions::new()
///     .backlog(64)
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
    connection: TcpOptions,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions::new()
    }
}

impl ServerOptions {
    /// Defaults: backlog 1024, `SO_REUSEADDR` on, `SO_REUSEPORT` off, and
    /// default [`TcpOptions`] for each connection.
    pub fn new() -> Self {
        ServerOptions {
            backlog: 1024,
            reuse_address: true,
            reuse_port: false,
            connection: TcpOptions::new(),
        }
    }

    /// The listen backlog.
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

    /// Options (callbacks included) for every accepted connection. Its
    /// `connect_cb` runs once per accepted connection.
    pub fn connection(mut self, options: TcpOptions) -> Self {
        self.connection = options;
        self
    }
}

pub(crate) struct ServerShared {
    handle: LoopHandle,
    /// Set for a TCP server.
    local_addr: Option<SocketAddr>,
    /// Set for a Unix domain socket server.
    local_path: Option<PathBuf>,
    key: AtomicUsize,
    closed: AtomicBool,
}

/// A listening TCP server on a loop. `Send + Sync + Clone`; every clone is
/// the same server.
///
/// Each accepted connection gets the server's per-connection
/// [`TcpOptions`]; its callbacks are shared by all connections.
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
    shared: Arc<ServerShared>,
}

impl fmt::Debug for TcpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpServer")
            .field("local_addr", &self.shared.local_addr)
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

impl crate::Socket {
    /// The server that accepted this connection, or the loop it was made
    /// on (TouchDesigner's `Peer.owner`).
    pub fn owner(&self) -> Owner {
        let owner = crate::event_loop::lock(&self.conn().owner).clone();
        match owner.and_then(|owner| owner.downcast::<ServerShared>().ok()) {
            Some(shared) if shared.local_path.is_some() => Owner::UnixServer(UnixServer { shared }),
            Some(shared) => Owner::Server(TcpServer { shared }),
            None => Owner::Loop(self.loop_handle().clone()),
        }
    }
}

impl TcpServer {
    /// Binds a listening socket to `addr` (port 0 picks a free port) and
    /// starts accepting on `handle`'s loop.
    ///
    /// The socket is bound on the calling thread, so an address in use is
    /// reported here and [`local_addr`](TcpServer::local_addr) is known at
    /// once.
    ///
    /// # Errors
    ///
    /// Invalid connection options, an address that does not resolve, or
    /// the operating system refusing to bind or listen.
    pub fn bind(
        handle: &LoopHandle,
        addr: impl ToSocketAddrs,
        options: ServerOptions,
    ) -> Result<TcpServer> {
        options.connection.validate()?;
        let mut last_error = None;
        let addrs = addr.to_socket_addrs().map_err(Error::from)?;
        for addr in addrs {
            match listen(addr, &options) {
                Ok(listener) => {
                    let local_addr = listener.local_addr()?;
                    let shared = start(
                        handle,
                        NetListener::Tcp(listener),
                        Some(local_addr),
                        None,
                        options,
                    );
                    return Ok(TcpServer { shared });
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
        self.shared.local_addr.expect("a TCP server has an address")
    }

    /// The loop the server accepts on.
    pub fn loop_handle(&self) -> &LoopHandle {
        &self.shared.handle
    }

    /// Stops listening and releases the socket (cl-async's
    /// `close-tcp-server`). Connections already accepted go on.
    /// Idempotent.
    pub fn close(&self) {
        close_server(&self.shared);
    }

    /// Whether [`close`](TcpServer::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

fn listen(addr: SocketAddr, options: &ServerOptions) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(options.reuse_address)?;
    if options.reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(options.backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Registers `listener` on `handle`'s loop and starts accepting.
fn start(
    handle: &LoopHandle,
    listener: NetListener,
    local_addr: Option<SocketAddr>,
    local_path: Option<PathBuf>,
    options: ServerOptions,
) -> Arc<ServerShared> {
    let shared = Arc::new(ServerShared {
        handle: handle.clone(),
        local_addr,
        local_path,
        key: AtomicUsize::new(UNREGISTERED),
        closed: AtomicBool::new(false),
    });
    let server = shared.clone();
    let TcpOptions {
        callbacks, config, ..
    } = options.connection;
    handle.call(move |core| {
        let key = core.reserve_key();
        server.key.store(key, Ordering::SeqCst);
        if server.closed.load(Ordering::SeqCst) {
            core.unreserve(key);
            return;
        }
        match Registration::new(core.poller(), Arc::new(listener), key) {
            Ok(registration) => core.fill(
                key,
                Box::new(Acceptor {
                    shared: server,
                    registration,
                    callbacks,
                    config,
                }),
            ),
            Err(err) => {
                eprintln!("evstream: cannot register server socket: {err}");
                server.closed.store(true, Ordering::SeqCst);
                core.unreserve(key);
            }
        }
    });
    shared
}

fn close_server(shared: &ServerShared) {
    if !shared.closed.swap(true, Ordering::SeqCst) {
        let key = shared.key.load(Ordering::SeqCst);
        if key != UNREGISTERED {
            shared.handle.wake_source(key);
        }
    }
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
    shared: Arc<ServerShared>,
}

impl fmt::Debug for UnixServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixServer")
            .field("local_path", &self.shared.local_path)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl UnixServer {
    /// Binds a Unix domain socket at `path` (which must not exist) and
    /// starts accepting on `handle`'s loop. `backlog` and the
    /// per-connection options apply; the TCP-only ones are ignored.
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
        options.connection.validate()?;
        let path = path.as_ref().to_path_buf();
        let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
        socket.bind(&SockAddr::unix(&path)?)?;
        socket.listen(options.backlog)?;
        socket.set_nonblocking(true)?;
        let listener = std::os::unix::net::UnixListener::from(std::os::fd::OwnedFd::from(socket));
        let shared = start(
            handle,
            NetListener::Unix(listener),
            None,
            Some(path),
            options,
        );
        Ok(UnixServer { shared })
    }

    /// The path the server listens on.
    pub fn local_path(&self) -> &Path {
        self.shared
            .local_path
            .as_deref()
            .expect("a Unix server has a path")
    }

    /// The loop the server accepts on.
    pub fn loop_handle(&self) -> &LoopHandle {
        &self.shared.handle
    }

    /// Stops listening and removes the socket file. Connections already
    /// accepted go on. Idempotent.
    pub fn close(&self) {
        if !self.is_closed() {
            let _ = std::fs::remove_file(self.local_path());
        }
        close_server(&self.shared);
    }

    /// Whether [`close`](UnixServer::close) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }
}

/// The loop-side half of a server.
struct Acceptor {
    shared: Arc<ServerShared>,
    registration: Registration<NetListener>,
    callbacks: Arc<Callbacks>,
    config: Arc<Config>,
}

impl Acceptor {
    fn accept_all(&mut self, core: &mut Core, key: usize) {
        loop {
            match self.registration.source().accept() {
                Ok((stream, peer)) => {
                    let conn = Conn::new(
                        self.shared.handle.clone(),
                        self.config.clone(),
                        &self.callbacks,
                        WriteState::Connecting,
                        None,
                    );
                    *crate::event_loop::lock(&conn.owner) = Some(self.shared.clone());
                    // A server on one address is every connection's local
                    // address; one on a wildcard address must ask.
                    let local = self
                        .shared
                        .local_addr
                        .filter(|addr| !addr.ip().is_unspecified());
                    let target = Target::Accepted {
                        stream,
                        peer,
                        local,
                    };
                    Driver::spawn(core, conn, self.callbacks.clone(), target);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(_) => {
                    // Out of descriptors or memory: the waiting connections
                    // stay queued; try again shortly.
                    core.add_timer(core.now() + ACCEPT_RETRY, key, TOKEN_RETRY);
                    return;
                }
            }
        }
    }
}

impl Source for Acceptor {
    fn on_ready(&mut self, core: &mut Core, key: usize, ready: Readiness) -> Step {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Step::Remove;
        }
        if ready.readable {
            self.accept_all(core, key);
        }
        Step::Keep
    }

    fn on_wake(&mut self, core: &mut Core, key: usize) -> Step {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Step::Remove;
        }
        // Connections may have queued before registration.
        self.accept_all(core, key);
        Step::Keep
    }

    fn on_timer(&mut self, core: &mut Core, key: usize, token: u64) -> Step {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Step::Remove;
        }
        if token == TOKEN_RETRY {
            self.accept_all(core, key);
        }
        Step::Keep
    }
}
