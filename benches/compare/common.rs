//! What every implementation shares: sizes, the data sent and the checks
//! of what is received, and the thread pair that runs one case.

use std::error::Error as StdError;
use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;

pub type BoxError = Box<dyn StdError + Send + Sync>;
pub type Res<T> = Result<T, BoxError>;

/// Write size of `bulk`, read buffer of every reader, and the pattern block.
pub const BLOCK: usize = 64 * 1024;
/// `bulk` compares every this many-th 64 KiB block of the stream in full.
pub const CHECK_EVERY: u64 = 16;
/// Message size of `pingpong` and `conns`.
pub const MSG: usize = 64;
/// Read buffer of the tokio, async-io and std echo servers and of
/// evstream's stream echo server (`pingpong`, `conns`); `idle`'s servers
/// read into `MSG` bytes instead, so that they hold no more than the
/// message.
pub const ECHO_BUF: usize = 4096;
/// Lines in the text block that `lines` repeats.
pub const LINES_PER_BLOCK: usize = 1000;
/// Listen backlog for every implementation: `conns` connects 2,000 clients
/// at once, and a dropped SYN would add a one-second retransmit.
pub const BACKLOG: i32 = 4096;

// ---------------------------------------------------------------------------
// Sizes, data and checks shared by every implementation
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub bulk_bytes: u64,
    pub pingpong: usize,
    pub lines: usize,
    pub conns: usize,
    pub conn_rounds: usize,
    /// Connections `idle` opens and holds.
    pub idle: usize,
    /// The largest count of `idlescale` (the others are fractions of it).
    pub idle_max: usize,
    /// Connections `storm` opens at once.
    pub storm: usize,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        bulk_bytes: 2 << 30,
        pingpong: 100_000,
        lines: 2_000_000,
        conns: 2_000,
        conn_rounds: 20,
        idle: 10_000,
        // One process holds this many sockets plus its own descriptors
        // under a hard RLIMIT_NOFILE of 20,000.
        idle_max: 19_900,
        storm: 10_000,
    };
    pub const QUICK: Sizes = Sizes {
        bulk_bytes: 64 << 20,
        pingpong: 2_000,
        lines: 50_000,
        conns: 100,
        conn_rounds: 5,
        idle: 200,
        idle_max: 400,
        storm: 300,
    };

    pub fn bulk_blocks(&self) -> u64 {
        self.bulk_bytes / BLOCK as u64
    }
}

impl std::fmt::Display for Sizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "bulk {} MiB, pingpong {} round trips, lines {}, conns {} x {} round trips, idle {}, \
             idlescale up to {}, storm {}",
            self.bulk_bytes >> 20,
            self.pingpong,
            self.lines,
            self.conns,
            self.conn_rounds,
            self.idle,
            self.idle_max,
            self.storm
        )
    }
}

pub struct Data {
    /// The 64 KiB block `bulk` sends over and over.
    pub pattern: Bytes,
    /// `LINES_PER_BLOCK` lines of text, each ending in `\n`.
    pub text: Bytes,
    /// Offset just past each line's `\n` in `text`.
    pub ends: Vec<usize>,
    /// Length of each line, without the `\n`.
    pub lens: Vec<usize>,
    /// First byte of each line.
    pub first: Vec<u8>,
}

pub fn data() -> &'static Data {
    static DATA: OnceLock<Data> = OnceLock::new();
    DATA.get_or_init(|| {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let pattern: Vec<u8> = (0..BLOCK)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        let mut text = Vec::new();
        let (mut ends, mut lens, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..LINES_PER_BLOCK {
            let len = 30 + (i * 7919) % 61; // 30..=90, about 60 on average
            text.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
            text.push(b'\n');
            ends.push(text.len());
            lens.push(len);
            first.push(b'a' + (i % 26) as u8);
        }
        Data {
            pattern: pattern.into(),
            text: text.into(),
            ends,
            lens,
            first,
        }
    })
}

