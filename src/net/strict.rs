//! Strict decoding: every field exactly of the CBOR type docs/PROTOCOL.md gives it.
//!
//! serde is lenient by default: a `String` accepts a CBOR byte string that is valid UTF-8, a
//! byte buffer accepts an array of integers, and an enum's tag may be a byte string. Each
//! leniency we accept becomes something independent clients depend on, and a second way to
//! say the same thing that every check must remember. So text fields take text only, byte
//! fields a byte string of the documented length only, and a message's `type` must be text;
//! anything else is a malformed frame (error 100).

use std::fmt;

use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde_bytes::ByteBuf;

/// A CBOR text string, and nothing else.
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a text string")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<String, E> {
        Ok(text.to_string())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }
}

/// `deserialize_with` for text fields.
pub fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    deserializer.deserialize_string(TextVisitor)
}

/// `deserialize_with` for optional text fields (absent, or text; `null` is refused too, since
/// the protocol says absent).
pub fn optional_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    text(deserializer).map(Some)
}

/// A CBOR byte string of `LEN` bytes (any length if `LEN` is 0), and nothing else.
struct BytesVisitor<const LEN: usize>;

impl<'de, const LEN: usize> Visitor<'de> for BytesVisitor<LEN> {
    type Value = ByteBuf;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if LEN == 0 { f.write_str("a byte string") } else { write!(f, "a byte string of {LEN} bytes") }
    }

    fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<ByteBuf, E> {
        self.visit_byte_buf(bytes.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, bytes: Vec<u8>) -> Result<ByteBuf, E> {
        if LEN != 0 && bytes.len() != LEN {
            return Err(E::invalid_length(bytes.len(), &self));
        }
        Ok(ByteBuf::from(bytes))
    }
}

/// `deserialize_with` for an MD5 (16 bytes).
pub fn md5<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor::<16>)
}

/// `deserialize_with` for a SCRAM proof or signature (32 bytes).
pub fn key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ByteBuf, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor::<32>)
}

/// `deserialize_with` for an optional 32-byte value (absent, or the bytes; `null` refused).
pub fn optional_key<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ByteBuf>, D::Error> {
    key(deserializer).map(Some)
}

/// `deserialize_with` for a data chunk (any length; the frame bounds it).
pub fn data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bytes::Bytes, D::Error> {
    deserializer.deserialize_byte_buf(BytesVisitor::<0>).map(|buf| bytes::Bytes::from(buf.into_vec()))
}

/// A message's outer map, checked before the message itself is decoded: every key text, and
/// the `type` present and text (serde's tagged enums accept a byte string as the tag).
pub struct CheckedEnvelope;

impl<'de> serde::Deserialize<'de> for CheckedEnvelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CheckedEnvelope, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// A map key, which must be text: whether it is `type` (read without allocating).
struct IsTypeKey(bool);

/// Accepts text only, and says whether it is `type`.
struct TextKeyVisitor;

impl<'de> Visitor<'de> for TextKeyVisitor {
    type Value = IsTypeKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a text string")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<IsTypeKey, E> {
        Ok(IsTypeKey(key == "type"))
    }
}

impl<'de> serde::Deserialize<'de> for IsTypeKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<IsTypeKey, D::Error> {
        deserializer.deserialize_str(TextKeyVisitor)
    }
}

/// The `type` value, which must be text (read without allocating).
struct Tag;

impl<'de> serde::Deserialize<'de> for Tag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Tag, D::Error> {
        deserializer.deserialize_str(TextKeyVisitor).map(|_| Tag)
    }
}

struct EnvelopeVisitor;

impl<'de> Visitor<'de> for EnvelopeVisitor {
    type Value = CheckedEnvelope;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map with a text `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckedEnvelope, A::Error> {
        let mut tagged = false;
        while let Some(IsTypeKey(is_type)) = map.next_key()? {
            if is_type {
                map.next_value::<Tag>()?;
                tagged = true;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        if !tagged {
            return Err(de::Error::missing_field("type"));
        }
        Ok(CheckedEnvelope)
    }
}
