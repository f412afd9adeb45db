//! The real `ftp-actor serve` binary as a child process, on 127.0.0.1:0, with a config file
//! written by the test and users created beforehand through the library's user store.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ftp_actor::auth::user_store::{add_user, default_home};

use super::TEST_SCRYPT;

pub const BIN: &str = env!("CARGO_BIN_EXE_ftp-actor");

pub struct Served {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub native: String,
    pub ftp: Option<String>,
    /// The SFTP listener's address, when started with `--sftp-listen`.
    pub sftp: Option<String>,
    /// The metrics endpoint's address, when started with `--metrics-listen`.
    pub metrics: Option<String>,
    /// Everything the server wrote to its log (stderr) so far.
    pub log: Arc<Mutex<String>>,
    /// Started with `plaintext_native = true`: the native listener has no TLS.
    pub plaintext: bool,
}

/// What a test sets before the server starts.
pub struct Launch<'a> {
    /// Config file text; `[scrypt] log_n = 6` is added.
    pub config: &'a str,
    pub ftp: bool,
    pub users: &'a [(&'a str, &'a str)],
    /// The open-files limit (soft and hard) the server starts with.
    pub open_files: Option<u64>,
    /// The users' scrypt cost; `None`: the tests' cheap one.
    pub scrypt: Option<ftp_actor::auth::ScryptParams>,
}

impl<'a> Launch<'a> {
    /// The user alice (password `pw`, the tests' scrypt cost), no descriptor limit.
    pub fn alice(config: &'a str, ftp: bool) -> Launch<'a> {
        Launch { config, ftp, users: &[("alice", "pw")], open_files: None, scrypt: None }
    }
}

impl Served {
    pub fn start(launch: Launch) -> Served {
        Served::start_with_args(launch, &[])
    }

    /// [`Served::start`], with more `serve` flags.
    pub fn start_with_args(launch: Launch, extra: &[&str]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        for (user, password) in launch.users {
            let scrypt = launch.scrypt.unwrap_or(TEST_SCRYPT);
            add_user(&data, user, password.as_bytes(), scrypt, 1 << 30, None).unwrap();
        }
        let config = dir.path().join("test.toml");
        std::fs::write(&config, format!("{}\n[scrypt]\nlog_n = 6\n", launch.config)).unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()])
            .args(["--config", config.to_str().unwrap()])
            .args(extra)
            .env("RUST_LOG", std::env::var("TEST_SERVER_LOG").unwrap_or("info".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if launch.ftp {
            command.args(["--ftp-listen", "127.0.0.1:0"]);
        }
        if let Some(limit) = launch.open_files {
            use std::os::unix::process::CommandExt;
            // SAFETY: only setrlimit, which is async-signal-safe, runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let (mut native, mut ftp, mut sftp, mut metrics) = (None, None, None, None);
        let wants_metrics = extra.contains(&"--metrics-listen");
        let wants_sftp = extra.contains(&"--sftp-listen");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok);
        for line in lines.by_ref() {
            if let Some(rest) = line.strip_prefix("ftp-actor listening on ") {
                native = Some(rest.split_whitespace().next().unwrap().to_string());
            }
            if let Some(rest) = line.strip_prefix("FTP and FTPS (AUTH TLS) on ") {
                ftp = Some(rest.split(';').next().unwrap().to_string());
            }
            if let Some(rest) = line.strip_prefix("SFTP on ") {
                sftp = Some(rest.split(';').next().unwrap().to_string());
            }
            if let Some(rest) = line.strip_prefix("metrics on http://") {
                metrics = Some(rest.split('/').next().unwrap().to_string());
            }
            if native.is_some()
                && ftp.is_some() == launch.ftp
                && sftp.is_some() == wants_sftp
                && metrics.is_some() == wants_metrics
            {
                break;
            }
        }
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let native = native.unwrap_or_else(|| panic!("the server did not start: {}", log.lock().unwrap()));
        let plaintext = launch.config.contains("plaintext_native = true");
        Served { child, dir, native, ftp, sftp, metrics, log, plaintext }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// How clients trust this server's native listener (its certificate, pinned; no TLS with
    /// `plaintext_native`).
    pub fn trust(&self) -> ftp_actor::client::Trust {
        match self.plaintext {
            true => ftp_actor::client::Trust::Plaintext,
            false => super::pinned_trust(&self.data_dir()),
        }
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.data_dir().join(default_home(user))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The first line of the log for which `wanted` holds, waiting up to `patience` for it:
    /// the log is read from the server's stderr by a thread of its own, so a line the server
    /// wrote just before it answered may not be here yet when its answer is.
    pub fn logged(&self, wanted: impl Fn(&str) -> bool, patience: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(line) = self.log().lines().find(|line| wanted(line)) {
                return Some(line.to_string());
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
