//! Making connections: outgoing ones (by name, by address, over a Unix
//! socket) and accepted ones, each handed to a new driver on the loop.

mod resolve;
mod sys;

pub(super) use sys::{connect_tcp, connect_unix};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::conn::{Conn, Origin, OUTPUT_PENDING};
use super::driver::{Driver, TlsStart};
use super::listener::ListenerShared;
use super::{Callbacks, Config, NetStream, Socket};
use crate::error::Result;
use crate::event_loop::{Core, LoopHandle};
use crate::sync::lock;

/// Where an outgoing connection goes.
pub(crate) enum Target {
    /// A host name or address text and a port: resolved off the loop thread
    /// unless it is an IP address.
    Host(String, u16),
    /// Addresses, tried in order.
    Addrs(Vec<SocketAddr>),
    /// A Unix domain socket path.
    Unix(PathBuf),
}

/// What a connection is made from: the options of `TcpOptions`.
pub(crate) struct Setup {
    pub(crate) config: Arc<Config>,
    pub(crate) callbacks: Arc<Callbacks>,
    /// Bytes to send once connected (cl-async's `:data`).
    pub(crate) data: Option<Bytes>,
    /// TLS between the socket and the buffers.
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<Arc<crate::tls::TlsSetup>>,
    /// For a server's connections: the loops they are handed to in turn
    /// (a group server with one listener); `None` keeps each on the loop
    /// that accepted it.
    pub(crate) spread: Option<Arc<Spread>>,
}

/// The loops a server hands its accepted connections to, round-robin.
pub(crate) struct Spread {
    loops: Vec<LoopHandle>,
    next: AtomicUsize,
}

impl Spread {
    pub(crate) fn new(loops: Vec<LoopHandle>) -> Spread {
        Spread {
            loops,
            next: AtomicUsize::new(0),
        }
    }

    /// The next loop that is neither stopped nor draining; `None` when
    /// that is `here` (or when no other loop is left).
    fn pick(&self, here: &LoopHandle) -> Option<&LoopHandle> {
        let n = self.loops.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.loops[(start + k) % n])
            .find(|h| !h.is_stopped() && !h.is_draining())
            .filter(|h| *h != here)
    }
}

impl Setup {
    /// The TLS settings, if the connection has TLS.
    #[cfg(feature = "tls")]
    fn tls(&self) -> Option<TlsStart> {
        self.tls.clone()
    }

    #[cfg(not(feature = "tls"))]
    fn tls(&self) -> Option<TlsStart> {
        None
    }
}

/// How a driver starts.
pub(super) enum Start {
    /// Already resolved addresses, tried in order.
    Addrs(Vec<SocketAddr>),
    /// Being resolved off the loop thread; the result arrives through
    /// `Conn::set_resolved`.
    Resolving,
    /// A Unix domain socket path.
    Unix(PathBuf),
    /// Accepted by a server: already connected. The addresses the server
    /// already knows (the peer's from `accept`, its own when it listens on
    /// one address) save asking the kernel.
    Accepted {
        stream: NetStream,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
    },
}

/// Starts an outgoing connection on `handle`'s loop and returns its handle
/// at once; the loop makes the connection.
///
/// # Errors
///
/// [`Error::LoopStopped`](crate::Error::LoopStopped) if the loop is gone.
pub(crate) fn connect(handle: &LoopHandle, setup: Setup, target: Target) -> Result<Socket> {
    let (start, host, lookup) = match target {
        Target::Host(host, port) => match host.parse::<IpAddr>() {
            Ok(ip) => (
                Start::Addrs(vec![SocketAddr::new(ip, port)]),
                Some(host),
                None,
            ),
            Err(_) => (Start::Resolving, Some(host.clone()), Some((host, port))),
        },
        Target::Addrs(addrs) => (Start::Addrs(addrs), None, None),
        Target::Unix(path) => (Start::Unix(path), None, None),
    };
    let origin = Origin {
        host,
        ..Origin::default()
    };
    let tls = setup.tls();
    let conn = Conn::new(
        handle.clone(),
        setup.config,
        &setup.callbacks,
        origin,
        tls.is_some(),
    );
    if let Some(data) = setup.data {
        lock(&conn.output).buf.push(data);
        conn.set_flag(OUTPUT_PENDING);
    }
    // The user's handle must exist before the loop can see the connection:
    // otherwise a handle the loop makes and drops for a callback could be
    // taken for the last one, closing a connection without callbacks.
    let socket = Socket::from_conn(conn.clone());
    let driver_conn = conn.clone();
    let callbacks = setup.callbacks;
    handle.call(move |core| Driver::spawn(core, driver_conn, callbacks, start, tls))?;
    if let Some((host, port)) = lookup {
        resolve::resolve(host, port, conn);
    }
    Ok(socket)
}

/// An accepted connection on its way to another loop's driver.
struct HandOff {
    start: Mutex<Option<Start>>,
    listener: Arc<ListenerShared>,
}

impl Drop for HandOff {
    fn drop(&mut self) {
        // The call that would have started its driver was dropped unrun
        // (its loop stopped): no driver will release the connection's slot
        // of the server's limit, so give it back here.
        let start = self
            .start
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let unstarted = start.is_some();
        if unstarted {
            self.listener.connection_released();
        }
    }
}

/// Hands a connection a server accepted to a new driver (on the loop
/// thread), and returns it: a handle made from it before the driver first
/// runs keeps a connection without callbacks open (accept mode).
pub(super) fn accepted(
    core: &mut Core,
    listener: &Arc<ListenerShared>,
    setup: &Setup,
    stream: NetStream,
    peer: Option<SocketAddr>,
) -> Arc<Conn> {
    let tls = setup.tls();
    let new_conn = |handle: LoopHandle| {
        let origin = Origin {
            listener: Some(listener.clone()),
            ..Origin::default()
        };
        Conn::new(
            handle,
            setup.config.clone(),
            &setup.callbacks,
            origin,
            tls.is_some(),
        )
    };
    // A server on one address is every connection's local address; one on
    // a wildcard address must ask.
    let local = listener
        .local_addr()
        .filter(|addr| !addr.ip().is_unspecified());
    let mut start = Start::Accepted {
        stream,
        peer,
        local,
    };
    let here = core.handle();
    if let Some(target) = setup.spread.as_ref().and_then(|s| s.pick(&here)) {
        // Handed off: the connection lives on `target` from the start (its
        // handle is made here, before its driver runs there).
        let conn = new_conn(target.clone());
        let slot = Arc::new(HandOff {
            start: Mutex::new(Some(start)),
            listener: listener.clone(),
        });
        let (remote, driver_conn) = (slot.clone(), conn.clone());
        let (callbacks, remote_tls) = (setup.callbacks.clone(), setup.tls());
        let posted = target.call(move |core| {
            if let Some(start) = lock(&remote.start).take() {
                Driver::spawn(core, driver_conn, callbacks, start, remote_tls);
            }
        });
        if posted.is_ok() {
            return conn;
        }
        // `target` stopped meanwhile (the call was dropped unrun): keep
        // the connection here.
        start = lock(&slot.start)
            .take()
            .expect("an unrun call leaves the start");
    }
    let conn = new_conn(here);
    Driver::spawn(core, conn.clone(), setup.callbacks.clone(), start, tls);
    conn
}
