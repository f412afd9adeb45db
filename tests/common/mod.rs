//! Shared test harness: a real server on 127.0.0.1:0 in its own actix system, users created
//! through the library's user store (the same code `ftp-actor user add` runs), and the real
//! client library.
#![allow(dead_code)]

pub mod binary;
pub mod cluster;
pub mod ftp_control;
pub mod garage;
pub mod memory_store;
pub mod postgres;
pub mod proxy;
pub mod sftp;
pub mod tls_relay;

use std::path::{Path, PathBuf};

use ftp_actor::auth::ScryptParams;
use ftp_actor::auth::user_store::{add_user, default_home};
use ftp_actor::client::{Client, Trust};
use ftp_actor::config::Config;
use ftp_actor::server::ServerHandle;

/// Cheap scrypt for tests (the production default is log_n = 17).
pub const TEST_SCRYPT: ScryptParams = ScryptParams { log_n: 6, r: 8, p: 1 };

pub struct TestServer {
    pub handle: Option<ServerHandle>,
    pub dir: tempfile::TempDir,
    pub config: Config,
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    pub fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().join("data"),
            scrypt: TEST_SCRYPT,
            ..Config::default()
        };
        tune(&mut config);
        let handle = ServerHandle::spawn(config.clone()).unwrap();
        TestServer { handle: Some(handle), dir, config }
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().unwrap().addr
    }

    /// How clients trust this server: its certificate pinned (plain TCP with
    /// `plaintext_native`).
    pub fn trust(&self) -> Trust {
        self.handle.as_ref().unwrap().trust.clone()
    }

    /// The fingerprint of the certificate this server shows (it must speak TLS).
    pub fn fingerprint(&self) -> ftp_actor::tls::Fingerprint {
        match self.trust() {
            Trust::Pinned(fingerprint) => fingerprint,
            _ => panic!("the test server speaks TLS"),
        }
    }

    /// A server with the FTP/FTPS listener on too (on 127.0.0.1:0).
    pub fn start_ftp(tune: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_with(|config| {
            config.ftp.listen = Some("127.0.0.1:0".parse().unwrap());
            tune(config);
        })
    }

    /// A server with the SFTP listener on too (on 127.0.0.1:0).
    pub fn start_sftp(tune: impl FnOnce(&mut Config)) -> TestServer {
        Self::start_with(|config| {
            config.sftp.listen = Some("127.0.0.1:0".parse().unwrap());
            tune(config);
        })
    }

    pub fn sftp_addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().unwrap().sftp.as_ref().expect("the SFTP listener is on").addr
    }

    pub fn ftp_addr(&self) -> std::net::SocketAddr {
        self.handle.as_ref().unwrap().ftp_addr.expect("the FTP listener is on")
    }

    /// The certificate the server generated (both listeners show it), for clients to verify
    /// it with.
    pub fn cert(&self) -> PathBuf {
        self.data_dir().join(ftp_actor::tls::GENERATED_CERT)
    }

    /// The shell's options to trust this server: its certificate as `--cacert`.
    pub fn shell_trust(&self) -> [String; 2] {
        ["--cacert".to_string(), self.cert().display().to_string()]
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.data_dir().join(default_home(user))
    }

    /// Adds a user with `password` and `quota` bytes.
    pub fn add_user(&self, user: &str, password: &str, quota: u64) {
        add_user(self.data_dir(), user, password.as_bytes(), TEST_SCRYPT, quota, None).unwrap();
    }

    /// Deletes `user` from the store, as `ftp-actor user del` does; the running server sees it
    /// within a store poll.
    pub fn remove_user(&self, user: &str) {
        ftp_actor::auth::UserStore::update(self.data_dir(), |store| {
            store.users.remove(user);
            Ok(())
        })
        .unwrap();
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr(), &self.trust(), |_| {}).await.unwrap()
    }

    /// Connects and logs in; the error of either step (a banned address is refused as it
    /// connects, a wrong password at login).
    pub async fn try_login(&self, user: &str, password: &str) -> Result<Client, ftp_actor::client::ClientError> {
        let mut client = Client::connect(self.addr(), &self.trust(), |_| {}).await?;
        client.login(user, password).await?;
        Ok(client)
    }

    pub async fn login(&self, user: &str, password: &str) -> Client {
        let mut client = self.connect().await;
        client.login(user, password).await.unwrap();
        client
    }

    /// A scratch directory of the client's, created: its local working directory.
    pub fn work_dir(&self, name: &str) -> PathBuf {
        let dir = self.local(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A scratch directory for the client's local files.
    pub fn local(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("local").join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        path
    }
}

/// The server's actors for one user, started in the current actix system with no listener:
/// for driving the service, or a front end's request handling, directly.
pub struct Actors {
    pub dir: tempfile::TempDir,
    pub services: ftp_actor::actors::Services,
    pub home: PathBuf,
}

impl Actors {
    /// `user` (password `pw`) with `limit` bytes of quota and at most `max_files` entries.
    pub fn start(user: &str, limit: u64, max_files: u64) -> Actors {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().join("data"),
            scrypt: TEST_SCRYPT,
            max_concurrency: 4,
            default_max_files: max_files,
            digest_save_secs: 0,
            ..Config::default()
        };
        add_user(&config.data_dir, user, b"pw", TEST_SCRYPT, limit, None).unwrap();
        let (state, _) = ftp_actor::server::prepare_data_dir(&config).unwrap();
        let home = config.data_dir.join(default_home(user));
        let services = ftp_actor::server::start_services(config, state);
        Actors { dir, services, home }
    }

    /// The QuotaActor's figures for `user`.
    pub async fn usage(&self, user: &str) -> ftp_actor::quota::Usage {
        let asked = ftp_actor::actors::quota::GetUsage { user: user.into() };
        self.services.quota.send(asked).await.unwrap().unwrap()
    }

    /// Polls `user`'s usage until `settled` accepts it (a dropped upload settles
    /// asynchronously); panics with the last figures after five seconds.
    pub async fn wait_for_usage(
        &self,
        user: &str,
        settled: impl Fn(&ftp_actor::quota::Usage) -> bool,
    ) -> ftp_actor::quota::Usage {
        let mut last = self.usage(user).await;
        for _ in 0..100 {
            if settled(&last) {
                return last;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            last = self.usage(user).await;
        }
        panic!("the usage stayed at {last:?}");
    }
}

/// Bytes of every regular file under `dir`, partials included.
pub fn tree_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() { tree_bytes(&entry.path()) } else { meta.len() }
        })
        .sum()
}

