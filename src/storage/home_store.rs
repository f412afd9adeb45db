//! The store the file service opens at login: a home directory on this machine, or a home in
//! object storage (`storage.backend`). One enum rather than generic front ends: the native,
//! FTP and SFTP sessions hold one concrete type, and each call dispatches once.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use crate::integrity::Md5;
use crate::net::Entry;
use crate::quota::DiskChange;

use super::error::StorageError;
use super::hashing::Md5Digest;
use super::jail::VirtualPath;
use super::list_page::{Listing, PageRequest};
use super::local_store::{HomeUsage, LocalStore, PartialFound, RemovedFile};
use super::objects::download::ObjectDownload;
use super::objects::upload::ObjectUpload;
use super::objects::{ObjectHome, ObjectStorage};
use super::partial::{PartialUpload, PublishFailed, PublishedUpload};
use super::store::{DownloadSession, FileStore, UploadSession};
use super::stream_start::StreamStart;
use super::{DigestIndex, Download, ResumeStates};

/// Where every home of this server is kept.
#[derive(Debug, Clone)]
pub enum Homes {
    /// Directories on this machine, with the server's digest index and resume states.
    Local { digests: Arc<DigestIndex>, resume_states: Arc<ResumeStates> },
    /// Rows in PostgreSQL and objects in a bucket, shared with the other instances.
    Objects(Arc<ObjectStorage>),
}

impl Homes {
    /// Opens `user`'s home at `home` (a directory path, or the name of a home in object storage).
    pub fn open(&self, home: &Path, user: &str) -> Result<HomeStore, StorageError> {
        match self {
            Homes::Local { digests, resume_states } => {
                Ok(HomeStore::Local(LocalStore::open_sharing(home, digests.clone(), resume_states.clone())?))
            }
            Homes::Objects(storage) => Ok(HomeStore::Objects(storage.home(home, user))),
        }
    }

    /// What the home at `home` holds, as the quota counts it.
    pub fn usage(&self, home: &Path) -> Result<HomeUsage, StorageError> {
        match self {
            Homes::Local { .. } => Ok(LocalStore::open(home).and_then(|store| store.usage())?),
            Homes::Objects(storage) => storage.usage(home),
        }
    }
}

/// One user's files, wherever they are kept.
#[derive(Debug)]
pub enum HomeStore {
    Local(LocalStore),
    Objects(ObjectHome),
}

/// An upload into either kind of home.
#[derive(Debug)]
pub enum HomeUpload {
    Local(PartialUpload),
    /// Boxed: it carries an MD5 state and part bookkeeping, and most uploads are local.
    Objects(Box<ObjectUpload>),
}

/// A download from either kind of home.
pub enum HomeDownload {
    Local(Download),
    Objects(Box<ObjectDownload>),
}

/// Calls `$call` on whichever store, upload or download `$value` holds.
macro_rules! either {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            HomeStore::Local($inner) => $call,
            HomeStore::Objects($inner) => $call,
        }
    };
}

/// The upload of the kind this store makes; any other is a bug in the caller.
fn mismatched() -> StorageError {
    StorageError::Io(std::io::Error::other("an upload or download of one kind of store handed to another"))
}

impl FileStore for HomeStore {
    type Upload = HomeUpload;
    type Download = HomeDownload;

