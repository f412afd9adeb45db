//! Failed logins and bans shared by every instance: each keeps the throttle in its own memory
//! (the acceptor asks it at every connection, the AuthActor at every login: no round trip on
//! that path) and writes its own failed and successful logins to `login_events`; a background
//! task replays the other instances' events into it, as if they had happened here, at the time
//! they happened. A failure on one instance thus counts on all within a [`POLL`], and a ban
//! follows on every instance from the same count. An instance that starts replays the events of
//! the last `login_ban_max_secs`, so a restart lifts no ban.
//!
//! While the database is unreachable each instance goes on with what it knows; its own events
//! wait in a bounded queue ([`MAX_WAITING`], the oldest dropped past it) and are written when
//! the database is back.

use crate::state::postgres::cached;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::auth::throttle::{Admission, LoginThrottle, ThrottlePolicy};
use crate::state::failed_logins::FailedLogins;

use super::{Database, DatabaseError};

/// How often an instance writes its events and reads the others'.
pub const POLL: Duration = Duration::from_millis(250);
/// Events read again on every poll, so that one committed late (its time stamp older than the
/// newest already read) is not missed; seen ones are skipped by id.
const OVERLAP: Duration = Duration::from_secs(10);
/// Own events kept while the database is unreachable.
pub const MAX_WAITING: usize = 10_000;
/// How often events older than the longest ban are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// One login's outcome as another instance learns it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LoginEvent {
    address: IpAddr,
    name: String,
    failed: bool,
    /// When it happened here: it is written up to a [`POLL`] later, stamped with the
    /// database's clock minus its age, so that every instance orders events on one clock.
    happened: Instant,
}

/// The local throttle, plus the events to tell the other instances.
pub struct SharedThrottle {
    local: LoginThrottle,
    outbox: VecDeque<LoginEvent>,
}

impl SharedThrottle {
    fn tell(&mut self, event: LoginEvent) {
        if self.outbox.len() >= MAX_WAITING {
            self.outbox.pop_front();
        }
        self.outbox.push_back(event);
    }

    /// Applies another instance's login, at the time it happened.
    fn learn(&mut self, event: &LoginEvent) {
        match event.failed {
            true => {
                self.local.failed(event.address, &event.name, event.happened);
            }
            false => self.local.succeeded_at(event.address, &event.name, event.happened),
        }
    }
}

impl FailedLogins for SharedThrottle {
    fn check(&self, address: IpAddr, name: &str, now: Instant) -> Admission {
        self.local.check(address, name, now)
    }

    fn address_ban(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        self.local.address_ban(address, now)
    }

    fn failed(&mut self, address: IpAddr, name: &str, now: Instant) -> Duration {
        self.tell(LoginEvent { address, name: name.to_string(), failed: true, happened: now });
        self.local.failed(address, name, now)
    }

    fn succeeded(&mut self, address: IpAddr, name: &str) {
        self.tell(LoginEvent { address, name: name.to_string(), failed: false, happened: Instant::now() });
        self.local.succeeded(address, name);
    }

    fn banned(&self, now: Instant) -> usize {
        self.local.banned(now)
    }
}

/// Starts the shared throttle and the task that keeps it in step with the other instances.
pub fn start(database: &Database, policy: ThrottlePolicy) -> Arc<Mutex<SharedThrottle>> {
    let throttle = Arc::new(Mutex::new(SharedThrottle { local: LoginThrottle::new(policy), outbox: VecDeque::new() }));
    let mut id = [0u8; 8];
    rand::fill(&mut id);
    let exchange = Exchange {
        database: database.clone(),
        throttle: throttle.clone(),
        instance: hex::encode(id),
        horizon: policy.max_ban.max(policy.window),
        since: None,
        seen: HashMap::new(),
        last_prune: None,
        failing: false,
    };
    database.spawn(exchange.run());
    throttle
}

