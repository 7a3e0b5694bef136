//! Loop mechanics and lifetime (contract rule 11): `run` returns when idle
//! and not before, `stop`, `spawn`, `delay`, `block_on` and `run_once`.
//!
//! Every loop that could hang on a bug runs on a helper thread whose result
//! is awaited with a bounded wait, so a broken rule fails instead of hanging.

mod common;

use std::future::Future;
use std::io::Read;
use std::net::Shutdown;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use evstream::{
    tcp_connect, tcp_connect_addr, Event, EventLoop, ServerOptions, TcpOptions, TcpServer,
};

use common::LoopThread;

/// Creates a loop on a new thread, runs `body` with it there and sends back
/// what it returns.
fn with_loop_on_thread<T: Send + 'static>(
    body: impl FnOnce(&mut EventLoop) -> T + Send + 'static,
) -> Receiver<T> {
    let (tx, rx) = common::channel();
    thread::spawn(move || {
        let mut ev = EventLoop::new().expect("create a loop");
        let _ = tx.send(body(&mut ev));
    });
    rx
}

/// Rule 11: after a client and a server exchange data and both close (and
/// the server stops listening), `run()` returns on its own.
#[test]
fn run_returns_when_nothing_is_left() {
    let done = with_loop_on_thread(|ev| {
        let handle = ev.handle();
        let closed = Arc::new(AtomicUsize::new(0));
        let server_closed = closed.clone();
        let server = TcpServer::bind(
            &handle,
            "127.0.0.1:0",
            ServerOptions::new().connection(
                TcpOptions::new()
                    .read_cb(|s, data| {
                        s.write_bytes(data).unwrap();
                        s.close();
                    })
                    .event_cb(move |_, event| {
                        if matches!(event, Event::Closed) {
                            server_closed.fetch_add(1, Ordering::SeqCst);
                        }
                    }),
            ),
        )
        .unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let stop_server = server.clone();
        let client_closed = closed.clone();
        tcp_connect(
            &handle,
            "127.0.0.1",
            server.local_addr().port(),
            TcpOptions::new()
                .data(&b"hello"[..])
                .read_cb(move |_, data| sink.lock().unwrap().extend_from_slice(&data))
                .event_cb(move |s, event| match event {
                    Event::Eof => {
                        s.close();
                        stop_server.close();
                    }
                    Event::Closed => {
                        client_closed.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }),
        )
        .unwrap();
        let result = ev.run();
        let got = got.lock().unwrap().clone();
        (
            result.map_err(|e| e.to_string()),
            got,
            closed.load(Ordering::SeqCst),
        )
    });
    let (result, got, closed) = common::recv(&done, "run() to return once idle");
    result.unwrap();
    assert_eq!(got, b"hello");
    assert_eq!(
        closed, 2,
        "both connections were released before run returned"
    );
}

/// Rule 11: `run()` does not return while a connection is open, even when it
/// is idle: a message the peer sends later is still served, and `run()`
/// returns only once the connection has closed.
#[test]
fn run_keeps_going_while_a_connection_is_open() {
    let (listener, addr) = common::std_listener();
    let (data_tx, data_rx) = common::channel::<Vec<u8>>();
    let done = with_loop_on_thread(move |ev| {
        tcp_connect_addr(
            &ev.handle(),
            addr,
            TcpOptions::new()
                .data(&b"hi"[..])
                .read_cb(move |_, data| {
                    let _ = data_tx.send(data.to_vec());
                })
                .event_cb(|s, event| {
                    if matches!(event, Event::Eof) {
                        s.close();
                    }
                }),
        )
        .unwrap();
        ev.run().map_err(|e| e.to_string())
    });
    let mut peer = common::accept(&listener);
    let mut hi = [0u8; 2];
    peer.read_exact(&mut hi).unwrap();
    assert_eq!(&hi, b"hi");
    // The connection is open and idle; the loop must still be running.
    assert!(
        matches!(done.try_recv(), Err(TryRecvError::Empty)),
        "run() returned with a connection open"
    );
    common::write_all(&mut peer, b"late message");
    let got = common::recv(&data_rx, "the late message");
    assert_eq!(got, b"late message");
    assert!(
        matches!(done.try_recv(), Err(TryRecvError::Empty)),
        "run() returned with a connection open"
    );
    // Now the peer closes; the client closes at EOF and run() returns.
    peer.shutdown(Shutdown::Write).unwrap();
    assert!(common::read_to_end(&mut peer).is_empty());
    common::recv(&done, "run() to return after the close").unwrap();
}

/// Rule 11: `stop()` from another thread ends `run_until_stopped`, which
/// otherwise keeps running even while idle.
#[test]
fn stop_from_another_thread_ends_run_until_stopped() {
    let (handle_tx, handle_rx) = common::channel();
    let done = with_loop_on_thread(move |ev| {
        let handle = ev.handle();
        let running = handle_tx.clone();
        let on_loop = handle.clone();
        handle.delay(Duration::ZERO, move || {
            let _ = running.send(on_loop);
        });
        ev.run_until_stopped().map_err(|e| e.to_string())
    });
    let handle = common::recv(&handle_rx, "the loop to start");
    // Nothing is left for the loop to do, yet it still runs work posted to it.
    let (tx, rx) = common::channel();
    handle.delay(Duration::ZERO, move || tx.send(()).unwrap());
    common::recv(&rx, "a delay run by the idle loop");
    assert!(matches!(done.try_recv(), Err(TryRecvError::Empty)));
    handle.stop();
    common::recv(&done, "run_until_stopped to return after stop()").unwrap();
}

/// Rule 11: `EventLoop::spawn` runs the loop on a background thread; every
/// callback runs there (`is_loop_thread` true inside, false outside).
#[test]
fn spawn_runs_callbacks_on_the_background_thread() {
    let lt = LoopThread {
        handle: EventLoop::spawn().unwrap(),
    };
    let handle = lt.handle.clone();
    let (seen_tx, seen) = common::channel::<(&'static str, bool, thread::ThreadId)>();
    let record = move |name: &'static str, on_loop: bool| {
        let _ = seen_tx.send((name, on_loop, thread::current().id()));
    };
    let (h1, h2, h3) = (handle.clone(), handle.clone(), handle.clone());
    let (r1, r2, r3) = (record.clone(), record.clone(), record.clone());
    let server = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(
            TcpOptions::new()
                .connect_cb(move |_| r1("server connect_cb", h1.is_loop_thread()))
                .read_cb(move |s, data| {
                    r2("server read_cb", h2.is_loop_thread());
                    s.write_bytes(data).unwrap();
                }),
        ),
    )
    .unwrap();
    let socket = tcp_connect_addr(
        &handle,
        server.local_addr(),
        TcpOptions::new()
            .data(&b"ping"[..])
            .read_cb(move |s, _| {
                r3("client read_cb", h3.is_loop_thread());
                assert!(s.loop_handle().is_loop_thread());
            })
            .event_cb(move |s, event| {
                if matches!(event, Event::Connected) {
                    record("client event_cb", s.loop_handle().is_loop_thread());
                }
            }),
    )
    .unwrap();
    assert!(socket.loop_handle() == &handle);
    assert!(!handle.is_loop_thread());
    let me = thread::current().id();
    let mut names = Vec::new();
    let mut loop_thread = None;
    while names.len() < 4 {
        let (name, on_loop, id) = common::recv(&seen, "callbacks");
        assert!(on_loop, "{name}: is_loop_thread() was false inside it");
        assert_ne!(id, me, "{name} ran on the caller's thread");
        assert_eq!(
            *loop_thread.get_or_insert(id),
            id,
            "{name} on another thread"
        );
        names.push(name);
    }
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "client event_cb",
            "client read_cb",
            "server connect_cb",
            "server read_cb"
        ]
    );
    assert!(!handle.is_loop_thread());
    socket.close();
    server.close();
}

