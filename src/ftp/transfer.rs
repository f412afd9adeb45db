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
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::actors::Services;
use crate::metrics::{Operation, Outcome, Protocol};
use crate::net::activity::{Activity, Stamped};
use crate::net::{ErrorCode, WireError};
use crate::service::error as service_error;
use crate::service::{FreshUpload, Upload};
use crate::storage::DownloadSession;

use super::directory_listing::DirectoryListing;
use super::listing::{ListingKind, unix_now};
use super::reply::Reply;
use super::sendfile::{self, SendError};
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

/// An upload as the data connection opens: already open (a resume or an append), or fresh,
/// its partial opened only if the data does not all fit in the first block.
pub enum Receiving {
    Opened(Upload),
    Fresh(FreshUpload),
}

/// Receives the data of a STOR or APPE and publishes the file when it ends cleanly.
///
/// Each block is written on the disk pool while the next one is read from the socket. The
/// last block is written by the job that publishes the file, and a fresh file that fits in one
/// block (most files of a mirror) is stored by one disk job from opening to publishing.
pub async fn receive_file(mut data: MaybeTls, receiving: Receiving, context: Context) -> Reply {
    let started = Instant::now();
    let chunk = context.services.config.chunk_bytes.max(STORE_BLOCK);
    let stall = context.stall();
    let mut pending: Option<Vec<u8>> = None;
    let mut failed = None;
    let mut upload = match receiving {
        Receiving::Opened(upload) => upload,
        Receiving::Fresh(fresh) => {
            let mut block = Vec::with_capacity(chunk);
            let result = read_block(&mut data, &mut block, chunk, stall).await;
            if let Ok(true) = result {
                return store_whole(data, fresh, block, &context, started).await;
            }
            if let Err(error) = &result
                && block.is_empty()
            {
                // Cut before any byte came: nothing to keep, so no partial (which would count
                // against `max_files` until it expired) is made.
                return cut_before_any_data(&context, error, started);
            }
            // Longer than a block, or cut: the partial is needed (for the rest, or a resume).
            let upload = match fresh.open().await {
                Ok(upload) => upload,
                Err(error) => return refused(&context, data, error, 0, started).await,
            };
            pending = (!block.is_empty()).then_some(block);
            failed = result.err();
            upload
        }
    };
    let resumed_from = upload.offset();
    let mut spare = Vec::with_capacity(chunk);
    let ended = match failed {
        Some(error) => Err(error),
        None => loop {
            let writing = write_pending(upload, pending.take());
            let reading = async {
                let mut block = spare;
                let result = read_block(&mut data, &mut block, chunk, stall).await;
                (block, result)
            };
            let (written, (block, result)) = futures::join!(writing, reading);
            (upload, spare) = match written {
                Ok((upload, emptied)) => (upload, emptied.unwrap_or_else(|| Vec::with_capacity(chunk))),
                Err(error) => return refused(&context, data, error, resumed_from, started).await,
            };
            pending = (!block.is_empty()).then_some(block);
            match result {
                Ok(false) => {}
                Ok(true) => break Ok(()),
                Err(error) => break Err(error),
            }
        },
    };
    if let Err(error) = ended {
        // Bytes that arrived before the failure are still written, for the resume.
        let upload = match write_pending(upload, pending).await {
            Ok((upload, _)) => upload,
            Err(error) => return refused(&context, data, error, resumed_from, started).await,
        };
        let why = data_failure(&error);
        let received = upload.offset().saturating_sub(resumed_from);
        log_store(&context, resumed_from, started, &why, received, Outcome::Lost);
        let message = format!("{why}; {} bytes are kept: resume with REST and STOR, or APPE", upload.offset());
        return Reply::from_error(&WireError::new(ErrorCode::TransferStalled, message));
    }
    // Reserved before our end of the data is sent, so that a refusal is logged and answered as
    // any other (`refused`); `publish_as_is` then finds the tail covered and asks nothing more.
    let size = upload.offset() + pending.as_ref().map_or(0, |block| block.len() as u64);
    let upload = match upload.reserve_or_abandon(size).await {
        Ok(upload) => upload,
        Err(error) => return refused(&context, data, error, resumed_from, started).await,
    };
    // Our close_notify answers the client's: clients that wait for it (Python's ftplib)
    // would otherwise report an error for a stored file.
    let _ = tokio::time::timeout(stall, data.shutdown()).await;
    stored(&context, upload.publish_as_is(pending).await, resumed_from, size, started)
}