/// The background task's state.
struct Exchange {
    database: Database,
    throttle: Arc<Mutex<SharedThrottle>>,
    /// This process's name in `login_events` (new at every start).
    instance: String,
    /// How far back events matter: the longest ban.
    horizon: Duration,
    /// The newest event time read (`None`: nothing read yet, start from the horizon).
    since: Option<SystemTime>,
    /// Ids read within the overlap, and their times.
    seen: HashMap<i64, SystemTime>,
    last_prune: Option<Instant>,
    /// Whether the last poll failed (a failure is logged once, and the recovery).
    failing: bool,
}

impl Exchange {
    async fn run(mut self) {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = self.poll().await;
            match (result, self.failing) {
                (Ok(()), true) => {
                    tracing::info!("failed logins are shared with the other instances again");
                    self.failing = false;
                }
                (Err(error), false) => {
                    tracing::warn!(%error, "cannot share failed logins with the other instances; retrying");
                    self.failing = true;
                }
                _ => {}
            }
        }
    }

    async fn poll(&mut self) -> Result<(), DatabaseError> {
        let client = self.database.connection().await?;
        let outgoing: Vec<LoginEvent> =
            self.throttle.lock().map(|mut t| t.outbox.drain(..).collect()).unwrap_or_default();
        let insert = "INSERT INTO login_events (instance, address, name, failed, at) \
                      VALUES ($1, $2, $3, $4, clock_timestamp() - make_interval(secs => $5))";
        for (sent, event) in outgoing.iter().enumerate() {
            let age = event.happened.elapsed().as_secs_f64();
            let values: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&self.instance, &event.address, &event.name, &event.failed, &age];
            if let Err(error) = cached::execute(&client, insert, &values).await {
                // Put back what was not written, ahead of what came meanwhile.
                if let Ok(mut throttle) = self.throttle.lock() {
                    for event in outgoing[sent..].iter().rev() {
                        throttle.outbox.push_front(event.clone());
                    }
                    throttle.outbox.truncate(MAX_WAITING);
                }
                return Err(error.into());
            }
        }
        let since = match self.since {
            Some(newest) => newest.checked_sub(OVERLAP).unwrap_or(SystemTime::UNIX_EPOCH),
            None => {
                let now: SystemTime = cached::query_one(&client, "SELECT clock_timestamp()", &[]).await?.get(0);
                now.checked_sub(self.horizon).unwrap_or(SystemTime::UNIX_EPOCH)
            }
        };
        let rows = cached::query(
            &client,
            "SELECT id, at, address, name, failed, clock_timestamp() FROM login_events \
                 WHERE at >= $1 AND instance <> $2 ORDER BY at, id",
            &[&since, &self.instance],
        )
        .await?;
        let now = Instant::now();
        let mut learned = Vec::new();
        for row in &rows {
            let (id, at): (i64, SystemTime) = (row.get(0), row.get(1));
            let database_now: SystemTime = row.get(5);
            self.since = Some(self.since.map_or(at, |newest| newest.max(at)));
            if self.seen.insert(id, at).is_some() {
                continue;
            }
            let age = database_now.duration_since(at).unwrap_or_default();
            let happened = now.checked_sub(age).unwrap_or(now);
            learned.push(LoginEvent { address: row.get(2), name: row.get(3), failed: row.get(4), happened });
        }
        if self.since.is_none() {
            self.since = Some(since);
        }
        if !learned.is_empty()
            && let Ok(mut throttle) = self.throttle.lock()
        {
            for event in &learned {
                tracing::debug!(address = %event.address, name = %event.name, failed = event.failed, "login on another instance");
                throttle.learn(event);
            }
        }
        let keep_after = self.since.and_then(|newest| newest.checked_sub(OVERLAP * 2));
        self.seen.retain(|_, at| keep_after.is_none_or(|after| *at >= after));
        if self.last_prune.is_none_or(|last| last.elapsed() >= PRUNE_EVERY) {
            let horizon = self.horizon.as_secs_f64();
            cached::execute(
                &client,
                "DELETE FROM login_events WHERE at < clock_timestamp() - make_interval(secs => $1)",
                &[&horizon],
            )
            .await?;
            self.last_prune = Some(Instant::now());
        }
        Ok(())
    }
}
