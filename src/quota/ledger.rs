//! Quota arithmetic: per user, bytes used on disk plus bytes reserved by live uploads.
//!
//! The invariant, after every step of every session:
//!
//! - `used` is the bytes of the user's published files and partials, as they were when each
//!   upload last settled (live uploads' writes since then are covered by their reservations);
//! - a live upload's reservation covers every byte it may still write into its partial
//!   (its announced size, or FTP's next block, minus what the partial already held when it
//!   was opened): nothing is subtracted for the file it will replace, because that file stays
//!   on disk until the publish and may be removed or moved meanwhile;
//! - `used + reserved <= limit` after every reservation granted, so uploads from any number
//!   of sessions can never together pass the limit;
//! - every byte is freed exactly once: a removal frees the file it removed; a publish frees
//!   whatever it replaced at the instant of its rename (see `storage::name_lock`, which keeps
//!   the two from counting the same file).
//!
//! When an upload ends, however it ends, its reservation is settled: the reservation
//! disappears and `used` moves by what the upload really changed on disk. Partial files are
//! on disk, so they count.

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

/// Creating an entry the user's `max_files` does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many files: {files} files and directories exist or are being created, the most allowed is {max_files}")]
pub struct TooManyFiles {
    pub files: u64,
    pub max_files: u64,
}

/// A user's figures: bytes, and entries (files, directories and partial uploads, each one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub reserved: u64,
    pub limit: u64,
    pub files: u64,
    pub files_reserved: u64,
    pub max_files: u64,
}

impl Usage {
    /// Bytes that can still be reserved.
    pub fn free(&self) -> u64 {
        self.limit.saturating_sub(self.used + self.reserved)
    }
}

/// What a change on disk did to a user's figures, each up or down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskChange {
    pub bytes: i64,
    pub files: i64,
}

/// What one reservation holds: bytes it may write, and the entry it may create (0 or 1).
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    bytes: u64,
    files: u64,
}

#[derive(Debug, Default)]
struct Account {
    usage: Usage,
    reservations: HashMap<ReservationId, Held>,
}

impl Account {
    fn apply(&mut self, change: DiskChange) {
        self.usage.used = self.usage.used.saturating_add_signed(change.bytes);
        self.usage.files = self.usage.files.saturating_add_signed(change.files);
    }
}

/// Accounts for every user.
#[derive(Debug, Default)]
pub struct Ledger {
    accounts: HashMap<String, Account>,
    next_id: ReservationId,
}

impl Ledger {
    fn account(&mut self, user: &str) -> &mut Account {
        self.accounts.entry(user.to_string()).or_default()
    }

    /// Sets a user's limits (creating the account with zero usage if new).
    pub fn set_limits(&mut self, user: &str, limit: u64, max_files: u64) {
        let usage = &mut self.account(user).usage;
        usage.limit = limit;
        usage.max_files = max_files;
    }

