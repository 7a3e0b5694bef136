//! The TLS session filter, client and server over a non-blocking Unix
//! socket pair in one thread, pumped with the non-blocking methods only.
//!
//! Both ends live in this thread and a Unix socket delivers a write to its
//! peer at once, so a round in which neither side makes progress while the
//! test still waits is a deadlock: the pump fails at once instead of
//! waiting (no sleeps, no timings).

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use bytes::Bytes;
use ring::digest;

use super::test_certs::{self as certs, pki};
use super::{TlsClientOptions, TlsEnd, TlsServerOptions, TlsSession};
use crate::buffer::Buffer;
use crate::error::{Error, TlsErrorKind};

pub(super) const BUDGET: usize = 1024 * 1024;
/// More rounds than any test here needs; a stall fails long before.
const MAX_ROUNDS: usize = 10_000_000;

fn socket_pair() -> (UnixStream, UnixStream) {
    let (a, b) = UnixStream::pair().expect("socket pair");
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

pub(super) fn client_options(name: &str) -> TlsClientOptions {
    TlsClientOptions::new(Arc::new(certs::client_config()), name).unwrap()
}

fn server_options() -> TlsServerOptions {
    TlsServerOptions::new(Arc::new(certs::server_config(&pki().server)))
}

/// The socket under a [`Side`]: read and written through `&S`.
pub(super) trait Stream
where
    for<'a> &'a Self: Read + Write,
{
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
}

impl Stream for UnixStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
}

impl Stream for std::net::TcpStream {
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        std::net::TcpStream::shutdown(self, how)
    }
}

/// One end: a session, its socket, what it has to send and what it got.
pub(super) struct Side<S: Stream = UnixStream>
where
    for<'a> &'a S: Read + Write,
{
    pub(super) name: &'static str,
    pub(super) tls: TlsSession,
    pub(super) sock: S,
    pub(super) outgoing: Buffer,
    /// Send close_notify once `outgoing` has gone into the session, then
    /// shut down the socket's write side once it is flushed.
    pub(super) close_when_sent: bool,
    pub(super) close_sent: bool,
    pub(super) fin_sent: bool,
    pub(super) budget: usize,
    pub(super) keep: bool,
    pub(super) received: Vec<u8>,
    pub(super) received_len: usize,
    pub(super) digest: digest::Context,
    pub(super) largest_chunk: usize,
    pub(super) empty_chunks: usize,
    pub(super) handshakes: usize,
    pub(super) socket_eof: bool,
    pub(super) end: Option<TlsEnd>,
    pub(super) error: Option<Error>,
    pub(super) write_error: Option<io::Error>,
    pub(super) released: bool,
}

impl<S: Stream> Side<S>
where
    for<'a> &'a S: Read + Write,
{
    pub(super) fn new(name: &'static str, tls: TlsSession, sock: S) -> Self {
        Side {
            name,
            tls,
            sock,
            outgoing: Buffer::new(),
            close_when_sent: false,
            close_sent: false,
            fin_sent: false,
            budget: BUDGET,
            keep: true,
            received: Vec::new(),
            received_len: 0,
            digest: digest::Context::new(&digest::SHA256),
            largest_chunk: 0,
            empty_chunks: 0,
            handshakes: 0,
            socket_eof: false,
            end: None,
            error: None,
            write_error: None,
            released: false,
        }
    }

    pub(super) fn send(&mut self, data: impl Into<Bytes>) {
        self.outgoing.push(data.into());
    }

    pub(super) fn handshake_done(&self) -> bool {
        self.handshakes > 0
    }

    pub(super) fn finished(&self) -> bool {
        self.end.is_some() || self.error.is_some()
    }

    pub(super) fn error_kind(&self) -> Option<TlsErrorKind> {
        match &self.error {
            Some(Error::Tls { kind, .. }) => Some(*kind),
            _ => None,
        }
    }

    /// Moves plaintext into the session and ciphertext out to the socket
    /// while either makes progress, then reads once. Returns whether
    /// anything moved.
    pub(super) fn step(&mut self) -> bool {
        if self.error.is_some() {
            // As the driver does: the alert rustls queued goes out (best
            // effort), then the socket is released.
            if self.released {
                return false;
            }
            let _ = self.tls.write_to(&self.sock);
            let _ = self.sock.shutdown(Shutdown::Both);
            self.released = true;
            return true;
        }
        let mut progress = false;
        if self.write_error.is_none() {
            loop {
                let mut moved = false;
                if !self.outgoing.is_empty() {
                    let mut slices = [IoSlice::new(&[]); 64];
                    let count = self.outgoing.fill_io_slices(&mut slices);
                    let taken = self
                        .tls
                        .write_plaintext(&slices[..count])
                        .unwrap_or_else(|err| panic!("{}: write_plaintext: {err}", self.name));
                    self.outgoing.drain(taken);
                    moved |= taken > 0;
                }
                if self.outgoing.is_empty() && self.close_when_sent && !self.close_sent {
                    self.tls.send_close_notify();
                    self.close_sent = true;
                    moved = true;
                }
                match self.tls.write_to(&self.sock) {
                    Ok(w) => moved |= w.written > 0,
                    Err(err) => {
                        self.write_error = Some(err);
                        break;
                    }
                }
                progress |= moved;
                if !moved {
                    break;
                }
            }
        }
        if self.close_sent && !self.fin_sent && self.tls.close_notify_flushed() {
            self.sock.shutdown(Shutdown::Write).unwrap();
            self.fin_sent = true;
            progress = true;
        }
        if !self.finished() {
            let mut chunks = Vec::new();
            let outcome = self.tls.read_from(&self.sock, &mut chunks, self.budget);
            assert!(
                outcome.plaintext <= self.budget,
                "{}: {} bytes over a budget of {}",
                self.name,
                outcome.plaintext,
                self.budget
            );
            assert_eq!(
                chunks.iter().map(Bytes::len).sum::<usize>(),
                outcome.plaintext,
                "{}: the chunks hold what the outcome says",
                self.name
            );
            for chunk in &chunks {
                self.empty_chunks += usize::from(chunk.is_empty());
                self.largest_chunk = self.largest_chunk.max(chunk.len());
                self.received_len += chunk.len();
                self.digest.update(chunk);
                if self.keep {
                    self.received.extend_from_slice(chunk);
                }
            }
            if outcome.handshake_completed {
                self.handshakes += 1;
            }
            self.socket_eof |= outcome.socket_eof;
            progress |= outcome.socket_bytes > 0
                || outcome.plaintext > 0
                || outcome.handshake_completed
                || outcome.end.is_some()
                || outcome.error.is_some();
            self.end = outcome.end;
            self.error = outcome.error;
        }
        progress
    }

    pub(super) fn describe(&self) -> String {
        format!(
            "{}: handshakes {}, received {}, outgoing {}, end {:?}, error {:?}, write error {:?}",
            self.name,
            self.handshakes,
            self.received_len,
            self.outgoing.len(),
            self.end,
            self.error,
            self.write_error
        )
    }
}

