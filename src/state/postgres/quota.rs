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
//! transaction: every reservation for one home is then judged one at a time against every
//! other lease and byte, on whichever instance, and `used + reserved <= limit` holds as in one
//! process (tests/cluster_quota.rs).

use crate::state::postgres::cached;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::actors::quota::QuotaError;
use crate::quota::{DiskChange, QuotaExceeded, TooManyFiles, Usage};
use crate::state::quota::{QuotaLease, QuotaLedger};
use crate::storage::objects::Instance;
use crate::storage::objects::instance::alive;

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

/// A user's figures as one reservation sees them.
struct Figures {
    usage: Usage,
}

impl SharedLedger {
    pub fn new(database: Database, instance: Instance, data_dir: PathBuf, default_max_files: u64) -> SharedLedger {
        SharedLedger { database, instance, data_dir, default_max_files }
    }

    /// The path a lease locks, the same on every instance (see `storage::objects::home_key`).
    fn lock_name(&self, path: &Path) -> String {
        crate::storage::objects::home_key(&self.data_dir, path)
    }

    fn open(
        &self,
        user: String,
        path: Option<PathBuf>,
        entry_only: bool,
    ) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        let ledger = self.clone();
        let path = path.map(|path| self.lock_name(&path));
        let opened = self.database.run(move |mut client| async move {
            let transaction = client.transaction().await?;
            let figures = measure(&transaction, &user, ledger.default_max_files, None).await?;
            let Some(figures) = figures else { return Ok(Err(not_a_user(&user))) };
            let usage = figures.usage;
            let room = usage.files + usage.files_reserved < usage.max_files;
            if entry_only && !room {
                let refused = TooManyFiles { files: usage.files + usage.files_reserved, max_files: usage.max_files };
                return Ok(Err(QuotaError::TooManyFiles(refused)));
            }
            let files = room as i32;
            let id: Option<i64> = cached::query_opt(
                &transaction,
                "INSERT INTO quota_leases (name, instance, path, files) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name, path) DO NOTHING RETURNING id",
                &[&user, &ledger.instance.id(), &path, &files],
            )
            .await?
            .map(|row| row.get(0));
            let Some(id) = id else { return Ok(Err(QuotaError::InUse)) };
            transaction.commit().await?;
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
}

/// Takes the lock on `user`'s home row, drops the leases of instances that stopped, and reads
/// the figures (every live lease counted but `except`); `None` if `user` is not a user.
async fn measure(
    transaction: &deadpool_postgres::Transaction<'_>,
    user: &str,
    default_max_files: u64,
    except: Option<i64>,
) -> Result<Option<Figures>, DatabaseError> {
    cached::execute(
        transaction,
        "INSERT INTO home_usage (home) SELECT home FROM users WHERE name = $1 ON CONFLICT (home) DO NOTHING",
        &[&user],
    )
    .await?;
    let locked = cached::query_opt(
        transaction,
        "SELECT h.bytes, h.files, u.quota, coalesce(u.max_files, $2) FROM home_usage h JOIN users u ON u.home = h.home
             WHERE u.name = $1 FOR UPDATE OF h",
        &[&user, &(default_max_files as i64)],
    )
    .await?;
    let Some(row) = locked else { return Ok(None) };
    let (bytes, files, limit, max_files): (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let dead = format!("DELETE FROM quota_leases WHERE name = $1 AND NOT {}", alive("quota_leases.instance"));
    cached::execute(transaction, &dead, &[&user]).await?;
    let held = cached::query_one(
        transaction,
        "SELECT coalesce(sum(greatest(0, bytes - grown_bytes)), 0)::bigint,
                    coalesce(sum(greatest(0, files - grown_files)), 0)::bigint
             FROM quota_leases WHERE name = $1 AND id <> $2",
        &[&user, &except.unwrap_or(0)],
    )
    .await?;
    let (reserved, files_reserved): (i64, i64) = (held.get(0), held.get(1));
    Ok(Some(Figures {
        usage: Usage {
            used: bytes.max(0) as u64,
            reserved: reserved as u64,
            limit: limit as u64,
            files: files.max(0) as u64,
            files_reserved: files_reserved as u64,
            max_files: max_files as u64,
        },
    }))
}

fn not_a_user(user: &str) -> QuotaError {
    QuotaError::Unreachable(format!("{user} is not a user in the database"))
}

fn unreachable(error: DatabaseError) -> QuotaError {
    QuotaError::Unreachable(error.to_string())
}

impl QuotaLedger for SharedLedger {
    fn open_upload(&self, user: String, path: PathBuf) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        self.open(user, Some(path), false)
    }

    fn open_entry(&self, user: String) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        self.open(user, None, true)
    }

    /// Nothing to do: removals change `home_usage` in their own transactions.
    fn adjust(&self, _user: String, _change: DiskChange, _number: u64) {}

    fn usage(&self, user: String) -> BoxFuture<'static, Result<Usage, QuotaError>> {
        let default_max_files = self.default_max_files;
        let read = self.database.run(move |mut client| async move {
            let transaction = client.transaction().await?;
            let figures = measure(&transaction, &user, default_max_files, None).await?;
            transaction.commit().await?;
            Ok(figures.map(|figures| figures.usage).ok_or_else(|| not_a_user(&user)))
        });
        Box::pin(async move { read.await.map_err(unreachable)? })
    }
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
        let (id, user, default_max_files) = (self.id, self.user.clone(), self.default_max_files);
        let judged = self.database.run(move |mut client| async move {
            let transaction = client.transaction().await?;
            let Some(figures) = measure(&transaction, &user, default_max_files, Some(id)).await? else {
                return Ok(Err(not_a_user(&user)));
            };
            let row =
                cached::query_one(&transaction, "SELECT bytes, grown_bytes FROM quota_leases WHERE id = $1", &[&id])
                    .await?;
            let (held, grown): (i64, i64) = (row.get(0), row.get(1));
            let usage = figures.usage;
            // What this lease would count for, next to everything else.
            let counted = (bytes as i64 - grown).max(0) as u64;
            if bytes as i64 > held && usage.used + usage.reserved + counted > usage.limit {
                let free = usage.limit.saturating_sub(usage.used + usage.reserved);
                return Ok(Err(QuotaError::Exceeded(QuotaExceeded { needed: bytes, free, limit: usage.limit })));
            }
            cached::execute(&transaction, "UPDATE quota_leases SET bytes = $2 WHERE id = $1", &[&id, &(bytes as i64)])
                .await?;
            transaction.commit().await?;
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
