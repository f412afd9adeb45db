//! A file handle open for writing: an upload through the same path lock, hidden partial,
//! quota reservation and atomic publish as every other front end's.
//!
//! SFTP writes arrive as (offset, bytes) requests, many in flight (OpenSSH sends 255 KiB each,
//! what this server's `limits@openssh.com` allows).
//! An upload is a stream that the server holds from its start, so the writes must follow each
//! other: the first one starts at 0 (a new file) or at the size a resume was told (`reput`,
//! `put -a`, which ask `stat` first: a partial upload shows its bytes there), and each next one
//! where the previous one ended. A write anywhere else is refused (a random-access write that
//! the partial cannot honour must not corrupt the file silently), and the upload ends there:
//! what was written stays in the partial for a resume.
//!
//! A handle opened with `SSH_FXF_APPEND` (and not `SSH_FXF_TRUNC`) whose first write is at
//! offset 0 appends every write, in the order they come, whatever its offset says, as the
//! protocol asks: the upload continues after what `stat` shows (the file, or the partial an
//! interrupted upload left), as FTP's APPE does. paramiko's mode `"a"` relies on it. A first
//! write past 0 names where the client believes the file ends (OpenSSH's `reput` and `put -a`
//! open with `SSH_FXF_APPEND` too): that is a resume at that offset, checked against what the
//! server holds, so a partial that grew after the client's `stat` cannot shift the bytes.
//!
//! Writes are gathered into blocks of [`STORE_BLOCK`]; each full block is written on the disk
//! pool while the next one gathers (at most two blocks per handle in memory). A write is
//! acknowledged once gathered; a failure of the disk or the quota is the answer to the next
//! write or to the close. A file that ends within its first block is stored by one disk job at
//! the close, as FTP's small files are. Nothing is visible under the file's name until the
//! close publishes it.

use tokio::task::JoinHandle;

use crate::metrics::{Operation, Outcome, Protocol};
use crate::net::{ErrorCode, WireError};
use crate::service::{FreshUpload, Upload};
use crate::storage::{StreamRequest, VirtualPath};

/// The block an upload is written to disk in, as FTP's.
pub use crate::ftp::STORE_BLOCK;

/// Where a write handle's upload stands.
enum State {
    /// The path lock is held, nothing opened on disk yet.
    Fresh(FreshUpload),
    /// The partial is open and idle.
    Open(Upload),
    /// A block is being written; the upload comes back with it.
    Writing(JoinHandle<Result<(Upload, Vec<u8>), WireError>>),
    /// Failed, or ended: every later call answers this.
    Failed(WireError),
}

pub struct Writing {
    target: VirtualPath,
    state: State,
    /// Gathered bytes, not yet handed to the disk.
    block: Vec<u8>,
    /// Where the next write must start.
    end: u64,
    /// Where the upload's data started (0, or a resume's offset).
    start: u64,
    /// Opened with `SSH_FXF_TRUNC`: a close with no write empties the file.
    truncate: bool,
    /// Opened with `SSH_FXF_APPEND` and without `SSH_FXF_TRUNC`, and (once written) first
    /// written at offset 0: every write goes at the end.
    append: bool,
    /// A modification time asked for (`put -p`, rclone) before the close; set after publishing.
    mtime: Option<i64>,
    started: std::time::Instant,
    log: TransferLog,
    /// The upload's end is logged and counted (once: a refused write ends it before its close).
    logged: bool,
}

/// Who transfers what, for the access log and the metrics.
pub struct TransferLog {
    pub services: crate::actors::Services,
    pub user: String,
    pub peer: std::net::SocketAddr,
    pub shown: String,
}

impl Writing {
    /// A write handle; `truncate` and `append` are the open's `SSH_FXF_TRUNC` and
    /// `SSH_FXF_APPEND` (append counts only without truncate).
    pub fn new(fresh: FreshUpload, target: VirtualPath, truncate: bool, append: bool, log: TransferLog) -> Writing {
        Writing {
            log,
            target,
            state: State::Fresh(fresh),
            block: Vec::new(),
            end: 0,
            start: 0,
            truncate,
            append: append && !truncate,
            mtime: None,
            started: std::time::Instant::now(),
            logged: false,
        }
    }

    pub fn target(&self) -> &VirtualPath {
        &self.target
    }

    /// The path as the user typed it.
    pub fn shown(&self) -> &str {
        &self.log.shown
    }

    /// Bytes of the file so far, as `fstat` shows them.
    pub fn len(&self) -> u64 {
        self.end
    }

    pub fn set_mtime(&mut self, mtime: i64) {
        self.mtime = Some(mtime);
    }

