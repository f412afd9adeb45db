//! Stored MD5 digests of files the server wrote or already hashed, so a download of an
//! unchanged file does not hash it again: the client still hashes every byte it receives and
//! compares with this digest, which was computed over the bytes when they were written. (A
//! file that rotted on disk since is therefore caught too.)
//!
//! A digest is valid only for the exact file it was computed on. Files are identified by
//! device and inode, and must still have the same size, modification time and status-change
//! time (ctime). Every write, truncation, `touch`, chmod or rename changes the ctime, and no
//! user can set it back, so a file changed in any way behind the server's back is hashed again.
//!
//! One limit, the one git calls "racy clean": file times are taken from a coarse clock (a few
//! milliseconds), so a file rewritten outside the server within the same tick as the stamp was
//! taken keeps its stamp. The server itself never rewrites a file in place (uploads publish a
//! new inode), so only outside writers racing a publish within milliseconds are exposed.
//!
//! The index lives in memory and is bounded. It is saved in the data directory
//! ([`DIGEST_FILE`]) at a clean stop and every `digest_save_secs` while it changes, and the
//! next start loads it, so files are not hashed again after a restart; the stamps keep every
//! loaded entry as safe as a fresh one (a file changed while the server was down no longer
//! matches its entry). A server that was killed starts from its last save, or from nothing:
//! either way a file without a valid entry is just hashed once more on its first download.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::hashing::Md5Digest;
use super::stamped_entries::StampedEntries;

/// Entries kept; the oldest are forgotten first. About 100 bytes each.
pub const DIGEST_INDEX_ENTRIES: usize = 100_000;

/// The saved index's name in the data directory.
pub const DIGEST_FILE: &str = "digests.bin";

/// The saved index's first bytes, naming its format: then one [`ENTRY_LEN`]-byte record per
/// entry, oldest first.
const FILE_MAGIC: &[u8] = b"ftp-actor digests 1\n";

/// Bytes in a [`FileStamp`]'s saved form ([`FileStamp::to_bytes`]).
pub(crate) const STAMP_LEN: usize = 8 + 8 + 8 + 16 + 16;

/// A saved entry: the stamp, then the MD5.
const ENTRY_LEN: usize = STAMP_LEN + 16;

/// Which file, in which state: everything a stored digest is valid for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        let nanos = |secs: i64, nsec: i64| secs as i128 * 1_000_000_000 + nsec as i128;
        FileStamp {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            changed_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub(super) fn file(&self) -> (u64, u64) {
        (self.device, self.inode)
    }

    /// The stamp in its saved form: device, inode and size (u64), modification and change
    /// times (i128 nanoseconds), all little-endian.
    pub(crate) fn to_bytes(self) -> [u8; STAMP_LEN] {
        let mut out = Vec::with_capacity(STAMP_LEN);
        out.extend_from_slice(&self.device.to_le_bytes());
        out.extend_from_slice(&self.inode.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.modified_ns.to_le_bytes());
        out.extend_from_slice(&self.changed_ns.to_le_bytes());
        out.try_into().expect("stamp length")
    }

    pub(crate) fn from_bytes(bytes: &[u8; STAMP_LEN]) -> FileStamp {
        let (device, rest) = bytes.split_first_chunk::<8>().expect("stamp length");
        let (inode, rest) = rest.split_first_chunk::<8>().expect("stamp length");
        let (size, rest) = rest.split_first_chunk::<8>().expect("stamp length");
        let (modified, changed) = rest.split_first_chunk::<16>().expect("stamp length");
        FileStamp {
            device: u64::from_le_bytes(*device),
            inode: u64::from_le_bytes(*inode),
            size: u64::from_le_bytes(*size),
            modified_ns: i128::from_le_bytes(*modified),
            changed_ns: i128::from_le_bytes(changed.try_into().expect("stamp length")),
        }
    }

    fn encode(&self, md5: &Md5Digest, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
        out.extend_from_slice(md5);
    }

    fn decode(record: &[u8; ENTRY_LEN]) -> (FileStamp, Md5Digest) {
        let (stamp, md5) = record.split_first_chunk::<STAMP_LEN>().expect("record length");
        (FileStamp::from_bytes(stamp), md5.try_into().expect("record length"))
    }
}

/// Digests by file; shared by every session.
#[derive(Debug)]
pub struct DigestIndex {
    capacity: usize,
    entries: Mutex<StampedEntries<Md5Digest>>,
    /// Entries recorded so far, for a saver to tell whether anything changed since it saved.
    changes: AtomicU64,
    /// Lookups that found the digest (each a file not read), for the metrics.
    hits: AtomicU64,
    /// Held while saving: the periodic save on the disk pool and the one at the stop must not
    /// write the same file at once.
    saving: Mutex<()>,
}

impl Default for DigestIndex {
    fn default() -> Self {
        DigestIndex::with_capacity(DIGEST_INDEX_ENTRIES)
    }
}

impl DigestIndex {
    pub fn with_capacity(capacity: usize) -> DigestIndex {
        DigestIndex {
            capacity: capacity.max(1),
            entries: Mutex::default(),
            changes: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            saving: Mutex::new(()),
        }
    }

