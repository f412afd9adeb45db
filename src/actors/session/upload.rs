//! Uploads: the file service opens (or resumes) the partial and publishes it on `put_end`;
//! the session holds the chunks between, hashing them on the way.

use super::upload_stream::UploadStream;
use super::*;
use crate::metrics::{Operation, Outcome, Protocol};
use crate::service::upload::{self as service_upload, SizedUpload, Upload as FileUpload};

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
    /// written, and the MD5 of those bytes is kept so that a resume of the partial need not
    /// hash it again. A partial with nothing written is removed instead (it would only count
    /// against `max_files` until it expired), off the actor. A stream is wound down first, off
    /// the actor too (its jobs end once their queue closes).
    pub(super) fn set_aside(self) {
        match self {
            Upload::Open(upload) if upload.upload.offset() == 0 => {
                actix_rt::spawn(upload.upload.abandon(None));
            }
            Upload::Open(upload) => upload.remember_state(),
            Upload::Streaming(stream) => {
                actix_rt::spawn(async move {
                    if let Ok(upload) = stream.finish().await {
                        upload.remember_state();
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

/// An upload in progress, and the MD5 of the bytes written so far beside it.
pub(super) struct ActiveUpload {
    upload: FileUpload,
    /// While the upload streams, its stream's hashing job has the hasher, and this is a fresh
    /// one in its place (see `UploadStream`).
    pub(super) hasher: Md5,
    /// The upload's last chunk, held until `put_end` so that the publishing job writes it:
    /// one disk job fewer per upload, which is most of the cost of a small file. At most one
    /// frame.
    held: Option<Bytes>,
    started: Instant,
    resumed_from: u64,
}

impl ActiveUpload {
    /// Writes one chunk of a stream, which hashes it on another thread. Call in a disk job.
    pub(super) fn write_streamed(&mut self, chunk: &[u8]) -> Result<(), StorageError> {
        self.upload.append_guarded(chunk)
    }

    /// The MD5 of every byte written, if the upload keeps it itself: then its stream hashes
    /// nothing.
    pub(super) fn own_md5(&self) -> Option<Md5> {
        self.upload.own_md5()
    }

    /// The chunk held for publishing, if any: a stream that starts after it writes it first.
    pub(super) fn take_held(&mut self) -> Option<Bytes> {
        self.held.take()
    }

    /// Logs a write that failed mid-upload and makes its answer. The partial stays for a
    /// resume (its hash is recomputed from the disk then).
    pub(super) fn failed(&self, peer: SocketAddr, error: StorageError) -> Response {
        let (user, shown) = (self.upload.user(), self.upload.shown());
        tracing::warn!(target: "access", %user, %peer, op = "put", path = %shown,
            bytes = self.upload.offset(), result = %error);
        let received = self.upload.offset().saturating_sub(self.resumed_from);
        let metrics = &self.upload.services().metrics;
        metrics.transfer(Protocol::native, Operation::upload, received, self.started.elapsed(), Err(error.code()));
        Response::error(crate::service::error::storage("put", shown, error))
    }

    /// Keeps the MD5 of the bytes written for a resume of the partial. While the upload
    /// streams, its hasher is elsewhere and this one covers nothing written, so nothing is kept.
    fn remember_state(&self) {
        self.upload.remember_state(&self.hasher);
    }

    fn prefix_md5(&self) -> ByteBuf {
        ByteBuf::from(self.hasher.clone().finalize().to_vec())
    }

    fn ready(&self, existing_md5: Option<ByteBuf>) -> Response {
        Response::PutReady { offset: self.upload.offset(), prefix_md5: self.prefix_md5(), existing_md5 }
    }
}

impl SessionActor {
    pub(super) fn begin_upload(&mut self, ctx: &mut Context<Self>, shown: String, target: VirtualPath, size: u64) {
        let Phase::Ready(session) = &self.phase else { return };
        let opening = service_upload::open_sized(session.login.files.clone(), target, shown, size);
        let metrics = self.services.metrics.clone();
        let work = async move {
            match opening.await {
                Ok(SizedUpload { upload, hasher, existing_md5 }) => {
                    let resumed_from = upload.offset();
                    let upload = ActiveUpload { upload, hasher, held: None, started: Instant::now(), resumed_from };
                    let existing_md5 = existing_md5.map(|md5| ByteBuf::from(md5.to_vec()));
                    (upload.ready(existing_md5), Some(upload))
                }
                Err(error) => {
                    // Refused at its start (quota, path in use, ...): a transfer that moved nothing.
                    let refused = Outcome::Failed(error.code);
                    metrics.transfer(Protocol::native, Operation::upload, 0, Duration::ZERO, refused);
                    (Response::error(error), None)
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
        let work = async move {
            let ActiveUpload { upload, started, .. } = match upload.into_active().await {
                Ok(upload) => upload,
                Err(error) => return (error, None),
            };
            match upload.restart().await {
                Ok(upload) => {
                    let upload = ActiveUpload { upload, hasher: Md5::new(), held: None, started, resumed_from: 0 };
                    (upload.ready(None), Some(upload))
                }
                Err(error) => (Response::error(error), None),
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
        let peer = self.peer;
        let work = async move {
            let ActiveUpload { upload, hasher, .. } = match upload.into_active().await {
                Ok(upload) => upload,
                Err(error) => return (error, ()),
            };
            let (user, target, kept) = (upload.user().to_string(), upload.shown().to_string(), upload.offset());
            upload.abandon(Some(hasher)).await;
            let result =
                if kept == 0 { "cancelled".to_string() } else { format!("cancelled, partial of {kept} bytes kept") };
            tracing::info!(target: "access", %user, %peer, op = "put", path = %target, bytes = 0, %result);
            (Response::DONE, ())
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
                let completes = upload.upload.offset().checked_add(bytes.len() as u64) == Some(upload.upload.size());
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
        let peer = self.peer;
        let work = async move {
            let ActiveUpload { upload, hasher, held, started, resumed_from } = match upload.into_active().await {
                Ok(upload) => upload,
                Err(error) => return (error, ()),
            };
            let prefix_hashed = upload.prefix_hashed();
            let (user, target, size) = (upload.user().to_string(), upload.shown().to_string(), upload.size());
            let metrics = upload.services().metrics.clone();
            let (response, outcome, result) = match upload.publish_checked(held, hasher, sender_md5).await {
                Ok(md5) => (
                    Response::PutDone { size, md5: ByteBuf::from(md5.to_vec()) },
                    format!("ok md5={}", hex::encode(md5)),
                    Ok(()),
                ),
                Err(error) => {
                    let (text, code) = (error.message.clone(), error.code);
                    (Response::error(error), text, Err(code))
                }
            };
            let received = size.saturating_sub(resumed_from);
            metrics.transfer(Protocol::native, Operation::upload, received, started.elapsed(), result);
            tracing::info!(target: "access", %user, %peer, op = "put", path = %target, bytes = size,
                resumed_from, prefix_hashed, seconds = started.elapsed().as_secs_f64(), result = %outcome);
            (response, ())
        };
        self.serve(ctx, work, |_, _, _| {});
    }
}
