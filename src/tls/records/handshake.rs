//! The TLS 1.3 handshake, all rustls', on a connection whose records we then protect
//! ourselves: rustls' unbuffered connection driven over the socket, then turned into its
//! `KernelConnection` (the interface rustls offers kernel TLS), which keeps only what key
//! updates need.
//!
//! Every byte read is ours: records that arrive with the handshake's last message (a
//! client's first request) are kept, opened by rustls if it got to them, and handed to the
//! reader, so nothing is lost between the handshake and the records after it.

use std::sync::Arc;

use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::kernel::KernelConnection;
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, UnbufferedStatus};
use rustls::{ClientConfig, CommonState, ExtractedSecrets, ServerConfig, SupportedCipherSuite};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::exporter::{ExporterSecret, export};
use super::key_updates::{KeyUpdates, NextSecrets};
use super::protection::{MAX_RECORD, Opener, RecordError, Sealer};
use super::reader::RecordReader;
use super::writer::RecordWriter;
use crate::auth::scram::{KEY_LEN, TLS_EXPORTER_LABEL};

/// Room for the handshake's reads; it grows if a flight is longer (a long certificate chain).
const HANDSHAKE_BUFFER: usize = 8 << 10;

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS: the connection closed during the handshake")]
    Closed,
    #[error("TLS: the handshake did not end in TLS 1.3")]
    NotTls13,
    #[error("TLS: the handshake gave no exporter secret")]
    NoExporter,
    #[error("TLS: {0}")]
    Record(#[from] RecordError),
}

impl From<HandshakeError> for std::io::Error {
    /// A rustls error stays the inner error, so a caller can tell a refused certificate.
    fn from(error: HandshakeError) -> std::io::Error {
        match error {
            HandshakeError::Io(error) => error,
            HandshakeError::Tls(error) => std::io::Error::new(std::io::ErrorKind::InvalidData, error),
            HandshakeError::Closed => std::io::ErrorKind::UnexpectedEof.into(),
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}

/// A completed handshake: the keys, and the bytes read past it.
pub struct Established {
    /// The session's `tls-exporter` channel binding data (RFC 9266).
    pub channel_binding: [u8; KEY_LEN],
    keys: Arc<KeyUpdates>,
    opener: Opener,
    sealer: Sealer,
    client: bool,
    received: Vec<u8>,
    early: Vec<u8>,
}

impl Established {
    /// The connection's two directions, on its two halves.
    pub fn over<R, W>(self, read: R, write: W) -> (RecordReader<R>, RecordWriter<W>) {
        let reader = RecordReader::new(read, self.keys.clone(), self.opener, self.client, self.received, self.early);
        (reader, RecordWriter::new(write, self.keys, self.sealer))
    }
}

/// The server's side of the handshake on `io`. `config` is the native listener's (secret
/// extraction on); this connection gets a copy of it with a key log of its own, for the
/// exporter secret (see [`super::exporter`]).
pub async fn accept<S>(io: &mut S, config: &Arc<ServerConfig>) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exporter = Arc::new(ExporterSecret::default());
    let mut config = ServerConfig::clone(config);
    config.key_log = exporter.clone();
    drive(UnbufferedServerConnection::new(Arc::new(config))?, io, &exporter).await
}

/// The client's side of the handshake on `io`, with `config` as given (secret extraction
/// and the exporter's key log are set here).
pub async fn connect<S>(
    io: &mut S,
    mut config: ClientConfig,
    name: ServerName<'static>,
) -> Result<Established, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let exporter = Arc::new(ExporterSecret::default());
    config.key_log = exporter.clone();
    config.enable_secret_extraction = true;
    drive(UnbufferedClientConnection::new(Arc::new(config), name)?, io, &exporter).await
}

/// What the handshake needs of rustls' unbuffered connections, client or server.
trait Unbuffered: Sized {
    type Data;
    const CLIENT: bool;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    fn state(&self) -> &CommonState;
    fn into_kernel(self) -> Result<(ExtractedSecrets, KernelConnection<Self::Data>), rustls::Error>;
}

