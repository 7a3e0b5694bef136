//! The common async calls as inherent methods of [`EvStream`], so they
//! mean the futures calls even when `std::io::{Read, Write}` are in scope
//! too (inherent methods win over trait methods). They return the very
//! futures `futures_lite::AsyncReadExt`/`AsyncWriteExt` return, so they
//! behave exactly like those. Also: typed reads and writes
//! (tokio's `read_u32`…); and the connection calls of a stream (addresses,
//! `TCP_NODELAY`, shutting down the write side, closing the connection).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;

use futures_lite::io::{
    AsyncReadExt, AsyncWriteExt, CloseFuture, FlushFuture, ReadExactFuture, ReadFuture,
    ReadToEndFuture, ReadToStringFuture, WriteAllFuture, WriteFuture,
};

use super::mode::{Mode, Readable, Writable};
use super::EvStream;
use crate::error::Result;

/// Read methods: the futures meaning, as inherent methods.
impl<M: Readable> EvStream<M> {
    /// Reads some bytes into `buf`, waiting until at least one is there:
    /// `futures::AsyncReadExt::read` (and tokio's). `Ok(0)` means the end
    /// (or an empty `buf`). The non-blocking std call is
    /// [`try_read`](EvStream::try_read).
    ///
    /// # Examples
    ///
    /// ```
    /// # let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// # let addr = listener.local_addr()?;
    /// # let peer = std::thread::spawn(move || {
    /// #     use std::io::Write;
    /// #     let (mut s, _) = listener.accept().unwrap();
    /// #     s.write_all(b"hi").unwrap();
    /// # });
    /// // Both trait families in scope: the inherent async method wins.
    /// use std::io::Read;
    /// use futures_lite::AsyncReadExt;
    ///
    /// futures_lite::future::block_on(async {
    ///     let mut stream = evstream::AsyncIoStream::connect(addr).await?;
    ///     let mut buf = [0u8; 2];
    ///     stream.read_exact(&mut buf).await?;
    ///     assert_eq!(&buf, b"hi");
    ///     Ok::<(), Box<dyn std::error::Error>>(())
    /// })?;
    /// # peer.join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The connection's error once its buffered bytes are read (a reset, a
    /// read timeout…).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: bytes are taken only when it completes.
    pub fn read<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadFuture<'a, Self> {
        AsyncReadExt::read(self, buf)
    }

    /// Fills all of `buf`: `futures::AsyncReadExt::read_exact`.
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` if the connection ends first; the connection's
    /// error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: bytes already copied into `buf` are lost to the
    /// stream. [`read_bytes`](EvStream::read_bytes) is the cancel-safe
    /// form.
    pub fn read_exact<'a>(&'a mut self, buf: &'a mut [u8]) -> ReadExactFuture<'a, Self> {
        AsyncReadExt::read_exact(self, buf)
    }

    /// Reads until the end, appending to `buf`; returns how many bytes were
    /// read: `futures::AsyncReadExt::read_to_end`.
    ///
    /// # Errors
    ///
    /// The connection's error (the bytes read before it stay in `buf`).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that the bytes are moved into `buf` as
    /// they come: what is in `buf` when the future is dropped stays there.
    /// [`read_until_close`](EvStream::read_until_close) leaves them in the
    /// input buffer instead.
    pub fn read_to_end<'a>(&'a mut self, buf: &'a mut Vec<u8>) -> ReadToEndFuture<'a, Self> {
        AsyncReadExt::read_to_end(self, buf)
    }

    /// Reads until the end as UTF-8, appending to `buf`:
    /// `futures::AsyncReadExt::read_to_string`.
    ///
    /// # Errors
    ///
    /// `InvalidData` if the bytes are not UTF-8; the connection's error.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: the bytes read so far are lost.
    pub fn read_to_string<'a>(&'a mut self, buf: &'a mut String) -> ReadToStringFuture<'a, Self> {
        AsyncReadExt::read_to_string(self, buf)
    }

    /// Copies received bytes into `buf` without taking them, waiting until
    /// there are some (tokio's `TcpStream::peek`); `Ok(0)` at the end.
    /// [`peek_buffered`](EvStream::peek_buffered) does not wait.
    ///
    /// # Errors
    ///
    /// The connection's error, once nothing is buffered.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it takes nothing.
    pub async fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        poll_fn(|cx| {
            if self.available() > 0 {
                return Poll::Ready(Ok(()));
            }
            let poll = self.socket.poll_readable(cx.waker());
            self.noting_wait(poll)
        })
        .await?;
        Ok(self.peek_buffered(buf))
    }
}

/// Write methods: the futures meaning, as inherent methods.
impl<M: Writable> EvStream<M> {
    /// Writes some of `buf`, waiting while the output is at its write high
    /// watermark; returns how many bytes were taken:
    /// `futures::AsyncWriteExt::write`.
    ///
    /// # Errors
    ///
    /// [`Error::WriteClosed`](crate::Error::WriteClosed) after
    /// [`close`](EvStream::close) or a shutdown, `Closed`, a write timeout,
    /// the connection's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: nothing is taken unless it completes.
    pub fn write<'a>(&'a mut self, buf: &'a [u8]) -> WriteFuture<'a, Self> {
        AsyncWriteExt::write(self, buf)
    }

    /// Writes all of `buf`: `futures::AsyncWriteExt::write_all`. The bytes
    /// are queued; [`flush`](EvStream::flush) waits until they are handed
    /// to the kernel.
    ///
    /// # Errors
    ///
    /// As [`write`](EvStream::write).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped, a prefix of `buf` may already be queued
    /// and will be sent.
    pub fn write_all<'a>(&'a mut self, buf: &'a [u8]) -> WriteAllFuture<'a, Self> {
        AsyncWriteExt::write_all(self, buf)
    }

    /// Waits until the queued output has been handed to the kernel:
    /// `futures::AsyncWriteExt::flush`.
    ///
    /// # Errors
    ///
    /// The connection's error, a write timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only waits.
    pub fn flush(&mut self) -> FlushFuture<'_, Self> {
        AsyncWriteExt::flush(self)
    }

    /// Flushes, then shuts down the write side (FIN) and waits until FIN
    /// is sent: `futures::AsyncWriteExt::close` (tokio's `shutdown`).
    /// Reading goes on until the peer's end; the connection itself is
    /// released once the peer closes too, or when the last handle is
    /// dropped. Idempotent. To close the whole connection at once, use
    /// [`close_connection`](EvStream::close_connection).
    ///
    /// # Errors
    ///
    /// The connection's error, a write timeout.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: once the flush is done the shutdown is queued, and the
    /// loop sends FIN whether or not this is awaited to the end.
    pub fn close(&mut self) -> CloseFuture<'_, Self> {
        AsyncWriteExt::close(self)
    }

    /// Shuts down the write side (FIN) once the queued output is flushed,
    /// without waiting (cl-async's and tokio's half-close); see
    /// [`Socket::shutdown_write`](crate::Socket::shutdown_write).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) if the connection is closed,
    /// its error if it failed.
    pub fn shutdown_write(&self) -> Result<()> {
        self.socket.shutdown_write()
    }
}

/// The connection calls of every stream.
impl<M: Mode> EvStream<M> {
    /// The peer's address (tokio's `peer_addr`).
    ///
    /// # Errors
    ///
    /// `NotConnected` while connecting or once the connection never got
    /// up; `Unsupported` over a Unix domain socket, which has no IP
    /// address (see [`Socket::peer_path`](crate::Socket::peer_path)).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.socket.peer_addr().ok_or_else(|| self.no_address())
    }

    /// This side's address (tokio's `local_addr`).
    ///
    /// # Errors
    ///
    /// As [`peer_addr`](EvStream::peer_addr).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr().ok_or_else(|| self.no_address())
    }

    fn no_address(&self) -> io::Error {
        if self.socket.is_unix() {
            io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix domain socket has no IP address",
            )
        } else {
            io::ErrorKind::NotConnected.into()
        }
    }

    /// Sets `TCP_NODELAY` (on by default); nothing to do over a Unix
    /// domain socket.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`](crate::Error::Closed) when there is no connected
    /// socket, or the operating system's error.
    pub fn set_nodelay(&self, nodelay: bool) -> Result<()> {
        self.socket.set_nodelay(nodelay)
    }

    /// Whether `TCP_NODELAY` is set (always true over a Unix domain
    /// socket, which does not delay).
    ///
    /// # Errors
    ///
    /// As [`set_nodelay`](EvStream::set_nodelay).
    pub fn nodelay(&self) -> Result<bool> {
        self.socket.nodelay()
    }

    /// Closes the whole connection gracefully — flush, FIN, release —
    /// whatever other handles exist; see [`Socket::close`](crate::Socket::close).
    /// Bytes already received stay readable. This was `close()` before
    /// `close` took its futures meaning (flush and FIN only).
    pub fn close_connection(&self) {
        self.socket.close();
    }

    /// Closes the connection at once: queued output is dropped and the
    /// peer gets a reset; see [`Socket::abort`](crate::Socket::abort).
    pub fn abort(&self) {
        self.socket.abort();
    }
}

