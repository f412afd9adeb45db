//! Client-side failures.

use std::path::{Path, PathBuf};

use crate::net::{ErrorCode, WireError};
use crate::tls::Fingerprint;

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
    /// A local file was written while an upload read it: what the server holds (and verified)
    /// is what was read, which may be a prefix of the file, or a mix of old and new bytes.
    #[error(
        "local file {path} changed while it was read ({read} bytes when the upload began, {now} now): the server's \
         copy is the bytes read, MD5-verified, which may not match the file as it is now; put it again once it stops \
         changing"
    )]
    ChangedWhileRead { path: String, read: u64, now: u64 },
    /// The caller's interrupt fired (see `Client::set_interrupt`). A transfer stopped between
    /// two chunks, with its partial kept; the connection is left in the middle of it.
    #[error("interrupted")]
    Interrupted,
    /// A download stopped by a failure on our side (a full disk, a FIFO whose reader left)
    /// while the server was still sending it: as after [`ClientError::Interrupted`], the
    /// connection is left in the middle of the download (connect again). What was written
    /// stays in the partial (`kept`), unless the target was a device or FIFO.
    #[error("{cause}; {}", if *.kept { "what was received is kept: run the same get again to resume" } else { "nothing was kept" })]
    DownloadAbandoned { cause: Box<ClientError>, kept: bool },
    /// The interrupt fired after an upload's last byte and its `put_end` were sent, while its
    /// answer was awaited: the server goes on and publishes the file if its MD5 matches.
    #[error("interrupted after the last byte was sent")]
    InterruptedAtEnd,
    /// A kept [`LoginKey`](super::LoginKey) no longer fits the account: no proof was sent.
    #[error(transparent)]
    KeyOutdated(#[from] super::KeyOutdated),
    /// A server the known-servers file does not name, and its certificate was not accepted.
    #[error("{}", unknown_server(.server, .seen, .file))]
    ServerCertUnknown { server: String, seen: Fingerprint, file: PathBuf },
    /// The server showed another certificate than the one it is known or pinned by.
    #[error("{}", changed_certificate(.server, .known, .seen, .file.as_deref()))]
    ServerCertChanged { server: String, known: Fingerprint, seen: Fingerprint, file: Option<PathBuf> },
    /// The server's certificate does not chain to the `--cacert` roots, or does not name it.
    #[error(
        "error 702: the certificate of {server} ({seen}) is not valid for the --cacert roots: {reason}. Check that FILE holds \
         the server's certificate or its issuer, and that the address matches a name in the certificate"
    )]
    ServerCertInvalid { server: String, seen: Fingerprint, reason: String },
    /// Over TLS, the server's welcome did not offer channel binding: no login is sent.
    #[error(
        "error 704: {server} did not offer to bind the login to the TLS session (tls-exporter), which every \
         ftp-actor server of version 2 does over TLS; the offer may have been removed on the way. Not logging in"
    )]
    ChannelBindingNotOffered { server: String },
    /// The TLS handshake failed for another reason.
    #[error(
        "error 703: TLS with {server} failed: {reason}. Is it an ftp-actor native listener (not the FTP port), of version 2 or \
         later? A test server configured with plaintext_native needs --plaintext"
    )]
    Tls { server: String, reason: String },
}

fn unknown_server(server: &str, seen: &Fingerprint, file: &Path) -> String {
    format!(
        "error 700: {server} is not a known server: it showed the certificate {seen}, which was not accepted. Compare it with \
         the fingerprint the server's operator has (`ftp-actor serve` prints it), then connect again and accept it, \
         or use --accept-new-server or --cacert FILE ({} keeps the servers trusted so far)",
        file.display()
    )
}

fn changed_certificate(server: &str, known: &Fingerprint, seen: &Fingerprint, file: Option<&Path>) -> String {
    let fix = match file {
        Some(file) => {
            format!(
                ", and only if it is {seen}, remove the line for {server} from {} and connect again",
                file.display()
            )
        }
        None => String::new(),
    };
    format!(
        "error 701: the certificate of {server} changed: it was {known}, it is now {seen}. Someone may be intercepting the \
         connection, or the server has a new certificate: ask its operator for the fingerprint `ftp-actor serve` \
         prints{fix}"
    )
}

impl ClientError {
    /// The stable error code: the server's, or the client's own (7xx) for a server it does not
    /// trust or cannot reach over TLS.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(error) => Some(error.code),
            ClientError::ServerCertUnknown { .. } => Some(ErrorCode::ServerCertUnknown),
            ClientError::ServerCertChanged { .. } => Some(ErrorCode::ServerCertChanged),
            ClientError::ServerCertInvalid { .. } => Some(ErrorCode::ServerCertInvalid),
            ClientError::Tls { .. } => Some(ErrorCode::TlsFailed),
            ClientError::ChannelBindingNotOffered { .. } => Some(ErrorCode::ChannelBindingNotOffered),
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