/// Counts every byte of `bulk` and compares every `CHECK_EVERY`-th block
/// with the pattern (a mismatch in a block that is not compared still
/// shifts the stream, so the next compared block catches it).
#[derive(Default)]
pub struct BulkCheck {
    pub total: u64,
    pub bad: u64,
}

impl BulkCheck {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        let pattern = &data().pattern;
        while !bytes.is_empty() {
            let offset = (self.total % BLOCK as u64) as usize;
            let n = bytes.len().min(BLOCK - offset);
            if (self.total / BLOCK as u64) % CHECK_EVERY == 0
                && bytes[..n] != pattern[offset..offset + n]
            {
                self.bad += 1;
            }
            self.total += n as u64;
            bytes = &bytes[n..];
        }
    }

    pub fn verify(&self, expected: u64) -> Res<()> {
        if self.total != expected || self.bad != 0 {
            return Err(format!(
                "bulk: received {} of {expected} bytes, {} mismatching pieces",
                self.total, self.bad
            )
            .into());
        }
        Ok(())
    }
}

/// Checks the length and first byte of every line, and counts them.
pub struct LineCheck {
    pub data: &'static Data,
    pub index: usize,
    pub count: u64,
    pub bad: u64,
}

impl LineCheck {
    pub fn new() -> Self {
        LineCheck {
            data: data(),
            index: 0,
            count: 0,
            bad: 0,
        }
    }

    /// One line, without its `\n`.
    #[inline]
    pub fn line(&mut self, line: &[u8]) {
        let i = self.index;
        if line.len() != self.data.lens[i] || line.first() != Some(&self.data.first[i]) {
            self.bad += 1;
        }
        self.index = if i + 1 == LINES_PER_BLOCK { 0 } else { i + 1 };
        self.count += 1;
    }

    /// One line as `read_until` returns it, with its `\n`.
    #[inline]
    pub fn line_with_newline(&mut self, line: &[u8]) {
        match line.split_last() {
            Some((b'\n', line)) => self.line(line),
            _ => {
                self.bad += 1;
                self.count += 1;
            }
        }
    }

    pub fn verify(&self, expected: usize) -> Res<()> {
        if self.count != expected as u64 || self.bad != 0 {
            return Err(format!(
                "lines: got {} of {expected} lines, {} wrong",
                self.count, self.bad
            )
            .into());
        }
        Ok(())
    }
}

/// The writes of `lines`: whole text blocks, then part of one.
pub fn line_pieces(lines: usize) -> impl Iterator<Item = Bytes> {
    let d = data();
    let full = lines / LINES_PER_BLOCK;
    let rest = lines % LINES_PER_BLOCK;
    let tail = (rest > 0).then(|| d.text.slice(..d.ends[rest - 1]));
    std::iter::repeat_n(d.text.clone(), full).chain(tail)
}

/// The message of round `round`: its number, then filler.
pub fn message(round: usize) -> [u8; MSG] {
    let mut msg = [b'.'; MSG];
    msg[..8].copy_from_slice(&(round as u64).to_le_bytes());
    msg
}

pub fn bad_echo(round: usize) -> BoxError {
    format!("round {round}: the echo differs from the message").into()
}

pub fn rate(units: f64, elapsed: Duration) -> f64 {
    units / elapsed.as_secs_f64()
}

pub fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    rate(bytes as f64 / (1024.0 * 1024.0), elapsed)
}

/// A listening socket with `BACKLOG`, for the non-evstream servers.
pub fn std_listener() -> Res<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

pub fn join<T>(handle: thread::JoinHandle<Res<T>>) -> Res<T> {
    handle
        .join()
        .map_err(|_| BoxError::from("a benchmark thread panicked"))?
}

