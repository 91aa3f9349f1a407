//! Choosing an upstream for each new client from a route's list, and failing over.
//!
//! A route lists one or more upstreams. For every client the relay makes an *order* to try
//! them in, then dials each in turn until one connects:
//!
//! - policy `first`: the list order, so the first upstream takes every client while it is up;
//! - policy `round-robin`: the list order rotated by one for each new client, so clients are
//!   spread over the upstreams, and a failed one still fails over to the next.
//!
//! After a failed connect, an upstream *backs off* for a short while
//! ([`Config::upstream_backoff`](crate::Config::upstream_backoff), 10 s by default): it moves
//! to the end of every order, so new clients go to the healthy upstreams first instead of each
//! waiting for the dead one to time out. It is not removed: when every upstream is backing off
//! they are all still tried, in the usual order, because a relay that gives up without trying
//! helps nobody. The first successful connect ends the back-off.
//!
//! Each address is resolved again on every attempt (see `dial.rs`).

pub mod dial;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::config::Policy;
use crate::net::stream::Stream;
use crate::observe::Observer;
use dial::DialError;

/// A route's upstreams, its policy, and which upstreams are backing off.
#[derive(Debug)]
pub struct Upstreams {
    upstreams: Vec<Upstream>,
    policy: Policy,
    backoff: Duration,
    /// The round-robin position: where the next client's order starts.
    next: AtomicUsize,
}

/// One upstream address and its back-off.
#[derive(Debug)]
struct Upstream {
    address: String,
    /// Until when it is tried only after the healthy ones (`None`: healthy).
    backing_off_until: Mutex<Option<Instant>>,
}

impl Upstream {
    fn lock_backoff(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        // A plain Option that is never half-written: a poisoned lock is still good to use.
        self.backing_off_until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_backing_off(&self, now: Instant) -> bool {
        self.lock_backoff().is_some_and(|until| now < until)
    }
}

impl Upstreams {
    /// The upstreams of `config`, none backing off.
    pub fn new(config: &Config) -> Upstreams {
        let upstreams = config
            .upstreams()
            .map(|address| Upstream {
                address: address.to_string(),
                backing_off_until: Mutex::new(None),
            })
            .collect();
        Upstreams {
            upstreams,
            policy: config.policy,
            backoff: config.upstream_backoff,
            next: AtomicUsize::new(0),
        }
    }

    /// The order in which to try the upstreams for one new client, as indexes: the policy's
    /// order with the upstreams that are backing off moved to the end (in the same order).
    fn order(&self) -> Vec<usize> {
        let count = self.upstreams.len();
        let start = match self.policy {
            Policy::First => 0,
            Policy::RoundRobin => self.next.fetch_add(1, Ordering::Relaxed) % count.max(1),
        };
        let now = Instant::now();
        let rotated = (0..count).map(|offset| (start + offset) % count);
        let (healthy, backing_off): (Vec<usize>, Vec<usize>) =
            rotated.partition(|&index| !self.upstreams[index].is_backing_off(now));
        healthy.into_iter().chain(backing_off).collect()
    }

    /// Dials the upstreams in this client's order until one connects, giving each attempt
    /// the whole `timeout`. Each failure is reported to `observer` (counted; an upstream that
    /// starts backing off is logged once, not once per client).
    ///
    /// # Errors
    /// The last attempt's error when every upstream failed.
    pub fn dial(
        &self,
        timeout: Duration,
        observer: &Observer,
        conn: u64,
    ) -> Result<Stream, DialError> {
        let mut last_error = None;
        for index in self.order() {
            let upstream = &self.upstreams[index];
            match dial::dial(&upstream.address, timeout) {
                Ok(stream) => {
                    *upstream.lock_backoff() = None;
                    return Ok(stream);
                }
                Err(error) => {
                    let mut until = upstream.lock_backoff();
                    let was_healthy = until.is_none_or(|until| Instant::now() >= until);
                    *until = Some(Instant::now() + self.backoff);
                    drop(until);
                    let backoff_ms = self.backoff.as_millis();
                    observer.upstream_failed(
                        conn,
                        &upstream.address,
                        backoff_ms,
                        &error,
                        was_healthy,
                    );
                    last_error = Some(error);
                }
            }
        }
        // A route always has at least one upstream, so the loop ran at least once.
        Err(last_error.unwrap_or_else(|| DialError::Resolve {
            upstream: String::new(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "no upstream configured"),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(policy: Policy, count: usize) -> Upstreams {
        let addresses: Vec<String> = (1..=count).map(|n| format!("127.0.0.1:{n}")).collect();
        Upstreams::new(&Config {
            upstream: addresses[0].clone(),
            more_upstreams: addresses[1..].to_vec(),
            policy,
            ..Config::default()
        })
    }

    fn back_off(upstreams: &Upstreams, index: usize) {
        *upstreams.upstreams[index].lock_backoff() = Some(Instant::now() + Duration::from_secs(60));
    }

    #[test]
    fn first_keeps_the_list_order() {
        let list = upstreams(Policy::First, 3);
        assert_eq!(list.order(), [0, 1, 2]);
        assert_eq!(list.order(), [0, 1, 2]);
    }

    #[test]
    fn round_robin_rotates_for_each_client() {
        let list = upstreams(Policy::RoundRobin, 3);
        assert_eq!(list.order(), [0, 1, 2]);
        assert_eq!(list.order(), [1, 2, 0]);
        assert_eq!(list.order(), [2, 0, 1]);
        assert_eq!(list.order(), [0, 1, 2]);
    }

    #[test]
    fn backing_off_upstreams_go_last_but_stay_in_the_order() {
        let list = upstreams(Policy::First, 3);
        back_off(&list, 0);
        assert_eq!(list.order(), [1, 2, 0]);
        back_off(&list, 1);
        back_off(&list, 2);
        assert_eq!(list.order(), [0, 1, 2], "all backing off: all still tried, in order");
    }

    #[test]
    fn a_back_off_ends_when_its_time_is_up() {
        let list = upstreams(Policy::First, 2);
        *list.upstreams[0].lock_backoff() = Some(Instant::now());
        assert_eq!(list.order(), [0, 1]);
    }
}
