//! The file side of uploads and downloads: streaming with the MD5 computed on the way.
//!
//! An upload writes into the hidden partial file next to its target and is renamed onto the
//! target only after the sender's MD5 matches ours, so no wrong file is ever visible under its
//! name. A partial left by an interrupted upload is resumed: its bytes are hashed once (which
//! the whole-file MD5 needs anyway) and the sender compares that prefix digest with its own.

use std::io::{Read, Seek, SeekFrom, Write};

use cap_std::fs::{OpenOptions, OpenOptionsExt};
use md5::{Digest, Md5};

use super::error::StorageError;
use super::home::{Home, quota_bytes};
use super::jail::VirtualPath;

/// An MD5 digest.
pub type Md5Digest = [u8; 16];

/// Block size for hashing existing bytes.
const HASH_BLOCK: usize = 1 << 20;

/// Feeds `len` bytes from `file`'s current position into `hasher`; a file shorter than that
/// is an `UnexpectedEof` error. Shared by the server (prefix checks, resumed partials) and the
/// client (its local file or partial).
pub fn hash_prefix(file: &mut std::fs::File, len: u64, hasher: &mut Md5) -> std::io::Result<()> {
    let mut buffer = vec![0u8; HASH_BLOCK.min(len as usize).max(1)];
    let mut left = len;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let got = file.read(&mut buffer[..want])?;
        if got == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while being read"));
        }
        hasher.update(&buffer[..got]);
        left -= got as u64;
    }
    Ok(())
}

/// An upload in progress: the open partial file and the MD5 of what it holds.
#[derive(Debug)]
pub struct PartialUpload {
    file: std::fs::File,
    hasher: Md5,
    target: VirtualPath,
    partial: VirtualPath,
    size: u64,
    len: u64,
    start_len: u64,
    replaced_len: u64,
}

/// An upload that could not be published.
#[derive(Debug)]
pub struct PublishFailed {
    pub error: StorageError,
    /// `Some(growth)` if the partial stays on disk for a resume (growth as in
    /// [`PartialUpload::growth`]); `None` if it was deleted.
    pub kept_growth: Option<i64>,
}

/// A verified upload, published under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedUpload {
    pub md5: Md5Digest,
    /// Quota bytes of the file it replaced (0 for a new file).
    pub replaced_len: u64,
}

impl PartialUpload {
    /// Opens (or creates, mode 0600) the partial for `target` and hashes what it holds. A
    /// partial longer than `size` cannot be a prefix of the new file and is emptied.
    pub fn open(home: &Home, target: &VirtualPath, size: u64) -> Result<PartialUpload, StorageError> {
        let partial = target.partial().ok_or(StorageError::IsADirectory)?;
        let replaced_len = match home.dir().symlink_metadata(target.to_relative()) {
            Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory),
            Ok(meta) => quota_bytes(&meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        home.check_dir(&target.parent())?;
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).mode(0o600);
        let file = home.dir().open_with(partial.to_relative(), &options)?.into_std();
        let start_len = file.metadata()?.len();
        let mut upload = PartialUpload {
            file,
            hasher: Md5::new(),
            target: target.clone(),
            partial,
            size,
            len: start_len,
            start_len,
            replaced_len,
        };
        if start_len > size {
            upload.restart()?;
        } else {
            hash_prefix(&mut upload.file, start_len, &mut upload.hasher)?;
        }
        Ok(upload)
    }

    /// Bytes already in the partial: where the sender continues.
    pub fn offset(&self) -> u64 {
        self.len
    }

    /// The announced size of the whole file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The path the upload will be published under.
    pub fn target(&self) -> &VirtualPath {
        &self.target
    }

    /// MD5 of the bytes `0..offset()`.
    pub fn prefix_md5(&self) -> Md5Digest {
        self.hasher.clone().finalize().into()
    }

    /// Quota bytes of the file this upload will replace.
    pub fn replaced_len(&self) -> u64 {
        self.replaced_len
    }

    /// How much the partial grew (negative: shrank) since it was opened.
    pub fn growth(&self) -> i64 {
        self.len as i64 - self.start_len as i64
    }