/// Runs `child` until `watched` holds at least `at_least` bytes, then kills it (SIGKILL): a
/// client killed in the middle of a transfer. Fails if the client ends first, or after 60 s.
pub fn kill_when_holding(mut child: std::process::Child, watched: &Path, at_least: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(watched).map_or(0, |m| m.len()) < at_least {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the client ended ({status}) before {} held {at_least} bytes", watched.display());
        }
        assert!(std::time::Instant::now() < deadline, "{} never held {at_least} bytes", watched.display());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Fails the test with the command's exit status and output unless it succeeded.
pub fn must_succeed(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{what} failed ({:?})\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A command's standard output and error, as one text.
pub fn output_text(output: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Reads one native frame; `None` when the server closed the connection. A missing frame
/// fails the test after 30 s instead of hanging it.
pub async fn read_frame(stream: &mut (impl tokio::io::AsyncRead + Unpin)) -> Option<ftp_actor::net::Response> {
    use tokio::io::AsyncReadExt;
    let mut prefix = [0u8; 4];
    let read = stream.read_exact(&mut prefix);
    tokio::time::timeout(std::time::Duration::from_secs(30), read).await.expect("no hang").ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).await.ok()?;
    Some(ftp_actor::net::codec::decode(&body).expect("the server sends valid frames"))
}

/// Trust in the server whose data directory is `data_dir`: the certificate it generated there,
/// pinned by its fingerprint (the server must have started: it generates the certificate).
pub fn pinned_trust(data_dir: &Path) -> Trust {
    let chain = ftp_actor::tls::load_chain(&data_dir.join(ftp_actor::tls::GENERATED_CERT)).unwrap();
    Trust::Pinned(ftp_actor::tls::Fingerprint::of(&chain[0]))
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A FIFO at `path`, as another program sharing the disk could make one.
pub fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(ftp_actor::storage::md5_of(data))
}

/// Bytes of the regular files directly in `dir`, partials included: what the quota counts
/// for a home without subdirectories.
pub fn disk_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap())
        .filter(|meta| meta.is_file())
        .map(|meta| meta.len())
        .sum()
}

/// Files, directories and partials under `dir`, each one: what `max_files` counts.
pub fn disk_entries(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            1 + if entry.file_type().unwrap().is_dir() { disk_entries(&entry.path()) } else { 0 }
        })
        .sum()
}

/// Polls the session's quota until `settled` accepts it, for at most 10 seconds: the quota
/// settles asynchronously after a dropped upload or a store change (this waits for a state,
/// it does not assert a timing).
pub async fn wait_for_quota(client: &mut Client, settled: impl Fn(u64, u64) -> bool) -> (u64, u64) {
    let mut last = (0, 0);
    for _ in 0..200 {
        last = client.quota().await.unwrap();
        if settled(last.0, last.1) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the quota stayed at {last:?}");
}

/// Waits until the file at `path` holds at least `at_least` bytes (a partial upload or
/// download growing) and returns its length; panics after 20 seconds.
pub fn wait_for_len_blocking(path: &Path, at_least: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len >= at_least {
            return len;
        }
        assert!(std::time::Instant::now() < deadline, "{} never reached {at_least} bytes", path.display());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// [`wait_for_len_blocking`] for async tests.
pub async fn wait_for_len(path: &Path, at_least: u64) -> u64 {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || wait_for_len_blocking(&path, at_least)).await.unwrap()
}

/// ftplib does not resume the control connection's TLS session on its data connections, which
/// servers that require it (vsftpd's `require_ssl_reuse`, ours by default) refuse with 522.
/// The usual fix, documented in docs/INTEROP.md, prepended to the ftplib scripts of the tests.
pub const REUSING_FTP_TLS: &str = r#"
import ftplib
class ReusingFTP_TLS(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=self.sock.session)
        return conn, size
"#;

/// Runs an ftplib `script`, after [`REUSING_FTP_TLS`], with `args` (for at most 120 s); it must
/// succeed. Its standard output, trimmed.
pub fn ftplib_script(what: &str, script: &str, args: &[&str]) -> String {
    let program = format!("{REUSING_FTP_TLS}{script}");
    let output = std::process::Command::new("timeout")
        .args(["120", "python3", "-c", &program])
        .args(args)
        .output()
        .expect("cannot run python3");
    must_succeed(what, &output);
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}
