//! `Conn`: the state of one connection that every thread shares.
//!
//! Its fields are private to the socket layer. The loop-side driver and the
//! handle's methods (in `input.rs`, `output.rs`, `handle.rs`) are the only
//! code that reads or changes them; layers above use the [`Socket`](super::Socket)
//! API.

use std::any::Any;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::input::Input;
use super::output::{Output, WriteState};
use super::protocol::{Flags, Requests};
use super::{Callbacks, Config};
use crate::error::Result;
use crate::event_loop::{LoopHandle, SourceId};
use crate::sync::lock;

// Requests other threads leave for the loop, in `Conn::requests`.
pub(super) const REQ_FLUSH: u32 = 1 << 0;
pub(super) const REQ_CLOSE: u32 = 1 << 1;
pub(super) const REQ_ABORT: u32 = 1 << 2;
pub(super) const REQ_RESUME: u32 = 1 << 3;
pub(super) const REQ_TIMERS: u32 = 1 << 4;
pub(super) const REQ_WRITE_CB: u32 = 1 << 5;
pub(super) const REQ_SHUTDOWN: u32 = 1 << 6;
/// A write or read made outside the loop (straight to or from the kernel)
/// failed; the error is in `Output::error`: fail the connection with it.
pub(super) const REQ_IO_FAILED: u32 = 1 << 7;
pub(super) const REQ_RESOLVED: u32 = 1 << 8;
/// Something changed what is waiting (output queued, reading paused): arm
/// the idle timers that now apply, without restarting their counts.
pub(super) const REQ_ARM_TIMERS: u32 = 1 << 9;
/// A read began waiting under a read deadline: arm its timer.
pub(super) const REQ_DEADLINE: u32 = 1 << 11;
/// Upgrade the connection to TLS (STARTTLS).
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
pub(super) const REQ_START_TLS: u32 = 1 << 10;

// Flags in `Conn::flags`.
/// The connection is established (TCP or Unix).
pub(super) const CONNECTED: u32 = 1 << 0;
/// `close`/`abort` was called, or the loop released the socket.
pub(super) const CLOSED: u32 = 1 << 1;
/// The application paused reading.
pub(super) const USER_PAUSED: u32 = 1 << 2;
/// False only when the output buffer is empty and the kernel has refused no
/// byte since: the loop then skips its flush (and the output lock) on a
/// writable event. Set under the output lock *before* a direct write's
/// system call, so a writable edge that write causes always finds it set.
pub(super) const OUTPUT_PENDING: u32 = 1 << 3;
/// The loop stopped reading at a limit: a holder that gives bytes back
/// must ask it to look again.
pub(super) const INPUT_SUSPENDED: u32 = 1 << 4;
/// The connection has callbacks, so its lifetime does not follow handles.
pub(super) const EXPLICIT_LIFETIME: u32 = 1 << 5;
/// The connection has a `write_cb`.
pub(super) const HAS_WRITE_CB: u32 = 1 << 6;
/// A write idle timeout is set: queued output must arm it.
pub(super) const HAS_WRITE_TIMEOUT: u32 = 1 << 7;
/// Nothing but the reader needs to see what arrives (no callback, no read
/// timeout or deadline): a copying read on the loop thread may take bytes
/// straight from the socket when none are buffered.
pub(super) const DIRECT_READ: u32 = 1 << 8;
/// One [`HeldInput`](super::input::HeldInput) (a codec's) has claimed
/// [`Conn::solo_held`] and counts its bytes there.
pub(super) const SOLO_HOLDER: u32 = 1 << 9;

const UNREGISTERED: u64 = u64::MAX;

/// Whether reads may go straight from the kernel ([`DIRECT_READ`]): only
/// when no callback and no read timeout or deadline must see every byte
/// arrive through the loop.
pub(super) fn direct_read_allowed(
    has_callbacks: bool,
    read_timeout: Option<Duration>,
    config: &Config,
) -> bool {
    !has_callbacks && read_timeout.is_none() && config.read_deadline.is_none()
}

/// What made the connection: the name it was asked for, or the server
/// that accepted it.
#[derive(Default)]
pub(super) struct Origin {
    /// The host name the connection was asked for, if one was.
    pub(super) host: Option<String>,
    /// The server that accepted it.
    pub(super) listener: Option<Arc<super::listener::ListenerShared>>,
}

