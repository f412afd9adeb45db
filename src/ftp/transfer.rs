//! The data side of FTP transfers: RETR streams a file out, STOR and APPE stream one in
//! through the same hidden partial, quota lease and usage gate as native uploads.
//!
//! FTP announces no size, so an upload's reservation grows with the data: before each block
//! is written, the lease's reservation is raised to cover it. A block the quota cannot cover
//! is refused (552) before any of it reaches the disk, and the partial keeps what came
//! before. The data ends when the client closes the data connection (with TLS, with a
//! close_notify); only then is the partial published under its name. A data connection that
//! breaks, or a TLS stream cut without close_notify, leaves the partial for a resume.
//!
//! Uploads are not hashed on the way: FTP carries no checksum to compare with, and MD5 would
//! be the slowest step of the transfer (about 2.3 s per GiB on one core here). The digest is
//! computed when first asked for (HASH, XMD5, a native download) and then stored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::actors::Services;
use crate::actors::quota::{OpenUpload, QuotaError, Reserve, UploadLease};
use crate::actors::session::upload::quota_wire_error;
use crate::net::activity::{Activity, Stamped};
use crate::net::{ErrorCode, WireError};
use crate::quota::{IN_USE_PATIENCE, upload_need};
use crate::storage::{Download, Home, PartialUpload, StorageError, StreamRequest, StreamStart, VirtualPath};

use super::reply::Reply;
use super::sendfile::{self, SendError};
use super::session::storage_reply;
use super::tls::MaybeTls;

/// Who transfers what, for the disk pool, the quota and the access log.
pub struct Context {
    pub services: Services,
    pub user: String,
    pub peer: SocketAddr,
    /// The path as shown to the user.
    pub shown: String,
}

impl Context {
    fn stall(&self) -> Duration {
        Duration::from_secs(self.services.config.transfer_stall_secs)
    }
}

fn internal(error: impl std::fmt::Display) -> Reply {
    Reply::new(451, format!("internal error: {error}"))
}

/// An upload between its opening and its publishing. The lease settles the quota whenever
/// this is dropped, however the upload ends.
pub struct StreamUpload {
    home: Arc<Home>,
    partial: PartialUpload,
    lease: UploadLease,
}

impl StreamUpload {
    pub fn offset(&self) -> u64 {
        self.partial.offset()
    }

    fn need(&self, end: u64) -> u64 {
        upload_need(end, self.partial.start_len())
    }

    /// Puts the prefix in the partial (on the disk pool, under the usage gate).
    fn prepare(&mut self, start: &StreamStart) -> Result<(), StorageError> {
        let result = self.partial.continue_at(&self.home, start);
        self.lease.record_disk_change(self.partial.disk_change());
        result
    }

    /// Appends a block to the partial (on the disk pool, under the usage gate).
    fn append(&mut self, block: &[u8]) -> Result<(), StorageError> {
        let result = self.partial.write(block);
        self.lease.record_disk_change(self.partial.disk_change());
        result
    }
}

