//! OSC over TCP against a third-party implementation: python-osc 1.10.2,
//! driven through `scripts/osc_peer.py` (seed 004: TouchDesigner's
//! `sendOSC` and OSC receive, both OSC-over-TCP framings).
//!
//! * evstream → python-osc: `Socket::send_osc` and `Framed<OscCodec>` send
//!   to python-osc's `ThreadingOSCTCPServer` (mode "1.0" for
//!   [`OscFraming::Osc10`], "1.1" for [`OscFraming::Osc11`]); the script
//!   prints every packet as python-osc decoded it, as JSON, and every
//!   argument, tag, time tag and nesting level is checked here.
//! * python-osc → evstream: python-osc's `TCPClient` sends scripted
//!   messages and a nested bundle to an `on_frame(OscCodec)` server and to a
//!   `Framed<OscCodec>` stream; every decoded argument is checked.
//!
//! Interop uses the tags python-osc 1.10 parses: `i h f d s b r m t T F N`
//! and arrays `[ ]`. python-osc's deviations from the OSC 1.0/1.1 specs,
//! found while writing these tests (none of them affects the cases here):
//!
//! * its `OscMessageBuilder` cannot write `t` (time tag) arguments although
//!   its parser reads them: the script assembles that message by hand;
//! * its parser skips tags it does not know (`I` Infinitum, `c`, `S`, …)
//!   with a logged warning, so TouchDesigner's `float('inf')` (sent as `I`)
//!   silently disappears from the arguments on the python side;
//! * it cannot build an empty blob (`BuildError`), which OSC allows (it
//!   parses one, which is checked below); `build_msg(addr, "")` sends no
//!   argument instead of an empty string;
//! * it infers `h` for -2³¹ (`bit_length() > 31`) and always `f` for a
//!   Python float, so `i`/`d` must be given explicitly;
//! * bundle time tags come back as float Unix seconds (0 for "immediately"),
//!   which loses precision below about 2⁻²² s, and are written with
//!   `int(seconds * 2**32)` (truncated); `t` arguments come back as
//!   `(datetime, fraction)`;
//! * its OSC 1.1 server splits the stream on `END END` only, so it needs
//!   the double-END SLIP framing evstream sends, and a read boundary right
//!   after a leading END yields an empty "packet" the script ignores;
//! * its default `Dispatcher` silently drops packets it cannot parse and
//!   sleeps until a bundle's time tag: the script reports every packet
//!   itself.
//!
//! The Python peer is a subprocess with bounded waits on both sides, killed
//! when its guard is dropped (also on a failed assertion).

mod common;

use evstream::prelude::*;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::{LoopThread, WAIT};
use evstream::codec::Framed;
use evstream::osc::{
    OscBundle, OscCodec, OscColor, OscFraming, OscMessage, OscMidi, OscPacket, OscTime, OscType,
    OscValue, SendOscOptions,
};
use evstream::{AsyncIoStream, ServerOptions, TcpOptions, TcpServer};
use futures::{SinkExt, StreamExt};

const MAX_PACKET: usize = 1 << 20;

// ---------------------------------------------------------------------------
// python-osc and the peer script
// ---------------------------------------------------------------------------

/// Makes sure python-osc is importable, installing 1.10.2 with pip once if
/// it is not; fails the test (never skips it) if that does not work.
fn require_python_osc() {
    static READY: OnceLock<Result<String, String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let version = || {
            Command::new("python3")
                .args([
                    "-c",
                    "import pythonosc, importlib.metadata as m\n\
                     try: print(m.version('python-osc'))\n\
                     except Exception: print('unknown')",
                ])
                .stdin(Stdio::null())
                .output()
                .ok()
                .filter(|out| out.status.success())
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        };
        if let Some(found) = version() {
            return Ok(found);
        }
        let install = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "python-osc==1.10.2"])
            .stdin(Stdio::null())
            .output();
        version().ok_or_else(|| {
            format!(
                "python-osc is not importable by python3, and \
                 `python3 -m pip install python-osc==1.10.2` did not fix it: {:?}",
                install.map(|out| String::from_utf8_lossy(&out.stderr).into_owned())
            )
        })
    });
    match ready {
        Ok(version) if version != "1.10.2" => {
            eprintln!("note: python-osc {version} found; these tests were written against 1.10.2")
        }
        Ok(_) => {}
        Err(why) => panic!("{why}"),
    }
}

