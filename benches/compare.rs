//! evstream against tokio, async-io and blocking `std::net` on the same
//! loopback workloads, interleaved in one run (A B C D, repeated), with
//! medians and ratios to tokio. `docs/performance.md` explains the method
//! and shows the latest figures.
//!
//! ```text
//! cargo bench --bench compare                       # full run, 5 repetitions
//! cargo bench --bench compare -- --quick            # tiny sizes, 1 repetition (CI smoke test)
//! cargo bench --bench compare -- --reps 3
//! cargo bench --bench compare -- --only pingpong2:evstream,pingpong2:tokio --reps 1
//! cargo bench --bench compare -- --list             # the workloads and implementations
//! ```
//!
//! Workloads (sizes of the full run; `--quick` shrinks them):
//!
//! * `bulk` — one connection, 2 GiB sent in 64 KiB writes, received into a
//!   64 KiB buffer. The sender repeats a 64 KiB pseudo-random block; the
//!   receiver counts every byte and compares every 16th block with the
//!   pattern, so a lost, duplicated or shifted byte is caught.
//! * `pingpong2` / `pingpong1` — 100,000 round trips of 64 bytes, client and
//!   server on two threads / on one thread. Every echo is compared with the
//!   message (which carries its round number).
//! * `lines` — 2,000,000 lines of ~60 bytes (30 to 90), split and counted;
//!   the length and first byte of every line are checked.
//! * `conns` — 2,000 concurrent connections, 20 round trips of 64 bytes
//!   each, all connections held open until every client is done; total time
//!   and the peak RSS (VmHWM) of a child process that runs only that
//!   implementation (VmHWM is per process and never goes down).
//!
//! Each side of an async implementation runs its own single-threaded
//! executor: tokio a current-thread runtime, async-io `async_io::block_on`,
//! evstream an `EventLoop` (`block_on` or `run`). Every figure comes from a
//! run whose data was verified; a failed check aborts the bench.
//!
//! Besides wall-clock figures, every run's CPU time is measured: user +
//! system time of all the process's threads, the `getrusage(RUSAGE_SELF)`
//! delta around the run. Runs are sequential and join their server and
//! client threads before returning, so the delta is that run's CPU,
//! including its setup and teardown (runtime or loop creation, connect,
//! close), which wall-clock times partly leave out. `conns` measures in the
//! child, around the run, and reports it on its `CHILD` line. CPU time is
//! much less sensitive than wall-clock time to a noisy machine (a
//! descheduled thread uses none), so it is the steadier figure to compare
//! when throughput swings between runs; for two busy threads (`pingpong2`,
//! `bulk`) it can exceed the wall time. After each workload's table comes a
//! CPU table: median ms of CPU per run and the ratio to tokio (lower is
//! better).
//!
//! Machine-readable lines follow the tables:
//! `RESULT\tworkload\timpl\tmedian\tmin\tmax\tunit\tratio\tbetter`, where
//! `ratio` is median / tokio's median and `better` says whether a higher or
//! a lower value is better. `scripts/chart.py` draws `docs/perf.svg` from
//! them. Then, per workload and implementation, the CPU time per run:
//! `CPU\tworkload\timpl\tmedian_ms\tmin_ms\tmax_ms\tratio`, where `ratio` is
//! median / tokio's median (`nan` without tokio), and lower is better.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

type BoxError = Box<dyn StdError + Send + Sync>;
type Res<T> = Result<T, BoxError>;

/// Write size of `bulk`, read buffer of every reader, and the pattern block.
const BLOCK: usize = 64 * 1024;
/// `bulk` compares every this many-th 64 KiB block of the stream in full.
const CHECK_EVERY: u64 = 16;
/// Message size of `pingpong` and `conns`.
const MSG: usize = 64;
/// Lines in the text block that `lines` repeats.
const LINES_PER_BLOCK: usize = 1000;
/// Listen backlog for every implementation: `conns` connects 2,000 clients
/// at once, and a dropped SYN would add a one-second retransmit.
const BACKLOG: i32 = 4096;

// ---------------------------------------------------------------------------
// Sizes, data and checks shared by every implementation
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Sizes {
    bulk_bytes: u64,
    pingpong: usize,
    lines: usize,
    conns: usize,
    conn_rounds: usize,
}

impl Sizes {
    const FULL: Sizes = Sizes {
        bulk_bytes: 2 << 30,
        pingpong: 100_000,
        lines: 2_000_000,
        conns: 2_000,
        conn_rounds: 20,
    };
    const QUICK: Sizes = Sizes {
        bulk_bytes: 64 << 20,
        pingpong: 2_000,
        lines: 50_000,
        conns: 100,
        conn_rounds: 5,
    };

    fn bulk_blocks(&self) -> u64 {
        self.bulk_bytes / BLOCK as u64
    }
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bulk {} MiB, pingpong {} round trips, lines {}, conns {} x {} round trips",
            self.bulk_bytes >> 20,
            self.pingpong,
            self.lines,
            self.conns,
            self.conn_rounds
        )
    }
}

struct Data {
    /// The 64 KiB block `bulk` sends over and over.
    pattern: Bytes,
    /// `LINES_PER_BLOCK` lines of text, each ending in `\n`.
    text: Bytes,
    /// Offset just past each line's `\n` in `text`.
    ends: Vec<usize>,
    /// Length of each line, without the `\n`.
    lens: Vec<usize>,
    /// First byte of each line.
    first: Vec<u8>,
}

fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let pattern: Vec<u8> = (0..BLOCK)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let mut text = Vec::new();
        let (mut ends, mut lens, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..LINES_PER_BLOCK {
            let len = 30 + (i * 7919) % 61; // 30..=90, about 60 on average
            text.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
            text.push(b'\n');
            ends.push(text.len());
            lens.push(len);
            first.push(b'a' + (i % 26) as u8);
        }
        Data {
            pattern: pattern.into(),
            text: text.into(),
            ends,
            lens,
            first,
        }
    })
}

/// Counts every byte of `bulk` and compares every `CHECK_EVERY`-th block
/// with the pattern (a mismatch in a block that is not compared still
/// shifts the stream, so the next compared block catches it).
#[derive(Default)]
struct BulkCheck {
    total: u64,
    bad: u64,
}

impl BulkCheck {
    fn feed(&mut self, mut bytes: &[u8]) {
        let pattern = &data().pattern;
        while !bytes.is_empty() {
            let offset = (self.total % BLOCK as u64) as usize;
            let n = bytes.len().min(BLOCK - offset);
            if (self.total / BLOCK as u64) % CHECK_EVERY == 0
                && bytes[..n] != pattern[offset..offset + n]
            {
                self.bad += 1;
            }
            self.total += n as u64;
            bytes = &bytes[n..];
        }
    }

    fn verify(&self, expected: u64) -> Res<()> {
        if self.total != expected || self.bad != 0 {
            return Err(format!(
                "bulk: received {} of {expected} bytes, {} mismatching pieces",
                self.total, self.bad
            )
            .into());
        }
        Ok(())
    }
}

/// Checks the length and first byte of every line, and counts them.
struct LineCheck {
    data: &'static Data,
    index: usize,
    count: u64,
    bad: u64,
}

impl LineCheck {
    fn new() -> Self {
        LineCheck {
            data: data(),
            index: 0,
            count: 0,
            bad: 0,
        }
    }

    /// One line, without its `\n`.
    #[inline]
    fn line(&mut self, line: &[u8]) {
        let i = self.index;
        if line.len() != self.data.lens[i] || line.first() != Some(&self.data.first[i]) {
            self.bad += 1;
        }
        self.index = if i + 1 == LINES_PER_BLOCK { 0 } else { i + 1 };
        self.count += 1;
    }

    /// One line as `read_until` returns it, with its `\n`.
    #[inline]
    fn line_with_newline(&mut self, line: &[u8]) {
        match line.split_last() {
            Some((b'\n', line)) => self.line(line),
            _ => {
                self.bad += 1;
                self.count += 1;
            }
        }
    }

    fn verify(&self, expected: usize) -> Res<()> {
        if self.count != expected as u64 || self.bad != 0 {
            return Err(format!(
                "lines: got {} of {expected} lines, {} wrong",
                self.count, self.bad
            )
            .into());
        }
        Ok(())
    }
}

/// The writes of `lines`: whole text blocks, then part of one.
fn line_pieces(lines: usize) -> impl Iterator<Item = Bytes> {
    let d = data();
    let full = lines / LINES_PER_BLOCK;
    let rest = lines % LINES_PER_BLOCK;
    let tail = (rest > 0).then(|| d.text.slice(..d.ends[rest - 1]));
    std::iter::repeat_n(d.text.clone(), full).chain(tail)
}

/// The message of round `round`: its number, then filler.
fn message(round: usize) -> [u8; MSG] {
    let mut msg = [b'.'; MSG];
    msg[..8].copy_from_slice(&(round as u64).to_le_bytes());
    msg
}

fn bad_echo(round: usize) -> BoxError {
    format!("round {round}: the echo differs from the message").into()
}

fn rate(units: f64, elapsed: Duration) -> f64 {
    units / elapsed.as_secs_f64()
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    rate(bytes as f64 / (1024.0 * 1024.0), elapsed)
}

