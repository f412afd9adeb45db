//! The file side of downloads: from an offset, after checking that the receiver's prefix is
//! the file's, with the MD5 either known from the digest index or computed on the way.
//!
//! Uploads are in [`super::partial`].

use std::io::{Read, Seek, SeekFrom};

use crate::integrity::{Digest, Md5};

use super::digest_index::{DigestIndex, FileStamp};
use super::error::StorageError;
use super::hashing::{Md5Digest, hash_prefix};
use super::jail::VirtualPath;
use super::local_store::LocalStore;
use super::store::DownloadSession;

/// A download in progress. Its MD5 is either known (stored when the file was written or last
/// hashed, see [`DigestIndex`]) or computed by the caller over the chunks read.
#[derive(Debug)]
pub struct Download {
    file: std::fs::File,
    stamp: FileStamp,
    known: Option<Md5Digest>,
    position: u64,
    start: u64,
    modified: i64,
    prefix_hashed: u64,
}

impl Download {
    /// Reads the rest of the file in chunks of at most `max` bytes and hands each to `send`,
    /// hashing it on the way unless the digest is known; returns the file's MD5 (remembered in
    /// `digests` if it was computed), or `None` if `send` said the receiver is gone. `hasher`
    /// holds the MD5 of the bytes before [`Download::start`], as [`Download::open`] gave it.
    pub fn send_rest(
        mut self,
        mut hasher: Md5,
        max: usize,
        digests: &DigestIndex,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<Md5Digest>, StorageError> {
        while !self.is_done() {
            let chunk = self.read_chunk(max)?;
            if self.known.is_none() {
                hasher.update(&chunk);
            }
            if !send(chunk) {
                return Ok(None);
            }
        }
        Ok(Some(self.known.unwrap_or_else(|| {
            let md5 = hasher.finalize().into();
            self.remember(md5, digests);
            md5
        })))
    }

    /// Opens `path` for download. If the receiver's first `offset` bytes hash to
    /// `prefix_md5` (checked against ours), the download starts there; otherwise from 0.
    /// Returns the MD5 of the bytes before the start, for the caller to continue (it is only
    /// needed when [`Download::known_md5`] is `None`).
    pub fn open(
        home: &LocalStore,
        path: &VirtualPath,
        offset: u64,
        prefix_md5: &[u8],
        digests: &DigestIndex,
    ) -> Result<(Download, Md5), StorageError> {
        let mut download = Download::open_file(home, path, digests)?;
        let mut hasher = Md5::new();
        let (size, known) = (download.size(), download.known);
        if offset > 0 && offset <= size {
            // The receiver holds the whole file: with a stored digest there is nothing to hash.
            let prefix = match known {
                Some(md5) if offset == size => md5,
                _ => {
                    hash_prefix(&mut download.file, offset, &mut hasher)?;
                    download.prefix_hashed = offset;
                    hasher.clone().finalize().into()
                }
            };
            if prefix[..] == *prefix_md5 {
                download.start = offset;
                download.position = offset;
            } else {
                hasher = Md5::new();
            }
            download.file.seek(SeekFrom::Start(download.position))?;
        }
        Ok((download, hasher))
    }

    fn open_file(home: &LocalStore, path: &VirtualPath, digests: &DigestIndex) -> Result<Download, StorageError> {
        if path.is_root() {
            return Err(StorageError::IsADirectory);
        }
        let (file, meta) = super::open_for_reading(home.dir(), &path.to_relative())?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        let modified = meta.modified().map_or(0, super::local_store::unix_time);
        let stamp = FileStamp::of(&meta);
        let known = digests.get(&stamp);
        Ok(Download { file, stamp, known, position: 0, start: 0, modified, prefix_hashed: 0 })
    }

    /// Opens `path` to send from byte `offset` on, unchecked (FTP's REST + RETR: the client
    /// alone vouches for its prefix).
    pub fn open_at(
        home: &LocalStore,
        path: &VirtualPath,
        offset: u64,
        digests: &DigestIndex,
    ) -> Result<Download, StorageError> {
        let mut download = Download::open_file(home, path, digests)?;
        if offset > download.size() {
            return Err(StorageError::RestartBeyondEnd { offset, available: download.size() });
        }
        download.file.seek(SeekFrom::Start(offset))?;
        download.start = offset;
        download.position = offset;
        Ok(download)
    }

    /// The file's MD5 if it is already known, so the chunks need not be hashed.
    pub fn known_md5(&self) -> Option<Md5Digest> {
        self.known
    }

    /// Reads the next chunk of at most `max` bytes (empty when done).
    pub fn read_chunk(&mut self, max: usize) -> Result<Vec<u8>, StorageError> {
        let mut chunk = Vec::new();
        self.read_chunk_into(&mut chunk, max)?;
        Ok(chunk)
    }

    /// Remembers `md5`, computed over the whole file as it was read, if the file did not
    /// change meanwhile, so the next download need not hash it.
    pub fn remember(&self, md5: Md5Digest, digests: &DigestIndex) {
        if let Ok(meta) = self.file.metadata()
            && FileStamp::of(&meta) == self.stamp
        {
            digests.record(self.stamp, md5);
        }
    }
}

impl DownloadSession for Download {
    /// The bytes are in a local file.
    fn sends_file(&self) -> bool {
        true
    }

