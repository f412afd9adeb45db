//! Downloads: stream the file in chunks from one disk job, with its stored digest or one
//! computed on the way.

use super::*;
use crate::metrics::{Operation, Outcome, Protocol};
use crate::service::error as service_error;
use crate::storage::{DownloadSession, FileStore};

impl SessionActor {
    pub(super) fn download(
        &mut self,
        ctx: &mut Context<Self>,
        shown: String,
        target: VirtualPath,
        offset: u64,
        prefix_md5: Vec<u8>,
    ) {
        let Phase::Ready(session) = &self.phase else { return };
        let files = session.login.files.clone();
        let user = files.user().to_string();
        let peer = self.peer;
        let chunk = self.services.config.chunk_bytes;
        let (out, cut) = (self.out.clone(), self.cut.clone());
        let opening = files.open_download(target, shown.clone(), offset, prefix_md5);
        let services = self.services.clone();
        let (disk, metrics) = (services.disk.clone(), services.metrics.clone());
        let work = async move {
            let started = Instant::now();
            let (download, hasher) = match opening.await {
                Ok(opened) => opened,
                Err(error) => return (Response::error(error), DownloadEnd::Finished),
            };
            let ready =
                Response::GetReady { size: download.size(), offset: download.start(), modified: download.modified() };
            if out.send(ready).await.is_err() {
                return (Response::DONE, DownloadEnd::Lost);
            }
            let (start, size) = (download.start(), download.size());
            // One disk job reads the file to its end (hashing it unless its digest is stored)
            // and queues each chunk for the connection's writer, waiting for room before it
            // reads the next: the same hand-off per chunk as an upload's stream, and a slow
            // reader holds at most the writer's queue. A client that stops reading is given up
            // on by the writer after `transfer_stall_secs`, which closes the queue. A session
            // cut (a revoked account) stops at the next chunk.
            let (queue, store, job_cut) = (out.clone(), files.store().clone(), cut.clone());
            let sent = disk
                .run("stream download", move || {
                    store.send_download(download, hasher, chunk, |bytes| {
                        job_cut.reason().is_none()
                            && queue.blocking_send(Response::Data { bytes: Bytes::from(bytes) }).is_ok()
                    })
                })
                .await;
            let count = |bytes: u64, outcome: Outcome| {
                metrics.transfer(Protocol::native, Operation::download, bytes, started.elapsed(), outcome)
            };
            if let Some(why) = cut.reason() {
                tracing::info!(target: "access", %user, %peer, op = "get", path = %shown, result = %why);
                count(0, Outcome::Failed(why.code));
                return (Response::error(why.clone()), DownloadEnd::Lost);
            }
            match sent {
                Ok(Ok(Some(md5))) => {
                    count(size - start, Outcome::Ok);
                    tracing::info!(target: "access", %user, %peer, op = "get", path = %shown, bytes = size - start,
                        resumed_from = start, md5 = %hex::encode(md5), seconds = started.elapsed().as_secs_f64(),
                        result = "ok");
                    (Response::GetEnd { md5: ByteBuf::from(md5.to_vec()) }, DownloadEnd::Finished)
                }
                Ok(Ok(None)) => {
                    tracing::info!(target: "access", %user, %peer, op = "get", path = %shown,
                        result = "connection lost or not read");
                    count(0, Outcome::Lost);
                    (Response::DONE, DownloadEnd::Lost)
                }
                Ok(Err(error)) => {
                    count(0, Outcome::Failed(error.code()));
                    (Response::error(service_error::storage("get", &shown, error)), DownloadEnd::Finished)
                }
                Err(error) => (internal(&error.to_string()), DownloadEnd::Finished),
            }
        };
        self.serve(ctx, work, |_, end, ctx| {
            if end != DownloadEnd::Finished {
                ctx.stop();
            }
        });
    }
}

/// How a download ended, for the session to decide whether it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownloadEnd {
    Finished,
    /// The connection failed, or its writer gave up on a client that stopped reading.
    Lost,
}
