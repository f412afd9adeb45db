//! Server configuration: `config/ftp-actor.toml` documents every key; that same file, compiled
//! in, is the default, so the server runs with no file at all.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use std::time::Duration;

use crate::auth::ScryptParams;
use crate::auth::throttle::ThrottlePolicy;
use crate::ftp::address::PortRange;
use crate::human::size::parse_size;
use crate::quota::hash_budget::HashBudgetPolicy;
use crate::storage::PathLimits;

/// The shipped configuration file, which is also the built-in default.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/ftp-actor.toml");

/// Bytes a data frame's envelope needs beyond its chunk (type name, field name, headers).
pub const FRAME_ENVELOPE: usize = 1024;

/// The longest `busy_poll_us`: a wider window mostly burns CPU while clients think.
const MAX_BUSY_POLL_US: u64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Every setting of the server. See `config/ftp-actor.toml` for what each one means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub plaintext_native: bool,
    pub allow_unbound_login: bool,
    pub data_dir: PathBuf,
    pub max_concurrency: usize,
    pub max_queued: usize,
    pub max_sessions_per_address: usize,
    pub max_sessions_per_user: usize,
    pub max_prelogin_connections: usize,
    pub max_prelogin_per_address: usize,
    pub max_frame_bytes: usize,
    pub chunk_bytes: usize,
    pub login_timeout_secs: u64,
    pub queue_wait_secs: u64,
    pub idle_timeout_secs: u64,
    pub transfer_stall_secs: u64,
    pub busy_poll_us: u64,
    pub shutdown_grace_secs: u64,
    pub digest_save_secs: u64,
    pub login_failures_before_ban: u32,
    pub login_failure_window_secs: u64,
    pub login_ban_secs: u64,
    pub login_ban_max_secs: u64,
    pub max_login_attempts_per_connection: u32,
    pub login_cache_secs: u64,
    pub login_cache_entries: usize,
    pub login_derivations: usize,
    pub login_derivations_queued: usize,
    pub login_delay_base_ms: u64,
    pub login_delay_max_ms: u64,
    pub max_path_bytes: usize,
    pub max_name_bytes: usize,
    pub max_list_entries: usize,
    pub partial_expiry_days: u64,
    #[serde(deserialize_with = "size_or_bytes")]
    pub default_quota: u64,
    pub default_max_files: u64,
    #[serde(deserialize_with = "size_or_bytes")]
    pub hash_budget_bytes: u64,
    #[serde(deserialize_with = "size_or_bytes")]
    pub hash_budget_refill_bytes_per_sec: u64,
    pub scrypt: ScryptParams,
    pub ftp: FtpConfig,
    pub sftp: SftpConfig,
    pub metrics: MetricsConfig,
    pub state: StateConfig,
    pub storage: StorageConfig,
}

/// The SFTP listener (`[sftp]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftpConfig {
    /// `None` (written `""`) keeps the listener off.
    #[serde(deserialize_with = "optional_parsed")]
    pub listen: Option<SocketAddr>,
    /// The host key file; empty: generated in the data directory.
    pub host_key: PathBuf,
}

/// Where users, bans and the deployment's secret are kept (`[state]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    pub backend: StateBackend,
    pub postgres: PostgresConfig,
}

/// `state.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateBackend {
    /// `users.toml` and `server.secret` in the data directory, bans in memory: one instance.
    Local,
    /// A PostgreSQL database shared by every instance (see docs/CLUSTER.md).
    Postgres,
}

/// `[state.postgres]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://USER:PASSWORD@HOST:PORT/DATABASE`, or the key=value form libpq takes.
    pub url: String,
    /// Connections each instance keeps open at most.
    pub pool_size: usize,
    /// A PEM file of the CA certificates the database's certificate must chain to; set, every
    /// connection is TLS (see `state::postgres::tls`). Empty: plain TCP.
    pub tls_ca_file: PathBuf,
}

/// Where file contents and names are kept (`[storage]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: StorageBackend,
    pub s3: S3Config,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Each user's home is a directory on this machine.
    Local,
    /// Contents are objects in an S3-compatible bucket, names rows in the PostgreSQL state
    /// (docs/CLUSTER.md); needs `state.backend = "postgres"`.
    S3,
}

/// `[storage.s3]`. Empty credentials come from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// `https://HOST[:PORT]`; `http://` only where the network is private.
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Prepended to every object key (`prefix/KEY`), so one bucket can serve several uses.
    pub prefix: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// The metrics endpoint (`[metrics]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where `/metrics` and `/health` are served over HTTP; `None` (written `""`) keeps it off.
    #[serde(deserialize_with = "optional_parsed")]
    pub listen: Option<SocketAddr>,
}

