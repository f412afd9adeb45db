//! Uploads, for every front end: the path lease, the hidden partial, the quota reservation,
//! the publishing and its settlement, each written once.
//!
//! An upload opens one of two ways. [`open_sized`]: the size is announced and the sender
//! checks a resumed prefix by its MD5 (the native protocol). [`open_stream`]: no size, and the
//! data continues where the client says (FTP's STOR, REST + STOR, APPE). Either way the
//! [`Upload`] that comes back holds the partial and the quota lease together, so whoever drops
//! it (the session, a disk job, a dead connection) settles the quota with what really changed
//! on disk. Nothing is visible under the target's name until the upload is published.
//!
//! One rule for a path in use: while an earlier upload of the same path is still ending, a new
//! one waits for it (up to [`IN_USE_PATIENCE`]) instead of failing at once. A client that sends
//! its resume right after an interrupted upload (`curl -C -`, the shell's `put` after Ctrl-C)
//! arrives while the server is still writing the bytes that reached it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::actors::quota::QuotaError;
use crate::integrity::{Digest, Md5};
use crate::net::WireError;
use crate::quota::{DiskChange, IN_USE_PATIENCE, upload_need};
use crate::state::quota::QuotaLease;
use crate::storage::{
    FileStore, HomeStore, Md5Digest, StorageError, StreamRequest, StreamStart, UploadSession, VirtualPath,
};

use super::error;
use super::files::{UserFiles, change_on_disk};

/// How often a new upload asks again for a path in use.
const IN_USE_RETRY: Duration = Duration::from_millis(50);

/// An upload between its opening and its end.
pub struct Upload<S: FileStore = HomeStore> {
    files: Arc<UserFiles<S>>,
    /// The store's upload session (a hidden partial, locally).
    partial: S::Upload,
    /// Its reservation and path lock (see [`QuotaLease`]).
    lease: Box<dyn QuotaLease>,
    /// The path as the user typed it, for messages and logs.
    shown: String,
}

/// What [`open_sized`] found: the upload, the MD5 of the bytes the partial already holds, and
/// the stored MD5 of a published file of exactly the announced size (the sender may find it
/// need not send anything).
pub struct SizedUpload<S: FileStore = HomeStore> {
    pub upload: Upload<S>,
    pub hasher: Md5,
    pub existing_md5: Option<Md5Digest>,
}

/// Opens an upload of `size` bytes to `target`: the partial an interrupted upload left is
/// resumed, with the MD5 of what it holds (remembered, or hashed from the disk and charged to
/// the user's hashing budget), and the quota is reserved for the rest.
pub async fn open_sized<S: FileStore>(
    files: Arc<UserFiles<S>>,
    target: VirtualPath,
    shown: String,
    size: u64,
) -> Result<SizedUpload<S>, WireError> {
    let lease = take_lease(&files, &target, "put", &shown).await?;
    let services = files.services().clone();
    if let Err(refused) = files.may_hash() {
        // In debt: only an upload that would hash an existing partial must wait.
        let (home, target) = (files.store().clone(), target.clone());
        let would_hash = services.disk.run("check partial", move || home.would_hash(&target)).await.unwrap_or(false);
        if would_hash {
            return Err(refused);
        }
    }
    let owner = files.clone();
    let opened = change_on_disk(&services, "open upload", "put", shown.clone(), move |_| {
        let home = owner.store().clone();
        let (partial, hasher) = home.open_sized_upload(&target, size, lease.may_create())?;
        let upload = Upload { files: owner, partial, lease, shown };
        upload.record_growth();
        // Only where a regular file of this very size is published (opening the partial
        // measured it): no lookup for new files, the common case.
        let same_size = size > 0 && upload.partial.replaced_len() == size;
        let existing_md5 =
            if upload.offset() == 0 && same_size { known_md5_of_size(&*home, &target, size) } else { None };
        Ok(SizedUpload { upload, hasher, existing_md5 })
    })
    .await?;
    files.charge_hashing(opened.upload.partial.prefix_hashed());
    if let Err(refused) = opened.upload.reserve(size).await {
        opened.upload.abandon(Some(opened.hasher)).await;
        return Err(refused);
    }
    Ok(opened)
}

