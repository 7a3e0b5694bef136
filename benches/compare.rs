//! evstream against tokio, async-io and blocking `std::net` on the same
//! loopback workloads, interleaved in one run (A B C D, repeated), with
//! medians and ratios to tokio. `docs/performance.md` explains the method
//! and shows the latest figures.
//!
//! ```text
//! cargo bench --bench compare                       # full run, 5 repetitions
//! cargo bench --bench compare -- --quick            # tiny sizes, 1 repetition (CI smoke test)
//! cargo bench --bench compare -- --reps 3
//! cargo bench --bench compare -- --only pingpong2:evstream,pingpong2:tokio --reps 1
//! cargo bench --bench compare -- --list             # the workloads and implementations
//! ```
//!
//! Workloads (sizes of the full run; `--quick` shrinks them):
//!
//! * `bulk` — one connection, 2 GiB sent in 64 KiB writes, received into a
//!   64 KiB buffer. The sender repeats a 64 KiB pseudo-random block; the
//!   receiver counts every byte and compares every 16th block with the
//!   pattern, so a lost, duplicated or shifted byte is caught.
//! * `pingpong2` / `pingpong1` — 100,000 round trips of 64 bytes, client and
//!   server on two threads / on one thread. Every echo is compared with the
//!   message (which carries its round number).
//! * `lines` — 2,000,000 lines of ~60 bytes (30 to 90), split and counted;
//!   the length and first byte of every line are checked.
//! * `conns` — 2,000 concurrent connections, 20 round trips of 64 bytes
//!   each, all connections held open until every client is done; total time
//!   and the peak RSS (VmHWM) of a child process that runs only that
//!   implementation (VmHWM is per process and never goes down).
//!
//! Each side of an async implementation runs its own single-threaded
//! executor: tokio a current-thread runtime, async-io `async_io::block_on`,
//! evstream an `EventLoop` (`block_on` or `run`). Every figure comes from a
//! run whose data was verified; a failed check aborts the bench.
//!
//! Besides wall-clock figures, every run's CPU time is measured: user +
//! system time of all the process's threads, the `getrusage(RUSAGE_SELF)`
//! delta around the run. Runs are sequential and join their server and
//! client threads before returning, so the delta is that run's CPU,
//! including its setup and teardown (runtime or loop creation, connect,
//! close), which wall-clock times partly leave out. `conns` measures in the
//! child, around the run, and reports it on its `CHILD` line. CPU time is
//! much less sensitive than wall-clock time to a noisy machine (a
//! descheduled thread uses none), so it is the steadier figure to compare
//! when throughput swings between runs; for two busy threads (`pingpong2`,
//! `bulk`) it can exceed the wall time. After each workload's table comes a
//! CPU table: median ms of CPU per run and the ratio to tokio (lower is
//! better).
//!
//! Machine-readable lines follow the tables:
//! `RESULT\tworkload\timpl\tmedian\tmin\tmax\tunit\tratio\tbetter`, where
//! `ratio` is median / tokio's median and `better` says whether a higher or
//! a lower value is better. `scripts/chart.py` draws `docs/perf.svg` from
//! them. Then, per workload and implementation, the CPU time per run:
//! `CPU\tworkload\timpl\tmedian_ms\tmin_ms\tmax_ms\tratio`, where `ratio` is
//! median / tokio's median (`nan` without tokio), and lower is better.

// The modules live in `benches/compare/`; a bench's root file resolves
// `mod x;` beside itself, hence the paths.
#[path = "compare/aio.rs"]
mod aio;
#[path = "compare/common.rs"]
mod common;
#[path = "compare/ev.rs"]
mod ev;
#[path = "compare/stdnet.rs"]
mod stdnet;
#[path = "compare/tk.rs"]
mod tk;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{data, mib_per_s, rate, run_pair, BulkCheck, LineCheck, Res, Sizes, BLOCK};

// ---------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------

type RunFn = fn(&Sizes) -> Res<Run>;

