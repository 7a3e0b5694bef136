//! The TLS session filter: one rustls connection and the state around it,
//! driven without blocking by whoever owns the socket.
//!
//! [`TlsSession`] knows nothing of the loop or the connection: it reads
//! ciphertext from any non-blocking `Read`, hands plaintext back as `Bytes`
//! chunks, takes plaintext to encrypt, and writes ciphertext to any
//! non-blocking `Write`. The connection driver calls it from the loop
//! thread, where it would otherwise read from and write to the socket.
//!
//! # How the driver uses it
//!
//! * **Open** → make the session when the socket is connected (client) or
//!   accepted (server) and [`write_to`](TlsSession::write_to) at once (the
//!   ClientHello). Report `Connected` only when `read_from` says
//!   `handshake_completed`, and keep the connect timer armed until then: the
//!   connect timeout covers the handshake, and a peer that stalls in it
//!   meets that timeout (the session itself never waits). Keep
//!   [`info`](TlsSession::info) for the application at that point.
//! * **Readable socket** → [`read_from`](TlsSession::read_from) with the room
//!   left under the input limit as the budget (plaintext is what the input
//!   buffer, its watermarks and `max_buffer_size` count); append the chunks;
//!   `budget_exhausted` is the plaintext path's "hit the limit" (suspend
//!   reading until the application drains, then call again even without a
//!   readiness event: up to one record of plaintext may wait in the
//!   session); `socket_bytes > 0` is read progress for the idle timer. Then,
//!   since reading may have produced handshake messages, session tickets,
//!   a KeyUpdate answer or an alert, [`write_to`](TlsSession::write_to) if
//!   [`wants_write`](TlsSession::wants_write), and wait for writability while
//!   it is not `flushed`. `read_from` reads until the socket would block, so
//!   it needs no edge-triggering care; to skip the final `EAGAIN` read, pass
//!   a reader that reports `WouldBlock` after a short read (unless the
//!   poller reported a hang-up).
//! * **Flush** → move output plaintext in with
//!   [`write_plaintext`](TlsSession::write_plaintext) (the output buffer's
//!   `fill_io_slices`; it takes what fits), drain what it took from the
//!   output buffer (that is the plaintext "sent" count and the write
//!   watermark's measure), then [`write_to`](TlsSession::write_to); repeat
//!   while either makes progress. Output is pending while the output buffer
//!   is not empty *or* the session `wants_write`. Ciphertext held by the
//!   session is bounded by the options' `buffer_limit`.
//! * **Close** (graceful) → once the output buffer has gone into the
//!   session, [`send_close_notify`](TlsSession::send_close_notify), flush
//!   until [`close_notify_flushed`](TlsSession::close_notify_flushed), then
//!   shut down the socket's write side (FIN) and linger as for plaintext.
//!   Closing during the handshake is fine: the alert waits for the handshake
//!   (and the early plaintext) to go first. **Abort** → drop the session:
//!   no close_notify, the reset tells the peer.
//! * **End of input** → `end` is the plaintext EOF (`Event::Eof`; the write
//!   side stays usable); `error` fails the connection: call `write_to` once
//!   (best effort: rustls has queued the alert that tells the peer why),
//!   then release the socket. Plaintext delivered before either stays in the
//!   input buffer.
//! * **STARTTLS** (upgrade in place) → on the loop thread: first flush the
//!   output buffer to the socket in plaintext (bytes written before the
//!   upgrade go out in clear, before the ClientHello, in order); then make
//!   the session and route every later read and flush through it. Input
//!   bytes the application has not read at the upgrade arrived after its
//!   last plaintext message, so they are the peer's first TLS bytes (a
//!   pipelined ClientHello): take them out of the input buffer and pass
//!   `(&taken[..]).chain(&*socket)` to `read_from` (as libevent's filter
//!   does with its underlying buffer). A server that must refuse plaintext
//!   pipelined after its STARTTLS command (the command-injection problem)
//!   checks that the input buffer is empty before it upgrades.

use std::io::{self, IoSlice, Read, Write};

use bytes::{Bytes, BytesMut};
use rustls::{ClientConnection, Connection, ServerConnection};

use super::{TlsClientOptions, TlsInfo, TlsServerOptions};
use crate::error::{Error, Result, TlsErrorKind};

/// The smallest plaintext block; one TLS record holds at most 16 KiB.
const MIN_BLOCK: usize = 16 * 1024;

/// The largest plaintext block by default (the connection's default read
/// chunk size).
const DEFAULT_MAX_BLOCK: usize = 128 * 1024;

