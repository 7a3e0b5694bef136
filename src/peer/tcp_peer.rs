//! A poll-style TCP peer and server for game loops (Godot's
//! `StreamPeerTCP` / `TCPServer`, Luna's `streamPeerTCP`).

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use super::{ByteOrder, StreamPeer};
use crate::error::{Error, Result};
use crate::event_loop::{default_loop, LoopHandle};
use crate::stream::{AsyncIoStream, StreamOptions};
use crate::sync::lock;
use crate::tcp::{tcp_connect, ServerOptions, TcpOptions, TcpServer};

/// A [`TcpPeer`]'s state (Godot's and Luna's `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerStatus {
    /// Not connected, and not trying to.
    None,
    /// Resolving or connecting.
    Connecting,
    /// Connected (bytes may be read until the peer's data is exhausted).
    Connected,
    /// The connection failed; [`TcpPeer::last_error`] says why.
    Error,
}

/// A TCP connection for code that polls every frame and never blocks or
/// uses callbacks: Godot's `StreamPeerTCP`, Luna's `streamPeerTCP`.
///
/// The connection lives on an event loop (the [`default_loop`] unless
/// given), so unlike Godot: the status advances whether or not
/// [`poll`](TcpPeer::poll) is called; writes made while connecting are
/// queued and sent, not dropped; and reads and writes go through the
/// [`StreamPeer`] methods, which never block the loop.
///
/// # Examples
///
/// ```
/// use evstream::peer::{PeerStatus, StreamPeer, TcpPeer};
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let port = listener.local_addr()?.port();
/// # let server = std::thread::spawn(move || {
/// #     use std::io::{Read, Write};
/// #     let (mut s, _) = listener.accept().unwrap();
/// #     let mut b = [0u8; 4]; s.read_exact(&mut b).unwrap(); s.write_all(&b).unwrap();
/// # });
/// let mut peer = TcpPeer::new();
/// peer.connect_to_host("127.0.0.1", port)?;
/// peer.put_data(b"ping")?; // queued while connecting, never dropped
/// let mut reply = [0u8; 4];
/// peer.get_data(&mut reply)?; // waits (this is not the loop thread)
/// assert_eq!(&reply, b"ping");
/// assert_eq!(peer.status(), PeerStatus::Connected);
/// # server.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpPeer {
    handle: LoopHandle,
    bind: Option<SocketAddr>,
    nodelay: bool,
    order: ByteOrder,
    stream: Option<AsyncIoStream>,
}

impl Default for TcpPeer {
    fn default() -> Self {
        TcpPeer::new()
    }
}

impl TcpPeer {
    /// A peer on the default loop, not connected.
    pub fn new() -> Self {
        Self::with_loop(default_loop())
    }

    /// A peer whose connections live on `handle`'s loop.
    pub fn with_loop(handle: LoopHandle) -> Self {
        TcpPeer {
            handle,
            bind: None,
            nodelay: true,
            order: ByteOrder::default(),
            stream: None,
        }
    }

    fn from_stream(handle: LoopHandle, stream: AsyncIoStream) -> Self {
        TcpPeer {
            handle,
            bind: None,
            nodelay: true,
            order: ByteOrder::default(),
            stream: Some(stream),
        }
    }

    /// Sets the byte order of the typed calls without an explicit one
    /// (Godot's `big_endian`; little-endian by default).
    pub fn set_big_endian(&mut self, big_endian: bool) {
        self.order = if big_endian {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        };
    }

    /// Whether the typed calls are big-endian (Godot's `big_endian`).
    pub fn is_big_endian(&self) -> bool {
        self.order == ByteOrder::Big
    }

    /// Sets the byte order of the typed calls.
    pub fn set_byte_order(&mut self, order: ByteOrder) {
        self.order = order;
    }

    /// Sets the source address of the next connection (Godot's
    /// `bind(port, host)`); `host` `None` means any address.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] while a connection is open.
    pub fn bind(&mut self, port: u16, host: Option<IpAddr>) -> Result<()> {
        if self.stream.is_some() {
            return Err(Error::InvalidInput("bind before connect_to_host".into()));
        }
        self.bind = Some(SocketAddr::new(
            host.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port,
        ));
        Ok(())
    }