    /// Replaces a user's `used` and `files` with a fresh count from disk.
    pub fn set_measured(&mut self, user: &str, used: u64, files: u64) {
        let usage = &mut self.account(user).usage;
        usage.used = used;
        usage.files = files;
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

    /// Opens a reservation of nothing (an upload's place in the ledger).
    pub fn open(&mut self, user: &str) -> ReservationId {
        self.next_id += 1;
        let id = self.next_id;
        self.account(user).reservations.insert(id, Held::default());
        id
    }

    /// Sets reservation `id` to `bytes`, if the limit allows it. A reservation may always shrink.
    pub fn reserve(&mut self, user: &str, id: ReservationId, bytes: u64) -> Result<(), QuotaExceeded> {
        let account = self.account(user);
        let held = account.reservations.get(&id).copied().unwrap_or_default();
        let others = account.usage.reserved - held.bytes;
        let total = account.usage.used.saturating_add(others).saturating_add(bytes);
        if bytes > held.bytes && total > account.usage.limit {
            let free = account.usage.limit.saturating_sub(account.usage.used + others);
            return Err(QuotaExceeded { needed: bytes, free, limit: account.usage.limit });
        }
        account.reservations.insert(id, Held { bytes, ..held });
        account.usage.reserved = others + bytes;
        Ok(())
    }

    /// Reserves room for one new entry under reservation `id` (a partial or a directory about
    /// to be created), if `max_files` allows it; a reservation that holds one already keeps it.
    pub fn reserve_file(&mut self, user: &str, id: ReservationId) -> Result<(), TooManyFiles> {
        let account = self.account(user);
        let held = account.reservations.get(&id).copied().unwrap_or_default();
        if held.files == 1 {
            return Ok(());
        }
        let files = account.usage.files + account.usage.files_reserved;
        if files >= account.usage.max_files {
            return Err(TooManyFiles { files, max_files: account.usage.max_files });
        }
        account.reservations.insert(id, Held { files: 1, ..held });
        account.usage.files_reserved += 1;
        Ok(())
    }

    /// Puts back a live reservation after a rebuild, without judging it again: it was granted
    /// before, and the upload holding it is still running.
    pub fn restore(&mut self, user: &str, id: ReservationId, bytes: u64, files: u64) {
        let account = self.account(user);
        if let Some(previous) = account.reservations.insert(id, Held { bytes, files }) {
            account.usage.reserved -= previous.bytes;
            account.usage.files_reserved -= previous.files;
        }
        account.usage.reserved += bytes;
        account.usage.files_reserved += files;
        self.next_id = self.next_id.max(id);
    }

    /// Ends reservation `id`; `change` is what its holder really changed on disk.
    pub fn settle(&mut self, user: &str, id: ReservationId, change: DiskChange) {
        let account = self.account(user);
        if let Some(held) = account.reservations.remove(&id) {
            account.usage.reserved -= held.bytes;
            account.usage.files_reserved -= held.files;
        }
        account.apply(change);
    }

    /// Applies a change made outside reservations (a removed file or directory).
    pub fn adjust(&mut self, user: &str, change: DiskChange) {
        self.account(user).apply(change);
    }

    /// Number of live reservations for `user`.
    pub fn open_reservations(&self, user: &str) -> usize {
        self.accounts.get(user).map_or(0, |a| a.reservations.len())
    }
}

/// What an upload must reserve: every byte it may still write into its partial. The file it
/// replaces is not subtracted: that file stays on disk (and counted) until the upload is
/// published, and may meanwhile be removed or moved away, freeing its bytes for other uses.
/// Publishing frees it, once, as whatever is under the name at that instant.
pub fn upload_need(size: u64, partial_len: u64) -> u64 {
    size.saturating_sub(partial_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(bytes: i64) -> DiskChange {
        DiskChange { bytes, files: 0 }
    }

    #[test]
    fn new_entries_are_reserved_within_max_files_and_freed_once() {
        let mut ledger = Ledger::default();
        ledger.set_limits("u", 1000, 3);
        ledger.set_measured("u", 0, 1);
        let a = ledger.open("u");
        let b = ledger.open("u");
        ledger.reserve_file("u", a).unwrap();
        ledger.reserve_file("u", a).unwrap(); // held already: still one
        ledger.reserve_file("u", b).unwrap();
        let c = ledger.open("u");
        assert_eq!(ledger.reserve_file("u", c), Err(TooManyFiles { files: 3, max_files: 3 }));
        // a created its entry; b did not need one after all.
        ledger.settle("u", a, DiskChange { bytes: 0, files: 1 });
        ledger.settle("u", b, DiskChange::default());
        assert_eq!((ledger.usage("u").files, ledger.usage("u").files_reserved), (2, 0));
        ledger.reserve_file("u", c).unwrap();
        ledger.adjust("u", DiskChange { bytes: 0, files: -2 }); // two entries removed
        ledger.settle("u", c, DiskChange { bytes: 0, files: 1 });
        assert_eq!(ledger.usage("u").files, 1);
    }

    #[test]
    fn reservations_never_pass_the_limit() {
        let mut ledger = Ledger::default();
        ledger.set_limits("u", 100, 1000);
        ledger.set_measured("u", 30, 0);
        let a = ledger.open("u");
        let b = ledger.open("u");
        ledger.reserve("u", a, 50).unwrap();
        let refused = ledger.reserve("u", b, 21).unwrap_err();
        assert_eq!(refused, QuotaExceeded { needed: 21, free: 20, limit: 100 });
        ledger.reserve("u", b, 20).unwrap();
        assert_eq!(ledger.usage("u").free(), 0);
        ledger.settle("u", a, bytes(50));
        ledger.settle("u", b, bytes(5)); // interrupted after 5 bytes: the partial counts
        assert_eq!(ledger.usage("u"), Usage { used: 85, limit: 100, max_files: 1000, ..Usage::default() });
        assert_eq!(ledger.open_reservations("u"), 0);
    }

    #[test]
    fn an_overwrite_reserves_the_whole_new_file_and_frees_the_old_one_at_publish() {
        assert_eq!(upload_need(70, 0), 70);
        assert_eq!(upload_need(70, 30), 40);
        assert_eq!(upload_need(30, 70), 0);
        let mut ledger = Ledger::default();
        ledger.set_limits("u", 100, 1000);
        ledger.set_measured("u", 60, 0); // the file about to be replaced
        let id = ledger.open("u");
        assert!(ledger.reserve("u", id, upload_need(70, 0)).is_err(), "old and new file do not fit together");
        ledger.reserve("u", id, upload_need(40, 0)).unwrap();
        // Published over the old file: 40 bytes written, 60 freed.
        ledger.settle("u", id, bytes(40 - 60));
        assert_eq!(ledger.usage("u"), Usage { used: 40, limit: 100, max_files: 1000, ..Usage::default() });
    }

    #[test]
    fn a_reservation_may_shrink_over_the_limit_but_never_grow() {
        let mut ledger = Ledger::default();
        ledger.set_limits("u", 100, 1000);
        ledger.set_measured("u", 20, 0);
        let id = ledger.open("u");
        ledger.reserve("u", id, 60).unwrap();
        // Growing one that already holds bytes counts only the others and the new amount.
        ledger.reserve("u", id, 80).unwrap();
        assert_eq!(ledger.usage("u").free(), 0);
        assert!(ledger.reserve("u", id, 81).is_err());
        // The limit drops below what is held: shrinking still works, growing does not.
        ledger.set_limits("u", 50, 1000);
        ledger.reserve("u", id, 70).unwrap();
        assert_eq!(ledger.usage("u").reserved, 70);
        assert!(ledger.reserve("u", id, 71).is_err());
        ledger.settle("u", id, bytes(0));
        assert_eq!(ledger.usage("u"), Usage { used: 20, limit: 50, max_files: 1000, ..Usage::default() });
    }

    proptest! {
        /// Any sequence of reservations and settlements keeps used + reserved within the limit,
        /// counting only reservations that were granted.
        #[test]
        fn invariant_holds(limit in 0u64..1000, ops in proptest::collection::vec((0u8..3, 0u64..400), 0..60)) {
            let mut ledger = Ledger::default();
            ledger.set_limits("u", limit, 1000);
            let mut live: Vec<(ReservationId, u64)> = Vec::new();
            for (op, amount) in ops {
                match op {
                    0 => {
                        let id = ledger.open("u");
                        if ledger.reserve("u", id, amount).is_ok() {
                            live.push((id, amount));
                        } else {
                            ledger.settle("u", id, bytes(0));
                        }
                    }
                    _ if !live.is_empty() => {
                        let (id, reserved) = live.remove(0);
                        // an upload writes at most what it reserved
                        let written = if op == 1 { reserved } else { reserved / 2 };
                        ledger.settle("u", id, bytes(written as i64));
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
