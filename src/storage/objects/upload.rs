//! An upload into object storage: one multipart upload per target, its row in `uploads` saying
//! which instance writes it, the ETags of its parts, and the MD5 state after the last of them.
//!
//! Bytes are gathered into parts of [`PART_SIZE`], and up to [`PARTS_IN_FLIGHT`] parts are sent
//! at once while the next is gathered: one part at a time left the link to the object store idle
//! during each part's round trips, and the upload at about half of what rclone (four parts at
//! once) reaches on the same Garage. Each part, once the object store has it and every part
//! before it is recorded, is recorded with the MD5 state of everything up to its end, in one
//! statement. That is the durable prefix: an upload interrupted anywhere (a dropped connection, a killed instance)
//! resumes on any instance after it, without reading a byte back (the parts of an open
//! multipart upload cannot be read anyway), and only the bytes after the last whole part are
//! sent again. The MD5 kept is our own, of the bytes as received: a multipart ETag is not the
//! file's MD5. It is the only MD5 of the upload: the session takes it from here
//! ([`UploadSession::own_md5`]) instead of hashing the bytes a second time.
//!
//! A file that ends within its first part (most small files) is one PUT at publishing: the
//! multipart upload is created with the first part sent, not before, which saves a small file
//! two of its three requests.
//!
//! Publishing completes the multipart upload (one object under a generated key, never visible
//! under a name before) and then, in one transaction, replaces the name's row and drops the
//! upload's; the object the name held before is left to the sweeper.

use crate::state::postgres::cached;
use deadpool_postgres::GenericClient;
use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;

use crate::integrity::{Digest, Md5, state_from_bytes, state_to_bytes};
use crate::quota::DiskChange;
use crate::storage::Md5Digest;
use crate::storage::error::StorageError;
use crate::storage::jail::VirtualPath;
use crate::storage::partial::{PublishFailed, PublishedUpload};
use crate::storage::store::UploadSession;

use super::instance::free_for_me;
use super::namespace::{self, EntryRow, Lock, stored, unix_now};
use super::{ObjectStorage, PART_SIZE};

/// Parts sent and not yet acknowledged, at most, per upload: with the part being gathered, an
/// upload holds up to 4 parts (32 MiB) in memory. Three in flight kept the link to a loopback
/// Garage busy (docs/BENCHMARKS.md, "The cluster mode").
pub const PARTS_IN_FLIGHT: usize = 3;

/// A part on its way to the object store.
struct SentPart {
    request: tokio::task::JoinHandle<object_store::Result<PartId>>,
    /// MD5 state of the upload's bytes up to the end of this part, and that end.
    md5_after: Md5,
    end: u64,
}

/// An upload between its opening and its publishing.
pub struct ObjectUpload {
    storage: Arc<ObjectStorage>,
    home: String,
    target: VirtualPath,
    key: ObjectPath,
    upload_id: String,
    size: u64,
    /// Bytes in parts the object store has (and the database records).
    durable: u64,
    part_etags: Vec<String>,
    /// Parts after the durable ones, sent and not yet recorded, oldest first.
    in_flight: VecDeque<SentPart>,
    /// Bytes in parts, durable or in flight.
    sent: u64,
    /// MD5 of those bytes.
    sent_md5: Md5,
    /// Bytes after the ones sent, not a whole part yet.
    buffer: Vec<u8>,
    start_len: u64,
    replaced_len: u64,
    /// Whether the upload's row was there when it was opened, and whether it is there now:
    /// entries count in `max_files`, as a partial file does on a local disk.
    row_existed: bool,
    row_exists: bool,
}

impl std::fmt::Debug for ObjectUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectUpload")
            .field("home", &self.home)
            .field("target", &self.target)
            .field("key", &self.key)
            .field("durable", &self.durable)
            .finish()
    }
}

/// What a claimed row held.
struct Claimed {
    key: String,
    upload_id: String,
    durable: u64,
    md5_state: Option<Vec<u8>>,
    part_etags: Vec<String>,
}

