//! A download from object storage: ranged GETs of the object the name referred to when the
//! download opened. Objects are never written in place, so a download (and its resume, which
//! asks for the same name again) reads one consistent file even if the name is replaced
//! meanwhile: the replaced object is deleted only after a grace period (see the sweeper).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::storage::error::StorageError;
use crate::storage::store::DownloadSession;

use super::ObjectStorage;
use super::namespace::EntryRow;
use crate::storage::Md5Digest;

/// The rest of one object, from a start offset.
pub struct ObjectDownload {
    storage: Arc<ObjectStorage>,
    /// `None` for an empty file.
    key: Option<String>,
    size: u64,
    start: u64,
    position: u64,
    modified: i64,
    /// The GET in progress, opened at the first read.
    body: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    /// Received and not handed out yet.
    pending: Bytes,
    pub(crate) prefix_hashed: u64,
    /// The file's MD5 as stored with its name, when opened by name.
    pub(crate) stored_md5: Option<Md5Digest>,
}

impl ObjectDownload {
    pub fn new(
        storage: Arc<ObjectStorage>,
        key: Option<String>,
        size: u64,
        start: u64,
        modified: i64,
    ) -> ObjectDownload {
        ObjectDownload {
            storage,
            key,
            size,
            start,
            position: start,
            modified,
            body: None,
            pending: Bytes::new(),
            prefix_hashed: 0,
            stored_md5: None,
        }
    }

    /// The file `row` names, from `start`.
    pub fn of(storage: Arc<ObjectStorage>, row: &EntryRow, start: u64) -> ObjectDownload {
        let mut download = ObjectDownload::new(storage, row.object_key.clone(), row.size, start, row.modified);
        download.stored_md5 = row.md5;
        download
    }

    /// The next bytes of the body, opening the GET if needed.
    fn next_bytes(&mut self) -> Result<Bytes, StorageError> {
        if !self.pending.is_empty() {
            return Ok(std::mem::take(&mut self.pending));
        }
        let storage = self.storage.clone();
        if self.body.is_none() {
            let key = ObjectPath::from(self.key.clone().ok_or(StorageError::ChangedDuringTransfer)?);
            let options = GetOptions { range: Some(GetRange::Bounded(self.position..self.size)), ..Default::default() };
            let result =
                storage.runtime.block_on(storage.bucket.get_opts(&key, options)).map_err(|error| match error {
                    // Its name was replaced or removed and the grace period is over.
                    object_store::Error::NotFound { .. } => StorageError::ChangedDuringTransfer,
                    error => error.into(),
                })?;
            self.body = Some(result.into_stream());
        }
        let body = self.body.as_mut().expect("opened above");
        match storage.runtime.block_on(body.next()) {
            Some(Ok(bytes)) => Ok(bytes),
            Some(Err(error)) => {
                // The next read opens a new GET where this one stopped.
                self.body = None;
                Err(error.into())
            }
            None => Err(StorageError::ChangedDuringTransfer),
        }
    }
}

impl DownloadSession for ObjectDownload {
    fn size(&self) -> u64 {
        self.size
    }

    fn start(&self) -> u64 {
        self.start
    }

    fn modified(&self) -> i64 {
        self.modified
    }

    fn prefix_hashed(&self) -> u64 {
        self.prefix_hashed
    }

    fn is_done(&self) -> bool {
        self.position >= self.size
    }

    fn read_chunk_into(&mut self, chunk: &mut Vec<u8>, max: usize) -> Result<(), StorageError> {
        chunk.clear();
        let want = (max as u64).min(self.size - self.position) as usize;
        while chunk.len() < want {
            let mut bytes = self.next_bytes()?;
            let take = bytes.len().min(want - chunk.len());
            chunk.extend_from_slice(&bytes[..take]);
            self.pending = bytes.split_off(take);
            self.position += take as u64;
        }
        Ok(())
    }
}
