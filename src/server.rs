//! Starting a server: the data directory, the actors, the listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use base64::Engine;
use tokio::net::TcpListener;

use crate::actors::Services;
use crate::actors::acceptor::{
    Acceptor, CountAdmission, FtpListener, NativeListener, OtherListeners, SftpListener, Shutdown,
};
use crate::actors::auth::{AuthActor, PasswordChecks, UserSource};
use crate::actors::disk::DiskPool;
use crate::actors::quota::QuotaActor;
use crate::admission::descriptors::{fit_prelogin_budget, raise_open_files_limit};
use crate::auth::login_cache::LoginCache;
use crate::auth::scram::Key;
use crate::auth::throttle::LoginThrottle;
use crate::auth::user_store::{StoreError, UserStore, add_user};
use crate::config::Config;
use crate::config::{StateBackend, StorageBackend};
use crate::ftp::tls;
use crate::quota::UsageGate;
use crate::quota::hash_budget::HashBudget;
use crate::state::failed_logins::SharedFailedLogins;
use crate::state::postgres::quota::SharedLedger;
use crate::state::postgres::secret::SecretRow;
use crate::state::postgres::users::UsersTable;
use crate::state::postgres::{Database, DatabaseError};
use crate::state::secret::{SecretFile, SecretSource};
use crate::state::users::{UserDirectory, UsersFile};
use crate::storage::Homes;
use crate::storage::digest_index::{DIGEST_FILE, DIGEST_INDEX_ENTRIES, DigestIndex};
use crate::storage::local_store::create_home_dir;
use crate::storage::objects::ObjectStorage;

const SECRET_FILE: &str = "server.secret";

