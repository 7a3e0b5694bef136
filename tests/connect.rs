//! Connection setup: writes queued before the connection completes (contract
//! rule 5), name resolution, IPv6 loopback, the `bind` option, addresses
//! before and after connecting, and `TcpServer` binding and closing.
//!
//! Not tested: `nodelay` (on by default) — the option of our own socket
//! cannot be observed from the peer, and the `Socket` API does not expose it.

mod common;

use common::{data_channel, recv_bytes};

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use bytes::Bytes;
use evstream::{
    tcp_connect, tcp_connect_addr, Error, Event, LoopHandle, ServerOptions, Socket, TcpOptions,
    TcpServer,
};

use common::{LoopThread, WAIT};

fn read_exact(peer: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    peer.read_exact(&mut buf).expect("peer read_exact");
    buf
}

fn wait_connected(events: &Receiver<Event>) {
    let event = common::wait_event(events, "Connected", |e| {
        matches!(e, Event::Connected | Event::Error(_) | Event::Closed)
    });
    assert!(
        matches!(event, Event::Connected),
        "expected Connected, got {event:?}"
    );
}

/// Sends data both ways over a connected evstream socket (drain mode,
/// `data` its read channel) and its std peer, and checks it.
fn exchange(socket: &Socket, data: &Receiver<Bytes>, peer: &mut TcpStream, seed: u64) {
    let to_peer = common::random_data(seed, 3000);
    socket.write(&to_peer).expect("write");
    assert_eq!(read_exact(peer, to_peer.len()), to_peer);
    let to_us = common::random_data(seed + 1, 3000);
    common::write_all(peer, &to_us);
    assert_eq!(recv_bytes(data, to_us.len()), to_us);
}

/// Returns once the loop has run everything posted to it before this call
/// (posted work runs in order; the callback comes on a later turn).
fn loop_barrier(handle: &LoopHandle) {
    let (tx, rx) = common::channel();
    handle.delay(Duration::ZERO, move || {
        let _ = tx.send(());
    });
    common::recv(&rx, "loop barrier");
}

/// A listener whose accept queue is full: the kernel drops further SYNs, so
/// a connect to it stays pending until the queue is drained and a
/// retransmitted SYN (about 1 s later) finds room.
struct StalledListener {
    listener: TcpListener,
    addr: SocketAddr,
    fillers: Vec<TcpStream>,
}

impl StalledListener {
    fn new() -> StalledListener {
        use socket2::{Domain, Protocol, Type};
        let socket =
            socket2::Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).expect("bind");
        socket.listen(0).expect("listen");
        let listener: TcpListener = socket.into();
        let addr = listener.local_addr().unwrap();
        let mut fillers = Vec::new();
        for _ in 0..64 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(stream) => fillers.push(stream),
                Err(err) if err.kind() == io::ErrorKind::TimedOut => {
                    // The hung attempt is dropped here, so no SYN but the
                    // test's own will take the slot freed later.
                    return StalledListener {
                        listener,
                        addr,
                        fillers,
                    };
                }
                Err(err) => panic!("filling the accept queue: {err}"),
            }
        }
        panic!("the accept queue of a listen(0) socket never filled");
    }

    /// Accepts the fillers, making room for a pending connect.
    fn drain(&mut self) {
        for _ in self.fillers.drain(..) {
            common::accept(&self.listener);
        }
    }
}

