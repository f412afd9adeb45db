//! A user's home directory as a cap-std capability: every operation is relative to it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata};

use crate::integrity::Md5;
use crate::net::{Entry, EntryKind};
use crate::quota::DiskChange;

use super::digest_index::DigestIndex;
use super::download::Download;
use super::error::StorageError;
use super::hashing::Md5Digest;
use super::jail::{VirtualPath, published_name};
use super::list_page::{Listing, PageRequest, Window};
use super::name_lock::NameLock;
use super::partial::{PartialUpload, PublishFailed, PublishedUpload};
use super::resume_states::ResumeStates;
use super::store::FileStore;
use super::stream_start::StreamStart;

mod listing;

/// A name read from the disk as clients are shown it. No client can create a name with a
/// control character or invalid UTF-8 here (the jail refuses them), but another program on
/// the host can, and such a name, listed as it is, would reach clients raw: a `\r\n` inside
/// an FTP `STAT` or `MLST` reply ends that reply early and forges the next one, and an escape
/// sequence reaches the shell user's terminal. Invalid bytes become U+FFFD and control
/// characters `?`; the entry stays visible (it takes room in the quota), though no request can
/// name it.
fn shown_name(on_disk: &std::ffi::OsStr) -> String {
    // Almost every name is shown as it is: copied whole, not rebuilt a character at a time
    // (listings read every name of a directory).
    match on_disk.to_str() {
        Some(name) if shown_as_it_is(name) => name.to_owned(),
        _ => on_disk.to_string_lossy().chars().map(|c| if c.is_control() { '?' } else { c }).collect(),
    }
}

/// Whether [`shown_name`] leaves a name as it is: it has no control character, which is a
/// byte below 0x20, 0x7f, or U+0080 to U+009F (written in UTF-8 after a 0xc2 byte; a 0xc2
/// byte also starts other characters, which are then only looked at more closely).
fn shown_as_it_is(name: &str) -> bool {
    !name.bytes().any(|byte| byte < 0x20 || byte == 0x7f || byte == 0xc2)
}

/// An open home directory. Cheap to share behind an `Arc`; all methods block on the filesystem
/// and belong on the disk pool.
#[derive(Debug)]
pub struct LocalStore {
    dir: Dir,
    /// Held from reading a name to changing it, wherever the quota counts the change.
    names: NameLock,
    /// The digests of files as the server wrote or last hashed them, found by each file's
    /// inode, size and ctime (shared by every home of the server; saved to `digests.bin`).
    digests: Arc<DigestIndex>,
    /// The MD5 states of partials left by interrupted uploads (in memory).
    resume_states: Arc<ResumeStates>,
    /// The names of a directory the last listing read, beyond the page it gave: the next pages
    /// of that listing are cut from them (see [`super::list_page`]).
    window: Mutex<Option<(PathBuf, Window<listing::DiskName>)>>,
}

fn unix_seconds(meta: &Metadata) -> i64 {
    meta.modified().map_or(0, |time| unix_time(time.into_std()))
}

/// Whole seconds since 1970, negative before it (rounded down), so that a file's time from
/// before 1970 is shown as it is and MFMT's times come back as set, not as 1970.
pub(super) fn unix_time(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => {
            let before = before.duration();
            -(before.as_secs() as i64) - i64::from(before.subsec_nanos() > 0)
        }
    }
}

fn entry_kind(meta: &Metadata) -> EntryKind {
    kind_of(meta.file_type())
}

/// The kind of entry a file type is (from metadata, or from the directory without it).
fn kind_of(kind: cap_std::fs::FileType) -> EntryKind {
    if kind.is_symlink() {
        EntryKind::Symlink
    } else if kind.is_dir() {
        EntryKind::Dir
    } else if kind.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    }
}

impl LocalStore {
    /// Opens (creating with mode 0700 if missing) the home at `path`, with digests and resume
    /// states of its own (tools and tests; the server shares its own: [`LocalStore::open_sharing`]).
    pub fn open(path: &Path) -> std::io::Result<LocalStore> {
        LocalStore::open_sharing(path, Arc::default(), Arc::default())
    }

    /// Opens the home at `path`, keeping digests and resume states in the server's indexes.
    pub fn open_sharing(
        path: &Path,
        digests: Arc<DigestIndex>,
        resume_states: Arc<ResumeStates>,
    ) -> std::io::Result<LocalStore> {
        if !path.exists() {
            create_home_dir(path)?;
        }
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        let meta = dir.dir_metadata()?;
        let names = NameLock::of(cap_std::fs::MetadataExt::dev(&meta), cap_std::fs::MetadataExt::ino(&meta));
        Ok(LocalStore { dir, names, digests, resume_states, window: Mutex::default() })
    }