/// The standard FTP/FTPS listener (`[ftp]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FtpConfig {
    /// `None` (written `""`) keeps the listener off.
    #[serde(deserialize_with = "optional_parsed")]
    pub listen: Option<SocketAddr>,
    #[serde(deserialize_with = "parsed")]
    pub passive_ports: PortRange,
    /// The address announced in PASV replies; `None` announces the control connection's own.
    #[serde(deserialize_with = "optional_parsed")]
    pub passive_address: Option<IpAddr>,
    pub allow_plaintext_login: bool,
    pub require_tls_session_reuse: bool,
    pub active_mode: bool,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

/// Lays `over` on `base`: tables merge key by key at every depth (`[state.postgres]` with only
/// `url` keeps the default `pool_size`), other values replace.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base)), toml::Value::Table(over)) => merge(base, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A value written as a string and parsed with `FromStr`.
fn parsed<'de, D: Deserializer<'de>, T: std::str::FromStr>(deserializer: D) -> Result<T, D::Error>
where
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// Like [`parsed`], with `""` meaning `None`.
fn optional_parsed<'de, D: Deserializer<'de>, T: std::str::FromStr>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T::Err: std::fmt::Display,
{
    let text = String::deserialize(deserializer)?;
    if text.is_empty() { Ok(None) } else { text.parse().map(Some).map_err(serde::de::Error::custom) }
}

fn size_or_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(text) => parse_size(&text).map_err(serde::de::Error::custom),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::parse(DEFAULT_CONFIG_TOML, Path::new("<built-in>")).expect("the shipped config is valid")
    }
}

