//! TLS for explicit FTPS (RFC 4217) with rustls: the configurations of control and data
//! connections, and the stream type that is plain until `AUTH TLS` (control) or `PROT P`
//! (data) says otherwise. The certificate is the server's one (see [`crate::tls`]).

use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use super::session_tickets::{ControlTickets, DataTickets, TicketRegistry};
pub use crate::tls::{
    GENERATED_CERT, GENERATED_KEY, TlsSetupError, certificate_paths, generate_if_missing, server_config,
};

/// The TLS configurations of an FTP listener's connections.
#[derive(Clone)]
pub struct FtpTls {
    pub control: Arc<rustls::ServerConfig>,
    /// Like `control`, but sends no TLS 1.3 session tickets: a client that only writes to a
    /// data connection (an upload) never reads them, and a socket closed with unread bytes
    /// sends a reset instead of a FIN, which can destroy the end of the upload in flight.
    /// Sessions are still resumed with the control connection's tickets.
    pub data: Arc<rustls::ServerConfig>,
    /// The ticket keys of the listener's control connections.
    registry: Arc<TicketRegistry>,
    /// A control connection's own tickets (`None` for the listener's configurations).
    pub tickets: Option<Arc<ControlTickets>>,
}

impl FtpTls {
    /// The configurations for one control connection from `address`, with session state of
    /// its own: a ticket key and a session cache no other control connection shares, so that
    /// its data connections can be held to sessions of the user's control connections (see
    /// `ftp::session_tickets`). That is how a data connection is tied to its control
    /// connection (vsftpd's `require_ssl_reuse`): another client that races to the passive
    /// port can do a full handshake, but not resume such a session, and is refused.
    pub fn for_session(&self, address: IpAddr) -> Result<FtpTls, rustls::Error> {
        let tickets = ControlTickets::new(&self.registry, address)?;
        let mut control = (*self.control).clone();
        control.ticketer = tickets.clone();
        control.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSIONS_PER_CONTROL);
        Ok(FtpTls {
            control: Arc::new(control),
            data: self.data.clone(),
            registry: self.registry.clone(),
            tickets: Some(tickets),
        })
    }

    /// The configuration of one data connection from `address` (after [`FtpTls::for_session`]),
    /// and its tickets, which say after the handshake whose session it resumed.
    pub fn for_data(&self, address: IpAddr) -> (Arc<rustls::ServerConfig>, Option<Arc<DataTickets>>) {
        let Some(control) = &self.tickets else { return (self.data.clone(), None) };
        let tickets = DataTickets::new(self.registry.clone(), control, address);
        let mut data = (*self.data).clone();
        data.ticketer = tickets.clone();
        // Sessions resumed by ID (TLS 1.2) come from the control connection's own cache.
        data.session_storage = self.control.session_storage.clone();
        (Arc::new(data), Some(tickets))
    }
}

/// Sessions one control connection's cache holds (its own, and TLS 1.2 resumptions of it).
const SESSIONS_PER_CONTROL: usize = 8;

/// Loads the certificate and key into the configurations of both kinds of connection.
pub fn ftp_tls(cert: &Path, key: &Path) -> Result<FtpTls, TlsSetupError> {
    let control = server_config(cert, key)?;
    let mut data = (*control).clone();
    data.send_tls13_tickets = 0;
    Ok(FtpTls { control, data: Arc::new(data), registry: Arc::default(), tickets: None })
}

/// A TCP stream, with TLS once it has been negotiated.
pub enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<TlsStream<PromptAck>>),
}

/// A TCP stream that, while `prompt` is on, acknowledges what it reads at once
/// (`TCP_QUICKACK` after every read; Linux clears the flag by itself, so once is not enough).
///
/// Used during the TLS handshake: a client that writes its TLS 1.3 ChangeCipherSpec and
/// Finished in two writes with Nagle on (lftp with GnuTLS) holds the Finished until the first
/// write is acknowledged, and a delayed ACK makes that 40 ms per connection: 22 s instead of
/// 0.7 s for a mirror of 500 small files.
pub struct PromptAck {
    stream: TcpStream,
    prompt: bool,
}

impl AsyncRead for PromptAck {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let read = Pin::new(&mut this.stream).poll_read(cx, buf);
        if this.prompt && matches!(read, Poll::Ready(Ok(()))) {
            let _ = socket2::SockRef::from(&this.stream).set_tcp_quickack(true);
        }
        read
    }
}

super::writes_through::writes_through!(PromptAck, stream);

impl MaybeTls {
    pub fn is_tls(&self) -> bool {
        matches!(self, MaybeTls::Tls(_))
    }

    /// Did the TLS handshake resume an earlier session (rather than negotiate a new one)?
    pub fn resumed_session(&self) -> bool {
        match self {
            MaybeTls::Plain(_) => false,
            MaybeTls::Tls(stream) => stream.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
        }
    }

    /// Runs the server side of a TLS handshake on a plain stream.
    pub async fn accept(stream: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<MaybeTls> {
        let stream = PromptAck { stream, prompt: true };
        let mut tls = tokio_rustls::TlsAcceptor::from(config).accept(stream).await?;
        tls.get_mut().0.prompt = false;
        Ok(MaybeTls::Tls(Box::new(tls)))
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_flush(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    /// For TLS this sends close_notify first, which tells the client the data really ended.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            MaybeTls::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}