fn pair_with(client: TlsClientOptions, server: TlsServerOptions) -> (Side, Side) {
    let (a, b) = socket_pair();
    (
        Side::new("client", TlsSession::client(&client).unwrap(), a),
        Side::new("server", TlsSession::server(&server).unwrap(), b),
    )
}

fn pair() -> (Side, Side) {
    pair_with(client_options("localhost"), server_options())
}

/// Pumps both sides until `done`; fails on a round without progress.
fn run(a: &mut Side, b: &mut Side, mut done: impl FnMut(&Side, &Side) -> bool) {
    for _ in 0..MAX_ROUNDS {
        if done(a, b) {
            return;
        }
        let progress = a.step() | b.step();
        if !progress && !done(a, b) {
            panic!("stalled:\n  {}\n  {}", a.describe(), b.describe());
        }
    }
    panic!("no end:\n  {}\n  {}", a.describe(), b.describe());
}

fn handshake(client: &mut Side, server: &mut Side) {
    run(client, server, |c, s| {
        c.handshake_done() && s.handshake_done()
    });
}

/// Runs until both sides have failed or ended; returns their error kinds.
fn run_to_failure(client: &mut Side, server: &mut Side) {
    run(client, server, |c, s| {
        (c.finished() || c.write_error.is_some()) && (s.finished() || s.write_error.is_some())
    });
}

fn tls_kind(err: &Error) -> TlsErrorKind {
    match err {
        Error::Tls { kind, .. } => *kind,
        other => panic!("not a TLS error: {other:?}"),
    }
}

/// Deterministic pseudo-random bytes.
pub(super) fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