    fn size(&self) -> u64 {
        self.stamp.size()
    }

    /// Where the data starts.
    fn start(&self) -> u64 {
        self.start
    }

    /// Modification time, Unix seconds.
    fn modified(&self) -> i64 {
        self.modified
    }

    /// Bytes hashed to check the receiver's prefix (for the resume-hashing budget).
    fn prefix_hashed(&self) -> u64 {
        self.prefix_hashed
    }

    fn is_done(&self) -> bool {
        self.position == self.size()
    }

    /// Sends up to `max` bytes from where the download is straight to `out` (a socket) with
    /// sendfile(2): the kernel moves the file's pages, with no copy through our memory. Returns
    /// how many bytes went, 0 once the file ended early (it shrank during the transfer). It
    /// moves the file's own position, as the reads do, so the two can follow each other.
    fn send_to(&mut self, out: std::os::fd::BorrowedFd<'_>, max: usize) -> std::io::Result<usize> {
        use std::os::fd::AsRawFd;
        let want = max.min((self.size() - self.position) as usize);
        // SAFETY: both descriptors are open for the call (borrowed); a null offset makes the
        // kernel read from, and advance, the file's own position.
        let sent = unsafe { libc::sendfile(out.as_raw_fd(), self.file.as_raw_fd(), std::ptr::null_mut(), want) };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.position += sent as u64;
        Ok(sent as usize)
    }

