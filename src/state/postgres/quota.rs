//! The quota ledger every instance shares, for files in object storage
//! (`storage.backend = "s3"`): the state seam's [`QuotaLedger`] in PostgreSQL, as exact across
//! instances as the QuotaActor is in one process.
//!
//! What a home holds is not kept by the ledger at all: `home_usage` is maintained by triggers in
//! the very transactions that change names and uploads (migration 3), so no crash between a
//! change and its accounting can make the two disagree. The ledger keeps only the live
//! reservations, one row per lease in `quota_leases`, each held by an instance; a lease counts
//! for what its holder may still write: its reservation less what it has already added to
//! `home_usage` (`grown_*`, recorded after the change, so a crash between the two counts a
//! part twice, never not at all). A lease whose instance stopped its heartbeat counts for
//! nothing: what its upload made durable is in `home_usage`, the rest was never written.
//!
//! A reservation is judged under a lock on the home's `home_usage` row, taken first in its
//! transaction (one call of a function of migration 4: one round trip): every reservation for one home is then judged one at a time against every
//! other lease and byte, on whichever instance, and `used + reserved <= limit` holds as in one
//! process (tests/cluster/quota.rs).

use crate::state::postgres::cached;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::actors::quota::QuotaError;
use crate::quota::{DiskChange, QuotaExceeded, Usage};
use crate::state::quota::{QuotaLease, QuotaLedger};
use crate::storage::objects::Instance;

use super::{Database, DatabaseError};

/// The shared ledger: leases held by this instance, judged against every instance's.
#[derive(Clone)]
pub struct SharedLedger {
    database: Database,
    instance: Instance,
    /// What relative homes (and so the paths leases lock) are relative to.
    data_dir: PathBuf,
    default_max_files: u64,
}

impl SharedLedger {
    pub fn new(database: Database, instance: Instance, data_dir: PathBuf, default_max_files: u64) -> SharedLedger {
        SharedLedger { database, instance, data_dir, default_max_files }
    }

    /// The path a lease locks, the same on every instance (see `storage::objects::home_key`).
    fn lock_name(&self, path: &Path) -> String {
        crate::storage::objects::home_key(&self.data_dir, path)
    }
}

fn not_a_user(user: &str) -> QuotaError {
    QuotaError::Unreachable(format!("{user} is not a user in the database"))
}

fn unreachable(error: DatabaseError) -> QuotaError {
    QuotaError::Unreachable(error.to_string())
}

impl QuotaLedger for SharedLedger {
    /// One round trip (function `ftp_actor_open_lease`): the lease row, with a file's room if
    /// `max_files` has it (else the upload may only continue a partial it already has).
    fn open_upload(&self, user: String, path: PathBuf) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        let ledger = self.clone();
        let path = self.lock_name(&path);
        let opened = self.database.run(move |client| async move {
            let default_max_files = ledger.default_max_files as i64;
            let row = cached::query_opt(
                &client,
                "SELECT o_id, o_files FROM ftp_actor_open_lease($1, $2, $3, false, $4)",
                &[&user, &ledger.instance.id(), &path, &default_max_files],
            )
            .await?;
            let Some(row) = row else { return Ok(Err(not_a_user(&user))) };
            let (id, files): (Option<i64>, i32) = (row.get(0), row.get(1));
            let Some(id) = id else { return Ok(Err(QuotaError::InUse)) };
            let lease: Box<dyn QuotaLease> = Box::new(SharedLease {
                database: ledger.database.clone(),
                default_max_files: ledger.default_max_files,
                id,
                user,
                files: files as u64,
                reserved: Arc::default(),
                recorded: Mutex::new(DiskChange::default()),
            });
            Ok(Ok(lease))
        });
        Box::pin(async move { opened.await.map_err(unreachable)? })
    }

    /// No row and no round trip: a new directory is judged against `max_files` in the very
    /// statement that makes it (`ObjectHome::mkdir`), under the same lock on the home's
    /// figures a lease is opened under, which is as exact and two round trips shorter.
    fn open_entry(&self, _user: String) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        Box::pin(std::future::ready(Ok(Box::new(JudgedWhereMade) as Box<dyn QuotaLease>)))
    }

    /// Nothing to do: removals change `home_usage` in their own transactions.
    fn adjust(&self, _user: String, _change: DiskChange, _number: u64) {}

    fn usage(&self, user: String) -> BoxFuture<'static, Result<Usage, QuotaError>> {
        let default_max_files = self.default_max_files as i64;
        let read = self.database.run(move |client| async move {
            let row = cached::query_opt(
                &client,
                "SELECT o_used, o_reserved, o_quota, o_files, o_files_reserved, o_max_files
                 FROM ftp_actor_figures($1, $2, 0) WHERE o_quota IS NOT NULL",
                &[&user, &default_max_files],
            )
            .await?;
            let figure = |row: &tokio_postgres::Row, column: usize| row.get::<_, i64>(column).max(0) as u64;
            Ok(row
                .map(|row| Usage {
                    used: figure(&row, 0),
                    reserved: figure(&row, 1),
                    limit: figure(&row, 2),
                    files: figure(&row, 3),
                    files_reserved: figure(&row, 4),
                    max_files: figure(&row, 5),
                })
                .ok_or_else(|| not_a_user(&user)))
        });
        Box::pin(async move { read.await.map_err(unreachable)? })
    }
}

