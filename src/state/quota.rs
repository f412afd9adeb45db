//! The quota ledger as the file service uses it: who may write how much, and which paths are
//! being uploaded. The QuotaActor implements it for one process ([`crate::actors::quota`]): one
//! owner of the numbers, one message at a time. A ledger shared by several instances implements
//! the same calls with one conditional statement per reservation in its database.
//!
//! An upload's (or a new directory's) place in the ledger is a [`QuotaLease`]. It travels with
//! the upload, records what the upload changed on disk so far, and settles itself when dropped,
//! wherever that happens: no failure path can leave a reservation or a path lock behind.

use std::path::PathBuf;

use futures::future::BoxFuture;

use crate::actors::quota::QuotaError;
use crate::quota::{DiskChange, Usage};

/// One upload's reservation and path lock, or one new directory's entry; settled when dropped.
pub trait QuotaLease: Send + Sync {
    /// Bytes reserved for it now.
    fn reserved(&self) -> u64;
    /// May the upload create its entry (a partial, a directory)? Only if `max_files` had room.
    fn may_create(&self) -> bool;
    /// Sets the reservation to `bytes`, if the quota allows it (it may always shrink).
    fn reserve(&self, bytes: u64) -> BoxFuture<'static, Result<(), QuotaError>>;
    /// Records the change its holder has made on disk so far, all told. Call it in the job that
    /// changed the disk, under the usage gate's change guard.
    fn record_disk_change(&self, change: DiskChange);
}

/// Every user's usage, limits and live leases.
pub trait QuotaLedger: Send + Sync {
    /// Takes the lock on `path` (one upload per path: [`QuotaError::InUse`] while another holds
    /// it) and a reservation of nothing, with room for the upload's entry if `max_files` has it.
    fn open_upload(&self, user: String, path: PathBuf) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>>;
    /// A lease for creating one entry (a directory), if `max_files` has room for it.
    fn open_entry(&self, user: String) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>>;
    /// A change made outside leases (a removed file or directory), numbered by the usage gate.
    fn adjust(&self, user: String, change: DiskChange, number: u64);
    /// The user's figures.
    fn usage(&self, user: String) -> BoxFuture<'static, Result<Usage, QuotaError>>;
}
