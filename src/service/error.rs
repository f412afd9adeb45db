//! How the service words its failures: every one is a [`WireError`], with a stable code, that
//! each front end translates for its wire (a native `error` frame, an FTP reply code).

use std::fmt::Display;

use crate::actors::quota::QuotaError;
use crate::net::{ErrorCode, WireError};
use crate::storage::StorageError;

/// A storage failure of `op` on the path the user typed (`shown`). An I/O error nobody
/// expects (not a missing file, a full disk, ...) is logged too: it is the operator's.
pub fn storage(op: &str, shown: &str, error: StorageError) -> WireError {
    if let StorageError::Io(io) = &error {
        tracing::error!(op, path = shown, error = %io, "storage failure");
    }
    WireError::new(error.code(), format!("{op} {shown}: {error}"))
}

/// The answer of a disk job that ran a storage call: its value, the call's failure worded for
/// `op` on `shown`, or the job's own failure (it panicked).
pub fn of_job<R>(
    answer: Result<Result<R, StorageError>, crate::actors::disk::JobFailed>,
    op: &str,
    shown: &str,
) -> Result<R, WireError> {
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(failure)) => Err(storage(op, shown, failure)),
        Err(failed) => Err(internal(failed)),
    }
}

/// A failure of the server itself (a panicked job, an actor gone): the client may retry.
pub fn internal(why: impl Display) -> WireError {
    WireError::new(ErrorCode::Internal, format!("internal error: {why}"))
}

/// A quota refusal of an upload (or a directory's entry) at `shown`.
pub fn quota(op: &str, shown: &str, error: QuotaError) -> WireError {
    let code = match error {
        QuotaError::InUse => ErrorCode::InUse,
        QuotaError::Exceeded(_) => ErrorCode::QuotaExceeded,
        QuotaError::TooManyFiles(_) => ErrorCode::TooManyFiles,
        QuotaError::Internal(_) => ErrorCode::Internal,
        QuotaError::Unreachable(_) => ErrorCode::StorageFailure,
    };
    WireError::new(code, format!("{op} {shown}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_keep_their_code_and_name_the_path_typed() {
        let error = storage("rm", "a/b.txt", StorageError::NotFound);
        assert_eq!(error.code, ErrorCode::NotFound);
        assert_eq!(error.message, "rm a/b.txt: no such file or directory");
        let full = storage("put", "x", StorageError::DiskFull);
        assert_eq!(full.code, ErrorCode::DiskFull);
    }

    #[test]
    fn quota_refusals_map_to_their_codes() {
        assert_eq!(quota("put", "x", QuotaError::InUse).code, ErrorCode::InUse);
        let exceeded = crate::quota::ledger::QuotaExceeded { needed: 5, free: 1, limit: 10 };
        assert_eq!(quota("put", "x", exceeded.into()).code, ErrorCode::QuotaExceeded);
        let too_many = crate::quota::ledger::TooManyFiles { files: 3, max_files: 3 };
        assert_eq!(quota("mkdir", "d", too_many.into()).code, ErrorCode::TooManyFiles);
    }
}
