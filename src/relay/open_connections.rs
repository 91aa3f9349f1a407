//! The set of open connections: the accept loop waits here for room under the connection
//! limit, and a stopping relay closes them all here and waits for their threads.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::limits::capacity::ProcessSlot;
use crate::limits::per_client::{ClientKey, PerClientLimit};
use crate::lock::{lock, wait, wait_timeout};
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
    /// The open connections being relayed (or about to be), by client (see
    /// `--max-connections-per-client`): the ones the route's `max-connections` counts.
    relaying: Tally,
    /// The open connections still waiting for their first bytes (a PROXY header, a TLS
    /// ClientHello), by the TCP peer they came from. They wait apart from `relaying`, in a
    /// room of their own as large as the route's, so that silent clients cannot hold the
    /// slots relayed connections need; [`OpenConnections::make_room_waiting`] keeps it from
    /// filling up with a few addresses' connections.
    waiting: Tally,
    /// Set by `stop_accepting`. Kept under the same lock as `open` so that a waiter in
    /// `wait_for_room` cannot miss it.
    stopped_accepting: bool,
    /// Set by `close_all`: connections added afterwards are closed at once.
    closing: bool,
    /// Until when a stopping relay lets open connections finish (`None`: not stopping).
    drain_deadline: Option<Instant>,
}

/// Some of the open connections, each counted for the client it came from.
#[derive(Debug, Default)]
struct Tally {
    /// Which client each connection counts for, by id (`None`: a Unix socket client).
    client_of: HashMap<u64, Option<ClientKey>>,
    /// How many of them each client has.
    per_client: HashMap<ClientKey, usize>,
}

impl Tally {
    /// Counts connection `id` as one of `client`'s.
    fn add(&mut self, id: u64, client: Option<ClientKey>) {
        self.client_of.insert(id, client);
        if let Some(client) = client {
            *self.per_client.entry(client).or_insert(0) += 1;
        }
    }

    /// Stops counting connection `id`; whether it was counted here.
    fn remove(&mut self, id: u64) -> bool {
        let Some(client) = self.client_of.remove(&id) else { return false };
        if let Some(client) = client {
            if let Some(count) = self.per_client.get_mut(&client) {
                *count -= 1;
                if *count == 0 {
                    self.per_client.remove(&client);
                }
            }
        }
        true
    }

    /// How many connections `client` has here.
    fn count_from(&self, client: ClientKey) -> usize {
        self.per_client.get(&client).copied().unwrap_or(0)
    }

    /// Whether `limit` refuses one more connection from `client` here, at most `max`.
    fn refuses(&self, client: ClientKey, limit: PerClientLimit, max: usize) -> bool {
        limit.refuses(client, self.count_from(client), self.len(), max)
    }

    fn len(&self) -> usize {
        self.client_of.len()
    }

    /// The connection to give up for a newcomer: the oldest (lowest id: ids are handed out
    /// in order of arrival) of the client holding the most, with how many that client holds.
    /// Of clients holding as many, the one with the oldest connection. One pass over the
    /// connections counted here, which only a full waiting room makes.
    fn oldest_of_the_most_held(&self) -> Option<(u64, usize)> {
        let counted = self.client_of.iter().filter_map(|(&id, client)| Some((id, (*client)?)));
        let held = |(id, client)| (id, self.count_from(client));
        counted.map(held).max_by_key(|&(id, count)| (count, std::cmp::Reverse(id)))
    }
}

impl State {
    /// Whether the route has no room: `max` connections relaying. (The waiting room never
    /// holds the accept loop back: [`OpenConnections::make_room_waiting`] lets a newcomer in
    /// or refuses it at once.)
    fn is_full(&self, max: usize) -> bool {
        self.relaying.len() >= max
    }
}