/// What broke a data connection, as the reply and the access log say it.
fn data_failure(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        "the data connection was cut without TLS close_notify".to_string()
    } else {
        format!("the data connection failed: {error}")
    }
}

/// The reply to a fresh upload whose data connection broke before any byte came.
fn cut_before_any_data(context: &Context, error: &std::io::Error, started: Instant) -> Reply {
    let why = data_failure(error);
    log_store(context, 0, started, &why, 0, Outcome::Lost);
    Reply::from_error(&WireError::new(ErrorCode::TransferStalled, format!("{why}; nothing was stored")))
}

/// The end of a fresh upload whose data all came in one block: one disk job stores it.
async fn store_whole(
    mut data: MaybeTls,
    fresh: FreshUpload,
    block: Vec<u8>,
    context: &Context,
    started: Instant,
) -> Reply {
    let size = block.len() as u64;
    let _ = tokio::time::timeout(context.stall(), data.shutdown()).await;
    stored(context, fresh.store_whole(block).await, 0, size, started)
}

/// The reply to a STOR whose data ended cleanly, once publishing is done; logged and counted.
fn stored(
    context: &Context,
    published: Result<(), WireError>,
    resumed_from: u64,
    size: u64,
    started: Instant,
) -> Reply {
    match published {
        Ok(()) => {
            log_store(context, resumed_from, started, &format!("ok size={size}"), size - resumed_from, Outcome::Ok);
            Reply::new(226, format!("stored {} ({size} bytes)", context.shown))
        }
        Err(error) => {
            let outcome = Outcome::Failed(error.code);
            log_store(context, resumed_from, started, &error.message, size - resumed_from, outcome);
            Reply::from_error(&error)
        }
    }
}

/// Writes `block`, if there is one (reserving quota for it first); its buffer comes back
/// emptied, for the next read.
async fn write_pending(upload: Upload, block: Option<Vec<u8>>) -> Result<(Upload, Option<Vec<u8>>), WireError> {
    match block {
        None => Ok((upload, None)),
        Some(block) => upload.write(block).await.map(|(upload, emptied)| (upload, Some(emptied))),
    }
}

/// Logs a refused or failed upload and ends it (see [`refuse_rest`]); the reply to send.
async fn refused(context: &Context, data: MaybeTls, error: WireError, resumed_from: u64, started: Instant) -> Reply {
    log_store(context, resumed_from, started, &error.message, 0, Outcome::Failed(error.code));
    refuse_rest(data, Reply::from_error(&error), context.stall()).await
}

/// The longest a refused upload's data is read and thrown away (see [`refuse_rest`]).
const DISCARD_TIME: Duration = Duration::from_secs(600);

