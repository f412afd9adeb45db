//! Storage failures, each with the protocol error code it is reported under.

use crate::net::ErrorCode;

use super::jail::JailError;

/// Why a filesystem operation inside a home failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error(transparent)]
    Jail(#[from] JailError),
    #[error("the path leads outside your home (a symlink pointing out?)")]
    OutsideHome,
    #[error("no such file or directory")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    #[error("not a regular file (a device, FIFO or socket)")]
    NotAFile,
    #[error("directory not empty")]
    NotEmpty,
    #[error("the home directory itself cannot be changed this way")]
    HomeItself,
    #[error("a directory cannot be moved into itself")]
    IntoItself,
    #[error("the server's disk is full")]
    DiskFull,
    #[error("too many files: the most files and directories allowed for this user exist or are being created")]
    TooManyFiles,
    #[error("an upload wrote to it recently")]
    RecentlyWritten,
    #[error("the file changed on the server during the transfer")]
    ChangedDuringTransfer,
    #[error("the data is larger than the announced size")]
    TooMuchData,
    #[error("the upload has {received} of {expected} bytes")]
    Incomplete { received: u64, expected: u64 },
    #[error("MD5 mismatch: received data hashes to {actual}, the sender's file to {expected}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("cannot resume at byte {offset}: the server holds {available} bytes of this file")]
    RestartBeyondEnd { offset: u64, available: u64 },
    #[error("another instance of the server is writing this upload")]
    HeldElsewhere,
    /// The database or the object store of the cluster mode failed or did not answer.
    #[error("{0}")]
    Remote(String),
    #[error("{0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for StorageError {
    fn from(error: std::io::Error) -> StorageError {
        use std::io::ErrorKind::*;
        match error.kind() {
            NotFound => StorageError::NotFound,
            AlreadyExists => StorageError::AlreadyExists,
            NotADirectory => StorageError::NotADirectory,
            IsADirectory => StorageError::IsADirectory,
            DirectoryNotEmpty => StorageError::NotEmpty,
            StorageFull | QuotaExceeded => StorageError::DiskFull,
            // cap-std reports an escape attempt (`..` through a symlink, a symlink to an
            // absolute path) as PermissionDenied; homes belong to the server, so a real
            // permission problem inside one is an administrator's change and refusing is right.
            PermissionDenied => StorageError::OutsideHome,
            InvalidFilename => StorageError::Jail(JailError::NameTooLong(255)),
            // A server file ended before the length it had when opened.
            UnexpectedEof => StorageError::ChangedDuringTransfer,
            _ => StorageError::Io(error),
        }
    }
}

impl StorageError {
    /// The protocol code this failure is reported under.
    pub fn code(&self) -> ErrorCode {
        match self {
            StorageError::Jail(JailError::AboveHome) | StorageError::OutsideHome => ErrorCode::PathOutsideHome,
            StorageError::Jail(_) | StorageError::HomeItself | StorageError::IntoItself => ErrorCode::InvalidPath,
            StorageError::NotFound => ErrorCode::NotFound,
            StorageError::AlreadyExists => ErrorCode::AlreadyExists,
            StorageError::NotADirectory => ErrorCode::NotADirectory,
            StorageError::IsADirectory => ErrorCode::IsADirectory,
            StorageError::NotAFile => ErrorCode::NotAFile,
            StorageError::NotEmpty => ErrorCode::DirectoryNotEmpty,
            StorageError::DiskFull => ErrorCode::DiskFull,
            StorageError::TooManyFiles => ErrorCode::TooManyFiles,
            StorageError::TooMuchData | StorageError::Incomplete { .. } => ErrorCode::TransferSizeMismatch,
            StorageError::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            StorageError::RestartBeyondEnd { .. } => ErrorCode::RestartOffsetInvalid,
            StorageError::RecentlyWritten | StorageError::HeldElsewhere => ErrorCode::InUse,
            StorageError::ChangedDuringTransfer | StorageError::Remote(_) | StorageError::Io(_) => {
                ErrorCode::StorageFailure
            }
        }
    }
}
