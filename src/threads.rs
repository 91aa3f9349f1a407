//! Creating connection threads: their names, their stack size, and a hook for tests.
//!
//! Threads are made with [`std::thread::Builder`], never `thread::spawn`, because `spawn`
//! panics when the OS refuses a thread (out of memory, `ulimit -u`), and one refused thread
//! must cost one client, not the whole relay.

use std::io;
use std::thread;

/// Which of a connection's two threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadRole {
    /// The first thread: dials the upstream and copies upstream → client (Go's `handleConn`).
    First,
    /// The second thread: copies client → upstream (Go's `go func() { io.Copy(...) }()`).
    Second,
}

/// A moment in a connection thread's life, shown to a [`ThreadHook`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadStage {
    /// About to ask the OS for the thread. A hook error here is treated exactly like the OS
    /// refusing the thread.
    Spawning(ThreadRole),
    /// The first thing the new thread does.
    Started(ThreadRole),
    /// The last thing the thread does, even when it unwinds from a panic.
    Finished(ThreadRole),
}

/// Called at each [`ThreadStage`]. The default, [`no_hook`], does nothing. Tests replace it
/// to prove what the relay does when the OS refuses a thread (return an error at
/// `Spawning`), when a thread panics (panic at `Started`), and how many threads are alive
/// (count `Started` and `Finished`). Production code has no reason to set it.
pub type ThreadHook = fn(ThreadStage) -> io::Result<()>;

/// The default [`ThreadHook`]: does nothing.
pub fn no_hook(_: ThreadStage) -> io::Result<()> {
    Ok(())
}

/// A builder for one connection thread, after asking the hook.
pub(crate) fn builder(
    hook: ThreadHook,
    role: ThreadRole,
    id: u64,
    stack_size: usize,
) -> io::Result<thread::Builder> {
    hook(ThreadStage::Spawning(role))?;
    let suffix = match role {
        ThreadRole::First => "down",
        ThreadRole::Second => "up",
    };
    Ok(thread::Builder::new().name(format!("tcprelay-{id}-{suffix}")).stack_size(stack_size))
}

/// Lives as long as a connection thread's body: tells the hook `Started` when made and
/// `Finished` when dropped, which happens on a normal return and on a panic alike.
pub(crate) struct ThreadLife {
    hook: ThreadHook,
    role: ThreadRole,
}

impl ThreadLife {
    pub(crate) fn begin(hook: ThreadHook, role: ThreadRole) -> ThreadLife {
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
