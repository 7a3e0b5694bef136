//! Tasks spawned on a loop (`async-task`, smol's task machinery) and the
//! handle that awaits their output.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_lite::FutureExt;

use super::{Command, Shared};
use crate::error::{Error, Result};
use crate::sync::panic_message;

/// Counts a task as live (it keeps `run` going) until its future is done
/// or dropped.
struct LiveTask(Arc<Shared>);

impl LiveTask {
    fn new(shared: &Arc<Shared>) -> Self {
        shared.live_tasks.fetch_add(1, Ordering::AcqRel);
        LiveTask(shared.clone())
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.live_tasks.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Spawns `future` on the loop of `shared`; see `LoopHandle::spawn`.
pub(super) fn spawn<F>(shared: &Arc<Shared>, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let live = LiveTask::new(shared);
    let future = async move {
        let _live = live;
        let output = std::panic::AssertUnwindSafe(future).catch_unwind().await;
        output.map_err(|payload| {
            let message = panic_message(&*payload);
            log::error!("evstream: a spawned task panicked: {message}");
            message
        })
    };
    let weak: Weak<Shared> = Arc::downgrade(shared);
    let schedule = move |runnable: async_task::Runnable| {
        // A loop that is gone drops the runnable, which cancels the task:
        // its handle then reports `LoopStopped`.
        if let Some(shared) = weak.upgrade() {
            let _ = shared.post(Command::Run(runnable));
        }
    };
    let (runnable, task) = async_task::spawn(future, schedule);
    runnable.schedule();
    JoinHandle {
        task: Some(task.fallible()),
        shared: shared.clone(),
    }
}

/// A handle to a task spawned with [`LoopHandle::spawn`](super::LoopHandle::spawn)
/// (and, on the default loop, `evstream::spawn`): a future of the task's output.
///
/// Awaiting it gives `Ok(output)`, [`Error::TaskPanicked`] if the task
/// panicked, or [`Error::LoopStopped`] if its loop stopped for good before
/// the task finished (or [`abort`](JoinHandle::abort) cancelled it).
///
/// **Dropping the handle detaches the task**: it keeps running to
/// completion on its loop, as with tokio's `JoinHandle` (and unlike
/// `async_task::Task`, which cancels on drop).
///
/// # Cancel safety
///
/// Awaiting is cancel safe: dropping the `await` drops the handle, which
/// detaches the task.
pub struct JoinHandle<T> {
    task: Option<async_task::FallibleTask<std::result::Result<T, String>>>,
    shared: Arc<Shared>,
}

impl<T> JoinHandle<T> {
    /// Cancels the task: it is dropped at its next scheduling point and
    /// never polled again. Awaiting a clone is not possible; the output is
    /// lost.
    pub fn abort(mut self) {
        // Dropping an async-task task (not detached) cancels it.
        drop(self.task.take());
    }

    /// Whether the task has finished (its output is ready, or it panicked
    /// or was cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(Error::LoopStopped));
        };
        match Pin::new(task).poll(cx) {
            Poll::Pending => {
                self.shared.note_wait();
                Poll::Pending
            }
            Poll::Ready(output) => {
                self.task = None;
                Poll::Ready(match output {
                    Some(Ok(value)) => Ok(value),
                    Some(Err(message)) => Err(Error::TaskPanicked(message)),
                    None => Err(Error::LoopStopped),
                })
            }
        }
    }
}
