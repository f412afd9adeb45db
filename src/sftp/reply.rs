//! What the SFTP front end says back, worked out without a connection: a status for each of
//! our errors, the failures also told on standard error, the attributes of an entry, and the
//! quota shown as a file system (`df`).
//!
//! SFTP version 3 has eight status codes; ours are finer. The status is the closest code a
//! client acts on (no such file, permission denied, or failure) and the message carries ours
//! as the other front ends show it, `(error 400)`; where a client prints only the status
//! (OpenSSH's `sftp`), a failure's message reaches the person on standard error
//! ([`FailureNotes`]), so a person sees the same words whatever the client.

use russh_sftp::extensions::Statvfs;
use russh_sftp::protocol::{FileAttributes, Packet, Status, StatusCode};

use crate::net::{Entry, EntryKind, ErrorCode, WireError};
use crate::quota::Usage;

/// The SFTP status for one of our errors, and its message.
pub fn status_of(error: &WireError) -> (StatusCode, String) {
    let code = match error.code {
        ErrorCode::NotFound => StatusCode::NoSuchFile,
        ErrorCode::PathOutsideHome | ErrorCode::NotLoggedIn => StatusCode::PermissionDenied,
        ErrorCode::MalformedFrame | ErrorCode::UnexpectedMessage => StatusCode::BadMessage,
        _ => StatusCode::Failure,
    };
    (code, error.sentence())
}

/// Failures told on the channel's standard error as well as in the status. SFTP version 3's
/// generic status is all OpenSSH's `sftp` prints of most errors (`write remote "/big.iso":
/// Failure`), whatever the message says, so a full disk or a quota would go unexplained;
/// `ssh` prints what comes on standard error, so the reason reaches the person. Bounded per
/// session, since a client that never reads standard error (paramiko, a library) leaves it in
/// the channel's window; and the failures of writes already in flight, which repeat one
/// message, are told once.
#[derive(Debug, Default)]
pub struct FailureNotes {
    told: usize,
    last: Option<String>,
}

/// The most failures one session tells on standard error (about 100 bytes each).
pub const MAX_FAILURE_NOTES: usize = 32;

impl FailureNotes {
    /// The line to write on standard error for `reply`, if it is a failure to tell.
    pub fn line_for(&mut self, reply: &Packet) -> Option<String> {
        let Packet::Status(Status { status_code: StatusCode::Failure, error_message, .. }) = reply else {
            return None;
        };
        if self.told >= MAX_FAILURE_NOTES || self.last.as_deref() == Some(error_message.as_str()) {
            return None;
        }
        self.told += 1;
        self.last = Some(error_message.clone());
        Some(format!("{error_message}\r\n"))
    }
}

/// The answer to a request that could not be read: its id (the four bytes after the type) and
/// a status, so the client hears about that one request and the session goes on; `None` when
/// the frame is too short to name a request (the session must end: it is out of step).
pub fn unreadable_request(frame: &[u8]) -> Option<(u32, StatusCode, String)> {
    let (&kind, rest) = frame.split_first()?;
    let id = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?);
    // The request types of SFTP version 3 (draft-ietf-secsh-filexfer-02, section 3).
    let known = matches!(kind, 1 | 3..=20 | 200);
    Some(if known {
        (id, StatusCode::BadMessage, format!("request type {kind} could not be read (error 100)"))
    } else {
        (id, StatusCode::OpUnsupported, format!("request type {kind} is not part of SFTP version 3"))
    })
}

/// Permission bits shown for what a user owns: theirs to read and write, nobody else's (the
/// server keeps homes 0700). Directories are searchable.
const FILE_MODE: u32 = 0o100_600;
const DIR_MODE: u32 = 0o040_700;

/// The attributes of `entry`. A partial upload shows as the file it will be published as,
/// with the bytes the server holds so far: what `reput` asks for to resume.
pub fn attributes_of(entry: &Entry) -> FileAttributes {
    let permissions = match entry.kind {
        EntryKind::Dir => DIR_MODE,
        _ => FILE_MODE,
    };
    let mtime = u32::try_from(entry.modified.max(0)).unwrap_or(u32::MAX);
    FileAttributes {
        size: Some(entry.size),
        uid: Some(0),
        user: None,
        gid: Some(0),
        group: None,
        permissions: Some(permissions),
        atime: Some(mtime),
        mtime: Some(mtime),
    }
}

/// The block size `df` is shown in.
const DF_BLOCK: u64 = 1024;