/// What one run returns.
struct Run {
    /// A value per metric of its workload.
    values: Vec<f64>,
    /// The CPU time of a run made in a child process, as the child measured
    /// it; `None` for a run in this process, which the caller measures.
    child_cpu: Option<Duration>,
}

impl Run {
    fn here(values: Vec<f64>) -> Res<Run> {
        Ok(Run {
            values,
            child_cpu: None,
        })
    }
}

struct Case {
    workload: &'static str,
    imp: &'static str,
    what: &'static str,
    run: RunFn,
}

struct Metric {
    workload: &'static str,
    unit: &'static str,
    higher_is_better: bool,
}

struct Workload {
    name: &'static str,
    title: fn(&Sizes) -> String,
    /// What each value of a run's result is.
    metrics: &'static [Metric],
}

const WORKLOADS: &[Workload] = &[
    Workload {
        name: "bulk",
        title: |s| {
            format!(
                "bulk: one connection, {} MiB in 64 KiB writes, read into 64 KiB",
                s.bulk_bytes >> 20
            )
        },
        metrics: &[Metric {
            workload: "bulk",
            unit: "MiB/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "pingpong2",
        title: |s| {
            format!(
                "pingpong2: {} round trips of 64 bytes, client and server on two threads",
                s.pingpong
            )
        },
        metrics: &[Metric {
            workload: "pingpong2",
            unit: "rt/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "pingpong1",
        title: |s| {
            format!(
                "pingpong1: {} round trips of 64 bytes, client and server on one thread",
                s.pingpong
            )
        },
        metrics: &[Metric {
            workload: "pingpong1",
            unit: "rt/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "lines",
        title: |s| format!("lines: {} lines of 30-90 bytes, split and counted", s.lines),
        metrics: &[Metric {
            workload: "lines",
            unit: "Mlines/s",
            higher_is_better: true,
        }],
    },
    Workload {
        name: "conns",
        title: |s| {
            format!(
                "conns: {} concurrent connections x {} round trips of 64 bytes, one child process per run",
                s.conns, s.conn_rounds
            )
        },
        metrics: &[
            Metric {
                workload: "conns",
                unit: "ms",
                higher_is_better: false,
            },
            Metric {
                workload: "conns-rss",
                unit: "MiB",
                higher_is_better: false,
            },
        ],
    },
];

fn bulk_case(
    s: &Sizes,
    server: fn(mpsc::Sender<SocketAddr>) -> Res<BulkCheck>,
    client: fn(SocketAddr, u64) -> Res<()>,
) -> Res<Run> {
    let blocks = s.bulk_blocks();
    let (elapsed, check, ()) = run_pair(server, move |addr| client(addr, blocks))?;
    check.verify(blocks * BLOCK as u64)?;
    Run::here(vec![mib_per_s(check.total, elapsed)])
}

fn lines_case(
    s: &Sizes,
    server: fn(mpsc::Sender<SocketAddr>, usize) -> Res<LineCheck>,
    client: fn(SocketAddr, usize) -> Res<()>,
) -> Res<Run> {
    let lines = s.lines;
    let (elapsed, check, ()) = run_pair(
        move |addr_tx| server(addr_tx, lines),
        move |addr| client(addr, lines),
    )?;
    check.verify(lines)?;
    Run::here(vec![rate(lines as f64 / 1e6, elapsed)])
}

fn ping_result(s: &Sizes, elapsed: Res<Duration>) -> Res<Run> {
    Run::here(vec![rate(s.pingpong as f64, elapsed?)])
}

const CASES: &[Case] = &[
    // bulk
    Case {
        workload: "bulk",
        imp: "evstream",
        what: "AsyncRead::read into 64 KiB; sender AsyncWrite::write_all(&[u8])",
        run: |s| bulk_case(s, ev::bulk_read, |a, b| ev::bulk_send(a, b, false)),
    },
    Case {
        workload: "bulk",
        imp: "evstream-zc",
        what: "zero-copy AsyncBufRead fill_buf/consume; sender write_all_bytes(Bytes)",
        run: |s| bulk_case(s, ev::bulk_bufread, |a, b| ev::bulk_send(a, b, true)),
    },
    Case {
        workload: "bulk",
        imp: "evstream-cb",
        what: "drain-mode read_cb gets each chunk; sender write_all_bytes(Bytes)",
        run: |s| bulk_case(s, ev::bulk_read_cb, |a, b| ev::bulk_send(a, b, true)),
    },
    Case {
        workload: "bulk",
        imp: "tokio",
        what: "AsyncReadExt::read into 64 KiB; write_all",
        run: |s| bulk_case(s, tk::bulk_read, tk::bulk_send),
    },
    Case {
        workload: "bulk",
        imp: "async-io",
        what: "AsyncReadExt::read into 64 KiB; write_all",
        run: |s| bulk_case(s, aio::bulk_read, aio::bulk_send),
    },
    Case {
        workload: "bulk",
        imp: "std",
        what: "blocking read into 64 KiB; write_all",
        run: |s| bulk_case(s, stdnet::bulk_read, stdnet::bulk_send),
    },
    // pingpong, two threads
    Case {
        workload: "pingpong2",
        imp: "evstream",
        what: "stream client (write_all + read_exact in block_on); drain-mode read_cb echo server",
        run: |s| ping_result(s, ev::pingpong2(s.pingpong, ev::Ping::Natural)),
    },
    Case {
        workload: "pingpong2",
        imp: "evstream-stream",
        what: "stream client; stream server (read + write_all in a task spawned on its loop)",
        run: |s| ping_result(s, ev::pingpong2(s.pingpong, ev::Ping::Streams)),
    },
    Case {
        workload: "pingpong2",
        imp: "evstream-cb",
        what: "callback client (read_cb sends the next message); read_cb echo server",
        run: |s| ping_result(s, ev::pingpong2(s.pingpong, ev::Ping::Callbacks)),
    },
    Case {
        workload: "pingpong2",
        imp: "tokio",
        what: "write_all + read_exact; echo server read + write_all",
        run: |s| ping_result(s, tk::pingpong2(s.pingpong)),
    },
    Case {
        workload: "pingpong2",
        imp: "async-io",
        what: "write_all + read_exact; echo server read + write_all",
        run: |s| ping_result(s, aio::pingpong2(s.pingpong)),
    },
    Case {
        workload: "pingpong2",
        imp: "std",
        what: "blocking write_all + read_exact; echo server thread",
        run: |s| ping_result(s, stdnet::pingpong2(s.pingpong)),
    },
    // pingpong, one thread
    Case {
        workload: "pingpong1",
        imp: "evstream",
        what: "one loop: stream client in block_on, read_cb echo server",
        run: |s| ping_result(s, ev::pingpong1(s.pingpong, ev::Ping::Natural)),
    },
    Case {
        workload: "pingpong1",
        imp: "evstream-stream",
        what: "one loop: stream client in block_on, stream server task spawned on the loop",
        run: |s| ping_result(s, ev::pingpong1(s.pingpong, ev::Ping::Streams)),
    },
    Case {
        workload: "pingpong1",
        imp: "evstream-cb",
        what: "one loop: callback client, read_cb echo server",
        run: |s| ping_result(s, ev::pingpong1(s.pingpong, ev::Ping::Callbacks)),
    },
    Case {
        workload: "pingpong1",
        imp: "tokio",
        what: "one current-thread runtime: server task spawned, client in block_on",
        run: |s| ping_result(s, tk::pingpong1(s.pingpong)),
    },
    Case {
        workload: "pingpong1",
        imp: "async-io",
        what: "server and client futures zipped in one block_on",
        run: |s| ping_result(s, aio::pingpong1(s.pingpong)),
    },
    Case {
        workload: "pingpong1",
        imp: "std-lockstep",
        what: "blocking sockets in lock step on one thread (4 syscalls per round trip, no poller)",
        run: |s| ping_result(s, stdnet::pingpong1(s.pingpong)),
    },
    // lines
    Case {
        workload: "lines",
        imp: "evstream",
        what: "the stream's read_until(b\"\\n\", 4096): a Bytes per line, no copy within a chunk",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::ReadUntil),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-chunks",
        what: "zero-copy fill_buf chunks + memchr, split lines joined in a reused Vec",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::Chunks),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-codec",
        what: "codec::Framed + LinesCodec::lf(4096): a Stream of Bytes lines",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::Codec),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-on_frame",
        what: "TcpOptions::on_frame(LinesCodec): the loop calls back with each line",
        run: |s| lines_case(s, ev::lines_on_frame, ev::lines_send),
    },
    Case {
        workload: "lines",
        imp: "evstream-futures",
        what: "futures AsyncBufReadExt::read_until into a reused Vec, on the stream (no BufReader)",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::FuturesReadUntil),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-lines",
        what: "futures AsyncBufReadExt::lines (a String per line)",
        run: |s| {
            lines_case(
                s,
                |tx, _| ev::lines_recv(tx, ev::Lines::Strings),
                ev::lines_send,
            )
        },
    },
    Case {
        workload: "lines",
        imp: "evstream-blocking",
        what:
            "Blocking adaptor, std BufRead::read_until on a plain thread (loop on its own thread)",
        run: |s| lines_case(s, |tx, _| ev::lines_blocking(tx), ev::lines_send),
    },
    Case {
        workload: "lines",
        imp: "tokio",
        what: "BufReader::with_capacity(64 KiB).lines(), next_line",
        run: |s| lines_case(s, |tx, _| tk::lines_recv(tx, false), tk::lines_send),
    },
    Case {
        workload: "lines",
        imp: "tokio-codec",
        what: "tokio-util FramedRead + LinesCodec",
        run: |s| lines_case(s, |tx, _| tk::lines_recv(tx, true), tk::lines_send),
    },
    Case {
        workload: "lines",
        imp: "async-io",
        what: "futures-lite BufReader (64 KiB) + read_until into a reused Vec",
        run: |s| lines_case(s, |tx, _| aio::lines_recv(tx), aio::lines_send),
    },
    Case {
        workload: "lines",
        imp: "std",
        what: "BufReader::with_capacity(64 KiB) + read_until into a reused Vec",
        run: |s| lines_case(s, |tx, _| stdnet::lines_recv(tx), stdnet::lines_send),
    },
    // conns, each run in a child process
    Case {
        workload: "conns",
        imp: "evstream",
        what: "read_cb echo server loop; client loop with a spawned task per connection",
        run: |s| conns_in_child("evstream", s),
    },
    Case {
        workload: "conns",
        imp: "tokio",
        what: "a spawned task per connection on each side's current-thread runtime",
        run: |s| conns_in_child("tokio", s),
    },
    Case {
        workload: "conns",
        imp: "async-io",
        what: "FuturesUnordered of connections in each side's block_on",
        run: |s| conns_in_child("async-io", s),
    },
    Case {
        workload: "conns",
        imp: "std",
        what: "a thread per connection on each side (64 KiB stacks)",
        run: |s| conns_in_child("std", s),
    },
];

type ConnsFn = fn(usize, usize, Instant) -> Res<Duration>;

fn conns_fn(imp: &str) -> Option<ConnsFn> {
    Some(match imp {
        "evstream" => ev::conns,
        "tokio" => tk::conns,
        "async-io" => aio::conns,
        "std" => stdnet::conns,
        _ => return None,
    })
}

/// Runs one `conns` implementation in a fresh process of this binary and
/// returns its time (ms) and peak RSS (MiB), and the child's CPU time.
fn conns_in_child(imp: &str, s: &Sizes) -> Res<Run> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--child", imp])
        .args(["--conns", &s.conns.to_string()])
        .args(["--conn-rounds", &s.conn_rounds.to_string()])
        .stderr(Stdio::inherit())
        .output()?;
    if !output.status.success() {
        return Err(format!("conns child for {imp} failed: {}", output.status).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("CHILD\t"))
        .ok_or_else(|| format!("conns child for {imp} printed no result: {stdout:?}"))?;
    let fields: Vec<f64> = line.split('\t').map(str::parse).collect::<Result<_, _>>()?;
    let [ms, hwm_kib, base_kib, cpu_ms] = fields[..] else {
        return Err(format!("bad child result {line:?}").into());
    };
    eprintln!(
        "    child {imp}: peak RSS {:.1} MiB (at start {:.1} MiB, {:.1} KiB per connection pair)",
        hwm_kib / 1024.0,
        base_kib / 1024.0,
        (hwm_kib - base_kib) / s.conns as f64
    );
    Ok(Run {
        values: vec![ms, hwm_kib / 1024.0],
        child_cpu: Some(Duration::from_secs_f64(cpu_ms / 1000.0)),
    })
}

/// The child side of `conns`: raise the descriptor limit, run, report
/// `CHILD\tms\tpeak_rss_kib\tstart_rss_kib\tcpu_ms`. The CPU time covers the
/// whole run, both sides' threads joined, teardown included.
fn child_main(imp: &str, s: &Sizes) -> Res<()> {
    let run = conns_fn(imp).ok_or_else(|| format!("unknown conns implementation {imp:?}"))?;
    raise_nofile_limit(2 * s.conns as u64 + 256)?;
    let base = vm_hwm_kib()?;
    let cpu_start = process_cpu()?;
    let start = Instant::now();
    let elapsed = run(s.conns, s.conn_rounds, start)?;
    let cpu = process_cpu()?.saturating_sub(cpu_start);
    let hwm = vm_hwm_kib()?;
    println!(
        "CHILD\t{:.3}\t{hwm}\t{base}\t{:.3}",
        elapsed.as_secs_f64() * 1000.0,
        cpu.as_secs_f64() * 1000.0
    );
    Ok(())
}

/// CPU time (user + system) used so far by all threads of this process,
/// ended ones included.
fn process_cpu() -> Res<Duration> {
    // SAFETY: `rusage` is plain integers, for which all zeroes is valid;
    // getrusage only writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(time(usage.ru_utime) + time(usage.ru_stime))
}

fn vm_hwm_kib() -> Res<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

fn raise_nofile_limit(need: u64) -> Res<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system calls on a local, fully initialised struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    if limit.rlim_cur >= need {
        return Ok(());
    }
    if limit.rlim_max < need {
        return Err(format!(
            "conns needs {need} descriptors; the hard limit is {} (raise it or use --conns)",
            limit.rlim_max
        )
        .into());
    }
    limit.rlim_cur = need;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(io::Error::last_os_error().into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Watchdog: a hung case must fail the bench, not hang CI
// ---------------------------------------------------------------------------

static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<String> = Mutex::new(String::new());

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn arm_watchdog(what: &str, limit: Duration) {
    *CURRENT.lock().unwrap() = what.to_string();
    let deadline = epoch().elapsed() + limit;
    DEADLINE_MS.store(deadline.as_millis() as u64, Ordering::SeqCst);
}

fn start_watchdog() {
    epoch();
    thread::spawn(|| loop {
        thread::sleep(Duration::from_millis(250));
        let deadline = DEADLINE_MS.load(Ordering::SeqCst);
        if deadline != 0 && epoch().elapsed().as_millis() as u64 > deadline {
            eprintln!(
                "compare: {} did not finish in time; aborting",
                CURRENT.lock().unwrap()
            );
            std::process::exit(3);
        }
    });
}

// ---------------------------------------------------------------------------
// Command line, running, reporting
// ---------------------------------------------------------------------------

struct Options {
    sizes: Sizes,
    reps: usize,
    only: Vec<String>,
    child: Option<String>,
    list: bool,
    timeout: Duration,
}

const USAGE: &str = "\
usage: compare [--quick] [--reps N] [--only LIST] [--list] [--timeout SECS]
               [--bulk-mib N] [--pingpong N] [--lines N] [--conns N] [--conn-rounds N]
  --quick        tiny sizes and 1 repetition (a smoke test for CI)
  --reps N       repetitions of each case, interleaved (default 5)
  --only LIST    comma-separated workloads or workload:impl, e.g. pingpong2:evstream,lines
  --list         list the workloads and implementations
  --timeout SECS abort if one run takes longer (default 300)";

fn parse_args() -> Res<Options> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let mut options = Options {
        sizes: if quick { Sizes::QUICK } else { Sizes::FULL },
        reps: if quick { 1 } else { 5 },
        only: Vec::new(),
        child: None,
        list: false,
        timeout: Duration::from_secs(300),
    };
    args.retain(|a| a != "--quick" && a != "--bench");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--reps" => options.reps = value()?.parse()?,
            "--only" => options
                .only
                .extend(value()?.split(',').map(|s| s.trim().to_string())),
            "--child" => options.child = Some(value()?),
            "--list" => options.list = true,
            "--timeout" => options.timeout = Duration::from_secs(value()?.parse()?),
            "--bulk-mib" => options.sizes.bulk_bytes = value()?.parse::<u64>()? << 20,
            "--pingpong" => options.sizes.pingpong = value()?.parse()?,
            "--lines" => options.sizes.lines = value()?.parse()?,
            "--conns" => options.sizes.conns = value()?.parse()?,
            "--conn-rounds" => options.sizes.conn_rounds = value()?.parse()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if options.reps == 0 || options.sizes.bulk_blocks() == 0 || options.sizes.conns == 0 {
        return Err("--reps, --bulk-mib and --conns must be at least 1".into());
    }
    Ok(options)
}

fn selected(case: &Case, only: &[String]) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| o == case.workload || *o == format!("{}:{}", case.workload, case.imp))
}

