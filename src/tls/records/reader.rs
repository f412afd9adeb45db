//! The receiving half of a connection whose records we open ourselves.
//!
//! Records are read into one buffer, opened where they lie, and their plaintext copied out
//! once, into the caller's buffer, while it is still in the cache. rustls' own reader copies
//! each record's plaintext twice on the way (see [`super`]). A quiet connection holds no
//! buffer, as [`LeanFramedRead`](crate::net::lean_read) does above it.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use rustls::ContentType;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::io::poll_read_buf;

use super::key_updates::{KEY_UPDATE, KeyUpdates, NEW_SESSION_TICKET};
use super::protection::{MAX_RECORD, Opener, RecordError, record_len};

/// What one read from the connection may bring: a few whole records.
const READ_BUFFER: usize = 4 * MAX_RECORD;

/// The alert that ends a connection in good order (RFC 8446, section 6.1).
const CLOSE_NOTIFY: u8 = 0;

pub struct RecordReader<R> {
    io: R,
    keys: Arc<KeyUpdates>,
    opener: Opener,
    /// A client drops the session tickets a server may send: the native client never resumes.
    client: bool,
    /// Bytes read: `buffer[start..]` are not opened yet.
    buffer: BytesMut,
    start: usize,
    /// Opened plaintext not handed out yet, in `buffer`.
    plain: Range<usize>,
    /// Plaintext rustls opened during the handshake (a client's first request may come with
    /// its last handshake message), handed out first.
    early: Vec<u8>,
    /// The peer's close_notify came: the end of the stream.
    closed: bool,
}

impl<R> RecordReader<R> {
    /// `received` are the bytes read during the handshake after its last record, `early` the
    /// plaintext rustls opened among them.
    pub(super) fn new(
        io: R,
        keys: Arc<KeyUpdates>,
        opener: Opener,
        client: bool,
        received: Vec<u8>,
        early: Vec<u8>,
    ) -> Self {
        let buffer = BytesMut::from(&received[..]);
        RecordReader { io, keys, opener, client, buffer, start: 0, plain: 0..0, early, closed: false }
    }

    /// Bytes of buffer held now (for tests).
    pub fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Opens the next whole record in the buffer, if there is one.
    fn open_next(&mut self) -> Result<bool, RecordError> {
        let Some(len) = record_len(&self.buffer[self.start..])? else { return Ok(false) };
        if self.buffer.len() - self.start < len {
            return Ok(false);
        }
        let at = self.start;
        let (typ, range) = self.opener.open(&mut self.buffer[at..at + len])?;
        self.start += len;
        let range = at + range.start..at + range.end;
        match typ {
            ContentType::ApplicationData => self.plain = range,
            ContentType::Alert => self.closed = is_close_notify(&self.buffer[range])?,
            ContentType::Handshake => after_handshake(&self.keys, &mut self.opener, self.client, &self.buffer[range])?,
            _ => return Err(RecordError::Unexpected("a record of an unknown inner type")),
        }
        Ok(true)
    }

    /// Room at the end of the buffer for at least one whole record, once every opened byte
    /// is handed out: what is left of a record moves to the front when the end is near.
    fn make_room(&mut self) {
        if self.buffer.capacity() == 0 {
            self.buffer.reserve(READ_BUFFER);
        }
        if self.buffer.capacity() - self.buffer.len() < MAX_RECORD {
            self.buffer.advance(self.start);
            (self.start, self.plain) = (0, 0..0);
            self.buffer.reserve(MAX_RECORD);
        }
    }
}

/// An alert: `true` for the close_notify that ends a connection in good order, an error for
/// any other.
fn is_close_notify(alert: &[u8]) -> Result<bool, RecordError> {
    match alert {
        [_, CLOSE_NOTIFY] => Ok(true),
        [_, description] => Err(RecordError::Alert(*description)),
        _ => Err(RecordError::Unexpected("a malformed alert")),
    }
}

/// Handshake messages after the handshake: a key update (the peer's records from here on are
/// opened with its next keys), or, to a client, a session ticket (dropped: the native client
/// never resumes). Each must lie whole in one record, as every TLS 1.3 stack sends them.
fn after_handshake(
    keys: &KeyUpdates,
    opener: &mut Opener,
    client: bool,
    mut messages: &[u8],
) -> Result<(), RecordError> {
    while let [typ, a, b, c, rest @ ..] = messages {
        let len = u32::from_be_bytes([0, *a, *b, *c]) as usize;
        let Some((body, after)) = rest.split_at_checked(len) else { break };
        match (*typ, body) {
            // The keys change after this message: nothing may follow it in its record.
            (KEY_UPDATE, [requested @ (0 | 1)]) if after.is_empty() => {
                *opener = Opener::new(keys.suite, keys.peer_updated(*requested == 1)?, 0)?;
            }
            (KEY_UPDATE, _) => return Err(RecordError::Unexpected("a malformed KeyUpdate")),
            (NEW_SESSION_TICKET, _) if client => {}
            _ => return Err(RecordError::Unexpected("a handshake message after the handshake")),
        }
        messages = after;
    }
    match messages {
        [] => Ok(()),
        _ => Err(RecordError::Unexpected("a handshake message split across records")),
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for RecordReader<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.early.is_empty() {
            let n = this.early.len().min(out.remaining());
            out.put_slice(&this.early[..n]);
            this.early.drain(..n);
            return Poll::Ready(Ok(()));
        }
        let before = out.filled().len();
        loop {
            if !this.plain.is_empty() {
                let n = this.plain.len().min(out.remaining());
                out.put_slice(&this.buffer[this.plain.start..this.plain.start + n]);
                this.plain.start += n;
            }
            if out.remaining() == 0 || this.closed {
                return Poll::Ready(Ok(()));
            }
            if this.open_next()? {
                continue;
            }
            if out.filled().len() > before {
                return Poll::Ready(Ok(()));
            }
            this.make_room();
            match poll_read_buf(Pin::new(&mut this.io), cx, &mut this.buffer) {
                Poll::Pending => {
                    if this.start == this.buffer.len() {
                        // Quiet, with nothing half-read: hold nothing until bytes arrive.
                        (this.buffer, this.start, this.plain) = (BytesMut::new(), 0, 0..0);
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(RecordError::Truncated.into())),
                Poll::Ready(Ok(_)) => {}
            }
        }
    }
}