/// The user's quota as `statvfs@openssh.com` answers it, so `df` in OpenSSH's sftp shows the
/// quota: its size, what is used (reservations of uploads in progress included), what is free;
/// and `max_files` as inodes.
pub fn quota_as_statvfs(usage: &Usage) -> Statvfs {
    let blocks = |bytes: u64| bytes / DF_BLOCK;
    let free = blocks(usage.free());
    let files_used = usage.files + usage.files_reserved;
    let files_free = usage.max_files.saturating_sub(files_used);
    Statvfs {
        block_size: DF_BLOCK,
        fragment_size: DF_BLOCK,
        blocks: blocks(usage.limit),
        blocks_free: free,
        blocks_avail: free,
        inodes: usage.max_files,
        inodes_free: files_free,
        inodes_avail: files_free,
        fs_id: 0,
        flags: 0,
        name_max: 255,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_errors_keep_their_number_in_the_message_and_map_to_what_clients_act_on() {
        let missing = WireError::new(ErrorCode::NotFound, "ls a.txt: no such file");
        assert_eq!(status_of(&missing), (StatusCode::NoSuchFile, "ls a.txt: no such file (error 301)".into()));
        let outside = WireError::new(ErrorCode::PathOutsideHome, "outside");
        assert_eq!(status_of(&outside).0, StatusCode::PermissionDenied);
        let quota = WireError::new(ErrorCode::QuotaExceeded, "put x: quota exceeded");
        assert_eq!(status_of(&quota), (StatusCode::Failure, "put x: quota exceeded (error 400)".into()));
    }

    fn status(id: u32, status_code: StatusCode, message: &str) -> Packet {
        Packet::Status(Status { id, status_code, error_message: message.into(), language_tag: "en".into() })
    }

    #[test]
    fn failures_are_told_once_each_and_at_most_so_many_per_session() {
        let mut notes = FailureNotes::default();
        let full = "put a: the server's disk is full (error 401)";
        assert_eq!(notes.line_for(&status(1, StatusCode::Failure, full)), Some(format!("{full}\r\n")));
        assert_eq!(notes.line_for(&status(2, StatusCode::Failure, full)), None, "a write in flight repeats it");
        assert_eq!(notes.line_for(&status(3, StatusCode::NoSuchFile, "stat b: no such file (error 301)")), None);
        assert_eq!(notes.line_for(&status(4, StatusCode::Ok, "")), None);
        assert!(notes.line_for(&status(5, StatusCode::Failure, "mkdir d: already exists (error 302)")).is_some());
        assert!(notes.line_for(&status(6, StatusCode::Failure, full)).is_some(), "told again after another");
        for n in 3..MAX_FAILURE_NOTES {
            assert!(notes.line_for(&status(7, StatusCode::Failure, &format!("failure {n}"))).is_some());
        }
        assert_eq!(notes.line_for(&status(8, StatusCode::Failure, "one too many")), None);
    }

    #[test]
    fn an_unreadable_request_is_answered_by_its_id_unless_it_names_none() {
        let (id, code, _) = unreadable_request(&[150, 0, 0, 0, 77]).unwrap();
        assert_eq!((id, code), (77, StatusCode::OpUnsupported));
        let (id, code, _) = unreadable_request(&[17, 0, 0, 1, 0, 0xff]).unwrap();
        assert_eq!((id, code), (256, StatusCode::BadMessage));
        assert!(unreadable_request(&[17, 0, 0]).is_none());
        assert!(unreadable_request(&[]).is_none());
    }

    #[test]
    fn a_partial_upload_shows_as_a_file_of_the_bytes_held() {
        let partial = Entry { name: "big.iso".into(), kind: EntryKind::Partial, size: 7000, modified: 1_700_000_000 };
        let attrs = attributes_of(&partial);
        assert_eq!(attrs.size, Some(7000));
        assert!(attrs.is_regular());
        let dir = Entry { name: "d".into(), kind: EntryKind::Dir, size: 4096, modified: -5 };
        let attrs = attributes_of(&dir);
        assert!(attrs.is_dir());
        assert_eq!(attrs.mtime, Some(0));
    }

    #[test]
    fn df_shows_the_quota_with_uploads_in_progress_as_used() {
        let usage =
            Usage { used: 3 << 20, reserved: 1 << 20, limit: 10 << 20, files: 5, files_reserved: 1, max_files: 100 };
        let df = quota_as_statvfs(&usage);
        assert_eq!(df.blocks * df.fragment_size, 10 << 20);
        assert_eq!(df.blocks_avail * df.fragment_size, 6 << 20);
        assert_eq!((df.inodes, df.inodes_free), (100, 94));
    }
}
