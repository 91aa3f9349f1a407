//! Routes that share one listener and differ by the TLS server name their clients ask for
//! (`sni=`): the table a listener picks a route from.
//!
//! The first route on the address owns the listener and its accept loop, as any route does;
//! the others share its open connections (so `max-connections` counts the listener's
//! clients) and its thread pool, and keep their own upstreams, log label, access rules,
//! health checks and counters. Each client is counted by the route it is relayed on, once it
//! is picked (see `preface.rs`).
//!
//! A reload that keeps the listener rebuilds the whole table ([`reloaded`]): a route whose
//! label (its name, else its server names) is unchanged keeps its counters, as a reloaded
//! route of its own does.

use std::iter;
use std::sync::Arc;

use crate::net::address::Address;
use crate::net::sni::NamePattern;
use crate::relay::counts::RouteMetrics;
use crate::relay::route::{Route, ServerNames, label};
use crate::settings::config::Config;

impl ServerNames {
    /// The routes that share `listener`'s socket, built from their settings: each with its
    /// own upstreams, observer and counters, and the listener's connections and threads.
    pub fn sharing(listener: &Route, configs: Vec<Config>) -> ServerNames {
        let others = configs.into_iter().map(|config| Arc::new(sharing_route(listener, config)));
        ServerNames { others: others.collect() }
    }

    /// The routes other than the listener's own, in the order they were configured.
    pub fn others(&self) -> &[Arc<Route>] {
        &self.others
    }

    /// The counters of the route labelled `label`, if one has that label.
    fn metrics_of(&self, label: &str) -> Option<&Arc<RouteMetrics>> {
        self.others.iter().map(|route| &route.metrics).find(|metrics| metrics.route() == label)
    }

    /// The route for a client that asked for `name` (`None`: no TLS, or no server name):
    /// an exact name first, then the longest matching `*.suffix` (nginx's order), then the
    /// route without `sni=`; `None` when nothing takes it.
    pub fn pick<'a>(
        &'a self,
        listener: &'a Arc<Route>,
        name: Option<&str>,
    ) -> Option<&'a Arc<Route>> {
        let routes = || iter::once(listener).chain(&self.others);
        let named = name.and_then(|name| {
            let best = |route: &&'a Arc<Route>| {
                let patterns = route.config.server_names.iter();
                patterns.filter(|pattern| pattern.matches(name)).map(specificity).max()
            };
            routes().filter_map(|route| Some((best(&route)?, route))).max_by_key(|(at, _)| *at)
        });
        match named {
            Some((_, route)) => Some(route),
            None => routes().find(|route| route.config.server_names.is_empty()),
        }
    }
}

/// How closely a pattern fits: an exact name beats every wildcard, a longer suffix beats a
/// shorter one.
fn specificity(pattern: &NamePattern) -> usize {
    match pattern {
        NamePattern::Exact(_) => usize::MAX,
        NamePattern::Wildcard(suffix) => suffix.len(),
    }
}

/// The next generation of a listener's routes after a reload that keeps the listener (see
/// relay/current.rs): `first` is the listener's own route, `others` share it by `sni=`.
/// Without `sni=` it is [`Route::reloaded`]; with it, the table is built again beside the
/// listener's route, as `Relay::bind_sharing` builds it at start.
pub fn reloaded(listener: &Route, first: Config, others: Vec<Config>) -> Route {
    if first.server_names.is_empty() && others.is_empty() {
        return listener.reloaded(first);
    }
    let first = with_real_port(listener, first);
    let mut route = listener.reloaded_as(&label(&listener.listen_addr, &first, true), first);
    let old = listener.server_names.as_ref();
    let others = others.into_iter().map(|config| {
        let config = with_real_port(&route, config);
        let kept = old.and_then(|old| old.metrics_of(&label(&route.listen_addr, &config, true)));
        Arc::new(sharing_route_counted(&route, config, kept))
    });
    route.server_names = Some(ServerNames { others: others.collect() });
    route
}

/// `config` listening on `listener`'s real port, if 0 was asked.
fn with_real_port(listener: &Route, mut config: Config) -> Config {
    if let Address::Tcp(addr) = listener.listen_addr {
        config.listen = addr;
    }
    config
}

/// A route that shares `listener`'s socket, open connections and thread pool, built as
/// `Relay::bind` builds a route of its own, and labelled with its server names.
pub fn sharing_route(listener: &Route, config: Config) -> Route {
    sharing_route_counted(listener, config, None)
}

/// [`sharing_route`], counting on `kept` (relabelled, its upstreams updated) when a reload
/// keeps the route's counters, else on new ones.
fn sharing_route_counted(
    listener: &Route,
    config: Config,
    kept: Option<&Arc<RouteMetrics>>,
) -> Route {
    let config = with_real_port(listener, config);
    let label = label(&listener.listen_addr, &config, true);
    let metrics = match kept {
        Some(kept) => {
            kept.reloaded(&label, config.upstreams());
            Arc::clone(kept)
        }
        None => Arc::new(RouteMetrics::with_upstreams(label.clone(), config.upstreams())),
    };
    Route::sharing(listener, config, metrics)
}
