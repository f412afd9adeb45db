//! One user's files in object storage, as the file service uses them: the storage seam's
//! [`FileStore`] over the rows of [`super::namespace`] and the objects they name.

use crate::state::postgres::cached;
use std::sync::Arc;
use std::time::SystemTime;

use crate::integrity::{Digest, Md5};
use crate::net::{Entry, EntryKind};
use crate::quota::DiskChange;
use crate::storage::error::StorageError;
use crate::storage::hashing::Md5Digest;
use crate::storage::jail::VirtualPath;
use crate::storage::list_page::{Listing, PageRequest};
use crate::storage::local_store::{PartialFound, RemovedFile};
use crate::storage::partial::{PublishFailed, PublishedUpload};
use crate::storage::store::{DownloadSession, FileStore, UploadSession};
use crate::storage::stream_start::StreamStart;

use super::ObjectStorage;
use super::download::ObjectDownload;
use super::instance::free_for_me;
use super::namespace::{self, EntryRow, Lock, stored, unix_now};
use super::upload::ObjectUpload;

/// The files under one home (the user's home as set, a name in the rows), as one user sees them.
#[derive(Debug, Clone)]
pub struct ObjectHome {
    storage: Arc<ObjectStorage>,
    home: String,
    /// Whose `max_files` a new directory is judged against.
    user: String,
}

/// `dir` as the start of the paths inside it: `/` for the home, `/a/` for `/a`.
fn inside(dir: &VirtualPath) -> String {
    if dir.is_root() { "/".to_string() } else { format!("{dir}/") }
}

