//! The client library: what the shell, the tests and the benchmarks use to talk to a server.
//!
//! One [`Client`] is one connection. Requests are answered in order; transfers stream in
//! chunks with the MD5 computed on the way on both sides and compared at the end.

mod download;
mod error;
pub mod known_servers;
pub mod local_file;
mod login;
mod login_key;
pub mod partial_state;
mod progress;
pub mod trust;
mod upload;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::integrity::{Digest, Md5};
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use tokio::net::ToSocketAddrs;
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

pub use error::ClientError;
pub use login_key::{KeyOutdated, LoginKey};
pub use progress::{NoProgress, Progress};
pub use trust::{FirstUse, Transport, Trust};

use crate::auth::ScryptParams;
use crate::auth::scram::{self, Exchange, Key};
use crate::net::data_frame::write_data_frame;
use crate::net::{Entry, ErrorCode, FrameCodec, ListAfter, Request, Response, WireError};
use local_file::{FileVersion, PartialClaim, hash_prefix, partial_path, read_chunk, read_chunk_into};

/// The client accepts frames up to the largest a server may be configured to send.
const MAX_INCOMING_FRAME: usize = (64 << 20) + 1024;
/// Chunks in flight between the file thread and the connection.
const PIPELINE: usize = 4;
/// How often [`Client::busy`] tells the server the session is alive: well inside the shortest
/// stall limit a server can have (1 s).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(400);

/// A directory listing, whole: the client reads it page by page. `truncated` only from a
/// server that gives one page (see [`Client::list`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub path: String,
    pub entries: Vec<Entry>,
    pub truncated: bool,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    pub size: u64,
    /// Bytes the server already had from an interrupted upload (0 for a fresh one).
    pub resumed_from: u64,
    /// The server's partial did not match the local file and was discarded.
    pub restarted: bool,
    /// The server already had this file (the same size and MD5): nothing was sent.
    pub skipped: bool,
    pub md5: [u8; 16],
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetReport {
    /// The local file already had the same size and MD5; nothing was transferred.
    Skipped {
        size: u64,
        md5: [u8; 16],
    },
    Downloaded {
        size: u64,
        resumed_from: u64,
        md5: [u8; 16],
    },
}

/// A connection to a server.
pub struct Client {
    framed: Framed<Transport, FrameCodec<Response, Request>>,
    chunk_size: usize,
    server: String,
    /// Cancelled by the caller to stop what is in progress (see [`Client::set_interrupt`]).
    interrupt: CancellationToken,
    /// Told each queue position while a login waits for a free slot.
    on_queued: Box<dyn FnMut(u32) + Send>,
    /// The TLS session's channel binding data (`None` without TLS), and the bindings the
    /// server's welcome offered: a login over TLS is bound to the session.
    exporter: Option<[u8; scram::KEY_LEN]>,
    offered_bindings: Vec<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("server", &self.server).field("chunk_size", &self.chunk_size).finish()
    }
}

fn local_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Local { path: path.display().to_string(), source }
}

fn unexpected(response: Response, wanted: &str) -> ClientError {
    match response {
        Response::Error { code, message } => server_error(code, message),
        other => ClientError::Protocol(format!("expected {wanted}, got {}", other.kind())),
    }
}

fn server_error(code: u16, message: String) -> ClientError {
    match ErrorCode::try_from(code) {
        Ok(code) => ClientError::Server(WireError { code, message }),
        Err(_) => ClientError::Protocol(format!("error {code}: {message}")),
    }
}

async fn blocking<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T, ClientError> {
    tokio::task::spawn_blocking(job).await.map_err(|e| ClientError::Protocol(format!("local worker failed: {e}")))
}

/// A user's figures as `quota_info` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaReport {
    /// Bytes of files and partial uploads.
    pub used: u64,
    pub limit: u64,
    /// Files, directories and partial uploads, each one.
    pub files: u64,
    pub max_files: u64,
    /// How much of `used` is partial uploads, and how many there are.
    pub partial_bytes: u64,
    pub partials: u64,
}