#[test]
fn handshake_reports_completion_once_and_what_was_negotiated() {
    let client = client_options("localhost").alpn_protocols(["h2", "http/1.1"]);
    let server = server_options().alpn_protocols(["http/1.1"]);
    let (mut c, mut s) = pair_with(client, server);
    assert!(c.tls.is_handshaking() && s.tls.is_handshaking());
    assert!(
        c.tls.wants_write(),
        "a new client has its ClientHello to send"
    );
    assert!(!s.tls.wants_write(), "a new server waits for the client");
    let before = c.tls.info();
    assert_eq!(before.alpn_protocol(), None);
    assert!(before.peer_certificates().is_empty());
    assert_eq!(before.protocol_version(), None);

    handshake(&mut c, &mut s);
    // A few more rounds: no second completion is reported.
    c.send(&b"ping"[..]);
    run(&mut c, &mut s, |_, s| s.received == b"ping");
    assert_eq!((c.handshakes, s.handshakes), (1, 1));
    assert!(!c.tls.is_handshaking() && !s.tls.is_handshaking());

    let (ci, si) = (c.tls.info(), s.tls.info());
    assert_eq!(ci.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(si.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        si.server_name(),
        Some("localhost"),
        "SNI seen by the server"
    );
    assert_eq!(ci.server_name(), Some("localhost"));
    assert_eq!(
        ci.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        si.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert!(ci.cipher_suite().is_some());
    assert_eq!(ci.cipher_suite(), si.cipher_suite());
    assert_eq!(ci.peer_certificates(), &pki().server.chain[..]);
    assert!(si.peer_certificates().is_empty(), "no client certificate");
}

#[test]
fn no_sni_for_an_ip_address_and_no_alpn_when_none_offered() {
    let (mut c, mut s) = pair_with(client_options("127.0.0.1"), server_options());
    handshake(&mut c, &mut s);
    assert_eq!(s.tls.info().server_name(), None);
    assert_eq!(c.tls.info().server_name(), Some("127.0.0.1"));
    assert_eq!(s.tls.info().alpn_protocol(), None);
}

#[test]
fn alpn_without_a_common_protocol_fails_the_handshake() {
    let client = client_options("localhost").alpn_protocols(["h2"]);
    let server = server_options().alpn_protocols(["http/1.1"]);
    let (mut c, mut s) = pair_with(client, server);
    run_to_failure(&mut c, &mut s);
    assert_eq!(s.error_kind(), Some(TlsErrorKind::HandshakeFailed));
    assert_eq!(c.error_kind(), Some(TlsErrorKind::HandshakeFailed));
}

#[test]
fn plaintext_written_before_the_handshake_is_sent_after_it_in_order() {
    let (mut c, mut s) = pair();
    // Straight into the sessions, before a single byte has moved.
    let first = c.tls.write_plaintext(&[IoSlice::new(b"one ")]).unwrap();
    let second = c
        .tls
        .write_plaintext(&[IoSlice::new(b"two "), IoSlice::new(b"three")])
        .unwrap();
    assert_eq!((first, second), (4, 9));
    assert_eq!(
        s.tls
            .write_plaintext(&[IoSlice::new(b"early reply")])
            .unwrap(),
        11
    );
    run(&mut c, &mut s, |c, s| {
        s.received == b"one two three" && c.received == b"early reply"
    });
}

#[test]
fn sixty_four_mib_each_way_arrive_intact() {
    const MIB: usize = 1024 * 1024;
    let (mut c, mut s) = pair();
    let source = pattern(2 * MIB, 0x5eed);
    let mut expect_c = digest::Context::new(&digest::SHA256);
    let mut expect_s = digest::Context::new(&digest::SHA256);
    for i in 0..64 {
        // Slices of one pattern at shifting offsets: no copies, no period.
        let off = (i * 7919) % MIB;
        let to_server = source.slice(off..off + MIB);
        let to_client = source.slice(MIB - off..2 * MIB - off);
        expect_s.update(&to_server);
        expect_c.update(&to_client);
        c.send(to_server);
        s.send(to_client);
    }
    c.keep = false;
    s.keep = false;
    c.close_when_sent = true;
    s.close_when_sent = true;
    run(&mut c, &mut s, |c, s| c.finished() && s.finished());
    for side in [&c, &s] {
        assert_eq!(side.error.as_ref().map(|e| e.to_string()), None);
        assert_eq!(side.end, Some(TlsEnd::CloseNotify), "{}", side.describe());
        assert_eq!(side.received_len, 64 * MIB);
        assert_eq!(side.empty_chunks, 0);
        // Chunks hold the plaintext of several records, up to the max
        // chunk size.
        assert!(side.largest_chunk > 16 * 1024, "{}", side.largest_chunk);
        assert!(side.largest_chunk <= 128 * 1024, "{}", side.largest_chunk);
    }
    assert_eq!(
        s.digest.clone().finish().as_ref(),
        expect_s.finish().as_ref(),
        "client to server"
    );
    assert_eq!(
        c.digest.clone().finish().as_ref(),
        expect_c.finish().as_ref(),
        "server to client"
    );
}

#[test]
fn the_budget_bounds_each_call_exactly() {
    let (mut c, mut s) = pair();
    handshake(&mut c, &mut s);
    let data = pattern(100_000, 7);
    s.send(data.clone());
    // Flush the server completely before the client reads a byte.
    run(&mut c, &mut s, |_, s| {
        s.outgoing.is_empty() && !s.tls.wants_write()
    });

    let mut got = Vec::new();
    let mut chunks = Vec::new();
    let nothing = c.tls.read_from(&c.sock, &mut chunks, 0);
    assert_eq!((nothing.plaintext, nothing.socket_bytes), (0, 0));
    assert!(nothing.budget_exhausted && chunks.is_empty());
    let mut calls = 0;
    let mut socket_total = 0;
    while got.len() < data.len() {
        let outcome = c.tls.read_from(&c.sock, &mut chunks, 1000);
        assert_eq!(outcome.plaintext, 1000.min(data.len() - got.len()));
        // What is not delivered stays in the socket, bar about one record
        // that the session holds (ciphertext is bounded too; the server's
        // session tickets come first).
        socket_total += outcome.socket_bytes;
        assert!(
            socket_total - got.len() <= 40 * 1024,
            "{socket_total} read for {} delivered",
            got.len()
        );
        if got.len() + outcome.plaintext < data.len() {
            assert!(outcome.budget_exhausted);
        }
        for chunk in chunks.drain(..) {
            got.extend_from_slice(&chunk);
        }
        calls += 1;
        assert!(calls <= 100, "every call delivers its budget");
    }
    assert_eq!(got, data);
    let outcome = c.tls.read_from(&c.sock, &mut chunks, 1000);
    assert_eq!(outcome.plaintext, 0);
    assert!(
        !outcome.budget_exhausted,
        "all delivered: the socket would block"
    );
}

#[test]
fn chunks_stay_within_the_max_chunk_size() {
    let (mut c, mut s) = pair();
    c.tls.set_max_chunk_size(20_000);
    handshake(&mut c, &mut s);
    let data = pattern(1_000_000, 8);
    s.send(data.clone());
    run(&mut c, &mut s, |c, _| c.received_len == data.len());
    assert_eq!(&c.received[..], &data[..]);
    assert!(c.largest_chunk <= 20_000, "{}", c.largest_chunk);
    assert!(c.largest_chunk > 16 * 1024, "{}", c.largest_chunk);
}

#[test]
fn tls12_works_too() {
    let config = rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS12])
        .with_root_certificates(pki().ca.roots())
        .with_no_client_auth();
    let client = TlsClientOptions::new(Arc::new(config), "localhost").unwrap();
    let (mut c, mut s) = pair_with(client, server_options());
    handshake(&mut c, &mut s);
    assert_eq!(
        s.tls.info().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert!(
        matches!(c.tls.refresh_traffic_keys(), Err(Error::InvalidInput(_))),
        "KeyUpdate is TLS 1.3 only"
    );
    c.send(pattern(300_000, 3));
    s.send(&b"reply"[..]);
    c.close_when_sent = true;
    run(&mut c, &mut s, |c, s| {
        s.end.is_some() && c.received == b"reply" && s.received_len == 300_000
    });
    assert_eq!(s.end, Some(TlsEnd::CloseNotify));
    assert_eq!(&s.received[..], &pattern(300_000, 3)[..]);
}

#[test]
fn an_optional_client_certificate_may_be_absent_or_present() {
    let server = TlsServerOptions::new(Arc::new(certs::server_config_client_auth(false)));
    let (mut c, mut s) = pair_with(client_options("localhost"), server.clone());
    handshake(&mut c, &mut s);
    c.send(&b"anonymous"[..]);
    run(&mut c, &mut s, |_, s| s.received == b"anonymous");
    assert!(s.tls.info().peer_certificates().is_empty());

    let client = TlsClientOptions::new(
        Arc::new(certs::client_config_with_cert(&pki().client)),
        "localhost",
    )
    .unwrap();
    let (mut c, mut s) = pair_with(client, server);
    handshake(&mut c, &mut s);
    c.send(&b"known"[..]);
    run(&mut c, &mut s, |_, s| s.received == b"known");
    assert_eq!(s.tls.info().peer_certificates(), &pki().client.chain[..]);
}

#[test]
fn a_required_client_certificate_must_be_present_and_trusted() {
    let server = TlsServerOptions::new(Arc::new(certs::server_config_client_auth(true)));
    let with_cert = |leaf| {
        TlsClientOptions::new(Arc::new(certs::client_config_with_cert(leaf)), "localhost").unwrap()
    };

    let (mut c, mut s) = pair_with(with_cert(&pki().client), server.clone());
    handshake(&mut c, &mut s);
    assert_eq!(s.tls.info().peer_certificates()[0], pki().client.chain[0]);

    // None: the server refuses; a TLS 1.3 client learns it on its next read.
    let (mut c, mut s) = pair_with(client_options("localhost"), server.clone());
    run_to_failure(&mut c, &mut s);
    assert_eq!(s.error_kind(), Some(TlsErrorKind::CertificateInvalid));
    assert_eq!(c.error_kind(), Some(TlsErrorKind::CertificateRejected));
    let io: io::Error = c.error.clone().unwrap().into();
    assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);

    // One from a CA the server does not trust.
    let (mut c, mut s) = pair_with(with_cert(&pki().untrusted_client), server);
    run_to_failure(&mut c, &mut s);
    assert_eq!(s.error_kind(), Some(TlsErrorKind::CertificateInvalid));
    assert_eq!(c.error_kind(), Some(TlsErrorKind::CertificateRejected));
}

