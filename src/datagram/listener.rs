//! [`DatagramRelay`]: a UDP route's bound socket and its receive loop, which takes every
//! datagram the clients send and hands it to its flow (making the flow on a client's first
//! datagram); [`DatagramStop`] stops, drains, removes or reloads the route from another
//! thread.
//!
//! A reload that keeps a UDP route keeps its socket, its flow table and its counts: open
//! flows go on under the settings and upstream they started with (each holds its
//! generation of the route), and the flows made from then on get the new ones, as a TCP
//! route's connections do (relay/current.rs).
//!
//! The receive loop is the flooded path: it never waits on one flow longer than a send
//! timeout, never logs per datagram, and makes a flow only after the access rules, the
//! drain and the limits let the client in.

use std::fmt;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::datagram::counts::DatagramCounts;
use crate::datagram::events::{DropCause, FlowEnd};
use crate::datagram::flow::{
    Flow, Forwarded, MAX_DATAGRAM, RECEIVE_BUFFER, SEND_TIMEOUT, TICK, is_refused, is_timeout,
    is_too_large,
};
use crate::datagram::handle_flow::handle_flow;
use crate::datagram::route::{DatagramRoute, DatagramWatchers};
use crate::limits::capacity::{Capacity, OPEN_IN_PROCESS};
use crate::limits::threads::ThreadRole;
use crate::lock::lock;
use crate::settings::config::Config;

/// How long a stop waits for the flow threads after asking them to end: each sees its flag
/// within a [`TICK`], unless it is still resolving its upstream's name.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// After a receive error other than a timeout, the loop waits this long before the next
/// receive, so an error that repeats cannot spin a core.
const ERROR_PAUSE: Duration = Duration::from_millis(10);

/// A bound UDP route, ready to [`serve`](DatagramRelay::serve).
pub struct DatagramRelay {
    socket: Arc<UdpSocket>,
    local_addr: SocketAddr,
    /// The generation of the route that new flows get; a reload swaps it.
    current: Arc<Mutex<Arc<DatagramRoute>>>,
    mode: Arc<Mutex<Mode>>,
}

impl fmt::Debug for DatagramRelay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramRelay").field("local_addr", &self.local_addr).finish()
    }
}

/// What the receive loop is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Relaying, and making flows for new clients.
    Serving,
    /// Relaying for open flows only, until they end or `until`; then they are ended.
    Draining {
        /// The end of the drain timeout.
        until: Instant,
    },
    /// Ending every flow for this reason (stop, removed by a reload), then returning.
    Ending(FlowEnd),
}

/// Stops, drains, removes or reloads a [`DatagramRelay`] from another thread; the receive
/// loop and every flow see a stop within a [`TICK`].
#[derive(Clone, Debug)]
pub struct DatagramStop {
    local_addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    current: Arc<Mutex<Arc<DatagramRoute>>>,
}

impl DatagramStop {
    /// Ends every flow now (`reason=stop`); [`DatagramRelay::serve`] then returns.
    pub fn stop(&self) {
        self.end(FlowEnd::Stop);
    }

    /// Makes no new flow from now on and lets the open ones end by themselves (idle
    /// timeout, response count) for up to `timeout`; those still open then end with
    /// `reason=drain`. A stop or removal during a drain takes over.
    pub fn drain(&self, timeout: Duration) {
        let mut mode = lock(&self.mode);
        if *mode == Mode::Serving {
            *mode = Mode::Draining { until: Instant::now() + timeout };
        }
    }

    /// A reload removed the route: every flow ends now, `reason=removed`.
    pub fn remove(&self) {
        self.end(FlowEnd::Removed);
    }

    /// A reload kept the route with `config`: the flows made from now on get it, watched
    /// by `watchers`; open flows finish under the settings they started with.
    pub fn reload(&self, config: Config, watchers: DatagramWatchers) {
        let mut current = lock(&self.current);
        let new = Arc::new(current.reloaded(config, self.local_addr, watchers));
        let old = std::mem::replace(&mut *current, new);
        if !Arc::ptr_eq(&old.threads, &current.threads) {
            // Threads parked in the old pool would otherwise wait out their keep-alive.
            old.threads.release_parked();
        }
    }