/// Rule 5: writes made while the connection is still pending are queued and
/// sent once it is up, after the `data` option's bytes, in order, complete.
#[test]
fn writes_before_connect_are_queued_and_sent_in_order() {
    let lt = LoopThread::start();
    let mut stalled = StalledListener::new();
    let (event_cb, events) = common::event_channel();
    let initial = Bytes::from_static(b"data-option-bytes|");
    let first = b"first write|".to_vec();
    let second = Bytes::from(common::random_data(31, 300 * 1024));
    let socket = tcp_connect_addr(
        &lt.handle,
        stalled.addr,
        TcpOptions::new().data(initial.clone()).event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");
    socket.write(&first).expect("write while connecting");
    socket
        .write_bytes(second.clone())
        .expect("write_bytes while connecting");
    // The loop has sent the SYN, which the full queue dropped: the
    // connection is certainly still pending.
    loop_barrier(&lt.handle);
    assert!(!socket.is_connected());
    assert_eq!(
        socket.output_buffer_len(),
        initial.len() + first.len() + second.len(),
        "pending writes were not queued"
    );

    stalled.drain();
    wait_connected(&events);
    let mut peer = common::accept(&stalled.listener);
    let mut expected = initial.to_vec();
    expected.extend_from_slice(&first);
    expected.extend_from_slice(&second);
    let got = read_exact(&mut peer, expected.len());
    assert!(
        got == expected,
        "queued bytes arrived out of order or corrupted"
    );
    socket.close();
    assert!(
        common::read_to_end(&mut peer).is_empty(),
        "bytes after the queued writes"
    );
}

/// Rule 5: writes issued right after `tcp_connect` returns (typically before
/// the connection is up) follow the `data` option's bytes, in order.
#[test]
fn writes_right_after_connect_returns_follow_the_data_option() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let socket = tcp_connect(
        &lt.handle,
        "127.0.0.1",
        addr.port(),
        TcpOptions::new().data(&b"hello "[..]),
    )
    .expect("tcp_connect returns at once");
    socket.write(b"world").expect("write");
    socket.write(b", again").expect("write");
    let mut peer = common::accept(&listener);
    // The connection has no callbacks: dropping the last handle closes it
    // gracefully, flushing what is queued.
    drop(socket);
    assert_eq!(common::read_to_end(&mut peer), b"hello world, again");
}

/// Connecting by host name: "localhost" reaches a server listening on
/// 127.0.0.1 only.
#[test]
fn connects_by_host_name_to_an_ipv4_only_server() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (read_cb, data) = data_channel();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "localhost",
        addr.port(),
        TcpOptions::new().read_cb(read_cb).event_cb(event_cb),
    )
    .expect("tcp_connect returns at once");
    assert_eq!(socket.host(), Some("localhost"));
    let mut peer = common::accept(&listener);
    wait_connected(&events);
    assert_eq!(socket.peer_addr(), Some(addr));
    assert_eq!(socket.local_addr(), Some(peer.peer_addr().unwrap()));
    exchange(&socket, &data, &mut peer, 41);
}

fn has_ipv6_loopback() -> bool {
    TcpListener::bind("[::1]:0").is_ok()
}

/// Connecting to the IPv6 loopback by address string.
#[test]
fn connects_over_ipv6_loopback() {
    if !has_ipv6_loopback() {
        eprintln!("NOTE: no IPv6 loopback on this machine; connects_over_ipv6_loopback skipped");
        return;
    }
    let lt = LoopThread::start();
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (read_cb, data) = data_channel();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "::1",
        addr.port(),
        TcpOptions::new().read_cb(read_cb).event_cb(event_cb),
    )
    .expect("tcp_connect returns at once");
    let mut peer = common::accept(&listener);
    wait_connected(&events);
    assert_eq!(socket.peer_addr(), Some(addr));
    assert_eq!(socket.local_addr(), Some(peer.peer_addr().unwrap()));
    assert!(socket.local_addr().unwrap().is_ipv6());
    exchange(&socket, &data, &mut peer, 51);
}

