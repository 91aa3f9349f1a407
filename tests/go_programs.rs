//! The Go programs of the classroom chapter (`docs/go/`), built with
//! `go build` and driven over loopback with the scenarios tcprelay's own
//! tests use. Each test proves one claim of `docs/go-to-rust.md`:
//!
//! - `seed`, the article's code, loses the client's first message;
//! - `seed` and `articlefix` (the article's fix) put every client on ONE
//!   upstream connection;
//! - `articlefix` never half-closes, and closes the client before the reply;
//! - `correct` passes every scenario.
//!
//! The last tests run the commands of `docs/lab.md`: the measurement
//! programs under `tests/classroom/`, `strace`, and `nc`.
//!
//! These tests need `go`, `strace` and the OpenBSD `nc` (Debian:
//! `apt-get install golang-go strace netcat-openbsd`), so plain `cargo test`
//! leaves them out: each is `#[ignore]`d with the tools it needs, and
//! `cargo test -- --include-ignored` runs them (`.ci/run` always does). Run
//! without a tool, they fail, saying how to install it.
#![forbid(unsafe_code)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::{OnceLock, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use support::{
    RelayProcess, SECOND_MESSAGE as SECOND, TIMEOUT as WAIT, assert_silent, connect, first_message,
    handing_upstream, openbsd_nc, read_exactly, read_to_eof, send, text, who_receives,
};

/// How long we listen for an EOF that must NOT come. Used only after the
/// program has shown, by something we observed, that the moment it would
/// have sent the EOF is already past.
const QUIET: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------
// The seed's bug: the first message is read and never forwarded.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn seed_loses_the_first_message() {
    let (upstream, accepted) = handing_upstream();
    let seed = go_proxy("seed", upstream.addr);
    let shared = accepted.next("the seed's start-up dial");

    let client = connect(seed.addr);
    send(&client, &first_message());
    send(&client, SECOND);

    // TCP keeps order: had the first message been forwarded, its 128 bytes
    // would come first. What comes first is the second message, so the
    // first was taken by `conn.Read(data)` and dropped.
    let received = read_exactly(&shared, SECOND.len(), "the upstream, behind the seed");
    assert_eq!(
        text(&received),
        text(SECOND),
        "the upstream should have received the second message first: the seed drops the first"
    );

    drop(client);
    drop(seed);
    assert_eq!(upstream.accepted(), 1, "the seed dials the upstream once, at start-up");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn articlefix_and_correct_deliver_the_first_message() {
    for program in ["articlefix", "correct"] {
        let (upstream, accepted) = handing_upstream();
        let proxy = go_proxy(program, upstream.addr);

        let client = connect(proxy.addr);
        send(&client, &first_message());
        send(&client, SECOND);

        let upstream_side = accepted.next(program);
        let expected = [first_message().as_slice(), SECOND].concat();
        let received = read_exactly(&upstream_side, expected.len(), program);
        assert_eq!(text(&received), text(&expected), "{program}: both messages, in order");
    }
}