/// How the peer's data ended, when it ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsEnd {
    /// The peer sent `close_notify`: every byte it sent has arrived. The
    /// socket may still be open; nothing more is read from it.
    CloseNotify,
    /// The socket reached EOF without `close_notify` and the options allow
    /// truncation.
    Truncated,
}

/// What one [`TlsSession::read_from`] call did.
#[derive(Debug, Default)]
pub(crate) struct TlsReadOutcome {
    /// Plaintext bytes appended to `out` (at most the budget).
    pub(crate) plaintext: usize,
    /// Ciphertext bytes read from the socket.
    pub(crate) socket_bytes: usize,
    /// The handshake completed during this call (reported once per session).
    /// Plaintext written before it is now encrypted and waiting in the
    /// session: the caller should `write_to`.
    pub(crate) handshake_completed: bool,
    /// The socket returned EOF during this call.
    pub(crate) socket_eof: bool,
    /// The budget was used up before the socket would block: there may be
    /// more plaintext in the session or the socket. Call again once there is
    /// room; the socket's readiness will not necessarily say so.
    pub(crate) budget_exhausted: bool,
    /// The peer's data has ended cleanly: no more plaintext will come.
    pub(crate) end: Option<TlsEnd>,
    /// The session failed (TLS error, socket error, or a forbidden
    /// truncation). No more plaintext will come.
    pub(crate) error: Option<Error>,
}

/// What one [`TlsSession::write_to`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TlsWriteOutcome {
    /// Ciphertext bytes the socket took.
    pub(crate) written: usize,
    /// Nothing is left to send: the session has no ciphertext pending (it
    /// may still hold plaintext written before the handshake completed).
    pub(crate) flushed: bool,
}

/// Records what the socket gives rustls: how much, and the peer's very
/// first byte (to tell a peer that does not speak TLS from a broken one).
struct Tap<'a, R> {
    inner: R,
    first_byte: &'a mut Option<u8>,
    read: &'a mut usize,
}

impl<R: Read> Read for Tap<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.first_byte.is_none() {
            *self.first_byte = Some(buf[0]);
        }
        *self.read += n;
        Ok(n)
    }
}

/// A TLS session (client or server) between a non-blocking socket and the
/// plaintext buffers of a connection.
///
/// Loop-agnostic and non-blocking: every method returns as soon as the
/// socket would block. Not thread-safe by itself; the driver owns it.
pub(crate) struct TlsSession {
    conn: Connection,
    /// Client side: the name the certificate is verified against.
    server_name: Option<String>,
    allow_truncation: bool,
    /// Decrypted plaintext is copied into the spare capacity of this block,
    /// then split off and frozen, like the driver's read block.
    block: BytesMut,
    next_block: usize,
    max_block: usize,
    /// The first ciphertext byte the peer sent.
    first_byte: Option<u8>,
    handshake_reported: bool,
    /// `send_close_notify` was called.
    close_requested: bool,
    /// The close_notify alert is queued in rustls (after the handshake).
    close_queued: bool,
    socket_eof: bool,
    end: Option<TlsEnd>,
    error: Option<Error>,
}

impl TlsSession {
    /// A client session, ready to send its ClientHello (`wants_write` is
    /// true at once).
    pub(crate) fn client(options: &TlsClientOptions) -> Result<Self> {
        check_buffer_limit(options.buffer_limit)?;
        let conn = ClientConnection::new(options.config.clone(), options.server_name.clone())
            .map_err(|err| Error::InvalidInput(format!("TLS client configuration: {err}")))?;
        let server_name = Some(options.server_name.to_str().into_owned());
        Ok(Self::new(
            conn.into(),
            server_name,
            options.allow_truncation,
            options.buffer_limit,
        ))
    }

    /// A server session, waiting for the client's ClientHello.
    pub(crate) fn server(options: &TlsServerOptions) -> Result<Self> {
        check_buffer_limit(options.buffer_limit)?;
        let conn = ServerConnection::new(options.config.clone())
            .map_err(|err| Error::InvalidInput(format!("TLS server configuration: {err}")))?;
        Ok(Self::new(
            conn.into(),
            None,
            options.allow_truncation,
            options.buffer_limit,
        ))
    }

    fn new(
        mut conn: Connection,
        server_name: Option<String>,
        allow_truncation: bool,
        buffer_limit: usize,
    ) -> Self {
        conn.set_buffer_limit(Some(buffer_limit));
        TlsSession {
            conn,
            server_name,
            allow_truncation,
            block: BytesMut::new(),
            next_block: MIN_BLOCK,
            max_block: DEFAULT_MAX_BLOCK,
            first_byte: None,
            handshake_reported: false,
            close_requested: false,
            close_queued: false,
            socket_eof: false,
            end: None,
            error: None,
        }
    }

