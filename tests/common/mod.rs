//! Helpers shared by the integration tests: a loop on a background thread,
//! event channels, seeded data, bounded waits. Every wait here is bounded by
//! [`WAIT`] and waits on an event, never on a sleep.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use evstream::{AsyncIoStream, Event, EventLoop, LoopHandle, Socket, TcpOptions};

/// Test certificates and rustls configurations (rcgen).
#[cfg(feature = "tls")]
pub mod tls;

/// The bound on every wait in the tests: generous, so a loaded machine does
/// not fail them, yet finite, so a broken rule fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(20);

/// A loop running on a background thread, stopped when dropped.
pub struct LoopThread {
    pub handle: LoopHandle,
}

impl LoopThread {
    pub fn start() -> LoopThread {
        LoopThread {
            handle: EventLoop::spawn().expect("spawn a loop"),
        }
    }
}

impl Drop for LoopThread {
    fn drop(&mut self) {
        self.handle.stop();
    }
}

/// An `event_cb` that forwards every event to a channel.
pub fn event_channel() -> (
    impl Fn(&Socket, Event) + Send + Sync + Clone + 'static,
    Receiver<Event>,
) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Arc::new(std::sync::Mutex::new(tx));
    (
        move |_: &Socket, event: Event| {
            let _ = tx.lock().unwrap().send(event);
        },
        rx,
    )
}

/// Waits (bounded) for the first event matching `pred`, returning it;
/// panics with the events seen if none comes.
pub fn wait_event(rx: &Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(event) if pred(&event) => return event,
            Ok(event) => seen.push(event),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                panic!("no {what} event within {WAIT:?}; saw {seen:?}")
            }
        }
    }
}

/// Receives one value within [`WAIT`] or panics naming `what`.
pub fn recv<T>(rx: &Receiver<T>, what: &str) -> T {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|err| panic!("no {what} within {WAIT:?}: {err}"))
}

/// A channel whose sender can be moved into `Send` callbacks (cloned per
/// call site).
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    mpsc::channel()
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn random_data(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A plain blocking std listener on loopback, for a peer the tests control
/// byte by byte.
pub fn std_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Accepts one connection with a bounded wait.
pub fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(false).unwrap();
    // `accept` has no timeout: run it on a thread and wait on a channel.
    let listener = listener.try_clone().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(listener.accept().map(|(stream, _)| stream));
    });
    let stream = recv(&rx, "accepted connection").expect("accept");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Connects a blocking std client with read/write timeouts set to [`WAIT`].
pub fn std_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// Reads from a std stream until EOF (bounded by its read timeout).
pub fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read to EOF");
    out
}

/// Writes all of `data` to a std stream.
pub fn write_all(stream: &mut TcpStream, data: &[u8]) {
    stream.write_all(data).expect("write_all");
}

/// Sets SO_LINGER 0 and drops the stream, so the peer gets a reset.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Asserts two byte strings are equal without printing megabytes: on a
/// mismatch it names the lengths and the first differing offset.
pub fn assert_same(what: &str, got: &[u8], expected: &[u8]) {
    if got != expected {
        let at = got.iter().zip(expected).position(|(a, b)| a != b);
        panic!(
            "{what}: got {} bytes, expected {}; first difference at {at:?}",
            got.len(),
            expected.len()
        );
    }
}

/// A `read_cb` (drain mode) that forwards every chunk to a channel.
pub fn data_channel() -> (
    impl Fn(&Socket, bytes::Bytes) + Send + Sync + 'static,
    Receiver<bytes::Bytes>,
) {
    let (tx, rx) = mpsc::channel();
    (
        move |_: &Socket, data: bytes::Bytes| {
            let _ = tx.send(data);
        },
        rx,
    )
}

/// Collects exactly `len` bytes from a [`data_channel`], bounded by [`WAIT`].
pub fn recv_bytes(rx: &Receiver<bytes::Bytes>, len: usize) -> Vec<u8> {
    let deadline = Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < len {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(_) => panic!("received {} of {len} bytes within {WAIT:?}", out.len()),
        }
    }
    assert_eq!(out.len(), len, "received more bytes than were sent");
    out
}

struct Unpark(std::thread::Thread);

impl std::task::Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `future` on this thread; fails the test instead of hanging if it
/// is not done within [`WAIT`].
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    block_on_within(future, WAIT)
}