impl OpenConnections {
    /// Adds a connection to be relayed, which holds `slot` of the process-wide cap. It stays
    /// in the set until the returned [`Entry`] is dropped, which the connection's first
    /// thread does when it ends, however it ends (even by a panic).
    pub fn insert(self: &Arc<Self>, connection: Connection, slot: ProcessSlot) -> Entry {
        self.enter(connection, slot, |state| &mut state.relaying)
    }

    /// Adds a connection that must send its first bytes before it is relayed: it waits
    /// apart from the relayed ones until [`start_relaying`](OpenConnections::start_relaying).
    pub fn insert_waiting(self: &Arc<Self>, connection: Connection, slot: ProcessSlot) -> Entry {
        self.enter(connection, slot, |state| &mut state.waiting)
    }

    fn enter(
        self: &Arc<Self>,
        connection: Connection,
        slot: ProcessSlot,
        tally: impl FnOnce(&mut State) -> &mut Tally,
    ) -> Entry {
        let connection = Arc::new(connection);
        let mut state = self.lock();
        state.open.insert(connection.id, Arc::clone(&connection));
        tally(&mut state).add(connection.id, ClientKey::of(&connection.client_addr));
        if state.closing {
            connection.close(CloseReason::Stopped, "relay stopping");
        }
        Entry { connections: Arc::clone(self), connection: Some(connection), slot: Some(slot) }
    }

    /// Whether a new connection from `client` is refused by `limit`, the route relaying at
    /// most `max` (see [`PerClientLimit::refuses`]).
    pub fn refuses(&self, client: ClientKey, limit: PerClientLimit, max: usize) -> bool {
        self.lock().relaying.refuses(client, limit, max)
    }

    /// Whether a new connection from `peer`, which must send its first bytes, may wait for
    /// them, at most `max` waiting: `false` (refuse it) when `peer` already has `share`
    /// waiting (a fixed bound, as nginx's `limit_conn` on the TCP peer before `ssl_preread`).
    /// When the room is full all the same (many addresses), a newcomer holding fewer than the
    /// address holding the most takes the place of that address's oldest waiting connection,
    /// which is closed (`client_limit`, "evicted"): k addresses cannot keep out a k+1th.
    /// Called by the accept loop, the only one that adds waiting connections, just before it
    /// adds this one.
    pub fn make_room_waiting(&self, peer: ClientKey, share: usize, max: usize) -> bool {
        let mut state = self.lock();
        let held = state.waiting.count_from(peer);
        if held >= share {
            return false;
        }
        if state.waiting.len() < max {
            return true;
        }
        let Some((oldest, most)) = state.waiting.oldest_of_the_most_held() else { return false };
        if held >= most {
            return false; // it is itself among those holding the most
        }
        state.waiting.remove(oldest);
        if let Some(evicted) = state.open.get(&oldest) {
            let detail = format!(
                "evicted: the {max} places for connections that have sent nothing yet were \
                 full, and this address held the most ({most})"
            );
            evicted.close(CloseReason::ClientLimit, detail);
        }
        true
    }

    /// Moves waiting connection `id`, whose first bytes said it is `client`'s (with
    /// `accept-proxy`, the client its PROXY header names), among the relayed ones, once the
    /// route has room for it: it waits here while `max` are relayed, as a client of a plain
    /// listener waits in the kernel's backlog. Refused with `ClientLimit` when `limit`
    /// refuses `client` (checked again after each wait) or when a newcomer evicted it from
    /// the waiting room ([`make_room_waiting`](OpenConnections::make_room_waiting)), or
    /// `Stopped` when the relay closes its connections.
    pub fn start_relaying(
        &self,
        id: u64,
        client: Option<ClientKey>,
        limit: PerClientLimit,
        max: usize,
    ) -> Result<(), CloseReason> {
        let mut state = self.lock();
        // Its first bytes are in: it leaves the waiting room at once, so that its place there
        // goes to another, and a newcomer cannot evict it while it waits for a slot.
        if !state.waiting.remove(id) {
            return Err(CloseReason::ClientLimit); // evicted before, and already closed
        }
        loop {
            if state.closing {
                return Err(CloseReason::Stopped);
            }
            if client.is_some_and(|client| state.relaying.refuses(client, limit, max)) {
                return Err(CloseReason::ClientLimit);
            }
            if state.relaying.len() < max {
                break;
            }
            state = wait(&self.left, state);
        }
        state.relaying.add(id, client);
        Ok(())
    }

