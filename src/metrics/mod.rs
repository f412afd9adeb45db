//! What the server counts for operators, in Prometheus' terms: counters bumped where things
//! happen (logins, transfers, bytes, quota refusals), and values read when scraped (sessions,
//! bans, disk pool load, stored-digest hits), so the hot paths pay a few atomic adds at most.
//!
//! Every label takes one of a few fixed values (protocol, operation, result, stable error
//! code): no path and no user name ever becomes a label, so the number of series is bounded
//! whatever the clients do. Served by [`http`] when `metrics.listen` is set.

pub mod http;

use std::sync::atomic::Ordering;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::net::ErrorCode;

/// Which front end.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Protocol {
    native,
    ftp,
    sftp,
}

/// How a login ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum LoginResult {
    ok,
    /// Wrong password or unknown user.
    failed,
    /// Refused by a ban before the password was checked.
    banned,
}

/// Which way a transfer moves bytes.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Operation {
    upload,
    download,
}

/// Where a connection stands in admission.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Stage {
    prelogin,
    queued,
    active,
}

/// Which worker pool, and whether its jobs wait or run.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Pool {
    disk,
    hashers,
    login_io,
}

#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum JobState {
    queued,
    running,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    protocol: Protocol,
    result: LoginResult,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByteLabels {
    protocol: Protocol,
    operation: Operation,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    protocol: Protocol,
    operation: Operation,
    result: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    protocol: Protocol,
    stage: Stage,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    pool: Pool,
    job: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: Pool,
    state: JobState,
}

/// The server's metrics: counters to bump, gauges to set when scraped, and the registry that
/// encodes them. One per server, shared through `Services`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    logins: Family<LoginLabels, Counter>,
    bytes: Family<ByteLabels, Counter>,
    transfers: Family<TransferLabels, Counter>,
    transfer_seconds: Family<ByteLabels, Histogram>,
    quota_refusals: Counter,
    sessions: Family<SessionLabels, Gauge>,
    bans: Gauge,
    pool_jobs: Family<PoolLabels, Gauge>,
    jobs_done: Family<JobLabels, Counter>,
    digest_hits: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// How a transfer ended; as a label `ok`, `lost`, or the stable error code (written straight
/// into the encoder, so counting a transfer allocates nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    /// With this stable error code.
    Failed(ErrorCode),
    /// The connection was lost, or the client stopped reading.
    Lost,
}

