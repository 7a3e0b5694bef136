//! Accepting streams: `TcpServer::listen`, `accept().await` and
//! `incoming()` (and the same for `UnixServer`), over the accept queue of
//! a server without callbacks.

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;

use super::AsyncIoStream;
use crate::error::{Error, Result};
use crate::event_loop::default_loop;
use crate::tcp::{
    dest_of, resolve_dest, GroupServer, ServerOptions, TcpServer, ToSocketAddrs, UnixServer,
};

impl TcpServer {
    /// Binds an accept-mode server to `addr` on the [default
    /// loop](crate::default_loop), with default options: tokio's
    /// `TcpListener::bind(addr).await`. Take its connections with
    /// [`accept`](TcpServer::accept) or [`incoming`](TcpServer::incoming).
    ///
    /// `addr` is anything std's `ToSocketAddrs` takes (see evstream's
    /// [`ToSocketAddrs`]); a host name is resolved off the caller's thread,
    /// and the first address that binds is used. For other options (a
    /// backlog, `SO_REUSEPORT`, per-connection watermarks and timeouts) or
    /// another loop, use [`TcpServer::bind`] with options that have no
    /// callbacks.
    ///
    /// # Examples
    ///
    /// The async server shape: bind, accept in a loop, a task per
    /// connection.
    ///
    /// ```
    /// use evstream::{AsyncIoStream, TcpServer};
    ///
    /// futures_lite::future::block_on(async {
    ///     let server = TcpServer::listen("127.0.0.1:0").await?;
    ///     let addr = server.local_addr();
    ///     let acceptor = server.clone();
    ///     evstream::spawn(async move {
    ///         while let Ok((mut stream, _peer)) = acceptor.accept().await {
    ///             evstream::spawn(async move {
    ///                 let mut buf = [0u8; 1024];
    ///                 while let Ok(n @ 1..) = stream.read(&mut buf).await {
    ///                     if stream.write_all(&buf[..n]).await.is_err() {
    ///                         break;
    ///                     }
    ///                 }
    ///             });
    ///         }
    ///     });
    ///
    ///     let mut client = AsyncIoStream::connect(addr).await?;
    ///     client.write_all(b"echo me").await?;
    ///     client.close().await?; // flush + FIN
    ///     let mut echo = Vec::new();
    ///     client.read_to_end(&mut echo).await?;
    ///     assert_eq!(echo, b"echo me");
    ///     server.close();
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an address without a port,
    /// [`Error::Resolve`], or the operating system refusing to bind (an
    /// address in use…).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is bound before the name is resolved, and the
    /// bind itself does not wait.
    pub async fn listen(addr: impl ToSocketAddrs) -> Result<TcpServer> {
        let addrs = resolve_dest(dest_of(&addr)?).await?;
        TcpServer::bind(&default_loop(), &addrs[..], ServerOptions::new())
    }

    /// Takes the next connection (waiting for one), with the peer's
    /// address: tokio's `TcpListener::accept`. The connection is open and
    /// its addresses known when it is returned.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the server is closed;
    /// [`Error::LoopStopped`] if its loop stopped;
    /// [`Error::InvalidInput`] for a server in callback mode, whose
    /// connections go to its callbacks (see [`TcpServer`]).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection leaves the queue only when `accept`
    /// returns it, so none is lost in a `select!`.
    pub async fn accept(&self) -> Result<(AsyncIoStream, SocketAddr)> {
        let stream = poll_fn(|cx| self.poll_accept(cx)).await?;
        // Known once open, which the queue waited for.
        let peer = stream.socket().peer_addr().ok_or(Error::Closed)?;
        Ok((stream, peer))
    }

    /// Polls for the next connection; see [`accept`](TcpServer::accept).
    ///
    /// # Errors
    ///
    /// As [`accept`](TcpServer::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<AsyncIoStream>> {
        let poll = self.poll_accept_socket(cx.waker());
        if poll.is_pending() {
            self.loop_handle().note_wait();
        }
        poll.map_ok(|(socket, _)| AsyncIoStream::new(socket))
    }

    /// The accepted connections as a `Stream` (async-std's and
    /// tokio-stream's `incoming`). It ends when the server is closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use futures_lite::StreamExt;
    /// use evstream::TcpServer;
    ///
    /// futures_lite::future::block_on(async {
    ///     let server = TcpServer::listen("127.0.0.1:0").await?;
    ///     let client = evstream::AsyncIoStream::connect(server.local_addr()).await?;
    ///     let mut incoming = server.incoming();
    ///     let accepted = incoming.next().await.expect("a connection")?;
    ///     assert_eq!(accepted.peer_addr()?, client.local_addr()?);
    ///     server.close();
    ///     assert!(incoming.next().await.is_none(), "ends once closed");
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn incoming(&self) -> Incoming {
        Incoming {
            server: Server::Tcp(self.clone()),
            done: false,
        }
    }
}