// ---------------------------------------------------------------------------
// What the article does not say (1): one upstream connection for everyone.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn seed_and_articlefix_put_two_clients_on_one_upstream_connection() {
    for (program, swallows_first_message) in [("seed", true), ("articlefix", false)] {
        let (upstream, accepted) = handing_upstream();
        let proxy = go_proxy(program, upstream.addr);
        let shared = accepted.next(program);
        let say = |client: &TcpStream, line: &[u8]| {
            if swallows_first_message {
                send(client, &first_message()); // the seed's conn.Read(data) eats this
            }
            send(client, line);
        };

        let a = connect(proxy.addr);
        say(&a, b"A: hello\n");
        assert_eq!(text(&read_exactly(&shared, 9, program)), "A: hello\n");
        send(&shared, b"reply to A\n");
        assert_eq!(text(&read_exactly(&a, 11, "client A")), "reply to A\n");

        let b = connect(proxy.addr);
        say(&b, b"B: hello\n");
        // B's line arrives on the SAME upstream connection as A's.
        assert_eq!(
            text(&read_exactly(&shared, 9, program)),
            "B: hello\n",
            "{program}: B's bytes should follow A's on the one shared upstream stream"
        );

        // The upstream answers B. A byte stream carries no "to whom": the
        // reply goes to whichever handler is reading the shared dstConn. Go
        // holds a conn's read lock while a Read waits, so that is usually
        // A's, which has been waiting longest; we only assert "exactly one".
        send(&shared, b"reply to B\n");
        let (to_a, to_b) = who_receives(&a, &b, 11);
        let reached = match (text(&to_a).as_str(), text(&to_b).as_str()) {
            ("reply to B\n", "") => "A, the wrong client",
            ("", "reply to B\n") => "B",
            (a, b) => panic!(
                "{program}: the reply should reach exactly one client; A got {a:?}, B got {b:?}"
            ),
        };
        eprintln!("{program}: the reply meant for B reached {reached}");

        drop((a, b, shared, proxy));
        assert_eq!(upstream.accepted(), 1, "{program}: two clients, still one upstream connection");
    }
}

// ---------------------------------------------------------------------------
// What the article does not say (2) and (3): no half-close; the client is
// closed while the reply may still be on its way.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn articlefix_never_half_closes_and_closes_the_client_before_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("articlefix", upstream.addr);
    let shared = accepted.next("articlefix");

    let client = connect(proxy.addr);
    send(&client, b"request\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    assert_eq!(text(&read_exactly(&shared, 8, "articlefix")), "request\n");

    // The client→upstream copy saw the client's EOF and returned; its
    // deferred conn.Close() closed the client, which reads EOF: no reply
    // can reach it any more (the server has not even answered yet).
    let to_client = read_to_eof(&client, "the half-closed client");
    assert_eq!(text(&to_client), "", "articlefix closes the client before any reply");

    // That copy is over, and it never passed the EOF on: the upstream,
    // waiting for the end of the request, hears nothing at all.
    assert_silent(&shared, QUIET, "articlefix's upstream after the client half-closed");
}

// ---------------------------------------------------------------------------
// The corrected program.
// ---------------------------------------------------------------------------

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn correct_passes_the_half_close_on_and_delivers_the_reply() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("correct", upstream.addr);

    let client = connect(proxy.addr);
    send(&client, &first_message());
    send(&client, SECOND);
    client.shutdown(Shutdown::Write).expect("half-close the client");

    // The upstream reads the whole request, then EOF: CloseWrite passed it on.
    let upstream_side = accepted.next("correct");
    let request = read_to_eof(&upstream_side, "correct's upstream");
    assert_eq!(text(&request), text(&[first_message().as_slice(), SECOND].concat()));

    // Only now does the server answer, and the reply still reaches the client.
    send(&upstream_side, b"the reply, sent after the request's EOF\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    let reply = read_to_eof(&client, "correct's client");
    assert_eq!(text(&reply), "the reply, sent after the request's EOF\n");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn correct_passes_a_half_close_from_the_upstream() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("correct", upstream.addr);

    // A server that speaks first and says everything at once, then EOF.
    let client = connect(proxy.addr);
    let upstream_side = accepted.next("correct");
    send(&upstream_side, b"banner\n");
    upstream_side.shutdown(Shutdown::Write).expect("half-close the upstream");
    assert_eq!(text(&read_to_eof(&client, "correct's client")), "banner\n");

    // The client can still talk after the server's EOF.
    send(&client, b"still here\n");
    client.shutdown(Shutdown::Write).expect("half-close the client");
    assert_eq!(text(&read_to_eof(&upstream_side, "correct's upstream")), "still here\n");
}

