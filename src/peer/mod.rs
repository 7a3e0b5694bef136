//! The peer API: what Godot's `StreamPeer` / `StreamPeerTCP`, the Luna
//! engine's `streamPeerTCP` and TouchDesigner's `Peer` offer, in Rust shape.
//!
//! * [`StreamPeer`]: whole and partial reads and writes, typed values with
//!   an explicit byte order, and Godot-compatible strings — for
//!   [`AsyncIoStream`](crate::AsyncIoStream), [`TcpPeer`] and the in-memory
//!   [`StreamPeerBuffer`];
//! * [`TcpPeer`] and [`TcpPeerServer`]: poll-style connection and server
//!   for game loops that never block and never use callbacks;
//! * [`SocketError`]: the Godot/Luna error code of any [`Error`](crate::Error);
//! * TouchDesigner's calls on every [`Socket`](crate::Socket), through the
//!   [`TouchPeer`] extension trait: `send_bytes`, `send`, `hostname`,
//!   `owner`, `close_peer`, and `send_osc`.
//!
//! `docs/porting.md` maps every call of those systems to evstream's.

mod socket_error;
mod stream_peer;
mod tcp_peer;
mod touch;

pub use socket_error::SocketError;
pub use stream_peer::{f16_bits_to_f32, f32_to_f16_bits, ByteOrder, StreamPeer, StreamPeerBuffer};
pub use tcp_peer::{PeerStatus, TcpPeer, TcpPeerServer, MAX_PENDING_CONNECTIONS};
pub use touch::{SendItem, TouchPeer};
