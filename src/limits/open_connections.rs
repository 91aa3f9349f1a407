//! The set of open connections: the accept loop waits here for room under the connection
//! limit, and a stopping relay closes them all here and waits for their threads.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::limits::capacity::ProcessSlot;
use crate::limits::per_client::ClientKey;
use crate::outcome::CloseReason;
use crate::relay::connection::Connection;

/// The open connections, by id.
#[derive(Debug, Default)]
pub struct OpenConnections {
    state: Mutex<State>,
    /// Signalled whenever a connection leaves the set.
    left: Condvar,
}

#[derive(Debug, Default)]
struct State {
    open: HashMap<u64, Arc<Connection>>,
    /// How many of `open` each client has (see `--max-connections-per-client`).
    per_client: HashMap<ClientKey, usize>,
    /// Set by `stop_accepting`. Kept under the same lock as `open` so that a waiter in
    /// `wait_for_room` cannot miss it.
    stopped_accepting: bool,
    /// Set by `close_all`: connections added afterwards are closed at once.
    closing: bool,
    /// Until when a stopping relay lets open connections finish (`None`: not stopping).
    drain_deadline: Option<Instant>,
}

impl OpenConnections {
    /// Adds a connection, which holds `slot` of the process-wide cap. It stays in the set
    /// until the returned [`Entry`] is dropped, which the connection's first thread does when
    /// it ends, however it ends (even by a panic).
    pub fn insert(self: &Arc<Self>, connection: Connection, slot: ProcessSlot) -> Entry {
        let connection = Arc::new(connection);
        let client = ClientKey::of(&connection.client_addr);
        let mut state = self.lock();
        state.open.insert(connection.id, Arc::clone(&connection));
        if let Some(client) = client {
            *state.per_client.entry(client).or_insert(0) += 1;
        }
        if state.closing {
            connection.close(CloseReason::Stopped, "relay stopping");
        }
        Entry {
            connections: Arc::clone(self),
            connection: Some(connection),
            client,
            slot: Some(slot),
        }
    }

    /// How many open connections `client` has.
    pub fn count_from(&self, client: ClientKey) -> usize {
        self.lock().per_client.get(&client).copied().unwrap_or(0)
    }

    /// Blocks while `max` connections are open. Returns `false` once the relay stops
    /// accepting (then the caller should stop), `true` when there is room.
    pub fn wait_for_room(&self, max: usize) -> bool {
        let mut state = self.lock();
        while state.open.len() >= max && !state.stopped_accepting {
            state = self.left.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        !state.stopped_accepting
    }

    /// Whether `max` or more connections are open.
    pub fn is_full(&self, max: usize) -> bool {
        self.lock().open.len() >= max
    }

    /// Tells the accept loop to stop. Returns `false` if it had already been told.
    pub fn stop_accepting(&self) -> bool {
        let first_time = !std::mem::replace(&mut self.lock().stopped_accepting, true);
        self.left.notify_all(); // wakes `wait_for_room`
        first_time
    }

    /// Lets open connections finish until `deadline` at the latest (see
    /// [`wait_until_drained`](OpenConnections::wait_until_drained)). An earlier deadline wins, so
    /// a stop during a drain cuts the drain short.
    pub fn drain_until(&self, deadline: Instant) {
        let mut state = self.lock();
        state.drain_deadline = Some(state.drain_deadline.map_or(deadline, |d| d.min(deadline)));
        self.left.notify_all(); // wakes `wait_until_drained` to look at the new deadline
    }

    /// Blocks until no connection is open or the drain deadline has passed, whichever is
    /// first. Without a deadline, waits until no connection is open.
    pub fn wait_until_drained(&self) {
        let mut state = self.lock();
        while !state.open.is_empty() {
            state = match state.drain_deadline {
                None => self.left.wait(state).unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let waited = self.left.wait_timeout(state, left);
                    waited.unwrap_or_else(PoisonError::into_inner).0
                }
            };
        }
    }

    /// How many connections are open.
    pub fn open_count(&self) -> usize {
        self.lock().open.len()
    }

    /// Whether the accept loop should go on.
    pub fn accepting(&self) -> bool {
        !self.lock().stopped_accepting
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
            state = self.left.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of `State` is a single insert, remove or flag store: a panic cannot
        // leave it half-done, so a poisoned lock is still good to use.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's membership in [`OpenConnections`]; dropping it removes the connection and
/// closes its sockets.
#[derive(Debug)]
pub struct Entry {
    connections: Arc<OpenConnections>,
    /// `Some` until `drop`, which must let go of it before the set's own handle.
    connection: Option<Arc<Connection>>,
    /// Whom the connection counts against in the per-client limit.
    client: Option<ClientKey>,
    /// The connection's share of the process-wide cap; `Some` until `drop`, which gives it
    /// back before it tells waiters that the slot is free.
    slot: Option<ProcessSlot>,
}

impl Entry {
    /// The connection, shared: its second thread holds it too.
    pub fn connection(&self) -> &Arc<Connection> {
        self.connection.as_ref().expect("an Entry holds its connection until it is dropped")
    }
}

impl Deref for Entry {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.connection.as_deref().expect("an Entry holds its connection until it is dropped")
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let id = connection.id;
        // Ours goes first, so that the set's handle is the last one (unless the second copy
        // thread still holds its own): dropping it, under the lock, closes both sockets
        // before any waiter can see the slot free. Otherwise `serve` could return, or a new
        // client take the slot, while this connection's descriptors are still open (seen as
        // a descriptor count that fell after a test's baseline was taken).
        drop(connection);
        let mut state = self.connections.lock();
        drop(state.open.remove(&id));
        if let Some(client) = self.client {
            if let Some(count) = state.per_client.get_mut(&client) {
                *count -= 1;
                if *count == 0 {
                    state.per_client.remove(&client);
                }
            }
        }
        // Before the waiters hear of the free slot: else the accept loop, woken, could find
        // the route's slot free but the process's still taken, and refuse a client for it.
        drop(self.slot.take());
        drop(state);
        self.connections.left.notify_all();
    }
}
