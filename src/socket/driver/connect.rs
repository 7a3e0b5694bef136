//! Connecting: resolving, trying each address in turn within the connect
//! timeout, and opening the connection once the kernel says it is up.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::super::conn::{AddrPair, CLOSED, CONNECTED};
use super::super::connect::{connect_tcp, connect_unix, Start};
use super::super::output::WriteState;
use super::Driver;
use crate::error::{Error, TimeoutKind};
use crate::event_loop::{Core, Registration, SourceId};
use crate::sync::lock;

pub(super) const TOKEN_CONNECT: u64 = 3;

pub(super) enum Phase {
    /// Created; starts on the first wake, once it has its id. Out of line:
    /// a `Start` is 72 bytes, and a connection that is open (most of its
    /// life) has no use for them.
    New(Option<Box<Start>>),
    Resolving,
    /// Trying addresses (out of line: a connection does it once).
    Connecting(Box<Attempts>),
    /// Connected, the TLS handshake under way.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Handshaking,
    Open,
    /// FIN sent after a graceful close; waiting for the peer's FIN.
    Lingering,
}

/// The addresses an outgoing connection tries, in order.
pub(super) struct Attempts {
    addrs: Vec<SocketAddr>,
    next: usize,
    last_error: Option<Error>,
}

impl Attempts {
    fn new(addrs: Vec<SocketAddr>) -> Box<Self> {
        Box::new(Attempts {
            addrs,
            next: 0,
            last_error: None,
        })
    }
}

/// Addresses of a new connection that are known without asking the kernel.
struct Known {
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
}

impl Driver {
    pub(super) fn start(&mut self, core: &mut Core, id: SourceId, start: Start) {
        #[cfg(feature = "tls")]
        if let Some(setup) = self.tls_start.take() {
            match super::tls::TlsLayer::new(&setup, self.conn.config.read_chunk_size) {
                Ok(layer) => self.tls = Some(Box::new(layer)),
                Err(err) => return self.fail(err),
            }
        }
        match start {
            Start::Accepted {
                stream,
                peer,
                local,
            } => {
                if self.conn.config.nodelay {
                    // Best effort: a socket that refuses it still works.
                    let _ = stream.set_nodelay(true);
                }
                if let Err(err) = self
                    .conn
                    .config
                    .apply_buffer_sizes(socket2::SockRef::from(&stream))
                {
                    return self.fail(Error::from(err));
                }
                match Registration::new(core.poller(), Arc::new(stream), id.token()) {
                    Ok(registration) => {
                        self.registration = Some(registration);
                        self.open(core, id, Known { peer, local });
                    }
                    Err(err) => self.fail(Error::from(err)),
                }
            }
            Start::Addrs(addrs) => {
                self.arm_connect_timer(core, id);
                self.connect_to(core, id, addrs);
            }
            Start::Resolving => {
                self.arm_connect_timer(core, id);
                self.phase = Phase::Resolving;
            }
            Start::Unix(path) => {
                self.arm_connect_timer(core, id);
                self.phase = Phase::Connecting(Attempts::new(Vec::new()));
                let attempt = connect_unix(&path, &self.conn.config).and_then(|stream| {
                    Registration::new(core.poller(), Arc::new(stream), id.token())
                });
                match attempt {
                    Ok(registration) => self.registration = Some(registration),
                    Err(err) => self.fail(Error::from(err)),
                }
            }
        }
    }

    /// The connect timeout bounds resolution and every attempt; one too
    /// long to represent (`Duration::MAX`) sets no timer.
    fn arm_connect_timer(&mut self, core: &mut Core, id: SourceId) {
        self.connect_timer =
            core.add_timer_after(self.conn.config.connect_timeout, id, TOKEN_CONNECT);
    }

    /// Starts trying `addrs` in order.
    pub(super) fn connect_to(&mut self, core: &mut Core, id: SourceId, addrs: Vec<SocketAddr>) {
        self.phase = Phase::Connecting(Attempts::new(addrs));
        self.try_next_address(core, id);
    }