#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn correct_dials_one_upstream_per_client() {
    let (upstream, accepted) = handing_upstream();
    let proxy = go_proxy("correct", upstream.addr);

    let a = connect(proxy.addr);
    send(&a, b"A: hello\n");
    let upstream_a = accepted.next("correct, for A");
    assert_eq!(text(&read_exactly(&upstream_a, 9, "A's upstream")), "A: hello\n");

    let b = connect(proxy.addr);
    send(&b, b"B: hello\n");
    let upstream_b = accepted.next("correct, for B");
    assert_eq!(text(&read_exactly(&upstream_b, 9, "B's upstream")), "B: hello\n");

    // Each reply travels on its own client's connection.
    send(&upstream_b, b"reply to B\n");
    send(&upstream_a, b"reply to A\n");
    assert_eq!(text(&read_exactly(&b, 11, "client B")), "reply to B\n");
    assert_eq!(text(&read_exactly(&a, 11, "client A")), "reply to A\n");

    drop((a, b, upstream_a, upstream_b, proxy));
    assert_eq!(upstream.accepted(), 2, "one upstream connection per client");
}

// ---------------------------------------------------------------------------
// The lab's commands (docs/lab.md): measurement programs, strace, nc.
// ---------------------------------------------------------------------------

/// Lab step 5: `go run tests/classroom/spawn_cost.go N`, and the `rustc -O`
/// builds of the Rust twins. Only the output's shape is checked: speed lives
/// in the chapter's measurements, not in assertions.
#[test]
#[ignore = "needs go: apt-get install golang-go"]
fn lab_measurement_programs_run() {
    let go_run = run(go_command().args(["run", "tests/classroom/spawn_cost.go", "100"]));
    assert!(go_run.contains("goroutines: 100 started and parked in"), "{go_run}");

    let bins = classroom_programs();
    let threads = run(Command::new(bins.join("spawn_cost")).arg("100"));
    assert!(threads.contains("(std's default stacks): 100 started"), "{threads}");
    let small = run(Command::new(bins.join("spawn_cost")).args(["100", "64"]));
    assert!(small.contains("(64 KiB stacks): 100 started"), "{small}");
    let go_copy = run(Command::new(bins.join("copy_syscalls_go")).arg("4"));
    assert!(go_copy.contains("go io.Copy: 4 MiB socket to socket in"), "{go_copy}");
    let rust_copy = run(Command::new(bins.join("copy_syscalls_rs")).arg("4"));
    assert!(rust_copy.contains("rust io::copy: 4 MiB socket to socket in"), "{rust_copy}");
}

/// Lab step 5 and the chapter's claim: Go's io.Copy between two TCP
/// connections splices; Rust's io::copy between two TcpStreams does not.
#[test]
#[ignore = "needs go and strace: apt-get install golang-go strace"]
fn lab_strace_shows_go_splices_and_rust_does_not() {
    require_tool("strace", &["-V"], "apt-get install strace");
    let bins = classroom_programs();
    let summary = |program: &str| {
        let output = Command::new("strace")
            .args(["-f", "-c", "-e", "trace=splice,read,write,recvfrom,sendto"])
            .arg(bins.join(program))
            .arg("8")
            .output()
            .unwrap_or_else(|e| panic!("cannot run strace on {program}: {e}"));
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "strace {program} failed:\n{stderr}");
        stderr
    };
    let go = summary("copy_syscalls_go");
    assert!(calls(&go, "splice") > 0, "Go's io.Copy should splice:\n{go}");
    let rust = summary("copy_syscalls_rs");
    assert_eq!(calls(&rust, "splice"), 0, "Rust's io::copy has no splice path:\n{rust}");
    assert!(calls(&rust, "recvfrom") >= 8 * 1024 * 1024 / 8192, "8 KiB at a time:\n{rust}");
}

