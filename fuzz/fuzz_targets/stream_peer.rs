//! `cargo fuzz run stream_peer`: see `checks/stream_peer.rs` for what is checked.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::stream_peer::check(data));
