//! Failed-login policy: an escalating delay per failure and expiring, growing bans, counted
//! per source address and per user name. Pure bookkeeping over a clock passed in, so it is
//! tested without sockets or sleeping.
//!
//! Each failure within `window` raises the count for the address and for the name. The answer
//! to a failed login is delayed by `base_delay * 2^(count - 1)` (at most `max_delay`), the same
//! for an unknown user as for a wrong password, since both are the same failure here. At
//! `failures_before_ban` the address (or name) is banned for `ban`, doubled for each earlier
//! ban of the same key (at most `max_ban`); bans expire on their own. A success clears the name's
//! and the address's failure counts, not their ban history.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::state::failed_logins::FailedLogins;

/// The policy's numbers (config keys `login_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottlePolicy {
    pub failures_before_ban: u32,
    pub ban: Duration,
    /// The longest a ban grows to.
    pub max_ban: Duration,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub window: Duration,
}

/// Keys tracked at most; the stalest are dropped past this (bounded memory under a flood).
pub const MAX_TRACKED: usize = 100_000;

/// What a login attempt may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Banned until then; `by_address` tells which key is banned.
    Banned {
        remaining: Duration,
        by_address: bool,
    },
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    first_failure: Instant,
    last_seen: Instant,
    banned_until: Option<Instant>,
    bans: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(IpAddr),
    Name(String),
}

#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    records: HashMap<Key, Record>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> LoginThrottle {
        LoginThrottle { policy, records: HashMap::new() }
    }

    /// Number of keys tracked (for tests of the memory bound).
    pub fn tracked(&self) -> usize {
        self.records.len()
    }

    /// Drops records with nothing left to remember, and the stalest past [`MAX_TRACKED`].
    fn prune(&mut self, now: Instant) {
        if self.records.len() < MAX_TRACKED {
            return;
        }
        let window = self.policy.window;
        self.records.retain(|_, r| {
            let banned = r.banned_until.is_some_and(|until| until > now);
            banned || now.duration_since(r.last_seen) <= window
        });
        if self.records.len() >= MAX_TRACKED {
            let mut ages: Vec<_> = self.records.iter().map(|(k, r)| (r.last_seen, k.clone())).collect();
            ages.sort_by_key(|(seen, _)| *seen);
            for (_, key) in ages.into_iter().take(MAX_TRACKED / 10) {
                self.records.remove(&key);
            }
        }
    }
}

impl LoginThrottle {
    /// Records a successful login that happened at `at`, learned later (from another
    /// instance): it clears the failure counts of a key only if no failure came after it, so
    /// that a success learned late does not wipe failures made since.
    pub fn succeeded_at(&mut self, address: IpAddr, name: &str, at: Instant) {
        for key in [Key::Address(address), Key::Name(name.to_string())] {
            if let Some(record) = self.records.get_mut(&key)
                && record.last_seen <= at
            {
                record.failures = 0;
            }
        }
    }
}

/// The local implementation of the state seam's failed logins: this process's memory.
impl FailedLogins for LoginThrottle {
    fn banned(&self, now: Instant) -> usize {
        self.records.values().filter(|r| r.banned_until.is_some_and(|until| until > now)).count()
    }

    /// May a login for `name` from `address` proceed at `now`?
    fn check(&self, address: IpAddr, name: &str, now: Instant) -> Admission {
        for (key, by_address) in [(Key::Address(address), true), (Key::Name(name.to_string()), false)] {
            if let Some(until) = self.records.get(&key).and_then(|r| r.banned_until)
                && until > now
            {
                return Admission::Banned { remaining: until - now, by_address };
            }
        }
        Admission::Allowed
    }

    /// How long `address` stays banned, if it is: the acceptor refuses such a connection at
    /// once (error 202), before it costs a pre-login place.
    fn address_ban(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.records.get(&Key::Address(address))?.banned_until?;
        (until > now).then(|| until - now)
    }

    /// Records a failed login; returns how long to wait before answering it.
    fn failed(&mut self, address: IpAddr, name: &str, now: Instant) -> Duration {
        self.prune(now);
        let policy = self.policy;
        let mut delay = Duration::ZERO;
        for key in [Key::Address(address), Key::Name(name.to_string())] {
            let record = self.records.entry(key).or_insert(Record {
                failures: 0,
                first_failure: now,
                last_seen: now,
                banned_until: None,
                bans: 0,
            });
            if now.duration_since(record.first_failure) > policy.window {
                record.failures = 0;
                record.first_failure = now;
            }
            record.failures += 1;
            record.last_seen = now;
            let exponent = (record.failures - 1).min(20);
            delay = delay.max(policy.base_delay.saturating_mul(1 << exponent).min(policy.max_delay));
            if record.failures >= policy.failures_before_ban {
                let length = policy.ban.saturating_mul(1 << record.bans.min(16)).min(policy.max_ban);
                record.banned_until = Some(now + length);
                record.bans += 1;
                record.failures = 0;
                record.first_failure = now;
            }
        }
        delay
    }