/// Every resolved address is tried in order: when "localhost" resolves to
/// both families, a server on the family listed last is still reached.
#[test]
fn later_resolved_addresses_are_tried_when_earlier_ones_fail() {
    let resolved: Vec<SocketAddr> = match ("localhost", 0).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(err) => panic!("resolving localhost: {err}"),
    };
    let (Some(first), Some(last)) = (resolved.first(), resolved.last()) else {
        panic!("localhost resolved to nothing");
    };
    if first.is_ipv4() == last.is_ipv4() || !has_ipv6_loopback() {
        eprintln!(
            "NOTE: localhost resolves to {resolved:?} (one family) on this machine; \
             the fall-through to a later address cannot be forced, test skipped"
        );
        return;
    }
    let lt = LoopThread::start();
    let listener = TcpListener::bind((last.ip(), 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect(
        &lt.handle,
        "localhost",
        addr.port(),
        TcpOptions::new().event_cb(event_cb),
    )
    .expect("tcp_connect returns at once");
    let _peer = common::accept(&listener);
    wait_connected(&events);
    assert_eq!(socket.peer_addr(), Some(addr));
}

/// The `bind` option: an outgoing connection bound to 127.0.0.1:0 has a
/// 127.0.0.1 local address, the one the server sees.
#[test]
fn bind_option_sets_the_local_address() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .bind("127.0.0.1:0".parse().unwrap())
            .event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");
    let peer = common::accept(&listener);
    wait_connected(&events);
    let local = socket.local_addr().expect("local_addr once connected");
    assert_eq!(local.ip(), "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    assert_ne!(local.port(), 0);
    assert_eq!(local, peer.peer_addr().unwrap());
}

/// The `bind` option with a chosen port (and, where the loopback range
/// allows it, a chosen address): the server sees exactly that address.
#[test]
fn bind_to_a_chosen_address_is_what_the_server_sees() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let mut sources = Vec::new();
    for ip in ["127.0.0.1", "127.0.0.2"] {
        // Find a free port on that address (bound once, then released).
        match TcpListener::bind((ip, 0)) {
            Ok(probe) => sources.push(probe.local_addr().unwrap()),
            Err(err) => {
                assert_ne!(ip, "127.0.0.1", "cannot bind 127.0.0.1: {err}");
                eprintln!("NOTE: cannot bind {ip} on this machine ({err}); that case skipped");
            }
        }
    }
    for source in sources {
        let (event_cb, events) = common::event_channel();
        let socket = tcp_connect_addr(
            &lt.handle,
            addr,
            TcpOptions::new().bind(source).event_cb(event_cb),
        )
        .expect("tcp_connect_addr returns at once");
        let peer = common::accept(&listener);
        wait_connected(&events);
        assert_eq!(
            peer.peer_addr().unwrap(),
            source,
            "server saw another source"
        );
        assert_eq!(socket.local_addr(), Some(source));
        socket.close();
    }
}

/// Rule 8: binding the outgoing socket to an address in use fails the
/// connection with an error event (io kind `AddrInUse`), then `Closed`.
#[test]
fn bind_to_an_address_in_use_reports_an_error() {
    let lt = LoopThread::start();
    let (_listener, addr) = common::std_listener();
    let (_busy, busy) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new().bind(busy).event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");
    let event = common::wait_event(&events, "Error", |e| {
        matches!(e, Event::Error(_) | Event::Connected | Event::Closed)
    });
    let err = event
        .error()
        .cloned()
        .unwrap_or_else(|| panic!("expected an error, got {event:?}"));
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err:?}");
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
    assert!(!socket.is_connected());
}

/// `peer_addr()`/`local_addr()` are `None` while the connection is pending
/// and match what the std peer sees once it is up.
#[test]
fn addresses_are_unknown_until_connected_then_match_the_peer() {
    let lt = LoopThread::start();
    let mut stalled = StalledListener::new();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        stalled.addr,
        TcpOptions::new().event_cb(event_cb),
    )
    .expect("tcp_connect_addr returns at once");
    // The loop has sent the SYN, which the full queue dropped.
    loop_barrier(&lt.handle);
    assert_eq!(socket.peer_addr(), None);
    assert_eq!(socket.local_addr(), None);
    assert!(!socket.is_connected());

    stalled.drain();
    wait_connected(&events);
    let peer = common::accept(&stalled.listener);
    assert!(socket.is_connected());
    assert_eq!(socket.peer_addr(), Some(peer.local_addr().unwrap()));
    assert_eq!(socket.peer_addr(), Some(stalled.addr));
    assert_eq!(socket.local_addr(), Some(peer.peer_addr().unwrap()));
}

/// A `TcpServer` whose connections echo what they receive.
fn echo_server(handle: &LoopHandle, addr: &str) -> TcpServer {
    TcpServer::bind(
        handle,
        addr,
        ServerOptions::new().connection(TcpOptions::new().read_cb(|socket, data| {
            let _ = socket.write_bytes(data);
        })),
    )
    .expect("bind the echo server")
}

