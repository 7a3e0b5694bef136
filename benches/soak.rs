//! The soak run: many connections on one loop doing a random mix of
//! writes, reads, pauses, graceful closes, aborts and reconnects against an
//! echo server on another loop, every byte checked; RSS and open
//! descriptors sampled as it goes.
//!
//! ```text
//! cargo bench --bench soak -- --minutes 10            # the full run
//! cargo bench --bench soak -- --seconds 20 --conns 200 # a smoke run
//! ```
//!
//! It fails (exit status 1) if a byte comes back wrong or never comes
//! back, if RSS after the warm-up drifts by more than 10%, or if the open
//! descriptors do not return to their baseline once every connection is
//! closed. Each sample is printed as `SAMPLE\t<seconds>\t<rss KiB>\t<fds>\t
//! <live connections>\t<ops>\t<bytes checked>`; `scripts/soak_chart.py`
//! draws them.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use evstream::{
    tcp_connect_addr, Event, EventLoop, LoopHandle, ServerOptions, Socket, TcpOptions, TcpServer,
};

/// The byte at `offset` of the stream of connection `id`.
fn pattern(id: u64, offset: u64) -> u8 {
    let x = offset.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ id.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    (x >> 56) as u8
}

/// A small deterministic PRNG (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Args {
    duration: Duration,
    conns: usize,
    sample: Duration,
}

