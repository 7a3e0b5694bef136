//! [`Socket`]: the handle to one connection.

use std::any::Any;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::conn::{
    AddrPair, Conn, CLOSED, CONNECTED, EXPLICIT_LIFETIME, REQ_ABORT, REQ_ARM_TIMERS, REQ_CLOSE,
    REQ_RESUME, REQ_TIMERS, USER_PAUSED,
};
use super::output::WriteState;
use crate::error::{Error, Result};
use crate::event_loop::LoopHandle;
use crate::sync::lock;

impl Conn {
    pub(super) fn close(&self) {
        if !self.set_flag(CLOSED) {
            // Input ends now, not when the loop gets to the request: bytes
            // read after this call are discarded, and readers see the end
            // once the buffered bytes are taken.
            let wakers = {
                let mut input = lock(&self.input);
                input.closed = true;
                input.wakers.take()
            };
            wakers.wake_all();
            self.request(REQ_CLOSE);
        }
    }

    fn abort(&self) {
        self.set_flag(CLOSED);
        self.request(REQ_ABORT);
    }
}

/// A handle to one TCP connection: cl-async's socket, libevent's
/// bufferevent.
///
/// `Socket` is `Send + Sync + Clone`; every clone refers to the same
/// connection. The event loop owns the descriptor and the buffers; the
/// handle queues output, reads buffered input and asks the loop to pause,
/// resume or close.
///
/// # Lifetime
///
/// A connection with callbacks (`read_cb`, `notify_cb`, `write_cb` or
/// `event_cb`) lives until it is closed or fails. One without callbacks is
/// also closed gracefully — queued output is still flushed — when the last
/// handle to it is dropped.
///
/// # Reading in dont-drain mode
///
/// In dont-drain mode the loop leaves received bytes in the input buffer.
/// [`read`](Socket::read) takes them with non-blocking semantics:
/// `Err(WouldBlock)` when nothing is buffered and the connection is open,
/// `Ok(0)` only at the end once every byte has been read. Reading works
/// after EOF, after `close()` and after a failure: bytes already received
/// are never dropped.
pub struct Socket {
    conn: Arc<Conn>,
}

// Every handle is counted, so the last drop can close a connection whose
// lifetime is not explicit.
impl Clone for Socket {
    fn clone(&self) -> Self {
        Socket::from_conn(self.conn.clone())
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let remaining = self.conn.handles.fetch_sub(1, Ordering::AcqRel) - 1;
        if remaining == 0 && !self.conn.flag(EXPLICIT_LIFETIME) {
            self.conn.close();
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("local_addr", &self.local_addr())
            .field("peer_addr", &self.peer_addr())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl PartialEq for Socket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.conn, &other.conn)
    }
}
impl Eq for Socket {}

impl Socket {
    pub(super) fn from_conn(conn: Arc<Conn>) -> Socket {
        if conn.handles.fetch_add(1, Ordering::AcqRel) > u32::MAX / 2 {
            // Two billion handles to one connection: stop well before the
            // count could wrap and close it under its users (what `Arc`
            // does at its limit).
            std::process::abort();
        }
        Socket { conn }
    }

    pub(super) fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// A key that identifies the connection among those alive (it may be
    /// reused once the connection is gone), for layers that keep state per
    /// connection.
    pub(crate) fn key(&self) -> usize {
        Arc::as_ptr(&self.conn) as usize
    }

    /// The connection's `max_buffer_size`.
    pub(crate) fn max_buffer_size(&self) -> usize {
        self.conn.config.max_buffer_size
    }

    /// The loop this connection belongs to.
    pub fn loop_handle(&self) -> &LoopHandle {
        &self.conn.handle
    }

    /// Queues a copy of `data` for sending, in order after earlier writes.
    ///
    /// On an idle connection the bytes go to the kernel at once, from the
    /// calling thread; what the kernel does not take is queued and sent by
    /// the loop. Writes made while the connection is still resolving or
    /// connecting are queued and sent once it is up, never dropped.
    ///
    /// Unlike the stream types, this callback-style call does not apply the
    /// write high watermark: it only refuses to grow the output beyond
    /// `max_buffer_size`.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after `close()`/`abort()` or once the socket is
    /// released, [`Error::WriteClosed`] after [`shutdown_write`](Socket::shutdown_write),
    /// the connection's error if it failed, and [`Error::LimitExceeded`]
    /// (nothing queued) if the output would exceed `max_buffer_size`.
    pub fn write(&self, data: &[u8]) -> Result<()> {
        self.write_all_now(data, None).map(drop)
    }

