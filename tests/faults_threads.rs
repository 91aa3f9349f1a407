//! Faults around connection threads, injected through [`tcprelay::ThreadHook`] (the
//! [`TestHooks`] each relay here is bound with):
//! the OS refusing a thread, a thread panicking, a dial held back until the client is gone,
//! and the connection limit's bound on live threads.
//!
//! The hook is a plain `fn`, so what it does is set in statics ([`PLAN`], [`LIVE`]); the
//! tests run one at a time ([`serial`]) so that one test's plan never meets another's
//! relay. They are in a binary of their own for the same reason.
#![forbid(unsafe_code)]

mod support;

use std::io::{self, ErrorKind, Read};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, mpsc};

use support::*;
use tcprelay::Config;
use tcprelay::{TestHooks, ThreadRole, ThreadStage};

/// What the hook does next.
#[derive(Debug, Default)]
struct Plan {
    /// Fail once at this stage: an error at `Spawning`, a panic at `Started`.
    fault_at: Option<ThreadStage>,
    /// Hold every first thread at `Started` (before it dials) while this is set.
    hold_first_threads: bool,
    /// How many first threads are being held.
    held: usize,
}

static PLAN: Mutex<Plan> = Mutex::new(Plan { fault_at: None, hold_first_threads: false, held: 0 });
/// Signalled whenever [`PLAN`] changes.
static PLAN_CHANGED: Condvar = Condvar::new();
/// Connection threads alive now, and the most ever alive at once.
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn plan() -> MutexGuard<'static, Plan> {
    // A panic injected on purpose may poison nothing here (the lock is not held then), but a
    // failing test might: the plan is still usable.
    PLAN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The [`ThreadHook`](tcprelay::ThreadHook) every relay in this binary uses.
fn hook(stage: ThreadStage) -> io::Result<()> {
    match stage {
        ThreadStage::Started(_) => {
            let live = LIVE.fetch_add(1, Ordering::SeqCst) + 1;
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        ThreadStage::Finished(_) => {
            LIVE.fetch_sub(1, Ordering::SeqCst);
        }
        ThreadStage::Spawning(_) => {}
    }
    let mut plan = plan();
    if plan.fault_at == Some(stage) {
        plan.fault_at = None;
        drop(plan);
        return match stage {
            ThreadStage::Spawning(_) => Err(io::Error::other("injected: no thread for you")),
            _ => panic!("injected panic at {stage:?} (this message is expected)"),
        };
    }
    if stage == ThreadStage::Started(ThreadRole::First) && plan.hold_first_threads {
        plan.held += 1;
        PLAN_CHANGED.notify_all();
        while plan.hold_first_threads {
            let (next, timeout) =
                PLAN_CHANGED.wait_timeout(plan, TIMEOUT).unwrap_or_else(PoisonError::into_inner);
            plan = next;
            if timeout.timed_out() {
                break; // the test failed to release us; don't hang the binary
            }
        }
        plan.held -= 1;
    }
    Ok(())
}

/// Sets the plan for the next connection and resets the counters.
fn arm(fault_at: Option<ThreadStage>) {
    assert_eq!(LIVE.load(Ordering::SeqCst), 0, "a connection thread from an earlier test");
    PEAK.store(0, Ordering::SeqCst);
    *plan() = Plan { fault_at, ..Plan::default() };
}

/// A relay to `upstream` with the test hook and at most `max_connections` connections.
fn hooked_relay(upstream: impl ToString, max_connections: usize) -> TestRelay {
    let config = Config {
        upstream: upstream.to_string(),
        max_connections,
        // Threads exit with their connection instead of parking for the next one, so the
        // connection-thread count can return to the baseline (tests/thread_pool.rs covers
        // the parked threads).
        thread_keep_alive: std::time::Duration::ZERO,
        ..quiet_config()
    };
    TestRelay::hooked(config, TestHooks { thread_hook: hook, ..TestHooks::default() })
}

/// An upstream that echoes, and reports how each connection ended: `Ok(bytes echoed)` at
/// EOF, or the error kind.
fn reporting_echo() -> (Upstream, mpsc::Receiver<Result<usize, ErrorKind>>) {
    let (report, reports) = mpsc::channel();
    let upstream = Upstream::start(move |stream| {
        let echoed = std::io::copy(&mut &stream, &mut &stream);
        let _ = stream.shutdown(Shutdown::Write);
        report
            .send(echoed.map(|n| n as usize).map_err(|error| error.kind()))
            .expect("the test waits to hear how the upstream connection ended");
    });
    (upstream, reports)
}

/// One echo exchange through the relay.
fn assert_echo(relay: &TestRelay, message: &[u8]) {
    assert_eq!(echo_through(relay.addr, message), message);
}

/// Waits until the client's connection ends (EOF or reset; not a read timeout).
fn assert_closed(client: &TcpStream) {
    match (&*client).read(&mut [0; 1]) {
        Ok(0) => {}
        Ok(_) => panic!("unexpected data"),
        Err(error) => assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}"),
    }
}

