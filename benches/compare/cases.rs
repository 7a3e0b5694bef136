//! The workloads, their metrics, and every (workload, implementation) case.
//! A case runs in a child process of its own, made for that one run
//! (`--child workload:impl`), and returns what it measured.

use std::net::SocketAddr;
use std::sync::mpsc;

use crate::common::{
    mib_per_s, proc_status_kib, raise_nofile_limit, rate, run_pair, BulkCheck, LineCheck, Mark,
    Res, Section, Sizes, BLOCK,
};
#[cfg(feature = "tls")]
use crate::tls;
use crate::{aio, ev, group, idle, stdnet, tk};

/// What one run measured.
pub struct Outcome {
    /// The measured section: its wall time, and the CPU time and page
    /// faults of the whole process during it.
    pub section: Section,
    /// A value per metric of the workload, in the order of its `metrics`.
    pub values: Vec<f64>,
}

pub struct Case {
    pub workload: &'static str,
    pub imp: &'static str,
    pub what: &'static str,
    /// Runs in the child process.
    pub run: fn(&Sizes) -> Res<Outcome>,
}

pub struct Metric {
    /// The name its results are filed under (the workload's own name when
    /// it is the workload's only metric).
    pub name: &'static str,
    pub unit: &'static str,
    pub higher_is_better: bool,
}

