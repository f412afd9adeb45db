//! MD5 over bytes already on disk: a resumed prefix, a partial, a file being checked. Shared by
//! the server and the client.

use std::io::Read;

use crate::integrity::{Digest, Md5};

/// An MD5 digest.
pub type Md5Digest = [u8; 16];

/// Block size for hashing existing bytes.
const HASH_BLOCK: usize = 1 << 20;

/// Feeds `len` bytes from `file`'s current position into `hasher`; a file shorter than that
/// is an `UnexpectedEof` error. Shared by the server (prefix checks, resumed partials) and the
/// client (its local file or partial).
pub fn hash_prefix(file: &mut std::fs::File, len: u64, hasher: &mut Md5) -> std::io::Result<()> {
    let mut buffer = vec![0u8; HASH_BLOCK.min(len as usize).max(1)];
    let mut left = len;
    while left > 0 {
        let want = buffer.len().min(left as usize);
        let got = file.read(&mut buffer[..want])?;
        if got == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank while being read"));
        }
        hasher.update(&buffer[..got]);
        left -= got as u64;
    }
    Ok(())
}

/// MD5 of a byte slice (tests and small helpers).
pub fn md5_of(data: &[u8]) -> Md5Digest {
    Md5::digest(data).into()
}