    /// Blocks while `max` connections are relayed.
    /// Returns `false` once the relay stops accepting (then the caller should stop), `true`
    /// when there is room.
    pub fn wait_for_room(&self, max: usize) -> bool {
        let mut state = self.lock();
        while state.is_full(max) && !state.stopped_accepting {
            state = wait(&self.left, state);
        }
        !state.stopped_accepting
    }

    /// Whether `max` or more connections are relayed.
    pub fn is_full(&self, max: usize) -> bool {
        self.lock().is_full(max)
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
                None => wait(&self.left, state),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    wait_timeout(&self.left, state, left)
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
        drop(state);
        self.left.notify_all(); // wakes connections waiting in `start_relaying`
    }

    /// Blocks until no connection is open.
    pub fn wait_until_empty(&self) {
        let mut state = self.lock();
        while !state.open.is_empty() {
            state = wait(&self.left, state);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update of `State` is a single insert, remove or flag store: a panic cannot
        // leave it half-done, so a poisoned lock is still good to use.
        lock(&self.state)
    }
}

/// A connection's membership in [`OpenConnections`]; dropping it removes the connection and
/// closes its sockets.
#[derive(Debug)]
pub struct Entry {
    connections: Arc<OpenConnections>,
    /// `Some` until `drop`, which must let go of it before the set's own handle.
    connection: Option<Arc<Connection>>,
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
        state.relaying.remove(id);
        state.waiting.remove(id);
        // Before the waiters hear of the free slot: else the accept loop, woken, could find
        // the route's slot free but the process's still taken, and refuse a client for it.
        drop(self.slot.take());
        drop(state);
        self.connections.left.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::capacity::test_slot;
    use crate::net::address::Address;
    use crate::net::stream::Stream;
    use crate::settings::config::Config;
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    /// Runs `wait` on another thread and returns its result, failing the test if it has not
    /// returned within 10 s (a missed wake-up would otherwise hang the test).
    fn returns<T: Send + 'static>(wait: impl FnOnce() -> T + Send + 'static) -> Waiter<T> {
        let (sender, receiver) = std::sync::mpsc::channel();
        thread::Builder::new()
            .spawn(move || {
                let _ = sender.send(wait());
            })
            .expect("a thread");
        Waiter(receiver)
    }

    struct Waiter<T>(std::sync::mpsc::Receiver<T>);

