//! The SFTP requests of a logged-in session (version 3, as OpenSSH speaks it), each
//! translated to the service that every front end shares: paths resolved inside the home (the
//! home is `/`), listings, directories, removals, renames, uploads and downloads. No file
//! logic lives here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use russh_sftp::extensions::{LimitsExtension, StatvfsExtension};
use russh_sftp::protocol::{
    Attrs, Data, ExtendedReply, File, FileAttributes, Handle, Name, OpenFlags, Packet, Status, StatusCode, Version,
};

use crate::net::{Entry, EntryKind, ErrorCode, WireError};
use crate::service::{EntryChange, ListingPages, LoggedIn, UserFiles, begin_fresh};
use crate::storage::VirtualPath;
use crate::storage::list_page::ListDetail;

use super::paths::clamped_to_home;
use super::reading::Reading;
use super::reply::{attributes_of, quota_as_statvfs, status_of};
use super::writing::{TransferLog, Writing};

/// The largest request packet accepted: a write of [`MAX_WRITE`] bytes and its header.
pub const MAX_PACKET: usize = MAX_WRITE + 1024;
/// The largest read or write a client is told it may ask for (`limits@openssh.com`).
const MAX_WRITE: usize = 256 * 1024;
/// Handles (files and directories) a session may hold open at once.
const MAX_HANDLES: usize = 16;
/// Files a session may hold open at once: each holds at most two 1 MiB blocks, so a session's
/// transfers hold at most 8 MiB (an FTP session's one transfer holds two blocks).
const MAX_OPEN_FILES: usize = 4;
/// Names sent per `readdir` answer.
const NAMES_PER_READDIR: usize = 128;

enum OpenHandle {
    /// A directory's listing, read a page at a time, and what is left of the page read last.
    Dir(ListingPages, std::vec::IntoIter<Entry>),
    Read(Reading),
    Write(Writing),
}

/// One session's requests once its user is logged in: what it has open, and the answer to each
/// request in turn (the session task feeds them in order; the property test in
/// `tests/sftp_interleavings.rs` feeds them directly).
pub struct Requests {
    login: LoggedIn,
    peer: SocketAddr,
    handles: HashMap<String, OpenHandle>,
    next_handle: u64,
}

/// A request's failure: a status code and the message shown.
struct Refused(StatusCode, String);

impl From<WireError> for Refused {
    fn from(error: WireError) -> Refused {
        let (code, message) = status_of(&error);
        Refused(code, message)
    }
}

type Answer<T> = Result<T, Refused>;

fn unsupported(what: &str) -> Refused {
    Refused(StatusCode::OpUnsupported, format!("{what} is not offered by this server"))
}

fn ok(id: u32) -> Packet {
    Packet::Status(Status { id, status_code: StatusCode::Ok, error_message: "Ok".into(), language_tag: "en".into() })
}

impl Requests {
    pub fn new(login: LoggedIn, peer: SocketAddr) -> Requests {
        Requests { login, peer, handles: HashMap::new(), next_handle: 0 }
    }

    pub fn user(&self) -> &str {
        self.login.user()
    }

    /// The user's files (for a command beside the requests: `md5sum`).
    pub fn files(&self) -> &Arc<UserFiles> {
        &self.login.files
    }

    /// Where relative paths start (the home).
    pub fn cwd(&self) -> &VirtualPath {
        &self.login.cwd
    }

    /// Is a file open (a transfer in progress)? A draining server waits for those.
    pub fn transferring(&self) -> bool {
        self.handles.values().any(|handle| !matches!(handle, OpenHandle::Dir(..)))
    }