    /// Starts connecting to `host:port` (a name is resolved off the loop
    /// thread) and returns at once; see [`status`](TcpPeer::status).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if already connected or connecting.
    pub fn connect_to_host(&mut self, host: &str, port: u16) -> Result<()> {
        if self.stream.is_some() {
            return Err(Error::InvalidInput(
                "already connected; disconnect_from_host first".into(),
            ));
        }
        let mut options = TcpOptions::new().stream(true).nodelay(self.nodelay);
        if let Some(bind) = self.bind {
            options = options.bind(bind);
        }
        let socket = tcp_connect(&self.handle, host, port, options)?;
        self.stream = Some(AsyncIoStream::new(socket));
        Ok(())
    }

    /// Godot's `poll()`: nothing to do here, since the loop drives the
    /// connection, but it reports a failed connection's error, so a game
    /// loop can keep calling it as it would in Godot.
    ///
    /// # Errors
    ///
    /// The connection's error, once it has failed.
    pub fn poll(&mut self) -> Result<()> {
        match self.last_error() {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// The connection's state, read live (no `poll` needed).
    pub fn status(&self) -> PeerStatus {
        let Some(stream) = &self.stream else {
            return PeerStatus::None;
        };
        let socket = stream.socket();
        if socket.error().is_some() {
            return PeerStatus::Error;
        }
        if socket.is_connected() {
            PeerStatus::Connected
        } else if socket.is_closed() {
            PeerStatus::None
        } else {
            PeerStatus::Connecting
        }
    }

    /// Why the connection failed, if it did.
    pub fn last_error(&self) -> Option<Error> {
        self.stream
            .as_ref()
            .and_then(|stream| stream.socket().error())
    }

    /// The peer's address (Godot's `get_connected_host`).
    pub fn connected_host(&self) -> Option<IpAddr> {
        self.peer_addr().map(|addr| addr.ip())
    }

    /// The peer's port, 0 when not connected (Godot's
    /// `get_connected_port`).
    pub fn connected_port(&self) -> u16 {
        self.peer_addr().map_or(0, |addr| addr.port())
    }

    /// This side's port, 0 when not connected (Godot's `get_local_port`).
    pub fn local_port(&self) -> u16 {
        self.stream
            .as_ref()
            .and_then(|stream| stream.local_addr().ok())
            .map_or(0, |addr| addr.port())
    }

    fn peer_addr(&self) -> Option<SocketAddr> {
        self.stream
            .as_ref()
            .and_then(|stream| stream.peer_addr().ok())
    }

    /// `TCP_NODELAY` (Godot's `set_no_delay`); applied now if connected, and
    /// to later connections.
    ///
    /// # Errors
    ///
    /// The operating system's error on a connected socket.
    pub fn set_no_delay(&mut self, enabled: bool) -> Result<()> {
        self.nodelay = enabled;
        match &self.stream {
            Some(stream) if stream.socket().is_connected() => stream.socket().set_nodelay(enabled),
            _ => Ok(()),
        }
    }

    /// Closes the connection gracefully (queued output is still sent) and
    /// returns to [`PeerStatus::None`] (Godot's `disconnect_from_host`).
    pub fn disconnect_from_host(&mut self) {
        if let Some(stream) = self.stream.take() {
            stream.close_connection();
        }
    }

    /// The stream, when connected or connecting.
    pub fn stream(&mut self) -> Option<&mut AsyncIoStream> {
        self.stream.as_mut()
    }

    fn connected(&mut self) -> Result<&mut AsyncIoStream> {
        self.stream.as_mut().ok_or(Error::Closed)
    }
}

impl StreamPeer for TcpPeer {
    fn put_data(&mut self, data: &[u8]) -> Result<()> {
        self.connected()?.put_data(data)
    }

    fn put_partial_data(&mut self, data: &[u8]) -> Result<usize> {
        self.connected()?.put_partial_data(data)
    }

    fn get_data(&mut self, dst: &mut [u8]) -> Result<()> {
        self.connected()?.get_data(dst)
    }

    fn get_partial_data(&mut self, dst: &mut [u8]) -> Result<usize> {
        self.connected()?.get_partial_data(dst)
    }

    fn available_bytes(&self) -> usize {
        self.stream.as_ref().map_or(0, |stream| stream.available())
    }

    fn byte_order(&self) -> ByteOrder {
        self.order
    }

    fn try_get_data(&mut self, dst: &mut [u8]) -> Result<bool> {
        self.connected()?.try_get_data(dst)
    }
}

/// A peer over a connected stream (one from `accept()`, say), on the
/// stream's loop: for the poll-style calls and a per-peer byte order.
impl From<AsyncIoStream> for TcpPeer {
    fn from(stream: AsyncIoStream) -> Self {
        TcpPeer::from_stream(stream.socket().loop_handle().clone(), stream)
    }
}

/// The most accepted connections a [`TcpPeerServer`] holds for
/// [`take_connection`](TcpPeerServer::take_connection); more are refused
/// (closed) until the game takes some.
pub const MAX_PENDING_CONNECTIONS: usize = 1024;

/// A poll-style server (Godot's `TCPServer`): accepted connections wait in
/// a queue until the game loop takes them.
///
/// # Examples
///
/// ```
/// use evstream::peer::{StreamPeer, TcpPeer, TcpPeerServer};
///
/// let mut server = TcpPeerServer::new();
/// server.listen(0, Some("127.0.0.1".parse()?))?;
/// let mut client = TcpPeer::new();
/// client.connect_to_host("127.0.0.1", server.local_port())?;
/// client.put_data(b"hi")?;
/// let mut accepted = loop {
///     // A game loop would do this once per frame.
///     if let Some(peer) = server.take_connection() { break peer; }
///     std::thread::yield_now();
/// };
/// let mut buf = [0u8; 2];
/// accepted.get_data(&mut buf)?;
/// assert_eq!(&buf, b"hi");
/// server.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TcpPeerServer {
    handle: LoopHandle,
    server: Option<TcpServer>,
    pending: Arc<Mutex<Pending>>,
}

/// Accepted connections waiting to be taken. A new queue per `listen`, and
/// `open` checked under its lock, so a connection accepted just as the
/// server stops is closed rather than left where nobody will take it.
#[derive(Debug, Default)]
struct Pending {
    open: bool,
    streams: VecDeque<AsyncIoStream>,
}

impl Default for TcpPeerServer {
    fn default() -> Self {
        TcpPeerServer::new()
    }
}

impl TcpPeerServer {
    /// A server on the default loop, not listening.
    pub fn new() -> Self {
        Self::with_loop(default_loop())
    }

