//! A shared 64-bit counter that builds on every target, with or without 64-bit atomics.
//!
//! The relay counts with 64-bit values shared between threads: bytes relayed per route, the
//! connections of a route, the time of a connection's last activity, thread ids. `AtomicU64`
//! is the natural type, but it only exists where the CPU has 64-bit atomic instructions, and
//! the CPUs of many routers and boards do not: 32-bit MIPS (`mipsel`, `mips`), 32-bit
//! PowerPC, ARMv5 (`armel`). There `std::sync::atomic::AtomicU64` is simply missing and the
//! crate would not compile. [`Counter`] is the one type the rest of the crate uses instead:
//!
//! - **With 64-bit atomics** (`cfg(target_has_atomic = "64")`: x86_64, aarch64, armv7, i686,
//!   s390x, ppc64le, mips64el, riscv64, ...) it *is* an `AtomicU64` with relaxed ordering,
//!   behind `#[inline]` methods, so it compiles to the same single instruction as before.
//! - **Without them** it is a `Mutex<u64>`.
//!
//! # Why a lock, and not a 32-bit atomic, on the small targets
//!
//! A 32-bit counter is only correct where it cannot wrap in a realistic lifetime, and none of
//! the values kept here are safe:
//!
//! - bytes relayed wrap at 4 GiB: a 100 Mbit/s link gets there in under six minutes;
//! - the milliseconds since a connection started wrap after 49.7 days, and tunnels that
//!   live that long exist (an idle timer would then fire on a busy connection, or never);
//! - connections accepted, at 100 per second, wrap after 16 months of uptime; thread ids
//!   likewise on a relay that has started that many threads.
//!
//! So the fallback keeps the full 64 bits and takes a lock. The price is small where it is
//! paid: an uncontended `Mutex` is one 32-bit compare-and-swap to take and one swap to give
//! back (the same work as the lock-based 64-bit atomics a C compiler's libatomic would use).
//! The route's counters are touched a few times per connection (bytes are added once, when
//! it ends), and the idle clock once per `read` or `write` of up to a buffer's worth of bytes,
//! by that connection's two threads only; never per byte. The 64-bit targets pay nothing at
//! all: their machine code is the same as with `AtomicU64` itself (docs/targets.md).
//!
//! Every method is relaxed (an independent value, no ordering with other memory is implied)
//! and none can panic: a lock poisoned by a panicking thread still holds a valid `u64`, so it
//! is used as it is.
//!
//! The test `the_module_example` at the end of this file runs an example.

use std::fmt;

#[cfg(target_has_atomic = "64")]
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
#[cfg(not(target_has_atomic = "64"))]
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A `u64` shared between threads: an `AtomicU64` where the target has one, else a
/// `Mutex<u64>` (see the [module documentation](self) for why not a 32-bit atomic).
/// Adding wraps around at `u64::MAX`, as `AtomicU64::fetch_add` does.
pub struct Counter {
    #[cfg(target_has_atomic = "64")]
    value: AtomicU64,
    #[cfg(not(target_has_atomic = "64"))]
    value: Mutex<u64>,
}

#[cfg(target_has_atomic = "64")]
impl Counter {
    /// A counter holding `value`; `const`, so it can initialise a `static`.
    pub const fn new(value: u64) -> Counter {
        Counter { value: AtomicU64::new(value) }
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.value.load(Relaxed)
    }

    /// Replaces the value.
    #[inline]
    pub fn set(&self, value: u64) {
        self.value.store(value, Relaxed);
    }

    /// Adds `amount` (wrapping) and returns the value from before.
    #[inline]
    pub fn fetch_add(&self, amount: u64) -> u64 {
        self.value.fetch_add(amount, Relaxed)
    }

    /// Subtracts one unless the value is already 0; returns whether it did.
    #[inline]
    pub fn decrement_unless_zero(&self) -> bool {
        self.value.fetch_update(Relaxed, Relaxed, |value| value.checked_sub(1)).is_ok()
    }

    /// Returns the value and sets it to 0.
    #[inline]
    pub fn take(&self) -> u64 {
        self.value.swap(0, Relaxed)
    }
}

#[cfg(not(target_has_atomic = "64"))]
impl Counter {
    /// A counter holding `value`; `const`, so it can initialise a `static`.
    pub const fn new(value: u64) -> Counter {
        Counter { value: Mutex::new(value) }
    }

    /// The lock, poisoned or not: no update can leave a `u64` half-written.
    fn lock(&self) -> MutexGuard<'_, u64> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        *self.lock()
    }

    /// Replaces the value.
    pub fn set(&self, value: u64) {
        *self.lock() = value;
    }

    /// Adds `amount` (wrapping) and returns the value from before.
    pub fn fetch_add(&self, amount: u64) -> u64 {
        let mut value = self.lock();
        let before = *value;
        *value = before.wrapping_add(amount);
        before
    }

    /// Returns the value and sets it to 0.
    pub fn take(&self) -> u64 {
        std::mem::take(&mut *self.lock())
    }

    /// Subtracts one unless the value is already 0; returns whether it did.
    pub fn decrement_unless_zero(&self) -> bool {
        let mut value = self.lock();
        match value.checked_sub(1) {
            Some(decremented) => {
                *value = decremented;
                true
            }
            None => false,
        }
    }
}

impl Default for Counter {
    fn default() -> Counter {
        Counter::new(0)
    }
}

/// Shows the value alone, the same on every target.
impl fmt::Debug for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.get(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::Counter;
    use std::sync::Arc;
    use std::thread;

    #[test]
    fn holds_values_beyond_32_bits_and_wraps_like_an_atomic() {
        let counter = Counter::new(u64::from(u32::MAX));
        assert_eq!(counter.fetch_add(1), u64::from(u32::MAX));
        assert_eq!(counter.get(), 1 << 32);
        counter.set(u64::MAX);
        assert_eq!(counter.fetch_add(2), u64::MAX);
        assert_eq!(counter.get(), 1);
        assert_eq!(format!("{counter:?}"), "1");
    }

    #[test]
    fn decrement_stops_at_zero() {
        let counter = Counter::default();
        assert!(!counter.decrement_unless_zero());
        assert_eq!(counter.get(), 0);
        counter.fetch_add(2);
        assert!(counter.decrement_unless_zero());
        assert!(counter.decrement_unless_zero());
        assert!(!counter.decrement_unless_zero());
        assert_eq!(counter.get(), 0);
    }

    #[test]
    fn concurrent_adds_are_all_counted() {
        const THREADS: u64 = 4;
        const ADDS: u64 = 10_000;
        // Each add crosses the 32-bit boundary's worth of bytes: a torn or 32-bit counter
        // would lose the high word.
        const AMOUNT: u64 = 1 << 33;
        let counter = Arc::new(Counter::new(0));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let counter = Arc::clone(&counter);
                thread::spawn(move || {
                    for _ in 0..ADDS {
                        counter.fetch_add(AMOUNT);
                        counter.fetch_add(1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("adding thread panicked");
        }
        assert_eq!(counter.get(), THREADS * ADDS * (AMOUNT + 1));
    }

    /// The example the module documentation points to.
    #[test]
    fn the_module_example() {
        use crate::counter::Counter;

        let bytes = Counter::new(0);
        bytes.fetch_add(5_000_000_000); // more than a u32 can hold, on every target
        assert_eq!(bytes.get(), 5_000_000_000);
        assert!(bytes.decrement_unless_zero());
        assert_eq!(bytes.get(), 4_999_999_999);
    }
}