#[derive(Default)]
struct Samples(Vec<f64>);

impl Samples {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        v
    }
    fn median(&self) -> f64 {
        let v = self.sorted();
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }
    fn min(&self) -> f64 {
        self.sorted()[0]
    }
    fn max(&self) -> f64 {
        *self.sorted().last().unwrap()
    }
}

/// Results by (metric workload, impl), in case order.
struct Results {
    order: Vec<(&'static str, &'static str)>,
    samples: BTreeMap<(&'static str, &'static str), Samples>,
}

impl Results {
    fn add(&mut self, workload: &'static str, imp: &'static str, value: f64) {
        if !self.samples.contains_key(&(workload, imp)) {
            self.order.push((workload, imp));
        }
        self.samples
            .entry((workload, imp))
            .or_default()
            .0
            .push(value);
    }

    fn median(&self, workload: &str, imp: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|((w, i), _)| *w == workload && *i == imp)
            .map(|(_, s)| s.median())
    }
}

fn metric(workload: &str) -> &'static Metric {
    WORKLOADS
        .iter()
        .flat_map(|w| w.metrics)
        .find(|m| m.workload == workload)
        .expect("every metric is declared")
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        format!("{v:.0}")
    } else if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The workload's tables: each metric's, then the CPU time per run
/// (`cpu`, keyed by workload name), then what each implementation does.
fn print_table(results: &Results, cpu: &Results, workload: &Workload, sizes: &Sizes) {
    println!();
    println!("{}", (workload.title)(sizes));
    for m in workload.metrics {
        let direction = if m.higher_is_better {
            "higher is better; ratio = impl/tokio, >1 = faster than tokio"
        } else {
            "lower is better; ratio = impl/tokio, <1 = better than tokio"
        };
        println!("  [{}] {} ({direction})", m.workload, m.unit);
        println!(
            "  {:<18} {:>10} {:>10} {:>10} {:>9}",
            "impl", "median", "min", "max", "vs tokio"
        );
        let tokio = results.median(m.workload, "tokio");
        for &(w, imp) in &results.order {
            if w != m.workload {
                continue;
            }
            let s = &results.samples[&(w, imp)];
            let ratio = tokio.map_or("-".to_string(), |t| format!("{:.2}x", s.median() / t));
            println!(
                "  {:<18} {:>10} {:>10} {:>10} {:>9}",
                imp,
                fmt_value(s.median()),
                fmt_value(s.min()),
                fmt_value(s.max()),
                ratio
            );
        }
    }
    print_cpu_table(cpu, workload.name);
    for case in CASES.iter().filter(|c| c.workload == workload.name) {
        let measured = results
            .order
            .iter()
            .any(|&(w, i)| i == case.imp && workload.metrics.iter().any(|m| m.workload == w));
        if measured {
            println!("    {:<18} {}", case.imp, case.what);
        }
    }
}

