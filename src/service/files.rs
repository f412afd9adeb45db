//! One logged-in user's files: every operation a front end offers on them, with the rules that
//! hold whatever the wire (the quota kept with each change, the resume-hashing budget, the
//! path jail). Each call returns a future that owns what it needs, so an actor can run it under
//! `ctx.wait` and a task can simply await it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::actors::Services;
use crate::actors::quota::QuotaError;
use crate::net::{Entry, ErrorCode, ListAfter, WireError};
use crate::quota::gate::ChangeGuard;
use crate::quota::{DiskChange, Usage};
use crate::storage::list_page::{ListDetail, PageRequest};
use crate::storage::{FileStore, HomeStore, Listing, Md5Digest, PartialFound, StorageError, VirtualPath};

use super::error;
use super::upload::take_lease;

/// A change of directories in a home that the quota counts (see [`UserFiles::change_entry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryChange {
    MakeDir,
    RemoveDir,
}

impl EntryChange {
    /// The operation's name, for logs and error messages.
    pub fn op(self) -> &'static str {
        match self {
            EntryChange::MakeDir => "mkdir",
            EntryChange::RemoveDir => "rmdir",
        }
    }
}

/// What [`UserFiles::remove_file`] removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The published file; `partial_remains` if a partial upload to the same name is still
    /// there (removing the name again removes it).
    File { partial_remains: bool },
    /// The partial upload to the name, where no file was published.
    Partial,
}

/// What a session holds once its user is logged in: the user, where the user's files are kept
/// (the store, behind the storage seam: see [`FileStore`]), and the server's shared parts that
/// file operations go through.
pub struct UserFiles<S: FileStore = HomeStore> {
    services: Services,
    user: String,
    store: Arc<S>,
    /// The home's place in the deployment: what an upload's path lock is keyed by.
    home_path: PathBuf,
}

/// A directory's listing read a page at a time, for one reader (a data connection, an SFTP
/// directory handle).
pub struct ListingPages<S: FileStore = HomeStore> {
    files: Arc<UserFiles<S>>,
    target: VirtualPath,
    shown: String,
    detail: ListDetail,
    after: Option<ListAfter>,
    done: bool,
}

impl<S: FileStore> ListingPages<S> {
    /// `target`'s whole listing, read a page at a time: what FTP's LIST and SFTP's READDIR
    /// send, holding one page in memory however large the directory.
    pub fn new(files: Arc<UserFiles<S>>, target: VirtualPath, shown: String, detail: ListDetail) -> ListingPages<S> {
        ListingPages { files, target, shown, detail, after: None, done: false }
    }

    /// The next page, or `None` once the listing has been read to its end.
    pub async fn next(&mut self) -> Result<Option<Vec<Entry>>, WireError> {
        if self.done {
            return Ok(None);
        }
        let listing = self.files.list(self.target.clone(), self.shown.clone(), self.after.take(), self.detail).await?;
        self.after = listing.entries.last().map(Entry::list_key);
        self.done = !listing.truncated || self.after.is_none();
        Ok(Some(listing.entries))
    }
}