/// Rule 11: `delay` callbacks run in deadline order (ties in the order set),
/// a cancelled one never runs, and a pending delay keeps `run()` alive until
/// it fires.
#[test]
fn delays_fire_in_order_cancelled_ones_never_and_keep_run_alive() {
    let done = with_loop_on_thread(|ev| {
        let handle = ev.handle();
        let log = Arc::new(Mutex::new(Vec::new()));
        let at = |name: &'static str| {
            let log = log.clone();
            move || log.lock().unwrap().push(name)
        };
        handle.delay(Duration::from_millis(40), at("40ms"));
        let cancelled_in_callback = handle.delay(Duration::from_millis(30), at("cancelled late"));
        handle.delay(Duration::from_millis(20), at("20ms a"));
        handle.delay(Duration::from_millis(20), at("20ms b"));
        handle
            .delay(Duration::from_millis(10), at("cancelled early"))
            .cancel();
        let first = at("zero");
        handle.delay(Duration::ZERO, move || {
            first();
            cancelled_in_callback.cancel();
        });
        let start = Instant::now();
        let result = ev.run();
        let elapsed = start.elapsed();
        let log = log.lock().unwrap().clone();
        (result.map_err(|e| e.to_string()), log, elapsed)
    });
    let (result, log, elapsed) = common::recv(&done, "run() to return after the delays");
    result.unwrap();
    assert_eq!(log, ["zero", "20ms a", "20ms b", "40ms"]);
    assert!(
        elapsed >= Duration::from_millis(40),
        "run() returned before the last delay was due ({elapsed:?})"
    );
}

