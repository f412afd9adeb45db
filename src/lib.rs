//! ftp-actor: a multi-user file-transfer server and shell client built as an actor system.
//!
//! Layers, from the wire inwards: [`net`] (frames, CBOR, messages), [`actors`] (acceptor,
//! sessions, auth, quota, disk pool), and the plain logic they call: [`auth`] (SCRAM, scrypt,
//! user store), [`storage`] (path jail, homes, transfers), [`quota`] (ledger), [`integrity`]
//! (the MD5 transfers are verified with). [`client`] is the
//! client library the shell and the tests use. [`ftp`] is the standard FTP/FTPS front end on the
//! same actors.

pub mod actors;
pub mod admission;
pub mod auth;
pub mod background_runtime;
pub mod cli;
pub mod client;
pub mod config;
pub mod ftp;
pub mod human;
pub mod integrity;
pub mod metrics;
pub mod net;
pub mod quota;
pub mod server;
pub mod service;
pub mod sftp;
pub mod state;
pub mod storage;
pub mod tls;
pub mod tuning;
pub mod wildcards;
