//! `cargo fuzz run buffer_ops`: see `checks/buffer_ops.rs` for what is checked.
#![no_main]

#[path = "../checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::buffer_ops::check(data));
