//! Acceptor: owns the listeners, counts connections, and decides when a logged-in user gets a
//! session slot.
//!
//! A connection is first *pre-login*: its session runs (greeting, login exchange) but holds no
//! slot and no queue place, only a place in the pre-login budget ([`PreLoginBudget`]): at most
//! `max_prelogin_connections` in all and `max_prelogin_per_address` per source, and when a
//! budget is full the oldest pre-login connection of the source holding the most is closed
//! (error 605) to make room for the newcomer. A banned address is refused at once (error 202)
//! and costs nothing. So silent or trickling sockets can neither take the slots nor keep a
//! real user from logging in.
//!
//! When a login succeeds the session asks for a slot ([`RequestSlot`]). At most
//! `max_concurrency` sessions run at once; the next `max_queued` logged-in users wait in FIFO
//! order, told their position when they arrive and whenever it improves, and get their slot as
//! soon as one frees. Past that, the login is answered with error 600 (server busy) and the
//! connection closed. A waiting client that hangs up leaves the queue at once.
//!
//! Shutdown ([`Shutdown`], sent on SIGTERM or Ctrl-C): the listeners close, waiting users get
//! error 602, idle and pre-login sessions close at once with error 602, and sessions with a
//! transfer in flight get the grace period to finish it. Then the remaining sessions are
//! closed as a revoked account's are (error 602, even mid-download, an upload's client read
//! from until it has the answer) and the system stops once they have ended, or a little after
//! the session's lingering close at the latest. Partial uploads stay on disk for a later
//! resume.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::admission::descriptors::is_out_of_descriptors;
use crate::admission::{Claim, PreLoginBudget, Slots, Source};
use crate::net::frame::encode_frame;
use crate::net::{ErrorCode, Response, WireError};

use super::Services;
use super::auth::{LoginOk, RevokeSessions, WatchRevocations};
use super::session::{CloseNow, Cut, Drain, LINGER, SessionActor};

mod admission_counts;
mod admission_link;
mod session_start;
mod shutdown;
mod task_link;

pub use admission_counts::{AdmissionCounts, CountAdmission};
pub use admission_link::{
    AdmissionLink, ConnectionTicket, QueueNotice, RequestSlot, SessionEnded, SlotAnswer, SlotRequester, refusal_closes,
};
use session_start::SessionLink;
use session_start::refuse;
pub use session_start::{Accepted, FtpListener, NativeListener, Protocol, SftpListener};
pub use shutdown::Shutdown;
use shutdown::{account_changed, shutting_down};
pub use task_link::{Signal, TaskLink};

/// How long the listener pauses after an accept failed for want of descriptors, so that it
/// sheds a connection and waits for its descriptor rather than spinning on the error.
const OUT_OF_DESCRIPTORS_PAUSE: Duration = Duration::from_millis(10);

/// Where a connection stands in admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not logged in: counted in the pre-login budget only.
    PreLogin,
    /// Logged in, waiting in the queue.
    Queued,
    /// Logged in, holding a slot.
    Active,
    /// Being closed (evicted, refused); holds nothing.
    Leaving,
}

struct Connection {
    address: IpAddr,
    link: SessionLink,
    stage: Stage,
    /// Set once logged in (queued or active): counted against the per-user and per-address
    /// caps until the connection ends.
    user: Option<String>,
}

/// The listeners beside the native one, each off unless configured.
#[derive(Default)]
pub struct OtherListeners {
    pub ftp: Option<FtpListener>,
    pub sftp: Option<SftpListener>,
}

pub struct Acceptor {
    services: Services,
    connections: HashMap<u64, Connection>,
    prelogin: PreLoginBudget,
    /// Logged-in sessions (active or queued) per source address, and per user.
    /// The store generation of each user's last revocation: logins checked against an older
    /// store are refused (their challenge may predate a password change).
    revoked: HashMap<String, u64>,
    listener: Option<TcpListener>,
    /// The native connections' TLS configuration (`None`: `plaintext_native`).
    native_tls: Option<Arc<rustls::ServerConfig>>,
    ftp: Option<FtpListener>,
    sftp: Option<SftpListener>,
    listening: Vec<SpawnHandle>,
    slots: Slots,
    /// Where each waiting login hears its position and its admission.
    notices: HashMap<u64, mpsc::UnboundedSender<QueueNotice>>,
    shutting_down: bool,
    next_id: u64,
    /// Accepts failed for want of descriptors since the last log line, and when that was.
    accept_failures: u64,
    failure_logged: Option<Instant>,
}