impl Client {
    /// Connects, checking the server's certificate as `trust` says; `on_queued` hears each
    /// queue position if a later login finds every session slot taken and waits for one (the
    /// server queues logged-in users, not connections).
    pub async fn connect(
        addr: impl ToSocketAddrs + std::fmt::Display,
        trust: &Trust,
        on_queued: impl FnMut(u32) + Send + 'static,
    ) -> Result<Client, ClientError> {
        let stream = trust::open_transport(addr, trust).await?;
        let exporter = trust::channel_binding(&stream);
        let mut client = Client {
            framed: Framed::new(stream, FrameCodec::new(MAX_INCOMING_FRAME)),
            chunk_size: 256 << 10,
            server: String::new(),
            interrupt: CancellationToken::new(),
            on_queued: Box::new(on_queued),
            exporter,
            offered_bindings: Vec::new(),
        };
        match client.recv().await? {
            Response::Welcome { server, chunk_size, channel_bindings, .. } => {
                client.chunk_size = (chunk_size as usize).clamp(1, 64 << 20);
                client.server = server;
                client.offered_bindings = channel_bindings;
                Ok(client)
            }
            Response::Error { code, message } => Err(server_error(code, message)),
            other => Err(unexpected(other, "welcome")),
        }
    }

    /// The server's name and version from its welcome.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// From now on, cancelling `interrupt` stops what this client is doing: a wait for the
    /// server's answer, or a transfer between two of its chunks (the shell's Ctrl-C). The call
    /// returns [`ClientError::Interrupted`], a download's partial holds every chunk received
    /// and a server's upload partial every chunk sent, and the connection is left in the
    /// middle of that exchange: connect again to go on (and resume).
    pub fn set_interrupt(&mut self, interrupt: CancellationToken) {
        self.interrupt = interrupt;
    }

    /// Sends one message (low level: tests and tools).
    pub async fn send(&mut self, request: Request) -> Result<(), ClientError> {
        Ok(self.framed.send(request).await?)
    }

    /// Receives one message, errors included (low level: tests and tools).
    pub async fn recv(&mut self) -> Result<Response, ClientError> {
        let next = tokio::select! {
            // First, or a download whose frames are always ready could not be interrupted.
            biased;
            _ = self.interrupt.cancelled() => return Err(ClientError::Interrupted),
            next = self.framed.next() => next,
        };
        match next {
            Some(Ok(Ok(response))) => Ok(response),
            Some(Ok(Err(malformed))) => Err(ClientError::Protocol(malformed.to_string())),
            Some(Err(error)) => Err(error.into()),
            None => Err(ClientError::Closed),
        }
    }

    async fn call(&mut self, request: Request) -> Result<Response, ClientError> {
        self.send(request).await?;
        match self.recv().await? {
            Response::Error { code, message } => Err(server_error(code, message)),
            response => Ok(response),
        }
    }

    pub async fn pwd(&mut self) -> Result<String, ClientError> {
        match self.call(Request::Pwd).await? {
            Response::Cwd { path } => Ok(path),
            other => Err(unexpected(other, "cwd")),
        }
    }

    /// Changes directory; returns the new working directory.
    pub async fn cd(&mut self, path: &str) -> Result<String, ClientError> {
        match self.call(Request::Cd { path: path.to_string() }).await? {
            Response::Cwd { path } => Ok(path),
            other => Err(unexpected(other, "cwd")),
        }
    }

    /// The listing of `path` (or the working directory), every page of it. A server from
    /// before paged listings ignores `after` and gives its first page again: the listing then
    /// ends there, `truncated`.
    pub async fn list(&mut self, path: Option<&str>) -> Result<Listing, ClientError> {
        let mut entries = Vec::new();
        let (path, truncated) = self.list_pages(path, |page| entries.extend(page)).await?;
        Ok(Listing { path, entries, truncated })
    }