    impl<T> Waiter<T> {
        fn wait(self, what: &str) -> T {
            self.0.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("{what}"))
        }
    }

    /// A connection on a real loopback socket (its peer is dropped: nothing reads it).
    fn connection(id: u64) -> Connection {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let client =
            TcpStream::connect(listener.local_addr().expect("its address")).expect("connect to it");
        let addr = Address::Tcp(client.local_addr().expect("the client's address"));
        Connection::new(id, Stream::Tcp(client), addr, &Config::default())
    }

    #[test]
    fn dropping_an_entry_frees_its_slot() {
        let open = Arc::new(OpenConnections::default());
        let first = open.insert(connection(1), test_slot());
        let _second = open.insert(connection(2), test_slot());
        assert!(open.is_full(2));
        drop(first);
        assert!(!open.is_full(2));
        assert_eq!(open.open_count(), 1);
    }

    #[test]
    fn a_drain_deadline_in_the_past_ends_the_wait_at_once() {
        let open = Arc::new(OpenConnections::default());
        let _entry = open.insert(connection(1), test_slot());
        open.drain_until(Instant::now());
        open.wait_until_drained(); // returns although a connection is still open
        assert_eq!(open.open_count(), 1);
    }

    #[test]
    fn an_earlier_deadline_cuts_a_longer_drain_short() {
        let open = Arc::new(OpenConnections::default());
        let _entry = open.insert(connection(1), test_slot());
        open.drain_until(Instant::now() + Duration::from_secs(3600));
        let waiter = {
            let open = Arc::clone(&open);
            returns(move || open.wait_until_drained())
        };
        // A stop during the drain: the hour-long wait must end now, not in an hour.
        open.drain_until(Instant::now());
        waiter.wait("the drain did not end at the earlier deadline");
    }

    #[test]
    fn a_drain_ends_when_the_last_connection_leaves() {
        let open = Arc::new(OpenConnections::default());
        let entry = open.insert(connection(1), test_slot());
        open.drain_until(Instant::now() + Duration::from_secs(3600));
        let waiter = {
            let open = Arc::clone(&open);
            returns(move || open.wait_until_drained())
        };
        drop(entry);
        waiter.wait("the drain did not end when the last connection left");
        assert_eq!(open.open_count(), 0);
    }

    #[test]
    fn stop_accepting_wakes_a_loop_waiting_for_room() {
        let open = Arc::new(OpenConnections::default());
        let _entry = open.insert(connection(1), test_slot());
        let waiter = {
            let open = Arc::clone(&open);
            returns(move || open.wait_for_room(1))
        };
        assert!(open.stop_accepting(), "the first call says so");
        assert!(!open.stop_accepting(), "a second call changes nothing");
        let room = waiter.wait("stop_accepting did not wake the loop waiting for room");
        assert!(!room, "a stopping relay has no room: the loop leaves");
    }

    #[test]
    fn a_connection_added_after_close_all_is_closed_at_once() {
        let open = Arc::new(OpenConnections::default());
        open.close_all();
        let entry = open.insert(connection(7), test_slot());
        assert_eq!(entry.outcome().0, CloseReason::Stopped);
    }

    #[test]
    fn clients_waiting_for_first_bytes_hold_none_of_the_routes_slots() {
        let open = Arc::new(OpenConnections::default());
        let _silent = open.insert_waiting(connection(1), test_slot());
        let _first = open.insert(connection(2), test_slot());
        assert!(!open.is_full(2), "the silent client leaves both slots to relayed ones");
        let _second = open.insert(connection(3), test_slot());
        assert!(open.is_full(2));
        let peer = key("127.0.0.1:1"); // the silent client's address
        assert!(!open.make_room_waiting(peer, 1, 2), "it already has its share of 1 waiting");
    }

    /// A waiting connection counted for `client` (a name only: its socket is on loopback).
    fn waiting_from(open: &Arc<OpenConnections>, id: u64, client: &str) -> Entry {
        let mut connection = connection(id);
        connection.client_addr = Address::Tcp(client.parse().expect("an address"));
        open.insert_waiting(connection, test_slot())
    }

    fn key(client: &str) -> ClientKey {
        ClientKey::of(&Address::Tcp(client.parse().expect("an address"))).expect("a TCP key")
    }

    #[test]
    fn an_address_may_not_wait_with_more_than_its_share_even_in_an_empty_room() {
        let open = Arc::new(OpenConnections::default());
        let _first = waiting_from(&open, 1, "10.0.0.1:1");
        let _second = waiting_from(&open, 2, "10.0.0.1:2");
        assert!(!open.make_room_waiting(key("10.0.0.1:3"), 2, 100), "98 places free: refused");
        assert!(open.make_room_waiting(key("10.0.0.2:1"), 2, 100), "another address gets in");
    }

    #[test]
    fn a_full_waiting_room_gives_the_oldest_place_of_the_address_holding_most_to_a_newcomer() {
        let open = Arc::new(OpenConnections::default());
        let old_a = waiting_from(&open, 1, "10.0.0.1:1");
        let b = waiting_from(&open, 2, "10.0.0.2:1");
        let new_a = waiting_from(&open, 3, "10.0.0.1:2");
        // The room of 3 is full; 10.0.0.1 holds the most (2), its oldest is evicted.
        assert!(open.make_room_waiting(key("10.0.0.3:1"), 2, 3));
        let (reason, detail) = old_a.outcome();
        assert_eq!(reason, CloseReason::ClientLimit);
        assert!(detail.starts_with("evicted"), "{detail}");
        assert!(b.closed_by_relay().is_none() && new_a.closed_by_relay().is_none());
        let _c = waiting_from(&open, 4, "10.0.0.3:1");
        // Full again, at most 1 each: a newcomer holding none evicts the oldest (10.0.0.2's),
        // one holding as many as the most is refused.
        assert!(!open.make_room_waiting(key("10.0.0.3:2"), 2, 3), "it holds as many as any");
        assert!(open.make_room_waiting(key("10.0.0.4:1"), 2, 3));
        assert_eq!(b.outcome().0, CloseReason::ClientLimit, "the oldest of those holding 1");
        // The evicted one cannot go on to be relayed when its first bytes do arrive.
        let off = PerClientLimit::new(Some(0), 3);
        assert_eq!(open.start_relaying(1, None, off, 3), Err(CloseReason::ClientLimit));
        assert_eq!(open.start_relaying(3, None, off, 3), Ok(()), "one still waiting can");
    }

    #[test]
    fn a_client_whose_first_bytes_are_in_leaves_the_waiting_room_and_cannot_be_evicted() {
        let open = Arc::new(OpenConnections::default());
        let relayed = open.insert(connection(1), test_slot());
        let spoke = waiting_from(&open, 2, "10.0.0.1:1");
        let off = PerClientLimit::new(Some(0), 1);
        let queued = {
            let open = Arc::clone(&open);
            returns(move || open.start_relaying(2, None, off, 1)) // the route's 1 slot is taken
        };
        // Its place is free at once (then taken by another of 10.0.0.1's, whose share is 1)...
        assert!(eventually(|| open.make_room_waiting(key("10.0.0.1:2"), 1, 1)));
        let _silent = waiting_from(&open, 3, "10.0.0.1:2");
        // ...and with the room full, a newcomer evicts the silent one, not the one queued.
        assert!(open.make_room_waiting(key("10.0.0.2:1"), 1, 1));
        assert!(spoke.closed_by_relay().is_none(), "the queued client was not evicted");
        drop(relayed);
        assert_eq!(queued.wait("a free slot did not end the wait"), Ok(()));
    }

    /// Whether `condition` holds within 10 s (another thread is about to make it so).
    fn eventually(condition: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if condition() {
                return true;
            }
            thread::yield_now();
        }
        false
    }

    #[test]
    fn a_client_done_waiting_waits_for_a_slot_and_a_stop_ends_that_wait() {
        let open = Arc::new(OpenConnections::default());
        let relayed = open.insert(connection(1), test_slot());
        let waiting = open.insert_waiting(connection(2), test_slot());
        let off = PerClientLimit::new(Some(0), 1);
        let mover = {
            let open = Arc::clone(&open);
            returns(move || open.start_relaying(2, None, off, 1))
        };
        drop(relayed); // its slot is free: the waiting one takes it
        assert_eq!(mover.wait("a free slot did not end the wait"), Ok(()));
        assert!(open.is_full(1), "it now holds the route's one slot");
        let late = open.insert_waiting(connection(3), test_slot());
        let stopped = {
            let open = Arc::clone(&open);
            returns(move || open.start_relaying(3, None, off, 1))
        };
        open.close_all();
        assert_eq!(stopped.wait("close_all did not wake it"), Err(CloseReason::Stopped));
        drop((waiting, late));
    }
}