/// Every later client is served, more of them than the limit: the failed one's slot came
/// back. Then nothing is left behind.
fn assert_relay_recovered(relay: &TestRelay, max_connections: usize, baseline: &Baseline) {
    for round in 0..=max_connections {
        assert_echo(relay, format!("client {round} after the fault").as_bytes());
    }
    baseline.assert_restored();
    assert!(eventually(|| LIVE.load(Ordering::SeqCst) == 0), "connection threads left");
}

/// One injected fault: the tests run one at a time, a reporting echo upstream, a relay with
/// the hook and at most `max_connections`, the baseline taken, and the fault armed.
struct Fault {
    relay: TestRelay,
    upstream: Upstream,
    upstream_ends: mpsc::Receiver<Result<usize, ErrorKind>>,
    baseline: Baseline,
    max_connections: usize,
    /// Last, so that it is dropped last: the next test starts once all of this is gone.
    _serial: MutexGuard<'static, ()>,
}

impl Fault {
    fn armed(at: ThreadStage, max_connections: usize) -> Fault {
        let serial = serial();
        let (upstream, upstream_ends) = reporting_echo();
        let relay = hooked_relay(upstream.addr, max_connections);
        let baseline = Baseline::take();
        arm(Some(at));
        Fault { relay, upstream, upstream_ends, baseline, max_connections, _serial: serial }
    }

    /// A client that sends `message` and is closed by the relay, the fault's victim.
    fn victim(&self, message: &[u8]) -> TcpStream {
        let client = connect(self.relay.addr);
        write_all(&client, message)
            .expect("the victim's message goes out before the relay closes it");
        assert_closed(&client);
        client
    }

    /// The upstream connection the relay had dialled ends (EOF or reset), not by a timeout.
    fn assert_upstream_closed(&self) {
        let end = self.upstream_ends.recv_timeout(TIMEOUT).expect("the upstream connection ends");
        assert!(end == Ok(0) || end == Err(ErrorKind::ConnectionReset), "{end:?}");
    }

    /// See [`assert_relay_recovered`].
    fn assert_recovered(&self) {
        assert_relay_recovered(&self.relay, self.max_connections, &self.baseline);
    }
}

#[test]
fn spawn_failure_of_the_first_thread_closes_that_client_only() {
    let fault = Fault::armed(ThreadStage::Spawning(ThreadRole::First), 2);
    let refused = fault.victim(b"anyone there?");

    assert_eq!(
        fault.upstream.accepted(),
        0,
        "no upstream connection for a client without a thread"
    );
    drop(refused);
    fault.assert_recovered();
    for _ in 0..3 {
        assert!(
            fault
                .upstream_ends
                .recv_timeout(TIMEOUT)
                .expect("every later client's upstream connection ends")
                .is_ok()
        );
    }
}

#[test]
fn spawn_failure_of_the_second_thread_closes_both_sockets() {
    let fault = Fault::armed(ThreadStage::Spawning(ThreadRole::Second), 2);
    let refused = fault.victim(b"anyone there?");

    // The upstream had been dialled: it sees the relay close, not a timeout.
    fault.assert_upstream_closed();
    drop(refused);
    fault.assert_recovered();
}

/// A bug (here: a panic injected as the first thread starts) costs one client: the process
/// lives on, the client's socket is closed, and its slot under the limit comes back.
#[test]
fn panic_in_the_first_thread_closes_that_client_and_frees_its_slot() {
    let fault = Fault::armed(ThreadStage::Started(ThreadRole::First), 1);
    let unlucky = fault.victim(b"hello");

    assert_eq!(fault.upstream.accepted(), 0, "the thread died before dialling");
    drop(unlucky);
    fault.assert_recovered();
}

