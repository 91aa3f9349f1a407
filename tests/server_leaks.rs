//! A whole `Server` (several routes, the admin endpoint, a drain) gives back every socket
//! and thread it took, including after denied clients, failed upstreams, Unix sockets and
//! admin requests good and bad.
//!
//! One test in its own binary, because it counts this process's descriptors and threads:
//! other tests running in parallel would move the counts.
#![forbid(unsafe_code)]
#![cfg(unix)]

mod support;

use std::net::{Shutdown, TcpStream};

use support::*;
use tcprelay::{Config, Server, ServerConfig};

#[test]
fn a_drained_server_leaves_no_descriptor_or_thread_behind() {
    let upstream = Upstream::echo();
    let socket = std::env::temp_dir().join(format!("tcprelay-leaks-{}.sock", std::process::id()));
    let (idle_fds, idle_threads) = (open_fds(), thread_count());

    let route = |name: &str| Config {
        name: name.to_string(),
        upstream: upstream.addr.to_string(),
        ..quiet_config()
    };
    let denied = tcprelay::AccessRules {
        allow: vec![],
        deny: vec!["127.0.0.1".parse().expect("127.0.0.1 is a deny rule")],
    };
    let server = Server::bind(ServerConfig {
        routes: vec![
            route("echo"),
            Config { access: denied, ..route("denied") },
            Config {
                upstream: dead_addr().to_string(),
                more_upstreams: vec![dead_addr().to_string()],
                ..route("dead")
            },
            Config { listen_unix: Some(socket.clone()), ..route("unix") },
        ],
        admin: Some(tcprelay::Address::Tcp(
            "127.0.0.1:0".parse().expect("127.0.0.1:0 is a socket address"),
        )),
        admin_access: Default::default(),
        drain_timeout: TIMEOUT,
        ..Default::default()
    })
    .expect("bind the server's four routes and its admin endpoint");
    let addrs = server.local_addrs();
    let admin = server.admin_addr().expect("the server has the admin endpoint it was given");
    let handle = server.handle();
    let serving = std::thread::spawn(move || server.serve());
    let tcp = |index: usize| match &addrs[index] {
        tcprelay::Address::Tcp(addr) => *addr,
        unix => panic!("route {index} is {unix}"),
    };

    for round in 0..5 {
        let data = pattern(round, 50_000);
        assert_eq!(checksum(&echo_through(tcp(0), &data)), checksum(&data));
        assert!(read_all(&connect(tcp(1))).unwrap_or_default().is_empty(), "denied");
        assert!(
            read_all(&connect(tcp(2))).expect("the client of the dead route sees EOF").is_empty(),
            "no upstream"
        );
        let unix = std::os::unix::net::UnixStream::connect(&socket)
            .expect("connect to the Unix socket route");
        unix.shutdown(Shutdown::Write).expect("the Unix client half-closes");
        assert_eq!(
            std::io::Read::read(&mut &unix, &mut [0; 1])
                .expect("the Unix client reads EOF after its half-close"),
            0
        );
        assert_eq!(http_get(admin, "/metrics").0, 200);
        assert_eq!(http(admin, b"BREW /coffee HTCPCP/1.0\r\n\r\n").0, 400);
        drop(TcpStream::connect(admin).expect("a port probe connects to the admin endpoint"));
    }
    handle.drain();
    serving.join().expect("server thread panicked").expect("serve returns Ok");

    assert!(!socket.exists(), "the Unix socket file is removed");
    assert!(eventually(|| open_fds() == idle_fds), "fds: idle {idle_fds}, now {}", open_fds());
    assert!(
        eventually(|| thread_count() == idle_threads),
        "threads: idle {idle_threads}, now {}",
        thread_count()
    );
}
