//! async-io: `async_io::block_on` + `Async<TcpStream>`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;

use async_io::{block_on, Async};
use futures::channel::{mpsc as fmpsc, oneshot};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::common::{
    bad_echo, data, line_pieces, message, std_listener, BoxError, BulkCheck, IdlePhases, LineCheck,
    Mark, Res, Section, BLOCK, ECHO_BUF, IDLE_WINDOW, MSG,
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

async fn echo<const BUF: usize>(mut stream: Async<TcpStream>) -> Res<()> {
    let mut buf = [0u8; BUF];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n]).await?;
    }
}

async fn ping_client(mut stream: Async<TcpStream>, rounds: usize) -> Res<Section> {
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

pub fn pingpong2(rounds: usize) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        |addr_tx| {
            let (listener, addr) = listener()?;
            addr_tx.send(addr)?;
            block_on(async move { echo::<ECHO_BUF>(accept(&listener).await?).await })
        },
        move |addr| block_on(async move { ping_client(connect(addr).await?, rounds).await }),
    )?;
    Ok(elapsed)
}

/// Server and client futures zipped in one `block_on`.
pub fn pingpong1(rounds: usize) -> Res<Section> {
    let (listener, addr) = listener()?;
    block_on(async move {
        let server = async { echo::<ECHO_BUF>(accept(&listener).await?).await };
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
pub fn conns(n: usize, rounds: usize, start: Mark) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        move |addr_tx| {
            let (listener, addr) = listener()?;
            addr_tx.send(addr)?;
            block_on(serve::<ECHO_BUF>(listener, n))
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

async fn serve<const BUF: usize>(listener: Async<TcpListener>, n: usize) -> Res<()> {
    let mut tasks = FuturesUnordered::new();
    let mut accepted = 0;
    let accepting = listener.accept().fuse();
    futures::pin_mut!(accepting);
    loop {
        futures::select! {
            result = accepting => {
                let (stream, _) = result?;
                stream.get_ref().set_nodelay(true)?;
                tasks.push(echo::<BUF>(stream));
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

/// `idle`'s server, in a process of its own: the connections in a
/// `FuturesUnordered` in `block_on`, each echoing into a `MSG`-byte buffer
/// until EOF; returns once all `n` are closed.
pub fn idle_server(n: usize, addr_tx: mpsc::Sender<SocketAddr>) -> Res<()> {
    let (listener, addr) = listener()?;
    addr_tx.send(addr)?;
    block_on(serve::<MSG>(listener, n))
}

/// `idle`'s client: opens `n` connections, `IDLE_WINDOW` at a time, one
/// round trip on each, and holds the `Async<TcpStream>`s; then drops them
/// all.
pub fn idle_client(addr: SocketAddr, n: usize, phases: &mut dyn IdlePhases) -> Res<()> {
    // Start the reactor (and its thread) before the baseline, as the other
    // clients create their runtime or loop before it.
    block_on(async {});
    phases.opening()?;
    let mut streams = Vec::with_capacity(n);
    block_on(async {
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
    drop(streams);
    Ok(())
}

async fn open_idle(addr: SocketAddr) -> Res<Async<TcpStream>> {
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
