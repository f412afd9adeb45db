//! A tokio runtime of its own for a client library that must be driven whichever thread asks:
//! the PostgreSQL pool and the object-store client. actix runs one single-threaded runtime per
//! arbiter, and the disk pool's threads have none; a socket opened from one of them would only
//! make progress while that thread polls it. Here a few threads drive every socket, async
//! callers await a task spawned on them, and blocking callers wait on their own thread.

use std::future::Future;

/// The runtime; shut down without waiting when dropped, which may happen on an actix thread
/// (where dropping a runtime the usual way would panic).
pub struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl BackgroundRuntime {
    pub fn new(name: &str, threads: usize) -> std::io::Result<BackgroundRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name(name)
            .enable_all()
            .build()?;
        Ok(BackgroundRuntime(Some(runtime)))
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("the runtime lives until dropped").handle()
    }

    /// Waits for `work` on the calling thread, with this runtime's context entered (so what it
    /// spawns or connects is driven here): only on threads that may block (the disk and login
    /// pools, start-up, the CLI), never an actix arbiter's. `work` may borrow from the caller.
    pub fn block_on<F: Future>(&self, work: F) -> F::Output {
        let _inside = self.handle().enter();
        futures::executor::block_on(work)
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