impl From<Result<(), ErrorCode>> for Outcome {
    fn from(result: Result<(), ErrorCode>) -> Outcome {
        match result {
            Ok(()) => Outcome::Ok,
            Err(code) => Outcome::Failed(code),
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        match self {
            Outcome::Ok => encoder.write_str("ok"),
            Outcome::Failed(code) => write!(encoder, "{}", code.as_u16()),
            Outcome::Lost => encoder.write_str("lost"),
        }
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ftp_actor");
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register("logins", "Logins by protocol and result", logins.clone());
        let bytes = Family::<ByteLabels, Counter>::default();
        registry.register("transfer_bytes", "File bytes received (upload) and sent (download)", bytes.clone());
        let transfers = Family::<TransferLabels, Counter>::default();
        registry.register("transfers", "Transfers ended, by result: ok or the stable error code", transfers.clone());
        let transfer_seconds = Family::<ByteLabels, Histogram>::new_with_constructor(|| {
            // 1 ms to about 70 minutes, each bucket four times the last.
            Histogram::new(exponential_buckets(0.001, 4.0, 12))
        });
        registry.register("transfer_seconds", "How long transfers took, from start to end", transfer_seconds.clone());
        let quota_refusals = Counter::default();
        registry.register(
            "quota_refusals",
            "Uploads and new directories refused by a quota (bytes or entries)",
            quota_refusals.clone(),
        );
        let sessions = Family::<SessionLabels, Gauge>::default();
        registry.register("sessions", "Connections by protocol and admission stage", sessions.clone());
        let bans = Gauge::default();
        registry.register("bans_active", "Addresses and user names banned now for failed logins", bans.clone());
        let pool_jobs = Family::<PoolLabels, Gauge>::default();
        registry.register("pool_jobs", "Jobs waiting for and running on each worker pool", pool_jobs.clone());
        let jobs_done = Family::<JobLabels, Counter>::default();
        registry.register("pool_jobs_done", "Jobs ended on each worker pool since start, by job", jobs_done.clone());
        let digest_hits = Counter::default();
        registry.register(
            "stored_digest_hits",
            "MD5s answered from the stored digests instead of reading the file, since start",
            digest_hits.clone(),
        );
        Metrics {
            registry,
            logins,
            bytes,
            transfers,
            transfer_seconds,
            quota_refusals,
            sessions,
            bans,
            pool_jobs,
            jobs_done,
            digest_hits,
        }
    }

    pub fn login(&self, protocol: Protocol, result: LoginResult) {
        self.logins.get_or_create(&LoginLabels { protocol, result }).inc();
    }

    /// A transfer ended: `bytes` moved (also when it failed part-way), in `took`.
    pub fn transfer(
        &self,
        protocol: Protocol,
        operation: Operation,
        bytes: u64,
        took: Duration,
        outcome: impl Into<Outcome>,
    ) {
        let labels = ByteLabels { protocol, operation };
        self.bytes.get_or_create(&labels).inc_by(bytes);
        self.transfer_seconds.get_or_create(&labels).observe(took.as_secs_f64());
        self.transfers.get_or_create(&TransferLabels { protocol, operation, result: outcome.into() }).inc();
    }

    pub fn quota_refused(&self) {
        self.quota_refusals.inc();
    }

    /// Sets the gauges read at scrape time, then encodes everything in the Prometheus text
    /// format.
    pub fn encode(&self, now: &Snapshot) -> String {
        for protocol in [Protocol::native, Protocol::ftp, Protocol::sftp] {
            for stage in [Stage::prelogin, Stage::queued, Stage::active] {
                let count = now.sessions.iter().filter(|(p, s)| *p == protocol && *s == stage).count();
                self.sessions.get_or_create(&SessionLabels { protocol, stage }).set(count as i64);
            }
        }
        self.bans.set(now.bans as i64);
        for (pool, queued, running) in &now.pools {
            self.pool_jobs.get_or_create(&PoolLabels { pool: *pool, state: JobState::queued }).set(*queued as i64);
            self.pool_jobs.get_or_create(&PoolLabels { pool: *pool, state: JobState::running }).set(*running as i64);
        }
        // Counted by the pools and the digest index themselves (they know nothing of metrics);
        // copied here.
        for (pool, job, done) in &now.jobs_done {
            self.jobs_done.get_or_create(&JobLabels { pool: *pool, job }).inner().store(*done, Ordering::Relaxed);
        }
        self.digest_hits.inner().store(now.digest_hits, Ordering::Relaxed);
        let mut text = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// What the gauges show, read when scraped.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every connection's protocol and stage.
    pub sessions: Vec<(Protocol, Stage)>,
    pub bans: usize,
    /// Each pool's jobs waiting and running.
    pub pools: Vec<(Pool, u64, u64)>,
    /// Each pool's jobs ended since start, by job name.
    pub jobs_done: Vec<(Pool, &'static str, u64)>,
    pub digest_hits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_encode_with_bounded_labels() {
        let metrics = Metrics::new();
        metrics.login(Protocol::ftp, LoginResult::failed);
        metrics.transfer(Protocol::native, Operation::upload, 1000, Duration::from_millis(3), Ok(()));
        metrics.transfer(
            Protocol::native,
            Operation::upload,
            10,
            Duration::from_millis(3),
            Err(ErrorCode::QuotaExceeded),
        );
        metrics.transfer(Protocol::ftp, Operation::download, 0, Duration::from_millis(3), Outcome::Lost);
        metrics.quota_refused();
        let snapshot = Snapshot {
            sessions: vec![(Protocol::native, Stage::active), (Protocol::native, Stage::active)],
            bans: 1,
            pools: vec![(Pool::disk, 0, 2)],
            jobs_done: vec![(Pool::disk, "store file", 7)],
            digest_hits: 5,
        };
        let text = metrics.encode(&snapshot);
        for line in [
            "ftp_actor_logins_total{protocol=\"ftp\",result=\"failed\"} 1",
            "ftp_actor_transfer_bytes_total{protocol=\"native\",operation=\"upload\"} 1010",
            "ftp_actor_transfers_total{protocol=\"native\",operation=\"upload\",result=\"ok\"} 1",
            "ftp_actor_transfers_total{protocol=\"native\",operation=\"upload\",result=\"400\"} 1",
            "ftp_actor_quota_refusals_total 1",
            "ftp_actor_transfers_total{protocol=\"ftp\",operation=\"download\",result=\"lost\"} 1",
            "ftp_actor_sessions{protocol=\"native\",stage=\"active\"} 2",
            "ftp_actor_sessions{protocol=\"ftp\",stage=\"queued\"} 0",
            "ftp_actor_bans_active 1",
            "ftp_actor_pool_jobs{pool=\"disk\",state=\"running\"} 2",
            "ftp_actor_stored_digest_hits_total 5",
            "ftp_actor_pool_jobs_done_total{pool=\"disk\",job=\"store file\"} 7",
            "ftp_actor_transfer_seconds_count{protocol=\"native\",operation=\"upload\"} 2",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }
}