/// A client verifying `server_cert` as `name`: the client's error kind and
/// reason, and the server's error kind.
fn bad_server_certificate(
    name: &str,
    server_cert: &certs::Leaf,
) -> (TlsErrorKind, String, TlsErrorKind) {
    let server = TlsServerOptions::new(Arc::new(certs::server_config(server_cert)));
    let (mut c, mut s) = pair_with(client_options(name), server);
    run_to_failure(&mut c, &mut s);
    assert_eq!(c.handshakes, 0, "{}", c.describe());
    let client_error = c.error.clone().expect("client fails");
    let io: io::Error = client_error.clone().into();
    assert_eq!(io.kind(), io::ErrorKind::PermissionDenied);
    let reason = match &client_error {
        Error::Tls { reason, .. } => reason.clone(),
        _ => String::new(),
    };
    (
        tls_kind(&client_error),
        reason,
        tls_kind(s.error.as_ref().expect("server fails")),
    )
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let (client, reason, server) = bad_server_certificate("wrong.example", &pki().server);
    assert_eq!(client, TlsErrorKind::CertificateInvalid);
    assert!(reason.contains("not valid for name"), "{reason}");
    assert_eq!(server, TlsErrorKind::CertificateRejected);
}

#[test]
fn an_untrusted_certificate_is_refused() {
    let (client, reason, server) = bad_server_certificate("localhost", &pki().untrusted_server);
    assert_eq!(client, TlsErrorKind::CertificateInvalid);
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    assert_eq!(server, TlsErrorKind::CertificateRejected);
}