/// A panic as the second thread starts, after the upstream was dialled: nobody will ever
/// copy client → upstream, so the relay must close both sockets at once rather than leave
/// the first thread waiting on an upstream that waits for the client.
#[test]
fn panic_in_the_second_thread_closes_both_sockets_and_frees_the_slot() {
    let fault = Fault::armed(ThreadStage::Started(ThreadRole::Second), 1);
    let unlucky = fault.victim(b"hello");

    fault.assert_upstream_closed();
    drop(unlucky);
    fault.assert_recovered();
}

/// A panic as the second thread ends, after it delivered the client's bytes and passed its
/// EOF on: the relay closes the connection (`panicked`), and the close still counts every
/// byte that thread delivered. The count is the connection's own, kept as the copy writes;
/// the thread never has to hand it back (it did, over a channel, and a panic lost it).
#[test]
fn panic_as_the_second_thread_ends_still_counts_the_bytes_it_delivered() {
    let fault = Fault::armed(ThreadStage::Finished(ThreadRole::Second), 1);
    let sent = pattern(24, 10_000);
    let client = connect(fault.relay.addr);
    write_all(&client, &sent).expect("the client's bytes go out");
    client.shutdown(Shutdown::Write).expect("the client half-closes");
    // All, some or none of the echo, then the relay's close: the echo races the panic.
    let _ = read_all(&client);

    let metrics = settled(&fault.relay.metrics);
    assert_eq!(metrics.closed("panicked"), Some(1), "{metrics:?}");
    assert_eq!(metrics.bytes_client_to_upstream, sent.len() as u64, "bytes lost at the panic");
    drop(client);
    fault.assert_recovered();
}

/// The client is gone before the relay dials (its first thread is held at `Started` until
/// the client has closed): the relay still dials, passes the close on, and ends cleanly.
#[test]
fn client_gone_before_the_dial_finishes_is_passed_on_and_cleaned_up() {
    let _serial = serial();
    let (upstream, upstream_ends) = reporting_echo();
    let relay = hooked_relay(upstream.addr, 2);
    let baseline = Baseline::take();
    arm(None);
    plan().hold_first_threads = true;

    let impatient = connect(relay.addr);
    write_all(&impatient, b"bye").expect("the impatient client sends before it leaves");
    {
        let plan = plan();
        let (plan, _) = PLAN_CHANGED
            .wait_timeout_while(plan, TIMEOUT, |plan| plan.held == 0)
            .unwrap_or_else(PoisonError::into_inner);
        assert_eq!(plan.held, 1, "the first thread reached the hook");
    }
    drop(impatient); // closed before the relay has even started dialling
    plan().hold_first_threads = false;
    PLAN_CHANGED.notify_all();

    // The upstream gets what the client sent, then EOF (or a reset if the relay's write of
    // the echo met the closed client first).
    let end = upstream_ends.recv_timeout(TIMEOUT).expect("the upstream connection ends");
    assert!(end == Ok(3) || end == Err(ErrorKind::ConnectionReset), "{end:?}");
    assert_relay_recovered(&relay, 2, &baseline);
}

/// With `max_connections` 8 and 40 clients at once: never more than 8 upstream connections
/// (counted exactly, see [`GatedEcho`]) and never more than 16 connection threads, and
/// every client is served in the end.
#[test]
fn max_connections_bounds_upstream_connections_and_threads() {
    const MAX: usize = 8;
    const CLIENTS: u64 = 40;
    let _serial = serial();
    let upstream = GatedEcho::start();
    let relay = hooked_relay(upstream.addr(), MAX);
    let baseline = Baseline::take();
    arm(None);

    echo_clients_at_once(relay.addr, CLIENTS, || {
        // Every client is connected and the relay is full: 32 clients wait in the backlog.
        assert!(upstream.wait_until_live(MAX), "the relay never reached its limit");
        upstream.open_gate();
    });

    assert_eq!(upstream.peak(), MAX, "upstream connections at once");
    assert_eq!(upstream.accepted(), CLIENTS as usize, "every client was served");
    let peak_threads = PEAK.load(Ordering::SeqCst);
    assert!(peak_threads <= 2 * MAX, "{peak_threads} connection threads at once");
    assert!(peak_threads > MAX, "the test never had both threads of many connections");
    baseline.assert_restored();
    assert!(eventually(|| LIVE.load(Ordering::SeqCst) == 0), "connection threads left");
}