/// The `scripts/osc_peer.py` subprocess: its stdout lines arrive on a
/// channel; it is killed when dropped.
struct PyPeer {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    what: String,
}

impl PyPeer {
    fn spawn(args: &[&str]) -> PyPeer {
        require_python_osc();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/osc_peer.py");
        let mut child = Command::new("python3")
            .arg("-u")
            .arg(script)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start python3 scripts/osc_peer.py");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        PyPeer {
            child,
            lines,
            stderr,
            what: format!("osc_peer.py {}", args.join(" ")),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next JSON line the script printed.
    fn next(&self, expecting: &str) -> Json {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => Json::parse(&line)
                .unwrap_or_else(|err| panic!("{}: bad JSON {line:?}: {err}", self.what)),
            Err(RecvTimeoutError::Timeout) => panic!(
                "{}: no {expecting} within {WAIT:?}; stderr: {}",
                self.what,
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => panic!(
                "{}: exited before printing {expecting}; stderr: {}",
                self.what,
                self.stderr()
            ),
        }
    }

    /// Waits (bounded) for the script to end and returns how it ended.
    fn finish(mut self) -> ExitStatus {
        match self.lines.recv_timeout(WAIT) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("{}: unexpected output {line:?}", self.what),
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: still running after {WAIT:?}", self.what)
            }
        }
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{}: closed its stdout but did not exit",
                self.what
            );
            thread::yield_now();
        }
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `body` on its own thread and fails (instead of hanging) if it is not
/// done within twice [`WAIT`]; a panic in `body` is re-raised here (and the
/// Python peer it owns is killed by its guard).
fn bounded(what: &str, body: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        body();
        let _ = tx.send(());
    });
    match rx.recv_timeout(WAIT * 2) {
        Err(RecvTimeoutError::Timeout) => panic!("{what}: not done within {:?}", WAIT * 2),
        Ok(()) | Err(RecvTimeoutError::Disconnected) => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

fn mode(framing: OscFraming) -> &'static str {
    match framing {
        OscFraming::Osc10 => "1.0",
        OscFraming::Osc11 => "1.1",
    }
}

/// Drives `future` on this thread; the test thread is bounded by the
/// peer's waits, and the future only waits on a live connection.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    futures_lite::future::block_on(future)
}

// ---------------------------------------------------------------------------
// A small JSON reader for the script's output (no JSON crate in the
// dev-dependencies)
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(text: &str) -> Result<Json, String> {
        let mut parser = JsonParser {
            bytes: text.as_bytes(),
            at: 0,
        };
        let value = parser.value()?;
        parser.skip_ws();
        if parser.at != parser.bytes.len() {
            return Err(format!("trailing text at {}", parser.at));
        }
        Ok(value)
    }

    fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn field(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("no {key:?} in {self:?}"))
    }

    fn int(&self) -> i128 {
        match self {
            Json::Int(v) => *v,
            other => panic!("not an integer: {other:?}"),
        }
    }

    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
}

