//! A file store in memory: a second implementation of the storage seam, for the file service's
//! tests. It checks that the service's rules (a path in use waits, the quota stays exact, an
//! upload is published once) hold over a store that is not a local directory, the way an object
//! store under a database would be. Names, published files (immutable byte vectors under a
//! version) and interrupted uploads are kept apart, as such a store keeps them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use ftp_actor::integrity::{Digest, Md5};
use ftp_actor::net::{Entry, EntryKind};
use ftp_actor::quota::DiskChange;
use ftp_actor::storage::list_page::PageRequest;
use ftp_actor::storage::{
    DownloadSession, FileStore, Listing, Md5Digest, PartialFound, PathLimits, PublishFailed, PublishedUpload,
    RemovedFile, StorageError, StreamStart, UploadSession, VirtualPath,
};

#[derive(Debug, Clone)]
enum Node {
    Dir,
    File { data: Arc<Vec<u8>>, version: u64 },
}

#[derive(Debug, Default)]
struct Tree {
    /// Every name, by its path (`/a/b`); the root is implied.
    nodes: BTreeMap<String, Node>,
    /// The bytes of uploads not yet published, by their target's path.
    partials: HashMap<String, Vec<u8>>,
    /// MD5 states of interrupted uploads: the partial's length when remembered, and the state.
    states: HashMap<String, (u64, Md5)>,
    /// Digests of published files, by version.
    digests: HashMap<u64, Md5Digest>,
    next_version: u64,
}

impl Tree {
    fn is_dir(&self, path: &str) -> bool {
        path == "/" || matches!(self.nodes.get(path), Some(Node::Dir))
    }

    fn check_parent(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let parent = path.parent().to_string();
        match self.nodes.get(&parent) {
            _ if parent == "/" => Ok(()),
            Some(Node::Dir) => Ok(()),
            Some(Node::File { .. }) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn children(&self, dir: &str) -> impl Iterator<Item = (&String, &Node)> {
        let prefix = if dir == "/" { "/".to_string() } else { format!("{dir}/") };
        let depth = prefix.len();
        let start = prefix.clone();
        self.nodes
            .range(start..)
            .take_while(move |(key, _)| key.starts_with(&prefix))
            .filter(move |(key, _)| !key[depth..].contains('/'))
    }

    fn has_anything_under(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.nodes.keys().any(|key| key.starts_with(&prefix))
            || self.partials.keys().any(|key| key.starts_with(&prefix))
    }

    /// Bytes and entries the quota counts: files, directories and partials.
    fn usage(&self) -> (u64, u64) {
        let files: u64 = self
            .nodes
            .values()
            .map(|node| if let Node::File { data, .. } = node { data.len() as u64 } else { 0 })
            .sum();
        let partials: u64 = self.partials.values().map(|data| data.len() as u64).sum();
        (files + partials, (self.nodes.len() + self.partials.len()) as u64)
    }
}

/// One user's files, in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    tree: Arc<Mutex<Tree>>,
}

impl MemoryStore {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        self.tree.lock().unwrap()
    }

    /// Bytes and entries the quota must count for this store, as [`Tree::usage`] counts them.
    pub fn usage(&self) -> (u64, u64) {
        self.tree().usage()
    }
}

fn entry(name: &str, node: &Node) -> Entry {
    match node {
        Node::Dir => Entry { name: name.to_string(), kind: EntryKind::Dir, size: 0, modified: 0 },
        Node::File { data, .. } => {
            Entry { name: name.to_string(), kind: EntryKind::File, size: data.len() as u64, modified: 0 }
        }
    }
}

/// An upload whose bytes live in the store's partials.
pub struct MemoryUpload {
    tree: Arc<Mutex<Tree>>,
    target: String,
    size: u64,
    start_len: u64,
    replaced_len: u64,
    prefix_hashed: u64,
    existed: bool,
    exists: bool,
}

impl MemoryUpload {
    fn len(&self) -> u64 {
        let tree = self.tree.lock().unwrap();
        tree.partials.get(&self.target).map_or(0, |data| data.len() as u64)
    }
}

