//! SessionActor: one per admitted connection, a state machine over the protocol.
//!
//! Reading: frames arrive through a `StreamHandler`. Every request is served under
//! `ctx.wait`, which stops the actor from polling the socket until the request is done; an
//! uploader that sends faster than the disk writes is therefore held back by TCP itself.
//!
//! Writing: responses go through a bounded channel to a writer task that owns the socket's
//! write half (`actix::io::FramedWrite` applies no backpressure; see the guide). A download
//! awaits room in that channel before reading the next chunk, so a slow reader holds at most
//! a few chunks in memory.
//!
//! States: `Connected` (expects `auth_start`), `Challenged` (expects `auth_proof`), `Ready`
//! (logged in; an upload may be in progress).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::SinkExt;
use md5::{Digest, Md5};
use serde_bytes::ByteBuf;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::net::{ErrorCode, FrameCodec, FrameError, MalformedFrame, PROTOCOL_VERSION, Request, Response, WireError};
use crate::quota::upload_need;
use crate::storage::{Download, Home, PartialUpload, StorageError, VirtualPath};

use super::Services;
use super::acceptor::{ClaimUserSession, SessionEnded};
use super::auth::{BeginLogin, FinishLogin, PendingLogin};
use super::disk::{DiskPool, JobFailed};
use super::panic_guard::{catch_panic, catch_panic_async};
use super::quota::{Adjust, GetUsage, OpenUpload, QuotaActor, QuotaError, Reserve, UploadLease};

/// From this size on, a transfer's chunks are hashed on a second disk worker beside their
/// write (or the next read), which takes MD5 off the I/O path of one large transfer. Smaller
/// files hash inside the I/O job: the hand-off would cost more than it saves, and many small
/// transfers at once keep every worker busy anyway.
const PARALLEL_HASH_MIN_BYTES: u64 = 1 << 20;

/// Frames queued for the writer task; with 256 KiB chunks, at most 1 MiB waits per session.
const WRITE_QUEUE: usize = 4;

type Incoming = Result<Result<Request, MalformedFrame>, FrameError>;

/// An upload in progress: the partial file and its lease travel together, so whoever drops
/// them (the session, a disk job, a dead connection) settles the quota correctly. The MD5 of
/// the bytes written so far travels beside them.
struct ActiveUpload {
    partial: PartialUpload,
    hasher: Md5,
    /// The upload's last chunk, held until `put_end` so that the publishing job writes it:
    /// one disk job fewer per upload, which is most of the cost of a small file. At most one
    /// frame.
    held: Option<Vec<u8>>,
    lease: UploadLease,
    started: Instant,
    resumed_from: u64,
}

impl ActiveUpload {
    /// Writes and hashes the held chunk, if any. Call under the usage gate, in a disk job.
    fn write_held(&mut self) -> Result<(), StorageError> {
        if let Some(bytes) = self.held.take() {
            let result = self.partial.write(&bytes);
            self.record_growth();
            result?;
            self.hasher.update(&bytes);
        }
        Ok(())
    }

    fn prefix_md5(&self) -> ByteBuf {
        ByteBuf::from(self.hasher.clone().finalize().to_vec())
    }

    /// Call under the usage gate, in the job that changed the partial.
    fn record_growth(&self) {
        self.lease.record_disk_change(self.partial.growth());
    }

    /// Ends an upload that never received data. The recorded growth stays right: an empty
    /// partial that is removed had length 0, exactly what the growth already assumes.
    fn abandon(self, home: &Home) {
        let ActiveUpload { partial, lease, .. } = self;
        partial.abandon(home);
        drop(lease);
    }
}

struct LoggedIn {
    user: String,
    home: Arc<Home>,
    home_path: PathBuf,
    cwd: VirtualPath,
    upload: Option<ActiveUpload>,
    /// An upload failed mid-stream and its error was sent: its remaining `data` frames and its
    /// `put_end` are dropped silently, so the client hears one answer per upload.
    discarding: bool,
}

enum Phase {
    Connected,
    Challenged(PendingLogin),
    Ready(LoggedIn),
}

/// The session's admission slot, returned to the acceptor when dropped: even a session whose
/// task dies in a panic gives its slot back.
struct SlotGuard {
    id: u64,
    acceptor: Recipient<SessionEnded>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.acceptor.do_send(SessionEnded { id: self.id });
    }
}

pub struct SessionActor {
    id: u64,
    peer: SocketAddr,
    services: Services,
    _slot: SlotGuard,
    /// Where a login claims one of its user's `max_sessions_per_user` places.
    user_slots: Recipient<ClaimUserSession>,
    out: mpsc::Sender<Response>,
    phase: Phase,
    failed_logins: u32,
    last_activity: Instant,
    /// The server is shutting down: close once the upload in progress (if any) is done.
    draining: bool,
}