/// The user created on a fresh data directory.
pub const FIRST_USER: &str = "demo";

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("data directory {path}: {source}")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsSetupError),
    #[error(transparent)]
    HostKey(#[from] crate::sftp::HostKeyError),
    #[error(transparent)]
    Database(#[from] DatabaseError),
    #[error("storage.s3: {0}")]
    Objects(crate::storage::StorageError),
}

/// What the server keeps besides file contents, opened at start (see [`crate::state`]).
#[derive(Clone)]
pub struct State {
    /// The deployment's secret.
    pub secret: Key,
    /// The database every instance shares (`state.backend = "postgres"`); `None`: the data
    /// directory and this process's memory.
    pub database: Option<Database>,
    /// The bucket file contents are kept in (`storage.backend = "s3"`); `None`: homes are
    /// directories on this machine.
    pub objects: Option<Arc<crate::storage::objects::ObjectStorage>>,
}

/// The first user of a fresh data directory, with the password to show once.
#[derive(Debug, Clone)]
pub struct FirstUser {
    pub name: String,
    pub password: String,
}

/// Creates the data directory (mode 0700) and opens the state: the secret (created if
/// missing) and, with `state.backend = "postgres"`, the database (its schema brought up to
/// date). On a fresh local data directory (no user store yet) it also creates the user `demo`
/// with a random password, returned so the caller can show it once; a database gets its users
/// from `ftp-actor user add` only.
pub fn prepare_data_dir(config: &Config) -> Result<(State, Option<FirstUser>), ServerError> {
    let dir = &config.data_dir;
    let io = |source| ServerError::DataDir { path: dir.clone(), source };
    create_home_dir(dir).map_err(io)?;
    if config.state.backend == StateBackend::Postgres {
        let database = Database::open(&config.state.postgres)?;
        let secret = SecretRow { database: database.clone() }.load_or_create().map_err(io)?;
        let objects = match config.storage.backend {
            StorageBackend::Local => None,
            StorageBackend::S3 => {
                let objects = ObjectStorage::open(&config.storage.s3, database.clone(), dir, config.default_max_files)
                    .map_err(ServerError::Objects)?;
                objects.check().map_err(ServerError::Objects)?;
                Some(objects)
            }
        };
        return Ok((State { secret, database: Some(database), objects }, None));
    }
    let secret = SecretFile { path: dir.join(SECRET_FILE) }.load_or_create().map_err(io)?;
    let state = State { secret, database: None, objects: None };
    if UserStore::path(dir).exists() {
        return Ok((state, None));
    }
    let mut bytes = [0u8; 12];
    rand::fill(&mut bytes);
    let password = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    add_user(dir, FIRST_USER, password.as_bytes(), config.scrypt, config.default_quota, None)?;
    Ok((state, Some(FirstUser { name: FIRST_USER.to_string(), password })))
}

/// Where the SFTP listener is, and the host key it shows clients.
#[derive(Debug, Clone)]
pub struct SftpAddress {
    pub addr: SocketAddr,
    /// The host key's SHA-256 fingerprint, as OpenSSH prints it.
    pub fingerprint: String,
    pub host_key: std::path::PathBuf,
}

/// A started server: its addresses (useful with port 0) and its actors.
#[derive(Clone)]
pub struct Started {
    pub addr: SocketAddr,
    /// The FTP/FTPS listener's address, when it is on.
    pub ftp_addr: Option<SocketAddr>,
    /// The SFTP listener, when it is on.
    pub sftp: Option<SftpAddress>,
    /// The metrics endpoint's address, when it is on.
    pub metrics_addr: Option<SocketAddr>,
    /// How a client trusts the native listener: its certificate pinned (plain TCP with
    /// `plaintext_native`). The fingerprint `serve` prints comes from here.
    pub trust: crate::client::Trust,
    pub services: Services,
    pub acceptor: Addr<Acceptor>,
}

/// Starts the actors and the listener inside the current actix system.
pub async fn start(config: Config, state: State) -> Result<Started, ServerError> {
    let (listener, local) = bind(config.listen).await?;
    let (cert, key) = certificate(&config)?;
    let (native_tls, trust) = match config.plaintext_native {
        true => (None, crate::client::Trust::Plaintext),
        false => {
            let shown = crate::tls::Fingerprint::of(&crate::tls::load_chain(&cert)?[0]);
            (Some(crate::tls::native_server_config(&cert, &key)?), crate::client::Trust::Pinned(shown))
        }
    };
    let native = NativeListener { listener, tls: native_tls };
    let ftp = match config.ftp.listen {
        Some(addr) => {
            let (listener, local) = bind(addr).await?;
            Some((FtpListener { listener, tls: tls::ftp_tls(&cert, &key)? }, local))
        }
        None => None,
    };
    let ftp_addr = ftp.as_ref().map(|(_, local)| *local);
    let sftp = match config.sftp.listen {
        Some(addr) => {
            let path = crate::sftp::host_key_path(&config.data_dir, &config.sftp.host_key);
            let key = crate::sftp::load_or_generate(&path, config.sftp.host_key.as_os_str().is_empty())?;
            let fingerprint = crate::sftp::fingerprint(&key);
            let (listener, local) = bind(addr).await?;
            let ssh = crate::sftp::ssh_config(key, &config);
            Some((SftpListener { listener, ssh }, SftpAddress { addr: local, fingerprint, host_key: path }))
        }
        None => None,
    };
    let (sftp, sftp_addr) = sftp.unzip();
    let metrics = match config.metrics.listen {
        Some(addr) => Some(bind(addr).await?),
        None => None,
    };
    let services = start_services(config, state);
    let max_prelogin = prelogin_budget(&services.config);
    let others = OtherListeners { ftp: ftp.map(|(ftp, _)| ftp), sftp };
    let acceptor = Acceptor::new(native, others, services.clone(), max_prelogin).start();
    let metrics_addr = metrics.map(|(listener, local)| {
        let source = ServerMetrics { services: services.clone(), acceptor: acceptor.clone() };
        actix_rt::spawn(crate::metrics::http::serve(listener, Arc::new(source)));
        local
    });
    Ok(Started { addr: local, ftp_addr, sftp: sftp_addr, metrics_addr, trust, services, acceptor })
}

/// What the metrics endpoint reads: the counters, and the state of the acceptor, the login
/// throttle, the worker pools and the digest index at the moment of the scrape.
struct ServerMetrics {
    services: Services,
    acceptor: Addr<Acceptor>,
}

impl crate::metrics::http::Source for ServerMetrics {
    async fn metrics(&self) -> String {
        use crate::metrics::Pool;
        let services = &self.services;
        let counts = self.acceptor.send(CountAdmission).await.unwrap_or_default();
        let bans = services.throttle.lock().map_or(0, |throttle| throttle.banned(std::time::Instant::now()));
        let handles =
            [(Pool::disk, &services.disk), (Pool::hashers, &services.hashers), (Pool::login_io, &services.login_io)];
        let pools = handles
            .iter()
            .map(|(pool, handle)| {
                let (queued, running) = handle.load();
                (*pool, queued, running)
            })
            .collect();
        let jobs_done = handles
            .iter()
            .flat_map(|(pool, handle)| handle.jobs_done().into_iter().map(|(job, done)| (*pool, job, done)))
            .collect();
        let digest_hits = services.digests.hits();
        let snapshot = crate::metrics::Snapshot { sessions: counts.sessions, bans, pools, jobs_done, digest_hits };
        services.metrics.encode(&snapshot)
    }

    async fn healthy(&self) -> bool {
        let answer = tokio::time::timeout(Duration::from_secs(2), self.acceptor.send(CountAdmission)).await;
        matches!(answer, Ok(Ok(counts)) if !counts.shutting_down)
    }
}

/// Starts the actors and pools every session uses (no listener): what [`start`] serves, and
/// what a test of the file service drives directly.
pub fn start_services(config: Config, state: State) -> Services {
    let config = Arc::new(config);
    let disk = DiskPool::start(config.max_concurrency);
    // The file work of logins (reloading the user store, opening a home) has a pool of its own,
    // apart from the disk workers, which transfers may all hold, so that other users' transfers
    // never keep a login past its login timeout; and apart from the scrypt derivations. As many
    // threads as the disk pool: with two, four clients logging in at once over and over got
    // 4,250 logins per second against 5,060 with ten (docs/BENCHMARKS.md, "Logins").
    let login_io = DiskPool::start(config.max_concurrency);
    let hashers = DiskPool::start(config.max_concurrency);
    let gate = Arc::new(UsageGate::default());
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let digests = Arc::new(load_digests(&config.data_dir));
    let resume_states: Arc<crate::storage::ResumeStates> = Arc::default();
    let homes = match &state.objects {
        Some(objects) => Homes::Objects(objects.clone()),
        None => Homes::Local { digests: digests.clone(), resume_states: resume_states.clone() },
    };
    let quota = {
        let (disk, gate, metrics, homes) = (disk.clone(), gate.clone(), metrics.clone(), homes.clone());
        Supervisor::start(move |_| QuotaActor::new(disk, gate, metrics, homes))
    };
    let (throttle, directory): (SharedFailedLogins, Box<dyn UserDirectory>) = match &state.database {
        None => (
            Arc::new(Mutex::new(LoginThrottle::new(config.throttle_policy()))),
            Box::new(UsersFile::new(config.data_dir.clone())),
        ),
        Some(database) => (
            crate::state::postgres::failed_logins::start(database, config.throttle_policy()),
            Box::new(UsersTable::new(database.clone())),
        ),
    };
    let auth = {
        let (data_dir, scrypt, quota, disk) = (config.data_dir.clone(), config.scrypt, quota.clone(), login_io.clone());
        let checks = PasswordChecks {
            throttle: throttle.clone(),
            cache: LoginCache::new(Duration::from_secs(config.login_cache_secs), config.login_cache_entries),
            derivations: DiskPool::start(config.login_derivations),
            waiting: Arc::default(),
            max_waiting: config.login_derivations_queued,
            in_flight: Default::default(),
            metrics: metrics.clone(),
        };
        let source = UserSource {
            directory,
            data_dir,
            secret: state.secret,
            default_scrypt: scrypt,
            default_max_files: config.default_max_files,
        };
        Supervisor::start(move |_| AuthActor::new(source, checks, quota, disk))
    };
    let hash_budget = Arc::new(Mutex::new(HashBudget::new(config.hash_budget_policy())));
    if config.digest_save_secs > 0 {
        let every = Duration::from_secs(config.digest_save_secs);
        actix_rt::spawn(keep_saving_digests(config.data_dir.clone(), digests.clone(), disk.clone(), every));
    }
    let ledger: Arc<dyn crate::state::quota::QuotaLedger> = match (&state.objects, &state.database) {
        (Some(objects), Some(database)) => Arc::new(SharedLedger::new(
            database.clone(),
            objects.instance.clone(),
            config.data_dir.clone(),
            config.default_max_files,
        )),
        _ => Arc::new(quota.clone()),
    };
    let services = Services {
        config,
        auth,
        throttle,
        quota,
        ledger,
        disk,
        hashers,
        login_io,
        gate,
        hash_budget,
        digests,
        resume_states,
        homes,
        metrics,
    };
    actix_rt::spawn(crate::service::expiry::keep_expiring_partials(services.clone()));
    services
}

/// Raises the open-files limit and fits the pre-login budget to it; logs both.
fn prelogin_budget(config: &Config) -> usize {
    let configured = config.max_prelogin_connections;
    let limits = match raise_open_files_limit() {
        Ok(limits) => limits,
        Err(error) => {
            tracing::warn!(%error, "cannot read the open-files limit: the pre-login budget is as configured");
            return configured;
        }
    };
    let budget = fit_prelogin_budget(configured, limits.soft, config.max_concurrency, config.max_queued);
    let message = if budget < configured {
        "the open-files limit cannot hold max_prelogin_connections: lowered to fit"
    } else {
        "open-files limit and pre-login budget"
    };
    tracing::info!(
        soft_before = limits.soft_before,
        soft = limits.soft,
        hard = limits.hard,
        configured,
        budget,
        "{message}"
    );
    budget
}

/// The digests last saved (see [`DigestIndex`]); none if they cannot be read.
fn load_digests(data_dir: &Path) -> DigestIndex {
    let path = data_dir.join(DIGEST_FILE);
    match DigestIndex::load(&path, DIGEST_INDEX_ENTRIES) {
        Ok(index) => {
            tracing::info!(entries = index.len(), "stored digests loaded");
            index
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "stored digests not loaded: files will be hashed again");
            DigestIndex::default()
        }
    }
}

