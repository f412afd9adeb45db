//! Stable numeric error codes carried by every error the server sends.
//!
//! Codes are part of the protocol (see `docs/PROTOCOL.md`): a number, once published, keeps
//! its meaning forever. New failures get new numbers; the hundreds group them by layer so a
//! client can act on the class (1xx: fix the client, 2xx: log in again, 3xx: fix the path,
//! 4xx: free space, 5xx: retry the transfer, 6xx: retry later).

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $name:ident = $value:literal => $hint:literal, )*) => {
        /// Every error a client can see, with its stable wire number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "u16", into = "u16")]
        pub enum ErrorCode {
            $( $(#[$doc])* $name = $value, )*
        }

        impl ErrorCode {
            /// All codes, in numeric order (used by the docs test).
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$name,)*];

            /// What the user should do about it, in one sentence.
            pub fn hint(self) -> &'static str {
                match self { $(ErrorCode::$name => $hint,)* }
            }
        }

        impl TryFrom<u16> for ErrorCode {
            type Error = UnknownErrorCode;
            fn try_from(value: u16) -> Result<Self, Self::Error> {
                match value {
                    $($value => Ok(ErrorCode::$name),)*
                    other => Err(UnknownErrorCode(other)),
                }
            }
        }
    };
}

error_codes! {
    /// A frame could not be decoded as a message of this protocol.
    MalformedFrame = 100 => "the client sent a frame that is not a valid message; update or fix the client",
    /// A frame's length prefix exceeds the server's `max_frame_bytes`.
    FrameTooLarge = 101 => "the client sent a frame larger than the server accepts; use the chunk size from the welcome",
    /// A valid message arrived in a state where it is not allowed.
    UnexpectedMessage = 102 => "the message is not allowed at this point of the session; see the protocol states",
    /// Login failed: unknown user or wrong password (deliberately indistinguishable).
    AuthFailed = 200 => "check the user name and password and log in again",
    /// Too many failed logins from this address or for this name; the ban expires by itself.
    LoginBanned = 202 => "too many failed logins: wait until the ban ends (the message says how long)",
    /// A command that needs a login arrived before one.
    NotLoggedIn = 201 => "log in first",
    /// The user already has `max_sessions_per_user` sessions.
    TooManySessionsForUser = 205 => "close another session of this user first",
    /// The login was not finished within `login_timeout_secs`.
    LoginTimeout = 204 => "log in promptly after connecting",
    /// The session's user was deleted, or their password or home changed, while logged in.
    AccountChanged = 206 => "your account was removed or changed: log in again, or ask the administrator",
    /// The path would leave the user's home (`..` above home, a symlink pointing out).
    PathOutsideHome = 300 => "use a path inside your home directory",
    /// Nothing exists at the path.
    NotFound = 301 => "check the path with ls",
    /// Something already exists at the path.
    AlreadyExists = 302 => "choose another name or remove the existing entry first",
    /// The path (or one of its parents) is not a directory.
    NotADirectory = 303 => "the path names a file where a directory is needed",
    /// The path is a directory where a file is needed.
    IsADirectory = 304 => "the path names a directory where a file is needed",
    /// `rmdir` of a directory that still has entries.
    DirectoryNotEmpty = 305 => "remove the directory's entries first",
    /// The path is not acceptable: NUL byte, too long, a reserved name, empty.
    InvalidPath = 306 => "use a shorter path made of ordinary names",
    /// Another session is uploading to the same path right now.
    InUse = 307 => "another upload to this path is in progress; try again when it has finished",
    /// REST asked to resume past the end of what the server holds (FTP front end).
    RestartOffsetInvalid = 308 => "the resume offset is past what the server holds; ask SIZE and resume from there",
    /// The path names a device, FIFO or socket (put in a home by another program): only
    /// regular files are transferred.
    NotAFile = 309 => "the path names a device, FIFO or socket, not a file; only regular files are transferred",
    /// The upload would take the user over their quota.
    QuotaExceeded = 400 => "free space (rm) or ask the administrator for a larger quota",
    /// Creating the file or directory would take the user past `max_files` (files,
    /// directories and partial uploads, each one).
    TooManyFiles = 403 => "remove files or directories you no longer need, or ask the administrator for a larger max_files",
    /// The server's disk is full.
    DiskFull = 401 => "the server's disk is full; the partial upload is kept, resume it later",
    /// The user's resume-verification hashing budget is used up for now.
    HashBudgetExhausted = 406 => "too many resume checks for now: wait the seconds the message says, or transfer from the start",
    /// Any other storage failure on the server.
    StorageFailure = 402 => "the server could not read or write the file; try again or tell the administrator",
    /// The MD5 of the received data does not match the sender's MD5.
    ChecksumMismatch = 500 => "the data was damaged in transit and was discarded; transfer the file again",
    /// Data frames do not add up to the announced size (too many bytes or too few at the end).
    TransferSizeMismatch = 501 => "the client sent a different number of bytes than it announced; transfer again",
    /// No upload data arrived, or the client did not read download data, for
    /// `transfer_stall_secs`; the connection is closed and the partial upload kept.
    TransferStalled = 502 => "the transfer stalled and was closed; reconnect and resume it",
    /// A login found every session slot and queue place taken, or waited `queue_wait_secs` in
    /// the queue.
    ServerBusy = 600 => "the server is at capacity; try again in a moment",
    /// A bug or panic inside the server; the session continues.
    Internal = 601 => "an internal error occurred; try again, and tell the administrator if it persists",
    /// The server is shutting down (SIGTERM, Ctrl-C); partial uploads are kept for resume.
    ShuttingDown = 602 => "the server is shutting down; reconnect later and resume the transfer",
    /// The client's address already has `max_sessions_per_address` logged-in sessions.
    TooManyFromAddress = 604 => "too many sessions from your address; close some and retry",
    /// A pre-login budget was full and this connection, the oldest not logged in from the
    /// address holding the most, was closed to make room (see `max_prelogin_connections`).
    PreLoginEvicted = 605 => "too many connections are waiting to log in: reconnect and log in promptly",
    /// The session was idle longer than `idle_timeout_secs`.
    IdleTimeout = 603 => "the session was closed after being idle; reconnect",
    /// A login over TLS that is not bound to the TLS session (see `auth::channel_binding`), or
    /// a binding this connection cannot have.
    ChannelBindingRequired = 207 => "update the client: this server binds logins to the TLS session (SCRAM-SHA-256-PLUS)",
    /// The client's binding data is not this TLS session's: something between the two ends
    /// terminates TLS and relays (a man in the middle). Counted as a failed login.
    ChannelBindingMismatch = 208 => "the connection passes through a relay that terminates TLS: do not trust its certificate",
    /// The client's own: a TLS server that did not offer channel binding (the offer may have
    /// been removed on the way).
    ChannelBindingNotOffered = 704 => "the server did not offer channel binding over TLS: check that it is an ftp-actor server of version 2",
    /// Sent in plain text, then the connection closes, to a client that did not start TLS:
    /// a client of protocol version 1 waits for a `welcome` the server no longer sends first.
    TlsRequired = 103 => "this server speaks the native protocol inside TLS (protocol version 2): update the client",
    /// The client's own (never sent by a server): a server the known-servers file does not
    /// name, whose certificate was not accepted.
    ServerCertUnknown = 700 => "compare the server's fingerprint with its operator's, then accept it, or use --cacert",
    /// The client's own: the server showed another certificate than the one it is known by.
    ServerCertChanged = 701 => "the server's certificate changed: confirm the new fingerprint with its operator before trusting it",
    /// The client's own: the certificate does not chain to the `--cacert` roots or name the server.
    ServerCertInvalid = 702 => "check the --cacert file and the server's address",
    /// The client's own: the TLS handshake failed.
    TlsFailed = 703 => "check the address and port of the native listener, and the server's version",
}

