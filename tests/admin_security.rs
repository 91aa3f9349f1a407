//! The admin endpoint stays up and stays closed: slow clients cannot hold it off,
//! a web page in a browser cannot drain the relay, a token guards everything but
//! `/healthz`, and a Unix admin socket gets the mode asked for. docs/reliability.md's threat
//! model names these tests.
#![forbid(unsafe_code)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use support::*;
use tcprelay::{Address, Config, ServerConfig};
use tcprelay::{AdminAccess, AdminToken};

/// A server with one echo route and the admin endpoint on loopback.
fn admin_server(upstream: &Upstream, access: AdminAccess) -> TestServer {
    TestServer::start(ServerConfig {
        routes: vec![Config { upstream: upstream.addr.to_string(), ..quiet_config() }],
        admin: Some(Address::Tcp("127.0.0.1:0".parse().expect("127.0.0.1:0 is a socket address"))),
        admin_access: access,
        drain_timeout: TIMEOUT,
        ..Default::default()
    })
}

/// A path of its own for each test, in the system's temp dir, with nothing there yet.
fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tcprelay-admin-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(&path);
    path
}

/// Writes `content` to `path` and gives it `mode` (on Unix: Windows has no mode bits).
fn write_file(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).expect("write a test file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    #[cfg(not(unix))]
    let _ = mode;
}

#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("the file exists").permissions().mode() & 0o777
}

#[test]
fn fifty_slowloris_clients_cannot_hold_off_metrics_healthz_or_a_drain() {
    let upstream = Upstream::echo();
    let server = admin_server(&upstream, AdminAccess::default());
    let admin = server.admin.expect("the server has an admin endpoint");
    // Fifty clients that start a request and never finish it, trickling a byte at a time.
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let client = connect(admin);
            write_all(&client, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("a slow client sends the start of a request");
            client
        })
        .collect();
    for client in &slow {
        // A trickling client may already have been shut down to make room; that is the point.
        let _ = write_all(client, b"a");
    }

    // While all fifty are still connected, every route of the admin endpoint answers.
    // (Once, /metrics waited for each slow client's deadline in turn: 151 s.)
    let (status, metrics) = http_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("tcprelay_connections_accepted_total"), "{metrics}");
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
    let (status, body) = http_post(admin, "/drain");
    assert_eq!((status, body.starts_with("draining")), (200, true));

    // No slow client was ever served its unfinished request: each was shut down to make
    // room (nothing, or a reset), timed out (408), or, in a burst of connections faster than
    // shut-down handlers leave, refused at once (503).
    let mut answered = 0;
    for client in &slow {
        let answer = String::from_utf8_lossy(&read_all(client).unwrap_or_default()).into_owned();
        let expected = ["HTTP/1.1 408 ", "HTTP/1.1 503 "];
        assert!(answer.is_empty() || expected.iter().any(|s| answer.starts_with(s)), "{answer}");
        answered += usize::from(!answer.is_empty());
    }
    assert!(answered < slow.len(), "the oldest slow clients made room for the others");
    server.finish().expect("the drain completes");
}

#[test]
fn a_cross_site_form_post_cannot_drain_the_relay() {
    let upstream = Upstream::echo();
    let server = admin_server(&upstream, AdminAccess::default());
    let admin = server.admin.expect("the server has an admin endpoint");
    // What a page on http://evil.example sends when it submits a form to the admin port: a
    // "simple" request, so the browser sends it without asking (no CORS preflight).
    let form_post = format!(
        "POST /drain HTTP/1.1\r\nHost: {admin}\r\nOrigin: http://evil.example\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\n\r\ndrain=1"
    );
    let (status, body) = http(admin, form_post.as_bytes());
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Origin"), "{body}");
    assert!(!server.handle.is_draining());
    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(echo_through(server.addrs[0], b"still relaying"), b"still relaying");
}

#[test]
fn a_rebound_host_name_cannot_drain_the_relay() {
    let upstream = Upstream::echo();
    let server = admin_server(&upstream, AdminAccess::default());
    let admin = server.admin.expect("the server has an admin endpoint");
    let port = admin.port();
    // DNS rebinding: the page's own name now resolves to 127.0.0.1, so the browser calls it
    // same-origin and sends no Origin on a fetch; only the Host header gives it away.
    for host in [format!("evil.example:{port}"), format!("127.0.0.1.evil.example:{port}")] {
        let request = format!("POST /drain HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n");
        let (status, body) = http(admin, request.as_bytes());
        assert_eq!(status, 403, "{host}: {body}");
        assert!(!server.handle.is_draining(), "{host}");
    }
    // The same request with the admin address as Host, as curl sends it, drains.
    assert_eq!(http_post(admin, "/drain").0, 200);
    assert!(server.handle.is_draining());
    server.finish().expect("the drain completes");
}

