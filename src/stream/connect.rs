//! Getting a stream: connecting one on a loop, and stream mode for the
//! callback API (the [`StreamOptions`] extension of [`TcpOptions`]).

use std::future::poll_fn;
use std::net::SocketAddr;

use super::mode::Duplex;
use super::{AsyncIoStream, EvStream};
use crate::error::{Error, Result};
use crate::event_loop::{default_loop, LoopHandle};
use crate::tcp::{tcp_connect, unix_connect, TcpOptions};

impl EvStream<Duplex> {
    /// Connects to `addr` (`"host:port"`, `"[v6]:port"`) on the default
    /// loop, which starts on a background thread on first use, and
    /// completes once connected — the one-line way in for a user with no
    /// loop of their own.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an address without a port,
    /// [`Error::Resolve`], [`Error::Refused`], [`Error::TimedOut`]…
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future drops the half-made connection,
    /// which is then closed.
    pub async fn connect(addr: &str) -> Result<AsyncIoStream> {
        let (host, port) = split_host_port(addr)?;
        Self::connect_with(&default_loop(), host, port, TcpOptions::new()).await
    }

    /// Connects to `host:port` on `handle`'s loop with `options` (which must
    /// not set a drain-mode `read_cb`) and completes once connected.
    ///
    /// # Errors
    ///
    /// As [`connect`](AsyncIoStream::connect), plus invalid options.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_with(
        handle: &LoopHandle,
        host: &str,
        port: u16,
        options: TcpOptions,
    ) -> Result<AsyncIoStream> {
        let socket = tcp_connect(handle, host, port, options.dont_drain(true))?;
        poll_fn(|cx| socket.poll_connected(cx.waker())).await?;
        Ok(AsyncIoStream::new(socket))
    }

    /// Connects to the Unix domain socket at `path` on the default loop and
    /// completes once connected (Godot's `StreamPeerUDS`): the same stream,
    /// over a local socket.
    ///
    /// # Errors
    ///
    /// `Error::Io` (`NotFound`) when nothing is at `path`,
    /// [`Error::Refused`] when nothing listens there.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`connect`](AsyncIoStream::connect).
    pub async fn connect_unix(path: impl AsRef<std::path::Path>) -> Result<AsyncIoStream> {
        let socket = unix_connect(&default_loop(), path, TcpOptions::new().stream(true))?;
        poll_fn(|cx| socket.poll_connected(cx.waker())).await?;
        Ok(AsyncIoStream::new(socket))
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.socket.peer_addr()
    }

    /// This side's address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr()
    }

    /// Closes the whole connection gracefully (flush, FIN, release); see
    /// [`Socket::close`](crate::Socket::close). To shut down only the write
    /// side, use `AsyncWriteExt::close` or
    /// [`Socket::shutdown_write`](crate::Socket::shutdown_write).
    pub fn close(&self) {
        self.socket.close();
    }
}

/// Splits `"host:port"` or `"[v6]:port"`.
pub(super) fn split_host_port(addr: &str) -> Result<(&str, u16)> {
    let invalid = || Error::InvalidInput(format!("{addr:?} is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host, port))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_parsing() {
        assert_eq!(split_host_port("localhost:80").unwrap(), ("localhost", 80));
        assert_eq!(split_host_port("[::1]:8080").unwrap(), ("::1", 8080));
        assert_eq!(split_host_port("127.0.0.1:1").unwrap(), ("127.0.0.1", 1));
        assert!(split_host_port("nohost").is_err());
        assert!(split_host_port("host:notaport").is_err());
    }
}
