//! The set of open connections, so the relay can count them and close them all when it
//! stops, and wait for their threads to finish.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::connection::{CloseReason, Connection};

/// The open connections, by id.
#[derive(Debug, Default)]
pub struct Connections {
    state: Mutex<State>,
    /// Signalled whenever a connection leaves the set.
    left: Condvar,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<u64, Arc<Connection>>,
    /// Set by `close_all`: connections added afterwards are closed at once.
    closing: bool,
}

impl Connections {
    /// Adds a connection. It stays in the set until the returned [`Entry`] is dropped, which
    /// the connection's first thread does when it ends, however it ends (even by a panic).
    pub fn insert(self: &Arc<Self>, connection: Connection) -> Entry {
        let connection = Arc::new(connection);
        let mut state = self.lock();
        state.open.insert(connection.id, Arc::clone(&connection));
        if state.closing {
            connection.close(CloseReason::Stopped, "relay stopping");
        }
        Entry {
            connections: Arc::clone(self),
            connection,
        }
    }

    /// Closes every open connection (and any added later), waking their threads.
    pub fn close_all(&self) {
        let mut state = self.lock();
        state.closing = true;
        for connection in state.open.values() {
            connection.close(CloseReason::Stopped, "relay stopping");
        }
    }

    /// Blocks until no connection is open.
    pub fn wait_until_empty(&self) {
        let mut state = self.lock();
        while !state.open.is_empty() {
            state = self
                .left
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of `State` is a single insert, remove or flag store: a panic cannot
        // leave it half-done, so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's membership in [`Connections`]; dropping it removes the connection.
#[derive(Debug)]
pub struct Entry {
    connections: Arc<Connections>,
    connection: Arc<Connection>,
}

impl Deref for Entry {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.connection.id);
        self.connections.left.notify_all();
    }
}
