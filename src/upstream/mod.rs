//! Choosing an upstream for each new client from a route's list, and failing over.
//!
//! A route lists one or more upstreams. For every client the relay makes an *order* to try
//! them in, then dials each in turn until one connects. The order starts with the
//! *available* upstreams, arranged by the policy:
//!
//! - policy `first`: the list order, so the first upstream takes every client while it is up;
//! - policy `round-robin`: rotated by one for each new client, so clients are spread evenly
//!   over the available upstreams. The rotation runs over the available ones only, so a dead
//!   upstream's share is spread evenly over the others (A, dead, B: 15 and 15 of 30 clients)
//!   instead of going to its neighbour (10 and 20, before);
//! - policy `least-connections`: the one with the fewest open connections from this route
//!   first, ties broken by the round-robin rotation.
//!
//! An upstream is *unavailable* while it backs off after a failed connect
//! ([`Config::upstream_backoff`](crate::Config::upstream_backoff), 10 s by default, so new
//! clients go to the healthy upstreams first instead of each waiting for the dead one to
//! time out), and, with `--health-check`, while its checks say it is down (see [`health`]).
//! Unavailable upstreams come last in every order, not never: when none is available they
//! are all still tried, because a relay that gives up without trying helps nobody. The
//! first successful connect ends a back-off.
//!
//! Each upstream is resolved again on every attempt and its addresses raced Happy Eyeballs
//! style (see [`dial`]). An address that failed, or was still silent when another answered,
//! is remembered: later clients try every address that never failed first (in the
//! resolver's order), then the failed ones, the oldest failure first, until one of them
//! connects again. So no list of dead addresses can hide a live one: each client starts
//! with addresses nobody has tried yet, and a name with 99 dead addresses and one live one
//! is reached after a few clients, not never (as when only the 32 newest failures were
//! remembered and the others, forgotten, went first again). The back-off time only decides
//! when a failure is news worth a warning.
//!
//! An upstream address that is the route's own listen address (the same address, or the
//! same port of a wildcard listen reached through loopback) would make each client connect
//! to the relay itself, which dials itself again, until every slot is taken. It is never
//! dialled: the client is closed with `reason=self_loop`, warned about once per back-off.
//!
//! A dial that fails for a reason on this machine (out of descriptors, ports or memory) is
//! a *local* error: logged as such and counted apart, never counted against the upstream
//! nor backing it off, since the upstream was never reached.

pub mod counts;
pub mod dial;
pub mod events;
pub mod health;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::lock::lock;
use crate::net::address::{UDP_PREFIX, UNIX_PREFIX};
use crate::net::stream::Stream;
use crate::settings::config::{Config, Policy};
use crate::upstream::counts::UpstreamMetrics;
use crate::upstream::events::UpstreamEvents;
use dial::{DialError, DialRoom, Resolver};

/// At most this many failed addresses of one upstream are remembered; a name with more
/// forgets the oldest failure first. A DNS answer holds far fewer.
const MAX_REMEMBERED_ADDRESSES: usize = 1024;

/// A route's upstreams, its policy, and which upstreams and addresses are backing off.
#[derive(Debug)]
pub struct Upstreams {
    upstreams: Vec<Upstream>,
    policy: Policy,
    backoff: Duration,
    resolver: Resolver,
    /// Whether active health checks run: then they alone set each upstream's `up` state.
    checked: bool,
    /// The round-robin position: where the next client's order starts.
    next: AtomicUsize,
    /// When a local dial error was last logged as a warning (at most once per back-off).
    local_error_warned: Mutex<Option<Instant>>,
    /// When a self-loop was last logged as a warning (at most once per back-off).
    self_loop_warned: Mutex<Option<Instant>>,
    /// Where the route listens: an upstream address that reaches it is never dialled.
    listen: Option<SocketAddr>,
    /// How much room the process has for dial attempts on threads of their own.
    room: DialRoom,
    /// Where failures, back-offs and health changes are told.
    events: Arc<dyn UpstreamEvents>,
}