    fn check_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        either!(self, store => store.check_dir(path))
    }

    fn list(&self, path: &VirtualPath, request: &PageRequest) -> Result<Listing, StorageError> {
        either!(self, store => FileStore::list(store, path, request))
    }

    fn stat(&self, path: &VirtualPath) -> Result<Entry, StorageError> {
        either!(self, store => FileStore::stat(store, path))
    }

    fn resume_len(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        either!(self, store => FileStore::resume_len(store, path))
    }

    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        either!(self, store => FileStore::mkdir(store, path))
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<RemovedFile, StorageError> {
        either!(self, store => FileStore::remove_file(store, path))
    }

    fn remove_partial(&self, target: &VirtualPath, unchanged_since: Option<SystemTime>) -> Result<u64, StorageError> {
        either!(self, store => FileStore::remove_partial(store, target, unchanged_since))
    }

    fn partials(&self) -> Result<Vec<PartialFound>, StorageError> {
        either!(self, store => FileStore::partials(store))
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        either!(self, store => FileStore::remove_dir(store, path))
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        either!(self, store => FileStore::rename(store, from, to))
    }

    fn set_modified(&self, path: &VirtualPath, unix: i64) -> Result<(), StorageError> {
        either!(self, store => FileStore::set_modified(store, path, unix))
    }

    fn open_sized_upload(
        &self,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(HomeUpload, Md5), StorageError> {
        match self {
            HomeStore::Local(store) => {
                store.open_sized_upload(target, size, may_create).map(|(u, m)| (HomeUpload::Local(u), m))
            }
            HomeStore::Objects(store) => {
                store.open_sized_upload(target, size, may_create).map(|(u, m)| (HomeUpload::Objects(Box::new(u)), m))
            }
        }
    }

    fn would_hash(&self, target: &VirtualPath) -> bool {
        either!(self, store => store.would_hash(target))
    }

    fn remember_upload_state(&self, upload: &HomeUpload, hasher: &Md5) {
        if let (HomeStore::Local(store), HomeUpload::Local(upload)) = (self, upload) {
            store.remember_upload_state(upload, hasher)
        }
    }

    fn open_stream_upload(
        &self,
        target: &VirtualPath,
        may_create: bool,
    ) -> Result<(HomeUpload, Option<u64>), StorageError> {
        match self {
            HomeStore::Local(store) => {
                store.open_stream_upload(target, may_create).map(|(u, l)| (HomeUpload::Local(u), l))
            }
            HomeStore::Objects(store) => {
                store.open_stream_upload(target, may_create).map(|(u, l)| (HomeUpload::Objects(Box::new(u)), l))
            }
        }
    }

    fn continue_upload(&self, upload: &mut HomeUpload, start: &StreamStart) -> Result<(), StorageError> {
        match (self, upload) {
            (HomeStore::Local(store), HomeUpload::Local(upload)) => store.continue_upload(upload, start),
            (HomeStore::Objects(store), HomeUpload::Objects(upload)) => store.continue_upload(upload, start),
            _ => Err(mismatched()),
        }
    }

    fn abandon_upload(&self, upload: &mut HomeUpload) {
        match (self, upload) {
            (HomeStore::Local(store), HomeUpload::Local(upload)) => store.abandon_upload(upload),
            (HomeStore::Objects(store), HomeUpload::Objects(upload)) => store.abandon_upload(upload),
            _ => {}
        }
    }

    fn publish_checked(
        &self,
        upload: HomeUpload,
        md5: Md5Digest,
        sender_md5: &[u8],
    ) -> Result<PublishedUpload, PublishFailed> {
        match (self, upload) {
            (HomeStore::Local(store), HomeUpload::Local(upload)) => store.publish_checked(upload, md5, sender_md5),
            (HomeStore::Objects(store), HomeUpload::Objects(upload)) => store.publish_checked(*upload, md5, sender_md5),
            (_, upload) => Err(PublishFailed { error: mismatched(), change: upload.disk_change() }),
        }
    }

    fn publish_as_is(&self, upload: HomeUpload) -> Result<DiskChange, PublishFailed> {
        match (self, upload) {
            (HomeStore::Local(store), HomeUpload::Local(upload)) => store.publish_as_is(upload),
            (HomeStore::Objects(store), HomeUpload::Objects(upload)) => store.publish_as_is(*upload),
            (_, upload) => Err(PublishFailed { error: mismatched(), change: upload.disk_change() }),
        }
    }

    fn open_download(
        &self,
        path: &VirtualPath,
        offset: u64,
        prefix_md5: &[u8],
    ) -> Result<(HomeDownload, Md5), StorageError> {
        match self {
            HomeStore::Local(store) => {
                store.open_download(path, offset, prefix_md5).map(|(d, m)| (HomeDownload::Local(d), m))
            }
            HomeStore::Objects(store) => {
                store.open_download(path, offset, prefix_md5).map(|(d, m)| (HomeDownload::Objects(Box::new(d)), m))
            }
        }
    }

    fn open_download_at(&self, path: &VirtualPath, offset: u64) -> Result<HomeDownload, StorageError> {
        match self {
            HomeStore::Local(store) => store.open_download_at(path, offset).map(HomeDownload::Local),
            HomeStore::Objects(store) => {
                store.open_download_at(path, offset).map(|d| HomeDownload::Objects(Box::new(d)))
            }
        }
    }

    fn send_download(
        &self,
        download: HomeDownload,
        hasher: Md5,
        max: usize,
        send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<Md5Digest>, StorageError> {
        match (self, download) {
            (HomeStore::Local(store), HomeDownload::Local(download)) => {
                store.send_download(download, hasher, max, send)
            }
            (HomeStore::Objects(store), HomeDownload::Objects(download)) => {
                store.send_download(*download, hasher, max, send)
            }
            _ => Err(mismatched()),
        }
    }

    fn file_md5(
        &self,
        path: &VirtualPath,
        may_hash: impl FnOnce() -> bool,
    ) -> Result<Option<(Md5Digest, u64, u64)>, StorageError> {
        either!(self, store => store.file_md5(path, may_hash))
    }
}

/// Calls `$call` on whichever upload `$value` holds.
macro_rules! either_upload {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            HomeUpload::Local($inner) => $call,
            HomeUpload::Objects($inner) => $call,
        }
    };
}

