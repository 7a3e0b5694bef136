//! Per-connection options: callbacks, modes, watermarks, limits, timeouts.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::socket::{Callbacks, Config, Event, Setup, Socket};

/// Default read high watermark: the most a connection buffers for a reader
/// that does not keep up.
pub const DEFAULT_READ_HIGH_WATERMARK: usize = 1024 * 1024;
/// Default write high watermark, where streams start to push back.
pub const DEFAULT_WRITE_HIGH_WATERMARK: usize = 1024 * 1024;
/// Default upper bound of one `read` system call.
pub const DEFAULT_READ_CHUNK_SIZE: usize = 128 * 1024;
/// Default cap on either buffer (turbo.lua's `max_buffer_size`, 100 MiB).
pub const DEFAULT_MAX_BUFFER_SIZE: usize = 100 * 1024 * 1024;
/// Default bound on connection setup.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait for the peer's FIN after a graceful close sent ours.
pub const DEFAULT_CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Options for one connection made with [`tcp_connect`](crate::tcp_connect),
/// or for every connection a [`TcpServer`](crate::TcpServer) accepts.
///
/// A builder: every method takes and returns `self`. Callbacks run on the
/// loop thread. A server shares one set of callbacks between all its
/// connections (and a loop group between its loops), which is why they are
/// `Fn + Send + Sync` and why the options are `Clone`: calling one takes no
/// lock, so connections never wait for each other's callbacks. Keep
/// per-connection state in the socket's [user data](Socket::set_data), and
/// shared state behind your own `Mutex` or atomics.
///
/// # Modes
///
/// * **Drain** — set [`read_cb`](TcpOptions::read_cb): the loop empties the
///   input buffer and hands the new bytes to it.
/// * **Dont-drain** — set [`notify_cb`](TcpOptions::notify_cb) or
///   [`dont_drain(true)`](TcpOptions::dont_drain): bytes stay in the input
///   buffer, the callback only signals that some are ready, and the
///   application reads them (from the [`Socket`] or a stream) when it likes.
///   A connection with no read callback at all keeps its bytes too.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evstream::TcpOptions;
///
/// let options = TcpOptions::new()
///     .read_cb(|socket, data| println!("{} bytes from {:?}", data.len(), socket.peer_addr()))
///     .event_cb(|_, event| println!("event: {event:?}"))
///     .read_timeout(Duration::from_secs(5))
///     .data(&b"GET / HTTP/1.0\r\n\r\n"[..]);
/// # let _ = options;
/// ```
#[derive(Clone)]
pub struct TcpOptions {
    // Both shared, copied on write: every connection of a server, and every
    // connection made with default options, points at one copy instead of
    // carrying its own (and a connect future stays small).
    pub(crate) callbacks: Arc<Callbacks>,
    pub(crate) config: Arc<Config>,
    /// Only checked against the callbacks: with a valid set, the mode
    /// follows from whether there is a `read_cb`.
    dont_drain: bool,
    pub(crate) data: Option<Bytes>,
    /// TLS between the socket and the buffers.
    #[cfg(feature = "tls")]
    tls: Option<Arc<crate::tls::TlsSetup>>,
}

/// The options every `TcpOptions::new()` starts from, shared.
static DEFAULTS: LazyLock<(Arc<Callbacks>, Arc<Config>)> = LazyLock::new(|| {
    let config = Config {
        read_low_watermark: 0,
        read_high_watermark: DEFAULT_READ_HIGH_WATERMARK,
        write_low_watermark: 0,
        write_high_watermark: DEFAULT_WRITE_HIGH_WATERMARK,
        read_chunk_size: DEFAULT_READ_CHUNK_SIZE,
        max_buffer_size: DEFAULT_MAX_BUFFER_SIZE,
        nodelay: true,
        connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        close_linger: DEFAULT_CLOSE_LINGER,
        read_timeout: None,
        read_deadline: None,
        write_timeout: None,
        bind: None,
        send_buffer_size: None,
        recv_buffer_size: None,
        start_paused: false,
    };
    (Arc::new(Callbacks::default()), Arc::new(config))
});

