//! TouchDesigner's `Peer` in evstream: an OSC-over-TCP server in the role
//! of an oscinDAT, a raw TCP server in the role of a tcpipDAT, and a client
//! that talks to them with the `Peer` calls — `sendOSC`, `sendBytes`,
//! `send` and `close` — as `Socket::send_osc`, `send_bytes`, `send` and
//! `close_peer`.
//!
//! ```text
//! cargo run --example touchdesigner_osc
//! ```
//!
//! The client sends TouchDesigner's own example values,
//! `[1, b'abc', 'apple', [6,7,8], True, None, float('inf')]`, four ways:
//! with the default options, `as_bundle`, `use_64bit_precision`, and
//! standard types only. The OSC server decodes each packet (OSC 1.1
//! framing: SLIP with a double END) and prints it with its type tags and
//! the peer's `peer_addr()`, `hostname()` and `owner()`, the way an oscinDAT
//! callback sees a `peer`. Everything runs on one loop and exits once both
//! connections are closed.

use evstream::prelude::*;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evstream::osc::{OscCodec, OscFraming, OscPacket, OscType, OscValue, SendOscOptions};
use evstream::peer::{SendItem, SocketError};
use evstream::{
    tcp_connect, Event, EventLoop, Owner, ServerOptions, Socket, TcpOptions, TcpServer, Timer,
};

/// OSC over TCP as OSC 1.1 frames it.
const FRAMING: OscFraming = OscFraming::Osc11;

/// The largest OSC packet the server accepts.
const MAX_PACKET: usize = 64 * 1024;

/// Bytes for `sendBytes`, from TouchDesigner's example.
const RAW_TAIL: &[u8; 8] = b"\x01\x00\x02\x00\x03\x00\x00\x00";

/// How a server-side connection looked to the server (TouchDesigner's
/// `peer.address`, `peer.port`, `peer.hostname`, `peer.owner`).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    /// `peer_addr()`.
    pub addr: SocketAddr,
    /// `hostname()`.
    pub hostname: String,
    /// Whether `owner()` is the server that accepted the connection.
    pub owned_by_server: bool,
}

/// What the demo saw, for the test to check.
#[derive(Debug, Clone)]
pub struct Report {
    /// The OSC packets the server decoded, in order.
    pub packets: Vec<OscPacket>,
    /// The peer the OSC server saw.
    pub osc_peer: Option<PeerInfo>,
    /// What each `send_osc` returned (bytes queued).
    pub osc_sent: Vec<usize>,
    /// The code of the `send_osc` refused before sending anything.
    pub refused_osc: Option<SocketError>,
    /// The client's two `close_peer()` results (`true`, then `false`).
    pub close_results: Vec<bool>,
    /// The bytes the raw server received.
    pub raw: Vec<u8>,
    /// What `send_bytes` and `send` returned.
    pub raw_sent: Vec<usize>,
    /// The peer the raw server saw.
    pub raw_peer: Option<PeerInfo>,
}

/// TouchDesigner's example values:
/// `[1, b'abc', 'apple', [6,7,8], True, None, float('inf')]`.
pub fn touchdesigner_values() -> Vec<OscValue> {
    vec![
        1.into(),
        b"abc".to_vec().into(),
        "apple".into(),
        vec![OscValue::from(6), 7.into(), 8.into()].into(),
        true.into(),
        OscValue::None,
        f64::INFINITY.into(),
    ]
}

/// The type tag string of a message's arguments, `,` first, with arrays
/// in brackets (`,ibs[iii]TNI`).
pub fn type_tags(args: &[OscType]) -> String {
    fn push(args: &[OscType], out: &mut String) {
        for arg in args {
            out.push(arg.type_tag());
            if let OscType::Array(items) = arg {
                push(items, out);
                out.push(']');
            }
        }
    }
    let mut tags = String::from(",");
    push(args, &mut tags);
    tags
}

/// Prints a packet as an oscinDAT would list it.
fn print_packet(packet: &OscPacket, indent: &str) {
    match packet {
        OscPacket::Message(msg) => {
            println!(
                "{indent}{} {} {:?}",
                msg.addr,
                type_tags(&msg.args),
                msg.args
            );
        }
        OscPacket::Bundle(bundle) => {
            let when = if bundle.timetag.is_immediately() {
                "immediately".to_string()
            } else {
                format!("{:?}", bundle.timetag)
            };
            println!(
                "{indent}#bundle ({when}), {} elements:",
                bundle.content.len()
            );
            for element in &bundle.content {
                print_packet(element, &format!("{indent}    "));
            }
        }
    }
}

