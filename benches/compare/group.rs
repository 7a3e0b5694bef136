//! evstream on a loop group (`LoopGroup`, `GroupServer`): `conns` with a
//! 2-loop group per side, the `idle` server and client on 2-loop groups
//! (used by `idle`, `idlescale` and `storm`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use evstream::{
    tcp_connect_addr, AsyncIoStream, Event, GroupServer, LoopGroup, LoopHandle, ServerOptions,
    TcpOptions,
};
use futures::channel::{mpsc as fmpsc, oneshot};
use futures::{FutureExt, StreamExt};

use crate::common::{bad_echo, message, BoxError, IdlePhases, Mark, Res, Section, BACKLOG, MSG};

/// Loops per group (each side's).
pub const LOOPS: usize = 2;

/// Source addresses the group clients spread their connections over
/// (127.0.0.2 ... 127.0.0.9): each has its own range of ephemeral ports, so
/// tens of thousands of connections (and the `TIME_WAIT`s of the runs
/// before) never run out of ports on one.
const SOURCES: u8 = 8;

/// The loops of the group server this process runs, for the per-loop
/// counts in the idle server's report.
static SERVER_LOOPS: OnceLock<Vec<LoopHandle>> = OnceLock::new();

/// (fewest, most) connections on one loop of this process's group
/// server, if it runs one.
pub fn server_spread() -> Option<(usize, usize)> {
    let loops = SERVER_LOOPS.get()?;
    let counts = loops.iter().map(LoopHandle::connection_count);
    Some((counts.clone().min()?, counts.max()?))
}

/// An echo server (drain-mode `read_cb`) on a fresh `LOOPS`-loop group,
/// sharded or (`hand_off`) with one listener handing off; `closed` gets a
/// message once `n` connections have reached EOF (each is closed then).
fn echo_server(n: usize, hand_off: bool) -> Res<(LoopGroup, GroupServer, mpsc::Receiver<()>)> {
    let group = LoopGroup::with_loops(LOOPS)?;
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(Some(tx));
    let eofs = AtomicUsize::new(0);
    let options = TcpOptions::new()
        .read_cb(|socket, bytes| {
            let _ = socket.write_bytes(bytes);
        })
        .event_cb(move |socket, event| {
            if matches!(event, Event::Eof) {
                socket.close();
                if eofs.fetch_add(1, Ordering::Relaxed) + 1 == n {
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(());
                    }
                }
            }
        });
    let options = ServerOptions::new().backlog(BACKLOG).connection(options);
    let server = if hand_off {
        GroupServer::bind_hand_off(&group, "127.0.0.1:0", options)?
    } else {
        GroupServer::bind(&group, "127.0.0.1:0", options)?
    };
    Ok((group, server, rx))
}

/// Waits until no loop of `group` has a connection left (the closes
/// asked for have completed), then stops the group.
fn wind_down(group: LoopGroup) {
    while group.handles().iter().any(|h| h.connection_count() > 0) {
        std::thread::sleep(Duration::from_millis(1));
    }
    group.stop();
}

// -- conns --------------------------------------------------------------

/// `conns` on 2-loop groups: a sharded `read_cb` echo server on one
/// group; on the other, each client connection placed round-robin and
/// served by a task spawned on its own loop.
pub fn conns(n: usize, rounds: usize, start: Mark) -> Res<Section> {
    let (_, (), elapsed) = crate::common::run_pair(
        move |addr_tx| {
            let (group, server, closed) = echo_server(n, false)?;
            addr_tx.send(server.local_addr())?;
            closed.recv()?;
            server.close();
            wind_down(group);
            Ok(())
        },
        move |addr| {
            let group = LoopGroup::with_loops(LOOPS)?;
            let (done_tx, mut done_rx) = fmpsc::unbounded::<Res<()>>();
            let (release_tx, release_rx) = oneshot::channel::<()>();
            let release = release_rx.shared();
            let mut tasks = Vec::with_capacity(n);
            for _ in 0..n {
                let handle = group.next().clone();
                let done = done_tx.clone();
                let release = release.clone();
                tasks.push(handle.clone().spawn(async move {
                    let connecting = AsyncIoStream::connect_on(&handle, addr, TcpOptions::new());
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
                }));
            }
            let elapsed = futures::executor::block_on(async move {
                for _ in 0..n {
                    done_rx.next().await.ok_or("a client vanished")??;
                }
                Ok::<_, BoxError>(start.elapsed())
            })?;
            let _ = release_tx.send(());
            for task in tasks {
                futures::executor::block_on(task)?;
            }
            wind_down(group);
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

// -- idle, idlescale, storm -----------------------------------------------

/// `idle`'s server on a 2-loop group (sharded): echoes each connection's
/// message, closes each at EOF, returns once all `n` are closed.
pub fn idle_server(n: usize, hand_off: bool, addr_tx: mpsc::Sender<SocketAddr>) -> Res<()> {
    let (group, server, closed) = echo_server(n, hand_off)?;
    let _ = SERVER_LOOPS.set(group.handles().to_vec());
    addr_tx.send(server.local_addr())?;
    closed.recv()?;
    server.close();
    wind_down(group);
    Ok(())
}

/// `idle`'s client on a 2-loop group: `n` connections placed round-robin
/// (`LoopGroup::next`) from `SOURCES` source addresses, `window` being
/// opened at a time (all of them at once for `storm`), each sending its
/// message as `data` and taking the echo in `notify_cb`; held while the
/// harness measures; then closed.
pub fn idle_client(
    addr: SocketAddr,
    n: usize,
    window: usize,
    phases: &mut dyn IdlePhases,
) -> Res<()> {
    let group = LoopGroup::with_loops(LOOPS)?;
    let (done_tx, done_rx) = mpsc::channel::<Res<()>>();
    let done_tx = Arc::new(Mutex::new(done_tx));
    let on_error = done_tx.clone();
    let base = TcpOptions::new()
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
            let _ = done_tx.lock().unwrap().send(result);
        })
        .event_cb(move |_, event| {
            if let Event::Error(err) = event {
                let _ = on_error.lock().unwrap().send(Err(err.into()));
            }
        });
    // One set of options (one shared configuration) per source address.
    let options: Vec<TcpOptions> = (0..SOURCES)
        .map(|k| {
            base.clone().bind(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + k)),
                0,
            ))
        })
        .collect();
    drop(base);
    phases.opening()?;
    let mut sockets = Vec::with_capacity(n);
    let (mut started, mut finished) = (0, 0);
    while finished < n {
        while started < n && started - finished < window {
            let options = options[started % options.len()].clone();
            sockets.push(tcp_connect_addr(group.next(), addr, options)?);
            started += 1;
        }
        done_rx
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| format!("{finished} of {n} connections done; the others never were"))??;
        finished += 1;
    }
    drop(options);
    phases.open()?;
    phases.closing()?;
    for socket in &sockets {
        socket.close();
    }
    drop(sockets);
    wind_down(group);
    Ok(())
}
