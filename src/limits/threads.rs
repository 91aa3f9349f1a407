//! Connection threads: where they come from (a pool that reuses finished ones), their stack
//! size, and a hook for tests.
//!
//! Threads are made with [`std::thread::Builder`], never `thread::spawn`, because `spawn`
//! panics when the OS refuses a thread (out of memory, `ulimit -u`), and one refused thread
//! must cost one client, not the whole relay.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::counter::Counter;
use crate::lock::lock;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// Which of a connection's two threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadRole {
    /// The first thread: dials the upstream and copies upstream → client (Go's `handleConn`).
    First,
    /// The second thread: copies client → upstream (Go's `go func() { ...; copyThenCloseWrite(up, conn) }()`).
    Second,
}

/// A moment in a connection thread's life, shown to a [`ThreadHook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadStage {
    /// About to start a connection thread (a parked one, or a new one from the OS). A hook
    /// error here is treated exactly like the OS refusing the thread.
    Spawning(ThreadRole),
    /// The first thing the thread does for this connection.
    Started(ThreadRole),
    /// The last thing the thread does for this connection, even when it unwinds from a panic.
    Finished(ThreadRole),
}

/// Called at each [`ThreadStage`]. The default does nothing. Tests replace it (a field of
/// [`TestHooks`](crate::TestHooks)) to prove what the relay does when the OS refuses a
/// thread (return an error at `Spawning`), when a thread panics (panic at `Started`), and
/// how many threads are alive (count `Started` and `Finished`). Production code has no
/// reason to set it.
pub type ThreadHook = fn(ThreadStage) -> io::Result<()>;

/// The default [`ThreadHook`]: does nothing.
pub fn no_hook(_: ThreadStage) -> io::Result<()> {
    Ok(())
}

/// Parked threads in the whole process, every route's pool together: each holds its stack,
/// which the connection budget sets aside for at most `max_parked` of them (see
/// `capacity.rs`), so the bound must hold across routes, not per pool.
static PARKED_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

/// The work a connection thread does: one connection's first or second half.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// Where connection threads come from: a parked thread that finished an earlier connection,
/// or else a new OS thread.
///
/// Every connection still gets two threads of its own for as long as it lives; the pool only
/// changes what happens *after*: instead of exiting, a thread waits up to `keep_alive` for
/// the next connection. Creating a thread costs a `clone`, and std maps (and later unmaps) a
/// signal stack for every new thread, which serialises on the process's memory-map lock;
/// reusing a parked thread costs a channel send. docs/benchmarks.md has the measurement.
///
/// Like the Rust Book's `ThreadPool`, but elastic: there is no fixed number of workers, and
/// a job never waits for a free one: if none is parked, a new thread is made.
#[derive(Debug)]
pub(crate) struct ThreadPool {
    /// The name its threads show in `ps`, `top` and /proc: `tcprelay-conn` unless
    /// [`ThreadPool::named`] said otherwise.
    name: &'static str,
    stack_size: usize,
    hook: ThreadHook,
    /// How long a finished thread waits for another connection; zero: it exits at once.
    keep_alive: Duration,
    /// At most this many threads wait at once; more exit at once.
    max_parked: usize,
    parked: Mutex<Vec<Parked>>,
    /// Set by [`ThreadPool::release_parked`]: a thread that finishes later exits rather than
    /// park in a pool nobody will take from again.
    released: AtomicBool,
}

/// A thread waiting for a job: where to send it.
#[derive(Debug)]
struct Parked {
    id: u64,
    jobs: mpsc::Sender<Job>,
}

impl ThreadPool {
    /// A pool whose threads have `stack_size` bytes of stack and wait `keep_alive` for more
    /// work, at most `max_parked` of them at a time in the whole process.
    pub(crate) fn new(
        stack_size: usize,
        hook: ThreadHook,
        keep_alive: Duration,
        max_parked: usize,
    ) -> ThreadPool {
        let parked = Mutex::new(Vec::new());
        let released = AtomicBool::new(false);
        let name = "tcprelay-conn";
        ThreadPool { name, stack_size, hook, keep_alive, max_parked, parked, released }
    }

    /// The same pool, its threads named `name` (a UDP route's flow threads are
    /// `tcprelay-flow`).
    pub(crate) fn named(self, name: &'static str) -> ThreadPool {
        ThreadPool { name, ..self }
    }

