//! Faults seen from outside the `tcprelay` process: its memory while a client stops
//! reading, its log at the connection limit, and its behaviour when it runs out of file
//! descriptors. Each test runs the real binary and reads /proc/PID for what only the
//! process itself knows (resident memory, CPU time, descriptors, threads).
#![forbid(unsafe_code)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use support::*;

/// A client that stops reading while the upstream floods: the relay holds at most its copy
/// buffer (8 KiB) in memory, however much the upstream has pushed into it, and the idle
/// timeout frees the connection once nothing moves.
#[test]
fn client_that_stops_reading_costs_bounded_memory_and_is_closed_by_the_idle_timeout() {
    // The relay may grow by this much while flooded (measured: about 50 kB, two thread
    // stacks and allocator bookkeeping). The flood must push at least twice as much, so a
    // relay that buffered it would fail.
    const RSS_GROWTH_BOUND_KB: u64 = 1024;
    let (flood_ended, flooded) = mpsc::channel();
    let upstream = Upstream::start(move |stream| {
        // Write until the relay closes the connection: every buffer on the way fills up
        // (the client's, the relay's, ours), then the idle timeout fires.
        let chunk = pattern(21, 64 * 1024);
        let mut written = 0u64;
        let end = loop {
            match (&stream).write(&chunk) {
                Ok(n) => written += n as u64,
                Err(error) => break error.kind(), // WouldBlock: our 10 s write timeout
            }
        };
        flood_ended.send((written, end)).unwrap();
    });
    let upstream_arg = upstream.addr.to_string();
    let relay = RelayProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream_arg,
        "--idle-timeout",
        "1s",
        // Threads exit when their connection ends, rather than parking for the next one,
        // so that "threads freed" is visible in the thread count.
        "--thread-keep-alive",
        "0",
    ]);
    // The `listening on` line comes before the accept thread starts; `serving` comes from it.
    relay.log_line_with("msg=serving");
    let idle_rss = relay.status("VmRSS");
    let idle_threads = relay.status("Threads");
    let idle_fds = relay.open_fds().len();

    let client = connect(relay.addr); // never reads
    let (written, end) = flooded.recv_timeout(TIMEOUT).expect("the flood ends");
    let line = relay.log_line_with("connection closed");
    let peak_rss = relay.status("VmHWM"); // the most the relay was ever resident

    eprintln!("flood: {written} bytes; relay RSS: {idle_rss} kB idle, peak {peak_rss} kB");
    assert!(matches!(end, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe), "{end:?}");
    assert!(line.contains("reason=idle_timeout"), "{line}");
    assert!(written >= 2 * RSS_GROWTH_BOUND_KB * 1024, "only {written} bytes: not a flood");
    assert!(
        peak_rss <= idle_rss + RSS_GROWTH_BOUND_KB,
        "relay grew from {idle_rss} kB to {peak_rss} kB while {written} bytes came in"
    );
    assert!(eventually(|| relay.status("Threads") == idle_threads), "connection threads left");
    drop(client);
    assert!(eventually(|| relay.open_fds().len() == idle_fds), "descriptors left");
}

/// At the limit the relay stops accepting and says so once; when the queue of waiting
/// clients is gone it says so once more. Not once per client: 40 clients through 8 slots
/// are one episode, two lines.
#[test]
fn connection_limit_is_logged_once_when_reached_and_once_when_cleared() {
    const MAX: usize = 8;
    const CLIENTS: u64 = 40;
    let upstream = GatedEcho::start();
    let upstream_arg = upstream.addr().to_string();
    let relay = RelayProcess::start(&[
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &upstream_arg,
        "--max-connections",
        "8",
    ]);

    echo_clients_at_once(relay.addr, CLIENTS, || {
        assert!(upstream.wait_until_live(MAX), "the relay never reached its limit");
        relay.log_line_with("connection limit reached");
        upstream.open_gate();
    });
    relay.log_line_with("connection limit cleared");
    assert!(eventually(|| relay.log_count("connection closed") == CLIENTS as usize));

    assert_eq!(upstream.peak(), MAX, "upstream connections at once");
    let log = relay.kill_and_collect_log();
    let count = |needle: &str| log.iter().filter(|line| line.contains(needle)).count();
    assert_eq!(count("connection limit reached"), 1, "{log:#?}");
    assert_eq!(count("connection limit cleared"), 1, "{log:#?}");
}