#[test]
fn an_expired_certificate_is_refused() {
    let (client, reason, server) = bad_server_certificate("localhost", &pki().expired_server);
    assert_eq!(client, TlsErrorKind::CertificateInvalid);
    assert!(reason.to_lowercase().contains("expired"), "{reason}");
    assert_eq!(server, TlsErrorKind::CertificateRejected);
}

/// A server session fed `bytes` by a raw peer: its error. Whether rustls
/// answers with an alert depends on the error (it does not for every
/// malformed message); `alert` says whether one is expected.
fn server_error_for(bytes: &[u8], alert: bool) -> Error {
    let (mut raw, sock) = socket_pair();
    let mut s = Side::new(
        "server",
        TlsSession::server(&server_options()).unwrap(),
        sock,
    );
    raw.write_all(bytes).unwrap();
    for _ in 0..3 {
        s.step();
    }
    assert_eq!(s.handshakes, 0);
    assert!(s.received.is_empty());
    // It tells the peer why with an alert, then closes.
    let mut sent = [0u8; 64];
    let n = raw.read(&mut sent).unwrap_or(0);
    if alert {
        assert!(
            n > 0 && sent[0] == 21,
            "an alert record goes out: {:?} ({})",
            &sent[..n],
            s.describe()
        );
    }
    s.error.expect("the server fails")
}