impl Acceptor {
    /// `max_prelogin` is the pre-login budget the server could fit in its descriptors (see
    /// [`crate::admission::descriptors`]).
    pub fn new(native: NativeListener, others: OtherListeners, services: Services, max_prelogin: usize) -> Acceptor {
        let per_address = services.config.max_prelogin_per_address;
        let slots = Slots::new(services.config.max_concurrency, services.config.max_queued);
        Acceptor {
            ftp: others.ftp,
            sftp: others.sftp,
            services,
            connections: HashMap::new(),
            prelogin: PreLoginBudget::new(max_prelogin, per_address),
            revoked: HashMap::new(),
            listener: Some(native.listener),
            native_tls: native.tls,
            listening: Vec::new(),
            slots,
            notices: HashMap::new(),
            shutting_down: false,
            next_id: 0,
            accept_failures: 0,
            failure_logged: None,
        }
    }

    /// Closes a pre-login connection to make room (see [`PreLoginBudget`]).
    fn evict(&mut self, id: u64) {
        let Some(connection) = self.connections.get_mut(&id) else { return };
        connection.stage = Stage::Leaving;
        tracing::info!(session = id, peer = %connection.address, "pre-login budget full: oldest connection of the busiest address closed");
        connection.link.close_now(WireError::new(
            ErrorCode::PreLoginEvicted,
            "too many connections are waiting to log in, the most from your address: this one was closed; reconnect and log in promptly",
        ));
    }

    /// Logged-in connections (queued or active) that match: counted from the connections
    /// themselves, once per login, so no separate tally can drift from them.
    fn logged_in(&self, matches: impl Fn(&Connection) -> bool) -> usize {
        self.connections.values().filter(|c| c.user.is_some() && matches(c)).count()
    }

    fn stop_when_idle(&self) {
        if self.shutting_down && self.connections.is_empty() {
            tracing::info!("shutdown complete");
            System::current().stop();
        }
    }

    /// Gives freed slots to the front of the queue and tells the rest their new positions.
    fn admit_waiting(&mut self) {
        let mut moved = false;
        while let Some(id) = self.slots.admit_next() {
            moved = true;
            let delivered = self.notices.remove(&id).is_some_and(|notices| notices.send(QueueNotice::Admit).is_ok());
            match self.connections.get_mut(&id) {
                Some(connection) if delivered => connection.stage = Stage::Active,
                // Its session is ending: the slot goes back, and it holds nothing from here on.
                other => {
                    self.slots.release(id);
                    if let Some(connection) = other {
                        connection.stage = Stage::Leaving;
                    }
                }
            }
        }
        if moved {
            self.announce_positions();
        }
    }

    /// Tells every waiting login its position (after the queue moved).
    fn announce_positions(&self) {
        for (id, position) in self.slots.positions() {
            if let Some(notices) = self.notices.get(&id) {
                let _ = notices.send(QueueNotice::Position(position));
            }
        }
    }

    /// May this login take a slot or a queue place? Checks the revocations and the per-user and
    /// per-address caps; the error is the answer to the login.
    fn may_log_in(&self, request: &RequestSlot, address: IpAddr) -> Result<(), WireError> {
        let config = &self.services.config;
        if self.shutting_down {
            return Err(shutting_down());
        }
        if self.revoked.get(&request.user).is_some_and(|&revoked| request.generation < revoked) {
            return Err(account_changed(&request.user));
        }
        let limit = config.max_sessions_per_user;
        if self.logged_in(|c| c.user.as_deref() == Some(request.user.as_str())) >= limit {
            return Err(WireError::new(
                ErrorCode::TooManySessionsForUser,
                format!("{} already has {limit} sessions, the most allowed", request.user),
            ));
        }
        let limit = config.max_sessions_per_address;
        if self.logged_in(|c| c.address == address) >= limit {
            return Err(WireError::new(
                ErrorCode::TooManyFromAddress,
                format!("too many sessions from your address (at most {limit})"),
            ));
        }
        Ok(())
    }
}

impl Actor for Acceptor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.services.auth.do_send(WatchRevocations(ctx.address().recipient()));
        let listener = self.listener.take().expect("the acceptor starts once");
        self.listening.push(ctx.add_stream(connections(listener, Protocol::Native(self.native_tls.clone()))));
        if let Some(FtpListener { listener, tls }) = self.ftp.take() {
            self.listening.push(ctx.add_stream(connections(listener, Protocol::Ftp(tls))));
        }
        if let Some(SftpListener { listener, ssh }) = self.sftp.take() {
            self.listening.push(ctx.add_stream(connections(listener, Protocol::Sftp(ssh))));
        }
    }
}