impl SessionActor {
    /// Starts a session on an admitted connection.
    /// Starts a session on an admitted connection; returns its address and its outgoing
    /// frame queue (the acceptor uses the queue to tell it about a forced shutdown even while
    /// it is busy streaming).
    pub fn start(
        id: u64,
        stream: TcpStream,
        peer: SocketAddr,
        services: Services,
        acceptor: Recipient<SessionEnded>,
        user_slots: Recipient<ClaimUserSession>,
    ) -> (Addr<SessionActor>, mpsc::Sender<Response>) {
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let max_frame = services.config.max_frame_bytes;
        let (out, queue) = mpsc::channel(WRITE_QUEUE);
        let stall = Duration::from_secs(services.config.transfer_stall_secs);
        actix_rt::spawn(write_frames(FramedWrite::new(write_half, FrameCodec::new(max_frame)), queue, stall));
        let sender = out.clone();
        let addr = SessionActor::create(move |ctx| {
            ctx.add_stream(FramedRead::new(read_half, FrameCodec::<Request, Response>::new(max_frame)));
            SessionActor {
                id,
                peer,
                services,
                _slot: SlotGuard { id, acceptor },
                user_slots,
                out,
                phase: Phase::Connected,
                failed_logins: 0,
                last_activity: Instant::now(),
                draining: false,
            }
        });
        (addr, sender)
    }

    fn upload_in_progress(&self) -> bool {
        matches!(&self.phase, Phase::Ready(session) if session.upload.is_some())
    }

    /// During a shutdown, closes the session as soon as it has no transfer in progress.
    fn close_if_drained(&mut self, ctx: &mut Context<Self>) {
        if self.draining && !self.upload_in_progress() {
            self.draining = false;
            self.close_with(ctx, WireError::new(ErrorCode::ShuttingDown, "the server is shutting down"));
        }
    }

    fn user(&self) -> &str {
        match &self.phase {
            Phase::Ready(session) => &session.user,
            Phase::Challenged(pending) => pending.user(),
            Phase::Connected => "-",
        }
    }

    /// Sends one response, pausing the session until the writer has room.
    fn reply(&mut self, ctx: &mut Context<Self>, response: Response) {
        // The common case (nothing in flight, room in the writer's queue) needs no future: a
        // cheap command like `pwd` is answered within the handler.
        let response = if ctx.waiting() {
            response
        } else {
            match self.out.try_send(response) {
                Ok(()) => {
                    self.last_activity = Instant::now();
                    return self.close_if_drained(ctx);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return ctx.stop(),
                Err(mpsc::error::TrySendError::Full(response)) => response,
            }
        };
        self.serve(ctx, async move { (response, ()) }, |_, _, _| {});
    }

    /// Sends a last response and closes the connection.
    fn close_with(&mut self, ctx: &mut Context<Self>, error: WireError) {
        self.serve(ctx, async move { (Response::error(error), ()) }, |_, _, ctx| ctx.stop());
    }

    /// Runs `work` off the actor, sends the response it yields, then applies its state change.
    /// A panic in either part becomes an internal error for this request; the session goes on.
    fn serve<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl Future<Output = (Response, T)> + 'static,
        apply: impl FnOnce(&mut Self, T, &mut Context<Self>) + 'static,
    ) {
        let out = self.out.clone();
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        let task = async move {
            let (response, change) = match catch_panic_async("session", work).await {
                Ok((response, change)) => (response, Some(change)),
                Err(panicked) => (internal(&panicked.message), None),
            };
            // A client that does not read its answers is not waited for forever.
            let sent = matches!(tokio::time::timeout(stall, out.send(response)).await, Ok(Ok(())));
            (sent, change)
        };
        ctx.wait(task.into_actor(self).map(move |(sent, change), act, ctx| {
            act.last_activity = Instant::now();
            if let Some(change) = change {
                let _ = catch_panic("session", || apply(act, change, ctx));
            }
            if !sent {
                ctx.stop();
            }
            act.close_if_drained(ctx);
        }));
    }

    fn handle_request(&mut self, request: Request, ctx: &mut Context<Self>) {
        match (&mut self.phase, request) {
            (_, Request::Quit) => self.serve(ctx, async { (Response::Done, ()) }, |_, _, ctx| ctx.stop()),
            (Phase::Connected, Request::AuthStart { user, client_nonce }) => self.begin_login(ctx, user, client_nonce),
            (Phase::Challenged(_), Request::AuthProof { nonce, proof }) => {
                self.finish_login(ctx, nonce, proof.into_vec())
            }
            (Phase::Connected | Phase::Challenged(_), _) => {
                self.reply(ctx, Response::error(WireError::new(ErrorCode::NotLoggedIn, "log in first (auth_start)")))
            }
            (Phase::Ready(_), Request::AuthStart { .. } | Request::AuthProof { .. }) => {
                self.reply(ctx, unexpected("already logged in"))
            }
            (Phase::Ready(session), request) => {
                let is_upload_message =
                    matches!(request, Request::Data { .. } | Request::PutEnd { .. } | Request::PutRestart);
                if session.discarding {
                    if is_upload_message {
                        session.discarding = !matches!(request, Request::PutEnd { .. });
                        return;
                    }
                    session.discarding = false;
                }
                let in_upload = session.upload.is_some();
                if in_upload != is_upload_message {
                    let why = if in_upload {
                        "an upload is in progress: send data, put_end or put_restart"
                    } else {
                        "no upload is in progress"
                    };
                    return self.reply(ctx, unexpected(why));
                }
                self.handle_command(request, ctx)
            }
        }
    }