impl<S: FileStore> UserFiles<S> {
    pub fn new(services: Services, user: String, store: S, home_path: PathBuf) -> UserFiles<S> {
        UserFiles { services, user, store: Arc::new(store), home_path }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Where the user's files are kept: for a disk job that works on them directly.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Where `target` is on this machine: what the QuotaActor locks an upload by.
    pub(super) fn absolute(&self, target: &VirtualPath) -> PathBuf {
        self.home_path.join(target.to_relative())
    }

    /// `path` as typed by the user, from the working directory `cwd`, inside the home.
    pub fn resolve(&self, op: &str, cwd: &VirtualPath, path: &str) -> Result<VirtualPath, WireError> {
        VirtualPath::resolve(cwd, path, self.services.config.path_limits())
            .map_err(|jail| error::storage(op, path, jail.into()))
    }

    /// Runs `call` on the disk pool with the home; its failure is worded for `op` on `shown`.
    pub fn on_disk<R, F>(
        &self,
        op: &'static str,
        shown: String,
        call: F,
    ) -> impl Future<Output = Result<R, WireError>> + use<S, R, F>
    where
        R: Send + 'static,
        F: FnOnce(&S) -> Result<R, StorageError> + Send + 'static,
    {
        let (disk, home) = (self.services.disk.clone(), self.store.clone());
        async move { error::of_job(disk.run(op, move || call(&home)).await, op, &shown) }
    }

    /// Checks that `target` is a directory: what `cd` does before it moves.
    pub fn check_dir(
        &self,
        target: VirtualPath,
        shown: String,
    ) -> impl Future<Output = Result<(), WireError>> + use<S> {
        self.on_disk("cd", shown, move |home| home.check_dir(&target))
    }

    /// A page of `target`'s listing: at most `max_list_entries` entries after `after`, and
    /// whether more follow (see [`crate::storage::list_page`]).
    pub fn list(
        &self,
        target: VirtualPath,
        shown: String,
        after: Option<ListAfter>,
        detail: ListDetail,
    ) -> impl Future<Output = Result<Listing, WireError>> + use<S> {
        let max = self.services.config.max_list_entries;
        let request = PageRequest::after(after, max, detail);
        self.on_disk("ls", shown, move |home| home.list(&target, &request))
    }

    pub fn stat(&self, target: VirtualPath, shown: String) -> impl Future<Output = Result<Entry, WireError>> + use<S> {
        self.on_disk("stat", shown, move |home| home.stat(&target))
    }

    /// The size a resume of `target` continues from (FTP's SIZE).
    pub fn resume_len(
        &self,
        target: VirtualPath,
        shown: String,
    ) -> impl Future<Output = Result<u64, WireError>> + use<S> {
        self.on_disk("size", shown, move |home| home.resume_len(&target))
    }

    /// Sets the modification time of `target` (FTP's MFMT), so mirrors keep file times.
    pub fn set_modified(
        &self,
        target: VirtualPath,
        unix: i64,
        shown: String,
    ) -> impl Future<Output = Result<(), WireError>> + use<S> {
        self.on_disk("set time", shown, move |home| home.set_modified(&target, unix))
    }

    pub fn rename(
        &self,
        source: VirtualPath,
        target: VirtualPath,
        shown: String,
    ) -> impl Future<Output = Result<(), WireError>> + use<S> {
        self.on_disk("mv", shown, move |home| home.rename(&source, &target))
    }

    /// The user's figures, as the QuotaActor keeps them.
    pub fn usage(&self) -> impl Future<Output = Result<Usage, WireError>> + use<S> {
        let usage = self.services.ledger.usage(self.user.clone());
        async move { usage.await.map_err(error::internal) }
    }

    /// Makes `change` and keeps the QuotaActor's figures with it: what a removal freed is
    /// adjusted; a directory is created only if `max_files` has room for one more entry,
    /// reserved before and settled after.
    pub fn change_entry(
        &self,
        change: EntryChange,
        target: VirtualPath,
        shown: String,
    ) -> impl Future<Output = Result<(), WireError>> + use<S> {
        let (services, home, user) = (self.services.clone(), self.store.clone(), self.user.clone());
        let op = change.op();
        async move {
            let ledger = services.ledger.clone();
            if let EntryChange::RemoveDir = change {
                return change_on_disk(&services, op, op, shown, move |guard| {
                    home.remove_dir(&target)?;
                    ledger.adjust(user, DiskChange { bytes: 0, files: -1 }, guard.number());
                    Ok(())
                })
                .await;
            }
            let lease = match ledger.open_entry(user).await {
                Ok(lease) => lease,
                Err(refused @ QuotaError::TooManyFiles(_)) => return Err(error::quota(op, &shown, refused)),
                Err(failed) => return Err(error::internal(failed)),
            };
            change_on_disk(&services, op, op, shown, move |_| {
                home.mkdir(&target)?;
                lease.record_disk_change(DiskChange { bytes: 0, files: 1 });
                Ok(())
            })
            .await
        }
    }

    /// `rm`: removes the file published at `target`, or, where there is none, the partial
    /// upload to it (a user sees it listed under that name, and its bytes count). The quota's
    /// figures are kept with the change.
    pub fn remove_file(
        &self,
        target: VirtualPath,
        shown: String,
    ) -> impl Future<Output = Result<Removed, WireError>> + use<S> {
        let (services, home, user) = (self.services.clone(), self.store.clone(), self.user.clone());
        let remove_partial = self.remove_partial(target.clone(), None, shown.clone());
        async move {
            let ledger = services.ledger.clone();
            let removed = change_on_disk(&services, "rm", "rm", shown, move |guard| match home.remove_file(&target) {
                Ok(removed) => {
                    ledger.adjust(user, DiskChange { bytes: -(removed.freed as i64), files: -1 }, guard.number());
                    Ok(Some(removed))
                }
                Err(StorageError::NotFound) => Ok(None),
                Err(failed) => Err(failed),
            })
            .await?;
            match removed {
                Some(removed) => Ok(Removed::File { partial_remains: removed.partial_remains }),
                None => remove_partial.await.map(|_| Removed::Partial),
            }
        }
    }

    /// Removes the partial upload to `target` if it was last written before `unchanged_since`
    /// (any age if `None`), holding the path's upload lock so that no upload is writing it
    /// (one in progress is waited for, as a new upload would wait); returns the bytes freed.
    pub fn remove_partial(
        &self,
        target: VirtualPath,
        unchanged_since: Option<SystemTime>,
        shown: String,
    ) -> impl Future<Output = Result<u64, WireError>> + use<S> {
        let (services, home) = (self.services.clone(), self.store.clone());
        let lease = take_lease(self, &target, "rm", &shown);
        async move {
            let lease = lease.await?;
            change_on_disk(&services, "rm partial", "rm", shown, move |_| {
                let freed = home.remove_partial(&target, unchanged_since)?;
                lease.record_disk_change(DiskChange { bytes: -(freed as i64), files: -1 });
                Ok(freed)
            })
            .await
        }
    }

    /// Every partial upload the user has (for `quota`, and for expiring old ones).
    pub fn partials(&self) -> impl Future<Output = Result<Vec<PartialFound>, WireError>> + use<S> {
        self.on_disk("quota", "partial uploads".to_string(), |home| home.partials())
    }

    /// The MD5 and size of `target`: its stored digest if it has one (free), else read and
    /// hashed, which is charged to the user's hashing budget and refused when that is spent.
    pub fn checksum(
        &self,
        target: VirtualPath,
        shown: String,
    ) -> impl Future<Output = Result<(Md5Digest, u64), WireError>> + use<S> {
        let (services, user) = (self.services.clone(), self.user.clone());
        let (asks, asker) = (services.clone(), user.clone());
        let hashed =
            self.on_disk("checksum", shown, move |home| home.file_md5(&target, move || asks.may_hash(&asker).is_ok()));
        async move {
            match hashed.await? {
                Some((md5, size, cost)) => {
                    services.charge_hashing(&user, cost);
                    Ok((md5, size))
                }
                None => Err(services.may_hash(&user).err().unwrap_or_else(|| ErrorCode::HashBudgetExhausted.into())),
            }
        }
    }

    /// May the user make the server hash a resume prefix now? The error is the answer to send.
    pub fn may_hash(&self) -> Result<(), WireError> {
        self.services.may_hash(&self.user)
    }

    /// Charges the user for `bytes` of resume hashing.
    pub fn charge_hashing(&self, bytes: u64) {
        self.services.charge_hashing(&self.user, bytes)
    }
}

/// Runs `job` on the disk pool holding the usage gate's change side: a job that changes the home
/// records that change (in a lease, or in a numbered adjustment) before the gate opens, so a
/// usage scan sees both or neither. Its failure is worded for `op` on `shown`.
pub(super) fn change_on_disk<R, F>(
    services: &Services,
    name: &'static str,
    op: &'static str,
    shown: String,
    job: F,
) -> impl Future<Output = Result<R, WireError>> + use<R, F>
where
    R: Send + 'static,
    F: FnOnce(&ChangeGuard<'_>) -> Result<R, StorageError> + Send + 'static,
{
    let (disk, gate) = (services.disk.clone(), services.gate.clone());
    async move {
        let changed = disk
            .run(name, move || {
                let guard = gate.change();
                job(&guard)
            })
            .await;
        error::of_job(changed, op, &shown)
    }
}