/// TouchDesigner's `peer` members, read from a server-side socket.
fn peer_info(socket: &Socket, server: &str) -> Option<PeerInfo> {
    let addr = socket.peer_addr()?;
    let hostname = socket.hostname().unwrap_or_default();
    let owner = socket.owner();
    let owned_by_server = match &owner {
        Owner::Server(server) => Some(server.local_addr()) == socket.local_addr(),
        _ => false,
    };
    let owner = match owner {
        Owner::Server(server) => format!("the server on {}", server.local_addr()),
        Owner::UnixServer(server) => format!("the server on {}", server.local_path().display()),
        _ => "the loop".to_string(),
    };
    println!(
        "{server}: peer {} port {}, hostname {hostname:?}, owner {owner}",
        addr.ip(),
        addr.port()
    );
    Some(PeerInfo {
        addr,
        hostname,
        owned_by_server,
    })
}

/// What the callbacks fill in.
#[derive(Default)]
struct State {
    report: Option<Report>,
    servers: Vec<TcpServer>,
    closed: usize,
    watchdog: Option<Timer>,
}

type Shared = Arc<Mutex<State>>;

/// Counts a server-side connection closing; after the second, shuts the
/// servers so `run` returns.
fn connection_closed(shared: &Shared) {
    let mut state = shared.lock().unwrap();
    state.closed += 1;
    if state.closed == 2 {
        for server in state.servers.drain(..) {
            server.close();
        }
        if let Some(watchdog) = state.watchdog.take() {
            watchdog.cancel();
        }
    }
}

/// Records into the report.
fn with_report(shared: &Shared, f: impl FnOnce(&mut Report)) {
    f(shared.lock().unwrap().report.as_mut().expect("report"));
}

/// The oscinDAT: one callback per decoded packet.
fn osc_server_options(shared: Shared) -> TcpOptions {
    let closed = shared.clone();
    TcpOptions::new()
        .connect_cb({
            let shared = shared.clone();
            move |socket| {
                let info = peer_info(socket, "osc server");
                with_report(&shared, |report| report.osc_peer = info);
            }
        })
        .on_frame(OscCodec::new(FRAMING, MAX_PACKET), move |socket, packet| {
            let from = socket.peer_addr().map_or("?".into(), |a| a.to_string());
            match packet {
                Ok(packet) => {
                    println!("osc server: from {from}:");
                    print_packet(&packet, "    ");
                    with_report(&shared, |report| report.packets.push(packet));
                }
                // The connection is closed after this callback.
                Err(err) => println!("osc server: bad packet from {from}: {err}"),
            }
        })
        .event_cb(move |socket, event| match event {
            Event::Eof => socket.close(),
            Event::Closed => connection_closed(&closed),
            _ => {}
        })
}

/// The tcpipDAT: raw bytes.
fn raw_server_options(shared: Shared) -> TcpOptions {
    let closed = shared.clone();
    let connected = shared.clone();
    TcpOptions::new()
        .connect_cb(move |socket| {
            let info = peer_info(socket, "raw server");
            with_report(&connected, |report| report.raw_peer = info);
        })
        .read_cb(move |_, bytes| {
            println!("raw server: {:?}", bytes);
            with_report(&shared, |report| report.raw.extend_from_slice(&bytes));
        })
        .event_cb(move |socket, event| match event {
            Event::Eof => socket.close(),
            Event::Closed => connection_closed(&closed),
            _ => {}
        })
}

/// The client's `sendOSC` calls, once connected.
fn send_osc_calls(socket: &Socket, shared: &Shared) -> evstream::Result<()> {
    let values = touchdesigner_values();
    let defaults = SendOscOptions::default();
    let mut sent = Vec::new();

    // n.sendOSC('/abc', vals)
    sent.push(socket.send_osc(&[("/abc", &values[..])], &defaults, FRAMING)?);

    // n.sendOSC('/abc', vals, '/big', [2**40, 0.5], asBundle=True)
    let big = [OscValue::from(1i64 << 40), 0.5.into()];
    sent.push(socket.send_osc(
        &[("/abc", &values[..]), ("/big", &big[..])],
        &defaults.as_bundle(true),
        FRAMING,
    )?);

    // n.sendOSC('/abc', vals, '/precise', [2.5], use64BitPrecision=True)
    let precise = [OscValue::from(2.5)];
    sent.push(socket.send_osc(
        &[("/abc", &values[..]), ("/precise", &precise[..])],
        &defaults.use_64bit_precision(true),
        FRAMING,
    )?);

    // n.sendOSC('/abc', vals, useNonStandardTypes=False)
    let standard = defaults.use_non_standard_types(false);
    sent.push(socket.send_osc(&[("/abc", &values[..])], &standard, FRAMING)?);

    // ...where 2**40 does not fit: refused, nothing sent.
    let err = socket
        .send_osc(&[("/big", &big[..])], &standard, FRAMING)
        .expect_err("2**40 is not a 32-bit int");
    let code = SocketError::from(&err);
    println!("client: sendOSC('/big', [2**40, 0.5], useNonStandardTypes=False): {err} ({code})");

    println!("client: sendOSC queued {sent:?} bytes");
    with_report(shared, |report| {
        report.osc_sent = sent;
        report.refused_osc = Some(code);
    });
    Ok(())
}

