//! The control connection's stream: [`MaybeTls`], which also reads past TCP's urgent mark.
//!
//! Clients send ABOR as TCP urgent data (RFC 959 section 4.1.3 asks them to): Python's
//! ftplib's `abort()` sends `ABOR\r\n` with its last byte urgent, the BSD client Telnet's
//! "data mark" before `ABOR`. The session keeps urgent bytes in the stream (`SO_OOBINLINE`),
//! but Linux still ends a read just before the urgent mark, and tokio takes a short read for a
//! drained socket: it waits for the next readiness event, which the bytes already there never
//! raise. The `\n` of that ABOR would wait until the client sent something else, and the
//! client waits for the answer to ABOR. So after a read that ends inside a line, the next reads
//! go to the socket at once, without waiting for readiness, until it has nothing more.

use std::io::{self, Read};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;

use super::tls::MaybeTls;

pub struct ControlStream {
    stream: MaybeTls,
    /// The last read ended inside a line, perhaps at an urgent mark: the next reads go to the
    /// socket directly until it has nothing more, then readiness events take over again.
    read_on: bool,
}

impl ControlStream {
    /// Keeps urgent bytes in the stream, where the rest of their line is (`SO_OOBINLINE`).
    pub fn new(stream: TcpStream) -> ControlStream {
        let _ = socket2::SockRef::from(&stream).set_out_of_band_inline(true);
        ControlStream { stream: MaybeTls::Plain(stream), read_on: false }
    }

    /// The stream after `AUTH TLS`: TLS records carry no urgent data.
    pub fn tls(stream: MaybeTls) -> ControlStream {
        ControlStream { stream, read_on: false }
    }

    pub fn get_ref(&self) -> &MaybeTls {
        &self.stream
    }

    pub fn into_inner(self) -> MaybeTls {
        self.stream
    }
}

/// Reads what the socket holds now into `buf`, without waiting for it to be readable (it is
/// non-blocking). `Ok(false)` if it holds nothing.
fn read_now(stream: &TcpStream, buf: &mut ReadBuf<'_>) -> io::Result<bool> {
    match (&*socket2::SockRef::from(stream)).read(buf.initialize_unfilled()) {
        Ok(read) => {
            buf.advance(read);
            Ok(true)
        }
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(error) => Err(error),
    }
}

impl AsyncRead for ControlStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let MaybeTls::Plain(stream) = &mut this.stream else {
            return Pin::new(&mut this.stream).poll_read(cx, buf);
        };
        if this.read_on {
            match read_now(stream, buf) {
                // Bytes, or the end of the stream.
                Ok(true) => return Poll::Ready(Ok(())),
                Ok(false) => this.read_on = false,
                Err(error) => {
                    this.read_on = false;
                    return Poll::Ready(Err(error));
                }
            }
        }
        let from = buf.filled().len();
        ready!(Pin::new(stream).poll_read(cx, buf))?;
        let read = &buf.filled()[from..];
        this.read_on = !read.is_empty() && !read.ends_with(b"\n");
        Poll::Ready(Ok(()))
    }
}

super::writes_through::writes_through!(ControlStream, stream);
