//! One direction of a connection: [`copy_then_close_write`], Go's `copyThenCloseWrite`, and the
//! two ends it copies between, metered: a [`Source`] to read from and a [`Sink`] to write to.
//!
//! The ends wrap the sockets that `io::copy` reads and writes, and do three small jobs on the way:
//!
//! - **count** the bytes delivered, in the connection's own counter
//!   ([`Connection::bytes`]), the one count the close report and `/metrics` both read.
//!   `io::copy` returns its total only on success; when a peer resets mid-transfer the
//!   count would be lost with the error. We count on the writing side, so the log reports
//!   bytes that really left through the other socket.
//! - **record activity** on the connection's shared clock, for the idle timers.
//! - **turn socket-timeout ticks into timer checks** (see [`crate::relay::timers`] for why a
//!   tick never loses a byte), and remember whether an error came from writing, so the close
//!   reason blames the right peer.

use std::io::{self, BufReader, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::net::stream::Stream;
use crate::outcome::{CloseReason, Direction};
use crate::relay::connection::Connection;
use crate::relay::events::Events;

/// Copies `src` → `dst` until EOF or an error, then half-closes or closes. Go's
/// `copyThenCloseWrite(dst, src)`:
///
/// ```go
/// func copyThenCloseWrite(dst, src *net.TCPConn) {
///     if _, err := io.Copy(dst, src); err != nil { // io::copy(&mut source, &mut sink)
///         src.Close()                       // connection.close(reason, error):
///         dst.Close()                       //   shutdown(Both) on both sockets
///         return
///     }
///     dst.CloseWrite()                      // dst.shutdown(Shutdown::Write)
/// }
/// ```
///
/// At EOF the source has said "I am done sending": we pass that on with `shutdown(Write)`
/// on the sink (Go's `CloseWrite`) and leave the other direction running, so a client that
/// half-closes still gets its whole reply. On an error, the whole connection is closed so
/// the other thread wakes up at once.
///
/// `buffer_size` is the largest buffer the copy may grow to (see below).
pub fn copy_then_close_write(
    dst: &Stream,
    src: &Stream,
    direction: Direction,
    connection: &Connection,
    observer: &dyn Events,
    buffer_size: usize,
) {
    let _close_on_panic = CloseOnPanic(connection);
    let mut source = Source::new(src, connection, direction, observer);
    let mut sink = Sink::new(dst, connection, direction, observer);
    let copied = copy_with_a_buffer_that_follows_the_flow(&mut source, &mut sink, buffer_size);
    // The relay may have closed the connection already (a timer, the other copy's error, a
    // stop): then its own shutdown(Both) ended this copy, with an `Ok(0)` that is no EOF
    // from the peer or an error that is only the echo of that close. Nothing to pass on.
    match (copied, connection.closed_by_relay()) {
        (Ok(_), Some(reason)) => observer.woken_by_close(connection.id, direction, reason),
        (Err(error), Some(reason)) => {
            observer.woken_by_close(connection.id, direction, reason);
            connection.close(reason, error);
        }
        (Ok(_), None) => {
            connection.record_eof(direction.source_eof());
            // Told first, so the story stays in order: the peer reacts to the shutdown at once.
            observer.eof(connection.id, direction);
            // Fails only if the sink is already shut down or gone; the other copy will see it.
            let _ = dst.shutdown(Shutdown::Write);
        }
        (Err(error), None) => {
            let reason =
                if sink.write_failed { direction.sink_failed() } else { direction.source_failed() };
            observer.copy_failed(connection.id, direction, &error);
            connection.close(reason, error);
        }
    }
}

/// `io::copy(&mut source, &mut sink)`, entered again with a bigger buffer while the flow
/// fills the one it has, and left while the connection is quiet, so that a buffer exists
/// only while data flows:
///
/// - **quiet, no buffer**: before the first byte, after a lone burst (a read that did not
///   fill the small buffer, with no other such read in the last [`BUSY`]), and after a timer
///   tick passed with nothing to read, the copy waits in a one-byte `peek` and holds no
///   buffer at all. An idle connection costs no copy buffer, on the heap or on its thread's
///   stack; a busy one keeps its small buffer between messages until a quiet tick.
/// - **flowing**: bytes are there, so `io::copy` runs over a `BufReader` of
///   [`SMALL_BUFFER`] bytes, whose buffer `io::copy` reads into directly.
/// - **bulk**: when reads fill the whole buffer [`FULL_READS_TO_GROW`] times in a row, the
///   source ends that `io::copy` (an `Ok(0)` it asked for, with nothing buffered: std's
///   `io::copy` only reads into an empty `BufReader`) and the copy goes on in a fresh one
///   four times the size, up to `max` (`--buffer-size`), while the process-wide
///   [`BufferBudget`] allows. Fewer, larger reads and writes: docs/benchmarks.md.
///
/// Each `io::copy` ends with an empty buffer, so no byte is lost, duplicated or reordered
/// between one and the next. Returns at the source's EOF, or with the first error.
///
/// Why a lone burst gives its small buffer back at once, not at the next tick: buffers that
/// live for seconds sit between the connections' long-lived allocations, and glibc's malloc
/// keeps the freed holes resident. Why not after *every* burst: the `peek` and the fresh
/// buffer per message cost keep-alive rate. Both measured: docs/benchmarks.md, "Figures the
/// code relies on".
fn copy_with_a_buffer_that_follows_the_flow(
    source: &mut Source<'_>,
    sink: &mut Sink<'_>,
    max: usize,
) -> io::Result<()> {
    // Below 8 KiB `io::copy` would not read into the `BufReader`'s buffer but its own.
    let max = max.max(SMALL_BUFFER);
    let small = SMALL_BUFFER;
    let mut size = small;
    source.wait_for_bytes()?;
    loop {
        let lease = BufferBudget::lease(size, small);
        source.grow_beyond = if lease.size() < max { Some(lease.size()) } else { None };
        io::copy(&mut BufReader::with_capacity(lease.size(), &mut *source), sink)?;
        drop(lease);
        match source.pause.take() {
            None => return Ok(()), // the source said EOF
            Some(Pause::Grow) => size = size.saturating_mul(4).min(max),
            Some(Pause::Quiet | Pause::Drained) => {
                size = small;
                source.wait_for_bytes()?;
            }
        }
    }
}

/// The buffer a copy starts with once bytes flow: std's own `io::copy` size.
pub const SMALL_BUFFER: usize = 8 * 1024;

/// Reads that fill the whole buffer in a row before the copy moves to a bigger one.
const FULL_READS_TO_GROW: u32 = 2;

/// Two short reads closer than this mark a busy connection (more than ten messages a
/// second), which keeps its small buffer between messages.
const BUSY: Duration = Duration::from_millis(100);

/// Why a [`Source`] ended an `io::copy` early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pause {
    /// Reads keep filling the buffer: go on with a bigger one.
    Grow,
    /// A timer tick passed with nothing to read: give the buffer back and wait.
    Quiet,
    /// A lone burst is over (a short read, none other lately): give the buffer back and wait.
    Drained,
}

