//! Buffered, event-driven byte streams in the style of cl-async's TCP
//! streams over libevent bufferevents.
//!
//! # The model
//!
//! **The loop owns the socket.** An [`EventLoop`] registers each
//! connection with its poller, reads from it into an *input buffer* and
//! writes to it from an *output buffer* — chains of [`bytes::Bytes`] chunks
//! ([`Buffer`], libevent's evbuffer). Your code holds handles: a [`Socket`]
//! (`Send + Sync + Clone`) or a stream built on one. A connection lives until
//! it is closed or fails; one without callbacks is also closed gracefully
//! when its last handle is dropped.
//!
//! **Drain mode.** With a [`read_cb`](TcpOptions::read_cb) the loop empties
//! the input buffer into the callback: `read_cb(&socket, bytes)` receives the
//! new bytes (one call per readiness event) without a copy.
//!
//! ```
//! use evstream::{tcp_connect, Event, EventLoop, ServerOptions, TcpOptions, TcpServer};
//!
//! let mut ev = EventLoop::new()?;
//! // A server that greets each client and closes.
//! let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new().connection(
//!     TcpOptions::new().connect_cb(|socket| {
//!         socket.write(b"hi").unwrap();
//!         socket.close();
//!     }),
//! ))?;
//! let port = server.local_addr().port();
//! tcp_connect(&ev.handle(), "127.0.0.1", port, TcpOptions::new()
//!     .read_cb(|_socket, bytes| assert_eq!(&bytes[..], b"hi"))
//!     .event_cb(move |socket, event| {
//!         if matches!(event, Event::Eof) {
//!             socket.close();
//!             server.close();
//!         }
//!     }))?;
//! ev.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Dont-drain mode** (cl-async's `:dont-drain-read-buffer`). With a
//! [`notify_cb`](TcpOptions::notify_cb) — or [`dont_drain(true)`](TcpOptions::dont_drain),
//! or [`stream(true)`](TcpOptions::stream) — the bytes *stay* in the input
//! buffer; the callback only signals that some are ready, and the
//! application takes them when it likes, from any thread. This is what the
//! stream types are built on. In stream mode
//! ([`stream_read_cb`](TcpOptions::stream_read_cb)) the read callback
//! receives the connection's [`AsyncIoStream`]; whatever it leaves unread
//! stays buffered, and it is called again on the next turn while it keeps
//! taking bytes, so a reader that takes a little at a time never stalls.
//!
//! **The async shape.** The same connections, the way tokio users write
//! them: [`TcpServer::listen`] on the [`default_loop`], `accept().await` in
//! a loop, a task per connection with [`spawn`]; streams whose `read`,
//! `write_all`, `flush` and `close` are inherent async methods (so they
//! mean the futures calls even when `std::io::{Read, Write}` are in scope);
//! timers as futures ([`time`]).
//!
//! ```
//! use evstream::{AsyncIoStream, TcpServer};
//!
//! futures_lite::future::block_on(async {
//!     let server = TcpServer::listen("127.0.0.1:0").await?;
//!     let addr = server.local_addr();
//!     evstream::spawn(async move {
//!         while let Ok((mut stream, _peer)) = server.accept().await {
//!             evstream::spawn(async move {
//!                 let mut buf = [0u8; 4096];
//!                 while let Ok(n @ 1..) = stream.read(&mut buf).await {
//!                     if stream.write_all(&buf[..n]).await.is_err() {
//!                         break;
//!                     }
//!                 }
//!             });
//!         }
//!     });
//!     let mut client = AsyncIoStream::connect(addr).await?;
//!     client.write_all(b"ping").await?;
//!     client.close().await?; // flush + FIN
//!     let mut echo = Vec::new();
//!     client.read_to_end(&mut echo).await?;
//!     assert_eq!(echo, b"ping");
//!     Ok::<(), Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **Reading never blocks** through `std::io::Read`: it returns buffered
//! bytes, `Err(WouldBlock)` when none are buffered and the connection is
//! open, and `Ok(0)` only at the end, after every byte — "no data yet" never
//! looks like EOF. Std consumers that expect blocking reads (`io::copy`,
//! `BufReader`, parsers taking `impl Read`) use the [`Blocking`] adaptor,
//! with optional timeouts. The futures traits (`AsyncRead`, `AsyncBufRead`,
//! `AsyncWrite`) return `Pending` instead and are woken by the loop.
//!
//! **Threads.** Callbacks, timers and tasks spawned on a loop run on the
//! loop thread. Handles and streams work from any thread: a write onto an
//! idle connection goes straight to the kernel from the calling thread, and
//! only what the kernel does not take is queued for the loop. Requests made
//! from one thread (connect, close, timers…) reach the loop in the order
//! they were made and take effect there, so they are asynchronous. No lock
//! is held while user code runs; a panic in a callback closes only that
//! connection. Blocking calls on the loop thread fail with
//! [`Error::WouldDeadlock`] rather than stop the loop.
//!
//! **Never block in a callback** (or in a task on a loop): callbacks,
//! timers and tasks run on the loop's thread, and while one of them blocks
//! — `std::thread::sleep`, blocking I/O, a `block_on` of any executor —
//! the loop stops: no byte is read or written, no timer fires, on any of
//! its connections. If the blocking call waits for something the loop must
//! deliver (a read, a flush, a connect), it waits for ever. What evstream
//! does about it:
//!
//! * its own blocking calls ([`Blocking`], the [`peer::StreamPeer`] calls
//!   that wait) fail on the loop thread with [`Error::WouldDeadlock`]
//!   instead of waiting;
//! * a future of evstream's that has to wait while polled inside a
//!   callback on the loop's thread (which is what a foreign `block_on`
//!   there does) logs a warning, once per loop, saying so — the hang
//!   itself cannot be undone;
//! * a future that waits on a loop that no thread runs (an [`EventLoop`]
//!   neither run, nor driven by `block_on`/`run_once`, nor
//!   [spawned](EventLoop::spawn)) logs a warning, once per loop; it
//!   completes as soon as something runs the loop
//!   ([`LoopHandle::is_running`] tells).
//!
//! Hand long work to another thread, or make it a task and `.await`.
//!
//! **Bounded memory.** At the read high watermark the loop stops reading
//! (TCP flow control pushes back on the sender) until the application has
//! drained half of it; the output buffer refuses to grow past
//! `max_buffer_size`, and the streams push back at the write high
//! watermark.
//!
//! **Loop lifetime.** [`EventLoop::run`] returns when nothing is left that
//! can produce an event — cl-async's `with-event-loop`. [`EventLoop::spawn`]
//! runs a loop on a background thread, [`EventLoop::block_on`] drives a
//! future on the loop thread itself, and [`default_loop`] is the loop behind
//! [`AsyncIoStream::connect`], [`TcpServer::listen`], [`spawn`] and
//! [`time`].
//!
//! # Examples
//!
//! Dont-drain: the callback is only told; the bytes wait until taken.
//!
//! ```
//! use std::io::Write;
//! use std::sync::{Arc, Mutex};
//! use evstream::{tcp_connect, Event, EventLoop, TcpOptions};
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let port = listener.local_addr()?.port();
//! let peer = std::thread::spawn(move || {
//!     let (mut s, _) = listener.accept().unwrap();
//!     s.write_all(b"some bytes").unwrap();
//! });
//! let mut ev = EventLoop::new()?;
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! tcp_connect(&ev.handle(), "127.0.0.1", port, TcpOptions::new()
//!     .notify_cb(|socket| println!("{} bytes ready", socket.input_buffer_len()))
//!     .event_cb(move |socket, event| {
//!         if let Event::Eof = event {
//!             // Everything is still in the input buffer: take it now.
//!             let mut buf = [0u8; 64];
//!             while let Ok(n @ 1..) = socket.read(&mut buf) {
//!                 sink.lock().unwrap().extend_from_slice(&buf[..n]);
//!             }
//!             socket.close();
//!         }
//!     }))?;
//! ev.run()?;
//! peer.join().unwrap();
//! assert_eq!(&seen.lock().unwrap()[..], b"some bytes");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Non-blocking `Read`, then the blocking adaptor for a std consumer.
//!
//! ```
//! use std::io::{ErrorKind, Read, Write};
//! use evstream::AsyncIoStream;
//!
//! let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?.to_string();
//! let (go, wait) = std::sync::mpsc::channel::<()>();
//! let peer = std::thread::spawn(move || {
//!     let (mut s, _) = listener.accept().unwrap();
//!     wait.recv().unwrap();
//!     s.write_all(b"hello, blocking world").unwrap();
//! });
//! let mut stream = futures_lite::future::block_on(AsyncIoStream::connect(addr))?;
//! let mut buf = [0u8; 16];
//! // Nothing sent yet: WouldBlock, never Ok(0).
//! assert_eq!(Read::read(&mut stream, &mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
//! go.send(())?;
//! let mut text = String::new();
//! stream.blocking().read_to_string(&mut text)?; // waits, then reads to EOF
//! assert_eq!(text, "hello, blocking world");
//! peer.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! [`buffer`] (the chunk chain) ← the event loop ([`EventLoop`],
//! [`LoopHandle`]) ← the connection ([`Socket`], [`tcp_connect`],
//! [`TcpServer`], [`TcpOptions`]) ← the streams ([`AsyncIoStream`],
//! [`AsyncInputStream`], [`AsyncOutputStream`], [`Blocking`], and the
//! IOStream-style reads such as [`AsyncIoStream::read_until_delimiter`]) ← [`codec`]
//! (framing over the input buffer), [`osc`] and [`peer`] (the Godot, Luna and
//! TouchDesigner shapes). Errors are one [`Error`] enum; connection events
//! are [`Event`]s.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod buffer;
pub mod codec;
mod error;
mod event_loop;
pub mod osc;
pub mod peer;
#[doc(hidden)]
pub mod seam;
mod socket;
mod stream;
mod sync;
mod tcp;
#[cfg(feature = "tls")]
pub mod tls;

pub use buffer::{Buffer, Eol};
pub use error::{Direction, Error, Limit, Result, TimeoutKind, TlsErrorKind};
pub use event_loop::{default_loop, time, EventLoop, JoinHandle, LoopGroup, LoopHandle, Timer};
pub use socket::{Event, Socket};
pub use stream::{
    mode, AsyncInputStream, AsyncIoStream, AsyncOutputStream, Blocking, EvStream, Incoming,
    LimitPolicy, ReuniteError, StreamOptions, StreamSocket,
};
pub use tcp::{
    tcp_connect, tcp_connect_addr, unix_connect, GroupServer, Owner, ServerOptions, TcpOptions,
    TcpServer, ToSocketAddrs, UnixServer, DEFAULT_CLOSE_LINGER, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_BUFFER_SIZE, DEFAULT_READ_CHUNK_SIZE, DEFAULT_READ_HIGH_WATERMARK,
    DEFAULT_WRITE_HIGH_WATERMARK,
};

/// Spawns `future` as a task on the [`default_loop`] and returns a handle
/// to await its output: tokio's `tokio::spawn`, with the loop's thread as
/// the runtime.
///
/// The task runs on the default loop's thread, so it pays no cross-thread
/// wake-up for the connections it uses there (every connection made with
/// [`AsyncIoStream::connect`] or accepted by a server from
/// [`TcpServer::listen`]). **Dropping the [`JoinHandle`] detaches the
/// task**: it runs to completion anyway, as with tokio;
/// [`JoinHandle::abort`] cancels it. Never block inside the task (no
/// `std::thread::sleep`, no blocking I/O, no `block_on`): that stops the
/// loop and every connection on it.
///
/// # Examples
///
/// ```
/// let task = evstream::spawn(async { 6 * 7 });
/// assert_eq!(futures_lite::future::block_on(task)?, 42);
/// # Ok::<(), evstream::Error>(())
/// ```
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    default_loop().spawn(future)
}

/// The extension traits, for a glob import: `use evstream::prelude::*;`
/// brings the stream-mode callbacks ([`StreamOptions`]), the codec callback
/// ([`FrameOptions`](codec::FrameOptions)) and TouchDesigner's calls
/// ([`TouchPeer`](peer::TouchPeer)) into scope.
pub mod prelude {
    pub use crate::codec::FrameOptions;
    pub use crate::peer::{StreamPeer, TouchPeer};
    pub use crate::stream::StreamOptions;
}
#[cfg(feature = "tls")]
pub use tls::{TlsClientOptions, TlsInfo, TlsServerOptions};
