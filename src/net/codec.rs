//! The one module that knows the CBOR crate.
//!
//! serde_cbor 0.11.2 is named in the design and is its last release (RUSTSEC-2021-0127,
//! "unmaintained", no known vulnerability; see `docs/DEPENDENCIES.md`). Keeping every call to it
//! here makes replacing it (with ciborium or minicbor) a change to this file alone.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A value that could not be encoded or decoded as CBOR.
#[derive(Debug, thiserror::Error)]
#[error("CBOR: {0}")]
pub struct CodecError(String);

/// Writes the CBOR encoding of `value` to `out`.
pub fn encode_into<T: Serialize>(value: &T, out: impl std::io::Write) -> Result<(), CodecError> {
    serde_cbor::to_writer(out, value).map_err(|e| CodecError(e.to_string()))
}

/// Encodes `value` as one CBOR item.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes exactly one CBOR item from `bytes`; trailing bytes are an error.
///
/// serde_cbor limits nesting depth (128), so a deeply nested hostile frame fails cleanly
/// instead of overflowing the stack.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice(bytes).map_err(|e| CodecError(e.to_string()))
}

/// Decodes one message: [`decode`], after checking its envelope (a map with text keys and a
/// text `type`; see [`super::strict`]). The check reads the bytes without allocating.
pub fn decode_message<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    serde_cbor::from_slice::<super::strict::CheckedEnvelope>(bytes).map_err(|e| CodecError(e.to_string()))?;
    decode(bytes)
}
