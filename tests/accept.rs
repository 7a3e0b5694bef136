//! Async accept: `TcpServer::listen`, `accept().await`, `incoming()`, the
//! bounded accept queue, and how accept mode coexists with callback mode
//! (issue #12, item 1). Real loopback sockets; every wait is bounded.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;

use common::{block_on, std_connect, wait_until, LoopThread};
use evstream::{AsyncIoStream, Error, ServerOptions, TcpOptions, TcpServer, UnixServer};
use futures_lite::StreamExt;

/// The tokio shape: listen on the default loop, accept in a loop, a task
/// per connection; each client gets its own bytes back.
#[test]
fn listen_accept_and_a_task_per_connection_echo_every_client() {
    let server = block_on(TcpServer::listen("127.0.0.1:0")).expect("listen");
    assert!(server.is_accept_mode());
    let acceptor = server.clone();
    let accept_loop = evstream::spawn(async move {
        let mut served = 0;
        while let Ok((stream, _)) = acceptor.accept().await {
            served += 1;
            evstream::spawn(common::echo_until_eof(stream));
        }
        served
    });
    let clients: Vec<_> = (0..4u8)
        .map(|i| {
            let addr = server.local_addr();
            std::thread::spawn(move || {
                let mut client = std_connect(addr);
                let message = vec![i; 10_000 + usize::from(i)];
                client.write_all(&message).unwrap();
                client.shutdown(std::net::Shutdown::Write).unwrap();
                assert_eq!(common::read_to_end(&mut client), message, "client {i}");
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    server.close();
    assert_eq!(block_on(accept_loop).expect("the accept loop ends"), 4);
}

/// `accept` returns an open connection with the peer's address, and
/// `incoming` ends once the server is closed.
#[test]
fn accept_gives_the_peer_address_and_incoming_ends_at_close() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    let client = std_connect(server.local_addr());
    let (stream, peer) = block_on(server.accept()).expect("accept");
    assert_eq!(peer, client.local_addr().unwrap());
    assert_eq!(stream.peer_addr().unwrap(), peer);
    assert_eq!(stream.local_addr().unwrap(), server.local_addr());

    let second = std_connect(server.local_addr());
    let mut incoming = server.incoming();
    let next = block_on(incoming.next())
        .expect("a connection")
        .expect("ok");
    assert_eq!(next.peer_addr().unwrap(), second.local_addr().unwrap());
    server.close();
    assert!(
        block_on(incoming.next()).is_none(),
        "incoming ends at close"
    );
    assert!(matches!(block_on(server.accept()), Err(Error::Closed)));
}

/// The queue is bounded by the backlog: with a backlog of 2 and 5 clients,
/// at most 2 wait in evstream's queue (the rest stay in the kernel's), and
/// each accept lets the acceptor take the next one, until all 5 are in.
#[test]
fn the_accept_queue_is_bounded_and_resumes_when_the_application_accepts() {
    let lt = LoopThread::start();
    let server =
        TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new().backlog(2)).unwrap();
    let clients: Vec<_> = (0..5).map(|_| std_connect(server.local_addr())).collect();
    wait_until("two connections queued", || server.queued() == 2);
    let mut accepted: Vec<SocketAddr> = Vec::new();
    for _ in 0..5 {
        assert!(server.queued() <= 2, "queue grew to {}", server.queued());
        let (_stream, peer) = block_on(server.accept()).expect("accept");
        accepted.push(peer);
    }
    let mut expected: Vec<SocketAddr> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    expected.sort();
    accepted.sort();
    assert_eq!(accepted, expected, "every client accepted once");
    assert_eq!(server.queued(), 0);
}

/// `accept` is cancel safe: an accept dropped while waiting loses no
/// connection; the next accept gets it.
#[test]
fn a_dropped_accept_loses_no_connection() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    {
        let mut waiting = Box::pin(server.accept());
        assert!(common::poll_once_by_hand(&mut waiting).is_pending());
    }
    let client = std_connect(server.local_addr());
    wait_until("the connection queued", || server.queued() == 1);
    let (_stream, peer) = block_on(server.accept()).expect("accept");
    assert_eq!(peer, client.local_addr().unwrap());
}

/// Closing an accept-mode server closes the connections nobody accepted
/// (their clients see the end) and fails a pending accept.
#[test]
fn closing_the_server_closes_queued_connections_and_fails_accept() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    let mut client = std_connect(server.local_addr());
    wait_until("the connection queued", || server.queued() == 1);
    let (_first, _) = block_on(server.accept()).expect("accept the first");
    // A second accept waits: nothing is queued.
    let mut waiting = Box::pin(server.accept());
    assert!(common::poll_once_by_hand(&mut waiting).is_pending());
    let mut queued_client = std_connect(server.local_addr());
    wait_until("the second connection queued", || server.queued() == 1);
    // ... and is then taken by the waiting accept: make a third wait.
    let (_second, _) = block_on(waiting).expect("the waiting accept takes it");
    let mut third_client = std_connect(server.local_addr());
    wait_until("the third connection queued", || server.queued() == 1);
    let mut waiting = Box::pin(server.accept());
    let took_third = std::cell::Cell::new(false);
    let mut blocked = Box::pin(async {
        // Takes the third, then waits for a fourth that never comes.
        let third = server.accept().await;
        took_third.set(true);
        (third.is_ok(), server.accept().await.err())
    });
    // Queued is not yet accepted: `accept` hands a connection over once
    // the loop has set it up, which may take a turn of the loop.
    wait_until("the third connection taken", || {
        assert!(common::poll_once_by_hand(&mut blocked).is_pending());
        took_third.get()
    });
    server.close();
    let (third_ok, then) = block_on(blocked);
    assert!(third_ok, "the queued one was taken before the close");
    assert!(matches!(then, Some(Error::Closed)), "{then:?}");
    assert!(matches!(block_on(waiting.as_mut()), Err(Error::Closed)));
    assert!(matches!(block_on(server.accept()), Err(Error::Closed)));
    // Accepted streams dropped here or above: the clients see EOF.
    drop((_first, _second));
    assert!(common::read_to_end(&mut client).is_empty());
    assert!(common::read_to_end(&mut queued_client).is_empty());
    assert!(common::read_to_end(&mut third_client).is_empty());
}