/// A new directory's lease in the cluster: nothing to hold, since the store judges the
/// directory where it makes it (see [`SharedLedger::open_entry`]).
struct JudgedWhereMade;

impl QuotaLease for JudgedWhereMade {
    fn reserved(&self) -> u64 {
        0
    }

    fn may_create(&self) -> bool {
        true
    }

    fn reserve(&self, _bytes: u64) -> BoxFuture<'static, Result<(), QuotaError>> {
        Box::pin(std::future::ready(Err(QuotaError::Unreachable("a directory's entry reserves no bytes".to_string()))))
    }

    fn record_disk_change(&self, _change: DiskChange) {}
}

/// One lease row, deleted when dropped.
struct SharedLease {
    database: Database,
    default_max_files: u64,
    id: i64,
    user: String,
    files: u64,
    reserved: Arc<AtomicU64>,
    /// The change last written to the row (written again only when it changes: once per part).
    recorded: Mutex<DiskChange>,
}

impl QuotaLease for SharedLease {
    fn reserved(&self) -> u64 {
        self.reserved.load(Ordering::SeqCst)
    }

    fn may_create(&self) -> bool {
        self.files == 1
    }

    fn reserve(&self, bytes: u64) -> BoxFuture<'static, Result<(), QuotaError>> {
        let (id, user, default_max_files) = (self.id, self.user.clone(), self.default_max_files as i64);
        let judged = self.database.run(move |client| async move {
            let row = cached::query_opt(
                &client,
                "SELECT o_granted, o_used, o_reserved, o_limit FROM ftp_actor_reserve($1, $2, $3, $4)",
                &[&id, &user, &(bytes as i64), &default_max_files],
            )
            .await?;
            let Some(row) = row else { return Ok(Err(not_a_user(&user))) };
            if !row.get::<_, bool>(0) {
                let (used, reserved, limit) = (row.get::<_, i64>(1), row.get::<_, i64>(2), row.get::<_, i64>(3));
                let free = (limit - used - reserved).max(0) as u64;
                return Ok(Err(QuotaError::Exceeded(QuotaExceeded { needed: bytes, free, limit: limit as u64 })));
            }
            Ok(Ok(()))
        });
        let reserved = self.reserved.clone();
        Box::pin(async move {
            judged.await.map_err(unreachable)??;
            reserved.store(bytes, Ordering::SeqCst);
            Ok(())
        })
    }

    /// Writes what the holder has added to `home_usage` so far, after it was added (the disk
    /// job's change is committed by then). Blocking: called in that disk job.
    fn record_disk_change(&self, change: DiskChange) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        if *recorded == change {
            return;
        }
        let written = self.database.blocking::<_, DatabaseError, _, _>(|client| async move {
            cached::execute(
                &client,
                "UPDATE quota_leases SET grown_bytes = $2, grown_files = $3 WHERE id = $1",
                &[&self.id, &change.bytes, &change.files],
            )
            .await?;
            Ok(())
        });
        match written {
            Ok(()) => *recorded = change,
            // Counted twice until it is written: more than it holds, never less.
            Err(error) => {
                tracing::warn!(user = %self.user, %error, "cannot record an upload's progress in the quota ledger")
            }
        }
    }
}

impl Drop for SharedLease {
    fn drop(&mut self) {
        let (database, id) = (self.database.clone(), self.id);
        self.database.spawn(async move {
            // Until deleted it counts for more than its holder will write: retried for a minute,
            // and a lease of this instance left anyway ends with the instance's heartbeat.
            for attempt in 0..12 {
                let deleted = async {
                    let client = database.connection().await?;
                    cached::execute(&client, "DELETE FROM quota_leases WHERE id = $1", &[&id]).await?;
                    Ok::<(), DatabaseError>(())
                };
                match deleted.await {
                    Ok(()) => return,
                    Err(error) if attempt == 11 => tracing::warn!(%error, "cannot drop a quota lease"),
                    Err(_) => tokio::time::sleep(std::time::Duration::from_secs(5)).await,
                }
            }
        });
    }
}
