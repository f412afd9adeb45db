//! A framed reader that holds no buffer while its connection is quiet.
//!
//! `tokio_util`'s `FramedRead` allocates an 8 KiB buffer up front and keeps it for the life of
//! the connection. A server holding thousands of connections that send nothing (silent sockets
//! before login, idle sessions) would hold that much for each. This reader gives its buffer
//! back whenever a read finds nothing to read and nothing is left half-decoded, and allocates
//! again when bytes arrive. A busy connection keeps its buffer between back-to-back frames;
//! a quiet one costs only the socket. A half-received frame keeps what has arrived (the codec
//! bounds it: see [`FrameCodec`](super::FrameCodec)).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::Decoder;
use tokio_util::io::poll_read_buf;

/// Room made for each read when the buffer has less, as `FramedRead` does.
const READ_ROOM: usize = 8 << 10;

pub struct LeanFramedRead<R, D> {
    inner: R,
    decoder: D,
    buffer: BytesMut,
    eof: bool,
}

impl<R, D> LeanFramedRead<R, D> {
    pub fn new(inner: R, decoder: D) -> LeanFramedRead<R, D> {
        LeanFramedRead { inner, decoder, buffer: BytesMut::new(), eof: false }
    }

    /// Bytes of buffer held now (for tests).
    pub fn buffer_capacity(&self) -> usize {
        self.buffer.capacity()
    }
}

impl<R, D> Stream for LeanFramedRead<R, D>
where
    R: AsyncRead + Unpin,
    D: Decoder + Unpin,
{
    type Item = Result<D::Item, D::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.eof {
                return match this.decoder.decode_eof(&mut this.buffer) {
                    Ok(Some(item)) => Poll::Ready(Some(Ok(item))),
                    Ok(None) => Poll::Ready(None),
                    Err(error) => Poll::Ready(Some(Err(error))),
                };
            }
            match this.decoder.decode(&mut this.buffer) {
                Ok(Some(item)) => return Poll::Ready(Some(Ok(item))),
                Ok(None) => {}
                Err(error) => return Poll::Ready(Some(Err(error))),
            }
            if this.buffer.capacity() - this.buffer.len() < READ_ROOM / 2 {
                this.buffer.reserve(READ_ROOM);
            }
            match poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buffer) {
                Poll::Pending => {
                    if this.buffer.is_empty() {
                        // Quiet, with nothing half-read: hold nothing until bytes arrive.
                        this.buffer = BytesMut::new();
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Ok(0)) => this.eof = true,
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error.into()))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{FrameCodec, Request, Response};
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn frames_are_read_and_a_quiet_connection_holds_no_buffer() {
        let (near, mut far) = tokio::io::duplex(1 << 16);
        let mut reader = LeanFramedRead::new(near, FrameCodec::<Request, Response>::new(1 << 20));
        assert_eq!(reader.buffer_capacity(), 0, "nothing allocated before a byte arrives");
        let frame = crate::net::frame::encode_frame(&Request::Pwd).unwrap();
        let mut two = frame.clone();
        two.extend_from_slice(&frame);
        far.write_all(&two).await.unwrap();
        assert!(matches!(reader.next().await, Some(Ok(Ok(Request::Pwd)))));
        assert!(matches!(reader.next().await, Some(Ok(Ok(Request::Pwd)))));
        // Nothing more to read: the next poll finds the connection quiet and lets go.
        assert!(futures::poll!(reader.next()).is_pending());
        assert_eq!(reader.buffer_capacity(), 0);
        // Half a frame is kept while the rest is awaited.
        far.write_all(&frame[..3]).await.unwrap();
        assert!(futures::poll!(reader.next()).is_pending());
        assert!(reader.buffer_capacity() > 0);
        far.write_all(&frame[3..]).await.unwrap();
        assert!(matches!(reader.next().await, Some(Ok(Ok(Request::Pwd)))));
        drop(far);
        assert!(reader.next().await.is_none(), "the end of the stream ends the frames");
    }
}