/// The bytes of copy buffers beyond [`SMALL_BUFFER`] the whole process may hold at once:
/// 64 MiB (16 MiB on 32-bit targets), e.g. 32 busy connections both ways at 1 MiB, or
/// less under a memory limit (see [`limit_buffer_budget`]). With thousands of connections
/// busy at once, the rest copy with small buffers: slower, never more memory. So copy
/// buffers never exceed `2 × SMALL_BUFFER × connections` plus this.
struct BufferBudget;

static BUDGET_USED: AtomicUsize = AtomicUsize::new(0);
static BUDGET_TOTAL: AtomicUsize = AtomicUsize::new(BufferBudget::TOTAL);

/// Lowers the process-wide budget of grown copy buffers to `bytes` (never raises it): the
/// connection cap (`limits/capacity.rs`) counts [`SMALL_BUFFER`] per direction and leaves
/// this much of the tightest memory limit for the rest.
pub fn limit_buffer_budget(bytes: u64) {
    let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
    BUDGET_TOTAL.fetch_min(bytes, Ordering::Relaxed);
}

impl BufferBudget {
    const TOTAL: usize = if usize::BITS >= 64 { 64 << 20 } else { 16 << 20 };

    /// A buffer of `wanted` bytes if the budget has room for what it takes beyond `small`,
    /// else of `small` bytes.
    fn lease(wanted: usize, small: usize) -> Lease {
        let extra = wanted.saturating_sub(small);
        if extra == 0 {
            return Lease { size: small, extra: 0 };
        }
        let taken = BUDGET_USED.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
            used.checked_add(extra).filter(|total| *total <= BUDGET_TOTAL.load(Ordering::Relaxed))
        });
        match taken {
            Ok(_) => Lease { size: wanted, extra },
            Err(_) => Lease { size: small, extra: 0 },
        }
    }
}

/// A share of the [`BufferBudget`], given back when dropped.
struct Lease {
    size: usize,
    extra: usize,
}

impl Lease {
    fn size(&self) -> usize {
        self.size
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        BUDGET_USED.fetch_sub(self.extra, Ordering::Relaxed);
    }
}

/// Closes the connection if dropped during a panic, so a bug in one copy thread wakes its
/// sibling (which could otherwise wait forever in `read`) instead of leaking both.
pub struct CloseOnPanic<'a>(pub &'a Connection);

impl Drop for CloseOnPanic<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.close(CloseReason::Panicked, "copy thread panicked");
        }
    }
}

/// The socket a copy reads from.
#[derive(Debug)]
pub struct Source<'a> {
    stream: &'a Stream,
    connection: &'a Connection,
    observer: &'a dyn Events,
    direction: Direction,
    /// Whether `--explain` still has to tell this copy's first bytes (false when it is off,
    /// so the hot path pays one `bool` test).
    first_bytes_untold: bool,
    /// While the buffer may still grow: its size now, to see reads that fill it.
    grow_beyond: Option<usize>,
    /// Reads in a row that filled the whole buffer.
    full_reads: u32,
    /// Set when this source ends the current `io::copy` early, and why.
    pause: Option<Pause>,
    /// When a read last came back short of a small buffer (the end of a burst).
    last_short_read: Option<Instant>,
}

