//! [`ToSocketAddrs`]: what `connect` and `listen` take, the way std takes
//! addresses, without resolving names on the caller's thread.

use std::future::poll_fn;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::error::{Error, Result};
use crate::sync::lock;

/// Where to connect or listen, as the socket layer takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dest {
    /// A host name (or address text) and a port: names are resolved off
    /// the caller's thread.
    Host(String, u16),
    /// Addresses, tried in order.
    Addrs(Vec<SocketAddr>),
}

mod sealed {
    /// Keeps [`ToSocketAddrs`](super::ToSocketAddrs) closed: only the
    /// types below implement it.
    pub trait Sealed {
        /// The destination, or why the value names none.
        fn dest(&self) -> crate::Result<super::Dest>;
    }
}

/// Addresses the way `std::net::ToSocketAddrs` takes them — `"host:port"`,
/// `"[v6]:port"`, `(host, port)`, `(IpAddr, port)`, a [`SocketAddr`], a
/// slice of them… — for [`AsyncIoStream::connect`](crate::AsyncIoStream::connect)
/// and [`TcpServer::listen`](crate::TcpServer::listen).
///
/// Unlike std's trait, converting never resolves a name on the calling
/// thread (which would block an async task, or the event loop): host names
/// are handed to evstream's resolver pool, off every loop thread, as
/// tokio's `ToSocketAddrs` does. Sealed: implemented for the types std
/// implements it for.
///
/// # Examples
///
/// ```
/// use std::net::{Ipv4Addr, SocketAddr};
/// use evstream::AsyncIoStream;
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let addr: SocketAddr = listener.local_addr()?;
/// let port = addr.port();
/// futures_lite::future::block_on(async {
///     AsyncIoStream::connect(addr).await?;
///     AsyncIoStream::connect(("localhost", port)).await?;
///     AsyncIoStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
///     AsyncIoStream::connect(format!("127.0.0.1:{port}")).await?;
///     AsyncIoStream::connect(&[addr][..]).await?;
///     Ok::<(), evstream::Error>(())
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait ToSocketAddrs: sealed::Sealed + Send + Sync {}

impl<T: sealed::Sealed + Send + Sync + ?Sized> ToSocketAddrs for T {}

impl sealed::Sealed for SocketAddr {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(vec![*self]))
    }
}

impl sealed::Sealed for SocketAddrV4 {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(vec![SocketAddr::V4(*self)]))
    }
}

impl sealed::Sealed for SocketAddrV6 {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(vec![SocketAddr::V6(*self)]))
    }
}

impl sealed::Sealed for (IpAddr, u16) {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(vec![SocketAddr::new(self.0, self.1)]))
    }
}

impl sealed::Sealed for (Ipv4Addr, u16) {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(vec![SocketAddr::new(
            IpAddr::V4(self.0),
            self.1,
        )]))
    }
}

impl sealed::Sealed for (Ipv6Addr, u16) {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(vec![SocketAddr::new(
            IpAddr::V6(self.0),
            self.1,
        )]))
    }
}

impl sealed::Sealed for (&str, u16) {
    fn dest(&self) -> Result<Dest> {
        Ok(host_dest(self.0, self.1))
    }
}

impl sealed::Sealed for (String, u16) {
    fn dest(&self) -> Result<Dest> {
        Ok(host_dest(&self.0, self.1))
    }
}

impl sealed::Sealed for str {
    fn dest(&self) -> Result<Dest> {
        let (host, port) = split_host_port(self)?;
        Ok(host_dest(host, port))
    }
}

impl sealed::Sealed for String {
    fn dest(&self) -> Result<Dest> {
        self.as_str().dest()
    }
}

impl sealed::Sealed for [SocketAddr] {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(self.to_vec()))
    }
}

impl sealed::Sealed for Vec<SocketAddr> {
    fn dest(&self) -> Result<Dest> {
        Ok(Dest::Addrs(self.clone()))
    }
}

impl<T: sealed::Sealed + ?Sized> sealed::Sealed for &T {
    fn dest(&self) -> Result<Dest> {
        (**self).dest()
    }
}

/// The destination `addr` names.
pub(crate) fn dest_of<A: ToSocketAddrs + ?Sized>(addr: &A) -> Result<Dest> {
    match sealed::Sealed::dest(addr)? {
        Dest::Addrs(addrs) if addrs.is_empty() => {
            Err(Error::InvalidInput("no address to connect to".into()))
        }
        dest => Ok(dest),
    }
}

