//! Both directions of a connection in one value, for a caller that wants one stream (the
//! client's framed connection), with the session's channel binding beside them.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::handshake::Established;
use super::reader::RecordReader;
use super::writer::RecordWriter;
use crate::auth::scram::KEY_LEN;

pub struct RecordStream<R, W> {
    reader: RecordReader<R>,
    writer: RecordWriter<W>,
    channel_binding: [u8; KEY_LEN],
}

impl<R, W> RecordStream<R, W> {
    /// The connection after `established`, on its halves `read` and `write`.
    pub fn new(established: Established, read: R, write: W) -> Self {
        let channel_binding = established.channel_binding;
        let (reader, writer) = established.over(read, write);
        RecordStream { reader, writer, channel_binding }
    }

    /// The session's `tls-exporter` channel binding data (RFC 9266).
    pub fn channel_binding(&self) -> [u8; KEY_LEN] {
        self.channel_binding
    }
}

impl<R: AsyncRead + Unpin, W: Unpin> AsyncRead for RecordStream<R, W> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

impl<R: Unpin, W: AsyncWrite + Unpin> AsyncWrite for RecordStream<R, W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().writer).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().writer).poll_shutdown(cx)
    }
}