struct JsonParser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl JsonParser<'_> {
    fn skip_ws(&mut self) {
        while self.at < self.bytes.len() && self.bytes[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", byte as char, self.at))
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at {}", self.at))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.skip_ws();
        match self.peek().ok_or("unexpected end")? {
            b'n' => self.literal("null", Json::Null),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'"' => self.string().map(Json::Str),
            b'[' => {
                self.at += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Json::Arr(items));
                }
                loop {
                    items.push(self.value()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Arr(items));
                        }
                        _ => return Err(format!("bad array at {}", self.at)),
                    }
                }
            }
            b'{' => {
                self.at += 1;
                let mut fields = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Json::Obj(fields));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    self.expect(b':')?;
                    fields.push((key, self.value()?));
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Obj(fields));
                        }
                        _ => return Err(format!("bad object at {}", self.at)),
                    }
                }
            }
            _ => self.number(),
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.at;
        while let Some(b) = self.peek() {
            if b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E') {
                self.at += 1;
            } else {
                break;
            }
        }
        let text = std::str::from_utf8(&self.bytes[start..self.at]).unwrap();
        if text.contains(['.', 'e', 'E']) {
            text.parse()
                .map(Json::Float)
                .map_err(|e| format!("{text}: {e}"))
        } else {
            text.parse()
                .map(Json::Int)
                .map_err(|e| format!("{text}: {e}"))
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let text = self
            .bytes
            .get(self.at..self.at + 4)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or("short \\u escape")?;
        self.at += 4;
        u32::from_str_radix(text, 16).map_err(|e| e.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let b = self.peek().ok_or("unterminated string")?;
            self.at += 1;
            match b {
                b'"' => return Ok(out),
                b'\\' => {
                    let escape = self.peek().ok_or("unterminated escape")?;
                    self.at += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut code = self.hex4()?;
                            if (0xD800..0xDC00).contains(&code) {
                                if !self.bytes[self.at..].starts_with(b"\\u") {
                                    return Err("lone surrogate".into());
                                }
                                self.at += 2;
                                let low = self.hex4()?;
                                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                            }
                            out.push(char::from_u32(code).ok_or("bad code point")?);
                        }
                        other => return Err(format!("bad escape {:?}", other as char)),
                    }
                }
                _ => {
                    // Copy a whole UTF-8 sequence.
                    let start = self.at - 1;
                    let mut end = self.at;
                    while end < self.bytes.len() && (self.bytes[end] & 0xC0) == 0x80 {
                        end += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.bytes[start..end]).unwrap());
                    self.at = end;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// What python-osc should print for a packet
// ---------------------------------------------------------------------------

fn obj(fields: Vec<(&str, Json)>) -> Json {
    Json::Obj(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tags(args: &[OscType]) -> String {
    let mut out = String::new();
    for arg in args {
        match arg {
            OscType::Array(elements) => {
                out.push('[');
                out.push_str(&tags(elements));
                out.push(']');
            }
            other => out.push(other.type_tag()),
        }
    }
    out
}

/// The script's description of `arg` as python-osc should decode it
/// (floats by their exact bits).
fn describe_arg(arg: &OscType) -> Json {
    let t = |tag: &str| ("t", Json::Str(tag.into()));
    match arg {
        OscType::Int(v) => obj(vec![t("i"), ("v", Json::Int((*v).into()))]),
        OscType::Long(v) => obj(vec![t("h"), ("v", Json::Int((*v).into()))]),
        OscType::Float(v) => obj(vec![
            t("f"),
            ("bits", Json::Str(hex(&v.to_bits().to_be_bytes()))),
        ]),
        OscType::Double(v) => obj(vec![
            t("d"),
            ("bits", Json::Str(hex(&v.to_bits().to_be_bytes()))),
        ]),
        OscType::String(s) => obj(vec![t("s"), ("v", Json::Str(s.clone()))]),
        OscType::Blob(b) => obj(vec![t("b"), ("v", Json::Str(hex(b)))]),
        OscType::Color(c) => obj(vec![
            t("r"),
            (
                "v",
                Json::Int(u32::from_be_bytes([c.r, c.g, c.b, c.a]).into()),
            ),
        ]),
        OscType::Midi(m) => obj(vec![
            t("m"),
            (
                "v",
                Json::Arr(
                    [m.port, m.status, m.data1, m.data2]
                        .iter()
                        .map(|&b| Json::Int(b.into()))
                        .collect(),
                ),
            ),
        ]),
        OscType::Time(time) => obj(vec![
            t("t"),
            ("seconds", Json::Int(time.seconds.into())),
            ("fraction", Json::Int(time.fraction.into())),
        ]),
        OscType::Bool(true) => obj(vec![t("T"), ("v", Json::Bool(true))]),
        OscType::Bool(false) => obj(vec![t("F"), ("v", Json::Bool(false))]),
        OscType::Nil => obj(vec![t("N"), ("v", Json::Null)]),
        OscType::Array(items) => obj(vec![
            t("["),
            ("v", Json::Arr(items.iter().map(describe_arg).collect())),
        ]),
        other => panic!("{other:?} is not a type python-osc 1.10 parses"),
    }
}

fn describe(packet: &OscPacket) -> Json {
    match packet {
        OscPacket::Message(msg) => obj(vec![
            ("kind", Json::Str("message".into())),
            ("address", Json::Str(msg.addr.clone())),
            ("tags", Json::Str(format!(",{}", tags(&msg.args)))),
            (
                "args",
                Json::Arr(msg.args.iter().map(describe_arg).collect()),
            ),
        ]),
        OscPacket::Bundle(bundle) => obj(vec![
            ("kind", Json::Str("bundle".into())),
            ("seconds", Json::Int(bundle.timetag.seconds.into())),
            ("fraction", Json::Int(bundle.timetag.fraction.into())),
            (
                "elements",
                Json::Arr(bundle.content.iter().map(describe).collect()),
            ),
        ]),
    }
}

/// Every field of `expected` is in `actual` with the same value (`actual`
/// may say more: python-osc's own float values, the packet length…).
fn assert_json_matches(expected: &Json, actual: &Json, path: &str) {
    match (expected, actual) {
        (Json::Obj(fields), Json::Obj(_)) => {
            for (key, value) in fields {
                let Some(found) = actual.get(key) else {
                    panic!("{path}: no {key:?} in {actual:?}");
                };
                assert_json_matches(value, found, &format!("{path}.{key}"));
            }
        }
        (Json::Arr(want), Json::Arr(got)) => {
            assert_eq!(
                want.len(),
                got.len(),
                "{path}: {} items expected, python-osc printed {got:?}",
                want.len()
            );
            for (i, (w, g)) in want.iter().zip(got).enumerate() {
                assert_json_matches(w, g, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "{path}"),
    }
}

// ---------------------------------------------------------------------------
// The packets
// ---------------------------------------------------------------------------

/// A message with every interop tag, for `Framed<OscCodec>`.
fn all_tags_message() -> OscPacket {
    let mut blob: Vec<u8> = (0..=255u8).collect();
    blob.extend_from_slice(&[0xC0, 0xDB, 0xC0]);
    OscMessage::new(
        "/evstream/all",
        vec![
            OscType::Int(i32::MIN),
            OscType::Int(i32::MAX),
            OscType::Long(i64::MIN),
            OscType::Float(-0.5),
            OscType::Float(0.1),
            OscType::Float(f32::INFINITY),
            OscType::Double(f64::MAX),
            OscType::Double(-0.0),
            OscType::String("héllo ✓".into()),
            OscType::String(String::new()),
            OscType::String("four".into()),
            OscType::Blob(Bytes::new()),
            OscType::Blob(Bytes::from(blob)),
            OscType::Color(OscColor {
                r: 1,
                g: 2,
                b: 3,
                a: 4,
            }),
            OscType::Midi(OscMidi {
                port: 1,
                status: 0x90,
                data1: 60,
                data2: 127,
            }),
            OscType::Time(OscTime {
                seconds: 3_908_988_800,
                fraction: 0x8000_0000,
            }),
            OscType::Time(OscTime::IMMEDIATELY),
            OscType::Bool(true),
            OscType::Bool(false),
            OscType::Nil,
            OscType::Array(vec![
                OscType::Int(1),
                OscType::Array(vec![OscType::String("deep".into()), OscType::Nil]),
                OscType::Double(0.5),
            ]),
            OscType::Array(vec![]),
        ],
    )
    .into()
}

/// A bundle with a bundle inside it (and an empty one inside that).
fn nested_bundle() -> OscPacket {
    OscBundle::new(
        OscTime {
            seconds: 3_908_988_800,
            fraction: 0x4000_0000,
        },
        vec![
            OscMessage::new("/b/1", vec![OscType::Int(1)]).into(),
            OscBundle::new(
                OscTime::IMMEDIATELY,
                vec![
                    OscMessage::new("/b/2", vec![OscType::String("inner".into())]).into(),
                    OscBundle::new(OscTime::IMMEDIATELY, vec![]).into(),
                ],
            )
            .into(),
            OscMessage::new("/b/3", vec![]).into(),
        ],
    )
    .into()
}

/// TouchDesigner-style values covering i h f s b T F N and a list.
fn td_values(with_long: bool) -> Vec<OscValue> {
    let mut values = vec![1.into()];
    if with_long {
        values.push(OscValue::from(1i64 << 40));
    }
    values.extend([
        2.5f64.into(),
        "apple".into(),
        b"abc".to_vec().into(),
        true.into(),
        false.into(),
        OscValue::None,
        vec![OscValue::from(6), 7.into(), 8.into()].into(),
    ]);
    values
}

/// What `scripts/osc_peer.py client` sends, as evstream must decode it.
fn python_client_packets() -> Vec<OscPacket> {
    vec![
        OscMessage::new(
            "/interop/ints",
            vec![
                OscType::Int(0),
                OscType::Int(-1),
                OscType::Int(i32::MAX),
                OscType::Int(i32::MIN),
                OscType::Long(1 << 40),
                OscType::Long(-(1 << 62)),
                OscType::Long(i64::MAX),
            ],
        )
        .into(),
        OscMessage::new(
            "/interop/floats",
            vec![
                OscType::Float(1.5),
                OscType::Float(0.1),
                OscType::Float(f32::INFINITY),
                OscType::Double(0.1),
                OscType::Double(-1e300),
                OscType::Double(f64::NEG_INFINITY),
            ],
        )
        .into(),
        OscMessage::new(
            "/interop/strings",
            vec![
                OscType::String("apple".into()),
                OscType::String(String::new()),
                OscType::String("abc".into()),
                OscType::String("four".into()),
                OscType::String("héllo ✓".into()),
                OscType::Blob(Bytes::from_static(b"abc")),
                OscType::Blob(Bytes::from((0..=255u8).collect::<Vec<u8>>())),
                OscType::Blob(Bytes::from_static(b"\xc0\xdb\xc0")),
            ],
        )
        .into(),
        OscMessage::new(
            "/interop/misc",
            vec![
                OscType::Color(OscColor {
                    r: 0x11,
                    g: 0x22,
                    b: 0x33,
                    a: 0x44,
                }),
                OscType::Midi(OscMidi {
                    port: 0,
                    status: 0x90,
                    data1: 60,
                    data2: 100,
                }),
                OscType::Bool(true),
                OscType::Bool(false),
                OscType::Nil,
                OscType::Array(vec![
                    OscType::Int(6),
                    OscType::Array(vec![OscType::String("x".into()), OscType::Bool(false)]),
                    OscType::Double(8.5),
                ]),
                OscType::Array(vec![]),
            ],
        )
        .into(),
        OscMessage::new(
            "/interop/time",
            vec![
                OscType::Time(OscTime {
                    seconds: 3_908_988_800,
                    fraction: 0x8000_0000,
                }),
                OscType::Bool(true),
                OscType::Time(OscTime::IMMEDIATELY),
            ],
        )
        .into(),
        OscMessage::new("/interop/empty", vec![]).into(),
        OscBundle::new(
            // python-osc's OscBundleBuilder(1700000000.5).
            OscTime {
                seconds: 3_908_988_800,
                fraction: 0x8000_0000,
            },
            vec![
                OscMessage::new(
                    "/bundle/a",
                    vec![OscType::Int(1), OscType::String("x".into())],
                )
                .into(),
                OscBundle::new(
                    OscTime::IMMEDIATELY,
                    vec![
                        OscMessage::new("/bundle/b", vec![OscType::Bool(true), OscType::Nil])
                            .into(),
                    ],
                )
                .into(),
                OscMessage::new("/bundle/c", vec![OscType::Float(2.0)]).into(),
            ],
        )
        .into(),
    ]
}

// ---------------------------------------------------------------------------
// evstream -> python-osc
// ---------------------------------------------------------------------------

fn evstream_to_python(framing: OscFraming) {
    let lt = LoopThread::start();
    let count = 7;
    let python = PyPeer::spawn(&[
        "server",
        "--mode",
        mode(framing),
        "--count",
        &count.to_string(),
        "--timeout",
        "20",
    ]);
    let hello = python.next("the port");
    assert_eq!(hello.field("mode").str(), mode(framing));
    let port = u16::try_from(hello.field("port").int()).expect("a port");

    let stream = block_on(AsyncIoStream::connect_on(
        &lt.handle,
        ("127.0.0.1", port),
        TcpOptions::new(),
    ))
    .expect("connect to python-osc");
    let socket = stream.socket().clone();

    // TouchDesigner's sendOSC under three option sets, and asBundle.
    let td = [
        ("/td/default", SendOscOptions::new(), true, ",ihfsbTFN[iii]"),
        (
            "/td/64bit",
            SendOscOptions::new().use_64bit_precision(true),
            true,
            ",hhdsbTFN[hhh]",
        ),
        (
            "/td/standard",
            SendOscOptions::new().use_non_standard_types(false),
            false,
            ",ifsbiiiiii",
        ),
    ];
    let mut expected = Vec::new();
    for (addr, options, with_long, tag_string) in &td {
        let values = td_values(*with_long);
        let sent = socket
            .send_osc(&[(*addr, values.clone())], options, framing)
            .expect("send_osc");
        assert!(sent > 0);
        let packet = evstream::osc::osc_packets(&[(*addr, values)], options)
            .unwrap()
            .remove(0);
        expected.push((packet, Some(*tag_string)));
    }
    let pairs = [
        ("/td/a", vec![OscValue::from(1)]),
        ("/td/b", vec![OscValue::from("x")]),
    ];
    let bundled = SendOscOptions::new().as_bundle(true);
    socket.send_osc(&pairs, &bundled, framing).unwrap();
    expected.push((
        OscBundle::new(
            OscTime::IMMEDIATELY,
            vec![
                OscMessage::new("/td/a", vec![OscType::Int(1)]).into(),
                OscMessage::new("/td/b", vec![OscType::String("x".into())]).into(),
            ],
        )
        .into(),
        None,
    ));

    // The codec as a Sink, on the same connection, after those.
    let mut framed = Framed::new(stream, OscCodec::new(framing, MAX_PACKET));
    let empty: OscPacket = OscMessage::new("/evstream/empty", vec![]).into();
    for packet in [all_tags_message(), nested_bundle(), empty] {
        block_on(framed.send(packet.clone())).expect("Framed::send");
        expected.push((packet, None));
    }
    assert_eq!(expected.len(), count);
    // Flush and FIN: python-osc's handler ends at EOF.
    block_on(SinkExt::<OscPacket>::close(&mut framed)).expect("close");

    for (i, (packet, tag_string)) in expected.iter().enumerate() {
        let what = format!("{framing:?} packet {i}");
        let got = python.next(&what);
        assert_json_matches(&describe(packet), &got, &what);
        if let Some(tag_string) = tag_string {
            assert_eq!(got.field("tags").str(), *tag_string, "{what}");
        }
        let wire_len = evstream::osc::encode(packet).unwrap().len();
        assert_eq!(got.field("len").int(), wire_len as i128, "{what}: length");
        if let OscPacket::Bundle(bundle) = packet {
            // python-osc's own reading of the time tag: 0 for
            // "immediately", else float Unix seconds.
            let expected = if bundle.timetag.is_immediately() {
                Json::Int(0)
            } else {
                let at = SystemTime::try_from(bundle.timetag).unwrap();
                Json::Float(at.duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
            };
            assert_eq!(got.field("py_timestamp"), &expected, "{what}: time tag");
        }
    }
    assert_eq!(
        python.next("done"),
        obj(vec![
            ("event", Json::Str("done".into())),
            ("received", Json::Int(count as i128)),
        ])
    );
    let status = python.finish();
    assert!(status.success(), "python-osc server exited with {status}");
}

/// Seed 004 sendOSC and the OSC codec against python-osc's TCP server in
/// OSC 1.0 mode (int32 size prefix): every argument python-osc decodes is
/// the one sent, for send_osc (each option set, asBundle) and Framed sends
/// (every interop tag, a nested bundle, an empty message).
#[test]
fn evstream_sends_to_python_osc_1_0() {
    bounded("1.0", || evstream_to_python(OscFraming::Osc10));
}

/// As `evstream_sends_to_python_osc_1_0`, in OSC 1.1 mode (SLIP with double
/// END), with blob bytes that need SLIP escaping.
#[test]
fn evstream_sends_to_python_osc_1_1() {
    bounded("1.1", || evstream_to_python(OscFraming::Osc11));
}

/// python-osc's reading of bundle time tags (seed 004 "bundles with
/// timetags"): "immediately" is its 0, and a real time tag is the Unix time
/// evstream's `SystemTime` conversion gives.
#[test]
fn python_osc_reads_evstream_bundle_time_tags_as_the_same_instant() {
    bounded(
        "python_osc_reads_evstream_bundle_time_tags_as_the_same_instant",
        || {
            let lt = LoopThread::start();
            let python = PyPeer::spawn(&["server", "--mode", "1.0", "--count", "2"]);
            let port = u16::try_from(python.next("the port").field("port").int()).unwrap();
            let stream = block_on(AsyncIoStream::connect_on(
                &lt.handle,
                ("127.0.0.1", port),
                TcpOptions::new(),
            ))
            .unwrap();
            let mut framed = Framed::new(stream, OscCodec::new(OscFraming::Osc10, MAX_PACKET));
            let when = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
            let ping = || vec![OscPacket::from(OscMessage::new("/t", vec![]))];
            for timetag in [OscTime::from(when), OscTime::IMMEDIATELY] {
                block_on(framed.send(OscPacket::from(OscBundle::new(timetag, ping())))).unwrap();
            }
            let timed = python.next("timed bundle");
            assert_eq!(timed.field("seconds").int(), 3_908_988_800);
            assert_eq!(timed.field("fraction").int(), 1 << 30);
            let unix = when.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
            assert_eq!(timed.field("py_timestamp"), &Json::Float(unix));
            let immediate = python.next("immediate bundle");
            assert_eq!(immediate.field("seconds").int(), 0);
            assert_eq!(immediate.field("fraction").int(), 1);
            assert_eq!(immediate.field("py_timestamp"), &Json::Int(0));
            python.next("done");
            assert!(python.finish().success());
        },
    );
}

// ---------------------------------------------------------------------------
// python-osc -> evstream
// ---------------------------------------------------------------------------

fn check_python_client_packets(framing: OscFraming, mut next: impl FnMut(&str) -> OscPacket) {
    for (i, want) in python_client_packets().iter().enumerate() {
        let what = format!("{framing:?} packet {i} from python-osc");
        let got = next(&what);
        if let (OscPacket::Message(w), OscPacket::Message(g)) = (want, &got) {
            assert_eq!(g.addr, w.addr, "{what}");
            assert_eq!(tags(&g.args), tags(&w.args), "{what}: tags of {}", w.addr);
            for (j, (ga, wa)) in g.args.iter().zip(&w.args).enumerate() {
                assert_eq!(ga, wa, "{what}: argument {j} of {}", w.addr);
            }
        }
        assert_eq!(&got, want, "{what}");
        if let OscPacket::Bundle(bundle) = &got {
            // python-osc wrote 1700000000.5 as its time tag.
            let at = SystemTime::try_from(bundle.timetag).unwrap();
            assert_eq!(at, UNIX_EPOCH + Duration::from_millis(1_700_000_000_500));
        }
    }
}

fn python_to_on_frame_server(framing: OscFraming) {
    let lt = LoopThread::start();
    let (tx, rx) = mpsc::channel();
    let options =
        TcpOptions::new().on_frame(OscCodec::new(framing, MAX_PACKET), move |_, packet| {
            let _ = tx.send(packet);
        });
    let server = TcpServer::bind(
        &lt.handle,
        "127.0.0.1:0",
        ServerOptions::new().connection(options),
    )
    .unwrap();
    let port = server.local_addr().port().to_string();
    let python = PyPeer::spawn(&["client", "--mode", mode(framing), "--port", &port]);
    check_python_client_packets(framing, |what| match rx.recv_timeout(WAIT) {
        Ok(Ok(packet)) => packet,
        Ok(Err(err)) => panic!("{what}: evstream could not decode it: {err}"),
        Err(_) => panic!(
            "{what}: not received within {WAIT:?}; python stderr: {}",
            python.stderr()
        ),
    });
    let sent = python.next("sent");
    assert_eq!(sent.field("count").int(), 7);
    assert!(python.finish().success());
    assert!(rx.try_recv().is_err(), "more packets than python-osc sent");
    server.close();
}

/// python-osc's TCPClient in mode "1.0" → an on_frame(OscCodec) server
/// (seed 004 "OSC receive"): every message, tag, argument and the nested
/// bundle decode exactly.
#[test]
fn python_osc_1_0_client_to_on_frame_server() {
    bounded("1.0", || python_to_on_frame_server(OscFraming::Osc10));
}

/// As `python_osc_1_0_client_to_on_frame_server`, in mode "1.1" (SLIP).
#[test]
fn python_osc_1_1_client_to_on_frame_server() {
    bounded("1.1", || python_to_on_frame_server(OscFraming::Osc11));
}

/// python-osc's TCPClient (both modes) → a `Framed<OscCodec>` stream on an
/// accepted connection: the same packets, then the end of the stream.
#[test]
fn python_osc_client_to_framed_stream() {
    bounded("python_osc_client_to_framed_stream", || {
        let lt = LoopThread::start();
        for framing in [OscFraming::Osc10, OscFraming::Osc11] {
            let (tx, rx) = mpsc::channel();
            let server = TcpServer::bind(
                &lt.handle,
                "127.0.0.1:0",
                ServerOptions::new().connection(TcpOptions::new().stream_connect_cb(
                    move |stream| {
                        let _ = tx.send(stream);
                    },
                )),
            )
            .unwrap();
            let port = server.local_addr().port().to_string();
            let python = PyPeer::spawn(&["client", "--mode", mode(framing), "--port", &port]);
            let stream = common::recv(&rx, "accepted stream");
            let mut framed = Framed::new(stream, OscCodec::new(framing, MAX_PACKET));
            // python-osc closes after sending, so every wait below ends.
            check_python_client_packets(framing, |what| match block_on(framed.next()) {
                Some(Ok(packet)) => packet,
                Some(Err(err)) => panic!("{what}: evstream could not decode it: {err}"),
                None => panic!("{what}: stream ended; python stderr: {}", python.stderr()),
            });
            assert!(block_on(framed.next()).is_none(), "the stream ends at EOF");
            assert_eq!(python.next("sent").field("count").int(), 7);
            assert!(python.finish().success());
            server.close();
        }
    });
}
