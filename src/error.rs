//! The one error type of evstream, and the events a connection reports.
//!
//! Every fallible call returns [`Error`]. It is `Clone` because one failure of a
//! connection is reported to several parties at once (the `event_cb`, every
//! pending stream operation, later reads), and it converts into
//! [`std::io::Error`] with the [`ErrorKind`](std::io::ErrorKind) a std or
//! futures consumer expects, so it passes unchanged through `Read`/`Write`.

use std::fmt;
use std::io;
use std::sync::Arc;

/// A specialised `Result` whose error is evstream's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which direction of a connection an idle timeout was counting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Waiting for bytes from the peer.
    Read,
    /// Waiting for the kernel to accept queued output.
    Write,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Read => "read",
            Direction::Write => "write",
        })
    }
}

/// What ran out of time, in [`Error::TimedOut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// Connection setup (resolution and every connect attempt) took longer
    /// than the connect timeout.
    Connect,
    /// No byte arrived within the read timeout while the loop was waiting.
    Read,
    /// The kernel accepted no queued byte within the write timeout.
    Write,
    /// The kernel itself gave up (`ETIMEDOUT`: connect attempts or
    /// retransmissions went unanswered).
    Network,
    /// A whole read (a line, a frame, `read_bytes`…) did not complete
    /// within the connection's read deadline, however steadily bytes
    /// trickled in (nginx's `client_header_timeout`).
    ReadDeadline,
}

impl From<Direction> for TimeoutKind {
    fn from(direction: Direction) -> Self {
        match direction {
            Direction::Read => TimeoutKind::Read,
            Direction::Write => TimeoutKind::Write,
        }
    }
}

impl fmt::Display for TimeoutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutKind::Connect => "connect",
            TimeoutKind::Read => "read",
            TimeoutKind::Write => "write",
            TimeoutKind::Network => "network",
            TimeoutKind::ReadDeadline => "read deadline",
        })
    }
}

/// Which configured limit [`Error::LimitExceeded`] refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// The output buffer's `max_buffer_size`.
    OutputBuffer,
    /// The input buffer's `max_buffer_size`.
    InputBuffer,
    /// A line or frame longer than the reader's `max_bytes`.
    FrameLength,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::OutputBuffer => "output buffer",
            Limit::InputBuffer => "input buffer",
            Limit::FrameLength => "frame length",
        })
    }
}

/// What kind of TLS failure [`Error::Tls`] reports.
///
/// The kinds say what the application can do about it: a certificate problem
/// is a trust decision (fix the certificate, the roots or the name), a
/// truncation may be an attack or a careless peer, anything else is a peer
/// that does not speak (this) TLS. The exact reason, as rustls gave it, is in
/// the error's `reason`.
///
/// | kind | `io::ErrorKind` | why |
/// |---|---|---|
/// | `CertificateInvalid` | `PermissionDenied` | we refused to trust the peer |
/// | `CertificateRejected` | `PermissionDenied` | the peer refused to trust us |
/// | `HandshakeFailed` | `InvalidData` | no agreement; like tokio-rustls and native-tls |
/// | `NotTls` | `InvalidData` | the peer's bytes are not TLS at all |
/// | `Protocol` | `InvalidData` | a record or message that breaks the protocol |
/// | `Truncated` | `UnexpectedEof` | the stream ended early, as rustls reports it |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsErrorKind {
    /// This side refused the peer's certificate: untrusted issuer, expired
    /// or not yet valid, not valid for the name asked for, revoked, badly
    /// signed, or missing when one is required.
    CertificateInvalid,
    /// The peer refused this side's certificate (or its lack of one): it
    /// sent a certificate alert such as `bad_certificate`, `unknown_ca`,
    /// `certificate_expired`, `certificate_required` or `access_denied`.
    /// A TLS 1.3 client may learn this only after its own handshake has
    /// completed, on its next read.
    CertificateRejected,
    /// The handshake could not complete for another reason: no protocol
    /// version, cipher suite or ALPN protocol in common, a `handshake_failure`
    /// alert from the peer, a malformed handshake message, or the peer
    /// closing the connection during the handshake.
    HandshakeFailed,
    /// The peer does not speak TLS: its first bytes are not a TLS record (a
    /// plaintext protocol, or garbage).
    NotTls,
    /// The peer broke the protocol after the handshake: a record that does
    /// not decrypt or parse, an unexpected message, a fatal alert.
    Protocol,
    /// The connection ended without the peer's `close_notify`, so the data
    /// may have been cut short by an attacker. Applications whose protocol
    /// marks its own ends (HTTP with a length, for instance) may allow it.
    Truncated,
}

