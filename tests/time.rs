//! Tasks and time (issue #12, items 3 and 7): `evstream::spawn` on the
//! default loop, `time::{sleep, timeout, interval}` on a loop's timer heap
//! under any executor, and waits that cannot end being reported.

mod common;

use std::time::{Duration, Instant};

use common::{block_on, recv};
use evstream::time::{interval, sleep, sleep_until, timeout};
use evstream::{EventLoop, TcpOptions};

#[test]
fn spawn_runs_on_the_default_loop_and_its_handle_gives_the_output() {
    let task = evstream::spawn(async { evstream::default_loop().is_loop_thread() });
    assert!(
        block_on(task).expect("task output"),
        "ran on the loop thread"
    );
    assert!(evstream::default_loop().is_running());
}

/// Dropping the `JoinHandle` detaches the task: it still runs to the end.
#[test]
fn dropping_the_join_handle_detaches_the_task() {
    let (tx, rx) = common::channel();
    let (go_tx, go_rx) = futures::channel::oneshot::channel::<()>();
    let task = evstream::spawn(async move {
        let _ = go_rx.await;
        tx.send("finished").unwrap();
    });
    drop(task);
    go_tx.send(()).unwrap();
    assert_eq!(recv(&rx, "the detached task finishing"), "finished");
}

#[test]
fn sleep_waits_at_least_its_duration_under_a_foreign_executor() {
    let start = Instant::now();
    futures_lite::future::block_on(sleep(Duration::from_millis(20)));
    assert!(start.elapsed() >= Duration::from_millis(20));
    let deadline = Instant::now() + Duration::from_millis(5);
    futures_lite::future::block_on(sleep_until(deadline));
    assert!(Instant::now() >= deadline);
}

/// The timer runs on evstream's loop and wakes a tokio task: no tokio
/// timer is involved (the runtime is built without one).
#[test]
fn sleep_and_timeout_work_inside_a_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let elapsed = runtime.block_on(async {
        let start = Instant::now();
        sleep(Duration::from_millis(10)).await;
        let late = timeout(Duration::from_millis(10), std::future::pending::<()>()).await;
        (start.elapsed(), late)
    });
    assert!(elapsed.0 >= Duration::from_millis(20));
    assert!(elapsed.1.is_err());
}

#[test]
fn timeout_gives_the_output_or_elapsed() {
    assert_eq!(
        block_on(timeout(Duration::from_secs(30), async { 5 })),
        Ok(5)
    );
    let start = Instant::now();
    let err = block_on(timeout(
        Duration::from_millis(10),
        std::future::pending::<()>(),
    ))
    .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(10));
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
}

/// `Duration::MAX` means never: no overflow, and the sleep never completes
/// (a timeout around it is what ends the wait).
#[test]
fn a_sleep_of_duration_max_never_completes_and_never_overflows() {
    let never = sleep(Duration::MAX);
    assert_eq!(never.deadline(), None);
    assert!(block_on(timeout(Duration::from_millis(10), never)).is_err());
    assert_eq!(
        block_on(timeout(Duration::MAX, async { 1 })),
        Ok(1),
        "a timeout of Duration::MAX never expires"
    );
}

#[test]
fn interval_ticks_at_once_then_every_period() {
    let ticks = block_on(async {
        let mut ticks = interval(Duration::from_millis(5));
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(ticks.tick().await);
        }
        seen
    });
    for pair in ticks.windows(2) {
        assert_eq!(
            pair[1] - pair[0],
            Duration::from_millis(5),
            "scheduled ticks"
        );
    }
}

/// A dropped sleep cancels its timer: `run` does not wait for it.
#[test]
fn a_dropped_sleep_does_not_keep_run_going() {
    let (tx, rx) = common::channel();
    std::thread::spawn(move || {
        let mut ev = EventLoop::new().unwrap();
        let mut long = Box::pin(ev.handle().sleep(Duration::from_secs(3600)));
        // Polled once on the loop, so the timer is set there; then dropped.
        let first = ev.block_on(futures_lite::future::poll_once(long.as_mut()));
        drop(long);
        let _ = tx.send((first.unwrap().is_none(), ev.run().is_ok()));
    });
    let (was_pending, ran) = recv(&rx, "run() returning with the sleep dropped");
    assert!(was_pending && ran);
}

/// A pending sleep keeps `run` going until it fires, like `delay`.
#[test]
fn a_pending_sleep_keeps_run_going_until_it_fires() {
    let mut ev = EventLoop::new().unwrap();
    let mut sleep = Box::pin(ev.handle().sleep(Duration::from_millis(10)));
    let deadline = sleep.deadline().expect("a deadline");
    let first = ev.block_on(futures_lite::future::poll_once(sleep.as_mut()));
    assert!(first.unwrap().is_none(), "not due yet");
    ev.run().unwrap();
    assert!(
        Instant::now() >= deadline,
        "run returned before the sleep was due"
    );
    assert!(sleep.is_elapsed());
}

/// Item 7: a future waiting on a loop that no thread runs is reported (it
/// would hang silently otherwise).
#[test]
fn waiting_on_a_loop_nobody_runs_is_logged() {
    common::capture_logs();
    let mut ev = EventLoop::new().unwrap();
    assert!(!ev.handle().is_running());
    let mut task = ev.handle().spawn(async { 3 });
    assert!(common::poll_once_by_hand(&mut task).is_pending());
    let warnings = common::warnings_containing("which no thread is running");
    assert!(!warnings.is_empty(), "no warning logged");
    // Once something runs the loop, the wait ends.
    assert_eq!(ev.block_on(task).unwrap().unwrap(), 3);
}

/// Item 7: a future polled inside a callback, on the loop's own thread,
/// that would wait is reported: blocking there would stop the loop.
#[test]
fn waiting_inside_a_callback_is_logged() {
    common::capture_logs();
    let lt = common::LoopThread::start();
    let (stream, _peer) = common::connect_stream(&lt.handle, TcpOptions::new());
    let (tx, rx) = common::channel();
    let mut stream = stream;
    lt.handle.delay(Duration::ZERO, move || {
        let mut buf = [0u8; 8];
        let mut read = stream.read(&mut buf);
        let pending = common::poll_once_by_hand(&mut read).is_pending();
        tx.send(pending).unwrap();
    });
    assert!(
        recv(&rx, "the callback's poll"),
        "nothing was sent, so it waits"
    );
    let warnings = common::warnings_containing("from a callback running on that loop's own thread");
    assert!(!warnings.is_empty(), "no warning logged");
}