/// One upstream address, its back-off, and its counters.
#[derive(Debug)]
struct Upstream {
    address: String,
    /// Until when it is tried only after the available ones (`None`: healthy).
    backing_off_until: Mutex<Option<Instant>>,
    /// Resolved addresses that failed since they last connected, oldest failure first, each
    /// with the end of its own back-off.
    failed_addresses: Mutex<Vec<(SocketAddr, Instant)>>,
    /// Its counters, shared with the route's metrics. `up` is the health checks' verdict
    /// when they run; `active` is what `least-connections` compares.
    metrics: Arc<UpstreamMetrics>,
}

impl Upstream {
    fn is_backing_off(&self, now: Instant) -> bool {
        lock(&self.backing_off_until).is_some_and(|until| now < until)
    }

    /// Orders its resolved addresses for one dial: those that never failed first, in the
    /// resolver's order, then those that failed, the oldest failure first. A dead address
    /// costs nothing while another one answers, and the address tried longest ago comes
    /// before the one that just failed, so every address gets its turn.
    fn order_addresses(&self, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let failed = lock(&self.failed_addresses);
        let failure = |addr: &SocketAddr| failed.iter().position(|(known, _)| known == addr);
        let (never_failed, mut failed): (Vec<_>, Vec<_>) =
            addrs.into_iter().map(|addr| (addr, failure(&addr))).partition(|(_, at)| at.is_none());
        failed.sort_by_key(|(_, at)| *at); // positions in the list: the oldest failure first
        never_failed.into_iter().chain(failed).map(|(addr, _)| addr).collect()
    }

    /// Remembers that one address failed (as its newest failure) and starts its back-off;
    /// whether it was not backing off until now, so the failure is worth a warning.
    fn address_failed(&self, addr: SocketAddr, backoff: Duration) -> bool {
        let now = Instant::now();
        let mut failed = lock(&self.failed_addresses);
        let was_backing_off = failed.iter().any(|(known, until)| *known == addr && now < *until);
        failed.retain(|(known, _)| *known != addr);
        if failed.len() >= MAX_REMEMBERED_ADDRESSES {
            failed.remove(0); // the oldest failure is forgotten
        }
        failed.push((addr, now + backoff));
        !was_backing_off
    }

    fn address_connected(&self, addr: SocketAddr) {
        lock(&self.failed_addresses).retain(|(known, _)| *known != addr);
    }
}

/// One open connection to an upstream, counted in that upstream's open connections (which
/// `least-connections` compares) until it is dropped. The connection's first thread holds
/// it until the connection has ended, so the count goes down however it ends, by a panic
/// too (unwinding drops it).
#[derive(Debug)]
pub struct LiveConnection<'a> {
    upstream: &'a UpstreamMetrics,
}

impl Drop for LiveConnection<'_> {
    fn drop(&mut self) {
        self.upstream.record_disconnected();
    }
}

impl Upstreams {
    /// The upstreams of `config`, none backing off, counting in `counts` (the route's
    /// metrics made them from the same list; a missing entry gets counts of its own that
    /// nobody scrapes), for the route listening at `listen`, whose dials run attempts on
    /// threads of their own as `room` allows, telling `events` what fails.
    pub fn new(
        config: &Config,
        counts: &[Arc<UpstreamMetrics>],
        listen: Option<SocketAddr>,
        room: DialRoom,
        events: Arc<dyn UpstreamEvents>,
    ) -> Upstreams {
        let upstreams = config
            .upstreams()
            .enumerate()
            .map(|(index, address)| Upstream {
                address: address.to_string(),
                backing_off_until: Mutex::new(None),
                failed_addresses: Mutex::new(Vec::new()),
                metrics: match counts.get(index) {
                    Some(counters) if counters.upstream() == address => Arc::clone(counters),
                    _ => Arc::new(UpstreamMetrics::new(address)),
                },
            })
            .collect();
        Upstreams {
            upstreams,
            policy: config.policy,
            backoff: config.upstream_backoff,
            resolver: config.resolver,
            checked: !config.health_check.is_zero(),
            next: AtomicUsize::new(0),
            local_error_warned: Mutex::new(None),
            self_loop_warned: Mutex::new(None),
            listen,
            room,
            events,
        }
    }

    /// How many upstreams the route has.
    pub fn len(&self) -> usize {
        self.upstreams.len()
    }

    /// Whether upstream `index` should be tried before the others: not backing off, and
    /// not down by the health checks.
    fn is_available(&self, index: usize, now: Instant) -> bool {
        let upstream = &self.upstreams[index];
        !upstream.is_backing_off(now) && (!self.checked || upstream.metrics.is_up())
    }

