//! Unix domain sockets (`unix:/path`) as listen and upstream addresses, with the same
//! half-close semantics as TCP.
#![forbid(unsafe_code)]
#![cfg(unix)]

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;

use support::*;
use tcprelay::ProxyVersion;
use tcprelay::{Address, Config};

/// A socket path of its own for each test, in the system's temp dir.
fn socket_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("tcprelay-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn unix_client(path: &PathBuf) -> UnixStream {
    let stream = UnixStream::connect(path).expect("connect to the relay's Unix socket");
    stream.set_read_timeout(Some(TIMEOUT)).expect("a Unix stream takes a read timeout");
    stream.set_write_timeout(Some(TIMEOUT)).expect("a Unix stream takes a write timeout");
    stream
}

fn read_to_end(mut stream: &UnixStream) -> Vec<u8> {
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read until EOF");
    bytes
}

#[test]
fn unix_listener_client_half_close_and_reply_both_ways() {
    let path = socket_path("listen");
    let reply = pattern(3, 200_000);
    let upstream_reply = reply.clone();
    let upstream = Upstream::start(move |stream| {
        // Returns at the client's EOF, which the relay passes on.
        assert_eq!(
            read_all(&stream).expect("the upstream reads the request up to EOF"),
            b"request"
        );
        write_all(&stream, &upstream_reply)
            .expect("the upstream sends its whole reply after the client's half-close");
    });
    let relay = TestRelay::start(Config {
        listen_unix: Some(path.clone()),
        upstream: upstream.addr.to_string(),
        ..quiet_config()
    });

    let client = unix_client(&path);
    (&client).write_all(b"request").expect("the client sends its request over the Unix socket");
    client.shutdown(Shutdown::Write).expect("the client half-closes its Unix socket");
    assert_eq!(checksum(&read_to_end(&client)), checksum(&reply));

    let metrics = settled(&relay.metrics);
    assert_eq!(metrics.route, format!("unix:{}", path.display()));
    assert_eq!((metrics.bytes_client_to_upstream, metrics.bytes_upstream_to_client), (7, 200_000));
    relay.stop();
    assert!(!path.exists(), "the relay removes its socket file when it stops");
}