/// A listening socket with `BACKLOG`, for the non-evstream servers.
fn std_listener() -> Res<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn join<T>(handle: thread::JoinHandle<Res<T>>) -> Res<T> {
    handle
        .join()
        .map_err(|_| BoxError::from("a benchmark thread panicked"))?
}

/// Runs `server` on a thread (it binds, sends its address, then serves),
/// then `client` on another thread once the address is known. Returns the
/// time from starting the client until the server returned, and both
/// results.
fn run_pair<S, C>(
    server: impl FnOnce(mpsc::Sender<SocketAddr>) -> Res<S> + Send + 'static,
    client: impl FnOnce(SocketAddr) -> Res<C> + Send + 'static,
) -> Res<(Duration, S, C)>
where
    S: Send + 'static,
    C: Send + 'static,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = thread::spawn(move || server(addr_tx));
    let Ok(addr) = addr_rx.recv() else {
        join(server)?;
        return Err("the server thread ended without an address".into());
    };
    let start = Instant::now();
    let client = thread::spawn(move || client(addr));
    let server_result = join(server);
    let elapsed = start.elapsed();
    let client_result = join(client);
    Ok((elapsed, server_result?, client_result?))
}

// ---------------------------------------------------------------------------
// evstream
// ---------------------------------------------------------------------------