/// The client's `sendBytes` and `send` calls, once connected.
fn send_raw_calls(socket: &Socket, shared: &Shared) -> evstream::Result<()> {
    // n.sendBytes('TYPE', 23, 255, 12, 0x34, b'\x01\x00\x02\x00\x03\x00\x00\x00')
    let items: [SendItem<'_>; 6] = [
        "TYPE".into(),
        23.into(),
        255.into(),
        12.into(),
        0x34.into(),
        RAW_TAIL.into(),
    ];
    let bytes = socket.send_bytes(&items)?;
    // n.send('Hello', 'World', terminator='\r\n')
    let text = socket.send(&["Hello", "World"], "\r\n")?;
    println!("client: sendBytes queued {bytes} bytes, send queued {text}");
    with_report(shared, |report| report.raw_sent = vec![bytes, text]);
    Ok(())
}

/// Runs both servers and the client on loopback and returns what the
/// servers got.
pub fn self_test() -> Result<Report, Box<dyn std::error::Error>> {
    let mut ev = EventLoop::new()?;
    let handle = ev.handle();
    let shared: Shared = Arc::new(Mutex::new(State {
        report: Some(Report {
            packets: Vec::new(),
            osc_peer: None,
            osc_sent: Vec::new(),
            refused_osc: None,
            close_results: Vec::new(),
            raw: Vec::new(),
            raw_sent: Vec::new(),
            raw_peer: None,
        }),
        ..State::default()
    }));

    let osc_server = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(osc_server_options(shared.clone())),
    )?;
    let raw_server = TcpServer::bind(
        &handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(raw_server_options(shared.clone())),
    )?;
    println!("osc server on {}", osc_server.local_addr());
    println!("raw server on {}", raw_server.local_addr());

    // Should anything go wrong, stop after a while instead of hanging.
    let timed_out = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let timed_out = timed_out.clone();
        let stop = handle.clone();
        handle.delay(Duration::from_secs(10), move || {
            timed_out.store(true, Ordering::SeqCst);
            stop.stop();
        })
    };
    {
        let mut state = shared.lock().unwrap();
        state.servers = vec![osc_server.clone(), raw_server.clone()];
        state.watchdog = Some(watchdog);
    }

    // The OSC client: sends, then closes (close_peer twice: true, false).
    let client = shared.clone();
    let on_error = shared.clone();
    tcp_connect(
        &handle,
        "127.0.0.1",
        osc_server.local_addr().port(),
        TcpOptions::new()
            .connect_cb(move |socket| {
                println!(
                    "client: connected to {:?} ({:?})",
                    socket.hostname(),
                    socket.peer_addr()
                );
                if let Err(err) = send_osc_calls(socket, &client) {
                    println!("client: sendOSC failed: {err}");
                }
                let first = socket.close_peer();
                let second = socket.close_peer();
                println!("client: close() -> {first}, then {second}");
                with_report(&client, |report| report.close_results = vec![first, second]);
            })
            .event_cb(move |_, event| {
                if let Event::Error(err) = event {
                    println!("client: {err}");
                    connection_closed(&on_error);
                }
            }),
    )?;

    // The raw client.
    let client = shared.clone();
    let on_error = shared.clone();
    tcp_connect(
        &handle,
        "127.0.0.1",
        raw_server.local_addr().port(),
        TcpOptions::new()
            .connect_cb(move |socket| {
                if let Err(err) = send_raw_calls(socket, &client) {
                    println!("client: sendBytes failed: {err}");
                }
                socket.close_peer();
            })
            .event_cb(move |_, event| {
                if let Event::Error(err) = event {
                    println!("raw client: {err}");
                    connection_closed(&on_error);
                }
            }),
    )?;

    ev.run()?;
    if timed_out.load(Ordering::SeqCst) {
        return Err("gave up after 10 seconds".into());
    }
    let report = shared.lock().unwrap().report.take().expect("report");
    Ok(report)
}

#[allow(dead_code)] // `main` is unused when a test includes this file
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = self_test()?;
    println!(
        "done: {} OSC packets and {} raw bytes received",
        report.packets.len(),
        report.raw.len()
    );
    Ok(())
}
