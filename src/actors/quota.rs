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
use futures::future::BoxFuture;

use crate::quota::{DiskChange, Ledger, QuotaExceeded, ReservationId, TooManyFiles, Usage, UsageGate};
use crate::state::quota::{QuotaLease, QuotaLedger};
use crate::storage::Homes;

use super::disk::DiskPool;
use super::panic_guard::{InjectPanic, Panicked, catch_panic};
use crate::metrics::Metrics;

/// A user as the quota actor needs to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUser {
    pub name: String,
    pub home: PathBuf,
    pub limit: u64,
    pub max_files: u64,
}

/// Why an upload could not get or grow its reservation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QuotaError {
    #[error("another upload to this path is in progress")]
    InUse,
    #[error(transparent)]
    Exceeded(#[from] QuotaExceeded),
    #[error(transparent)]
    TooManyFiles(#[from] TooManyFiles),
    #[error(transparent)]
    Internal(#[from] Panicked),
    /// The shared ledger's database did not answer (cluster mode).
    #[error("the quota ledger cannot be reached: {0}")]
    Unreachable(String),
}

/// What the actor and a live upload share about that upload.
#[derive(Debug)]
pub struct LeaseState {
    user: String,
    /// The path an upload locks; `None` for a lease that only creates a directory.
    target: Option<PathBuf>,
    /// Disk change made by the lease's holder and not yet settled into the figures.
    unsettled_bytes: AtomicI64,
    unsettled_files: AtomicI64,
    /// Bytes reserved for it.
    reserved: AtomicU64,
    /// Entries reserved for it: 1 if it may create one (a partial, a directory), else 0.
    reserved_files: AtomicU64,
}

impl LeaseState {
    fn new(user: String, target: Option<PathBuf>, reserved_files: u64) -> Arc<LeaseState> {
        Arc::new(LeaseState {
            user,
            target,
            unsettled_bytes: AtomicI64::new(0),
            unsettled_files: AtomicI64::new(0),
            reserved: AtomicU64::new(0),
            reserved_files: AtomicU64::new(reserved_files),
        })
    }

    fn unsettled(&self) -> DiskChange {
        DiskChange {
            bytes: self.unsettled_bytes.load(Ordering::SeqCst),
            files: self.unsettled_files.load(Ordering::SeqCst),
        }
    }
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
    /// Where refusals are counted for operators.
    metrics: Arc<Metrics>,
    /// Where homes are kept, to measure them.
    homes: Homes,
}

impl QuotaActor {
    pub fn new(disk: DiskPool, gate: Arc<UsageGate>, metrics: Arc<Metrics>, homes: Homes) -> QuotaActor {
        QuotaActor {
            metrics,
            homes,
            ledger: Ledger::default(),
            users: Vec::new(),
            leases: HashMap::new(),
            scanned_through: HashMap::new(),
            disk,
            gate,
        }
    }

    /// Records a live lease for reservation `id` and hands it out.
    fn lease(&mut self, quota: Addr<QuotaActor>, id: ReservationId, state: Arc<LeaseState>) -> UploadLease {
        self.leases.insert(id, state.clone());
        UploadLease { quota, id, state }
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
        let (gate, homes) = (self.gate.clone(), self.homes.clone());
        let leases: Vec<Arc<LeaseState>> = self.leases.values().cloned().collect();
        let job = move || {
            let scan = gate.scan();
            let measured: Vec<(QuotaUser, Result<crate::storage::HomeUsage, crate::storage::StorageError>)> = users
                .into_iter()
                .map(|user| {
                    let used = homes.usage(&user.home);
                    (user, used)
                })
                .collect();
            let unsettled: Vec<(String, DiskChange)> = leases.iter().map(|l| (l.user.clone(), l.unsettled())).collect();
            (scan.last_change, measured, unsettled)
        };
        let disk = self.disk.clone();
        let work = async move { disk.run("measure usage", job).await };
        ctx.wait(work.into_actor(self).map(|result, act, _| match result {
            Ok((last_change, measured, unsettled)) => {
                for (user, used) in measured {
                    match used {
                        Ok(on_disk) => {
                            let pending = unsettled.iter().filter(|(u, _)| *u == user.name).map(|(_, c)| c);
                            let (bytes, files) = pending.fold((0, 0), |(b, f), c| (b + c.bytes, f + c.files));
                            let settled = (on_disk.bytes as i64 - bytes).max(0) as u64;
                            let settled_files = (on_disk.files as i64 - files).max(0) as u64;
                            act.ledger.set_measured(&user.name, settled, settled_files);
                            act.scanned_through.insert(user.name.clone(), last_change);
                            tracing::debug!(user = %user.name, on_disk = on_disk.bytes, settled, files = settled_files,
                                "usage measured");
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
            self.ledger.set_limits(&user.name, user.limit, user.max_files);
        }
        for (id, lease) in &self.leases {
            let (bytes, files) = (lease.reserved.load(Ordering::SeqCst), lease.reserved_files.load(Ordering::SeqCst));
            self.ledger.restore(&lease.user, *id, bytes, files);
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
                act.ledger.set_limits(&user.name, user.limit, user.max_files);
            }
            act.users = msg.0;
            changed
        });
        if let Ok(changed) = changed {
            self.measure(ctx, changed);
        }
    }
}

/// Opens an upload: locks `target` (the absolute path) with a reservation of no bytes, and
/// of the entry its partial may need, if `max_files` has room (see [`UploadLease::may_create`]).
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
            if act.leases.values().any(|lease| lease.target.as_ref() == Some(&msg.target)) {
                return Err(QuotaError::InUse);
            }
            let id = act.ledger.open(&msg.user);
            // Most uploads create their partial: reserve its entry now, when there is room, so
            // that they need no second message. Without room, a resume of an existing partial
            // still works; a new one is refused when it would be created.
            let may_create = act.ledger.reserve_file(&msg.user, id).is_ok();
            Ok(act.lease(address, id, LeaseState::new(msg.user, Some(msg.target), may_create as u64)))
        })?
    }
}

/// Opens a lease for creating one entry (a directory), if `max_files` has room for it.
#[derive(Message)]
#[rtype(result = "Result<UploadLease, QuotaError>")]
pub struct OpenEntry {
    pub user: String,
}

impl Handler<OpenEntry> for QuotaActor {
    type Result = Result<UploadLease, QuotaError>;

    fn handle(&mut self, msg: OpenEntry, ctx: &mut Context<Self>) -> Self::Result {
        let address = ctx.address();
        self.guarded(ctx, |act| {
            let id = act.ledger.open(&msg.user);
            if let Err(refused) = act.ledger.reserve_file(&msg.user, id) {
                act.ledger.settle(&msg.user, id, DiskChange::default());
                act.metrics.quota_refused();
                return Err(refused.into());
            }
            Ok(act.lease(address, id, LeaseState::new(msg.user, None, 1)))
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
            if let Err(refused) = act.ledger.reserve(&lease.user, msg.id, msg.bytes) {
                act.metrics.quota_refused();
                return Err(refused.into());
            }
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
    change: DiskChange,
}

impl Handler<Settle> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: Settle, ctx: &mut Context<Self>) {
        let _ = self.guarded(ctx, |act| {
            if let Some(lease) = act.leases.remove(&msg.id) {
                act.ledger.settle(&lease.user, msg.id, msg.change);
            }
        });
    }
}

/// A numbered change on disk outside leases (a removed file or directory); see [`UsageGate`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adjust {
    pub user: String,
    pub change: DiskChange,
    pub number: u64,
}

impl Handler<Adjust> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: Adjust, ctx: &mut Context<Self>) {
        let _ = self.guarded(ctx, |act| {
            if act.scanned_through.get(&msg.user).is_some_and(|&seen| msg.number <= seen) {
                return; // the last scan already saw this change
            }
            act.ledger.adjust(&msg.user, msg.change);
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

/// The users whose homes the actor has measured, with their homes (what expiring old partial
/// uploads walks).
#[derive(Message)]
#[rtype(result = "Vec<QuotaUser>")]
pub struct KnownUsers;

impl Handler<KnownUsers> for QuotaActor {
    type Result = Vec<QuotaUser>;

    fn handle(&mut self, _: KnownUsers, _: &mut Context<Self>) -> Self::Result {
        self.users.clone()
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

/// An upload's reservation and path lock (or a directory's entry), settled when dropped.
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
}

impl QuotaLease for UploadLease {
    /// Bytes the QuotaActor holds for this upload now (set by [`Reserve`]).
    fn reserved(&self) -> u64 {
        self.state.reserved.load(Ordering::SeqCst)
    }

    fn may_create(&self) -> bool {
        self.state.reserved_files.load(Ordering::SeqCst) == 1
    }

    fn reserve(&self, bytes: u64) -> BoxFuture<'static, Result<(), QuotaError>> {
        let sent = self.quota.send(Reserve { id: self.id, bytes });
        Box::pin(async move { sent.await.unwrap_or_else(|_| Err(unavailable())) })
    }

    /// Records the disk change the lease's holder has made so far, all told. Call it under the
    /// [`UsageGate`]'s change guard, in the same job that changed the disk.
    fn record_disk_change(&self, change: DiskChange) {
        self.state.unsettled_bytes.store(change.bytes, Ordering::SeqCst);
        self.state.unsettled_files.store(change.files, Ordering::SeqCst);
    }
}

/// The QuotaActor as the file service's quota ledger (see [`QuotaLedger`]).
impl QuotaLedger for Addr<QuotaActor> {
    fn open_upload(&self, user: String, path: PathBuf) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        let sent = self.send(OpenUpload { user, target: path });
        Box::pin(async move { boxed(sent.await) })
    }

    fn open_entry(&self, user: String) -> BoxFuture<'static, Result<Box<dyn QuotaLease>, QuotaError>> {
        let sent = self.send(OpenEntry { user });
        Box::pin(async move { boxed(sent.await) })
    }

    fn adjust(&self, user: String, change: DiskChange, number: u64) {
        self.do_send(Adjust { user, change, number });
    }

    fn usage(&self, user: String) -> BoxFuture<'static, Result<Usage, QuotaError>> {
        let sent = self.send(GetUsage { user });
        Box::pin(async move {
            match sent.await {
                Ok(Ok(usage)) => Ok(usage),
                Ok(Err(panicked)) => Err(panicked.into()),
                Err(_) => Err(unavailable()),
            }
        })
    }
}

fn boxed(sent: Result<Result<UploadLease, QuotaError>, MailboxError>) -> Result<Box<dyn QuotaLease>, QuotaError> {
    match sent {
        Ok(Ok(lease)) => Ok(Box::new(lease)),
        Ok(Err(refused)) => Err(refused),
        Err(_) => Err(unavailable()),
    }
}

/// The actor did not answer: it is restarting, or the server is stopping.
fn unavailable() -> QuotaError {
    QuotaError::Internal(Panicked { place: "quota actor", message: "quota service unavailable".into() })
}

impl Drop for UploadLease {
    fn drop(&mut self) {
        self.quota.do_send(Settle { id: self.id, change: self.state.unsettled() });
    }
}
