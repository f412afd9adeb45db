//! The standard FTP and explicit FTPS front end (RFC 959, 2228, 2389, 2428, 3659, 4217): a
//! second listener that lets ordinary clients (tested: curl, lftp, rclone, Python's ftplib)
//! use the server, with the same users, homes, jail, quotas, admission limits, login throttle
//! and actors as the native protocol.
//!
//! The pure parts (command parsing, replies, FEAT and friends, listings, data addresses) have
//! no sockets and are tested on strings. [`session`] is one control connection: a task
//! admitted by the same [`Acceptor`](crate::actors::acceptor::Acceptor) as native sessions,
//! which sends its work to the AuthActor, the QuotaActor and the disk pool. It is a plain task
//! rather than an actor because FTP is strictly one command at a time on a stream that changes
//! type mid-way (`AUTH TLS`); the state machine reads more plainly as a loop than as message
//! handlers.

pub mod address;
pub mod command;
pub mod control_stream;
pub mod data;
pub mod directory_listing;
pub mod features;
pub mod listing;
pub mod reply;
mod sendfile;
pub mod session;
pub mod session_tickets;
pub mod tls;
mod transfer;
mod writes_through;

pub use transfer::STORE_BLOCK;
