//! Connection limits on servers (issue #11, "Connection limits on
//! servers"): `ServerOptions::max_connections` in callback and accept
//! mode, on a single loop, a Unix socket and a loop group (where the limit
//! is the whole group's), and pausing/resuming accepting by hand.
//!
//! A client past the limit must wait in the kernel's backlog, unserved,
//! until a served client closes, and then be served: every client is,
//! none is refused or lost. "Not served" is shown by a short bounded wait
//! for its echo that must run out, followed by the positive check once
//! room is made. Real loopback sockets; every other wait is bounded by
//! `common::WAIT` and waits on an event.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{
    channel, echo_closing_at_eof as echo, recv, std_connect, wait_until, LoopThread, WAIT,
};
use evstream::{Error, GroupServer, LoopGroup, LoopHandle, ServerOptions, TcpServer, UnixServer};

/// How long a client that must *not* be served waits for its echo before
/// the test takes the silence as "not served". Only bounds the negative
/// check: a server that wrongly serves the client answers well within it.
const SHORT: Duration = Duration::from_millis(300);

/// Serves an accept-mode server on `handle`'s loop: a task per accepted
/// connection echoes until the client's EOF, then closes.
fn serve_accept_mode(handle: &LoopHandle, server: TcpServer) {
    let spawner = handle.clone();
    handle.spawn(async move {
        while let Ok((stream, _)) = server.accept().await {
            spawner.spawn(common::echo_until_eof(stream));
        }
    });
}

/// Clients on threads: each connects, sends its number, reports on
/// `served` once the echo comes back, then holds the connection open until
/// told to close.
struct Clients {
    served: Receiver<u8>,
    close: Vec<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Clients {
    fn start(n: u8, connect: impl Fn() -> Box<dyn ReadWrite> + Send + Sync + 'static) -> Clients {
        let connect = std::sync::Arc::new(connect);
        let (served_tx, served) = channel();
        let mut close = Vec::new();
        let mut threads = Vec::new();
        for id in 0..n {
            let (close_tx, close_rx) = channel::<()>();
            close.push(close_tx);
            let (served_tx, connect) = (served_tx.clone(), connect.clone());
            threads.push(std::thread::spawn(move || {
                let mut client = connect();
                client.write_all(&[id]).expect("write");
                let mut echo = [0u8; 1];
                client
                    .read_exact(&mut echo)
                    .unwrap_or_else(|err| panic!("client {id} never served: {err}"));
                assert_eq!(echo[0], id);
                let _ = served_tx.send(id);
                // Held open until the test closes it (or gives up).
                let _ = close_rx.recv_timeout(WAIT);
            }));
        }
        Clients {
            served,
            close,
            threads,
        }
    }

    /// The next client served, within `WAIT`.
    fn next_served(&self) -> u8 {
        recv(&self.served, "a client served")
    }

    /// Asserts that no further client is served within `SHORT`.
    fn assert_none_served(&self, why: &str) {
        match self.served.recv_timeout(SHORT) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(id) => panic!("client {id} was served {why}"),
            Err(err) => panic!("clients gone: {err}"),
        }
    }

    /// Closes client `id`.
    fn close(&self, id: u8) {
        let _ = self.close[usize::from(id)].send(());
    }

    /// Closes every client and waits for the threads.
    fn finish(self) {
        for close in &self.close {
            let _ = close.send(());
        }
        for thread in self.threads {
            thread.join().expect("a client thread");
        }
    }
}

/// A blocking client stream of either kind.
trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn tcp_client(addr: SocketAddr) -> impl Fn() -> Box<dyn ReadWrite> + Send + Sync + 'static {
    move || Box::new(std_connect(addr)) as Box<dyn ReadWrite>
}

/// `n` clients against a server limited to `limit`: at most `limit` are
/// served at once (the next waits, unserved, until one closes), every
/// client is served in the end, and `count` (the server's
/// `connection_count`) follows.
fn clients_are_served_within_the_limit(
    connect: impl Fn() -> Box<dyn ReadWrite> + Send + Sync + 'static,
    limit: usize,
    n: u8,
    count: impl Fn() -> usize,
) {
    let clients = Clients::start(n, connect);
    let mut open: Vec<u8> = (0..limit).map(|_| clients.next_served()).collect();
    clients.assert_none_served("past the limit");
    assert_eq!(count(), limit, "connections open at the limit");
    let mut served = limit;
    while served < usize::from(n) {
        // One closes: exactly one more is served.
        clients.close(open.remove(0));
        open.push(clients.next_served());
        served += 1;
        if served == limit + 1 {
            clients.assert_none_served("past the limit after one turn");
        }
    }
    clients.finish();
    wait_until("every connection released", || count() == 0);
}

#[test]
fn callback_mode_holds_the_limit_and_serves_every_client_in_turn() {
    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(2).connection(echo());
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    assert_eq!(server.max_connections(), Some(2));
    let counted = server.clone();
    clients_are_served_within_the_limit(tcp_client(server.local_addr()), 2, 6, move || {
        counted.connection_count()
    });
}