    fn begin_login(&mut self, ctx: &mut Context<Self>, user: String, client_nonce: String) {
        let auth = self.services.auth.clone();
        let peer = self.peer.ip();
        let work = async move {
            match auth.send(BeginLogin { user, client_nonce, peer }).await {
                Ok(Ok(pending)) => (pending.challenge(), Some(pending)),
                Ok(Err(error)) => (Response::error(error), None),
                Err(_) => (internal("authentication service unavailable"), None),
            }
        };
        self.serve(ctx, work, |act, pending, _| {
            if let Some(pending) = pending {
                act.phase = Phase::Challenged(pending);
            }
        });
    }

    fn finish_login(&mut self, ctx: &mut Context<Self>, nonce: String, proof: Vec<u8>) {
        let Phase::Challenged(pending) = std::mem::replace(&mut self.phase, Phase::Connected) else {
            return;
        };
        let auth = self.services.auth.clone();
        let disk = self.services.disk.clone();
        let user_slots = self.user_slots.clone();
        let id = self.id;
        let peer = self.peer;
        let work = async move {
            let user = pending.user().to_string();
            let login = match auth.send(FinishLogin { pending, nonce, proof, peer: peer.ip() }).await {
                Ok(result) => result,
                Err(_) => return (internal("authentication service unavailable"), Err(false)),
            };
            let login = match login {
                Ok(login) => login,
                Err(error) => {
                    tracing::info!(target: "access", %user, %peer, op = "login", result = "failed");
                    return (Response::error(error), Err(true));
                }
            };
            match user_slots.send(ClaimUserSession { id, user: login.user.clone() }).await {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => return (Response::error(refused), Err(false)),
                Err(_) => return (internal("admission service unavailable"), Err(false)),
            }
            let home_path = login.home.clone();
            match disk.run("open home", move || Home::open(&home_path)).await {
                Ok(Ok(home)) => {
                    tracing::info!(target: "access", user = %login.user, %peer, op = "login", result = "ok");
                    let signature = ByteBuf::from(login.server_signature.to_vec());
                    (Response::AuthOk { server_signature: signature }, Ok((login, home)))
                }
                Ok(Err(error)) => {
                    tracing::error!(user = %login.user, home = %login.home.display(), %error, "cannot open home");
                    (
                        Response::error(WireError::new(
                            ErrorCode::StorageFailure,
                            "your home directory cannot be opened",
                        )),
                        Err(false),
                    )
                }
                Err(error) => (internal(&error.to_string()), Err(false)),
            }
        };
        self.serve(ctx, work, |act, outcome, ctx| match outcome {
            Ok((login, home)) => {
                act.phase = Phase::Ready(LoggedIn {
                    user: login.user,
                    home: Arc::new(home),
                    home_path: login.home,
                    cwd: VirtualPath::root(),
                    upload: None,
                    discarding: false,
                })
            }
            Err(true) => {
                act.failed_logins += 1;
                if act.failed_logins >= act.services.config.max_login_attempts_per_connection.max(1) {
                    ctx.stop();
                }
            }
            Err(false) => {}
        });
    }

