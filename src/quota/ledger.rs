//! Quota arithmetic: per user, bytes used on disk plus bytes reserved by live uploads.
//!
//! The invariant is `used + reserved <= limit` after every reservation: an upload reserves,
//! before its first byte, everything it may still add to the home (its announced size, minus
//! what its partial already holds, minus the file it replaces, since overwriting counts only
//! the difference). Concurrent uploads by one user, from any number of sessions, therefore can
//! never together pass the limit. When the upload ends, however it ends, its reservation is
//! settled: the reservation disappears and `used` moves by what the upload really changed on
//! disk. Partial files are on disk, so they count.

use std::collections::HashMap;

/// Identifies one live reservation.
pub type ReservationId = u64;

/// A reservation the limit does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("quota exceeded: this needs {needed} more bytes but only {free} of {limit} are free")]
pub struct QuotaExceeded {
    pub needed: u64,
    pub free: u64,
    pub limit: u64,
}

/// A user's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub reserved: u64,
    pub limit: u64,
}

impl Usage {
    /// Bytes that can still be reserved.
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.used + self.reserved)
    }
}

#[derive(Debug, Default)]
struct Account {
    usage: Usage,
    reservations: HashMap<ReservationId, u64>,
}

/// Accounts for every user.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: HashMap<String, Account>,
    next_id: ReservationId,
}

impl Ledger {
    /// Sets a user's limit (creating the account with zero usage if new).
    pub fn set_limit(&mut self, user: &str, limit: u64) {
        self.accounts.entry(user.to_string()).or_default().usage.limit = limit;
    }

    /// Replaces a user's `used` with a fresh count from disk.
    pub fn set_used(&mut self, user: &str, used: u64) {
        self.accounts.entry(user.to_string()).or_default().usage.used = used;
    }

    /// Forgets a user (deleted from the store).
    pub fn remove(&mut self, user: &str) {
        self.accounts.remove(user);
    }

    pub fn knows(&self, user: &str) -> bool {
        self.accounts.contains_key(user)
    }

    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.accounts.keys().map(String::as_str)
    }

    pub fn usage(&self, user: &str) -> Usage {
        self.accounts.get(user).map(|a| a.usage).unwrap_or_default()
    }

    /// Opens a reservation of zero bytes (an upload's place in the ledger).
    pub fn open(&mut self, user: &str) -> ReservationId {
        self.next_id += 1;
        let id = self.next_id;
        self.accounts.entry(user.to_string()).or_default().reservations.insert(id, 0);
        id
    }

    /// Sets reservation `id` to `bytes`, if the limit allows it. A reservation may always shrink.
    pub fn reserve(&mut self, user: &str, id: ReservationId, bytes: u64) -> Result<(), QuotaExceeded> {
        let account = self.accounts.entry(user.to_string()).or_default();
        let current = account.reservations.get(&id).copied().unwrap_or(0);
        let others = account.usage.reserved - current;
        let total = account.usage.used.saturating_add(others).saturating_add(bytes);
        if bytes > current && total > account.usage.limit {
            let free = account.usage.limit.saturating_sub(account.usage.used + others);
            return Err(QuotaExceeded { needed: bytes, free, limit: account.usage.limit });
        }
        account.reservations.insert(id, bytes);
        account.usage.reserved = others + bytes;
        Ok(())
    }

    /// Puts back a live reservation after a rebuild, without judging it again: it was granted
    /// before, and the upload holding it is still running.
    pub fn restore(&mut self, user: &str, id: ReservationId, bytes: u64) {
        let account = self.accounts.entry(user.to_string()).or_default();
        if let Some(previous) = account.reservations.insert(id, bytes) {
            account.usage.reserved -= previous;
        }
        account.usage.reserved += bytes;
        self.next_id = self.next_id.max(id);
    }

    /// Ends reservation `id`; `disk_change` is what the upload really changed on disk.
    pub fn settle(&mut self, user: &str, id: ReservationId, disk_change: i64) {
        let account = self.accounts.entry(user.to_string()).or_default();
        if let Some(bytes) = account.reservations.remove(&id) {
            account.usage.reserved -= bytes;
        }
        account.usage.used = account.usage.used.saturating_add_signed(disk_change);
    }

    /// Applies a change made outside uploads (a removed file).
    pub fn adjust(&mut self, user: &str, disk_change: i64) {
        let account = self.accounts.entry(user.to_string()).or_default();
        account.usage.used = account.usage.used.saturating_add_signed(disk_change);
    }

    /// Number of live reservations for `user`.
    pub fn open_reservations(&self, user: &str) -> usize {
        self.accounts.get(user).map_or(0, |a| a.reservations.len())
    }
}