macro_rules! typed_reads {
    ($($read:ident, $ty:ty;)*) => {
        /// Typed reads, big-endian as tokio's `AsyncReadExt`, each taking
        /// exactly its bytes out of the input buffer.
        impl<M: Readable> EvStream<M> {
            $(
                #[doc = concat!("Reads a big-endian `", stringify!($ty), "` (tokio's `AsyncReadExt::", stringify!($read), "`).")]
                ///
                /// # Errors
                ///
                /// [`Error::UnexpectedEof`](crate::Error::UnexpectedEof) if
                /// the connection ends first (the bytes stay buffered); the
                /// connection's error.
                ///
                /// # Cancel safety
                ///
                /// Cancel safe: the bytes leave the input buffer only
                /// together, when it completes.
                pub async fn $read(&mut self) -> Result<$ty> {
                    let bytes = self.read_bytes(std::mem::size_of::<$ty>()).await?;
                    Ok(<$ty>::from_be_bytes(bytes[..].try_into().expect("the size read")))
                }
            )*
        }
    };
}

macro_rules! typed_reads_le {
    ($($read_le:ident, $ty:ty;)*) => {
        /// Typed reads, little-endian.
        impl<M: Readable> EvStream<M> {
            $(
                #[doc = concat!("Reads a little-endian `", stringify!($ty), "`.")]
                ///
                /// # Errors
                ///
                /// As [`read_u32`](EvStream::read_u32).
                ///
                /// # Cancel safety
                ///
                /// Cancel safe.
                pub async fn $read_le(&mut self) -> Result<$ty> {
                    let bytes = self.read_bytes(std::mem::size_of::<$ty>()).await?;
                    Ok(<$ty>::from_le_bytes(bytes[..].try_into().expect("the size read")))
                }
            )*
        }
    };
}

