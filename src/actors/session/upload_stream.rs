//! An upload's data streamed into one disk job.
//!
//! Why: written as one disk job per chunk, an upload woke a worker thread and then the
//! session's thread again for every 256 KiB; on the benchmark machine (two vCPUs of a KVM
//! guest) those hand-offs cost the server 0.2 to 0.5 s of CPU per GiB, in about 46,000 context
//! switches. Here one job holds the partial from the first chunk to `put_end` and takes the
//! chunks from a bounded queue, writing and hashing each in turn. While the client keeps
//! sending, the queue is never empty, so the job's thread does not sleep between chunks, and the
//! session hands each chunk over without waiting. A GiB upload went from 2.8-3.3 s to 2.5-2.9 s,
//! and from about 46,000 server context switches to about 19,000 (`docs/BENCHMARKS.md`, "Streamed
//! uploads").
//!
//! An upload of one chunk (most small files) has no stream: the session holds that chunk and
//! the publishing job writes it.
//!
//! Bounds: the queue holds [`STREAM_QUEUE`] chunks, so a session buffers at most that many
//! frames; when it is full the session waits (under `ctx.wait`) and stops reading its socket,
//! and TCP holds the client back. Each session streams at most one upload at a time and the
//! pool has one thread per admitted session, so a stream never waits for a job that waits for
//! it; a client that stops sending is closed by the session's stall timeout, which ends the
//! stream.
//!
//! Two threads, not one: the job writes each chunk and passes it on, through a second bounded
//! queue, to a job on the hashing pool (`Services::hashers`) that feeds the upload's MD5. On one
//! thread, writing and then hashing each chunk made that thread the upload's critical path:
//! about 2.0 s of CPU per GiB, more than either end's other work (see `docs/BENCHMARKS.md`,
//! "Hashing beside the writes"). The chunk moves between the threads; it is not
//! copied. The hashing pool has a thread per session, like the disk pool, so the hashing job
//! always starts; it waits for nothing but chunks, so the writer never waits for long.
//!
//! Batches: when the upload is backed up (both cores busy, the hashing job the slowest stage),
//! every chunk handed over woke a thread: the writer for each chunk queued, then for each place
//! freed in the hashing queue, and the session for each place freed in its queue. So the writer
//! takes every chunk already queued, up to [`BATCH`], writes them, and hands them to the hashing
//! job as one batch: when the stream is backed up, one wake-up per batch; when it is not (the
//! network slower than the disk and MD5), a batch is one chunk and nothing changes. The frames,
//! and so a resume's granularity, stay one chunk each. A GiB put went from 2.13 to 1.96 s and
//! the server's CPU from 2.27 to 2.09 s (medians of eight alternating puts; `docs/BENCHMARKS.md`,
//! "Batched hand-offs").
//!
//! Failures: a write that fails ends the job, which drops its end of the queue; the session
//! learns it at its next chunk (or when `put_end` or `put_restart` ends the stream), collects
//! the job's result and answers with the error. Whoever ends up dropping the upload (the job,
//! the session, a dead connection) settles its quota lease, as for an upload the session holds.
//! A hashing job that panicked ends the writer too, and the upload ends with an internal error.
//!
//! An upload that keeps its own MD5 (to object storage, where each part is recorded with the
//! MD5 state at its end) has no hashing job: its bytes are hashed once, there.

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use super::upload::ActiveUpload;
use super::*;

/// Chunks queued between the session and the job: 1 MiB with the default 256 KiB chunks.
const STREAM_QUEUE: usize = 4;

/// Chunks the job takes from its queue at once, and hands to the hashing job as one batch.
const BATCH: usize = STREAM_QUEUE;

/// Batches written and waiting for the hashing job: one, so the writer goes on with the next
/// batch while the hashing job works through this one. An upload holds at most 18 chunks:
/// four queued and one waiting for a place there, four being written, four waiting for the
/// hashing job and four being hashed, and the frame being read.
const HASH_QUEUE: usize = 1;

/// What the job gives back when its queue closes: the upload, and the write that failed, if
/// one did (the job stops at the first).
type StreamEnd = (ActiveUpload, Result<(), StorageError>);

/// The session's end of a streaming upload.
pub(super) struct UploadStream {
    chunks: mpsc::Sender<Bytes>,
    writer: JoinHandle<Result<StreamEnd, JobFailed>>,
    /// The hashing job; none if the upload keeps its own MD5.
    hasher: Option<JoinHandle<Result<Md5, JobFailed>>>,
    peer: SocketAddr,
}

impl UploadStream {
    /// Starts the jobs that write and hash `upload`'s chunks from now on, beginning with the
    /// chunk it holds, if any.
    pub(super) fn start(services: &Services, peer: SocketAddr, mut upload: ActiveUpload) -> UploadStream {
        let (chunks, mut queue) = mpsc::channel::<Bytes>(STREAM_QUEUE);
        let (to_hasher, written) = mpsc::channel::<Vec<Bytes>>(HASH_QUEUE);
        let hasher = match upload.own_md5() {
            Some(_) => None,
            None => Some(hash_in_job(services, std::mem::take(&mut upload.hasher), written)),
        };
        let disk = services.disk.clone();
        let hashing = hasher.is_some();
        let writer = actix_rt::spawn(async move {
            disk.run("stream upload", move || {
                let mut held = upload.take_held();
                while let Some(batch) = next_batch(&mut queue, held.take()) {
                    for chunk in &batch {
                        if let Err(error) = upload.write_streamed(chunk) {
                            return (upload, Err(error));
                        }
                    }
                    if hashing && to_hasher.blocking_send(batch).is_err() {
                        break; // The hashing job panicked; `finish` reports it.
                    }
                }
                (upload, Ok(()))
            })
            .await
        });
        UploadStream { chunks, writer, hasher, peer }
    }

