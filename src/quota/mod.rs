//! Quota arithmetic, kept free of actors so it is tested on its own.

pub mod gate;
pub mod hash_budget;
pub mod ledger;

pub use gate::UsageGate;
pub use ledger::{DiskChange, Ledger, QuotaExceeded, ReservationId, TooManyFiles, Usage, upload_need};

/// How long a new upload of a path waits for an earlier upload of it to end before the path
/// is reported in use (error 307, FTP 550). Right after an interrupted upload the server may
/// still be writing the bytes that reached it, which are exactly the ones a resume reuses; a
/// resume sent at once (`curl -C -`, the shell's `put`) should wait for them, not fail.
pub const IN_USE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);