/// Rule 11: a cancelled delay does not keep `run()` alive.
#[test]
fn cancelled_delay_does_not_keep_run_alive() {
    let done = with_loop_on_thread(|ev| {
        let fired = Arc::new(AtomicUsize::new(0));
        let count = fired.clone();
        ev.handle()
            .delay(Duration::from_secs(3600), move || {
                count.fetch_add(1, Ordering::SeqCst);
            })
            .cancel();
        let result = ev.run().map_err(|e| e.to_string());
        (result, fired.load(Ordering::SeqCst))
    });
    let (result, fired) = common::recv(&done, "run() to return");
    result.unwrap();
    assert_eq!(fired, 0);
}

/// What a `read_cb` shares with a future: the bytes so far and the waker of
/// the task waiting for them.
#[derive(Default)]
struct Inbox {
    data: Vec<u8>,
    waker: Option<Waker>,
}

/// A future that completes once `want` bytes are in the inbox, returning
/// them and whether it was polled on the loop thread.
struct ReceiveAll {
    inbox: Arc<Mutex<Inbox>>,
    want: usize,
    handle: evstream::LoopHandle,
    polled_off_loop: bool,
}

impl Future for ReceiveAll {
    type Output = (Vec<u8>, bool);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if !self.handle.is_loop_thread() {
            self.polled_off_loop = true;
        }
        let mut inbox = self.inbox.lock().unwrap();
        if inbox.data.len() >= self.want {
            let data = std::mem::take(&mut inbox.data);
            drop(inbox);
            Poll::Ready((data, !self.polled_off_loop))
        } else {
            inbox.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// Rule 11: `block_on` drives a future on the loop thread while the loop
/// serves connections: a future woken by a `read_cb` on the same loop
/// completes with the peer's data.
#[test]
fn block_on_drives_a_future_woken_by_a_read_cb() {
    const LEN: usize = 256 * 1024;
    let (listener, addr) = common::std_listener();
    let (got_tx, got_rx) = common::channel();
    let done = with_loop_on_thread(move |ev| {
        let handle = ev.handle();
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        let sink = inbox.clone();
        let socket = tcp_connect_addr(
            &handle,
            addr,
            TcpOptions::new()
                .data(&b"hi"[..])
                .read_cb(move |_, data| {
                    let waker = {
                        let mut inbox = sink.lock().unwrap();
                        inbox.data.extend_from_slice(&data);
                        inbox.waker.take()
                    };
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                })
                .event_cb(|s, event| {
                    if matches!(event, Event::Eof) {
                        s.close();
                    }
                }),
        )
        .unwrap();
        let future = ReceiveAll {
            inbox,
            want: LEN,
            handle,
            polled_off_loop: false,
        };
        let output = ev.block_on(future).map_err(|e| e.to_string());
        let _ = got_tx.send(output);
        socket.close();
        // Finish the graceful close; the peer closes its side too.
        ev.run().map_err(|e| e.to_string())
    });
    let mut peer = common::accept(&listener);
    // The client's greeting shows the loop has seen the connection open.
    let mut hi = [0u8; 2];
    peer.read_exact(&mut hi).unwrap();
    let data = common::random_data(21, LEN);
    common::write_all(&mut peer, &data);
    let (got, on_loop) = common::recv(&got_rx, "block_on to complete").unwrap();
    assert!(got == data, "the future got {} other bytes", got.len());
    assert!(on_loop, "the future was polled off the loop thread");
    assert!(common::read_to_end(&mut peer).is_empty());
    drop(peer);
    common::recv(&done, "run() after block_on").unwrap();
}

/// A one-shot slot: a value and the waker of the task waiting for it.
type Slot = Arc<Mutex<(Option<u64>, Option<Waker>)>>;

struct Oneshot {
    slot: Slot,
    registered: std::sync::mpsc::Sender<()>,
}

impl Future for Oneshot {
    type Output = u64;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        let mut slot = self.slot.lock().unwrap();
        match slot.0.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.1 = Some(cx.waker().clone());
                let _ = self.registered.send(());
                Poll::Pending
            }
        }
    }
}

