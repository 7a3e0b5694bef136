//! Godot's `Error` codes and Luna's `SocketError`, from evstream's
//! [`Error`].

use crate::error::Error;

/// A Godot/Luna-style error code (Luna's `SocketError`: `SUCCESS`,
/// `FAILED`, `CONNECT_FAILED`, `CONNECTION_CLOSED`, `FILE_EOF`, `BUSY`, …),
/// available from every [`Error`] with `SocketError::from(&err)`, and from a
/// result with [`SocketError::of`].
///
/// # Examples
///
/// ```
/// use evstream::peer::SocketError;
/// use evstream::Error;
///
/// assert_eq!(SocketError::from(&Error::Refused), SocketError::ConnectFailed);
/// assert_eq!(SocketError::of(&Ok::<(), Error>(())), SocketError::Success);
/// assert_eq!(SocketError::Busy.as_str(), "BUSY");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketError {
    /// `SUCCESS` / Godot `OK`.
    Success,
    /// `FAILED`: anything without a more precise code.
    Failed,
    /// `CONNECT_FAILED` / `ERR_CANT_CONNECT`: refused or unreachable.
    ConnectFailed,
    /// `CONNECTION_CLOSED` / `ERR_CONNECTION_ERROR`: reset or closed.
    ConnectionClosed,
    /// `FILE_EOF` / `ERR_FILE_EOF`: the peer closed before the data came.
    FileEof,
    /// `BUSY` / `ERR_BUSY`: it would block (e.g. waiting on the loop thread).
    Busy,
    /// `TIMEOUT` / `ERR_TIMEOUT`.
    Timeout,
    /// `CANT_RESOLVE` / `ERR_CANT_RESOLVE`.
    CantResolve,
    /// `INVALID_PARAMETER` / `ERR_INVALID_PARAMETER`.
    InvalidParameter,
    /// `INVALID_DATA` / `ERR_INVALID_DATA`: the peer sent something
    /// malformed.
    InvalidData,
    /// `OUT_OF_MEMORY` / `ERR_OUT_OF_MEMORY`: a configured limit was hit.
    OutOfMemory,
    /// `UNAVAILABLE` / `ERR_UNAVAILABLE`: not connected.
    Unavailable,
}

impl SocketError {
    /// The code for a result: `Success` for `Ok`.
    pub fn of<T>(result: &Result<T, Error>) -> SocketError {
        match result {
            Ok(_) => SocketError::Success,
            Err(err) => SocketError::from(err),
        }
    }

    /// The Luna-style name (`"CONNECT_FAILED"`…).
    pub fn as_str(self) -> &'static str {
        match self {
            SocketError::Success => "SUCCESS",
            SocketError::Failed => "FAILED",
            SocketError::ConnectFailed => "CONNECT_FAILED",
            SocketError::ConnectionClosed => "CONNECTION_CLOSED",
            SocketError::FileEof => "FILE_EOF",
            SocketError::Busy => "BUSY",
            SocketError::Timeout => "TIMEOUT",
            SocketError::CantResolve => "CANT_RESOLVE",
            SocketError::InvalidParameter => "INVALID_PARAMETER",
            SocketError::InvalidData => "INVALID_DATA",
            SocketError::OutOfMemory => "OUT_OF_MEMORY",
            SocketError::Unavailable => "UNAVAILABLE",
        }
    }
}

impl std::fmt::Display for SocketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&Error> for SocketError {
    fn from(err: &Error) -> Self {
        match err {
            Error::Refused => SocketError::ConnectFailed,
            Error::Reset | Error::WriteClosed => SocketError::ConnectionClosed,
            Error::Closed => SocketError::Unavailable,
            Error::TimedOut(_) => SocketError::Timeout,
            Error::UnexpectedEof { .. } => SocketError::FileEof,
            Error::WouldDeadlock => SocketError::Busy,
            Error::Resolve { .. } => SocketError::CantResolve,
            Error::InvalidInput(_) => SocketError::InvalidParameter,
            Error::InvalidData(_) => SocketError::InvalidData,
            Error::LimitExceeded { .. } => SocketError::OutOfMemory,
            Error::Io(io) => match io.kind() {
                std::io::ErrorKind::WouldBlock => SocketError::Busy,
                std::io::ErrorKind::HostUnreachable | std::io::ErrorKind::NetworkUnreachable => {
                    SocketError::ConnectFailed
                }
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionAborted => {
                    SocketError::ConnectionClosed
                }
                _ => SocketError::Failed,
            },
            _ => SocketError::Failed,
        }
    }
}

impl From<Error> for SocketError {
    fn from(err: Error) -> Self {
        SocketError::from(&err)
    }
}
