//! Out of descriptors (issue #11, "Connection limits on servers"): when
//! `accept` fails with `EMFILE`, the loop backs off instead of spinning,
//! and serves again once descriptors are free.
//!
//! The server runs in a child process (this test binary, re-run with
//! [`CHILD_ENV`] set and a filter that selects [`child_process_entry`])
//! whose `RLIMIT_NOFILE` leaves room for only a few connections. The
//! parent floods it with connects, waits for the child to report its first
//! failed `accept`, then measures the child's CPU time (`getrusage`) over
//! a window while the flood goes on: a loop that retries at once burns the
//! whole window, one that backs off nearly none of it. Then the clients
//! close and fresh ones must be served.

#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use common::WAIT;
use evstream::{EventLoop, ServerOptions, TcpServer};

/// Set in the child's environment: [`child_process_entry`] runs the server
/// only then (in a normal run it returns at once).
const CHILD_ENV: &str = "EVSTREAM_EMFILE_CHILD";
/// Prefix of the lines the child writes for the parent (libtest writes its
/// own lines on the same stdout).
const TAG: &str = "emfile-child:";
/// Descriptors the child has left for connections.
const HEADROOM: u64 = 8;
/// Connections made before the measurement: many more than fit.
const FLOOD: usize = 64;
/// How long the child's CPU time is measured while it is out of
/// descriptors.
const WINDOW: Duration = Duration::from_millis(1500);

/// The child's side. Not a test of its own: in a normal run it returns at
/// once.
#[test]
fn child_process_entry() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    run_child();
}

/// Reports the first failed accept (the library logs it through `log`).
struct AcceptFailureLogger;

impl log::Log for AcceptFailureLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        static ONCE: std::sync::Once = std::sync::Once::new();
        if record.args().to_string().contains("accept failed") {
            ONCE.call_once(|| say("emfile"));
        }
    }

    fn flush(&self) {}
}

/// One line to the parent.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{TAG} {line}");
    let _ = out.flush();
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a valid, writable `rusage`; `getrusage` fills it.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Lowers the soft `RLIMIT_NOFILE` so that only `HEADROOM` descriptor
/// numbers are free below it (descriptors open above it stay usable; the
/// test harness may have inherited some high ones).
fn leave_few_descriptors() {
    let open: std::collections::HashSet<u64> = std::fs::read_dir("/dev/fd")
        .expect("list open descriptors")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .collect();
    let mut free = 0;
    let mut below = 0;
    while free < HEADROOM {
        if !open.contains(&below) {
            free += 1;
        }
        below += 1;
    }
    let mut limit = std::mem::MaybeUninit::<libc::rlimit>::zeroed();
    // SAFETY: `limit` is a valid, writable `rlimit`; `getrlimit` fills it
    // and `setrlimit` reads it.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()), 0);
        let mut limit = limit.assume_init();
        limit.rlim_cur = below as libc::rlim_t;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// The server: an echo server in callback mode on a loop on this thread,
/// and a thread answering the parent's `cpu` requests on stdin (the
/// process exits when stdin closes).
fn run_child() {
    log::set_logger(&AcceptFailureLogger).expect("set the logger");
    log::set_max_level(log::LevelFilter::Warn);
    let mut ev = EventLoop::new().expect("loop");
    let options = ServerOptions::new().connection(common::echo_closing_at_eof());
    let server = TcpServer::bind(&ev.handle(), "127.0.0.1:0", options).expect("bind");
    std::thread::spawn(|| {
        for line in std::io::stdin().lock().lines() {
            match line.as_deref() {
                Ok("cpu") => say(&format!("cpu {}", cpu_time().as_micros())),
                _ => break,
            }
        }
        std::process::exit(0);
    });
    leave_few_descriptors();
    say(&format!("addr {}", server.local_addr()));
    ev.run().expect("run");
}

/// The parent's handle on the child: its stdin, and its tagged stdout
/// lines on a channel.
struct ServerProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl ServerProcess {
    fn start() -> ServerProcess {
        let mut child = Command::new(std::env::current_exe().expect("this test binary"))
            .args(["--exact", "child_process_entry", "--nocapture"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the child");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix(TAG) {
                    if tx.send(rest.trim().to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        ServerProcess {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The next line from the child that starts with `word`, within
    /// [`WAIT`], without the word.
    fn expect(&self, word: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|err| panic!("no '{word}' from the child within {WAIT:?}: {err}"));
            if let Some(rest) = line.strip_prefix(word) {
                return rest.trim().to_string();
            }
        }
    }

    /// The child's CPU time so far.
    fn cpu(&mut self) -> Duration {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "cpu").unwrap();
        stdin.flush().unwrap();
        Duration::from_micros(self.expect("cpu").parse().expect("micros"))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing stdin ends the child; kill it if it does not go.
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that sends one byte; the server is not expected to take it.
fn flood_client(addr: SocketAddr) -> TcpStream {
    let mut client = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    client.write_all(b"x").expect("write");
    client
}

/// A client that must be served: its bytes come back.
fn served(addr: SocketAddr, message: &[u8]) {
    let mut client = common::std_connect(addr);
    client.write_all(message).expect("write");
    let mut echo = vec![0u8; message.len()];
    client
        .read_exact(&mut echo)
        .expect("the server echoes again once descriptors are free");
    assert_eq!(echo, message);
}

#[test]
fn out_of_descriptors_the_loop_backs_off_and_serves_again_once_they_are_free() {
    let mut server = ServerProcess::start();
    let addr: SocketAddr = server.expect("addr").parse().expect("address");
    let mut clients: Vec<TcpStream> = (0..FLOOD).map(|_| flood_client(addr)).collect();
    server.expect("emfile");

    // The window: the child is out of descriptors, the kernel holds the
    // connections it cannot take, and more keep arriving (each one a new
    // readiness edge on the listener).
    let start = Instant::now();
    let cpu_before = server.cpu();
    while start.elapsed() < WINDOW {
        clients.push(flood_client(addr));
        // Pacing of the flood inside the measured window, not a
        // synchronisation.
        std::thread::sleep(Duration::from_millis(10));
    }
    let cpu = server.cpu() - cpu_before;
    let wall = start.elapsed();
    eprintln!("child CPU while out of descriptors: {cpu:?} in {wall:?}");
    assert!(
        cpu < wall / 4,
        "the child used {cpu:?} of CPU in {wall:?} while out of descriptors: it spins"
    );

    // Free the descriptors: the clients close, the server closes their
    // connections, and takes (and serves) new ones again.
    drop(clients);
    for i in 0..4u8 {
        served(addr, &[b'a' + i; 16]);
    }
}
