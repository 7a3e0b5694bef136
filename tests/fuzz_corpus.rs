//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) through
//! the same checks the cargo-fuzz targets run (`fuzz/checks/`), so CI
//! exercises every interesting input the fuzzer found without the fuzzer.

#[path = "../fuzz/checks/mod.rs"]
mod checks;

use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>`, naming the file
/// that fails.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no corpus", dir.display());
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target}: {} fails", file.display());
    }
}

#[test]
fn buffer_ops_corpus() {
    replay("buffer_ops", checks::buffer_ops::check);
}

#[test]
fn decoders_corpus() {
    replay("decoders", checks::decoders::check);
}

#[test]
fn stream_peer_corpus() {
    replay("stream_peer", checks::stream_peer::check);
}

#[test]
fn read_helpers_corpus() {
    replay("read_helpers", checks::read_helpers::check);
}
