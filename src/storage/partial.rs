//! The file side of uploads: streaming into a hidden partial with the MD5 computed on the way.
//! Downloads are in [`super::download`]; MD5 over bytes on disk in [`super::hashing`].
//!
//! An upload writes into the hidden partial file next to its target and is renamed onto the
//! target only after the sender's MD5 matches ours, so no wrong file is ever visible under its
//! name. A partial left by an interrupted upload is resumed: its bytes are hashed once (which
//! the whole-file MD5 needs anyway) and the sender compares that prefix digest with its own.
//!
//! The running MD5 is kept apart from the file (the caller holds the `Md5`), so that writing
//! (or reading) one chunk and hashing another run at the same time on two disk workers: MD5 is
//! the slowest step of a transfer, and this keeps the file I/O off its path.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::integrity::{Digest, Md5};
use crate::quota::DiskChange;
use cap_std::fs::{OpenOptions, OpenOptionsExt};

use super::digest_index::{DigestIndex, FileStamp};
use super::error::StorageError;
use super::hashing::{Md5Digest, hash_prefix};
use super::jail::VirtualPath;
use super::local_store::{LocalStore, quota_bytes};
use super::resume_states::ResumeStates;
use super::store::UploadSession;
use super::stream_start::StreamStart;

/// An upload in progress: the open partial file. Its MD5 is the caller's to keep (see the
/// module doc), fed with exactly the bytes written.
#[derive(Debug)]
pub struct PartialUpload {
    file: std::fs::File,
    target: VirtualPath,
    partial: VirtualPath,
    size: u64,
    len: u64,
    start_len: u64,
    replaced_len: u64,
    prefix_hashed: u64,
    /// Whether the partial was there when the upload opened it, and whether it is there now:
    /// entries count in `max_files`, so creating or removing one is a change to settle.
    partial_existed: bool,
    partial_exists: bool,
}

/// An upload that could not be published.
#[derive(Debug)]
pub struct PublishFailed {
    pub error: StorageError,
    /// What the upload changed on disk, all told (see [`PartialUpload::disk_change`]): the
    /// partial stays for a resume, or was deleted.
    pub change: DiskChange,
}

/// A verified upload, published under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishedUpload {
    pub md5: Md5Digest,
    /// What the upload changed on disk, all told: the new file, less the partial it came from
    /// and the file it replaced.
    pub change: DiskChange,
}

impl PartialUpload {
    /// Keeps `hasher`, the MD5 of every byte written so far, for a resume of this partial
    /// (see [`ResumeStates`]): call when the upload ends unpublished, with its data kept.
    pub fn remember_state(&self, hasher: &Md5, states: &ResumeStates) {
        states.remember(&self.file, hasher)
    }

    /// Opens (or creates, mode 0600) the partial for `target`; returns it with the MD5 of what
    /// it holds: remembered from the upload that left it, if `states` has it for the partial as
    /// it is, else hashed from the disk ([`PartialUpload::prefix_hashed`] says how much). A
    /// partial longer than `size` cannot be a prefix of the new file and is emptied.
    ///
    /// A partial that does not exist yet is created only if `may_create` (the user's
    /// `max_files` has room for it); else the answer is [`StorageError::TooManyFiles`].
    pub fn open(
        home: &LocalStore,
        target: &VirtualPath,
        size: u64,
        states: &ResumeStates,
        may_create: bool,
    ) -> Result<(PartialUpload, Md5), StorageError> {
        let (mut upload, _) = PartialUpload::open_beside(home, target, size, may_create)?;
        let start_len = upload.start_len;
        if start_len > size {
            upload.restart()?;
            return Ok((upload, Md5::new()));
        }
        if let Some(remembered) = states.recall(&upload.file) {
            // Where hashing the prefix would have left the file: the data continues there.
            upload.file.seek(SeekFrom::Start(start_len))?;
            return Ok((upload, remembered));
        }
        let mut hasher = Md5::new();
        hash_prefix(&mut upload.file, start_len, &mut hasher)?;
        upload.prefix_hashed = start_len;
        Ok((upload, hasher))
    }

