//! Loop groups (issue #14): N loops on N threads, a server that accepts on
//! every loop (SO_REUSEPORT shards on Linux, a hand-off with the
//! `polling-backend` feature and elsewhere), one loop drained while the
//! others serve, and work crossing loops. Real loopback sockets; every
//! wait is bounded.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use common::{accept, block_on, read_to_end, std_connect, std_listener, wait_until, write_all};
use evstream::{
    tcp_connect_addr, Error, GroupServer, LoopGroup, LoopHandle, ServerOptions, TcpOptions,
    TcpServer,
};
use futures_lite::StreamExt;

/// A `read_cb` echo server's connection options (closing at EOF).
fn echo() -> TcpOptions {
    TcpOptions::new()
        .read_cb(|socket, data| {
            let _ = socket.write_bytes(data);
        })
        .event_cb(|socket, event| {
            if matches!(event, evstream::Event::Eof) {
                socket.close();
            }
        })
}

/// One round trip of `msg` through an echo server.
fn round_trip(client: &mut std::net::TcpStream, msg: &[u8]) {
    write_all(client, msg);
    let mut reply = vec![0u8; msg.len()];
    client.read_exact(&mut reply).expect("the echo");
    assert_eq!(reply, msg);
}

fn counts(group: &LoopGroup) -> Vec<usize> {
    group
        .handles()
        .iter()
        .map(LoopHandle::connection_count)
        .collect()
}

#[test]
fn a_group_has_its_loops_on_their_own_threads_and_places_tasks() {
    assert!(matches!(
        LoopGroup::with_loops(0),
        Err(Error::InvalidInput(_))
    ));
    let group = LoopGroup::with_loops(3).unwrap();
    assert_eq!(group.len(), 3);
    let mut threads = HashSet::new();
    for i in 0..3 {
        let me = group.handle(i).clone();
        let (on_it, name) = block_on(group.spawn_on(i, async move {
            (
                me.is_loop_thread(),
                thread::current().name().map(str::to_owned),
            )
        }))
        .unwrap();
        assert!(on_it, "spawn_on({i}) ran elsewhere");
        threads.insert(name);
    }
    assert_eq!(threads.len(), 3, "three loops, three threads");
    // `next` goes round the loops.
    let firsts: HashSet<_> = (0..3).map(|_| group.index_of(group.next())).collect();
    assert_eq!(firsts.len(), 3);
    // block_on from the caller's thread runs on a loop and returns.
    assert_eq!(group.block_on(async { 7 }).unwrap(), 7);
    // ... and is refused on a loop thread of the group, where it could
    // block the loop its future needs.
    let inner = Arc::new(LoopGroup::with_loops(1).unwrap());
    let nested = inner.clone();
    let refused = block_on(inner.spawn(async move { nested.block_on(async {}).err() })).unwrap();
    assert!(matches!(refused, Some(Error::WouldDeadlock)), "{refused:?}");
    group.stop();
    assert!(group.handles().iter().all(LoopHandle::is_stopped));
    assert!(matches!(
        block_on(group.spawn(async {})),
        Err(Error::LoopStopped)
    ));
}

#[test]
fn least_loaded_picks_the_loop_with_the_fewest_connections() {
    let group = LoopGroup::with_loops(2).unwrap();
    let (listener, addr) = std_listener();
    let sockets: Vec<_> = (0..3)
        .map(|_| tcp_connect_addr(group.handle(0), addr, TcpOptions::new()).unwrap())
        .collect();
    let _peers: Vec<_> = (0..3).map(|_| accept(&listener)).collect();
    wait_until("three connections on loop 0", || counts(&group) == [3, 0]);
    for _ in 0..4 {
        assert_eq!(group.least_loaded(), group.handle(1));
    }
    drop(sockets);
    wait_until("released", || counts(&group) == [0, 0]);
}

/// Connections to a group server land on every loop (counted per loop),
/// and each is served there.
fn spread_over_every_loop(bind: fn(&LoopGroup) -> GroupServer, exact: bool) {
    const LOOPS: usize = 2;
    const CLIENTS: usize = 64;
    let group = LoopGroup::with_loops(LOOPS).unwrap();
    let server = bind(&group);
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| std_connect(server.local_addr()))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        round_trip(client, format!("client {i}").as_bytes());
    }
    let per_loop = counts(&group);
    assert_eq!(per_loop.iter().sum::<usize>(), CLIENTS, "{per_loop:?}");
    assert!(
        per_loop.iter().all(|&n| n > 0),
        "a loop got none: {per_loop:?}"
    );
    if exact {
        assert!(
            per_loop.iter().all(|&n| n == CLIENTS / LOOPS),
            "round-robin: {per_loop:?}"
        );
    }
    drop(clients);
    wait_until("every connection released", || {
        counts(&group).iter().all(|&n| n == 0)
    });
    server.close();
}

