//! Uploads: open (or resume) the partial, write and hash the chunks, publish on `put_end`.

use super::*;

/// From this size on, an upload's chunks are hashed on a second disk worker beside their
/// write, which takes MD5 off the I/O path of one large transfer. Smaller uploads hash inside
/// the write job: the hand-off would cost more than it saves, and many small transfers at once
/// keep every worker busy anyway. (A download that has no stored digest always hashes beside
/// the next read; see `download`.)
const PARALLEL_HASH_MIN_BYTES: u64 = 1 << 20;

/// An upload in progress: the partial file and its lease travel together, so whoever drops
/// them (the session, a disk job, a dead connection) settles the quota correctly. The MD5 of
/// the bytes written so far travels beside them.
pub(super) struct ActiveUpload {
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

    pub(super) fn restart_upload(&mut self, ctx: &mut Context<Self>) {
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
    pub(super) fn write_upload(&mut self, ctx: &mut Context<Self>, bytes: Vec<u8>) {
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
            // Shared by the write and, for a large upload, the hashing beside it (no copy).
            let bytes = bytes::Bytes::from(bytes);
            let hasher = std::mem::take(&mut upload.hasher);
            let (inline, beside) = if upload.partial.size() >= PARALLEL_HASH_MIN_BYTES {
                (None, Some(hasher))
            } else {
                (Some(hasher), None)
            };
            let hashing = async {
                match beside {
                    Some(hasher) => hash_chunk(&disk, hasher, bytes.clone()).await.map(|(hasher, _)| Some(hasher)),
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

    pub(super) fn finish_upload(&mut self, ctx: &mut Context<Self>, sender_md5: Vec<u8>) {
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
            let start_len = upload.partial.start_len() as i64;
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
    Response::error(quota_wire_error(path, error))
}

/// A quota refusal as both front ends report it.
pub(crate) fn quota_wire_error(path: &str, error: QuotaError) -> WireError {
    let code = match error {
        QuotaError::InUse => ErrorCode::InUse,
        QuotaError::Exceeded(_) => ErrorCode::QuotaExceeded,
        QuotaError::Internal(_) => ErrorCode::Internal,
    };
    WireError::new(code, format!("put {path}: {error}"))
}
