//! QuotaActor: the one place that knows every user's usage and live reservations.
//!
//! Sessions of the same user run on their own, so their uploads can only be kept within the
//! quota together by one owner of the numbers: this actor, processing one message at a time.
//! It also holds the set of paths being uploaded to, so a second upload to the same path gets
//! "in use" instead of corrupting the first.
//!
//! An upload's place in the ledger is an [`UploadLease`]. The lease travels with the partial
//! file (into disk jobs and back) and settles itself when dropped, wherever that happens, so a
//! dropped connection, a stopped session or a panicking job can never leave a reservation or a
//! path lock behind.

use std::collections::HashSet;
use std::path::PathBuf;

use actix::prelude::*;

use crate::quota::{Ledger, QuotaExceeded, ReservationId, Usage};
use crate::storage::Home;

use super::disk::DiskPool;

/// A user as the quota actor needs to know them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaUser {
    pub name: String,
    pub home: PathBuf,
    pub limit: u64,
}

pub struct QuotaActor {
    ledger: Ledger,
    homes: std::collections::HashMap<String, PathBuf>,
    uploads_in_progress: HashSet<PathBuf>,
    disk: DiskPool,
}

impl QuotaActor {
    pub fn new(disk: DiskPool) -> QuotaActor {
        QuotaActor { ledger: Ledger::default(), homes: Default::default(), uploads_in_progress: HashSet::new(), disk }
    }
}

impl Actor for QuotaActor {
    type Context = Context<Self>;
}

/// The current user list; new users' homes are scanned for their usage before any other
/// message is handled (`ctx.wait`), so no reservation is judged against a missing count.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetUsers(pub Vec<QuotaUser>);

impl Handler<SetUsers> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: SetUsers, ctx: &mut Context<Self>) {
        let names: HashSet<&str> = msg.0.iter().map(|u| u.name.as_str()).collect();
        let gone: Vec<String> = self
            .ledger
            .users()
            .filter(|u| !names.contains(u) && self.ledger.open_reservations(u) == 0)
            .map(str::to_string)
            .collect();
        for user in gone {
            self.ledger.remove(&user);
            self.homes.remove(&user);
        }
        let mut to_scan = Vec::new();
        for user in msg.0 {
            self.ledger.set_limit(&user.name, user.limit);
            if self.homes.get(&user.name) != Some(&user.home) {
                self.homes.insert(user.name.clone(), user.home.clone());
                to_scan.push((user.name, user.home));
            }
        }
        if to_scan.is_empty() {
            return;
        }
        let disk = self.disk.clone();
        let scan = async move {
            disk.run("scan usage", move || {
                to_scan
                    .into_iter()
                    .map(|(name, home)| {
                        let used = Home::open(&home).and_then(|h| h.usage());
                        (name, home, used)
                    })
                    .collect::<Vec<_>>()
            })
            .await
        };
        ctx.wait(scan.into_actor(self).map(|scanned, act, _| match scanned {
            Ok(results) => {
                for (name, home, used) in results {
                    match used {
                        Ok(used) => act.ledger.set_used(&name, used),
                        Err(error) => {
                            tracing::error!(user = %name, home = %home.display(), %error, "cannot measure usage")
                        }
                    }
                }
            }
            Err(error) => tracing::error!(%error, "usage scan failed"),
        }));
    }
}

/// Another upload to this path is in progress.
#[derive(Debug, Clone, thiserror::Error)]
#[error("another upload to this path is in progress")]
pub struct PathInUse;

/// Opens an upload: locks `target` (the absolute path) and a zero-byte reservation.
#[derive(Message)]
#[rtype(result = "Result<UploadLease, PathInUse>")]
pub struct OpenUpload {
    pub user: String,
    pub target: PathBuf,
}

impl Handler<OpenUpload> for QuotaActor {
    type Result = Result<UploadLease, PathInUse>;

    fn handle(&mut self, msg: OpenUpload, ctx: &mut Context<Self>) -> Self::Result {
        if !self.uploads_in_progress.insert(msg.target.clone()) {
            return Err(PathInUse);
        }
        let id = self.ledger.open(&msg.user);
        Ok(UploadLease { quota: ctx.address(), user: msg.user, id, target: msg.target, disk_change: 0 })
    }
}

/// Sets a lease's reservation to `bytes` if the quota allows it.
#[derive(Message)]
#[rtype(result = "Result<(), QuotaExceeded>")]
pub struct Reserve {
    pub user: String,
    pub id: ReservationId,
    pub bytes: u64,
}

impl Handler<Reserve> for QuotaActor {
    type Result = Result<(), QuotaExceeded>;

    fn handle(&mut self, msg: Reserve, _: &mut Context<Self>) -> Self::Result {
        self.ledger.reserve(&msg.user, msg.id, msg.bytes)
    }
}

/// Ends a lease (sent by [`UploadLease`]'s `Drop`).
#[derive(Message)]
#[rtype(result = "()")]
struct Settle {
    user: String,
    id: ReservationId,
    target: PathBuf,
    disk_change: i64,
}

impl Handler<Settle> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: Settle, _: &mut Context<Self>) {
        self.ledger.settle(&msg.user, msg.id, msg.disk_change);
        self.uploads_in_progress.remove(&msg.target);
    }
}

/// A change on disk outside uploads (a removed file).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Adjust {
    pub user: String,
    pub disk_change: i64,
}

impl Handler<Adjust> for QuotaActor {
    type Result = ();

    fn handle(&mut self, msg: Adjust, _: &mut Context<Self>) {
        self.ledger.adjust(&msg.user, msg.disk_change);
    }
}

/// A user's figures.
#[derive(Message)]
#[rtype(result = "Usage")]
pub struct GetUsage {
    pub user: String,
}

impl Handler<GetUsage> for QuotaActor {
    type Result = MessageResult<GetUsage>;

    fn handle(&mut self, msg: GetUsage, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.ledger.usage(&msg.user))
    }
}

/// An upload's reservation and path lock, settled when dropped.
#[derive(Debug)]
pub struct UploadLease {
    quota: Addr<QuotaActor>,
    user: String,
    id: ReservationId,
    target: PathBuf,
    /// What the upload has changed on disk so far (kept current by the session).
    pub disk_change: i64,
}

impl UploadLease {
    pub fn id(&self) -> ReservationId {
        self.id
    }

    pub fn user(&self) -> &str {
        &self.user
    }
}

impl Drop for UploadLease {
    fn drop(&mut self) {
        self.quota.do_send(Settle {
            user: std::mem::take(&mut self.user),
            id: self.id,
            target: std::mem::take(&mut self.target),
            disk_change: self.disk_change,
        });
    }
}
