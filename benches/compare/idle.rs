//! The `idle` workload's harness: `n` connections opened, one round trip on
//! each (so each end has read once), then held idle. It measures the bytes
//! of resident memory per idle connection at each end, the time to open
//! them all and the time to close them all.
//!
//! The client runs in the run's child process (`--child idle:IMPL`), which
//! starts the server in a process of its own (`--child idle-server:IMPL`):
//! each end's memory is then its own process's, and each process holds `n`
//! descriptors, not `2n`. They talk over the server's stdin and stdout:
//!
//! ```text
//! server -> client   READY <tab> 127.0.0.1:port      bound; baseline taken
//! client -> server   measure                         every connection is open and idle
//! server -> client   SERVER <tab> rss_kib=.. <tab> base_kib=.. <tab> cpu_ms=.. <tab> minflt=..
//! server -> client   CLOSED                          (or FAILED <tab> error) all n closed
//! client closes the server's stdin; the server exits
//! ```

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use crate::cases::Outcome;
use crate::common::{
    join, parse_fields, proc_status_kib, raise_nofile_limit, IdlePhases, Mark, Res, Section, Sizes,
    Usage, IDLE_WINDOW,
};

/// `storm`'s client: every connection opened at once, on a 2-loop group.
fn storm_client(addr: SocketAddr, n: usize, phases: &mut dyn IdlePhases) -> Res<()> {
    group::idle_client(addr, n, n, phases)
}
use crate::{aio, ev, group, tk};

type ServerFn = fn(usize, mpsc::Sender<SocketAddr>) -> Res<()>;
type ClientFn = fn(SocketAddr, usize, &mut dyn IdlePhases) -> Res<()>;

fn implementation(imp: &str) -> Res<(ServerFn, ClientFn)> {
    Ok(match imp {
        "evstream" => (
            |n, tx| ev::idle_server(n, ev::Idle::Callbacks, tx),
            |addr, n, phases| ev::idle_client(addr, n, ev::Idle::Callbacks, phases),
        ),
        "evstream-stream" => (
            |n, tx| ev::idle_server(n, ev::Idle::Streams, tx),
            |addr, n, phases| ev::idle_client(addr, n, ev::Idle::Streams, phases),
        ),
        "tokio" => (tk::idle_server, tk::idle_client),
        "async-io" => (aio::idle_server, aio::idle_client),
        "evstream-group2" => (
            |n, tx| group::idle_server(n, false, tx),
            |addr, n, phases| group::idle_client(addr, n, IDLE_WINDOW, phases),
        ),
        // Servers for `storm` only, whose client is always the group's.
        "evstream-handoff2" => (|n, tx| group::idle_server(n, true, tx), storm_client),
        "tokio-mt2" => (tk::idle_server_mt2, storm_client),
        _ => return Err(format!("no idle implementation {imp:?}").into()),
    })
}

/// Each process holds `n` sockets plus a few descriptors of its own.
fn descriptors(n: usize) -> Res<()> {
    let need = n as u64 + 64;
    let limit = raise_nofile_limit()?;
    if limit < need {
        return Err(format!(
            "idle needs {need} descriptors per process; the hard limit is {limit} \
             (raise it or use --idle)"
        )
        .into());
    }
    Ok(())
}

fn kib_per_conn(after: u64, before: u64, n: usize) -> f64 {
    (after as f64 - before as f64) * 1024.0 / n as f64
}

/// The client side, in the run's child process: starts the server process,
/// runs the client, and returns open ms, close ms and bytes per connection
/// (both ends, client, server). The section is the opening: its wall time
/// and the CPU time and page faults of both processes during it.
pub fn run(s: &Sizes, imp: &str) -> Res<Outcome> {
    let (_, client) = implementation(imp)?;
    let m = measure(imp, s.idle, client)?;
    Ok(Outcome {
        section: m.section,
        values: vec![
            m.open.wall.as_secs_f64() * 1000.0,
            m.close.wall.as_secs_f64() * 1000.0,
            m.client_b + m.server_b,
            m.client_b,
            m.server_b,
        ],
    })
}

