//! The actors: one file each. They hold state and route messages; the logic they call lives
//! in [`crate::auth`], [`crate::storage`] and [`crate::quota`].

pub mod acceptor;
pub mod auth;
pub mod disk;
pub mod panic_guard;
pub mod quota;
pub mod session;

use std::sync::Arc;

use actix::Addr;

use crate::config::Config;
use crate::quota::UsageGate;

/// What every session needs: the configuration and the shared actors.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub auth: Addr<auth::AuthActor>,
    pub quota: Addr<quota::QuotaActor>,
    pub disk: disk::DiskPool,
    /// Held by every job that changes file bytes in a home; see [`UsageGate`].
    pub gate: Arc<UsageGate>,
}
