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
//! The index lives in memory and is bounded; after a restart each file is hashed once more on
//! its first download.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::MetadataExt;
use std::sync::Mutex;

use super::transfer::Md5Digest;

/// Entries kept; the oldest are forgotten first. About 100 bytes each.
pub const DIGEST_INDEX_ENTRIES: usize = 100_000;

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

    fn file(&self) -> (u64, u64) {
        (self.device, self.inode)
    }
}

/// Digests by file; shared by every session.
#[derive(Debug)]
pub struct DigestIndex {
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_file: HashMap<(u64, u64), (FileStamp, Md5Digest)>,
    /// Insertion order, for forgetting the oldest; may hold files already replaced.
    order: VecDeque<(u64, u64)>,
}

impl Default for DigestIndex {
    fn default() -> Self {
        DigestIndex::with_capacity(DIGEST_INDEX_ENTRIES)
    }
}

impl DigestIndex {
    pub fn with_capacity(capacity: usize) -> DigestIndex {
        DigestIndex { capacity: capacity.max(1), entries: Mutex::default() }
    }

    /// The digest of the file in exactly this state, if known.
    pub fn get(&self, stamp: &FileStamp) -> Option<Md5Digest> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.by_file.get(&stamp.file()) {
            Some((known, md5)) if known == stamp => Some(*md5),
            _ => None,
        }
    }

    /// Remembers the digest of a file in this state (replacing what was known about it).
    pub fn record(&self, stamp: FileStamp, md5: Md5Digest) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.by_file.insert(stamp.file(), (stamp, md5)).is_none() {
            entries.order.push_back(stamp.file());
        }
        while entries.by_file.len() > self.capacity {
            let Some(oldest) = entries.order.pop_front() else { break };
            entries.by_file.remove(&oldest);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).by_file.len()
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
    fn the_oldest_entries_are_forgotten_first() {
        let dir = tempfile::tempdir().unwrap();
        let index = DigestIndex::with_capacity(2);
        let stamps: Vec<FileStamp> = (0..3)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, [i as u8]).unwrap();
                stamp(&path)
            })
            .collect();
        for (i, s) in stamps.iter().enumerate() {
            index.record(*s, [i as u8; 16]);
        }
        assert_eq!(index.len(), 2);
        assert_eq!(index.get(&stamps[0]), None);
        assert_eq!(index.get(&stamps[2]), Some([2; 16]));
    }
}
