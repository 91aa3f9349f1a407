//! An echo server for the idle workload that holds thousands of connections
//! on a single thread.
//!
//! A thread per connection would put 10,000 threads in the upstream next to
//! the relay's own (this machine's `kernel.pid_max` is 32,768 tasks, and a
//! thread-per-connection relay needs 20,000 for 10,000 clients), and std has
//! no epoll. So one thread owns every socket in non-blocking mode and sweeps
//! them: accept what is waiting, echo what arrived, and pause briefly when a
//! sweep found nothing to do. The sweeps cost CPU while connections are held,
//! which is fine here: the idle workload measures memory and threads, not time.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// The longest pause between two sweeps that found nothing: short enough
/// that a sample check answers within a few tens of milliseconds.
const LONGEST_PAUSE: Duration = Duration::from_millis(20);

/// The running server.
pub struct QuietEcho {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    sweeper: JoinHandle<io::Result<()>>,
}

impl QuietEcho {
    /// Binds `127.0.0.1:0` and starts the sweeping thread.
    pub fn start() -> io::Result<QuietEcho> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stopping);
        let sweeper = thread::Builder::new()
            .name("quiet-echo".to_string())
            .spawn(move || sweep_until_stopped(&listener, &flag))?;
        Ok(QuietEcho { addr, stopping, sweeper })
    }

    /// The address relays forward to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops sweeping, closes every held connection and joins the thread.
    pub fn stop(self) -> io::Result<()> {
        self.stopping.store(true, Ordering::SeqCst);
        self.sweeper.join().map_err(|_| io::Error::other("the quiet echo thread panicked"))?
    }
}

/// One held connection and the part of an echo it could not write yet.
struct HeldConnection {
    stream: TcpStream,
    unsent: Vec<u8>,
}

/// What one visit to a connection found.
enum Visit {
    Quiet,
    Moved,
    Closed,
}

fn sweep_until_stopped(listener: &TcpListener, stopping: &AtomicBool) -> io::Result<()> {
    let mut held: Vec<HeldConnection> = Vec::new();
    let mut buffer = vec![0; 16 * 1024];
    let mut quiet_sweeps: u32 = 0;
    while !stopping.load(Ordering::SeqCst) {
        let mut moved = accept_waiting(listener, &mut held)?;
        held.retain_mut(|connection| match connection.visit(&mut buffer) {
            Visit::Quiet => true,
            Visit::Moved => {
                moved = true;
                true
            }
            Visit::Closed => false,
        });
        if moved {
            quiet_sweeps = 0;
        } else {
            // Back off gradually: 1 ms after the first quiet sweep, up to
            // LONGEST_PAUSE while nothing happens.
            quiet_sweeps = quiet_sweeps.saturating_add(1);
            let pause = Duration::from_millis(u64::from(quiet_sweeps)).min(LONGEST_PAUSE);
            thread::sleep(pause);
        }
    }
    Ok(())
}

/// Accepts every connection already waiting; true if there was any.
fn accept_waiting(listener: &TcpListener, held: &mut Vec<HeldConnection>) -> io::Result<bool> {
    let mut accepted = false;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(true)?;
                stream.set_nodelay(true)?;
                held.push(HeldConnection { stream, unsent: Vec::new() });
                accepted = true;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(accepted),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            // Out of descriptors, say: leave the rest in the backlog for the
            // next sweep rather than failing the whole server.
            Err(_) => return Ok(accepted),
        }
    }
}

impl HeldConnection {
    /// Writes what is pending, then echoes whatever has arrived: up to
    /// `READS_PER_VISIT` buffers, so a connection moving bulk (`idle-after-bulk`)
    /// moves at a useful speed without starving the others.
    fn visit(&mut self, buffer: &mut [u8]) -> Visit {
        const READS_PER_VISIT: usize = 64;
        let mut moved = false;
        for _ in 0..READS_PER_VISIT {
            if !self.unsent.is_empty() {
                match self.write_pending() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(_) => return Visit::Closed,
                }
            }
            match self.stream.read(buffer) {
                Ok(0) => return Visit::Closed,
                Ok(n) => {
                    moved = true;
                    self.unsent.extend_from_slice(&buffer[..n]);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => break,
                Err(_) => return Visit::Closed,
            }
        }
        if !self.unsent.is_empty() && self.write_pending().is_err() {
            return Visit::Closed;
        }
        if moved { Visit::Moved } else { Visit::Quiet }
    }

    /// Writes as much of `unsent` as the socket takes; true once all is out.
    fn write_pending(&mut self) -> io::Result<bool> {
        while !self.unsent.is_empty() {
            match self.stream.write(&self.unsent) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.unsent.drain(..n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}
