//! The actors: one file each. They hold state and route messages; the logic they call lives
//! in [`crate::auth`], [`crate::storage`] and [`crate::quota`].

pub mod acceptor;
pub mod auth;
pub mod disk;
pub mod panic_guard;
pub mod quota;
pub mod session;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use actix::Addr;

use crate::config::Config;
use crate::quota::UsageGate;

use crate::quota::hash_budget::HashBudget;

/// What every session needs: the configuration and the shared actors.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub auth: Addr<auth::AuthActor>,
    /// The AuthActor's failed-login throttle, read by the acceptor to refuse banned addresses.
    pub throttle: crate::state::failed_logins::SharedFailedLogins,
    /// The QuotaActor, for what only it does (user limits from the AuthActor, snapshots).
    pub quota: Addr<quota::QuotaActor>,
    /// The quota ledger the file service uses: the QuotaActor, behind the state seam.
    pub ledger: Arc<dyn crate::state::quota::QuotaLedger>,
    pub disk: disk::DiskPool,
    /// A second pool as large, for the MD5 of streamed uploads (see `session::upload_stream`).
    pub hashers: disk::DiskPool,
    /// The pool for the file work of logins (opening a home); see `server::start_services`.
    pub login_io: disk::DiskPool,
    /// Held by every job that changes file bytes in a home; see [`UsageGate`].
    pub gate: Arc<UsageGate>,
    /// Resume-verification hashing per user; see [`HashBudget`].
    pub hash_budget: Arc<Mutex<HashBudget>>,
    /// Digests of files as the server wrote or last hashed them; see [`DigestIndex`].
    pub digests: Arc<crate::storage::DigestIndex>,
    /// MD5 states of partials left by interrupted uploads; see [`ResumeStates`].
    ///
    /// [`ResumeStates`]: crate::storage::ResumeStates
    pub resume_states: Arc<crate::storage::ResumeStates>,
    /// Where homes are kept: opened at login, measured by the QuotaActor.
    pub homes: crate::storage::Homes,
    /// What operators see at `/metrics`; see [`crate::metrics`].
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Services {
    /// May `user` make the server hash a resume prefix now? The error is the answer to send.
    pub fn may_hash(&self, user: &str) -> Result<(), crate::net::WireError> {
        let mut budget = self.hash_budget.lock().unwrap_or_else(|p| p.into_inner());
        budget.may_start(user, Instant::now()).map_err(|wait| {
            crate::net::WireError::new(
                crate::net::ErrorCode::HashBudgetExhausted,
                format!("too many resume checks for now; try again in {} seconds", wait.as_secs().max(1)),
            )
        })
    }

    /// Charges `user` for `bytes` of resume hashing.
    pub fn charge_hashing(&self, user: &str, bytes: u64) {
        if bytes > 0 {
            let mut budget = self.hash_budget.lock().unwrap_or_else(|p| p.into_inner());
            budget.charge(user, bytes, Instant::now());
        }
    }
}