    /// Like [`Download::read_chunk`], into `chunk` (resized to what was read), so a caller can
    /// reuse its buffers instead of asking the allocator for fresh memory every chunk.
    fn read_chunk_into(&mut self, chunk: &mut Vec<u8>, max: usize) -> Result<(), StorageError> {
        let want = max.min((self.size() - self.position) as usize);
        chunk.resize(want, 0);
        let mut filled = 0;
        while filled < want {
            let got = self.file.read(&mut chunk[filled..])?;
            if got == 0 {
                return Err(StorageError::ChangedDuringTransfer);
            }
            filled += got;
        }
        self.position += want as u64;
        Ok(())
    }
}

/// The MD5 of a whole file, from the digest index when the file has not changed since it was
/// written or last hashed, else by reading it (and remembering the result). Returns the
/// digest, the file's size, and how many bytes had to be hashed (0 when the digest was known).
/// `may_hash` is asked only when the file must be read; `Ok(None)` if it says no.
pub fn file_md5(
    home: &LocalStore,
    path: &VirtualPath,
    digests: &DigestIndex,
    may_hash: impl FnOnce() -> bool,
) -> Result<Option<(Md5Digest, u64, u64)>, StorageError> {
    let mut download = Download::open_file(home, path, digests)?;
    let size = download.size();
    if let Some(md5) = download.known {
        return Ok(Some((md5, size, 0)));
    }
    if !may_hash() {
        return Ok(None);
    }
    let mut hasher = Md5::new();
    hash_prefix(&mut download.file, size, &mut hasher)?;
    let md5 = hasher.finalize().into();
    download.remember(md5, digests);
    Ok(Some((md5, size, size)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::partial::tests::{setup, vp};
    use crate::storage::{PartialUpload, StreamRequest, StreamStart, UploadSession, md5_of};

    /// Downloads the rest of a file as the session does; returns the bytes and the MD5.
    fn read_rest(download: Download, hasher: Md5, digests: &DigestIndex) -> (Vec<u8>, Md5Digest) {
        let mut got = Vec::new();
        let md5 = download.send_rest(hasher, 777, digests, |chunk| {
            got.extend(chunk);
            true
        });
        (got, md5.unwrap().expect("every chunk was taken"))
    }

    #[test]
    fn a_download_stops_when_its_receiver_is_gone() {
        let (root, home) = setup();
        std::fs::write(root.path().join("f"), vec![5u8; 3000]).unwrap();
        let digests = DigestIndex::default();
        let (download, hasher) = Download::open(&home, &vp("f"), 0, &md5_of(b""), &digests).unwrap();
        let mut sent = 0;
        let md5 = download.send_rest(hasher, 1000, &digests, |_| {
            sent += 1;
            sent < 2
        });
        assert_eq!(md5.unwrap(), None);
        assert_eq!(sent, 2, "nothing read after the receiver went away");
        assert!(digests.is_empty(), "no digest remembered for a download that did not finish");
    }

    #[test]
    fn a_resume_point_truncates_the_partial_and_downloads_start_there() {
        let (root, home) = setup();
        let digests = DigestIndex::default();
        std::fs::write(root.path().join(".f.ftpa-part"), b"0123456789").unwrap();
        let (mut upload, target_len) = PartialUpload::open_stream(&home, &vp("f"), true).unwrap();
        let start = StreamStart::plan(StreamRequest::At(4), target_len, upload.offset()).unwrap();
        upload.continue_at(&home, &start).unwrap();
        upload.append(b"xy").unwrap();
        upload.publish_stream(&home).unwrap();
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), b"0123xy");
        let download = Download::open_at(&home, &vp("f"), 2, &digests).unwrap();
        let (rest, _) = read_rest(download, Md5::new(), &digests);
        assert_eq!(rest, b"23xy");
        assert!(matches!(Download::open_at(&home, &vp("f"), 7, &digests), Err(StorageError::RestartBeyondEnd { .. })));
    }

    #[test]
    fn download_resumes_only_from_a_matching_prefix() {
        let (root, home) = setup();
        let digests = DigestIndex::default();
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        std::fs::write(root.path().join("f"), &data).unwrap();
        let (d, hasher) = Download::open(&home, &vp("f"), 1000, &md5_of(&data[..1000]), &digests).unwrap();
        assert_eq!((d.start(), d.prefix_hashed()), (1000, 1000));
        let (got, md5) = read_rest(d, hasher, &digests);
        assert_eq!(got, &data[1000..]);
        assert_eq!(md5, md5_of(&data));
        let (d, _) = Download::open(&home, &vp("f"), 1000, &md5_of(b"other"), &digests).unwrap();
        assert_eq!(d.start(), 0);
        let (d, _) = Download::open(&home, &vp("f"), 9999, &md5_of(b""), &digests).unwrap();
        assert_eq!(d.start(), 0);
        let root_dir = Download::open(&home, &VirtualPath::root(), 0, &[], &digests);
        assert!(matches!(root_dir, Err(StorageError::IsADirectory)));
    }

    #[test]
    fn a_stored_digest_spares_hashing_until_the_file_changes() {
        let (root, home) = setup();
        let digests = DigestIndex::default();
        let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        std::fs::write(root.path().join("f"), &data).unwrap();

        let (d, hasher) = Download::open(&home, &vp("f"), 0, &[], &digests).unwrap();
        assert_eq!(d.known_md5(), None, "never hashed yet");
        assert_eq!(read_rest(d, hasher, &digests).1, md5_of(&data));

        let (d, hasher) = Download::open(&home, &vp("f"), 0, &[], &digests).unwrap();
        assert_eq!(d.known_md5(), Some(md5_of(&data)), "remembered from the first download");
        assert_eq!(read_rest(d, hasher, &digests), (data.clone(), md5_of(&data)));

        // A receiver that already has the whole file is answered without hashing.
        let (d, _) = Download::open(&home, &vp("f"), 5000, &md5_of(&data), &digests).unwrap();
        assert_eq!((d.start(), d.prefix_hashed(), d.is_done()), (5000, 0, true));

        // Changed behind the server's back (same size): hashed again, and right. (The pause
        // lets the clock tick past the stamp: file times are coarse; see the index's doc.)
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut changed = data.clone();
        changed[0] ^= 1;
        std::fs::write(root.path().join("f"), &changed).unwrap();
        let (d, hasher) = Download::open(&home, &vp("f"), 0, &[], &digests).unwrap();
        assert_eq!(d.known_md5(), None);
        assert_eq!(read_rest(d, hasher, &digests).1, md5_of(&changed));
    }
}
