//! [`Flows`]: a UDP route's flow table, keyed by client address, with the route's limits
//! (`max-flows`, `max-flows-per-client`) checked as a flow is added, and the count of flow
//! threads a stop waits for.
//!
//! The receive thread looks every datagram up here, so the lookup is one uncontended lock
//! and one hash. It also restarts the flow's idle clock under that lock, and a flow's
//! thread ends an idle flow under the same lock ([`Flows::end_if_idle`]): a datagram that
//! found its flow is never sent to a flow that its thread already took for idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::datagram::counts::DatagramCounts;
use crate::datagram::events::{DropCause, FlowEnd};
use crate::datagram::flow::Flow;
#[cfg(test)]
use crate::datagram::flow::Forwarded;
use crate::limits::per_client::{ClientKey, PerClientLimit};
use crate::lock::{lock, wait_timeout};
use crate::net::address::Address;

/// A route's open flows and its flow threads.
#[derive(Debug)]
pub struct Flows {
    table: Mutex<Table>,
    /// `max-flows` and the per-client share of it; a reload may change them.
    limits: Mutex<(usize, PerClientLimit)>,
    counts: Arc<DatagramCounts>,
    /// Flow threads running (a flow's thread may still be reporting after it left the
    /// table), and the signal that one ended.
    threads: Mutex<usize>,
    thread_ended: Condvar,
}

#[derive(Debug, Default)]
struct Table {
    by_client: HashMap<SocketAddr, Arc<Flow>>,
    /// Flows held by each client (an IPv4 address, an IPv6 /64), for the per-client share.
    per_client: HashMap<ClientKey, usize>,
}

/// A running flow thread, counted until this drops (however the thread ends).
#[derive(Debug)]
pub struct FlowThread(Arc<Flows>);

impl Drop for FlowThread {
    fn drop(&mut self) {
        let mut threads = lock(&self.0.threads);
        *threads -= 1;
        // Only a stop waits, and only for the last one: std's `notify_all` is a futex call
        // even with nobody waiting, which every flow's end would pay.
        if *threads == 0 {
            self.0.thread_ended.notify_all();
        }
    }
}

impl Flows {
    /// An empty table for a route of `max_flows` and the per-client share `per_client`
    /// (`max-flows-per-client`), keeping `counts`' open-flow figure.
    pub fn new(max_flows: usize, per_client: Option<usize>, counts: Arc<DatagramCounts>) -> Flows {
        Flows {
            table: Mutex::default(),
            limits: Mutex::new((max_flows, PerClientLimit::new(per_client, max_flows))),
            counts,
            threads: Mutex::new(0),
            thread_ended: Condvar::new(),
        }
    }

    /// The flow of `client`, if it has one; its idle clock starts again.
    pub fn find(&self, client: SocketAddr) -> Option<Arc<Flow>> {
        let table = lock(&self.table);
        let flow = table.by_client.get(&client)?;
        flow.touch();
        Some(Arc::clone(flow))
    }

    /// Adds a new flow, if the route's limits let it in.
    ///
    /// # Errors
    /// `MaxFlows` at `max-flows`; `ClientLimit` when few flows are free and the client
    /// holds its share, by the rule of `max-connections-per-client` (see
    /// [`PerClientLimit::refuses`]).
    pub fn insert(&self, flow: &Arc<Flow>) -> Result<(), DropCause> {
        let (max_flows, per_client) = *lock(&self.limits);
        let mut table = lock(&self.table);
        let open = table.by_client.len();
        if open >= max_flows {
            return Err(DropCause::MaxFlows);
        }
        let key = ClientKey::of(&Address::Tcp(flow.client));
        if let Some(key) = key {
            let held = table.per_client.get(&key).copied().unwrap_or(0);
            if per_client.refuses(key, held, open, max_flows) {
                return Err(DropCause::ClientLimit);
            }
            *table.per_client.entry(key).or_insert(0) += 1;
        }
        table.by_client.insert(flow.client, Arc::clone(flow));
        self.counts.set_flows_open(table.by_client.len());
        Ok(())
    }

    /// A reload changed the route's limits: new flows are admitted by these; open flows
    /// stay, even above a lowered `max-flows`, until they end.
    pub fn set_limits(&self, max_flows: usize, per_client: Option<usize>) {
        *lock(&self.limits) = (max_flows, PerClientLimit::new(per_client, max_flows));
    }

    /// Takes `flow` out of the table, if it is still there, and closes it to new
    /// datagrams; its client's next datagram makes a new flow.
    pub fn remove(&self, flow: &Arc<Flow>) {
        let mut table = lock(&self.table);
        self.remove_locked(&mut table, flow);
    }

