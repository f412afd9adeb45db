//! The deployment's secret: unknown users' fake challenges, the names the access log hides and
//! the login cache's keys derive from it. One per deployment, not per process: instances behind
//! one address must give an unknown user the same challenge, or asking twice would tell that the
//! name is not a user's.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::auth::scram::Key;

/// Where the secret is kept.
pub trait SecretSource {
    /// The secret, created (at random) the first time it is asked for.
    fn load_or_create(&self) -> std::io::Result<Key>;
}

/// `server.secret` (32 random bytes, mode 0600) in the data directory: shared by every process
/// serving that directory.
pub struct SecretFile {
    pub path: PathBuf,
}

impl SecretSource for SecretFile {
    fn load_or_create(&self) -> std::io::Result<Key> {
        if let Ok(bytes) = std::fs::read(&self.path)
            && let Ok(key) = Key::try_from(bytes.as_slice())
        {
            return Ok(key);
        }
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        let mut file =
            std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&self.path)?;
        file.write_all(&key)?;
        file.sync_all()?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_secret_is_made_once_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = SecretFile { path: dir.path().join("server.secret") };
        let first = file.load_or_create().unwrap();
        assert_eq!(file.load_or_create().unwrap(), first, "a second process reads the same secret");
        let mode = std::fs::metadata(&file.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
