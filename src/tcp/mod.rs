//! TCP: connecting ([`tcp_connect`]), serving ([`TcpServer`]) and the
//! options both take ([`TcpOptions`]).

mod options;
mod resolve;
mod server;

pub use options::{
    TcpOptions, DEFAULT_CLOSE_LINGER, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BUFFER_SIZE,
    DEFAULT_READ_CHUNK_SIZE, DEFAULT_READ_HIGH_WATERMARK, DEFAULT_WRITE_HIGH_WATERMARK,
};
pub use server::{Owner, ServerOptions, TcpServer, UnixServer};

use std::net::{IpAddr, SocketAddr};

use crate::error::Result;
use crate::event_loop::{lock, LoopHandle};
use crate::socket::{Conn, Driver, Socket, Target, WriteState};

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
/// Only invalid options fail here ([`Error::InvalidInput`](crate::Error::InvalidInput));
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
    let target = match host.parse::<IpAddr>() {
        Ok(ip) => Target::Addrs(vec![SocketAddr::new(ip, port)]),
        Err(_) => Target::Resolving,
    };
    let resolve = matches!(target, Target::Resolving);
    let socket = start(handle, options, target, Some(host.to_string()))?;
    if resolve {
        resolve::resolve(host.to_string(), port, socket.conn().clone());
    }
    Ok(socket)
}

/// Connects to an already resolved address; see [`tcp_connect`].
///
/// # Errors
///
/// Only invalid options fail here.
pub fn tcp_connect_addr(
    handle: &LoopHandle,
    addr: SocketAddr,
    options: TcpOptions,
) -> Result<Socket> {
    start(handle, options, Target::Addrs(vec![addr]), None)
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
    start(
        handle,
        options,
        Target::Unix(path.as_ref().to_path_buf()),
        None,
    )
}

fn start(
    handle: &LoopHandle,
    options: TcpOptions,
    target: Target,
    host: Option<String>,
) -> Result<Socket> {
    options.validate()?;
    let TcpOptions {
        callbacks,
        config,
        data,
        ..
    } = options;
    let conn = Conn::new(
        handle.clone(),
        config,
        &callbacks,
        WriteState::Connecting,
        host,
    );
    if let Some(data) = data {
        lock(&conn.output).buf.push(data);
        conn.output_pending
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    // The user's handle must exist before the loop can see the connection:
    // otherwise a handle the loop makes and drops for a callback could be
    // taken for the last one, closing a connection without callbacks.
    let socket = Socket::from_conn(conn.clone());
    handle.call(move |core| Driver::spawn(core, conn, callbacks, target));
    Ok(socket)
}