mod ev {
    use std::net::SocketAddr;
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};

    use evstream::codec::{Framed, LinesCodec};
    use evstream::prelude::*;
    use evstream::{
        tcp_connect, AsyncIoStream, Event, EventLoop, LoopHandle, ServerOptions, TcpOptions,
        TcpServer,
    };
    use futures::channel::{mpsc as fmpsc, oneshot};
    use futures::{FutureExt, StreamExt};
    use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

    use super::{
        bad_echo, data, line_pieces, message, BoxError, BulkCheck, LineCheck, Res, BACKLOG, BLOCK,
        MSG,
    };

    fn connect(
        handle: &LoopHandle,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = evstream::Result<AsyncIoStream>> + Send + 'static {
        let handle = handle.clone();
        async move {
            AsyncIoStream::connect_with(
                &handle,
                &addr.ip().to_string(),
                addr.port(),
                TcpOptions::new(),
            )
            .await
        }
    }

    /// A server that closes itself once it has accepted `accepts`
    /// connections, each with `options` (plus the counting `connect_cb`,
    /// which `on_accept` extends).
    fn server(
        ev: &EventLoop,
        accepts: usize,
        options: TcpOptions,
        on_accept: impl Fn(&evstream::Socket) + Send + Sync + 'static,
    ) -> Res<TcpServer> {
        let slot: Arc<Mutex<Option<TcpServer>>> = Arc::default();
        let to_close = slot.clone();
        let accepted = std::sync::atomic::AtomicUsize::new(0);
        let options = options.connect_cb(move |socket| {
            if accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1 == accepts {
                if let Some(server) = to_close.lock().unwrap().take() {
                    server.close();
                }
            }
            on_accept(socket);
        });
        let server = TcpServer::bind(
            &ev.handle(),
            "127.0.0.1:0",
            ServerOptions::new().backlog(BACKLOG).connection(options),
        )?;
        // The callbacks run only inside `run`/`block_on` on this thread,
        // so the slot is filled before the first accept.
        *slot.lock().unwrap() = Some(server.clone());
        Ok(server)
    }

    /// A drain-mode echo server: `read_cb` writes every chunk back.
    fn echo_server(ev: &EventLoop, accepts: usize) -> Res<TcpServer> {
        let options = TcpOptions::new()
            .read_cb(|socket, bytes| {
                let _ = socket.write_bytes(bytes);
            })
            .event_cb(|socket, event| {
                if matches!(event, Event::Eof) {
                    socket.close();
                }
            });
        server(ev, accepts, options, |_| {})
    }

    /// A stream-mode echo server: each connection's stream goes to a task
    /// spawned on the loop that reads and writes it back.
    fn stream_echo_server(ev: &EventLoop, accepts: usize) -> Res<TcpServer> {
        let handle = ev.handle();
        let options = TcpOptions::new().stream(true);
        server(ev, accepts, options, move |socket| {
            handle.spawn(echo(AsyncIoStream::new(socket.clone())));
        })
    }

    async fn echo(mut stream: AsyncIoStream) {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// A server that hands the stream of its one connection to the
    /// returned receiver.
    fn accept_one(ev: &EventLoop) -> Res<(TcpServer, oneshot::Receiver<AsyncIoStream>)> {
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let server = server(ev, 1, TcpOptions::new().stream(true), move |socket| {
            if let Some(tx) = tx.lock().unwrap().take() {
                let _ = tx.send(AsyncIoStream::new(socket.clone()));
            }
        })?;
        Ok((server, rx))
    }

    // -- bulk ---------------------------------------------------------------

    /// `AsyncWriteExt::write_all(&[u8])`, or `write_all_bytes(Bytes)` (no
    /// copy) with `zero_copy`; then close (flush + FIN).
    pub fn bulk_send(addr: SocketAddr, blocks: u64, zero_copy: bool) -> Res<()> {
        let mut ev = EventLoop::new()?;
        let connecting = connect(&ev.handle(), addr);
        ev.block_on(async move {
            let mut stream = connecting.await?;
            let pattern = data().pattern.clone();
            for _ in 0..blocks {
                if zero_copy {
                    stream.write_all_bytes(pattern.clone()).await?;
                } else {
                    stream.write_all(&pattern).await?;
                }
            }
            AsyncWriteExt::close(&mut stream).await?;
            Ok(())
        })?
    }

    /// `AsyncReadExt::read` into a 64 KiB buffer.
    pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let mut ev = EventLoop::new()?;
        let (server, accepted) = accept_one(&ev)?;
        addr_tx.send(server.local_addr())?;
        ev.block_on(async move {
            let mut stream = accepted.await?;
            let mut buf = vec![0u8; BLOCK];
            let mut check = BulkCheck::default();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(check);
                }
                check.feed(&buf[..n]);
            }
        })?
    }

    /// Zero-copy: `fill_buf` lends each received chunk, `consume` drops it.
    pub fn bulk_bufread(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let mut ev = EventLoop::new()?;
        let (server, accepted) = accept_one(&ev)?;
        addr_tx.send(server.local_addr())?;
        ev.block_on(async move {
            let mut stream = accepted.await?;
            let mut check = BulkCheck::default();
            loop {
                let chunk = stream.fill_buf().await?;
                if chunk.is_empty() {
                    return Ok(check);
                }
                let n = chunk.len();
                check.feed(chunk);
                stream.consume(n);
            }
        })?
    }

    /// Drain mode: the loop hands every chunk to `read_cb`.
    pub fn bulk_read_cb(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let mut ev = EventLoop::new()?;
        let check = Arc::new(Mutex::new(BulkCheck::default()));
        let (done_tx, done_rx) = mpsc::channel();
        let fed = check.clone();
        let options = TcpOptions::new()
            .read_cb(move |_, bytes| fed.lock().unwrap().feed(&bytes))
            .event_cb(move |socket, event| match event {
                Event::Eof => {
                    let _ = done_tx.send(Ok(()));
                    socket.close();
                }
                Event::Error(err) => {
                    let _ = done_tx.send(Err(err));
                }
                _ => {}
            });
        let server = server(&ev, 1, options, |_| {})?;
        addr_tx.send(server.local_addr())?;
        ev.run()?;
        done_rx.recv()??;
        let check = std::mem::take(&mut *check.lock().unwrap());
        Ok(check)
    }

    // -- pingpong -----------------------------------------------------------

    /// Stream client: `write_all` then `read_exact` per round; times the
    /// rounds only.
    async fn ping_client(
        connecting: impl std::future::Future<Output = evstream::Result<AsyncIoStream>>,
        rounds: usize,
    ) -> Res<Duration> {
        let mut stream = connecting.await?;
        let mut reply = [0u8; MSG];
        let start = Instant::now();
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(start.elapsed())
    }

    /// Callback client: `connect_cb` sends the first message, `read_cb`
    /// checks each echo and sends the next; closes after the last.
    fn cb_client(
        handle: &LoopHandle,
        addr: SocketAddr,
        rounds: usize,
    ) -> Res<mpsc::Receiver<Res<Duration>>> {
        struct State {
            round: usize,
            start: Instant,
            pending: Vec<u8>,
            tx: mpsc::Sender<Res<Duration>>,
        }
        let (tx, rx) = mpsc::channel();
        let state = Arc::new(Mutex::new(State {
            round: 0,
            start: Instant::now(),
            pending: Vec::with_capacity(MSG),
            tx,
        }));
        let (on_connect, on_read, on_event) = (state.clone(), state.clone(), state);
        tcp_connect(
            handle,
            &addr.ip().to_string(),
            addr.port(),
            TcpOptions::new()
                .connect_cb(move |socket| {
                    on_connect.lock().unwrap().start = Instant::now();
                    let _ = socket.write(&message(0));
                })
                .read_cb(move |socket, bytes| {
                    let mut st = on_read.lock().unwrap();
                    st.pending.extend_from_slice(&bytes);
                    while st.pending.len() >= MSG {
                        let round = st.round;
                        if st.pending[..MSG] != message(round) {
                            let _ = st.tx.send(Err(bad_echo(round)));
                            socket.abort();
                            return;
                        }
                        st.pending.drain(..MSG);
                        st.round += 1;
                        if st.round == rounds {
                            let _ = st.tx.send(Ok(st.start.elapsed()));
                            socket.close();
                            return;
                        }
                        let _ = socket.write(&message(st.round));
                    }
                })
                .event_cb(move |_, event| {
                    if let Event::Error(err) = event {
                        let _ = on_event.lock().unwrap().tx.send(Err(err.into()));
                    }
                }),
        )?;
        Ok(rx)
    }

    #[derive(Clone, Copy)]
    pub enum Ping {
        /// Stream client, drain-mode `read_cb` echo server.
        Natural,
        /// Stream client, stream echo server (a task per connection).
        Streams,
        /// Callback client, `read_cb` echo server.
        Callbacks,
    }

    /// Client and server on two threads, each with its own loop.
    pub fn pingpong2(rounds: usize, how: Ping) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            move |addr_tx| {
                let mut ev = EventLoop::new()?;
                let server = match how {
                    Ping::Streams => stream_echo_server(&ev, 1)?,
                    Ping::Natural | Ping::Callbacks => echo_server(&ev, 1)?,
                };
                addr_tx.send(server.local_addr())?;
                ev.run()?;
                Ok(())
            },
            move |addr| {
                let mut ev = EventLoop::new()?;
                match how {
                    Ping::Callbacks => {
                        let done = cb_client(&ev.handle(), addr, rounds)?;
                        ev.run()?;
                        done.recv()?
                    }
                    Ping::Natural | Ping::Streams => {
                        let connecting = connect(&ev.handle(), addr);
                        ev.block_on(ping_client(connecting, rounds))?
                    }
                }
            },
        )?;
        Ok(elapsed)
    }

    /// Client and server on one loop.
    pub fn pingpong1(rounds: usize, how: Ping) -> Res<Duration> {
        let mut ev = EventLoop::new()?;
        let server = match how {
            Ping::Streams => stream_echo_server(&ev, 1)?,
            Ping::Natural | Ping::Callbacks => echo_server(&ev, 1)?,
        };
        let addr = server.local_addr();
        let elapsed = match how {
            Ping::Callbacks => {
                let done = cb_client(&ev.handle(), addr, rounds)?;
                ev.run()?;
                done.recv()??
            }
            Ping::Natural | Ping::Streams => {
                let connecting = connect(&ev.handle(), addr);
                ev.block_on(ping_client(connecting, rounds))??
            }
        };
        ev.run()?; // let both connections close
        Ok(elapsed)
    }

    // -- lines --------------------------------------------------------------

    /// `write_all_bytes` of each text block (no copy), then close.
    pub fn lines_send(addr: SocketAddr, lines: usize) -> Res<()> {
        let mut ev = EventLoop::new()?;
        let connecting = connect(&ev.handle(), addr);
        ev.block_on(async move {
            let mut stream = connecting.await?;
            for piece in line_pieces(lines) {
                stream.write_all_bytes(piece).await?;
            }
            AsyncWriteExt::close(&mut stream).await?;
            Ok(())
        })?
    }

    /// Longest line the evstream framers accept.
    const MAX_LINE: usize = 4096;

    #[derive(Clone, Copy)]
    pub enum Lines {
        /// `fill_buf` chunks + memchr; a line split between chunks is
        /// joined in a reused `Vec`.
        Chunks,
        /// The stream's own `read_until(b"\n", max)`: each line as `Bytes`,
        /// a slice of the received chunk when it lies in one.
        ReadUntil,
        /// futures' `AsyncBufReadExt::read_until` into a reused `Vec` (no
        /// BufReader: the stream is `AsyncBufRead` itself).
        FuturesReadUntil,
        /// `AsyncBufReadExt::lines` (a `String` per line).
        Strings,
        /// `codec::Framed` with `LinesCodec`: a `Stream` of `Bytes` lines.
        Codec,
    }

    pub fn lines_recv(addr_tx: mpsc::Sender<SocketAddr>, how: Lines) -> Res<LineCheck> {
        let mut ev = EventLoop::new()?;
        let (server, accepted) = accept_one(&ev)?;
        addr_tx.send(server.local_addr())?;
        ev.block_on(async move {
            let mut stream = accepted.await?;
            let mut check = LineCheck::new();
            match how {
                Lines::Chunks => {
                    let mut partial = Vec::new();
                    loop {
                        let chunk = stream.fill_buf().await?;
                        if chunk.is_empty() {
                            break;
                        }
                        let mut start = 0;
                        for end in memchr::memchr_iter(b'\n', chunk) {
                            if partial.is_empty() {
                                check.line(&chunk[start..end]);
                            } else {
                                partial.extend_from_slice(&chunk[start..end]);
                                check.line(&partial);
                                partial.clear();
                            }
                            start = end + 1;
                        }
                        partial.extend_from_slice(&chunk[start..]);
                        let n = chunk.len();
                        stream.consume(n);
                    }
                    if !partial.is_empty() {
                        check.bad += 1;
                    }
                }
                Lines::ReadUntil => loop {
                    match stream.read_until(b"\n", MAX_LINE).await {
                        Ok(line) => check.line_with_newline(&line),
                        Err(evstream::Error::UnexpectedEof { received: 0, .. }) => break,
                        Err(err) => return Err(err.into()),
                    }
                },
                Lines::FuturesReadUntil => {
                    let mut line = Vec::with_capacity(256);
                    while AsyncBufReadExt::read_until(&mut stream, b'\n', &mut line).await? > 0 {
                        check.line_with_newline(&line);
                        line.clear();
                    }
                }
                Lines::Strings => {
                    let mut lines = stream.lines();
                    while let Some(line) = lines.next().await {
                        check.line(line?.as_bytes());
                    }
                }
                Lines::Codec => {
                    let mut frames = Framed::new(stream, LinesCodec::lf(MAX_LINE));
                    while let Some(line) = frames.next().await {
                        check.line(&line?);
                    }
                }
            }
            Ok(check)
        })?
    }

    /// `TcpOptions::on_frame` with `LinesCodec`: the loop calls back with
    /// each whole line. The callback owns the check and hands it over after
    /// the last expected line.
    pub fn lines_on_frame(addr_tx: mpsc::Sender<SocketAddr>, lines: usize) -> Res<LineCheck> {
        let mut ev = EventLoop::new()?;
        let (tx, rx) = mpsc::channel::<Res<LineCheck>>();
        let check = Mutex::new(Some(LineCheck::new()));
        let on_error = tx.clone();
        let options = TcpOptions::new()
            .on_frame(LinesCodec::lf(MAX_LINE), move |_, line| {
                let mut check = check.lock().unwrap();
                let result = match (line, check.as_mut()) {
                    (Ok(line), Some(c)) => {
                        c.line(&line);
                        if c.count < lines as u64 {
                            return;
                        }
                        Ok(check.take().expect("checked above"))
                    }
                    (Ok(_), None) => Err("a line after the last one".into()),
                    (Err(err), _) => Err(err.into()),
                };
                let _ = tx.send(result);
            })
            .event_cb(move |socket, event| match event {
                Event::Eof => socket.close(),
                Event::Error(err) => {
                    let _ = on_error.send(Err(err.into()));
                }
                _ => {}
            });
        let server = server(&ev, 1, options, |_| {})?;
        addr_tx.send(server.local_addr())?;
        ev.run()?;
        let check = rx.try_recv().map_err(|_| "fewer lines than expected")??;
        if let Ok(extra) = rx.try_recv() {
            extra?;
            return Err("more than one result".into());
        }
        Ok(check)
    }

    /// std `BufRead::read_until` through the `Blocking` adaptor, on a plain
    /// thread, with the loop on a background thread (`EventLoop::spawn`).
    pub fn lines_blocking(addr_tx: mpsc::Sender<SocketAddr>) -> Res<LineCheck> {
        use std::io::BufRead;
        let handle = EventLoop::spawn()?;
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let server = TcpServer::bind(
            &handle,
            "127.0.0.1:0",
            ServerOptions::new().connection(TcpOptions::new().stream_connect_cb(move |stream| {
                let _ = tx.lock().unwrap().send(stream);
            })),
        )?;
        addr_tx.send(server.local_addr())?;
        let result = (|| {
            let stream = rx.recv()?;
            server.close();
            let mut reader = stream.blocking();
            let mut check = LineCheck::new();
            let mut line = Vec::with_capacity(256);
            while reader.read_until(b'\n', &mut line)? > 0 {
                check.line_with_newline(&line);
                line.clear();
            }
            Ok(check)
        })();
        handle.stop();
        result
    }

    // -- conns --------------------------------------------------------------

    /// `conns` on evstream: a drain-mode echo server on one thread; on the
    /// other, a task per client spawned on the client loop.
    pub fn conns(n: usize, rounds: usize, start: Instant) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            move |addr_tx| {
                let mut ev = EventLoop::new()?;
                let server = echo_server(&ev, n)?;
                addr_tx.send(server.local_addr())?;
                ev.run()?;
                Ok(())
            },
            move |addr| {
                let mut ev = EventLoop::new()?;
                let handle = ev.handle();
                let (done_tx, mut done_rx) = fmpsc::unbounded::<Res<()>>();
                let (release_tx, release_rx) = oneshot::channel::<()>();
                let release = release_rx.shared();
                for _ in 0..n {
                    let connecting = connect(&handle, addr);
                    let done = done_tx.clone();
                    let release = release.clone();
                    handle.spawn(async move {
                        match client_rounds(connecting, rounds).await {
                            Ok(stream) => {
                                let _ = done.unbounded_send(Ok(()));
                                let _ = release.await;
                                drop(stream);
                            }
                            Err(err) => {
                                let _ = done.unbounded_send(Err(err));
                            }
                        }
                    });
                }
                let elapsed = ev.block_on(async move {
                    for _ in 0..n {
                        done_rx.next().await.ok_or("a client vanished")??;
                    }
                    Ok::<_, BoxError>(start.elapsed())
                })??;
                let _ = release_tx.send(());
                ev.run()?;
                Ok(elapsed)
            },
        )?;
        Ok(elapsed)
    }

    async fn client_rounds(
        connecting: impl std::future::Future<Output = evstream::Result<AsyncIoStream>>,
        rounds: usize,
    ) -> Res<AsyncIoStream> {
        let mut stream = connecting.await?;
        let mut reply = [0u8; MSG];
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(stream)
    }
}

