//! How much resume-verification hashing a user can make the server do.
//!
//! Resuming a transfer makes the server hash a prefix it does not then send or receive: the
//! first `offset` bytes of a download, or the partial file of an upload. That work is useful
//! once per resume, but a client repeating `get` with an offset near the end of a big file
//! could otherwise keep a disk thread hashing without moving any data. Each user has a bucket
//! of hashing bytes: `capacity` to start with, refilled at `refill_per_second`. A check may
//! start while the balance is positive and is charged afterwards with what it hashed (the
//! balance may go below zero), so a legitimate resume of any size always runs, and a client
//! that keeps asking waits for the refill.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashBudgetPolicy {
    pub capacity: u64,
    pub refill_per_second: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    balance: i128,
    updated: Instant,
}

/// Per-user hashing balances.
#[derive(Debug)]
pub struct HashBudget {
    policy: HashBudgetPolicy,
    buckets: HashMap<String, Bucket>,
}

impl HashBudget {
    pub fn new(policy: HashBudgetPolicy) -> HashBudget {
        HashBudget { policy, buckets: HashMap::new() }
    }

    fn bucket(&mut self, user: &str, now: Instant) -> &mut Bucket {
        let policy = self.policy;
        let bucket = self
            .buckets
            .entry(user.to_string())
            .or_insert(Bucket { balance: i128::from(policy.capacity), updated: now });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        let refill = (elapsed * policy.refill_per_second as f64) as i128;
        bucket.balance = (bucket.balance + refill).min(i128::from(policy.capacity));
        bucket.updated = now;
        bucket
    }

    /// May `user` start a check now? If not, how long until the balance is positive again.
    pub fn may_start(&mut self, user: &str, now: Instant) -> Result<(), Duration> {
        let refill = self.policy.refill_per_second.max(1);
        let balance = self.bucket(user, now).balance;
        if balance > 0 { Ok(()) } else { Err(Duration::from_secs_f64((1 - balance) as f64 / refill as f64)) }
    }

    /// Charges `bytes` of hashing done for `user`.
    pub fn charge(&mut self, user: &str, bytes: u64, now: Instant) {
        self.bucket(user, now).balance -= i128::from(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn a_big_resume_runs_then_repeats_wait_for_the_refill() {
        let mut budget = HashBudget::new(HashBudgetPolicy { capacity: 4 * GIB, refill_per_second: GIB });
        let now = Instant::now();
        assert!(budget.may_start("u", now).is_ok());
        budget.charge("u", 10 * GIB, now); // one resume larger than the bucket still ran
        let wait = budget.may_start("u", now).unwrap_err();
        assert!(wait > Duration::from_secs(5) && wait <= Duration::from_secs(7), "{wait:?}");
        assert!(budget.may_start("u", now + Duration::from_secs(5)).is_err());
        assert!(budget.may_start("u", now + Duration::from_secs(7)).is_ok());
        assert!(budget.may_start("other", now).is_ok(), "users are separate");
    }

    #[test]
    fn the_balance_never_exceeds_the_capacity() {
        let mut budget = HashBudget::new(HashBudgetPolicy { capacity: 100, refill_per_second: 1000 });
        let now = Instant::now();
        budget.charge("u", 50, now);
        let later = now + Duration::from_secs(3600);
        budget.charge("u", 100, later);
        assert!(budget.may_start("u", later).is_err(), "refill stopped at the capacity");
    }
}
