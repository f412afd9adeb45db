//! The MD5 state of a download's partial, kept beside it when the download stops early, so
//! that resuming it does not make the client hash the partial again.
//!
//! Why: to resume, the client tells the server the MD5 of the bytes it already holds, and the
//! server checks them against its file's first bytes before sending the rest. The client used
//! to read and hash its whole partial first, then the server hashed the same prefix: two
//! passes one after the other, each a whole read of a possibly huge partial from disk. The
//! client hashed every byte it wrote anyway, so when a download stops early (a dropped
//! connection, Ctrl-C, an error) it saves that state, and the next `get` into the same file
//! starts from it.
//!
//! The state lives in `..NAME.ftpa-part.ftpa-part`, the partial's own partial name: a name
//! ending in the reserved suffix, which `put -r` skips, the server refuses, and no download
//! writes to. It holds the partial's [`FileStamp`] (device, inode, size, modification and
//! change times) and is used only while the partial still has exactly that stamp, and only for
//! as many bytes as the state has hashed; anything else (a partial changed since, a damaged or
//! foreign file) is ignored, and the partial is hashed as before. Reading the state removes
//! it: the partial is about to change, and a download that stops early again saves a new one.
//! A client killed outright saves nothing; its partial is hashed on the next `get`. The state
//! is written mode 0600 and never through a symbolic link left in its place.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::local_file::partial_path;
use crate::integrity::{Md5, state_from_bytes, state_to_bytes};
use crate::storage::digest_index::{FileStamp, STAMP_LEN};
use crate::storage::resume_states::describes;

/// The saved state's first bytes, naming its format.
const MAGIC: &[u8] = b"ftp-actor partial md5 1\n";

/// Where the state of the download partial `partial` is kept.
pub fn state_path(partial: &Path) -> PathBuf {
    partial_path(partial)
}

/// Saves `hasher` as the state of `partial` (open as `file`), if it hashed exactly the bytes
/// the file holds and there are some; otherwise saves nothing. Best effort: a state that
/// cannot be written only costs the next resume a hash of the partial.
pub fn save(partial: &Path, file: &File, hasher: &Md5) {
    let Ok(meta) = file.metadata() else { return };
    let stamp = FileStamp::of(&meta);
    if !describes(hasher, &stamp) {
        return;
    }
    let mut bytes = MAGIC.to_vec();
    bytes.extend_from_slice(&stamp.to_bytes());
    bytes.extend_from_slice(&state_to_bytes(hasher));
    // Not through a link put in its place: the state is written where its name says, or not
    // at all (a download into a shared directory must not overwrite another file).
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(state_path(partial))
        .and_then(|mut state| state.write_all(&bytes));
    drop(written);
}

/// The saved state of `partial` (open as `file`), if it still describes every byte the file
/// holds. The saved state is removed either way.
pub fn take(partial: &Path, file: &File) -> Option<Md5> {
    let path = state_path(partial);
    let bytes = std::fs::read(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    let (stamp, state) = bytes.strip_prefix(MAGIC)?.split_first_chunk::<STAMP_LEN>()?;
    let hasher = state_from_bytes(state)?;
    let now = FileStamp::of(&file.metadata().ok()?);
    (FileStamp::from_bytes(stamp) == now && describes(&hasher, &now)).then_some(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::integrity::Digest;
    use std::io::Write;

    fn hasher_of(bytes: &[u8]) -> Md5 {
        let mut hasher = Md5::new();
        hasher.update(bytes);
        hasher
    }

    #[test]
    fn a_saved_state_is_taken_once_for_the_unchanged_partial() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".f.ftpa-part");
        std::fs::write(&partial, b"0123456789").unwrap();
        let file = File::open(&partial).unwrap();
        save(&partial, &file, &hasher_of(b"0123456789"));
        assert!(state_path(&partial).exists());
        let mut taken = take(&partial, &file).expect("saved for this very file");
        taken.update(b"more");
        assert_eq!(taken.finalize(), hasher_of(b"0123456789more").finalize());
        assert!(!state_path(&partial).exists(), "taken means removed");
        assert!(take(&partial, &file).is_none());
    }

    #[test]
    fn a_state_is_ignored_once_the_partial_changed_and_not_saved_unless_exact() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".g.ftpa-part");
        std::fs::write(&partial, b"abc").unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(&partial).unwrap();
        // Behind the writes, or ahead of them: nothing saved.
        save(&partial, &file, &hasher_of(b"ab"));
        save(&partial, &file, &hasher_of(b"abcd"));
        assert!(!state_path(&partial).exists());
        save(&partial, &file, &hasher_of(b"abc"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        file.write_all(b"d").unwrap();
        assert!(take(&partial, &file).is_none(), "the partial grew since");
        assert!(!state_path(&partial).exists(), "and the stale state is gone");
        std::fs::write(state_path(&partial), b"not a state").unwrap();
        assert!(take(&partial, &file).is_none());
    }

    #[test]
    fn a_link_in_the_states_place_is_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let partial = dir.path().join(".h.ftpa-part");
        std::fs::write(&partial, b"abc").unwrap();
        let other = dir.path().join("someone-elses");
        std::fs::write(&other, b"theirs").unwrap();
        std::os::unix::fs::symlink(&other, state_path(&partial)).unwrap();
        save(&partial, &File::open(&partial).unwrap(), &hasher_of(b"abc"));
        assert_eq!(std::fs::read(&other).unwrap(), b"theirs");
    }
}