    /// Gives up before any data arrived: an empty partial is removed, so a refused upload
    /// leaves nothing behind. A non-empty one is kept for a later resume.
    pub fn abandon(self, home: &Home) {
        if self.len == 0 {
            let _ = home.dir().remove_file(self.partial.to_relative());
        }
    }

    /// Empties the partial: the sender's file does not start with what it held.
    pub fn restart(&mut self) -> Result<(), StorageError> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.hasher = Md5::new();
        self.len = 0;
        Ok(())
    }

    /// Appends a chunk. Refuses bytes past the announced size.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StorageError> {
        if self.len + data.len() as u64 > self.size {
            return Err(StorageError::TooMuchData);
        }
        if let Err(error) = self.file.write_all(data) {
            // Keep the partial consistent with what we hashed: drop a torn tail.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(error.into());
        }
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Checks the sender's MD5 and publishes the file under its name.
    ///
    /// On a mismatch the partial is deleted (its bytes are wrong somewhere, so resuming it
    /// would only fail again) and the error says so; on an incomplete upload it is kept.
    pub fn publish(self, home: &Home, sender_md5: &[u8]) -> Result<PublishedUpload, PublishFailed> {
        if self.len != self.size {
            let error = StorageError::Incomplete { received: self.len, expected: self.size };
            return Err(PublishFailed { error, kept_growth: Some(self.growth()) });
        }
        let md5: Md5Digest = self.hasher.clone().finalize().into();
        if md5[..] != *sender_md5 {
            let _ = home.dir().remove_file(self.partial.to_relative());
            let error = StorageError::ChecksumMismatch { expected: hex::encode(sender_md5), actual: hex::encode(md5) };
            return Err(PublishFailed { error, kept_growth: None });
        }
        let publish = || -> Result<u64, StorageError> {
            self.file.sync_all()?;
            let replaced_len = match home.dir().symlink_metadata(self.target.to_relative()) {
                Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory),
                Ok(meta) => quota_bytes(&meta),
                Err(_) => 0,
            };
            home.dir().rename(self.partial.to_relative(), home.dir(), self.target.to_relative())?;
            Ok(replaced_len)
        };
        match publish() {
            Ok(replaced_len) => Ok(PublishedUpload { md5, replaced_len }),
            Err(error) => Err(PublishFailed { error, kept_growth: Some(self.growth()) }),
        }
    }
}

/// A download in progress.
#[derive(Debug)]
pub struct Download {
    file: std::fs::File,
    hasher: Md5,
    size: u64,
    position: u64,
    start: u64,
    modified: i64,
}

impl Download {
    /// Opens `path` for download. If the receiver's first `offset` bytes hash to
    /// `prefix_md5` (checked against ours), the download starts there; otherwise from 0.
    pub fn open(home: &Home, path: &VirtualPath, offset: u64, prefix_md5: &[u8]) -> Result<Download, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let mut file = home.dir().open(path.to_relative())?.into_std();
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let size = meta.len();
        let mut hasher = Md5::new();
        let mut start = 0;
        if offset > 0 && offset <= size {
            hash_prefix(&mut file, offset, &mut hasher)?;
            if hasher.clone().finalize()[..] == *prefix_md5 {
                start = offset;
            } else {
                hasher = Md5::new();
                file.seek(SeekFrom::Start(0))?;
            }
        }
        Ok(Download { file, hasher, size, position: start, start, modified })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Where the data starts.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Modification time, Unix seconds.
    pub fn modified(&self) -> i64 {
        self.modified
    }

    pub fn is_done(&self) -> bool {
        self.position == self.size
    }

    /// Reads the next chunk of at most `max` bytes (empty when done).
    pub fn read_chunk(&mut self, max: usize) -> Result<Vec<u8>, StorageError> {
        let want = max.min((self.size - self.position) as usize);
        let mut chunk = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            let got = self.file.read(&mut chunk[filled..])?;
            if got == 0 {
                return Err(StorageError::ChangedDuringTransfer);
            }
            filled += got;
        }
        self.hasher.update(&chunk);
        self.position += want as u64;
        Ok(chunk)
    }

    /// MD5 of the whole file (call when done).
    pub fn md5(&self) -> Md5Digest {
        self.hasher.clone().finalize().into()
    }
}

