//! Model checks (loom) of the connection's lock-free protocols, on the
//! types the connection itself uses. Run with
//! `RUSTFLAGS="--cfg evstream_loom" cargo test --release --lib loom`.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::Poll;

use bytes::Bytes;
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::conn::OUTPUT_PENDING;
use super::input::Input;
use super::protocol::{Flags, Requests};

/// The request word: threads that add bits wake the loop only when the
/// word was empty; the loop takes the whole word per wake. No bit may be
/// left in the word without a wake to come for it.
#[test]
fn loom_requests_are_never_stranded() {
    loom::model(|| {
        let requests = Arc::new(Requests::new());
        // The loop's command queue: one entry per wake posted.
        let wakes = Arc::new(Mutex::new(VecDeque::new()));
        let mut producers = Vec::new();
        for bit in [1u32, 2] {
            let (requests, wakes) = (requests.clone(), wakes.clone());
            producers.push(thread::spawn(move || {
                if requests.add(bit) {
                    wakes.lock().unwrap().push_back(());
                }
            }));
        }
        // The loop handles at most one wake concurrently with the producers.
        let looper = {
            let (requests, wakes) = (requests.clone(), wakes.clone());
            thread::spawn(move || {
                let woken = wakes.lock().unwrap().pop_front().is_some();
                if woken {
                    requests.take()
                } else {
                    0
                }
            })
        };
        for producer in producers {
            producer.join().unwrap();
        }
        let mut seen = looper.join().unwrap();
        // Then it handles every wake still queued.
        while wakes.lock().unwrap().pop_front().is_some() {
            seen |= requests.take();
        }
        assert_eq!(seen, 0b11, "a request was stranded without a wake");
    });
}

/// A reader registering its waker races an append: it either sees the
/// bytes or is woken (the waker is stored under the same lock the append
/// takes the wakers under).
#[test]
fn loom_a_reader_never_misses_an_append() {
    loom::model(|| {
        let input = Arc::new(Mutex::new(Input::new()));
        let appender = {
            let input = input.clone();
            thread::spawn(move || {
                let wakers = input.lock().unwrap().append([Bytes::from_static(b"x")]);
                wakers.wake_all();
            })
        };
        let got = loom::future::block_on(poll_fn(|cx| {
            let mut input = input.lock().unwrap();
            if !input.buf.is_empty() {
                return Poll::Ready(input.buf.len());
            }
            input.poll_more(Some(cx.waker())).map(|_| 0)
        }));
        assert_eq!(got, 1);
        appender.join().unwrap();
    });
}

/// The output-pending flag: a writer sets it (under the output lock)
/// before its direct write; when the kernel refuses the bytes, the
/// writable edge that follows must find it set, so the loop flushes the
/// rest instead of skipping the flush (and a writer that queues nothing
/// clears it, so idle connections skip the lock).
#[test]
fn loom_a_writable_edge_after_a_refused_write_finds_output_pending() {
    loom::model(|| {
        let flags = Arc::new(Flags::new(0));
        // (queued bytes, awaiting writable), under the output lock.
        let output = Arc::new(Mutex::new((0usize, false)));
        // The kernel's one writable edge, raised once it has refused a
        // write and drained; the loop takes it to handle it (epoll hands
        // each edge out once, under its own lock).
        let edge = Arc::new(Mutex::new(false));
        // What the loop does with an edge: flush only if output is pending.
        let handle_edge = {
            let (flags, output, edge) = (flags.clone(), output.clone(), edge.clone());
            move || {
                let raised = std::mem::take(&mut *edge.lock().unwrap());
                if raised && flags.get(OUTPUT_PENDING) {
                    let mut out = output.lock().unwrap();
                    out.0 = 0;
                    out.1 = false;
                    flags.clear(OUTPUT_PENDING);
                }
            }
        };
        let writer = {
            let (flags, output, edge) = (flags.clone(), output.clone(), edge.clone());
            thread::spawn(move || {
                let mut out = output.lock().unwrap();
                flags.set(OUTPUT_PENDING);
                // The direct write's system call, refused; the kernel may
                // raise the edge at any point from here on.
                *edge.lock().unwrap() = true;
                out.0 += 10;
                out.1 = true;
                if out.0 == 0 && !out.1 {
                    flags.clear(OUTPUT_PENDING);
                }
            })
        };
        // The loop looks once while the writer runs (it may find no edge
        // yet, or one raised mid-write)…
        let looper = {
            let handle_edge = handle_edge.clone();
            thread::spawn(move || handle_edge())
        };
        writer.join().unwrap();
        looper.join().unwrap();
        // …and handles any edge still raised on its next turn.
        handle_edge();
        assert!(!*edge.lock().unwrap(), "an edge was never handled");
        assert_eq!(output.lock().unwrap().0, 0, "the edge skipped the flush");
    });
}
