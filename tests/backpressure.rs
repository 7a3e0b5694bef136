//! Contract rule 4 (backpressure): the input buffer stops at its high
//! watermark and TCP flow control pushes the sender back, memory stays
//! bounded whatever the peer offers, reading resumes once the application
//! drains the buffer (and after `resume_reading`), and the output buffer
//! refuses to grow past `max_buffer_size`.

mod common;

use common::assert_same;

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{LoopThread, WAIT};
use evstream::{tcp_connect_addr, Error, Event, Limit, LoopHandle, Socket, TcpOptions};

const MIB: usize = 1024 * 1024;
const KIB: usize = 1024;

/// How long a blocked peer write waits before it reports no progress. The
/// flow-control checks need "the sender made no progress for a while":
/// this is that while, not a synchronisation.
const SEND_STALL: Duration = Duration::from_millis(250);

/// These tests move tens of MiB and one measures the process's memory, so
/// they run one at a time: a neighbour's buffers must not inflate VmRSS.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// What the loop thread tells the test about a dont-drain connection.
#[derive(Debug)]
enum Signal {
    /// `notify_cb` ran; the input buffer held this many bytes then.
    Data(usize),
    /// `event_cb` ran.
    Event(Event),
}

/// A dont-drain evstream client connected to a std peer.
struct Pair {
    socket: Socket,
    peer: TcpStream,
    signals: Receiver<Signal>,
    /// The largest input buffer length any `notify_cb` saw.
    max_len: Arc<AtomicUsize>,
    /// How many `notify_cb` calls saw the buffer at the high watermark.
    fills: Arc<AtomicUsize>,
}

fn dont_drain_pair(handle: &LoopHandle, high: usize) -> Pair {
    let (listener, addr) = common::std_listener();
    let (tx, signals) = common::channel();
    let max_len = Arc::new(AtomicUsize::new(0));
    let fills = Arc::new(AtomicUsize::new(0));
    let (max, full, notify_tx) = (max_len.clone(), fills.clone(), tx.clone());
    let options = TcpOptions::new()
        .read_watermarks(0, high)
        .notify_cb(move |socket| {
            let len = socket.input_buffer_len();
            max.fetch_max(len, Ordering::SeqCst);
            if len >= high {
                full.fetch_add(1, Ordering::SeqCst);
            }
            let _ = notify_tx.send(Signal::Data(len));
        })
        .event_cb(move |_, event| {
            let _ = tx.send(Signal::Event(event));
        });
    let socket = tcp_connect_addr(handle, addr, options).expect("tcp_connect_addr");
    let peer = common::accept(&listener);
    wait_signal(&signals, "Connected", |s| {
        matches!(s, Signal::Event(Event::Connected))
    });
    Pair {
        socket,
        peer,
        signals,
        max_len,
        fills,
    }
}

/// The next signal (bounded wait); a connection error fails the test.
fn next_signal(signals: &Receiver<Signal>, deadline: Instant, what: &str) -> Signal {
    let left = deadline.saturating_duration_since(Instant::now());
    match signals.recv_timeout(left) {
        Ok(Signal::Event(Event::Error(err))) => {
            panic!("connection failed waiting for {what}: {err}")
        }
        Ok(Signal::Event(Event::Closed)) => panic!("connection closed waiting for {what}"),
        Ok(signal) => signal,
        Err(err) => panic!("no {what} within {WAIT:?}: {err}"),
    }
}

fn wait_signal(signals: &Receiver<Signal>, what: &str, pred: impl Fn(&Signal) -> bool) -> Signal {
    let deadline = Instant::now() + WAIT;
    loop {
        let signal = next_signal(signals, deadline, what);
        if pred(&signal) {
            return signal;
        }
    }
}

/// Checks `got` against the expected bytes starting at `offset`.
fn check_content(got: &[u8], expected: &[u8], offset: usize) {
    assert!(
        offset + got.len() <= expected.len(),
        "received {} bytes past the {} the peer sent",
        offset + got.len() - expected.len(),
        expected.len()
    );
    let want = &expected[offset..offset + got.len()];
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b).unwrap();
        panic!("byte {} of the stream differs", offset + at);
    }
}

/// The process's resident set size in bytes (Linux only).
fn vm_rss() -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * KIB)
}

