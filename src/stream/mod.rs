//! The stream types: cl-async's `async-input-stream`, `async-output-stream`
//! and `async-io-stream`, over a connection whose input buffer the loop
//! leaves undrained.
//!
//! All three are one generic type, [`EvStream`], whose [mode](mode) says
//! which directions it may use: [`AsyncIoStream`] = `EvStream<Duplex>`,
//! [`AsyncInputStream`] = `EvStream<ReadOnly>`, [`AsyncOutputStream`] =
//! `EvStream<WriteOnly>`. Each method is written once, for the modes that
//! can read (`io.rs`, `read.rs`) or write (`io.rs`, `write.rs`).
//!
//! A stream is a view of a [`Socket`]: the bytes live in the connection's
//! buffers, not in the stream, so splitting, reuniting, or reading the same
//! connection from a callback, a futures task and a blocking thread never
//! loses, duplicates or reorders a byte. The one thing a stream holds is
//! the chunk that [`AsyncBufRead::poll_fill_buf`](futures_lite::io::AsyncBufRead::poll_fill_buf)
//! lent out (so it can be read without copying); it still counts as
//! buffered input, and a stream dropped before consuming it puts the rest
//! back at the front of the input buffer.

mod async_methods;
mod blocking;
mod connect;
mod io;
mod read;
mod server;
#[cfg(feature = "tls")]
mod tls;
#[cfg(feature = "tokio")]
mod tokio_io;
mod write;

pub use blocking::{Blocking, StreamSocket};
pub use connect::StreamOptions;
pub(crate) use read::poll_match;
pub use read::LimitPolicy;
pub use server::Incoming;

use std::fmt;
use std::marker::PhantomData;

use crate::socket::{Lent, Socket};

/// The modes of an [`EvStream`]: which directions of the connection it
/// may use.
pub mod mode {
    mod sealed {
        pub trait Sealed {}
    }

    /// A stream mode (sealed: the three below are all there is).
    pub trait Mode: sealed::Sealed + Send + Sync + Unpin + 'static {
        /// Whether dropping a stream of this mode shuts down the write
        /// side (FIN): true for the owned write half,
        /// [`AsyncOutputStream`](crate::AsyncOutputStream), as for tokio's
        /// `OwnedWriteHalf`.
        const SHUTDOWN_ON_DROP: bool;
    }
    /// A mode that may read.
    pub trait Readable: Mode {}
    /// A mode that may write.
    pub trait Writable: Mode {}

    /// Both directions: [`AsyncIoStream`](crate::AsyncIoStream).
    #[derive(Debug)]
    pub enum Duplex {}
    /// The read side only: [`AsyncInputStream`](crate::AsyncInputStream).
    #[derive(Debug)]
    pub enum ReadOnly {}
    /// The write side only: [`AsyncOutputStream`](crate::AsyncOutputStream).
    #[derive(Debug)]
    pub enum WriteOnly {}

    impl sealed::Sealed for Duplex {}
    impl sealed::Sealed for ReadOnly {}
    impl sealed::Sealed for WriteOnly {}
    impl Mode for Duplex {
        const SHUTDOWN_ON_DROP: bool = false;
    }
    impl Mode for ReadOnly {
        const SHUTDOWN_ON_DROP: bool = false;
    }
    impl Mode for WriteOnly {
        const SHUTDOWN_ON_DROP: bool = true;
    }
    impl Readable for Duplex {}
    impl Readable for ReadOnly {}
    impl Writable for Duplex {}
    impl Writable for WriteOnly {}
}

use mode::{Duplex, Mode, ReadOnly, WriteOnly};