    /// The digest of the file in exactly this state, if known.
    pub fn get(&self, stamp: &FileStamp) -> Option<Md5Digest> {
        let found = self.entries.lock().unwrap_or_else(|p| p.into_inner()).get(stamp).copied();
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    /// Lookups that found a digest since the index was made.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Remembers the digest of a file in this state (replacing what was known about it).
    pub fn record(&self, stamp: FileStamp, md5: Md5Digest) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.changes.fetch_add(1, Ordering::Relaxed);
        entries.insert(stamp, md5, self.capacity);
    }

    /// The index in the saved form: [`FILE_MAGIC`], then every entry, oldest first.
    pub fn to_bytes(&self) -> Vec<u8> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(FILE_MAGIC.len() + entries.len() * ENTRY_LEN);
        out.extend_from_slice(FILE_MAGIC);
        for (stamp, md5) in entries.oldest_first() {
            stamp.encode(md5, &mut out);
        }
        out
    }

    /// An index of `capacity` entries holding the newest of those saved in `bytes`.
    pub fn from_bytes(bytes: &[u8], capacity: usize) -> Result<DigestIndex, std::io::Error> {
        let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let records = bytes.strip_prefix(FILE_MAGIC).ok_or_else(|| invalid("not a saved digest index"))?;
        if records.len() % ENTRY_LEN != 0 {
            return Err(invalid("a saved digest index with a cut record"));
        }
        let index = DigestIndex::with_capacity(capacity);
        for record in records.chunks_exact(ENTRY_LEN) {
            let (stamp, md5) = FileStamp::decode(record.try_into().expect("chunks_exact"));
            index.record(stamp, md5);
        }
        Ok(index)
    }

    /// Saves the index at `path`, replacing what was there at once (a new file renamed over
    /// it), readable by the server's user only.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let _saving = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let partial = path.with_extension("bin.part");
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&partial)?;
        file.write_all(&self.to_bytes())?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    }

    /// The index saved at `path`; an empty one if there is none.
    pub fn load(path: &Path, capacity: usize) -> std::io::Result<DigestIndex> {
        match std::fs::read(path) {
            Ok(bytes) => DigestIndex::from_bytes(&bytes, capacity),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(DigestIndex::with_capacity(capacity)),
            Err(error) => Err(error),
        }
    }

    /// How many entries were recorded so far: unchanged between two calls, nothing changed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn stamp(path: &std::path::Path) -> FileStamp {
        FileStamp::of(&std::fs::metadata(path).unwrap())
    }

    /// Stamps of `count` new one-byte files in `dir`.
    fn stamps_of_new_files(dir: &std::path::Path, count: u8) -> Vec<FileStamp> {
        (0..count)
            .map(|i| {
                let path = dir.join(format!("f{i}"));
                std::fs::write(&path, [i]).unwrap();
                stamp(&path)
            })
            .collect()
    }

    #[test]
    fn a_digest_is_valid_only_while_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let index = DigestIndex::default();
        let before = stamp(&path);
        index.record(before, [1; 16]);
        assert_eq!(index.get(&stamp(&path)), Some([1; 16]));

        // Same size, rewritten in place: the ctime moves even if the mtime is put back.
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all(b"two").unwrap();
        file.set_modified(mtime).unwrap();
        drop(file);
        let after = stamp(&path);
        assert_eq!(after.size(), before.size());
        assert_eq!(index.get(&after), None);
    }

    #[test]
    fn a_saved_index_loads_with_its_entries_and_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let stamps = stamps_of_new_files(dir.path(), 3);
        let index = DigestIndex::default();
        for (i, s) in stamps.iter().enumerate() {
            index.record(*s, [i as u8 + 7; 16]);
        }
        let saved = dir.path().join(DIGEST_FILE);
        index.save(&saved).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777, 0o600);

        let loaded = DigestIndex::load(&saved, DIGEST_INDEX_ENTRIES).unwrap();
        assert_eq!(loaded.len(), 3);
        for (i, s) in stamps.iter().enumerate() {
            assert_eq!(loaded.get(s), Some([i as u8 + 7; 16]));
        }
        assert_eq!(loaded.to_bytes(), index.to_bytes(), "the same entries in the same order");
        // Loaded into a smaller index, the newest are kept.
        let smaller = DigestIndex::load(&saved, 2).unwrap();
        assert_eq!((smaller.get(&stamps[0]), smaller.get(&stamps[2])), (None, Some([9; 16])));
    }

    #[test]
    fn a_missing_file_is_an_empty_index_and_a_damaged_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DIGEST_FILE);
        assert!(DigestIndex::load(&path, 10).unwrap().is_empty());
        let index = DigestIndex::default();
        index.record(stamp(&dir.path().join(".")), [1; 16]);
        let bytes = index.to_bytes();
        for damaged in [&bytes[..bytes.len() - 1], &bytes[1..], b"".as_slice()] {
            std::fs::write(&path, damaged).unwrap();
            let error = DigestIndex::load(&path, 10).expect_err("refused");
            assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn the_oldest_entries_are_forgotten_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = DigestIndex::with_capacity(2);
        let stamps = stamps_of_new_files(dir.path(), 3);
        for (i, s) in stamps.iter().enumerate() {
            index.record(*s, [i as u8; 16]);
        }
        assert_eq!(index.len(), 2);
        assert_eq!(index.get(&stamps[0]), None);
        assert_eq!(index.get(&stamps[2]), Some([2; 16]));
    }
}
