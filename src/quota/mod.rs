//! Quota arithmetic, kept free of actors so it is tested on its own.

pub mod gate;
pub mod hash_budget;
pub mod ledger;

pub use gate::UsageGate;
pub use ledger::{Ledger, QuotaExceeded, ReservationId, Usage, upload_need};