fn args() -> Args {
    let mut args = Args {
        duration: Duration::from_secs(600),
        conns: 2000,
        sample: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a number")
        };
        match arg.as_str() {
            "--minutes" => args.duration = Duration::from_secs(value() * 60),
            "--seconds" => args.duration = Duration::from_secs(value()),
            "--conns" => args.conns = value() as usize,
            "--sample-seconds" => args.sample = Duration::from_secs(value()),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    if args.duration < args.sample * 3 {
        args.sample = (args.duration / 6).max(Duration::from_secs(1));
    }
    args
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * 4
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// What the checker knows of one connection's stream.
#[derive(Default)]
struct Stream {
    sent: u64,
    received: u64,
    /// Half-closed by us: the echo ends with EOF once all came back.
    finishing: bool,
    bad: bool,
}

/// Shared between the callbacks (loop thread) and the driver task.
#[derive(Default)]
struct Checks {
    streams: Mutex<HashMap<u64, Stream>>,
    bytes_checked: AtomicU64,
    bad_bytes: AtomicU64,
    /// Connections that ended with their echo complete (graceful) or on
    /// purpose (abort).
    ended: AtomicUsize,
    unexpected: Mutex<Vec<String>>,
}

impl Checks {
    /// Checks bytes arriving on connection `id`.
    fn arrived(&self, id: u64, data: &[u8]) {
        let mut streams = self.streams.lock().unwrap();
        let Some(stream) = streams.get_mut(&id) else {
            return;
        };
        let mut bad = 0;
        for (i, &byte) in data.iter().enumerate() {
            if byte != pattern(id, stream.received + i as u64) {
                bad += 1;
            }
        }
        stream.received += data.len() as u64;
        if stream.received > stream.sent {
            bad += 1;
        }
        if bad > 0 {
            stream.bad = true;
            self.bad_bytes.fetch_add(bad, Ordering::Relaxed);
        }
        self.bytes_checked
            .fetch_add(data.len() as u64, Ordering::Relaxed);
    }
}

/// One slot of the client: a live connection and its id.
struct Slot {
    id: u64,
    socket: Socket,
}

/// A future that completes after `after`, on `handle`'s loop.
fn sleep(handle: &LoopHandle, after: Duration) -> impl Future<Output = ()> {
    struct Sleep {
        state: Arc<Mutex<(bool, Option<Waker>)>>,
    }
    impl Future for Sleep {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            let mut state = self.state.lock().unwrap();
            if state.0 {
                return Poll::Ready(());
            }
            state.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
    let state = Arc::new(Mutex::new((false, None::<Waker>)));
    let fired = state.clone();
    handle.delay(after, move || {
        let waker = {
            let mut state = fired.lock().unwrap();
            state.0 = true;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    });
    Sleep { state }
}

fn main() {
    let args = args();
    println!(
        "soak: {} connections for {:?}, a sample every {:?}",
        args.conns, args.duration, args.sample
    );
    // The server: an echo in drain mode on its own loop.
    let server_loop = EventLoop::spawn().expect("server loop");
    let server = TcpServer::bind(
        &server_loop,
        "127.0.0.1:0",
        ServerOptions::new().backlog(4096).connection(
            TcpOptions::new()
                .read_cb(|socket, data| {
                    let _ = socket.write_bytes(data);
                })
                .event_cb(|socket, event| {
                    if matches!(event, Event::Eof) {
                        socket.close();
                    }
                }),
        ),
    )
    .expect("bind");
    let addr = server.local_addr();

    let checks = Arc::new(Checks::default());
    let mut ev = EventLoop::new().expect("client loop");
    let handle = ev.handle();
    // Both loops and the server exist: what stays open throughout.
    let baseline_fds = open_fds();
    let started = Instant::now();
    let result = ev.block_on(drive(
        &handle,
        addr,
        &args,
        checks.clone(),
        started,
        baseline_fds,
    ));
    server.close();
    server_loop.stop();
    let (samples, ops, fds) = match result.map_err(|err| err.to_string()).and_then(|done| done) {
        Ok(done) => done,
        Err(err) => {
            println!("soak: FAILED: {err}");
            std::process::exit(1);
        }
    };
    report(&args, &checks, &samples, ops, baseline_fds, fds);
}

struct Sample {
    at: f64,
    rss_kib: u64,
    fds: usize,
    live: usize,
    ops: u64,
    checked: u64,
}

/// Runs the random mix until the deadline, then closes everything and
/// waits for every echo to complete.
async fn drive(
    handle: &LoopHandle,
    addr: SocketAddr,
    args: &Args,
    checks: Arc<Checks>,
    started: Instant,
    baseline_fds: usize,
) -> Result<(Vec<Sample>, u64, usize), String> {
    let next_id = Rc::new(RefCell::new(0u64));
    let connect = |checks: &Arc<Checks>| -> Result<Slot, String> {
        let id = {
            let mut next = next_id.borrow_mut();
            *next += 1;
            *next
        };
        checks.streams.lock().unwrap().insert(id, Stream::default());
        let (on_data, on_event) = (checks.clone(), checks.clone());
        let socket = tcp_connect_addr(
            handle,
            addr,
            TcpOptions::new()
                .read_cb(move |_, data| on_data.arrived(id, &data))
                .event_cb(move |socket, event| match event {
                    Event::Eof => {
                        let mut streams = on_event.streams.lock().unwrap();
                        if let Some(stream) = streams.remove(&id) {
                            if !stream.finishing || stream.received != stream.sent || stream.bad {
                                on_event.unexpected.lock().unwrap().push(format!(
                                    "connection {id}: EOF after {} of {} bytes",
                                    stream.received, stream.sent
                                ));
                            } else {
                                on_event.ended.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        socket.close();
                    }
                    Event::Error(err) => {
                        let finished = on_event.streams.lock().unwrap().remove(&id).is_none();
                        if !finished {
                            on_event
                                .unexpected
                                .lock()
                                .unwrap()
                                .push(format!("connection {id}: {err}"));
                        }
                    }
                    _ => {}
                }),
        )
        .map_err(|err| err.to_string())?;
        Ok(Slot { id, socket })
    };

    let mut slots = Vec::with_capacity(args.conns);
    for _ in 0..args.conns {
        slots.push(connect(&checks)?);
    }
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut samples = Vec::new();
    let mut next_sample = Duration::ZERO;
    let mut ops = 0u64;
    let mut paused: Vec<bool> = vec![false; args.conns];
    while started.elapsed() < args.duration {
        if started.elapsed() >= next_sample {
            samples.push(Sample {
                at: started.elapsed().as_secs_f64(),
                rss_kib: rss_kib(),
                fds: open_fds(),
                live: slots.len(),
                ops,
                checked: checks.bytes_checked.load(Ordering::Relaxed),
            });
            let s = samples.last().unwrap();
            println!(
                "SAMPLE\t{:.1}\t{}\t{}\t{}\t{}\t{}",
                s.at, s.rss_kib, s.fds, s.live, s.ops, s.checked
            );
            next_sample += args.sample;
        }
        // A batch of random operations, then a short pause so the loop
        // moves the bytes.
        for _ in 0..(args.conns / 20).max(10) {
            let i = rng.below(slots.len() as u64) as usize;
            ops += 1;
            match rng.below(100) {
                // Writes of 1 byte to 64 KiB.
                0..=69 => {
                    let len = match rng.below(10) {
                        0..=5 => 1 + rng.below(512),
                        6..=8 => 512 + rng.below(8192),
                        _ => 8192 + rng.below(56 * 1024),
                    };
                    let slot = &slots[i];
                    let start = {
                        let mut streams = checks.streams.lock().unwrap();
                        let Some(stream) = streams.get_mut(&slot.id) else {
                            continue;
                        };
                        if stream.finishing {
                            continue;
                        }
                        let start = stream.sent;
                        stream.sent += len;
                        start
                    };
                    let data: Bytes = (0..len).map(|k| pattern(slot.id, start + k)).collect();
                    if let Err(err) = slot.socket.write_bytes(data) {
                        return Err(format!("write on connection {}: {err}", slot.id));
                    }
                }
                // Pause or resume reading.
                70..=79 => {
                    paused[i] = !paused[i];
                    if paused[i] {
                        slots[i].socket.pause_reading();
                    } else {
                        slots[i].socket.resume_reading();
                    }
                }
                // Graceful close: half-close, the echo completes, EOF; a
                // new connection takes the slot.
                80..=89 => {
                    let old = std::mem::replace(&mut slots[i], connect(&checks)?);
                    paused[i] = false;
                    if let Some(stream) = checks.streams.lock().unwrap().get_mut(&old.id) {
                        stream.finishing = true;
                    }
                    old.socket.resume_reading();
                    let _ = old.socket.shutdown_write();
                }
                // Abort: what is in flight is dropped on purpose.
                _ => {
                    let old = std::mem::replace(&mut slots[i], connect(&checks)?);
                    paused[i] = false;
                    checks.streams.lock().unwrap().remove(&old.id);
                    checks.ended.fetch_add(1, Ordering::Relaxed);
                    old.socket.abort();
                }
            }
        }
        sleep(handle, Duration::from_millis(10)).await;
    }
    // The end: every connection finishes gracefully and its echo must come
    // back whole.
    for (i, slot) in slots.drain(..).enumerate() {
        if let Some(stream) = checks.streams.lock().unwrap().get_mut(&slot.id) {
            stream.finishing = true;
        }
        if paused[i] {
            slot.socket.resume_reading();
        }
        let _ = slot.socket.shutdown_write();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checks.streams.lock().unwrap().is_empty() && Instant::now() < deadline {
        sleep(handle, Duration::from_millis(50)).await;
    }
    let left = checks.streams.lock().unwrap().len();
    if left > 0 {
        return Err(format!("{left} connections never finished their echo"));
    }
    // Every connection released (both ends: the server's loop runs on its
    // own thread) brings the descriptors back to the baseline.
    let deadline = Instant::now() + Duration::from_secs(30);
    while open_fds() > baseline_fds && Instant::now() < deadline {
        sleep(handle, Duration::from_millis(20)).await;
    }
    let fds = open_fds();
    samples.push(Sample {
        at: started.elapsed().as_secs_f64(),
        rss_kib: rss_kib(),
        fds: open_fds(),
        live: 0,
        ops,
        checked: checks.bytes_checked.load(Ordering::Relaxed),
    });
    let s = samples.last().unwrap();
    println!(
        "SAMPLE\t{:.1}\t{}\t{}\t{}\t{}\t{}",
        s.at, s.rss_kib, s.fds, s.live, s.ops, s.checked
    );
    Ok((samples, ops, fds))
}

fn report(args: &Args, checks: &Checks, samples: &[Sample], ops: u64, baseline: usize, fds: usize) {
    let mut failed = Vec::new();
    let bad = checks.bad_bytes.load(Ordering::Relaxed);
    if bad > 0 {
        failed.push(format!("{bad} bytes came back wrong"));
    }
    let unexpected = checks.unexpected.lock().unwrap();
    if !unexpected.is_empty() {
        failed.push(format!(
            "{} connections ended unexpectedly, e.g. {}",
            unexpected.len(),
            unexpected[0]
        ));
    }
    // RSS drift after the warm-up (the first third of the run), among the
    // samples taken while the mix ran (not the final, idle one).
    let running: Vec<&Sample> = samples.iter().filter(|s| s.live > 0).collect();
    let warm = running
        .iter()
        .filter(|s| s.at >= args.duration.as_secs_f64() / 3.0)
        .map(|s| s.rss_kib)
        .collect::<Vec<_>>();
    if let (Some(&min), Some(&max)) = (warm.iter().min(), warm.iter().max()) {
        let drift = (max - min) as f64 / min.max(1) as f64;
        println!(
            "RSS after warm-up: {min}..{max} KiB ({:.1}% drift)",
            drift * 100.0
        );
        if drift > 0.10 {
            failed.push(format!(
                "RSS drifted by {:.1}% after the warm-up",
                drift * 100.0
            ));
        }
    }
    println!("descriptors: baseline {baseline}, at the end {fds}");
    if fds > baseline {
        failed.push(format!(
            "{} descriptors left open (baseline {baseline}, end {fds})",
            fds - baseline
        ));
    }
    println!(
        "operations: {ops}; connections ended: {}; bytes checked: {}",
        checks.ended.load(Ordering::Relaxed),
        checks.bytes_checked.load(Ordering::Relaxed)
    );
    if failed.is_empty() {
        println!("soak: OK");
    } else {
        for failure in &failed {
            println!("soak: FAILED: {failure}");
        }
        std::process::exit(1);
    }
}