pub struct Workload {
    pub name: &'static str,
    pub title: fn(&Sizes) -> String,
    /// What each value of a run's outcome is; the first is the headline.
    pub metrics: &'static [Metric],
    /// Page faults are reported per this unit of work: how many units one
    /// run does, and the unit's name.
    pub per: fn(&Sizes) -> (f64, &'static str),
    /// The metric shown as memory in the summary, if any.
    pub memory: Option<&'static str>,
}

pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "bulk",
        title: |s| {
            format!(
                "bulk: one connection, {} MiB in 64 KiB writes, read into 64 KiB",
                s.bulk_bytes >> 20
            )
        },
        metrics: &[Metric {
            name: "bulk",
            unit: "MiB/s",
            higher_is_better: true,
        }],
        per: |s| (s.bulk_bytes as f64 / (1u64 << 30) as f64, "GiB"),
        memory: None,
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
            name: "pingpong2",
            unit: "rt/s",
            higher_is_better: true,
        }],
        per: |s| (s.pingpong as f64 / 1e3, "1k rt"),
        memory: None,
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
            name: "pingpong1",
            unit: "rt/s",
            higher_is_better: true,
        }],
        per: |s| (s.pingpong as f64 / 1e3, "1k rt"),
        memory: None,
    },
    Workload {
        name: "lines",
        title: |s| format!("lines: {} lines of 30-90 bytes, split and counted", s.lines),
        metrics: &[Metric {
            name: "lines",
            unit: "Mlines/s",
            higher_is_better: true,
        }],
        per: |s| (s.lines as f64 / 1e6, "1M lines"),
        memory: None,
    },
    Workload {
        name: "conns",
        title: |s| {
            format!(
                "conns: {} concurrent connections x {} round trips of 64 bytes (peak RSS of the run's process)",
                s.conns, s.conn_rounds
            )
        },
        metrics: &[
            Metric {
                name: "conns",
                unit: "ms",
                higher_is_better: false,
            },
            Metric {
                name: "conns-rss",
                unit: "MiB",
                higher_is_better: false,
            },
        ],
        per: |s| (s.conns as f64, "conn"),
        memory: Some("conns-rss"),
    },
    Workload {
        name: "idle",
        title: |s| {
            format!(
                "idle: {} connections opened ({} at a time), one 64-byte round trip each, then held idle; \
                 client and server in two processes",
                s.idle,
                crate::common::IDLE_WINDOW
            )
        },
        metrics: &[
            Metric {
                name: "idle-open",
                unit: "ms",
                higher_is_better: false,
            },
            Metric {
                name: "idle-close",
                unit: "ms",
                higher_is_better: false,
            },
            Metric {
                name: "idle-rss",
                unit: "B/conn",
                higher_is_better: false,
            },
            Metric {
                name: "idle-rss-client",
                unit: "B/conn",
                higher_is_better: false,
            },
            Metric {
                name: "idle-rss-server",
                unit: "B/conn",
                higher_is_better: false,
            },
        ],
        per: |s| (s.idle as f64, "conn"),
        memory: Some("idle-rss"),
    },
    Workload {
        name: "idlescale",
        title: |s| {
            format!(
                "idlescale: idle on 2-loop groups at n/20, n/10, n/4, n/2 and n connections, \
                 n = {} (the most one process's descriptors allow); client and server in two \
                 processes, the client on 8 source addresses (127.0.0.2-9); faults per run",
                s.idle_max
            )
        },
        metrics: &[
            Metric {
                name: "idlescale-rss",
                unit: "B/conn",
                higher_is_better: false,
            },
            Metric {
                name: "idlescale-rss-client",
                unit: "B/conn",
                higher_is_better: false,
            },
            Metric {
                name: "idlescale-rss-server",
                unit: "B/conn",
                higher_is_better: false,
            },
            Metric {
                name: "idlescale-open",
                unit: "us/conn",
                higher_is_better: false,
            },
            Metric {
                name: "idlescale-close",
                unit: "us/conn",
                higher_is_better: false,
            },
        ],
        per: |_| (1.0, "run"),
        memory: Some("idlescale-rss"),
    },
    Workload {
        name: "storm",
        title: |s| {
            format!(
                "storm: {} connections opened at once (connect + one 64-byte round trip each) \
                 against a server on 2 loops (or 2 workers); the client is the same 2-loop group \
                 for every server; a refused or lost connection fails the run",
                s.storm
            )
        },
        metrics: &[
            Metric {
                name: "storm",
                unit: "ms",
                higher_is_better: false,
            },
            Metric {
                name: "storm-spread",
                unit: "% fewest/most",
                higher_is_better: true,
            },
        ],
        per: |s| (s.storm as f64, "conn"),
        memory: None,
    },
    #[cfg(feature = "tls")]
    Workload {
        name: "tlsbulk",
        title: |s| {
            format!(
                "tlsbulk: one TLS connection, {} MiB (half of bulk's) in 64 KiB writes, read into 64 KiB",
                (tls::bulk_blocks(s) * BLOCK as u64) >> 20
            )
        },
        metrics: &[Metric {
            name: "tlsbulk",
            unit: "MiB/s",
            higher_is_better: true,
        }],
        per: |s| {
            (
                (tls::bulk_blocks(s) * BLOCK as u64) as f64 / (1u64 << 30) as f64,
                "GiB",
            )
        },
        memory: None,
    },
    #[cfg(feature = "tls")]
    Workload {
        name: "tlspingpong",
        title: |s| {
            format!(
                "tlspingpong: {} round trips of 64 bytes over TLS, client and server on two threads",
                s.pingpong
            )
        },
        metrics: &[Metric {
            name: "tlspingpong",
            unit: "rt/s",
            higher_is_better: true,
        }],
        per: |s| (s.pingpong as f64 / 1e3, "1k rt"),
        memory: None,
    },
];

fn bulk_case(
    s: &Sizes,
    server: fn(mpsc::Sender<SocketAddr>) -> Res<BulkCheck>,
    client: fn(SocketAddr, u64) -> Res<()>,
) -> Res<Outcome> {
    let blocks = s.bulk_blocks();
    let (section, check, ()) = run_pair(server, move |addr| client(addr, blocks))?;
    check.verify(blocks * BLOCK as u64)?;
    Ok(Outcome {
        section,
        values: vec![mib_per_s(check.total, section.wall)],
    })
}

fn lines_case(
    s: &Sizes,
    server: fn(mpsc::Sender<SocketAddr>, usize) -> Res<LineCheck>,
    client: fn(SocketAddr, usize) -> Res<()>,
) -> Res<Outcome> {
    let lines = s.lines;
    let (section, check, ()) = run_pair(
        move |addr_tx| server(addr_tx, lines),
        move |addr| client(addr, lines),
    )?;
    check.verify(lines)?;
    Ok(Outcome {
        section,
        values: vec![rate(lines as f64 / 1e6, section.wall)],
    })
}