/// Starts the relay with at most `limit` descriptors, or `limit + 1`, whichever leaves an
/// odd number free, and returns it with how many connections fit.
///
/// Why odd: Linux reserves the descriptor for `accept` *before* it blocks, so a waiting
/// accept loop always holds one. With an odd number free, the connections (two descriptors
/// each) use all the others. The next client is accepted into that reserved descriptor; the
/// accept after it fails with EMFILE (the path under test) and so does that client's dial,
/// which closes the client and gives the descriptor back.
fn relay_at_descriptor_limit(limit: usize, args: &[&str]) -> (RelayProcess, usize) {
    for limit in [limit, limit + 1] {
        let relay = RelayProcess::start_with_fd_limit(limit, args);
        // Only descriptors below the limit count against it (some may be inherited above).
        let used = relay.open_fds().iter().filter(|&&fd| (fd as usize) < limit).count();
        let free = limit - used;
        if free % 2 == 1 {
            return (relay, free / 2);
        }
    }
    unreachable!("one of two consecutive limits leaves an odd number free")
}

/// Out of descriptors (EMFILE) with more clients arriving than there are descriptors: the
/// relay neither exits nor spins (its CPU time grows by less than a fifth of the wall
/// time), warns once rather than once per client, refuses the clients it cannot serve
/// (EOF, not a hang), and serves new clients normally once descriptors are free again.
#[test]
fn out_of_descriptors_the_relay_neither_exits_nor_spins_and_recovers() {
    const LIMIT: usize = 64;
    const SATURATED_FOR: Duration = Duration::from_secs(2);
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let args = ["--listen", "127.0.0.1:0", "--upstream", &upstream_arg];
    let (mut relay, fit) = relay_at_descriptor_limit(LIMIT, &args);
    let idle_fds = relay.open_fds().len();
    let echo = |client: &TcpStream| {
        write_all(client, b"x").unwrap();
        let mut echoed = [0; 1];
        (&*client).read_exact(&mut echoed).map(|()| echoed)
    };

    // Use up the descriptors, one served connection at a time.
    let held: Vec<TcpStream> = (0..fit)
        .map(|n| {
            let client = connect(relay.addr);
            assert_eq!(echo(&client).unwrap_or_else(|e| panic!("client {n}: {e}")), *b"x");
            client
        })
        .collect();
    // More clients than the relay has descriptors arrive at once, while we measure.
    let (cpu_before, wall_before) = (relay.cpu_time(), Instant::now());
    let refused: Vec<TcpStream> = (0..LIMIT).map(|_| connect(relay.addr)).collect();
    for client in &refused {
        assert!(read_all(client).expect("EOF, not a hang").is_empty(), "a refused client");
    }
    thread::sleep(SATURATED_FOR.saturating_sub(wall_before.elapsed())); // a measuring window
    let (cpu, wall) = (relay.cpu_time() - cpu_before, wall_before.elapsed());

    eprintln!("{fit} connections fit; saturated: {cpu:?} of CPU in {wall:?}");
    assert!(relay.is_running(), "the relay exited when it ran out of descriptors");
    assert!(cpu < wall / 5, "the relay spins: {cpu:?} of CPU in {wall:?}");
    assert_eq!(upstream.accepted(), fit, "an upstream connection without descriptors?");
    assert_eq!(relay.log_count("accept failed"), 1, "the EMFILE warning is rate-limited");
    assert!(relay.log_count("accept recovered") <= 1, "the recovery note is rate-limited too");

    drop(refused);
    drop(held);
    // The relay frees a connection's descriptors only after both its threads saw the close;
    // a client that came before that would find no descriptor for its dial (and be refused
    // with EOF, as designed). No signal says when they are free, so poll.
    assert!(
        eventually(|| relay.open_fds().len() <= idle_fds),
        "descriptors not given back: {} open, {idle_fds} at the start",
        relay.open_fds().len()
    );
    let fresh = connect(relay.addr);
    assert_eq!(echo(&fresh).expect("served again once descriptors are free"), *b"x");
    assert!(relay.is_running());
}

