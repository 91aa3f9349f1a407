//! The two timers of one connection: idle and half-close.
//!
//! Both are measured against one clock shared by the connection's two threads: the time the
//! last byte moved, in *either* direction. A one-way stream (a long download while the client
//! says nothing) therefore never looks idle; per-direction idle timers, which several
//! proxies shipped, cut exactly those.
//!
//! Blocked threads cannot watch a clock, so the sockets get read and write timeouts that
//! act as ticks (see [`Timers::tick`]). A timed-out `read` took no bytes and a timed-out
//! `write` (one that sent nothing) gave none away, so after a tick the call is simply
//! repeated; nothing is lost or duplicated. Only when a timer has expired, or the
//! connection was closed, does the tick become an error.
//!
//! On Windows the tick has a second job. There `shutdown` does not wake a thread blocked in
//! `recv` on the same socket (Unix wakes it at once), so a thread learns that the connection
//! was closed (a drain, a sibling's error) only when it next wakes: there a tick runs even
//! with no timer on, at most [`CLOSE_CHECK`] apart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::counter::Counter;
use crate::outcome::CloseReason;

/// The shortest and longest tick. Short enough that a timer fires close to its deadline,
/// long enough that thousands of idle connections don't keep the CPU busy waking up.
const MIN_TICK: Duration = Duration::from_millis(10);
const MAX_TICK: Duration = Duration::from_secs(5);

/// The longest a blocked thread goes without looking at whether its connection was closed,
/// where `shutdown` does not wake it: Windows (measured under wine 8.0: a `recv` still blocked
/// 3 s after the shutdown, 6 of 6 runs; natively on Linux it returns in 30–80 µs). `None`
/// where the wake works. What it costs on Windows: each idle connection's two threads wake
/// once a second (a timed-out `recv` and one lock), and a drain or an error closes a silent
/// connection up to a second late.
pub const CLOSE_CHECK: Option<Duration> =
    if cfg!(windows) { Some(Duration::from_secs(1)) } else { None };

/// The idle and half-close timers of one connection.
#[derive(Debug)]
pub struct Timers {
    /// Close when no byte has moved either way for this long (`None`: never).
    idle: Option<Duration>,
    /// After the first EOF, close when no byte has moved for this long (`None`: never).
    half_close: Option<Duration>,
    started: Instant,
    /// When the last byte moved, in milliseconds since `started`.
    last_activity_ms: Counter,
    /// Whether one side has finished sending.
    half_closed: AtomicBool,
}

impl Timers {
    /// Timers for a new connection; a zero duration turns that timer off.
    pub fn new(idle: Duration, half_close: Duration) -> Timers {
        let on = |timeout: Duration| (!timeout.is_zero()).then_some(timeout);
        Timers {
            idle: on(idle),
            half_close: on(half_close),
            started: Instant::now(),
            last_activity_ms: Counter::new(0),
            half_closed: AtomicBool::new(false),
        }
    }

    /// The socket timeout to use as a tick, or `None` when no timer is on (then threads
    /// block until their peer acts, and never wake for nothing). A tenth of the shortest
    /// timer, between 10 ms and 5 s: a timer fires at most a tick after its deadline. Where
    /// `shutdown` wakes no blocked thread (Windows), never longer than [`CLOSE_CHECK`].
    pub fn tick(&self) -> Option<Duration> {
        let shortest = match (self.idle, self.half_close) {
            (Some(idle), Some(half_close)) => Some(idle.min(half_close)),
            (timer, None) | (None, timer) => timer,
        };
        let timer_tick = shortest.map(|shortest| (shortest / 10).clamp(MIN_TICK, MAX_TICK));
        match (timer_tick, CLOSE_CHECK) {
            (Some(tick), Some(check)) => Some(tick.min(check)),
            (tick, check) => tick.or(check),
        }
    }

    /// Notes that bytes just moved (or a side just finished sending).
    pub fn record_activity(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_activity_ms.set(now);
    }

    /// Notes that one side finished sending: from now on the half-close timer runs.
    pub fn record_eof(&self) {
        self.record_activity();
        self.half_closed.store(true, Ordering::Relaxed);
    }

    /// Which timer has expired, if any.
    pub fn expired(&self) -> Option<CloseReason> {
        let now = self.started.elapsed().as_millis() as u64;
        let quiet = Duration::from_millis(now.saturating_sub(self.last_activity_ms.get()));
        if self.half_closed.load(Ordering::Relaxed)
            && self.half_close.is_some_and(|limit| quiet >= limit)
        {
            return Some(CloseReason::HalfCloseTimeout);
        }
        if self.idle.is_some_and(|limit| quiet >= limit) {
            return Some(CloseReason::IdleTimeout);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_follows_the_shortest_timer_within_bounds() {
        let secs = Duration::from_secs;
        assert_eq!(Timers::new(Duration::ZERO, Duration::ZERO).tick(), CLOSE_CHECK);
        assert_eq!(Timers::new(secs(10), Duration::ZERO).tick(), Some(secs(1)));
        let longest = CLOSE_CHECK.map_or(MAX_TICK, |check| check.min(MAX_TICK));
        assert_eq!(Timers::new(secs(600), secs(60)).tick(), Some(longest));
        assert_eq!(Timers::new(Duration::from_millis(30), Duration::ZERO).tick(), Some(MIN_TICK));
    }

    #[test]
    fn idle_expires_only_when_nothing_moved() {
        let timers = Timers::new(Duration::from_millis(50), Duration::ZERO);
        assert_eq!(timers.expired(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(timers.expired(), Some(CloseReason::IdleTimeout));
        timers.record_activity();
        assert_eq!(timers.expired(), None);
    }

    #[test]
    fn half_close_timer_runs_only_after_an_eof() {
        let timers = Timers::new(Duration::ZERO, Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(timers.expired(), None, "no EOF yet");
        timers.record_eof();
        assert_eq!(timers.expired(), None, "the EOF itself counts as activity");
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(timers.expired(), Some(CloseReason::HalfCloseTimeout));
    }
}
