//! evstream against tokio, async-io and blocking `std::net` on the same
//! loopback workloads. **Every run is a fresh process**: for each
//! (workload, implementation, repetition) this binary re-executes itself as
//! a child (`--child workload:impl`) that makes that one run and reports
//! it. Implementations are interleaved and their order rotates from one
//! repetition to the next (A B C D, B C D A, …), and ratios to tokio are
//! paired: one ratio per repetition, then their median and spread.
//! `docs/performance.md` explains the method and shows the latest figures.
//!
//! ```text
//! cargo bench --bench compare                       # full run, 5 repetitions
//! cargo bench --bench compare -- --quick            # tiny sizes, 1 repetition (CI smoke test)
//! cargo bench --bench compare -- --reps 3
//! cargo bench --bench compare -- --only pingpong2:evstream,pingpong2:tokio --reps 1
//! cargo bench --bench compare -- --only idle --idle 10000
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
//!   and the peak RSS (VmHWM) of the run's process.
//! * `idle` — 10,000 connections opened (256 at a time), one 64-byte round
//!   trip on each, then held idle: resident bytes per idle connection at the
//!   client, at the server and both ends together (VmRSS deltas / N), the
//!   time to open them all and the time to close them all. The server runs
//!   in a process of its own (see `compare/idle.rs`).
//! * `conns:evstream-group2` / `conns:tokio-mt2` — the same `conns` with
//!   a 2-loop `LoopGroup` per side (sharded `GroupServer`, clients placed
//!   round-robin) and tokio's multi-thread runtime with 2 workers per side
//!   (the target compares these two); `idle:evstream-group2` — `idle` on
//!   2-loop groups, the client on 8 source addresses (`compare/group.rs`).
//! * `idlescale` — `idle` on 2-loop groups at n/20, n/10, n/4, n/2 and n
//!   connections, n = 19,900 (what one process's descriptors allow under a
//!   hard limit of 20,000): bytes per connection at each end and the open
//!   and close time per connection, which stay flat if memory and time
//!   grow linearly.
//! * `storm` — 10,000 connections opened at once (a connect and one
//!   64-byte round trip each) against a 2-loop server: `GroupServer::bind`
//!   (SO_REUSEPORT shards), `bind_hand_off`, and tokio's multi-thread
//!   runtime with 2 workers; the time until all are served and how evenly
//!   the loops shared them (fewest/most). A refused or lost connection
//!   fails the run.
//! * `tlsbulk` / `tlspingpong` (built with `--features tls` only) — `bulk`
//!   (half its bytes: 1 GiB) and `pingpong2` over TLS at both ends:
//!   evstream's TLS layer against tokio-rustls, the same rustls, `ring`
//!   provider and configurations (see `compare/tls.rs`):
//!   `cargo bench --features tls --bench compare -- --only tlsbulk,tlspingpong`.
//!
//! Each side of an async implementation runs its own single-threaded
//! executor: tokio a current-thread runtime, async-io `async_io::block_on`,
//! evstream an `EventLoop` (`block_on` or `run`). Every figure comes from a
//! run whose data was verified; a failed check aborts the bench.
//!
//! Each run reports, for its **measured section** only (from the start of
//! the client, or of the round trips, to the end of the transfer): wall
//! time, CPU time (user + system of all the process's threads, a
//! `getrusage(RUSAGE_SELF)` delta) and minor page faults (`ru_minflt`
//! delta), the faults per unit of work (per GiB for bulk, per 1M lines,
//! per 1k round trips, per connection for conns and idle). A fresh process
//! per run means no run inherits a heap that an earlier one shaped: glibc
//! trims freed memory, and a library that keeps asking for new blocks pays
//! page faults that a warm heap would hide (issue #15).
//!
//! Machine-readable lines follow the tables:
//!
//! * `RESULT\tmetric\timpl\tmedian\tmin\tmax\tunit\tratio\tbetter\tratio_min\tratio_max`:
//!   `ratio` is the median of the paired ratios impl/tokio (one per
//!   repetition), `ratio_min`/`ratio_max` their spread (`nan` without
//!   tokio); `better` says whether a higher or a lower value is better.
//!   `scripts/chart.py` draws `docs/perf.svg` from them.
//! * `CPU\tworkload\timpl\tmedian_ms\tmin_ms\tmax_ms\tratio\tratio_min\tratio_max`:
//!   CPU time of the measured section, paired ratios to tokio; lower is
//!   better.
//! * `FAULTS\tworkload\timpl\tmedian\tmin\tmax\tper`: minor page faults of
//!   the measured section per unit of work (`per`: GiB, 1M lines, 1k rt,
//!   conn).
//!
//! A child prints one line, `CHILD` followed by tab-separated `key=value`
//! fields: `wall_ms`, `cpu_ms`, `minflt`, `majflt`, and one per metric of
//! its workload. It can be run by hand (under perf, strace, valgrind):
//! `compare --child bulk:evstream --bulk-mib 512`.