typed_reads! {
    read_u8, u8;
    read_i8, i8;
    read_u16, u16;
    read_i16, i16;
    read_u32, u32;
    read_i32, i32;
    read_u64, u64;
    read_i64, i64;
    read_u128, u128;
    read_i128, i128;
    read_f32, f32;
    read_f64, f64;
}

typed_reads_le! {
    read_u16_le, u16;
    read_i16_le, i16;
    read_u32_le, u32;
    read_i32_le, i32;
    read_u64_le, u64;
    read_i64_le, i64;
    read_u128_le, u128;
    read_i128_le, i128;
    read_f32_le, f32;
    read_f64_le, f64;
}

macro_rules! typed_writes {
    ($($write:ident, $ty:ty;)*) => {
        /// Typed writes, big-endian as tokio's `AsyncWriteExt`.
        impl<M: Writable> EvStream<M> {
            $(
                #[doc = concat!("Writes a big-endian `", stringify!($ty), "` (tokio's `AsyncWriteExt::", stringify!($write), "`).")]
                ///
                /// # Errors
                ///
                /// As [`write_all`](EvStream::write_all).
                ///
                /// # Cancel safety
                ///
                /// Not cancel safe, as [`write_all`](EvStream::write_all).
                pub async fn $write(&mut self, value: $ty) -> io::Result<()> {
                    self.write_all(&value.to_be_bytes()).await
                }
            )*
        }
    };
}

macro_rules! typed_writes_le {
    ($($write_le:ident, $ty:ty;)*) => {
        /// Typed writes, little-endian.
        impl<M: Writable> EvStream<M> {
            $(
                #[doc = concat!("Writes a little-endian `", stringify!($ty), "`.")]
                ///
                /// # Errors
                ///
                /// As [`write_all`](EvStream::write_all).
                ///
                /// # Cancel safety
                ///
                /// Not cancel safe, as [`write_all`](EvStream::write_all).
                pub async fn $write_le(&mut self, value: $ty) -> io::Result<()> {
                    self.write_all(&value.to_le_bytes()).await
                }
            )*
        }
    };
}

typed_writes! {
    write_u8, u8;
    write_i8, i8;
    write_u16, u16;
    write_i16, i16;
    write_u32, u32;
    write_i32, i32;
    write_u64, u64;
    write_i64, i64;
    write_u128, u128;
    write_i128, i128;
    write_f32, f32;
    write_f64, f64;
}

typed_writes_le! {
    write_u16_le, u16;
    write_i16_le, i16;
    write_u32_le, u32;
    write_i32_le, i32;
    write_u64_le, u64;
    write_i64_le, i64;
    write_u128_le, u128;
    write_i128_le, i128;
    write_f32_le, f32;
    write_f64_le, f64;
}