/// Takes the upload's lease, opens its partial and puts the right prefix in it (see
/// [`StreamStart::plan`]); the answer to send if that fails.
///
/// A prefix that needs no more quota than the lease holds (every fresh STOR, and a resume of a
/// partial) is put in place by the same disk job that opens the partial: one hop to the disk
/// pool instead of two, which is much of a small file's time (docs/BENCHMARKS.md, "Standard
/// clients"). A prefix copied from the published file is reserved first, between two jobs.
pub async fn open_upload(
    context: &Context,
    home: Arc<Home>,
    target: VirtualPath,
    absolute: std::path::PathBuf,
    request: StreamRequest,
) -> Result<StreamUpload, Reply> {
    let services = &context.services;
    let lease = take_lease(context, absolute).await?;
    let opened = {
        let (home, gate) = (home.clone(), services.gate.clone());
        services
            .disk
            .run("open upload", move || {
                let _change = gate.change();
                let (mut partial, target_len) = PartialUpload::open_stream(&home, &target, lease.may_create())?;
                let start = StreamStart::plan(request, target_len, partial.offset());
                if start.is_err() {
                    partial.abandon(&home);
                }
                // The partial's entry, if this created it (or removed an empty one), counts.
                lease.record_disk_change(partial.disk_change());
                let mut upload = StreamUpload { home, partial, lease };
                let start = start?;
                let prepared =
                    (upload.need(start.prefix_len()) <= upload.lease.reserved()).then(|| upload.prepare(&start));
                Ok((upload, start, prepared))
            })
            .await
    };
    let (upload, start) = match opened {
        Ok(Ok((upload, _, Some(Ok(()))))) => return Ok(upload),
        Ok(Ok((_, _, Some(Err(error))))) | Ok(Err(error)) => return Err(storage_reply("store", error)),
        Ok(Ok((upload, start, None))) => (upload, start),
        Err(failed) => return Err(internal(failed)),
    };
    let mut upload = match reserve(context, upload, start.prefix_len()).await {
        Ok(upload) => upload,
        Err((reply, upload)) => {
            abandon(context, upload).await;
            return Err(reply);
        }
    };
    let gate = services.gate.clone();
    let prepared = services
        .disk
        .run("prepare upload", move || {
            let _change = gate.change();
            let result = upload.prepare(&start);
            (result, upload)
        })
        .await;
    match prepared {
        Ok((Ok(()), upload)) => Ok(upload),
        Ok((Err(error), _)) => Err(storage_reply("store", error)),
        Err(failed) => Err(internal(failed)),
    }
}

/// Ends an upload that will receive nothing more: an empty partial is removed (so a refused
/// STOR leaves nothing behind), one with data kept for a resume; the lease settles what is left.
async fn abandon(context: &Context, upload: StreamUpload) {
    let gate = context.services.gate.clone();
    let _ = context
        .services
        .disk
        .run("abandon upload", move || {
            let _change = gate.change();
            let StreamUpload { home, mut partial, lease } = upload;
            partial.abandon(&home);
            lease.record_disk_change(partial.disk_change());
        })
        .await;
}

/// Takes the upload's lease on `absolute`. While an earlier upload of the path is still
/// ending, waits for it (up to [`IN_USE_PATIENCE`]) instead of answering 550 at once: FTP
/// clients do not retry, and `curl -C -` sent right after an interrupted upload arrives while
/// the server is still writing the bytes that reached it.
async fn take_lease(context: &Context, absolute: std::path::PathBuf) -> Result<UploadLease, Reply> {
    let deadline = Instant::now() + IN_USE_PATIENCE;
    loop {
        let open = OpenUpload { user: context.user.clone(), target: absolute.clone() };
        match context.services.quota.send(open).await {
            Ok(Ok(lease)) => return Ok(lease),
            Ok(Err(QuotaError::InUse)) if Instant::now() < deadline => {
                tokio::time::sleep(IN_USE_RETRY).await;
            }
            Ok(Err(error)) => return Err(Reply::from_error(&quota_wire_error(&context.shown, error))),
            Err(_) => return Err(Reply::new(421, "quota service unavailable")),
        }
    }
}

/// How often [`take_lease`] asks again for a path in use.
const IN_USE_RETRY: Duration = Duration::from_millis(50);

/// Raises the upload's reservation to cover the partial up to `end` bytes.
/// A refusal comes back with the upload, for [`abandon`].
async fn reserve(context: &Context, upload: StreamUpload, end: u64) -> Result<StreamUpload, (Reply, StreamUpload)> {
    let need = upload.need(end);
    if need <= upload.lease.reserved() {
        return Ok(upload);
    }
    match context.services.quota.send(Reserve { id: upload.lease.id(), bytes: need }).await {
        Ok(Ok(())) => Ok(upload),
        Ok(Err(error)) => Err((Reply::from_error(&quota_wire_error(&context.shown, error)), upload)),
        Err(_) => Err((Reply::new(421, "quota service unavailable"), upload)),
    }
}