impl TlsErrorKind {
    /// The [`io::ErrorKind`] an [`Error::Tls`] of this kind converts to.
    pub fn io_kind(self) -> io::ErrorKind {
        match self {
            TlsErrorKind::CertificateInvalid | TlsErrorKind::CertificateRejected => {
                io::ErrorKind::PermissionDenied
            }
            TlsErrorKind::HandshakeFailed | TlsErrorKind::NotTls | TlsErrorKind::Protocol => {
                io::ErrorKind::InvalidData
            }
            TlsErrorKind::Truncated => io::ErrorKind::UnexpectedEof,
        }
    }
}

impl fmt::Display for TlsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsErrorKind::CertificateInvalid => "peer certificate invalid",
            TlsErrorKind::CertificateRejected => "certificate rejected by the peer",
            TlsErrorKind::HandshakeFailed => "handshake failed",
            TlsErrorKind::NotTls => "peer does not speak TLS",
            TlsErrorKind::Protocol => "protocol error",
            TlsErrorKind::Truncated => "connection truncated",
        })
    }
}

/// Everything that can go wrong in evstream.
///
/// The variants are meant to be matched: a refused connection, a reset, a
/// timeout and a closed connection are different situations for a caller.
/// Converting into [`std::io::Error`] keeps the variant (it can be recovered
/// with [`Error::from`] or `get_ref().downcast_ref::<Error>()`) and picks the
/// matching [`io::ErrorKind`]:
///
/// | variant | `io::ErrorKind` |
/// |---|---|
/// | `Refused` | `ConnectionRefused` |
/// | `Reset` | `ConnectionReset` |
/// | `TimedOut` | `TimedOut` |
/// | `Closed` | `NotConnected` |
/// | `WriteClosed` | `BrokenPipe` |
/// | `LimitExceeded`, `InvalidData` | `InvalidData` |
/// | `Resolve` | `NotFound` |
/// | `UnexpectedEof` | `UnexpectedEof` |
/// | `InvalidInput` | `InvalidInput` |
/// | `WouldDeadlock` | `Deadlock` |
/// | `CallbackPanicked`, `TaskPanicked`, `Internal` | `Other` |
/// | `LoopStopped` | `NotConnected` |
/// | `Tls` | by [`TlsErrorKind`]: `PermissionDenied`, `InvalidData` or `UnexpectedEof` |
/// | `Io` | the wrapped error's kind |
///
/// # Examples
///
/// ```
/// use evstream::Error;
///
/// let io: std::io::Error = Error::Reset.into();
/// assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset);
/// assert!(matches!(Error::from(io), Error::Reset));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer refused the connection (no listener at that address).
    #[error("connection refused")]
    Refused,
    /// The peer reset the connection.
    #[error("connection reset by peer")]
    Reset,
    /// Connection setup, or an idle read or write, took too long.
    #[error("{0} timed out")]
    TimedOut(TimeoutKind),
    /// The connection was closed (by `close()`, `abort()` or a failure)
    /// before or during this operation.
    #[error("connection closed")]
    Closed,
    /// The write side was already shut down (`shutdown_write()` or
    /// `poll_close`), so no more bytes can be queued.
    #[error("write side of the connection is shut down")]
    WriteClosed,
    /// A configured limit would be exceeded; nothing was appended.
    #[error("{what} limit of {limit} bytes exceeded")]
    LimitExceeded {
        /// Which limit.
        what: Limit,
        /// Its configured value in bytes.
        limit: usize,
    },
    /// The host name could not be resolved, or resolved to no address.
    #[error("could not resolve {host:?}: {reason}")]
    Resolve {
        /// The name that was looked up.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The peer sent something that cannot be decoded.
    #[error("invalid data: {0}")]
    InvalidData(String),
    /// The connection ended before a read was satisfied.
    #[error("connection ended after {received} of {needed} bytes")]
    UnexpectedEof {
        /// What the read needed (for a delimiter search: at least one byte
        /// more than arrived).
        needed: usize,
        /// What had arrived when the connection ended; those bytes stay in
        /// the input buffer.
        received: usize,
    },
    /// The caller passed a value or configuration that cannot work.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A blocking call was made on the event loop's own thread, where waiting
    /// would stop the loop that has to deliver the bytes.
    #[error("blocking call on the event loop thread would deadlock")]
    WouldDeadlock,
    /// A user callback panicked; the connection it ran for was closed.
    #[error("a callback panicked: {0}")]
    CallbackPanicked(String),
    /// A task spawned on a loop panicked (reported by its `JoinHandle`).
    #[error("a spawned task panicked: {0}")]
    TaskPanicked(String),
    /// The event loop this connection (or task) belongs to has stopped for
    /// good: its `EventLoop` was dropped, its thread ended, or it failed.
    /// Nothing on it will make progress again.
    #[error("the event loop has stopped")]
    LoopStopped,
    /// evstream's own handling of this connection failed (a bug: please
    /// report it); the connection was closed and the loop went on.
    #[error("internal error: {0}")]
    Internal(String),
    /// The TLS layer of the connection failed (feature `tls`). The
    /// connection is closed after it; plaintext already delivered stays
    /// readable.
    #[error("TLS {kind}: {reason}")]
    Tls {
        /// What went wrong, to match on.
        kind: TlsErrorKind,
        /// The details, in rustls's words.
        reason: String,
    },
    /// Any other operating-system error.
    #[error("I/O error: {0}")]
    Io(#[source] Arc<io::Error>),
}

impl Error {
    /// The [`io::ErrorKind`] this error converts to.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Refused => io::ErrorKind::ConnectionRefused,
            Error::Reset => io::ErrorKind::ConnectionReset,
            Error::TimedOut(_) => io::ErrorKind::TimedOut,
            Error::Closed => io::ErrorKind::NotConnected,
            Error::WriteClosed => io::ErrorKind::BrokenPipe,
            Error::LimitExceeded { .. } | Error::InvalidData(_) => io::ErrorKind::InvalidData,
            Error::Resolve { .. } => io::ErrorKind::NotFound,
            Error::UnexpectedEof { .. } => io::ErrorKind::UnexpectedEof,
            Error::InvalidInput(_) => io::ErrorKind::InvalidInput,
            Error::WouldDeadlock => io::ErrorKind::Deadlock,
            Error::CallbackPanicked(_) | Error::TaskPanicked(_) | Error::Internal(_) => {
                io::ErrorKind::Other
            }
            Error::LoopStopped => io::ErrorKind::NotConnected,
            Error::Tls { kind, .. } => kind.io_kind(),
            Error::Io(err) => err.kind(),
        }
    }
}

