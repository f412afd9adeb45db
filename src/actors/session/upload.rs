//! Uploads: open (or resume) the partial, write and hash the chunks, publish on `put_end`.

use super::upload_stream::UploadStream;
use super::*;
use crate::storage::{DigestIndex, Md5Digest, ResumeStates};

/// An upload between its `put` and its `put_end`.
pub(super) enum Upload {
    /// The session holds the upload: no data yet, or only its last chunk (`held`).
    Open(Box<ActiveUpload>),
    /// A disk job holds the upload and writes the chunks the session queues for it (see
    /// `upload_stream`): every upload that is more than one chunk.
    Streaming(UploadStream),
}

impl Upload {
    /// Ends the upload unpublished, as a lost connection does: the partial keeps what was
    /// written, and the MD5 of those bytes is kept in `states` so that a resume of the partial
    /// need not hash it again. A stream is wound down first, off the actor (its jobs end once
    /// their queue closes).
    pub(super) fn set_aside(self, states: Arc<ResumeStates>) {
        match self {
            Upload::Open(upload) => upload.remember_state(&states),
            Upload::Streaming(stream) => {
                actix_rt::spawn(async move {
                    if let Ok(upload) = stream.finish().await {
                        upload.remember_state(&states);
                    }
                });
            }
        }
    }

    /// The upload itself, once a stream has written every chunk it was sent; or the error
    /// that ended the stream.
    async fn into_active(self) -> Result<ActiveUpload, Response> {
        match self {
            Upload::Open(upload) => Ok(*upload),
            Upload::Streaming(stream) => stream.finish().await,
        }
    }
}

/// An upload in progress: the partial file and its lease travel together, so whoever drops
/// them (the session, a disk job, a dead connection) settles the quota correctly. The MD5 of
/// the bytes written so far travels beside them.
pub(super) struct ActiveUpload {
    partial: PartialUpload,
    /// While the upload streams, its stream's hashing job has the hasher, and this is a fresh
    /// one in its place (see `UploadStream`).
    pub(super) hasher: Md5,
    /// The upload's last chunk, held until `put_end` so that the publishing job writes it:
    /// one disk job fewer per upload, which is most of the cost of a small file. At most one
    /// frame.
    held: Option<Bytes>,
    lease: UploadLease,
    started: Instant,
    resumed_from: u64,
}

impl ActiveUpload {
    /// Writes `bytes` after the partial's data, without hashing them. Call under the usage
    /// gate, in a disk job: the lease records the growth before the gate opens.
    fn append(&mut self, bytes: &[u8]) -> Result<(), StorageError> {
        let result = self.partial.write(bytes);
        self.record_growth();
        result
    }

    /// Writes and hashes the held chunk, if any. Call under the usage gate, in a disk job.
    fn write_held(&mut self) -> Result<(), StorageError> {
        if let Some(bytes) = self.held.take() {
            self.append(&bytes)?;
            self.hasher.update(&bytes);
        }
        Ok(())
    }

    /// Writes one chunk of a stream, which hashes it on another thread. Call in a disk job; the
    /// usage gate is held while the disk changes and the lease records it.
    pub(super) fn write_streamed(&mut self, gate: &UsageGate, chunk: &[u8]) -> Result<(), StorageError> {
        let _change = gate.change();
        self.append(chunk)
    }

    /// The chunk held for publishing, if any: a stream that starts after it writes it first.
    pub(super) fn take_held(&mut self) -> Option<Bytes> {
        self.held.take()
    }

    /// Logs a write that failed mid-upload and makes its answer. The partial stays for a
    /// resume (its hash is recomputed from the disk then).
    pub(super) fn failed(&self, peer: SocketAddr, error: StorageError) -> Response {
        let target = self.partial.target().to_string();
        tracing::warn!(target: "access", user = %self.lease.user(), %peer, op = "put", path = %target,
            bytes = self.partial.offset(), result = %error);
        storage_error("put", &target, error)
    }

    /// Keeps the MD5 of the bytes written for a resume of the partial (see [`ResumeStates`]).
    /// While the upload streams, its hasher is elsewhere and this one covers nothing written,
    /// so nothing is kept.
    fn remember_state(&self, states: &ResumeStates) {
        self.partial.remember_state(&self.hasher, states);
    }

    fn prefix_md5(&self) -> ByteBuf {
        ByteBuf::from(self.hasher.clone().finalize().to_vec())
    }

    /// Call under the usage gate, in the job that changed the partial.
    fn record_growth(&self) {
        self.lease.record_disk_change(self.partial.disk_change());
    }