    /// The order in which to try the upstreams for one new client, as indexes: the
    /// available ones as the policy arranges them, then the unavailable ones.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let (available, unavailable): (Vec<usize>, Vec<usize>) =
            (0..self.upstreams.len()).partition(|&index| self.is_available(index, now));
        let turn = match self.policy {
            Policy::First => 0,
            Policy::RoundRobin | Policy::LeastConnections => {
                self.next.fetch_add(1, Ordering::Relaxed)
            }
        };
        let mut available = rotated(available, turn);
        if self.policy == Policy::LeastConnections {
            // A stable sort: among equally loaded upstreams the rotation decides.
            available.sort_by_key(|&index| self.upstreams[index].metrics.active());
        }
        available.into_iter().chain(rotated(unavailable, turn)).collect()
    }

    /// Dials the upstreams in this client's order until one connects, giving each attempt
    /// the whole `timeout`. Each failure is reported to the route's events (counted; an upstream or
    /// address that starts backing off is logged once, not once per client). A local error
    /// (see [`DialError::is_local`]) ends the dial at once: every other upstream would fail
    /// the same way, and none of them is to blame.
    ///
    /// # Errors
    /// The last attempt's error when every upstream failed, or the local error.
    pub fn dial(
        &self,
        timeout: Duration,
        conn: u64,
    ) -> Result<(Stream, LiveConnection<'_>), DialError> {
        self.in_order(conn, |upstream| self.dial_upstream(upstream, timeout, conn))
    }

    /// A UDP route's dial, for flow `flow`: a socket of its own on an ephemeral port,
    /// `connect`ed to the upstream chosen as [`dial`](Upstreams::dial) chooses (policy,
    /// back-off, failover), so that it sends only there and receives only from there.
    /// Connecting a UDP socket sends nothing: it fails only here (no such name, no route,
    /// no local port); an upstream that is down shows later, as refused datagrams.
    ///
    /// # Errors
    /// As [`dial`](Upstreams::dial).
    pub fn connect_datagram(
        &self,
        flow: u64,
    ) -> Result<(UdpSocket, LiveConnection<'_>), DialError> {
        self.in_order(flow, |upstream| self.connect_datagram_to(upstream))
    }

    /// Tries `attempt` on the upstreams in this client's order until one succeeds. Each
    /// failure is reported to the route's events (counted; an upstream that starts backing
    /// off is logged once, not once per client). A local error (see
    /// [`DialError::is_local`]) ends the tries at once: every other upstream would fail the
    /// same way, and none of them is to blame.
    fn in_order<T>(
        &self,
        conn: u64,
        attempt: impl Fn(&Upstream) -> Result<T, DialError>,
    ) -> Result<(T, LiveConnection<'_>), DialError> {
        let observer = &*self.events;
        let mut last_error = None;
        for index in self.order() {
            let upstream = &self.upstreams[index];
            match attempt(upstream) {
                Ok(stream) => {
                    *lock(&upstream.backing_off_until) = None;
                    if !self.checked {
                        upstream.metrics.set_up(true);
                    }
                    upstream.metrics.record_connected();
                    return Ok((stream, LiveConnection { upstream: &upstream.metrics }));
                }
                Err(error) if error.is_local() => {
                    let warn = is_news(&self.local_error_warned, self.backoff);
                    observer.dial_local_error(conn, &upstream.metrics, &error, warn);
                    return Err(error);
                }
                Err(error @ DialError::SelfLoop { .. }) => {
                    // Not the upstream's failure but the configuration's: no back-off.
                    let warn = is_news(&self.self_loop_warned, self.backoff);
                    observer.self_loop(conn, &upstream.metrics, &error, warn);
                    last_error = Some(error);
                }
                Err(error) => {
                    self.back_off(upstream, conn, &error);
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

    /// `upstream` failed for client `conn`: it is tried after the available ones for the
    /// back-off, marked down (unless health checks decide that), and the failure reported
    /// (a warning only if it was healthy until now).
    fn back_off(&self, upstream: &Upstream, conn: u64, error: &dyn std::fmt::Display) {
        let mut until = lock(&upstream.backing_off_until);
        let was_healthy = until.is_none_or(|until| Instant::now() >= until);
        *until = Some(Instant::now() + self.backoff);
        drop(until);
        if !self.checked {
            upstream.metrics.set_up(false);
        }
        let backoff_ms = self.backoff.as_millis();
        self.events.upstream_failed(conn, &upstream.metrics, backoff_ms, error, was_healthy);
    }

    /// A UDP flow's upstream refused a datagram (its port is closed: an ICMP port
    /// unreachable): backs that upstream off as a failed TCP connect does, so the next
    /// flows go to the others first.
    pub fn datagram_refused(
        &self,
        live: &LiveConnection<'_>,
        flow: u64,
        error: &dyn std::fmt::Display,
    ) {
        let used = self.upstreams.iter().find(|u| std::ptr::eq(&*u.metrics, live.upstream));
        if let Some(upstream) = used {
            self.back_off(upstream, flow, error);
        }
    }

    /// Resolves one upstream and races its addresses, live ones first; reports each
    /// address that failed when it has several (with one, the upstream's own failure says
    /// it all) and backs it off.
    fn dial_upstream(
        &self,
        upstream: &Upstream,
        timeout: Duration,
        conn: u64,
    ) -> Result<Stream, DialError> {
        let observer = &*self.events;
        let address = &upstream.address;
        if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
            return dial::dial_unix(address, std::path::Path::new(path));
        }
        let resolved = self.resolve_elsewhere(address, address)?;
        let addrs = upstream.order_addresses(dial::interleave_families(&resolved));
        let race = dial::race(&addrs, timeout, self.room);
        if addrs.len() > 1 {
            for (addr, error) in &race.failed {
                if dial::is_local_error(error) {
                    continue; // not the address's fault
                }
                let first = upstream.address_failed(*addr, self.backoff);
                let backoff_ms = self.backoff.as_millis();
                observer.address_failed(conn, &upstream.metrics, addr, backoff_ms, error, first);
            }
        }
        match race.winner {
            Some((addr, stream)) => {
                upstream.address_connected(addr);
                Ok(Stream::Tcp(stream))
            }
            None => Err(DialError::Connect { upstream: address.clone(), attempts: race.failed }),
        }
    }

    /// Resolves one upstream of a UDP route and connects a new socket to its first address
    /// that takes it, live ones first (see [`Upstream::order_addresses`]).
    fn connect_datagram_to(&self, upstream: &Upstream) -> Result<UdpSocket, DialError> {
        let address = &upstream.address;
        let plain = address.strip_prefix(UDP_PREFIX).unwrap_or(address);
        let resolved = self.resolve_elsewhere(address, plain)?;
        let mut attempts = Vec::new();
        for addr in upstream.order_addresses(resolved) {
            let any = match addr {
                SocketAddr::V4(_) => SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0)),
                SocketAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
            };
            match UdpSocket::bind(any).and_then(|socket| socket.connect(addr).map(|()| socket)) {
                Ok(socket) => {
                    upstream.address_connected(addr);
                    return Ok(socket);
                }
                Err(error) => attempts.push((addr, error)),
            }
        }
        Err(DialError::Connect { upstream: address.clone(), attempts })
    }

    /// Resolves `host_port` (the upstream `address` as configured, less any `udp:`) and
    /// leaves out the route's own listen address.
    ///
    /// # Errors
    /// As [`resolve`](Upstreams::resolve); `SelfLoop` when the route's own address was all
    /// it resolved to.
    fn resolve_elsewhere(
        &self,
        address: &str,
        host_port: &str,
    ) -> Result<Vec<SocketAddr>, DialError> {
        let mut resolved = self.resolve(host_port)?;
        if let Some(listen) = self.listen {
            let own = resolved.iter().find(|addr| dial::reaches_listener(addr, &listen)).copied();
            resolved.retain(|addr| !dial::reaches_listener(addr, &listen));
            if let (Some(addr), true) = (own, resolved.is_empty()) {
                return Err(DialError::SelfLoop { upstream: address.to_string(), addr });
            }
        }
        Ok(resolved)
    }

    fn resolve(&self, upstream: &str) -> Result<Vec<SocketAddr>, DialError> {
        let resolve_error = |error| DialError::Resolve { upstream: upstream.to_string(), error };
        let addrs = (self.resolver)(upstream).map_err(resolve_error)?;
        if addrs.is_empty() {
            let error = std::io::Error::new(std::io::ErrorKind::NotFound, "no addresses");
            return Err(resolve_error(error));
        }
        Ok(addrs)
    }

    /// One active health check of upstream `index`: resolve it and connect (Happy Eyeballs
    /// as for a client) within `timeout`, then close. Addresses are not backed off by it.
    ///
    /// # Errors
    /// Why it could not connect.
    pub fn check(&self, index: usize, timeout: Duration) -> Result<(), DialError> {
        let address = &self.upstreams[index].address;
        if let Some(path) = address.strip_prefix(UNIX_PREFIX) {
            return dial::dial_unix(address, std::path::Path::new(path)).map(drop);
        }
        let resolved = self.resolve(address)?;
        let race = dial::race(&dial::interleave_families(&resolved), timeout, self.room);
        match race.winner {
            Some(_) => Ok(()), // the connection is closed as it is dropped here
            None => Err(DialError::Connect { upstream: address.clone(), attempts: race.failed }),
        }
    }

    /// The counters (and `up` state) of upstream `index`.
    pub fn metrics(&self, index: usize) -> &UpstreamMetrics {
        &self.upstreams[index].metrics
    }

    /// The health checks' verdict on upstream `index` changed to `up`. Coming up also ends
    /// a passive back-off, so clients go back to it at once.
    pub fn set_checked_state(&self, index: usize, up: bool) {
        let upstream = &self.upstreams[index];
        upstream.metrics.set_up(up);
        if up {
            *lock(&upstream.backing_off_until) = None;
        }
    }
}

