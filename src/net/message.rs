//! The messages of the native protocol, shared by server and client.
//!
//! Each message is one CBOR map with a `"type"` key naming it (serde's internally tagged
//! representation), so an independent client only needs a CBOR library and
//! `docs/PROTOCOL.md`. Every byte field is a CBOR byte string (`serde_bytes`), never an
//! array of integers.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::error_code::{ErrorCode, WireError};
use super::strict;

/// The protocol version the server announces in [`Response::Welcome`].
pub const PROTOCOL_VERSION: u32 = 2;

/// Messages from the client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// SCRAM client-first: the user name, a fresh client nonce, and the channel binding the
    /// login is bound to (`"tls-exporter"`; absent: unbound).
    AuthStart {
        #[serde(deserialize_with = "strict::text")]
        user: String,
        #[serde(deserialize_with = "strict::text")]
        client_nonce: String,
        #[serde(default, deserialize_with = "strict::optional_text", skip_serializing_if = "Option::is_none")]
        channel_binding: Option<String>,
    },
    /// SCRAM client-final: the combined nonce, the 32-byte ClientProof and, for a bound login,
    /// the 32 bytes of binding data the client used (its `c=` attribute, which the server
    /// checks first, as RFC 5802 says, to name a relay for what it is).
    AuthProof {
        #[serde(deserialize_with = "strict::text")]
        nonce: String,
        #[serde(deserialize_with = "strict::key")]
        proof: ByteBuf,
        #[serde(default, deserialize_with = "strict::optional_key", skip_serializing_if = "Option::is_none")]
        channel_binding_data: Option<ByteBuf>,
    },
    Pwd,
    Cd {
        #[serde(deserialize_with = "strict::text")]
        path: String,
    },
    /// A page of a directory's listing: the first, or the one just after `after` (the last
    /// entry of the page before; absent from clients before paged listings, which get the
    /// first page only).
    List {
        #[serde(default, deserialize_with = "strict::optional_text", skip_serializing_if = "Option::is_none")]
        path: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<ListAfter>,
    },
    Mkdir {
        #[serde(deserialize_with = "strict::text")]
        path: String,
    },
    Remove {
        #[serde(deserialize_with = "strict::text")]
        path: String,
    },
    Rmdir {
        #[serde(deserialize_with = "strict::text")]
        path: String,
    },
    Rename {
        #[serde(deserialize_with = "strict::text")]
        from: String,
        #[serde(deserialize_with = "strict::text")]
        to: String,
    },
    Quota,
    /// Start (or resume) an upload of `size` bytes to `path`.
    Put {
        #[serde(deserialize_with = "strict::text")]
        path: String,
        size: u64,
    },
    /// Discard the server's partial file and start the upload from offset 0.
    PutRestart,
    /// End the upload in progress without publishing it, as a lost connection would: what was
    /// written stays as the partial for a later resume (an empty partial is removed). The
    /// client sends it when `put_ready.existing_md5` shows the server already has the file.
    PutCancel,
    /// The next chunk of an upload. `Bytes` (a CBOR byte string too), so that a received
    /// chunk is a slice of the frame it came in, not a copy (see `net::data_frame`).
    Data {
        #[serde(deserialize_with = "strict::data")]
        bytes: Bytes,
    },
    /// All bytes are sent; `md5` is the sender's MD5 of the whole file.
    PutEnd {
        #[serde(deserialize_with = "strict::md5")]
        md5: ByteBuf,
    },
    /// Download `path` from `offset`, if the client's first `offset` bytes have `prefix_md5`.
    Get {
        #[serde(deserialize_with = "strict::text")]
        path: String,
        offset: u64,
        #[serde(deserialize_with = "strict::md5")]
        prefix_md5: ByteBuf,
    },
    /// Answered `done`, also during an upload: a client busy on its side (hashing the prefix it
    /// resumes from, or its whole file to compare) keeps the upload from counting as stalled.
    Noop,
    Quit,
}