/// `idlescale`: `idle` on 2-loop groups with `s.idle_max / divisor`
/// connections: bytes per connection at each end, and the open and close
/// times per connection (flat per connection = linear in total).
pub fn scale(s: &Sizes, divisor: usize) -> Res<Outcome> {
    let n = (s.idle_max / divisor).max(1);
    let (_, client) = implementation("evstream-group2")?;
    let m = measure("evstream-group2", n, client)?;
    let us_per_conn = |section: &Section| section.wall.as_secs_f64() * 1e6 / n as f64;
    eprintln!(
        "    {n} connections: open {:.1} ms, close {:.1} ms",
        m.open.wall.as_secs_f64() * 1000.0,
        m.close.wall.as_secs_f64() * 1000.0
    );
    Ok(Outcome {
        section: m.section,
        values: vec![
            m.client_b + m.server_b,
            m.client_b,
            m.server_b,
            us_per_conn(&m.open),
            us_per_conn(&m.close),
        ],
    })
}

/// `storm`: `s.storm` connections opened at once (a connect, a 64-byte
/// round trip) against the `imp` server; the time until every one has
/// its echo (any connection that fails fails the run), and how evenly the
/// server's loops share them (fewest / most, in %).
pub fn storm(s: &Sizes, imp: &str) -> Res<Outcome> {
    let n = s.storm;
    let m = measure(imp, n, storm_client)?;
    let spread = match (m.server.get("loop_min"), m.server.get("loop_max")) {
        (Some(&min), Some(&max)) if max > 0.0 => {
            eprintln!("    per loop: fewest {min}, most {max} of {n}");
            100.0 * min / max
        }
        _ => f64::NAN,
    };
    Ok(Outcome {
        section: m.section,
        values: vec![m.open.wall.as_secs_f64() * 1000.0, spread],
    })
}

/// What one client/server pair measured.
struct Measured {
    section: Section,
    open: Section,
    close: Section,
    client_b: f64,
    server_b: f64,
    server: BTreeMap<String, f64>,
}

