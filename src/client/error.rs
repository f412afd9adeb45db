//! Client-side failures.

use crate::net::{ErrorCode, WireError};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("protocol: {0}")]
    Protocol(String),
    /// The server answered with an error.
    #[error("{0}")]
    Server(WireError),
    #[error("the server's signature is wrong: it does not know this user's keys (wrong server?)")]
    ServerNotAuthenticated,
    #[error("MD5 mismatch: the server's file is {remote}, the received data {local}; the partial file was discarded")]
    ChecksumMismatch { remote: String, local: String },
    #[error("local file {path}: {source}")]
    Local { path: String, source: std::io::Error },
    /// The caller's interrupt fired (see `Client::set_interrupt`). A transfer stopped between
    /// two chunks, with its partial kept; the connection is left in the middle of it.
    #[error("interrupted")]
    Interrupted,
    /// The interrupt fired after an upload's last byte and its `put_end` were sent, while its
    /// answer was awaited: the server goes on and publishes the file if its MD5 matches.
    #[error("interrupted after the last byte was sent")]
    InterruptedAtEnd,
    /// A kept [`LoginKey`](super::LoginKey) no longer fits the account: no proof was sent.
    #[error(transparent)]
    KeyOutdated(#[from] super::KeyOutdated),
}

impl ClientError {
    /// The server's error code, if the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(error) => Some(error.code),
            _ => None,
        }
    }
}

impl From<crate::net::FrameError> for ClientError {
    fn from(error: crate::net::FrameError) -> Self {
        match error {
            crate::net::FrameError::Io(io) => ClientError::Io(io),
            other => ClientError::Protocol(other.to_string()),
        }
    }
}