/// What a flooding peer reports.
#[derive(Debug)]
enum SendReport {
    /// A write made no progress for [`SEND_STALL`]; total sent so far.
    Stalled(usize),
    /// The peer stopped (everything offered was sent, or it was told to
    /// stop); total sent.
    Finished(usize),
    /// A write failed.
    Failed(String),
}

fn is_stall(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Rule 4: a reader that never reads holds exactly the read high watermark,
/// TCP flow control blocks the sender far below what it offers, and the
/// process's memory does not grow with the offered amount.
#[test]
fn input_stops_at_high_watermark_and_the_sender_is_blocked() {
    let _serial = serial();
    let rss_before = vm_rss();
    let lt = LoopThread::start();
    let high = MIB;
    let pair = dont_drain_pair(&lt.handle, high);
    let offered = 512 * MIB;

    let stop = Arc::new(AtomicBool::new(false));
    let (report_tx, reports) = common::channel();
    let mut peer = pair.peer.try_clone().unwrap();
    peer.set_write_timeout(Some(SEND_STALL)).unwrap();
    let stop_flag = stop.clone();
    let sender = thread::spawn(move || {
        let block = vec![0x5A_u8; MIB];
        let mut sent = 0;
        let deadline = Instant::now() + 2 * WAIT;
        while sent < offered && !stop_flag.load(Ordering::SeqCst) && Instant::now() < deadline {
            let n = (offered - sent).min(block.len());
            match peer.write(&block[..n]) {
                Ok(0) => {
                    let _ = report_tx.send(SendReport::Failed("write returned 0".into()));
                    return;
                }
                Ok(n) => sent += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_stall(&err) => {
                    let _ = report_tx.send(SendReport::Stalled(sent));
                }
                Err(err) => {
                    let _ = report_tx.send(SendReport::Failed(err.to_string()));
                    return;
                }
            }
        }
        let _ = report_tx.send(SendReport::Finished(sent));
    });

    // The buffer reaches the watermark...
    wait_signal(
        &pair.signals,
        "a full input buffer",
        |s| matches!(s, Signal::Data(len) if *len >= high),
    );
    // ...and the sender then makes no progress across two stall periods.
    let deadline = Instant::now() + WAIT;
    let mut previous = None;
    let sent = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match reports.recv_timeout(left) {
            Ok(SendReport::Stalled(sent)) if previous == Some(sent) => break sent,
            Ok(SendReport::Stalled(sent)) => previous = Some(sent),
            Ok(SendReport::Finished(sent)) => {
                panic!("the peer sent {sent} of {offered} bytes unhindered: no backpressure")
            }
            Ok(SendReport::Failed(err)) => panic!("peer write failed: {err}"),
            Err(err) => panic!("the sender was never blocked within {WAIT:?}: {err}"),
        }
    };
    let rss_after = vm_rss();

    assert_eq!(
        pair.socket.input_buffer_len(),
        high,
        "the input buffer stops exactly at the high watermark"
    );
    assert!(
        pair.max_len.load(Ordering::SeqCst) <= high,
        "the input buffer grew to {} bytes, past the {high}-byte watermark",
        pair.max_len.load(Ordering::SeqCst)
    );
    assert!(
        sent < offered / 4,
        "the sender got {sent} of {offered} bytes out: not pushed back"
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        let growth = after.saturating_sub(before);
        assert!(
            growth < 64 * MIB,
            "resident memory grew by {} MiB while the peer offered {} MiB",
            growth / MIB,
            offered / MIB
        );
    }

    stop.store(true, Ordering::SeqCst);
    pair.socket.abort();
    sender.join().expect("sender thread");
}