/// Whether the upstream `address` (as configured) resolves to an address that reaches
/// `listen`, the route's own listen address: the address if so. What `--check` reports;
/// a name that does not resolve now is not a loop now.
pub fn reaches_itself(
    address: &str,
    listen: &SocketAddr,
    resolver: Resolver,
) -> Option<SocketAddr> {
    if address.starts_with(UNIX_PREFIX) || listen.port() == 0 {
        return None;
    }
    let resolved = resolver(address).ok()?;
    resolved.into_iter().find(|addr| dial::reaches_listener(addr, listen))
}

/// Whether an event that happens to every client in a storm (a local error, a self-loop)
/// is worth a warning now: at most one per `period`, recorded in `warned`.
fn is_news(warned: &Mutex<Option<Instant>>, period: Duration) -> bool {
    let now = Instant::now();
    let mut warned = lock(warned);
    if warned.is_some_and(|at| now.duration_since(at) < period) {
        return false;
    }
    *warned = Some(now);
    true
}

/// `items` rotated left by `turn` (modulo their number): the round-robin arrangement.
fn rotated(mut items: Vec<usize>, turn: usize) -> Vec<usize> {
    if !items.is_empty() {
        let by = turn % items.len();
        items.rotate_left(by);
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstreams(policy: Policy, count: usize) -> Upstreams {
        let addresses: Vec<String> = (1..=count).map(|n| format!("127.0.0.1:{n}")).collect();
        let config = Config {
            upstream: addresses[0].clone(),
            more_upstreams: addresses[1..].to_vec(),
            policy,
            ..Config::default()
        };
        // No counts given: each upstream gets counts of its own.
        let metrics = Arc::new(crate::ops::metrics::RouteMetrics::new("test"));
        let events = Arc::new(crate::ops::observe::Observer::for_route(&config, metrics));
        Upstreams::new(
            &config,
            &[],
            None,
            DialRoom { attempts: 8, connections: usize::MAX },
            events,
        )
    }

    fn back_off(upstreams: &Upstreams, index: usize) {
        *lock(&upstreams.upstreams[index].backing_off_until) =
            Some(Instant::now() + Duration::from_secs(60));
    }

    /// Which upstream each of `clients` new clients would be sent to first.
    fn first_choices(list: &Upstreams, clients: usize) -> Vec<usize> {
        (0..clients).map(|_| list.order()[0]).collect()
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
    fn round_robin_spreads_a_dead_upstreams_share_evenly() {
        let list = upstreams(Policy::RoundRobin, 3);
        back_off(&list, 1);
        let choices = first_choices(&list, 30);
        let count = |index| choices.iter().filter(|&&choice| choice == index).count();
        assert_eq!((count(0), count(1), count(2)), (15, 0, 15), "{choices:?}");
        assert_eq!(list.order().last(), Some(&1), "the dead one is still tried, last");
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
        *lock(&list.upstreams[0].backing_off_until) = Some(Instant::now());
        assert_eq!(list.order(), [0, 1]);
    }

    #[test]
    fn least_connections_picks_the_least_loaded_and_rotates_ties() {
        let list = upstreams(Policy::LeastConnections, 3);
        assert_eq!(first_choices(&list, 3), [0, 1, 2], "all idle: round-robin");
        let busy = LiveConnection { upstream: list.metrics(0) };
        list.metrics(0).record_connected();
        list.metrics(2).record_connected();
        let also_busy = LiveConnection { upstream: list.metrics(2) };
        assert_eq!(first_choices(&list, 4), [1, 1, 1, 1]);
        drop(busy);
        assert_eq!(list.metrics(0).active(), 0, "dropping the connection counts it closed");
        assert_eq!(first_choices(&list, 2).iter().filter(|&&c| c == 2).count(), 0);
        drop(also_busy);
    }

    #[test]
    fn a_live_connection_is_counted_closed_by_a_panic_too() {
        let list = upstreams(Policy::LeastConnections, 1);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            list.metrics(0).record_connected();
            let _live = LiveConnection { upstream: list.metrics(0) };
            panic!("a bug in a connection thread");
        }));
        assert!(result.is_err());
        assert_eq!(list.metrics(0).active(), 0);
    }

    #[test]
    fn down_upstreams_go_last_only_when_checks_run() {
        let mut list = upstreams(Policy::First, 2);
        list.set_checked_state(0, false);
        assert_eq!(list.order(), [0, 1], "without checks, `up` does not steer");
        list.checked = true;
        assert_eq!(list.order(), [1, 0]);
        list.set_checked_state(0, true);
        assert_eq!(list.order(), [0, 1]);
    }

    #[test]
    fn a_failed_address_goes_last_until_it_connects_again() {
        let list = upstreams(Policy::First, 1);
        let upstream = &list.upstreams[0];
        let (v6, v4): (SocketAddr, SocketAddr) =
            ("[::1]:7".parse().unwrap(), "127.0.0.1:7".parse().unwrap());
        assert_eq!(upstream.order_addresses(vec![v6, v4]), [v6, v4]);
        assert!(upstream.address_failed(v6, Duration::ZERO), "news the first time");
        assert_eq!(upstream.order_addresses(vec![v6, v4]), [v4, v6]);
        assert!(upstream.address_failed(v6, Duration::from_secs(60)), "its back-off ended: news");
        assert!(!upstream.address_failed(v6, Duration::from_secs(60)), "not while backing off");
        assert_eq!(upstream.order_addresses(vec![v6, v4]), [v4, v6], "still behind v4");
        upstream.address_connected(v6);
        assert_eq!(upstream.order_addresses(vec![v6, v4]), [v6, v4]);
    }

    #[test]
    fn failed_addresses_take_turns_oldest_failure_first_so_none_hides_the_live_one() {
        let list = upstreams(Policy::First, 1);
        let upstream = &list.upstreams[0];
        let addrs: Vec<SocketAddr> =
            (1..=100).map(|n| SocketAddr::from(([127, 0, 0, 1], n))).collect();
        // Each client gets through 20 dead addresses before its time is up, and the back-off
        // (zero here) ends before the next client comes: the failed ones still go last.
        let mut tried = Vec::new();
        for _client in 0..5 {
            let order = upstream.order_addresses(addrs.clone());
            for addr in &order[..20] {
                upstream.address_failed(*addr, Duration::ZERO);
            }
            tried.extend_from_slice(&order[..20]);
        }
        tried.sort_unstable();
        assert_eq!(tried, addrs, "five clients of 20 attempts each tried every address once");
        // All failed now: the one that failed longest ago comes first.
        assert_eq!(upstream.order_addresses(addrs.clone())[0], addrs[0]);
        upstream.address_failed(addrs[0], Duration::ZERO);
        assert_eq!(upstream.order_addresses(addrs.clone())[0], addrs[1]);
    }
}