    /// Queues a chunk if there is room, without waiting; otherwise gives it back, for
    /// [`UploadStream::send`] (the queue is full, or closed because the stream ended).
    pub(super) fn try_send(self, chunk: Bytes) -> Result<UploadStream, (UploadStream, Bytes)> {
        match self.chunks.try_send(chunk) {
            Ok(()) => Ok(self),
            Err(TrySendError::Full(chunk) | TrySendError::Closed(chunk)) => Err((self, chunk)),
        }
    }

    /// Queues a chunk, waiting for room; if the stream has ended, returns why.
    pub(super) async fn send(self, chunk: Bytes) -> Result<UploadStream, Response> {
        if self.chunks.send(chunk).await.is_ok() {
            return Ok(self);
        }
        // The job stops taking chunks only when a write failed or the hashing job panicked.
        match self.finish().await {
            Err(response) => Err(response),
            Ok(_) => Err(internal("the upload stream stopped without an error")),
        }
    }

    /// Closes the queue and waits until every chunk sent is written and hashed; returns the
    /// upload, or the error of the write that failed (the partial then stays for a resume, and
    /// the dropped upload settles its lease).
    pub(super) async fn finish(self) -> Result<ActiveUpload, Response> {
        let UploadStream { chunks, writer, hasher, peer } = self;
        drop(chunks);
        // The writer's end of the hashing queue closes when it returns, which ends the hasher.
        let (mut upload, written) = match writer.await {
            Ok(Ok(end)) => end,
            Ok(Err(panicked)) => return Err(internal(&panicked.message)),
            Err(lost) => return Err(internal(&format!("upload stream lost: {lost}"))),
        };
        let hashed = match hasher {
            Some(hasher) => hasher.await,
            None => Ok(Ok(upload.own_md5().unwrap_or_default())),
        };
        if let Err(error) = written {
            return Err(upload.failed(peer, error));
        }
        match hashed {
            Ok(Ok(hasher)) => {
                upload.hasher = hasher;
                Ok(upload)
            }
            Ok(Err(panicked)) => Err(internal(&panicked.message)),
            Err(lost) => Err(internal(&format!("upload hashing lost: {lost}"))),
        }
    }
}

/// Starts the job that feeds `hasher` the batches the writer sends on `written`.
fn hash_in_job(
    services: &Services,
    mut hasher: Md5,
    mut written: mpsc::Receiver<Vec<Bytes>>,
) -> JoinHandle<Result<Md5, JobFailed>> {
    let hashers = services.hashers.clone();
    actix_rt::spawn(async move {
        hashers
            .run("hash upload", move || {
                while let Some(batch) = written.blocking_recv() {
                    for chunk in batch {
                        hasher.update(&chunk);
                    }
                }
                hasher
            })
            .await
    })
}

/// The next chunks to write: `first`, or else the next chunk to arrive (waiting for it), then
/// every chunk already queued, up to [`BATCH`] in all. None once the queue is closed and empty.
fn next_batch(queue: &mut mpsc::Receiver<Bytes>, first: Option<Bytes>) -> Option<Vec<Bytes>> {
    let mut batch = Vec::with_capacity(BATCH);
    batch.push(match first {
        Some(chunk) => chunk,
        None => queue.blocking_recv()?,
    });
    while batch.len() < BATCH
        && let Ok(chunk) = queue.try_recv()
    {
        batch.push(chunk);
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8) -> Bytes {
        Bytes::from(vec![n; 3])
    }

    #[test]
    fn a_batch_takes_what_is_queued_up_to_its_limit_in_order() {
        let (sender, mut queue) = mpsc::channel::<Bytes>(2 * BATCH);
        for n in 0..BATCH as u8 + 2 {
            sender.try_send(chunk(n)).unwrap();
        }
        let full = next_batch(&mut queue, None).unwrap();
        assert_eq!(full, (0..BATCH as u8).map(chunk).collect::<Vec<_>>());
        // A held chunk comes first; then the two still queued.
        let rest = next_batch(&mut queue, Some(chunk(99))).unwrap();
        assert_eq!(rest, vec![chunk(99), chunk(BATCH as u8), chunk(BATCH as u8 + 1)]);
        // Nothing queued: the batch waits for the next chunk and is that chunk alone.
        let late = std::thread::spawn(move || {
            sender.blocking_send(chunk(7)).unwrap();
            sender
        });
        assert_eq!(next_batch(&mut queue, None).unwrap(), vec![chunk(7)]);
        drop(late.join().unwrap());
        assert_eq!(next_batch(&mut queue, None), None, "closed and empty: the stream ends");
        assert_eq!(next_batch(&mut queue, Some(chunk(1))), Some(vec![chunk(1)]), "a held chunk is still written");
    }
}
