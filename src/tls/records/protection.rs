//! TLS 1.3 record protection (RFC 8446, section 5) for one direction, on buffers we own.
//!
//! The encryption itself is rustls': the same `MessageEncrypter` and `MessageDecrypter` its
//! own record layer runs (nonces from the sequence number, the additional data from the
//! header, the inner content type and its padding). What is ours is where the bytes sit: a
//! record is opened where it was read, and its plaintext read from there, instead of being
//! copied twice inside rustls (see [`super`]).

use std::ops::Range;

use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::{ConnectionTrafficSecrets, ContentType, ProtocolVersion, Tls13CipherSuite};

/// A record's header: its outer type, the legacy version and the length of what follows.
pub const HEADER_LEN: usize = 5;
/// The most plaintext one record carries (2^14 bytes).
pub const MAX_PLAINTEXT: usize = 1 << 14;
/// The longest protected body a peer may send (RFC 8446, section 5.2: 2^14 + 256).
pub const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 256;
/// The longest whole record on the wire.
pub const MAX_RECORD: usize = HEADER_LEN + MAX_CIPHERTEXT;

/// The outer type of every protected TLS 1.3 record.
const APPLICATION_DATA: u8 = 23;
/// The legacy record version TLS 1.3 writes on every protected record.
const LEGACY_VERSION: [u8; 2] = [3, 3];

/// What can go wrong with the records once the handshake is done. Each ends the connection:
/// a peer that sends one is broken or is not the peer (an altered record fails to open).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("TLS: a record of outer type {0} after the handshake, where only protected records may come")]
    UnexpectedRecord(u8),
    #[error("TLS: a record of legacy version {0:#06x}, where 0x0303 is the only one")]
    UnexpectedVersion(u16),
    #[error("TLS: a record of {0} bytes, over the limit of 2^14 + 256")]
    Oversized(usize),
    #[error("TLS: a record failed to open (altered on the way, or not from the peer): {0}")]
    Open(rustls::Error),
    #[error("TLS: a record could not be sealed: {0}")]
    Seal(rustls::Error),
    #[error("TLS: the peer sent {0}")]
    Unexpected(&'static str),
    #[error("TLS: the peer ended the connection with alert {0}")]
    Alert(u8),
    #[error("TLS: the connection ended inside a record, or without the peer's close_notify")]
    Truncated,
    #[error("TLS: the negotiated cipher is not one this record layer knows")]
    UnsupportedCipher,
    #[error("TLS: the traffic keys could not be updated: {0}")]
    KeyUpdate(rustls::Error),
}

impl From<RecordError> for std::io::Error {
    fn from(error: RecordError) -> std::io::Error {
        let kind = match error {
            RecordError::Truncated => std::io::ErrorKind::UnexpectedEof,
            _ => std::io::ErrorKind::InvalidData,
        };
        std::io::Error::new(kind, error)
    }
}

/// The length of the whole record at the start of `bytes`, once its header has arrived; an
/// error for a header no TLS 1.3 peer writes after the handshake.
pub fn record_len(bytes: &[u8]) -> Result<Option<usize>, RecordError> {
    let Some(header) = bytes.get(..HEADER_LEN) else { return Ok(None) };
    if header[0] != APPLICATION_DATA {
        return Err(RecordError::UnexpectedRecord(header[0]));
    }
    if header[1..3] != LEGACY_VERSION {
        return Err(RecordError::UnexpectedVersion(u16::from_be_bytes([header[1], header[2]])));
    }
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if len > MAX_CIPHERTEXT {
        return Err(RecordError::Oversized(len));
    }
    Ok(Some(HEADER_LEN + len))
}

/// Opens the records one peer sends, in order.
pub struct Opener {
    decrypter: Box<dyn MessageDecrypter>,
    seq: u64,
}

impl Opener {
    /// Keys for records from sequence number `seq` on (0 after a key update).
    pub fn new(suite: &Tls13CipherSuite, secrets: ConnectionTrafficSecrets, seq: u64) -> Result<Opener, RecordError> {
        let (key, iv) = key_and_iv(secrets)?;
        Ok(Opener { decrypter: suite.aead_alg.decrypter(key, iv), seq })
    }

    /// Opens the whole record `record` (header included, as [`record_len`] measured it) in
    /// place: its inner content type, and where its plaintext now lies in `record`.
    pub fn open(&mut self, record: &mut [u8]) -> Result<(ContentType, Range<usize>), RecordError> {
        let base = record.as_ptr() as usize;
        let body = &mut record[HEADER_LEN..];
        let message = InboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, body);
        let opened = self.decrypter.decrypt(message, self.seq).map_err(RecordError::Open)?;
        self.seq += 1;
        let start = opened.payload.as_ptr() as usize - base;
        Ok((opened.typ, start..start + opened.payload.len()))
    }
}

/// Seals the records one end sends, in order.
pub struct Sealer {
    encrypter: Box<dyn MessageEncrypter>,
    seq: u64,
    /// The records these keys may seal before they must be updated (the cipher's
    /// confidentiality limit, as rustls sets it: 2^24 for AES-128-GCM).
    limit: u64,
}

impl Sealer {
    /// Keys for records from sequence number `seq` on (0 after a key update).
    pub fn new(suite: &Tls13CipherSuite, secrets: ConnectionTrafficSecrets, seq: u64) -> Result<Sealer, RecordError> {
        let (key, iv) = key_and_iv(secrets)?;
        Ok(Sealer { encrypter: suite.aead_alg.encrypter(key, iv), seq, limit: suite.common.confidentiality_limit })
    }

    /// One whole record of inner type `typ` holding `plaintext` (the slices in order, at most
    /// [`MAX_PLAINTEXT`] bytes in all).
    pub fn seal(&mut self, typ: ContentType, plaintext: &[&[u8]]) -> Result<Vec<u8>, RecordError> {
        debug_assert!(plaintext.iter().map(|part| part.len()).sum::<usize>() <= MAX_PLAINTEXT);
        let message =
            OutboundPlainMessage { typ, version: ProtocolVersion::TLSv1_2, payload: OutboundChunks::new(plaintext) };
        let sealed = self.encrypter.encrypt(message, self.seq).map_err(RecordError::Seal)?;
        self.seq += 1;
        Ok(sealed.encode())
    }

    #[cfg(test)]
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    #[cfg(test)]
    pub fn wear_out_after(&mut self, records: u64) {
        self.limit = self.seq + records;
    }

    /// These keys have sealed as many records as they safely may: update them first.
    pub fn worn_out(&self) -> bool {
        self.seq >= self.limit
    }
}

fn key_and_iv(secrets: ConnectionTrafficSecrets) -> Result<(AeadKey, Iv), RecordError> {
    match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Ok((key, iv)),
        // `ConnectionTrafficSecrets` may grow; the native provider offers these three only.
        _ => Err(RecordError::UnsupportedCipher),
    }
}
