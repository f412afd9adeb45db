//! Data frames, sent and received without copying their payload.
//!
//! A `data` message (`Request::Data` and `Response::Data` have the same shape) is the length
//! prefix, a CBOR map whose last entry is the payload as a byte string, and the payload. A GiB
//! transfer is 4,096 such frames, so copying each payload into or out of its frame costs a GiB
//! of copying on each end (about 0.05 s of CPU each on the benchmark machine):
//! - Sending, [`write_data_frame`] writes the frame's head ([`data_frame_head`]) and the
//!   chunk in one vectored write, from where the chunk is: the client's uploads and the
//!   server's downloads.
//! - Receiving, [`payload_range`] recognises a body in exactly that form, and the decoder hands
//!   out the payload as a slice of the buffer it was read into. Any other body, including other
//!   valid encodings of a data message, is decoded by serde as before.
//!
//! The tests hold that both are the encoder's and serde's bytes and messages exactly.

use std::io::IoSlice;
use std::ops::Range;
use std::sync::LazyLock;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::codec;
use super::frame::{FrameError, LENGTH_PREFIX, set_length_prefix};
use super::message::{Request, Response};

/// CBOR major type 2 (byte string), in the top three bits of the initial byte.
const BYTE_STRING: u8 = 0x40;

/// A message type whose `data` variant the decoder builds from a payload directly.
pub trait DataMessage {
    fn data(bytes: Bytes) -> Self;
}

impl DataMessage for Request {
    fn data(bytes: Bytes) -> Self {
        Request::Data { bytes }
    }
}

impl DataMessage for Response {
    fn data(bytes: Bytes) -> Self {
        Response::Data { bytes }
    }
}

/// A data message's body up to its payload's byte-string head: the map's head, the type entry
/// and the payload's key.
fn map_head() -> &'static [u8] {
    static HEAD: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let mut body = codec::encode(&Request::Data { bytes: Bytes::new() }).expect("a data message always encodes");
        // The empty payload's byte string is its head alone, 0x40 ("zero bytes follow").
        assert_eq!(body.pop(), Some(BYTE_STRING), "a data message ends with its payload");
        body
    });
    &HEAD
}

/// The frame of a data message with a payload of `payload` bytes, up to its first payload byte.
pub fn data_frame_head(payload: usize) -> Result<Vec<u8>, FrameError> {
    let mut head = vec![0; LENGTH_PREFIX];
    head.extend_from_slice(map_head());
    head.extend_from_slice(&byte_string_head(payload as u64));
    let body = head.len() - LENGTH_PREFIX + payload;
    set_length_prefix(&mut head, body)?;
    Ok(head)
}

/// Writes one data frame carrying `payload` to `out`: its head, then the payload from where it
/// is, in vectored writes until both are out. The caller flushes whatever it buffered first.
pub async fn write_data_frame<W: AsyncWrite + Unpin>(out: &mut W, payload: &[u8]) -> Result<(), FrameError> {
    let head = data_frame_head(payload.len())?;
    let (mut head, mut payload) = (&head[..], payload);
    while !head.is_empty() || !payload.is_empty() {
        let written = out.write_vectored(&[IoSlice::new(head), IoSlice::new(payload)]).await?;
        if written == 0 {
            return Err(FrameError::Io(std::io::ErrorKind::WriteZero.into()));
        }
        let from_head = written.min(head.len());
        (head, payload) = (&head[from_head..], &payload[written - from_head..]);
    }
    Ok(())
}

/// Where the payload is in `body` (a frame without its prefix), if `body` is a data message
/// in the form [`data_frame_head`] writes, with the byte string running exactly to its end.
pub fn payload_range(body: &[u8]) -> Option<Range<usize>> {
    let rest = body.strip_prefix(map_head())?;
    let (&initial, rest) = rest.split_first()?;
    let (len, payload) = match initial {
        BYTE_STRING..=0x57 => (u64::from(initial - BYTE_STRING), rest),
        0x58 => big_endian(rest, 1)?,
        0x59 => big_endian(rest, 2)?,
        0x5a => big_endian(rest, 4)?,
        0x5b => big_endian(rest, 8)?,
        _ => return None,
    };
    (len == payload.len() as u64).then(|| body.len() - payload.len()..body.len())
}

/// The unsigned big-endian number in the first `width` bytes of `bytes`, and what follows.
fn big_endian(bytes: &[u8], width: usize) -> Option<(u64, &[u8])> {
    let (number, rest) = bytes.split_at_checked(width)?;
    Some((number.iter().fold(0, |n, &byte| n << 8 | u64::from(byte)), rest))
}

