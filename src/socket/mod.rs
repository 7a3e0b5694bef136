//! One connection: its state, its loop-side driver, and the [`Socket`]
//! handle. This module is the only owner of a connection's state.
//!
//! A connection is split in two halves that never share a lock with user
//! code:
//!
//! * `Conn` (`conn.rs`) is the state every thread sees: the input and
//!   output sides (`input.rs`, `output.rs`; each behind its own mutex, so a
//!   reader and a writer on two threads do not contend), flags, and a word
//!   of *requests* (close, flush, resume…) that other threads set before
//!   waking the loop;
//! * the driver (`driver/`) lives on the loop thread, owns the registration
//!   with the poller, reads and writes the socket, runs the callbacks and
//!   the timers.
//!
//! Layers above (streams, read helpers, codecs, servers, peers) use the
//! crate-visible methods of [`Socket`] and the small types `input.rs`
//! exports ([`Lent`], [`FrameRead`], [`HeldInput`]); none of them sees a
//! field of the connection.

mod callbacks;
mod config;
mod conn;
mod connect;
mod driver;
mod event;
mod handle;
mod input;
mod listener;
mod net;
mod output;
mod protocol;
mod seam;

#[cfg(all(test, evstream_loom))]
mod loom_tests;

pub(crate) use callbacks::Callbacks;
pub(crate) use config::Config;
pub(crate) use connect::{connect, Setup, Spread, Target};
pub use event::Event;
pub use handle::Socket;
pub(crate) use input::{FrameKind, FrameRead, HeldInput, InputEnd, Lent};
pub(crate) use listener::{listen, Gate, ServerHandle};
pub(crate) use net::{NetListener, NetStream};

#[cfg(test)]
mod tests {
    /// What every connection pays, idle: a guard against the state growing
    /// back (docs/performance.md has the bytes per idle connection).
    #[test]
    fn a_connections_state_stays_small() {
        let conn = std::mem::size_of::<super::conn::Conn>();
        let driver = std::mem::size_of::<super::driver::Driver>();
        let tls = if cfg!(feature = "tls") { 16 } else { 0 };
        // 408 bytes in an `Arc` (16 more) is still glibc's 432-byte chunk.
        assert!(conn <= 408, "Conn is {conn} bytes");
        assert!(driver <= 128 + tls, "Driver is {driver} bytes");
        assert_eq!(std::mem::size_of::<super::Socket>(), 8);
    }
}