impl<'a> Source<'a> {
    /// Wraps `stream`, the socket of `connection` that the copy in `direction` reads.
    pub fn new(
        stream: &'a Stream,
        connection: &'a Connection,
        direction: Direction,
        observer: &'a dyn Events,
    ) -> Source<'a> {
        let first_bytes_untold = observer.narrates();
        Source {
            stream,
            connection,
            observer,
            direction,
            first_bytes_untold,
            grow_beyond: None,
            full_reads: 0,
            pause: None,
            last_short_read: None,
        }
    }

    fn tell_first_bytes(&mut self, count: usize) {
        self.first_bytes_untold = false;
        self.observer.first_bytes(self.connection.id, self.direction, count);
    }

    /// Waits, holding no buffer, until the socket has a byte or EOF to read. Timer ticks
    /// are checked as in `read`.
    fn wait_for_bytes(&mut self) -> io::Result<()> {
        loop {
            match self.stream.wait_readable() {
                Ok(_) => return Ok(()),
                Err(error) if is_tick(&error) => self.connection.check_timers(self.observer)?,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    /// Notes a read of `read` bytes into a buffer of `capacity`: two in a row that fill it
    /// mean bulk, and the next read ends this `io::copy` so the next one is bigger; one
    /// that does not fill the small buffer ends it so the buffer is given back.
    fn watch_for_bulk(&mut self, read: usize, capacity: usize) {
        if read < capacity && capacity <= SMALL_BUFFER {
            self.full_reads = 0;
            let now = Instant::now();
            let busy = self.last_short_read.is_some_and(|last| now - last < BUSY);
            self.last_short_read = Some(now);
            if !busy {
                self.pause = Some(Pause::Drained);
            }
            return;
        }
        let Some(size) = self.grow_beyond else { return };
        if read == capacity && capacity >= size {
            self.full_reads += 1;
            if self.full_reads >= FULL_READS_TO_GROW {
                self.full_reads = 0;
                self.pause = Some(Pause::Grow);
            }
        } else {
            self.full_reads = 0;
        }
    }
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pause.is_some() {
            return Ok(0); // ends this `io::copy`; its buffer is empty (see above)
        }
        match (&mut &*self.stream).read(buf) {
            Ok(read) => {
                if read > 0 {
                    self.connection.timers.record_activity();
                    if self.first_bytes_untold {
                        self.tell_first_bytes(read);
                    }
                    self.watch_for_bulk(read, buf.len());
                }
                Ok(read)
            }
            Err(error) if is_tick(&error) => {
                self.connection.check_timers(self.observer)?;
                // Quiet for a tick: end this `io::copy` and give its buffer back.
                self.pause = Some(Pause::Quiet);
                Ok(0)
            }
            Err(error) => Err(error),
        }
    }
}

/// The socket a copy writes to; counts what was delivered in the connection's own counter,
/// which the close report and `/metrics` read.
#[derive(Debug)]
pub struct Sink<'a> {
    stream: &'a Stream,
    connection: &'a Connection,
    direction: Direction,
    observer: &'a dyn Events,
    /// Whether a write failed (as opposed to a read on the other side).
    pub write_failed: bool,
}

impl<'a> Sink<'a> {
    /// Wraps `stream`, the socket of `connection` that the copy in `direction` writes.
    pub fn new(
        stream: &'a Stream,
        connection: &'a Connection,
        direction: Direction,
        observer: &'a dyn Events,
    ) -> Sink<'a> {
        Sink { stream, connection, direction, observer, write_failed: false }
    }
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match (&mut &*self.stream).write(buf) {
                Ok(written) => {
                    // The connection's own counter for this direction: no other thread adds
                    // to it.
                    self.connection.bytes.add(self.direction, written as u64);
                    self.connection.timers.record_activity();
                    return Ok(written);
                }
                // A write timeout that sent nothing: the peer is not reading. Retrying is
                // safe; a partial write would have returned Ok with its count instead.
                Err(error) if is_tick(&error) => self.connection.check_timers(self.observer)?,
                // `write_all` retries `Interrupted` itself.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => return Err(error),
                Err(error) => {
                    self.write_failed = true;
                    return Err(error);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(()) // a socket has no user-space buffer to flush
    }
}

/// Whether an error is a socket timeout: `WouldBlock` on Unix, `TimedOut` on Windows.
fn is_tick(error: &io::Error) -> bool {
    matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_refuses_what_it_cannot_hold_and_takes_back_what_it_lent() {
        let small = SMALL_BUFFER;
        let too_big = BufferBudget::lease(BufferBudget::TOTAL + small + 1, small);
        assert_eq!(too_big.size(), small, "more than the whole budget: the small buffer");
        assert_eq!(BufferBudget::lease(small, small).size(), small);
        // Other tests may hold leases too, so only what this one took is checked.
        let granted = BufferBudget::lease(4 * small, small);
        assert_eq!(granted.size(), 4 * small);
        assert!(BUDGET_USED.load(Ordering::Relaxed) >= 3 * small, "the lease is counted");
        drop(granted);
    }
}
