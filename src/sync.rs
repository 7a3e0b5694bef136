//! Crate-wide synchronisation helpers, and the primitives the lock-free
//! protocols are built on: `std`'s normally, `loom`'s when the crate is
//! compiled with `--cfg evstream_loom` so those protocols can be model-checked.

use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard};

#[cfg(not(evstream_loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU32};

#[cfg(evstream_loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU32};

/// Locks a mutex, ignoring poisoning.
///
/// evstream never runs user code while holding one of its own locks, and
/// every state behind them stays consistent between statements, so a panic
/// elsewhere is no reason to make the state unreachable.
pub(crate) fn lock<T: ?Sized>(mutex: &StdMutex<T>) -> StdMutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

/// Turns a caught panic payload into a message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// Runs `f`, catching a panic and logging it with `what` as the culprit.
/// Returns whether `f` completed.
pub(crate) fn run_contained(what: &str, f: impl FnOnce()) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(()) => true,
        Err(payload) => {
            log::error!("evstream: {what} panicked: {}", panic_message(&*payload));
            false
        }
    }
}