#[test]
fn accept_mode_holds_the_limit_and_serves_every_client_in_turn() {
    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(2);
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    assert!(server.is_accept_mode());
    serve_accept_mode(&lt.handle, server.clone());
    let counted = server.clone();
    clients_are_served_within_the_limit(tcp_client(server.local_addr()), 2, 6, move || {
        counted.connection_count()
    });
    server.close();
}

/// In accept mode the limit counts the connections waiting for `accept`
/// too: with nobody accepting, exactly `limit` are taken from the kernel.
#[test]
fn accept_mode_counts_the_queued_connections() {
    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(2);
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    let _clients: Vec<_> = (0..4).map(|_| std_connect(server.local_addr())).collect();
    wait_until("two connections queued", || server.queued() == 2);
    assert_eq!(server.connection_count(), 2);
    // Accepting one does not make room: it is still open.
    let (stream, _) = common::block_on(server.accept()).expect("accept");
    let queued = common::block_on(lt.handle.timeout(SHORT, server.accept()));
    let (second, _) = queued.expect("the second was queued already").unwrap();
    let third = common::block_on(lt.handle.timeout(SHORT, server.accept()));
    assert!(
        third.is_err(),
        "a third connection was taken past the limit"
    );
    assert_eq!(server.connection_count(), 2);
    // Aborting one releases it at once: the third is taken.
    stream.socket().abort();
    let (_third, _) = common::block_on(server.accept()).expect("accept the third");
    drop(second);
}