#[test]
fn unix_upstream_sees_the_half_close_and_keeps_sending() {
    let path = socket_path("upstream");
    let listener = UnixListener::bind(&path)
        .unwrap_or_else(|e| panic!("the test's upstream binds {}: {e}", path.display()));
    let (received, upstream_got) = mpsc::channel();
    let upstream = thread::spawn(move || {
        let (stream, _) =
            listener.accept().expect("the Unix upstream accepts the relay's connection");
        stream.set_read_timeout(Some(TIMEOUT)).expect("a Unix stream takes a read timeout");
        // Upstream speaks first and half-closes; then reads the client until its EOF.
        (&stream).write_all(b"banner").expect("the Unix upstream sends its banner");
        stream.shutdown(Shutdown::Write).expect("the Unix upstream half-closes after its banner");
        received
            .send(read_to_end(&stream))
            .expect("the test is still waiting for what the upstream received");
    });
    let relay = TestRelay::to(format!("unix:{}", path.display()));

    let client = connect(relay.addr);
    let mut banner = [0; 6];
    (&client)
        .read_exact(&mut banner)
        .expect("the upstream's banner reaches the client through the relay");
    assert_eq!(&banner, b"banner");
    assert_eq!(
        read_all(&client).expect("the upstream's half-close reaches the client as a clean EOF"),
        b"",
        "the upstream's EOF reaches the client"
    );
    // The client may still send after the upstream's half-close.
    let data = pattern(4, 100_000);
    write_all(&client, &data).expect("the client may still send after the upstream's half-close");
    client.shutdown(Shutdown::Write).expect("the client half-closes after its upload");
    assert_eq!(
        checksum(
            &upstream_got
                .recv_timeout(TIMEOUT)
                .expect("the Unix upstream gets the client's whole upload before EOF")
        ),
        checksum(&data)
    );
    upstream.join().expect("the Unix upstream thread ends without panicking");
    assert_eq!(settled(&relay.metrics).closed("upstream_eof"), Some(1));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_unix_client_gets_an_unknown_proxy_header() {
    let path = socket_path("proxy");
    let (upstream, received) = Upstream::recording();
    let _relay = TestRelay::start(Config {
        listen_unix: Some(path.clone()),
        upstream: upstream.addr.to_string(),
        proxy_protocol: Some(ProxyVersion::V1),
        ..quiet_config()
    });
    let client = unix_client(&path);
    (&client).write_all(b"hi").expect("the Unix client sends its bytes");
    client.shutdown(Shutdown::Write).expect("the Unix client half-closes");
    let recorded = received
        .recv_timeout(TIMEOUT)
        .expect("the upstream records what it got within the timeout")
        .expect("the upstream reads up to EOF");
    assert_eq!(recorded, b"PROXY UNKNOWN\r\nhi");
}

/// A config that passes `Config::validate`: an upstream is required.
fn relay_config(upstream: &Upstream) -> Config {
    Config { upstream: upstream.addr.to_string(), ..quiet_config() }
}

#[test]
fn a_stale_socket_file_is_replaced_and_a_live_one_is_not() {
    let path = socket_path("stale");
    // Binding and dropping leaves the file, with nobody listening.
    drop(
        UnixListener::bind(&path)
            .unwrap_or_else(|e| panic!("the test binds {}: {e}", path.display())),
    );
    assert!(path.exists());
    let upstream = Upstream::echo();
    let relay = TestRelay::start(Config {
        listen_unix: Some(path.clone()),
        upstream: upstream.addr.to_string(),
        ..quiet_config()
    });
    assert_eq!(
        tcprelay::Relay::bind(Config {
            listen_unix: Some(path.clone()),
            ..relay_config(&upstream)
        })
        .expect_err("a second bind of a path somebody listens on fails")
        .kind(),
        std::io::ErrorKind::AddrInUse,
        "a socket somebody listens on is never taken over"
    );
    let client = unix_client(&path);
    (&client).write_all(b"echo").expect("the client sends over the replaced socket file");
    client.shutdown(Shutdown::Write).expect("the client half-closes over the replaced socket file");
    assert_eq!(read_to_end(&client), b"echo");
    drop(relay);
}

#[test]
fn the_server_reports_unix_listen_addresses() {
    let path = socket_path("server");
    let upstream = Upstream::echo();
    let server = tcprelay::Server::bind(tcprelay::ServerConfig {
        routes: vec![Config {
            listen_unix: Some(path.clone()),
            upstream: upstream.addr.to_string(),
            ..quiet_config()
        }],
        admin: None,
        admin_access: Default::default(),
        drain_timeout: TIMEOUT,
        ..Default::default()
    })
    .expect("a server binds a Unix listen path");
    assert_eq!(server.local_addrs(), [Address::Unix(path.clone())]);
}

/// A listen path where something that is not a socket already is: the relay must leave it
/// alone and exit 1 naming the path (it used to delete a regular file there).
#[test]
fn a_regular_file_or_directory_at_a_listen_path_survives_and_the_error_names_it() {
    let file = socket_path("precious");
    std::fs::write(&file, b"precious data")
        .unwrap_or_else(|e| panic!("the test writes a regular file at {}: {e}", file.display()));
    let dir = socket_path("a-directory");
    let _ = std::fs::remove_dir(&dir);
    std::fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("the test creates a directory at {}: {e}", dir.display()));
    for (path, what) in [(&file, "a regular file"), (&dir, "a directory")] {
        // The library first: were the file replaced, this fails at once (the binary would
        // instead run on, and the test wait).
        let config = Config {
            listen_unix: Some(path.clone()),
            upstream: "127.0.0.1:1".to_string(),
            ..quiet_config()
        };
        let error = tcprelay::Relay::bind(config).expect_err("a bind over a non-socket fails");
        assert_eq!(error.kind(), std::io::ErrorKind::AlreadyExists, "{error}");
        let listen = format!("unix:{}", path.display());
        let output = run_tcprelay(&["-l", &listen, "-u", "127.0.0.1:1"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(&path.display().to_string()) && stderr.contains(what), "{stderr}");
    }
    assert_eq!(
        std::fs::read(&file).expect("the regular file at the listen path is still there"),
        b"precious data",
        "the file is untouched"
    );
    assert!(dir.is_dir());
    std::fs::remove_file(&file).expect("the test removes its regular file");
    std::fs::remove_dir(&dir).expect("the test removes its directory");
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).expect("the socket file exists").permissions().mode() & 0o777
}