/// The two connections answer alike, under the same names: one impl each, written once.
macro_rules! unbuffered {
    ($connection:ty, $data:ty, $client:expr) => {
        impl Unbuffered for $connection {
            type Data = $data;
            const CLIENT: bool = $client;
            fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
                self.process_tls_records(incoming)
            }
            fn state(&self) -> &CommonState {
                self
            }
            fn into_kernel(self) -> Result<(ExtractedSecrets, KernelConnection<Self::Data>), rustls::Error> {
                self.dangerous_into_kernel_connection()
            }
        }
    };
}

unbuffered!(UnbufferedServerConnection, ServerConnectionData, false);
unbuffered!(UnbufferedClientConnection, ClientConnectionData, true);

/// What the loop does after a state is handled.
enum Next {
    Process,
    Read,
    /// rustls may send application data; the handshake is over unless a server still waits
    /// for the client's Finished (it may send before it has it).
    MaySend,
}

async fn drive<C, S>(mut conn: C, io: &mut S, exporter: &ExporterSecret) -> Result<Established, HandshakeError>
where
    C: Unbuffered,
    KernelConnection<C::Data>: NextSecrets + 'static,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut incoming, mut used) = (vec![0u8; HANDSHAKE_BUFFER], 0);
    let (mut outgoing, mut pending) = (vec![0u8; HANDSHAKE_BUFFER], 0);
    let mut early = Vec::new();
    loop {
        let UnbufferedStatus { mut discard, state } = conn.process(&mut incoming[..used]);
        let state = match state {
            Ok(state) => state,
            Err(error) => {
                send_alert(&mut conn, io).await;
                return Err(error.into());
            }
        };
        let next = match state {
            ConnectionState::EncodeTlsData(mut encode) => {
                loop {
                    match encode.encode(&mut outgoing[pending..]) {
                        Ok(written) => break pending += written,
                        Err(EncodeError::InsufficientSize(short)) => outgoing.resize(pending + short.required_size, 0),
                        Err(EncodeError::AlreadyEncoded) => break,
                    }
                }
                Next::Process
            }
            ConnectionState::TransmitTlsData(transmit) => {
                io.write_all(&outgoing[..pending]).await?;
                pending = 0;
                transmit.done();
                Next::Process
            }
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record?;
                    discard += record.discard;
                    early.extend_from_slice(record.payload);
                }
                Next::Process
            }
            ConnectionState::BlockedHandshake => Next::Read,
            ConnectionState::WriteTraffic(_) => Next::MaySend,
            _ => return Err(HandshakeError::Closed),
        };
        incoming.copy_within(discard..used, 0);
        used -= discard;
        match next {
            Next::Process => continue,
            Next::MaySend if !conn.state().is_handshaking() => break,
            Next::Read | Next::MaySend => {}
        }
        if used == incoming.len() {
            incoming.resize((2 * used).max(MAX_RECORD), 0);
        }
        match io.read(&mut incoming[used..]).await? {
            0 => return Err(HandshakeError::Closed),
            read => used += read,
        }
    }
    let Some(SupportedCipherSuite::Tls13(suite)) = conn.state().negotiated_cipher_suite() else {
        return Err(HandshakeError::NotTls13);
    };
    let secret = exporter.take().ok_or(HandshakeError::NoExporter)?;
    let mut channel_binding = [0u8; KEY_LEN];
    export(suite, &secret, TLS_EXPORTER_LABEL, &[], &mut channel_binding);
    let (secrets, kernel) = conn.into_kernel()?;
    let keys = Arc::new(KeyUpdates::new(suite, Box::new(kernel)));
    let opener = Opener::new(suite, secrets.rx.1, secrets.rx.0)?;
    let sealer = Sealer::new(suite, secrets.tx.1, secrets.tx.0)?;
    incoming.truncate(used);
    Ok(Established { channel_binding, keys, opener, sealer, client: C::CLIENT, received: incoming, early })
}

/// After a failed handshake step, sends the alert rustls prepared for the peer, if any (a
/// refused certificate, a broken message), so the peer hears why; best effort.
async fn send_alert<C: Unbuffered, S: AsyncWrite + Unpin>(conn: &mut C, io: &mut S) {
    let mut alert = [0u8; 64];
    let written = match conn.process(&mut []).state {
        Ok(ConnectionState::EncodeTlsData(mut encode)) => encode.encode(&mut alert).unwrap_or(0),
        _ => 0,
    };
    if written > 0 {
        let _ = io.write_all(&alert[..written]).await;
    }
}