impl Config {
    /// Parses TOML; keys not given take the built-in defaults.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parse_error = |e: toml::de::Error| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() };
        let mut merged: toml::Table = toml::from_str(DEFAULT_CONFIG_TOML).map_err(parse_error)?;
        let given: toml::Table = toml::from_str(text).map_err(parse_error)?;
        merge(&mut merged, given);
        let config: Config = merged.try_into().map_err(parse_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(message.to_string()));
        if self.max_concurrency == 0 {
            return invalid("max_concurrency must be at least 1");
        }
        if self.plaintext_native && !self.listen.ip().is_loopback() {
            return invalid("plaintext_native is for tests: only with a loopback listen address (127.0.0.1, ::1)");
        }
        if self.max_frame_bytes < 4096 || self.max_frame_bytes > (64 << 20) {
            return invalid("max_frame_bytes must be between 4096 and 67108864");
        }
        if self.chunk_bytes == 0 || self.chunk_bytes + FRAME_ENVELOPE > self.max_frame_bytes {
            return invalid("chunk_bytes must be at least 1 and at most max_frame_bytes - 1024");
        }
        if self.max_name_bytes == 0 || self.max_name_bytes > 244 {
            return invalid("max_name_bytes must be between 1 and 244");
        }
        if self.login_derivations == 0 || self.login_derivations > 64 {
            return invalid("login_derivations must be between 1 and 64");
        }
        if self.max_prelogin_connections == 0 || self.max_prelogin_per_address == 0 {
            return invalid("max_prelogin_connections and max_prelogin_per_address must be at least 1");
        }
        if self.login_timeout_secs == 0
            || self.queue_wait_secs == 0
            || self.idle_timeout_secs == 0
            || self.transfer_stall_secs == 0
        {
            return invalid("timeouts must be at least 1 second");
        }
        if self.busy_poll_us > MAX_BUSY_POLL_US {
            return invalid("busy_poll_us must be at most 1000");
        }
        if self.partial_expiry_days > 36_500 {
            return invalid("partial_expiry_days must be at most 36500 (0: never)");
        }
        if self.digest_save_secs > 86_400 {
            return invalid("digest_save_secs must be at most 86400 (a day)");
        }
        self.scrypt.validate().map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if self.state.backend == StateBackend::Postgres
            && (self.state.postgres.url.is_empty() || self.state.postgres.pool_size == 0)
        {
            return invalid("state.backend = \"postgres\" needs state.postgres.url and a pool_size of at least 1");
        }
        if self.storage.backend == StorageBackend::S3 {
            if self.state.backend != StateBackend::Postgres {
                return invalid(
                    "storage.backend = \"s3\" keeps file names in PostgreSQL: it needs state.backend = \"postgres\"",
                );
            }
            if self.storage.s3.endpoint.is_empty() || self.storage.s3.bucket.is_empty() {
                return invalid("storage.backend = \"s3\" needs storage.s3.endpoint and storage.s3.bucket");
            }
        }
        if self.ftp.tls_cert.as_os_str().is_empty() != self.ftp.tls_key.as_os_str().is_empty() {
            return invalid("ftp.tls_cert and ftp.tls_key must be given together (or both left empty)");
        }
        Ok(())
    }

    pub fn throttle_policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            failures_before_ban: self.login_failures_before_ban.max(1),
            ban: Duration::from_secs(self.login_ban_secs),
            max_ban: Duration::from_secs(self.login_ban_max_secs.max(self.login_ban_secs)),
            base_delay: Duration::from_millis(self.login_delay_base_ms),
            max_delay: Duration::from_millis(self.login_delay_max_ms),
            window: Duration::from_secs(self.login_failure_window_secs),
        }
    }

    pub fn hash_budget_policy(&self) -> HashBudgetPolicy {
        HashBudgetPolicy { capacity: self.hash_budget_bytes, refill_per_second: self.hash_budget_refill_bytes_per_sec }
    }

    /// How long a thread keeps polling after an answer; see [`crate::tuning::busy_poll`].
    pub fn busy_poll_window(&self) -> Duration {
        Duration::from_micros(self.busy_poll_us)
    }

    pub fn path_limits(&self) -> PathLimits {
        PathLimits { max_path_bytes: self.max_path_bytes, max_name_bytes: self.max_name_bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_file_is_the_default_and_documents_every_key() {
        let config = Config::default();
        assert_eq!(config.max_concurrency, 10);
        assert_eq!(config.default_quota, 1 << 30);
        assert_eq!(config.scrypt, ScryptParams { log_n: 17, r: 8, p: 1 });
        // Config has no serde defaults, so parsing the file alone proves every key is in it.
        let direct: Config = toml::from_str(DEFAULT_CONFIG_TOML).unwrap();
        assert_eq!(direct, config);
    }

    #[test]
    fn a_partial_file_overrides_only_its_keys() {
        let config = Config::parse("max_concurrency = 3\n[scrypt]\nlog_n = 10\n", Path::new("t")).unwrap();
        assert_eq!(config.max_concurrency, 3);
        assert_eq!(config.scrypt, ScryptParams { log_n: 10, r: 8, p: 1 });
        assert_eq!(config.max_queued, 10);
    }

    #[test]
    fn bad_values_and_unknown_keys_are_refused() {
        assert!(Config::parse("max_concurrency = 0", Path::new("t")).is_err());
        assert!(Config::parse("chunk_bytes = 2000000", Path::new("t")).is_err());
        assert!(Config::parse("no_such_key = 1", Path::new("t")).is_err());
        assert!(Config::parse("default_quota = \"12 parsecs\"", Path::new("t")).is_err());
        assert_eq!(Config::parse("default_quota = 5", Path::new("t")).unwrap().default_quota, 5);
        assert!(Config::parse("busy_poll_us = 1001", Path::new("t")).is_err());
        assert_eq!(Config::parse("busy_poll_us = 0", Path::new("t")).unwrap().busy_poll_window(), Duration::ZERO);
        assert!(Config::parse("digest_save_secs = 86401", Path::new("t")).is_err());
        assert_eq!(Config::parse("digest_save_secs = 0", Path::new("t")).unwrap().digest_save_secs, 0);
        assert!(Config::parse("plaintext_native = true\nlisten = \"0.0.0.0:2121\"", Path::new("t")).is_err());
        assert!(Config::parse("plaintext_native = true", Path::new("t")).unwrap().plaintext_native);
        assert!(!Config::default().plaintext_native, "TLS by default");
    }

    #[test]
    fn the_ftp_listener_is_off_by_default_and_configurable() {
        let config = Config::default();
        assert_eq!(config.ftp.listen, None);
        assert_eq!(config.sftp.listen, None);
        assert!(!config.ftp.allow_plaintext_login);
        assert!(!config.ftp.active_mode);
        let text =
            "[ftp]\nlisten = \"127.0.0.1:2122\"\npassive_ports = \"40000-40009\"\npassive_address = \"10.0.0.1\"\n";
        let config = Config::parse(text, Path::new("t")).unwrap();
        assert_eq!(config.ftp.listen, Some("127.0.0.1:2122".parse().unwrap()));
        assert_eq!(config.ftp.passive_ports, PortRange { first: 40000, last: 40009 });
        assert_eq!(config.ftp.passive_address, Some("10.0.0.1".parse().unwrap()));
        assert!(Config::parse("[ftp]\npassive_ports = \"1-2\"", Path::new("t")).is_err());
        assert!(Config::parse("[ftp]\ntls_cert = \"c.pem\"", Path::new("t")).is_err());
    }
}