// ---------------------------------------------------------------------------
// tokio: a current-thread runtime per side
// ---------------------------------------------------------------------------

mod tk {
    use std::net::SocketAddr;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use futures::channel::{mpsc as fmpsc, oneshot};
    use futures::{FutureExt, StreamExt};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::runtime::Runtime;
    use tokio_util::codec::{FramedRead, LinesCodec};

    use super::{
        bad_echo, data, line_pieces, message, std_listener, BoxError, BulkCheck, LineCheck, Res,
        BLOCK, MSG,
    };

    fn runtime() -> Res<Runtime> {
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?)
    }

    /// A bound listener (std, non-blocking) and its address; it becomes a
    /// tokio listener inside the runtime.
    fn listener() -> Res<(std::net::TcpListener, SocketAddr)> {
        let listener = std_listener()?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        Ok((listener, addr))
    }

    async fn accept(listener: std::net::TcpListener) -> Res<TcpStream> {
        let listener = TcpListener::from_std(listener)?;
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn connect(addr: SocketAddr) -> Res<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn echo(mut stream: TcpStream) -> Res<()> {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    }

    async fn ping_client(mut stream: TcpStream, rounds: usize) -> Res<Duration> {
        let mut reply = [0u8; MSG];
        let start = Instant::now();
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(start.elapsed())
    }

    pub fn bulk_send(addr: SocketAddr, blocks: u64) -> Res<()> {
        runtime()?.block_on(async move {
            let mut stream = connect(addr).await?;
            let pattern = &data().pattern[..];
            for _ in 0..blocks {
                stream.write_all(pattern).await?;
            }
            stream.shutdown().await?;
            Ok(())
        })
    }

    pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let (listener, addr) = listener()?;
        addr_tx.send(addr)?;
        runtime()?.block_on(async move {
            let mut stream = accept(listener).await?;
            let mut buf = vec![0u8; BLOCK];
            let mut check = BulkCheck::default();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(check);
                }
                check.feed(&buf[..n]);
            }
        })
    }

    pub fn pingpong2(rounds: usize) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            |addr_tx| {
                let (listener, addr) = listener()?;
                addr_tx.send(addr)?;
                runtime()?.block_on(async move { echo(accept(listener).await?).await })
            },
            move |addr| {
                runtime()?.block_on(async move { ping_client(connect(addr).await?, rounds).await })
            },
        )?;
        Ok(elapsed)
    }

    /// Server task spawned on the runtime; the client in `block_on`.
    pub fn pingpong1(rounds: usize) -> Res<Duration> {
        let (listener, addr) = listener()?;
        runtime()?.block_on(async move {
            let server = tokio::spawn(async move { echo(accept(listener).await?).await });
            let elapsed = ping_client(connect(addr).await?, rounds).await?;
            server.await??;
            Ok(elapsed)
        })
    }

    pub fn lines_send(addr: SocketAddr, lines: usize) -> Res<()> {
        runtime()?.block_on(async move {
            let mut stream = connect(addr).await?;
            for piece in line_pieces(lines) {
                stream.write_all(&piece).await?;
            }
            stream.shutdown().await?;
            Ok(())
        })
    }

    /// `BufReader::lines` (64 KiB buffer), or tokio-util's `LinesCodec`
    /// with `codec`.
    pub fn lines_recv(addr_tx: mpsc::Sender<SocketAddr>, codec: bool) -> Res<LineCheck> {
        let (listener, addr) = listener()?;
        addr_tx.send(addr)?;
        runtime()?.block_on(async move {
            let stream = accept(listener).await?;
            let mut check = LineCheck::new();
            if codec {
                let mut frames = FramedRead::new(stream, LinesCodec::new());
                while let Some(line) = frames.next().await {
                    check.line(line?.as_bytes());
                }
            } else {
                let mut lines = BufReader::with_capacity(BLOCK, stream).lines();
                while let Some(line) = lines.next_line().await? {
                    check.line(line.as_bytes());
                }
            }
            Ok(check)
        })
    }

    /// A task per connection on both sides.
    pub fn conns(n: usize, rounds: usize, start: Instant) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            move |addr_tx| {
                let (listener, addr) = listener()?;
                addr_tx.send(addr)?;
                runtime()?.block_on(async move {
                    let listener = TcpListener::from_std(listener)?;
                    let mut tasks = Vec::with_capacity(n);
                    for _ in 0..n {
                        let (stream, _) = listener.accept().await?;
                        stream.set_nodelay(true)?;
                        tasks.push(tokio::spawn(echo(stream)));
                    }
                    for task in tasks {
                        task.await??;
                    }
                    Ok(())
                })
            },
            move |addr| {
                runtime()?.block_on(async move {
                    let (done_tx, mut done_rx) = fmpsc::unbounded::<Res<()>>();
                    let (release_tx, release_rx) = oneshot::channel::<()>();
                    let release = release_rx.shared();
                    let mut tasks = Vec::with_capacity(n);
                    for _ in 0..n {
                        let done = done_tx.clone();
                        let release = release.clone();
                        tasks.push(tokio::spawn(async move {
                            match client_rounds(addr, rounds).await {
                                Ok(stream) => {
                                    let _ = done.unbounded_send(Ok(()));
                                    let _ = release.await;
                                    drop(stream);
                                }
                                Err(err) => {
                                    let _ = done.unbounded_send(Err(err));
                                }
                            }
                        }));
                    }
                    for _ in 0..n {
                        done_rx.next().await.ok_or("a client vanished")??;
                    }
                    let elapsed = start.elapsed();
                    let _ = release_tx.send(());
                    for task in tasks {
                        task.await?;
                    }
                    Ok::<_, BoxError>(elapsed)
                })
            },
        )?;
        Ok(elapsed)
    }

    async fn client_rounds(addr: SocketAddr, rounds: usize) -> Res<TcpStream> {
        let mut stream = connect(addr).await?;
        let mut reply = [0u8; MSG];
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(stream)
    }
}

// ---------------------------------------------------------------------------
// async-io: async_io::block_on + Async<TcpStream>
// ---------------------------------------------------------------------------

mod aio {
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use async_io::{block_on, Async};
    use futures::channel::{mpsc as fmpsc, oneshot};
    use futures::stream::FuturesUnordered;
    use futures::{FutureExt, StreamExt};
    use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

    use super::{
        bad_echo, data, line_pieces, message, std_listener, BoxError, BulkCheck, LineCheck, Res,
        BLOCK, MSG,
    };

    fn listener() -> Res<(Async<TcpListener>, SocketAddr)> {
        let listener = Async::new(std_listener()?)?;
        let addr = listener.get_ref().local_addr()?;
        Ok((listener, addr))
    }

    async fn accept(listener: &Async<TcpListener>) -> Res<Async<TcpStream>> {
        let (stream, _) = listener.accept().await?;
        stream.get_ref().set_nodelay(true)?;
        Ok(stream)
    }

    async fn connect(addr: SocketAddr) -> Res<Async<TcpStream>> {
        let stream = Async::<TcpStream>::connect(addr).await?;
        stream.get_ref().set_nodelay(true)?;
        Ok(stream)
    }