#[test]
fn a_listen_socket_gets_mode_0660_by_default_or_its_socket_mode() {
    let upstream = Upstream::echo();
    for (mode, expected) in [(None, 0o660), (Some(0o600), 0o600), (Some(0o666), 0o666)] {
        let path = socket_path("mode");
        let mut config = Config {
            listen_unix: Some(path.clone()),
            upstream: upstream.addr.to_string(),
            ..quiet_config()
        };
        if let Some(mode) = mode {
            config.listen_unix_mode = mode;
        }
        let relay = TestRelay::start(config);
        assert_eq!(mode_of(&path), expected, "{mode:?}");
        let client = unix_client(&path);
        (&client).write_all(b"mode").expect("the client sends over a socket with a set mode");
        client
            .shutdown(Shutdown::Write)
            .expect("the client half-closes over a socket with a set mode");
        assert_eq!(read_to_end(&client), b"mode");
        relay.stop();
    }
}

#[test]
fn socket_mode_is_a_flag_and_a_route_option_and_check_prints_it() {
    let path = socket_path("check-mode");
    let listen = format!("unix:{}", path.display());
    let output = run_tcprelay(&["--check", "-l", &listen, "-u", ":1", "--socket-mode", "0600"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(" socket-mode=0600"), "{stdout}");

    let config = socket_path("mode.conf");
    std::fs::write(&config, format!("route {listen} -> :1 socket-mode=640\n"))
        .unwrap_or_else(|e| panic!("the test writes the config file {}: {e}", config.display()));
    let output = run_tcprelay(&["--check", "--config", &config.display().to_string()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(" socket-mode=0640"), "{stdout}");

    std::fs::write(&config, format!("route {listen} -> :1 socket-mode=rw\n"))
        .unwrap_or_else(|e| panic!("the test rewrites the config file {}: {e}", config.display()));
    let output = run_tcprelay(&["--check", "--config", &config.display().to_string()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(":1:") && stderr.contains("\"rw\""), "{stderr}");
    let output = run_tcprelay(&["--check", "-l", &listen, "-u", ":1", "--socket-mode", "1777"]);
    assert_eq!(output.status.code(), Some(2));
    std::fs::remove_file(&config).expect("the test removes its config file");
}

/// `socket-owner` and `socket-group` give the socket file away (here to the test's own
/// user and group, the one pair it may give a file to without privileges), so that with mode
/// 0660 the group's members may connect; a name that no account has is refused at parse time.
#[test]
fn socket_group_and_owner_are_given_to_the_socket_file() {
    use std::os::unix::fs::MetadataExt;
    let upstream = Upstream::echo();
    let path = socket_path("owned");
    let probe = path.with_extension("probe");
    std::fs::write(&probe, b"")
        .unwrap_or_else(|e| panic!("the test writes a probe file at {}: {e}", probe.display()));
    let mine = std::fs::metadata(&probe).expect("the probe file has metadata");
    let (uid, gid) = (mine.uid(), mine.gid());
    std::fs::remove_file(&probe).expect("the test removes its probe file");
    let relay = TestRelay::start(Config {
        listen_unix: Some(path.clone()),
        listen_unix_mode: 0o660,
        listen_unix_owner: Some(uid),
        listen_unix_group: Some(gid),
        upstream: upstream.addr.to_string(),
        ..quiet_config()
    });
    let file = std::fs::metadata(&path).expect("the socket file");
    assert_eq!((file.uid(), file.gid(), file.mode() & 0o777), (uid, gid, 0o660));
    relay.stop();

    let listen = format!("unix:{}", path.display());
    for (flag, name) in [("--socket-owner", "no-such-user"), ("--socket-group", "no-such-group")] {
        let output = run_tcprelay(&["--check", "-l", &listen, "-u", ":1", flag, name]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&format!("{name:?}")), "{stderr}");
    }
    let output = run_tcprelay(&["--check", "-l", &listen, "-u", ":1", "--socket-group", "0"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("socket-group=0"));
}