// The modules live in `benches/compare/`; a bench's root file resolves
// `mod x;` beside itself, hence the paths.
#[path = "compare/aio.rs"]
mod aio;
#[path = "compare/cases.rs"]
mod cases;
#[path = "compare/common.rs"]
mod common;
#[path = "compare/ev.rs"]
mod ev;
#[path = "compare/group.rs"]
mod group;
#[path = "compare/idle.rs"]
mod idle;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/stdnet.rs"]
mod stdnet;
#[path = "compare/tk.rs"]
mod tk;
#[cfg(feature = "tls")]
#[path = "compare/tls.rs"]
mod tls;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use cases::{Case, Workload, CASES, WORKLOADS};
use common::{data, Res, Sizes};
use report::{fmt_value, Collected};

// ---------------------------------------------------------------------------
// Watchdog: a hung run must fail the bench, not hang CI
// ---------------------------------------------------------------------------

static DEADLINE_MS: AtomicU64 = AtomicU64::new(0);
static CURRENT: Mutex<String> = Mutex::new(String::new());
/// The child process being waited for (0: none), killed if it hangs.
static CHILD_PID: AtomicU32 = AtomicU32::new(0);

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
            let pid = CHILD_PID.load(Ordering::SeqCst);
            if pid != 0 {
                // SAFETY: kill(2) with a pid this process spawned and has
                // not reaped yet (CHILD_PID is cleared before the wait).
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            }
            std::process::exit(3);
        }
    });
}

// ---------------------------------------------------------------------------
// Command line
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
               [--idle N] [--idle-max N] [--storm N]
  --quick        tiny sizes and 1 repetition (a smoke test for CI)
  --reps N       repetitions of each case, interleaved, order rotated (default 5)
  --only LIST    comma-separated workloads or workload:impl, e.g. pingpong2:evstream,lines
  --list         list the workloads and implementations
  --timeout SECS abort if one run takes longer (default 300)
  --idle N       connections the idle workload holds (default 10000)
  --idle-max N   the largest count of idlescale (default 19900; it runs n/20 .. n)
  --storm N      connections the storm workload opens at once (default 10000)
  --child W:I    make one run of workload W, implementation I, in this process
                 and print its CHILD line (what the bench runs for every run)";

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
            "--idle" => options.sizes.idle = value()?.parse()?,
            "--idle-max" => options.sizes.idle_max = value()?.parse()?,
            "--storm" => options.sizes.storm = value()?.parse()?,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    let s = &options.sizes;
    if options.reps == 0
        || s.bulk_blocks() == 0
        || s.pingpong == 0
        || s.lines == 0
        || s.conns == 0
        || s.idle == 0
        || s.idle_max < 20
        || s.storm == 0
    {
        return Err(
            "--reps, --bulk-mib, --pingpong, --lines, --conns, --idle and --storm must \
             be at least 1, --idle-max at least 20"
                .into(),
        );
    }
    Ok(options)
}

/// The arguments that give a child these sizes.
fn size_args(s: &Sizes) -> Vec<String> {
    [
        ("--bulk-mib", (s.bulk_bytes >> 20).to_string()),
        ("--pingpong", s.pingpong.to_string()),
        ("--lines", s.lines.to_string()),
        ("--conns", s.conns.to_string()),
        ("--conn-rounds", s.conn_rounds.to_string()),
        ("--idle", s.idle.to_string()),
        ("--idle-max", s.idle_max.to_string()),
        ("--storm", s.storm.to_string()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_string(), value])
    .collect()
}

fn selected(case: &Case, only: &[String]) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| o == case.workload || *o == format!("{}:{}", case.workload, case.imp))
}

// ---------------------------------------------------------------------------
// The child: one run, reported on one line
// ---------------------------------------------------------------------------