#[test]
fn plaintext_instead_of_a_client_hello_is_not_tls() {
    let err = server_error_for(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", true);
    assert_eq!(tls_kind(&err), TlsErrorKind::NotTls, "{err}");
    assert_eq!(io::Error::from(err).kind(), io::ErrorKind::InvalidData);
}

#[test]
fn garbage_instead_of_a_client_hello_is_refused() {
    let garbage = pattern(600, 99);
    let mut bytes = garbage.to_vec();
    bytes[0] = 0xff;
    assert_eq!(
        tls_kind(&server_error_for(&bytes, true)),
        TlsErrorKind::NotTls
    );
    // A handshake record header with nonsense inside: TLS, but broken.
    let mut bytes = vec![22, 3, 1, 2, 0];
    bytes.extend_from_slice(&garbage[..512]);
    let err = server_error_for(&bytes, false);
    assert_eq!(tls_kind(&err), TlsErrorKind::HandshakeFailed, "{err}");
}

#[test]
fn a_plaintext_server_is_not_tls() {
    let (sock, mut raw) = socket_pair();
    let mut c = Side::new(
        "client",
        TlsSession::client(&client_options("localhost")).unwrap(),
        sock,
    );
    c.step(); // the ClientHello goes out
    let mut hello = vec![0u8; 4096];
    assert!(raw.read(&mut hello).unwrap() > 0);
    raw.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
    c.step();
    assert_eq!(
        c.error_kind(),
        Some(TlsErrorKind::NotTls),
        "{}",
        c.describe()
    );
}

#[test]
fn a_peer_closing_without_close_notify_is_a_truncation() {
    for allow in [false, true] {
        let client = client_options("localhost").allow_truncation(allow);
        let (mut c, mut s) = pair_with(client, server_options());
        handshake(&mut c, &mut s);
        s.send(&b"partial data"[..]);
        run(&mut c, &mut s, |c, _| c.received == b"partial data");
        // The server's socket goes away without a close_notify.
        s.sock.shutdown(Shutdown::Both).unwrap();
        c.step();
        assert!(c.socket_eof);
        assert_eq!(c.received, b"partial data", "data before the end stays");
        if allow {
            assert_eq!(c.end, Some(TlsEnd::Truncated));
            assert!(c.error.is_none());
        } else {
            assert_eq!(c.error_kind(), Some(TlsErrorKind::Truncated));
            assert_eq!(c.end, None);
            let io: io::Error = c.error.clone().unwrap().into();
            assert_eq!(io.kind(), io::ErrorKind::UnexpectedEof);
        }
        // Reported again, reading nothing more.
        let again = c.tls.read_from(&c.sock, &mut Vec::new(), BUDGET);
        assert_eq!(again.socket_bytes, 0);
        assert_eq!(again.end, c.end);
        assert_eq!(again.error.is_some(), c.error.is_some());
    }
}

#[test]
fn eof_in_the_middle_of_a_record_is_a_truncation() {
    let (mut c, mut s) = pair_with(client_options("localhost"), server_options());
    handshake(&mut c, &mut s);
    s.tls
        .write_plaintext(&[IoSlice::new(&[7u8; 5000])])
        .unwrap();
    let mut records = Vec::new();
    s.tls.write_to(&mut records).unwrap();
    // Half of the record, then EOF.
    (&s.sock).write_all(&records[..records.len() / 2]).unwrap();
    s.sock.shutdown(Shutdown::Both).unwrap();
    c.step();
    assert!(c.received.is_empty(), "no plaintext from a partial record");
    assert_eq!(c.error_kind(), Some(TlsErrorKind::Truncated));
}

#[test]
fn close_notify_ends_the_data_cleanly_and_the_other_way_stays_open() {
    let (mut c, mut s) = pair();
    handshake(&mut c, &mut s);
    s.send(&b"last words"[..]);
    s.close_when_sent = true;
    run(&mut c, &mut s, |c, _| c.finished());
    assert_eq!(c.end, Some(TlsEnd::CloseNotify));
    assert!(c.error.is_none());
    assert_eq!(c.received, b"last words");
    assert!(s.fin_sent, "FIN after the close_notify was flushed");
    // Half-close: the client can still send, then close in turn.
    c.send(&b"reply after your close"[..]);
    c.close_when_sent = true;
    run(&mut c, &mut s, |_, s| s.finished());
    assert_eq!(s.end, Some(TlsEnd::CloseNotify));
    assert_eq!(s.received, b"reply after your close");
    // Writing after close_notify is refused.
    assert!(matches!(
        c.tls.write_plaintext(&[IoSlice::new(b"x")]),
        Err(Error::WriteClosed)
    ));
}

#[test]
fn close_before_the_handshake_waits_for_it_and_for_the_early_data() {
    let (mut c, mut s) = pair();
    c.tls
        .write_plaintext(&[IoSlice::new(b"sent before the handshake")])
        .unwrap();
    c.tls.send_close_notify();
    c.close_sent = true;
    assert!(!c.tls.close_notify_flushed());
    run(&mut c, &mut s, |_, s| s.finished());
    assert_eq!(s.received, b"sent before the handshake");
    assert_eq!(s.end, Some(TlsEnd::CloseNotify));
    assert!(c.tls.close_notify_flushed());
}

#[test]
fn eof_during_the_handshake_is_a_failed_handshake() {
    let (sock, raw) = socket_pair();
    let mut c = Side::new(
        "client",
        TlsSession::client(&client_options("localhost")).unwrap(),
        sock,
    );
    c.step();
    let mut hello = vec![0u8; 4096];
    assert!((&raw).read(&mut hello).unwrap() > 0);
    drop(raw);
    c.step();
    assert_eq!(c.error_kind(), Some(TlsErrorKind::HandshakeFailed));
    assert!(
        c.error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("during the TLS handshake"),
        "{}",
        c.describe()
    );
}

#[test]
fn a_peer_stalling_mid_handshake_leaves_the_session_waiting_without_blocking() {
    // The server reads the ClientHello and never answers. Each call returns
    // at once with nothing done: the connect timeout of the connection
    // (which covers the handshake) is what ends this.
    let (sock, mut raw) = socket_pair();
    let mut c = Side::new(
        "client",
        TlsSession::client(&client_options("localhost")).unwrap(),
        sock,
    );
    c.step();
    let mut hello = vec![0u8; 4096];
    assert!(raw.read(&mut hello).unwrap() > 0);
    // Half a ServerHello record: also not enough to go on.
    raw.write_all(&[22, 3, 3, 0, 100, 2, 0]).unwrap();
    for _ in 0..3 {
        let outcome = c.tls.read_from(&c.sock, &mut Vec::new(), BUDGET);
        assert_eq!(outcome.plaintext, 0);
        assert!(outcome.error.is_none() && outcome.end.is_none());
        assert!(!outcome.handshake_completed && !outcome.budget_exhausted);
    }
    assert!(c.tls.is_handshaking());
    assert!(!c.tls.wants_write());
}

#[test]
fn key_updates_in_both_directions_keep_the_data_flowing() {
    let (mut c, mut s) = pair();
    assert!(
        matches!(c.tls.refresh_traffic_keys(), Err(Error::InvalidInput(_))),
        "no KeyUpdate before the handshake"
    );
    handshake(&mut c, &mut s);
    let first = pattern(200_000, 11);
    let second = pattern(200_000, 12);
    c.send(first.clone());
    s.send(first.clone());
    run(&mut c, &mut s, |c, s| {
        c.received_len >= 50_000 && s.received_len >= 50_000
    });
    // Mid-transfer, each side asks for new keys (and the peer answers).
    c.tls.refresh_traffic_keys().unwrap();
    s.tls.refresh_traffic_keys().unwrap();
    c.send(second.clone());
    s.send(second.clone());
    run(&mut c, &mut s, |c, s| {
        c.received_len == 400_000 && s.received_len == 400_000
    });
    let expected = [&first[..], &second[..]].concat();
    assert_eq!(c.received, expected);
    assert_eq!(s.received, expected);
    assert!(c.error.is_none() && s.error.is_none());
}

/// Encrypts TLS 1.3 records with keys taken out of a finished client, to
/// send what rustls never sends: empty application data records.
struct RawTls13Sender {
    key: ring::aead::LessSafeKey,
    iv: [u8; 12],
    seq: u64,
}

impl RawTls13Sender {
    fn from_client(session: TlsSession) -> RawTls13Sender {
        let secrets = session
            .into_connection()
            .dangerous_extract_secrets()
            .expect("secrets");
        let (seq, rustls::ConnectionTrafficSecrets::Aes128Gcm { key, iv }) = secrets.tx else {
            panic!("AES-128-GCM was asked for");
        };
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_128_GCM, key.as_ref()).unwrap();
        RawTls13Sender {
            key: ring::aead::LessSafeKey::new(key),
            iv: iv.as_ref().try_into().unwrap(),
            seq,
        }
    }

    /// One application data record holding `data` (possibly nothing).
    fn record(&mut self, data: &[u8]) -> Vec<u8> {
        let mut inner = data.to_vec();
        inner.push(23); // the real content type: application data
        let len = (inner.len() + 16) as u16;
        let header = [23, 3, 3, (len >> 8) as u8, len as u8];
        let mut nonce = self.iv;
        for (n, s) in nonce[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *n ^= s;
        }
        self.seq += 1;
        self.key
            .seal_in_place_append_tag(
                ring::aead::Nonce::assume_unique_for_key(nonce),
                ring::aead::Aad::from(header),
                &mut inner,
            )
            .unwrap();
        [&header[..], &inner].concat()
    }
}