fn ping_result(s: &Sizes, section: Res<Section>) -> Res<Outcome> {
    let section = section?;
    Ok(Outcome {
        section,
        values: vec![rate(s.pingpong as f64, section.wall)],
    })
}

/// `conns`: the time until every client is done, and the peak RSS (VmHWM)
/// of the process, which is this run's alone.
fn conns_case(s: &Sizes, run: fn(usize, usize, Mark) -> Res<Section>) -> Res<Outcome> {
    let need = 2 * s.conns as u64 + 256;
    let limit = raise_nofile_limit()?;
    if limit < need {
        return Err(format!(
            "conns needs {need} descriptors; the hard limit is {limit} (raise it or use --conns)"
        )
        .into());
    }
    let base = proc_status_kib("VmHWM")?;
    let section = run(s.conns, s.conn_rounds, Mark::now())?;
    let hwm = proc_status_kib("VmHWM")?;
    eprintln!(
        "    peak RSS {:.1} MiB (at start {:.1} MiB, {:.1} KiB per connection pair)",
        hwm as f64 / 1024.0,
        base as f64 / 1024.0,
        hwm.saturating_sub(base) as f64 / s.conns as f64
    );
    Ok(Outcome {
        section,
        values: vec![section.wall.as_secs_f64() * 1000.0, hwm as f64 / 1024.0],
    })
}

