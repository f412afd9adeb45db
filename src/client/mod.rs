//! The client library: what the shell, the tests and the benchmarks use to talk to a server.
//!
//! One [`Client`] is one connection. Requests are answered in order; transfers stream in
//! chunks with the MD5 computed on the way on both sides and compared at the end.

mod error;
pub mod local_file;
mod login_key;
pub mod partial_state;
mod progress;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::integrity::{Digest, Md5};
use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

pub use error::ClientError;
pub use login_key::{KeyOutdated, LoginKey};
pub use progress::{NoProgress, Progress};

use crate::auth::ScryptParams;
use crate::auth::scram::{self, Exchange, Key};
use crate::net::data_frame::write_data_frame;
use crate::net::{Entry, ErrorCode, FrameCodec, Request, Response, WireError};
use local_file::{PartialClaim, hash_prefix, partial_path, read_chunk, read_chunk_into};

/// The client accepts frames up to the largest a server may be configured to send.
const MAX_INCOMING_FRAME: usize = (64 << 20) + 1024;
/// Chunks in flight between the file thread and the connection.
const PIPELINE: usize = 4;
/// How often [`Client::busy`] tells the server the session is alive: well inside the shortest
/// stall limit a server can have (1 s).
const KEEP_ALIVE: std::time::Duration = std::time::Duration::from_millis(400);

/// A directory listing.
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
    framed: Framed<TcpStream, FrameCodec<Response, Request>>,
    chunk_size: usize,
    server: String,
    /// Cancelled by the caller to stop what is in progress (see [`Client::set_interrupt`]).
    interrupt: CancellationToken,
    /// Told each queue position while a login waits for a free slot.
    on_queued: Box<dyn FnMut(u32) + Send>,
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
}