    /// Queues `data` for sending without copying it.
    ///
    /// # Errors
    ///
    /// As [`write`](Socket::write).
    pub fn write_bytes(&self, data: Bytes) -> Result<()> {
        self.write_all_now(&data, Some(&data)).map(drop)
    }

    /// Queues `data` like [`write`](Socket::write) and returns the offset
    /// in the connection's output at which it ends, for
    /// [`sent`](Socket::sent).
    ///
    /// # Errors
    ///
    /// As [`write`](Socket::write).
    pub fn write_tracked(&self, data: &[u8]) -> Result<u64> {
        self.write_all_now(data, None)
    }

    /// Completes once every byte queued up to `offset` (from
    /// [`write_tracked`](Socket::write_tracked)) has been handed to the
    /// kernel: turbo's `write(data, callback)`.
    ///
    /// # Errors
    ///
    /// The connection's error, or [`Error::Closed`] if it was released
    /// before those bytes went out.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits; the bytes are sent either way.
    pub async fn sent(&self, offset: u64) -> Result<()> {
        std::future::poll_fn(|cx| {
            let poll = self.poll_sent(offset, cx.waker());
            if poll.is_pending() {
                self.loop_handle().note_wait();
            }
            poll
        })
        .await
    }

    /// Closes the connection gracefully: queued output is flushed, then FIN
    /// is sent, then the socket is released. Idempotent.
    ///
    /// Bytes already in the input buffer stay readable; bytes that arrive
    /// after this call are discarded.
    pub fn close(&self) {
        self.conn.close();
    }

    /// Closes the connection at once: queued output is dropped and the peer
    /// gets a reset. Idempotent; also ends a graceful close in progress.
    pub fn abort(&self) {
        self.conn.abort();
    }

    /// Shuts down the write direction once queued output is flushed (FIN),
    /// while reading goes on. Idempotent.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] if the connection is already closed, or its error
    /// if it failed.
    pub fn shutdown_write(&self) -> Result<()> {
        self.conn.shutdown_write()
    }

    /// Stops reading from the socket (cl-async's `disable-socket`). The
    /// peer is pushed back by TCP flow control once the kernel buffer fills.
    /// The read timeout does not count while reading is paused.
    pub fn pause_reading(&self) {
        self.conn.set_flag(USER_PAUSED);
        self.conn.request(REQ_ARM_TIMERS);
    }

    /// Resumes reading after [`pause_reading`](Socket::pause_reading).
    pub fn resume_reading(&self) {
        self.conn.clear_flag(USER_PAUSED);
        self.conn.request(REQ_RESUME);
    }

    /// Whether reading is paused by [`pause_reading`](Socket::pause_reading).
    pub fn is_reading_paused(&self) -> bool {
        self.conn.flag(USER_PAUSED)
    }

    /// Sets the read and write idle timeouts (cl-async's
    /// `set-socket-timeouts`); `None` disables one. Each counts only while
    /// its direction is waiting and restarts on progress.
    pub fn set_timeouts(&self, read: Option<Duration>, write: Option<Duration>) {
        *lock(&self.conn.cold().timeouts) = Some((read, write));
        if write.is_some() {
            self.conn.set_flag(super::conn::HAS_WRITE_TIMEOUT);
        } else {
            self.conn.clear_flag(super::conn::HAS_WRITE_TIMEOUT);
        }
        // A read timeout must see every byte arrive (direct reads bypass
        // the loop's count); without one, reads may go direct again.
        let has_callbacks = self.conn.flag(EXPLICIT_LIFETIME);
        if super::conn::direct_read_allowed(has_callbacks, read, &self.conn.config) {
            self.conn.set_flag(super::conn::DIRECT_READ);
        } else {
            self.conn.clear_flag(super::conn::DIRECT_READ);
        }
        self.conn.request(REQ_TIMERS);
    }

