//! The DiskWorker pool: every blocking filesystem call and all hashing run here.
//!
//! It is an actix `SyncArbiter` whose thread count equals `max_concurrency`. Jobs are closures
//! over the plain storage code, so the pool knows nothing about files.
//!
//! The server starts a second pool of the same kind and size for one purpose: the hashing half
//! of a streamed upload (`Services::hashers`, see `session::upload_stream`), so that an upload's
//! writes and its MD5 run on two threads. Each session streams at most one upload at a time, so
//! that pool, too, has a thread for every session that can ask.
//!
//! Two traps of `SyncArbiter` are handled here (see the guide):
//! - Its queue is unbounded. The pool stays bounded by construction: a session runs its
//!   requests one at a time (under `ctx.wait`), so it has at most one job queued or running
//!   (a transfer is one job that holds its thread until the transfer ends: an upload's stream,
//!   or a download reading the file to its end), and there are at most `max_concurrency`
//!   sessions, as many as threads; the auth and quota actors add at most a handful of their own.
//!   A job never waits for another job, so the transfers of every session at once leave the
//!   other jobs slower, never stuck.
//! - A panic in a handler kills its thread for good. Every job runs under `catch_unwind`, and a
//!   panic becomes an error for the request that caused it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;

use super::panic_guard::{Panicked, catch_panic};

/// A job panicked (the worker thread survived and the panic was logged), or the pool is gone.
pub type JobFailed = Panicked;

/// One blocking job.
pub struct Blocking<R> {
    name: &'static str,
    job: Box<dyn FnOnce() -> R + Send>,
}

impl<R: Send + 'static> Message for Blocking<R> {
    type Result = Result<R, JobFailed>;
}

/// A worker thread of the pool.
pub struct DiskWorker;

impl Actor for DiskWorker {
    type Context = SyncContext<Self>;
}

impl<R: Send + 'static> Handler<Blocking<R>> for DiskWorker {
    type Result = Result<R, JobFailed>;

    fn handle(&mut self, msg: Blocking<R>, _: &mut SyncContext<Self>) -> Self::Result {
        catch_panic(msg.name, msg.job)
    }
}

/// A handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct DiskPool {
    addr: Addr<DiskWorker>,
    threads: usize,
    load: Arc<Load>,
}

/// Counts a job out of [`Load::running`], and as done, when it ends, also by a panic.
struct Running(Arc<Load>, &'static str);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
        let mut done = self.0.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *done.entry(self.1).or_default() += 1;
    }
}

/// Jobs waiting for a thread and running, and jobs done by name, for the metrics.
#[derive(Debug, Default)]
struct Load {
    queued: AtomicU64,
    running: AtomicU64,
    /// Each job's name (a handful of fixed names) and how many ended.
    done: Mutex<HashMap<&'static str, u64>>,
}

impl DiskPool {
    /// Starts `threads` worker threads. Must be called inside an actix system.
    pub fn start(threads: usize) -> DiskPool {
        DiskPool { addr: SyncArbiter::start(threads, || DiskWorker), threads, load: Arc::default() }
    }

    /// Jobs waiting for a thread, and jobs running, now.
    pub fn load(&self) -> (u64, u64) {
        (self.load.queued.load(Ordering::Relaxed), self.load.running.load(Ordering::Relaxed))
    }

    /// Jobs ended since start, by name: what the pool spends its hand-offs on (a small FTP
    /// upload should cost one "store file" job, for instance).
    pub fn jobs_done(&self) -> Vec<(&'static str, u64)> {
        let done = self.load.done.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        done.iter().map(|(name, count)| (*name, *count)).collect()
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Counts the live worker threads: it sends one job per configured thread, and each job
    /// waits (up to `patience`) until all of them are running, so they must occupy distinct
    /// threads. A pool that lost threads answers with fewer; so does one whose thread is held
    /// by a transfer for longer than `patience`, so count when no transfer runs.
    pub async fn census(&self, patience: std::time::Duration) -> usize {
        use std::sync::{Condvar, Mutex};
        let started = Arc::new((Mutex::new(0usize), Condvar::new()));
        let expected = self.threads;
        let jobs = (0..expected).map(|_| {
            let started = started.clone();
            self.run("census", move || {
                let (count, arrived) = &*started;
                let mut count = count.lock().unwrap_or_else(|p| p.into_inner());
                *count += 1;
                arrived.notify_all();
                let _ = arrived.wait_timeout_while(count, patience, |count| *count < expected);
                std::thread::current().id()
            })
        });
        let ids: std::collections::HashSet<_> = futures::future::join_all(jobs).await.into_iter().flatten().collect();
        ids.len()
    }

    /// Runs `job` on a worker thread and waits for its result.
    pub async fn run<R, F>(&self, name: &'static str, job: F) -> Result<R, JobFailed>
    where
        R: Send + 'static,
        F: FnOnce() -> R + Send + 'static,
    {
        let load = self.load.clone();
        load.queued.fetch_add(1, Ordering::Relaxed);
        let counted = move || {
            load.queued.fetch_sub(1, Ordering::Relaxed);
            load.running.fetch_add(1, Ordering::Relaxed);
            let _running = Running(load, name);
            job()
        };
        match self.addr.send(Blocking { name, job: Box::new(counted) }).await {
            Ok(result) => result,
            Err(mailbox) => Err(Panicked { place: name, message: format!("worker pool unavailable: {mailbox}") }),
        }
    }
}
