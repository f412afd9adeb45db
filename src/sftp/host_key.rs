//! The SSH host key that identifies the SFTP listener: the configured file, or an Ed25519 key
//! generated once in the data directory. Clients remember it (OpenSSH's `known_hosts`), so it
//! must survive restarts: generated once, then loaded, never replaced silently.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};

/// The generated key's file name in the data directory.
pub const GENERATED_HOST_KEY: &str = "ssh-host-ed25519-key";

#[derive(Debug, thiserror::Error)]
pub enum HostKeyError {
    #[error("SSH host key {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("SSH host key {path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// Where the host key is: `configured`, or the generated one in `data_dir`.
pub fn host_key_path(data_dir: &Path, configured: &Path) -> PathBuf {
    if configured.as_os_str().is_empty() { data_dir.join(GENERATED_HOST_KEY) } else { configured.to_path_buf() }
}

/// Loads the host key at `path`; when the path is the generated one and no file is there yet,
/// generates an Ed25519 key first (mode 0600, created exclusively: two servers starting on one
/// data directory cannot write two keys).
pub fn load_or_generate(path: &Path, generate: bool) -> Result<PrivateKey, HostKeyError> {
    let io = |source| HostKeyError::Io { path: path.to_path_buf(), source };
    if generate && !path.exists() {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
        let text = key
            .to_openssh(LineEnding::LF)
            .map_err(|error| HostKeyError::Format { path: path.to_path_buf(), message: error.to_string() })?;
        match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(mut file) => {
                file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io)?;
                tracing::info!(path = %path.display(), "generated an SSH host key");
            }
            // Another process generated it meanwhile: load theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io(error)),
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    PrivateKey::from_openssh(text.as_bytes())
        .map_err(|error| HostKeyError::Format { path: path.to_path_buf(), message: error.to_string() })
}

/// The key's fingerprint as OpenSSH prints it (`SHA256:` and unpadded base64).
pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_private_to_its_owner_and_loaded_again_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = host_key_path(dir.path(), Path::new(""));
        let first = load_or_generate(&path, true).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        let again = load_or_generate(&path, true).unwrap();
        assert_eq!(fingerprint(&first), fingerprint(&again));
        assert!(fingerprint(&first).starts_with("SHA256:"));
        assert_eq!(first.algorithm(), russh::keys::Algorithm::Ed25519);
    }

    #[test]
    fn a_configured_key_that_is_missing_or_garbage_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(load_or_generate(&missing, false), Err(HostKeyError::Io { .. })));
        assert!(!missing.exists());
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, "not a key").unwrap();
        assert!(matches!(load_or_generate(&garbage, false), Err(HostKeyError::Format { .. })));
    }
}