/// Lab steps 1 and 2: the upstream is `nc -v -l 127.0.0.1 PORT`, the client
/// `nc 127.0.0.1 PORT`; the seed loses the first line, articlefix does not.
#[test]
#[ignore = "needs go and OpenBSD nc: apt-get install golang-go netcat-openbsd"]
fn lab_nc_shows_the_seed_losing_the_first_line() {
    for (program, expected) in
        [("seed", SECOND.to_vec()), ("articlefix", [first_message().as_slice(), SECOND].concat())]
    {
        let mut upstream = Nc::start(&["-v", "-l", "127.0.0.1", "0"]);
        let upstream_addr = upstream.listening_addr();
        let proxy = go_proxy(program, upstream_addr);
        // Both programs dial the upstream at start-up, before any client exists.
        let connected = upstream.stderr_line();
        assert!(connected.starts_with("Connection received"), "{program}: {connected:?}");
        let mut client = Nc::start(&["127.0.0.1", &proxy.addr.port().to_string()]);

        // One pipe write of 128 bytes is atomic, so nc forwards the first
        // line in one piece, as the Rust client above does.
        client.type_line(&first_message());
        client.type_line(SECOND);
        let shown = upstream.output_until(expected.len());
        assert_eq!(text(&shown), text(&expected), "{program}: what the upstream nc printed");
    }
}

/// Lab step 3: the upstream is `nc -v -d -l 127.0.0.1 PORT | wc -c`, the
/// client `printf 'request\n' | nc -N 127.0.0.1 PORT`. Behind articlefix the
/// upstream never sees EOF (wc prints nothing); behind correct it does.
#[test]
#[ignore = "needs go and OpenBSD nc: apt-get install golang-go netcat-openbsd"]
fn lab_nc_shows_articlefix_never_passing_the_eof_on() {
    for (program, passes_eof_on) in [("articlefix", false), ("correct", true)] {
        let mut upstream = Nc::start(&["-v", "-d", "-l", "127.0.0.1", "0"]);
        let proxy = go_proxy(program, upstream.listening_addr());
        let mut client = Nc::start(&["-N", "127.0.0.1", &proxy.addr.port().to_string()]);
        client.type_line(b"request\n");
        client.end_input(); // printf ends: nc -N shuts the socket's write side

        if passes_eof_on {
            // The upstream nc sees EOF and exits: `| wc -c` would print 8.
            let all = upstream.output_to_end(WAIT).expect("correct passes the EOF on");
            assert_eq!(text(&all), "request\n");
            // Its exit is an EOF too, which reaches the client: nc -N exits.
            assert_eq!(client.output_to_end(WAIT).map(|out| text(&out)), Some(String::new()));
        } else {
            // articlefix closes the client at once (its copy is over): nc -N exits...
            assert_eq!(client.output_to_end(WAIT).map(|out| text(&out)), Some(String::new()));
            // ...and the request reached the upstream, but its EOF never does.
            assert_eq!(text(&upstream.output_until(8)), "request\n");
            assert_eq!(upstream.output_to_end(QUIET), None, "articlefix passed the EOF on");
            // Only when the proxy process dies (Ctrl-C) does the shared upstream
            // connection close: then nc exits and `wc -c` prints 8.
            drop(proxy);
            assert_eq!(upstream.output_to_end(WAIT), Some(Vec::new()));
        }
    }
}

