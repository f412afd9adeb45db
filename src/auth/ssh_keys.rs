//! Users' SSH public keys, for SFTP logins: read from OpenSSH `authorized_keys` lines, kept in
//! the user store as such lines (without options), and matched against the key a client
//! proves it holds. A public key logs in nobody by itself: the client must sign with its
//! private key, which never leaves it.

use russh::keys::{HashAlg, PublicKey};

/// A line that is not a public key this server can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct KeyLineError {
    pub line: usize,
    pub message: String,
}

/// The public keys of `text` in OpenSSH `authorized_keys` form: one key per line (`type base64
/// [comment]`); blank lines and `#` comments are skipped. A line with options (`from="..."`,
/// `command="..."`) is refused, not silently widened: options are not enforced here.
pub fn parse_authorized_keys(text: &str) -> Result<Vec<PublicKey>, KeyLineError> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let error = |message: String| KeyLineError { line: index + 1, message };
        let key = PublicKey::from_openssh(line).map_err(|parsed| {
            let starts_with_type = line.starts_with("ssh-") || line.starts_with("ecdsa-") || line.starts_with("sk-");
            if starts_with_type {
                error(format!("not a valid public key ({parsed})"))
            } else {
                error("options before the key (from=, command=, ...) are not supported; give the key alone".into())
            }
        })?;
        keys.push(key);
    }
    Ok(keys)
}

/// The key as stored: its OpenSSH line, comment kept.
pub fn stored_line(key: &PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

/// The key's SHA-256 fingerprint, as OpenSSH prints it (`SHA256:...`).
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Is `offered` one of the `stored` lines' keys? Compares the keys, not the comments.
pub fn is_authorized(stored: &[String], offered: &PublicKey) -> bool {
    stored.iter().filter_map(|line| PublicKey::from_openssh(line).ok()).any(|key| key.key_data() == offered.key_data())
}

/// The fingerprint of a stored line (unreadable lines, which `ftp-actor user key` never writes,
/// show as such).
pub fn fingerprint_of_line(line: &str) -> String {
    PublicKey::from_openssh(line).map_or_else(|_| "(unreadable key)".to_string(), |key| fingerprint(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";
    const OTHER: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILM+rvN+ot98qgEN796jTiQfZfG1KaT0PtFDJ/XFSqti";

    #[test]
    fn authorized_keys_lines_are_read_with_comments_and_blanks_skipped() {
        let text = format!("# my keys\n\n{ED25519}\n  {OTHER}  \n");
        let keys = parse_authorized_keys(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(stored_line(&keys[0]), ED25519);
        assert!(fingerprint(&keys[0]).starts_with("SHA256:"));
        assert_ne!(fingerprint(&keys[0]), fingerprint(&keys[1]));
    }

    #[test]
    fn options_and_garbage_are_refused_with_their_line_number() {
        let with_options = format!("{ED25519}\nfrom=\"10.0.0.1\" {OTHER}\n");
        let error = parse_authorized_keys(&with_options).unwrap_err();
        assert_eq!(error.line, 2);
        assert!(error.message.contains("options"), "{error}");
        let garbage = parse_authorized_keys("ssh-ed25519 not-base64").unwrap_err();
        assert_eq!(garbage.line, 1);
        assert!(garbage.message.contains("not a valid public key"), "{garbage}");
    }

    #[test]
    fn a_key_is_authorized_by_its_key_not_its_comment() {
        let offered =
            PublicKey::from_openssh(&format!("{} someone-else", &ED25519[..ED25519.rfind(' ').unwrap()])).unwrap();
        assert!(is_authorized(&[ED25519.to_string()], &offered));
        assert!(!is_authorized(&[OTHER.to_string()], &offered));
        assert!(!is_authorized(&[], &offered));
    }
}