impl ObjectUpload {
    /// Takes (or creates, if `may_create`) the upload row of `target` for this instance and
    /// opens its multipart upload; `size` is the announced size (`u64::MAX` for a stream).
    /// Returns the upload, at its durable offset, and what is published under `target`.
    pub fn open(
        storage: &Arc<ObjectStorage>,
        home: &str,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(ObjectUpload, Option<namespace::EntryRow>), StorageError> {
        if target.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let me = storage.instance.id().to_string();
        let new_key = storage.new_key().to_string();
        let (existing, claimed, created) = storage.db(|client| async move {
            namespace::hold_dir(&client, home, &target.parent()).await?;
            let existing = namespace::entry(&client, home, target, Lock::None).await?;
            if existing.as_ref().is_some_and(|row| row.is_dir) {
                return Err(StorageError::IsADirectory);
            }
            let (claimed, created) = claim(&client, home, target, &me, &new_key, may_create).await?;
            Ok::<_, StorageError>((existing, claimed, created))
        })?;
        let mut upload = ObjectUpload {
            storage: storage.clone(),
            home: home.to_string(),
            target: target.clone(),
            key: ObjectPath::from(claimed.key),
            upload_id: claimed.upload_id,
            size,
            durable: claimed.durable,
            part_etags: claimed.part_etags,
            in_flight: VecDeque::new(),
            sent: claimed.durable,
            sent_md5: Md5::new(),
            buffer: Vec::new(),
            start_len: claimed.durable,
            replaced_len: existing.as_ref().map_or(0, |row| row.size),
            row_existed: !created,
            row_exists: true,
        };
        match claimed.md5_state.as_deref().map(state_from_bytes) {
            Some(Some(state)) => upload.sent_md5 = state,
            // A row whose state is missing or unreadable cannot be continued: start over.
            _ if upload.durable > 0 => upload.restart()?,
            _ => {}
        }
        Ok((upload, existing))
    }

    /// The path it will be published under.
    pub fn target(&self) -> &VirtualPath {
        &self.target
    }

    /// The MD5 of every byte the upload holds, for the caller to continue.
    pub fn md5_so_far(&self) -> Md5 {
        let mut hasher = self.sent_md5.clone();
        hasher.update(&self.buffer);
        hasher
    }

    fn start_multipart(&mut self) -> Result<(), StorageError> {
        let id = self.storage.runtime.block_on(self.storage.bucket.create_multipart(&self.key))?;
        let (home, target, key, me) =
            (&self.home, stored(&self.target), self.key.to_string(), self.storage.instance.id());
        let new_id = &id;
        let updated = self.storage.db(|client| async move {
            Ok(cached::execute(
                &client,
                "UPDATE uploads SET upload_id = $4, object_key = $3 WHERE home = $1 AND target = $2 AND holder = $5",
                &[home, &target, &key, new_id, &me],
            )
            .await?)
        })?;
        if updated == 0 {
            return Err(StorageError::HeldElsewhere);
        }
        self.upload_id = id;
        Ok(())
    }

    /// Sends the first [`PART_SIZE`] bytes of the buffer (or all of it, for the last part) as
    /// the next part, without waiting for it unless [`PARTS_IN_FLIGHT`] are on their way.
    fn flush_part(&mut self, last: bool) -> Result<(), StorageError> {
        if self.upload_id.is_empty() {
            self.start_multipart()?;
        }
        let len = if last { self.buffer.len() } else { PART_SIZE as usize };
        let rest = self.buffer.split_off(len);
        let part = Bytes::from(std::mem::replace(&mut self.buffer, rest));
        self.sent_md5.update(&part);
        self.sent += part.len() as u64;
        let index = self.part_etags.len() + self.in_flight.len();
        let (storage, key, id) = (self.storage.clone(), self.key.clone(), self.upload_id.clone());
        let request = self
            .storage
            .runtime
            .handle()
            .spawn(async move { storage.bucket.put_part(&key, &id, index, part.into()).await });
        self.in_flight.push_back(SentPart { request, md5_after: self.sent_md5.clone(), end: self.sent });
        while self.in_flight.len() > PARTS_IN_FLIGHT {
            self.record_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest part in flight and records it: the durable prefix grows by it. If
    /// it failed, the parts after it are dropped too (a resume sends them again, under the same
    /// part numbers).
    fn record_oldest(&mut self) -> Result<(), StorageError> {
        let Some(SentPart { request, md5_after, end }) = self.in_flight.pop_front() else { return Ok(()) };
        let sent = match self.storage.runtime.block_on(request) {
            Ok(Ok(PartId { content_id })) => self.record_part(content_id, &md5_after, end),
            Ok(Err(error)) => Err(error.into()),
            Err(lost) => Err(StorageError::Remote(format!("a part's request was lost: {lost}"))),
        };
        if sent.is_err() {
            self.drop_in_flight();
        }
        sent
    }

    /// Records the parts at the front that the object store has acknowledged, without
    /// waiting: the durable prefix grows as soon as it can, not only when the window is full
    /// (an instance killed then loses only the parts really in flight).
    fn record_acknowledged(&mut self) -> Result<(), StorageError> {
        while self.in_flight.front().is_some_and(|part| part.request.is_finished()) {
            self.record_oldest()?;
        }
        Ok(())
    }

    /// Waits for every part in flight, recording them in order.
    fn record_all(&mut self) -> Result<(), StorageError> {
        while !self.in_flight.is_empty() {
            self.record_oldest()?;
        }
        Ok(())
    }

    /// Forgets the parts in flight (their requests are cancelled): the upload's bytes end at
    /// its durable prefix, as a resume will find them.
    fn drop_in_flight(&mut self) {
        for part in self.in_flight.drain(..) {
            part.request.abort();
        }
        self.sent = self.durable;
        self.buffer.clear();
    }

    fn record_part(&mut self, etag: String, md5_after: &Md5, end: u64) -> Result<(), StorageError> {
        let (home, target, me, id) = (&self.home, stored(&self.target), self.storage.instance.id(), &self.upload_id);
        let (state, length, tag) = (state_to_bytes(md5_after), end as i64, &etag);
        let updated = self.storage.db(|client| async move {
            Ok(cached::execute(
                &client,
                "UPDATE uploads SET durable = $4, md5_state = $5, part_etags = array_append(part_etags, $6),
                            written = now()
                     WHERE home = $1 AND target = $2 AND upload_id = $3 AND holder = $7",
                &[home, &target, id, &length, &state, tag, &me],
            )
            .await?)
        })?;
        if updated == 0 {
            return Err(StorageError::HeldElsewhere);
        }
        self.part_etags.push(etag);
        self.durable = end;
        Ok(())
    }

    /// Gives up: bytes after the last whole part are dropped (a resume sends them again); an
    /// upload with no durable byte is removed, one with some is released for a resume here or
    /// on another instance.
    pub fn abandon(&mut self) {
        self.buffer = Vec::new();
        // What reached the object store is kept, up to the first part that did not.
        if self.record_all().is_err() {
            self.drop_in_flight();
        }
        if !self.row_exists {
            return;
        }
        let result = if self.durable == 0 { self.remove() } else { self.release() };
        if let Err(error) = result {
            tracing::warn!(home = %self.home, path = %self.target, %error, "cannot set an interrupted upload aside");
        }
    }

    fn release(&self) -> Result<(), StorageError> {
        let (home, target, me) = (&self.home, stored(&self.target), self.storage.instance.id());
        self.storage.db(|client| async move {
            cached::execute(
                &client,
                "UPDATE uploads SET holder = NULL WHERE home = $1 AND target = $2 AND holder = $3",
                &[home, &target, &me],
            )
            .await?;
            Ok(())
        })
    }

    /// Drops the upload's row and leaves its multipart upload to the sweeper.
    fn remove(&mut self) -> Result<(), StorageError> {
        let (home, target, me) = (&self.home, stored(&self.target), self.storage.instance.id());
        let (key, id) = (self.key.to_string(), &self.upload_id);
        self.storage.db(|mut client| async move {
            let transaction = client.transaction().await?;
            let removed = cached::execute(
                &transaction,
                "DELETE FROM uploads WHERE home = $1 AND target = $2 AND holder = $3",
                &[home, &target, &me],
            )
            .await?;
            if removed > 0 {
                namespace::orphan(&transaction, &key, id).await?;
            }
            transaction.commit().await?;
            Ok::<_, StorageError>(())
        })?;
        self.row_exists = false;
        Ok(())
    }

    /// Publishes the upload under its name if `sender_md5` (when given) matches the MD5 of
    /// its bytes; returns that MD5 and what the upload changed in the user's figures.
    pub fn publish(mut self, sender_md5: Option<&[u8]>) -> Result<PublishedUpload, PublishFailed> {
        match self.try_publish(sender_md5) {
            Ok(published) => Ok(published),
            Err(error) => {
                if matches!(error, StorageError::ChecksumMismatch { .. }) {
                    // Its bytes are wrong somewhere: resuming it would only fail again.
                    let _ = self.remove();
                }
                Err(PublishFailed { error, change: self.disk_change() })
            }
        }
    }

    fn try_publish(&mut self, sender_md5: Option<&[u8]>) -> Result<PublishedUpload, StorageError> {
        if self.size == u64::MAX {
            // A stream ended cleanly: what it holds is the whole file.
            self.size = self.offset();
        }
        if self.offset() != self.size {
            return Err(StorageError::Incomplete { received: self.offset(), expected: self.size });
        }
        let md5: Md5Digest = self.md5_so_far().finalize().into();
        if let Some(sender) = sender_md5
            && md5[..] != *sender
        {
            return Err(StorageError::ChecksumMismatch { expected: hex::encode(sender), actual: hex::encode(md5) });
        }
        let object = if self.size == 0 {
            None
        } else if self.upload_id.is_empty() {
            // The whole file is in the buffer: one PUT, no multipart upload.
            let whole = Bytes::from(std::mem::take(&mut self.buffer));
            self.storage.runtime.block_on(self.storage.bucket.put(&self.key, whole.into()))?;
            Some(self.key.to_string())
        } else {
            if !self.buffer.is_empty() {
                self.flush_part(true)?;
            }
            self.record_all()?;
            let parts = self.part_etags.iter().map(|etag| PartId { content_id: etag.clone() }).collect();
            let complete = self.storage.bucket.complete_multipart(&self.key, &self.upload_id, parts);
            self.storage.runtime.block_on(complete)?;
            Some(self.key.to_string())
        };
        let (home, target, me, id) = (&self.home, &self.target, self.storage.instance.id(), &self.upload_id);
        let (size, modified, key) = (self.size as i64, unix_now(), self.key.to_string());
        let replaced = self.storage.db(|mut client| async move {
            let transaction = client.transaction().await?;
            namespace::hold_dir(&transaction, home, &target.parent()).await?;
            // The name first (its row, locked or new), then the home's figures through the
            // counting trigger, then the upload's row: the order of mkdir, rename and rm, so
            // that a publish cannot deadlock with them (it took the figures first before).
            let file = NewFileRow { size, md5: &md5[..], object: object.as_deref(), modified };
            let replaced = put_file_row(&transaction, home, target, &file).await?;
            let dropped = cached::execute(
                &transaction,
                "DELETE FROM uploads WHERE home = $1 AND target = $2 AND upload_id = $3 AND holder = $4",
                &[home, &stored(target), id, &me],
            )
            .await?;
            if dropped == 0 {
                return Err(StorageError::HeldElsewhere);
            }
            if let Some(old) = replaced.as_ref().and_then(|row| row.object_key.as_deref()) {
                namespace::orphan(&transaction, old, "").await?;
            }
            if object.is_none() && !id.is_empty() {
                // An empty file needs no object: the multipart upload opened for it goes.
                namespace::orphan(&transaction, &key, id).await?;
            }
            transaction.commit().await?;
            Ok(replaced)
        });
        let replaced = match replaced {
            Ok(replaced) => replaced,
            Err(error) => {
                if self.size > 0 {
                    // Completed, but no name refers to it: the sweeper deletes it.
                    self.orphan_completed();
                }
                return Err(error);
            }
        };
        self.row_exists = false;
        let change = DiskChange {
            bytes: self.size as i64 - self.start_len as i64 - replaced.as_ref().map_or(0, |row| row.size as i64),
            files: 1 - self.row_existed as i64 - replaced.is_some() as i64,
        };
        Ok(PublishedUpload { md5, change })
    }

    /// After a completed multipart upload could not be named: its row is dropped (the upload
    /// cannot take more parts) and the object queued for deletion.
    fn orphan_completed(&mut self) {
        if self.remove().is_err() {
            tracing::warn!(home = %self.home, path = %self.target, "cannot drop a completed upload that could not be published");
        }
    }

    /// Makes the upload hold the first `len` bytes of `object`, the file published under its
    /// name (FTP's resume or append to a published file): read back and sent as parts.
    pub fn copy_prefix(&mut self, object: Option<&str>, len: u64) -> Result<(), StorageError> {
        self.restart()?;
        if len == 0 {
            return Ok(());
        }
        let object = object.ok_or(StorageError::ChangedDuringTransfer)?;
        let mut download =
            super::download::ObjectDownload::new(self.storage.clone(), Some(object.to_string()), len, 0, 0);
        let mut chunk = Vec::new();
        while !crate::storage::DownloadSession::is_done(&download) {
            crate::storage::DownloadSession::read_chunk_into(&mut download, &mut chunk, PART_SIZE as usize)?;
            self.append(&chunk)?;
        }
        Ok(())
    }
}

/// The row a published file gets.
struct NewFileRow<'a> {
    size: i64,
    md5: &'a [u8],
    object: Option<&'a str>,
    modified: i64,
}

/// Puts `file`'s row under `target`, in the caller's transaction: the file there is replaced
/// (its row locked first), or a new row inserted; returns the row replaced. A name that
/// appears between the look and the insert (a directory made, a file moved there, by another
/// session or instance) is found by the insert, which then waits for it, and is looked at
/// again: replaced if it is a file, refused if a directory, never overwritten unseen.
async fn put_file_row(
    client: &impl GenericClient,
    home: &str,
    target: &VirtualPath,
    file: &NewFileRow<'_>,
) -> Result<Option<EntryRow>, StorageError> {
    let (path, parent) = (stored(target), stored(&target.parent()));
    for _ in 0..3 {
        if let Some(row) = namespace::entry(client, home, target, Lock::Update).await? {
            if row.is_dir {
                return Err(StorageError::IsADirectory);
            }
            cached::execute(
                client,
                "UPDATE entries SET size = $3, md5 = $4, object_key = $5, modified = $6 WHERE home = $1 AND path = $2",
                &[&home, &path, &file.size, &file.md5, &file.object, &file.modified],
            )
            .await?;
            return Ok(Some(row));
        }
        let inserted = cached::execute(
            client,
            "INSERT INTO entries (home, path, parent, is_dir, size, md5, object_key, modified)
                 VALUES ($1, $2, $3, false, $4, $5, $6, $7) ON CONFLICT (home, path) DO NOTHING",
            &[&home, &path, &parent, &file.size, &file.md5, &file.object, &file.modified],
        )
        .await?;
        if inserted == 1 {
            return Ok(None);
        }
    }
    // Made and removed again between each look and insert: the name would not hold still.
    Err(StorageError::ChangedDuringTransfer)
}

/// Takes `target`'s upload row for instance `me`, creating it (with `new_key`) if there is none
/// and `may_create`; returns what it held and whether it was created.
async fn claim(
    client: &deadpool_postgres::Object,
    home: &str,
    target: &VirtualPath,
    me: &str,
    new_key: &str,
    may_create: bool,
) -> Result<(Claimed, bool), StorageError> {
    let path = stored(target);
    let part_size = PART_SIZE as i64;
    if may_create {
        let created = cached::execute(
            client,
            "INSERT INTO uploads (home, target, object_key, part_size, holder) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (home, target) DO NOTHING",
            &[&home, &path, &new_key, &part_size, &me],
        )
        .await?;
        if created == 1 {
            let claimed = Claimed {
                key: new_key.to_string(),
                upload_id: String::new(),
                durable: 0,
                md5_state: None,
                part_etags: Vec::new(),
            };
            return Ok((claimed, true));
        }
    }
    let take = format!(
        "UPDATE uploads SET holder = $3 WHERE home = $1 AND target = $2 AND {}
         RETURNING object_key, upload_id, durable, md5_state, part_etags",
        free_for_me()
    );
    let taken = cached::query_opt(client, &take, &[&home, &path, &me]).await?;
    if let Some(row) = taken {
        let claimed = Claimed {
            key: row.get(0),
            upload_id: row.get(1),
            durable: row.get::<_, i64>(2) as u64,
            md5_state: row.get(3),
            part_etags: row.get(4),
        };
        return Ok((claimed, false));
    }
    let exists = cached::query_opt(client, "SELECT 1 FROM uploads WHERE home = $1 AND target = $2", &[&home, &path])
        .await?
        .is_some();
    Err(if exists { StorageError::HeldElsewhere } else { StorageError::TooManyFiles })
}

impl UploadSession for ObjectUpload {
    /// Bytes held: durable, in flight, and gathered for the next part.
    fn offset(&self) -> u64 {
        self.sent + self.buffer.len() as u64
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn start_len(&self) -> u64 {
        self.start_len
    }

    fn replaced_len(&self) -> u64 {
        self.replaced_len
    }

    /// Nothing is read back: the MD5 state of the durable bytes is in the row.
    fn prefix_hashed(&self) -> u64 {
        0
    }

    /// Durable bytes only: those in flight or gathered for the next part are not recorded yet
    /// (and are lost if the upload stops before they are).
    fn disk_change(&self) -> DiskChange {
        DiskChange {
            bytes: if self.row_exists { self.durable as i64 } else { 0 } - self.start_len as i64,
            files: self.row_exists as i64 - self.row_existed as i64,
        }
    }

    fn append(&mut self, mut bytes: &[u8]) -> Result<(), StorageError> {
        if self.offset() + bytes.len() as u64 > self.size {
            return Err(StorageError::TooMuchData);
        }
        while !bytes.is_empty() {
            let room = PART_SIZE as usize - self.buffer.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            if self.buffer.capacity() == 0 {
                self.buffer.reserve_exact(PART_SIZE as usize);
            }
            self.buffer.extend_from_slice(now);
            bytes = later;
            if self.buffer.len() == PART_SIZE as usize {
                self.flush_part(false)?;
            }
        }
        self.record_acknowledged()
    }

    /// Starts over under a new key (its multipart upload is created with its first part); the
    /// old one is left to the sweeper.
    fn restart(&mut self) -> Result<(), StorageError> {
        self.drop_in_flight();
        let new_key = self.storage.new_key();
        let (home, target, me) = (&self.home, stored(&self.target), self.storage.instance.id());
        let (old_key, old_id, key) = (self.key.to_string(), &self.upload_id, new_key.to_string());
        self.storage.db(|mut client| async move {
            let transaction = client.transaction().await?;
            let updated = cached::execute(
                &transaction,
                "UPDATE uploads SET object_key = $3, upload_id = '', durable = 0, md5_state = NULL,
                            part_etags = '{}', written = now()
                     WHERE home = $1 AND target = $2 AND holder = $4",
                &[home, &target, &key, &me],
            )
            .await?;
            if updated == 0 {
                return Err(StorageError::HeldElsewhere);
            }
            if !old_id.is_empty() {
                namespace::orphan(&transaction, &old_key, old_id).await?;
            }
            transaction.commit().await?;
            Ok(())
        })?;
        self.key = new_key;
        self.upload_id = String::new();
        self.durable = 0;
        self.sent = 0;
        self.part_etags.clear();
        self.buffer.clear();
        self.sent_md5 = Md5::new();
        Ok(())
    }

    /// The MD5 of every byte held, kept with each part: the caller need not hash them again.
    fn own_md5(&self) -> Option<Md5> {
        Some(self.md5_so_far())
    }
}