/// State most connections never use, allocated the first time one does:
/// an idle connection pays 16 bytes for all of it.
#[derive(Default)]
pub(super) struct Cold {
    /// The host name the connection was asked for, if one was.
    pub(super) host: Option<String>,
    /// (local, peer) paths, once connected over a Unix socket.
    pub(super) unix_paths: OnceLock<(Option<PathBuf>, Option<PathBuf>)>,
    /// Read and write idle timeouts, as `set_timeouts` last set them.
    pub(super) timeouts: Mutex<Option<(Option<Duration>, Option<Duration>)>>,
    /// A name lookup's result, handed from the resolver to the driver.
    pub(super) resolved: Mutex<Option<Result<Vec<SocketAddr>>>>,
    pub(super) user_data: Mutex<Option<Arc<dyn Any + Send + Sync>>>,
    /// Run on the loop thread when the socket is released.
    pub(super) close_callbacks: Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    /// What the TLS handshake negotiated, once it completed.
    #[cfg(feature = "tls")]
    pub(super) tls_info: OnceLock<crate::tls::TlsInfo>,
    /// A STARTTLS upgrade asked for, until the driver takes it.
    #[cfg(feature = "tls")]
    pub(super) tls_upgrade: Mutex<Option<super::driver::TlsStart>>,
}

/// The state of one connection that every thread shares.
pub(crate) struct Conn {
    pub(super) handle: LoopHandle,
    /// Shared by every connection made with the same options.
    pub(super) config: Arc<Config>,
    /// The driver's source id (a token), `UNREGISTERED` until the loop has
    /// it and again once it is released.
    source: AtomicU64,
    requests: Requests,
    flags: Flags,
    /// User handles alive (`Socket`s).
    pub(super) handles: AtomicU32,
    /// Bytes taken out of the input buffer by a reader that has not
    /// consumed them yet (a chunk lent by `poll_fill_buf`, a codec's
    /// incomplete frame): they still count against `max_buffer_size`.
    /// Every holder but the solo one adds and subtracts here.
    pub(super) held: AtomicUsize,
    /// The held bytes of the one holder that claimed [`SOLO_HOLDER`]. Only
    /// that holder writes it, so it updates it with plain stores instead
    /// of an atomic subtraction per frame (a tenth of a line reader's
    /// time); [`Conn::held_total`] adds it to `held`.
    pub(super) solo_held: AtomicU32,
    pub(super) input: Mutex<Input>,
    pub(super) output: Mutex<Output>,
    /// (local, peer), once connected over TCP.
    pub(super) addrs: OnceLock<AddrPair>,
    /// The server that accepted it.
    pub(super) listener: Option<Arc<super::listener::ListenerShared>>,
    cold: OnceLock<Box<Cold>>,
}

impl Conn {
    /// A new connection; `filtered` when a filter (TLS) sits between its
    /// buffers and the socket, so no write may go straight to the kernel.
    pub(super) fn new(
        handle: LoopHandle,
        config: Arc<Config>,
        callbacks: &Callbacks,
        origin: Origin,
        filtered: bool,
    ) -> Arc<Conn> {
        let mut flags = 0;
        if config.write_timeout.is_some() {
            flags |= HAS_WRITE_TIMEOUT;
        }
        if config.start_paused {
            flags |= USER_PAUSED;
        }
        if callbacks.keep_alive() {
            flags |= EXPLICIT_LIFETIME;
        }
        if callbacks.write.is_some() {
            flags |= HAS_WRITE_CB;
        }
        if direct_read_allowed(callbacks.keep_alive(), config.read_timeout, &config) {
            flags |= DIRECT_READ;
        }
        let cold = OnceLock::new();
        if let Some(host) = origin.host {
            let _ = cold.set(Box::new(Cold {
                host: Some(host),
                ..Cold::default()
            }));
        }
        Arc::new(Conn {
            handle,
            source: AtomicU64::new(UNREGISTERED),
            requests: Requests::new(),
            flags: Flags::new(flags),
            handles: AtomicU32::new(0),
            held: AtomicUsize::new(0),
            solo_held: AtomicU32::new(0),
            input: Mutex::new(Input::new()),
            output: Mutex::new(Output::new(WriteState::Connecting, filtered)),
            addrs: OnceLock::new(),
            listener: origin.listener,
            cold,
            config,
        })
    }

    /// The connection's rarely used state, made on first use.
    pub(super) fn cold(&self) -> &Cold {
        self.cold.get_or_init(Default::default)
    }

    /// The rarely used state, if anything has made it.
    pub(super) fn cold_if_any(&self) -> Option<&Cold> {
        self.cold.get().map(|cold| &**cold)
    }

    pub(super) fn flag(&self, flag: u32) -> bool {
        self.flags.get(flag)
    }

    /// Sets `flag`; returns whether it was set before.
    pub(super) fn set_flag(&self, flag: u32) -> bool {
        self.flags.set(flag)
    }

    pub(super) fn clear_flag(&self, flag: u32) {
        self.flags.clear(flag);
    }

    /// The output-pending flag (see [`OUTPUT_PENDING`]).
    pub(super) fn output_pending(&self) -> bool {
        self.flags.get(OUTPUT_PENDING)
    }

    /// Records the driver's id once the loop has it.
    pub(super) fn set_source(&self, id: Option<SourceId>) {
        let token = id.map_or(UNREGISTERED, SourceId::token);
        self.source.store(token, Ordering::Release);
    }