/// [`block_on`] with another bound.
pub fn block_on_within<F: std::future::Future>(future: F, limit: Duration) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let waker = Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + limit;
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "future not done within {limit:?}");
        std::thread::park_timeout(left);
    }
}

/// Connects a stream with `options` on `handle`'s loop to a blocking std
/// peer, which it returns too.
pub fn connect_stream(handle: &LoopHandle, options: TcpOptions) -> (AsyncIoStream, TcpStream) {
    let (listener, addr) = std_listener();
    let stream = block_on(AsyncIoStream::connect_on(
        handle,
        ("127.0.0.1", addr.port()),
        options,
    ))
    .expect("connect_on");
    let peer = accept(&listener);
    (stream, peer)
}

/// A waker that reports every wake on a channel.
struct ChannelWake(std::sync::Mutex<Sender<()>>);

impl std::task::Wake for ChannelWake {
    fn wake(self: std::sync::Arc<Self>) {
        let _ = self.0.lock().unwrap().send(());
    }
}

/// A waker whose every wake arrives on the returned channel.
pub fn channel_waker() -> (std::task::Waker, Receiver<()>) {
    let (tx, rx) = channel();
    let wake = ChannelWake(std::sync::Mutex::new(tx));
    (std::task::Waker::from(std::sync::Arc::new(wake)), rx)
}

/// Adapts a stateful two-argument callback (`read_cb`, `event_cb`,
/// `on_frame`…) to the `Fn + Sync` that callbacks must be: its state goes
/// behind a mutex. Callbacks share no lock in the library; this is the
/// test's own.
pub fn stateful<A, F>(f: F) -> impl Fn(&Socket, A) + Send + Sync + 'static
where
    F: FnMut(&Socket, A) + Send + 'static,
{
    let f = std::sync::Mutex::new(f);
    move |socket: &Socket, arg: A| (f.lock().unwrap())(socket, arg)
}

/// [`stateful`] for one-argument callbacks (`notify_cb`, `write_cb`…).
pub fn stateful1<F>(f: F) -> impl Fn(&Socket) + Send + Sync + 'static
where
    F: FnMut(&Socket) + Send + 'static,
{
    let f = std::sync::Mutex::new(f);
    move |socket: &Socket| (f.lock().unwrap())(socket)
}

/// Log records captured by [`capture_logs`], for tests of what evstream
/// logs.
static LOGS: std::sync::Mutex<Vec<(log::Level, String)>> = std::sync::Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        LOGS.lock()
            .unwrap()
            .push((record.level(), record.args().to_string()));
    }
    fn flush(&self) {}
}

/// Installs a logger that keeps every record (once per test process).
pub fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

/// The captured warnings that contain `text`.
pub fn warnings_containing(text: &str) -> Vec<String> {
    LOGS.lock()
        .unwrap()
        .iter()
        .filter(|(level, message)| *level == log::Level::Warn && message.contains(text))
        .map(|(_, message)| message.clone())
        .collect()
}

/// A waker that does nothing, for polling a future once by hand.
pub fn noop_waker() -> std::task::Waker {
    struct Noop;
    impl std::task::Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    std::task::Waker::from(std::sync::Arc::new(Noop))
}

/// Polls `future` once with a waker that does nothing.
pub fn poll_once_by_hand<F: std::future::Future + Unpin>(
    future: &mut F,
) -> std::task::Poll<F::Output> {
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    std::pin::Pin::new(future).poll(&mut cx)
}

/// Waits (bounded by [`WAIT`]) until `condition` holds, yielding the
/// thread in between; panics naming `what` if it never does.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        std::thread::yield_now();
    }
}

/// The task of an accept-mode echo server for one connection: echoes what
/// it reads until the client's end (or an error), then closes its side.
pub async fn echo_until_eof(mut stream: AsyncIoStream) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = stream.close().await;
}

/// Connection options of a callback-mode echo server that closes each
/// connection at the client's EOF (so a client closing frees its slot).
pub fn echo_closing_at_eof() -> TcpOptions {
    TcpOptions::new()
        .read_cb(|socket, data| {
            let _ = socket.write_bytes(data);
        })
        .event_cb(|socket, event| {
            if matches!(event, Event::Eof | Event::Error(_)) {
                socket.close();
            }
        })
}