/// Runs `server` on a thread (it binds, sends its address, then serves),
/// then `client` on another thread once the address is known. Returns the
/// section from starting the client until the server returned, and both
/// results.
pub fn run_pair<S, C>(
    server: impl FnOnce(mpsc::Sender<SocketAddr>) -> Res<S> + Send + 'static,
    client: impl FnOnce(SocketAddr) -> Res<C> + Send + 'static,
) -> Res<(Section, S, C)>
where
    S: Send + 'static,
    C: Send + 'static,
{
    let (addr_tx, addr_rx) = mpsc::channel();
    let server = thread::spawn(move || server(addr_tx));
    let Ok(addr) = addr_rx.recv() else {
        join(server)?;
        return Err("the server thread ended without an address".into());
    };
    let start = Mark::now();
    let client = thread::spawn(move || client(addr));
    let server_result = join(server);
    let elapsed = start.elapsed();
    let client_result = join(client);
    Ok((elapsed, server_result?, client_result?))
}

// ---------------------------------------------------------------------------
// What a measured section costs: wall time, CPU time and page faults
// ---------------------------------------------------------------------------

/// This process's resource usage so far: all its threads, ended ones
/// included (`getrusage(RUSAGE_SELF)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// User + system CPU time.
    pub cpu: Duration,
    /// Minor page faults: a page mapped in without I/O, mostly the first
    /// touch of memory fresh from the kernel (a new heap or mmap page).
    pub minflt: u64,
    /// Major page faults (I/O); expected to stay 0.
    pub majflt: u64,
}

impl Usage {
    pub fn now() -> Usage {
        // SAFETY: `rusage` is plain integers, for which all zeroes is
        // valid; getrusage only writes into the struct it is given.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        // RUSAGE_SELF with a valid pointer cannot fail (EFAULT/EINVAL only).
        assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
        let time = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        Usage {
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            minflt: usage.ru_minflt as u64,
            majflt: usage.ru_majflt as u64,
        }
    }

    /// What was used since `earlier`.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            cpu: self.cpu.saturating_sub(earlier.cpu),
            minflt: self.minflt.saturating_sub(earlier.minflt),
            majflt: self.majflt.saturating_sub(earlier.majflt),
        }
    }
}

/// The start of a measured section: the clock and the process's usage.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    at: Instant,
    usage: Usage,
}

impl Mark {
    pub fn now() -> Mark {
        Mark {
            usage: Usage::now(),
            at: Instant::now(),
        }
    }

    /// The section from this mark until now.
    pub fn elapsed(&self) -> Section {
        let wall = self.at.elapsed();
        Section {
            wall,
            usage: Usage::now().since(&self.usage),
        }
    }
}

/// What one measured section cost, for the whole process: every figure a
/// run reports covers exactly this section.
#[derive(Clone, Copy, Debug, Default)]
pub struct Section {
    pub wall: Duration,
    pub usage: Usage,
}

/// `key=value` fields separated by tabs, values numbers.
pub fn parse_fields(text: &str) -> Res<std::collections::BTreeMap<String, f64>> {
    text.split('\t')
        .filter(|field| !field.is_empty())
        .map(|field| {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| format!("bad field {field:?}"))?;
            Ok((key.to_string(), value.parse()?))
        })
        .collect()
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
pub fn proc_status_kib(field: &str) -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// Raises the soft limit on open descriptors to the hard limit (`conns`
/// and `idle` hold thousands of sockets), and returns it.
pub fn raise_nofile_limit() -> Res<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local, fully initialised struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
    Ok(limit.rlim_cur as u64)
}

// ---------------------------------------------------------------------------
// idle: what the harness does between the phases of a client
// ---------------------------------------------------------------------------

/// Connections of `idle` being opened at once (connect + one round trip):
/// far below the listen backlog, so no SYN is ever dropped and retried.
pub const IDLE_WINDOW: usize = 256;

/// The client of `idle` calls these, in this order, from the thread that
/// runs it; the harness measures memory and time in them and talks to the
/// server process. They block while they do.
pub trait IdlePhases {
    /// The runtime is ready and nothing is open yet: the baseline.
    fn opening(&mut self) -> Res<()>;
    /// Every connection is open and has exchanged its message: they are
    /// idle now.
    fn open(&mut self) -> Res<()>;
    /// About to close every connection.
    fn closing(&mut self) -> Res<()>;
}