/// Rule 11: `block_on` completes when its future is woken from another
/// thread, with the loop otherwise idle.
#[test]
fn block_on_completes_when_woken_from_another_thread() {
    let slot = Slot::default();
    let (registered_tx, registered) = common::channel();
    let future = Oneshot {
        slot: slot.clone(),
        registered: registered_tx,
    };
    let done = with_loop_on_thread(move |ev| ev.block_on(future).map_err(|e| e.to_string()));
    common::recv(&registered, "the future to wait");
    let waker = {
        let mut slot = slot.lock().unwrap();
        slot.0 = Some(42);
        slot.1.take().expect("a waker was stored")
    };
    thread::spawn(move || waker.wake()).join().unwrap();
    let value = common::recv(&done, "block_on to complete").unwrap();
    assert_eq!(value, 42);
}

/// Rule 11: `run_once` returns when there is nothing to do, even with a
/// listening server that would keep `run()` going forever.
#[test]
fn run_once_returns_with_nothing_to_do() {
    let done = with_loop_on_thread(|ev| {
        let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", ServerOptions::new()).unwrap();
        let mut results = Vec::new();
        for _ in 0..3 {
            results.push(ev.run_once().map_err(|e| e.to_string()));
        }
        server.close();
        results
    });
    for result in common::recv(&done, "run_once to return") {
        result.unwrap();
    }
}

/// Rule 11: `run_once` processes ready work: a due delay runs in one call,
/// and repeated calls (a game loop) carry a connection through connect and
/// receive.
#[test]
fn run_once_processes_ready_work() {
    let (listener, addr) = common::std_listener();
    let peer = thread::spawn(move || {
        let mut peer = common::accept(&listener);
        // The client's greeting shows the loop has seen the connection open.
        let mut hi = [0u8; 2];
        peer.read_exact(&mut hi).unwrap();
        common::write_all(&mut peer, b"frame data");
        peer.shutdown(Shutdown::Write).unwrap();
        common::read_to_end(&mut peer)
    });
    let done = with_loop_on_thread(move |ev| {
        let ran = Arc::new(AtomicUsize::new(0));
        let count = ran.clone();
        ev.handle().delay(Duration::ZERO, move || {
            count.fetch_add(1, Ordering::SeqCst);
        });
        ev.run_once().unwrap();
        let delay_ran = ran.load(Ordering::SeqCst);

        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let closed = Arc::new(AtomicUsize::new(0));
        let closed_count = closed.clone();
        tcp_connect_addr(
            &ev.handle(),
            addr,
            TcpOptions::new()
                .data(&b"hi"[..])
                .read_cb(move |_, data| sink.lock().unwrap().extend_from_slice(&data))
                .event_cb(move |s, event| match event {
                    Event::Eof => s.close(),
                    Event::Closed => {
                        closed_count.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {}
                }),
        )
        .unwrap();
        let deadline = Instant::now() + common::WAIT;
        while closed.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
            ev.run_once().unwrap();
            thread::yield_now();
        }
        let got = got.lock().unwrap().clone();
        (delay_ran, got, closed.load(Ordering::SeqCst))
    });
    let (delay_ran, got, closed) = common::recv(&done, "the run_once frames");
    assert_eq!(delay_ran, 1, "a due delay did not run in one run_once");
    assert_eq!(got, b"frame data");
    assert_eq!(closed, 1, "the connection did not finish under run_once");
    assert!(peer.join().unwrap().is_empty());
}