/// Reads up to `max` bytes (less only at the end of the data). `Ok(true)` with the block
/// once the client closed the data connection cleanly.
async fn read_block(data: &mut MaybeTls, block: &mut Vec<u8>, max: usize, stall: Duration) -> std::io::Result<bool> {
    while block.len() < max {
        let read = tokio::time::timeout(stall, data.read_buf(block)).await;
        match read {
            Ok(Ok(0)) => return Ok(true),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => return Err(error),
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no data")),
        }
    }
    Ok(false)
}

/// The block a STOR reads and writes at a time (or `chunk_bytes`, if larger). Each block costs
/// a quota reservation and a disk job, which at 256 KiB made a 1 GiB STOR about 20 % slower
/// (docs/BENCHMARKS.md); an upload holds two blocks.
pub const STORE_BLOCK: usize = 1 << 20;

/// Receives the data of a STOR or APPE and publishes the file when it ends cleanly.
///
/// Each block is written on the disk pool while the next one is read from the socket. The
/// last block is written by the job that publishes the file: a file that fits in one block
/// (most files of a mirror) costs one disk job for its data and its publishing.
pub async fn receive_file(mut data: MaybeTls, upload: StreamUpload, context: Context) -> Reply {
    let started = Instant::now();
    let resumed_from = upload.offset();
    let chunk = context.services.config.chunk_bytes.max(STORE_BLOCK);
    let stall = context.stall();
    let mut upload = upload;
    let mut pending: Option<Vec<u8>> = None;
    let mut spare = Vec::with_capacity(chunk);
    let ended = loop {
        let writing = write_block(&context, upload, pending.take());
        let reading = async {
            let mut block = spare;
            let result = read_block(&mut data, &mut block, chunk, stall).await;
            (block, result)
        };
        let (written, (block, result)) = futures::join!(writing, reading);
        (upload, spare) = match written {
            Ok((upload, emptied)) => (upload, emptied.unwrap_or_else(|| Vec::with_capacity(chunk))),
            Err((reply, why)) => {
                log_store(&context, resumed_from, started, &why);
                return refuse_rest(data, reply, stall).await;
            }
        };
        pending = (!block.is_empty()).then_some(block);
        match result {
            Ok(false) => {}
            Ok(true) => break Ok(()),
            Err(error) => break Err(error),
        }
    };
    if let Err(error) = ended {
        // Bytes that arrived before the failure are still written, for the resume.
        let upload = match write_block(&context, upload, pending).await {
            Ok((upload, _)) => upload,
            Err((reply, why)) => {
                log_store(&context, resumed_from, started, &why);
                return refuse_rest(data, reply, stall).await;
            }
        };
        let why = if error.kind() == std::io::ErrorKind::UnexpectedEof {
            "the data connection was cut without TLS close_notify".to_string()
        } else {
            format!("the data connection failed: {error}")
        };
        log_store(&context, resumed_from, started, &why);
        let message = format!("{why}; {} bytes are kept: resume with REST and STOR, or APPE", upload.offset());
        return Reply::from_error(&WireError::new(ErrorCode::TransferStalled, message));
    }
    let size = upload.offset() + pending.as_ref().map_or(0, |block| block.len() as u64);
    let upload = match reserve_or_abandon(&context, upload, size).await {
        Ok(upload) => upload,
        Err((reply, why)) => {
            log_store(&context, resumed_from, started, &why);
            return refuse_rest(data, reply, stall).await;
        }
    };
    // Our close_notify answers the client's: clients that wait for it (Python's ftplib)
    // would otherwise report an error for a stored file.
    let _ = tokio::time::timeout(stall, data.shutdown()).await;
    let gate = context.services.gate.clone();
    let published = context
        .services
        .disk
        .run("publish upload", move || {
            let _change = gate.change();
            let mut upload = upload;
            if let Some(block) = pending {
                upload.append(&block)?;
            }
            let StreamUpload { home, partial, lease } = upload;
            let result = partial.publish_stream(&home);
            lease.record_disk_change(match &result {
                Ok(change) => *change,
                Err(failed) => failed.change,
            });
            drop(lease);
            result.map(|_| ()).map_err(|failed| failed.error)
        })
        .await;
    match published {
        Ok(Ok(())) => {
            log_store(&context, resumed_from, started, &format!("ok size={size}"));
            Reply::new(226, format!("stored {} ({size} bytes)", context.shown))
        }
        Ok(Err(error)) => {
            log_store(&context, resumed_from, started, &error.to_string());
            storage_reply("store", error)
        }
        Err(failed) => internal(failed),
    }
}