    /// The listing of `path` a page at a time: `on_page` gets each page's entries as it arrives,
    /// so a caller that shows them (the shell's `ls`) starts at once and holds one page, however
    /// large the directory. Returns the directory's path and whether the listing stopped short
    /// (a server from before paged listings: see [`Client::list`]).
    pub async fn list_pages(
        &mut self,
        path: Option<&str>,
        mut on_page: impl FnMut(Vec<Entry>),
    ) -> Result<(String, bool), ClientError> {
        let first = self.list_page(path, None).await?;
        let (listed, mut truncated) = (first.path, first.truncated);
        let mut last = first.entries.last().map(Entry::list_key);
        on_page(first.entries);
        while truncated && let Some(after) = last {
            let page = self.list_page(path, Some(after.clone())).await?;
            if page.entries.first().is_none_or(|first| first.list_key() <= after) {
                break;
            }
            (last, truncated) = (page.entries.last().map(Entry::list_key), page.truncated);
            on_page(page.entries);
        }
        Ok((listed, truncated))
    }

    async fn list_page(&mut self, path: Option<&str>, after: Option<ListAfter>) -> Result<Listing, ClientError> {
        match self.call(Request::List { path: path.map(str::to_string), after }).await? {
            Response::Listing { path, entries, truncated } => Ok(Listing { path, entries, truncated }),
            other => Err(unexpected(other, "listing")),
        }
    }

    async fn expect_done(&mut self, request: Request) -> Result<(), ClientError> {
        self.done_noting_partial(request).await.map(drop)
    }

    /// Sends `request`, expecting `done`; returns its `partial_remains`.
    async fn done_noting_partial(&mut self, request: Request) -> Result<bool, ClientError> {
        match self.call(request).await? {
            Response::Done { partial_remains } => Ok(partial_remains),
            other => Err(unexpected(other, "done")),
        }
    }

    pub async fn mkdir(&mut self, path: &str) -> Result<(), ClientError> {
        self.expect_done(Request::Mkdir { path: path.to_string() }).await
    }

    /// Removes the file at `path`, or, where no file is published, the partial upload to it.
    /// Returns true if the file was removed and a partial upload to the same name remains (a
    /// second `remove` removes that).
    pub async fn remove(&mut self, path: &str) -> Result<bool, ClientError> {
        self.done_noting_partial(Request::Remove { path: path.to_string() }).await
    }

    pub async fn rmdir(&mut self, path: &str) -> Result<(), ClientError> {
        self.expect_done(Request::Rmdir { path: path.to_string() }).await
    }

    pub async fn rename(&mut self, from: &str, to: &str) -> Result<(), ClientError> {
        self.expect_done(Request::Rename { from: from.to_string(), to: to.to_string() }).await
    }

    /// Bytes used and the limit.
    pub async fn quota(&mut self) -> Result<(u64, u64), ClientError> {
        self.quota_report().await.map(|report| (report.used, report.limit))
    }

    /// Bytes and entries used, and their limits.
    pub async fn quota_report(&mut self) -> Result<QuotaReport, ClientError> {
        match self.call(Request::Quota).await? {
            Response::QuotaInfo { used, limit, files, max_files, partial_bytes, partials } => {
                Ok(QuotaReport { used, limit, files, max_files, partial_bytes, partials })
            }
            other => Err(unexpected(other, "quota_info")),
        }
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> Result<(), ClientError> {
        self.expect_done(Request::Quit).await
    }

    /// Runs `job` (hashing a local file) on a blocking thread while keeping the session
    /// active: a `noop` every [`KEEP_ALIVE`], each answered `done`. An open upload that gets
    /// no data for the server's `transfer_stall_secs` is closed, and hashing a large file on a
    /// slow disk can take longer than that. Cancelling the interrupt stops the wait.
    async fn busy<T: Send + 'static>(&mut self, job: impl FnOnce() -> T + Send + 'static) -> Result<T, ClientError> {
        let job = blocking(job);
        tokio::pin!(job);
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        // A slow answer is no reason to send the missed ones in a burst after it.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                done = &mut job => return done,
                _ = ticks.tick() => self.expect_done(Request::Noop).await?,
            }
        }
    }
}
