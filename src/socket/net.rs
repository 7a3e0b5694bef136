//! The two kinds of stream socket a connection can sit on: TCP, and Unix
//! domain sockets (Godot's `StreamPeerUDS`), behind one type so the rest of
//! the connection code is the same for both.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;

/// A connected (or connecting) stream socket.
#[derive(Debug)]
pub(crate) enum NetStream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl NetStream {
    pub(crate) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            NetStream::Tcp(s) => s.take_error(),
            NetStream::Unix(s) => s.take_error(),
        }
    }

    /// `Ok` once connected; `NotConnected` while a connect is in progress.
    pub(crate) fn check_connected(&self) -> io::Result<()> {
        match self {
            NetStream::Tcp(s) => s.peer_addr().map(drop),
            NetStream::Unix(s) => s.peer_addr().map(drop),
        }
    }

    /// (local, peer) for TCP, asking the kernel only for what the caller
    /// does not already know; Unix sockets have no IP addresses.
    pub(crate) fn tcp_addrs(
        &self,
        local: Option<SocketAddr>,
        peer: Option<SocketAddr>,
    ) -> Option<(SocketAddr, SocketAddr)> {
        match self {
            NetStream::Tcp(s) => {
                let local = match local {
                    Some(addr) => addr,
                    None => s.local_addr().ok()?,
                };
                let peer = match peer {
                    Some(addr) => addr,
                    None => s.peer_addr().ok()?,
                };
                Some((local, peer))
            }
            NetStream::Unix(_) => None,
        }
    }

    /// (local, peer) paths for a Unix socket (`None` for unnamed ends).
    pub(crate) fn unix_paths(&self) -> Option<(Option<PathBuf>, Option<PathBuf>)> {
        match self {
            NetStream::Tcp(_) => None,
            NetStream::Unix(s) => {
                let path = |addr: io::Result<std::os::unix::net::SocketAddr>| {
                    addr.ok().and_then(|a| a.as_pathname().map(PathBuf::from))
                };
                Some((path(s.local_addr()), path(s.peer_addr())))
            }
        }
    }

    pub(crate) fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        match self {
            NetStream::Tcp(s) => s.set_nodelay(nodelay),
            // No Nagle on a local socket: nothing to switch.
            NetStream::Unix(_) => Ok(()),
        }
    }

    pub(crate) fn nodelay(&self) -> io::Result<bool> {
        match self {
            NetStream::Tcp(s) => s.nodelay(),
            // A local socket never delays.
            NetStream::Unix(_) => Ok(true),
        }
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            NetStream::Tcp(s) => s.shutdown(how),
            NetStream::Unix(s) => s.shutdown(how),
        }
    }
}

impl AsFd for NetStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            NetStream::Tcp(s) => s.as_fd(),
            NetStream::Unix(s) => s.as_fd(),
        }
    }
}

impl Read for &NetStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match *self {
            NetStream::Tcp(s) => (&*s).read(buf),
            NetStream::Unix(s) => (&*s).read(buf),
        }
    }
}

impl Write for &NetStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match *self {
            NetStream::Tcp(s) => (&*s).write(buf),
            NetStream::Unix(s) => (&*s).write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match *self {
            NetStream::Tcp(s) => (&*s).write_vectored(bufs),
            NetStream::Unix(s) => (&*s).write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A listening socket of either kind.
#[derive(Debug)]
pub(crate) enum NetListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl NetListener {
    /// Accepts a connection, already non-blocking, with the peer's address
    /// when it is TCP.
    pub(crate) fn accept(&self) -> io::Result<(NetStream, Option<SocketAddr>)> {
        match self {
            NetListener::Tcp(l) => accept_tcp(l),
            NetListener::Unix(l) => loop {
                let (stream, _) = l.accept()?;
                // One that cannot be made non-blocking is dropped.
                if stream.set_nonblocking(true).is_ok() {
                    return Ok((NetStream::Unix(stream), None));
                }
            },
        }
    }
}

/// `accept4` with `SOCK_NONBLOCK`: one system call where `accept` and
/// `set_nonblocking` make two, and the peer's address comes with it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn accept_tcp(listener: &TcpListener) -> io::Result<(NetStream, Option<SocketAddr>)> {
    use rustix::net::{acceptfrom_with, SocketFlags};
    let (fd, peer) = acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let peer = peer.and_then(|addr| SocketAddr::try_from(addr).ok());
    Ok((NetStream::Tcp(TcpStream::from(fd)), peer))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn accept_tcp(listener: &TcpListener) -> io::Result<(NetStream, Option<SocketAddr>)> {
    loop {
        let (stream, peer) = listener.accept()?;
        // One that cannot be made non-blocking is dropped.
        if stream.set_nonblocking(true).is_ok() {
            return Ok((NetStream::Tcp(stream), Some(peer)));
        }
    }
}

impl AsFd for NetListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            NetListener::Tcp(l) => l.as_fd(),
            NetListener::Unix(l) => l.as_fd(),
        }
    }
}
