//! The MD5 that every transfer is verified with is our own (`ftp_actor::integrity`, see
//! docs/DEPENDENCIES.md). These tests hold it to RFC 1321's test suite and to both lines of
//! the md-5 crate over inputs fed in arbitrary pieces, the way chunks arrive.

use ftp_actor::integrity::{Digest, Md5};
use proptest::prelude::*;

#[test]
fn rfc_1321_test_suite() {
    let suite = [
        ("", "d41d8cd98f00b204e9800998ecf8427e"),
        ("a", "0cc175b9c0f1b6a831c399e269772661"),
        ("abc", "900150983cd24fb0d6963f7d28e17f72"),
        ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        ("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        (
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a",
        ),
    ];
    for (input, digest) in suite {
        assert_eq!(hex::encode(Md5::digest(input.as_bytes())), digest, "MD5({input:?})");
    }
}

/// Every length across the padding's edges (55, 56, 63, 64 bytes and their multiples).
#[test]
fn every_short_length_hashes_like_the_md5_crate() {
    let data: Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
    for len in 0..=data.len() {
        let reference = md5::Md5::digest(&data[..len]);
        assert_eq!(Md5::digest(&data[..len])[..], reference[..], "{len} bytes");
    }
}

proptest! {
    #[test]
    fn pieces_hash_like_the_md5_crate(
        data in proptest::collection::vec(any::<u8>(), 0..300_000),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut % (data.len() + 1)).collect();
        cuts.sort_unstable();
        let mut ours = Md5::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain([data.len()]) {
            ours.update(&data[start..cut]);
            start = cut;
        }
        let ours = ours.finalize();
        let assembly = md5::Md5::digest(&data);
        let portable = <md5_portable::Md5 as md5_portable::Digest>::digest(&data);
        prop_assert_eq!(&ours[..], &assembly[..]);
        prop_assert_eq!(&ours[..], &portable[..]);
    }
}
