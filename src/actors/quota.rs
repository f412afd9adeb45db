//! QuotaActor: the one place that knows every user's usage and live reservations.
//!
//! Sessions of the same user run on their own, so their uploads can only be kept within the
//! quota together by one owner of the numbers: this actor, processing one message at a time.
//! It also knows which paths are being uploaded to, so a second upload to the same path gets
//! "in use" instead of corrupting the first.
//!
//! An upload's place in the ledger is an [`UploadLease`]. The lease travels with the partial
//! file (into disk jobs and back), records the disk change its upload has made so far, and
//! settles itself when dropped, wherever that happens: a dropped connection, a stopped session
//! or a panicking job cannot leave a reservation or a path lock behind.
//!
//! Supervision: the actor runs under an actix `Supervisor`. A panic in a handler becomes an
//! error reply and stops the actor; the supervisor restarts it (same mailbox: requests sent
//! meanwhile wait and are answered) and `started` rebuilds the numbers from disk: usage is
//! scanned from the homes, partial files included, minus the disk changes live uploads have
//! made but not yet settled (read atomically with the scan through the [`UsageGate`]); live
//! reservations are restored from the leases.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use actix::prelude::*;

use crate::quota::{Ledger, QuotaExceeded, ReservationId, Usage, UsageGate};
use crate::storage::Home;

use super::disk::DiskPool;
use super::panic_guard::{InjectPanic, Panicked, catch_panic};

/// A user as the quota actor needs to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUser {
    pub name: String,
    pub home: PathBuf,
    pub limit: u64,
}

/// Why an upload could not get or grow its reservation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QuotaError {
    #[error("another upload to this path is in progress")]
    InUse,
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    #[error(transparent)]
    Internal(#[from] Panicked),
}

/// What the actor and a live upload share about that upload.
#[derive(Debug)]
pub struct LeaseState {
    user: String,
    target: PathBuf,
    /// Disk change made by the upload and not yet settled into `used`.
    unsettled: AtomicI64,
    /// Bytes reserved for it.
    reserved: AtomicU64,
}

pub struct QuotaActor {
    ledger: Ledger,
    users: Vec<QuotaUser>,
    /// Live uploads; kept across restarts (the supervisor reuses this value), since they
    /// describe uploads that are still running.
    leases: HashMap<ReservationId, Arc<LeaseState>>,
    /// Per user: the last numbered adjustment the latest scan already includes.
    scanned_through: HashMap<String, u64>,
    disk: DiskPool,
    gate: Arc<UsageGate>,
}

impl QuotaActor {
    pub fn new(disk: DiskPool, gate: Arc<UsageGate>) -> QuotaActor {
        QuotaActor {
            ledger: Ledger::default(),
            users: Vec::new(),
            leases: HashMap::new(),
            scanned_through: HashMap::new(),
            disk,
            gate,
        }
    }

    /// Runs `body`; if it panics, the actor stops (and is restarted by its supervisor).
    fn guarded<R>(&mut self, ctx: &mut Context<Self>, body: impl FnOnce(&mut Self) -> R) -> Result<R, Panicked> {
        let result = catch_panic("quota actor", || body(self));
        if result.is_err() {
            ctx.stop();
        }
        result
    }

    /// Measures `users`' homes and sets their usage; blocks the mailbox until done, so no
    /// request is judged against numbers being rebuilt.
    fn measure(&mut self, ctx: &mut Context<Self>, users: Vec<QuotaUser>) {
        if users.is_empty() {
            return;
        }
        let gate = self.gate.clone();
        let leases: Vec<Arc<LeaseState>> = self.leases.values().cloned().collect();
        let job = move || {
            let scan = gate.scan();
            let measured: Vec<(QuotaUser, std::io::Result<u64>)> = users
                .into_iter()
                .map(|user| {
                    let used = Home::open(&user.home).and_then(|home| home.usage());
                    (user, used)
                })
                .collect();
            let unsettled: Vec<(String, i64)> =
                leases.iter().map(|l| (l.user.clone(), l.unsettled.load(Ordering::SeqCst))).collect();
            (scan.last_change, measured, unsettled)
        };
        let disk = self.disk.clone();
        let work = async move { disk.run("measure usage", job).await };
        ctx.wait(work.into_actor(self).map(|result, act, _| match result {
            Ok((last_change, measured, unsettled)) => {
                for (user, used) in measured {
                    match used {
                        Ok(on_disk) => {
                            let pending: i64 =
                                unsettled.iter().filter(|(u, _)| *u == user.name).map(|(_, c)| c).sum();
                            let settled = (on_disk as i64 - pending).max(0) as u64;
                            act.ledger.set_used(&user.name, settled);
                            act.scanned_through.insert(user.name.clone(), last_change);
                            tracing::debug!(user = %user.name, on_disk, settled, "usage measured");
                        }
                        Err(error) => {
                            tracing::error!(user = %user.name, home = %user.home.display(), %error, "cannot measure usage")
                        }
                    }
                }
            }
            Err(error) => tracing::error!(%error, "usage scan failed"),
        }));
    }
}

