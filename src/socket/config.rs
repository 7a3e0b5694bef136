//! Sizes, limits and timeouts of a connection, fixed when it is created.

use std::net::SocketAddr;
use std::time::Duration;

/// The configuration of one connection (shared, copy on write, by every
/// connection made with the same options).
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// `notify_cb` fires only once the input holds at least this much.
    pub(crate) read_low_watermark: usize,
    /// At or above this the loop stops reading the socket.
    pub(crate) read_high_watermark: usize,
    /// `write_cb` fires when the output drains to this or below.
    pub(crate) write_low_watermark: usize,
    /// Streams stop accepting writes at or above this.
    pub(crate) write_high_watermark: usize,
    /// The most one `read` system call asks for.
    pub(crate) read_chunk_size: usize,
    /// Neither buffer may ever hold more than this (bytes a reader holds
    /// out of the input buffer included).
    pub(crate) max_buffer_size: usize,
    pub(crate) nodelay: bool,
    pub(crate) connect_timeout: Duration,
    /// After a graceful close has sent FIN, how long to wait for the peer's
    /// FIN before releasing the socket.
    pub(crate) close_linger: Duration,
    pub(crate) read_timeout: Option<Duration>,
    /// How long one read (a line, a frame) may take in all.
    pub(crate) read_deadline: Option<Duration>,
    pub(crate) write_timeout: Option<Duration>,
    pub(crate) bind: Option<SocketAddr>,
    /// `SO_SNDBUF` and `SO_RCVBUF` (the kernel's own buffers), if set.
    pub(crate) send_buffer_size: Option<usize>,
    pub(crate) recv_buffer_size: Option<usize>,
    /// Reading starts paused (`resume_reading` starts it).
    pub(crate) start_paused: bool,
}

impl Config {
    /// Sets the kernel buffer sizes this configuration asks for on `socket`.
    pub(crate) fn apply_buffer_sizes(&self, socket: socket2::SockRef<'_>) -> std::io::Result<()> {
        if let Some(size) = self.send_buffer_size {
            socket.set_send_buffer_size(size)?;
        }
        if let Some(size) = self.recv_buffer_size {
            socket.set_recv_buffer_size(size)?;
        }
        Ok(())
    }

    /// The input buffer's soft cap: the read high watermark, never above
    /// `max_buffer_size`.
    pub(crate) fn input_limit(&self) -> usize {
        self.read_high_watermark.min(self.max_buffer_size)
    }

    /// The output level at which stream writes wait.
    pub(crate) fn output_limit(&self) -> usize {
        self.write_high_watermark.min(self.max_buffer_size)
    }
}