    /// The largest plaintext chunk `read_from` appends (the connection's
    /// read chunk size; at least 16 KiB, one record).
    pub(crate) fn set_max_chunk_size(&mut self, size: usize) {
        self.max_block = size.max(MIN_BLOCK);
        self.next_block = self.next_block.min(self.max_block);
    }

    /// Reads ciphertext from `socket` until it would block (or reaches EOF),
    /// decrypts it, and appends the plaintext to `out` as `Bytes` chunks.
    ///
    /// * `socket` is any non-blocking reader; `WouldBlock` means "nothing
    ///   more for now" and `Ok(0)` means EOF. Pass `&mut reader` to keep a
    ///   stateful reader: for STARTTLS, `(&buffered[..]).chain(&socket)` lets
    ///   the session take ciphertext that arrived before the upgrade (a
    ///   pipelined ClientHello) ahead of the socket's.
    /// * `budget` bounds the plaintext appended by this call: at most
    ///   `budget` bytes, exactly. Handshake and other non-data records do not
    ///   count. Once the budget is used up the socket is not read any more
    ///   and `budget_exhausted` is set; decrypted plaintext that did not fit
    ///   waits in the session (at most about one record, 16 KiB) and comes
    ///   first in the next call. A budget of 0 reads nothing.
    /// * The chunks are as large as the data allows (up to the max chunk
    ///   size): the plaintext of several records goes into one chunk, copied
    ///   once from rustls into a reused block that is never zero-filled.
    /// * `handshake_completed` is set in the call whose records complete
    ///   the handshake, once per session.
    /// * The end of the peer's data is reported after every plaintext byte
    ///   before it has been delivered, in `end` when clean (`close_notify`,
    ///   or EOF without it when truncation is allowed) and in `error`
    ///   otherwise: EOF without `close_notify` is
    ///   [`TlsErrorKind::Truncated`], EOF during the handshake is
    ///   [`TlsErrorKind::HandshakeFailed`], a rustls error maps to the kind
    ///   described at [`TlsErrorKind`], a socket error to its usual variant.
    ///   Once ended or failed, every later call reports the same again and
    ///   reads nothing.
    pub(crate) fn read_from(
        &mut self,
        mut socket: impl Read,
        out: &mut Vec<Bytes>,
        budget: usize,
    ) -> TlsReadOutcome {
        let mut outcome = TlsReadOutcome::default();
        let mut left = budget;
        loop {
            self.take_plaintext(&mut left, &mut outcome.plaintext, out);
            if self.plaintext_waiting() {
                // Plaintext before the end or the error goes first.
                outcome.budget_exhausted = true;
                break;
            }
            if self.error.is_some() || self.end.is_some() {
                break;
            }
            if self.socket_eof {
                self.on_socket_eof();
                continue;
            }
            if left == 0 {
                outcome.budget_exhausted = true;
                break;
            }
            let was_handshaking = self.conn.is_handshaking();
            let mut tap = Tap {
                inner: &mut socket,
                first_byte: &mut self.first_byte,
                read: &mut outcome.socket_bytes,
            };
            match self.conn.read_tls(&mut tap) {
                Ok(0) => {
                    self.socket_eof = true;
                    outcome.socket_eof = true;
                }
                Ok(_) => {}
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    // A socket error, or rustls refusing an oversized
                    // handshake message (`InvalidData`).
                    self.error = Some(if err.kind() == io::ErrorKind::InvalidData {
                        self.tls_error(map_kind(None, was_handshaking), err.to_string())
                    } else {
                        Error::from(err)
                    });
                    continue;
                }
            }
            match self.conn.process_new_packets() {
                Ok(state) => {
                    if state.peer_has_closed() && self.end.is_none() {
                        self.end = Some(TlsEnd::CloseNotify);
                    }
                }
                Err(err) => {
                    let kind = self.classify(&err, was_handshaking);
                    self.error = Some(self.tls_error(kind, err.to_string()));
                }
            }
            if !self.handshake_reported && !self.conn.is_handshaking() && self.error.is_none() {
                self.handshake_reported = true;
                outcome.handshake_completed = true;
                if self.close_requested && !self.close_queued {
                    self.conn.send_close_notify();
                    self.close_queued = true;
                }
            }
        }
        if !self.block.is_empty() {
            out.push(self.block.split().freeze());
        }
        if outcome.plaintext > 0 && outcome.plaintext < self.next_block / 8 {
            // Small reads: the next block may be smaller, so an idle
            // connection holds less.
            self.next_block = (self.next_block / 2).max(MIN_BLOCK);
        }
        if !outcome.budget_exhausted {
            outcome.end = self.end;
            outcome.error = self.error.clone();
        }
        outcome
    }

    /// Whether decrypted plaintext is waiting in rustls.
    fn plaintext_waiting(&mut self) -> bool {
        matches!(self.conn.reader().into_first_chunk(), Ok(chunk) if !chunk.is_empty())
    }

    /// Moves decrypted plaintext, at most `left` bytes, from rustls into the
    /// block; a full block goes to `out` and a new one is started.
    fn take_plaintext(&mut self, left: &mut usize, taken: &mut usize, out: &mut Vec<Bytes>) {
        use std::io::BufRead;
        while *left > 0 {
            let mut reader = self.conn.reader();
            let chunk = match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => chunk,
                _ => return,
            };
            let mut room = self.block.capacity() - self.block.len();
            if room == 0 {
                if !self.block.is_empty() {
                    out.push(self.block.split().freeze());
                    // This call filled a block: the next may be larger.
                    self.next_block = (self.next_block * 2).min(self.max_block);
                }
                // Reclaims the old allocation when every chunk cut from it
                // has been dropped.
                self.block.reserve(self.next_block);
                room = self.block.capacity() - self.block.len();
            }
            let n = chunk.len().min(*left).min(room);
            self.block.extend_from_slice(&chunk[..n]);
            reader.consume(n);
            *left -= n;
            *taken += n;
        }
    }

    /// The socket reached EOF: the peer's data ended cleanly or not.
    fn on_socket_eof(&mut self) {
        if self.end.is_some() || self.error.is_some() {
            return;
        }
        if self.conn.is_handshaking() {
            self.error = Some(self.tls_error(
                TlsErrorKind::HandshakeFailed,
                "the peer closed the connection during the TLS handshake".into(),
            ));
        } else if self.allow_truncation {
            self.end = Some(TlsEnd::Truncated);
        } else {
            self.error = Some(self.tls_error(
                TlsErrorKind::Truncated,
                "the peer closed the connection without sending close_notify".into(),
            ));
        }
    }

    fn tls_error(&self, kind: TlsErrorKind, reason: String) -> Error {
        Error::Tls { kind, reason }
    }

    /// The kind of a rustls error, with what the session saw of the peer.
    fn classify(&self, err: &rustls::Error, was_handshaking: bool) -> TlsErrorKind {
        let not_tls = was_handshaking
            && matches!(err, rustls::Error::InvalidMessage(_))
            // A TLS record starts with its content type, 20 to 24.
            && self.first_byte.is_some_and(|b| !(20..=24).contains(&b));
        if not_tls {
            return TlsErrorKind::NotTls;
        }
        map_kind(Some(err), was_handshaking)
    }

    /// Takes plaintext to send, as much as the session's buffer limit
    /// allows, and returns how many bytes it took (0 when full: write
    /// ciphertext out with [`write_to`](Self::write_to), then try again).
    ///
    /// Taken bytes belong to the session and are sent in order, after
    /// everything taken before. Before the handshake completes they wait,
    /// unencrypted, in the session (up to the buffer limit) and are
    /// encrypted the moment it completes; after, they are encrypted at once
    /// into records (at most 16 KiB of plaintext each) that wait for
    /// `write_to`. The slices are taken as one stream, so many small slices
    /// still make full-size records.
    ///
    /// Fails with [`Error::WriteClosed`] after
    /// [`send_close_notify`](Self::send_close_notify), and with the session's
    /// error once it has failed.
    pub(crate) fn write_plaintext(&mut self, data: &[IoSlice<'_>]) -> Result<usize> {
        if let Some(err) = &self.error {
            return Err(err.clone());
        }
        if self.close_requested {
            return Err(Error::WriteClosed);
        }
        let written = self.conn.writer().write_vectored(data);
        written.map_err(|err| {
            let handshaking = self.conn.is_handshaking();
            let err = match err
                .get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
            {
                Some(tls) => self.tls_error(map_kind(Some(tls), handshaking), tls.to_string()),
                None => Error::from(err),
            };
            // Failed for good: no close_notify after this.
            self.error = Some(err.clone());
            err
        })
    }

    /// Writes pending ciphertext (handshake messages, data records, alerts,
    /// `close_notify`) to `socket` until none is left or the socket would
    /// block. `flushed` says whether everything went. Socket errors are
    /// returned as they are (`WouldBlock` and `Interrupted` never are); a
    /// socket that accepts 0 bytes is `WriteZero`.
    pub(crate) fn write_to(&mut self, mut socket: impl Write) -> io::Result<TlsWriteOutcome> {
        let mut written = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(TlsWriteOutcome {
                        written,
                        flushed: false,
                    })
                }
                Err(err) => return Err(err),
            }
        }
        Ok(TlsWriteOutcome {
            written,
            flushed: true,
        })
    }

    /// Whether ciphertext is waiting to be written to the socket. True at
    /// once for a new client (its ClientHello), and after any call that
    /// produced records: `read_from` (handshake answers, session tickets,
    /// KeyUpdate answers, alerts), `write_plaintext`, `send_close_notify`.
    pub(crate) fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Whether the handshake is still under way (including a session that
    /// failed during it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Ends this side's data: queues `close_notify` after every plaintext
    /// byte taken so far. Before the handshake completes it is deferred
    /// until it does, so plaintext written early is still sent first. After
    /// this, `write_plaintext` fails with [`Error::WriteClosed`]. Idempotent;
    /// does nothing on a failed session.
    pub(crate) fn send_close_notify(&mut self) {
        if self.close_requested || self.error.is_some() {
            return;
        }
        self.close_requested = true;
        if !self.conn.is_handshaking() {
            self.conn.send_close_notify();
            self.close_queued = true;
        }
    }

    /// Whether `close_notify` has been handed to the socket: the write side
    /// can be shut down (FIN) now.
    pub(crate) fn close_notify_flushed(&self) -> bool {
        self.close_queued && !self.conn.wants_write()
    }

    /// Starts a TLS 1.3 KeyUpdate: new keys for what this side sends, and a
    /// request that the peer update its own (the records go out with the
    /// next `write_to`). Fails before the handshake completes or on TLS 1.2
    /// with [`Error::InvalidInput`]. rustls updates keys by itself when the
    /// cipher's limits require it; this is for long-lived connections that
    /// want fresh keys sooner.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn refresh_traffic_keys(&mut self) -> Result<()> {
        self.conn
            .refresh_traffic_keys()
            .map_err(|err| Error::InvalidInput(format!("TLS key update: {err}")))
    }

    /// What the handshake negotiated (empty fields before it completes).
    pub(crate) fn info(&self) -> TlsInfo {
        let server_name = match &self.conn {
            Connection::Server(server) => server.server_name().map(str::to_owned),
            Connection::Client(_) => self.server_name.clone(),
        };
        TlsInfo {
            alpn_protocol: self.conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name,
            peer_certificates: self.conn.peer_certificates().unwrap_or_default().to_vec(),
            protocol_version: self.conn.protocol_version(),
            cipher_suite: self.conn.negotiated_cipher_suite().map(|s| s.suite()),
        }
    }
}