/// Rule 4: draining a full input buffer resumes reading; every byte the peer
/// sends arrives, in order, through many fill / drain / resume cycles.
#[test]
fn draining_resumes_reading_and_nothing_is_lost() {
    let _serial = serial();
    let lt = LoopThread::start();
    let high = MIB;
    let pair = dont_drain_pair(&lt.handle, high);
    let total = 64 * MIB;
    let data = Arc::new(common::random_data(0xB4C4_0001, total));

    let mut peer = pair.peer;
    let to_send = data.clone();
    let sender = thread::spawn(move || {
        peer.write_all(&to_send)?;
        // Dropping the stream sends FIN.
        io::Result::Ok(())
    });

    // A pass starts only when the buffer is full (or at EOF) and takes at
    // most one watermark's worth, so the loop has to stop at the watermark
    // and resume many times.
    let socket = &pair.socket;
    let mut buf = vec![0_u8; 64 * KIB];
    let mut received = 0;
    let mut eof = false;
    let mut passes = 0;
    let deadline = Instant::now() + 2 * WAIT;
    'outer: loop {
        passes += 1;
        assert!(passes < 100_000, "too many read passes");
        if !eof {
            match next_signal(&pair.signals, deadline, "a full buffer or EOF") {
                Signal::Data(len) => {
                    assert!(len <= high, "input buffer at {len}, above {high}");
                    if len < high {
                        continue;
                    }
                }
                Signal::Event(Event::Eof) => eof = true,
                Signal::Event(_) => continue,
            }
        }
        let mut taken = 0;
        while eof || taken < high {
            let want = if eof {
                buf.len()
            } else {
                (high - taken).min(buf.len())
            };
            match socket.read(&mut buf[..want]) {
                Ok(0) => break 'outer,
                Ok(n) => {
                    check_content(&buf[..n], &data, received);
                    received += n;
                    taken += n;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    assert!(!eof, "WouldBlock after EOF with the buffer empty");
                    break;
                }
                Err(err) => panic!("read failed after {received} bytes: {err}"),
            }
        }
    }
    assert_eq!(received, total, "every byte the peer sent arrives");
    let fills = pair.fills.load(Ordering::SeqCst);
    assert!(
        fills >= 8,
        "the buffer filled to the watermark only {fills} times"
    );
    assert!(pair.max_len.load(Ordering::SeqCst) <= high);
    sender.join().unwrap().expect("peer sends everything");
    pair.socket.close();
}

/// Rule 4: while reading is paused nothing is appended (the peer is blocked
/// by flow control); after `resume_reading` data flows again and nothing is
/// lost.
#[test]
fn pause_reading_stops_appending_and_resume_loses_nothing() {
    let _serial = serial();
    let lt = LoopThread::start();
    let high = MIB;
    let pair = dont_drain_pair(&lt.handle, high);
    let first = 64 * KIB;
    // More than loopback's kernel buffers can hold (tcp_rmem max 32 MiB +
    // wmem max 4 MiB on common Linux settings) while nobody reads.
    let total = first + 64 * MIB;
    let data = Arc::new(common::random_data(0xB4C4_0002, total));

    let (go_tx, go) = common::channel::<()>();
    let (report_tx, reports) = common::channel();
    let mut peer = pair.peer;
    let to_send = data.clone();
    let sender = thread::spawn(move || {
        if let Err(err) = peer.write_all(&to_send[..first]) {
            let _ = report_tx.send(SendReport::Failed(err.to_string()));
            return;
        }
        if go.recv_timeout(WAIT).is_err() {
            return;
        }
        peer.set_write_timeout(Some(SEND_STALL)).unwrap();
        let mut sent = first;
        let mut stalled = false;
        let deadline = Instant::now() + 2 * WAIT;
        while sent < total && Instant::now() < deadline {
            match peer.write(&to_send[sent..]) {
                Ok(0) => {
                    let _ = report_tx.send(SendReport::Failed("write returned 0".into()));
                    return;
                }
                Ok(n) => sent += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if is_stall(&err) => {
                    if !stalled {
                        stalled = true;
                        let _ = report_tx.send(SendReport::Stalled(sent));
                    }
                }
                Err(err) => {
                    let _ = report_tx.send(SendReport::Failed(err.to_string()));
                    return;
                }
            }
        }
        // Dropping the stream sends FIN.
        let _ = report_tx.send(SendReport::Finished(sent));
    });

    let socket = &pair.socket;
    let mut buf = vec![0_u8; 64 * KIB];
    let mut received = 0;
    let deadline = Instant::now() + WAIT;
    while received < first {
        match socket.read(&mut buf) {
            Ok(0) => panic!("EOF after {received} bytes"),
            Ok(n) => {
                check_content(&buf[..n], &data, received);
                received += n;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                next_signal(&pair.signals, deadline, "the first bytes");
            }
            Err(err) => panic!("read failed: {err}"),
        }
    }
    assert_eq!(received, first);

    socket.pause_reading();
    assert!(socket.is_reading_paused());
    go_tx.send(()).unwrap();
    match common::recv(&reports, "the peer's report") {
        SendReport::Stalled(_) => {}
        SendReport::Finished(sent) => {
            panic!("the peer sent all {sent} bytes while reading was paused")
        }
        SendReport::Failed(err) => panic!("peer write failed: {err}"),
    }
    assert_eq!(
        socket.input_buffer_len(),
        0,
        "bytes were appended while reading was paused"
    );
    assert_eq!(
        socket.read(&mut buf).unwrap_err().kind(),
        io::ErrorKind::WouldBlock
    );

    socket.resume_reading();
    assert!(!socket.is_reading_paused());
    let mut passes = 0;
    loop {
        passes += 1;
        assert!(passes < 1_000_000, "too many read passes");
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                check_content(&buf[..n], &data, received);
                received += n;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                next_signal(
                    &pair.signals,
                    deadline + WAIT,
                    &format!(
                        "more bytes after resume (received {received}, buffered {}, eof {})",
                        socket.input_buffer_len(),
                        socket.is_eof()
                    ),
                );
            }
            Err(err) => panic!("read failed after {received} bytes: {err}"),
        }
    }
    assert_eq!(received, total, "nothing is lost across pause / resume");
    match common::recv(&reports, "the peer's final report") {
        SendReport::Finished(sent) => assert_eq!(sent, total),
        other => panic!("unexpected peer report {other:?}"),
    }
    sender.join().expect("sender thread");
    pair.socket.close();
}