/// `METHOD path` with `Authorization: Bearer token` when given.
fn with_token(method: &str, path: &str, admin: std::net::SocketAddr, token: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {admin}\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn with_a_token_file_only_healthz_is_open_and_the_token_is_never_logged() {
    let token = "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5";
    let file = temp_path("token");
    write_file(&file, &format!("{token}\n"), 0o600);
    let upstream = Upstream::echo();
    let (upstream_addr, file_arg) = (upstream.addr.to_string(), file.display().to_string());
    let mut relay = RelayProcess::start_routes(
        &["-l", ":0", "-u", &upstream_addr, "--admin", ":0", "--admin-token-file", &file_arg],
        1,
        true,
    );
    let admin = relay.admin.expect("the relay has an admin endpoint");

    assert_eq!(http_get(admin, "/healthz"), (200, "ok\n".to_string()), "load balancers probe");
    let (status, body) = http_get(admin, "/metrics");
    assert_eq!(status, 401);
    assert!(body.contains("Authorization: Bearer"), "{body}");
    assert_eq!(http_post(admin, "/drain").0, 401);
    let wrong = "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e6";
    assert_eq!(http(admin, &with_token("POST", "/drain", admin, wrong)).0, 401);
    assert_eq!(http(admin, &with_token("GET", "/metrics", admin, &token[..20])).0, 401);

    let (status, metrics) = http(admin, &with_token("GET", "/metrics", admin, token));
    assert_eq!(status, 200);
    assert!(metrics.contains("tcprelay_connections_accepted_total"));
    assert_eq!(http(admin, &with_token("POST", "/drain", admin, token)).0, 200);
    assert_eq!(relay.wait_for_exit(), Some(0));
    let log = relay.kill_and_collect_log();
    for line in &log {
        assert!(!line.contains(token), "the token leaked into the log: {line}");
    }
    // Windows shows no file's readers to std: there the relay says it could not check.
    let unchecked = log.iter().any(|line| line.contains("cannot check who may read"));
    assert_eq!(unchecked, cfg!(windows), "warned where, and only where, it cannot check: {log:?}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn token_files_that_guard_nothing_are_refused_with_exit_2_naming_the_file() {
    let dir = temp_path("token-dir");
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("the test creates {}: {e}", dir.display()));
    let cases = [
        #[cfg(unix)] // Windows has no mode bits to check (docs/operations.md, "Admin security")
        ("world-readable", "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5", 0o644, "chmod o-r"),
        // Writable by others: whoever can write the token can set it (OpenSSH StrictModes).
        #[cfg(unix)]
        ("world-writable", "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5", 0o602, "writable by every user"),
        #[cfg(unix)]
        ("group-writable", "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5", 0o620, "writable by its group"),
        ("empty", " \n", 0o600, "empty"),
        ("short", "secret", 0o600, "at least 16"),
    ];
    for (name, content, mode, expected) in cases {
        let file = dir.join(name);
        write_file(&file, content, mode);
        let file_arg = file.display().to_string();
        let args = ["--check", "-l", ":0", "-u", ":1", "--admin", ":0", "--admin-token-file"];
        let output = run_tcprelay(&[&args[..], &[&file_arg]].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(&file_arg) && stderr.contains(expected), "{name}: {stderr}");
        std::fs::remove_file(&file)
            .unwrap_or_else(|e| panic!("the test removes {}: {e}", file.display()));
    }
    // A directory (or a FIFO, a device) is not read at all.
    let dir_arg = dir.display().to_string();
    let output = run_tcprelay(&["--check", "-l", ":0", "-u", ":1", "--admin-token-file", &dir_arg]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Windows refuses to open a directory as a file at all ("Access denied").
    if cfg!(unix) {
        assert!(stderr.contains("expected a regular file, found a directory"), "{stderr}");
    }
    std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("the test removes {}: {e}", dir.display()));
}

/// `--check` with `file` as the admin token file: its exit code and stderr.
#[cfg(unix)]
fn check_token_file(file: &Path) -> (Option<i32>, String) {
    let file_arg = file.display().to_string();
    let args = ["--check", "-l", ":0", "-u", ":1", "--admin", ":0", "--admin-token-file"];
    let output = run_tcprelay(&[&args[..], &[&file_arg]].concat());
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// A 0600 token file that another user owns is refused: that user can rewrite the token
/// (OpenSSH refuses such an `authorized_keys` too). Root's and our own are accepted.
#[test]
#[cfg(unix)] // another user (`setpriv`, `lchown`)
fn a_token_file_owned_by_another_user_is_refused() {
    if !running_as_root("a_token_file_owned_by_another_user_is_refused") {
        return;
    }
    let file = temp_path("nobodys.token");
    write_file(&file, "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5", 0o600);
    assert_eq!(check_token_file(&file).0, Some(0), "root's own 0600 file is accepted");
    give_to_nobody(&file);
    let (code, stderr) = check_token_file(&file);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains(&format!("owned by uid {NOBODY}")), "{stderr}");
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    std::fs::remove_file(&file).expect("the test removes its token file");
}

/// A Kubernetes Secret volume reaches each key through two symbolic links
/// (`token -> ..data/token`, `..data -> ..2026_12_07_08_00_00.1`), swapped at once by the
/// kubelet on an update. The file reached is checked: with `defaultMode: 0440` (0400 plus
/// an `fsGroup`, which adds group read) it is accepted; the default 0644 is refused.
#[test]
#[cfg(unix)] // Unix symbolic links and mode bits
fn a_token_in_a_kubernetes_secret_volume_is_checked_through_its_symlinks() {
    use std::os::unix::fs::symlink;
    let volume = temp_path("secret-volume");
    let timestamped = volume.join("..2026_12_07_08_00_00.1");
    std::fs::create_dir_all(&timestamped).expect("the test makes the volume's directories");
    symlink("..2026_12_07_08_00_00.1", volume.join("..data")).expect("the ..data link");
    symlink("..data/token", volume.join("token")).expect("the key's link");
    let token = volume.join("token");
    write_file(&timestamped.join("token"), "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5\n", 0o440);
    let (code, stderr) = check_token_file(&token);
    assert_eq!(code, Some(0), "0440 through the links is accepted: {stderr}");
    std::fs::remove_file(timestamped.join("token")).expect("the test replaces the key");
    write_file(&timestamped.join("token"), "7f3c9a1e5b2d4f6081a3c5e7f9b1d3e5\n", 0o644);
    let (code, stderr) = check_token_file(&token);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("readable by every user (mode 0644)"), "{stderr}");
    std::fs::remove_dir_all(&volume).expect("the test removes the volume");
}

