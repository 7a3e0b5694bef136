//! `cargo fuzz run read_helpers`: see `checks/read_helpers.rs` for what is
//! checked.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::read_helpers::check(data));
