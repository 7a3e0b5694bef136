//! `cargo fuzz run decoders`: see `checks/decoders.rs` for what is checked.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decoders::check(data));
