//! The checks behind the fuzz targets, shared with `tests/fuzz_corpus.rs`,
//! which replays the checked-in corpus through them in `cargo test`.
//!
//! Each `check` takes raw fuzzer bytes, reads what to do from them with
//! [`input::Input`] (no `arbitrary` dependency, so the test needs nothing
//! extra), and panics when a property fails.
#![allow(dead_code)]

pub mod buffer_ops;
pub mod decoders;
pub mod input;
pub mod read_helpers;
pub mod stream_peer;
