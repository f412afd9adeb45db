//! The panic boundary of every handler.
//!
//! actix does not restart an actor that panics: it disappears and its senders get
//! `MailboxError::Closed`; a panicking `SyncArbiter` worker thread is gone for good. So each
//! handler body runs here: a panic becomes an error value (an error reply for the request that
//! caused it) and a log line; supervised actors then stop themselves so their supervisor
//! restarts them with state rebuilt from disk.

use std::panic::{AssertUnwindSafe, catch_unwind};

/// A handler panicked; the message says where and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("internal error in {place}: {message}")]
pub struct Panicked {
    pub place: &'static str,
    pub message: String,
}

/// Runs `body`, turning a panic into [`Panicked`] and logging it.
pub fn catch_panic<R>(place: &'static str, body: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch_unwind(AssertUnwindSafe(body)).map_err(|panic| Panicked::logged(place, panic))
}

/// Runs a future, turning a panic while it is polled into [`Panicked`] and logging it.
pub async fn catch_panic_async<R>(place: &'static str, work: impl Future<Output = R>) -> Result<R, Panicked> {
    use futures::FutureExt;
    AssertUnwindSafe(work).catch_unwind().await.map_err(|panic| Panicked::logged(place, panic))
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_string())
}

impl Panicked {
    fn logged(place: &'static str, panic: Box<dyn std::any::Any + Send>) -> Panicked {
        let message = panic_message(panic.as_ref());
        tracing::error!(place, %message, "handler panicked");
        Panicked { place, message }
    }
}

/// A message that makes an actor panic inside its handler, through the same boundary as any
/// real bug: used by `ftp-actor demo supervisor` and the fault tests. Never sent by the
/// network side.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Result<(), Panicked>")]
pub struct InjectPanic;