/// A finished handshake whose client is then replaced by raw records.
fn server_and_raw_client() -> (Side, UnixStream, RawTls13Sender) {
    let provider = rustls::crypto::ring::default_provider();
    let provider = rustls::crypto::CryptoProvider {
        cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
        ..provider
    };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(pki().ca.roots())
        .with_no_client_auth();
    config.enable_secret_extraction = true;
    let client = TlsClientOptions::new(Arc::new(config), "localhost").unwrap();
    let (mut c, mut s) = pair_with(client, server_options());
    handshake(&mut c, &mut s);
    assert!(!c.tls.wants_write());
    let sender = RawTls13Sender::from_client(c.tls);
    (s, c.sock, sender)
}

#[test]
fn empty_records_deliver_nothing_and_break_nothing() {
    let (mut s, raw, mut sender) = server_and_raw_client();
    let mut wire = Vec::new();
    for part in [&b""[..], b"", b"abc", b"", b"def", b"", b""] {
        wire.extend(sender.record(part));
    }
    (&raw).write_all(&wire).unwrap();
    s.step();
    assert_eq!(s.received, b"abcdef");
    assert_eq!(s.empty_chunks, 0);
    assert!(s.error.is_none(), "{}", s.describe());
}

#[test]
fn a_flood_of_empty_records_is_refused() {
    // rustls allows 32 in a row; a peer sending more is misbehaving.
    let (mut s, raw, mut sender) = server_and_raw_client();
    let mut wire = Vec::new();
    for _ in 0..32 {
        wire.extend(sender.record(b""));
    }
    wire.extend(sender.record(b"fine"));
    for _ in 0..33 {
        wire.extend(sender.record(b""));
    }
    (&raw).write_all(&wire).unwrap();
    s.step();
    assert_eq!(s.received, b"fine");
    assert_eq!(
        s.error_kind(),
        Some(TlsErrorKind::Protocol),
        "{}",
        s.describe()
    );
}