/// A host given as text: kept as text (the connection reports it as its
/// `host()`); the socket layer takes an IP address text as it is and
/// resolves anything else off the caller's thread.
fn host_dest(host: &str, port: u16) -> Dest {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Dest::Host(bare.to_string(), port)
}

impl Dest {
    /// The addresses, if the destination names no host to resolve (an IP
    /// address text counts as an address).
    pub(crate) fn addrs(&self) -> Option<Vec<SocketAddr>> {
        match self {
            Dest::Addrs(addrs) => Some(addrs.clone()),
            Dest::Host(host, port) => host
                .parse::<IpAddr>()
                .ok()
                .map(|ip| vec![SocketAddr::new(ip, *port)]),
        }
    }
}

/// Splits `"host:port"` or `"[v6]:port"`.
fn split_host_port(addr: &str) -> Result<(&str, u16)> {
    let invalid = || Error::InvalidInput(format!("{addr:?} is not host:port"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse().map_err(|_| invalid())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host, port))
}

/// The addresses of `dest`: at once when it names addresses, else resolved
/// on a short-lived thread of its own (for binding a server by name;
/// connections use the socket layer's resolver pool). Never blocks the
/// caller.
pub(crate) async fn resolve_dest(dest: Dest) -> Result<Vec<SocketAddr>> {
    if let Some(addrs) = dest.addrs() {
        return Ok(addrs);
    }
    let Dest::Host(host, port) = dest else {
        unreachable!("addresses are handled above")
    };
    resolve_off_thread(host, port).await
}

async fn resolve_off_thread(host: String, port: u16) -> Result<Vec<SocketAddr>> {
    type Slot = (Option<Result<Vec<SocketAddr>>>, Option<Waker>);
    let slot: Arc<Mutex<Slot>> = Arc::default();
    let worker = slot.clone();
    let name = host.clone();
    std::thread::Builder::new()
        .name("evstream-resolve-bind".into())
        .spawn(move || {
            let result = std::net::ToSocketAddrs::to_socket_addrs(&(name.as_str(), port))
                .map(Vec::from_iter)
                .map_err(|err| Error::Resolve {
                    host: name.clone(),
                    reason: err.to_string(),
                })
                .and_then(|addrs| {
                    if addrs.is_empty() {
                        Err(Error::Resolve {
                            host: name,
                            reason: "no addresses".into(),
                        })
                    } else {
                        Ok(addrs)
                    }
                });
            let waker = {
                let mut slot = lock(&worker);
                slot.0 = Some(result);
                slot.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        })
        .map_err(Error::from)?;
    poll_fn(|cx| {
        let mut slot = lock(&slot);
        match slot.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_std_form_names_its_destination() {
        let v4: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let addrs = |a: &[SocketAddr]| Dest::Addrs(a.to_vec());
        let host = |h: &str, p: u16| Dest::Host(h.into(), p);
        assert_eq!(dest_of(&v4).unwrap(), addrs(&[v4]));
        assert_eq!(dest_of("127.0.0.1:80").unwrap(), host("127.0.0.1", 80));
        assert_eq!(dest_of("[::1]:8080").unwrap(), host("::1", 8080));
        assert_eq!(dest_of("[::1]:8080").unwrap().addrs(), Some(vec![v6]));
        assert_eq!(
            dest_of(&String::from("[::1]:8080")).unwrap(),
            host("::1", 8080)
        );
        assert_eq!(dest_of(&("127.0.0.1", 80)).unwrap().addrs(), Some(vec![v4]));
        assert_eq!(dest_of(&("::1", 8080)).unwrap().addrs(), Some(vec![v6]));
        assert_eq!(dest_of(&(Ipv4Addr::LOCALHOST, 80)).unwrap(), addrs(&[v4]));
        assert_eq!(dest_of(&(v6.ip(), 8080)).unwrap(), addrs(&[v6]));
        assert_eq!(dest_of(&[v4, v6][..]).unwrap(), addrs(&[v4, v6]));
        assert_eq!(dest_of(&vec![v6]).unwrap(), addrs(&[v6]));
        assert_eq!(dest_of("localhost:80").unwrap(), host("localhost", 80));
        assert_eq!(dest_of("localhost:80").unwrap().addrs(), None);
        assert_eq!(
            dest_of(&("example.test".to_string(), 1)).unwrap(),
            Dest::Host("example.test".into(), 1)
        );
    }

    #[test]
    fn what_names_no_destination_is_refused() {
        for bad in ["nohost", "host:notaport", ":80", "host:99999"] {
            assert!(
                matches!(dest_of(bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
        let none: &[SocketAddr] = &[];
        assert!(matches!(dest_of(none), Err(Error::InvalidInput(_))));
    }
}
