//! Timers as futures: [`sleep`], [`timeout`] and [`interval`], on an event
//! loop's timer heap.
//!
//! The timer lives on a loop (the [`default_loop`](crate::default_loop)
//! unless you use the [`LoopHandle`] methods of the same names) and wakes
//! the future's waker when it expires, so these futures work under any
//! executor: [`EventLoop::block_on`](crate::EventLoop::block_on), a task
//! [spawned](crate::spawn) on a loop, `futures_lite::future::block_on`,
//! tokio, smol. Dropping one cancels its timer.
//!
//! A duration too long to represent as a deadline (`Duration::MAX`) means
//! "never": such a sleep never completes and never overflows.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use evstream::time::{sleep, timeout};
//!
//! futures_lite::future::block_on(async {
//!     sleep(Duration::from_millis(5)).await;
//!     // A future that never completes, bounded by a timeout.
//!     let never = std::future::pending::<()>();
//!     assert!(timeout(Duration::from_millis(5), never).await.is_err());
//! });
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::{default_loop, Command, LoopHandle};
use crate::sync::lock;

/// What a timer future shares with the loop: whether it fired, and the
/// waker to wake when it does.
pub(crate) struct WakerTimer {
    fired: AtomicBool,
    /// The loop stopped for good before the timer fired.
    abandoned: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl WakerTimer {
    /// On the loop thread: the deadline has passed.
    pub(crate) fn fire(&self) {
        self.fired.store(true, Ordering::Release);
        self.wake();
    }

    /// On the loop thread: the loop is going away.
    pub(crate) fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        let waker = lock(&self.waker).take();
        if let Some(waker) = waker {
            crate::sync::run_contained("a timer's waker", || waker.wake());
        }
    }
}

/// Completes after [`sleep`] expires; see there. Created by [`sleep`],
/// [`sleep_until`] or [`LoopHandle::sleep`].
///
/// # Cancel safety
///
/// Cancel safe: dropping it cancels the timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    handle: LoopHandle,
    /// `None`: never.
    deadline: Option<Instant>,
    /// Set once the timer is on the loop: its id and shared state.
    timer: Option<(u64, Arc<WakerTimer>)>,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// Waits until `duration` has passed, on the [default loop](crate::default_loop)'s
/// timer heap. `Duration::MAX` (any duration too long to represent) never
/// completes.
///
/// The deadline is taken when `sleep` is called, not when the future is
/// first polled.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, Instant};
///
/// let start = Instant::now();
/// futures_lite::future::block_on(evstream::time::sleep(Duration::from_millis(10)));
/// assert!(start.elapsed() >= Duration::from_millis(10));
/// ```
///
/// # Panics
///
/// When awaited, if the loop the timer is on has stopped for good (never
/// the case of the default loop): the timer could never fire.
pub fn sleep(duration: Duration) -> Sleep {
    default_loop().sleep(duration)
}

/// Waits until `deadline`, on the default loop; see [`sleep`].
///
/// # Panics
///
/// As [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    default_loop().sleep_until(deadline)
}

/// Runs `future` for at most `duration` (on the default loop's timer
/// heap): its output, or [`Elapsed`] if the time ran out first (the future
/// is then dropped). `Duration::MAX` never runs out.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use evstream::time::timeout;
///
/// futures_lite::future::block_on(async {
///     assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
///     let slow = std::future::pending::<u32>();
///     assert!(timeout(Duration::from_millis(1), slow).await.is_err());
/// });
/// ```
///
/// # Cancel safety
///
/// As cancel safe as `future`: dropping the timeout drops it.
///
/// # Panics
///
/// As [`sleep`].
pub fn timeout<F: Future>(
    duration: Duration,
    future: F,
) -> impl Future<Output = Result<F::Output, Elapsed>> {
    default_loop().timeout(duration, future)
}

/// Ticks every `period` (on the default loop's timer heap); the first tick
/// completes at once. See [`Interval`].
///
/// # Panics
///
/// If `period` is zero; when awaited, as [`sleep`].
pub fn interval(period: Duration) -> Interval {
    default_loop().interval(period)
}

impl LoopHandle {
    /// A [`Sleep`] on this loop's timer heap: completes once `duration`
    /// has passed (never for `Duration::MAX`). See [`time::sleep`](sleep).
    ///
    /// # Panics
    ///
    /// When awaited, if this loop has stopped for good.
    pub fn sleep(&self, duration: Duration) -> Sleep {
        Sleep {
            handle: self.clone(),
            deadline: Instant::now().checked_add(duration),
            timer: None,
        }
    }