impl fmt::Debug for TcpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpOptions")
            .field("config", &self.config)
            .field("dont_drain", &self.dont_drain)
            .field("read_cb", &self.callbacks.read.is_some())
            .field("notify_cb", &self.callbacks.notify.is_some())
            .field("write_cb", &self.callbacks.write.is_some())
            .field("event_cb", &self.callbacks.event.is_some())
            .field("connect_cb", &self.callbacks.connect.is_some())
            .field("data", &self.data.as_ref().map(Bytes::len))
            .finish()
    }
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions::new()
    }
}

impl TcpOptions {
    /// Options with the defaults: drain mode without callbacks (so bytes
    /// stay buffered), `TCP_NODELAY` on, no idle timeouts, a 30 s connect
    /// timeout, 1 MiB read and write high watermarks, 100 MiB buffer cap.
    pub fn new() -> Self {
        let (callbacks, config) = &*DEFAULTS;
        TcpOptions {
            callbacks: callbacks.clone(),
            config: config.clone(),
            dont_drain: false,
            data: None,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    fn callbacks_mut(&mut self) -> &mut Callbacks {
        Arc::make_mut(&mut self.callbacks)
    }

    fn config_mut(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Drain mode: `callback(socket, bytes)` receives every chunk of new
    /// bytes, once per readiness event (more than one call only when one
    /// event brings more than a read block holds).
    pub fn read_cb(mut self, callback: impl Fn(&Socket, Bytes) + Send + Sync + 'static) -> Self {
        self.callbacks_mut().read = Some(Arc::new(callback));
        self
    }

    /// Dont-drain mode: `callback(socket)` runs after a loop turn in which
    /// new bytes were appended to the input buffer (and it holds at least
    /// the read low watermark). The bytes stay there until read. It runs
    /// again on the next turn while it keeps taking bytes and leaves some,
    /// and once at EOF, so a reader sees the end (`read` then gives the
    /// rest, then `Ok(0)`).
    pub fn notify_cb(mut self, callback: impl Fn(&Socket) + Send + Sync + 'static) -> Self {
        self.callbacks_mut().notify = Some(Arc::new(callback));
        self.dont_drain = true;
        self
    }

    /// `callback(socket)` runs when the output buffer drains to the write
    /// low watermark (0 by default), i.e. when what was written has been
    /// handed to the kernel.
    pub fn write_cb(mut self, callback: impl Fn(&Socket) + Send + Sync + 'static) -> Self {
        self.callbacks_mut().write = Some(Arc::new(callback));
        self
    }

    /// `callback(socket, event)` receives [`Event`]s: connected, EOF,
    /// timeouts, errors and the final `Closed`.
    pub fn event_cb(mut self, callback: impl Fn(&Socket, Event) + Send + Sync + 'static) -> Self {
        self.callbacks_mut().event = Some(Arc::new(callback));
        self
    }

    /// `callback(socket)` runs once the connection is established (for a
    /// server: once per accepted connection).
    pub fn connect_cb(mut self, callback: impl Fn(&Socket) + Send + Sync + 'static) -> Self {
        self.callbacks_mut().connect = Some(Arc::new(callback));
        self
    }

    /// Bytes to send as soon as the connection is up (cl-async's `:data`).
    pub fn data(mut self, data: impl Into<Bytes>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// Keep received bytes in the input buffer (cl-async's
    /// `:dont-drain-read-buffer`). Connecting with this and a
    /// [`read_cb`](TcpOptions::read_cb), in either order, is an error
    /// ([`Error::InvalidInput`]): use [`notify_cb`](TcpOptions::notify_cb).
    pub fn dont_drain(mut self, dont_drain: bool) -> Self {
        self.dont_drain = dont_drain;
        self
    }

    /// TLS for an outgoing connection (feature `tls`): the handshake runs
    /// once the socket is connected, within the connect timeout, and the
    /// connection counts as connected (`Event::Connected`, `connect().await`)
    /// only once it completes. Everything else — callbacks, streams,
    /// codecs, watermarks — works on the plaintext as without TLS.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Arc;
    /// use evstream::tls::rustls;
    /// use evstream::{TcpOptions, TlsClientOptions};
    ///
    /// let config = rustls::ClientConfig::builder()
    ///     .with_root_certificates(rustls::RootCertStore::empty())
    ///     .with_no_client_auth();
    /// let options = TcpOptions::new().tls(TlsClientOptions::new(Arc::new(config), "example.com")?);
    /// # let _ = options;
    /// # Ok::<(), evstream::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, options: crate::tls::TlsClientOptions) -> Self {
        self.tls = Some(Arc::new(crate::tls::TlsSetup::Client(options)));
        self
    }

    /// TLS for accepted connections (what [`ServerOptions::tls`](crate::ServerOptions::tls) sets).
    #[cfg(feature = "tls")]
    pub(crate) fn tls_server(mut self, options: crate::tls::TlsServerOptions) -> Self {
        self.tls = Some(Arc::new(crate::tls::TlsSetup::Server(options)));
        self
    }

    /// Stream mode: dont-drain, so the bytes wait in the input buffer for a
    /// stream to read them (cl-async's `:stream t`).
    pub fn stream(self, on: bool) -> Self {
        self.dont_drain(on)
    }

    /// Idle read timeout: reported when no byte arrives for this long while
    /// the loop is waiting for some.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().read_timeout = Some(timeout);
        self
    }

    /// Total deadline of one read: an IOStream-style read or a frame of a
    /// codec that is not complete this long after it began waiting fails
    /// with [`Error::TimedOut`](crate::Error::TimedOut)
    /// ([`TimeoutKind::ReadDeadline`](crate::TimeoutKind::ReadDeadline)),
    /// however steadily bytes trickle in — the idle read timeout restarts
    /// on every byte, so a peer dripping one byte every few milliseconds
    /// (slowloris) would hold the connection for ever. nginx's
    /// `client_header_timeout`. `Duration::MAX` means no deadline.
    ///
    /// It bounds every read helper of the streams: `read_until_delimiter`,
    /// `read_until_excluding`, `read_until_match`, `read_until_regex`,
    /// `read_bytes`, `read_until_close`, the streaming reads
    /// (`read_bytes_streaming`, `read_until_close_streaming`: the whole
    /// read, not each chunk, so set it above what a whole transfer takes)
    /// and their `_cb` forms; and each frame of `Framed`, `FramedRead` and
    /// `on_frame`. Each read gets a deadline of its own: a read that
    /// starts after another one ended or gave up (a codec handing the
    /// stream back with `into_inner`, say) does not inherit what was left
    /// of the earlier one's.
    ///
    /// It does not apply to the byte-stream reads (`Read::read`,
    /// `AsyncRead::poll_read`, `AsyncBufRead::poll_fill_buf`, and what is
    /// built on them, such as `read_exact`): each of those completes with
    /// whatever has arrived, so a dripping peer makes every one of them
    /// progress, and the library cannot tell where a consumer's message
    /// ends. Bound those with the idle read timeout, or with
    /// [`time::timeout`](crate::time::timeout) around the whole consumer
    /// (`read_exact`, a parser).
    pub fn read_deadline(mut self, deadline: Duration) -> Self {
        self.config_mut().read_deadline = Some(deadline);
        self
    }

    /// Idle write timeout: reported when queued output makes no progress
    /// for this long.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().write_timeout = Some(timeout);
        self
    }

    /// Bound on resolution plus every connect attempt (default 30 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config_mut().connect_timeout = timeout;
        self
    }