impl UploadSession for MemoryUpload {
    fn offset(&self) -> u64 {
        self.len()
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn start_len(&self) -> u64 {
        self.start_len
    }

    fn replaced_len(&self) -> u64 {
        self.replaced_len
    }

    fn prefix_hashed(&self) -> u64 {
        self.prefix_hashed
    }

    fn disk_change(&self) -> DiskChange {
        let len = if self.exists { self.len() as i64 } else { 0 };
        DiskChange { bytes: len - self.start_len as i64, files: self.exists as i64 - self.existed as i64 }
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let mut tree = self.tree.lock().unwrap();
        let data = tree.partials.get_mut(&self.target).ok_or(StorageError::NotFound)?;
        if data.len() as u64 + bytes.len() as u64 > self.size {
            return Err(StorageError::TooMuchData);
        }
        data.extend_from_slice(bytes);
        Ok(())
    }

    fn restart(&mut self) -> Result<(), StorageError> {
        let mut tree = self.tree.lock().unwrap();
        tree.partials.get_mut(&self.target).ok_or(StorageError::NotFound)?.clear();
        Ok(())
    }
}

/// A download of a snapshot of the file's bytes.
pub struct MemoryDownload {
    data: Arc<Vec<u8>>,
    version: u64,
    known: Option<Md5Digest>,
    start: u64,
    position: u64,
    prefix_hashed: u64,
}

impl DownloadSession for MemoryDownload {
    fn size(&self) -> u64 {
        self.data.len() as u64
    }

    fn start(&self) -> u64 {
        self.start
    }

    fn modified(&self) -> i64 {
        0
    }

    fn prefix_hashed(&self) -> u64 {
        self.prefix_hashed
    }

    fn is_done(&self) -> bool {
        self.position == self.size()
    }

    fn read_chunk_into(&mut self, chunk: &mut Vec<u8>, max: usize) -> Result<(), StorageError> {
        let end = (self.position as usize + max).min(self.data.len());
        chunk.clear();
        chunk.extend_from_slice(&self.data[self.position as usize..end]);
        self.position = end as u64;
        Ok(())
    }
}

impl MemoryStore {
    fn open_upload(&self, target: &VirtualPath, size: u64, may_create: bool) -> Result<MemoryUpload, StorageError> {
        let key = target.to_string();
        let mut tree = self.tree();
        if target.is_root() || tree.is_dir(&key) {
            return Err(StorageError::IsADirectory);
        }
        tree.check_parent(target)?;
        let existed = tree.partials.contains_key(&key);
        if !existed {
            if !may_create {
                return Err(StorageError::TooManyFiles);
            }
            tree.partials.insert(key.clone(), Vec::new());
        }
        let start_len = tree.partials[&key].len() as u64;
        let replaced_len = match tree.nodes.get(&key) {
            Some(Node::File { data, .. }) => data.len() as u64,
            _ => 0,
        };
        let tree_handle = self.tree.clone();
        Ok(MemoryUpload {
            tree: tree_handle,
            target: key,
            size,
            start_len,
            replaced_len,
            prefix_hashed: 0,
            existed,
            exists: true,
        })
    }

    /// Moves the upload's bytes under its name as a new version; what the upload changed, all told.
    fn publish(&self, upload: &mut MemoryUpload, md5: Option<Md5Digest>) -> Result<DiskChange, StorageError> {
        let mut tree = self.tree();
        let replaced = match tree.nodes.get(&upload.target) {
            Some(Node::Dir) => return Err(StorageError::IsADirectory),
            Some(Node::File { data, .. }) => Some(data.len() as u64),
            None => None,
        };
        let data = tree.partials.remove(&upload.target).ok_or(StorageError::NotFound)?;
        tree.states.remove(&upload.target);
        upload.exists = false;
        let len = data.len() as i64;
        tree.next_version += 1;
        let version = tree.next_version;
        if let Some(md5) = md5 {
            tree.digests.insert(version, md5);
        }
        tree.nodes.insert(upload.target.clone(), Node::File { data: Arc::new(data), version });
        Ok(DiskChange {
            bytes: len - upload.start_len as i64 - replaced.unwrap_or(0) as i64,
            files: 1 - upload.existed as i64 - replaced.is_some() as i64,
        })
    }