/// The connections a listener accepts, tagged with its protocol. After a failure for want of
/// descriptors it pauses a moment (the acceptor sheds a connection meanwhile) instead of
/// spinning on a listener that stays readable.
fn connections(listener: TcpListener, protocol: Protocol) -> impl futures::Stream<Item = Accepted> {
    futures::stream::unfold((listener, false), move |(listener, pause)| {
        let protocol = protocol.clone();
        async move {
            if pause {
                tokio::time::sleep(OUT_OF_DESCRIPTORS_PAUSE).await;
            }
            let result = listener.accept().await;
            let pause = matches!(&result, Err(error) if is_out_of_descriptors(error));
            Some((Accepted { protocol, result }, (listener, pause)))
        }
    })
}

impl StreamHandler<Accepted> for Acceptor {
    fn handle(&mut self, accepted: Accepted, ctx: &mut Context<Self>) {
        let protocol = accepted.protocol;
        let (stream, peer) = match accepted.result {
            Ok((stream, peer)) => (stream, crate::net::address::canonical(peer)),
            Err(error) if is_out_of_descriptors(&error) => {
                // Shed the connection the budget would give up first, and keep accepting.
                let shed = self.prelogin.shed();
                if let Some(id) = shed {
                    self.evict(id);
                }
                self.accept_failures += 1;
                // At most one line a second however often it fails.
                if self.failure_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(1)) {
                    let failures = std::mem::take(&mut self.accept_failures);
                    tracing::warn!(%error, failures, prelogin = self.prelogin.len(), shed = shed.is_some(), "accept failed: out of descriptors");
                    self.failure_logged = Some(Instant::now());
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                return;
            }
        };
        let banned =
            self.services.throttle.lock().unwrap_or_else(|p| p.into_inner()).address_ban(peer.ip(), Instant::now());
        if let Some(remaining) = banned {
            let seconds = remaining.as_secs().max(1);
            tracing::debug!(%peer, seconds, "banned address: refused at connect");
            let error = WireError::new(
                ErrorCode::LoginBanned,
                format!("too many failed logins from your address; try again in {seconds} seconds"),
            );
            actix_rt::spawn(refuse(stream, protocol, error));
            return;
        }
        self.next_id += 1;
        let id = self.next_id;
        if let Some(evicted) = self.prelogin.arrive(id, Source::of(peer.ip())) {
            self.evict(evicted);
        }
        self.start_session(ctx, id, stream, peer, protocol);
    }

    /// The listener never ends by itself; if it does, keep the actor for the live sessions.
    fn finished(&mut self, _: &mut Context<Self>) {
        tracing::error!("listener closed");
    }
}

impl Handler<SessionEnded> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _: &mut Context<Self>) {
        let Some(connection) = self.connections.remove(&msg.id) else { return };
        match connection.stage {
            Stage::PreLogin => {
                self.prelogin.leave(msg.id);
            }
            Stage::Queued => {
                self.slots.leave_queue(msg.id);
                self.notices.remove(&msg.id);
                self.announce_positions();
            }
            Stage::Active => {
                self.slots.release(msg.id);
            }
            Stage::Leaving => {}
        }
        self.admit_waiting();
        self.stop_when_idle();
    }
}

impl Handler<RequestSlot> for Acceptor {
    type Result = Result<SlotAnswer, WireError>;

    fn handle(&mut self, msg: RequestSlot, _: &mut Context<Self>) -> Self::Result {
        let Some(address) = self.connections.get(&msg.id).filter(|c| c.stage == Stage::PreLogin).map(|c| c.address)
        else {
            // Evicted while its login was being checked: it is closing.
            return Err(WireError::new(ErrorCode::PreLoginEvicted, "the connection was closed while logging in"));
        };
        // Refused by a cap of this user or address: the connection stays pre-login, and may
        // log in as someone else.
        self.may_log_in(&msg, address)?;
        self.prelogin.leave(msg.id);
        let connection = self.connections.get_mut(&msg.id).expect("looked up above");
        let answer = match self.slots.claim(msg.id) {
            Claim::Now => {
                connection.stage = Stage::Active;
                SlotAnswer::Now
            }
            Claim::Queued(position) => {
                let (notices, receiver) = mpsc::unbounded_channel();
                self.notices.insert(msg.id, notices);
                connection.stage = Stage::Queued;
                tracing::info!(session = msg.id, user = %msg.user, position, "all slots taken: login queued");
                SlotAnswer::Queued { position, notices: receiver }
            }
            Claim::Full => {
                connection.stage = Stage::Leaving;
                let config = &self.services.config;
                tracing::warn!(session = msg.id, user = %msg.user, active = self.slots.active(), queued = self.slots.queued(), "server busy: login refused");
                return Err(WireError::new(
                    ErrorCode::ServerBusy,
                    format!(
                        "server busy: all {} sessions and {} queue places are taken; try again in a moment",
                        config.max_concurrency, config.max_queued
                    ),
                ));
            }
        };
        connection.user = Some(msg.user);
        Ok(answer)
    }
}