    /// Would [`PartialUpload::open`] hash anything for `target` now? Only if a partial with
    /// data is there and `states` has no MD5 state for it as it is.
    pub fn would_hash(home: &LocalStore, target: &VirtualPath, states: &ResumeStates) -> bool {
        let Some(partial) = target.partial() else { return false };
        match super::open_for_reading(home.dir(), &partial.to_relative()) {
            Ok((file, meta)) => meta.len() > 0 && states.recall(&file).is_none(),
            Err(_) => false,
        }
    }

    /// The path the upload will be published under.
    pub fn target(&self) -> &VirtualPath {
        &self.target
    }

    /// Gives up on the upload: an empty partial is removed, so a refused upload leaves nothing
    /// behind. A non-empty one is kept for a later resume. [`PartialUpload::disk_change`] says
    /// what that left.
    pub fn abandon(&mut self, home: &LocalStore) {
        if self.len == 0 && self.partial_exists && home.dir().remove_file(self.partial.to_relative()).is_ok() {
            self.partial_exists = false;
        }
    }

    /// Checks the sender's MD5 against ours (`md5`, of every byte written) and publishes the
    /// file under its name, remembering its digest in `digests`.
    ///
    /// On a mismatch the partial is deleted (its bytes are wrong somewhere, so resuming it
    /// would only fail again) and the error says so; on an incomplete upload it is kept.
    pub fn publish(
        mut self,
        home: &LocalStore,
        md5: Md5Digest,
        sender_md5: &[u8],
        digests: &DigestIndex,
    ) -> Result<PublishedUpload, PublishFailed> {
        if self.len != self.size {
            let error = StorageError::Incomplete { received: self.len, expected: self.size };
            return Err(PublishFailed { error, change: self.disk_change() });
        }
        if md5[..] != *sender_md5 {
            if home.dir().remove_file(self.partial.to_relative()).is_ok() {
                self.partial_exists = false;
            }
            let error = StorageError::ChecksumMismatch { expected: hex::encode(sender_md5), actual: hex::encode(md5) };
            return Err(PublishFailed { error, change: self.disk_change() });
        }
        match self.move_into_place(home, Some((md5, digests))) {
            Ok(change) => Ok(PublishedUpload { md5, change }),
            Err(error) => Err(PublishFailed { error, change: self.disk_change() }),
        }
    }

