//! What the SFTP front end says back, worked out without a connection: a status for each of
//! our errors, the attributes of an entry, and the quota shown as a file system (`df`).
//!
//! SFTP version 3 has eight status codes; ours are finer. The status is the closest code a
//! client acts on (no such file, permission denied, or failure) and the message carries ours
//! as the other front ends show it, `(error 400)`, so a person sees the same words whatever
//! the client.

use russh_sftp::extensions::Statvfs;
use russh_sftp::protocol::{FileAttributes, StatusCode};

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