#[test]
fn a_config_file_names_its_token_file_relative_to_itself_and_check_never_prints_the_token() {
    let dir = temp_path("config-dir");
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("the test creates {}: {e}", dir.display()));
    let token = "0123456789abcdef0123456789abcdef";
    write_file(&dir.join("admin.token"), token, 0o640);
    let config = dir.join("tcprelay.conf");
    write_file(&config, "admin 127.0.0.1:0\nadmin-token-file admin.token\nroute :0 -> :1\n", 0o644);
    let output = run_tcprelay(&["--check", "--config", &config.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let expected = format!("admin-token-file {}", dir.join("admin.token").display());
    assert!(stdout.contains(&expected), "{stdout}");
    assert!(!stdout.contains(token), "{stdout}");
    std::fs::remove_dir_all(&dir)
        .unwrap_or_else(|e| panic!("the test removes {}: {e}", dir.display()));
}

/// Sends `request` over the Unix socket at `path` and returns the status code.
#[cfg(unix)]
fn unix_http(path: &Path, request: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a Unix stream takes a read timeout");
    stream
        .write_all(request)
        .expect("the admin endpoint takes the whole request over its Unix socket");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("the admin endpoint answers over its Unix socket in UTF-8, then closes");
    response.get(9..12).and_then(|code| code.parse().ok()).expect("an HTTP status line")
}

#[test]
#[cfg(unix)] // Unix sockets and file modes
fn a_unix_admin_socket_is_created_mode_0600_or_as_asked() {
    let upstream = Upstream::echo();
    for (mode, expected) in [(None, 0o600), (Some(0o660), 0o660)] {
        let path = temp_path("admin.sock");
        let mut access = AdminAccess::default();
        if let Some(mode) = mode {
            access.socket_mode = mode;
        }
        let server = tcprelay::Server::bind(ServerConfig {
            routes: vec![Config { upstream: upstream.addr.to_string(), ..quiet_config() }],
            admin: Some(Address::Unix(path.clone())),
            admin_access: access,
            drain_timeout: TIMEOUT,
            ..Default::default()
        })
        .expect("bind");
        assert_eq!(server.admin_address(), Some(Address::Unix(path.clone())));
        assert_eq!(mode_of(&path), expected, "{path:?}");
        let handle = server.handle();
        std::thread::scope(|scope| {
            let serving = scope.spawn(|| server.serve());
            // curl --unix-socket sends `Host: localhost`; no Host check applies on a Unix socket.
            assert_eq!(unix_http(&path, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n"), 200);
            let drain = b"POST /drain HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n";
            assert_eq!(unix_http(&path, drain), 200);
            assert!(handle.is_draining());
            serving.join().expect("serve panicked").expect("serve");
        });
        assert!(!path.exists(), "the socket file is removed when the server stops");
    }
}

#[test]
fn check_prints_the_admin_socket_and_its_mode() {
    let path = temp_path("check.sock");
    let admin = format!("unix:{}", path.display());
    let args = ["--check", "-l", ":0", "-u", ":1", "--admin", &admin, "--admin-socket-mode", "640"];
    let output = run_tcprelay(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("admin {admin}\nadmin-socket-mode 0640\n")), "{stdout}");
    let output = run_tcprelay(&["--check", "-l", ":0", "-u", ":1", "--admin-socket-mode", "0999"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("\"0999\""));
}

#[test]
fn the_admin_token_type_refuses_what_would_not_survive_an_http_header() {
    let file = Path::new("/nowhere");
    assert!(AdminToken::new(file, "with space inside it").is_err());
    assert!(AdminToken::new(file, "0123456789abcdef").is_ok());
    assert!(AdminToken::read(Path::new("/nonexistent/tcprelay/token")).is_err());
}