    /// A download of the file at `path` from its start.
    fn file(&self, path: &VirtualPath) -> Result<MemoryDownload, StorageError> {
        let tree = self.tree();
        match tree.nodes.get(&path.to_string()) {
            Some(Node::File { data, version }) => Ok(MemoryDownload {
                data: data.clone(),
                version: *version,
                known: tree.digests.get(version).copied(),
                start: 0,
                position: 0,
                prefix_hashed: 0,
            }),
            Some(Node::Dir) => Err(StorageError::IsADirectory),
            None if path.is_root() => Err(StorageError::IsADirectory),
            None => Err(StorageError::NotFound),
        }
    }
}

impl FileStore for MemoryStore {
    type Upload = MemoryUpload;
    type Download = MemoryDownload;

    fn check_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let tree = self.tree();
        match tree.nodes.get(&path.to_string()) {
            _ if path.is_root() => Ok(()),
            Some(Node::Dir) => Ok(()),
            Some(Node::File { .. }) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn list(&self, path: &VirtualPath, request: &PageRequest) -> Result<Listing, StorageError> {
        self.check_dir(path)?;
        let tree = self.tree();
        let dir = path.to_string();
        let mut all: Vec<Entry> =
            tree.children(&dir).map(|(key, node)| entry(key.rsplit('/').next().unwrap(), node)).collect();
        let in_dir = |key: &String| {
            path.is_root() && key.rfind('/') == Some(0)
                || key.starts_with(&format!("{dir}/")) && !key[dir.len() + 1..].contains('/')
        };
        for (key, data) in tree.partials.iter().filter(|(key, _)| in_dir(key)) {
            let name = key.rsplit('/').next().unwrap().to_string();
            all.push(Entry { name, kind: EntryKind::Partial, size: data.len() as u64, modified: 0 });
        }
        Ok(request.cut(all))
    }

    fn stat(&self, path: &VirtualPath) -> Result<Entry, StorageError> {
        if path.is_root() {
            return Ok(entry("/", &Node::Dir));
        }
        let tree = self.tree();
        let node = tree.nodes.get(&path.to_string()).ok_or(StorageError::NotFound)?;
        Ok(entry(path.file_name().unwrap_or("/"), node))
    }

    fn resume_len(&self, path: &VirtualPath) -> Result<u64, StorageError> {
        let tree = self.tree();
        let key = path.to_string();
        match tree.nodes.get(&key) {
            Some(Node::Dir) => Err(StorageError::IsADirectory),
            Some(Node::File { data, .. }) => Ok(data.len() as u64),
            None => tree.partials.get(&key).map(|data| data.len() as u64).ok_or(StorageError::NotFound),
        }
    }

    fn mkdir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        let mut tree = self.tree();
        let key = path.to_string();
        if path.is_root() || tree.nodes.contains_key(&key) {
            return Err(StorageError::AlreadyExists);
        }
        tree.check_parent(path)?;
        tree.nodes.insert(key, Node::Dir);
        Ok(())
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<RemovedFile, StorageError> {
        let mut tree = self.tree();
        let key = path.to_string();
        match tree.nodes.get(&key) {
            Some(Node::File { .. }) => match tree.nodes.remove(&key) {
                Some(Node::File { data, .. }) => {
                    Ok(RemovedFile { freed: data.len() as u64, partial_remains: tree.partials.contains_key(&key) })
                }
                _ => unreachable!("just looked"),
            },
            Some(Node::Dir) => Err(StorageError::IsADirectory),
            None if path.is_root() => Err(StorageError::HomeItself),
            None => Err(StorageError::NotFound),
        }
    }

    /// The memory store keeps no times: every partial is old enough.
    fn remove_partial(&self, target: &VirtualPath, _: Option<SystemTime>) -> Result<u64, StorageError> {
        let mut tree = self.tree();
        let key = target.to_string();
        tree.states.remove(&key);
        tree.partials.remove(&key).map(|data| data.len() as u64).ok_or(StorageError::NotFound)
    }

    fn partials(&self) -> Result<Vec<PartialFound>, StorageError> {
        let tree = self.tree();
        let limits = PathLimits::default();
        Ok(tree
            .partials
            .iter()
            .map(|(key, data)| PartialFound {
                target: VirtualPath::resolve(&VirtualPath::root(), key, limits).expect("stored paths are valid"),
                bytes: data.len() as u64,
                modified: SystemTime::UNIX_EPOCH,
            })
            .collect())
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), StorageError> {
        if path.is_root() {
            return Err(StorageError::HomeItself);
        }
        let mut tree = self.tree();
        let key = path.to_string();
        match tree.nodes.get(&key) {
            Some(Node::Dir) if tree.has_anything_under(&key) => Err(StorageError::NotEmpty),
            Some(Node::Dir) => {
                tree.nodes.remove(&key);
                Ok(())
            }
            Some(Node::File { .. }) => Err(StorageError::NotADirectory),
            None => Err(StorageError::NotFound),
        }
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), StorageError> {
        if from.is_root() || to.is_root() {
            return Err(StorageError::HomeItself);
        }
        if to.starts_with(from) {
            return Err(StorageError::IntoItself);
        }
        let mut tree = self.tree();
        let (old, new) = (from.to_string(), to.to_string());
        if !tree.nodes.contains_key(&old) {
            return Err(StorageError::NotFound);
        }
        if tree.nodes.contains_key(&new) {
            return Err(StorageError::AlreadyExists);
        }
        tree.check_parent(to)?;
        let prefix = format!("{old}/");
        let moved: Vec<String> =
            tree.nodes.keys().filter(|key| **key == old || key.starts_with(&prefix)).cloned().collect();
        for key in moved {
            let node = tree.nodes.remove(&key).unwrap();
            tree.nodes.insert(format!("{new}{}", &key[old.len()..]), node);
        }
        let partials: Vec<String> = tree.partials.keys().filter(|key| key.starts_with(&prefix)).cloned().collect();
        for key in partials {
            let data = tree.partials.remove(&key).unwrap();
            tree.partials.insert(format!("{new}{}", &key[old.len()..]), data);
        }
        Ok(())
    }

    fn set_modified(&self, path: &VirtualPath, _unix: i64) -> Result<(), StorageError> {
        self.stat(path).map(drop)
    }

    fn open_sized_upload(
        &self,
        target: &VirtualPath,
        size: u64,
        may_create: bool,
    ) -> Result<(MemoryUpload, Md5), StorageError> {
        let mut upload = self.open_upload(target, size, may_create)?;
        let mut tree = self.tree();
        let data = tree.partials.get_mut(&upload.target).expect("opened");
        if data.len() as u64 > size {
            data.clear();
            return Ok((upload, Md5::new()));
        }
        let len = data.len() as u64;
        if let Some((remembered, state)) = tree.states.get(&upload.target)
            && *remembered == len
        {
            return Ok((upload, state.clone()));
        }
        let mut hasher = Md5::new();
        hasher.update(&tree.partials[&upload.target]);
        upload.prefix_hashed = len;
        Ok((upload, hasher))
    }

    fn would_hash(&self, target: &VirtualPath) -> bool {
        let tree = self.tree();
        let key = target.to_string();
        let len = tree.partials.get(&key).map_or(0, |data| data.len() as u64);
        len > 0 && tree.states.get(&key).is_none_or(|(remembered, _)| *remembered != len)
    }

    fn remember_upload_state(&self, upload: &MemoryUpload, hasher: &Md5) {
        let len = upload.len();
        self.tree().states.insert(upload.target.clone(), (len, hasher.clone()));
    }

    fn open_stream_upload(
        &self,
        target: &VirtualPath,
        may_create: bool,
    ) -> Result<(MemoryUpload, Option<u64>), StorageError> {
        let upload = self.open_upload(target, u64::MAX, may_create)?;
        let target_len = match self.tree().nodes.get(&upload.target) {
            Some(Node::File { data, .. }) => Some(data.len() as u64),
            _ => None,
        };
        Ok((upload, target_len))
    }

    fn continue_upload(&self, upload: &mut MemoryUpload, start: &StreamStart) -> Result<(), StorageError> {
        let mut tree = self.tree();
        let prefix = match *start {
            StreamStart::Partial(len) => tree.partials[&upload.target][..len as usize].to_vec(),
            StreamStart::Target(len) => match tree.nodes.get(&upload.target) {
                Some(Node::File { data, .. }) if data.len() as u64 >= len => data[..len as usize].to_vec(),
                _ => return Err(StorageError::ChangedDuringTransfer),
            },
        };
        tree.partials.insert(upload.target.clone(), prefix);
        Ok(())
    }

    fn abandon_upload(&self, upload: &mut MemoryUpload) {
        let mut tree = self.tree();
        if upload.exists && tree.partials.get(&upload.target).is_some_and(Vec::is_empty) {
            tree.partials.remove(&upload.target);
            upload.exists = false;
        }
    }

    fn publish_checked(
        &self,
        mut upload: MemoryUpload,
        md5: Md5Digest,
        sender_md5: &[u8],
    ) -> Result<PublishedUpload, PublishFailed> {
        let len = upload.len();
        if len != upload.size {
            let error = StorageError::Incomplete { received: len, expected: upload.size };
            return Err(PublishFailed { error, change: upload.disk_change() });
        }
        if md5[..] != *sender_md5 {
            self.tree().partials.remove(&upload.target);
            upload.exists = false;
            let error = StorageError::ChecksumMismatch { expected: hex::encode(sender_md5), actual: hex::encode(md5) };
            return Err(PublishFailed { error, change: upload.disk_change() });
        }
        match self.publish(&mut upload, Some(md5)) {
            Ok(change) => Ok(PublishedUpload { md5, change }),
            Err(error) => Err(PublishFailed { error, change: upload.disk_change() }),
        }
    }

    fn publish_as_is(&self, mut upload: MemoryUpload) -> Result<DiskChange, PublishFailed> {
        self.publish(&mut upload, None).map_err(|error| PublishFailed { error, change: upload.disk_change() })
    }

    fn open_download(
        &self,
        path: &VirtualPath,
        offset: u64,
        prefix_md5: &[u8],
    ) -> Result<(MemoryDownload, Md5), StorageError> {
        let mut download = self.open_download_at(path, 0)?;
        let mut hasher = Md5::new();
        if offset > 0 && offset <= download.size() {
            hasher.update(&download.data[..offset as usize]);
            download.prefix_hashed = offset;
            if hasher.clone().finalize()[..] == *prefix_md5 {
                (download.start, download.position) = (offset, offset);
            } else {
                hasher = Md5::new();
            }
        }
        Ok((download, hasher))
    }

    fn open_download_at(&self, path: &VirtualPath, offset: u64) -> Result<MemoryDownload, StorageError> {
        let mut download = self.file(path)?;
        if offset > download.size() {
            return Err(StorageError::RestartBeyondEnd { offset, available: download.size() });
        }
        (download.start, download.position) = (offset, offset);
        Ok(download)
    }

    fn send_download(
        &self,
        mut download: MemoryDownload,
        mut hasher: Md5,
        max: usize,
        mut send: impl FnMut(Vec<u8>) -> bool,
    ) -> Result<Option<Md5Digest>, StorageError> {
        while !download.is_done() {
            let mut chunk = Vec::new();
            download.read_chunk_into(&mut chunk, max)?;
            hasher.update(&chunk);
            if !send(chunk) {
                return Ok(None);
            }
        }
        let md5 = download.known.unwrap_or_else(|| hasher.finalize().into());
        self.tree().digests.insert(download.version, md5);
        Ok(Some(md5))
    }

    fn file_md5(
        &self,
        path: &VirtualPath,
        may_hash: impl FnOnce() -> bool,
    ) -> Result<Option<(Md5Digest, u64, u64)>, StorageError> {
        let download = self.file(path)?;
        let size = download.size();
        if let Some(md5) = download.known {
            return Ok(Some((md5, size, 0)));
        }
        if !may_hash() {
            return Ok(None);
        }
        let md5: Md5Digest = Md5::digest(&*download.data).into();
        self.tree().digests.insert(download.version, md5);
        Ok(Some((md5, size, size)))
    }
}