impl ErrorCode {
    /// The wire number.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// Does the server close the session after sending this error? A client then has no
    /// session to send its next request on: it connects again, or stops.
    pub fn ends_session(self) -> bool {
        use ErrorCode::*;
        matches!(
            self,
            FrameTooLarge
                | TlsRequired
                | LoginTimeout
                | AccountChanged
                | TransferStalled
                | ServerBusy
                | ShuttingDown
                | PreLoginEvicted
                | IdleTimeout
        )
    }
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.as_u16()
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// A number that is not one of [`ErrorCode::ALL`] (a newer server, or a broken one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown error code {0}")]
pub struct UnknownErrorCode(pub u16);

/// An error as the protocol carries it: a stable code and a sentence for a human.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error {code}: {message}")]
pub struct WireError {
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError { code, message: message.into() }
    }

    /// The sentence with its number after it, `message (error 301)`: how a wire that has no
    /// field for the code (an FTP continuation line, an SSH disconnect, an SFTP status) says it.
    pub fn sentence(&self) -> String {
        format!("{} (error {})", self.message, self.code.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_u16_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            assert!(seen.insert(code.as_u16()), "duplicate code {code}");
            assert_eq!(ErrorCode::try_from(code.as_u16()), Ok(code));
            assert!(!code.hint().is_empty());
        }
        assert_eq!(ErrorCode::try_from(999), Err(UnknownErrorCode(999)));
    }
}