    /// Ends an upload that receives no more data: an empty partial is removed, one with data
    /// kept with its MD5 state (for a resume). Call under the usage gate, in a disk job.
    fn abandon(self, home: &Home, states: &ResumeStates) {
        self.remember_state(states);
        let ActiveUpload { mut partial, lease, .. } = self;
        partial.abandon(home);
        lease.record_disk_change(partial.disk_change());
    }
}

impl SessionActor {
    pub(super) fn begin_upload(&mut self, ctx: &mut Context<Self>, shown: String, target: VirtualPath, size: u64) {
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
                let (home, target, states) = (home.clone(), target.clone(), services.resume_states.clone());
                let would_hash = disk
                    .run("check partial", move || PartialUpload::would_hash(&home, &target, &states))
                    .await
                    .unwrap_or(false);
                if would_hash {
                    return (Response::error(refused), None);
                }
            }
            let opened = {
                let (home, gate, digests, states) =
                    (home.clone(), gate.clone(), services.digests.clone(), services.resume_states.clone());
                disk.run("open upload", move || {
                    let _change = gate.change();
                    let (partial, hasher) = PartialUpload::open(&home, &target, size, &states, lease.may_create())?;
                    let resumed_from = partial.offset();
                    let started = Instant::now();
                    let upload = ActiveUpload { resumed_from, partial, hasher, held: None, lease, started };
                    upload.record_growth();
                    // Only where a regular file of this very size is published (opening the
                    // partial measured it): no lookup for new files, the common case.
                    let same_size = size > 0 && upload.partial.replaced_len() == size;
                    let existing = if resumed_from == 0 && same_size {
                        known_md5_of_size(&home, &target, size, &digests)
                    } else {
                        None
                    };
                    Ok::<_, StorageError>((upload, existing))
                })
                .await
            };
            let (upload, existing_md5) = match opened {
                Ok(Ok((upload, existing))) => {
                    services.charge_hashing(&user, upload.partial.prefix_hashed());
                    (upload, existing.map(|md5| ByteBuf::from(md5.to_vec())))
                }
                Ok(Err(error)) => return (storage_error("put", &shown, error), None),
                Err(error) => return (internal(&error.to_string()), None),
            };
            match reserve_remaining(&quota, &upload).await {
                Ok(()) => {
                    let ready = Response::PutReady {
                        offset: upload.partial.offset(),
                        prefix_md5: upload.prefix_md5(),
                        existing_md5,
                    };
                    (ready, Some(upload))
                }
                Err(error) => {
                    let states = services.resume_states.clone();
                    let _ = disk
                        .run("abandon upload", move || {
                            let _change = gate.change();
                            upload.abandon(&home, &states)
                        })
                        .await;
                    (error, None)
                }
            }
        };
        self.serve(ctx, work, |act, upload, _| {
            if let Phase::Ready(session) = &mut act.phase {
                session.upload = upload.map(|upload| Upload::Open(Box::new(upload)));
            }
        });
    }

    pub(super) fn restart_upload(&mut self, ctx: &mut Context<Self>) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let Some(upload) = session.upload.take() else { return };
        let quota = self.services.quota.clone();
        let disk = self.services.disk.clone();
        let gate = self.services.gate.clone();
        let work = async move {
            let mut upload = match upload.into_active().await {
                Ok(upload) => upload,
                Err(error) => return (error, None),
            };
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
                Ok(()) => (
                    Response::PutReady { offset: 0, prefix_md5: upload.prefix_md5(), existing_md5: None },
                    Some(upload),
                ),
                Err(error) => (error, None),
            }
        };
        self.serve(ctx, work, |act, upload, _| {
            if let Phase::Ready(session) = &mut act.phase {
                session.upload = upload.map(|upload| Upload::Open(Box::new(upload)));
            }
        });
    }

    /// `put_cancel`: ends the upload without publishing it, as a lost connection would (the
    /// partial stays for a resume), except that an empty partial is removed and the client
    /// hears `done`. Mostly the end of an upload the client found it need not send
    /// (`put_ready.existing_md5`).
    pub(super) fn cancel_upload(&mut self, ctx: &mut Context<Self>) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let Some(upload) = session.upload.take() else { return };
        let (disk, gate, home, peer) =
            (self.services.disk.clone(), self.services.gate.clone(), session.home.clone(), self.peer);
        let states = self.services.resume_states.clone();
        let work = async move {
            let upload = match upload.into_active().await {
                Ok(upload) => upload,
                Err(error) => return (error, ()),
            };
            let (user, target, kept) =
                (upload.lease.user().to_string(), upload.partial.target().to_string(), upload.partial.offset());
            let cancelled = disk
                .run("cancel upload", move || {
                    let _change = gate.change();
                    upload.abandon(&home, &states)
                })
                .await;
            let result =
                if kept == 0 { "cancelled".to_string() } else { format!("cancelled, partial of {kept} bytes kept") };
            tracing::info!(target: "access", %user, %peer, op = "put", path = %target, bytes = 0, %result);
            match cancelled {
                Ok(()) => (Response::Done, ()),
                Err(error) => (internal(&error.to_string()), ()),
            }
        };
        self.serve(ctx, work, |_, _, _| {});
    }

    /// Takes one chunk. A chunk that completes the upload is held for the publishing job; any
    /// other goes to the upload's stream, started by the first. Data frames are not answered
    /// unless a write fails; the upload then ends, and its remaining frames are discarded.
    pub(super) fn write_upload(&mut self, ctx: &mut Context<Self>, bytes: Bytes) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let stream = match session.upload.take() {
            None => return,
            Some(Upload::Streaming(stream)) => stream,
            Some(Upload::Open(mut upload)) => {
                let completes = upload.partial.offset().checked_add(bytes.len() as u64) == Some(upload.partial.size());
                if upload.held.is_none() && completes {
                    // One disk job fewer per small file (see `ActiveUpload::held`).
                    upload.held = Some(bytes);
                    session.upload = Some(Upload::Open(upload));
                    return;
                }
                UploadStream::start(&self.services, self.peer, *upload)
            }
        };
        let (stream, bytes) = match stream.try_send(bytes) {
            Ok(stream) => {
                session.upload = Some(Upload::Streaming(stream));
                return;
            }
            Err(wait) => wait,
        };
        // The queue is full (or the stream ended): wait, reading no further frame meanwhile.
        let out = self.out.clone();
        let work = async move {
            let failure = match catch_panic_async("session", stream.send(bytes)).await {
                Ok(Ok(stream)) => return Some(Upload::Streaming(stream)),
                Ok(Err(failure)) => failure,
                Err(panicked) => internal(&panicked.message),
            };
            let _ = out.send(failure).await;
            None
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

    pub(super) fn finish_upload(&mut self, ctx: &mut Context<Self>, sender_md5: Vec<u8>) {
        let Phase::Ready(session) = &mut self.phase else { return };
        let Some(upload) = session.upload.take() else { return };
        let disk = self.services.disk.clone();
        let home = session.home.clone();
        let peer = self.peer;
        let gate = self.services.gate.clone();
        let digests = self.services.digests.clone();
        let work = async move {
            let upload = match upload.into_active().await {
                Ok(upload) => upload,
                Err(error) => return (error, ()),
            };
            let (started, resumed_from, prefix_hashed) =
                (upload.started, upload.resumed_from, upload.partial.prefix_hashed());
            let user = upload.lease.user().to_string();
            let target = upload.partial.target().to_string();
            let size = upload.partial.size();
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
                        Ok(done) => done.change,
                        Err(failed) => failed.change,
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
                resumed_from, prefix_hashed, seconds = started.elapsed().as_secs_f64(), result = %outcome);
            (response, ())
        };
        self.serve(ctx, work, |_, _, _| {});
    }
}

