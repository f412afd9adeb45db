//! The sending half of a connection whose records we seal ourselves (with rustls' encrypter,
//! as its own writer does): a write seals what it is given into whole records and sends them
//! before it takes more, so nothing waits in a buffer for a flush that may never come.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use rustls::ContentType;
use tokio::io::AsyncWrite;

use super::key_updates::{KEY_UPDATE_NOT_REQUESTED, KeyUpdates};
use super::protection::{MAX_PLAINTEXT, RecordError, Sealer};

/// The most plaintext one write seals before it sends: a few records.
const WRITE_BATCH: usize = 4 * MAX_PLAINTEXT;

/// The alert that ends a connection in good order: level warning, close_notify.
const CLOSE_NOTIFY: [u8; 2] = [1, 0];

pub struct RecordWriter<W> {
    io: W,
    keys: Arc<KeyUpdates>,
    sealer: Sealer,
    /// Sealed records not yet sent, the first `sent` bytes of the first one already out.
    unsent: VecDeque<Vec<u8>>,
    sent: usize,
    /// Our close_notify is sealed: nothing more may be.
    closing: bool,
}

impl<W> RecordWriter<W> {
    pub(super) fn new(io: W, keys: Arc<KeyUpdates>, sealer: Sealer) -> Self {
        RecordWriter { io, keys, sealer, unsent: VecDeque::new(), sent: 0, closing: false }
    }

    /// The connection under the records.
    pub fn get_ref(&self) -> &W {
        &self.io
    }

    /// Makes the keys wear out after `records` more records (their real limit is millions).
    #[cfg(test)]
    pub fn wear_out_after(&mut self, records: u64) {
        self.sealer.wear_out_after(records);
    }

    /// Records sealed since the last key update (or the handshake).
    #[cfg(test)]
    pub fn records_under_current_keys(&self) -> u64 {
        self.sealer.sequence()
    }

    /// Seals one record, updating our keys first when the peer asked or ours are worn out.
    fn seal(&mut self, typ: ContentType, plaintext: &[&[u8]]) -> Result<(), RecordError> {
        if self.keys.take_request() || self.sealer.worn_out() {
            let announce = self.sealer.seal(ContentType::Handshake, &[&KEY_UPDATE_NOT_REQUESTED])?;
            self.unsent.push_back(announce);
            self.sealer = Sealer::new(self.keys.suite, self.keys.update_ours()?, 0)?;
        }
        let record = self.sealer.seal(typ, plaintext)?;
        self.unsent.push_back(record);
        Ok(())
    }

    /// Seals up to [`WRITE_BATCH`] bytes of `bufs` into records of at most
    /// [`MAX_PLAINTEXT`] each; how many bytes it took.
    fn seal_batch(&mut self, bufs: &[IoSlice<'_>]) -> Result<usize, RecordError> {
        let mut taken = 0;
        let mut parts: Vec<&[u8]> = Vec::with_capacity(bufs.len().min(4));
        let mut in_record = 0;
        let mut slices = bufs.iter().map(|buf| &buf[..]).filter(|buf| !buf.is_empty());
        let mut current = slices.next();
        while let Some(slice) = current {
            if taken == WRITE_BATCH {
                break;
            }
            let n = slice.len().min(MAX_PLAINTEXT - in_record).min(WRITE_BATCH - taken);
            parts.push(&slice[..n]);
            (taken, in_record) = (taken + n, in_record + n);
            current = if n == slice.len() { slices.next() } else { Some(&slice[n..]) };
            if in_record == MAX_PLAINTEXT || current.is_none() || taken == WRITE_BATCH {
                self.seal(ContentType::ApplicationData, &parts)?;
                parts.clear();
                in_record = 0;
            }
        }
        Ok(taken)
    }
}

impl<W: AsyncWrite + Unpin> RecordWriter<W> {
    /// Sends the sealed records; ready once all are out.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(first) = self.unsent.front() {
            let slices: Vec<IoSlice<'_>> = std::iter::once(IoSlice::new(&first[self.sent..]))
                .chain(self.unsent.iter().skip(1).map(|record| IoSlice::new(record)))
                .collect();
            let mut written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            while let Some(first) = self.unsent.front() {
                let left = first.len() - self.sent;
                if written < left {
                    self.sent += written;
                    break;
                }
                written -= left;
                self.sent = 0;
                self.unsent.pop_front();
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for RecordWriter<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        if this.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let taken = this.seal_batch(bufs)?;
        // The records go out now if the socket has room; if not, the next write or the
        // flush sends them: they are ours to send, and the caller's bytes are taken.
        if let Poll::Ready(Err(error)) = this.poll_send(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            ready!(this.poll_send(cx))?;
            this.seal(ContentType::Alert, &[&CLOSE_NOTIFY])?;
            this.closing = true;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
