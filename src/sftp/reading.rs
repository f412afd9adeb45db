//! A file handle open for reading: the file is read from the disk pool in blocks, one ahead of
//! the client, and each SFTP read (OpenSSH's 32 KiB, many in flight) is answered from memory.
//! A read at another offset (`reget` starts at the size the client holds, a client may seek)
//! opens the file again there. At most two blocks per handle are in memory.

use tokio::task::JoinHandle;

use crate::actors::Services;
use crate::metrics::{Operation, Outcome, Protocol};
use crate::net::WireError;
use crate::service::UserFiles;
use crate::storage::{DownloadSession, FileStore, HomeStore, VirtualPath};

use super::writing::TransferLog;

/// Bytes read from the disk at a time.
const READ_BLOCK: usize = 1 << 20;

type Download = <HomeStore as FileStore>::Download;

/// A block read from the disk, and the download that continues after it.
type Block = Result<(Download, Vec<u8>), WireError>;

pub struct Reading {
    target: VirtualPath,
    size: u64,
    /// Bytes in memory, starting at `held_from`.
    held: Vec<u8>,
    held_from: u64,
    /// The next block, being read (`None` at the end of the file, or before the first read).
    ahead: Option<JoinHandle<Block>>,
    /// Bytes sent, for the log.
    sent: u64,
    started: std::time::Instant,
    log: TransferLog,
}

impl Reading {
    /// Opens `target` for reading from its start.
    pub async fn open(files: &UserFiles, target: VirtualPath, log: TransferLog) -> Result<Reading, WireError> {
        let download = files.open_download_at(target.clone(), log.shown.clone(), 0).await?;
        let size = download.size();
        let ahead = Some(read_block(&log.services, download, log.shown.clone()));
        Ok(Reading {
            target,
            size,
            held: Vec::new(),
            held_from: 0,
            ahead,
            sent: 0,
            started: std::time::Instant::now(),
            log,
        })
    }

    /// The file's size, as `fstat` shows it.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// `len` bytes from `offset`, fewer only at the end of the file (empty at or past it).
    /// Never fewer in the middle: OpenSSH's client takes a short read there for a gap, and
    /// `scp` then cuts the file it wrote at the gap.
    pub async fn read(&mut self, files: &UserFiles, offset: u64, len: usize) -> Result<Vec<u8>, WireError> {
        if offset >= self.size {
            return Ok(Vec::new());
        }
        let want = len.min((self.size - offset) as usize);
        if offset < self.held_from || offset > self.held_end() {
            self.reopen(files, offset).await?;
        }
        let mut bytes = Vec::with_capacity(want);
        while bytes.len() < want {
            let at = offset + bytes.len() as u64;
            if at == self.held_end() {
                if self.ahead.is_none() {
                    // The file ended early (it changed), or a read at the end of the last block.
                    if !bytes.is_empty() {
                        break;
                    }
                    self.reopen(files, at).await?;
                }
                self.next_block().await?;
                if self.held.is_empty() {
                    break;
                }
            }
            let from = (at - self.held_from) as usize;
            let take = (want - bytes.len()).min(self.held.len() - from);
            bytes.extend_from_slice(&self.held[from..from + take]);
        }
        self.sent += bytes.len() as u64;
        Ok(bytes)
    }

    fn held_end(&self) -> u64 {
        self.held_from + self.held.len() as u64
    }

    /// Starts reading the file at `offset`, elsewhere than where it was read.
    async fn reopen(&mut self, files: &UserFiles, offset: u64) -> Result<(), WireError> {
        let shown = self.log.shown.clone();
        let download = files.open_download_at(self.target.clone(), shown.clone(), offset).await?;
        self.held.clear();
        self.held_from = offset;
        self.ahead = Some(read_block(&self.log.services, download, shown));
        Ok(())
    }

    /// Takes the block read ahead and starts reading the one after it.
    async fn next_block(&mut self) -> Result<(), WireError> {
        let Some(ahead) = self.ahead.take() else { return Ok(()) };
        let (download, block) = match ahead.await {
            Ok(block) => block?,
            Err(panicked) => return Err(crate::service::error::internal(panicked)),
        };
        self.held_from = self.held_end();
        self.held = block;
        if !download.is_done() && !self.held.is_empty() {
            self.ahead = Some(read_block(&self.log.services, download, self.log.shown.clone()));
        }
        Ok(())
    }

    /// Logs the download as the handle closes: `closed` by the client, or cut with its session.
    pub fn close(self, closed: bool) {
        let TransferLog { services, user, peer, shown } = &self.log;
        let took = self.started.elapsed();
        tracing::info!(target: "access", %user, %peer, op = "sftp get", path = %shown, bytes = self.sent,
            seconds = took.as_secs_f64(), result = if closed { "ok" } else { "lost" });
        let outcome = if closed { Outcome::Ok } else { Outcome::Lost };
        services.metrics.transfer(Protocol::sftp, Operation::download, self.sent, took, outcome);
    }
}

/// Reads the next block of `download` on the disk pool.
fn read_block(services: &Services, mut download: Download, shown: String) -> JoinHandle<Block> {
    let disk = services.disk.clone();
    actix_rt::spawn(async move {
        let read = disk
            .run("read download", move || {
                let mut block = Vec::with_capacity(READ_BLOCK);
                download.read_chunk_into(&mut block, READ_BLOCK).map(|()| (download, block))
            })
            .await;
        crate::service::error::of_job(read, "get", &shown)
    })
}
