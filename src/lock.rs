//! Taking a lock that a panicking thread may have poisoned.
//!
//! A `Mutex` is poisoned when a thread panics while holding it, and `lock` then returns an
//! error instead of the guard. The relay must never abort on that (the design card: a bug in
//! one connection's thread must not take down the others), and it has no need to: every
//! mutex in the crate guards a value that one push, insert, removal or assignment changes,
//! so a panic cannot leave it half-changed and the value behind a poisoned lock is still
//! good. [`lock`] says so once, for every mutex in the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, using its value as it is if a panicking thread poisoned it (see the
/// [module documentation](self) for why that is safe here). Never panics.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
