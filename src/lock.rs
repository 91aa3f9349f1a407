//! Taking a lock that a panicking thread may have poisoned.
//!
//! A `Mutex` is poisoned when a thread panics while holding it, and `lock` then returns an
//! error instead of the guard. The relay must never abort on that (the design card: a bug in
//! one connection's thread must not take down the others), and it has no need to: every
//! mutex in the crate guards a value that one push, insert, removal or assignment changes,
//! so a panic cannot leave it half-changed and the value behind a poisoned lock is still
//! good. [`lock`] says so once, for every mutex in the crate, and [`wait`] and
//! [`wait_timeout`] for the condition variables that wait on them.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Locks `mutex`, using its value as it is if a panicking thread poisoned it (see the
/// [module documentation](self) for why that is safe here). Never panics.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `condvar` with `guard`'s lock, as [`Condvar::wait`] does, taking the lock back
/// poisoned or not (as [`lock`]).
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// [`wait`] for at most `timeout`; the caller looks at the clock or the state to know which
/// came first.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    condvar.wait_timeout(guard, timeout).unwrap_or_else(PoisonError::into_inner).0
}
