//! Review probe for b07a057..HEAD (f362669, lazy per-turn clock): the
//! poller's timeout is computed from the clock cached before the turn's
//! timer callbacks and queued work ran, so a timer that fell due meanwhile
//! is waited for once more (up to a whole extra timeout). Both tests pass
//! at b07a057 and fail at HEAD.

mod common;

use std::thread;
use std::time::{Duration, Instant};

use evstream::{tcp_connect_addr, Direction, Event, TcpOptions};
use common::LoopThread;

/// The poller's timeout must be measured from the clock *after* the turn's
/// timer callbacks ran ("never past the next timer"). A timer due while a
/// slow timer callback runs must fire as soon as that callback returns.
/// (Scheduled from the loop thread, so no cross-thread notification is
/// pending to cut the wait short by accident.)
#[test]
fn timer_due_during_a_slow_timer_callback_fires_right_after_it() {
    let lt = LoopThread::start();
    let (tx, rx) = common::channel();
    let h = lt.handle.clone();
    lt.handle.delay(Duration::ZERO, move || {
        let end = tx.clone();
        h.delay(Duration::ZERO, move || {
            // Work, not synchronisation: a callback that takes 600 ms.
            thread::sleep(Duration::from_millis(600));
            let _ = end.send(("slow end", Instant::now()));
        });
        h.delay(Duration::from_millis(300), move || {
            let _ = tx.send(("fired", Instant::now()));
        });
    });
    let (a, slow_end) = common::recv(&rx, "slow callback end");
    let (b, fired) = common::recv(&rx, "300 ms timer");
    assert_eq!((a, b), ("slow end", "fired"));
    let late = fired.saturating_duration_since(slow_end);
    assert!(
        late < Duration::from_millis(150),
        "a timer due 300 ms in fired {late:?} after the 600 ms callback ended \
         (it was already overdue then)"
    );
}

/// The same for a connection's read timeout (rule 9): due while a slow
/// timer callback runs, it is reported only a whole extra timeout later.
#[test]
fn read_timeout_due_during_a_slow_timer_callback_is_not_delayed() {
    let lt = LoopThread::start();
    let (listener, addr) = common::std_listener();
    let (event_cb, events) = common::event_channel();
    let _socket = tcp_connect_addr(
        &lt.handle,
        addr,
        TcpOptions::new()
            .read_timeout(Duration::from_millis(300))
            .event_cb(event_cb),
    )
    .unwrap();
    let _peer = common::accept(&listener);
    common::wait_event(&events, "Connected", |e| matches!(e, Event::Connected));
    let (tx, rx) = common::channel();
    lt.handle.delay(Duration::ZERO, move || {
        thread::sleep(Duration::from_millis(700));
        let _ = tx.send(Instant::now());
    });
    let slow_end = common::recv(&rx, "slow callback end");
    common::wait_event(&events, "Timeout", |e| {
        matches!(e, Event::Timeout(Direction::Read))
    });
    let late = Instant::now().saturating_duration_since(slow_end);
    assert!(
        late < Duration::from_millis(150),
        "read timeout (300 ms, overdue when the 700 ms callback ended) \
         reported {late:?} after it"
    );
}
