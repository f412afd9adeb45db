//! The simplest possible copy over loopback, with no protocol, no framing, no actors and no
//! quota: what moving a file's bytes costs on this machine, so that the large transfer
//! targets can be read against what any server could reach here.
//!
//! One thread reads the source file in chunks and writes them to a real loopback TCP
//! connection; another reads the connection and writes the destination file. Each end reuses
//! one buffer, so nothing is allocated per chunk. With `move` neither end hashes: its CPU time
//! is the least that moving the bytes costs, which `bench/compare.py` adds to the MD5 passes
//! for each round's lower bound. `put` (both ends hash, as a verified upload must) and `get`
//! (only the receiver hashes, as in a download whose digest the sender knows) are for
//! comparisons by hand; their wall time is no floor, since each end hashes and moves the bytes
//! on one thread, one after the other (ftp-actor's pipelined transfers are faster).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use ftp_actor::integrity::{Digest, Md5};

/// Which verified transfer to reproduce.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    /// Both ends hash.
    Put,
    /// Only the receiving end hashes.
    Get,
    /// Neither end hashes: what moving the bytes alone costs.
    Move,
}

/// What one floor run measured.
pub struct FloorRun {
    pub seconds: f64,
    pub md5: String,
}

/// Copies `source` to `destination` through a loopback connection in `chunk`-byte pieces.
pub fn copy(direction: Direction, source: &Path, destination: &Path, chunk: usize) -> Result<FloorRun> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let mut input = File::open(source).with_context(|| source.display().to_string())?;
    let mut output = File::create(destination).with_context(|| destination.display().to_string())?;
    let started = Instant::now();
    let sender = std::thread::spawn(move || -> Result<Option<[u8; 16]>> {
        let mut socket = TcpStream::connect(addr)?;
        let mut hasher = (direction == Direction::Put).then(Md5::new);
        let mut buffer = vec![0u8; chunk];
        loop {
            let got = input.read(&mut buffer)?;
            if got == 0 {
                return Ok(hasher.map(|h| h.finalize().into()));
            }
            if let Some(hasher) = &mut hasher {
                hasher.update(&buffer[..got]);
            }
            socket.write_all(&buffer[..got])?;
        }
    });
    let (mut socket, _) = listener.accept()?;
    let mut hasher = (direction != Direction::Move).then(Md5::new);
    let mut buffer = vec![0u8; chunk];
    loop {
        let got = socket.read(&mut buffer)?;
        if got == 0 {
            break;
        }
        output.write_all(&buffer[..got])?;
        if let Some(hasher) = &mut hasher {
            hasher.update(&buffer[..got]);
        }
    }
    let received: Option<[u8; 16]> = hasher.map(|h| h.finalize().into());
    let sent = sender.join().map_err(|_| anyhow::anyhow!("the sending thread panicked"))??;
    let seconds = started.elapsed().as_secs_f64();
    if sent.is_some() && sent != received {
        bail!("the copy's MD5 differs from the source's");
    }
    Ok(FloorRun { seconds, md5: received.map_or_else(|| "-".into(), hex::encode) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The floor copies must be real copies: the benchmark's lower bound is only as good as
    /// the transfer it times. A chunk smaller than the file makes both ends loop.
    #[test]
    fn each_direction_copies_the_file_exactly_and_hashes_as_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source.bin");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 + i / 257) as u8).collect();
        std::fs::write(&source, &data).unwrap();
        let expected = hex::encode(Md5::digest(&data));
        for (direction, md5) in
            [(Direction::Put, expected.as_str()), (Direction::Get, &expected), (Direction::Move, "-")]
        {
            let destination = dir.path().join("copy.bin");
            let run = copy(direction, &source, &destination, 4096).unwrap();
            assert_eq!(run.md5, md5);
            assert_eq!(std::fs::read(&destination).unwrap(), data);
        }
    }
}
