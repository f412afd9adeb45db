//! The storage seam: where one user's files are kept, as the file service
//! ([`crate::service`]) needs them. [`LocalStore`] keeps them in a home directory on this
//! machine; another backend (names in a database, contents in an object store) implements the
//! same three traits and the service, with every front end above it, works unchanged.
//!
//! The shape is what both kinds of backend can do well:
//! - **No in-place writes.** A published file is never written into or seeked in; it is
//!   replaced whole, by publishing an upload, or removed.
//! - **An upload is a session object** ([`UploadSession`]): opened, appended to chunk by chunk,
//!   with a durable offset (what a resume continues after), then published or abandoned. A
//!   local disk backs it with a hidden partial file renamed into place; an object store with a
//!   multipart upload completed at publishing.
//! - **A download is a reader from an offset** ([`DownloadSession`]); a local disk may also
//!   offer sendfile(2), an optional capability ([`DownloadSession::sends_file`]) that callers
//!   check, not part of every call.
//! - **Identities and the state kept by them stay inside.** Each store keeps the digests of its
//!   files and the MD5 states of its interrupted uploads, found by its own notion of a file
//!   version (inode, size and ctime locally; an object or row version elsewhere); the service
//!   never sees an inode, and passes no index in.
//!
//! Every call blocks and runs on the disk pool: a backend that talks to a network blocks there
//! as a disk does, and the pool's size bounds both the same way.

use std::time::SystemTime;

use crate::integrity::Md5;
use crate::net::Entry;
use crate::quota::DiskChange;

use super::error::StorageError;
use super::hashing::Md5Digest;
use super::jail::VirtualPath;
use super::list_page::{Listing, PageRequest};
use super::local_store::{PartialFound, RemovedFile};
use super::partial::{PublishFailed, PublishedUpload};
use super::stream_start::StreamStart;

#[cfg(doc)]
use super::local_store::LocalStore;

