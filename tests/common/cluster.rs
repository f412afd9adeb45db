//! Two `ftp-actor serve` instances on one real PostgreSQL (scripts/postgres.sh), and the
//! `ftp-actor user` commands on the same database: the cluster mode as operators run it.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::binary::{BIN, Launch, Served};
use super::must_succeed;
use super::postgres::Postgres;
use ftp_actor::client::{Client, ClientError};
use ftp_actor::net::{EntryKind, ErrorCode};
use ftp_actor::storage::objects::PART_SIZE;

/// The throttle settings both instances run with: a ban after three failures, no delays.
const THROTTLE: &str = "login_failures_before_ban = 3\nlogin_delay_base_ms = 1\nlogin_delay_max_ms = 1\n";

/// Two instances on one database, each with its native and FTP listeners, and the config file
/// the `user` commands use.
pub struct Cluster {
    pub postgres: Postgres,
    pub instances: [Served; 2],
    admin: tempfile::TempDir,
}

/// A three-node Garage, then a cluster keeping its files there, with the user `alice`
/// (password `pw`) and `quota`.
pub fn with_files_in_garage(quota: &str) -> (super::garage::Garage, Cluster) {
    let garage = super::garage::Garage::start();
    let cluster = Cluster::start(&garage.storage_config());
    cluster.user(&["add", "alice", "--quota", quota], "pw");
    (garage, cluster)
}

impl Cluster {
    /// Starts the database and two instances at the same time on its empty schema, with
    /// `extra` config lines (the storage backend) in both and in the `user` commands'.
    pub fn start(extra: &str) -> Cluster {
        Cluster::start_on(Postgres::start(), extra)
    }

    /// [`Cluster::start`] on a database already started (one that takes TLS only, say).
    pub fn start_on(postgres: Postgres, extra: &str) -> Cluster {
        let config = format!("{THROTTLE}\n{extra}\n{}", postgres.state_config());
        let (a, b) = std::thread::scope(|scope| {
            let launch = || {
                let launch = Launch { config: &config, ftp: true, users: &[], open_files: None, scrypt: None };
                Served::start_with_args(launch, &["--sftp-listen", "127.0.0.1:0"])
            };
            let a = scope.spawn(launch);
            let b = scope.spawn(launch);
            (a.join().unwrap(), b.join().unwrap())
        });
        let admin = tempfile::tempdir().unwrap();
        std::fs::write(admin.path().join("admin.toml"), format!("{config}\n[scrypt]\nlog_n = 6\n")).unwrap();
        Cluster { postgres, instances: [a, b], admin }
    }

    /// Runs `ftp-actor user ARGS` on the shared database, with `password` for the prompts.
    pub fn user(&self, args: &[&str], password: &str) -> String {
        let output = Command::new(BIN)
            .arg("user")
            .args(args)
            .args(["--config", self.admin.path().join("admin.toml").to_str().unwrap()])
            .args(["--data-dir", self.admin.path().join("data").to_str().unwrap()])
            .env("FTP_ACTOR_PASSWORD", password)
            .output()
            .unwrap();
        must_succeed(&format!("ftp-actor user {}", args.join(" ")), &output);
        String::from_utf8(output.stdout).unwrap()
    }

    pub async fn try_login(&self, instance: usize, user: &str, password: &str) -> Result<Client, ClientError> {
        let served = &self.instances[instance];
        let mut client =
            Client::connect(served.native.parse::<std::net::SocketAddr>().unwrap(), &served.trust(), |_| {}).await?;
        client.login(user, password).await?;
        Ok(client)
    }

    /// What alice's native listing of the home through instance `instance` shows for `name`.
    pub async fn listed(&self, instance: usize, name: &str) -> Option<(EntryKind, u64)> {
        let mut client = self.login(instance, "alice", "pw").await;
        let listing = client.list(None).await.unwrap();
        client.quit().await.unwrap();
        listing.entries.iter().find(|entry| entry.name == name).map(|entry| (entry.kind, entry.size))
    }

    /// Kills instance 0 (`kill -9`) once instance 1 lists `name` as a partial upload holding a
    /// whole object-storage part, while `upload` (the client sending it through instance 0)
    /// still runs; then kills the client. Returns the bytes the partial holds: whole parts only.
    pub async fn kill_the_first_instance_once_a_part_is_durable(&mut self, name: &str, upload: &mut Child) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((EntryKind::Partial, held)) = self.listed(1, name).await
                && held >= PART_SIZE
            {
                break;
            }
            assert!(upload.try_wait().unwrap().is_none(), "the client ended before a part was durable");
            assert!(Instant::now() < deadline, "no durable part after a minute: {}", self.instances[0].log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.instances[0].child.kill().unwrap();
        self.instances[0].child.wait().unwrap();
        let _ = upload.kill();
        let _ = upload.wait();
        let Some((EntryKind::Partial, held)) = self.listed(1, name).await else {
            panic!("the interrupted upload is not kept")
        };
        assert!(held >= PART_SIZE && held % PART_SIZE == 0, "held {held}: whole parts only");
        held
    }

    pub async fn login(&self, instance: usize, user: &str, password: &str) -> Client {
        self.try_login(instance, user, password).await.unwrap_or_else(|e| panic!("login on instance {instance}: {e}"))
    }

    /// Fails `times` logins as `user` on `instance`.
    pub async fn fail_logins(&self, instance: usize, user: &str, times: usize) {
        for _ in 0..times {
            let refused = self.try_login(instance, user, "not the password").await;
            assert!(refused.is_err(), "a wrong password logged in");
        }
    }

    /// Waits until `instance` refuses this address as it connects (banned, error 202). It
    /// only connects: a login, even a right one, would be an event of its own.
    pub async fn wait_for_ban(&self, instance: usize) {
        let served = &self.instances[instance];
        let addr = served.native.parse::<std::net::SocketAddr>().unwrap();
        for _ in 0..100 {
            match Client::connect(addr, &served.trust(), |_| {}).await {
                Err(error) if error.code() == Some(ErrorCode::LoginBanned) => return,
                Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        panic!("instance {instance} never banned the address: {}", served.log());
    }
}
