//! FTP replies (RFC 959 section 4.2): a three-digit code and one or more lines of text, and
//! the mapping from the server's stable error codes to FTP reply codes.

use crate::net::{ErrorCode, WireError};

/// A reply ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply { code, lines: vec![text.into()] }
    }

    /// A multi-line reply: `first` on the opening line, `body` lines in between (each indented
    /// by one space, so none can be mistaken for the end), `last` on the closing line.
    pub fn multi(code: u16, first: impl Into<String>, body: &[String], last: impl Into<String>) -> Reply {
        let mut lines = vec![first.into()];
        lines.extend(body.iter().map(|line| format!(" {line}")));
        lines.push(last.into());
        Reply { code, lines }
    }

    /// The reply for an error the native protocol would send as `error`: the FTP code that
    /// means the same, and the stable number in brackets so logs and users can look it up.
    pub fn from_error(error: &WireError) -> Reply {
        Reply::new(ftp_code(error.code), format!("[{}] {}", error.code, error.message))
    }

    /// The bytes on the wire. Line breaks inside a line's text are replaced by spaces (a CR
    /// or LF in a file name must not end the reply early).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        let last = self.lines.len() - 1;
        for (index, line) in self.lines.iter().enumerate() {
            let separator = if index == last { ' ' } else { '-' };
            let clean: String = line.chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
            out.push_str(&format!("{}{separator}{clean}\r\n", self.code));
        }
        out.into_bytes()
    }
}

/// The FTP reply code for one of the server's errors.
pub fn ftp_code(code: ErrorCode) -> u16 {
    use ErrorCode::*;
    match code {
        MalformedFrame | FrameTooLarge | UnexpectedMessage | TlsRequired => 500,
        AuthFailed
        | LoginBanned
        | NotLoggedIn
        | TooManySessionsForUser
        | ChannelBindingRequired
        | ChannelBindingMismatch => 530,
        LoginTimeout | AccountChanged | IdleTimeout | ServerBusy | ShuttingDown | TooManyFromAddress
        | PreLoginEvicted => 421,
        PathOutsideHome | NotFound | AlreadyExists | NotADirectory | IsADirectory | NotAFile | DirectoryNotEmpty
        | InUse => 550,
        // "File name not allowed" (RFC 959): the name itself is refused, which no retry mends;
        // not 550, which clients take for a missing file.
        InvalidPath => 553,
        QuotaExceeded | TooManyFiles | DiskFull => 552,
        HashBudgetExhausted => 450,
        StorageFailure | Internal => 451,
        ChecksumMismatch | TransferSizeMismatch | TransferStalled => 426,
        RestartOffsetInvalid => 554,
        // The client's own codes never reach an FTP reply.
        ServerCertUnknown | ServerCertChanged | ServerCertInvalid | TlsFailed | ChannelBindingNotOffered => 500,
    }
}

/// A name inside a 257 reply: RFC 959 doubles the quotes it contains.
pub fn quote_path(path: &str) -> String {
    format!("\"{}\"", path.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        assert_eq!(Reply::new(200, "ok").to_bytes(), b"200 ok\r\n");
        let feat = Reply::multi(211, "Features:", &["MLST size*;".into(), "UTF8".into()], "End");
        assert_eq!(feat.to_bytes(), b"211-Features:\r\n211- MLST size*;\r\n211- UTF8\r\n211 End\r\n");
    }

    #[test]
    fn a_newline_in_text_cannot_end_the_reply() {
        assert_eq!(Reply::new(550, "a\r\n226 b").to_bytes(), b"550 a  226 b\r\n");
    }

    #[test]
    fn errors_keep_their_stable_number() {
        let reply = Reply::from_error(&WireError::new(ErrorCode::QuotaExceeded, "quota exceeded"));
        assert_eq!(reply.to_bytes(), b"552 [400] quota exceeded\r\n");
        assert_eq!(ftp_code(ErrorCode::AuthFailed), 530);
        assert_eq!(ftp_code(ErrorCode::ServerBusy), 421);
        assert_eq!(ftp_code(ErrorCode::PathOutsideHome), 550);
    }

    #[test]
    fn quotes_in_paths_are_doubled() {
        assert_eq!(quote_path("/a \"b\""), "\"/a \"\"b\"\"\"");
    }
}