/// A connection still queued when the server closes is closed with it.
#[test]
fn a_connection_nobody_accepted_is_closed_with_the_server() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    let mut client = std_connect(server.local_addr());
    wait_until("the connection queued", || server.queued() == 1);
    server.close();
    assert_eq!(server.queued(), 0);
    assert!(common::read_to_end(&mut client).is_empty(), "EOF");
}

/// Accept mode is changed deliberately: a server without callbacks keeps
/// each connection open for `accept()` (it used to close them, since
/// nothing could reach them), while a server with callbacks hands them to
/// the callbacks and refuses `accept()`.
#[test]
fn callback_servers_refuse_accept_and_callback_free_servers_queue() {
    let lt = LoopThread::start();
    let (tx, rx) = common::channel();
    let tx = std::sync::Mutex::new(tx);
    let callbacks = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(TcpOptions::new().connect_cb(move |socket| {
            tx.lock().unwrap().send(socket.peer_addr()).unwrap();
            socket.close();
        })),
    )
    .unwrap();
    assert!(!callbacks.is_accept_mode());
    let client = std_connect(callbacks.local_addr());
    assert_eq!(
        common::recv(&rx, "connect_cb"),
        Some(client.local_addr().unwrap())
    );
    assert!(matches!(
        block_on(callbacks.accept()),
        Err(Error::InvalidInput(_))
    ));
    assert_eq!(callbacks.queued(), 0);

    let queueing = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    let mut client = std_connect(queueing.local_addr());
    let (mut stream, _) = block_on(queueing.accept()).expect("accept");
    client.write_all(b"still open").unwrap();
    let mut got = [0u8; 10];
    block_on(stream.read_exact(&mut got)).expect("read what the client sent");
    assert_eq!(&got, b"still open");
}

/// Dropping every handle of an accept-mode server closes it: nobody could
/// accept any more, so connections would wait for ever. The connection
/// waiting in its queue is closed with it.
#[test]
fn dropping_the_last_handle_of_an_accept_mode_server_closes_it() {
    let lt = LoopThread::start();
    let server = TcpServer::bind(&lt.handle, "127.0.0.1:0", ServerOptions::new()).unwrap();
    let mut client = std_connect(server.local_addr());
    wait_until("the connection queued", || server.queued() == 1);
    let clone = server.clone();
    drop(server);
    assert!(!clone.is_closed(), "a clone is still a handle");
    drop(clone);
    assert!(
        common::read_to_end(&mut client).is_empty(),
        "EOF: the server closed its queued connection"
    );
}

/// The same over a Unix domain socket.
#[test]
fn a_unix_server_accepts_streams() {
    let dir = std::env::temp_dir().join(format!("evstream-accept-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("accept.sock");
    let _ = std::fs::remove_file(&path);
    let server = UnixServer::listen(&path).expect("listen");
    assert!(server.is_accept_mode());
    let mut client = std::os::unix::net::UnixStream::connect(&path).unwrap();
    client.set_read_timeout(Some(common::WAIT)).unwrap();
    let (mut stream, peer_path) = block_on(server.accept()).expect("accept");
    assert_eq!(peer_path, None, "the client's end is unnamed");
    assert_eq!(
        stream.peer_addr().unwrap_err().kind(),
        ErrorKind::Unsupported,
        "a Unix socket has no IP address"
    );
    block_on(async {
        stream.write_all(b"over unix").await?;
        stream.close().await
    })
    .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"over unix");
    let mut incoming = server.incoming();
    server.close();
    assert!(block_on(incoming.next()).is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `listen` takes a host name and resolves it off the caller's thread.
#[test]
fn listen_resolves_a_host_name() {
    let server = block_on(TcpServer::listen(("localhost", 0))).expect("listen on localhost");
    assert!(server.local_addr().ip().is_loopback());
    let client = block_on(AsyncIoStream::connect(server.local_addr())).expect("connect");
    let (_, peer) = block_on(server.accept()).expect("accept");
    assert_eq!(peer, client.local_addr().unwrap());
    server.close();
}
