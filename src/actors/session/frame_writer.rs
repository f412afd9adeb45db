//! The task that owns a session's write half: it writes the frames the session queues, one
//! after the other, and flushes when none is left (over TLS a written frame may otherwise wait
//! in the TLS buffer for ever; see [`write_frames`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::net::activity::Activity;
use crate::net::data_frame::write_data_frame;
use crate::net::frame::encode_frame;
use crate::net::{FrameError, Response};

/// Writes one message's frame. Encoded into a buffer of its own, freed once written: a
/// session keeps no write buffer between answers.
async fn send_frame<W: AsyncWrite + Unpin>(sink: &mut W, response: &Response) -> Result<(), FrameError> {
    let frame = encode_frame(response)?;
    sink.write_all(&frame).await?;
    Ok(())
}

/// Writes the session's frames. A client that reads nothing for `stall` (the socket stays
/// full) is given up on: the task ends and drops the socket, which also unblocks the session.
/// A slow client that reads is not: the stall counts time in which no byte goes out.
///
/// Once `finish` fires (or the session is gone), the frames already queued are written, then
/// the sending half is shut down: the client reads our last answer, then the end of the data.
pub(super) async fn write_frames<W: AsyncWrite + Unpin>(
    mut sink: W,
    mut queue: mpsc::Receiver<Response>,
    mut finish: oneshot::Receiver<()>,
    sent: Arc<Activity>,
    stall: Duration,
) {
    let mut finishing = false;
    loop {
        let response = tokio::select! {
            biased;
            response = queue.recv() => match response {
                Some(response) => response,
                None => break,
            },
            _ = &mut finish, if !finishing => {
                finishing = true;
                queue.close();
                continue;
            }
        };
        let written = match &response {
            // A download's chunk goes out from where it is (see `net::data_frame`).
            Response::Data { bytes } => sent.unless_stalled(stall, write_data_frame(&mut sink, bytes)).await,
            _ => sent.unless_stalled(stall, send_frame(&mut sink, &response)).await,
        };
        if !matches!(written, Some(Ok(()))) {
            return;
        }
        // Over TLS a write is done once its bytes are encrypted, though the records may still
        // wait in the TLS buffer for room in the socket: only a flush, or a later write, sends
        // them. With no frame queued behind this one, nothing else would, and a client waiting
        // for this answer (a download's last chunk and `get_end` on a slow link) would wait
        // for ever.
        if queue.is_empty() && !matches!(sent.unless_stalled(stall, sink.flush()).await, Some(Ok(()))) {
            return;
        }
    }
    let _ = sent.unless_stalled(stall, sink.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use tokio::io::AsyncReadExt;

    /// The server's sending half (our TLS records) and a rustls client over an in-memory pipe
    /// of `capacity` bytes each way, the server with the certificate it would generate.
    async fn tls_pair(
        capacity: usize,
    ) -> (
        crate::tls::records::RecordWriter<tokio::io::WriteHalf<tokio::io::DuplexStream>>,
        tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
    ) {
        let (server, config) = crate::tls::records::tests::configs();
        let client = tokio_rustls::TlsConnector::from(Arc::new(config));
        let (mut near, far) = tokio::io::duplex(capacity);
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(crate::tls::records::accept(&mut near, &server), client.connect(name, far));
        let (read, write) = tokio::io::split(near);
        (server.unwrap().over(read, write).1, client.unwrap())
    }

    /// The regression of a session that hung on a slow link: the last frame of a download was
    /// written into the TLS buffer while the socket was full and never sent, so the client
    /// waited for it for ever. Here the client reads slowly, a few KiB at a time, so the pipe
    /// is full when the writer takes the last frame.
    #[tokio::test]
    async fn the_last_frame_reaches_a_slow_reader_over_tls() {
        let (server, mut client) = tls_pair(16 << 10).await;
        let (queue, frames) = mpsc::channel(8);
        let (_finish, finished) = oneshot::channel();
        let writer = tokio::spawn(write_frames(server, frames, finished, Activity::new(), Duration::from_secs(60)));
        let chunk = bytes::Bytes::from(vec![7u8; 200 << 10]);
        for _ in 0..3 {
            queue.send(Response::Data { bytes: chunk.clone() }).await.unwrap();
        }
        queue.send(Response::DONE).await.unwrap();
        let mut received = Vec::new();
        let mut buffer = vec![0u8; 4 << 10];
        let read_all = async {
            loop {
                let n = client.read(&mut buffer).await.unwrap();
                assert!(n > 0, "the stream ended early");
                received.extend_from_slice(&buffer[..n]);
                if let Some(last) = last_frame(&received) {
                    return last;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        };
        let last = tokio::time::timeout(Duration::from_secs(20), read_all).await;
        let last = last.expect("the last frame never arrived: it was left in the TLS buffer");
        assert!(matches!(last, Response::Done { .. }), "{last:?}");
        drop(queue);
        writer.await.unwrap();
    }

    /// The fourth frame in `bytes` (length-prefixed), once all of it is there.
    fn last_frame(mut bytes: &[u8]) -> Option<Response> {
        for index in 0..4 {
            let len = u32::from_be_bytes(bytes.get(..4)?.try_into().unwrap()) as usize;
            let body = bytes.get(4..4 + len)?;
            if index == 3 {
                return Some(serde_cbor::from_slice(body).unwrap());
            }
            bytes = &bytes[4 + len..];
        }
        None
    }
}