/// One user's files: names, directories, and the uploads and downloads of their contents.
pub trait FileStore: Send + Sync + 'static {
    type Upload: UploadSession;
    type Download: DownloadSession;

    /// Succeeds if `path` is a directory.
    fn check_dir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// A page of a directory's entries: at most `max_entries` of them after `after`, in
    /// listing order (see [`super::list_page`]), and whether more follow; a partial upload is
    /// listed under the name it will be published as, with the kind `partial`. A file's
    /// listing is its one entry.
    fn list(&self, path: &VirtualPath, request: &PageRequest) -> Result<Listing, StorageError>;
    fn stat(&self, path: &VirtualPath) -> Result<Entry, StorageError>;
    /// What a resume of `path` continues after: the published file's size, else the partial's.
    fn resume_len(&self, path: &VirtualPath) -> Result<u64, StorageError>;
    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Removes a file; says what it held in the quota and whether a partial upload to the same
    /// name remains.
    fn remove_file(&self, path: &VirtualPath) -> Result<RemovedFile, StorageError>;
    /// Removes the partial upload to `target` if it was last written before `unchanged_since`
    /// (any age if `None`; [`StorageError::InUse`] if newer); returns the quota bytes it held.
    /// The caller holds the path's upload lock.
    fn remove_partial(&self, target: &VirtualPath, unchanged_since: Option<SystemTime>) -> Result<u64, StorageError>;
    /// Every partial upload the user has, in every directory.
    fn partials(&self) -> Result<Vec<PartialFound>, StorageError>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError>;
    /// Moves a file or a directory; never replaces what is at `to`.
    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError>;
    fn set_modified(&self, path: &VirtualPath, unix: i64) -> Result<(), StorageError>;

    /// Opens an upload of `size` bytes to `target`, resuming what an interrupted one left;
    /// returns it with the MD5 of the bytes it already holds (remembered by
    /// [`FileStore::remember_upload_state`], or read). It is created only if `may_create` (the
    /// quota has room for its entry).
    fn open_sized_upload(
        &self,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(Self::Upload, Md5), StorageError>;
    /// Would [`FileStore::open_sized_upload`] have to read bytes to know their MD5?
    fn would_hash(&self, target: &VirtualPath) -> bool;
    /// Keeps `hasher`, the MD5 of every byte the upload holds, for a later resume of it.
    fn remember_upload_state(&self, upload: &Self::Upload, hasher: &Md5);
    /// Opens an upload of unannounced size; returns it with the size of the file published at
    /// `target`, if there is one (see [`StreamStart::plan`]).
    fn open_stream_upload(
        &self,
        target: &VirtualPath,
        may_create: bool,
    ) -> Result<(Self::Upload, Option<u64>), StorageError>;
    /// Makes the upload hold the prefix its data continues after (see [`StreamStart`]).
    fn continue_upload(&self, upload: &mut Self::Upload, start: &StreamStart) -> Result<(), StorageError>;
    /// Gives up on an upload: one that holds nothing is removed, one with data is kept for a
    /// resume.
    fn abandon_upload(&self, upload: &mut Self::Upload);
    /// Publishes an upload under its name if `md5` (ours, of every byte) matches the sender's,
    /// and stores the digest; an upload whose bytes do not match is discarded.
    fn publish_checked(
        &self,
        upload: Self::Upload,
        md5: Md5Digest,
        sender_md5: &[u8],
    ) -> Result<PublishedUpload, PublishFailed>;
    /// Publishes an upload as it is (its data ended cleanly; no checksum came with it).
    fn publish_as_is(&self, upload: Self::Upload) -> Result<DiskChange, PublishFailed>;

    /// Opens `path` to send from `offset` if the receiver's MD5 of its first `offset` bytes is
    /// `prefix_md5` (else from 0); returns the MD5 of the bytes before the start.
    fn open_download(
        &self,
        path: &VirtualPath,
        offset: u64,
        prefix_md5: &[u8],
    ) -> Result<(Self::Download, Md5), StorageError>;
    /// Opens `path` to send from `offset`, unchecked.
    fn open_download_at(&self, path: &VirtualPath, offset: u64) -> Result<Self::Download, StorageError>;
    /// Reads the rest of a download in chunks of at most `max` bytes and hands each to `send`,
    /// hashing on the way unless the digest is stored (and storing it then); returns the whole
    /// file's MD5, or `None` if `send` said the receiver is gone. `hasher` holds the MD5 of the
    /// bytes before the start, as [`FileStore::open_download`] gave it.
    fn send_download(
        &self,
        download: Self::Download,
        hasher: Md5,
        max: usize,
        send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<Md5Digest>, StorageError>;
    /// The MD5 of a whole file: stored, or read if `may_hash` allows (`None` if not). Returns
    /// the digest, the file's size and the bytes read.
    fn file_md5(
        &self,
        path: &VirtualPath,
        may_hash: impl FnOnce() -> bool,
    ) -> Result<Option<(Md5Digest, u64, u64)>, StorageError>;
}

/// An upload between its opening and its publishing. The caller hashes what it appends.
pub trait UploadSession: Send + 'static {
    /// Bytes held: where the data continues, and what a resume would continue after.
    fn offset(&self) -> u64;
    /// The announced size (unbounded for an upload of unannounced size).
    fn size(&self) -> u64;
    /// Bytes the upload held when opened (they already count in the quota).
    fn start_len(&self) -> u64;
    /// Quota bytes of the file the upload will replace.
    fn replaced_len(&self) -> u64;
    /// Bytes read at opening to know the MD5 of what the upload held.
    fn prefix_hashed(&self) -> u64;
    /// What the upload changed in the user's figures so far, while it is not published.
    fn disk_change(&self) -> DiskChange;
    /// Appends a chunk; refuses bytes past the announced size.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError>;
    /// Empties the upload (the sender's file does not start with what it held).
    fn restart(&mut self) -> Result<(), StorageError>;
    /// The MD5 of every byte held, if the upload keeps one itself (an object upload, which
    /// records it with each part): the caller then hashes nothing.
    fn own_md5(&self) -> Option<Md5> {
        None
    }
}

/// A download from its start offset to the end of the file.
pub trait DownloadSession: Send + 'static {
    fn size(&self) -> u64;
    /// Where the download started.
    fn start(&self) -> u64;
    /// Modification time, Unix seconds.
    fn modified(&self) -> i64;
    /// Bytes read at opening to check the receiver's prefix.
    fn prefix_hashed(&self) -> u64;
    fn is_done(&self) -> bool;
    /// Reads the next chunk of at most `max` bytes into `chunk` (resized to what was read).
    fn read_chunk_into(&mut self, chunk: &mut Vec<u8>, max: usize) -> Result<(), StorageError>;
    /// Can [`DownloadSession::send_to`] move the bytes with sendfile(2)? Only where they are in
    /// a local file.
    fn sends_file(&self) -> bool {
        false
    }
    /// Sends up to `max` bytes straight to a socket with sendfile(2); returns how many went (0
    /// once the file ended early). Only where [`DownloadSession::sends_file`].
    fn send_to(&mut self, _socket: std::os::fd::BorrowedFd<'_>, _max: usize) -> std::io::Result<usize> {
        Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
    }
}
