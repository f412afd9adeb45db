//! Which servers the client trusts, and the connection it opens: TLS 1.3 to the native
//! listener, with the server's certificate checked one of three ways (roots given with
//! `--cacert`, a pinned fingerprint, or the known-servers file with trust on first use, as
//! OpenSSH does), or plain TCP for a test server configured with `plaintext_native`.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio_util::either::Either;

use super::ClientError;
use super::known_servers;
use crate::tls::Fingerprint;
use crate::tls::records::{self, RecordStream};

/// The connection under the frames: plain TCP, or TLS over it (boxed: a TLS connection's
/// state is about a kilobyte). The records after the handshake are protected by
/// [`crate::tls::records`], as on the server.
pub type Transport = Either<TcpStream, Box<RecordStream<OwnedReadHalf, OwnedWriteHalf>>>;

/// Decides, for a server not in the known-servers file, whether to trust the certificate it
/// showed (`server` is `HOST:PORT`). The shell asks its user.
pub type AskFirstUse = Arc<dyn Fn(&str, &Fingerprint) -> bool + Send + Sync>;

/// How the server's certificate is checked.
#[derive(Clone)]
pub enum Trust {
    /// No TLS at all: for a server configured with `plaintext_native` (loopback tests only).
    Plaintext,
    /// Certificates that chain to these roots and name the server (`--cacert FILE`).
    Roots(Arc<rustls::RootCertStore>),
    /// Exactly the certificate with this fingerprint.
    Pinned(Fingerprint),
    /// The fingerprint recorded in `file` for the server; a server not recorded yet is trusted
    /// only if `first_use` says so, and then recorded.
    KnownServers { file: PathBuf, first_use: FirstUse },
}

/// What to do with a server the known-servers file does not name.
#[derive(Clone)]
pub enum FirstUse {
    /// Ask (the shell shows the fingerprint and asks its user).
    Ask(AskFirstUse),
    /// Trust it and record it (`--accept-new-server`, like OpenSSH's `accept-new`).
    Accept,
    /// Refuse (batch mode, unless told to accept).
    Refuse,
}