    /// Takes `data`, written at `offset`.
    pub async fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), WireError> {
        if let State::Failed(error) = &self.state {
            return Err(error.clone());
        }
        if let State::Fresh(_) = &self.state
            && self.block.is_empty()
        {
            // The first write: an append leaves the place to the server only from offset 0.
            self.append &= offset == 0;
            if offset > 0 || self.append {
                // A resume: the partial (or the published file) holds the first `offset`
                // bytes; or an append, after all it holds.
                let request = if self.append { StreamRequest::Append } else { StreamRequest::At(offset) };
                let State::Fresh(fresh) = std::mem::replace(&mut self.state, placeholder()) else { unreachable!() };
                self.state = match fresh.open_with(request).await {
                    Ok(upload) => {
                        (self.start, self.end) = (upload.offset(), upload.offset());
                        State::Open(upload)
                    }
                    Err(refused) => State::Failed(refused),
                };
                self.failed()?;
            }
        }
        if offset != self.end && !self.append {
            let error = WireError::new(
                ErrorCode::RestartOffsetInvalid,
                format!(
                    "this server stores an upload written in order: a write at byte {offset} does not follow byte {} \
                     (the bytes so far are kept for a resume)",
                    self.end
                ),
            );
            self.abandon_with(error.clone()).await;
            return Err(error);
        }
        self.block.extend_from_slice(data);
        self.end += data.len() as u64;
        if self.block.len() >= STORE_BLOCK {
            self.flush_block().await?;
        }
        Ok(())
    }

    /// Hands the gathered block to the disk pool, once the previous one is written.
    async fn flush_block(&mut self) -> Result<(), WireError> {
        let upload = self.take_upload().await?;
        let block = std::mem::take(&mut self.block);
        self.state = State::Writing(actix_rt::spawn(upload.write(block)));
        Ok(())
    }

    /// The upload, opened if it was not and idle (its block written).
    async fn take_upload(&mut self) -> Result<Upload, WireError> {
        let state = std::mem::replace(&mut self.state, placeholder());
        let taken = match state {
            State::Fresh(fresh) => fresh.open().await,
            State::Open(upload) => Ok(upload),
            State::Writing(job) => match job.await {
                Ok(Ok((upload, spare))) => {
                    if self.block.capacity() == 0 {
                        self.block = spare;
                    }
                    Ok(upload)
                }
                Ok(Err(refused)) => Err(refused),
                Err(panicked) => Err(crate::service::error::internal(panicked)),
            },
            State::Failed(error) => Err(error),
        };
        taken.inspect_err(|error| self.state = State::Failed(error.clone()))
    }

    fn failed(&self) -> Result<(), WireError> {
        match &self.state {
            State::Failed(error) => Err(error.clone()),
            _ => Ok(()),
        }
    }

    /// The close: writes what is gathered and publishes the file (its modification time set if
    /// one was asked for). A handle that wrote nothing creates an empty file if it was opened to
    /// truncate or the name is free, and otherwise changes nothing.
    pub async fn close(mut self, exists: impl Future<Output = bool>) -> Result<Option<i64>, WireError> {
        let tail = std::mem::take(&mut self.block);
        let untouched = matches!(self.state, State::Fresh(_)) && tail.is_empty() && !self.truncate;
        if untouched && exists.await {
            return Ok(None);
        }
        let published = match std::mem::replace(&mut self.state, placeholder()) {
            State::Fresh(fresh) => fresh.store_whole(tail).await,
            state => {
                self.state = state;
                match self.take_upload().await {
                    Ok(upload) => upload.publish_as_is(Some(tail)).await,
                    Err(error) => Err(error),
                }
            }
        };
        self.count(match &published {
            Ok(()) => Outcome::Ok,
            Err(error) => Outcome::Failed(error.code),
        });
        published.map(|()| self.mtime)
    }

    /// Ends the handle without publishing (the connection ended, or a write was refused):
    /// the bytes written stay in the partial for a resume.
    pub async fn abandon(mut self) {
        let error = WireError::new(ErrorCode::TransferStalled, "the upload ended before its close");
        self.count(Outcome::Lost);
        self.abandon_with(error).await;
    }

    async fn abandon_with(&mut self, error: WireError) {
        let tail = std::mem::take(&mut self.block);
        let state = std::mem::replace(&mut self.state, State::Failed(error.clone()));
        let upload = match state {
            State::Fresh(_) if tail.is_empty() => return,
            State::Fresh(fresh) => fresh.open().await,
            State::Open(upload) => Ok(upload),
            State::Writing(job) => match job.await {
                Ok(Ok((upload, _))) => Ok(upload),
                _ => return,
            },
            State::Failed(_) => return,
        };
        if let Ok(upload) = upload {
            // The gathered bytes follow the partial's: keep them too.
            let kept = if tail.is_empty() { Ok(upload) } else { upload.write(tail).await.map(|(upload, _)| upload) };
            if let Ok(upload) = kept {
                upload.abandon(None).await;
            }
        }
        self.count(Outcome::Failed(error.code));
    }

    /// Logs how the upload ended and counts it in the metrics, the first time it ends.
    fn count(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.logged, true) {
            return;
        }
        let said = match outcome {
            Outcome::Ok => "ok".to_string(),
            Outcome::Lost => "lost".to_string(),
            Outcome::Failed(code) => format!("error {}", code.as_u16()),
        };
        let TransferLog { services, user, peer, shown } = &self.log;
        let took = self.started.elapsed();
        tracing::info!(target: "access", %user, %peer, op = "sftp put", path = %shown, resumed_from = self.start,
            seconds = took.as_secs_f64(), result = %said);
        services.metrics.transfer(Protocol::sftp, Operation::upload, self.end - self.start, took, outcome);
    }
}

/// What `state` holds while its value is moved out for a moment.
fn placeholder() -> State {
    State::Failed(WireError::new(ErrorCode::Internal, "internal error: upload state in use"))
}