    async fn echo(mut stream: Async<TcpStream>) -> Res<()> {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n]).await?;
        }
    }

    async fn ping_client(mut stream: Async<TcpStream>, rounds: usize) -> Res<Duration> {
        let mut reply = [0u8; MSG];
        let start = Instant::now();
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(start.elapsed())
    }

    pub fn bulk_send(addr: SocketAddr, blocks: u64) -> Res<()> {
        block_on(async move {
            let mut stream = connect(addr).await?;
            let pattern = &data().pattern[..];
            for _ in 0..blocks {
                stream.write_all(pattern).await?;
            }
            stream.close().await?;
            Ok(())
        })
    }

    pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let (listener, addr) = listener()?;
        addr_tx.send(addr)?;
        block_on(async move {
            let mut stream = accept(&listener).await?;
            let mut buf = vec![0u8; BLOCK];
            let mut check = BulkCheck::default();
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(check);
                }
                check.feed(&buf[..n]);
            }
        })
    }

    pub fn pingpong2(rounds: usize) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            |addr_tx| {
                let (listener, addr) = listener()?;
                addr_tx.send(addr)?;
                block_on(async move { echo(accept(&listener).await?).await })
            },
            move |addr| block_on(async move { ping_client(connect(addr).await?, rounds).await }),
        )?;
        Ok(elapsed)
    }

    /// Server and client futures zipped in one `block_on`.
    pub fn pingpong1(rounds: usize) -> Res<Duration> {
        let (listener, addr) = listener()?;
        block_on(async move {
            let server = async { echo(accept(&listener).await?).await };
            let client = async { ping_client(connect(addr).await?, rounds).await };
            let (served, elapsed) = futures_lite::future::zip(server, client).await;
            served?;
            elapsed
        })
    }

    pub fn lines_send(addr: SocketAddr, lines: usize) -> Res<()> {
        block_on(async move {
            let mut stream = connect(addr).await?;
            for piece in line_pieces(lines) {
                stream.write_all(&piece).await?;
            }
            stream.close().await?;
            Ok(())
        })
    }

    /// futures-lite `BufReader` (64 KiB) + `read_until` into a reused `Vec`.
    pub fn lines_recv(addr_tx: mpsc::Sender<SocketAddr>) -> Res<LineCheck> {
        let (listener, addr) = listener()?;
        addr_tx.send(addr)?;
        block_on(async move {
            let mut reader = BufReader::with_capacity(BLOCK, accept(&listener).await?);
            let mut check = LineCheck::new();
            let mut line = Vec::with_capacity(256);
            while reader.read_until(b'\n', &mut line).await? > 0 {
                check.line_with_newline(&line);
                line.clear();
            }
            Ok(check)
        })
    }

    /// async-io has no executor: both sides drive their connections as a
    /// `FuturesUnordered` inside `block_on`; the server accepts meanwhile.
    pub fn conns(n: usize, rounds: usize, start: Instant) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            move |addr_tx| {
                let (listener, addr) = listener()?;
                addr_tx.send(addr)?;
                block_on(serve(listener, n))
            },
            move |addr| {
                block_on(async move {
                    let (done_tx, mut done_rx) = fmpsc::unbounded::<Res<()>>();
                    let (release_tx, release_rx) = oneshot::channel::<()>();
                    let release = release_rx.shared();
                    let mut clients: FuturesUnordered<_> = (0..n)
                        .map(|_| {
                            let done = done_tx.clone();
                            let release = release.clone();
                            async move {
                                match client_rounds(addr, rounds).await {
                                    Ok(stream) => {
                                        let _ = done.unbounded_send(Ok(()));
                                        let _ = release.await;
                                        drop(stream);
                                    }
                                    Err(err) => {
                                        let _ = done.unbounded_send(Err(err));
                                    }
                                }
                            }
                        })
                        .collect();
                    let waiting = async {
                        for _ in 0..n {
                            done_rx.next().await.ok_or("a client vanished")??;
                        }
                        Ok::<_, BoxError>(start.elapsed())
                    };
                    let running = async { while clients.next().await.is_some() {} };
                    let (elapsed, ()) = futures_lite::future::zip(
                        async {
                            let elapsed = waiting.await;
                            let _ = release_tx.send(());
                            elapsed
                        },
                        running,
                    )
                    .await;
                    elapsed
                })
            },
        )?;
        Ok(elapsed)
    }

    async fn serve(listener: Async<TcpListener>, n: usize) -> Res<()> {
        let mut tasks = FuturesUnordered::new();
        let mut accepted = 0;
        let accepting = listener.accept().fuse();
        futures::pin_mut!(accepting);
        loop {
            futures::select! {
                result = accepting => {
                    let (stream, _) = result?;
                    stream.get_ref().set_nodelay(true)?;
                    tasks.push(echo(stream));
                    accepted += 1;
                    if accepted < n {
                        accepting.set(listener.accept().fuse());
                    }
                }
                result = tasks.select_next_some() => result?,
                complete => return Ok(()),
            }
        }
    }

    async fn client_rounds(addr: SocketAddr, rounds: usize) -> Res<Async<TcpStream>> {
        let mut stream = connect(addr).await?;
        let mut reply = [0u8; MSG];
        for round in 0..rounds {
            let msg = message(round);
            stream.write_all(&msg).await?;
            stream.read_exact(&mut reply).await?;
            if reply != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(stream)
    }
}

// ---------------------------------------------------------------------------
// blocking std::net
// ---------------------------------------------------------------------------

mod stdnet {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpStream};
    use std::sync::{mpsc, Arc, Condvar, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};

    use super::{
        bad_echo, data, join, line_pieces, message, std_listener, BulkCheck, LineCheck, Res, BLOCK,
        MSG,
    };

    fn connect(addr: SocketAddr) -> Res<TcpStream> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn echo(mut stream: TcpStream) -> Res<()> {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            stream.write_all(&buf[..n])?;
        }
    }

    fn ping(stream: &mut TcpStream, round: usize) -> Res<()> {
        let msg = message(round);
        let mut reply = [0u8; MSG];
        stream.write_all(&msg)?;
        stream.read_exact(&mut reply)?;
        if reply != msg {
            return Err(bad_echo(round));
        }
        Ok(())
    }

    pub fn bulk_send(addr: SocketAddr, blocks: u64) -> Res<()> {
        let mut stream = connect(addr)?;
        let pattern = &data().pattern[..];
        for _ in 0..blocks {
            stream.write_all(pattern)?;
        }
        stream.shutdown(Shutdown::Write)?;
        Ok(())
    }

    pub fn bulk_read(addr_tx: mpsc::Sender<SocketAddr>) -> Res<BulkCheck> {
        let listener = std_listener()?;
        addr_tx.send(listener.local_addr()?)?;
        let (mut stream, _) = listener.accept()?;
        let mut buf = vec![0u8; BLOCK];
        let mut check = BulkCheck::default();
        loop {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                return Ok(check);
            }
            check.feed(&buf[..n]);
        }
    }

    pub fn pingpong2(rounds: usize) -> Res<Duration> {
        let (_, (), elapsed) = super::run_pair(
            |addr_tx| {
                let listener = std_listener()?;
                addr_tx.send(listener.local_addr()?)?;
                let (stream, _) = listener.accept()?;
                stream.set_nodelay(true)?;
                echo(stream)
            },
            move |addr| {
                let mut stream = connect(addr)?;
                let start = Instant::now();
                for round in 0..rounds {
                    ping(&mut stream, round)?;
                }
                Ok(start.elapsed())
            },
        )?;
        Ok(elapsed)
    }

    /// One thread, blocking sockets in lock step: the client writes, the
    /// server reads the 64 bytes (already delivered by loopback) and
    /// writes them back, the client reads. No readiness API at all: the
    /// floor of four system calls per round trip.
    pub fn pingpong1(rounds: usize) -> Res<Duration> {
        let listener = std_listener()?;
        let mut client = connect(listener.local_addr()?)?;
        let (mut server, _) = listener.accept()?;
        server.set_nodelay(true)?;
        let mut buf = [0u8; MSG];
        let start = Instant::now();
        for round in 0..rounds {
            let msg = message(round);
            client.write_all(&msg)?;
            server.read_exact(&mut buf)?;
            server.write_all(&buf)?;
            client.read_exact(&mut buf)?;
            if buf != msg {
                return Err(bad_echo(round));
            }
        }
        Ok(start.elapsed())
    }

    pub fn lines_send(addr: SocketAddr, lines: usize) -> Res<()> {
        let mut stream = connect(addr)?;
        for piece in line_pieces(lines) {
            stream.write_all(&piece)?;
        }
        stream.shutdown(Shutdown::Write)?;
        Ok(())
    }

    /// `BufReader` (64 KiB) + `read_until` into a reused `Vec`.
    pub fn lines_recv(addr_tx: mpsc::Sender<SocketAddr>) -> Res<LineCheck> {
        let listener = std_listener()?;
        addr_tx.send(listener.local_addr()?)?;
        let (stream, _) = listener.accept()?;
        let mut reader = BufReader::with_capacity(BLOCK, stream);
        let mut check = LineCheck::new();
        let mut line = Vec::with_capacity(256);
        while reader.read_until(b'\n', &mut line)? > 0 {
            check.line_with_newline(&line);
            line.clear();
        }
        Ok(check)
    }

    /// A thread per connection on both sides (64 KiB stacks).
    pub fn conns(n: usize, rounds: usize, start: Instant) -> Res<Duration> {
        const STACK: usize = 64 * 1024;
        let (_, (), elapsed) = super::run_pair(
            move |addr_tx| {
                let listener = std_listener()?;
                addr_tx.send(listener.local_addr()?)?;
                let mut threads = Vec::with_capacity(n);
                for _ in 0..n {
                    let (stream, _) = listener.accept()?;
                    stream.set_nodelay(true)?;
                    threads.push(
                        thread::Builder::new()
                            .stack_size(STACK)
                            .spawn(move || echo(stream))?,
                    );
                }
                for thread in threads {
                    join(thread)?;
                }
                Ok(())
            },
            move |addr| {
                let (done_tx, done_rx) = mpsc::channel::<Res<()>>();
                let release = Arc::new((Mutex::new(false), Condvar::new()));
                let mut threads = Vec::with_capacity(n);
                for _ in 0..n {
                    let done = done_tx.clone();
                    let release = release.clone();
                    threads.push(thread::Builder::new().stack_size(STACK).spawn(move || {
                        let run = || -> Res<TcpStream> {
                            let mut stream = connect(addr)?;
                            for round in 0..rounds {
                                ping(&mut stream, round)?;
                            }
                            Ok(stream)
                        };
                        match run() {
                            Ok(stream) => {
                                let _ = done.send(Ok(()));
                                let (lock, cvar) = &*release;
                                let mut released = lock.lock().unwrap();
                                while !*released {
                                    released = cvar.wait(released).unwrap();
                                }
                                drop(stream);
                            }
                            Err(err) => {
                                let _ = done.send(Err(err));
                            }
                        }
                        Ok(())
                    })?);
                }
                for _ in 0..n {
                    done_rx.recv()??;
                }
                let elapsed = start.elapsed();
                *release.0.lock().unwrap() = true;
                release.1.notify_all();
                for thread in threads {
                    join(thread)?;
                }
                Ok(elapsed)
            },
        )?;
        Ok(elapsed)
    }
}

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

