//! The cluster mode with real servers: two `ftp-actor serve` instances on one PostgreSQL
//! (`state`: users, bans, revocations, TLS to the database) and, for files, a three-node Garage
//! (`storage`, `quota`, `ftp` through the FTP listeners, `sftp` through the SFTP ones). One
//! test binary, so that these tests, which mostly wait (on heartbeats, on the servers), run
//! side by side: `cargo test` runs one test binary at a time.

#[path = "../common/mod.rs"]
mod common;
mod ftp;
mod quota;
mod sftp;
mod state;
mod storage;