/// Asked for more connections than fit under `vm.max_map_count`, the relay says so and caps
/// itself there (std would abort the process past it, see src/map_limit.rs), and still
/// serves.
#[test]
fn max_connections_beyond_the_memory_map_limit_is_capped_with_a_warning() {
    let Ok(limit) = std::fs::read_to_string("/proc/sys/vm/max_map_count") else {
        eprintln!("skipped: no /proc/sys/vm/max_map_count here");
        return;
    };
    let limit: usize = limit.trim().parse().expect("a number in max_map_count");
    let fits = (limit - 2_000) / 9; // src/map_limit.rs: 2,000 maps reserved, 9 per connection
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let asked = (fits + 1).to_string();
    let relay =
        RelayProcess::start(&["-l", ":0", "-u", &upstream_arg, "--max-connections", &asked]);

    let warning = relay.log_line_with("max-connections lowered to fit vm.max_map_count");
    assert!(warning.contains(&format!("asked={asked}")), "{warning}");
    assert!(warning.contains(&format!("allowed={fits}")), "{warning}");
    assert_eq!(echo_through(relay.addr, b"still serving"), b"still serving");
}

/// Out of descriptors while *dialling* is the relay's own trouble, not the upstream's
/// (issue 11): the log says so, `tcprelay_upstream_connect_failures_total` stays 0, and the
/// first upstream is not backed off, so the first client once descriptors are free goes to
/// it at once, not to the second upstream.
#[test]
fn out_of_descriptors_while_dialling_is_a_local_error_and_backs_no_upstream_off() {
    const LIMIT: usize = 32;
    let first = Upstream::echo();
    let second = Upstream::banner("second");
    let upstreams = format!("{},{}", first.addr, second.addr);
    let args = ["-l", "127.0.0.1:0", "-u", &upstreams, "--admin", "127.0.0.1:0"];
    let relay = RelayProcess::start_with_fd_limit_and_admin(LIMIT, &args, true);
    let idle_fds = relay.open_fds().len();
    let echo = |client: &TcpStream| -> std::io::Result<[u8; 1]> {
        write_all(client, b"x")?;
        let mut echoed = [0; 1];
        (&*client).read_exact(&mut echoed).map(|()| echoed)
    };

    // Serve clients one at a time until one is refused: it was accepted into the last
    // descriptor, and its dial found none. Two more after it fare the same.
    let mut held = Vec::new();
    loop {
        let client = connect(relay.addr);
        match echo(&client) {
            Ok(echoed) => assert_eq!(echoed, *b"x"),
            Err(_) => break,
        }
        held.push(client);
        assert!(held.len() < LIMIT, "never ran out of descriptors");
    }
    for _ in 0..2 {
        let client = connect(relay.addr);
        assert!(echo(&client).is_err(), "a client beyond the descriptors is refused");
    }
    let warning = relay.log_line_with("local resources exhausted");
    assert!(warning.contains("Too many open files"), "{warning}");

    drop(held);
    assert!(eventually(|| relay.open_fds().len() <= idle_fds), "descriptors not given back");
    let fresh = connect(relay.addr);
    assert_eq!(echo(&fresh).expect("served at once by the first upstream"), *b"x");
    drop(fresh);

    let (status, metrics) = http_get(relay.admin.expect("an admin endpoint"), "/metrics");
    assert_eq!(status, 200);
    let value = |family: &str| -> u64 {
        let line = metrics.lines().find(|line| line.starts_with(family)).unwrap_or_else(|| {
            panic!("no {family} in /metrics:\n{metrics}");
        });
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value("tcprelay_upstream_connect_failures_total{"), 0, "{metrics}");
    assert!(value("tcprelay_dial_local_errors_total{") >= 3, "{metrics}");
    assert_eq!(value("tcprelay_upstream_up{"), 1, "the first upstream stays up: {metrics}");
    assert_eq!(relay.log_count("upstream connect failed"), 0, "no upstream was blamed");
    assert_eq!(relay.log_count("local resources exhausted, not its fault"), 1, "warned once");
    assert_eq!(second.accepted(), 0, "nobody was sent to the second upstream");
}
