//! The native listener's TLS: the server waits for the client's TLS handshake, which a client
//! of protocol version 2 starts at once. A client of version 1 sends nothing and waits for a
//! `welcome`; it is told in plain text, after [`HELLO_WAIT`], that TLS is required (error 103),
//! rather than left hanging. Bytes that do not start a TLS handshake are told the same.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::records::{self, Established};

use super::frame::encode_frame;
use super::{ErrorCode, Response, WireError};

/// How long a connection may stay silent before the server takes it for a version 1 client.
/// Every version 2 client sends its TLS hello with the connection's first packet.
pub const HELLO_WAIT: Duration = Duration::from_secs(2);

/// A TLS record of type handshake (RFC 8446, section 5.1) begins a ClientHello.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Runs the server side of the handshake within `patience`; `None` if the client did not
/// complete one (it was told why if it did not even start).
pub async fn accept(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    patience: Duration,
) -> Option<(TcpStream, Established)> {
    let mut stream = wait_for_hello(stream, patience).await?;
    let established = handshake(&mut stream, &config, patience).await?;
    Some((stream, established))
}

/// Waits (at most [`HELLO_WAIT`], or `patience` if shorter) for the client to start TLS. A
/// client that does not is told so, in plain text, and the connection closed: `None`.
pub async fn wait_for_hello(stream: TcpStream, patience: Duration) -> Option<TcpStream> {
    let mut first = [0u8; 1];
    let started = match tokio::time::timeout(HELLO_WAIT.min(patience), stream.peek(&mut first)).await {
        Ok(Ok(1)) => first[0] == TLS_HANDSHAKE_RECORD,
        Ok(_) => return None,
        Err(_) => false,
    };
    if !started {
        tell_tls_required(stream).await;
        return None;
    }
    Some(stream)
}

/// The server's side of the TLS handshake on `stream` (the connection itself, or a wrapper
/// that watches its bytes), within `patience`. The records after it are ours to protect: see
/// [`Established::over`].
pub async fn handshake<S>(stream: &mut S, config: &Arc<rustls::ServerConfig>, patience: Duration) -> Option<Established>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = records::accept(stream, config);
    match tokio::time::timeout(patience, handshake).await {
        Ok(Ok(established)) => Some(established),
        Ok(Err(error)) => {
            tracing::debug!(%error, "native TLS handshake failed");
            None
        }
        Err(_) => None,
    }
}

/// Tells a client that did not start TLS, in plain text, and closes.
async fn tell_tls_required(mut stream: TcpStream) {
    let error = WireError::from(ErrorCode::TlsRequired);
    if let Ok(frame) = encode_frame(&Response::error(error)) {
        let _ = tokio::time::timeout(HELLO_WAIT, stream.write_all(&frame)).await;
    }
    let _ = stream.shutdown().await;
}
