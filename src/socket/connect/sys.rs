//! Non-blocking sockets that start connecting.

use std::io;
use std::net::SocketAddr;
use std::path::Path;

use super::super::{Config, NetStream};

/// Creates a non-blocking socket and starts connecting it to `addr`.
pub(in crate::socket) fn connect_tcp(addr: SocketAddr, config: &Config) -> io::Result<NetStream> {
    use socket2::{Domain, Protocol, Type};
    let socket = new_nonblocking_socket(Domain::for_address(addr), Type::STREAM, Protocol::TCP)?;
    if config.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    // Before connecting: the receive buffer sets the window scale offered.
    config.apply_buffer_sizes(socket2::SockRef::from(&socket))?;
    if let Some(bind) = config.bind {
        socket.bind(&bind.into())?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(err) if in_progress(&err) => {}
        Err(err) => return Err(err),
    }
    Ok(NetStream::Tcp(socket.into()))
}

/// Creates a non-blocking Unix domain socket and starts connecting it.
pub(in crate::socket) fn connect_unix(path: &Path, config: &Config) -> io::Result<NetStream> {
    use socket2::{Domain, SockAddr, Type};
    let socket = socket2::Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    config.apply_buffer_sizes(socket2::SockRef::from(&socket))?;
    match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => {}
        // A full backlog: the connect completes when the server accepts.
        Err(err) if in_progress(&err) => {}
        Err(err) => return Err(err),
    }
    Ok(NetStream::Unix(std::os::unix::net::UnixStream::from(
        std::os::fd::OwnedFd::from(socket),
    )))
}

fn in_progress(err: &io::Error) -> bool {
    err.raw_os_error() == Some(libc::EINPROGRESS) || err.kind() == io::ErrorKind::WouldBlock
}

/// A socket that is non-blocking from the start (`SOCK_NONBLOCK`: one
/// system call, where setting the flag afterwards takes two more).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn new_nonblocking_socket(
    domain: socket2::Domain,
    kind: socket2::Type,
    protocol: socket2::Protocol,
) -> io::Result<socket2::Socket> {
    socket2::Socket::new(domain, kind.nonblocking(), Some(protocol))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn new_nonblocking_socket(
    domain: socket2::Domain,
    kind: socket2::Type,
    protocol: socket2::Protocol,
) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(domain, kind, Some(protocol))?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}
