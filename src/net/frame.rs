//! Framing: a 4-byte big-endian length, then that many bytes holding one CBOR message.
//!
//! The length is checked against the configured maximum *before* any buffer grows, so a
//! hostile prefix of 4 GiB costs nothing. A frame whose length is acceptable but whose body is
//! not a valid message is reported as an item (`Err(MalformedFrame)`) rather than a stream
//! error: framing is still intact, so the peer gets an error reply and the session goes on.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

use super::codec;
use super::data_frame::{DataMessage, payload_range};

/// Bytes in the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// A frame whose body is not a valid message; the connection can continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed frame: {0}")]
pub struct MalformedFrame(pub String);

/// Failures that end the connection: the byte stream cannot be trusted any more.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {length} bytes exceeds the limit of {limit} bytes")]
    TooLarge { length: usize, limit: usize },
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Encodes `Out` messages and decodes `In` messages, one per frame.
pub struct FrameCodec<In, Out> {
    max_frame: Arc<AtomicUsize>,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// `max_frame` bounds the body of incoming frames (the prefix is not counted).
    pub fn new(max_frame: usize) -> Self {
        FrameCodec { max_frame: Arc::new(AtomicUsize::new(max_frame)), _types: PhantomData }
    }

    /// The limit, to change it while the codec is in use: a server session accepts only small
    /// frames until its user has logged in, so that a connection nobody has authenticated
    /// cannot make it reserve a large frame's buffer.
    pub fn max_frame(&self) -> Arc<AtomicUsize> {
        self.max_frame.clone()
    }
}

impl<In: DeserializeOwned + DataMessage, Out> Decoder for FrameCodec<In, Out> {
    type Item = Result<In, MalformedFrame>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        if src.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        let limit = self.max_frame.load(Ordering::Relaxed);
        if length > limit {
            return Err(FrameError::TooLarge { length, limit });
        }
        let total = LENGTH_PREFIX + length;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LENGTH_PREFIX);
        let body = src.split_to(length);
        if body.is_empty() {
            return Ok(Some(Err(MalformedFrame("empty frame".into()))));
        }
        if let Some(payload) = payload_range(&body) {
            // A data frame: its payload stays where it was read (see `net::data_frame`).
            return Ok(Some(Ok(In::data(body.freeze().slice(payload)))));
        }
        Ok(Some(codec::decode_message(&body).map_err(|e| MalformedFrame(e.to_string()))))
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        append_frame(&item, dst)
    }
}

/// Encodes one message as a complete frame (prefix included).
pub fn encode_frame<T: Serialize>(item: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = Vec::new();
    append_frame(item, &mut frame)?;
    Ok(frame)
}

/// Appends one frame to `out`, the body serialized in place (a data chunk is copied once, not
/// into a temporary first). On an error `out` holds a torn frame and must not be sent; both
/// callers then drop it (the connection's writer fails, or the `Vec` is discarded).
fn append_frame<T: Serialize, B: BufMut + AsMut<[u8]>>(item: &T, out: &mut B) -> Result<(), FrameError> {
    let invalid = |why: String| std::io::Error::new(std::io::ErrorKind::InvalidData, why);
    let start = out.as_mut().len();
    out.put_u32(0);
    codec::encode_into(item, (&mut *out).writer()).map_err(|e| invalid(e.to_string()))?;
    let frame = &mut out.as_mut()[start..];
    let body = frame.len() - LENGTH_PREFIX;
    set_length_prefix(frame, body)
}

/// Writes `body` (the frame's length without its prefix) into the first bytes of `frame`.
pub(super) fn set_length_prefix(frame: &mut [u8], body: usize) -> Result<(), FrameError> {
    let length = u32::try_from(body).map_err(|_| FrameError::TooLarge { length: body, limit: u32::MAX as usize })?;
    frame[..LENGTH_PREFIX].copy_from_slice(&length.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::message::{Request, Response};

    fn codec() -> FrameCodec<Request, Response> {
        FrameCodec::new(1024)
    }

    #[test]
    fn round_trips_a_message_split_across_reads() {
        let frame = encode_frame(&Request::Cd { path: "a/b".into() }).unwrap();
        let mut codec = codec();
        let mut buf = BytesMut::new();
        for (i, byte) in frame.iter().enumerate() {
            buf.put_u8(*byte);
            let out = codec.decode(&mut buf).unwrap();
            if i + 1 < frame.len() {
                assert!(out.is_none());
            } else {
                assert_eq!(out.unwrap().unwrap(), Request::Cd { path: "a/b".into() });
            }
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn rejects_an_oversized_prefix_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        let err = codec().decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { length: 0xffff_ffff, limit: 1024 }));
        assert!(buf.capacity() < 1024, "no buffer was grown for the hostile length");
    }

    #[test]
    fn malformed_body_is_an_item_not_a_stream_error() {
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        buf.put_slice(&[0xa1, 0x61, 0x78]); // map with one key "x" and no value
        assert!(codec().decode(&mut buf).unwrap().unwrap().is_err());
        let mut buf = BytesMut::new();
        buf.put_u32(0);
        assert!(codec().decode(&mut buf).unwrap().unwrap().is_err());
    }

    #[test]
    fn byte_fields_are_cbor_byte_strings() {
        let frame = encode_frame(&Request::Data { bytes: bytes::Bytes::from(vec![1, 2, 3]) }).unwrap();
        // 0x43 = byte string of length 3; an array of integers would start with 0x83.
        let body = &frame[LENGTH_PREFIX..];
        assert!(body.windows(4).any(|w| w == [0x43, 1, 2, 3]), "{body:02x?}");
    }

    /// The worked example of docs/PROTOCOL.md section 3, byte for byte.
    #[test]
    fn protocol_doc_example_frame() {
        let frame = encode_frame(&Request::Cd { path: "docs".into() }).unwrap();
        let expected = "00000013 a2 6474797065 626364 6470617468 64646f6373".replace(' ', "");
        assert_eq!(hex::encode(frame), expected);
    }

    #[test]
    fn unknown_message_type_is_malformed() {
        #[derive(serde::Serialize)]
        struct Alien {
            r#type: &'static str,
        }
        let frame = encode_frame(&Alien { r#type: "format_disk" }).unwrap();
        let mut buf = BytesMut::from(&frame[..]);
        assert!(codec().decode(&mut buf).unwrap().unwrap().is_err());
    }
}