/// Saves the digests for the next start: once the server has stopped, and meanwhile (see
/// [`keep_saving_digests`]). Says whether it did.
pub fn save_digests(data_dir: &Path, digests: &DigestIndex) -> bool {
    let path = data_dir.join(DIGEST_FILE);
    match digests.save(&path) {
        Ok(()) => {
            tracing::debug!(entries = digests.len(), "stored digests saved");
            true
        }
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "stored digests not saved");
            false
        }
    }
}

/// Saves the digests on the disk pool every `every` while they change, so that a killed
/// server loses at most that much of them.
async fn keep_saving_digests(data_dir: PathBuf, digests: Arc<DigestIndex>, disk: DiskPool, every: Duration) {
    let mut saved = digests.changes();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let changes = digests.changes();
        if changes == saved {
            continue;
        }
        let (dir, index) = (data_dir.clone(), digests.clone());
        if let Ok(true) = disk.run("save digests", move || save_digests(&dir, &index)).await {
            saved = changes;
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServerError> {
    let listener = TcpListener::bind(addr).await.map_err(|source| ServerError::Listen { addr, source })?;
    let local = listener.local_addr().map_err(|source| ServerError::Listen { addr, source })?;
    Ok((listener, local))
}

/// The server's certificate and key: the configured pair, or the one generated in the data
/// directory (created on first start). Both listeners use it.
fn certificate(config: &Config) -> Result<(std::path::PathBuf, std::path::PathBuf), ServerError> {
    let (cert, key) = crate::tls::certificate_paths(&config.data_dir, &config.ftp.tls_cert, &config.ftp.tls_key);
    if crate::tls::generate_if_missing(&cert, &key)? {
        tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    }
    Ok((cert, key))
}

/// A server running on its own thread with its own actix system (tests, demos, benchmarks).
pub struct ServerHandle {
    pub addr: SocketAddr,
    /// The FTP/FTPS listener's address, when it is on.
    pub ftp_addr: Option<SocketAddr>,
    /// The SFTP listener, when it is on.
    pub sftp: Option<SftpAddress>,
    pub first_user: Option<FirstUser>,
    /// How a client trusts the native listener (see [`Started::trust`]).
    pub trust: crate::client::Trust,
    /// The server's actors, for demonstrations and fault tests that make them fail.
    pub services: Services,
    acceptor: Addr<Acceptor>,
    system: actix::System,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Prepares the data directory and starts the server on a new thread.
    pub fn spawn(config: Config) -> Result<ServerHandle, ServerError> {
        let (state, first_user) = prepare_data_dir(&config)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let system = actix::System::new();
            let data_dir = config.data_dir.clone();
            let started = system.block_on(start(config, state));
            let digests = started.as_ref().ok().map(|started| started.services.digests.clone());
            let _ = ready_tx.send(started.map(|started| (started, actix::System::current())));
            if let Some(digests) = digests {
                let _ = system.run();
                save_digests(&data_dir, &digests);
            }
        });
        let (started, system) = ready_rx.recv().expect("server thread reports")?;
        Ok(ServerHandle {
            addr: started.addr,
            ftp_addr: started.ftp_addr,
            sftp: started.sftp,
            first_user,
            trust: started.trust,
            services: started.services,
            acceptor: started.acceptor,
            system,
            thread: Some(thread),
        })
    }

    /// Starts a graceful shutdown (as SIGTERM does) and waits until the server has stopped.
    pub fn shutdown_gracefully(mut self, grace: std::time::Duration) {
        self.acceptor.do_send(Shutdown { grace });
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the system and waits for its thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}