/// Median CPU ms per run and the ratio to tokio's, for one workload.
fn print_cpu_table(cpu: &Results, workload: &str) {
    if !cpu.order.iter().any(|&(w, _)| w == workload) {
        return;
    }
    println!(
        "  [cpu] ms of CPU per run, user + system, all threads \
         (lower is better; ratio = impl/tokio, <1 = less CPU than tokio)"
    );
    println!("  {:<18} {:>10} {:>9}", "impl", "median", "vs tokio");
    let tokio = cpu.median(workload, "tokio");
    for &(w, imp) in &cpu.order {
        if w != workload {
            continue;
        }
        let median = cpu.samples[&(w, imp)].median();
        let ratio = tokio.map_or("-".to_string(), |t| format!("{:.2}x", median / t));
        println!("  {:<18} {:>10} {:>9}", imp, fmt_value(median), ratio);
    }
}

/// The project's targets: (metric, impl, reference, at least / at most).
const TARGETS: &[(&str, &str, &str, f64, bool)] = &[
    ("bulk", "evstream", "tokio", 0.95, true),
    ("bulk", "evstream-zc", "tokio", 1.0, true),
    ("pingpong2", "evstream", "tokio", 1.0, true),
    ("pingpong1", "evstream", "tokio", 1.0, true),
    ("lines", "evstream*", "std", 1.0, true),
    ("lines", "evstream*", "tokio", 2.0, true),
    ("conns", "evstream", "tokio", 1.0, false),
    ("conns-rss", "evstream", "async-io", 1.0, false),
];