/// The MD5 of the file published at `target`, if it has exactly `size` bytes and the digest
/// index knows it for the file as it is now. Never reads the file (an upload must not start
/// with a hash of a file it may replace); anything else is `None`.
fn known_md5_of_size(home: &impl FileStore, target: &VirtualPath, size: u64) -> Option<Md5Digest> {
    match home.file_md5(target, || false) {
        Ok(Some((md5, len, _))) if len == size => Some(md5),
        _ => None,
    }
}

/// Opens an upload whose size is not announced, its data continuing where `request` says (see
/// [`StreamStart::plan`]); the partial is made to hold that prefix.
pub async fn open_stream<S: FileStore>(
    files: Arc<UserFiles<S>>,
    target: VirtualPath,
    shown: String,
    request: StreamRequest,
) -> Result<Upload<S>, WireError> {
    let lease = take_lease(&files, &target, "put", &shown).await?;
    open_stream_with(files, target, shown, request, lease).await
}

/// [`open_stream`] once the lease is held.
///
/// A prefix that needs no more quota than the lease holds (every fresh upload, and a resume of
/// a partial) is put in place by the same disk job that opens the partial: one hop to the disk
/// pool instead of two, which is much of a small file's time (docs/BENCHMARKS.md, "Standard
/// clients"). A prefix copied from the published file is reserved first, between two jobs.
async fn open_stream_with<S: FileStore>(
    files: Arc<UserFiles<S>>,
    target: VirtualPath,
    shown: String,
    request: StreamRequest,
    lease: Box<dyn QuotaLease>,
) -> Result<Upload<S>, WireError> {
    let services = files.services().clone();
    let named = shown.clone();
    let opened = change_on_disk(&services, "open upload", "put", shown.clone(), move |_| {
        let (mut upload, start) = Upload::open_partial(files, &target, named, lease, request)?;
        if upload.need(start.prefix_len()) > upload.lease.reserved() {
            return Ok((upload, Some(start)));
        }
        upload.continue_at(&start)?;
        Ok((upload, None))
    });
    let (upload, start) = match opened.await? {
        (upload, None) => return Ok(upload),
        (upload, Some(start)) => (upload, start),
    };
    let mut upload = upload.reserve_or_abandon(start.prefix_len()).await?;
    change_on_disk(&services, "prepare upload", "put", shown, move |_| {
        upload.continue_at(&start)?;
        Ok(upload)
    })
    .await
}

/// A fresh streamed upload (FTP's STOR with no REST) whose partial is not opened yet: only
/// its path lock is held. A file whose data all arrives in the first block is then stored by
/// one disk job ([`FreshUpload::store_whole`]: open, write, publish) instead of two; a longer
/// one opens its partial ([`FreshUpload::open`]) and continues as any upload.
pub struct FreshUpload<S: FileStore = HomeStore> {
    files: Arc<UserFiles<S>>,
    target: VirtualPath,
    shown: String,
    lease: Box<dyn QuotaLease>,
}

/// Takes the path lock for a fresh upload of `target` (waiting for an earlier upload of the
/// path to end, as [`open_stream`] does); nothing on disk changes yet.
pub async fn begin_fresh<S: FileStore>(
    files: Arc<UserFiles<S>>,
    target: VirtualPath,
    shown: String,
) -> Result<FreshUpload<S>, WireError> {
    let lease = take_lease(&files, &target, "put", &shown).await?;
    Ok(FreshUpload { files, target, shown, lease })
}

impl<S: FileStore> FreshUpload<S> {
    /// May the upload create a new entry (see [`QuotaLease::may_create`])? When it may not,
    /// only a name that exists already can be stored, which opening the partial finds out.
    pub fn may_create(&self) -> bool {
        self.lease.may_create()
    }

