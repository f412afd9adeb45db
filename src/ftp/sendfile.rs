//! RETR over a plain data connection, with sendfile(2): the kernel moves the file's pages to
//! the socket, with no copy through our memory and no hand-off per chunk (vsftpd and
//! pyftpdlib send the same way). A TLS data connection must encrypt every byte, so it goes
//! through the copying loop of `transfer::send_file_copying` instead.
//!
//! The whole file goes out in one disk job, on a blocking socket: that keeps the file's reads
//! on the disk pool, as every other file access. The socket's send timeout is the stall limit,
//! so a client that stops reading ends the job after `transfer_stall_secs` without a byte
//! moving (at most twice that, if a call had sent a little before the client stopped). If
//! the transfer is dropped midway (ABOR, a forced close), a guard shuts the socket down, and
//! the job's next send fails at once.

use std::net::{Shutdown, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use crate::storage::{DownloadSession, StorageError};

/// Bytes asked of each sendfile call: the kernel sends them in a loop of its own.
const CALL_BYTES: usize = 8 << 20;

/// How a sendfile transfer ended early.
#[derive(Debug)]
pub enum SendError {
    /// No byte could be sent for the stall limit.
    Stalled,
    /// The client closed the data connection, or it broke.
    Lost,
    /// Reading the file failed, or it changed during the transfer.
    Storage(StorageError),
}

/// Sends the rest of `download` to `socket`, blocking; run it on the disk pool, on a socket in
/// blocking mode with `stall` as its send timeout ([`prepare`]). Only for a download that
/// [`sends_file`](DownloadSession::sends_file).
pub fn send_rest(download: &mut impl DownloadSession, socket: &TcpStream) -> Result<(), SendError> {
    while !download.is_done() {
        match download.send_to(socket.as_fd(), CALL_BYTES) {
            Ok(0) => return Err(SendError::Storage(StorageError::ChangedDuringTransfer)),
            Ok(_) => {}
            Err(error) => match error.kind() {
                std::io::ErrorKind::Interrupted => {}
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => return Err(SendError::Stalled),
                std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected => return Err(SendError::Lost),
                _ => return Err(SendError::Storage(StorageError::Io(error))),
            },
        }
    }
    Ok(())
}

/// Takes the data connection off the runtime for a blocking job: blocking mode, `stall` as the
/// send timeout. Returns the socket and the guard that shuts it down if the job is abandoned.
pub fn prepare(stream: tokio::net::TcpStream, stall: Duration) -> std::io::Result<(TcpStream, ShutdownOnDrop)> {
    let socket = stream.into_std()?;
    socket.set_nonblocking(false)?;
    socket.set_write_timeout(Some(stall.max(Duration::from_millis(1))))?;
    let guard = ShutdownOnDrop(Some(socket.try_clone()?));
    Ok((socket, guard))
}

/// Shuts a socket down when dropped armed: a transfer dropped midway (ABOR, a forced close)
/// must not leave its job sending into the data connection.
pub struct ShutdownOnDrop(Option<TcpStream>);

impl ShutdownOnDrop {
    /// The job ended by itself: nothing to stop.
    pub fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        if let Some(socket) = self.0.take() {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }
}