/// A byte stream over one connection's buffers, in one of three
/// [modes](mode); use it through its three names:
///
/// * [`AsyncIoStream`] (both sides, cl-async's `async-io-stream`),
/// * [`AsyncInputStream`] (the read side, `async-input-stream`),
/// * [`AsyncOutputStream`] (the write side, `async-output-stream`).
///
/// Over the connection's buffers it implements, for the directions its
/// mode allows:
///
/// * `std::io::Read` and `Write`, **non-blocking** (called through the
///   traits, e.g. `Read::read(&mut stream, buf)`): `read` returns buffered
///   bytes, `Err(WouldBlock)` when none are buffered and the connection is
///   open, and `Ok(0)` only at the end once every byte was read; `write`
///   accepts what fits under the write high watermark; `flush` returns
///   `WouldBlock` until the output is handed to the kernel. For std
///   consumers that expect blocking calls, wrap it in [`Blocking`].
/// * `AsyncRead`, `AsyncBufRead` (the front received chunk is lent without
///   copying) and `AsyncWrite` (backpressure at the write high watermark;
///   `poll_flush` = output handed to the kernel; `poll_close` = flush then
///   shut down the write side). They never return `WouldBlock` or
///   `Interrupted`.
/// * The common async calls as **inherent methods** — [`read`](EvStream::read),
///   [`read_exact`](EvStream::read_exact), [`read_to_end`](EvStream::read_to_end),
///   [`write_all`](EvStream::write_all), [`flush`](EvStream::flush),
///   [`close`](EvStream::close)… — so `stream.read(&mut buf).await` means
///   the futures call even when `std::io::Read` is in scope too (inherent
///   methods win over trait methods). The std calls stay reachable as
///   `Read::read(&mut stream, buf)`, [`try_read`](EvStream::try_read), or
///   through [`blocking()`](EvStream::blocking).
/// * IOStream-style reads (turbo.lua, Tornado): [`read_until_delimiter`](EvStream::read_until_delimiter),
///   [`read_bytes`](EvStream::read_bytes), [`read_until_close`](EvStream::read_until_close)…,
///   and typed reads ([`read_u32`](EvStream::read_u32), big-endian as in
///   tokio, and [`read_u32_le`](EvStream::read_u32_le)…).
///
/// # Who may do what
///
/// The stream is `Send + Sync`; move it (or its split halves) to any thread
/// or executor. Several readers of one connection (a `notify_cb`, a task
/// holding this stream, a thread with a [`Socket`] clone) each take bytes
/// atomically from the same input buffer: no byte is lost or duplicated,
/// and each reader sees its bytes in order. Writers are likewise serialised
/// per call. Blocking calls ([`Blocking`]) must not run on the loop thread;
/// there they return [`Error::WouldDeadlock`](crate::Error::WouldDeadlock)
/// instead of waiting.
///
/// # Lifetime
///
/// A connection made without callbacks (as by [`AsyncIoStream::connect`])
/// is closed gracefully when its last stream or socket handle is dropped.
/// Dropping an [`AsyncOutputStream`] (the owned write half) shuts down the
/// write side (FIN) at once, so the peer sees the end even while the read
/// half lives on.
///
/// # Examples
///
/// ```
/// use futures_lite::io::{AsyncReadExt, AsyncWriteExt};
/// use evstream::AsyncIoStream;
///
/// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// # let addr = listener.local_addr()?;
/// # let peer = std::thread::spawn(move || {
/// #     use std::io::{Read, Write};
/// #     let (mut s, _) = listener.accept().unwrap();
/// #     let mut b = [0u8; 4];
/// #     s.read_exact(&mut b).unwrap();
/// #     s.write_all(b"pong").unwrap();
/// # });
/// futures_lite::future::block_on(async {
///     let mut stream = AsyncIoStream::connect(addr).await?;
///     stream.write_all(b"ping").await?;
///     let mut reply = [0u8; 4];
///     stream.read_exact(&mut reply).await?;
///     assert_eq!(&reply, b"pong");
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # peer.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EvStream<M: Mode = Duplex> {
    socket: Socket,
    /// The chunk `poll_fill_buf` lent out, not yet consumed.
    lent: Lent,
    /// What an IOStream-style read does when its limit is exceeded.
    policy: LimitPolicy,
    /// Shut down the write side when dropped ([`Mode::SHUTDOWN_ON_DROP`]);
    /// cleared when the stream only changes mode.
    shutdown_on_drop: bool,
    _mode: PhantomData<M>,
}

/// Both sides of a connection: cl-async's `async-io-stream`. See
/// [`EvStream`] for what it implements.
pub type AsyncIoStream = EvStream<Duplex>;

/// The read side of a connection: cl-async's `async-input-stream`. Obtained
/// from [`AsyncIoStream::into_split`] or [`EvStream::new`].
pub type AsyncInputStream = EvStream<ReadOnly>;

/// The write side of a connection: cl-async's `async-output-stream`, the
/// owned write half of [`AsyncIoStream::into_split`].
///
/// Closing it ([`close`](EvStream::close)) shuts down the write direction
/// only; so does **dropping** it (FIN once the queued output is flushed),
/// as with tokio's `OwnedWriteHalf`: a proxy that drops the half it wrote
/// to lets its peer see the end while the read half goes on. Reuniting the
/// halves does not shut anything down.
pub type AsyncOutputStream = EvStream<WriteOnly>;

impl<M: Mode> fmt::Debug for EvStream<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvStream")
            .field("mode", &std::any::type_name::<M>())
            .field("socket", &self.socket)
            .field("lent", &self.lent.len())
            .finish()
    }
}

impl<M: Mode> EvStream<M> {
    /// A stream over `socket`'s buffers. The socket should be in dont-drain
    /// mode (the default when it has no `read_cb`): in drain mode the loop
    /// hands bytes to `read_cb` and a reading stream only sees the end.
    ///
    /// An [`AsyncOutputStream`] made this way also shuts down the write
    /// side when dropped.
    pub fn new(socket: Socket) -> Self {
        EvStream {
            socket,
            lent: Lent::default(),
            policy: LimitPolicy::default(),
            shutdown_on_drop: M::SHUTDOWN_ON_DROP,
            _mode: PhantomData,
        }
    }

    /// The connection's socket handle (addresses, timeouts, pause/resume,
    /// close, user data).
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// A blocking adaptor for std consumers (`io::copy`, `BufReader`,
    /// parsers taking `impl Read`); see [`Blocking`].
    pub fn blocking(self) -> Blocking<Self> {
        Blocking::new(self)
    }