    /// Opens the partial (emptying one an interrupted upload left), as [`open_stream`] with
    /// [`StreamRequest::Fresh`].
    pub async fn open(self) -> Result<Upload<S>, WireError> {
        self.open_with(StreamRequest::Fresh).await
    }

    /// Opens the partial for data that continues where `request` says, as [`open_stream`]
    /// does: for a front end that takes the path lock before it knows where the data starts
    /// (SFTP opens a file, then writes at an offset: 0, or the size a resume was told).
    pub async fn open_with(self, request: StreamRequest) -> Result<Upload<S>, WireError> {
        let FreshUpload { files, target, shown, lease } = self;
        open_stream_with(files, target, shown, request, lease).await
    }

    /// Stores `bytes`, the whole file, under the target's name: the quota is reserved for them,
    /// then one disk job opens the partial, writes them and publishes the file, with the same
    /// guarantees as a longer upload (fsync before the rename, the lease settled with what
    /// changed). Where the reservation is refused, a partial that an interrupted upload left
    /// may free enough: the exact path (open, then reserve what is needed) decides.
    pub async fn store_whole(self, bytes: Vec<u8>) -> Result<(), WireError> {
        let size = bytes.len() as u64;
        if size > self.lease.reserved() && self.lease.reserve(size).await.is_err() {
            let upload = self.open().await?.reserve_or_abandon(size).await?;
            return upload.publish_as_is(Some(bytes)).await;
        }
        let FreshUpload { files, target, shown, lease } = self;
        let services = files.services().clone();
        change_on_disk(&services, "store file", "put", shown.clone(), move |_| {
            let (mut upload, start) = Upload::open_partial(files, &target, shown, lease, StreamRequest::Fresh)?;
            upload.continue_at(&start)?;
            upload.finish(Some(bytes), publish_unchecked)
        })
        .await
    }
}

/// Takes the upload lease (the path lock) on `target` for `op`, waiting for an earlier upload
/// of the path to end (see the module doc).
pub(super) fn take_lease<S: FileStore>(
    files: &UserFiles<S>,
    target: &VirtualPath,
    op: &'static str,
    shown: &str,
) -> impl Future<Output = Result<Box<dyn QuotaLease>, WireError>> + use<S> {
    let (ledger, user, path, shown) =
        (files.services().ledger.clone(), files.user().to_string(), files.absolute(target), shown.to_string());
    async move {
        let deadline = Instant::now() + IN_USE_PATIENCE;
        loop {
            match ledger.open_upload(user.clone(), path.clone()).await {
                Ok(lease) => return Ok(lease),
                Err(QuotaError::InUse) if Instant::now() < deadline => tokio::time::sleep(IN_USE_RETRY).await,
                Err(refused) => return Err(error::quota(op, &shown, refused)),
            }
        }
    }
}

impl<S: FileStore> Upload<S> {
    /// Bytes in the partial: where the data continues.
    pub fn offset(&self) -> u64 {
        self.partial.offset()
    }

    /// The announced size ([`open_sized`]); unbounded for a stream.
    pub fn size(&self) -> u64 {
        self.partial.size()
    }

    /// The MD5 of every byte written, if the upload keeps it itself (then nobody else need
    /// hash them).
    pub fn own_md5(&self) -> Option<Md5> {
        self.partial.own_md5()
    }

    /// Bytes of the partial hashed from the disk when it was opened.
    pub fn prefix_hashed(&self) -> u64 {
        self.partial.prefix_hashed()
    }

    pub fn user(&self) -> &str {
        self.files.user()
    }

    /// The server's shared parts (for counting the upload in the metrics).
    pub fn services(&self) -> &crate::actors::Services {
        self.files.services()
    }

    /// The path as the user typed it.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// What the quota must hold for the partial to reach `end` bytes: every byte past what it
    /// held when opened (those already count).
    fn need(&self, end: u64) -> u64 {
        upload_need(end, self.partial.start_len())
    }

    /// Call under the usage gate, in the job that changed the partial.
    fn record_growth(&self) {
        self.lease.record_disk_change(self.partial.disk_change());
    }

