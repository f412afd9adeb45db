//! The shell's known-servers file: the certificate fingerprint each server showed when its
//! user first trusted it, one line per server (`HOST:PORT SHA256:...`), as OpenSSH keeps
//! `known_hosts`. A later connection must show the same certificate.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::tls::Fingerprint;

/// `$XDG_CONFIG_HOME/ftp-actor/known_servers`, else `~/.config/ftp-actor/known_servers`.
pub fn default_path() -> Option<PathBuf> {
    let config = match std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".config"),
    };
    Some(config.join("ftp-actor").join("known_servers"))
}

/// The fingerprint recorded for `server` in the file's text: its first line that names it.
/// Comments (`#`), blank lines and lines that are not `NAME FINGERPRINT` are skipped.
pub fn lookup(text: &str, server: &str) -> Option<Fingerprint> {
    text.lines().filter(|line| !line.trim_start().starts_with('#')).find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some(name), Some(fingerprint)) if name == server => fingerprint.parse().ok(),
            _ => None,
        }
    })
}

/// The fingerprint recorded for `server` in `file`, if the file exists and names it.
pub fn read(file: &Path, server: &str) -> io::Result<Option<Fingerprint>> {
    match std::fs::read_to_string(file) {
        Ok(text) => Ok(lookup(&text, server)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Appends `server`'s fingerprint to `file`, creating the file (mode 0600) and its directory
/// (0700) if needed.
pub fn remember(file: &Path, server: &str, fingerprint: &Fingerprint) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    }
    let mut out = std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(file)?;
    writeln!(out, "{server} {fingerprint}")?;
    out.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_line_naming_a_server_counts_and_junk_is_skipped() {
        let (a, b) = (Fingerprint::of(b"a"), Fingerprint::of(b"b"));
        let text = format!(
            "# known servers\n\nnot a line\n10.0.0.1:2121 SHA256:broken\nlocalhost:2121 {a}\n10.0.0.1:2121 {b}\nlocalhost:2121 {b}\n"
        );
        assert_eq!(lookup(&text, "localhost:2121"), Some(a));
        assert_eq!(lookup(&text, "10.0.0.1:2121"), Some(b));
        assert_eq!(lookup(&text, "localhost:21"), None);
        assert_eq!(lookup(&format!("# localhost:2121 {a}\n"), "localhost:2121"), None);
    }

    #[test]
    fn remembered_servers_are_read_back_from_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("new-dir").join("known_servers");
        assert_eq!(read(&file, "h:1").unwrap(), None);
        remember(&file, "h:1", &Fingerprint::of(b"1")).unwrap();
        remember(&file, "h:2", &Fingerprint::of(b"2")).unwrap();
        assert_eq!(read(&file, "h:1").unwrap(), Some(Fingerprint::of(b"1")));
        assert_eq!(read(&file, "h:2").unwrap(), Some(Fingerprint::of(b"2")));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