    /// The answer to one request.
    pub async fn answer(&mut self, request: Packet) -> Packet {
        let id = request.get_request_id();
        let answered = match request {
            Packet::Init(_) => return Packet::Version(version()),
            Packet::RealPath(real) => self.realpath(real.path).map(|name| Packet::Name(Name { id, files: vec![name] })),
            Packet::Stat(stat) => self.stat(stat.path).await.map(|attrs| Packet::Attrs(Attrs { id, attrs })),
            // Symbolic links are not followed or made here: lstat is stat.
            Packet::Lstat(stat) => self.stat(stat.path).await.map(|attrs| Packet::Attrs(Attrs { id, attrs })),
            Packet::Fstat(stat) => self.fstat(&stat.handle).map(|attrs| Packet::Attrs(Attrs { id, attrs })),
            Packet::SetStat(set) => self.setstat(set.path, set.attrs).await.map(|()| ok(id)),
            Packet::FSetStat(set) => self.fsetstat(&set.handle, set.attrs).map(|()| ok(id)),
            Packet::OpenDir(open) => self.opendir(open.path).await.map(|handle| Packet::Handle(Handle { id, handle })),
            Packet::ReadDir(read) => self.readdir(&read.handle).await.map(|files| Packet::Name(Name { id, files })),
            Packet::Open(open) => {
                self.open(open.filename, open.pflags).await.map(|handle| Packet::Handle(Handle { id, handle }))
            }
            Packet::Read(read) => {
                self.read(&read.handle, read.offset, read.len).await.map(|data| Packet::Data(Data { id, data }))
            }
            Packet::Write(write) => self.write(&write.handle, write.offset, &write.data).await.map(|()| ok(id)),
            Packet::Close(close) => self.close(&close.handle).await.map(|()| ok(id)),
            Packet::Remove(remove) => self.remove(remove.filename).await.map(|()| ok(id)),
            Packet::MkDir(mkdir) => self.change(EntryChange::MakeDir, mkdir.path).await.map(|()| ok(id)),
            Packet::RmDir(rmdir) => self.change(EntryChange::RemoveDir, rmdir.path).await.map(|()| ok(id)),
            Packet::Rename(rename) => self.rename(rename.oldpath, rename.newpath).await.map(|()| ok(id)),
            Packet::ReadLink(_) | Packet::Symlink(_) => Err(Refused(
                StatusCode::PermissionDenied,
                "symbolic links are not offered by this server: they could point outside your home".into(),
            )),
            Packet::Extended(extended) => self.extended(id, &extended.request, extended.data).await,
            _ => Err(Refused(StatusCode::BadMessage, "not a request".into())),
        };
        answered.unwrap_or_else(|Refused(status_code, error_message)| {
            Packet::Status(Status { id, status_code, error_message, language_tag: "en".into() })
        })
    }

    fn resolve(&self, op: &str, path: &str) -> Result<VirtualPath, WireError> {
        self.login.resolve(op, path)
    }

    /// Where `path` is, from the home (`/`): `..` at the top stays at the top (see
    /// [`clamped_to_home`]); the result must still be a path the jail accepts.
    fn realpath(&self, path: String) -> Answer<File> {
        let resolved = self.resolve("realpath", &clamped_to_home(&path))?;
        Ok(File::dummy(resolved.to_string()))
    }

    /// The attributes of `path`; where only a partial upload is (an interrupted upload), the
    /// bytes it holds, so that a resume (`reput`) continues after them.
    async fn stat(&self, path: String) -> Answer<FileAttributes> {
        let target = self.resolve("stat", &path)?;
        match self.files().stat(target.clone(), path.clone()).await {
            Ok(entry) => Ok(attributes_of(&entry)),
            Err(missing) if missing.code == ErrorCode::NotFound && !target.is_root() => {
                let listing =
                    self.files().list(target, path, None, ListDetail::Facts).await.map_err(|_| missing.clone())?;
                match listing.entries.as_slice() {
                    [partial] if partial.kind == EntryKind::Partial => Ok(attributes_of(partial)),
                    _ => Err(missing.into()),
                }
            }
            Err(failed) => Err(failed.into()),
        }
    }

    fn fstat(&self, handle: &str) -> Answer<FileAttributes> {
        let size = match self.handles.get(handle) {
            Some(OpenHandle::Read(reading)) => reading.size(),
            Some(OpenHandle::Write(writing)) => writing.len(),
            Some(OpenHandle::Dir(..)) => return Err(unsupported("fstat of a directory handle")),
            None => return Err(no_handle()),
        };
        let entry = Entry { name: String::new(), kind: EntryKind::File, size, modified: now() };
        Ok(attributes_of(&entry))
    }

    /// Sets what can be set: the modification time. Permissions and owners are the server's
    /// (homes are private to their user), so they are accepted and left as they are; a change
    /// of size is refused.
    async fn setstat(&self, path: String, attrs: FileAttributes) -> Answer<()> {
        if attrs.size.is_some() {
            return Err(unsupported("changing a file's size"));
        }
        if let Some(mtime) = attrs.mtime {
            let target = self.resolve("set time", &path)?;
            self.files().set_modified(target, i64::from(mtime), path).await?;
        }
        Ok(())
    }

    fn fsetstat(&mut self, handle: &str, attrs: FileAttributes) -> Answer<()> {
        match self.handles.get_mut(handle) {
            Some(OpenHandle::Write(writing)) => {
                if let Some(mtime) = attrs.mtime {
                    writing.set_mtime(i64::from(mtime));
                }
                match attrs.size {
                    Some(size) if size != writing.len() => Err(unsupported("changing a file's size")),
                    _ => Ok(()),
                }
            }
            Some(_) => Ok(()),
            None => Err(no_handle()),
        }
    }