    /// Runs `body` as a connection thread in `role`: on a parked thread if one is waiting,
    /// else on a new one. `body` starts with a [`ThreadLife`] of its own
    /// ([`ThreadPool::life`]).
    ///
    /// # Errors
    /// The OS refused a new thread (or the test hook said it would). `body` is then dropped
    /// unrun, which closes whatever it owned.
    pub(crate) fn run(
        self: &Arc<Self>,
        role: ThreadRole,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        (self.hook)(ThreadStage::Spawning(role))?;
        let mut job: Job = Box::new(body);
        while let Some(parked) = self.take_parked() {
            match parked.jobs.send(job) {
                Ok(()) => return Ok(()),
                // That thread is gone (it stopped waiting just now): try the next one.
                Err(mpsc::SendError(unsent)) => job = unsent,
            }
        }
        let pool = Arc::clone(self);
        thread::Builder::new()
            .name(self.name.to_string())
            .stack_size(self.stack_size)
            .spawn(move || pool.work(job))
            .map(drop)
    }

    /// The life of a connection thread in `role`, for its body to hold from its first line:
    /// the pool's hook hears `Started` now and `Finished` when it is dropped. The body, not
    /// the pool, holds it, so that `Finished` comes before the body lets go of what it owns
    /// (a connection's slot under the limit).
    pub(crate) fn life(&self, role: ThreadRole) -> ThreadLife {
        ThreadLife::begin(self.hook, role)
    }

    /// Lets every parked thread exit now, and every thread that finishes from now on (the
    /// relay has stopped, or a reload replaced this pool).
    pub(crate) fn release_parked(&self) {
        let mut list = self.lock();
        self.released.store(true, Ordering::Release);
        PARKED_IN_PROCESS.fetch_sub(list.len(), Ordering::AcqRel);
        list.clear(); // dropping the senders wakes each waiting thread with an error
    }

    /// A thread's life: run a job, wait for the next, until none comes in time. A job that
    /// panics ends the thread there, as it would without the pool.
    fn work(&self, mut job: Job) {
        static NEXT_ID: Counter = Counter::new(0);
        let id = NEXT_ID.fetch_add(1);
        loop {
            job();
            let (sender, jobs) = mpsc::channel();
            if !self.park(Parked { id, jobs: sender }) {
                return;
            }
            job = match jobs.recv_timeout(self.keep_alive) {
                Ok(next) => next,
                // Still on the list: nobody will send, leave. Already taken: a job is on its
                // way (or the pool was released), so wait for it.
                Err(RecvTimeoutError::Timeout) if self.unpark(id) => return,
                Err(RecvTimeoutError::Timeout) => match jobs.recv() {
                    Ok(next) => next,
                    Err(_) => return,
                },
                Err(RecvTimeoutError::Disconnected) => return,
            };
        }
    }

    /// Puts a thread on the parked list; `false` if it should exit instead.
    fn park(&self, parked: Parked) -> bool {
        let mut list = self.lock();
        let room = |parked: usize| (parked < self.max_parked).then_some(parked + 1);
        if self.keep_alive.is_zero()
            || self.released.load(Ordering::Acquire)
            || PARKED_IN_PROCESS.fetch_update(Ordering::AcqRel, Ordering::Acquire, room).is_err()
        {
            return false;
        }
        list.push(parked);
        true
    }

    /// Takes a thread off the list after its wait timed out; `false` if it was taken already.
    fn unpark(&self, id: u64) -> bool {
        let mut list = self.lock();
        let before = list.len();
        list.retain(|parked| parked.id != id);
        let removed = list.len() < before;
        if removed {
            PARKED_IN_PROCESS.fetch_sub(1, Ordering::AcqRel);
        }
        removed
    }

    /// The most recently parked thread (its stack is the likeliest to be warm in cache).
    fn take_parked(&self) -> Option<Parked> {
        let parked = self.lock().pop();
        if parked.is_some() {
            PARKED_IN_PROCESS.fetch_sub(1, Ordering::AcqRel);
        }
        parked
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Parked>> {
        // Every change is one push, pop or retain: a poisoned lock still holds a good list.
        lock(&self.parked)
    }
}

/// Lives as long as a connection thread's body: tells the hook `Started` when made and
/// `Finished` when dropped, which happens on a normal return and on a panic alike.
pub(crate) struct ThreadLife {
    hook: ThreadHook,
    role: ThreadRole,
}

impl ThreadLife {
    fn begin(hook: ThreadHook, role: ThreadRole) -> ThreadLife {
        // Made before the hook runs, so that a hook panicking here still sees `Finished`.
        let life = ThreadLife { hook, role };
        // The hook's result matters only at `Spawning`; here it may only observe or panic.
        let _ = hook(ThreadStage::Started(role));
        life
    }
}

impl Drop for ThreadLife {
    fn drop(&mut self) {
        let _ = (self.hook)(ThreadStage::Finished(self.role));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc::Receiver;

    /// The parked-thread count is process-wide: these tests run one at a time so that each
    /// sees only its own pool's threads parked.
    fn one_at_a_time() -> MutexGuard<'static, ()> {
        static POOL_TESTS: Mutex<()> = Mutex::new(());
        lock(&POOL_TESTS)
    }