impl Actor for QuotaActor {
    type Context = Context<Self>;

    /// On the first start there is nothing to rebuild; after a restart, everything is.
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.ledger = Ledger::default();
        for user in &self.users {
            self.ledger.set_limit(&user.name, user.limit);
        }
        for (id, lease) in &self.leases {
            self.ledger.restore(&lease.user, *id, lease.reserved.load(Ordering::SeqCst));
        }
        let users = self.users.clone();
        self.measure(ctx, users);
    }
}

impl Supervised for QuotaActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!(live_uploads = self.leases.len(), "quota actor restarting; rebuilding usage from disk");
    }
}

/// Measure every user's home again (the server's SIGHUP): files added or removed behind the
/// server's back count from then on. Like every measurement it holds the mailbox until done,
/// so uploads wait for it rather than be judged against numbers being rebuilt.
#[derive(Message)]
#[rtype(result = "()")]
pub struct MeasureAgain;

impl Handler<MeasureAgain> for QuotaActor {
    type Result = ();

    fn handle(&mut self, _: MeasureAgain, ctx: &mut Context<Self>) {
        tracing::info!(users = self.users.len(), "measuring every home again");
        let users = self.users.clone();
        self.measure(ctx, users);
    }
}

/// The current user list; new users (and users whose home moved) are measured before any
/// other message is handled.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetUsers(pub Vec<QuotaUser>);

impl Handler<SetUsers> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: SetUsers, ctx: &mut Context<Self>) {
        let changed = self.guarded(ctx, |act| {
            let changed: Vec<QuotaUser> = msg
                .0
                .iter()
                .filter(|user| !act.users.iter().any(|u| u.name == user.name && u.home == user.home))
                .cloned()
                .collect();
            for user in &act.users {
                let live = act.leases.values().any(|l| l.user == user.name);
                if !msg.0.iter().any(|u| u.name == user.name) && !live {
                    act.ledger.remove(&user.name);
                }
            }
            for user in &msg.0 {
                act.ledger.set_limit(&user.name, user.limit);
            }
            act.users = msg.0;
            changed
        });
        if let Ok(changed) = changed {
            self.measure(ctx, changed);
        }
    }
}

/// Opens an upload: locks `target` (the absolute path) with a zero-byte reservation.
#[derive(Message)]
#[rtype(result = "Result<UploadLease, QuotaError>")]
pub struct OpenUpload {
    pub user: String,
    pub target: PathBuf,
}

impl Handler<OpenUpload> for QuotaActor {
    type Result = Result<UploadLease, QuotaError>;

    fn handle(&mut self, msg: OpenUpload, ctx: &mut Context<Self>) -> Self::Result {
        let address = ctx.address();
        self.guarded(ctx, |act| {
            if act.leases.values().any(|lease| lease.target == msg.target) {
                return Err(QuotaError::InUse);
            }
            let id = act.ledger.open(&msg.user);
            let state = Arc::new(LeaseState {
                user: msg.user,
                target: msg.target,
                unsettled: AtomicI64::new(0),
                reserved: AtomicU64::new(0),
            });
            act.leases.insert(id, state.clone());
            Ok(UploadLease { quota: address, id, state })
        })?
    }
}

/// Sets a lease's reservation to `bytes` if the quota allows it.
#[derive(Message)]
#[rtype(result = "Result<(), QuotaError>")]
pub struct Reserve {
    pub id: ReservationId,
    pub bytes: u64,
}