/// Lab step 4: `tcprelay --explain` between the lab's two `nc` commands
/// (upstream `nc -v -l`, client `nc -N`): every event of the connection is
/// told beside the Go line it mirrors, in the order the lab lists them.
#[test]
#[ignore = "needs OpenBSD nc: apt-get install netcat-openbsd"]
fn lab_explain_pairs_each_event_with_its_go_line() {
    let mut upstream = Nc::start(&["-v", "-l", "127.0.0.1", "0"]);
    let upstream_addr = upstream.listening_addr().to_string();
    let args = ["--explain", "--listen", "127.0.0.1:0", "--upstream", &upstream_addr];
    let relay = RelayProcess::start(&args);
    let mut client = Nc::start(&["-N", "127.0.0.1", &relay.addr.port().to_string()]);

    client.type_line(b"hello\n");
    assert_eq!(text(&upstream.output_until(6)), "hello\n");
    upstream.type_line(b"hi\n");
    assert_eq!(text(&client.output_until(3)), "hi\n");
    client.end_input(); // Ctrl-D: nc -N half-closes

    let narration = relay.stdout_until("wg.Wait()");
    let go_lines = [
        "l.Accept()",
        "net.Dial(",
        "go io.Copy(",
        "moves its first bytes", // client -> upstream: hello
        "moves its first bytes", // upstream -> client: hi
        "CloseWrite()",          // the client's EOF passed on
        "CloseWrite()",          // nc -l closes when it reads EOF: passed on too
        "wg.Wait()",
    ];
    let mut lines = narration.iter();
    for go in go_lines {
        assert!(
            lines.any(|line| line.contains(go)),
            "no line with {go:?} in its place; the narration:\n{}",
            narration.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Helpers: the proxies, nc, and the builds. The scenario's messages and reads
// live in tests/support, shared with tests/seed_bug_in_rust.rs.
// ---------------------------------------------------------------------------

/// Starts `docs/go/<program> -listen 127.0.0.1:0 -upstream ADDR` and waits
/// for its `listening on ADDR` line.
fn go_proxy(program: &str, upstream: SocketAddr) -> RelayProcess {
    let upstream = upstream.to_string();
    let args = ["-listen", "127.0.0.1:0", "-upstream", &upstream];
    RelayProcess::start_program(&go_programs().join(program), &args)
}

/// An OpenBSD `nc` child process with piped stdin, stdout and stderr, killed
/// and reaped on drop. Its output is read on threads so every wait is bounded.
struct Nc {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout_chunks: mpsc::Receiver<Vec<u8>>,
    stderr_lines: mpsc::Receiver<String>,
    readers: Vec<JoinHandle<()>>,
}

impl Nc {
    fn start(args: &[&str]) -> Nc {
        let mut child = Command::new(openbsd_nc())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start nc {args:?}: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (chunk_tx, stdout_chunks) = mpsc::channel();
        let (line_tx, stderr_lines) = mpsc::channel();
        let readers = vec![
            thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                // An empty chunk means EOF: nc closed its output.
                while let Ok(n) = stdout.read(&mut buffer) {
                    let _ = chunk_tx.send(buffer[..n].to_vec());
                    if n == 0 {
                        break;
                    }
                }
            }),
            thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let _ = line_tx.send(line);
                }
            }),
        ];
        Nc { child, stdin, stdout_chunks, stderr_lines, readers }
    }

    /// The address from `nc -v -l`'s "Listening on localhost PORT" line.
    fn listening_addr(&mut self) -> SocketAddr {
        let line = self.stderr_lines.recv_timeout(WAIT).expect("nc -v -l says where it listens");
        let port: u16 = line
            .strip_prefix("Listening on ")
            .and_then(|rest| rest.split_whitespace().last())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from nc -v -l: {line:?}"));
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// The next line nc writes to stderr (with -v: "Connection received on ...").
    fn stderr_line(&self) -> String {
        self.stderr_lines
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("nc wrote no line to stderr within {WAIT:?}"))
    }

    /// Writes to nc's stdin in one write, as if typed (or pasted) at once.
    fn type_line(&mut self, line: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(line).expect("write to nc's stdin");
    }

    /// Closes nc's stdin, as `printf ... |` does when printf ends.
    fn end_input(&mut self) {
        self.stdin = None;
    }

    /// What nc printed, once `len` bytes have come; panics after `WAIT`.
    fn output_until(&mut self, len: usize) -> Vec<u8> {
        let mut shown = Vec::new();
        while shown.len() < len {
            match self.stdout_chunks.recv_timeout(WAIT) {
                Ok(chunk) if !chunk.is_empty() => shown.extend_from_slice(&chunk),
                _ => panic!("nc printed only {:?}, expected {len} bytes", text(&shown)),
            }
        }
        shown
    }

    /// Everything nc printed, if its output ended within `within`.
    fn output_to_end(&mut self, within: Duration) -> Option<Vec<u8>> {
        let mut shown = Vec::new();
        loop {
            match self.stdout_chunks.recv_timeout(within) {
                Ok(chunk) if chunk.is_empty() => return Some(shown),
                Ok(chunk) => shown.extend_from_slice(&chunk),
                Err(_) => return None,
            }
        }
    }
}