/// The initial bytes of a CBOR byte string of `len` bytes (RFC 8949, section 3): the length in
/// the initial byte up to 23, else in the 1, 2, 4 or 8 bytes that follow it.
fn byte_string_head(len: u64) -> Vec<u8> {
    match len {
        0..=23 => vec![BYTE_STRING | len as u8],
        24..=0xff => vec![BYTE_STRING | 24, len as u8],
        0x100..=0xffff => [&[BYTE_STRING | 25][..], &(len as u16).to_be_bytes()].concat(),
        0x1_0000..=0xffff_ffff => [&[BYTE_STRING | 26][..], &(len as u32).to_be_bytes()].concat(),
        _ => [&[BYTE_STRING | 27][..], &len.to_be_bytes()].concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::encode_frame;
    use proptest::prelude::*;

    fn encoded(payload: &[u8]) -> Vec<u8> {
        encode_frame(&Request::Data { bytes: Bytes::from(payload.to_vec()) }).unwrap()
    }

    /// Both ways for one payload: the head plus the payload is the encoder's frame, and the
    /// payload found in that frame's body is what serde decodes from it.
    fn check(payload: &[u8]) -> Result<(), TestCaseError> {
        let mut frame = data_frame_head(payload.len()).unwrap();
        frame.extend_from_slice(payload);
        prop_assert_eq!(&frame, &encoded(payload));
        let body = &frame[LENGTH_PREFIX..];
        let found = payload_range(body).expect("a data frame is recognised");
        prop_assert_eq!(codec::decode::<Request>(body).unwrap(), Request::data(Bytes::copy_from_slice(&body[found])));
        Ok(())
    }

    #[test]
    fn every_length_class_of_the_byte_string() {
        for len in [0, 1, 23, 24, 255, 256, 65_535, 65_536, 262_144, 1 << 20] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            check(&payload).unwrap();
        }
    }

    proptest! {
        #[test]
        fn any_payload(payload in proptest::collection::vec(any::<u8>(), 0..70_000)) {
            check(&payload)?;
        }
    }

    /// A writer that takes at most 5 bytes per call, so every split of head and payload
    /// across writes is crossed.
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(5);
            self.0.extend_from_slice(&buf[..n]);
            std::task::Poll::Ready(Ok(n))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_written_frame_is_the_encoders_even_a_few_bytes_at_a_time() {
        for len in [0, 3, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13) as u8).collect();
            let mut whole = Vec::new();
            write_data_frame(&mut whole, &payload).await.unwrap();
            assert_eq!(whole, encoded(&payload), "payload of {len} bytes");
            let mut trickle = Trickle(Vec::new());
            write_data_frame(&mut trickle, &payload).await.unwrap();
            assert_eq!(trickle.0, whole, "payload of {len} bytes, 5 bytes a write");
        }
    }

    #[test]
    fn responses_have_the_same_head() {
        let request = encode_frame(&Request::Data { bytes: Bytes::from_static(b"abc") }).unwrap();
        let response = encode_frame(&Response::Data { bytes: Bytes::from_static(b"abc") }).unwrap();
        assert_eq!(request, response);
    }

    #[test]
    fn other_bodies_are_left_to_serde() {
        let frame = encoded(b"abcdef");
        let body = &frame[LENGTH_PREFIX..];
        // Cut short, or with a byte past the payload: the byte string does not end the body.
        assert_eq!(payload_range(&body[..body.len() - 1]), None);
        assert_eq!(payload_range(&[body, &[0]].concat()), None);
        // A head cut inside the length, and a different message.
        let long = encoded(&[0; 300]);
        assert_eq!(payload_range(&long[LENGTH_PREFIX..LENGTH_PREFIX + map_head().len() + 2]), None);
        let cd = encode_frame(&Request::Cd { path: "data".into() }).unwrap();
        assert_eq!(payload_range(&cd[LENGTH_PREFIX..]), None);
        // The same message with a non-shortest length head is valid CBOR, and still found.
        let mut wide = map_head().to_vec();
        wide.extend_from_slice(&[0x59, 0, 3, 1, 2, 3]);
        assert_eq!(payload_range(&wide), Some(wide.len() - 3..wide.len()));
        assert_eq!(codec::decode::<Request>(&wide).unwrap(), Request::data(Bytes::from_static(&[1, 2, 3])));
    }
}