    /// Appends `bytes` to the partial (the caller hashes them, if it hashes). Call under the
    /// usage gate, in a disk job: the lease records the growth before the gate opens.
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let result = self.partial.append(bytes);
        self.record_growth();
        result
    }

    /// [`Upload::append`] for a disk job that holds no change guard: takes the usage gate for
    /// this write alone (a long job must not hold it between chunks, or a usage scan waits).
    pub fn append_guarded(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let gate = self.files.services().gate.clone();
        let _change = gate.change();
        self.append(bytes)
    }

    /// Empties the upload, on the disk pool, and reserves for all of its size: the sender's
    /// file does not start with what the partial held (the caller starts a new MD5).
    pub async fn restart(self) -> Result<Upload<S>, WireError> {
        let (services, shown) = (self.files.services().clone(), self.shown.clone());
        let mut upload = self;
        let restarted = change_on_disk(&services, "restart upload", "put", shown, move |_| {
            let result = upload.partial.restart();
            upload.record_growth();
            result.map(|()| upload)
        });
        let upload = restarted.await?;
        upload.reserve(upload.size()).await?;
        Ok(upload)
    }

    /// Puts the prefix in the partial (see [`StreamStart`]). Call under the usage gate, in a
    /// disk job.
    fn continue_at(&mut self, start: &StreamStart) -> Result<(), StorageError> {
        let result = self.files.store().continue_upload(&mut self.partial, start);
        self.record_growth();
        result
    }

    /// Raises the reservation so the partial may reach `end` bytes (nothing to ask when the
    /// lease holds enough already).
    pub async fn reserve(&self, end: u64) -> Result<(), WireError> {
        let need = self.need(end);
        if need <= self.lease.reserved() {
            return Ok(());
        }
        self.lease.reserve(need).await.map_err(|refused| error::quota("put", &self.shown, refused))
    }

    /// [`Upload::reserve`]; on a refusal the upload is abandoned.
    pub async fn reserve_or_abandon(self, end: u64) -> Result<Upload<S>, WireError> {
        match self.reserve(end).await {
            Ok(()) => Ok(self),
            Err(refused) => {
                self.abandon(None).await;
                Err(refused)
            }
        }
    }

    /// Reserves quota for `block` and appends it to the partial, on the disk pool; the block's
    /// buffer comes back emptied, for the next read. On a refusal the upload is abandoned.
    pub async fn write(self, mut block: Vec<u8>) -> Result<(Upload<S>, Vec<u8>), WireError> {
        let end = self.offset() + block.len() as u64;
        let mut upload = self.reserve_or_abandon(end).await?;
        let (services, shown) = (upload.files.services().clone(), upload.shown.clone());
        change_on_disk(&services, "write upload", "put", shown, move |_| {
            upload.append(&block)?;
            block.clear();
            Ok((upload, block))
        })
        .await
    }

    /// Keeps `hasher`, the MD5 of every byte written, for a resume of the partial.
    pub fn remember_state(&self, hasher: &Md5) {
        self.files.store().remember_upload_state(&self.partial, hasher);
    }

    /// Ends an upload that receives no more data, in a disk job: an empty partial is removed
    /// (so a refused upload leaves nothing behind), one with data kept for a resume, with the
    /// MD5 of its bytes if the caller hashed them. The lease settles what is left.
    pub async fn abandon(self, hasher: Option<Md5>) {
        let (services, shown) = (self.files.services().clone(), self.shown.clone());
        let abandoned = change_on_disk(&services, "abandon upload", "put", shown, move |_| {
            if let Some(hasher) = &hasher {
                self.remember_state(hasher);
            }
            let Upload { files, mut partial, lease, .. } = self;
            files.store().abandon_upload(&mut partial);
            lease.record_disk_change(partial.disk_change());
            Ok(())
        });
        let _ = abandoned.await;
    }

    /// Writes `tail` (the last block, if it was held back), then checks the MD5 of every byte
    /// (`hasher`, which `tail` is added to, or the upload's own) against the sender's and publishes the file, its
    /// digest stored for later downloads. On the disk pool; see [`Upload::publish_with`].
    pub async fn publish_checked(
        self,
        tail: Option<Bytes>,
        mut hasher: Md5,
        sender_md5: Vec<u8>,
    ) -> Result<Md5Digest, WireError> {
        self.publish_with(tail, move |partial, home, tail| {
            let md5 = match partial.own_md5() {
                Some(own) => own.finalize().into(),
                None => {
                    if let Some(tail) = tail {
                        hasher.update(tail);
                    }
                    hasher.finalize().into()
                }
            };
            match home.publish_checked(partial, md5, &sender_md5) {
                Ok(done) => (Ok(done.md5), done.change),
                Err(failed) => (Err(failed.error), failed.change),
            }
        })
        .await
    }

    /// Writes `tail`, then publishes the file as it is: its data ended cleanly (FTP and SFTP,
    /// where no checksum comes with the data). The quota is reserved for `tail` first, as for
    /// any block: on a refusal the upload is abandoned (what was written stays for a resume).
    pub async fn publish_as_is(self, tail: Option<Vec<u8>>) -> Result<(), WireError> {
        let end = self.offset() + tail.as_ref().map_or(0, |tail| tail.len() as u64);
        let upload = self.reserve_or_abandon(end).await?;
        upload.publish_with(tail, publish_unchecked).await
    }

    /// Runs one disk job, under the usage gate, that [`Upload::finish`]es the upload.
    async fn publish_with<R: Send + 'static>(
        self,
        tail: Option<impl AsRef<[u8]> + Send + 'static>,
        publish: impl FnOnce(S::Upload, &S, Option<&[u8]>) -> (Result<R, StorageError>, DiskChange) + Send + 'static,
    ) -> Result<R, WireError> {
        let (services, shown) = (self.files.services().clone(), self.shown.clone());
        change_on_disk(&services, "publish upload", "put", shown, move |_| self.finish(tail, publish)).await
    }

    /// Appends `tail` and then `publish`es. Call under the usage gate, in a disk job: the
    /// lease is settled there, with what publishing really changed, before the client can
    /// hear back and start another upload to the same path.
    fn finish<R>(
        mut self,
        tail: Option<impl AsRef<[u8]>>,
        publish: impl FnOnce(S::Upload, &S, Option<&[u8]>) -> (Result<R, StorageError>, DiskChange),
    ) -> Result<R, StorageError> {
        if let Some(tail) = &tail {
            self.append(tail.as_ref())?;
        }
        let Upload { files, partial, lease, .. } = self;
        let (result, change) = publish(partial, files.store(), tail.as_ref().map(AsRef::as_ref));
        lease.record_disk_change(change);
        result
    }

    /// Opens the partial of a streamed upload and plans where its data continues. Call under
    /// the usage gate, in a disk job; the prefix is not in place yet ([`Upload::continue_at`]).
    fn open_partial(
        files: Arc<UserFiles<S>>,
        target: &VirtualPath,
        shown: String,
        lease: Box<dyn QuotaLease>,
        request: StreamRequest,
    ) -> Result<(Upload<S>, StreamStart), StorageError> {
        let home = files.store().clone();
        let (mut partial, target_len) = home.open_stream_upload(target, lease.may_create())?;
        let start = StreamStart::plan(request, target_len, partial.offset());
        if start.is_err() {
            home.abandon_upload(&mut partial);
        }
        let upload = Upload { files, partial, lease, shown };
        // The partial's entry, if this created it (or removed an empty one), counts.
        upload.record_growth();
        Ok((upload, start?))
    }
}

/// Publishes a streamed upload as it is (see [`Upload::publish_as_is`]).
fn publish_unchecked<S: FileStore>(
    partial: S::Upload,
    home: &S,
    _tail: Option<&[u8]>,
) -> (Result<(), StorageError>, DiskChange) {
    match home.publish_as_is(partial) {
        Ok(change) => (Ok(()), change),
        Err(failed) => (Err(failed.error), failed.change),
    }
}
