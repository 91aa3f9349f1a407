//! The seams tests use to make the machine misbehave on cue: a connection thread the OS
//! refuses or that panics, a host name that resolves to the addresses a test needs. A test
//! hands them to one relay ([`Relay::bind_with_hooks`](crate::Relay::bind_with_hooks));
//! no setting reaches them, and everything else runs with the defaults.

use crate::limits::threads::{ThreadHook, no_hook};
use crate::upstream::dial::{Resolver, system_resolver};

/// What a test may put in place of the machine's own behaviour, for one relay. The default
/// is the machine's: no thread hook, the system's resolver.
///
/// ```
/// let hooks = tcprelay::TestHooks {
///     resolver: |_upstream| Ok(vec!["127.0.0.1:6379".parse().expect("an address")]),
///     ..tcprelay::TestHooks::default()
/// };
/// let config = tcprelay::Config { upstream: "cache.test:6379".to_string(), ..Default::default() };
/// let relay = tcprelay::Relay::bind_with_hooks(config, hooks)?;
/// # drop(relay);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct TestHooks {
    /// Called around the creation of every connection thread, to fail, panic or count
    /// (see [`ThreadHook`]). Default: a hook that does nothing.
    pub thread_hook: ThreadHook,
    /// Turns an upstream's `host:port` into addresses (see [`Resolver`]). Default: the
    /// system's resolver, `getaddrinfo`.
    pub resolver: Resolver,
}

impl Default for TestHooks {
    fn default() -> TestHooks {
        TestHooks { thread_hook: no_hook, resolver: system_resolver }
    }
}
