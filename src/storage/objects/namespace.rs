//! The rows that name files in object storage (`entries`, `uploads`, `orphan_objects`; schema
//! version 2 in [`crate::state::postgres::migrations`]): reads and the small steps the home's
//! transactions are made of. A path is stored as the file service shows it (`/a/b`); the home
//! itself has no row and always exists.
//!
//! Directories are rows too, and every row's parent is a directory row (or the home): a
//! statement that adds a row under a directory first takes a share lock on the directory's
//! row, and removing a directory takes an exclusive one, so a `mkdir` or a publish racing an
//! `rmdir` either lands before it (and the directory is not empty) or fails (no directory).

use crate::state::postgres::cached;
use deadpool_postgres::GenericClient;

use crate::net::{Entry, EntryKind};
use crate::storage::Md5Digest;
use crate::storage::error::StorageError;
use crate::storage::jail::VirtualPath;
use crate::storage::local_store::HomeUsage;

/// A stored name.
#[derive(Debug, Clone)]
pub struct EntryRow {
    pub is_dir: bool,
    pub size: u64,
    pub md5: Option<Md5Digest>,
    /// `None` for a directory and an empty file (which needs no object).
    pub object_key: Option<String>,
    pub modified: i64,
}

impl EntryRow {
    fn from_row(row: &tokio_postgres::Row) -> EntryRow {
        let md5: Option<Vec<u8>> = row.get("md5");
        EntryRow {
            is_dir: row.get("is_dir"),
            size: row.get::<_, i64>("size") as u64,
            md5: md5.and_then(|bytes| bytes.try_into().ok()),
            object_key: row.get("object_key"),
            modified: row.get("modified"),
        }
    }

    pub fn entry(&self, name: String) -> Entry {
        let kind = if self.is_dir { EntryKind::Dir } else { EntryKind::File };
        Entry { name, kind, size: self.size, modified: self.modified }
    }
}

/// How a read of a row locks it, inside a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    /// Kept from being removed or changed until the transaction ends.
    Share,
    /// Kept from everyone else until the transaction ends.
    Update,
}

/// The path as stored.
pub fn stored(path: &VirtualPath) -> String {
    path.to_string()
}

/// The row at `path`, if any.
pub async fn entry(
    client: &impl GenericClient,
    home: &str,
    path: &VirtualPath,
    lock: Lock,
) -> Result<Option<EntryRow>, StorageError> {
    let suffix = match lock {
        Lock::None => "",
        Lock::Share => " FOR SHARE",
        Lock::Update => " FOR UPDATE",
    };
    let query =
        format!("SELECT is_dir, size, md5, object_key, modified FROM entries WHERE home = $1 AND path = $2{suffix}");
    let row = cached::query_opt(client, &query, &[&home, &stored(path)]).await?;
    Ok(row.as_ref().map(EntryRow::from_row))
}

/// Fails unless `dir` is a directory, and keeps it one (a share lock on its row) until the
/// transaction ends.
pub async fn hold_dir(client: &impl GenericClient, home: &str, dir: &VirtualPath) -> Result<(), StorageError> {
    if dir.is_root() {
        return Ok(());
    }
    match entry(client, home, dir, Lock::Share).await? {
        None => Err(StorageError::NotFound),
        Some(row) if !row.is_dir => Err(StorageError::NotADirectory),
        Some(_) => Ok(()),
    }
}

/// Queues `key` (and its open multipart upload, if `upload_id` is not empty) for deletion by
/// the sweeper, in the transaction that stops referring to it.
pub async fn orphan(client: &impl GenericClient, key: &str, upload_id: &str) -> Result<(), StorageError> {
    cached::execute(
        client,
        "INSERT INTO orphan_objects (object_key, upload_id) VALUES ($1, $2) ON CONFLICT (object_key) DO NOTHING",
        &[&key, &upload_id],
    )
    .await?;
    Ok(())
}

/// What refused a change of names made by one of the schema's functions (`o_status` of
/// `ftp_actor_remove_file`, `ftp_actor_remove_dir` and `ftp_actor_rename`, migration 6); `None`
/// for 0, done.
pub fn refusal(status: i32) -> Option<StorageError> {
    match status {
        0 => None,
        1 => Some(StorageError::NotFound),
        2 => Some(StorageError::IsADirectory),
        3 => Some(StorageError::NotADirectory),
        4 => Some(StorageError::NotEmpty),
        5 => Some(StorageError::IntoItself),
        6 => Some(StorageError::AlreadyExists),
        other => Some(StorageError::Remote(format!("the database answered the unknown status {other}"))),
    }
}

/// What `home` holds, as the quota counts it (see [`HomeUsage`]): the row the triggers on
/// `entries` and `uploads` keep.
pub async fn usage(client: &impl GenericClient, home: &str) -> Result<HomeUsage, StorageError> {
    let row = cached::query_opt(client, "SELECT bytes, files FROM home_usage WHERE home = $1", &[&home]).await?;
    Ok(row.map_or(HomeUsage::default(), |row| HomeUsage {
        bytes: row.get::<_, i64>(0).max(0) as u64,
        files: row.get::<_, i64>(1).max(0) as u64,
    }))
}

/// Now, in Unix seconds: a new entry's modification time.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