/// The MD5 of the file published at `target`, if it has exactly `size` bytes and the digest
/// index knows it for the file as it is now: what `put_ready.existing_md5` offers. Never reads
/// the file (a `put` must not start with a hash of a file it may replace); anything else (no
/// file, another size, an unknown digest, an error) is `None`, and the upload goes on as usual.
fn known_md5_of_size(home: &Home, target: &VirtualPath, size: u64, digests: &DigestIndex) -> Option<Md5Digest> {
    match crate::storage::file_md5(home, target, digests, || false) {
        Ok(Some((md5, len, _))) if len == size => Some(md5),
        _ => None,
    }
}

/// Sets an upload's reservation to what it still needs; the error is the response to send.
async fn reserve_remaining(quota: &Addr<QuotaActor>, upload: &ActiveUpload) -> Result<(), Response> {
    let need = upload_need(upload.partial.size(), upload.partial.offset());
    match quota.send(Reserve { id: upload.lease.id(), bytes: need }).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(quota_error(&upload.partial.target().to_string(), error)),
        Err(_) => Err(internal("quota service unavailable")),
    }
}

fn quota_error(path: &str, error: QuotaError) -> Response {
    Response::error(quota_wire_error(path, error))
}

/// A quota refusal as both front ends report it.
pub(crate) fn quota_wire_error(path: &str, error: QuotaError) -> WireError {
    let code = match error {
        QuotaError::InUse => ErrorCode::InUse,
        QuotaError::Exceeded(_) => ErrorCode::QuotaExceeded,
        QuotaError::TooManyFiles(_) => ErrorCode::TooManyFiles,
        QuotaError::Internal(_) => ErrorCode::Internal,
    };
    WireError::new(code, format!("put {path}: {error}"))
}