impl Trust {
    /// Roots read from a PEM file of one or more certificates (`--cacert`).
    pub fn from_ca_file(path: &Path) -> Result<Trust, ClientError> {
        let invalid = |message: String| ClientError::Local {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        };
        let chain = crate::tls::load_chain(path).map_err(|e| invalid(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        for certificate in chain {
            roots.add(certificate).map_err(|e| invalid(format!("not a usable certificate: {e}")))?;
        }
        Ok(Trust::Roots(Arc::new(roots)))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(crate::tls::native_provider())
}

/// What the verifier expects of the certificate.
#[derive(Debug)]
enum Expect {
    /// Anything (a first use: the caller decides after the handshake).
    Any,
    Exactly(Fingerprint),
    Chain(Arc<dyn ServerCertVerifier>),
}

/// Checks the server's certificate as [`Expect`] says, and keeps its fingerprint for the
/// caller's messages. Handshake signatures are always checked against the certificate.
#[derive(Debug)]
struct Verifier {
    expect: Expect,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    fn seen(&self) -> Option<Fingerprint> {
        *self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Fingerprint::of(end_entity);
        *self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(seen);
        match &self.expect {
            Expect::Any => Ok(ServerCertVerified::assertion()),
            Expect::Exactly(known) if *known == seen => Ok(ServerCertVerified::assertion()),
            Expect::Exactly(_) => Err(rustls::Error::General("not the certificate this server is known by".into())),
            Expect::Chain(roots) => {
                roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The host part of `HOST:PORT` (an IPv6 address loses its brackets).
fn host_of(server: &str) -> &str {
    let host = server.rsplit_once(':').map_or(server, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// Connects to `addr` and, unless `trust` is [`Trust::Plaintext`], runs the TLS handshake and
/// checks the server's certificate. Nothing of the protocol is sent yet.
///
/// When a person was asked whether to trust a new server, the connection is opened again once
/// the answer is recorded: the first one may have outlived the server's login timeout while
/// they read the fingerprint.
pub async fn open_transport(addr: impl ToSocketAddrs + Display, trust: &Trust) -> Result<Transport, ClientError> {
    let server = addr.to_string();
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    match handshake(stream, &server, trust).await? {
        (transport, false) => Ok(transport),
        (_, true) => {
            let stream = TcpStream::connect(server.as_str()).await?;
            stream.set_nodelay(true)?;
            Ok(handshake(stream, &server, trust).await?.0)
        }
    }
}

/// [`open_transport`] on a connection open to `server` (`HOST:PORT`, the name the certificate
/// is checked for and the known-servers file records); `true` if a person was asked.
async fn handshake(stream: TcpStream, server: &str, trust: &Trust) -> Result<(Transport, bool), ClientError> {
    let server = server.to_string();
    let (expect, first_use) = match trust {
        Trust::Plaintext => return Ok((Either::Left(stream), false)),
        Trust::Roots(roots) => {
            let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(roots.clone(), provider())
                .build()
                .map_err(|e| ClientError::Protocol(format!("cannot use the --cacert roots: {e}")))?;
            (Expect::Chain(chain), None)
        }
        Trust::Pinned(fingerprint) => (Expect::Exactly(*fingerprint), None),
        Trust::KnownServers { file, first_use } => {
            let known = known_servers::read(file, &server)
                .map_err(|source| ClientError::Local { path: file.display().to_string(), source })?;
            match known {
                Some(fingerprint) => (Expect::Exactly(fingerprint), None),
                None => (Expect::Any, Some((file, first_use))),
            }
        }
    };
    let verifier = Arc::new(Verifier { expect, seen: Mutex::new(None), provider: provider() });
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Protocol(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(host_of(&server).to_string())
        .map_err(|_| ClientError::Protocol(format!("{server}: not a host name or address")))?;
    let mut stream = stream;
    let established = match records::connect(&mut stream, config, name).await {
        Ok(established) => established,
        Err(failed) => return Err(refused(&server, trust, &verifier, failed.into())),
    };
    let (read, write) = stream.into_split();
    let tls = RecordStream::new(established, read, write);
    let mut asked = false;
    if let Some((file, first_use)) = first_use {
        let seen = verifier.seen().ok_or_else(|| ClientError::Protocol("the server showed no certificate".into()))?;
        let trusted = match first_use {
            FirstUse::Ask(ask) => {
                asked = true;
                ask(&server, &seen)
            }
            FirstUse::Accept => true,
            FirstUse::Refuse => false,
        };
        if !trusted {
            return Err(ClientError::ServerCertUnknown { server, seen, file: file.clone() });
        }
        known_servers::remember(file, &server, &seen)
            .map_err(|source| ClientError::Local { path: file.display().to_string(), source })?;
    }
    Ok((Either::Right(Box::new(tls)), asked))
}

/// The TLS session's `tls-exporter` channel binding data (RFC 9266), as the client sees it;
/// `None` without TLS.
pub fn channel_binding(transport: &Transport) -> Option<[u8; crate::auth::scram::KEY_LEN]> {
    let Either::Right(tls) = transport else { return None };
    Some(tls.channel_binding())
}

/// The error for a failed handshake: a certificate other than the one expected, one the
/// roots do not vouch for, or TLS failing altogether.
fn refused(server: &str, trust: &Trust, verifier: &Verifier, failed: std::io::Error) -> ClientError {
    let server = server.to_string();
    match (&verifier.expect, verifier.seen()) {
        (Expect::Exactly(known), Some(seen)) if *known != seen => {
            let file = match trust {
                Trust::KnownServers { file, .. } => Some(file.clone()),
                _ => None,
            };
            ClientError::ServerCertChanged { server, known: *known, seen, file }
        }
        (Expect::Chain(_), Some(seen)) if refused_certificate(&failed) => {
            ClientError::ServerCertInvalid { server, seen, reason: failed.to_string() }
        }
        _ => ClientError::Tls { server, reason: failed.to_string() },
    }
}

/// Did the handshake fail because our verifier refused the certificate?
fn refused_certificate(failed: &std::io::Error) -> bool {
    let error = failed.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(error, Some(rustls::Error::InvalidCertificate(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_taken_from_host_and_port() {
        assert_eq!(host_of("127.0.0.1:2121"), "127.0.0.1");
        assert_eq!(host_of("[::1]:2121"), "::1");
        assert_eq!(host_of("files.example.org:2121"), "files.example.org");
    }
}