impl Client {
    /// Connects; `on_queued` hears each queue position if a later login finds every session
    /// slot taken and waits for one (the server queues logged-in users, not connections).
    pub async fn connect(
        addr: impl ToSocketAddrs,
        on_queued: impl FnMut(u32) + Send + 'static,
    ) -> Result<Client, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            framed: Framed::new(stream, FrameCodec::new(MAX_INCOMING_FRAME)),
            chunk_size: 256 << 10,
            server: String::new(),
            interrupt: CancellationToken::new(),
            on_queued: Box::new(on_queued),
        };
        match client.recv().await? {
            Response::Welcome { server, chunk_size, .. } => {
                client.chunk_size = (chunk_size as usize).clamp(1, 64 << 20);
                client.server = server;
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

    /// Logs in with a password; the password never leaves this process (SCRAM with scrypt).
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), ClientError> {
        self.login_keeping_key(user, password).await.map(drop)
    }

    /// Logs in with a password and returns the key it derived, to log in again later with
    /// [`Client::login_with_key`] instead of keeping the password (see [`LoginKey`]).
    pub async fn login_keeping_key(&mut self, user: &str, password: &str) -> Result<LoginKey, ClientError> {
        let password = Zeroizing::new(password.as_bytes().to_vec());
        self.login_deriving(user, move |salt, params| {
            LoginKey::derive(&password, salt, params).map_err(|e| ClientError::Protocol(e.to_string()))
        })
        .await
    }

    /// Logs in with a key kept from an earlier login as the same user on the same server; fails
    /// with [`ClientError::KeyOutdated`], before sending any proof, if the password changed since.
    pub async fn login_with_key(&mut self, user: &str, key: &LoginKey) -> Result<(), ClientError> {
        let key = key.clone();
        self.login_deriving(user, move |salt, params| {
            key.for_challenge(salt, params)?;
            Ok(key)
        })
        .await
        .map(drop)
    }

    /// Logs in with a custom derivation of SaltedPassword (the tests use it to hold a login
    /// half-way through).
    pub async fn login_with<F, E>(&mut self, user: &str, derive: F) -> Result<(), ClientError>
    where
        F: FnOnce(&[u8], ScryptParams) -> Result<Key, E> + Send + 'static,
        E: std::fmt::Display,
    {
        self.login_deriving(user, move |salt, params| {
            let salted = derive(salt, params).map_err(|e| ClientError::Protocol(e.to_string()))?;
            Ok(LoginKey::from_parts(salt, params, salted))
        })
        .await
        .map(drop)
    }

    /// The SCRAM exchange, with `derive` (run on a blocking thread) turning the server's salt
    /// and parameters into the key the proof is made with.
    async fn login_deriving<F>(&mut self, user: &str, derive: F) -> Result<LoginKey, ClientError>
    where
        F: FnOnce(&[u8], ScryptParams) -> Result<LoginKey, ClientError> + Send + 'static,
    {
        let client_nonce = scram::new_nonce();
        let challenge =
            self.call(Request::AuthStart { user: user.to_string(), client_nonce: client_nonce.clone() }).await?;
        let Response::AuthChallenge { nonce, salt, log_n, r, p } = challenge else {
            return Err(unexpected(challenge, "auth_challenge"));
        };
        if !nonce.starts_with(&client_nonce) || !scram::is_valid_nonce(&nonce) {
            return Err(ClientError::Protocol("the server's nonce does not extend ours".into()));
        }
        let params = ScryptParams { log_n, r, p };
        params.validate().map_err(|e| ClientError::Protocol(format!("refusing the server's challenge: {e}")))?;
        let salt = salt.into_vec();
        let exchange = Exchange {
            user: user.to_string(),
            client_nonce,
            nonce: nonce.clone(),
            salt: salt.clone(),
            kdf_attribute: params.attribute(),
        };
        let key = blocking(move || derive(&salt, params)).await??;
        let salted = key.salted_password();
        let auth_message = exchange.auth_message();
        let proof = scram::client_proof(salted, &auth_message);
        self.send(Request::AuthProof { nonce, proof: ByteBuf::from(proof.to_vec()) }).await?;
        // Every slot may be taken: the server then tells our place in the queue until one frees.
        let server_signature = loop {
            match self.recv().await? {
                Response::Queued { position } => (self.on_queued)(position),
                Response::AuthOk { server_signature } => break server_signature,
                Response::Error { code, message } => return Err(server_error(code, message)),
                other => return Err(unexpected(other, "auth_ok")),
            }
        };
        if !scram::verify_server_signature(&scram::server_key(salted), &auth_message, &server_signature) {
            return Err(ClientError::ServerNotAuthenticated);
        }
        Ok(key)
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

    pub async fn list(&mut self, path: Option<&str>) -> Result<Listing, ClientError> {
        match self.call(Request::List { path: path.map(str::to_string) }).await? {
            Response::Listing { path, entries, truncated } => Ok(Listing { path, entries, truncated }),
            other => Err(unexpected(other, "listing")),
        }
    }

    async fn expect_done(&mut self, request: Request) -> Result<(), ClientError> {
        match self.call(request).await? {
            Response::Done => Ok(()),
            other => Err(unexpected(other, "done")),
        }
    }

    pub async fn mkdir(&mut self, path: &str) -> Result<(), ClientError> {
        self.expect_done(Request::Mkdir { path: path.to_string() }).await
    }

    pub async fn remove(&mut self, path: &str) -> Result<(), ClientError> {
        self.expect_done(Request::Remove { path: path.to_string() }).await
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
            Response::QuotaInfo { used, limit, files, max_files } => Ok(QuotaReport { used, limit, files, max_files }),
            other => Err(unexpected(other, "quota_info")),
        }
    }

    /// Ends the session politely.
    pub async fn quit(mut self) -> Result<(), ClientError> {
        self.expect_done(Request::Quit).await
    }

    /// Uploads `local` to `remote`, resuming the server's partial if it is a prefix of
    /// `local`, and checks the server's MD5 of the result against ours. If the server already
    /// has `remote` with the same size and an MD5 it knows (`put_ready.existing_md5`), the local
    /// file is hashed first and, when it is the same, nothing is sent (`PutReport::skipped`).
    pub async fn put(&mut self, local: &Path, remote: &str, progress: &dyn Progress) -> Result<PutReport, ClientError> {
        let file = File::open(local).map_err(local_error(local))?;
        let size = file.metadata().map_err(local_error(local))?.len();
        let ready = self.call(Request::Put { path: remote.to_string(), size }).await?;
        let Response::PutReady { offset, prefix_md5, existing_md5 } = ready else {
            return Err(unexpected(ready, "put_ready"));
        };
        if offset > size {
            return Err(ClientError::Protocol(format!("server resumes at {offset}, past the file's {size} bytes")));
        }
        // What our first bytes are compared with: the server's whole file when it offers one
        // (a fresh upload only), else its partial's prefix.
        let (compared_len, compared_md5) = match existing_md5 {
            Some(md5) if offset == 0 => (size, md5),
            _ => (offset, prefix_md5),
        };
        let path = local.to_path_buf();
        let compare = move || {
            let mut file = file;
            let mut hasher = Md5::new();
            hash_prefix(&mut file, compared_len, &mut hasher).map_err(local_error(&path))?;
            let matches = hasher.clone().finalize()[..] == compared_md5[..];
            Ok::<_, ClientError>((file, hasher, matches))
        };
        // Nothing to read (a fresh upload, or an empty file): no need to leave this thread.
        let (mut file, mut hasher, matches) = if compared_len == 0 { compare()? } else { self.busy(compare).await?? };
        let mut resumed_from = offset;
        if compared_len > offset {
            if matches {
                self.expect_done(Request::PutCancel).await?;
                let md5 = hasher.finalize().into();
                return Ok(PutReport { size, resumed_from: 0, restarted: false, skipped: true, md5 });
            }
            // The server's file differs: send ours from the start (an offer means offset 0).
            file.seek(SeekFrom::Start(0)).map_err(local_error(local))?;
            hasher = Md5::new();
        } else if !matches {
            let ready = self.call(Request::PutRestart).await?;
            if !matches!(ready, Response::PutReady { offset: 0, .. }) {
                return Err(unexpected(ready, "put_ready at offset 0"));
            }
            file.seek(SeekFrom::Start(0)).map_err(local_error(local))?;
            hasher = Md5::new();
            resumed_from = 0;
        }
        let restarted = offset > 0 && resumed_from == 0;

        progress.begin(size, resumed_from);
        let result = self.stream_upload(local, file, hasher, size - resumed_from, progress).await;
        progress.end();
        let md5 = result?;
        self.send(Request::PutEnd { md5: ByteBuf::from(md5.to_vec()) }).await?;

        match self.recv().await? {
            Response::PutDone { md5: server_md5, .. } if server_md5[..] == md5[..] => {
                Ok(PutReport { size, resumed_from, restarted, skipped: false, md5 })
            }
            Response::PutDone { md5: server_md5, .. } => {
                Err(ClientError::ChecksumMismatch { remote: hex::encode(server_md5), local: hex::encode(md5) })
            }
            other => Err(unexpected(other, "put_done")),
        }
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

    /// Sends one data frame, `chunk` written from where it is (see `net::data_frame`).
    async fn send_data(&mut self, chunk: &[u8]) -> Result<(), ClientError> {
        self.framed.flush().await?;
        Ok(write_data_frame(self.framed.get_mut(), chunk).await?)
    }

    /// Sends `remaining` bytes of `file` as data frames; returns our MD5. Several chunks are
    /// read and hashed on a blocking thread while earlier ones are sent.
    async fn stream_upload(
        &mut self,
        local: &Path,
        file: File,
        hasher: Md5,
        remaining: u64,
        progress: &dyn Progress,
    ) -> Result<[u8; 16], ClientError> {
        let chunk_size = self.chunk_size;
        if remaining <= chunk_size as u64 {
            // One chunk or none (a small file, or a resume near the end): read and hash it
            // here. Handing it to a blocking thread and back would cost more than the read.
            let (mut file, mut hasher) = (file, hasher);
            let chunk = read_chunk(&mut file, remaining as usize).map_err(local_error(local))?;
            hasher.update(&chunk);
            if !chunk.is_empty() {
                self.send_data(&chunk).await?;
                progress.advance(remaining);
            }
            return Ok(hasher.finalize().into());
        }
        let (chunks, mut incoming) = mpsc::channel::<Vec<u8>>(PIPELINE);
        // Sent buffers go back to the reader, so at most PIPELINE + 2 are ever allocated.
        let (sent, mut empties) = mpsc::unbounded_channel::<Vec<u8>>();
        let path = local.to_path_buf();
        let reader = tokio::task::spawn_blocking(move || {
            let (mut file, mut hasher, mut left) = (file, hasher, remaining);
            while left > 0 {
                let mut chunk = empties.try_recv().unwrap_or_default();
                let len = chunk_size.min(left as usize);
                read_chunk_into(&mut file, &mut chunk, len).map_err(local_error(&path))?;
                hasher.update(&chunk);
                left -= len as u64;
                if chunks.blocking_send(chunk).is_err() {
                    return Err(ClientError::Closed);
                }
            }
            Ok::<[u8; 16], ClientError>(hasher.finalize().into())
        });
        let interrupt = self.interrupt.clone();
        loop {
            // The interrupt first, as in `recv`: chunks are ready most of the time.
            let chunk = tokio::select! {
                biased;
                _ = interrupt.cancelled() => return Err(ClientError::Interrupted),
                chunk = incoming.recv() => match chunk {
                    Some(chunk) => chunk,
                    None => break,
                },
            };
            let len = chunk.len() as u64;
            tokio::select! {
                biased;
                _ = interrupt.cancelled() => return Err(ClientError::Interrupted),
                sent = self.send_data(&chunk) => sent?,
            }
            let _ = sent.send(chunk);
            progress.advance(len);
            // The server answers an upload once, at the end, unless it failed on the way.
            if let Some(early) = self.framed.next().now_or_never() {
                drop(incoming);
                return Err(match early {
                    Some(Ok(Ok(response))) => unexpected(response, "nothing during the upload"),
                    Some(Ok(Err(malformed))) => ClientError::Protocol(malformed.to_string()),
                    Some(Err(error)) => error.into(),
                    None => ClientError::Closed,
                });
            }
        }
        reader.await.map_err(|e| ClientError::Protocol(e.to_string()))?
    }

    /// Downloads `remote` to `local` through the hidden partial `.NAME.ftpa-part`, resuming it
    /// if present; skips the transfer if `local` already has the same size and MD5.
    pub async fn get(&mut self, remote: &str, local: &Path, progress: &dyn Progress) -> Result<GetReport, ClientError> {
        let partial = partial_path(local);
        let (local_path, partial_path_) = (local.to_path_buf(), partial.clone());
        // The partial is ours before the server is asked (see `PartialClaim`). What we already
        // have: that partial to resume, or a complete file that may be current.
        let (claim, existing, have, hasher) = blocking(move || {
            let mut claim = PartialClaim::claim(&partial_path_).map_err(local_error(&partial_path_))?;
            let mut hasher = Md5::new();
            let partial_len = claim.file().metadata().map_err(local_error(&partial_path_))?.len();
            let saved = partial_state::take(&partial_path_, claim.file());
            if partial_len > 0 {
                match saved {
                    Some(state) => hasher = state,
                    None => hash_prefix(claim.file(), partial_len, &mut hasher).map_err(local_error(&partial_path_))?,
                }
                return Ok::<_, ClientError>((claim, false, partial_len, hasher));
            }
            if !local_path.is_file() {
                return Ok((claim, false, 0, hasher));
            }
            let mut file = File::open(&local_path).map_err(local_error(&local_path))?;
            let len = file.metadata().map_err(local_error(&local_path))?.len();
            hash_prefix(&mut file, len, &mut hasher).map_err(local_error(&local_path))?;
            Ok((claim, true, len, hasher))
        })
        .await??;
        let prefix_md5 = hasher.clone().finalize().to_vec();
        let ready = self
            .call(Request::Get { path: remote.to_string(), offset: have, prefix_md5: ByteBuf::from(prefix_md5) })
            .await?;
        let Response::GetReady { size, offset: start, .. } = ready else {
            return Err(unexpected(ready, "get_ready"));
        };
        if start > 0 && start != have {
            return Err(ClientError::Protocol(format!("server resumes at {start}, we have {have} bytes")));
        }
        if existing && start == size {
            return match self.recv().await? {
                Response::GetEnd { md5 } if md5[..] == hasher.clone().finalize()[..] => {
                    Ok(GetReport::Skipped { size, md5: hasher.finalize().into() })
                }
                other => Err(unexpected(other, "get_end with the local file's MD5")),
            };
        }

        let (local_path, partial_path_) = (local.to_path_buf(), partial.clone());
        let writer = blocking(move || {
            let mut file = claim.keep();
            if existing && start > 0 {
                let copied = File::open(&local_path).and_then(|mut from| {
                    file.set_len(0)?;
                    std::io::copy(&mut from, &mut file)
                });
                copied.map_err(local_error(&partial_path_))?;
            } else if start == 0 {
                file.set_len(0).map_err(local_error(&partial_path_))?;
            }
            file.seek(SeekFrom::End(0)).map_err(local_error(&partial_path_))?;
            Ok::<_, ClientError>(file)
        })
        .await??;
        let hasher = if start > 0 { hasher } else { Md5::new() };

        progress.begin(size, start);
        let result = self.stream_download(writer, hasher, &partial, progress).await;
        progress.end();
        let (file, hasher, server_md5) = result?;
        let md5: [u8; 16] = hasher.finalize().into();
        if server_md5[..] != md5 {
            let _ = std::fs::remove_file(&partial);
            return Err(ClientError::ChecksumMismatch { remote: hex::encode(server_md5), local: hex::encode(md5) });
        }
        let local_path = local.to_path_buf();
        blocking(move || {
            file.sync_all().map_err(local_error(&partial))?;
            std::fs::rename(&partial, &local_path).map_err(local_error(&local_path))
        })
        .await??;
        Ok(GetReport::Downloaded { size, resumed_from: start, md5 })
    }

    /// Receives data frames into the partial until `get_end`; every chunk received is on disk
    /// before this returns, even when the connection fails, so a later `get` can resume.
    /// Writing and hashing run on two threads, so the file's writes stay off MD5's path. A
    /// download that stops before `get_end` (an error, or this future dropped by Ctrl-C) ends
    /// with the writing thread saving the MD5 state of what it wrote ([`partial_state`]):
    /// those threads run to their end either way.
    async fn stream_download(
        &mut self,
        file: File,
        hasher: Md5,
        partial: &Path,
        progress: &dyn Progress,
    ) -> Result<(File, Md5, Vec<u8>), ClientError> {
        // Both threads get the same chunk: `Bytes` clones share it.
        let (to_disk, mut disk_queue) = mpsc::channel::<Bytes>(PIPELINE);
        let (to_hasher, mut hash_queue) = mpsc::channel::<Bytes>(PIPELINE);
        let path: PathBuf = partial.to_path_buf();
        // Set when `get_end` arrives, before the queues close: only then is no state saved.
        let complete = Arc::new(AtomicBool::new(false));
        let (hashed_tx, hashed_rx) = std::sync::mpsc::sync_channel::<Md5>(1);
        let disk = tokio::task::spawn_blocking({
            let complete = complete.clone();
            move || {
                let mut file = file;
                while let Some(chunk) = disk_queue.blocking_recv() {
                    file.write_all(&chunk).map_err(local_error(&path))?;
                }
                if !complete.load(Ordering::SeqCst)
                    && let Ok(hashed) = hashed_rx.recv()
                {
                    partial_state::save(&path, &file, &hashed);
                }
                Ok::<_, ClientError>(file)
            }
        });
        let hashing = tokio::task::spawn_blocking(move || {
            let mut hasher = hasher;
            while let Some(chunk) = hash_queue.blocking_recv() {
                hasher.update(&chunk[..]);
            }
            let _ = hashed_tx.send(hasher.clone());
            hasher
        });
        let received = loop {
            match self.recv().await {
                Ok(Response::Data { bytes }) => {
                    let len = bytes.len() as u64;
                    if to_disk.send(bytes.clone()).await.is_err() || to_hasher.send(bytes).await.is_err() {
                        break Err(ClientError::Closed);
                    }
                    progress.advance(len);
                }
                Ok(Response::GetEnd { md5 }) => {
                    complete.store(true, Ordering::SeqCst);
                    break Ok(md5.into_vec());
                }
                Ok(other) => break Err(unexpected(other, "data or get_end")),
                Err(error) => break Err(error),
            }
        };
        drop((to_disk, to_hasher));
        let file = disk.await.map_err(|e| ClientError::Protocol(e.to_string()))??;
        let hasher = hashing.await.map_err(|e| ClientError::Protocol(e.to_string()))?;
        received.map(|md5| (file, hasher, md5))
    }
}