/// Ends a refused upload: reads and discards what the client is still sending, until it has
/// sent everything (or stops sending for `stall`, or [`DISCARD_TIME`] passes), before closing.
/// FTP clients read the control connection only once their data is sent: closed earlier, the
/// data connection is reset under them and they report a broken pipe (curl exit 55, an
/// SSLEOFError in ftplib, lftp retrying forever) instead of the 552. Nothing of it is written,
/// and no byte count bounds it: a client far over its quota must hear why too.
async fn refuse_rest(mut data: MaybeTls, reply: Reply, stall: Duration) -> Reply {
    let deadline = Instant::now() + DISCARD_TIME;
    let mut thrown_away = vec![0u8; 64 << 10];
    loop {
        let wait = stall.min(deadline.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(wait, data.read(&mut thrown_away)).await {
            Ok(Ok(read)) if read > 0 => {}
            // The end of the data, a failure, a stall or the deadline.
            _ => break,
        }
    }
    let _ = tokio::time::timeout(stall, data.shutdown()).await;
    reply
}

/// Logs how a STOR ended and counts it, with the bytes it received, in the metrics.
fn log_store(context: &Context, resumed_from: u64, started: Instant, result: &str, received: u64, outcome: Outcome) {
    tracing::info!(target: "access", user = %context.user, peer = %context.peer, op = "ftp stor", path = %context.shown,
        resumed_from, seconds = started.elapsed().as_secs_f64(), result);
    context.services.metrics.transfer(Protocol::ftp, Operation::upload, received, started.elapsed(), outcome);
}

/// Sends a file from its start offset: with sendfile(2) over a plain data connection when the
/// store offers it (see [`super::sendfile`]), else through [`send_file_copying`].
pub async fn send_file<D: DownloadSession>(data: MaybeTls, download: D, context: Context) -> Reply {
    match data {
        MaybeTls::Plain(stream) if download.sends_file() => send_file_plain(stream, download, context).await,
        data => send_file_copying(data, download, context).await,
    }
}

/// [`send_file`] over a plain data connection: one disk job sends the whole file.
async fn send_file_plain<D: DownloadSession>(stream: tokio::net::TcpStream, download: D, context: Context) -> Reply {
    let started = Instant::now();
    let (start, size) = (download.start(), download.size());
    let (socket, guard) = match sendfile::prepare(stream, context.stall()) {
        Ok(prepared) => prepared,
        Err(error) => {
            log_retr(&context, start, started, &format!("data connection unusable: {error}"), 0, Outcome::Lost);
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
            log_retr(&context, start, started, "ok", size - start, Outcome::Ok);
            Reply::new(226, format!("sent {} ({} bytes)", context.shown, size - start))
        }
        Ok(Err(SendError::Stalled)) => {
            log_retr(&context, start, started, "stalled", 0, Outcome::Failed(ErrorCode::TransferStalled));
            Reply::from_error(&WireError::new(
                ErrorCode::TransferStalled,
                format!("no byte could be sent for {} seconds; resume with REST and RETR", context.stall().as_secs()),
            ))
        }
        Ok(Err(SendError::Lost)) => {
            log_retr(&context, start, started, "data connection lost", 0, Outcome::Lost);
            Reply::new(426, "the data connection was lost; resume with REST and RETR")
        }
        Ok(Err(SendError::Storage(error))) => Reply::from_error(&service_error::storage("get", &context.shown, error)),
        Err(failed) => internal(failed),
    }
}

/// [`send_file`] for a TLS data connection, which must see every byte: each chunk is read on
/// the disk pool while the previous one is written to the socket. The stall limit counts time
/// in which no byte goes out, so a slow client that reads is served to the end.
async fn send_file_copying<D: DownloadSession>(data: MaybeTls, download: D, context: Context) -> Reply {
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
                Ok((Err(error), _, _)) => Err(Reply::from_error(&service_error::storage("get", &context.shown, error))),
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
                log_retr(&context, start, started, "data connection lost", 0, Outcome::Lost);
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
        log_retr(&context, start, started, "data connection lost at the end", 0, Outcome::Lost);
        return Reply::new(426, "the data connection was lost at the end; resume with REST and RETR");
    }
    log_retr(&context, start, started, "ok", size - start, Outcome::Ok);
    Reply::new(226, format!("sent {} ({} bytes)", context.shown, size - start))
}

/// Logs how a RETR ended and counts it, with the bytes it sent (when known whole), in the
/// metrics.
fn log_retr(context: &Context, resumed_from: u64, started: Instant, result: &str, sent: u64, outcome: Outcome) {
    tracing::info!(target: "access", user = %context.user, peer = %context.peer, op = "ftp retr", path = %context.shown,
        resumed_from, seconds = started.elapsed().as_secs_f64(), result);
    context.services.metrics.transfer(Protocol::ftp, Operation::download, sent, started.elapsed(), outcome);
}

/// Sends a listing, a page at a time, and closes the data connection. A page that cannot be
/// read ends the listing with its error, without our end of the data: the client sees the
/// listing cut, then why.
pub async fn send_listing(
    mut data: MaybeTls,
    mut listing: DirectoryListing,
    kind: ListingKind,
    stall: Duration,
) -> Reply {
    let now = unix_now();
    let mut text = String::new();
    loop {
        let page = match listing.next().await {
            Ok(Some(page)) => page,
            Ok(None) => break,
            Err(error) => return Reply::from_error(&error),
        };
        text.clear();
        for entry in &page {
            kind.write_line(entry, now, &mut text);
        }
        if !matches!(tokio::time::timeout(stall, data.write_all(text.as_bytes())).await, Ok(Ok(()))) {
            return Reply::new(426, "the data connection was lost");
        }
    }
    match tokio::time::timeout(stall, data.shutdown()).await {
        Ok(Ok(())) => Reply::new(226, "listing sent"),
        _ => Reply::new(426, "the data connection was lost"),
    }
}