    /// Ends `flow` for idleness if no datagram went either way for `idle_timeout`: takes
    /// it out of the table, under the lock a datagram's lookup takes. Returns whether it did.
    pub fn end_if_idle(&self, flow: &Arc<Flow>, idle_timeout: Duration) -> bool {
        let mut table = lock(&self.table);
        if flow.quiet_for() < idle_timeout {
            return false;
        }
        self.remove_locked(&mut table, flow);
        true
    }

    /// Ends `flow` once its upstream answered each datagram the client sent with
    /// `per_request` datagrams (`udp-responses`; see [`Flow::close_if_answered`]): takes it
    /// out of the table, under the lock a datagram's lookup takes. Returns whether it did.
    pub fn end_if_answered(&self, flow: &Arc<Flow>, replies: u64, per_request: u64) -> bool {
        let mut table = lock(&self.table);
        if !flow.close_if_answered(replies, per_request) {
            return false;
        }
        self.remove_locked(&mut table, flow);
        true
    }

    fn remove_locked(&self, table: &mut Table, flow: &Arc<Flow>) {
        flow.close();
        if !table.by_client.get(&flow.client).is_some_and(|held| Arc::ptr_eq(held, flow)) {
            return;
        }
        table.by_client.remove(&flow.client);
        if let Some(key) = ClientKey::of(&Address::Tcp(flow.client)) {
            if let Some(held) = table.per_client.get_mut(&key) {
                *held -= 1;
                if *held == 0 {
                    table.per_client.remove(&key);
                }
            }
        }
        self.counts.set_flows_open(table.by_client.len());
    }

    /// Asks every open flow to end for `reason`; each does within a [`TICK`](super::flow::TICK).
    pub fn end_all(&self, reason: FlowEnd) {
        lock(&self.table).by_client.values().for_each(|flow| flow.end(reason));
    }

    /// How many flows are open.
    pub fn len(&self) -> usize {
        lock(&self.table).by_client.len()
    }

    /// Counts a flow thread about to start; it is counted until the guard drops.
    pub fn thread_starting(self: &Arc<Self>) -> FlowThread {
        *lock(&self.threads) += 1;
        FlowThread(Arc::clone(self))
    }

    /// Waits until every flow thread has ended, or `deadline`; returns whether they all did.
    pub fn wait_for_threads(&self, deadline: Instant) -> bool {
        let mut threads = lock(&self.threads);
        while *threads > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            threads = wait_timeout(&self.thread_ended, threads, left);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(client: &str) -> Arc<Flow> {
        Arc::new(Flow::new(client.parse().expect("a socket address")))
    }

    /// `max-flows` holds; the per-client share applies only when few flows are free, and
    /// loopback counts only when set explicitly; a removed flow frees its place.
    #[test]
    fn limits_hold_and_removal_frees_a_place() {
        let flows = Flows::new(4, Some(2), Arc::default());
        let mine = ["10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3"].map(flow);
        assert_eq!(flows.insert(&mine[0]), Ok(()));
        assert_eq!(flows.insert(&mine[1]), Ok(()), "2 of 4 free: nobody is refused yet");
        assert_eq!(flows.insert(&mine[2]), Err(DropCause::ClientLimit));
        let others = ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"].map(flow);
        assert_eq!(flows.insert(&others[0]), Ok(()));
        assert_eq!(flows.insert(&others[1]), Ok(()));
        assert_eq!(flows.insert(&others[2]), Err(DropCause::MaxFlows));
        assert_eq!(flows.len(), 4);
        flows.remove(&mine[0]);
        flows.remove(&mine[0]); // twice changes nothing
        assert_eq!(flows.len(), 3);
        assert!(flows.find(mine[0].client).is_none());
        assert_eq!(flows.insert(&others[2]), Ok(()));
    }

    /// An idle flow is taken out only once it has been quiet for the timeout, and a closed
    /// flow forwards nothing more: its datagram belongs to a new flow.
    #[test]
    fn an_idle_flow_is_taken_out_and_closed() {
        let counts = Arc::new(DatagramCounts::default());
        let flows = Flows::new(4, None, Arc::clone(&counts));
        let quiet = flow("127.0.0.1:1");
        flows.insert(&quiet).expect("room");
        assert!(!flows.end_if_idle(&quiet, Duration::from_secs(3600)));
        assert!(flows.end_if_idle(&quiet, Duration::ZERO));
        assert_eq!(flows.len(), 0);
        assert!(matches!(quiet.forward(b"late", &counts), Forwarded::Ended));
        assert_eq!(counts.to_upstream().datagrams, 0);
    }
}