    /// The route of now: its settings, its flow table, its counts.
    pub fn route(&self) -> Arc<DatagramRoute> {
        Arc::clone(&lock(&self.current))
    }

    fn end(&self, reason: FlowEnd) {
        let mut mode = lock(&self.mode);
        if !matches!(*mode, Mode::Ending(_)) {
            *mode = Mode::Ending(reason);
        }
    }
}

impl DatagramRelay {
    /// Binds the UDP socket of `config.listen` (Go: `net.ListenPacket("udp", addr)`), for
    /// a route watched by what `watch` makes for the bound address (its label may need the
    /// real port).
    ///
    /// # Errors
    /// The OS error, with the address in its message, if the address cannot be bound.
    pub fn bind(
        config: Config,
        watch: impl FnOnce(&Config, SocketAddr) -> DatagramWatchers,
    ) -> io::Result<DatagramRelay> {
        let wanted = config.listen;
        let socket = UdpSocket::bind(wanted).map_err(|error| {
            io::Error::new(error.kind(), format!("cannot listen on udp:{wanted}: {error}"))
        })?;
        // Replies go out on this socket from every flow's thread: a full send buffer drops a
        // reply rather than stopping the thread.
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        // The receive loop looks at its mode at least this often.
        socket.set_read_timeout(Some(TICK))?;
        let local_addr = socket.local_addr()?;
        let watchers = watch(&config, local_addr);
        let route = Arc::new(DatagramRoute::new(config, local_addr, watchers));
        let (current, mode) = (Arc::new(Mutex::new(route)), Arc::new(Mutex::new(Mode::Serving)));
        Ok(DatagramRelay { socket: Arc::new(socket), local_addr, current, mode })
    }

    /// The bound address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// How many connections the whole process can hold (a flow counts as half of one).
    pub fn capacity(&self) -> Capacity {
        self.route().capacity
    }

    /// The route's counters, for the metrics.
    #[allow(dead_code, reason = "read by the metrics, which are wired apart")]
    pub fn counts(&self) -> Arc<DatagramCounts> {
        Arc::clone(&self.route().counts)
    }

    /// A handle that stops, drains, removes or reloads this route from another thread.
    pub fn stop_handle(&self) -> DatagramStop {
        let (mode, current) = (Arc::clone(&self.mode), Arc::clone(&self.current));
        DatagramStop { local_addr: self.local_addr, mode, current }
    }

    /// The generation of the route a new flow gets now.
    fn route(&self) -> Arc<DatagramRoute> {
        Arc::clone(&lock(&self.current))
    }

    /// Receives datagrams and hands each to its flow until stopped, or drained and every
    /// flow ended; then waits for the flows' threads and returns.
    ///
    /// # Errors
    /// None yet: a receive error is told to the watchers and the loop goes on.
    pub fn serve(&self) -> io::Result<()> {
        let mut buffer = vec![0; RECEIVE_BUFFER];
        // The flow table and the counts are every generation's (a reload keeps them), so a
        // datagram of an open flow needs no other; the settings of now are looked up for a
        // new flow or a drop only.
        let first = self.route();
        let flows = &first.flows;
        let mut told_draining = false;
        loop {
            let mode = *lock(&self.mode);
            if matches!(mode, Mode::Draining { .. }) && !told_draining {
                told_draining = true; // said once, as a TCP route does
                self.route().events.route_info("draining");
            }
            match mode {
                Mode::Serving => {}
                Mode::Draining { .. } if flows.len() == 0 => break,
                Mode::Draining { until } if Instant::now() >= until => {
                    flows.end_all(FlowEnd::Drain);
                    break;
                }
                Mode::Draining { .. } => {}
                Mode::Ending(reason) => {
                    flows.end_all(reason);
                    break;
                }
            }
            match self.socket.recv_from(&mut buffer) {
                Ok((len, client)) if len > MAX_DATAGRAM => {
                    let too_large = format!("{len}+ bytes");
                    self.route().dropped(DropCause::TooLarge, client, &too_large);
                }
                Ok((len, client)) => self.dispatch(&first, &buffer[..len], client, mode),
                Err(error) if is_timeout(&error) => {}
                Err(error) if is_too_large(&error) => {
                    let unknown = SocketAddr::from(([0, 0, 0, 0], 0)); // Windows does not say
                    self.route().dropped(DropCause::TooLarge, unknown, &"65,508+ bytes");
                }
                // Windows reports here the ICMP error of an earlier reply to a client whose
                // port has closed; Linux does not. Not this socket's failure: no pause.
                Err(error) if is_refused(&error) => self.route().events.receive_failed(&error),
                Err(error) => {
                    self.route().events.receive_failed(&error);
                    thread::sleep(ERROR_PAUSE);
                }
            }
        }
        let last = self.route();
        let ended = flows.wait_for_threads(Instant::now() + STOP_WAIT);
        last.threads.release_parked();
        match ended {
            true => last.events.route_info("stopped"),
            false => last.events.route_info("stopped with flow threads still resolving"),
        }
        Ok(())
    }