    /// Syncs the partial and renames it onto the target; returns what the upload changed on
    /// disk, all told. A known MD5 is remembered for later downloads and checksum commands.
    fn move_into_place(
        &self,
        home: &LocalStore,
        remember: Option<(Md5Digest, &DigestIndex)>,
    ) -> Result<DiskChange, StorageError> {
        self.file.sync_all()?;
        // From measuring the file replaced to the rename, no removal or move may change it.
        let _names = home.names().hold();
        let replaced = match home.dir().symlink_metadata(self.target.to_relative()) {
            Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory),
            Ok(meta) => Some(quota_bytes(&meta)),
            Err(_) => None,
        };
        home.dir().rename(self.partial.to_relative(), home.dir(), self.target.to_relative())?;
        // Stamped after the rename, which changes the ctime the stamp includes.
        if let (Some((md5, digests)), Ok(meta)) = (remember, self.file.metadata()) {
            digests.record(FileStamp::of(&meta), md5);
        }
        // The partial's entry became the file's; a file replaced is one entry fewer.
        Ok(DiskChange {
            bytes: self.len as i64 - self.start_len as i64 - replaced.unwrap_or(0) as i64,
            files: 1 - self.partial_existed as i64 - replaced.is_some() as i64,
        })
    }

    /// Opens the partial for an upload whose size is not announced (FTP's STOR and APPE): the
    /// partial is neither hashed nor emptied here; [`PartialUpload::continue_at`] decides where
    /// the data continues. Also returns the byte length of the published target, if any.
    pub fn open_stream(
        home: &LocalStore,
        target: &VirtualPath,
        may_create: bool,
    ) -> Result<(PartialUpload, Option<u64>), StorageError> {
        let (upload, existing) = PartialUpload::open_beside(home, target, u64::MAX, may_create)?;
        // Only a regular file is a base to continue after (a symlink is replaced, not read).
        let target_len = existing.filter(|meta| meta.is_file()).map(|meta| meta.len());
        Ok((upload, target_len))
    }

    /// Opens (or creates, mode 0600) the partial beside `target`, as it is; returns it with
    /// the metadata of what is published under the target's name, if anything.
    fn open_beside(
        home: &LocalStore,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(PartialUpload, Option<cap_std::fs::Metadata>), StorageError> {
        let partial = target.partial().ok_or(StorageError::IsADirectory)?;
        let existing = match home.dir().symlink_metadata(target.to_relative()) {
            Ok(meta) if meta.is_dir() => return Err(StorageError::IsADirectory),
            Ok(meta) => Some(meta),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        // The path lease keeps any other upload from this partial, so whether this upload
        // created the entry is known exactly. A new partial (the common case) costs one call,
        // and its parent is only examined when the open fails, to say why.
        let relative = partial.to_relative();
        let mut new = OpenOptions::new();
        new.read(true).write(true).create_new(true).mode(0o600);
        // Without room for a new entry, only a partial already there may be taken up.
        let created = match may_create {
            true => home.dir().open_with(&relative, &new),
            false => Err(std::io::ErrorKind::AlreadyExists.into()),
        };
        let opened = match created {
            Ok(file) => Ok((file.into_std(), None)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                reopen(home.dir(), &relative).map(|(file, len)| (file, Some(len)))
            }
            Err(e) => Err(e.into()),
        };
        let (file, existing_len) = match opened {
            Ok(opened) => opened,
            Err(StorageError::NotAFile) => return Err(StorageError::NotAFile),
            Err(e) => {
                home.check_dir(&target.parent())?;
                if matches!(e, StorageError::NotFound) && !may_create {
                    return Err(StorageError::TooManyFiles);
                }
                return Err(e);
            }
        };
        let (partial_existed, start_len) = (existing_len.is_some(), existing_len.unwrap_or(0));
        let replaced_len = existing.as_ref().map_or(0, quota_bytes);
        let upload = PartialUpload {
            file,
            target: target.clone(),
            partial,
            size,
            len: start_len,
            start_len,
            replaced_len,
            prefix_hashed: 0,
            partial_existed,
            partial_exists: true,
        };
        Ok((upload, existing))
    }

    /// Makes the partial hold the first bytes the data continues after: its own first
    /// `len` bytes, or the target's first `len` bytes copied in (FTP's meaning of resuming or
    /// appending to a published file, kept atomic: the target changes only at publishing).
    pub fn continue_at(&mut self, home: &LocalStore, start: &StreamStart) -> Result<(), StorageError> {
        let (len, from_target) = match *start {
            StreamStart::Partial(len) => (len, false),
            StreamStart::Target(len) => (len, true),
        };
        if !from_target {
            // A partial just opened is read and written from its start: an empty one needs
            // no cut (most uploads create theirs).
            if len == 0 && self.len == 0 {
                return Ok(());
            }
            self.file.set_len(len)?;
            self.file.seek(SeekFrom::Start(len))?;
            self.len = len;
            return Ok(());
        }
        self.restart()?;
        let (mut source, _) = super::open_for_reading(home.dir(), &self.target.to_relative())?;
        let copied = std::io::copy(&mut (&mut source).take(len), &mut self.file);
        self.len = self.file.stream_position()?;
        copied?;
        if self.len != len {
            return Err(StorageError::ChangedDuringTransfer);
        }
        Ok(())
    }

    /// Publishes a streamed upload as it is: the data ended cleanly, so the file is complete.
    /// Returns the quota bytes of the file it replaced. On failure the partial stays.
    pub fn publish_stream(mut self, home: &LocalStore) -> Result<DiskChange, PublishFailed> {
        self.size = self.len;
        self.move_into_place(home, None).map_err(|error| PublishFailed { error, change: self.disk_change() })
    }
}

impl UploadSession for PartialUpload {
    /// Bytes of the partial hashed from the disk when it was opened (for the resume-hashing
    /// budget): 0 for a new partial, or one whose MD5 state was remembered.
    fn prefix_hashed(&self) -> u64 {
        self.prefix_hashed
    }

    /// Bytes already in the partial: where the sender continues.
    fn offset(&self) -> u64 {
        self.len
    }

    /// The announced size of the whole file.
    fn size(&self) -> u64 {
        self.size
    }

    /// Quota bytes of the file this upload will replace.
    fn replaced_len(&self) -> u64 {
        self.replaced_len
    }

    /// Bytes the partial held when it was opened (they already count in the quota).
    fn start_len(&self) -> u64 {
        self.start_len
    }

    /// What the upload changed on disk since it opened the partial, while it is not
    /// published: the partial's growth (negative: it shrank), and the partial's entry if the
    /// upload created or removed it.
    fn disk_change(&self) -> DiskChange {
        DiskChange {
            bytes: if self.partial_exists { self.len as i64 } else { 0 } - self.start_len as i64,
            files: self.partial_exists as i64 - self.partial_existed as i64,
        }
    }

    /// Empties the partial: the sender's file does not start with what it held. (The caller
    /// starts a new MD5.)
    fn restart(&mut self) -> Result<(), StorageError> {
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.len = 0;
        Ok(())
    }

    /// Appends a chunk (the caller hashes it). Refuses bytes past the announced size.
    fn append(&mut self, data: &[u8]) -> Result<(), StorageError> {
        if self.len + data.len() as u64 > self.size {
            return Err(StorageError::TooMuchData);
        }
        if let Err(error) = self.file.write_all(data) {
            // Keep the partial consistent with what we hashed: drop a torn tail.
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(error.into());
        }
        self.len += data.len() as u64;
        Ok(())
    }
}

/// Opens an existing partial at `relative` to go on writing it; returns it with its length.
/// Another program's FIFO under the partial's name is refused by its metadata before any open
/// (an open, even one that does not wait, would let a writer waiting on the FIFO go on and lose
/// what it writes; writes into it would fill its buffer, then hold the disk worker for good),
/// and the open does not wait either (`O_NONBLOCK`, ignored for regular files), for one put
/// there between the two calls.
fn reopen(dir: &cap_std::fs::Dir, relative: &std::path::Path) -> Result<(std::fs::File, u64), StorageError> {
    if !dir.symlink_metadata(relative)?.is_file() {
        return Err(StorageError::NotAFile);
    }
    let mut options = OpenOptions::new();
    options.read(true).write(true).custom_flags(libc::O_NONBLOCK);
    let file = dir.open_with(relative, &options)?.into_std();
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(StorageError::NotAFile);
    }
    Ok((file, meta.len()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::storage::jail::PathLimits;
    use crate::storage::{StreamRequest, md5_of};

    pub(crate) fn vp(text: &str) -> VirtualPath {
        VirtualPath::resolve(&VirtualPath::root(), text, PathLimits::default()).unwrap()
    }

    pub(crate) fn setup() -> (tempfile::TempDir, LocalStore) {
        let root = tempfile::tempdir().unwrap();
        let home = LocalStore::open(root.path()).unwrap();
        (root, home)
    }

    /// An upload and its running MD5, fed together as the session does.
    struct Upload(PartialUpload, Md5);

    impl Upload {
        fn open(home: &LocalStore, name: &str, size: u64) -> Upload {
            let (partial, hasher) = PartialUpload::open(home, &vp(name), size, &ResumeStates::default(), true).unwrap();
            Upload(partial, hasher)
        }

        fn append(&mut self, data: &[u8]) -> Result<(), StorageError> {
            self.0.append(data)?;
            self.1.update(data);
            Ok(())
        }

        fn publish(
            self,
            home: &LocalStore,
            sender: &[u8],
            digests: &DigestIndex,
        ) -> Result<PublishedUpload, PublishFailed> {
            self.0.publish(home, self.1.finalize().into(), sender, digests)
        }
    }

    #[test]
    fn a_resume_from_a_remembered_state_hashes_nothing_and_appends_after_the_prefix() {
        let (root, home) = setup();
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        let states = ResumeStates::default();
        let mut first = Upload::open(&home, "f", 5000);
        first.append(&data[..3000]).unwrap();
        assert!(PartialUpload::would_hash(&home, &vp("f"), &states), "no state kept yet");
        first.0.remember_state(&first.1, &states);
        drop(first);
        assert!(!PartialUpload::would_hash(&home, &vp("f"), &states));
        assert!(!PartialUpload::would_hash(&home, &vp("none"), &states), "no partial, nothing to hash");

        let (partial, hasher) = PartialUpload::open(&home, &vp("f"), 5000, &states, true).unwrap();
        assert_eq!((partial.offset(), partial.prefix_hashed()), (3000, 0), "the state was used, nothing hashed");
        let mut resumed = Upload(partial, hasher);
        resumed.append(&data[3000..]).unwrap();
        resumed.publish(&home, &md5_of(&data), &DigestIndex::default()).unwrap();
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), data, "the rest went after the prefix");

        // Without a remembered state the partial's prefix is hashed from the disk.
        let mut again = Upload::open(&home, "g", 5000);
        again.append(&data[..3000]).unwrap();
        drop(again);
        assert!(PartialUpload::would_hash(&home, &vp("g"), &states));
        let (partial, _) = PartialUpload::open(&home, &vp("g"), 5000, &states, true).unwrap();
        assert_eq!((partial.offset(), partial.prefix_hashed()), (3000, 3000));
    }

    #[test]
    fn appending_to_a_published_file_changes_it_only_when_published() {
        let (_root, home) = setup();

        std::fs::write(_root.path().join("log.txt"), b"first line\n").unwrap();
        let (mut upload, target_len) = PartialUpload::open_stream(&home, &vp("log.txt"), true).unwrap();
        assert_eq!(target_len, Some(11));
        let start = StreamStart::plan(StreamRequest::Append, target_len, upload.offset()).unwrap();
        upload.continue_at(&home, &start).unwrap();
        upload.append(b"second line\n").unwrap();
        assert_eq!(std::fs::read(_root.path().join("log.txt")).unwrap(), b"first line\n", "untouched until published");
        assert_eq!(upload.publish_stream(&home).unwrap(), DiskChange { bytes: 23 - 11, files: 0 }, "11 bytes replaced");
        assert_eq!(std::fs::read(_root.path().join("log.txt")).unwrap(), b"first line\nsecond line\n");
    }

    #[test]
    fn upload_publishes_only_after_md5_matches() {
        let (root, home) = setup();
        let digests = DigestIndex::default();
        let data = b"hello world".to_vec();
        let mut up = Upload::open(&home, "f", data.len() as u64);
        assert_eq!(up.0.offset(), 0);
        up.append(&data[..5]).unwrap();
        up.append(&data[5..]).unwrap();
        assert!(!root.path().join("f").exists(), "nothing under the name before publishing");
        let done = up.publish(&home, &md5_of(&data), &digests).unwrap();
        assert_eq!(done.md5, md5_of(&data));
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), data);
        assert!(!root.path().join(".f.ftpa-part").exists());
        let stamp = FileStamp::of(&std::fs::metadata(root.path().join("f")).unwrap());
        assert_eq!(digests.get(&stamp), Some(md5_of(&data)), "the published file's digest is stored");
    }

    #[test]
    fn mismatch_discards_the_partial_and_keeps_the_old_file() {
        let (root, home) = setup();
        std::fs::write(root.path().join("f"), "old").unwrap();
        let mut up = Upload::open(&home, "f", 3);
        assert_eq!(up.0.replaced_len(), 3);
        up.append(b"new").unwrap();
        let failed = up.publish(&home, &md5_of(b"NEW"), &DigestIndex::default()).unwrap_err();
        assert!(matches!(failed.error, StorageError::ChecksumMismatch { .. }));
        assert_eq!(failed.change, DiskChange { bytes: 0, files: 0 }, "the partial it created is gone");
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), b"old");
        assert!(!root.path().join(".f.ftpa-part").exists());
    }

    #[test]
    fn resume_continues_the_hash_and_restart_empties() {
        let (root, home) = setup();
        let digests = DigestIndex::default();
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut up = Upload::open(&home, "f", data.len() as u64);
        up.append(&data[..4000]).unwrap();
        assert!(matches!(up.append(&data), Err(StorageError::TooMuchData)));
        drop(up); // connection lost
        let mut up = Upload::open(&home, "f", data.len() as u64);
        assert_eq!(up.0.offset(), 4000);
        assert_eq!(<[u8; 16]>::from(up.1.clone().finalize()), md5_of(&data[..4000]));
        up.append(&data[4000..]).unwrap();
        assert_eq!(up.0.disk_change(), DiskChange { bytes: 6000, files: 0 }, "the partial was there already");
        let published = up.publish(&home, &md5_of(&data), &digests).unwrap();
        assert_eq!(published.change, DiskChange { bytes: 6000, files: 0 }, "the partial became the file");
        assert_eq!(std::fs::read(root.path().join("f")).unwrap(), data);

        std::fs::write(root.path().join(".g.ftpa-part"), "xyz").unwrap();
        let mut up = Upload::open(&home, "g", 2);
        assert_eq!(up.0.offset(), 0, "a partial longer than the file is emptied");
        up.append(b"ab").unwrap();
        let failed = Upload::open(&home, "h", 5).publish(&home, &md5_of(b"x"), &digests).unwrap_err();
        assert!(matches!(failed.error, StorageError::Incomplete { received: 0, expected: 5 }));
        assert_eq!(failed.change, DiskChange { bytes: 0, files: 1 }, "an empty partial is kept by publish");
    }

    #[test]
    fn a_partial_is_created_only_with_room_for_its_entry() {
        let (root, home) = setup();
        let states = ResumeStates::default();
        assert!(matches!(PartialUpload::open(&home, &vp("f"), 10, &states, false), Err(StorageError::TooManyFiles)));
        assert!(!root.path().join(".f.ftpa-part").exists());
        // An existing partial is resumed without a new entry.
        std::fs::write(root.path().join(".f.ftpa-part"), "abc").unwrap();
        let (mut partial, _) = PartialUpload::open(&home, &vp("f"), 10, &states, false).unwrap();
        assert_eq!((partial.offset(), partial.disk_change()), (3, DiskChange::default()));
        partial.restart().unwrap();
        partial.abandon(&home);
        assert_eq!(partial.disk_change(), DiskChange { bytes: -3, files: -1 }, "the emptied partial is removed");
        // Published over an existing file: one entry fewer than before, bytes replaced.
        std::fs::write(root.path().join("g"), "12345").unwrap();
        let (mut partial, _) = PartialUpload::open(&home, &vp("g"), 2, &states, true).unwrap();
        partial.append(b"xy").unwrap();
        let done = partial.publish(&home, md5_of(b"xy"), &md5_of(b"xy"), &DigestIndex::default()).unwrap();
        assert_eq!(done.change, DiskChange { bytes: 2 - 5, files: 0 });
        assert_eq!(home.usage().unwrap().files, 1);
    }

    /// Another program's FIFO under a partial's name is refused without opening it: a writer
    /// waiting on it is not let go (its data would be lost), and the worker is not held.
    #[test]
    fn a_fifo_under_a_partials_name_is_never_opened() {
        let (root, home) = setup();
        let fifo = root.path().join(".f.ftpa-part");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::write(fifo, b"for the real reader")
        });
        let states = ResumeStates::default();
        for may_create in [true, false] {
            let opened = PartialUpload::open(&home, &vp("f"), 10, &states, may_create);
            assert!(matches!(opened, Err(StorageError::NotAFile)), "may_create {may_create}");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!writer.is_finished(), "the writer still waits for a reader");
        assert_eq!(std::fs::read(&fifo).unwrap(), b"for the real reader", "and its data reaches the real one");
        writer.join().unwrap().unwrap();
    }
}
