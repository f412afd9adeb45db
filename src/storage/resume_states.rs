//! The MD5 state of partials left by interrupted uploads, so that resuming one does not make
//! the server hash its prefix again.
//!
//! Why: a resumed upload must prove that the partial on the server is a prefix of the
//! sender's file, and its whole-file MD5 needs the prefix's MD5 state anyway. Without this the
//! server reads and hashes the whole partial before it can answer `put_ready`, and only then
//! does the client hash its own copy of that prefix: the two passes run one after the other,
//! so a resume from a 50 GB partial on a 150 MB/s disk waited some eleven minutes before its
//! first byte. The server hashed every byte of the partial as it wrote it, so when an upload
//! ends unpublished (a lost connection, a stall, `put_cancel`, a quota refusal after opening)
//! it keeps that state here, and a resume of the same partial, unchanged, starts from it.
//!
//! A state is valid only for the exact partial it describes: the same device and inode, size,
//! modification and change times ([`FileStamp`], as for [`super::DigestIndex`], with the same
//! "racy clean" limit), and exactly as many bytes hashed as the partial holds. An upload whose
//! last write failed half-way (the partial then holds bytes its MD5 has not seen) records
//! nothing, and its resume hashes the partial from the disk as before; a streamed upload is
//! recorded only after its hashing job has caught up with its writes. The states live in
//! memory only (a restarted server hashes once more) and are bounded: the oldest are
//! forgotten first.

use std::sync::Mutex;

use super::digest_index::FileStamp;
use super::stamped_entries::StampedEntries;
use crate::integrity::{Md5, hashed_len};

/// States kept; about 200 bytes each.
pub const RESUME_STATES: usize = 4096;

/// MD5 states of partials, by file; shared by every session.
#[derive(Debug)]
pub struct ResumeStates {
    capacity: usize,
    entries: Mutex<StampedEntries<Md5>>,
}

impl Default for ResumeStates {
    fn default() -> Self {
        ResumeStates::with_capacity(RESUME_STATES)
    }
}

impl ResumeStates {
    pub fn with_capacity(capacity: usize) -> ResumeStates {
        ResumeStates { capacity: capacity.max(1), entries: Mutex::default() }
    }

    /// Keeps `hasher` as the state of `partial` as it is now, if it was fed exactly the bytes
    /// the partial holds (and there are some); otherwise keeps nothing.
    pub fn remember(&self, partial: &std::fs::File, hasher: &Md5) {
        let Ok(meta) = partial.metadata() else { return };
        let stamp = FileStamp::of(&meta);
        if describes(hasher, &stamp) {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries.insert(stamp, hasher.clone(), self.capacity);
        }
    }

    /// The MD5 state of every byte `partial` holds, if it is unchanged since it was remembered.
    pub fn recall(&self, partial: &std::fs::File) -> Option<Md5> {
        let stamp = FileStamp::of(&partial.metadata().ok()?);
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.get(&stamp).filter(|hasher| describes(hasher, &stamp)).cloned()
    }
}

/// Can `hasher` stand for the file stamped `stamp`: did it hash exactly as many bytes as the
/// file holds, and some? The one rule for kept states, on both ends (the client's download
/// partials too: `client::partial_state`).
pub fn describes(hasher: &Md5, stamp: &FileStamp) -> bool {
    stamp.size() > 0 && hashed_len(hasher) == stamp.size()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::Digest;
    use std::io::Write;

    fn kept(states: &ResumeStates) -> usize {
        states.entries.lock().unwrap().len()
    }

    fn hasher_of(bytes: &[u8]) -> Md5 {
        let mut hasher = Md5::new();
        hasher.update(bytes);
        hasher
    }

    fn partial_with(dir: &std::path::Path, bytes: &[u8]) -> std::fs::File {
        let path = dir.join("p");
        let mut file =
            std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
        file
    }

    #[test]
    fn a_state_comes_back_only_for_the_unchanged_partial_it_describes() {
        let dir = tempfile::tempdir().unwrap();
        // 100 bytes: one whole block and 36 buffered, so the buffered tail must come back too.
        let bytes: Vec<u8> = (0..100u8).collect();
        let mut file = partial_with(dir.path(), &bytes);
        let states = ResumeStates::default();
        states.remember(&file, &hasher_of(&bytes));
        let mut recalled = states.recall(&file).expect("remembered");
        assert_eq!(hashed_len(&recalled), 100);
        recalled.update(b"more");
        let whole = [&bytes[..], b"more"].concat();
        assert_eq!(recalled.finalize(), hasher_of(&whole).finalize(), "the state continues the same MD5");

        // Any change to the partial (here one more byte) makes the state unusable.
        std::thread::sleep(std::time::Duration::from_millis(20));
        file.write_all(b"x").unwrap();
        assert!(states.recall(&file).is_none());
    }

    #[test]
    fn a_state_that_does_not_cover_exactly_the_partial_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = vec![7u8; 1000];
        let file = partial_with(dir.path(), &bytes);
        let states = ResumeStates::default();
        // Hashing behind the writes, or a fresh hasher in a stream's place: nothing is kept.
        states.remember(&file, &hasher_of(&bytes[..999]));
        states.remember(&file, &Md5::new());
        assert_eq!(kept(&states), 0);
        // An empty partial has nothing to spare.
        let empty = partial_with(dir.path(), b"");
        states.remember(&empty, &Md5::new());
        assert_eq!(kept(&states), 0);
    }

    #[test]
    fn the_oldest_states_are_forgotten_first() {
        let dir = tempfile::tempdir().unwrap();
        let states = ResumeStates::with_capacity(2);
        let files: Vec<std::fs::File> = (0..3u8)
            .map(|i| {
                let path = dir.path().join(format!("p{i}"));
                std::fs::write(&path, [i]).unwrap();
                std::fs::File::open(path).unwrap()
            })
            .collect();
        for (i, file) in files.iter().enumerate() {
            states.remember(file, &hasher_of(&[i as u8]));
        }
        assert_eq!(kept(&states), 2);
        assert!(states.recall(&files[0]).is_none());
        assert!(states.recall(&files[2]).is_some());
    }
}
