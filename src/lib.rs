//! evstream: buffered, event-driven byte streams in the style of cl-async's
//! TCP streams over libevent bufferevents.
//!
//! (Crate documentation is completed in the model section below.)
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buffer;
mod error;
mod event_loop;
mod socket;
mod stream;
mod tcp;

pub use buffer::{Buffer, Eol};
pub use error::{Direction, Error, Event, Limit, Result, TimeoutKind};
pub use event_loop::{default_loop, EventLoop, LoopHandle, Timer};
pub use socket::Socket;
pub use stream::{AsyncInputStream, AsyncIoStream, AsyncOutputStream, Blocking, ReuniteError};
pub use tcp::{
    tcp_connect, tcp_connect_addr, ServerOptions, TcpOptions, TcpServer, DEFAULT_CLOSE_LINGER,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_BUFFER_SIZE, DEFAULT_READ_CHUNK_SIZE,
    DEFAULT_READ_HIGH_WATERMARK, DEFAULT_WRITE_HIGH_WATERMARK,
};
