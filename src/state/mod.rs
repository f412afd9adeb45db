//! The state seam: what the server keeps besides file contents, behind traits a shared backend
//! (a database for several instances) can implement. Local implementations keep today's
//! behaviour. So far: users and credentials ([`users`]). Stored digests and the MD5 states of
//! interrupted uploads are kept by each file store (see [`crate::storage::store`]). Still held
//! directly by their actors: the quota ledger (QuotaActor), failed logins and bans (the
//! AuthActor's throttle) and the server secret (`server.secret`); see docs/ARCHITECTURE.md.

pub mod users;