    /// Starts a non-blocking connect to the next address; fails the
    /// connection with the last error once every address has been tried.
    fn try_next_address(&mut self, core: &mut Core, id: SourceId) {
        self.registration = None;
        loop {
            let Phase::Connecting(attempts) = &mut self.phase else {
                return;
            };
            let Attempts {
                addrs,
                next,
                last_error,
            } = &mut **attempts;
            let Some(&addr) = addrs.get(*next) else {
                let err = last_error.take().unwrap_or(Error::Refused);
                self.fail(err);
                return;
            };
            *next += 1;
            let attempt = connect_tcp(addr, &self.conn.config)
                .and_then(|stream| Registration::new(core.poller(), Arc::new(stream), id.token()));
            match attempt {
                Ok(registration) => {
                    self.registration = Some(registration);
                    return;
                }
                Err(err) => *last_error = Some(Error::from(err)),
            }
        }
    }

    /// Called on readiness while connecting: finishes the attempt or moves
    /// on to the next address.
    pub(super) fn check_connect(&mut self, core: &mut Core, id: SourceId, writable: bool) {
        let Some(registration) = &self.registration else {
            return;
        };
        // The TCP address being tried (none for a Unix socket).
        let peer = match &self.phase {
            Phase::Connecting(attempts) => attempts
                .next
                .checked_sub(1)
                .and_then(|i| attempts.addrs.get(i).copied()),
            _ => None,
        };
        let stream = registration.source();
        let failure = match stream.take_error() {
            Ok(Some(err)) | Err(err) => Some(err),
            // A connecting TCP socket turns writable only once the connect
            // has finished, and a failed one has its error pending: so
            // writable without an error is connected (no `getpeername`).
            Ok(None) if writable && peer.is_some() => None,
            Ok(None) => match stream.check_connected() {
                Ok(()) => None,
                // Not connected yet: a spurious wake-up.
                Err(err) if err.kind() == io::ErrorKind::NotConnected => return,
                Err(err) => Some(err),
            },
        };
        match failure {
            None => self.open(core, id, Known { peer, local: None }),
            Some(err) => {
                if let Phase::Connecting(attempts) = &mut self.phase {
                    attempts.last_error = Some(Error::from(err));
                }
                self.try_next_address(core, id);
            }
        }
    }

    /// The socket is connected: publish it, then open the connection (or
    /// start its TLS handshake, which opens it when it completes).
    fn open(&mut self, core: &mut Core, id: SourceId, known: Known) {
        let Some(registration) = &self.registration else {
            return;
        };
        let stream = registration.source().clone();
        if let Some((local, peer)) = stream.tcp_addrs(known.local, known.peer) {
            let _ = self.conn.addrs.set(AddrPair::new(local, peer));
        }
        if let Some(paths) = stream.unix_paths() {
            let _ = self.conn.cold().unix_paths.set(paths);
        }
        let filtered = {
            let mut out = lock(&self.conn.output);
            out.stream = Some(stream.clone());
            out.filtered
        };
        if !filtered {
            lock(&self.conn.input).direct = Some(stream);
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return self.start_handshake(core, id);
        }
        self.finish_open(core, id);
    }

    /// The connection is established (and its TLS handshake done): writes
    /// go out, `Connected` is reported, and what was queued is sent.
    pub(super) fn finish_open(&mut self, core: &mut Core, id: SourceId) {
        if let Some(timer) = self.connect_timer.take() {
            core.cancel_timer(timer);
        }
        self.conn.set_flag(CONNECTED);
        let wakers = {
            let mut out = lock(&self.conn.output);
            if out.state == WriteState::Connecting {
                out.state = WriteState::Open;
            }
            out.wakers.take()
        };
        // Whoever waits for the connection (a connect future) goes on now.
        wakers.wake_all();
        self.phase = Phase::Open;
        if let Some(timing) = self.timing.as_mut() {
            timing.read.restart(core);
            timing.write.restart(core);
        }
        self.outcome.connected = true;
        // A connection whose lifetime follows its handles, with no callback
        // to hand one out and no handle held (a server with no callbacks at
        // all accepted it): nobody can ever use or close it, so close it.
        let unreachable = !self.callbacks.any() && self.conn.handles.load(Ordering::Acquire) == 0;
        if unreachable {
            self.conn.set_flag(CLOSED);
            self.closing = true;
        }
        if self.closing {
            self.begin_close(core, id);
        } else {
            self.flush(core);
        }
    }

    /// The connect timer fired: fail if the connection is still being set
    /// up.
    pub(super) fn connect_timed_out(&mut self) {
        self.connect_timer = None;
        if matches!(
            self.phase,
            Phase::Resolving | Phase::Connecting(_) | Phase::Handshaking
        ) {
            self.fail(Error::TimedOut(TimeoutKind::Connect));
        }
    }
}