impl UnixServer {
    /// Binds an accept-mode Unix domain socket server at `path` on the
    /// default loop, with default options (tokio's `UnixListener::bind`).
    ///
    /// # Errors
    ///
    /// As [`UnixServer::bind`].
    pub fn listen(path: impl AsRef<Path>) -> Result<UnixServer> {
        UnixServer::bind(&default_loop(), path, ServerOptions::new())
    }

    /// Takes the next connection (waiting for one), with the peer's path
    /// if its socket is bound to one (a client's usually is not).
    ///
    /// # Errors
    ///
    /// As [`TcpServer::accept`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TcpServer::accept`].
    pub async fn accept(&self) -> Result<(AsyncIoStream, Option<PathBuf>)> {
        let stream = poll_fn(|cx| self.poll_accept(cx)).await?;
        let path = stream.socket().peer_path();
        Ok((stream, path))
    }

    /// Polls for the next connection; see [`accept`](UnixServer::accept).
    ///
    /// # Errors
    ///
    /// As [`TcpServer::accept`].
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<AsyncIoStream>> {
        let poll = self.poll_accept_socket(cx.waker());
        if poll.is_pending() {
            self.loop_handle().note_wait();
        }
        poll.map_ok(|(socket, _)| AsyncIoStream::new(socket))
    }

    /// The accepted connections as a `Stream`, ending when the server is
    /// closed; see [`TcpServer::incoming`].
    pub fn incoming(&self) -> Incoming {
        Incoming {
            server: Server::Unix(self.clone()),
            done: false,
        }
    }
}

impl GroupServer {
    /// Takes the next connection from any loop of the group (waiting for
    /// one), with the peer's address: [`TcpServer::accept`] over every
    /// listener, each looked at in turn so that no loop's connections
    /// wait behind another's. The stream lives on the loop that accepted
    /// it (`stream.socket().loop_handle()`).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once every listener is closed (by
    /// [`close`](GroupServer::close), or with its loop drained);
    /// [`Error::LoopStopped`] once every loop stopped, one of them
    /// abruptly; [`Error::InvalidInput`] for a server in callback mode.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`TcpServer::accept`].
    ///
    /// # Examples
    ///
    /// One accept loop for the group; each connection served on its own
    /// loop:
    ///
    /// ```
    /// use evstream::{GroupServer, LoopGroup, ServerOptions};
    /// use std::io::{Read, Write};
    ///
    /// let group = LoopGroup::with_loops(2)?;
    /// let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new())?;
    /// let addr = server.local_addr();
    /// group.spawn(async move {
    ///     while let Ok((mut stream, _peer)) = server.accept().await {
    ///         let owner = stream.socket().loop_handle().clone();
    ///         owner.spawn(async move {
    ///             let _ = stream.write_all(b"hello\n").await;
    ///         });
    ///     }
    /// });
    /// let mut client = std::net::TcpStream::connect(addr)?;
    /// let mut hello = [0u8; 6];
    /// client.read_exact(&mut hello)?;
    /// assert_eq!(&hello, b"hello\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn accept(&self) -> Result<(AsyncIoStream, SocketAddr)> {
        let stream = poll_fn(|cx| self.poll_accept(cx)).await?;
        let peer = stream.socket().peer_addr().ok_or(Error::Closed)?;
        Ok((stream, peer))
    }

    /// Polls for the next connection; see [`accept`](GroupServer::accept).
    ///
    /// # Errors
    ///
    /// As [`accept`](GroupServer::accept).
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<Result<AsyncIoStream>> {
        self.poll_accept_socket(cx.waker())
            .map_ok(|(socket, _)| AsyncIoStream::new(socket))
    }

    /// The accepted connections of every loop as a `Stream`, ending once
    /// every listener is closed; see [`TcpServer::incoming`].
    pub fn incoming(&self) -> Incoming {
        Incoming {
            server: Server::Group(self.clone()),
            done: false,
        }
    }
}

#[derive(Clone)]
enum Server {
    Tcp(TcpServer),
    Unix(UnixServer),
    Group(GroupServer),
}

/// The connections a server accepts, as a `futures::Stream` of
/// `Result<AsyncIoStream>`: from [`TcpServer::incoming`],
/// [`UnixServer::incoming`] or [`GroupServer::incoming`]. It ends once the server is closed (after
/// yielding [`Error::LoopStopped`] once, if its loop stopped).
pub struct Incoming {
    server: Server,
    done: bool,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("done", &self.done)
            .finish()
    }
}

impl Stream for Incoming {
    type Item = Result<AsyncIoStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        let poll = match &this.server {
            Server::Tcp(server) => server.poll_accept(cx),
            Server::Unix(server) => server.poll_accept(cx),
            Server::Group(server) => server.poll_accept(cx),
        };
        match poll {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(stream)) => Poll::Ready(Some(Ok(stream))),
            Poll::Ready(Err(Error::Closed)) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(err)) => {
                // Nothing else can come after an error of the server.
                this.done = true;
                Poll::Ready(Some(Err(err)))
            }
        }
    }
}