fn print_targets(results: &Results) {
    println!();
    println!("targets (medians; evstream* = the best evstream variant):");
    for &(workload, imp, reference, bound, at_least) in TARGETS {
        let higher = metric(workload).higher_is_better;
        let candidates: Vec<&str> = results
            .order
            .iter()
            .filter(|&&(w, i)| {
                w == workload
                    && match imp.strip_suffix('*') {
                        Some(prefix) => i.starts_with(prefix),
                        None => i == imp,
                    }
            })
            .map(|&(_, i)| i)
            .collect();
        let best = candidates.into_iter().max_by(|a, b| {
            let (a, b) = (
                results.median(workload, a).unwrap(),
                results.median(workload, b).unwrap(),
            );
            if higher {
                a.total_cmp(&b)
            } else {
                b.total_cmp(&a)
            }
        });
        let (Some(best), Some(reference_value)) = (best, results.median(workload, reference))
        else {
            continue;
        };
        let ratio = results.median(workload, best).unwrap() / reference_value;
        let met = if at_least {
            ratio >= bound
        } else {
            ratio <= bound
        };
        println!(
            "  {:<10} {:<18} vs {:<9} {} {:.2}x: {:.2}x  {}",
            workload,
            best,
            reference,
            if at_least { ">=" } else { "<=" },
            bound,
            ratio,
            if met { "met" } else { "MISSED" }
        );
    }
}