    /// A [`Sleep`] until `deadline` on this loop's timer heap.
    ///
    /// # Panics
    ///
    /// As [`sleep`](LoopHandle::sleep).
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep {
            handle: self.clone(),
            deadline: Some(deadline),
            timer: None,
        }
    }

    /// [`time::timeout`](timeout) on this loop's timer heap.
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as `future`.
    ///
    /// # Panics
    ///
    /// As [`sleep`](LoopHandle::sleep).
    pub fn timeout<F: Future>(
        &self,
        duration: Duration,
        future: F,
    ) -> impl Future<Output = Result<F::Output, Elapsed>> {
        let sleep = self.sleep(duration);
        async move {
            futures_lite::future::or(async { Ok(future.await) }, async {
                sleep.await;
                Err(Elapsed(()))
            })
            .await
        }
    }

    /// [`time::interval`](interval) on this loop's timer heap.
    ///
    /// # Panics
    ///
    /// If `period` is zero; when awaited, as [`sleep`](LoopHandle::sleep).
    pub fn interval(&self, period: Duration) -> Interval {
        assert!(
            !period.is_zero(),
            "evstream::time::interval: the period must not be zero"
        );
        let now = Instant::now();
        Interval {
            period,
            next: Some(now),
            sleep: self.sleep_until(now),
        }
    }
}

impl Sleep {
    /// The deadline, or `None` for a sleep that never completes.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn is_elapsed(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Moves the deadline (cancelling the timer set for the old one).
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = Some(deadline);
    }

    fn cancel(&mut self) {
        if let Some((id, timer)) = self.timer.take() {
            if !timer.fired.load(Ordering::Acquire) {
                self.handle.cancel_waker_timer(id);
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(deadline) = this.deadline else {
            // Never: nothing to set, nothing will wake it.
            return Poll::Pending;
        };
        if Instant::now() >= deadline {
            this.cancel();
            return Poll::Ready(());
        }
        let timer = match &this.timer {
            Some((_, timer)) => timer.clone(),
            None => {
                let timer = Arc::new(WakerTimer {
                    fired: AtomicBool::new(false),
                    abandoned: AtomicBool::new(false),
                    waker: Mutex::new(Some(cx.waker().clone())),
                });
                let id = this.handle.next_timer_id();
                let on_loop = timer.clone();
                let posted = this.handle.shared.post(Command::Call(Box::new(move |core| {
                    core.add_waker_timer(id, deadline, on_loop);
                })));
                if posted.is_err() {
                    panic!("evstream::time: the event loop has stopped for good; this timer could never fire");
                }
                this.timer = Some((id, timer));
                this.handle.note_wait();
                return Poll::Pending;
            }
        };
        // The waker first, then the flags: either this poll sees the timer
        // fired, or the loop takes this waker.
        {
            let mut waker = lock(&timer.waker);
            match &*waker {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *waker = Some(cx.waker().clone()),
            }
        }
        if timer.fired.load(Ordering::Acquire) {
            this.timer = None;
            return Poll::Ready(());
        }
        if timer.abandoned.load(Ordering::Acquire) {
            panic!("evstream::time: the event loop stopped for good before this timer fired");
        }
        this.handle.note_wait();
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

/// A timer that ticks every period: [`tick`](Interval::tick) completes at
/// the start, then at start + period, start + 2 × period… A tick that is
/// late (the task was busy) completes at once, and so do the ones missed
/// after it, until the schedule is caught up (tokio's default, `Burst`).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// futures_lite::future::block_on(async {
///     let mut ticks = evstream::time::interval(Duration::from_millis(2));
///     let first = ticks.tick().await; // at once
///     let second = ticks.tick().await;
///     assert!(second - first >= Duration::from_millis(2));
/// });
/// ```
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    /// `None` once the schedule runs past what an `Instant` holds.
    next: Option<Instant>,
    sleep: Sleep,
}

impl Interval {
    /// Waits for the next tick and returns when it was due.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a tick is used up only when this completes.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        let Some(due) = self.next else {
            return Poll::Pending;
        };
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.next = due.checked_add(self.period);
        if let Some(next) = self.next {
            self.sleep.reset(next);
        }
        Poll::Ready(due)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// The time given to [`timeout`] ran out. Converts into an `io::Error` of
/// kind `TimedOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(elapsed: Elapsed) -> Self {
        std::io::Error::new(std::io::ErrorKind::TimedOut, elapsed)
    }
}
