//! A real PostgreSQL for one test, started by the project's own `scripts/postgres.sh` (Debian's
//! server, its own data directory, a loopback port, a SCRAM password), stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres.sh");

pub struct Postgres {
    /// The directory the script keeps the server in (its parent must be enterable by the
    /// `postgres` user, so not inside a 0700 temporary directory).
    dir: tempfile::TempDir,
    /// `postgres://...` for `state.postgres.url`.
    pub url: String,
    /// The CA of the server's certificate, when it takes TLS connections only.
    pub ca: Option<PathBuf>,
}

fn script(args: &[&str]) -> String {
    let output = Command::new("bash").arg(SCRIPT).args(args).output().unwrap();
    super::must_succeed(&format!("postgres.sh {}", args.join(" ")), &output);
    String::from_utf8(output.stdout).unwrap()
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(&[])
    }

    /// A server that refuses TCP connections without TLS; its certificate is signed by a CA
    /// of its own ([`Postgres::ca`]).
    pub fn start_with_tls() -> Postgres {
        Postgres::start_with(&["--tls"])
    }

    fn start_with(flags: &[&str]) -> Postgres {
        let dir = tempfile::Builder::new().prefix("ftp-actor-pg-").tempdir_in("/tmp").unwrap();
        let server_dir = Self::server_dir(dir.path());
        let printed = script(&[&["start", server_dir.as_str()][..], flags].concat());
        let printed = |name: &str| printed.lines().find_map(|line| line.strip_prefix(name)).map(str::to_string);
        let url = printed("FTP_ACTOR_PG_URL=").unwrap();
        Postgres { dir, url, ca: printed("FTP_ACTOR_PG_CA=").map(PathBuf::from) }
    }

    fn server_dir(dir: &Path) -> String {
        dir.join("pg").to_str().unwrap().to_string()
    }

    pub fn stop(&self) {
        script(&["stop", &Self::server_dir(self.dir.path())]);
    }

    /// Starts it again after [`Postgres::stop`], on the same port, with the same data.
    pub fn restart(&self) {
        let port = std::fs::read_to_string(PathBuf::from(Self::server_dir(self.dir.path())).join("port")).unwrap();
        script(&["start", &Self::server_dir(self.dir.path()), port.trim()]);
    }

    /// The config lines that put an instance's state in this database.
    pub fn state_config(&self) -> String {
        let mut config = format!("[state]\nbackend = \"postgres\"\n\n[state.postgres]\nurl = \"{}\"\n", self.url);
        if let Some(ca) = &self.ca {
            config.push_str(&format!("tls_ca_file = \"{}\"\n", ca.display()));
        }
        config
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(SCRIPT).args(["stop", &Self::server_dir(self.dir.path())]).output();
    }
}