fn print_machine_block(results: &Results, cpu: &Results) {
    println!();
    for &(w, imp) in &results.order {
        let s = &results.samples[&(w, imp)];
        let m = metric(w);
        let ratio = results
            .median(w, "tokio")
            .map_or("nan".to_string(), |t| format!("{:.4}", s.median() / t));
        println!(
            "RESULT\t{w}\t{imp}\t{:.3}\t{:.3}\t{:.3}\t{}\t{ratio}\t{}",
            s.median(),
            s.min(),
            s.max(),
            m.unit,
            if m.higher_is_better {
                "higher"
            } else {
                "lower"
            }
        );
    }
    for &(w, imp) in &cpu.order {
        let s = &cpu.samples[&(w, imp)];
        let ratio = cpu
            .median(w, "tokio")
            .map_or("nan".to_string(), |t| format!("{:.4}", s.median() / t));
        println!(
            "CPU\t{w}\t{imp}\t{:.3}\t{:.3}\t{:.3}\t{ratio}",
            s.median(),
            s.min(),
            s.max()
        );
    }
}

fn main() {
    if let Err(err) = real_main() {
        eprintln!("compare: {err}");
        std::process::exit(1);
    }
}

fn real_main() -> Res<()> {
    let options = parse_args()?;
    start_watchdog();
    if let Some(imp) = &options.child {
        arm_watchdog(&format!("conns child {imp}"), options.timeout);
        return child_main(imp, &options.sizes);
    }
    if options.list {
        for case in CASES {
            println!("{}:{:<18} {}", case.workload, case.imp, case.what);
        }
        return Ok(());
    }
    let cases: Vec<&Case> = CASES
        .iter()
        .filter(|c| selected(c, &options.only))
        .collect();
    if cases.is_empty() {
        return Err(format!("--only {:?} selects nothing (see --list)", options.only).into());
    }
    let s = options.sizes;
    println!(
        "evstream comparison: {} repetition(s), interleaved per workload; {} CPUs; {}",
        options.reps,
        thread::available_parallelism().map_or(0, |n| n.get()),
        s
    );
    data();
    let mut results = Results {
        order: Vec::new(),
        samples: BTreeMap::new(),
    };
    // CPU ms per run, by (workload name, impl).
    let mut cpu = Results {
        order: Vec::new(),
        samples: BTreeMap::new(),
    };
    let started = Instant::now();
    for workload in WORKLOADS {
        let cases: Vec<&&Case> = cases
            .iter()
            .filter(|c| c.workload == workload.name)
            .collect();
        if cases.is_empty() {
            continue;
        }
        for rep in 1..=options.reps {
            for case in &cases {
                let name = format!("{}:{} (rep {rep})", case.workload, case.imp);
                arm_watchdog(&name, options.timeout);
                // The run joins its server and client threads before it
                // returns, so the process's CPU time since here is the
                // run's. (Left out: the little a stopped but unjoined
                // background loop, evstream-blocking's, does after that.)
                let cpu_start = process_cpu()?;
                let run = (case.run)(&s).map_err(|err| format!("{name}: {err}"))?;
                let run_cpu = match run.child_cpu {
                    Some(child_cpu) => child_cpu,
                    None => process_cpu()?.saturating_sub(cpu_start),
                };
                DEADLINE_MS.store(0, Ordering::SeqCst);
                let mut shown = Vec::new();
                for (m, v) in workload.metrics.iter().zip(run.values) {
                    results.add(m.workload, case.imp, v);
                    shown.push(format!("{} {}", fmt_value(v), m.unit));
                }
                let cpu_ms = run_cpu.as_secs_f64() * 1000.0;
                cpu.add(workload.name, case.imp, cpu_ms);
                shown.push(format!("CPU {} ms", fmt_value(cpu_ms)));
                eprintln!("  {name}: {}", shown.join(", "));
            }
        }
        print_table(&results, &cpu, workload, &s);
    }
    print_targets(&results);
    print_machine_block(&results, &cpu);
    eprintln!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