    /// The home's name lock (see [`NameLock`]).
    pub(crate) fn names(&self) -> NameLock {
        self.names
    }

    /// The capability itself, for transfers.
    pub(crate) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Sets a file's or directory's modification time (FTP's MFMT), without following a final
    /// symlink out of the home (cap-std refuses one).
    pub fn set_modified(&self, path: &VirtualPath, unix: i64) -> Result<(), StorageError> {
        let relative = path.to_relative();
        // A file or a directory; `open_for_reading` refuses anything else, unopened.
        let file = if path.is_root() {
            self.dir().try_clone()?.into_std_file()
        } else {
            super::open_for_reading(self.dir(), &relative)?.0
        };
        let when = if unix >= 0 {
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64)
        } else {
            std::time::UNIX_EPOCH - std::time::Duration::from_secs(unix.unsigned_abs())
        };
        file.set_modified(when)?;
        Ok(())
    }

    /// Succeeds if `path` is a directory (symlinks inside the home are followed).
    pub fn check_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if self.dir.metadata(path.to_relative())?.is_dir() { Ok(()) } else { Err(StorageError::NotADirectory) }
    }

    /// One entry's facts (the home itself is named `/`), without following a final symlink.
    pub fn stat(&self, path: &VirtualPath) -> Result<Entry, StorageError> {
        let meta = self.dir.symlink_metadata(path.to_relative())?;
        let name = path.file_name().unwrap_or("/").to_string();
        Ok(Entry { name, kind: entry_kind(&meta), size: meta.len(), modified: unix_seconds(&meta) })
    }

    /// The length a resume continues after: the published file's, or, while a file has not
    /// been published yet, the length of the partial its interrupted upload left (FTP's SIZE,
    /// so that `curl -C -` and `lftp` resume uploads). Directories are not files here.
    pub fn resume_len(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        match self.dir.metadata(path.to_relative()) {
            Ok(meta) if meta.is_dir() => Err(StorageError::IsADirectory),
            Ok(meta) => Ok(meta.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let partial = path.partial().ok_or(StorageError::IsADirectory)?;
                Ok(self.dir.symlink_metadata(partial.to_relative())?.len())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::AlreadyExists);
        }
        let mut builder = cap_std::fs::DirBuilder::new();
        cap_std::fs::DirBuilderExt::mode(&mut builder, 0o700);
        Ok(self.dir.create_dir_with(path.to_relative(), &builder)?)
    }

    /// Removes a file (or a symlink); says what it occupied in the quota and whether a
    /// partial upload to the same name remains.
    pub fn remove_file(&self, path: &VirtualPath) -> Result<RemovedFile, StorageError> {
        let relative = path.to_relative();
        let _names = self.names.hold();
        let meta = self.dir.symlink_metadata(&relative)?;
        if meta.is_dir() {
            return Err(StorageError::IsADirectory);
        }
        self.dir.remove_file(&relative)?;
        let partial_remains =
            path.partial().is_some_and(|partial| self.dir.symlink_metadata(partial.to_relative()).is_ok());
        Ok(RemovedFile { freed: quota_bytes(&meta), partial_remains })
    }

    /// Removes the partial upload to `target`, if it was last written before `unchanged_since`
    /// (any age if `None`); returns the quota bytes it held. The caller holds `target`'s upload
    /// lock, so no upload is writing it.
    pub fn remove_partial(
        &self,
        target: &VirtualPath,
        unchanged_since: Option<SystemTime>,
    ) -> Result<u64, StorageError> {
        let partial = target.partial().ok_or(StorageError::NotFound)?;
        let _names = self.names.hold();
        let meta = self.dir.metadata(partial.to_relative())?;
        if unchanged_since.is_some_and(|since| meta.modified().map(|m| m.into_std() > since).unwrap_or(true)) {
            return Err(StorageError::RecentlyWritten);
        }
        self.dir.remove_file(partial.to_relative())?;
        Ok(quota_bytes(&meta))
    }

    /// Every partial upload in the home: what it will be published as, its bytes, and when it
    /// was last written.
    pub fn partials(&self) -> std::io::Result<Vec<PartialFound>> {
        fn walk(dir: &Dir, at: &VirtualPath, found: &mut Vec<PartialFound>) -> std::io::Result<()> {
            for item in dir.entries()? {
                let item = item?;
                let on_disk = shown_name(&item.file_name());
                let meta = item.metadata()?;
                if meta.is_dir() {
                    walk(&item.open_dir()?, &at.child(&on_disk), found)?;
                } else if let Some(name) = published_name(&on_disk) {
                    let modified = meta.modified().map(|m| m.into_std()).unwrap_or(UNIX_EPOCH);
                    found.push(PartialFound { target: at.child(name), bytes: meta.len(), modified });
                }
            }
            Ok(())
        }
        let mut found = Vec::new();
        walk(&self.dir, &VirtualPath::root(), &mut found)?;
        Ok(found)
    }

    pub fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::HomeItself);
        }
        let relative = path.to_relative();
        if !self.dir.symlink_metadata(&relative)?.is_dir() {
            return Err(StorageError::NotADirectory);
        }
        // A directory holding only abandoned partial files looks empty to its owner, but
        // its partials still count in the quota: refusing keeps the quota honest.
        Ok(self.dir.remove_dir(&relative)?)
    }

    /// Renames within the home; refuses to replace an existing entry. Renaming an entry to
    /// its own name does nothing.
    pub fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::HomeItself);
        }
        let _names = self.names.hold();
        self.dir.symlink_metadata(from.to_relative())?;
        if from == to {
            return Ok(());
        }
        if to.starts_with(from) {
            return Err(StorageError::IntoItself);
        }
        match self.dir.symlink_metadata(to.to_relative()) {
            Ok(_) => return Err(StorageError::AlreadyExists),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self.dir.rename(from.to_relative(), &self.dir, to.to_relative())?)
    }

    /// What the home holds as the quota counts it: the bytes of every regular file, and every
    /// entry (files, directories, links, partial uploads), the home itself not included.
    pub fn usage(&self) -> std::io::Result<HomeUsage> {
        fn walk(dir: &Dir, usage: &mut HomeUsage) -> std::io::Result<()> {
            for item in dir.entries()? {
                let item = item?;
                let meta = item.metadata()?;
                usage.files += 1;
                if meta.is_dir() {
                    walk(&item.open_dir()?, usage)?;
                } else {
                    usage.bytes += quota_bytes(&meta);
                }
            }
            Ok(())
        }
        let mut usage = HomeUsage::default();
        walk(&self.dir, &mut usage)?;
        Ok(usage)
    }
}