#[test]
fn starttls_takes_over_bytes_that_arrived_before_the_upgrade() {
    // Plaintext first, then "STARTTLS" and the ClientHello in one write (a
    // pipelining client): the server reads both at once, consumes the
    // command, and hands what is left to its new session before the socket.
    let (client_sock, server_sock) = socket_pair();
    (&client_sock).write_all(b"EHLO me\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = (&server_sock).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"EHLO me\r\n");
    (&server_sock).write_all(b"250 STARTTLS\r\n").unwrap();
    let n = (&client_sock).read(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"250 STARTTLS\r\n");

    let mut client = TlsSession::client(&client_options("localhost")).unwrap();
    let mut hello = Vec::new();
    client.write_to(&mut hello).unwrap();
    (&client_sock)
        .write_all(&[&b"STARTTLS\r\n"[..], &hello].concat())
        .unwrap();
    let mut c = Side::new("client", client, client_sock);

    let mut raw = vec![0u8; 64 * 1024];
    let n = (&server_sock).read(&mut raw).unwrap();
    assert!(raw[..n].starts_with(b"STARTTLS\r\n"));
    let mut leftover = &raw[10..n];
    assert_eq!(leftover.len(), hello.len());
    let mut server = TlsSession::server(&server_options()).unwrap();
    let mut chunks = Vec::new();
    let outcome = server.read_from(
        io::Read::chain(&mut leftover, &server_sock),
        &mut chunks,
        BUDGET,
    );
    assert_eq!(outcome.socket_bytes, hello.len());
    assert!(leftover.is_empty(), "the session took every early byte");
    assert!(outcome.error.is_none());
    let mut s = Side::new("server", server, server_sock);
    handshake(&mut c, &mut s);
    c.send(&b"MAIL FROM:<me>\r\n"[..]);
    s.send(&b"250 OK\r\n"[..]);
    run(&mut c, &mut s, |c, s| {
        s.received == b"MAIL FROM:<me>\r\n" && c.received == b"250 OK\r\n"
    });
}

#[test]
fn the_buffer_limit_bounds_what_the_session_holds_for_sending() {
    const LIMIT: usize = 32 * 1024;
    let big = pattern(1024 * 1024, 5);
    let client = client_options("localhost").buffer_limit(LIMIT);
    let server = server_options().buffer_limit(LIMIT);
    let (mut c, mut s) = pair_with(client, server);
    // Before the handshake: plaintext waits, up to the limit.
    let taken = c.tls.write_plaintext(&[IoSlice::new(&big)]).unwrap();
    assert_eq!(taken, LIMIT);
    assert_eq!(c.tls.write_plaintext(&[IoSlice::new(&big)]).unwrap(), 0);
    c.send(big.slice(taken..));
    handshake(&mut c, &mut s);
    // After: encrypted records wait, up to the limit (plus one record's
    // overhead), until written out.
    let mut taken = 0;
    loop {
        let n = s
            .tls
            .write_plaintext(&[IoSlice::new(&big[taken..])])
            .unwrap();
        if n == 0 {
            break;
        }
        taken += n;
    }
    assert!(taken <= LIMIT, "{taken}");
    let mut ciphertext = Vec::new();
    s.tls.write_to(&mut ciphertext).unwrap();
    assert!(ciphertext.len() <= LIMIT + 256, "{}", ciphertext.len());
    (&s.sock).write_all(&ciphertext).unwrap();
    s.send(big.slice(taken..));
    // And everything still arrives, both ways.
    run(&mut c, &mut s, |c, s| {
        s.received_len == big.len() && c.received_len == big.len()
    });
    assert_eq!(&s.received[..], &big[..]);
    assert_eq!(&c.received[..], &big[..]);
}

#[test]
fn options_that_cannot_work_are_refused() {
    assert!(matches!(
        TlsClientOptions::new(Arc::new(certs::client_config()), "not a name!"),
        Err(Error::InvalidInput(_))
    ));
    let zero = client_options("localhost").buffer_limit(0);
    assert!(matches!(
        TlsSession::client(&zero),
        Err(Error::InvalidInput(_))
    ));
    let zero = server_options().buffer_limit(0);
    assert!(matches!(
        TlsSession::server(&zero),
        Err(Error::InvalidInput(_))
    ));
}

#[cfg(feature = "tls-webpki-roots")]
#[test]
fn webpki_roots_trust_the_public_cas_and_not_the_test_one() {
    let options = TlsClientOptions::with_webpki_roots("localhost").unwrap();
    let (mut c, mut s) = pair_with(options, server_options());
    run_to_failure(&mut c, &mut s);
    assert_eq!(c.error_kind(), Some(TlsErrorKind::CertificateInvalid));
    assert!(
        c.error
            .as_ref()
            .unwrap()
            .to_string()
            .contains("UnknownIssuer"),
        "{}",
        c.describe()
    );
}

/// A socket that fails.
struct Failing(io::ErrorKind);

impl Read for Failing {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(self.0.into())
    }
}

impl Write for Failing {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(self.0.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn socket_errors_keep_their_meaning() {
    let mut session = TlsSession::client(&client_options("localhost")).unwrap();
    let outcome = session.read_from(
        Failing(io::ErrorKind::ConnectionReset),
        &mut Vec::new(),
        BUDGET,
    );
    assert!(matches!(outcome.error, Some(Error::Reset)), "{outcome:?}");
    assert!(matches!(
        session.write_plaintext(&[IoSlice::new(b"x")]),
        Err(Error::Reset)
    ));
    let err = session
        .write_to(Failing(io::ErrorKind::BrokenPipe))
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    // Interrupted is retried, WouldBlock is "not now".
    let mut session = TlsSession::client(&client_options("localhost")).unwrap();
    let w = session
        .write_to(Failing(io::ErrorKind::WouldBlock))
        .unwrap();
    assert!(!w.flushed && w.written == 0);
    let r = session.read_from(Failing(io::ErrorKind::WouldBlock), &mut Vec::new(), 1);
    assert!(r.error.is_none() && r.socket_bytes == 0);
}