    fn add_handle(&mut self, handle: OpenHandle) -> Answer<String> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Refused(StatusCode::Failure, format!("at most {MAX_HANDLES} handles may be open at once")));
        }
        self.next_handle += 1;
        let name = self.next_handle.to_string();
        self.handles.insert(name.clone(), handle);
        Ok(name)
    }

    async fn opendir(&mut self, path: String) -> Answer<String> {
        let target = self.resolve("ls", &path)?;
        self.files().check_dir(target.clone(), path.clone()).await?;
        let mut pages = ListingPages::new(self.files().clone(), target, path, ListDetail::Facts);
        let first = pages.next().await?.unwrap_or_default();
        self.add_handle(OpenHandle::Dir(pages, first.into_iter()))
    }

    /// The next names of a directory, read from its listing a page at a time, so that a
    /// directory of any size is listed whole with one page in memory.
    async fn readdir(&mut self, handle: &str) -> Answer<Vec<File>> {
        let Some(OpenHandle::Dir(pages, entries)) = self.handles.get_mut(handle) else { return Err(no_handle()) };
        loop {
            let files: Vec<File> = entries
                .by_ref()
                .take(NAMES_PER_READDIR)
                .map(|entry| File::new(entry.name.clone(), attributes_of(&entry)))
                .collect();
            if !files.is_empty() {
                return Ok(files);
            }
            match pages.next().await? {
                Some(page) => *entries = page.into_iter(),
                None => return Err(Refused(StatusCode::Eof, "end of the directory".into())),
            }
        }
    }

    async fn open(&mut self, path: String, flags: OpenFlags) -> Answer<String> {
        let files = self.handles.values().filter(|handle| !matches!(handle, OpenHandle::Dir(..))).count();
        if files >= MAX_OPEN_FILES || self.handles.len() >= MAX_HANDLES {
            let limit = format!("at most {MAX_OPEN_FILES} files (and {MAX_HANDLES} handles) may be open at once");
            return Err(Refused(StatusCode::Failure, limit));
        }
        let writes = flags.intersects(OpenFlags::WRITE | OpenFlags::APPEND);
        if writes && flags.contains(OpenFlags::READ) {
            return Err(unsupported("opening a file to read and write at once (files are uploaded from start to end)"));
        }
        let op = if writes { "put" } else { "get" };
        let target = self.resolve(op, &path)?;
        let log = TransferLog {
            services: self.files().services().clone(),
            user: self.user().into(),
            peer: self.peer,
            shown: path,
        };
        let handle = if writes {
            if flags.contains(OpenFlags::EXCLUDE) && self.exists(&target, &log.shown).await {
                return Err(
                    WireError::new(ErrorCode::AlreadyExists, format!("put {}: it exists already", log.shown)).into()
                );
            }
            let fresh = begin_fresh(self.files().clone(), target.clone(), log.shown.clone()).await?;
            let (truncate, append) = (flags.contains(OpenFlags::TRUNCATE), flags.contains(OpenFlags::APPEND));
            OpenHandle::Write(Writing::new(fresh, target, truncate, append, log))
        } else {
            OpenHandle::Read(Reading::open(self.files(), target, log).await?)
        };
        self.add_handle(handle)
    }

    /// Is something published at `target`?
    async fn exists(&self, target: &VirtualPath, shown: &str) -> bool {
        self.files().stat(target.clone(), shown.to_string()).await.is_ok()
    }

    async fn read(&mut self, handle: &str, offset: u64, len: u32) -> Answer<Vec<u8>> {
        let files = self.login.files.clone();
        let Some(OpenHandle::Read(reading)) = self.handles.get_mut(handle) else { return Err(no_handle()) };
        let len = (len as usize).min(MAX_WRITE);
        let bytes = reading.read(&files, offset, len).await?;
        if bytes.is_empty() {
            return Err(Refused(StatusCode::Eof, "end of the file".into()));
        }
        Ok(bytes)
    }

    async fn write(&mut self, handle: &str, offset: u64, data: &[u8]) -> Answer<()> {
        let Some(OpenHandle::Write(writing)) = self.handles.get_mut(handle) else { return Err(no_handle()) };
        Ok(writing.write(offset, data).await?)
    }

    async fn close(&mut self, handle: &str) -> Answer<()> {
        match self.handles.remove(handle) {
            Some(OpenHandle::Dir(..)) => Ok(()),
            Some(OpenHandle::Read(reading)) => {
                reading.close(true);
                Ok(())
            }
            Some(OpenHandle::Write(writing)) => {
                let (files, target, shown) =
                    (self.files().clone(), writing.target().clone(), writing.shown().to_string());
                let exists = async { files.stat(target.clone(), shown.clone()).await.is_ok() };
                if let Some(mtime) = writing.close(exists).await? {
                    // The file is published: its time is a courtesy to mirrors, not worth failing the upload.
                    let _ = self.files().set_modified(target, mtime, shown).await;
                }
                Ok(())
            }
            None => Err(no_handle()),
        }
    }

    async fn remove(&self, path: String) -> Answer<()> {
        let target = self.resolve("rm", &path)?;
        self.files().remove_file(target, path).await?;
        Ok(())
    }

    async fn change(&self, change: EntryChange, path: String) -> Answer<()> {
        let target = self.resolve(change.op(), &path)?;
        Ok(self.files().change_entry(change, target, path).await?)
    }

    /// A rename never replaces: an existing target is refused, as SFTP version 3 says (and
    /// `posix-rename@openssh.com`, which would replace, answers the same).
    async fn rename(&self, from: String, to: String) -> Answer<()> {
        let source = self.resolve("mv", &from)?;
        let target = self.resolve("mv", &to)?;
        Ok(self.files().rename(source, target, format!("{from} -> {to}")).await?)
    }

    async fn extended(&mut self, id: u32, request: &str, data: Vec<u8>) -> Answer<Packet> {
        let mut data = bytes::Bytes::from(data);
        let malformed = |_| Refused(StatusCode::BadMessage, format!("malformed {request} request"));
        match request {
            "statvfs@openssh.com" => {
                let asked: StatvfsExtension = russh_sftp::de::from_bytes(&mut data).map_err(malformed)?;
                self.resolve("df", &asked.path)?;
                let usage = self.files().usage().await?;
                let data = russh_sftp::ser::to_bytes(&quota_as_statvfs(&usage)).map_err(internal)?;
                Ok(Packet::ExtendedReply(ExtendedReply { id, data: data.to_vec() }))
            }
            "posix-rename@openssh.com" => {
                let asked: russh_sftp::protocol::Rename =
                    russh_sftp::de::from_bytes(&mut prefixed_with_id(id, data)).map_err(malformed)?;
                self.rename(asked.oldpath, asked.newpath).await.map(|()| ok(id))
            }
            "limits@openssh.com" => {
                let limits = LimitsExtension {
                    max_packet_len: MAX_PACKET as u64,
                    max_read_len: MAX_WRITE as u64,
                    max_write_len: MAX_WRITE as u64,
                    max_open_handles: MAX_HANDLES as u64,
                };
                let data = russh_sftp::ser::to_bytes(&limits).map_err(internal)?;
                Ok(Packet::ExtendedReply(ExtendedReply { id, data: data.to_vec() }))
            }
            other => Err(unsupported(&format!("the extension {other}"))),
        }
    }

    /// Ends every open handle as the session ends: uploads not closed keep their bytes in
    /// their partial for a resume.
    pub async fn end(&mut self) {
        for (_, handle) in self.handles.drain() {
            match handle {
                OpenHandle::Write(writing) => writing.abandon().await,
                OpenHandle::Read(reading) => reading.close(false),
                OpenHandle::Dir(..) => {}
            }
        }
    }
}

/// The version answer: 3, with the extensions we serve.
fn version() -> Version {
    let mut version = Version::new();
    for (name, revision) in
        [("posix-rename@openssh.com", "1"), ("statvfs@openssh.com", "2"), ("limits@openssh.com", "1")]
    {
        version.extensions.insert(name.into(), revision.into());
    }
    version
}

/// `posix-rename@openssh.com` carries the two paths of a rename; read as one, with its id.
fn prefixed_with_id(id: u32, data: bytes::Bytes) -> bytes::Bytes {
    let mut with_id = Vec::with_capacity(4 + data.len());
    with_id.extend_from_slice(&id.to_be_bytes());
    with_id.extend_from_slice(&data);
    with_id.into()
}

fn no_handle() -> Refused {
    Refused(StatusCode::Failure, "no such handle: it was closed or never opened".into())
}

fn internal(error: impl std::fmt::Display) -> Refused {
    WireError::new(ErrorCode::Internal, format!("internal error: {error}")).into()
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_secs() as i64)
}