    /// Records a successful login: failure counts start again (ban history stays).
    fn succeeded(&mut self, address: IpAddr, name: &str) {
        for key in [Key::Address(address), Key::Name(name.to_string())] {
            if let Some(record) = self.records.get_mut(&key) {
                record.failures = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_learned_late_keeps_the_failures_made_after_it() {
        let mut throttle = LoginThrottle::new(ThrottlePolicy { failures_before_ban: 3, ..policy() });
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let start = Instant::now();
        throttle.failed(address, "ann", start + Duration::from_secs(2));
        throttle.failed(address, "ann", start + Duration::from_secs(3));
        // Another instance's success, at second 1, arrives now: the two failures stay.
        throttle.succeeded_at(address, "ann", start + Duration::from_secs(1));
        throttle.failed(address, "ann", start + Duration::from_secs(4));
        assert!(throttle.address_ban(address, start + Duration::from_secs(4)).is_some());
        // One at second 6, after every failure, clears the counts as a local success does.
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        throttle.failed(other, "bob", start + Duration::from_secs(5));
        throttle.failed(other, "bob", start + Duration::from_secs(5));
        throttle.succeeded_at(other, "bob", start + Duration::from_secs(6));
        throttle.failed(other, "bob", start + Duration::from_secs(7));
        assert!(throttle.address_ban(other, start + Duration::from_secs(7)).is_none());
    }

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            failures_before_ban: 5,
            ban: Duration::from_secs(60),
            max_ban: Duration::from_secs(3600),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            window: Duration::from_secs(600),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn delays_escalate_then_a_ban_starts_and_expires() {
        let mut t = LoginThrottle::new(policy());
        let now = Instant::now();
        let delays: Vec<_> = (0..4).map(|_| t.failed(ip(1), "alice", now)).collect();
        assert_eq!(delays, [100, 200, 400, 800].map(Duration::from_millis));
        assert_eq!(t.check(ip(1), "alice", now), Admission::Allowed);
        t.failed(ip(1), "alice", now);
        assert_eq!(
            t.check(ip(1), "bob", now),
            Admission::Banned { remaining: Duration::from_secs(60), by_address: true }
        );
        assert_eq!(
            t.check(ip(2), "alice", now),
            Admission::Banned { remaining: Duration::from_secs(60), by_address: false }
        );
        assert_eq!(t.check(ip(2), "bob", now), Admission::Allowed, "other addresses and names are free");
        let later = now + Duration::from_secs(61);
        assert_eq!(t.check(ip(1), "alice", later), Admission::Allowed, "bans expire on their own");
    }

    #[test]
    fn repeat_offences_double_the_ban() {
        let mut t = LoginThrottle::new(policy());
        let mut now = Instant::now();
        for expected in [60, 120, 240] {
            for _ in 0..5 {
                t.failed(ip(1), "x", now);
            }
            match t.check(ip(1), "x", now) {
                Admission::Banned { remaining, .. } => assert_eq!(remaining, Duration::from_secs(expected)),
                other => panic!("{other:?}"),
            }
            now += Duration::from_secs(expected + 1);
        }
    }

    /// (The throttle is never told whether a name is a user's, so it cannot treat unknown
    /// names and wrong passwords differently; `tests/auth.rs` checks that the server counts
    /// both.)
    #[test]
    fn a_success_resets_its_own_address_and_name_only() {
        let mut t = LoginThrottle::new(policy());
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip(1), "alice", now);
            t.failed(ip(2), "bob", now);
        }
        t.succeeded(ip(1), "alice");
        assert_eq!(t.failed(ip(1), "alice", now), Duration::from_millis(100), "reset");
        assert_eq!(t.failed(ip(2), "bob", now), Duration::from_millis(800), "untouched: its fourth failure");
        // The address alone escalates across names, and the name alone across addresses.
        assert_eq!(t.failed(ip(2), "carol", now), Duration::from_millis(1600));
        assert_eq!(t.failed(ip(3), "bob", now), Duration::from_millis(1600), "bob's fifth, from a new address");
    }

    #[test]
    fn delays_are_capped_and_the_window_forgets() {
        let mut t = LoginThrottle::new(ThrottlePolicy { failures_before_ban: 100, ..policy() });
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..30 {
            last = t.failed(ip(1), "a", now);
        }
        assert_eq!(last, Duration::from_secs(2));
        let later = now + Duration::from_secs(601);
        assert_eq!(t.failed(ip(1), "a", later), Duration::from_millis(100));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut t = LoginThrottle::new(ThrottlePolicy { failures_before_ban: 1000, ..policy() });
        let now = Instant::now();
        for i in 0..(MAX_TRACKED + 5_000) {
            t.failed(IpAddr::from((i as u32).to_be_bytes()), "x", now);
        }
        assert!(t.tracked() <= MAX_TRACKED + 1, "{}", t.tracked());
    }
}
