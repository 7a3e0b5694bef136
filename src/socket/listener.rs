//! The loop side of a listening socket: accepting connections and handing
//! each to its own driver.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::connect::{accepted, Setup};
use super::NetListener;
use crate::error::{Error, Result};
use crate::event_loop::{Core, LoopHandle, Readiness, Registration, Source, SourceId, Step};

/// After an accept error such as EMFILE, try again after this long: the
/// edge that announced the waiting connections has been consumed.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
const TOKEN_RETRY: u64 = 1;
const UNREGISTERED: u64 = u64::MAX;

/// What every handle to a server shares with its acceptor.
pub(crate) struct ListenerShared {
    handle: LoopHandle,
    /// Set for a TCP server.
    local_addr: Option<SocketAddr>,
    /// Set for a Unix domain socket server.
    local_path: Option<PathBuf>,
    source: AtomicU64,
    closed: AtomicBool,
}

impl ListenerShared {
    /// The address of a TCP server.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The path of a Unix domain socket server.
    pub(crate) fn local_path(&self) -> Option<&Path> {
        self.local_path.as_deref()
    }

    /// The loop the server accepts on.
    pub(crate) fn handle(&self) -> &LoopHandle {
        &self.handle
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Stops accepting and releases the listening socket. Idempotent.
    pub(crate) fn close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            let token = self.source.load(Ordering::SeqCst);
            if token != UNREGISTERED {
                self.handle.wake_source(SourceId::from_token(token));
            }
        }
    }
}

/// Registers `listener` on `handle`'s loop and starts accepting, each
/// accepted connection made from `setup`.
///
/// # Errors
///
/// [`Error::LoopStopped`] if the loop is gone.
pub(crate) fn listen(
    handle: &LoopHandle,
    listener: NetListener,
    local_addr: Option<SocketAddr>,
    local_path: Option<PathBuf>,
    setup: Setup,
) -> Result<Arc<ListenerShared>> {
    let shared = Arc::new(ListenerShared {
        handle: handle.clone(),
        local_addr,
        local_path,
        source: AtomicU64::new(UNREGISTERED),
        closed: AtomicBool::new(false),
    });
    let server = shared.clone();
    handle.call(move |core| {
        let id = core.reserve();
        server.source.store(id.token(), Ordering::SeqCst);
        if server.is_closed() {
            core.unreserve(id);
            return;
        }
        match Registration::new(core.poller(), Arc::new(listener), id.token()) {
            Ok(registration) => core.fill(
                id,
                Box::new(Acceptor {
                    shared: server,
                    registration,
                    setup,
                    retry_pending: false,
                }),
            ),
            Err(err) => {
                log::error!("evstream: cannot register a server socket: {err}");
                server.closed.store(true, Ordering::SeqCst);
                core.unreserve(id);
            }
        }
    })?;
    Ok(shared)
}

/// The loop-side half of a server.
struct Acceptor {
    shared: Arc<ListenerShared>,
    registration: Registration<NetListener>,
    setup: Setup,
    retry_pending: bool,
}

impl Acceptor {
    fn accept_all(&mut self, core: &mut Core, id: SourceId) {
        loop {
            match self.registration.source().accept() {
                Ok((stream, peer)) => {
                    accepted(core, &self.shared, &self.setup, stream, peer);
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(err) => {
                    // Out of descriptors or memory: the waiting connections
                    // stay queued; try again shortly.
                    log::warn!("evstream: accept failed ({err}); retrying in {ACCEPT_RETRY:?}");
                    if !self.retry_pending {
                        self.retry_pending = true;
                        core.add_timer_after(ACCEPT_RETRY, id, TOKEN_RETRY);
                    }
                    return;
                }
            }
        }
    }
}

impl Source for Acceptor {
    fn on_ready(&mut self, core: &mut Core, id: SourceId, ready: Readiness) -> Step {
        if self.shared.is_closed() {
            return Step::Remove;
        }
        if ready.readable {
            self.accept_all(core, id);
        }
        Step::Keep
    }

    fn on_wake(&mut self, core: &mut Core, id: SourceId) -> Step {
        if self.shared.is_closed() {
            return Step::Remove;
        }
        // Connections may have queued before registration.
        self.accept_all(core, id);
        Step::Keep
    }

    fn on_timer(&mut self, core: &mut Core, id: SourceId, token: u64) -> Step {
        if self.shared.is_closed() {
            return Step::Remove;
        }
        if token == TOKEN_RETRY {
            self.retry_pending = false;
            self.accept_all(core, id);
        }
        Step::Keep
    }

    fn abandon(&mut self, reason: Error) {
        log::debug!("evstream: server abandoned: {reason}");
        self.shared.closed.store(true, Ordering::SeqCst);
    }
}