type RunFn = fn(&Sizes) -> Res<Run>;

/// What one run returns.
struct Run {
    /// A value per metric of its workload.
    values: Vec<f64>,
    /// The CPU time of a run made in a child process, as the child measured
    /// it; `None` for a run in this process, which the caller measures.
    child_cpu: Option<Duration>,
}

impl Run {
    fn here(values: Vec<f64>) -> Res<Run> {
        Ok(Run {
            values,
            child_cpu: None,
        })
    }
}

struct Case {
    workload: &'static str,
    imp: &'static str,
    what: &'static str,
    run: RunFn,
}

struct Metric {
    workload: &'static str,
    unit: &'static str,
    higher_is_better: bool,
}

struct Workload {
    name: &'static str,
    title: fn(&Sizes) -> String,
    /// What each value of a run's result is.
    metrics: &'static [Metric],
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "bulk",
        title: |s| {
            format!(
                "bulk: one connection, {} MiB in 64 KiB writes, read into 64 KiB",
                s.bulk_bytes >> 20
            )
        },
        metrics: &[Metric {
            workload: "bulk",
            unit: "MiB/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "pingpong2",
        title: |s| {
            format!(
                "pingpong2: {} round trips of 64 bytes, client and server on two threads",
                s.pingpong
            )
        },
        metrics: &[Metric {
            workload: "pingpong2",
            unit: "rt/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "pingpong1",
        title: |s| {
            format!(
                "pingpong1: {} round trips of 64 bytes, client and server on one thread",
                s.pingpong
            )
        },
        metrics: &[Metric {
            workload: "pingpong1",
            unit: "rt/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "lines",
        title: |s| format!("lines: {} lines of 30-90 bytes, split and counted", s.lines),
        metrics: &[Metric {
            workload: "lines",
            unit: "Mlines/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "conns",
        title: |s| {
            format!(
                "conns: {} concurrent connections x {} round trips of 64 bytes, one child process per run",
                s.conns, s.conn_rounds
            )
        },
        metrics: &[
            Metric {
                workload: "conns",
                unit: "ms",
                higher_is_better: false,
            },
            Metric {
                workload: "conns-rss",
                unit: "MiB",
                higher_is_better: false,
            },
        ],
    },
];

fn bulk_case(
    s: &Sizes,
    server: fn(mpsc::Sender<SocketAddr>) -> Res<BulkCheck>,
    client: fn(SocketAddr, u64) -> Res<()>,
) -> Res<Run> {
    let blocks = s.bulk_blocks();
    let (elapsed, check, ()) = run_pair(server, move |addr| client(addr, blocks))?;
    check.verify(blocks * BLOCK as u64)?;
    Run::here(vec![mib_per_s(check.total, elapsed)])
}

fn lines_case(
    s: &Sizes,
    server: fn(mpsc::Sender<SocketAddr>, usize) -> Res<LineCheck>,
    client: fn(SocketAddr, usize) -> Res<()>,
) -> Res<Run> {
    let lines = s.lines;
    let (elapsed, check, ()) = run_pair(
        move |addr_tx| server(addr_tx, lines),
        move |addr| client(addr, lines),
    )?;
    check.verify(lines)?;
    Run::here(vec![rate(lines as f64 / 1e6, elapsed)])
}

fn ping_result(s: &Sizes, elapsed: Res<Duration>) -> Res<Run> {
    Run::here(vec![rate(s.pingpong as f64, elapsed?)])
}

const CASES: &[Case] = &[
    // bulk
    Case {
        workload: "bulk",
        imp: "evstream",
        what: "AsyncRead::read into 64 KiB; sender AsyncWrite::write_all(&[u8])",
        run: |s| bulk_case(s, ev::bulk_read, |a, b| ev::bulk_send(a, b, false)),
    },
    Case {
        workload: "bulk",
        imp: "evstream-zc",
        what: "zero-copy AsyncBufRead fill_buf/consume; sender write_all_bytes(Bytes)",
        run: |s| bulk_case(s, ev::bulk_bufread, |a, b| ev::bulk_send(a, b, true)),
    },
    Case {
        workload: "bulk",
        imp: "evstream-cb",
        what: "drain-mode read_cb gets each chunk; sender write_all_bytes(Bytes)",
        run: |s| bulk_case(s, ev::bulk_read_cb, |a, b| ev::bulk_send(a, b, true)),
    },
    Case {
        workload: "bulk",
        imp: "tokio",
        what: "AsyncReadExt::read into 64 KiB; write_all",
        run: |s| bulk_case(s, tk::bulk_read, tk::bulk_send),
    },
    Case {
        workload: "bulk",
        imp: "async-io",
        what: "AsyncReadExt::read into 64 KiB; write_all",
        run: |s| bulk_case(s, aio::bulk_read, aio::bulk_send),
    },
    Case {
        workload: "bulk",
        imp: "std",
        what: "blocking read into 64 KiB; write_all",
        run: |s| bulk_case(s, stdnet::bulk_read, stdnet::bulk_send),
    },
    // pingpong, two threads
    Case {
        workload: "pingpong2",
        imp: "evstream",
        what: "stream client (write_all + read_exact in block_on); drain-mode read_cb echo server",
        run: |s| ping_result(s, ev::pingpong2(s.pingpong, ev::Ping::Natural)),
    },
    Case {
        workload: "pingpong2",
        imp: "evstream-stream",
        what: "stream client; stream server (read + write_all in a task spawned on its loop)",
        run: |s| ping_result(s, ev::pingpong2(s.pingpong, ev::Ping::Streams)),
    },
    Case {
        workload: "pingpong2",
        imp: "evstream-cb",
        what: "callback client (read_cb sends the next message); read_cb echo server",
        run: |s| ping_result(s, ev::pingpong2(s.pingpong, ev::Ping::Callbacks)),
    },
    Case {
        workload: "pingpong2",
        imp: "tokio",
        what: "write_all + read_exact; echo server read + write_all",
        run: |s| ping_result(s, tk::pingpong2(s.pingpong)),
    },
    Case {
        workload: "pingpong2",
        imp: "async-io",
        what: "write_all + read_exact; echo server read + write_all",
        run: |s| ping_result(s, aio::pingpong2(s.pingpong)),
    },
    Case {
        workload: "pingpong2",
        imp: "std",
        what: "blocking write_all + read_exact; echo server thread",
        run: |s| ping_result(s, stdnet::pingpong2(s.pingpong)),
    },
    // pingpong, one thread
    Case {
        workload: "pingpong1",
        imp: "evstream",
        what: "one loop: stream client in block_on, read_cb echo server",
        run: |s| ping_result(s, ev::pingpong1(s.pingpong, ev::Ping::Natural)),
    },
    Case {
        workload: "pingpong1",
        imp: "evstream-stream",
        what: "one loop: stream client in block_on, stream server task spawned on the loop",
        run: |s| ping_result(s, ev::pingpong1(s.pingpong, ev::Ping::Streams)),
    },
    Case {
        workload: "pingpong1",
        imp: "evstream-cb",
        what: "one loop: callback client, read_cb echo server",
        run: |s| ping_result(s, ev::pingpong1(s.pingpong, ev::Ping::Callbacks)),
    },
    Case {
        workload: "pingpong1",
        imp: "tokio",
        what: "one current-thread runtime: server task spawned, client in block_on",
        run: |s| ping_result(s, tk::pingpong1(s.pingpong)),
    },
    Case {
        workload: "pingpong1",
        imp: "async-io",
        what: "server and client futures zipped in one block_on",
        run: |s| ping_result(s, aio::pingpong1(s.pingpong)),
    },
    Case {
        workload: "pingpong1",
        imp: "std-lockstep",
        what: "blocking sockets in lock step on one thread (4 syscalls per round trip, no poller)",
        run: |s| ping_result(s, stdnet::pingpong1(s.pingpong)),
    },
    // lines
    Case {
        workload: "lines",
        imp: "evstream",
        what: "the stream's read_until(b\"\\n\", 4096): a Bytes per line, no copy within a chunk",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::ReadUntil),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-chunks",
        what: "zero-copy fill_buf chunks + memchr, split lines joined in a reused Vec",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::Chunks),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-codec",
        what: "codec::Framed + LinesCodec::lf(4096): a Stream of Bytes lines",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::Codec),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-on_frame",
        what: "TcpOptions::on_frame(LinesCodec): the loop calls back with each line",
        run: |s| lines_case(s, ev::lines_on_frame, ev::lines_send),
    },
    Case {
        workload: "lines",
        imp: "evstream-futures",
        what: "futures AsyncBufReadExt::read_until into a reused Vec, on the stream (no BufReader)",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::FuturesReadUntil),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-lines",
        what: "futures AsyncBufReadExt::lines (a String per line)",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::Strings),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-blocking",
        what:
            "Blocking adaptor, std BufRead::read_until on a plain thread (loop on its own thread)",
        run: |s| lines_case(s, |tx, _| ev::lines_blocking(tx), ev::lines_send),
    },
    Case {
        workload: "lines",
        imp: "tokio",
        what: "BufReader::with_capacity(64 KiB).lines(), next_line",
        run: |s| lines_case(s, |tx, _| tk::lines_recv(tx, false), tk::lines_send),
    },
    Case {
        workload: "lines",
        imp: "tokio-codec",
        what: "tokio-util FramedRead + LinesCodec",
        run: |s| lines_case(s, |tx, _| tk::lines_recv(tx, true), tk::lines_send),
    },
    Case {
        workload: "lines",
        imp: "async-io",
        what: "futures-lite BufReader (64 KiB) + read_until into a reused Vec",
        run: |s| lines_case(s, |tx, _| aio::lines_recv(tx), aio::lines_send),
    },
    Case {
        workload: "lines",
        imp: "std",
        what: "BufReader::with_capacity(64 KiB) + read_until into a reused Vec",
        run: |s| lines_case(s, |tx, _| stdnet::lines_recv(tx), stdnet::lines_send),
    },
    // conns, each run in a child process
    Case {
        workload: "conns",
        imp: "evstream",
        what: "read_cb echo server loop; client loop with a spawned task per connection",
        run: |s| conns_in_child("evstream", s),
    },
    Case {
        workload: "conns",
        imp: "tokio",
        what: "a spawned task per connection on each side's current-thread runtime",
        run: |s| conns_in_child("tokio", s),
    },
    Case {
        workload: "conns",
        imp: "async-io",
        what: "FuturesUnordered of connections in each side's block_on",
        run: |s| conns_in_child("async-io", s),
    },
    Case {
        workload: "conns",
        imp: "std",
        what: "a thread per connection on each side (64 KiB stacks)",
        run: |s| conns_in_child("std", s),
    },
];

type ConnsFn = fn(usize, usize, Instant) -> Res<Duration>;

fn conns_fn(imp: &str) -> Option<ConnsFn> {
    Some(match imp {
        "evstream" => ev::conns,
        "tokio" => tk::conns,
        "async-io" => aio::conns,
        "std" => stdnet::conns,
        _ => return None,
    })
}

/// Runs one `conns` implementation in a fresh process of this binary and
/// returns its time (ms) and peak RSS (MiB), and the child's CPU time.
fn conns_in_child(imp: &str, s: &Sizes) -> Res<Run> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--child", imp])
        .args(["--conns", &s.conns.to_string()])
        .args(["--conn-rounds", &s.conn_rounds.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("conns child for {imp} failed: {}", output.status).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("CHILD\t"))
        .ok_or_else(|| format!("conns child for {imp} printed no result: {stdout:?}"))?;
    let fields: Vec<f64> = line.split('\t').map(str::parse).collect::<Result<_, _>>()?;
    let [ms, hwm_kib, base_kib, cpu_ms] = fields[..] else {
        return Err(format!("bad child result {line:?}").into());
    };
    eprintln!(
        "    child {imp}: peak RSS {:.1} MiB (at start {:.1} MiB, {:.1} KiB per connection pair)",
        hwm_kib / 1024.0,
        base_kib / 1024.0,
        (hwm_kib - base_kib) / s.conns as f64
    );
    Ok(Run {
        values: vec![ms, hwm_kib / 1024.0],
        child_cpu: Some(Duration::from_secs_f64(cpu_ms / 1000.0)),
    })
}

/// The child side of `conns`: raise the descriptor limit, run, report
/// `CHILD\tms\tpeak_rss_kib\tstart_rss_kib\tcpu_ms`. The CPU time covers the
/// whole run, both sides' threads joined, teardown included.
fn child_main(imp: &str, s: &Sizes) -> Res<()> {
    let run = conns_fn(imp).ok_or_else(|| format!("unknown conns implementation {imp:?}"))?;
    raise_nofile_limit(2 * s.conns as u64 + 256)?;
    let base = vm_hwm_kib()?;
    let cpu_start = process_cpu()?;
    let start = Instant::now();
    let elapsed = run(s.conns, s.conn_rounds, start)?;
    let cpu = process_cpu()?.saturating_sub(cpu_start);
    let hwm = vm_hwm_kib()?;
    println!(
        "CHILD\t{:.3}\t{hwm}\t{base}\t{:.3}",
        elapsed.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// CPU time (user + system) used so far by all threads of this process,
/// ended ones included.
fn process_cpu() -> Res<Duration> {
    // SAFETY: `rusage` is plain integers, for which all zeroes is valid;
    // getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

fn vm_hwm_kib() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

fn raise_nofile_limit(need: u64) -> Res<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local, fully initialised struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    if limit.rlim_cur >= need {
        return Ok(());
    }
    if limit.rlim_max < need {
        return Err(format!(
            "conns needs {need} descriptors; the hard limit is {} (raise it or use --conns)",
            limit.rlim_max
        )
        .into());
    }
    limit.rlim_cur = need;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Watchdog: a hung case must fail the bench, not hang CI
// ---------------------------------------------------------------------------

static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<String> = Mutex::new(String::new());

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn arm_watchdog(what: &str, limit: Duration) {
    *CURRENT.lock().unwrap() = what.to_string();
    let deadline = epoch().elapsed() + limit;
    DEADLINE_MS.store(deadline.as_millis() as u64, Ordering::SeqCst);
}

fn start_watchdog() {
    epoch();
    thread::spawn(|| loop {
        thread::sleep(Duration::from_millis(250));
        let deadline = DEADLINE_MS.load(Ordering::SeqCst);
        if deadline != 0 && epoch().elapsed().as_millis() as u64 > deadline {
            eprintln!(
                "compare: {} did not finish in time; aborting",
                CURRENT.lock().unwrap()
            );
            std::process::exit(3);
        }
    });
}

// ---------------------------------------------------------------------------
// Command line, running, reporting
// ---------------------------------------------------------------------------

struct Options {
    sizes: Sizes,
    reps: usize,
    only: Vec<String>,
    child: Option<String>,
    list: bool,
    timeout: Duration,
}

const USAGE: &str = "\
usage: compare [--quick] [--reps N] [--only LIST] [--list] [--timeout SECS]
               [--bulk-mib N] [--pingpong N] [--lines N] [--conns N] [--conn-rounds N]
  --quick        tiny sizes and 1 repetition (a smoke test for CI)
  --reps N       repetitions of each case, interleaved (default 5)
  --only LIST    comma-separated workloads or workload:impl, e.g. pingpong2:evstream,lines
  --list         list the workloads and implementations
  --timeout SECS abort if one run takes longer (default 300)";

fn parse_args() -> Res<Options> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = Options {
        sizes: if quick { Sizes::QUICK } else { Sizes::FULL },
        reps: if quick { 1 } else { 5 },
        only: Vec::new(),
        child: None,
        list: false,
        timeout: Duration::from_secs(300),
    };
    args.retain(|a| a != "--quick" && a != "--bench");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--reps" => options.reps = value()?.parse()?,
            "--only" => options
                .only
                .extend(value()?.split(',').map(|s| s.trim().to_string())),
            "--child" => options.child = Some(value()?),
            "--list" => options.list = true,
            "--timeout" => options.timeout = Duration::from_secs(value()?.parse()?),
            "--bulk-mib" => options.sizes.bulk_bytes = value()?.parse::<u64>()? << 20,
            "--pingpong" => options.sizes.pingpong = value()?.parse()?,
            "--lines" => options.sizes.lines = value()?.parse()?,
            "--conns" => options.sizes.conns = value()?.parse()?,
            "--conn-rounds" => options.sizes.conn_rounds = value()?.parse()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if options.reps == 0 || options.sizes.bulk_blocks() == 0 || options.sizes.conns == 0 {
        return Err("--reps, --bulk-mib and --conns must be at least 1".into());
    }
    Ok(options)
}

fn selected(case: &Case, only: &[String]) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| o == case.workload || *o == format!("{}:{}", case.workload, case.imp))
}

#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    fn min(&self) -> f64 {
        self.sorted()[0]
    }
    fn max(&self) -> f64 {
        *self.sorted().last().unwrap()
    }
}