/// MD5 of a byte slice (tests and small helpers).
pub fn md5_of(data: &[u8]) -> Md5Digest {
    Md5::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::jail::PathLimits;

    fn vp(text: &str) -> VirtualPath {
        VirtualPath::resolve(&VirtualPath::root(), text, PathLimits::default()).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Home) {
        let root = tempfile::tempdir().unwrap();
        let home = Home::open(root.path()).unwrap();
        (root, home)
    }

    #[test]
    fn upload_publishes_only_after_md5_matches() {
        let (root, home) = setup();
        let data = b"hello world".to_vec();
        let mut up = PartialUpload::open(&home, &vp("f"), data.len() as u64).unwrap();
        assert_eq!(up.offset(), 0);
        up.write(&data[..5]).unwrap();
        up.write(&data[5..]).unwrap();
        assert!(!root.path().join("f").exists(), "nothing under the name before publishing");
        let done = up.publish(&home, &md5_of(&data)).unwrap();
        assert_eq!(done.md5, md5_of(&data));
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), data);
        assert!(!root.path().join(".f.ftpa-part").exists());
    }

    #[test]
    fn mismatch_discards_the_partial_and_keeps_the_old_file() {
        let (root, home) = setup();
        std::fs::write(root.path().join("f"), "old").unwrap();
        let mut up = PartialUpload::open(&home, &vp("f"), 3).unwrap();
        assert_eq!(up.replaced_len(), 3);
        up.write(b"new").unwrap();
        let failed = up.publish(&home, &md5_of(b"NEW")).unwrap_err();
        assert!(matches!(failed.error, StorageError::ChecksumMismatch { .. }));
        assert!(failed.kept_growth.is_none());
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), b"old");
        assert!(!root.path().join(".f.ftpa-part").exists());
    }

    #[test]
    fn resume_continues_the_hash_and_restart_empties() {
        let (root, home) = setup();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut up = PartialUpload::open(&home, &vp("f"), data.len() as u64).unwrap();
        up.write(&data[..4000]).unwrap();
        assert!(matches!(up.write(&data), Err(StorageError::TooMuchData)));
        drop(up); // connection lost
        let mut up = PartialUpload::open(&home, &vp("f"), data.len() as u64).unwrap();
        assert_eq!(up.offset(), 4000);
        assert_eq!(up.prefix_md5(), md5_of(&data[..4000]));
        up.write(&data[4000..]).unwrap();
        assert_eq!(up.growth(), 6000);
        up.publish(&home, &md5_of(&data)).unwrap();
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), data);

        std::fs::write(root.path().join(".g.ftpa-part"), "xyz").unwrap();
        let mut up = PartialUpload::open(&home, &vp("g"), 2).unwrap();
        assert_eq!(up.offset(), 0, "a partial longer than the file is emptied");
        up.write(b"ab").unwrap();
        let failed = PartialUpload::open(&home, &vp("h"), 5).unwrap().publish(&home, &md5_of(b"x")).unwrap_err();
        assert!(matches!(failed.error, StorageError::Incomplete { received: 0, expected: 5 }));
        assert_eq!(failed.kept_growth, Some(0));
    }

    #[test]
    fn download_resumes_only_from_a_matching_prefix() {
        let (root, home) = setup();
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        std::fs::write(root.path().join("f"), &data).unwrap();
        let mut d = Download::open(&home, &vp("f"), 1000, &md5_of(&data[..1000])).unwrap();
        assert_eq!(d.start(), 1000);
        let mut got = Vec::new();
        while !d.is_done() {
            got.extend(d.read_chunk(777).unwrap());
        }
        assert_eq!(got, &data[1000..]);
        assert_eq!(d.md5(), md5_of(&data));
        let d = Download::open(&home, &vp("f"), 1000, &md5_of(b"other")).unwrap();
        assert_eq!(d.start(), 0);
        let d = Download::open(&home, &vp("f"), 9999, &md5_of(b"")).unwrap();
        assert_eq!(d.start(), 0);
        assert!(matches!(Download::open(&home, &VirtualPath::root(), 0, &[]), Err(StorageError::IsADirectory)));
    }
}