    /// A server whose connections live on `handle`'s loop.
    pub fn with_loop(handle: LoopHandle) -> Self {
        TcpPeerServer {
            handle,
            server: None,
            pending: Arc::default(),
        }
    }

    /// Listens on `port` (0 picks one) at `bind_address` (`None`: every
    /// IPv4 address), Godot's `listen(port, bind_address)`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if already listening; the operating system's
    /// error (an address in use…).
    pub fn listen(&mut self, port: u16, bind_address: Option<IpAddr>) -> Result<()> {
        if self.server.is_some() {
            return Err(Error::InvalidInput("already listening; stop first".into()));
        }
        let addr = SocketAddr::new(
            bind_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            port,
        );
        self.pending = Arc::new(Mutex::new(Pending {
            open: true,
            streams: VecDeque::new(),
        }));
        let pending = self.pending.clone();
        let options = TcpOptions::new().stream_connect_cb(move |stream| {
            let mut pending = lock(&pending);
            if pending.open && pending.streams.len() < MAX_PENDING_CONNECTIONS {
                pending.streams.push_back(stream);
            } else if pending.open {
                stream.socket().abort();
            } else {
                // Accepted as the server stopped.
                stream.close_connection();
            }
        });
        let server = TcpServer::bind(&self.handle, addr, ServerOptions::new().connection(options))?;
        self.server = Some(server);
        Ok(())
    }

    /// Whether the server is listening (Godot's `is_listening`).
    pub fn is_listening(&self) -> bool {
        self.server.is_some()
    }

    /// The port listened on, 0 when not listening.
    pub fn local_port(&self) -> u16 {
        self.server
            .as_ref()
            .map_or(0, |server| server.local_addr().port())
    }

    /// Whether an accepted connection waits (Godot's
    /// `is_connection_available`).
    pub fn is_connection_available(&self) -> bool {
        !lock(&self.pending).streams.is_empty()
    }

    /// The oldest accepted connection, if any (Godot's `take_connection`).
    pub fn take_connection(&mut self) -> Option<TcpPeer> {
        let stream = lock(&self.pending).streams.pop_front()?;
        Some(TcpPeer::from_stream(self.handle.clone(), stream))
    }

    /// Stops listening and closes connections not yet taken (Godot's
    /// `stop`). Connections already taken go on.
    pub fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.close();
        }
        let waiting = {
            let mut pending = lock(&self.pending);
            pending.open = false;
            std::mem::take(&mut pending.streams)
        };
        for stream in waiting {
            stream.close_connection();
        }
    }
}