/// Runs `client` against the `imp` server process with `n` connections.
fn measure(imp: &str, n: usize, client: ClientFn) -> Res<Measured> {
    descriptors(n)?;
    let mut server = Command::new(std::env::current_exe()?)
        .args(["--child", &format!("idle-server:{imp}")])
        .args(["--idle", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let result = drive(&mut server, client, n);
    if result.is_err() {
        let _ = server.kill();
    }
    let status = server.wait()?;
    let (open, close, phases) = result?;
    if !status.success() {
        return Err(format!("the idle server process failed: {status}").into());
    }
    let server_report = phases.server.as_ref().ok_or("no server report")?;
    let field = |key: &str| -> Res<f64> {
        server_report
            .get(key)
            .copied()
            .ok_or_else(|| format!("the server report has no {key}").into())
    };
    let client_b = kib_per_conn(phases.rss_open, phases.rss_before, n);
    let server_b = (field("rss_kib")? - field("base_kib")?) * 1024.0 / n as f64;
    let section = Section {
        wall: open.wall,
        usage: Usage {
            cpu: open.usage.cpu + Duration::from_secs_f64(field("cpu_ms")? / 1000.0),
            minflt: open.usage.minflt + field("minflt")? as u64,
            majflt: open.usage.majflt,
        },
    };
    eprintln!(
        "    {n} idle connections: client {:.0} B/conn (RSS {:.1} -> {:.1} MiB), \
         server {:.0} B/conn (RSS {:.1} -> {:.1} MiB)",
        client_b,
        phases.rss_before as f64 / 1024.0,
        phases.rss_open as f64 / 1024.0,
        server_b,
        field("base_kib")? / 1024.0,
        field("rss_kib")? / 1024.0,
    );
    Ok(Measured {
        section,
        open,
        close,
        client_b,
        server_b,
        server: server_report.clone(),
    })
}

/// Runs the client against the server process; returns the opening and
/// closing sections and what was measured in between.
fn drive(server: &mut Child, client: ClientFn, n: usize) -> Res<(Section, Section, Phases)> {
    let to_server = server.stdin.take().ok_or("no server stdin")?;
    let mut from_server = BufReader::new(server.stdout.take().ok_or("no server stdout")?);
    let ready = expect(&mut from_server, "READY")?;
    let addr: SocketAddr = ready.parse()?;
    let mut phases = Phases {
        to_server: Some(to_server),
        from_server,
        rss_before: 0,
        rss_open: 0,
        opening: None,
        open: None,
        closing: None,
        server: None,
    };
    client(addr, n, &mut phases)?;
    // The client's side is closed; the server's is once it says so.
    let closing = phases.closing.ok_or("the client never closed")?;
    let client_closed = closing.elapsed().wall;
    let closed = expect(&mut phases.from_server, "CLOSED")?;
    let close = closing.elapsed();
    eprintln!(
        "    closing: the client's side took {:.1} ms, the server's last close came at {:.1} ms",
        client_closed.as_secs_f64() * 1000.0,
        close.wall.as_secs_f64() * 1000.0
    );
    if !closed.is_empty() {
        return Err(format!("unexpected CLOSED line {closed:?}").into());
    }
    drop(phases.to_server.take()); // the server exits at EOF
    let open = phases.open.ok_or("the client never opened")?;
    Ok((open, close, phases))
}

/// What the client's phases measured.
struct Phases {
    to_server: Option<ChildStdin>,
    from_server: BufReader<ChildStdout>,
    rss_before: u64,
    rss_open: u64,
    opening: Option<Mark>,
    open: Option<Section>,
    closing: Option<Mark>,
    server: Option<BTreeMap<String, f64>>,
}

impl IdlePhases for Phases {
    fn opening(&mut self) -> Res<()> {
        self.rss_before = proc_status_kib("VmRSS")?;
        self.opening = Some(Mark::now());
        Ok(())
    }

    fn open(&mut self) -> Res<()> {
        self.open = Some(self.opening.ok_or("open before opening")?.elapsed());
        self.rss_open = proc_status_kib("VmRSS")?;
        let to_server = self.to_server.as_mut().ok_or("no server stdin")?;
        writeln!(to_server, "measure")?;
        to_server.flush()?;
        let report = expect(&mut self.from_server, "SERVER")?;
        self.server = Some(parse_fields(&report)?);
        Ok(())
    }

    fn closing(&mut self) -> Res<()> {
        self.closing = Some(Mark::now());
        Ok(())
    }
}

/// Reads the server's next line, which must start with `tag`; returns the
/// rest (after a tab, if any). A `FAILED` line is the server's error.
fn expect(from_server: &mut impl BufRead, tag: &str) -> Res<String> {
    let mut line = String::new();
    if from_server.read_line(&mut line)? == 0 {
        return Err(format!("the idle server process ended before {tag}").into());
    }
    let line = line.trim_end_matches('\n');
    if let Some(err) = line.strip_prefix("FAILED\t") {
        return Err(format!("idle server: {err}").into());
    }
    let rest = line
        .strip_prefix(tag)
        .ok_or_else(|| format!("expected {tag} from the idle server, got {line:?}"))?;
    Ok(rest.strip_prefix('\t').unwrap_or(rest).to_string())
}

/// The server process (`--child idle-server:IMPL`): serves on a thread,
/// answers the client on stdin/stdout, exits when the client closes its
/// stdin.
pub fn server_main(imp: &str, n: usize) -> Res<()> {
    let (serve, _) = implementation(imp)?;
    descriptors(n)?;
    let (addr_tx, addr_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let serving = thread::spawn(move || {
        let result = serve(n, addr_tx);
        // Said the moment the last connection is closed: the client times
        // the closing up to this line.
        let mut out = io::stdout().lock();
        let _ = match &result {
            Ok(()) => writeln!(out, "CLOSED"),
            Err(err) => writeln!(out, "FAILED\t{err}"),
        };
        let _ = out.flush();
        drop(done_tx);
        result
    });
    let Ok(addr) = addr_rx.recv() else {
        join(serving)?;
        return Err("the idle server ended without an address".into());
    };
    let base_kib = proc_status_kib("VmRSS")?;
    let base = Usage::now();
    {
        let mut out = io::stdout().lock();
        writeln!(out, "READY\t{addr}")?;
        out.flush()?;
    }
    for line in io::stdin().lock().lines() {
        match line?.trim() {
            "measure" => {
                let rss_kib = proc_status_kib("VmRSS")?;
                let used = Usage::now().since(&base);
                let spread = group::server_spread()
                    .map(|(min, max)| format!("\tloop_min={min}\tloop_max={max}"))
                    .unwrap_or_default();
                let mut out = io::stdout().lock();
                writeln!(
                    out,
                    "SERVER\trss_kib={rss_kib}\tbase_kib={base_kib}\tcpu_ms={:.3}\tminflt={}{spread}",
                    used.cpu.as_secs_f64() * 1000.0,
                    used.minflt
                )?;
                out.flush()?;
            }
            other => return Err(format!("idle server: unknown command {other:?}").into()),
        }
    }
    // The client closed our stdin: it is done (it has read CLOSED, which
    // the serving thread prints just before it ends), or gone.
    if done_rx.recv_timeout(Duration::from_secs(10)) != Err(RecvTimeoutError::Disconnected) {
        return Err("idle server: the client went away with connections open".into());
    }
    join(serving)
}
