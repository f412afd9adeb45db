//! Deletes the objects no name refers to any more: files replaced or removed, uploads restarted,
//! removed or expired (their multipart uploads aborted). Each waits [`GRACE`] in
//! `orphan_objects` first, so a download that opened the object before its name changed
//! finishes reading it. Every instance sweeps; a row is taken by one (`SKIP LOCKED`) and
//! deleted only after its object is, so a sweeper killed half-way leaves the rest to the next.

use crate::state::postgres::cached;
use std::sync::{Arc, Weak};
use std::time::Duration;

use object_store::ObjectStoreExt;
use object_store::multipart::MultipartStore;
use object_store::path::Path as ObjectPath;

use super::ObjectStorage;
use crate::storage::error::StorageError;

/// How long an unreferenced object stays readable.
pub const GRACE: Duration = Duration::from_secs(600);

const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Objects one transaction deletes.
const BATCH: i64 = 100;

/// Sweeps every [`SWEEP_EVERY`] while `storage` lives.
pub fn start(storage: &Arc<ObjectStorage>) {
    let weak = Arc::downgrade(storage);
    storage.runtime.handle().spawn(async move {
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let Some(storage) = Weak::upgrade(&weak) else { return };
            match sweep(&storage, GRACE).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "unreferenced objects deleted"),
                Err(error) => tracing::warn!(%error, "cannot delete unreferenced objects; retrying later"),
            }
        }
    });
}

/// Deletes the objects unreferenced for longer than `grace`; returns how many.
pub async fn sweep(storage: &ObjectStorage, grace: Duration) -> Result<u64, StorageError> {
    let mut client = storage.database.connection().await?;
    let mut deleted = 0;
    loop {
        let transaction = client.transaction().await?;
        let rows = cached::query(
            &transaction,
            "SELECT object_key, upload_id FROM orphan_objects WHERE since < now() - make_interval(secs => $1)
                 ORDER BY since LIMIT $2 FOR UPDATE SKIP LOCKED",
            &[&grace.as_secs_f64(), &BATCH],
        )
        .await?;
        if rows.is_empty() {
            return Ok(deleted);
        }
        for row in &rows {
            let (key, upload_id): (String, String) = (row.get(0), row.get(1));
            let path = ObjectPath::from(key.as_str());
            let gone = if upload_id.is_empty() {
                storage.bucket.delete(&path).await
            } else {
                storage.bucket.abort_multipart(&path, &upload_id).await
            };
            match gone {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(error) => return Err(error.into()),
            }
            cached::execute(&transaction, "DELETE FROM orphan_objects WHERE object_key = $1", &[&key]).await?;
            deleted += 1;
        }
        transaction.commit().await?;
    }
}