    /// Read watermarks: `notify_cb` waits for `low` buffered bytes; at
    /// `high` the loop stops reading the socket until the application has
    /// drained the buffer to half of `high`.
    pub fn read_watermarks(mut self, low: usize, high: usize) -> Self {
        let config = self.config_mut();
        config.read_low_watermark = low;
        config.read_high_watermark = high;
        self
    }

    /// Write watermarks: `write_cb` fires when the output drains to `low`;
    /// streams refuse writes (`WouldBlock` / `Pending`) at `high`.
    pub fn write_watermarks(mut self, low: usize, high: usize) -> Self {
        let config = self.config_mut();
        config.write_low_watermark = low;
        config.write_high_watermark = high;
        self
    }

    /// The most one `read` system call asks for (default 128 KiB). Read
    /// blocks grow to this size only on connections that fill them.
    pub fn read_chunk_size(mut self, size: usize) -> Self {
        self.config_mut().read_chunk_size = size;
        self
    }

    /// Cap on either buffer (default 100 MiB): a write that would grow the
    /// output past it fails with `LimitExceeded`; the input never grows
    /// past it.
    pub fn max_buffer_size(mut self, size: usize) -> Self {
        self.config_mut().max_buffer_size = size;
        self
    }

    /// `TCP_NODELAY` (on by default).
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.config_mut().nodelay = nodelay;
        self
    }

    /// Source address for outgoing connections.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.config_mut().bind = Some(addr);
        self
    }

    /// The kernel's send buffer for the socket (`SO_SNDBUF`; the kernel
    /// may round it, Linux doubles it). A small one makes backpressure
    /// (the write high watermark, `write_cb`) start before the kernel has
    /// absorbed megabytes. At least 1.
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.config_mut().send_buffer_size = Some(bytes);
        self
    }

    /// The kernel's receive buffer for the socket (`SO_RCVBUF`), set before
    /// connecting so it also bounds the TCP window offered. At least 1.
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.config_mut().recv_buffer_size = Some(bytes);
        self
    }

    /// Starts the connection with reading paused, so the application can
    /// set up its state before the first byte is read; it reads nothing
    /// (and the peer is pushed back) until
    /// [`Socket::resume_reading`](crate::Socket::resume_reading).
    pub fn start_paused(mut self, paused: bool) -> Self {
        self.config_mut().start_paused = paused;
        self
    }

    /// After a graceful close has sent FIN, how long to keep reading (and
    /// discarding) while waiting for the peer's FIN before releasing the
    /// socket (default 2 s). Releasing a socket with unread input would
    /// make the kernel reset the connection and drop output still in
    /// flight.
    pub fn close_linger(mut self, linger: Duration) -> Self {
        self.config_mut().close_linger = linger;
        self
    }

    /// What a connection is made from, once the options are validated.
    pub(crate) fn into_setup(self) -> Result<Setup> {
        self.validate()?;
        Ok(Setup {
            config: self.config,
            callbacks: self.callbacks,
            data: self.data,
            #[cfg(feature = "tls")]
            tls: self.tls,
            spread: None,
        })
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let c = &self.config;
        let invalid = |message: &str| Err(Error::InvalidInput(message.to_string()));
        if self.dont_drain && self.callbacks.read.is_some() {
            return invalid("read_cb receives drained bytes; in dont-drain mode use notify_cb");
        }
        if !self.dont_drain && self.callbacks.notify.is_some() {
            return invalid("notify_cb needs dont-drain mode (dont_drain(false) was set after it)");
        }
        if c.read_chunk_size == 0 {
            return invalid("read_chunk_size must be at least 1");
        }
        if c.read_high_watermark == 0 || c.max_buffer_size == 0 {
            return invalid("read high watermark and max_buffer_size must be at least 1");
        }
        if c.read_low_watermark > c.read_high_watermark {
            return invalid("read low watermark is above the high watermark");
        }
        if c.write_high_watermark == 0 {
            // Streams would wait for room for ever.
            return invalid("write high watermark must be at least 1");
        }
        if c.write_low_watermark > c.write_high_watermark {
            return invalid("write low watermark is above the high watermark");
        }
        if c.send_buffer_size == Some(0) || c.recv_buffer_size == Some(0) {
            return invalid("socket buffer sizes must be at least 1");
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            tls.validate()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_options_share_one_copy_until_changed() {
        let a = TcpOptions::new();
        let b = TcpOptions::new();
        assert!(Arc::ptr_eq(&a.config, &b.config));
        assert!(Arc::ptr_eq(&a.callbacks, &b.callbacks));

        let changed = b
            .clone()
            .read_timeout(Duration::from_secs(3))
            .event_cb(|_, _| {});
        assert_eq!(changed.config.read_timeout, Some(Duration::from_secs(3)));
        assert!(changed.callbacks.event.is_some());
        // Copy on write: the originals (and the shared defaults) are untouched.
        assert_eq!(b.config.read_timeout, None);
        assert!(b.callbacks.event.is_none());
        assert_eq!(TcpOptions::new().config.read_timeout, None);
        assert!(TcpOptions::new().callbacks.event.is_none());
    }

    #[test]
    fn dont_drain_with_read_cb_is_still_rejected() {
        let options = TcpOptions::new().read_cb(|_, _| {}).dont_drain(true);
        assert!(matches!(options.validate(), Err(Error::InvalidInput(_))));
        let options = TcpOptions::new().notify_cb(|_| {}).dont_drain(false);
        assert!(matches!(options.validate(), Err(Error::InvalidInput(_))));
        assert!(TcpOptions::new().notify_cb(|_| {}).validate().is_ok());
    }
}