    /// Hands a client's datagram to its flow, found in `table`'s flows (every generation's),
    /// making the flow first if the client has none.
    fn dispatch(&self, table: &DatagramRoute, datagram: &[u8], client: SocketAddr, mode: Mode) {
        // A flow may end between the lookup and the send (its idle timeout, its response
        // count): then the datagram starts a new flow.
        for _ in 0..2 {
            let Some(flow) = table.flows.find(client) else {
                // A new client, under the settings of now: its flow is made with this
                // datagram already waiting in it, so the flow's thread accounts for it
                // whatever befalls its upstream socket.
                let route = self.route();
                if let Err((cause, why)) = self.start_flow(&route, datagram, client, mode) {
                    route.dropped(cause, client, &why);
                }
                return;
            };
            match flow.forward(datagram, &table.counts) {
                Forwarded::Done => return,
                Forwarded::Dropped(why) => {
                    return self.route().dropped(DropCause::SendFailed, client, &why);
                }
                Forwarded::Ended => {}
            }
        }
    }

    /// Makes `client`'s flow, with its first `datagram` waiting in it, and starts its
    /// thread, if the drain, the access rules, the process-wide cap and the route's limits
    /// let it in.
    fn start_flow(
        &self,
        route: &Arc<DatagramRoute>,
        datagram: &[u8],
        client: SocketAddr,
        mode: Mode,
    ) -> Result<(), (DropCause, String)> {
        if mode != Mode::Serving {
            return Err((DropCause::Draining, "the route is draining".to_string()));
        }
        if !route.config.access.permits(client.ip()) {
            return Err((DropCause::Denied, "allow/deny".to_string()));
        }
        // A flow is half a connection on every limit the cap counts (one thread with the
        // route's stack, one socket, one buffer), as a dial attempt is: it takes that slot.
        let cap = route.capacity.connections;
        let Some(slot) = OPEN_IN_PROCESS.take_dial_attempt(cap) else {
            return Err((DropCause::ProcessLimit, format!("process cap of {cap} connections")));
        };
        let flow = Arc::new(Flow::new(client));
        route.flows.insert(&flow).map_err(|cause| (cause, limit_text(&route.config, cause)))?;
        // Not connected yet, so the datagram waits in the flow (a first one always fits).
        let _ = flow.forward(datagram, &route.counts);
        // The flow's thread, parked after an earlier flow if one waits (a channel send),
        // else a new one (tens of microseconds: docs/benchmarks.md, "UDP"). The thread, not
        // this loop, opens and connects the flow's socket.
        let thread = route.flows.thread_starting();
        let (flow_route, listener, flow_for_thread) =
            (Arc::clone(route), Arc::clone(&self.socket), Arc::clone(&flow));
        let spawned = route.threads.run(ThreadRole::First, move || {
            let _thread = thread; // counted until the flow ends, however it ends
            handle_flow(flow_route, flow_for_thread, listener, slot);
        });
        match spawned {
            Ok(_) => Ok(()),
            // The closure, its slot and its thread count are dropped unrun.
            Err(error) => {
                route.flows.remove(&flow);
                Err((DropCause::ProcessLimit, format!("cannot start a flow thread: {error}")))
            }
        }
    }
}

/// The limit a refused new flow met, in words.
fn limit_text(config: &Config, cause: DropCause) -> String {
    match cause {
        DropCause::MaxFlows => format!("max-flows={} reached", config.max_flows),
        _ => "max-flows-per-client reached with few flows free".to_string(),
    }
}
