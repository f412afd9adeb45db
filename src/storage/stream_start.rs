//! Where an upload of unannounced size continues (FTP's STOR, REST + STOR and APPE): the
//! decision alone, pure, apart from the files it is applied to.

use super::error::StorageError;

/// Where a streamed upload's data continues: after the partial's first bytes, or after a
/// copy of the published target's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStart {
    Partial(u64),
    Target(u64),
}

/// What the client asked for: a fresh upload (STOR), a resume at a byte (REST + STOR), or
/// an append (APPE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamRequest {
    Fresh,
    At(u64),
    Append,
}

impl StreamStart {
    /// Decides where a streamed upload continues. The base is what SIZE reports: the published
    /// file if there is one, else the partial an interrupted upload left. So `curl -C -` (SIZE,
    /// then APPE) and `REST n` + `STOR` continue exactly after the bytes the client was told of.
    pub fn plan(
        request: StreamRequest,
        target_len: Option<u64>,
        partial_len: u64,
    ) -> Result<StreamStart, StorageError> {
        let base = |len: u64| {
            if target_len.is_some() && len > 0 { StreamStart::Target(len) } else { StreamStart::Partial(len) }
        };
        let available = target_len.unwrap_or(partial_len);
        match request {
            StreamRequest::Fresh => Ok(StreamStart::Partial(0)),
            StreamRequest::Append => Ok(base(available)),
            StreamRequest::At(offset) if offset <= available => Ok(base(offset)),
            StreamRequest::At(offset) => Err(StorageError::RestartBeyondEnd { offset, available }),
        }
    }

    /// Bytes the upload holds before its data continues.
    pub fn prefix_len(&self) -> u64 {
        match *self {
            StreamStart::Partial(len) | StreamStart::Target(len) => len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_uploads_continue_after_what_size_reports() {
        use StreamRequest::*;
        use StreamStart::*;
        // No published file: the partial an interrupted upload left is the base.
        assert!(matches!(StreamStart::plan(Append, None, 700), Ok(Partial(700))));
        assert!(matches!(StreamStart::plan(At(500), None, 700), Ok(Partial(500))));
        assert!(matches!(
            StreamStart::plan(At(900), None, 700),
            Err(StorageError::RestartBeyondEnd { offset: 900, available: 700 })
        ));
        // A published file is the base, whatever partial lies beside it.
        assert!(matches!(StreamStart::plan(Append, Some(300), 700), Ok(Target(300))));
        assert!(matches!(StreamStart::plan(At(0), Some(300), 700), Ok(Partial(0))));
        assert!(matches!(StreamStart::plan(Fresh, Some(300), 700), Ok(Partial(0))));
        assert!(matches!(StreamStart::plan(At(301), Some(300), 0), Err(StorageError::RestartBeyondEnd { .. })));
    }
}