#[test]
fn connections_to_a_group_server_spread_over_every_loop() {
    spread_over_every_loop(
        |group| {
            GroupServer::bind(
                group,
                "127.0.0.1:0",
                ServerOptions::new().connection(echo()),
            )
            .unwrap()
        },
        false,
    );
}

#[test]
fn a_hand_off_server_spreads_connections_round_robin() {
    spread_over_every_loop(
        |group| {
            let server = GroupServer::bind_hand_off(
                group,
                "127.0.0.1:0",
                ServerOptions::new().connection(echo()),
            )
            .unwrap();
            assert!(!server.is_sharded());
            server
        },
        true,
    );
}

#[cfg(all(target_os = "linux", not(feature = "polling-backend")))]
#[test]
fn on_linux_a_group_server_shards_with_one_reuseport_listener_per_loop() {
    let group = LoopGroup::with_loops(3).unwrap();
    let server = GroupServer::bind(&group, "127.0.0.1:0", ServerOptions::new()).unwrap();
    assert!(server.is_sharded());
    assert_eq!(server.listeners().len(), 3);
    for (i, listener) in server.listeners().iter().enumerate() {
        assert_eq!(listener.local_addr(), server.local_addr());
        assert_eq!(listener.loop_handle(), group.handle(i));
    }
}

/// Accept mode: `accept()` and `incoming()` take connections of every
/// loop; each stream lives on its loop and works from a task there.
#[test]
fn accept_and_incoming_on_a_group_server_take_connections_of_every_loop() {
    let group = LoopGroup::with_loops(2).unwrap();
    let server = GroupServer::bind_hand_off(&group, "127.0.0.1:0", ServerOptions::new()).unwrap();
    assert!(server.is_accept_mode());
    let addr = server.local_addr();
    let acceptor = server.clone();
    let loops = group.handles().to_vec();
    let served = group.spawn(async move {
        let mut seen = HashSet::new();
        let mut incoming = acceptor.incoming();
        while let Some(stream) = incoming.next().await {
            let mut stream = stream?;
            let owner = stream.socket().loop_handle().clone();
            seen.insert(
                loops
                    .iter()
                    .position(|l| *l == owner)
                    .expect("a group loop"),
            );
            owner.spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf).await {
                    let _ = stream.write_all(&buf[..n]).await;
                }
            });
        }
        Ok::<_, Error>(seen)
    });
    let mut clients: Vec<_> = (0..8).map(|_| std_connect(addr)).collect();
    for client in &mut clients {
        round_trip(client, b"through accept()");
    }
    server.close();
    let seen = block_on(served).unwrap().unwrap();
    assert_eq!(seen.len(), 2, "streams from both loops: {seen:?}");
    // `accept()` after close reports it.
    assert!(matches!(block_on(server.accept()), Err(Error::Closed)));
}