/// What an upload must reserve: its size, less what its partial holds and what it replaces.
pub fn upload_need(size: u64, partial_len: u64, replaced_len: u64) -> u64 {
    size.saturating_sub(partial_len).saturating_sub(replaced_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reservations_never_pass_the_limit() {
        let mut ledger = Ledger::default();
        ledger.set_limit("u", 100);
        ledger.set_used("u", 30);
        let a = ledger.open("u");
        let b = ledger.open("u");
        ledger.reserve("u", a, 50).unwrap();
        let refused = ledger.reserve("u", b, 21).unwrap_err();
        assert_eq!(refused, QuotaExceeded { needed: 21, free: 20, limit: 100 });
        ledger.reserve("u", b, 20).unwrap();
        assert_eq!(ledger.usage("u").free(), 0);
        ledger.settle("u", a, 50);
        ledger.settle("u", b, 5); // interrupted after 5 bytes: the partial counts
        assert_eq!(ledger.usage("u"), Usage { used: 85, reserved: 0, limit: 100 });
        assert_eq!(ledger.open_reservations("u"), 0);
    }

    #[test]
    fn overwriting_counts_the_difference() {
        assert_eq!(upload_need(70, 0, 60), 10);
        assert_eq!(upload_need(50, 0, 60), 0);
        assert_eq!(upload_need(70, 30, 0), 40);
        let mut ledger = Ledger::default();
        ledger.set_limit("u", 100);
        ledger.set_used("u", 90);
        let id = ledger.open("u");
        ledger.reserve("u", id, upload_need(70, 0, 60)).unwrap();
        ledger.settle("u", id, 70 - 60);
        assert_eq!(ledger.usage("u").used, 100);
    }

    #[test]
    fn shrinking_is_always_allowed_even_over_the_limit() {
        let mut ledger = Ledger::default();
        ledger.set_limit("u", 10);
        ledger.set_used("u", 50);
        let id = ledger.open("u");
        ledger.reserve("u", id, 0).unwrap();
        assert!(ledger.reserve("u", id, 1).is_err());
    }

    proptest! {
        /// Any sequence of reservations and settlements keeps used + reserved within the limit,
        /// counting only reservations that were granted.
        #[test]
        fn invariant_holds(limit in 0u64..1000, ops in proptest::collection::vec((0u8..3, 0u64..400), 0..60)) {
            let mut ledger = Ledger::default();
            ledger.set_limit("u", limit);
            let mut live: Vec<(ReservationId, u64)> = Vec::new();
            for (op, amount) in ops {
                match op {
                    0 => {
                        let id = ledger.open("u");
                        if ledger.reserve("u", id, amount).is_ok() {
                            live.push((id, amount));
                        } else {
                            ledger.settle("u", id, 0);
                        }
                    }
                    _ if !live.is_empty() => {
                        let (id, reserved) = live.remove(0);
                        // an upload writes at most what it reserved
                        let written = if op == 1 { reserved } else { reserved / 2 };
                        ledger.settle("u", id, written as i64);
                    }
                    _ => {}
                }
                let usage = ledger.usage("u");
                prop_assert!(usage.used + usage.reserved <= limit);
                prop_assert_eq!(usage.reserved, live.iter().map(|(_, r)| r).sum::<u64>());
            }
        }
    }
}