    fn handle_command(&mut self, request: Request, ctx: &mut Context<Self>) {
        #[cfg(feature = "fault-injection")]
        if let Request::Mkdir { path } = &request {
            match path.as_str() {
                "fault-injection/panic-in-handler" => panic!("injected session failure in a handler"),
                "fault-injection/panic-in-future" => {
                    let work = async { panic!("injected session failure in a future") };
                    return self.serve::<()>(ctx, work, |_, _, _| {});
                }
                _ => {}
            }
        }
        let Phase::Ready(session) = &mut self.phase else { return };
        let limits = self.services.config.path_limits();
        let cwd = session.cwd.clone();
        let resolve = |path: &str| VirtualPath::resolve(&cwd, path, limits).map_err(StorageError::from);
        let home = session.home.clone();
        let disk = self.services.disk.clone();
        match request {
            Request::Pwd => {
                let cwd = session.cwd.to_string();
                self.reply(ctx, Response::Cwd { path: cwd })
            }
            Request::Cd { path } => {
                let target = match resolve(&path) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, storage_error("cd", &path, error)),
                };
                let work = async move {
                    let checked = target.clone();
                    match disk.run("cd", move || home.check_dir(&checked)).await {
                        Ok(Ok(())) => (Response::Cwd { path: target.to_string() }, Some(target)),
                        Ok(Err(error)) => (storage_error("cd", &path, error), None),
                        Err(error) => (internal(&error.to_string()), None),
                    }
                };
                self.serve(ctx, work, |act, target, _| {
                    if let (Phase::Ready(session), Some(target)) = (&mut act.phase, target) {
                        session.cwd = target;
                    }
                });
            }
            Request::List { path } => {
                let shown = path.clone().unwrap_or_else(|| session.cwd.to_string());
                let target = match path.as_deref().map(resolve).unwrap_or_else(|| Ok(session.cwd.clone())) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, storage_error("ls", &shown, error)),
                };
                let max = self.services.config.max_list_entries;
                let work = async move {
                    let listed = target.clone();
                    let response = match disk.run("ls", move || home.list(&listed, max)).await {
                        Ok(Ok(listing)) => Response::Listing {
                            path: target.to_string(),
                            entries: listing.entries,
                            truncated: listing.truncated,
                        },
                        Ok(Err(error)) => storage_error("ls", &shown, error),
                        Err(error) => internal(&error.to_string()),
                    };
                    (response, ())
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Mkdir { path } => {
                self.simple(ctx, "mkdir", path.clone(), resolve(&path), move |home, target| home.mkdir(&target))
            }
            Request::Rmdir { path } => {
                self.simple(ctx, "rmdir", path.clone(), resolve(&path), move |home, target| home.remove_dir(&target))
            }
            Request::Remove { path } => {
                let target = match resolve(&path) {
                    Ok(target) => target,
                    Err(error) => return self.reply(ctx, storage_error("rm", &path, error)),
                };
                let quota = self.services.quota.clone();
                let gate = self.services.gate.clone();
                let user = session.user.clone();
                let work = async move {
                    let removed = disk.run("rm", move || {
                        let change = gate.change();
                        let freed = home.remove_file(&target)?;
                        quota.do_send(Adjust { user, disk_change: -(freed as i64), number: change.number() });
                        Ok::<_, StorageError>(())
                    });
                    match removed.await {
                        Ok(Ok(())) => (Response::Done, ()),
                        Ok(Err(error)) => (storage_error("rm", &path, error), ()),
                        Err(error) => (internal(&error.to_string()), ()),
                    }
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Rename { from, to } => {
                let (source, target) = match (resolve(&from), resolve(&to)) {
                    (Ok(source), Ok(target)) => (source, target),
                    (Err(error), _) => return self.reply(ctx, storage_error("mv", &from, error)),
                    (_, Err(error)) => return self.reply(ctx, storage_error("mv", &to, error)),
                };
                self.simple(ctx, "mv", format!("{from} {to}"), Ok(source), move |home, source| {
                    home.rename(&source, &target)
                })
            }
            Request::Quota => {
                let quota = self.services.quota.clone();
                let user = session.user.clone();
                let work = async move {
                    match quota.send(GetUsage { user }).await {
                        Ok(Ok(usage)) => (Response::QuotaInfo { used: usage.used, limit: usage.limit }, ()),
                        Ok(Err(panicked)) => (internal(&panicked.to_string()), ()),
                        Err(_) => (internal("quota service unavailable"), ()),
                    }
                };
                self.serve(ctx, work, |_, _, _| {});
            }
            Request::Put { path, size } => match resolve(&path) {
                Ok(target) => self.begin_upload(ctx, path, target, size),
                Err(error) => self.reply(ctx, storage_error("put", &path, error)),
            },
            Request::PutRestart => self.restart_upload(ctx),
            Request::Data { bytes } => self.write_upload(ctx, bytes.into_vec()),
            Request::PutEnd { md5 } => self.finish_upload(ctx, md5.into_vec()),
            Request::Get { path, offset, prefix_md5 } => match resolve(&path) {
                Ok(target) => self.download(ctx, path, target, offset, prefix_md5.into_vec()),
                Err(error) => self.reply(ctx, storage_error("get", &path, error)),
            },
            Request::AuthStart { .. } | Request::AuthProof { .. } | Request::Quit => {}
        }
    }

    /// A command that runs one storage call and answers `done`.
    fn simple(
        &mut self,
        ctx: &mut Context<Self>,
        op: &'static str,
        shown: String,
        target: Result<VirtualPath, StorageError>,
        call: impl FnOnce(&Home, VirtualPath) -> Result<(), StorageError> + Send + 'static,
    ) {
        let Phase::Ready(session) = &self.phase else { return };
        let target = match target {
            Ok(target) => target,
            Err(error) => return self.reply(ctx, storage_error(op, &shown, error)),
        };
        let home = session.home.clone();
        let disk = self.services.disk.clone();
        let work = async move {
            let response = match disk.run(op, move || call(&home, target)).await {
                Ok(Ok(())) => Response::Done,
                Ok(Err(error)) => storage_error(op, &shown, error),
                Err(error) => internal(&error.to_string()),
            };
            (response, ())
        };
        self.serve(ctx, work, |_, _, _| {});
    }

    fn begin_upload(&mut self, ctx: &mut Context<Self>, shown: String, target: VirtualPath, size: u64) {
        let Phase::Ready(session) = &self.phase else { return };
        let quota = self.services.quota.clone();
        let disk = self.services.disk.clone();
        let gate = self.services.gate.clone();
        let home = session.home.clone();
        let user = session.user.clone();
        let absolute = session.home_path.join(target.to_relative());
        let services = self.services.clone();
        let work = async move {
            let lease = match quota.send(OpenUpload { user: user.clone(), target: absolute }).await {
                Ok(Ok(lease)) => lease,
                Ok(Err(error)) => return (quota_error(&shown, error), None),
                Err(_) => return (internal("quota service unavailable"), None),
            };
            if let Err(refused) = services.may_hash(&user) {
                // In debt: only an upload that would hash an existing partial must wait.
                let (home, partial) = (home.clone(), target.partial());
                let existing =
                    disk.run("stat partial", move || partial.map_or(0, |p| home.file_len(&p))).await.unwrap_or(0);
                if existing > 0 {
                    return (Response::error(refused), None);
                }
            }
            let opened = {
                let (home, gate) = (home.clone(), gate.clone());
                disk.run("open upload", move || {
                    let _change = gate.change();
                    let (partial, hasher) = PartialUpload::open(&home, &target, size)?;
                    let resumed_from = partial.offset();
                    let started = Instant::now();
                    let upload = ActiveUpload { resumed_from, partial, hasher, held: None, lease, started };
                    upload.record_growth();
                    Ok::<_, StorageError>(upload)
                })
                .await
            };
            let upload = match opened {
                Ok(Ok(upload)) => {
                    services.charge_hashing(&user, upload.resumed_from);
                    upload
                }
                Ok(Err(error)) => return (storage_error("put", &shown, error), None),
                Err(error) => return (internal(&error.to_string()), None),
            };
            match reserve_remaining(&quota, &upload).await {
                Ok(()) => {
                    let ready = Response::PutReady { offset: upload.partial.offset(), prefix_md5: upload.prefix_md5() };
                    (ready, Some(upload))
                }
                Err(error) => {
                    let _ = disk
                        .run("abandon upload", move || {
                            let _change = gate.change();
                            upload.abandon(&home)
                        })
                        .await;
                    (error, None)
                }
            }
        };
        self.serve(ctx, work, |act, upload, _| {
            if let Phase::Ready(session) = &mut act.phase {
                session.upload = upload;
            }
        });
    }

    fn restart_upload(&mut self, ctx: &mut Context<Self>) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let Some(mut upload) = session.upload.take() else { return };
        let quota = self.services.quota.clone();
        let disk = self.services.disk.clone();
        let gate = self.services.gate.clone();
        let work = async move {
            let restarted = disk
                .run("restart upload", move || {
                    let _change = gate.change();
                    let result = upload.partial.restart();
                    upload.hasher = Md5::new();
                    upload.held = None;
                    upload.record_growth();
                    result.map(|()| upload)
                })
                .await;
            let upload = match restarted {
                Ok(Ok(upload)) => upload,
                Ok(Err(error)) => return (storage_error("put", "(restart)", error), None),
                Err(error) => return (internal(&error.to_string()), None),
            };
            match reserve_remaining(&quota, &upload).await {
                Ok(()) => (Response::PutReady { offset: 0, prefix_md5: upload.prefix_md5() }, Some(upload)),
                Err(error) => (error, None),
            }
        };
        self.serve(ctx, work, |act, upload, _| {
            if let Phase::Ready(session) = &mut act.phase {
                session.upload = upload;
            }
        });
    }

    /// Writes one chunk; a large upload's chunk is hashed by a second worker meanwhile.
    /// Data frames are not answered unless the write fails; the upload ends.
    fn write_upload(&mut self, ctx: &mut Context<Self>, bytes: Vec<u8>) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let Some(mut upload) = session.upload.take() else { return };
        let completes = upload.partial.offset().checked_add(bytes.len() as u64) == Some(upload.partial.size());
        if upload.held.is_none() && completes {
            // The last chunk: the publishing job writes it (see `ActiveUpload::held`).
            upload.held = Some(bytes);
            session.upload = Some(upload);
            return;
        }
        let disk = self.services.disk.clone();
        let gate = self.services.gate.clone();
        let out = self.out.clone();
        let peer = self.peer;
        let work = async move {
            let bytes = Arc::new(bytes);
            let hasher = std::mem::take(&mut upload.hasher);
            let (inline, beside) = if upload.partial.size() >= PARALLEL_HASH_MIN_BYTES {
                (None, Some(hasher))
            } else {
                (Some(hasher), None)
            };
            let hashing = async {
                match beside {
                    Some(hasher) => hash_chunk(&disk, hasher, bytes.clone()).await.map(Some),
                    None => Ok(None),
                }
            };
            let to_write = bytes.clone();
            let writing = disk.run("write upload", move || {
                let _change = gate.change();
                let result = upload.write_held().and_then(|()| upload.partial.write(&to_write));
                upload.record_growth();
                let inline = inline.map(|mut hasher| {
                    hasher.update(&to_write[..]);
                    hasher
                });
                (result, upload, inline)
            });
            let (written, hashed) = futures::join!(writing, hashing);
            match (written, hashed) {
                (Ok((Ok(()), mut upload, inline)), Ok(beside)) => {
                    // Exactly one of the two hashed the chunk.
                    upload.hasher = inline.or(beside).unwrap_or_default();
                    Some(upload)
                }
                (Ok((Err(error), upload, _)), _) => {
                    let target = upload.partial.target().to_string();
                    tracing::warn!(target: "access", user = %upload.lease.user(), %peer, op = "put", path = %target,
                        bytes = upload.partial.offset(), result = %error);
                    let _ = out.send(storage_error("put", &target, error)).await;
                    None
                }
                // The partial stays; a resume hashes it again from the disk.
                (Err(error), _) | (_, Err(error)) => {
                    let _ = out.send(internal(&error.to_string())).await;
                    None
                }
            }
        };
        let out = self.out.clone();
        let work = async move {
            match catch_panic_async("session", work).await {
                Ok(upload) => upload,
                Err(panicked) => {
                    let _ = out.send(internal(&panicked.message)).await;
                    None
                }
            }
        };
        ctx.wait(work.into_actor(self).map(|upload, act, ctx| {
            act.last_activity = Instant::now();
            if let Phase::Ready(session) = &mut act.phase {
                session.discarding = upload.is_none();
                session.upload = upload;
            }
            act.close_if_drained(ctx);
        }));
    }

    fn finish_upload(&mut self, ctx: &mut Context<Self>, sender_md5: Vec<u8>) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let Some(upload) = session.upload.take() else { return };
        let disk = self.services.disk.clone();
        let home = session.home.clone();
        let peer = self.peer;
        let gate = self.services.gate.clone();
        let digests = self.services.digests.clone();
        let (started, resumed_from) = (upload.started, upload.resumed_from);
        let user = upload.lease.user().to_string();
        let target = upload.partial.target().to_string();
        let size = upload.partial.size();
        let work = async move {
            let start_len = upload.partial.offset() as i64 - upload.partial.growth();
            // The lease is settled inside the job, with what publishing really changed on disk,
            // before the client can hear back and start another upload to the same path.
            let published = disk
                .run("publish upload", move || {
                    let _change = gate.change();
                    let mut upload = upload;
                    upload.write_held()?;
                    let ActiveUpload { partial, hasher, lease, .. } = upload;
                    let result = partial.publish(&home, hasher.finalize().into(), &sender_md5, &digests);
                    lease.record_disk_change(match &result {
                        Ok(done) => size as i64 - start_len - done.replaced_len as i64,
                        Err(failed) => failed.kept_growth.unwrap_or(-start_len),
                    });
                    drop(lease);
                    result.map_err(|failed| failed.error)
                })
                .await;
            let (response, outcome) = match published {
                Ok(Ok(done)) => {
                    let md5 = hex::encode(done.md5);
                    (Response::PutDone { size, md5: ByteBuf::from(done.md5.to_vec()) }, format!("ok md5={md5}"))
                }
                Ok(Err(error)) => {
                    let text = error.to_string();
                    (storage_error("put", &target, error), text)
                }
                Err(error) => (internal(&error.to_string()), error.to_string()),
            };
            tracing::info!(target: "access", %user, %peer, op = "put", path = %target, bytes = size,
                resumed_from, seconds = started.elapsed().as_secs_f64(), result = %outcome);
            (response, ())
        };
        self.serve(ctx, work, |_, _, _| {});
    }

    fn download(
        &mut self,
        ctx: &mut Context<Self>,
        shown: String,
        target: VirtualPath,
        offset: u64,
        prefix_md5: Vec<u8>,
    ) {
        let Phase::Ready(session) = &self.phase else { return };
        let disk = self.services.disk.clone();
        let home = session.home.clone();
        let user = session.user.clone();
        let peer = self.peer;
        let chunk = self.services.config.chunk_bytes;
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        let out = self.out.clone();
        if offset > 0
            && let Err(refused) = self.services.may_hash(&user)
        {
            return self.reply(ctx, Response::error(refused));
        }
        let services = self.services.clone();
        let work = async move {
            let started = Instant::now();
            let digests = services.digests.clone();
            let opened =
                disk.run("open download", move || Download::open(&home, &target, offset, &prefix_md5, &digests)).await;
            let (mut download, mut hasher) = match opened {
                Ok(Ok(opened)) => opened,
                Ok(Err(error)) => return (storage_error("get", &shown, error), DownloadEnd::Finished),
                Err(error) => return (internal(&error.to_string()), DownloadEnd::Finished),
            };
            services.charge_hashing(&user, download.prefix_hashed());
            let ready =
                Response::GetReady { size: download.size(), offset: download.start(), modified: download.modified() };
            if out.send(ready).await.is_err() {
                return (Response::Done, DownloadEnd::Lost);
            }
            let (start, size) = (download.start(), download.size());
            // A file with a stored digest is not hashed again; otherwise each chunk is hashed
            // on one worker while the next is read on another.
            let known = download.known_md5();
            let mut in_hand: Option<Vec<u8>> = None;
            loop {
                let reading = read_chunk(&disk, download, chunk);
                let hashing = async {
                    match in_hand.take() {
                        Some(bytes) if known.is_none() => {
                            let bytes = Arc::new(bytes);
                            hasher = hash_chunk(&disk, std::mem::take(&mut hasher), bytes.clone()).await?;
                            Ok::<_, JobFailed>(Some(Arc::try_unwrap(bytes).unwrap_or_else(|shared| shared.to_vec())))
                        }
                        other => Ok(other),
                    }
                };
                let (read, hashed) = futures::join!(reading, hashing);
                let (next, returned) = match read {
                    Ok(read) => read,
                    Err(ChunkFailed::Storage(error)) => {
                        return (storage_error("get", &shown, error), DownloadEnd::Finished);
                    }
                    Err(ChunkFailed::Job(error)) => return (internal(&error.to_string()), DownloadEnd::Finished),
                };
                download = returned;
                let hashed = match hashed {
                    Ok(hashed) => hashed,
                    Err(error) => return (internal(&error.to_string()), DownloadEnd::Finished),
                };
                if let Some(bytes) = hashed {
                    match tokio::time::timeout(stall, out.send(Response::Data { bytes: ByteBuf::from(bytes) })).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => {
                            tracing::info!(target: "access", %user, %peer, op = "get", path = %shown, result = "connection lost");
                            return (Response::Done, DownloadEnd::Lost);
                        }
                        Err(_) => {
                            // The client stopped reading: its queue is full, so no error can reach it.
                            tracing::info!(target: "access", %user, %peer, op = "get", path = %shown, result = "stalled");
                            return (Response::Done, DownloadEnd::Stalled);
                        }
                    }
                }
                match next {
                    Some(bytes) => in_hand = Some(bytes),
                    None => break,
                }
            }
            let md5: crate::storage::Md5Digest = match known {
                Some(md5) => md5,
                None => {
                    let md5 = hasher.finalize().into();
                    let digests = services.digests.clone();
                    let _ = disk.run("remember digest", move || download.remember(md5, &digests)).await;
                    md5
                }
            };
            tracing::info!(target: "access", %user, %peer, op = "get", path = %shown, bytes = size - start,
                resumed_from = start, md5 = %hex::encode(md5), seconds = started.elapsed().as_secs_f64(), result = "ok");
            (Response::GetEnd { md5: ByteBuf::from(md5.to_vec()) }, DownloadEnd::Finished)
        };
        self.serve(ctx, work, |_, end, ctx| {
            if end != DownloadEnd::Finished {
                ctx.stop();
            }
        });
    }
}

