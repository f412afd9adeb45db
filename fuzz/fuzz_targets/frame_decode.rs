//! Frame decoding on hostile bytes, both directions (server decoding requests, client decoding
//! responses): never a panic, never a frame over the limit accepted, and every message that
//! decodes re-encodes to a frame that decodes to the same message.
#![no_main]

use bytes::BytesMut;
use ftp_actor::net::frame::encode_frame;
use ftp_actor::net::{FrameCodec, Request, Response};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

const LIMIT: usize = 64 << 10;

fn decode_all<In, Out>(data: &[u8])
where
    In: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let mut codec = FrameCodec::<In, Out>::new(LIMIT);
    let mut buffer = BytesMut::from(data);
    loop {
        match codec.decode(&mut buffer) {
            Ok(Some(Ok(message))) => {
                let again = encode_frame(&message).expect("a decoded message encodes");
                let mut fresh = FrameCodec::<In, Out>::new(usize::MAX);
                let mut bytes = BytesMut::from(&again[..]);
                let round = fresh.decode(&mut bytes).expect("framing").expect("whole frame").expect("decodes");
                assert_eq!(round, message);
            }
            Ok(Some(Err(_malformed))) => {}
            Ok(None) | Err(_) => break,
        }
        assert!(buffer.capacity() <= data.len().max(LIMIT + 4) * 2, "no allocation past the limit");
    }
}

fuzz_target!(|data: &[u8]| {
    decode_all::<Request, Response>(data);
    decode_all::<Response, Request>(data);
});