#[cfg(test)]
impl TlsSession {
    /// The rustls connection, for tests that need to act below the session.
    pub(crate) fn into_connection(self) -> Connection {
        self.conn
    }
}

fn check_buffer_limit(limit: usize) -> Result<()> {
    if limit == 0 {
        return Err(Error::InvalidInput(
            "the TLS buffer limit must be at least 1 byte".into(),
        ));
    }
    Ok(())
}

/// The kind of a rustls error (`None`: a record rustls could not even
/// frame), given whether the handshake was under way.
fn map_kind(err: Option<&rustls::Error>, handshaking: bool) -> TlsErrorKind {
    use rustls::AlertDescription as A;
    use rustls::Error as E;
    let otherwise = if handshaking {
        TlsErrorKind::HandshakeFailed
    } else {
        TlsErrorKind::Protocol
    };
    match err {
        Some(E::InvalidCertificate(_) | E::NoCertificatesPresented)
        | Some(E::InvalidCertRevocationList(_)) => TlsErrorKind::CertificateInvalid,
        Some(E::AlertReceived(
            A::BadCertificate
            | A::UnsupportedCertificate
            | A::CertificateRevoked
            | A::CertificateExpired
            | A::CertificateUnknown
            | A::UnknownCA
            | A::AccessDenied
            | A::CertificateRequired
            | A::NoCertificate
            | A::BadCertificateStatusResponse
            | A::BadCertificateHashValue
            | A::CertificateUnobtainable,
        )) => TlsErrorKind::CertificateRejected,
        Some(E::PeerIncompatible(_) | E::NoApplicationProtocol) => TlsErrorKind::HandshakeFailed,
        _ => otherwise,
    }
}