/// Rule 4: a write that would grow the output past `max_buffer_size` fails
/// with `LimitExceeded { OutputBuffer, limit }` and queues none of its bytes;
/// what was queued before still arrives intact once the peer reads.
#[test]
fn write_beyond_max_buffer_size_is_refused_and_queues_nothing() {
    let _serial = serial();
    let lt = LoopThread::start();
    let limit = 4 * MIB;
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new().max_buffer_size(limit).event_cb(event_cb),
    )
    .expect("tcp_connect_addr");
    let mut peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));

    // Fill the kernel buffers (the peer does not read), then queue ~3 MiB.
    let chunk = 128 * KIB;
    let mut written = Vec::new();
    let mut seed = 1;
    let mut write_chunk = |written: &mut Vec<u8>| {
        let bytes = common::random_data(seed, chunk);
        seed += 1;
        socket.write(&bytes).expect("a write within the limit");
        written.extend_from_slice(&bytes);
    };
    while socket.output_buffer_len() == 0 {
        assert!(
            written.len() < 256 * MIB,
            "the kernel took {} bytes without the peer reading",
            written.len()
        );
        write_chunk(&mut written);
    }
    while socket.output_buffer_len() + chunk <= 3 * MIB {
        write_chunk(&mut written);
    }
    let queued = socket.output_buffer_len();
    assert!(queued > 2 * MIB, "only {queued} bytes queued");

    let refused = vec![0xEE_u8; 2 * MIB];
    let expect_limit = |result: evstream::Result<()>| match result {
        Err(Error::LimitExceeded {
            what: Limit::OutputBuffer,
            limit: reported,
        }) => assert_eq!(reported, limit),
        other => panic!("expected LimitExceeded(OutputBuffer, {limit}), got {other:?}"),
    };
    expect_limit(socket.write(&refused));
    assert!(
        socket.output_buffer_len() <= queued,
        "the refused write queued {} bytes",
        socket.output_buffer_len() - queued
    );
    expect_limit(socket.write_bytes(Bytes::from(refused)));
    // A single write larger than the limit is refused too.
    expect_limit(socket.write(&vec![0xEF_u8; limit + 1]));
    assert!(socket.output_buffer_len() <= queued);

    // The connection is still usable: a write that fits is accepted.
    let tail = common::random_data(0xB4C4_0003, 1000);
    socket.write(&tail).expect("a write that fits");
    written.extend_from_slice(&tail);

    socket.close();
    let got = common::read_to_end(&mut peer);
    assert_same("bytes the peer received", &got, &written);
    drop(peer);
    common::wait_event(&events, "Closed", |e| matches!(e, Event::Closed));
}