    /// The peer's address, once connected.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.conn.addrs.get().map(AddrPair::peer)
    }

    /// This side's address, once connected.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.conn.addrs.get().map(AddrPair::local)
    }

    /// The host name given to `tcp_connect`, if the connection was made by
    /// name or address string.
    pub fn host(&self) -> Option<&str> {
        self.conn
            .cold_if_any()
            .and_then(|cold| cold.host.as_deref())
    }

    /// Whether `close()` or `abort()` was called or the connection ended
    /// (cl-async's `socket-closed-p`).
    pub fn is_closed(&self) -> bool {
        self.conn.flag(CLOSED)
    }

    /// Whether the connection is established and not closed.
    pub fn is_connected(&self) -> bool {
        !self.is_closed() && self.conn.flag(CONNECTED)
    }

    /// The peer's path, for a connection over a Unix socket bound to one.
    pub fn peer_path(&self) -> Option<PathBuf> {
        self.conn
            .cold_if_any()?
            .unix_paths
            .get()
            .and_then(|(_, peer)| peer.clone())
    }

    /// This side's path, for a connection over a Unix socket bound to one.
    pub fn local_path(&self) -> Option<PathBuf> {
        self.conn
            .cold_if_any()?
            .unix_paths
            .get()
            .and_then(|(local, _)| local.clone())
    }

    /// Attaches typed user data to the connection (cl-async's
    /// `socket-data`), replacing any earlier value.
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) {
        *lock(&self.conn.cold().user_data) = Some(Arc::new(value));
    }

    /// The user data, if some of type `T` is attached.
    pub fn data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let cold = self.conn.cold_if_any()?;
        lock(&cold.user_data)
            .clone()
            .and_then(|data| data.downcast::<T>().ok())
    }

    /// How many received bytes are waiting to be read: those in the input
    /// buffer and those a reader holds without having consumed them yet (a
    /// chunk lent by `poll_fill_buf`, a codec's incomplete frame).
    pub fn input_buffer_len(&self) -> usize {
        let conn = &self.conn;
        lock(&conn.input).buf.len() + conn.held_total()
    }

    /// How many bytes wait in the output buffer for the kernel.
    pub fn output_buffer_len(&self) -> usize {
        lock(&self.conn.output).buf.len()
    }

    /// Takes buffered input into `dst` without blocking.
    ///
    /// # Errors
    ///
    /// `WouldBlock` when nothing is buffered and more may come; the
    /// connection's error (for example `ConnectionReset`) once the buffer is
    /// empty after a failure. `Ok(0)` means the end: EOF or close, with
    /// every byte read.
    pub fn read(&self, dst: &mut [u8]) -> io::Result<usize> {
        match self.poll_read(dst, None) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// Copies buffered input into `dst` without taking it; returns how many
    /// bytes were copied (0 when nothing is buffered).
    pub fn peek(&self, dst: &mut [u8]) -> usize {
        self.peek_input(dst)
    }

    /// Takes up to `max` buffered bytes as one `Bytes`, without copying when
    /// they lie in one received chunk.
    ///
    /// # Errors
    ///
    /// As [`read`](Socket::read); an empty `Bytes` means the end.
    pub fn read_chunk(&self, max: usize) -> io::Result<Bytes> {
        match self.poll_chunk(max, None) {
            std::task::Poll::Ready(result) => result,
            std::task::Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// The error the connection failed with, if it did.
    pub fn error(&self) -> Option<Error> {
        let conn = &self.conn;
        let input_error = lock(&conn.input).error.cloned();
        input_error.or_else(|| lock(&conn.output).error.cloned())
    }

    /// Sets `TCP_NODELAY` on the connected socket (it is on by default).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] when there is no connected socket (not connected
    /// yet, or released), or the operating system's error.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        let stream = lock(&self.conn.output).stream.clone();
        match stream {
            Some(stream) => stream.set_nodelay(nodelay).map_err(Error::from),
            None => Err(Error::Closed),
        }
    }

    /// Whether `TCP_NODELAY` is set on the connected socket (always true
    /// over a Unix domain socket).
    ///
    /// # Errors
    ///
    /// As [`set_nodelay`](Socket::set_nodelay).
    pub fn nodelay(&self) -> Result<bool> {
        let stream = lock(&self.conn.output).stream.clone();
        match stream {
            Some(stream) => stream.nodelay().map_err(Error::from),
            None => Err(Error::Closed),
        }
    }

    /// Whether the connection is over a Unix domain socket (known once
    /// connected).
    pub(crate) fn is_unix(&self) -> bool {
        self.conn
            .cold_if_any()
            .is_some_and(|cold| cold.unix_paths.get().is_some())
    }

    /// Whether the peer has sent FIN.
    pub fn is_eof(&self) -> bool {
        lock(&self.conn.input).eof
    }

    /// Calls `callback` on the loop thread once the connection is released
    /// (turbo's `set_close_callback`). If it already is, the callback runs on
    /// the loop's next turn.
    pub fn on_close(&self, callback: impl FnOnce() + Send + 'static) {
        let conn = &self.conn;
        // Checked under the output lock, which the loop takes to mark the
        // release: the callback is either queued for the release or, if that
        // has happened, scheduled now.
        let out = lock(&conn.output);
        if out.state == WriteState::Closed {
            drop(out);
            conn.handle.delay(Duration::ZERO, callback);
        } else {
            lock(&conn.cold().close_callbacks).push(Box::new(callback));
        }
    }

    /// Completes once the connection is released, whatever the reason.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub async fn closed(&self) {
        std::future::poll_fn(|cx| {
            let poll = self.poll_released(cx.waker());
            if poll.is_pending() {
                self.loop_handle().note_wait();
            }
            poll
        })
        .await
    }

    /// Whether a read is waiting for bytes on this connection: an
    /// IOStream-style read (`read_until`, `read_bytes`…) or a codec
    /// (turbo's `reading()`).
    pub fn reading(&self) -> bool {
        lock(&self.conn.input).readers > 0
    }

    /// Whether output is waiting to be handed to the kernel (turbo's
    /// `writing()`).
    pub fn writing(&self) -> bool {
        !lock(&self.conn.output).buf.is_empty()
    }

    /// What the TLS handshake negotiated (ALPN protocol, SNI name, peer
    /// certificates, version, cipher suite), once it has completed; `None`
    /// for a connection without TLS (feature `tls`).
    #[cfg(feature = "tls")]
    pub fn tls_info(&self) -> Option<crate::tls::TlsInfo> {
        self.conn.cold_if_any()?.tls_info.get().cloned()
    }

    /// Upgrades an established plaintext connection to TLS, as the client
    /// (STARTTLS: SMTP, IMAP, PostgreSQL…); completes once the handshake
    /// has (feature `tls`).
    ///
    /// Call it after your last plaintext write (what was written before
    /// goes out in clear, first) and once the peer has agreed to the
    /// upgrade. Input you have not read yet when the loop upgrades is taken
    /// as the peer's first TLS bytes. Writes made while the handshake runs
    /// are queued and sent encrypted, in order.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] if the connection already has TLS or is not
    /// open; the handshake's failure (`Error::Tls`, and the connection is
    /// closed).
    ///
    /// # Cancel safety
    ///
    /// The upgrade goes on if the future is dropped; only the wait ends.
    #[cfg(feature = "tls")]
    pub async fn start_tls_client(&self, options: crate::tls::TlsClientOptions) -> Result<()> {
        self.start_tls(crate::tls::TlsSetup::Client(options)).await
    }

    /// As [`start_tls_client`](Socket::start_tls_client), as the server.
    ///
    /// A server that must refuse plaintext a client pipelined after its
    /// STARTTLS command (the command-injection problem) checks that
    /// [`input_buffer_len`](Socket::input_buffer_len) is 0 before it
    /// upgrades.
    ///
    /// # Errors
    ///
    /// As [`start_tls_client`](Socket::start_tls_client).
    ///
    /// # Cancel safety
    ///
    /// As [`start_tls_client`](Socket::start_tls_client).
    #[cfg(feature = "tls")]
    pub async fn start_tls_server(
        &self,
        options: impl Into<crate::tls::TlsServerOptions>,
    ) -> Result<()> {
        self.start_tls(crate::tls::TlsSetup::Server(options.into()))
            .await
    }

    #[cfg(feature = "tls")]
    async fn start_tls(&self, setup: crate::tls::TlsSetup) -> Result<()> {
        let conn = &self.conn;
        {
            let mut out = lock(&conn.output);
            if out.filtered || !conn.flag(CONNECTED) || out.state != WriteState::Open {
                return Err(Error::InvalidInput(
                    "STARTTLS needs an open plaintext connection".into(),
                ));
            }
            // From now on every byte goes through the loop, which sends what
            // is queued in clear before it starts TLS.
            out.filtered = true;
        }
        // Every byte read must go through the filter from now on.
        lock(&conn.input).direct = None;
        *lock(&conn.cold().tls_upgrade) = Some(Arc::new(setup));
        conn.request(super::conn::REQ_START_TLS);
        std::future::poll_fn(|cx| {
            let mut out = lock(&conn.output);
            if conn.cold().tls_info.get().is_some() {
                return std::task::Poll::Ready(Ok(()));
            }
            if let Some(err) = out.error.get() {
                return std::task::Poll::Ready(Err(err.clone()));
            }
            if out.state == WriteState::Closed {
                return std::task::Poll::Ready(Err(Error::Closed));
            }
            out.wakers.register(cx.waker());
            std::task::Poll::Pending
        })
        .await
    }

    /// The server that accepted this connection, if one did.
    pub(crate) fn listener(&self) -> Option<&Arc<super::listener::ListenerShared>> {
        self.conn.listener.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone>() {}

    #[test]
    fn socket_is_send_sync_clone() {
        assert_send_sync::<Socket>();
        assert_send_sync::<LoopHandle>();
    }

    /// A connection to a listener on loopback, made on `ev` with `options`.
    fn connect(ev: &mut crate::EventLoop, options: crate::TcpOptions) -> crate::AsyncIoStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = ev.handle();
        let stream = ev
            .block_on(crate::AsyncIoStream::connect_on(&handle, addr, options))
            .expect("block_on")
            .expect("connect_on");
        // The peer's end is not needed: only the flags are looked at.
        drop(listener.accept().unwrap());
        stream
    }

    /// Rule 9 and direct reads: a read timeout counts progress the loop
    /// sees, so while one is set, reads must not go straight from the
    /// kernel; clearing it lets them again, unless a read deadline (which
    /// `set_timeouts` does not touch) or callbacks still forbid them.
    #[test]
    fn set_timeouts_turns_direct_reads_off_and_back_on() {
        use super::super::conn::DIRECT_READ;
        let second = Duration::from_secs(1);
        let mut ev = crate::EventLoop::new().unwrap();

        let plain = connect(&mut ev, crate::TcpOptions::new());
        let conn = &plain.socket().conn;
        assert!(conn.flag(DIRECT_READ), "no timeouts, no callbacks");
        plain.socket().set_timeouts(Some(second), None);
        assert!(!conn.flag(DIRECT_READ), "a read timeout was set");
        plain.socket().set_timeouts(None, Some(second));
        assert!(conn.flag(DIRECT_READ), "only a write timeout is left");
        plain.socket().set_timeouts(Some(Duration::MAX), None);
        assert!(!conn.flag(DIRECT_READ), "a read timeout of Duration::MAX");
        plain.socket().set_timeouts(None, None);
        assert!(conn.flag(DIRECT_READ), "every timeout cleared");

        let timed = connect(&mut ev, crate::TcpOptions::new().read_timeout(second));
        assert!(
            !timed.socket().conn.flag(DIRECT_READ),
            "read timeout option"
        );
        timed.socket().set_timeouts(None, None);
        assert!(timed.socket().conn.flag(DIRECT_READ), "its timeout cleared");

        let deadline = connect(&mut ev, crate::TcpOptions::new().read_deadline(second));
        assert!(!deadline.socket().conn.flag(DIRECT_READ), "read deadline");
        deadline.socket().set_timeouts(None, None);
        assert!(
            !deadline.socket().conn.flag(DIRECT_READ),
            "clearing the timeouts leaves the read deadline in force"
        );
    }
}