/// Why a chunk could not be read.
enum ChunkFailed {
    Storage(StorageError),
    Job(JobFailed),
}

/// Reads the next chunk of a download on a disk worker; `None` once the file is done.
async fn read_chunk(
    disk: &DiskPool,
    mut download: Download,
    max: usize,
) -> Result<(Option<Vec<u8>>, Download), ChunkFailed> {
    if download.is_done() {
        return Ok((None, download));
    }
    match disk.run("read download", move || (download.read_chunk(max), download)).await {
        Ok((Ok(bytes), download)) => Ok((Some(bytes), download)),
        Ok((Err(error), _)) => Err(ChunkFailed::Storage(error)),
        Err(failed) => Err(ChunkFailed::Job(failed)),
    }
}

/// Feeds a chunk to a running MD5 on a disk worker (hashing is the slowest step of a
/// transfer, so it runs beside the chunk's write or the next chunk's read).
async fn hash_chunk(disk: &DiskPool, mut hasher: Md5, bytes: Arc<Vec<u8>>) -> Result<Md5, JobFailed> {
    disk.run("hash chunk", move || {
        hasher.update(&bytes[..]);
        hasher
    })
    .await
}

/// Sets an upload's reservation to what it still needs; the error is the response to send.
async fn reserve_remaining(quota: &Addr<QuotaActor>, upload: &ActiveUpload) -> Result<(), Response> {
    let need = upload_need(upload.partial.size(), upload.partial.offset(), upload.partial.replaced_len());
    match quota.send(Reserve { id: upload.lease.id(), bytes: need }).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(quota_error(&upload.partial.target().to_string(), error)),
        Err(_) => Err(internal("quota service unavailable")),
    }
}

