//! Failed logins and bans as the AuthActor records them and the acceptor reads them.
//!
//! Calls are made under a lock, on actor threads, at every login and every connection: an
//! implementation answers from memory. One shared by several instances keeps the bans it
//! learns in memory and tells the others in the background, so that a failure on one instance
//! counts on all without a round trip on the login's path.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::throttle::Admission;

/// Failure counts and bans, per source address and per user name.
pub trait FailedLogins: Send + 'static {
    /// May a login for `name` from `address` proceed at `now`?
    fn check(&self, address: IpAddr, name: &str, now: Instant) -> Admission;
    /// How long `address` stays banned, if it is (the acceptor refuses its connections at once).
    fn address_ban(&self, address: IpAddr, now: Instant) -> Option<Duration>;
    /// Records a failed login; returns how long to wait before answering it.
    fn failed(&mut self, address: IpAddr, name: &str, now: Instant) -> Duration;
    /// Records a successful login: failure counts start again (ban history stays).
    fn succeeded(&mut self, address: IpAddr, name: &str);
    /// Addresses and names banned at `now` (for the metrics).
    fn banned(&self, now: Instant) -> usize;
}

/// The failed logins the AuthActor keeps and the acceptor reads.
pub type SharedFailedLogins = Arc<Mutex<dyn FailedLogins>>;
