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

/// A client that stops reading while the upstream floods: the relay holds at most its largest
/// copy buffer (`--buffer-size`, 1 MiB by default) in memory, however much the upstream has
/// pushed into it, two threads and
/// two descriptors, and the idle timeout frees the connection once nothing moves.
///
/// Memory is the relay's own (its heap, stacks and other anonymous mappings, from
/// /proc/PID/smaps: [`RelayProcess::own_memory_kb`]), not the whole process's RSS: under
/// qemu-user (tests/targets.sh) the process is also the emulator, whose heap grows by
/// megabytes translating the relay's code while the relay's own mappings grow by ~40 kB.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "reads the relay's memory from /proc/PID/smaps")]
fn client_that_stops_reading_costs_bounded_memory_and_is_closed_by_the_idle_timeout() {
    // The relay may grow by its largest copy buffer (the flood fills it) plus 1 MiB (measured
    // beside it: about 50 kB, two thread stacks and allocator bookkeeping). The flood must
    // push at least twice as much, so a relay that buffered it would fail.
    let buffer_kb = tcprelay::Config::default().buffer_size as u64 / 1024;
    let growth_bound_kb: u64 = buffer_kb + 1024;
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
        flood_ended.send((written, end)).expect("the test waits for the end of the flood");
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
    let idle_kb = relay.own_memory_kb();
    let idle_threads = relay.status("Threads");
    let idle_fds = relay.open_fds().len();

    let client = connect(relay.addr); // never reads
    // The most the relay holds while the flood lasts (the connection lives at least the 1 s
    // idle timeout after the buffers fill), sampled until the upstream's writes fail.
    let (mut peak_kb, mut peak_threads, mut peak_fds) = (idle_kb, idle_threads, idle_fds);
    let deadline = Instant::now() + TIMEOUT;
    let (written, end) = loop {
        peak_kb = peak_kb.max(relay.own_memory_kb());
        peak_threads = peak_threads.max(relay.status("Threads"));
        peak_fds = peak_fds.max(relay.open_fds().len());
        match flooded.recv_timeout(Duration::from_millis(5)) {
            Ok(ended) => break ended,
            Err(_) => assert!(Instant::now() < deadline, "the flood did not end in {TIMEOUT:?}"),
        }
    };
    let line = relay.log_line_with("connection closed");

    eprintln!("flood: {written} bytes; relay's own memory: {idle_kb} kB idle, peak {peak_kb} kB");
    assert!(matches!(end, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe), "{end:?}");
    assert!(line.contains("reason=idle_timeout"), "{line}");
    assert!(written >= 2 * growth_bound_kb * 1024, "only {written} bytes: not a flood");
    assert!(
        peak_kb <= idle_kb + growth_bound_kb,
        "relay grew from {idle_kb} kB to {peak_kb} kB while {written} bytes came in"
    );
    assert_eq!(peak_threads, idle_threads + 2, "threads for one connection");
    assert_eq!(peak_fds, idle_fds + 2, "descriptors for one connection (client, upstream)");
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

/// Few descriptors (`ulimit -n 64`): the relay caps its connections where two descriptors
/// each still fit, says so at start-up, and at that cap clients wait in the backlog instead
/// of meeting `EMFILE` in `accept` or in their dial. It neither exits nor spins
/// (its CPU time grows by less than a fifth of the wall time), and the waiting clients are
/// served once the held ones leave.
#[test]
#[cfg_attr(windows, ignore = "sh -c ulimit -n: no shell or descriptor limit on Windows")]
fn few_descriptors_cap_the_connections_and_clients_wait_instead_of_failing() {
    const LIMIT: usize = 64;
    const WAITING: usize = 16;
    const SATURATED_FOR: Duration = Duration::from_secs(2);
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let args = ["--listen", "127.0.0.1:0", "--upstream", &upstream_arg];
    let mut relay = RelayProcess::start_with_fd_limit(LIMIT, &args);
    let (cap, limited_by) = relay.connection_cap();
    assert_eq!(limited_by, "RLIMIT_NOFILE");
    assert!((10..LIMIT / 2).contains(&cap), "two descriptors each, and some to spare: {cap}");
    let echo = |client: &TcpStream| {
        write_all(client, b"x").expect("a client under the cap sends its byte");
        let mut echoed = [0; 1];
        (&*client).read_exact(&mut echoed).map(|()| echoed)
    };

    let held: Vec<TcpStream> = (0..cap)
        .map(|n| {
            let client = connect(relay.addr);
            assert_eq!(echo(&client).unwrap_or_else(|e| panic!("client {n}: {e}")), *b"x");
            client
        })
        .collect();
    let (cpu_before, wall_before) = (relay.cpu_time(), Instant::now());
    let waiting: Vec<TcpStream> = (0..WAITING).map(|_| connect(relay.addr)).collect();
    for client in &waiting {
        write_all(client, b"y").expect("a client past the cap sends its byte into the backlog");
    }
    thread::sleep(SATURATED_FOR); // a measuring window
    let (cpu, wall) = (relay.cpu_time() - cpu_before, wall_before.elapsed());
    for client in &waiting {
        client
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("shorten a waiting client's read timeout to look for a reply");
        let mut byte = [0; 1];
        let read = (&*client).read(&mut byte);
        assert!(
            matches!(&read, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "a client past the cap waits, neither served nor refused: {read:?}"
        );
    }

    eprintln!("cap {cap} at {LIMIT} descriptors; saturated: {cpu:?} of CPU in {wall:?}");
    assert!(relay.is_running());
    assert!(cpu < wall / 5, "the relay spins: {cpu:?} of CPU in {wall:?}");
    assert_eq!(upstream.accepted(), cap, "upstream connections: only the admitted ones");
    assert_eq!(relay.log_count("accept failed"), 0, "EMFILE is never reached");

    drop(held);
    for client in &waiting {
        client.set_read_timeout(Some(TIMEOUT)).expect("restore a waiting client's read timeout");
        let mut echoed = [0; 1];
        (&*client).read_exact(&mut echoed).expect("served once room returns");
        assert_eq!(echoed, *b"y");
    }
    assert!(relay.is_running());
}

/// Asked for more connections than fit under `vm.max_map_count`, the relay caps itself
/// (std would abort the process past it, see src/limits/capacity.rs), says so, and still
/// serves. Another limit (`ulimit -n` of a CI runner, say) may bind first: then the cap is
/// lower still, and the warning names that limit.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore = "vm.max_map_count is Linux's (/proc/sys)")]
fn max_connections_beyond_the_memory_map_limit_is_capped_with_a_warning() {
    let Ok(limit) = std::fs::read_to_string(proc_file("/proc/sys/vm/max_map_count".into())) else {
        eprintln!("skipped: no /proc/sys/vm/max_map_count here");
        return;
    };
    let limit: usize = limit.trim().parse().expect("a number in max_map_count");
    let most = limit / 9; // src/limits/capacity.rs: 9 maps per connection, some kept spare
    let upstream = Upstream::echo();
    let upstream_arg = upstream.addr.to_string();
    let asked = (most + 1).to_string();
    let relay =
        RelayProcess::start(&["-l", ":0", "-u", &upstream_arg, "--max-connections", &asked]);

    let (cap, limited_by) = relay.connection_cap();
    let warning = relay.log_line_with("max-connections lowered to fit the process's limits");
    assert!(warning.contains(&format!("asked={asked}")), "{warning}");
    assert!(warning.contains(&format!("allowed={cap}")), "{warning}");
    assert!(warning.contains(&format!("limited_by={limited_by}")), "{warning}");
    if limited_by == "vm.max_map_count" {
        assert!((most - 300..most).contains(&cap), "{cap} of {limit} maps");
    } else {
        assert!(cap < most, "{limited_by} binds before the maps: {cap}");
    }
    assert_eq!(echo_through(relay.addr, b"still serving"), b"still serving");
}
