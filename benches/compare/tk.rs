//! tokio: a current-thread runtime per side.

use std::net::SocketAddr;
use std::sync::mpsc;

use futures::channel::{mpsc as fmpsc, oneshot};
use futures::{FutureExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio_util::codec::{FramedRead, LinesCodec};

use crate::common::{
    bad_echo, data, line_pieces, message, std_listener, BoxError, BulkCheck, IdlePhases, LineCheck,
    Mark, Res, Section, BLOCK, ECHO_BUF, IDLE_WINDOW, MSG,
};

fn runtime() -> Res<Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?)
}

/// tokio's multi-thread runtime (work stealing) with `workers` threads.
pub fn runtime_mt(workers: usize) -> Res<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
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

async fn echo<const BUF: usize>(mut stream: TcpStream) -> Res<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn ping_client(mut stream: TcpStream, rounds: usize) -> Res<Section> {
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

pub fn pingpong2(rounds: usize) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        |addr_tx| {
            let (listener, addr) = listener()?;
            addr_tx.send(addr)?;
            runtime()?.block_on(async move { echo::<ECHO_BUF>(accept(listener).await?).await })
        },
        move |addr| {
            runtime()?.block_on(async move { ping_client(connect(addr).await?, rounds).await })
        },
    )?;
    Ok(elapsed)
}

/// Server task spawned on the runtime; the client in `block_on`.
pub fn pingpong1(rounds: usize) -> Res<Section> {
    let (listener, addr) = listener()?;
    runtime()?.block_on(async move {
        let server = tokio::spawn(async move { echo::<ECHO_BUF>(accept(listener).await?).await });
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
pub fn conns(n: usize, rounds: usize, start: Mark) -> Res<Section> {
    conns_on(runtime, n, rounds, start)
}

/// `conns` with a multi-thread runtime of 2 workers on each side.
pub fn conns_mt2(n: usize, rounds: usize, start: Mark) -> Res<Section> {
    conns_on(|| runtime_mt(2), n, rounds, start)
}

fn conns_on(runtime: fn() -> Res<Runtime>, n: usize, rounds: usize, start: Mark) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        move |addr_tx| {
            let (listener, addr) = listener()?;
            addr_tx.send(addr)?;
            runtime()?.block_on(async move {
                let listener = TcpListener::from_std(listener)?;
                let mut tasks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (stream, _) = listener.accept().await?;
                    stream.set_nodelay(true)?;
                    tasks.push(tokio::spawn(echo::<ECHO_BUF>(stream)));
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

/// `idle`'s server, in a process of its own: a task per connection that
/// echoes into a `MSG`-byte buffer until EOF; returns once all `n`
/// connections are closed.
pub fn idle_server(n: usize, addr_tx: mpsc::Sender<SocketAddr>) -> Res<()> {
    idle_server_on(runtime, n, addr_tx)
}

/// `idle_server` on a multi-thread runtime of 2 workers (the `storm`
/// reference).
pub fn idle_server_mt2(n: usize, addr_tx: mpsc::Sender<SocketAddr>) -> Res<()> {
    idle_server_on(|| runtime_mt(2), n, addr_tx)
}

fn idle_server_on(
    runtime: fn() -> Res<Runtime>,
    n: usize,
    addr_tx: mpsc::Sender<SocketAddr>,
) -> Res<()> {
    let (listener, addr) = listener()?;
    addr_tx.send(addr)?;
    runtime()?.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tasks.push(tokio::spawn(echo::<MSG>(stream)));
        }
        drop(listener);
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
}

/// `idle`'s client: opens `n` connections, `IDLE_WINDOW` at a time, one
/// round trip on each, and holds the `TcpStream`s; then drops them all.
pub fn idle_client(addr: SocketAddr, n: usize, phases: &mut dyn IdlePhases) -> Res<()> {
    let runtime = runtime()?;
    phases.opening()?;
    let mut streams = Vec::with_capacity(n);
    runtime.block_on(async {
        let mut opening = futures::stream::iter(0..n)
            .map(|_| open_idle(addr))
            .buffer_unordered(IDLE_WINDOW);
        while let Some(stream) = opening.next().await {
            streams.push(stream?);
        }
        Ok::<_, BoxError>(())
    })?;
    phases.open()?;
    phases.closing()?;
    runtime.block_on(async move { drop(streams) });
    Ok(())
}

async fn open_idle(addr: SocketAddr) -> Res<TcpStream> {
    let mut stream = connect(addr).await?;
    let msg = message(0);
    stream.write_all(&msg).await?;
    let mut echo = [0u8; MSG];
    stream.read_exact(&mut echo).await?;
    if echo != msg {
        return Err(bad_echo(0));
    }
    Ok(stream)
}
