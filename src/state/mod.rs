//! The state seam: what the server keeps besides file contents, behind traits a shared backend
//! (a database for several instances) can implement. Local implementations keep today's
//! behaviour: users and credentials ([`users`]: `users.toml`), failed logins and bans
//! ([`failed_logins`]: the throttle in memory), the deployment's secret ([`secret`]:
//! `server.secret`), the quota ledger with its reservations and path locks ([`quota`]: the
//! QuotaActor). Stored digests and the MD5 states of interrupted uploads are kept by each file
//! store (see [`crate::storage::store`]). [`postgres`] implements the seam for several
//! instances sharing one database. See docs/ARCHITECTURE.md and docs/CLUSTER.md.

pub mod failed_logins;
pub mod postgres;
pub mod quota;
pub mod secret;
pub mod users;