    /// The same stream in another mode, keeping what it holds. Changing
    /// mode is not dropping: nothing is shut down.
    fn into_mode<N: Mode>(mut self) -> EvStream<N> {
        self.shutdown_on_drop = false;
        EvStream {
            socket: self.socket.clone(),
            lent: std::mem::take(&mut self.lent),
            policy: self.policy,
            shutdown_on_drop: N::SHUTDOWN_ON_DROP,
            _mode: PhantomData,
        }
    }

    /// The limit policy of IOStream-style reads.
    pub(crate) fn policy(&self) -> LimitPolicy {
        self.policy
    }

    /// Puts a lent chunk back at the front of the input, for a reader (a
    /// codec, an IOStream read) that works on the input buffer itself.
    pub(crate) fn return_lent(&mut self) {
        if !self.lent.is_empty() {
            drop(std::mem::take(&mut self.lent));
        }
    }
}

impl<M: Mode> Drop for EvStream<M> {
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            // Closed or failed already: nothing left to shut down.
            let _ = self.socket.shutdown_write();
        }
    }
}

impl EvStream<Duplex> {
    /// Splits into a read half and a write half, usable from different
    /// threads (tokio's `into_split`).
    ///
    /// Closing the write half shuts down the write direction only, and so
    /// does **dropping it**: once its queued output is flushed the peer gets
    /// FIN, as with tokio's `OwnedWriteHalf`, while the read half goes on
    /// reading. [`reunite`](AsyncIoStream::reunite) puts the halves back
    /// together without shutting anything down. The connection itself is
    /// closed once both halves (and every other handle) are dropped.
    ///
    /// # Examples
    ///
    /// ```
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # let peer = std::thread::spawn(move || {
    /// #     use std::io::{Read, Write};
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     let mut got = Vec::new();
    /// #     s.read_to_end(&mut got).unwrap(); // ends at the FIN
    /// #     s.write_all(&got).unwrap();
    /// # });
    /// futures_lite::future::block_on(async {
    ///     let stream = evstream::AsyncIoStream::connect(addr).await?;
    ///     let (mut input, mut output) = stream.into_split();
    ///     output.write_all(b"all of it").await?;
    ///     drop(output); // FIN: the peer's read_to_end ends
    ///     let mut echo = Vec::new();
    ///     input.read_to_end(&mut echo).await?;
    ///     assert_eq!(echo, b"all of it");
    ///     Ok::<(), std::io::Error>(())
    /// })?;
    /// # peer.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_split(self) -> (AsyncInputStream, AsyncOutputStream) {
        let output = EvStream::new(self.socket.clone());
        (self.into_mode(), output)
    }

    /// Puts split halves back together, keeping every buffered byte
    /// (including a chunk lent by `poll_fill_buf`).
    ///
    /// # Errors
    ///
    /// The halves back, if they belong to different connections.
    pub fn reunite(
        input: AsyncInputStream,
        output: AsyncOutputStream,
    ) -> Result<AsyncIoStream, ReuniteError> {
        if input.socket != output.socket {
            return Err(ReuniteError { input, output });
        }
        // The write half is not dropped, it joins the stream again.
        let _ = output.into_mode::<Duplex>();
        Ok(input.into_mode())
    }
}

impl EvStream<ReadOnly> {
    /// Puts the halves back together; see [`AsyncIoStream::reunite`].
    ///
    /// # Errors
    ///
    /// The halves back, if they belong to different connections.
    pub fn reunite(self, output: AsyncOutputStream) -> Result<AsyncIoStream, ReuniteError> {
        AsyncIoStream::reunite(self, output)
    }
}

impl From<Socket> for AsyncIoStream {
    fn from(socket: Socket) -> Self {
        AsyncIoStream::new(socket)
    }
}

/// The halves given to [`AsyncIoStream::reunite`] belong to different
/// connections; both are handed back.
pub struct ReuniteError {
    /// The read half.
    pub input: AsyncInputStream,
    /// The write half.
    pub output: AsyncOutputStream,
}

impl fmt::Debug for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReuniteError(..)")
    }
}

impl fmt::Display for ReuniteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite halves of different connections")
    }
}

impl std::error::Error for ReuniteError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        fn check(stream: &mut AsyncIoStream, input: &mut AsyncInputStream) {
            assert_send(&stream.read_until_close());
            assert_send(&input.read_until_close());
            assert_send(&stream.read_until_delimiter(b"\n", 10));
            assert_send(&AsyncIoStream::connect("127.0.0.1:1"));
            assert_send(&AsyncIoStream::connect(("localhost", 1)));
            assert_send(&stream.read_u32());
            assert_send(&stream.close());
        }
        let _ = check;
    }

    #[test]
    fn streams_are_send_sync() {
        assert_send_sync::<AsyncIoStream>();
        assert_send_sync::<AsyncInputStream>();
        assert_send_sync::<AsyncOutputStream>();
    }
}
