//! How a transfer reports progress (the shell draws an indicatif bar).

/// Receives a transfer's progress. Called from the task driving the transfer.
pub trait Progress: Send + Sync {
    /// `total` bytes in the file, `done` already present (resumed).
    fn begin(&self, total: u64, done: u64);
    /// `bytes` more were transferred.
    fn advance(&self, bytes: u64);
    /// The transfer ended (successfully or not).
    fn end(&self);
}

/// Reports nothing.
pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}