    /// Leaves `bits` for the loop and wakes the driver if nobody has yet.
    pub(super) fn request(&self, bits: u32) {
        if self.requests.add(bits) {
            let token = self.source.load(Ordering::Acquire);
            // Before registration the driver reads the requests itself when
            // the loop first wakes it; after release nobody needs them.
            if token != UNREGISTERED {
                self.handle.wake_source(SourceId::from_token(token));
            }
        }
    }

    /// Takes every pending request (on the loop thread).
    pub(super) fn take_requests(&self) -> u32 {
        self.requests.take()
    }

    /// Hands the result of a name lookup to the driver.
    pub(super) fn set_resolved(&self, result: Result<Vec<SocketAddr>>) {
        *lock(&self.cold().resolved) = Some(result);
        self.request(REQ_RESOLVED);
    }

    /// Every byte readers hold out of the input buffer, not consumed yet.
    pub(super) fn held_total(&self) -> usize {
        self.held.load(Ordering::Acquire) + self.solo_held.load(Ordering::Acquire) as usize
    }

    /// Whether the loop stopped reading at a limit the reader may have
    /// lifted by consuming held bytes: then ask it to look again.
    pub(super) fn release_held(&self, amount: usize) {
        if amount == 0 {
            return;
        }
        self.held.fetch_sub(amount, Ordering::AcqRel);
        self.resume_if_suspended();
    }

    /// Asks a loop that stopped reading at a limit to look again (a reader
    /// consumed held bytes).
    pub(super) fn resume_if_suspended(&self) {
        if self.flag(INPUT_SUSPENDED) {
            self.request(REQ_RESUME);
        }
    }

    /// Claims [`SOLO_HOLDER`] for a new holder: whether it got it.
    pub(super) fn claim_solo_holder(&self) -> bool {
        !self.flags.set(SOLO_HOLDER)
    }

    /// The solo holder is gone (its count is back to 0): the next holder
    /// may claim the slot.
    pub(super) fn release_solo_holder(&self) {
        self.flags.clear(SOLO_HOLDER);
    }
}

/// A TCP connection's (local, peer) addresses, packed: an IPv4 pair, by
/// far the usual case, fits in 12 bytes inline, where a pair of
/// `SocketAddr`s takes 64 on every connection (IPv6 goes out of line).
pub(super) enum AddrPair {
    V4(SocketAddrV4, SocketAddrV4),
    Other(Box<(SocketAddr, SocketAddr)>),
}

impl AddrPair {
    pub(super) fn new(local: SocketAddr, peer: SocketAddr) -> AddrPair {
        match (local, peer) {
            (SocketAddr::V4(local), SocketAddr::V4(peer)) => AddrPair::V4(local, peer),
            _ => AddrPair::Other(Box::new((local, peer))),
        }
    }

    pub(super) fn local(&self) -> SocketAddr {
        match self {
            AddrPair::V4(local, _) => SocketAddr::V4(*local),
            AddrPair::Other(pair) => pair.0,
        }
    }

    pub(super) fn peer(&self) -> SocketAddr {
        match self {
            AddrPair::V4(_, peer) => SocketAddr::V4(*peer),
            AddrPair::Other(pair) => pair.1,
        }
    }
}

/// The error a side of the connection failed with, kept out of line (an
/// `Error` is 48 bytes, and nearly every connection never fails).
#[derive(Default)]
pub(crate) struct Failure(Option<Box<crate::error::Error>>);

impl Failure {
    pub(crate) fn get(&self) -> Option<&crate::error::Error> {
        self.0.as_deref()
    }

    pub(crate) fn cloned(&self) -> Option<crate::error::Error> {
        self.0.as_deref().cloned()
    }

    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Records `err`, unless an earlier failure is recorded.
    pub(crate) fn set(&mut self, err: &crate::error::Error) {
        if self.0.is_none() {
            self.0 = Some(Box::new(err.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AddrPair;
    use std::net::SocketAddr;

    #[test]
    fn an_address_pair_gives_back_what_it_was_given_in_every_family() {
        let forms: [(&str, &str); 3] = [
            ("127.0.0.1:40000", "10.1.2.3:80"),
            ("[::1]:40000", "[fe80::1%2]:443"),
            ("127.0.0.1:1", "[::ffff:127.0.0.1]:2"),
        ];
        for (local, peer) in forms {
            let local: SocketAddr = local.parse().unwrap();
            let peer: SocketAddr = peer.parse().unwrap();
            let pair = AddrPair::new(local, peer);
            assert_eq!((pair.local(), pair.peer()), (local, peer));
            let inline = matches!(pair, AddrPair::V4(..));
            assert_eq!(inline, local.is_ipv4() && peer.is_ipv4());
        }
        // What the packing is for: the IPv4 pair costs no allocation and
        // little room in every connection.
        assert!(std::mem::size_of::<AddrPair>() <= 16);
    }
}