    /// Waits for `count` messages on `done`, each within a bound, and says which was missing.
    fn expect_done(done: &Receiver<usize>, count: usize) -> Vec<usize> {
        (0..count)
            .map(|n| {
                done.recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("job {n} of {count} never ran: a job was lost"))
            })
            .collect()
    }

    #[test]
    fn a_job_handed_to_a_thread_whose_wait_is_ending_still_runs_exactly_once() {
        let _one_at_a_time = one_at_a_time();
        // A keep-alive of 1 ms makes parked threads time out while `run` is taking them off
        // the list: the race between `take_parked` and `unpark` happens thousands of times.
        let pool = Arc::new(ThreadPool::new(64 * 1024, no_hook, Duration::from_millis(1), 4));
        let runs = Arc::new(AtomicUsize::new(0));
        let (done, finished) = mpsc::channel();
        let jobs = 2_000;
        for n in 0..jobs {
            let (runs, done) = (Arc::clone(&runs), done.clone());
            pool.run(ThreadRole::First, move || {
                runs.fetch_add(1, Ordering::SeqCst);
                let _ = done.send(n);
            })
            .expect("the OS refused a thread");
            if n % 7 == 0 {
                // Let some parked threads reach the end of their keep-alive.
                std::thread::sleep(Duration::from_micros(900));
            }
        }
        let mut ran = expect_done(&finished, jobs);
        ran.sort_unstable();
        assert_eq!(ran, (0..jobs).collect::<Vec<_>>(), "every job once, none twice");
        assert_eq!(runs.load(Ordering::SeqCst), jobs);
        pool.release_parked();
        assert!(pool.lock().is_empty(), "released threads are off the list");
    }

    /// After a stop or a reload released the pool, a thread that finishes its connection or
    /// flow exits instead of waiting out its keep-alive where nobody will take it.
    #[test]
    fn a_released_pool_parks_no_more_threads() {
        let _one_at_a_time = one_at_a_time();
        let pool = ThreadPool::new(64 * 1024, no_hook, Duration::from_secs(10), 4);
        let (sender, _jobs) = mpsc::channel();
        assert!(pool.park(Parked { id: 0, jobs: sender.clone() }), "room for a parked thread");
        pool.release_parked();
        assert!(pool.lock().is_empty(), "the parked thread was let go");
        assert!(!pool.park(Parked { id: 1, jobs: sender }), "a finishing thread exits");
        assert!(pool.lock().is_empty());
    }

    #[test]
    fn finished_threads_are_reused_and_at_most_max_parked_wait() {
        let _one_at_a_time = one_at_a_time();
        let pool = Arc::new(ThreadPool::new(64 * 1024, no_hook, Duration::from_secs(10), 2));
        let (done, finished) = mpsc::channel();
        // Five jobs at once: five threads. When they end, only two may park.
        let (release, gate) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new(gate));
        for n in 0..5 {
            let (done, gate) = (done.clone(), Arc::clone(&gate));
            pool.run(ThreadRole::Second, move || {
                let _ = done.send(n);
                let _ = gate.lock().map(|gate| gate.recv());
            })
            .expect("the OS refused a thread");
        }
        expect_done(&finished, 5);
        for _ in 0..5 {
            release.send(()).expect("every job waits on the gate");
        }
        let parked_two = (0..1000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            pool.lock().len() == 2
        });
        assert!(parked_two, "two threads park, the other three exit: {}", pool.lock().len());
        // The next job is handed to one of the parked threads.
        pool.run(ThreadRole::First, move || {
            let _ = done.send(5);
        })
        .expect("a parked thread takes the job");
        assert_eq!(expect_done(&finished, 1), [5]);
        pool.release_parked();
    }
}