/// Raises the upload's reservation to cover `end` bytes; on a refusal the upload is
/// abandoned and the reply to send comes back, with the reason for the log.
async fn reserve_or_abandon(
    context: &Context,
    upload: StreamUpload,
    end: u64,
) -> Result<StreamUpload, (Reply, String)> {
    match reserve(context, upload, end).await {
        Ok(upload) => Ok(upload),
        Err((reply, upload)) => {
            abandon(context, upload).await;
            Err((reply, "quota exceeded".to_string()))
        }
    }
}

/// Reserves quota for `block` and appends it to the partial (nothing to do without a block);
/// the block's buffer comes back emptied, for the next read. A refusal comes back with the
/// reply to send and the reason for the log.
async fn write_block(
    context: &Context,
    upload: StreamUpload,
    block: Option<Vec<u8>>,
) -> Result<(StreamUpload, Option<Vec<u8>>), (Reply, String)> {
    let Some(mut block) = block else { return Ok((upload, None)) };
    let end = upload.offset() + block.len() as u64;
    let mut upload = reserve_or_abandon(context, upload, end).await?;
    let gate = context.services.gate.clone();
    let written = context
        .services
        .disk
        .run("write upload", move || {
            let _change = gate.change();
            let result = upload.append(&block);
            block.clear();
            (result, upload, block)
        })
        .await;
    match written {
        Ok((Ok(()), upload, emptied)) => Ok((upload, Some(emptied))),
        Ok((Err(error), _, _)) => {
            let why = error.to_string();
            Err((storage_reply("store", error), why))
        }
        Err(failed) => Err((internal(&failed), failed.to_string())),
    }
}

/// The most data read and thrown away after an upload is refused mid-way.
const DISCARD_LIMIT: u64 = 64 << 20;

/// Ends a refused upload: reads and discards what the client is still sending (up to
/// [`DISCARD_LIMIT`], or until it stalls) before closing, so the client finishes its send and
/// reads the refusal (curl and others report a reset data connection instead of the 552
/// otherwise). Nothing of it is written.
async fn refuse_rest(mut data: MaybeTls, reply: Reply, stall: Duration) -> Reply {
    let mut sink = tokio::io::sink();
    let mut limited = (&mut data).take(DISCARD_LIMIT);
    let _ = tokio::time::timeout(stall, tokio::io::copy(&mut limited, &mut sink)).await;
    let _ = tokio::time::timeout(stall, data.shutdown()).await;
    reply
}

fn log_store(context: &Context, resumed_from: u64, started: Instant, result: &str) {
    tracing::info!(target: "access", user = %context.user, peer = %context.peer, op = "ftp stor", path = %context.shown,
        resumed_from, seconds = started.elapsed().as_secs_f64(), result);
}

/// Sends a file from its start offset: with sendfile(2) over a plain data connection (see
/// [`super::sendfile`]), else through [`send_file_copying`].
pub async fn send_file(data: MaybeTls, download: Download, context: Context) -> Reply {
    match data {
        MaybeTls::Plain(stream) => send_file_plain(stream, download, context).await,
        tls => send_file_copying(tls, download, context).await,
    }
}

