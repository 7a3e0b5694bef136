//! Getting a stream: connecting one on a loop, and stream mode for the
//! callback API (the [`StreamOptions`] extension of [`TcpOptions`]).

use std::future::poll_fn;

use super::mode::Duplex;
use super::{AsyncIoStream, EvStream};
use crate::error::Result;
use crate::event_loop::{default_loop, LoopHandle};
use crate::socket::Socket;
use crate::tcp::{dest_of, tcp_connect_dest, unix_connect, TcpOptions, ToSocketAddrs};

impl EvStream<Duplex> {
    /// Connects to `addr` on the [default loop](crate::default_loop) and
    /// completes once connected: tokio's `TcpStream::connect(addr).await`.
    ///
    /// `addr` is anything std's `ToSocketAddrs` takes (see evstream's
    /// [`ToSocketAddrs`]): `"host:port"`, `"[v6]:port"`, `(host, port)`, a
    /// `SocketAddr`, a slice of them… A host name is resolved off the
    /// caller's thread (evstream's resolver pool), and every address is
    /// tried in order until one accepts. The default loop starts on a
    /// background thread on first use.
    ///
    /// # Examples
    ///
    /// ```
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let port = listener.local_addr()?.port();
    /// futures_lite::future::block_on(async {
    ///     let stream = evstream::AsyncIoStream::connect(("localhost", port)).await?;
    ///     assert_eq!(stream.peer_addr()?.port(), port);
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for an address
    /// without a port, [`Error::Resolve`](crate::Error::Resolve),
    /// [`Error::Refused`](crate::Error::Refused),
    /// [`Error::TimedOut`](crate::Error::TimedOut) (30 s by default)…
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future drops the half-made connection,
    /// which is then closed.
    pub async fn connect(addr: impl ToSocketAddrs) -> Result<AsyncIoStream> {
        Self::connect_on(&default_loop(), addr, TcpOptions::new()).await
    }

    /// Connects to `addr` on the default loop with `options` (timeouts,
    /// watermarks, `bind`, `data`…, but no drain-mode `read_cb`) and
    /// completes once connected.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use evstream::{AsyncIoStream, TcpOptions};
    ///
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// let options = TcpOptions::new().connect_timeout(Duration::from_secs(5));
    /// let stream = futures_lite::future::block_on(AsyncIoStream::connect_with(addr, options))?;
    /// # drop(stream);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`connect`](AsyncIoStream::connect), plus invalid options.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_with(
        addr: impl ToSocketAddrs,
        options: TcpOptions,
    ) -> Result<AsyncIoStream> {
        Self::connect_on(&default_loop(), addr, options).await
    }

    /// Connects to `addr` on `handle`'s loop with `options` (which must not
    /// set a drain-mode `read_cb`) and completes once connected.
    ///
    /// # Errors
    ///
    /// As [`connect_with`](AsyncIoStream::connect_with).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_on(
        handle: &LoopHandle,
        addr: impl ToSocketAddrs,
        options: TcpOptions,
    ) -> Result<AsyncIoStream> {
        let dest = dest_of(&addr)?;
        let socket = tcp_connect_dest(handle, dest, options.dont_drain(true))?;
        Self::connected(socket).await
    }

    /// Connects to the Unix domain socket at `path` on the default loop and
    /// completes once connected (Godot's `StreamPeerUDS`): the same stream,
    /// over a local socket.
    ///
    /// # Errors
    ///
    /// `Error::Io` (`NotFound`) when nothing is at `path`,
    /// [`Error::Refused`](crate::Error::Refused) when nothing listens there.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_unix(path: impl AsRef<std::path::Path>) -> Result<AsyncIoStream> {
        let socket = unix_connect(&default_loop(), path, TcpOptions::new().stream(true))?;
        Self::connected(socket).await
    }

    /// The stream of `socket`, once it is connected.
    async fn connected(socket: Socket) -> Result<AsyncIoStream> {
        poll_fn(|cx| {
            let poll = socket.poll_connected(cx.waker());
            if poll.is_pending() {
                socket.loop_handle().note_wait();
            }
            poll
        })
        .await?;
        Ok(AsyncIoStream::new(socket))
    }
}

/// Stream mode for the callback API: callbacks that receive the
/// connection's stream. An extension of [`TcpOptions`] (bring it into
/// scope with `use evstream::StreamOptions` or `evstream::prelude::*`).
pub trait StreamOptions: Sized {
    /// Stream mode with a read callback that receives the connection's
    /// stream: `callback(&mut stream)` runs when new bytes are ready and
    /// only signals it; read as much as you like, the rest stays buffered
    /// (and the callback runs again while it keeps taking some, and once
    /// more after the last byte at the end, so it sees `Ok(0)`).
    fn stream_read_cb(self, callback: impl Fn(&mut AsyncIoStream) + Send + Sync + 'static) -> Self;

    /// Stream mode: `callback(stream)` receives each new connection's
    /// stream to keep, move to a thread or hand to an executor.
    fn stream_connect_cb(self, callback: impl Fn(AsyncIoStream) + Send + Sync + 'static) -> Self;
}

impl StreamOptions for TcpOptions {
    fn stream_read_cb(self, callback: impl Fn(&mut AsyncIoStream) + Send + Sync + 'static) -> Self {
        self.notify_cb(move |socket| {
            let mut stream = AsyncIoStream::new(socket.clone());
            callback(&mut stream);
        })
    }

    fn stream_connect_cb(self, callback: impl Fn(AsyncIoStream) + Send + Sync + 'static) -> Self {
        self.dont_drain(true)
            .connect_cb(move |socket| callback(AsyncIoStream::new(socket.clone())))
    }
}