fn echo_round(peer: &mut TcpStream, seed: u64) {
    let data = common::random_data(seed, 2000);
    common::write_all(peer, &data);
    assert_eq!(read_exact(peer, data.len()), data);
}

/// `TcpServer::bind` on port 0 listens on a real port that accepts.
#[test]
fn server_on_port_zero_gets_a_real_port() {
    let lt = LoopThread::start();
    let server = echo_server(&lt.handle, "127.0.0.1:0");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    assert!(addr.ip().is_loopback());
    let mut peer = common::std_connect(addr);
    echo_round(&mut peer, 61);
    server.close();
}

/// Binding an address already in use (no `SO_REUSEPORT`) fails with an
/// error whose io kind is `AddrInUse`.
#[test]
fn server_bind_to_an_address_in_use_fails_with_addr_in_use() {
    let lt = LoopThread::start();
    let first = echo_server(&lt.handle, "127.0.0.1:0");
    let addr = first.local_addr();
    let err = TcpServer::bind(&lt.handle, addr, ServerOptions::new())
        .expect_err("a second server on the same address");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err:?}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::AddrInUse);

    // Also against a listener that is not evstream's.
    let (_std, std_addr) = common::std_listener();
    let err = TcpServer::bind(&lt.handle, std_addr, ServerOptions::new())
        .expect_err("a server on a std listener's address");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err:?}");
    assert!(matches!(err, Error::Io(_)), "{err:?}");

    // The first server is unharmed.
    let mut peer = common::std_connect(addr);
    echo_round(&mut peer, 71);
    first.close();
}

/// `TcpServer::close` stops accepting (a later connect is refused) while
/// connections already accepted go on.
#[test]
fn closed_server_refuses_new_connections_and_existing_ones_go_on() {
    let lt = LoopThread::start();
    let server = echo_server(&lt.handle, "127.0.0.1:0");
    let addr = server.local_addr();
    let mut existing = common::std_connect(addr);
    echo_round(&mut existing, 81);

    server.close();
    assert!(server.is_closed());
    // `close` from another thread is carried out by the loop; work posted
    // after it on the same loop runs once it has been.
    loop_barrier(&lt.handle);

    let err = TcpStream::connect_timeout(&addr, WAIT).expect_err("connect after close()");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");

    echo_round(&mut existing, 82);
    server.close(); // idempotent
    echo_round(&mut existing, 83);
}

/// Both ends know both addresses, whether the server listens on one address
/// (its accepted sockets take theirs from it and the peer's from `accept`)
/// or on the wildcard address (the kernel is asked); the client takes the
/// peer's from the address it connected to.
#[test]
fn both_ends_report_both_addresses() {
    for bind in ["127.0.0.1:0", "0.0.0.0:0"] {
        let lt = LoopThread::start();
        let (accepted_tx, accepted) = common::channel();
        let server = TcpServer::bind(
            &lt.handle,
            bind,
            ServerOptions::new().connection(TcpOptions::new().connect_cb(move |s| {
                let _ = accepted_tx.send((s.local_addr(), s.peer_addr()));
            })),
        )
        .expect("bind");
        let port = server.local_addr().port();
        let (event_cb, events) = common::event_channel();
        let client = tcp_connect(
            &lt.handle,
            "127.0.0.1",
            port,
            TcpOptions::new().event_cb(event_cb),
        )
        .expect("tcp_connect");
        wait_connected(&events);
        let (server_local, server_peer) = common::recv(&accepted, "accepted");
        let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert_eq!(client.peer_addr(), Some(target), "{bind}");
        assert_eq!(server_local, Some(target), "{bind}");
        let client_local = client.local_addr().expect("client local address");
        assert_eq!(client_local.ip(), target.ip(), "{bind}");
        assert_ne!(client_local.port(), 0, "{bind}");
        assert_eq!(server_peer, Some(client_local), "{bind}");
        server.close();
    }
}
