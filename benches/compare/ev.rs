//! evstream: an `EventLoop` per side (`block_on` or `run`).

use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};

use bytes::Bytes;
use evstream::codec::{Framed, LinesCodec};
use evstream::prelude::*;
use evstream::{
    tcp_connect, tcp_connect_addr, AsyncIoStream, Event, EventLoop, LoopHandle, ServerOptions,
    TcpOptions, TcpServer,
};
use futures::channel::{mpsc as fmpsc, oneshot};
use futures::{FutureExt, StreamExt};
use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::common::{
    bad_echo, data, line_pieces, message, BoxError, BulkCheck, IdlePhases, LineCheck, Mark, Res,
    Section, BACKLOG, BLOCK, ECHO_BUF, IDLE_WINDOW, MSG,
};

fn connect(
    handle: &LoopHandle,
    addr: SocketAddr,
) -> impl std::future::Future<Output = evstream::Result<AsyncIoStream>> + Send + 'static {
    let handle = handle.clone();
    async move { AsyncIoStream::connect_on(&handle, addr, TcpOptions::new()).await }
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
fn stream_echo_server<const BUF: usize>(ev: &EventLoop, accepts: usize) -> Res<TcpServer> {
    let handle = ev.handle();
    let options = TcpOptions::new().stream(true);
    server(ev, accepts, options, move |socket| {
        handle.spawn(echo::<BUF>(AsyncIoStream::new(socket.clone())));
    })
}

async fn echo<const BUF: usize>(mut stream: AsyncIoStream) {
    let mut buf = [0u8; BUF];
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
) -> Res<Section> {
    let mut stream = connecting.await?;
    let mut reply = [0u8; MSG];
    let start = Mark::now();
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
) -> Res<mpsc::Receiver<Res<Section>>> {
    struct State {
        round: usize,
        start: Mark,
        pending: Vec<u8>,
        tx: mpsc::Sender<Res<Section>>,
    }
    let (tx, rx) = mpsc::channel();
    let state = Arc::new(Mutex::new(State {
        round: 0,
        start: Mark::now(),
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
                on_connect.lock().unwrap().start = Mark::now();
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
pub fn pingpong2(rounds: usize, how: Ping) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        move |addr_tx| {
            let mut ev = EventLoop::new()?;
            let server = match how {
                Ping::Streams => stream_echo_server::<ECHO_BUF>(&ev, 1)?,
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
pub fn pingpong1(rounds: usize, how: Ping) -> Res<Section> {
    let mut ev = EventLoop::new()?;
    let server = match how {
        Ping::Streams => stream_echo_server::<ECHO_BUF>(&ev, 1)?,
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
                match stream.read_until_delimiter(b"\n", MAX_LINE).await {
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
pub fn conns(n: usize, rounds: usize, start: Mark) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
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

// -- idle -------------------------------------------------------------------
//
// The closures below capture nothing mutable, so they are `Fn + Send +
// Sync` as well as `FnMut + Send`.

#[derive(Clone, Copy)]
pub enum Idle {
    /// Callbacks at both ends: the drain-mode `read_cb` echo server; the
    /// client sends its message as the connection's `data` and its
    /// `notify_cb` takes the echo out of the input buffer. The loops hold
    /// the connections (the client keeps a `Socket` handle per connection
    /// to close it).
    Callbacks,
    /// Streams at both ends: a task per connection on the server loop
    /// (`read` into `MSG` bytes, `write_all`); the client holds an
    /// `AsyncIoStream` per connection after `write_all` + `read_exact`.
    Streams,
}

/// `idle`'s server, in a process of its own: accepts `n` connections,
/// echoes what each sends, closes each at EOF, and returns once all `n`
/// are closed.
pub fn idle_server(n: usize, how: Idle, addr_tx: mpsc::Sender<SocketAddr>) -> Res<()> {
    let mut ev = EventLoop::new()?;
    let server = match how {
        Idle::Callbacks => echo_server(&ev, n)?,
        Idle::Streams => stream_echo_server::<MSG>(&ev, n)?,
    };
    addr_tx.send(server.local_addr())?;
    ev.run()?;
    Ok(())
}

/// `idle`'s client: opens `n` connections, `IDLE_WINDOW` at a time, one
/// round trip on each; holds them while the harness measures; closes them
/// all and runs the loop until every one is released.
pub fn idle_client(addr: SocketAddr, n: usize, how: Idle, phases: &mut dyn IdlePhases) -> Res<()> {
    let mut ev = EventLoop::new()?;
    match how {
        Idle::Callbacks => idle_client_callbacks(&mut ev, addr, n, phases),
        Idle::Streams => idle_client_streams(&mut ev, addr, n, phases),
    }
}

fn idle_client_callbacks(
    ev: &mut EventLoop,
    addr: SocketAddr,
    n: usize,
    phases: &mut dyn IdlePhases,
) -> Res<()> {
    let handle = ev.handle();
    let (done_tx, mut done_rx) = fmpsc::unbounded::<Res<()>>();
    let on_error = done_tx.clone();
    let options = TcpOptions::new()
        .data(Bytes::copy_from_slice(&message(0)))
        .notify_cb(move |socket| {
            if socket.input_buffer_len() < MSG {
                return; // the rest of the echo is still on its way
            }
            let mut echo = [0u8; MSG];
            let result = match socket.read(&mut echo) {
                Ok(MSG) if echo == message(0) => Ok(()),
                Ok(_) => Err(bad_echo(0)),
                Err(err) => Err(err.into()),
            };
            let _ = done_tx.unbounded_send(result);
        })
        .event_cb(move |_, event| {
            if let Event::Error(err) = event {
                let _ = on_error.unbounded_send(Err(err.into()));
            }
        });
    phases.opening()?;
    let mut sockets = Vec::with_capacity(n);
    ev.block_on(async {
        let (mut started, mut finished) = (0, 0);
        while finished < n {
            while started < n && started - finished < IDLE_WINDOW {
                sockets.push(tcp_connect_addr(&handle, addr, options.clone())?);
                started += 1;
            }
            done_rx
                .next()
                .await
                .ok_or("the client's callbacks vanished")??;
            finished += 1;
        }
        Ok::<_, BoxError>(())
    })??;
    drop(options);
    phases.open()?;
    phases.closing()?;
    for socket in &sockets {
        socket.close();
    }
    drop(sockets);
    ev.run()?;
    Ok(())
}

fn idle_client_streams(
    ev: &mut EventLoop,
    addr: SocketAddr,
    n: usize,
    phases: &mut dyn IdlePhases,
) -> Res<()> {
    let handle = ev.handle();
    phases.opening()?;
    let mut streams = Vec::with_capacity(n);
    ev.block_on(async {
        let mut opening = futures::stream::iter(0..n)
            .map(|_| open_idle(connect(&handle, addr)))
            .buffer_unordered(IDLE_WINDOW);
        while let Some(stream) = opening.next().await {
            streams.push(stream?);
        }
        Ok::<_, BoxError>(())
    })??;
    phases.open()?;
    phases.closing()?;
    drop(streams); // each stream's last handle: a graceful close
    ev.run()?;
    Ok(())
}

async fn open_idle(
    connecting: impl std::future::Future<Output = evstream::Result<AsyncIoStream>>,
) -> Res<AsyncIoStream> {
    let mut stream = connecting.await?;
    let msg = message(0);
    stream.write_all(&msg).await?;
    let mut echo = [0u8; MSG];
    stream.read_exact(&mut echo).await?;
    if echo != msg {
        return Err(bad_echo(0));
    }
    Ok(stream)
}