/// What [`LocalStore::remove_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemovedFile {
    /// Quota bytes the file held.
    pub freed: u64,
    /// A partial upload to the same name is still there.
    pub partial_remains: bool,
}

/// A partial upload found in a home (see [`LocalStore::partials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialFound {
    /// The path it will be published under.
    pub target: VirtualPath,
    pub bytes: u64,
    /// When it was last written.
    pub modified: SystemTime,
}

/// A home's size as the quota counts it (see [`LocalStore::usage`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HomeUsage {
    pub bytes: u64,
    pub files: u64,
}

/// What an entry counts in the quota: its length for regular files, nothing for the rest.
pub fn quota_bytes(meta: &Metadata) -> u64 {
    if meta.is_file() { meta.len() } else { 0 }
}

/// Creates a home (and its parents) with mode 0700.
pub fn create_home_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

/// The home directory as the file service's storage: today's behaviour, behind the seam.
/// Uploads are hidden partials renamed into place after an fsync ([`PartialUpload`]); the
/// digest index and the resume states it keeps know files by inode, size and ctime.
impl FileStore for LocalStore {
    type Upload = PartialUpload;
    type Download = Download;

    fn check_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        LocalStore::check_dir(self, path)
    }

    fn list(&self, path: &VirtualPath, request: &PageRequest) -> Result<Listing, StorageError> {
        LocalStore::list(self, path, request)
    }

    fn stat(&self, path: &VirtualPath) -> Result<Entry, StorageError> {
        LocalStore::stat(self, path)
    }

    fn resume_len(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        LocalStore::resume_len(self, path)
    }

    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        LocalStore::mkdir(self, path)
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<RemovedFile, StorageError> {
        LocalStore::remove_file(self, path)
    }

    fn remove_partial(&self, target: &VirtualPath, unchanged_since: Option<SystemTime>) -> Result<u64, StorageError> {
        LocalStore::remove_partial(self, target, unchanged_since)
    }

    fn partials(&self) -> Result<Vec<PartialFound>, StorageError> {
        Ok(LocalStore::partials(self)?)
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        LocalStore::remove_dir(self, path)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        LocalStore::rename(self, from, to)
    }

    fn set_modified(&self, path: &VirtualPath, unix: i64) -> Result<(), StorageError> {
        LocalStore::set_modified(self, path, unix)
    }

    fn open_sized_upload(
        &self,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(PartialUpload, Md5), StorageError> {
        PartialUpload::open(self, target, size, &self.resume_states, may_create)
    }

    fn would_hash(&self, target: &VirtualPath) -> bool {
        PartialUpload::would_hash(self, target, &self.resume_states)
    }

    fn remember_upload_state(&self, upload: &PartialUpload, hasher: &Md5) {
        upload.remember_state(hasher, &self.resume_states)
    }

    fn open_stream_upload(
        &self,
        target: &VirtualPath,
        may_create: bool,
    ) -> Result<(PartialUpload, Option<u64>), StorageError> {
        PartialUpload::open_stream(self, target, may_create)
    }

    fn continue_upload(&self, upload: &mut PartialUpload, start: &StreamStart) -> Result<(), StorageError> {
        upload.continue_at(self, start)
    }

    fn abandon_upload(&self, upload: &mut PartialUpload) {
        upload.abandon(self)
    }

    fn publish_checked(
        &self,
        upload: PartialUpload,
        md5: Md5Digest,
        sender_md5: &[u8],
    ) -> Result<PublishedUpload, PublishFailed> {
        upload.publish(self, md5, sender_md5, &self.digests)
    }

    fn publish_as_is(&self, upload: PartialUpload) -> Result<DiskChange, PublishFailed> {
        upload.publish_stream(self)
    }

    fn open_download(
        &self,
        path: &VirtualPath,
        offset: u64,
        prefix_md5: &[u8],
    ) -> Result<(Download, Md5), StorageError> {
        Download::open(self, path, offset, prefix_md5, &self.digests)
    }

    fn open_download_at(&self, path: &VirtualPath, offset: u64) -> Result<Download, StorageError> {
        Download::open_at(self, path, offset, &self.digests)
    }

    fn send_download(
        &self,
        download: Download,
        hasher: Md5,
        max: usize,
        send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<Md5Digest>, StorageError> {
        download.send_rest(hasher, max, &self.digests, send)
    }

    fn file_md5(
        &self,
        path: &VirtualPath,
        may_hash: impl FnOnce() -> bool,
    ) -> Result<Option<(Md5Digest, u64, u64)>, StorageError> {
        super::download::file_md5(self, path, &self.digests, may_hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::jail::PathLimits;
    use crate::storage::list_page::ListDetail;

    fn vp(text: &str) -> VirtualPath {
        VirtualPath::resolve(&VirtualPath::root(), text, PathLimits::default()).unwrap()
    }

    #[test]
    fn refuses_symlinks_that_point_out() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "top secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        let home_path = root.path().join("home");
        let home = LocalStore::open(&home_path).unwrap();
        std::os::unix::fs::symlink(outside.path(), home_path.join("out")).unwrap();
        std::os::unix::fs::symlink("../../", home_path.join("up")).unwrap();
        std::fs::create_dir(home_path.join("inside")).unwrap();
        std::os::unix::fs::symlink("inside", home_path.join("ok")).unwrap();

        assert!(matches!(
            home.list(&vp("out"), &PageRequest::first(10, ListDetail::Facts)),
            Err(StorageError::OutsideHome)
        ));
        assert!(matches!(
            home.list(&vp("up"), &PageRequest::first(10, ListDetail::Facts)),
            Err(StorageError::OutsideHome)
        ));
        assert!(matches!(home.check_dir(&vp("out")), Err(StorageError::OutsideHome)));
        assert!(home.check_dir(&vp("ok")).is_ok(), "a symlink staying inside is fine");
        let listing = home.list(&VirtualPath::root(), &PageRequest::first(10, ListDetail::Facts)).unwrap();
        let names: Vec<_> = listing.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["inside", "ok", "out", "up"]);
    }

    #[test]
    fn file_operations_and_usage() {
        let root = tempfile::tempdir().unwrap();
        let home = LocalStore::open(&root.path().join("h")).unwrap();
        home.mkdir(&vp("d")).unwrap();
        assert!(matches!(home.mkdir(&vp("d")), Err(StorageError::AlreadyExists)));
        std::fs::write(root.path().join("h/d/f"), vec![0u8; 100]).unwrap();
        std::fs::write(root.path().join("h/d/.g.ftpa-part"), vec![0u8; 50]).unwrap();
        assert_eq!(home.usage().unwrap(), HomeUsage { bytes: 150, files: 3 }, "partials count");
        let listing = home.list(&vp("d"), &PageRequest::first(10, ListDetail::Facts)).unwrap();
        let kinds: Vec<_> = listing.entries.iter().map(|e| (e.name.as_str(), e.kind, e.size)).collect();
        assert_eq!(
            kinds,
            [("f", EntryKind::File, 100), ("g", EntryKind::Partial, 50)],
            "a partial shows as its target"
        );
        let alone = home.list(&vp("d/g"), &PageRequest::first(10, ListDetail::Facts)).unwrap();
        assert_eq!(alone.entries[0].kind, EntryKind::Partial, "a name with only a partial describes it");
        let found = home.partials().unwrap();
        assert_eq!((found.len(), found[0].target.to_string(), found[0].bytes), (1, "/d/g".to_string(), 50));
        assert!(matches!(home.remove_dir(&vp("d")), Err(StorageError::NotEmpty)));
        home.rename(&vp("d/f"), &vp("f2")).unwrap();
        assert!(matches!(home.rename(&vp("d"), &vp("d/x")), Err(StorageError::IntoItself)));
        home.rename(&vp("d"), &vp("d")).unwrap();
        assert!(matches!(home.rename(&vp("nope"), &vp("nope")), Err(StorageError::NotFound)));
        assert_eq!(home.remove_file(&vp("f2")).unwrap(), RemovedFile { freed: 100, partial_remains: false });
        std::fs::write(root.path().join("h/d/g"), vec![0u8; 10]).unwrap();
        assert_eq!(home.remove_file(&vp("d/g")).unwrap(), RemovedFile { freed: 10, partial_remains: true });
        let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
        assert!(
            matches!(home.remove_partial(&vp("d/g"), Some(an_hour_ago)), Err(StorageError::RecentlyWritten)),
            "too fresh"
        );
        assert_eq!(home.remove_partial(&vp("d/g"), None).unwrap(), 50);
        assert!(matches!(home.remove_partial(&vp("d/g"), None), Err(StorageError::NotFound)));
        home.remove_dir(&vp("d")).unwrap();
        assert!(matches!(home.remove_file(&vp("f2")), Err(StorageError::NotFound)));
        assert!(matches!(home.remove_dir(&VirtualPath::root()), Err(StorageError::HomeItself)));
    }

    #[test]
    fn names_put_on_the_disk_by_other_programs_are_listed_without_control_characters() {
        use std::os::unix::ffi::OsStrExt;
        let root = tempfile::tempdir().unwrap();
        let home = LocalStore::open(root.path()).unwrap();
        std::fs::write(root.path().join("forged\r\n226 done\x1b[2J"), "x").unwrap();
        std::fs::write(root.path().join(std::ffi::OsStr::from_bytes(b"latin1-\xe9")), "x").unwrap();
        let names: Vec<String> = home
            .list(&VirtualPath::root(), &PageRequest::first(10, ListDetail::Facts))
            .unwrap()
            .entries
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["forged??226 done?[2J", "latin1-\u{fffd}"]);
    }

    use proptest::strategy::Strategy as _;

    fn utf8(c: char) -> Vec<u8> {
        c.to_string().into_bytes()
    }

    proptest::proptest! {
        /// Names copied whole are exactly what rebuilding them a character at a time gives.
        /// A name is characters drawn mostly from the edges of the controls (C0, DEL, C1) and
        /// their neighbours, now and then with a byte that is not UTF-8.
        #[test]
        fn a_name_is_shown_alike_whether_copied_or_rebuilt(
            pieces in proptest::collection::vec(proptest::prop_oneof![
                4 => proptest::sample::select(vec!['\0', '\x1f', ' ', '~', '\x7f', '\u{80}', '\u{85}', '\u{9f}', '\u{a0}', '\u{bf}', 'é', '€']).prop_map(utf8),
                2 => proptest::char::any().prop_map(utf8),
                1 => (0x80u8..=0xff).prop_map(|byte| vec![byte]),
            ], 0..8)
        ) {
            use std::os::unix::ffi::OsStrExt;
            let bytes = pieces.concat();
            let on_disk = std::ffi::OsStr::from_bytes(&bytes);
            let rebuilt: String = on_disk.to_string_lossy().chars().map(|c| if c.is_control() { '?' } else { c }).collect();
            proptest::prop_assert_eq!(shown_name(on_disk), rebuilt);
        }
    }

    #[test]
    fn times_before_1970_are_kept() {
        let root = tempfile::tempdir().unwrap();
        let home = LocalStore::open(root.path()).unwrap();
        let file = std::fs::File::create(root.path().join("old")).unwrap();
        file.set_modified(UNIX_EPOCH - std::time::Duration::from_secs(2_147_472_000)).unwrap();
        assert_eq!(home.stat(&vp("old")).unwrap().modified, -2_147_472_000);
        assert_eq!(unix_time(UNIX_EPOCH - std::time::Duration::from_millis(1)), -1, "rounded down");
        assert_eq!(unix_time(UNIX_EPOCH + std::time::Duration::from_millis(1500)), 1);
    }
}