fn name_of(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// The files and directories directly in `dir` from the path `from` on (at most `limit`),
/// ordered by name (bytewise: the column's collation is C).
async fn entries_in(
    client: &deadpool_postgres::Object,
    home: &str,
    dir: &VirtualPath,
    from: &str,
    limit: i64,
) -> Result<Vec<Entry>, StorageError> {
    let rows = cached::query(
        client,
        "SELECT path, is_dir, size, modified FROM entries
             WHERE home = $1 AND parent = $2 AND path >= $3 ORDER BY path LIMIT $4",
        &[&home, &stored(dir), &from, &limit],
    )
    .await?;
    let entry = |row: &tokio_postgres::Row| {
        let kind = if row.get(1) { EntryKind::Dir } else { EntryKind::File };
        Entry { name: name_of(row.get(0)), kind, size: row.get::<_, i64>(2) as u64, modified: row.get(3) }
    };
    Ok(rows.iter().map(entry).collect())
}

/// The interrupted uploads directly in `dir` to the path `from` or later (at most `limit`),
/// listed as partial files.
async fn partials_in(
    client: &deadpool_postgres::Object,
    home: &str,
    dir: &VirtualPath,
    from: &str,
    limit: i64,
) -> Result<Vec<Entry>, StorageError> {
    let rows = cached::query(
        client,
        "SELECT target, durable, extract(epoch FROM written)::bigint FROM uploads
             WHERE home = $1 AND starts_with(target, $2) AND strpos(substr(target, length($2) + 1), '/') = 0
               AND target >= $3 ORDER BY target LIMIT $4",
        &[&home, &inside(dir), &from, &limit],
    )
    .await?;
    let partial = |row: &tokio_postgres::Row| Entry {
        name: name_of(row.get(0)),
        kind: EntryKind::Partial,
        size: row.get::<_, i64>(1) as u64,
        modified: row.get(2),
    };
    Ok(rows.iter().map(partial).collect())
}

impl ObjectHome {
    pub fn new(storage: Arc<ObjectStorage>, home: String, user: String) -> ObjectHome {
        ObjectHome { storage, home, user }
    }

    /// Runs `work` with a pooled connection, waiting on this thread.
    fn db<T, W, F>(&self, work: W) -> Result<T, StorageError>
    where
        W: FnOnce(deadpool_postgres::Object, String) -> F,
        F: std::future::Future<Output = Result<T, StorageError>>,
    {
        let home = self.home.clone();
        self.storage.db(|client| work(client, home))
    }

    fn row(&self, path: &VirtualPath) -> Result<Option<EntryRow>, StorageError> {
        self.db(|client, home| async move { namespace::entry(&client, &home, path, Lock::None).await })
    }

    fn file_row(&self, path: &VirtualPath) -> Result<EntryRow, StorageError> {
        match self.row(path)? {
            None => Err(StorageError::NotFound),
            Some(row) if row.is_dir => Err(StorageError::IsADirectory),
            Some(row) => Ok(row),
        }
    }

    /// The interrupted or open uploads whose target is directly in `dir` (or is `dir`'s
    /// path itself, with `exact`).
    /// The MD5 of the first `len` bytes of object `key`, read back from the bucket.
    fn hash_object(&self, key: Option<String>, len: u64) -> Result<Md5, StorageError> {
        let mut download = ObjectDownload::new(self.storage.clone(), key, len, 0, 0);
        let mut hasher = Md5::new();
        let mut chunk = Vec::new();
        while !download.is_done() {
            download.read_chunk_into(&mut chunk, super::PART_SIZE as usize)?;
            hasher.update(&chunk);
        }
        Ok(hasher)
    }

    fn upload_row(&self, target: &VirtualPath) -> Result<Option<(u64, i64)>, StorageError> {
        self.db(|client, home| async move {
            let row = cached::query_opt(
                &client,
                "SELECT durable, extract(epoch FROM written)::bigint FROM uploads WHERE home = $1 AND target = $2",
                &[&home, &stored(target)],
            )
            .await?;
            Ok(row.map(|row| (row.get::<_, i64>(0) as u64, row.get(1))))
        })
    }
}

impl FileStore for ObjectHome {
    type Upload = ObjectUpload;
    type Download = ObjectDownload;

    fn check_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Ok(());
        }
        match self.row(path)? {
            None => Err(StorageError::NotFound),
            Some(row) if !row.is_dir => Err(StorageError::NotADirectory),
            Some(_) => Ok(()),
        }
    }

    /// Facts come with the names from the database: the request's detail changes nothing.
    fn list(&self, path: &VirtualPath, request: &PageRequest) -> Result<Listing, StorageError> {
        let one = |entry: Entry| Ok(request.of_one(entry));
        if !path.is_root() {
            let shown = path.file_name().unwrap_or("/").to_string();
            match self.row(path)? {
                Some(row) if !row.is_dir => return one(row.entry(shown)),
                Some(_) => {}
                None => {
                    return match self.upload_row(path)? {
                        Some((bytes, written)) => {
                            one(Entry { name: shown, kind: EntryKind::Partial, size: bytes, modified: written })
                        }
                        None => Err(StorageError::NotFound),
                    };
                }
            }
        }
        // Each query starts at the name of `after` (whose own row it may give back, dropped
        // below) and gives one more than a page, to tell whether more follow.
        let limit = request.max as i64 + 2;
        let from = format!("{}{}", inside(path), request.after.as_ref().map_or("", |after| after.name.as_str()));
        // Both queries in one round trip: tokio-postgres pipelines queries awaited together.
        let entries = self.db(|client, home| async move {
            let (mut entries, partials) = futures::try_join!(
                entries_in(&client, &home, path, &from, limit),
                partials_in(&client, &home, path, &from, limit)
            )?;
            entries.extend(partials);
            Ok(entries)
        })?;
        Ok(request.cut(entries))
    }

    fn stat(&self, path: &VirtualPath) -> Result<Entry, StorageError> {
        if path.is_root() {
            return Ok(Entry { name: "/".to_string(), kind: EntryKind::Dir, size: 0, modified: 0 });
        }
        let row = self.row(path)?.ok_or(StorageError::NotFound)?;
        Ok(row.entry(path.file_name().unwrap_or("/").to_string()))
    }

    fn resume_len(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        match self.row(path)? {
            Some(row) if row.is_dir => Err(StorageError::IsADirectory),
            Some(row) => Ok(row.size),
            None => self.upload_row(path)?.map(|(bytes, _)| bytes).ok_or(StorageError::NotFound),
        }
    }

    /// One round trip (function `ftp_actor_make_dir`, migration 5): the directory is made and
    /// judged against the user's `max_files` in one transaction, every instance's entries and
    /// live reservations counted under the lock on the home's figures, so the file service opens
    /// no lease for it (`SharedLedger::open_entry`). The parent's row is share-locked inside it
    /// (a directory being removed or renamed meanwhile is waited for, and then nothing is
    /// made). Only when nothing was made for want of a parent or a name is it asked why.
    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        let (user, default_max_files) = (self.user.clone(), self.storage.default_max_files as i64);
        let modified = unix_now();
        self.db(|client, home| async move {
            let row = cached::query_one(
                &client,
                "SELECT o_made, o_max_files FROM ftp_actor_make_dir($1, $2, $3, $4, $5, $6)",
                &[&user, &home, &stored(path), &stored(&path.parent()), &modified, &default_max_files],
            )
            .await?;
            let (made, max_files): (bool, Option<i64>) = (row.get(0), row.get(1));
            if made {
                return Ok(());
            }
            if max_files.is_some() {
                return Err(StorageError::TooManyFiles);
            }
            namespace::hold_dir(&client, &home, &path.parent()).await?;
            Err(StorageError::AlreadyExists)
        })
    }

    /// One round trip (function `ftp_actor_remove_file`, migration 6): the row locked, deleted,
    /// its object queued for the sweeper, and whether a partial of the same name remains, in one
    /// transaction.
    fn remove_file(&self, path: &VirtualPath) -> Result<RemovedFile, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        self.db(|client, home| async move {
            let row = cached::query_one(
                &client,
                "SELECT o_status, o_freed, o_partial_remains FROM ftp_actor_remove_file($1, $2)",
                &[&home, &stored(path)],
            )
            .await?;
            match namespace::refusal(row.get(0)) {
                Some(refused) => Err(refused),
                None => Ok(RemovedFile { freed: row.get::<_, i64>(1) as u64, partial_remains: row.get(2) }),
            }
        })
    }

    fn remove_partial(&self, target: &VirtualPath, unchanged_since: Option<SystemTime>) -> Result<u64, StorageError> {
        let me = self.storage.instance.id().to_string();
        self.db(|mut client, home| async move {
            let transaction = client.transaction().await?;
            let query = format!(
                "SELECT object_key, upload_id, durable, written, {}
                 FROM uploads WHERE home = $1 AND target = $2 FOR UPDATE",
                free_for_me()
            );
            let row = cached::query_opt(&transaction, &query, &[&home, &stored(target), &me])
                .await?
                .ok_or(StorageError::NotFound)?;
            let (key, upload_id, durable, written, free): (String, String, i64, SystemTime, bool) =
                (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
            if !free {
                return Err(StorageError::HeldElsewhere);
            }
            if unchanged_since.is_some_and(|since| written > since) {
                return Err(StorageError::RecentlyWritten);
            }
            cached::execute(
                &transaction,
                "DELETE FROM uploads WHERE home = $1 AND target = $2",
                &[&home, &stored(target)],
            )
            .await?;
            namespace::orphan(&transaction, &key, &upload_id).await?;
            transaction.commit().await?;
            Ok(durable as u64)
        })
    }

    fn partials(&self) -> Result<Vec<PartialFound>, StorageError> {
        self.db(|client, home| async move {
            let rows = cached::query(&client, "SELECT target, durable, written FROM uploads WHERE home = $1", &[&home])
                .await?;
            Ok(rows
                .iter()
                .map(|row| PartialFound {
                    target: VirtualPath::from_stored(row.get(0)),
                    bytes: row.get::<_, i64>(1) as u64,
                    modified: row.get(2),
                })
                .collect())
        })
    }

    /// One round trip (function `ftp_actor_remove_dir`, migration 6). Uploads inside count in
    /// the quota, as partial files do on a local disk: a directory holding one is not empty.
    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::HomeItself);
        }
        self.db(|client, home| async move {
            let row = cached::query_one(
                &client,
                "SELECT o_status FROM ftp_actor_remove_dir($1, $2, $3)",
                &[&home, &stored(path), &inside(path)],
            )
            .await?;
            namespace::refusal(row.get(0)).map_or(Ok(()), Err)
        })
    }

    /// One transaction, however many entries a directory holds, in one round trip (function
    /// `ftp_actor_rename`, migration 6); never replaces what is at `to` (two renames racing
    /// onto one name: the second finds it taken).
    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::HomeItself);
        }
        let (same, into_itself) = (from == to, to.starts_with(from));
        self.db(|client, home| async move {
            let row = cached::query_one(
                &client,
                "SELECT o_status FROM ftp_actor_rename($1, $2, $3, $4, $5, $6)",
                &[&home, &stored(from), &stored(to), &stored(&to.parent()), &same, &into_itself],
            )
            .await?;
            namespace::refusal(row.get(0)).map_or(Ok(()), Err)
        })
    }

    fn set_modified(&self, path: &VirtualPath, unix: i64) -> Result<(), StorageError> {
        if path.is_root() {
            return Ok(());
        }
        let changed = self.db(|client, home| async move {
            Ok(cached::execute(
                &client,
                "UPDATE entries SET modified = $3 WHERE home = $1 AND path = $2",
                &[&home, &stored(path), &unix],
            )
            .await?)
        })?;
        if changed == 0 { Err(StorageError::NotFound) } else { Ok(()) }
    }

    fn open_sized_upload(
        &self,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(ObjectUpload, Md5), StorageError> {
        let (mut upload, _) = ObjectUpload::open(&self.storage, &self.home, target, size, may_create)?;
        if upload.offset() > size {
            upload.restart()?;
        }
        let md5 = upload.md5_so_far();
        Ok((upload, md5))
    }

    /// Never: the MD5 state of the durable bytes is in the upload's row.
    fn would_hash(&self, _target: &VirtualPath) -> bool {
        false
    }

    /// Nothing to keep: the upload recorded its state with its last durable part.
    fn remember_upload_state(&self, _upload: &ObjectUpload, _hasher: &Md5) {}

    fn open_stream_upload(
        &self,
        target: &VirtualPath,
        may_create: bool,
    ) -> Result<(ObjectUpload, Option<u64>), StorageError> {
        let (upload, existing) = ObjectUpload::open(&self.storage, &self.home, target, u64::MAX, may_create)?;
        Ok((upload, existing.map(|row| row.size)))
    }

    fn continue_upload(&self, upload: &mut ObjectUpload, start: &StreamStart) -> Result<(), StorageError> {
        match *start {
            StreamStart::Partial(len) if len == upload.offset() => Ok(()),
            StreamStart::Partial(0) => upload.restart(),
            // Parts cannot be cut: only the durable end, or the start, is a place to continue.
            StreamStart::Partial(len) => {
                Err(StorageError::RestartBeyondEnd { offset: len, available: upload.offset() })
            }
            StreamStart::Target(len) => {
                let published = self.file_row(&upload.target().clone())?;
                if published.size < len {
                    return Err(StorageError::ChangedDuringTransfer);
                }
                upload.copy_prefix(published.object_key.as_deref(), len)
            }
        }
    }

    fn abandon_upload(&self, upload: &mut ObjectUpload) {
        upload.abandon()
    }

    fn publish_checked(
        &self,
        upload: ObjectUpload,
        _md5: Md5Digest,
        sender_md5: &[u8],
    ) -> Result<PublishedUpload, PublishFailed> {
        upload.publish(Some(sender_md5))
    }

    fn publish_as_is(&self, upload: ObjectUpload) -> Result<DiskChange, PublishFailed> {
        upload.publish(None).map(|published| published.change)
    }

    fn open_download(
        &self,
        path: &VirtualPath,
        offset: u64,
        prefix_md5: &[u8],
    ) -> Result<(ObjectDownload, Md5), StorageError> {
        let row = self.file_row(path)?;
        if offset > 0 && offset <= row.size {
            // The receiver's prefix is checked against the object's: read back and hashed.
            let hasher = self.hash_object(row.object_key.clone(), offset)?;
            if hasher.clone().finalize()[..] == *prefix_md5 {
                let mut download = ObjectDownload::of(self.storage.clone(), &row, offset);
                download.prefix_hashed = offset;
                return Ok((download, hasher));
            }
        }
        Ok((ObjectDownload::of(self.storage.clone(), &row, 0), Md5::new()))
    }

    fn open_download_at(&self, path: &VirtualPath, offset: u64) -> Result<ObjectDownload, StorageError> {
        let row = self.file_row(path)?;
        if offset > row.size {
            return Err(StorageError::RestartBeyondEnd { offset, available: row.size });
        }
        Ok(ObjectDownload::of(self.storage.clone(), &row, offset))
    }

    /// The digest is stored with every file, so the bytes are sent unhashed; the receiver
    /// checks them against it.
    fn send_download(
        &self,
        mut download: ObjectDownload,
        mut hasher: Md5,
        max: usize,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<Md5Digest>, StorageError> {
        let stored = download.stored_md5;
        while !download.is_done() {
            let mut chunk = Vec::with_capacity(max);
            download.read_chunk_into(&mut chunk, max)?;
            if stored.is_none() {
                hasher.update(&chunk);
            }
            if !send(chunk) {
                return Ok(None);
            }
        }
        Ok(Some(stored.unwrap_or_else(|| hasher.finalize().into())))
    }

    fn file_md5(
        &self,
        path: &VirtualPath,
        may_hash: impl FnOnce() -> bool,
    ) -> Result<Option<(Md5Digest, u64, u64)>, StorageError> {
        let row = self.file_row(path)?;
        if let Some(md5) = row.md5 {
            return Ok(Some((md5, row.size, 0)));
        }
        if !may_hash() {
            return Ok(None);
        }
        let hasher = self.hash_object(row.object_key, row.size)?;
        Ok(Some((hasher.finalize().into(), row.size, row.size)))
    }
}