pub const CASES: &[Case] = &[
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
    // conns
    Case {
        workload: "conns",
        imp: "evstream",
        what: "read_cb echo server loop; client loop with a spawned task per connection",
        run: |s| conns_case(s, ev::conns),
    },
    Case {
        workload: "conns",
        imp: "tokio",
        what: "a spawned task per connection on each side's current-thread runtime",
        run: |s| conns_case(s, tk::conns),
    },
    Case {
        workload: "conns",
        imp: "evstream-group2",
        what: "a 2-loop group per side: sharded read_cb echo server; clients round-robin, a task each on its loop",
        run: |s| conns_case(s, group::conns),
    },
    Case {
        workload: "conns",
        imp: "tokio-mt2",
        what: "a multi-thread runtime of 2 workers per side, a spawned task per connection",
        run: |s| conns_case(s, tk::conns_mt2),
    },
    Case {
        workload: "conns",
        imp: "async-io",
        what: "FuturesUnordered of connections in each side's block_on",
        run: |s| conns_case(s, aio::conns),
    },
    Case {
        workload: "conns",
        imp: "std",
        what: "a thread per connection on each side (64 KiB stacks)",
        run: |s| conns_case(s, stdnet::conns),
    },
    // idle: the server in a process of its own
    Case {
        workload: "idle",
        imp: "evstream",
        what: "callbacks: read_cb echo server; client notify_cb takes the echo; the loops hold the connections",
        run: |s| idle::run(s, "evstream"),
    },
    Case {
        workload: "idle",
        imp: "evstream-stream",
        what: "streams: a task per connection on the server loop (read into 64 bytes); client holds AsyncIoStreams",
        run: |s| idle::run(s, "evstream-stream"),
    },
    Case {
        workload: "idle",
        imp: "tokio",
        what: "a task per connection on the server (read into 64 bytes); client holds TcpStreams",
        run: |s| idle::run(s, "tokio"),
    },
    Case {
        workload: "idle",
        imp: "async-io",
        what: "FuturesUnordered of connections in the server's block_on (64-byte buffers); client holds Async<TcpStream>s",
        run: |s| idle::run(s, "async-io"),
    },
    Case {
        workload: "idle",
        imp: "evstream-group2",
        what: "2-loop groups: sharded read_cb echo server; client connections round-robin from 8 source addresses",
        run: |s| idle::run(s, "evstream-group2"),
    },
    // idlescale: idle on 2-loop groups from n/20 to n connections
    Case {
        workload: "idlescale",
        imp: "n/20",
        what: "evstream-group2 idle at n/20 connections",
        run: |s| idle::scale(s, 20),
    },
    Case {
        workload: "idlescale",
        imp: "n/10",
        what: "evstream-group2 idle at n/10 connections",
        run: |s| idle::scale(s, 10),
    },
    Case {
        workload: "idlescale",
        imp: "n/4",
        what: "evstream-group2 idle at n/4 connections",
        run: |s| idle::scale(s, 4),
    },
    Case {
        workload: "idlescale",
        imp: "n/2",
        what: "evstream-group2 idle at n/2 connections",
        run: |s| idle::scale(s, 2),
    },
    Case {
        workload: "idlescale",
        imp: "n",
        what: "evstream-group2 idle at n connections (the descriptor limit)",
        run: |s| idle::scale(s, 1),
    },
    // storm: every connection at once
    Case {
        workload: "storm",
        imp: "evstream-group2",
        what: "GroupServer::bind on 2 loops: one SO_REUSEPORT listener per loop (Linux)",
        run: |s| idle::storm(s, "evstream-group2"),
    },
    Case {
        workload: "storm",
        imp: "evstream-handoff2",
        what: "GroupServer::bind_hand_off on 2 loops: one listener, connections handed round-robin",
        run: |s| idle::storm(s, "evstream-handoff2"),
    },
    Case {
        workload: "storm",
        imp: "tokio-mt2",
        what: "multi-thread runtime of 2 workers: accept loop in block_on, a task per connection",
        run: |s| idle::storm(s, "tokio-mt2"),
    },
    // TLS (feature `tls`): the same rustls, ring provider and configurations
    #[cfg(feature = "tls")]
    Case {
        workload: "tlsbulk",
        imp: "evstream",
        what: "TLS both ends: AsyncRead::read into 64 KiB; sender AsyncWrite::write_all(&[u8])",
        run: |s| {
            tls::bulk_case(
                s,
                |tx| tls::ev::bulk_read(tx, false),
                |a, b| tls::ev::bulk_send(a, b, false),
            )
        },
    },
    #[cfg(feature = "tls")]
    Case {
        workload: "tlsbulk",
        imp: "evstream-zc",
        what: "TLS both ends: AsyncBufRead fill_buf/consume; sender write_all_bytes(Bytes)",
        run: |s| {
            tls::bulk_case(
                s,
                |tx| tls::ev::bulk_read(tx, true),
                |a, b| tls::ev::bulk_send(a, b, true),
            )
        },
    },
    #[cfg(feature = "tls")]
    Case {
        workload: "tlsbulk",
        imp: "tokio",
        what: "tokio-rustls TlsAcceptor/TlsConnector: read into 64 KiB; write_all",
        run: |s| tls::bulk_case(s, tls::tk::bulk_read, tls::tk::bulk_send),
    },
    #[cfg(feature = "tls")]
    Case {
        workload: "tlspingpong",
        imp: "evstream",
        what: "TLS: stream client (write_all + read_exact in block_on); drain-mode read_cb echo server",
        run: |s| tls::ping_case(s, |n| tls::ev::pingpong(n, ev::Ping::Natural)),
    },
    #[cfg(feature = "tls")]
    Case {
        workload: "tlspingpong",
        imp: "evstream-stream",
        what: "TLS: stream client; stream server (read + write_all in a task spawned on its loop)",
        run: |s| tls::ping_case(s, |n| tls::ev::pingpong(n, ev::Ping::Streams)),
    },
    #[cfg(feature = "tls")]
    Case {
        workload: "tlspingpong",
        imp: "evstream-cb",
        what: "TLS: callback client (read_cb sends the next message); read_cb echo server",
        run: |s| tls::ping_case(s, |n| tls::ev::pingpong(n, ev::Ping::Callbacks)),
    },
    #[cfg(feature = "tls")]
    Case {
        workload: "tlspingpong",
        imp: "tokio",
        what: "tokio-rustls: write_all + read_exact; echo server read + write_all",
        run: |s| tls::ping_case(s, tls::tk::pingpong),
    },
];