fn quota_error(path: &str, error: QuotaError) -> Response {
    let code = match error {
        QuotaError::InUse => ErrorCode::InUse,
        QuotaError::Exceeded(_) => ErrorCode::QuotaExceeded,
        QuotaError::Internal(_) => ErrorCode::Internal,
    };
    Response::error(WireError::new(code, format!("put {path}: {error}")))
}

/// How a download ended, for the session to decide whether it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownloadEnd {
    Finished,
    Lost,
    Stalled,
}

fn unexpected(why: &str) -> Response {
    Response::error(WireError::new(ErrorCode::UnexpectedMessage, why))
}

fn internal(why: &str) -> Response {
    Response::error(WireError::new(ErrorCode::Internal, format!("internal error: {why}")))
}

fn storage_error(op: &str, path: &str, error: StorageError) -> Response {
    if let StorageError::Io(io) = &error {
        tracing::error!(op, path, error = %io, "storage failure");
    }
    Response::error(WireError::new(error.code(), format!("{op} {path}: {error}")))
}

/// Writes the session's frames. A client that stops reading for `stall` (the socket stays
/// full) is given up on: the task ends and drops the socket, which also unblocks the session.
async fn write_frames(
    mut sink: FramedWrite<OwnedWriteHalf, FrameCodec<Request, Response>>,
    mut queue: mpsc::Receiver<Response>,
    stall: Duration,
) {
    while let Some(response) = queue.recv().await {
        if !matches!(tokio::time::timeout(stall, sink.send(response)).await, Ok(Ok(()))) {
            return;
        }
    }
    let _ = tokio::time::timeout(stall, sink.close()).await;
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let config = self.services.config.clone();
        let welcome = Response::Welcome {
            server: format!("ftp-actor {}", env!("CARGO_PKG_VERSION")),
            version: PROTOCOL_VERSION,
            max_frame: config.max_frame_bytes as u32,
            chunk_size: config.chunk_bytes as u32,
        };
        self.reply(ctx, welcome);
        ctx.run_later(Duration::from_secs(config.login_timeout_secs), |act, ctx| {
            if !matches!(act.phase, Phase::Ready(_)) {
                act.close_with(ctx, WireError::from(ErrorCode::LoginTimeout));
            }
        });
        let idle = Duration::from_secs(config.idle_timeout_secs);
        let stall = Duration::from_secs(config.transfer_stall_secs);
        // Not run while a request is being served (ctx.wait); a stalled download is caught by
        // the send timeout in `download` instead.
        ctx.run_interval(Duration::from_secs(1), move |act, ctx| {
            let quiet = act.last_activity.elapsed();
            if act.upload_in_progress() && quiet >= stall {
                let message = format!("no upload data for {} seconds; the partial is kept for resume", stall.as_secs());
                act.close_with(ctx, WireError::new(ErrorCode::TransferStalled, message));
            } else if quiet >= idle {
                act.close_with(ctx, WireError::from(ErrorCode::IdleTimeout));
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        tracing::debug!(session = self.id, peer = %self.peer, user = self.user(), "session ended");
    }
}

/// The server is shutting down: finish the transfer in progress, then close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.draining = true;
        self.close_if_drained(ctx);
    }
}

impl StreamHandler<Incoming> for SessionActor {
    fn handle(&mut self, item: Incoming, ctx: &mut Context<Self>) {
        self.last_activity = Instant::now();
        match item {
            Ok(Ok(request)) => {
                if catch_panic("session", || self.handle_request(request, ctx)).is_err() {
                    self.reply(ctx, internal("the request could not be handled"));
                }
            }
            Ok(Err(malformed)) => {
                self.reply(ctx, Response::error(WireError::new(ErrorCode::MalformedFrame, malformed.to_string())))
            }
            Err(FrameError::TooLarge { length, limit }) => self.close_with(
                ctx,
                WireError::new(
                    ErrorCode::FrameTooLarge,
                    format!("frame of {length} bytes exceeds the limit of {limit}"),
                ),
            ),
            Err(FrameError::Io(_)) => ctx.stop(),
        }
    }
}
