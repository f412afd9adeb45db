//! Opening a home's file for reading without waiting on what is not a regular file.

use std::path::Path;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

use super::error::StorageError;

/// Opens `relative` in `dir` for reading: a regular file, or a directory (callers that need a
/// file check `is_dir`, as before). A plain `open(2)` of a FIFO that another program put in a
/// home waits for a writer, forever, and it would wait on a disk worker: a few such requests
/// would take the whole pool from every user. So a device, FIFO or socket is refused
/// ([`StorageError::NotAFile`]) by its metadata, before any open: even an open that does not
/// wait would let a writer waiting on the FIFO go on, and lose what it writes. The open itself
/// does not wait either (`O_NONBLOCK`), for a FIFO put there between the two calls. What is
/// kept keeps the flag: Linux ignores it for regular files and directories, so clearing it
/// would only add two system calls to every download. The open file's metadata, read to check
/// it, comes back with it, so callers need not read it again.
pub fn open_for_reading(dir: &Dir, relative: &Path) -> Result<(std::fs::File, std::fs::Metadata), StorageError> {
    let kind = dir.metadata(relative)?.file_type();
    if !kind.is_file() && !kind.is_dir() {
        return Err(StorageError::NotAFile);
    }
    let file = dir.open_with(relative, OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK))?.into_std();
    let metadata = file.metadata()?;
    if !metadata.is_file() && !metadata.is_dir() {
        return Err(StorageError::NotAFile);
    }
    Ok((file, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    #[test]
    fn a_fifo_is_refused_at_once_and_files_and_directories_open() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("f"), b"data").unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(root.path().join("p")).status().unwrap().success());
        let dir = Dir::open_ambient_dir(root.path(), ambient_authority()).unwrap();
        // Without O_NONBLOCK this open would wait for a writer and the test would hang.
        assert!(matches!(open_for_reading(&dir, Path::new("p")), Err(StorageError::NotAFile)));
        let (mut file, _) = open_for_reading(&dir, Path::new("f")).unwrap();
        let mut read = String::new();
        std::io::Read::read_to_string(&mut file, &mut read).unwrap();
        assert_eq!(read, "data", "a regular file reads whole, the flag notwithstanding");
        assert!(open_for_reading(&dir, Path::new("d")).unwrap().1.is_dir());
        assert!(matches!(open_for_reading(&dir, Path::new("missing")), Err(StorageError::NotFound)));
    }

    /// A program waiting to write into a FIFO in a home is not let go by a refused download:
    /// opening the FIFO at all, even without waiting, would give it a reader that goes away,
    /// and its data would be lost.
    #[test]
    fn a_refused_fifo_is_never_opened() {
        let root = tempfile::tempdir().unwrap();
        let fifo = root.path().join("p");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        let writer = std::thread::spawn({
            let fifo = fifo.clone();
            move || std::fs::write(fifo, b"for the real reader")
        });
        let dir = Dir::open_ambient_dir(root.path(), ambient_authority()).unwrap();
        for _ in 0..20 {
            assert!(matches!(open_for_reading(&dir, Path::new("p")), Err(StorageError::NotAFile)));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!writer.is_finished(), "the writer still waits for a reader");
        assert_eq!(std::fs::read(&fifo).unwrap(), b"for the real reader", "and its data reaches the real one");
        writer.join().unwrap().unwrap();
    }
}
