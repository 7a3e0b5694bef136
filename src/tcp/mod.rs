//! TCP: connecting ([`tcp_connect`]), serving ([`TcpServer`]) and the
//! options both take ([`TcpOptions`]).

mod addr;
mod group_server;
mod options;
mod server;

pub use addr::ToSocketAddrs;
pub(crate) use addr::{dest_of, resolve_dest, Dest};

pub use group_server::GroupServer;
pub use options::{
    TcpOptions, DEFAULT_CLOSE_LINGER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BUFFER_SIZE,
    DEFAULT_READ_CHUNK_SIZE, DEFAULT_READ_HIGH_WATERMARK, DEFAULT_WRITE_HIGH_WATERMARK,
};
pub use server::{Owner, ServerOptions, TcpServer, UnixServer};

use std::net::SocketAddr;

use crate::error::Result;
use crate::event_loop::LoopHandle;
use crate::socket::{connect, Socket, Target};

/// Connects to `host:port` on `handle`'s loop (cl-async's `tcp-connect`).
///
/// Returns the [`Socket`] at once; the connection is made by the loop. A
/// host name is resolved off the loop thread and every address it resolves
/// to is tried in order until one accepts; the whole setup is bounded by
/// the connect timeout (30 s by default). Writes issued before the
/// connection is up — and the `data` option — are queued and sent once it
/// is, never dropped. The outcome reaches `connect_cb` and `event_cb`:
/// [`Event::Connected`](crate::Event::Connected), or
/// [`Event::Error`](crate::Event::Error) with
/// [`Error::Refused`](crate::Error::Refused),
/// [`Error::Resolve`](crate::Error::Resolve) or
/// [`Error::TimedOut`](crate::Error::TimedOut).
///
/// # Errors
///
/// Only invalid options ([`Error::InvalidInput`](crate::Error::InvalidInput))
/// and a loop that is stopped for good
/// ([`Error::LoopStopped`](crate::Error::LoopStopped)) fail here;
/// everything about the network is reported to the callbacks.
///
/// # Examples
///
/// ```
/// use evstream::{tcp_connect, Error, Event, EventLoop, TcpOptions};
///
/// // Nothing listens on this port: the refusal reaches event_cb.
/// let unused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
/// let mut ev = EventLoop::new()?;
/// let refused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
/// let flag = refused.clone();
/// tcp_connect(&ev.handle(), "127.0.0.1", unused, TcpOptions::new().event_cb(move |_, event| {
///     if let Event::Error(Error::Refused) = event {
///         flag.store(true, std::sync::atomic::Ordering::SeqCst);
///     }
/// }))?;
/// ev.run()?;
/// assert!(refused.load(std::sync::atomic::Ordering::SeqCst));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn tcp_connect(
    handle: &LoopHandle,
    host: &str,
    port: u16,
    options: TcpOptions,
) -> Result<Socket> {
    connect(
        handle,
        options.into_setup()?,
        Target::Host(host.to_string(), port),
    )
}

/// Connects to an already resolved address; see [`tcp_connect`].
///
/// # Errors
///
/// Only invalid options, or a loop stopped for good, fail here.
pub fn tcp_connect_addr(
    handle: &LoopHandle,
    addr: SocketAddr,
    options: TcpOptions,
) -> Result<Socket> {
    connect(handle, options.into_setup()?, Target::Addrs(vec![addr]))
}

/// Connects to `dest` on `handle`'s loop; see [`tcp_connect`].
pub(crate) fn tcp_connect_dest(
    handle: &LoopHandle,
    dest: Dest,
    options: TcpOptions,
) -> Result<Socket> {
    let target = match dest {
        Dest::Host(host, port) => Target::Host(host, port),
        Dest::Addrs(addrs) => Target::Addrs(addrs),
    };
    connect(handle, options.into_setup()?, target)
}

/// Connects to the Unix domain socket at `path` (Godot's `StreamPeerUDS`),
/// with the same options, callbacks and streams as a TCP connection
/// (`TCP_NODELAY` and `bind` do not apply).
///
/// # Errors
///
/// Only invalid options fail here; a missing or refusing socket is
/// reported to the callbacks (`Error::Io` with `NotFound`, or
/// `Error::Refused`).
///
/// # Examples
///
/// ```
/// use evstream::{unix_connect, EventLoop, ServerOptions, TcpOptions, UnixServer};
///
/// let dir = std::env::temp_dir().join(format!("evstream-uds-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("echo.sock");
/// let mut ev = EventLoop::new()?;
/// let server = UnixServer::bind(&ev.handle(), &path, ServerOptions::new().connection(
///     TcpOptions::new().read_cb(|socket, data| { socket.write_bytes(data).unwrap(); socket.close(); }),
/// ))?;
/// let stop = server.clone();
/// let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
/// let sink = got.clone();
/// unix_connect(&ev.handle(), &path, TcpOptions::new()
///     .data("over a unix socket")
///     .read_cb(move |_, data| sink.lock().unwrap().extend_from_slice(&data))
///     .event_cb(move |socket, event| if matches!(event, evstream::Event::Eof) {
///         socket.close();
///         stop.close();
///     }))?;
/// ev.run()?;
/// assert_eq!(&got.lock().unwrap()[..], b"over a unix socket");
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn unix_connect(
    handle: &LoopHandle,
    path: impl AsRef<std::path::Path>,
    options: TcpOptions,
) -> Result<Socket> {
    connect(
        handle,
        options.into_setup()?,
        Target::Unix(path.as_ref().to_path_buf()),
    )
}