fn child_main(what: &str, s: &Sizes) -> Res<()> {
    // `--child IMPL` alone was the conns child before every run had one.
    let (workload, imp) = what.split_once(':').unwrap_or(("conns", what));
    if workload == "idle-server" {
        return idle::server_main(imp, s.idle);
    }
    let case = CASES
        .iter()
        .find(|c| c.workload == workload && c.imp == imp)
        .ok_or_else(|| format!("no case {workload}:{imp} (see --list)"))?;
    let w = workload_of(case);
    data(); // built before the measured section
    let outcome = (case.run)(s)?;
    if outcome.values.len() != w.metrics.len() {
        return Err(format!("{workload}:{imp} returned the wrong number of values").into());
    }
    let section = outcome.section;
    let mut line = format!(
        "CHILD\twall_ms={:.3}\tcpu_ms={:.3}\tminflt={}\tmajflt={}",
        section.wall.as_secs_f64() * 1000.0,
        section.usage.cpu.as_secs_f64() * 1000.0,
        section.usage.minflt,
        section.usage.majflt
    );
    for (m, v) in w.metrics.iter().zip(&outcome.values) {
        line.push_str(&format!("\t{}={v:.6}", m.name));
    }
    println!("{line}");
    Ok(())
}

fn workload_of(case: &Case) -> &'static Workload {
    WORKLOADS
        .iter()
        .find(|w| w.name == case.workload)
        .expect("every case's workload is declared")
}

// ---------------------------------------------------------------------------
// The parent: every run in a fresh child, interleaved, rotated
// ---------------------------------------------------------------------------

/// Runs `case` once in a fresh child process and returns its fields.
fn run_child(case: &Case, options: &Options) -> Res<BTreeMap<String, f64>> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["--child", &format!("{}:{}", case.workload, case.imp)])
        .args(size_args(&options.sizes))
        .args(["--timeout", &options.timeout.as_secs().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let child = command.spawn()?;
    CHILD_PID.store(child.id(), Ordering::SeqCst);
    let output = child.wait_with_output();
    CHILD_PID.store(0, Ordering::SeqCst);
    let output = output?;
    if !output.status.success() {
        return Err(format!("the child failed: {}", output.status).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("CHILD\t"))
        .ok_or_else(|| format!("the child printed no result: {stdout:?}"))?;
    common::parse_fields(line)
}

fn run_workload(
    workload: &Workload,
    cases: &[&Case],
    options: &Options,
    collected: &mut Collected,
) -> Res<()> {
    let s = &options.sizes;
    let (units, per) = (workload.per)(s);
    for rep in 0..options.reps {
        // Rotate the order: every implementation runs first (and right
        // after each other one) as often as the others.
        let k = cases.len();
        for case in (0..k).map(|i| cases[(i + rep) % k]) {
            let name = format!("{}:{} (rep {})", case.workload, case.imp, rep + 1);
            // The child has its own watchdog; this one catches a child that
            // cannot even do that.
            arm_watchdog(&name, options.timeout + Duration::from_secs(30));
            let fields = run_child(case, options).map_err(|err| format!("{name}: {err}"))?;
            DEADLINE_MS.store(0, Ordering::SeqCst);
            let field = |key: &str| -> Res<f64> {
                fields
                    .get(key)
                    .copied()
                    .ok_or_else(|| format!("{name}: the child reported no {key}").into())
            };
            let mut shown = Vec::new();
            for m in workload.metrics {
                let v = field(m.name)?;
                collected.metrics.add(m.name, case.imp, v);
                shown.push(format!("{} {}", fmt_value(v), m.unit));
            }
            let (wall, cpu, minflt) = (field("wall_ms")?, field("cpu_ms")?, field("minflt")?);
            collected.wall.add(workload.name, case.imp, wall);
            collected.cpu.add(workload.name, case.imp, cpu);
            collected
                .faults
                .add(workload.name, case.imp, minflt / units);
            shown.push(format!(
                "wall {} ms, CPU {} ms, {} faults/{per}",
                fmt_value(wall),
                fmt_value(cpu),
                fmt_value(minflt / units)
            ));
            if field("majflt")? > 0.0 {
                shown.push(format!("{} major faults", field("majflt")?));
            }
            eprintln!("  {name}: {}", shown.join(", "));
        }
    }
    Ok(())
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
    if let Some(what) = &options.child {
        arm_watchdog(&format!("child {what}"), options.timeout);
        return child_main(what, &options.sizes);
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
        "evstream comparison: {} repetition(s), each run in a fresh process, order rotated per \
         repetition; {} CPUs; {}",
        options.reps,
        thread::available_parallelism().map_or(0, |n| n.get()),
        s
    );
    let mut collected = Collected::default();
    let started = Instant::now();
    for workload in WORKLOADS {
        let cases: Vec<&Case> = cases
            .iter()
            .copied()
            .filter(|c| c.workload == workload.name)
            .collect();
        if cases.is_empty() {
            continue;
        }
        run_workload(workload, &cases, &options, &mut collected)?;
        report::print_workload(&collected, workload, &s);
    }
    report::print_summary(&collected, &s, options.reps);
    report::print_targets(&collected);
    report::print_machine_block(&collected, &s);
    eprintln!("total time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