/// A loop of the group that is stopped drains: every byte its connections
/// had queued reaches the peer, then EOF; the other loops keep serving
/// the connections they have and new ones.
#[test]
fn a_stopped_loop_drains_its_connections_while_the_others_keep_serving() {
    const CLIENTS: usize = 12;
    // More than loopback's socket buffers hold: some of it is still in the
    // connection's output buffer when the loop is stopped.
    let payload = Bytes::from(common::random_data(14, 8 << 20));
    let group = LoopGroup::with_loops(2).unwrap();
    let placed: Arc<Mutex<HashMap<SocketAddr, LoopHandle>>> = Arc::default();
    let record = placed.clone();
    let greeting = payload.clone();
    let server = GroupServer::bind(
        &group,
        "127.0.0.1:0",
        ServerOptions::new().connection(echo().connect_cb(move |socket| {
            let peer = socket.peer_addr().expect("an accepted connection's peer");
            record
                .lock()
                .unwrap()
                .insert(peer, socket.loop_handle().clone());
            socket.write_bytes(greeting.clone()).unwrap();
        })),
    )
    .unwrap();
    // Enough clients that each loop gets some (hand-off alternates; the
    // kernel's hash leaves a loop empty with odds of 2^-11).
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| std_connect(server.local_addr()))
        .collect();
    wait_until("every connection placed", || {
        placed.lock().unwrap().len() == CLIENTS
    });
    let stopped = group.handle(1).clone();
    let (on_stopped, on_other): (Vec<_>, Vec<_>) = clients
        .into_iter()
        .partition(|client| placed.lock().unwrap()[&client.local_addr().unwrap()] == stopped);
    assert!(!on_stopped.is_empty() && !on_other.is_empty());

    let group = Arc::new(group);
    let stopper = {
        let group = group.clone();
        thread::spawn(move || group.stop_loop(1))
    };
    // The drained loop's clients: every byte, then EOF (read at once, so
    // that none stalls long enough for its close linger to give up).
    let readers: Vec<_> = on_stopped
        .into_iter()
        .map(|mut client| thread::spawn(move || read_to_end(&mut client)))
        .collect();
    for reader in readers {
        let got = reader.join().unwrap();
        common::assert_same("a drained connection's output", &got, &payload);
    }
    stopper.join().unwrap();
    assert!(stopped.is_stopped());
    assert_eq!(stopped.connection_count(), 0);
    // The others: their greeting, then still served.
    for mut client in on_other {
        let mut got = vec![0u8; payload.len()];
        client.read_exact(&mut got).unwrap();
        common::assert_same("a live loop's connection", &got, &payload);
        round_trip(&mut client, b"still here");
    }
    // New connections go to the loops left.
    for _ in 0..4 {
        let mut client = std_connect(server.local_addr());
        let mut got = vec![0u8; payload.len()];
        client.read_exact(&mut got).unwrap();
        round_trip(&mut client, b"newcomer");
        let owner = placed.lock().unwrap()[&client.local_addr().unwrap()].clone();
        assert_eq!(&owner, group.handle(0));
    }
    server.close();
}

/// A socket of one loop written to and closed from another loop's task:
/// the bytes arrive in order, then EOF.
#[test]
fn writes_and_closes_from_another_loop_reach_the_connection() {
    let group = LoopGroup::with_loops(2).unwrap();
    let (listener, addr) = std_listener();
    let socket = tcp_connect_addr(group.handle(0), addr, TcpOptions::new()).unwrap();
    let mut peer = accept(&listener);
    let from = group.handle(1).clone();
    let task = group.spawn_on(1, async move {
        assert!(from.is_loop_thread());
        assert!(!socket.loop_handle().is_loop_thread());
        for i in 0..1000u32 {
            socket.write(format!("{i:04}").as_bytes())?;
        }
        socket.close();
        Ok::<_, Error>(())
    });
    block_on(task).unwrap().unwrap();
    let got = read_to_end(&mut peer);
    let expected: String = (0..1000).map(|i| format!("{i:04}")).collect();
    assert_eq!(got, expected.as_bytes());
    wait_until("released on loop 0", || counts(&group)[0] == 0);
}

/// `ServerOptions::reuse_port` on a plain server: two servers (two loops)
/// share one port and the kernel hands connections to both; without it the
/// second bind fails.
#[test]
fn reuse_port_lets_two_servers_share_a_port() {
    let (a, b) = (common::LoopThread::start(), common::LoopThread::start());
    let options = || ServerOptions::new().reuse_port(true).connection(echo());
    let first = TcpServer::bind(&a.handle, "127.0.0.1:0", options()).unwrap();
    let addr = first.local_addr();
    let second = TcpServer::bind(&b.handle, addr, options()).unwrap();
    assert_eq!(second.local_addr(), addr);
    let refused = TcpServer::bind(
        &a.handle,
        addr,
        ServerOptions::new().reuse_port(false).connection(echo()),
    )
    .expect_err("a third server without SO_REUSEPORT");
    assert_eq!(std::io::Error::from(refused).kind(), ErrorKind::AddrInUse);
    let mut clients: Vec<_> = (0..32).map(|_| std_connect(addr)).collect();
    for client in &mut clients {
        round_trip(client, b"shared port");
    }
    let (on_a, on_b) = (a.handle.connection_count(), b.handle.connection_count());
    assert_eq!(on_a + on_b, 32);
    // Linux balances SO_REUSEPORT listeners by a hash of the addresses.
    #[cfg(target_os = "linux")]
    assert!(on_a > 0 && on_b > 0, "{on_a} / {on_b}");
    drop(clients);
    first.close();
    second.close();
}
