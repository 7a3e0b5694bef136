//! Builds evstream's error and tls modules from the source tree, so the
//! crate-private `TlsSession` can be measured in release mode.
#![allow(dead_code, unused_imports)]
#[path = "../../../src/error.rs"]
mod error;
pub use error::{Error, Result, TlsErrorKind};
pub mod bench;
#[path = "../../../tests/common/tls.rs"]
pub mod certs;
#[path = "../../../src/tls/mod.rs"]
pub mod tls;