impl Drop for Nc {
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

/// Fails the test, saying how to install `program`, if it cannot be run.
fn require_tool(program: &str, args: &[&str], install: &str) {
    if let Err(e) = Command::new(program).args(args).output() {
        panic!("cannot run `{program}` ({e}); these tests need it: install it with `{install}`");
    }
}

/// `go` with everything that could reach the network or $HOME turned off.
fn go_command() -> Command {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let mut command = Command::new("go");
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("GOTOOLCHAIN", "local") // Go ≥ 1.21 would otherwise fetch the toolchain go.mod names
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off") // standard library only: nothing to download
        .env("GOCACHE", scratch.join("go-cache"))
        .env("GOPATH", scratch.join("go-path"));
    command
}

/// Runs `command`, fails the test unless it succeeds, returns its stdout.
fn run(command: &mut Command) -> String {
    let Output { status, stdout, stderr } =
        command.output().unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let stderr = text(&stderr);
    assert!(status.success(), "{command:?} failed ({status}):\n{stderr}");
    text(&stdout)
}

/// The number of calls in the `syscall` row of an `strace -c` summary.
fn calls(summary: &str, syscall: &str) -> u64 {
    summary
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.last() == Some(&syscall))
        .and_then(|fields| fields.get(3)?.parse().ok())
        .unwrap_or(0)
}

/// The directory holding `seed`, `articlefix` and `correct`, built once per
/// test run with `cd docs/go && go build -o OUT ./PROGRAM`.
fn go_programs() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        check_go()?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("go-programs");
        for program in ["seed", "articlefix", "correct"] {
            let mut go = go_command();
            go.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/go"));
            go.args(["build", "-o"]).arg(out.join(program)).arg(format!("./{program}"));
            build(&mut go)?;
        }
        Ok(out)
    });
    built.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

/// The directory holding the lab's measurement programs, built once:
/// `rustc -O --edition 2024 tests/classroom/X.rs` and `go build tests/classroom/X.go`.
fn classroom_programs() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        check_go()?;
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("classroom");
        std::fs::create_dir_all(&out).map_err(|e| format!("create {}: {e}", out.display()))?;
        for (source, binary) in
            [("spawn_cost.rs", "spawn_cost"), ("copy_syscalls.rs", "copy_syscalls_rs")]
        {
            let mut rustc = Command::new("rustc");
            rustc.current_dir(env!("CARGO_MANIFEST_DIR"));
            rustc.args(["-O", "--edition", "2024"]).arg(format!("tests/classroom/{source}"));
            build(rustc.arg("-o").arg(out.join(binary)))?;
        }
        let mut go = go_command();
        go.args(["build", "-o"]).arg(out.join("copy_syscalls_go"));
        build(go.arg("tests/classroom/copy_syscalls.go"))?;
        Ok(out)
    });
    built.as_deref().unwrap_or_else(|e| panic!("{e}"))
}

fn check_go() -> Result<(), String> {
    match go_command().arg("version").output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("`go version` failed:\n{}", text(&output.stderr))),
        Err(e) => Err(format!(
            "cannot run `go` ({e}); the classroom tests build the Go programs under docs/go: \
             install Go with `apt-get install golang-go`"
        )),
    }
}

fn build(command: &mut Command) -> Result<(), String> {
    match command.output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(format!("{command:?} failed:\n{}", text(&output.stderr))),
        Err(e) => Err(format!("cannot run {command:?}: {e}")),
    }
}