#[test]
fn a_unix_server_holds_the_limit() {
    let dir = std::env::temp_dir().join(format!("evstream-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("limited.sock");
    let _ = std::fs::remove_file(&path);
    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(1).connection(echo());
    let server = UnixServer::bind(&lt.handle, &path, options).unwrap();
    let counted = server.clone();
    let connect = move || {
        let stream = std::os::unix::net::UnixStream::connect(&path).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Box::new(stream) as Box<dyn ReadWrite>
    };
    clients_are_served_within_the_limit(connect, 1, 3, move || counted.connection_count());
    server.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The limit of a group server is the whole group's: with 3 allowed and
/// two loops, never more than 3 clients are served at once, whichever
/// loops hold them, and a client closing on either loop lets the next one
/// in.
#[test]
fn a_group_server_holds_one_limit_across_its_loops() {
    for sharded in [true, false] {
        let group = LoopGroup::with_loops(2).unwrap();
        let options = ServerOptions::new().max_connections(3).connection(echo());
        let server = if sharded {
            GroupServer::bind(&group, "127.0.0.1:0", options).unwrap()
        } else {
            GroupServer::bind_hand_off(&group, "127.0.0.1:0", options).unwrap()
        };
        assert_eq!(server.max_connections(), Some(3));
        let counted = server.clone();
        clients_are_served_within_the_limit(tcp_client(server.local_addr()), 3, 10, move || {
            counted.connection_count()
        });
        // Every listener reports the group's count and limit.
        for listener in server.listeners() {
            assert_eq!(listener.max_connections(), Some(3));
            assert_eq!(listener.connection_count(), 0);
        }
        server.close();
    }
}

#[test]
fn a_group_server_in_accept_mode_holds_the_limit() {
    let group = LoopGroup::with_loops(2).unwrap();
    let options = ServerOptions::new().max_connections(2);
    let server = GroupServer::bind(&group, "127.0.0.1:0", options).unwrap();
    // One accept loop per loop, on its own listener.
    for (listener, handle) in server.listeners().iter().zip(group.handles()) {
        serve_accept_mode(handle, listener.clone());
    }
    let counted = server.clone();
    clients_are_served_within_the_limit(tcp_client(server.local_addr()), 2, 6, move || {
        counted.connection_count()
    });
    server.close();
}

/// Pausing by hand, from another thread: a client that connects
/// meanwhile waits unserved; resuming (from yet another thread) serves it.
#[test]
fn pause_and_resume_accepting_by_hand_in_callback_mode() {
    let lt = LoopThread::start();
    let options = ServerOptions::new().connection(echo());
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    let paused = server.clone();
    std::thread::spawn(move || paused.pause_accepting())
        .join()
        .unwrap();
    assert!(server.is_accepting_paused());
    let clients = Clients::start(2, tcp_client(server.local_addr()));
    clients.assert_none_served("while accepting was paused");
    assert_eq!(server.connection_count(), 0);
    let resumed = server.clone();
    std::thread::spawn(move || resumed.resume_accepting())
        .join()
        .unwrap();
    assert!(!server.is_accepting_paused());
    let mut served = [clients.next_served(), clients.next_served()];
    served.sort();
    assert_eq!(served, [0, 1]);
    // Pausing again leaves the open connections alone and holds new ones.
    server.pause_accepting();
    let later = Clients::start(1, tcp_client(server.local_addr()));
    later.assert_none_served("after pausing again");
    clients.finish();
    server.resume_accepting();
    assert_eq!(later.next_served(), 0);
    later.finish();
}

#[test]
fn pause_and_resume_accepting_by_hand_in_accept_mode() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    server.pause_accepting();
    let client = std_connect(server.local_addr());
    let waited = common::block_on(lt.handle.timeout(SHORT, server.accept()));
    assert!(waited.is_err(), "accepted while paused");
    assert_eq!(server.queued(), 0);
    server.resume_accepting();
    let (_stream, peer) = common::block_on(server.accept()).expect("accept once resumed");
    assert_eq!(peer, client.local_addr().unwrap());
}

/// One switch for a whole group: pausing through one listener pauses
/// every loop's, and resuming the group lets them all accept.
#[test]
fn pausing_a_group_server_pauses_every_loop() {
    let group = LoopGroup::with_loops(2).unwrap();
    let options = ServerOptions::new().connection(echo());
    let server = GroupServer::bind(&group, "127.0.0.1:0", options).unwrap();
    server.listeners()[0].pause_accepting();
    assert!(server.is_accepting_paused());
    let clients = Clients::start(6, tcp_client(server.local_addr()));
    clients.assert_none_served("while the group was paused");
    server.resume_accepting();
    for _ in 0..6 {
        clients.next_served();
    }
    clients.finish();
    server.close();
}

/// A limit and a pause together: resuming does not take more than the
/// limit, and a close while paused does not resume accepting.
#[test]
fn a_paused_server_at_its_limit_waits_for_both() {
    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(1).connection(echo());
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    let first = Clients::start(1, tcp_client(server.local_addr()));
    assert_eq!(first.next_served(), 0);
    server.pause_accepting();
    let second = Clients::start(1, tcp_client(server.local_addr()));
    first.finish();
    wait_until("the first connection released", || {
        server.connection_count() == 0
    });
    second.assert_none_served("while paused, with room");
    server.resume_accepting();
    assert_eq!(second.next_served(), 0);
    let third = Clients::start(1, tcp_client(server.local_addr()));
    third.assert_none_served("past the limit after resuming");
    second.finish();
    assert_eq!(third.next_served(), 0);
    third.finish();
}

/// A limit of 0 could never accept: every bind refuses it, naming the
/// option.
#[test]
fn a_limit_of_zero_is_refused_by_every_bind() {
    let lt = LoopThread::start();
    let zero = || ServerOptions::new().max_connections(0);
    let refused = |result: Result<(), Error>| match result {
        Err(Error::InvalidInput(message)) => assert!(message.contains("max_connections")),
        other => panic!("a limit of 0 was not refused: {other:?}"),
    };
    refused(TcpServer::bind(&lt.handle, "127.0.0.1:0", zero()).map(drop));
    let path = std::env::temp_dir().join(format!("evstream-zero-{}.sock", std::process::id()));
    refused(UnixServer::bind(&lt.handle, &path, zero()).map(drop));
    assert!(!path.exists(), "nothing was bound");
    let group = LoopGroup::with_loops(2).unwrap();
    refused(GroupServer::bind(&group, "127.0.0.1:0", zero()).map(drop));
    refused(GroupServer::bind_hand_off(&group, "127.0.0.1:0", zero()).map(drop));
    // 1 is the least that works.
    let one = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().max_connections(1),
    );
    assert_eq!(one.unwrap().max_connections(), Some(1));
}

/// Closing a server that waits at its limit or is paused ends it like
/// any other (a pending `accept` fails with `Closed`), and pausing or
/// resuming a closed server does nothing.
#[test]
fn a_waiting_server_closes_cleanly() {
    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(1);
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    let _clients: Vec<_> = (0..3).map(|_| std_connect(server.local_addr())).collect();
    wait_until("one connection queued", || server.queued() == 1);
    server.pause_accepting();
    let (_stream, _) = common::block_on(server.accept()).expect("the queued one");
    let waiting = {
        let server = server.clone();
        lt.handle.spawn(async move { server.accept().await })
    };
    server.close();
    assert!(matches!(
        common::block_on(waiting).expect("the task"),
        Err(Error::Closed)
    ));
    server.resume_accepting();
    server.pause_accepting();
    assert!(server.is_closed());
}

/// `connection_count` counts connections, not the slot the acceptor
/// reserves for each `accept` it tries (the one that finds the backlog
/// empty takes a slot for a moment too). One client at a time, a thread
/// sampling the count without pause must never see more than one.
#[test]
fn the_count_never_includes_an_accept_under_way() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let lt = LoopThread::start();
    let options = ServerOptions::new().max_connections(4).connection(echo());
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", options).unwrap();
    let (stop, highest) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let sampler = {
        let (server, stop, highest) = (server.clone(), stop.clone(), highest.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                highest.fetch_max(server.connection_count(), Ordering::Relaxed);
            }
        })
    };
    for round in 0..300u32 {
        let mut client = std_connect(server.local_addr());
        client.write_all(&[round as u8]).unwrap();
        let mut echo = [0u8; 1];
        client.read_exact(&mut echo).unwrap();
        drop(client);
        wait_until("the connection released", || server.connection_count() == 0);
    }
    stop.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(highest.load(Ordering::Relaxed), 1, "highest count seen");
    server.close();
}