impl Handler<Reserve> for QuotaActor {
    type Result = Result<(), QuotaError>;

    fn handle(&mut self, msg: Reserve, ctx: &mut Context<Self>) -> Self::Result {
        self.guarded(ctx, |act| {
            let lease = act.leases.get(&msg.id).ok_or_else(|| Panicked {
                place: "quota actor",
                message: format!("reservation {} is not live", msg.id),
            })?;
            act.ledger.reserve(&lease.user, msg.id, msg.bytes)?;
            lease.reserved.store(msg.bytes, Ordering::SeqCst);
            Ok(())
        })?
    }
}

/// Ends a lease (sent by [`UploadLease`]'s `Drop`).
#[derive(Message)]
#[rtype(result = "()")]
struct Settle {
    id: ReservationId,
    disk_change: i64,
}

impl Handler<Settle> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: Settle, ctx: &mut Context<Self>) {
        let _ = self.guarded(ctx, |act| {
            if let Some(lease) = act.leases.remove(&msg.id) {
                act.ledger.settle(&lease.user, msg.id, msg.disk_change);
            }
        });
    }
}

/// A numbered change on disk outside uploads (a removed file); see [`UsageGate`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adjust {
    pub user: String,
    pub disk_change: i64,
    pub number: u64,
}

impl Handler<Adjust> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: Adjust, ctx: &mut Context<Self>) {
        let _ = self.guarded(ctx, |act| {
            if act.scanned_through.get(&msg.user).is_some_and(|&seen| msg.number <= seen) {
                return; // the last scan already saw this change
            }
            act.ledger.adjust(&msg.user, msg.disk_change);
        });
    }
}

/// A user's figures.
#[derive(Message)]
#[rtype(result = "Result<Usage, Panicked>")]
pub struct GetUsage {
    pub user: String,
}

impl Handler<GetUsage> for QuotaActor {
    type Result = Result<Usage, Panicked>;

    fn handle(&mut self, msg: GetUsage, ctx: &mut Context<Self>) -> Self::Result {
        self.guarded(ctx, |act| act.ledger.usage(&msg.user))
    }
}

/// Figures for invariant checks (tests, demo): every user's usage and the live leases.
#[derive(Message)]
#[rtype(result = "Result<QuotaSnapshot, Panicked>")]
pub struct Snapshot;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaSnapshot {
    pub usage: Vec<(String, Usage)>,
    pub live_uploads: usize,
}

impl Handler<Snapshot> for QuotaActor {
    type Result = Result<QuotaSnapshot, Panicked>;

    fn handle(&mut self, _: Snapshot, ctx: &mut Context<Self>) -> Self::Result {
        self.guarded(ctx, |act| {
            let mut usage: Vec<_> = act.users.iter().map(|u| (u.name.clone(), act.ledger.usage(&u.name))).collect();
            usage.sort_by(|a, b| a.0.cmp(&b.0));
            QuotaSnapshot { usage, live_uploads: act.leases.len() }
        })
    }
}

impl Handler<InjectPanic> for QuotaActor {
    type Result = Result<(), Panicked>;

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) -> Self::Result {
        self.guarded(ctx, |_| panic!("injected failure in the quota actor"))
    }
}

/// An upload's reservation and path lock, settled when dropped.
#[derive(Debug)]
pub struct UploadLease {
    quota: Addr<QuotaActor>,
    id: ReservationId,
    state: Arc<LeaseState>,
}

impl UploadLease {
    pub fn id(&self) -> ReservationId {
        self.id
    }

    pub fn user(&self) -> &str {
        &self.state.user
    }

    /// Bytes the QuotaActor holds for this upload now (set by [`Reserve`]).
    pub fn reserved(&self) -> u64 {
        self.state.reserved.load(Ordering::SeqCst)
    }

    /// Records the disk change the upload has made so far. Call it under the
    /// [`UsageGate`]'s change guard, in the same job that changed the disk.
    pub fn record_disk_change(&self, change: i64) {
        self.state.unsettled.store(change, Ordering::SeqCst);
    }
}

impl Drop for UploadLease {
    fn drop(&mut self) {
        self.quota.do_send(Settle { id: self.id, disk_change: self.state.unsettled.load(Ordering::SeqCst) });
    }
}
