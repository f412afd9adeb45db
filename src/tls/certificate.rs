//! The server's TLS certificate, for both listeners (the native protocol and FTPS).
//!
//! The certificate comes from the config (`ftp.tls_cert`, `ftp.tls_key`, PEM). Without one, a
//! self-signed certificate for `localhost`, `127.0.0.1` and `::1` is generated on first start
//! and kept in the data directory (`ftp-tls-cert.pem`, `ftp-tls-key.pem`, mode 0600), so its
//! fingerprint stays the same across restarts and clients can pin it (`curl --cacert`, the
//! shell's known servers).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// File names of the generated certificate and key inside the data directory.
pub const GENERATED_CERT: &str = "ftp-tls-cert.pem";
pub const GENERATED_KEY: &str = "ftp-tls-key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("TLS certificate {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("TLS certificate {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("cannot generate a TLS certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Where the certificate and key are: the configured files, or the generated pair.
pub fn certificate_paths(data_dir: &Path, cert: &Path, key: &Path) -> (PathBuf, PathBuf) {
    if cert.as_os_str().is_empty() {
        (data_dir.join(GENERATED_CERT), data_dir.join(GENERATED_KEY))
    } else {
        (cert.to_path_buf(), key.to_path_buf())
    }
}

/// Generates the self-signed pair if `cert` does not exist yet. Blocking.
pub fn generate_if_missing(cert: &Path, key: &Path) -> Result<bool, TlsSetupError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if cert.exists() {
        return Ok(false);
    }
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let generated = rcgen::generate_simple_self_signed(names).map_err(|e| TlsSetupError::Generate(e.to_string()))?;
    let write = |path: &Path, text: String| -> Result<(), TlsSetupError> {
        let io = |source| TlsSetupError::Read { path: path.to_path_buf(), source };
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    };
    // The key first: a crash in between leaves no certificate, so the next start generates again.
    write(key, generated.signing_key.serialize_pem())?;
    write(cert, generated.cert.pem())?;
    Ok(true)
}

/// The certificate chain in `cert` (PEM), the server's own certificate first.
pub fn load_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let pem_error =
        |e: rustls::pki_types::pem::Error| TlsSetupError::Pem { path: cert.to_path_buf(), message: e.to_string() };
    let chain =
        CertificateDer::pem_file_iter(cert).map_err(pem_error)?.collect::<Result<Vec<_>, _>>().map_err(pem_error)?;
    if chain.is_empty() {
        return Err(TlsSetupError::Pem { path: cert.to_path_buf(), message: "no certificate in the file".into() });
    }
    Ok(chain)
}

/// The rustls server configuration for FTPS (TLS 1.2 and 1.3: FTP clients still speak 1.2).
/// Sessions are cached (rustls' default in-memory cache), so clients that resume the control
/// connection's TLS session on data connections can.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    Ok(Arc::new(build(cert, key, rustls::DEFAULT_VERSIONS, rustls::crypto::ring::default_provider())?))
}

/// The rustls server configuration for the native protocol: TLS 1.3 only. Every native client
/// is ours, so nothing needs 1.2, and 1.3 is what the login's channel binding (`tls-exporter`,
/// RFC 9266) is defined for without the extended-master-secret caveats of 1.2.
///
/// After the handshake the records are ours to protect ([`crate::tls::records`]), so the
/// secrets may be extracted; and no session tickets are sent: a native client never resumes
/// (each connection is a login of its own), and tickets cost every login two more records.
pub fn native_server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let mut config = build(cert, key, &[&rustls::version::TLS13], native_provider())?;
    config.enable_secret_extraction = true;
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The cryptography of the native protocol, both ends: ring's, with AES-128-GCM first. Both
/// ends are ours, and of TLS 1.3's suites it is the cheapest per byte on CPUs with AES
/// instructions (every transferred byte is encrypted once and decrypted once, beside MD5).
pub fn native_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite::{
        TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
    };
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256],
        ..rustls::crypto::ring::default_provider()
    }
}

fn build(
    cert: &Path,
    key: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    provider: rustls::crypto::CryptoProvider,
) -> Result<rustls::ServerConfig, TlsSetupError> {
    let chain = load_chain(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsSetupError::Pem { path: key.to_path_buf(), message: e.to_string() })?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = certificate_paths(dir.path(), Path::new(""), Path::new(""));
        assert!(generate_if_missing(&cert, &key).unwrap());
        let first = std::fs::read(&cert).unwrap();
        assert!(!generate_if_missing(&cert, &key).unwrap());
        assert_eq!(std::fs::read(&cert).unwrap(), first, "the certificate survives a restart");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        server_config(&cert, &key).unwrap();
        native_server_config(&cert, &key).unwrap();
    }

    #[test]
    fn a_broken_certificate_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let error = server_config(&cert, &dir.path().join("missing.pem")).unwrap_err();
        assert!(error.to_string().contains("cert.pem"), "{error}");
    }
}