impl UploadSession for HomeUpload {
    fn offset(&self) -> u64 {
        either_upload!(self, upload => upload.offset())
    }

    fn size(&self) -> u64 {
        either_upload!(self, upload => upload.size())
    }

    fn start_len(&self) -> u64 {
        either_upload!(self, upload => upload.start_len())
    }

    fn replaced_len(&self) -> u64 {
        either_upload!(self, upload => upload.replaced_len())
    }

    fn prefix_hashed(&self) -> u64 {
        either_upload!(self, upload => upload.prefix_hashed())
    }

    fn disk_change(&self) -> DiskChange {
        either_upload!(self, upload => upload.disk_change())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        either_upload!(self, upload => upload.append(bytes))
    }

    fn restart(&mut self) -> Result<(), StorageError> {
        either_upload!(self, upload => upload.restart())
    }

    fn own_md5(&self) -> Option<Md5> {
        either_upload!(self, upload => upload.own_md5())
    }
}

/// Calls `$call` on whichever download `$value` holds.
macro_rules! either_download {
    ($value:expr, $inner:ident => $call:expr) => {
        match $value {
            HomeDownload::Local($inner) => $call,
            HomeDownload::Objects($inner) => $call,
        }
    };
}

impl DownloadSession for HomeDownload {
    fn size(&self) -> u64 {
        either_download!(self, download => download.size())
    }

    fn start(&self) -> u64 {
        either_download!(self, download => download.start())
    }

    fn modified(&self) -> i64 {
        either_download!(self, download => download.modified())
    }

    fn prefix_hashed(&self) -> u64 {
        either_download!(self, download => download.prefix_hashed())
    }

    fn is_done(&self) -> bool {
        either_download!(self, download => download.is_done())
    }

    fn read_chunk_into(&mut self, chunk: &mut Vec<u8>, max: usize) -> Result<(), StorageError> {
        either_download!(self, download => download.read_chunk_into(chunk, max))
    }

    fn sends_file(&self) -> bool {
        either_download!(self, download => download.sends_file())
    }

    fn send_to(&mut self, socket: std::os::fd::BorrowedFd<'_>, max: usize) -> std::io::Result<usize> {
        either_download!(self, download => download.send_to(socket, max))
    }
}
