//! The client's side of files: hashing, streaming and local partial downloads. Blocking code,
//! run on `spawn_blocking` threads so hashing never stalls the connection (except an upload's
//! single chunk, read where it is sent: see `Client::put`).

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::integrity::{Digest, Md5};

use crate::storage::jail::PARTIAL_SUFFIX;
pub use crate::storage::transfer::hash_prefix;

/// The hidden partial file a download of `local` is written to: `.NAME.ftpa-part` beside it.
pub fn partial_path(local: &Path) -> PathBuf {
    let name = local.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    local.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"))
}

/// MD5 and length of a whole file.
pub fn md5_file(path: &Path) -> std::io::Result<([u8; 16], u64)> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut hasher = Md5::new();
    hash_prefix(&mut file, len, &mut hasher)?;
    Ok((hasher.finalize().into(), len))
}

/// Reads the next `len` bytes of a file being uploaded; a file that ends first shrank during
/// the upload.
pub fn read_chunk(file: &mut File, len: usize) -> std::io::Result<Vec<u8>> {
    let mut chunk = Vec::new();
    read_chunk_into(file, &mut chunk, len)?;
    Ok(chunk)
}

/// Like [`read_chunk`], into `chunk` (resized to `len`), so that an upload reuses the buffers
/// the connection has sent: with a fresh 256 KiB buffer per chunk, the kernel's zeroing of new
/// pages for them took 7.6 % of the client's samples in a profiled GiB put.
pub fn read_chunk_into(file: &mut File, chunk: &mut Vec<u8>, len: usize) -> std::io::Result<()> {
    chunk.resize(len, 0);
    if read_full(file, chunk)? < len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file shrank during the upload"));
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes unless the file ends first; returns how many were read.
pub fn read_full(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// Opens (creating) a local partial for appending.
pub fn open_partial(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, Write};

    #[test]
    fn a_chunk_is_read_whole_and_a_file_that_shrank_is_an_error() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"0123456789").unwrap();
        file.rewind().unwrap();
        assert_eq!(read_chunk(&mut file, 4).unwrap(), b"0123");
        assert_eq!(read_chunk(&mut file, 0).unwrap(), b"");
        let mut reused = b"stale bytes".to_vec();
        read_chunk_into(&mut file, &mut reused, 3).unwrap();
        assert_eq!(reused, b"456");
        let error = read_chunk(&mut file, 4).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