/// [`send_file`] over a plain data connection: one disk job sends the whole file.
async fn send_file_plain(stream: tokio::net::TcpStream, download: Download, context: Context) -> Reply {
    let started = Instant::now();
    let (start, size) = (download.start(), download.size());
    let (socket, guard) = match sendfile::prepare(stream, context.stall()) {
        Ok(prepared) => prepared,
        Err(error) => {
            log_retr(&context, start, started, &format!("data connection unusable: {error}"));
            return Reply::new(425, "the data connection could not be used");
        }
    };
    let sent = context
        .services
        .disk
        .run("send download", move || {
            let mut download = download;
            let result = sendfile::send_rest(&mut download, &socket);
            // Our end of the data: the client's read ends here, after the last byte.
            let _ = socket.shutdown(std::net::Shutdown::Write);
            result
        })
        .await;
    guard.disarm();
    match sent {
        Ok(Ok(())) => {
            log_retr(&context, start, started, "ok");
            Reply::new(226, format!("sent {} ({} bytes)", context.shown, size - start))
        }
        Ok(Err(SendError::Stalled)) => {
            log_retr(&context, start, started, "stalled");
            Reply::from_error(&WireError::new(
                ErrorCode::TransferStalled,
                format!("no byte could be sent for {} seconds; resume with REST and RETR", context.stall().as_secs()),
            ))
        }
        Ok(Err(SendError::Lost)) => {
            log_retr(&context, start, started, "data connection lost");
            Reply::new(426, "the data connection was lost; resume with REST and RETR")
        }
        Ok(Err(SendError::Storage(error))) => storage_reply("retrieve", error),
        Err(failed) => internal(failed),
    }
}

/// [`send_file`] for a TLS data connection, which must see every byte: each chunk is read on
/// the disk pool while the previous one is written to the socket. The stall limit counts time
/// in which no byte goes out, so a slow client that reads is served to the end.
async fn send_file_copying(data: MaybeTls, download: Download, context: Context) -> Reply {
    let sent = Activity::new();
    let mut data = Stamped::new(data, sent.clone());
    let started = Instant::now();
    let chunk = context.services.config.chunk_bytes;
    let stall = context.stall();
    let disk = context.services.disk.clone();
    let (start, size) = (download.start(), download.size());
    let mut download = download;
    // Two buffers take turns: one is written to the socket while the other is filled.
    let mut in_hand: Option<Vec<u8>> = None;
    let mut spare = Vec::with_capacity(chunk);
    loop {
        let reading = async {
            if download.is_done() {
                return Ok((download, spare, false));
            }
            let read = disk.run("read download", move || {
                let result = download.read_chunk_into(&mut spare, chunk);
                (result, download, spare)
            });
            match read.await {
                Ok((Ok(()), download, filled)) => Ok((download, filled, true)),
                Ok((Err(error), _, _)) => Err(storage_reply("retrieve", error)),
                Err(failed) => Err(internal(failed)),
            }
        };
        let writing = async {
            let bytes = in_hand.take()?;
            let written = sent.unless_stalled(stall, data.write_all(&bytes)).await;
            Some((bytes, matches!(written, Some(Ok(())))))
        };
        let (read, written) = futures::join!(reading, writing);
        let emptied = match written {
            Some((_, false)) => {
                log_retr(&context, start, started, "data connection lost");
                return Reply::new(426, "the data connection was lost; resume with REST and RETR");
            }
            Some((bytes, true)) => bytes,
            None => Vec::with_capacity(chunk),
        };
        match read {
            Ok((returned, filled, true)) => {
                download = returned;
                in_hand = Some(filled);
                spare = emptied;
            }
            Ok((_, _, false)) => break,
            Err(reply) => return reply,
        }
    }
    if !matches!(tokio::time::timeout(stall, data.shutdown()).await, Ok(Ok(()))) {
        log_retr(&context, start, started, "data connection lost at the end");
        return Reply::new(426, "the data connection was lost at the end; resume with REST and RETR");
    }
    log_retr(&context, start, started, "ok");
    Reply::new(226, format!("sent {} ({} bytes)", context.shown, size - start))
}

fn log_retr(context: &Context, resumed_from: u64, started: Instant, result: &str) {
    tracing::info!(target: "access", user = %context.user, peer = %context.peer, op = "ftp retr", path = %context.shown,
        resumed_from, seconds = started.elapsed().as_secs_f64(), result);
}

/// Sends a listing and closes the data connection; `done` is the text of the 226 that follows.
pub async fn send_text(mut data: MaybeTls, text: Vec<u8>, stall: Duration, done: String) -> Reply {
    let sent = async {
        data.write_all(&text).await?;
        data.shutdown().await
    };
    match tokio::time::timeout(stall, sent).await {
        Ok(Ok(())) => Reply::new(226, done),
        _ => Reply::new(426, "the data connection was lost"),
    }
}