/// Messages from the server to the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    /// All session slots are taken; the client waits at this 1-based position.
    Queued {
        position: u32,
    },
    /// The session has started; the client may log in. `channel_bindings` names the bindings
    /// a login may use on this connection (`["tls-exporter"]` over TLS).
    Welcome {
        server: String,
        version: u32,
        max_frame: u32,
        chunk_size: u32,
        #[serde(default)]
        channel_bindings: Vec<String>,
    },
    /// SCRAM server-first: combined nonce, salt and scrypt parameters.
    AuthChallenge {
        nonce: String,
        salt: ByteBuf,
        log_n: u8,
        r: u32,
        p: u32,
    },
    /// Login succeeded; `server_signature` proves the server knows the user's ServerKey.
    AuthOk {
        server_signature: ByteBuf,
    },
    /// The command succeeded. `partial_remains`: `remove` deleted the file, and a partial
    /// upload to the same name is still there (absent, meaning false, everywhere else; a
    /// client that does not know the key ignores it).
    Done {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        partial_remains: bool,
    },
    /// The working directory after `pwd` or `cd`, as an absolute path inside the home.
    Cwd {
        path: String,
    },
    /// A page of a directory listing, in [`ListAfter`]'s order, at most `max_list_entries`
    /// entries; `truncated` if more follow (ask for them with `after`, the page's last entry).
    Listing {
        path: String,
        entries: Vec<Entry>,
        truncated: bool,
    },
    /// Bytes used (including partial uploads) and the user's limit; entries (files,
    /// directories and partial uploads) and the most allowed; how many of the bytes and
    /// entries are partial uploads (absent from servers before they were added: serde's
    /// default).
    QuotaInfo {
        used: u64,
        limit: u64,
        files: u64,
        max_files: u64,
        #[serde(default)]
        partial_bytes: u64,
        #[serde(default)]
        partials: u64,
    },
    /// The server is ready for upload data from `offset`; `prefix_md5` covers bytes `0..offset`.
    /// `existing_md5`: a fresh upload (offset 0) to a path where a file of exactly `size`
    /// bytes is published, whose MD5 the server knows without reading it; a client whose file
    /// has that MD5 may skip the upload (`put_cancel`). Absent otherwise (and from servers
    /// before it was added: serde's default).
    PutReady {
        offset: u64,
        prefix_md5: ByteBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        existing_md5: Option<ByteBuf>,
    },
    /// The upload is verified and published under its name.
    PutDone {
        size: u64,
        md5: ByteBuf,
    },
    /// A download follows, from `offset` up to `size`; `modified` in Unix seconds.
    GetReady {
        size: u64,
        offset: u64,
        modified: i64,
    },
    /// The next chunk of a download (`Bytes` for the same reason as `Request::Data`).
    Data {
        bytes: Bytes,
    },
    /// The download is complete; `md5` is the server's MD5 of the whole file.
    GetEnd {
        md5: ByteBuf,
    },
    Error {
        code: u16,
        message: String,
    },
}

impl Response {
    /// The plain `done` answer.
    pub const DONE: Response = Response::Done { partial_remains: false };

    /// The error response for a [`WireError`].
    pub fn error(error: WireError) -> Response {
        Response::Error { code: error.code.as_u16(), message: error.message }
    }

    /// The `"type"` name of this message, for error messages and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Response::Queued { .. } => "queued",
            Response::Welcome { .. } => "welcome",
            Response::AuthChallenge { .. } => "auth_challenge",
            Response::AuthOk { .. } => "auth_ok",
            Response::Done { .. } => "done",
            Response::Cwd { .. } => "cwd",
            Response::Listing { .. } => "listing",
            Response::QuotaInfo { .. } => "quota_info",
            Response::PutReady { .. } => "put_ready",
            Response::PutDone { .. } => "put_done",
            Response::GetReady { .. } => "get_ready",
            Response::Data { .. } => "data",
            Response::GetEnd { .. } => "get_end",
            Response::Error { .. } => "error",
        }
    }
}

impl From<WireError> for Response {
    fn from(error: WireError) -> Response {
        Response::error(error)
    }
}

impl From<ErrorCode> for WireError {
    fn from(code: ErrorCode) -> WireError {
        WireError::new(code, code.hint())
    }
}

/// What a directory entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// An upload not published yet (interrupted, or in progress), listed under the name it
    /// will be published as; its size is what the server holds so far.
    Partial,
    /// Anything else, including kinds a later server may add.
    #[serde(other)]
    Other,
}

/// One line of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub kind: EntryKind,
    pub size: u64,
    /// Modification time in Unix seconds.
    pub modified: i64,
}

impl Entry {
    /// Where this entry stands in a listing (see [`ListAfter`]).
    pub fn list_key(&self) -> ListAfter {
        ListAfter { name: self.name.clone(), partial: self.kind == EntryKind::Partial }
    }
}

/// An entry's place in a listing, and where the next page of a listing starts: listings are
/// sorted by name (bytewise), and a partial upload comes just after the published file or
/// directory of the same name. The derived order is that order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ListAfter {
    #[serde(deserialize_with = "strict::text")]
    pub name: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
}