impl From<io::Error> for Error {
    /// Maps an OS error to the matching variant; an `io::Error` that was made
    /// from an evstream `Error` gives that `Error` back.
    fn from(err: io::Error) -> Self {
        if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
            return inner.clone();
        }
        match err.kind() {
            io::ErrorKind::ConnectionRefused => Error::Refused,
            io::ErrorKind::ConnectionReset => Error::Reset,
            io::ErrorKind::TimedOut => Error::TimedOut(TimeoutKind::Network),
            _ => Error::Io(Arc::new(err)),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(err.kind(), err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_the_documented_io_kind() {
        let cases = [
            (Error::Refused, io::ErrorKind::ConnectionRefused),
            (Error::Reset, io::ErrorKind::ConnectionReset),
            (Error::TimedOut(TimeoutKind::Read), io::ErrorKind::TimedOut),
            (Error::Closed, io::ErrorKind::NotConnected),
            (Error::WriteClosed, io::ErrorKind::BrokenPipe),
            (
                Error::LimitExceeded {
                    what: Limit::InputBuffer,
                    limit: 1,
                },
                io::ErrorKind::InvalidData,
            ),
            (
                Error::Resolve {
                    host: "x".into(),
                    reason: "y".into(),
                },
                io::ErrorKind::NotFound,
            ),
            (Error::InvalidData("x".into()), io::ErrorKind::InvalidData),
            (
                Error::UnexpectedEof {
                    needed: 4,
                    received: 1,
                },
                io::ErrorKind::UnexpectedEof,
            ),
            (Error::InvalidInput("x".into()), io::ErrorKind::InvalidInput),
            (Error::WouldDeadlock, io::ErrorKind::Deadlock),
            (Error::CallbackPanicked("x".into()), io::ErrorKind::Other),
            (Error::TaskPanicked("x".into()), io::ErrorKind::Other),
            (Error::Internal("x".into()), io::ErrorKind::Other),
            (Error::LoopStopped, io::ErrorKind::NotConnected),
            (
                Error::Tls {
                    kind: TlsErrorKind::CertificateInvalid,
                    reason: "x".into(),
                },
                io::ErrorKind::PermissionDenied,
            ),
        ];
        for (err, kind) in cases {
            let io: io::Error = err.clone().into();
            assert_eq!(io.kind(), kind, "{err}");
            // The variant survives the round trip through io::Error.
            assert_eq!(Error::from(io).to_string(), err.to_string());
        }
    }

    #[test]
    fn os_errors_map_to_matchable_variants() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert!(matches!(Error::from(refused), Error::Refused));
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert!(matches!(Error::from(reset), Error::Reset));
        let timed_out = io::Error::from(io::ErrorKind::TimedOut);
        assert!(matches!(
            Error::from(timed_out),
            Error::TimedOut(TimeoutKind::Network)
        ));
        let other = io::Error::from(io::ErrorKind::PermissionDenied);
        let err = Error::from(other);
        assert!(matches!(err, Error::Io(_)));
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }

    #[test]
    fn tls_kinds_map_to_the_documented_io_kinds() {
        use TlsErrorKind::*;
        let cases = [
            (CertificateInvalid, io::ErrorKind::PermissionDenied),
            (CertificateRejected, io::ErrorKind::PermissionDenied),
            (HandshakeFailed, io::ErrorKind::InvalidData),
            (NotTls, io::ErrorKind::InvalidData),
            (Protocol, io::ErrorKind::InvalidData),
            (Truncated, io::ErrorKind::UnexpectedEof),
        ];
        for (kind, io_kind) in cases {
            let err = Error::Tls {
                kind,
                reason: "because".into(),
            };
            assert_eq!(err.kind(), io_kind, "{err}");
            let io: io::Error = err.clone().into();
            assert_eq!(io.kind(), io_kind);
            // The kind survives the round trip through io::Error.
            match Error::from(io) {
                Error::Tls { kind: back, reason } => {
                    assert_eq!(back, kind);
                    assert_eq!(reason, "because");
                }
                other => panic!("{kind:?} came back as {other:?}"),
            }
        }
        let err = Error::Tls {
            kind: Truncated,
            reason: "peer closed without close_notify".into(),
        };
        assert_eq!(
            err.to_string(),
            "TLS connection truncated: peer closed without close_notify"
        );
    }

    #[test]
    fn limit_error_names_the_limit() {
        let err = Error::LimitExceeded {
            what: Limit::OutputBuffer,
            limit: 4096,
        };
        assert_eq!(
            err.to_string(),
            "output buffer limit of 4096 bytes exceeded"
        );
    }
}