/// Results by (metric workload, impl), in case order.
struct Results {
    order: Vec<(&'static str, &'static str)>,
    samples: BTreeMap<(&'static str, &'static str), Samples>,
}

impl Results {
    fn add(&mut self, workload: &'static str, imp: &'static str, value: f64) {
        if !self.samples.contains_key(&(workload, imp)) {
            self.order.push((workload, imp));
        }
        self.samples
            .entry((workload, imp))
            .or_default()
            .0
            .push(value);
    }

    fn median(&self, workload: &str, imp: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|((w, i), _)| *w == workload && *i == imp)
            .map(|(_, s)| s.median())
    }
}

fn metric(workload: &str) -> &'static Metric {
    WORKLOADS
        .iter()
        .flat_map(|w| w.metrics)
        .find(|m| m.workload == workload)
        .expect("every metric is declared")
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The workload's tables: each metric's, then the CPU time per run
/// (`cpu`, keyed by workload name), then what each implementation does.
fn print_table(results: &Results, cpu: &Results, workload: &Workload, sizes: &Sizes) {
    println!();
    println!("{}", (workload.title)(sizes));
    for m in workload.metrics {
        let direction = if m.higher_is_better {
            "higher is better; ratio = impl/tokio, >1 = faster than tokio"
        } else {
            "lower is better; ratio = impl/tokio, <1 = better than tokio"
        };
        println!("  [{}] {} ({direction})", m.workload, m.unit);
        println!(
            "  {:<18} {:>10} {:>10} {:>10} {:>9}",
            "impl", "median", "min", "max", "vs tokio"
        );
        let tokio = results.median(m.workload, "tokio");
        for &(w, imp) in &results.order {
            if w != m.workload {
                continue;
            }
            let s = &results.samples[&(w, imp)];
            let ratio = tokio.map_or("-".to_string(), |t| format!("{:.2}x", s.median() / t));
            println!(
                "  {:<18} {:>10} {:>10} {:>10} {:>9}",
                imp,
                fmt_value(s.median()),
                fmt_value(s.min()),
                fmt_value(s.max()),
                ratio
            );
        }
    }
    print_cpu_table(cpu, workload.name);
    for case in CASES.iter().filter(|c| c.workload == workload.name) {
        let measured = results
            .order
            .iter()
            .any(|&(w, i)| i == case.imp && workload.metrics.iter().any(|m| m.workload == w));
        if measured {
            println!("    {:<18} {}", case.imp, case.what);
        }
    }
}

