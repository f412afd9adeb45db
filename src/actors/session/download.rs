//! Downloads: stream the file in chunks, with its stored digest or one computed on the way.

use super::*;

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
                            let (hashed, bytes) = hash_chunk(&disk, std::mem::take(&mut hasher), bytes).await?;
                            hasher = hashed;
                            Ok::<_, JobFailed>(Some(bytes))
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

/// How a download ended, for the session to decide whether it goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DownloadEnd {
    Finished,
    Lost,
    Stalled,
}