/// Median CPU ms per run and the ratio to tokio's, for one workload.
fn print_cpu_table(cpu: &Results, workload: &str) {
    if !cpu.order.iter().any(|&(w, _)| w == workload) {
        return;
    }
    println!(
        "  [cpu] ms of CPU per run, user + system, all threads \
         (lower is better; ratio = impl/tokio, <1 = less CPU than tokio)"
    );
    println!("  {:<18} {:>10} {:>9}", "impl", "median", "vs tokio");
    let tokio = cpu.median(workload, "tokio");
    for &(w, imp) in &cpu.order {
        if w != workload {
            continue;
        }
        let median = cpu.samples[&(w, imp)].median();
        let ratio = tokio.map_or("-".to_string(), |t| format!("{:.2}x", median / t));
        println!("  {:<18} {:>10} {:>9}", imp, fmt_value(median), ratio);
    }
}

/// The project's targets: (metric, impl, reference, at least / at most).
const TARGETS: &[(&str, &str, &str, f64, bool)] = &[
    ("bulk", "evstream", "tokio", 0.95, true),
    ("bulk", "evstream-zc", "tokio", 1.0, true),
    ("pingpong2", "evstream", "tokio", 1.0, true),
    ("pingpong1", "evstream", "tokio", 1.0, true),
    ("lines", "evstream*", "std", 1.0, true),
    ("lines", "evstream*", "tokio", 2.0, true),
    ("conns", "evstream", "tokio", 1.0, false),
    ("conns-rss", "evstream", "async-io", 1.0, false),
];

fn print_targets(results: &Results) {
    println!();
    println!("targets (medians; evstream* = the best evstream variant):");
    for &(workload, imp, reference, bound, at_least) in TARGETS {
        let higher = metric(workload).higher_is_better;
        let candidates: Vec<&str> = results
            .order
            .iter()
            .filter(|&&(w, i)| {
                w == workload
                    && match imp.strip_suffix('*') {
                        Some(prefix) => i.starts_with(prefix),
                        None => i == imp,
                    }
            })
            .map(|&(_, i)| i)
            .collect();
        let best = candidates.into_iter().max_by(|a, b| {
            let (a, b) = (
                results.median(workload, a).unwrap(),
                results.median(workload, b).unwrap(),
            );
            if higher {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        });
        let (Some(best), Some(reference_value)) = (best, results.median(workload, reference))
        else {
            continue;
        };
        let ratio = results.median(workload, best).unwrap() / reference_value;
        let met = if at_least {
            ratio >= bound
        } else {
            ratio <= bound
        };
        println!(
            "  {:<10} {:<18} vs {:<9} {} {:.2}x: {:.2}x  {}",
            workload,
            best,
            reference,
            if at_least { ">=" } else { "<=" },
            bound,
            ratio,
            if met { "met" } else { "MISSED" }
        );
    }
}

fn print_machine_block(results: &Results, cpu: &Results) {
    println!();
    for &(w, imp) in &results.order {
        let s = &results.samples[&(w, imp)];
        let m = metric(w);
        let ratio = results
            .median(w, "tokio")
            .map_or("nan".to_string(), |t| format!("{:.4}", s.median() / t));
        println!(
            "RESULT\t{w}\t{imp}\t{:.3}\t{:.3}\t{:.3}\t{}\t{ratio}\t{}",
            s.median(),
            s.min(),
            s.max(),
            m.unit,
            if m.higher_is_better {
                "higher"
            } else {
                "lower"
            }
        );
    }
    for &(w, imp) in &cpu.order {
        let s = &cpu.samples[&(w, imp)];
        let ratio = cpu
            .median(w, "tokio")
            .map_or("nan".to_string(), |t| format!("{:.4}", s.median() / t));
        println!(
            "CPU\t{w}\t{imp}\t{:.3}\t{:.3}\t{:.3}\t{ratio}",
            s.median(),
            s.min(),
            s.max()
        );
    }
}

fn main() {
    if let Err(err) = real_main() {
        eprintln!("compare: {err}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let options = parse_args()?;
    start_watchdog();
    if let Some(imp) = &options.child {
        arm_watchdog(&format!("conns child {imp}"), options.timeout);
        return child_main(imp, &options.sizes);
    }
    if options.list {
        for case in CASES {
            println!("{}:{:<18} {}", case.workload, case.imp, case.what);
        }
        return Ok(());
    }
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| selected(c, &options.only))
        .collect();
    if cases.is_empty() {
        return Err(format!("--only {:?} selects nothing (see --list)", options.only).into());
    }
    let s = options.sizes;
    println!(
        "evstream comparison: {} repetition(s), interleaved per workload; {} CPUs; {}",
        options.reps,
        thread::available_parallelism().map_or(0, |n| n.get()),
        s
    );
    data();
    let mut results = Results {
        order: Vec::new(),
        samples: BTreeMap::new(),
    };
    // CPU ms per run, by (workload name, impl).
    let mut cpu = Results {
        order: Vec::new(),
        samples: BTreeMap::new(),
    };
    let started = Instant::now();
    for workload in WORKLOADS {
        let cases: Vec<&&Case> = cases
            .iter()
            .filter(|c| c.workload == workload.name)
            .collect();
        if cases.is_empty() {
            continue;
        }
        for rep in 1..=options.reps {
            for case in &cases {
                let name = format!("{}:{} (rep {rep})", case.workload, case.imp);
                arm_watchdog(&name, options.timeout);
                // The run joins its server and client threads before it
                // returns, so the process's CPU time since here is the
                // run's. (Left out: the little a stopped but unjoined
                // background loop, evstream-blocking's, does after that.)
                let cpu_start = process_cpu()?;
                let run = (case.run)(&s).map_err(|err| format!("{name}: {err}"))?;
                let run_cpu = match run.child_cpu {
                    Some(child_cpu) => child_cpu,
                    None => process_cpu()?.saturating_sub(cpu_start),
                };
                DEADLINE_MS.store(0, Ordering::SeqCst);
                let mut shown = Vec::new();
                for (m, v) in workload.metrics.iter().zip(run.values) {
                    results.add(m.workload, case.imp, v);
                    shown.push(format!("{} {}", fmt_value(v), m.unit));
                }
                let cpu_ms = run_cpu.as_secs_f64() * 1000.0;
                cpu.add(workload.name, case.imp, cpu_ms);
                shown.push(format!("CPU {} ms", fmt_value(cpu_ms)));
                eprintln!("  {name}: {}", shown.join(", "));
            }
        }
        print_table(&results, &cpu, workload, &s);
    }
    print_targets(&results);
    print_machine_block(&results, &cpu);
    eprintln!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
