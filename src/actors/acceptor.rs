//! Acceptor: owns the listener and decides, for each connection, whether it gets a session
//! now, waits in the queue, or is refused.
//!
//! At most `max_concurrency` sessions run at once. The next `max_queued` connections wait in
//! FIFO order; each is sent `queued {position}` when it arrives and again whenever its position
//! improves, and gets its session as soon as a slot frees. Past that, a connection gets error
//! 600 (server busy) and is closed. A waiting client that hangs up leaves the queue at once.
//!
//! Shutdown ([`Shutdown`], sent on SIGTERM or Ctrl-C): the listener closes, waiting clients get
//! error 602, idle sessions close at once with error 602, and sessions with a transfer in
//! flight get the grace period to finish it. Then the remaining sessions are closed as a revoked
//! account's are (error 602, even mid-download, an upload's client read from until it has the
//! answer) and the system stops once they have ended, or a little after the session's
//! lingering close at the latest. Partial uploads stay on disk for a later resume.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::net::frame::encode_frame;
use crate::net::{ErrorCode, Response, WireError};

use super::Services;
use super::auth::{LoginOk, RevokeSessions, WatchRevocations};
use super::session::{CloseNow, Cut, Drain, LINGER, SessionActor};

/// Which listener a connection came in on: both share the slots, the queue and the limits.
/// An FTP connection carries the TLS configuration its session will use.
#[derive(Clone)]
pub enum Protocol {
    Native,
    Ftp(crate::ftp::tls::FtpTls),
}

impl Protocol {
    /// What a waiting client is told about its place in the queue. FTP clients get it as
    /// continuation lines of the 220 greeting, which ends when they are admitted, so any
    /// client reads it as one (slow) greeting.
    fn queued(&self, position: u32) -> Vec<u8> {
        match self {
            Protocol::Native => encode_frame(&Response::Queued { position }).expect("queued encodes"),
            Protocol::Ftp(_) => {
                format!("220-all sessions are busy: you are number {position} in the queue; please wait\r\n")
                    .into_bytes()
            }
        }
    }

    /// Why a connection is refused or closed, in its protocol.
    fn refusal(&self, error: &WireError) -> Vec<u8> {
        match self {
            Protocol::Native => encode_frame(&Response::error(error.clone())).expect("errors encode"),
            Protocol::Ftp(_) => crate::ftp::reply::Reply::from_error(error).to_bytes(),
        }
    }
}

/// The FTP listener and the TLS configuration its sessions use.
pub struct FtpListener {
    pub listener: TcpListener,
    pub tls: crate::ftp::tls::FtpTls,
}

/// A connection from one of the listeners.
pub struct Accepted {
    protocol: Protocol,
    result: std::io::Result<(TcpStream, SocketAddr)>,
}

impl Message for Accepted {
    type Result = ();
}

/// What the acceptor tells a waiting connection's task.
enum QueueNotice {
    Position(u32),
    Admit,
    /// The server is shutting down.
    Refuse,
}

struct Waiting {
    id: u64,
    notices: mpsc::UnboundedSender<QueueNotice>,
}

/// How the acceptor reaches a running session.
enum SessionLink {
    Native { addr: Addr<SessionActor>, cut: Arc<Cut> },
    Ftp(crate::ftp::FtpLink),
}

impl SessionLink {
    /// Close once the transfer in progress, if any, is done.
    fn drain(&self) {
        match self {
            SessionLink::Native { addr, .. } => addr.do_send(Drain),
            SessionLink::Ftp(link) => link.drain(),
        }
    }

    /// Close now, telling the client why, even mid-transfer: a native download in progress
    /// stops at its next chunk (it holds the session, so it is reached through the session's
    /// `Cut`), anything else hears a `CloseNow`; an upload's client is still read from, and
    /// its data dropped, until it has the answer (the session's lingering close).
    fn close_now(&self, error: WireError) {
        match self {
            SessionLink::Native { addr, cut } => {
                cut.cut(error.clone());
                addr.do_send(CloseNow(error));
            }
            SessionLink::Ftp(link) => link.close_now(error),
        }
    }
}

pub struct Acceptor {
    services: Services,
    /// Connections (sessions and waiting) per source address, and the address of each.
    per_address: HashMap<IpAddr, usize>,
    addresses: HashMap<u64, IpAddr>,
    /// Logged-in sessions per user, and the user of each.
    per_user: HashMap<String, usize>,
    users: HashMap<u64, String>,
    /// The store generation of each user's last revocation: logins checked against an older
    /// store are refused (their challenge may predate a password change).
    revoked: HashMap<String, u64>,
    listener: Option<TcpListener>,
    ftp: Option<FtpListener>,
    listening: Vec<SpawnHandle>,
    active: usize,
    queue: VecDeque<Waiting>,
    sessions: HashMap<u64, SessionLink>,
    shutting_down: bool,
    next_id: u64,
}

impl Acceptor {
    pub fn new(listener: TcpListener, ftp: Option<FtpListener>, services: Services) -> Acceptor {
        Acceptor {
            ftp,
            services,
            per_address: HashMap::new(),
            addresses: HashMap::new(),
            per_user: HashMap::new(),
            users: HashMap::new(),
            revoked: HashMap::new(),
            listener: Some(listener),
            listening: Vec::new(),
            active: 0,
            queue: VecDeque::new(),
            sessions: HashMap::new(),
            shutting_down: false,
            next_id: 0,
        }
    }

    fn start_session(&mut self, ctx: &mut Context<Self>, admitted: Admitted) {
        let Admitted { id, stream, peer, protocol } = admitted;
        let me = ctx.address();
        let services = self.services.clone();
        let link = match protocol {
            Protocol::Ftp(tls) => SessionLink::Ftp(crate::ftp::session::start(crate::ftp::session::FtpSessionStart {
                id,
                stream,
                peer,
                services,
                tls,
                slot: SlotGuard::new(id, me.clone().recipient()),
                user_slots: me.recipient(),
            })),
            Protocol::Native => {
                let (addr, cut) =
                    SessionActor::start(id, stream, peer, services, me.clone().recipient(), me.recipient());
                SessionLink::Native { addr, cut }
            }
        };
        self.sessions.insert(id, link);
    }

    /// Forgets a connection that ended (or never got in): its address and user counts.
    fn forget(&mut self, id: u64) {
        if let Some(address) = self.addresses.remove(&id)
            && let Some(count) = self.per_address.get_mut(&address)
        {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&address);
            }
        }
        if let Some(user) = self.users.remove(&id)
            && let Some(count) = self.per_user.get_mut(&user)
        {
            *count -= 1;
            if *count == 0 {
                self.per_user.remove(&user);
            }
        }
    }

    fn stop_when_idle(&self) {
        if self.shutting_down && self.sessions.is_empty() {
            tracing::info!("shutdown complete");
            System::current().stop();
        }
    }

    /// Gives freed slots to the front of the queue and tells the rest their new positions.
    fn admit_waiting(&mut self) {
        let mut moved = false;
        while self.active < self.services.config.max_concurrency {
            let Some(waiting) = self.queue.pop_front() else { break };
            if waiting.notices.send(QueueNotice::Admit).is_ok() {
                self.active += 1;
                moved = true;
            }
        }
        if moved {
            self.announce_positions();
        }
    }

    fn announce_positions(&mut self) {
        self.queue.retain(|w| !w.notices.is_closed());
        for (index, waiting) in self.queue.iter().enumerate() {
            let _ = waiting.notices.send(QueueNotice::Position(index as u32 + 1));
        }
    }
}

impl Actor for Acceptor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.services.auth.do_send(WatchRevocations(ctx.address().recipient()));
        let listener = self.listener.take().expect("the acceptor starts once");
        self.listening.push(ctx.add_stream(connections(listener, Protocol::Native)));
        if let Some(FtpListener { listener, tls }) = self.ftp.take() {
            self.listening.push(ctx.add_stream(connections(listener, Protocol::Ftp(tls))));
        }
    }
}

/// The connections a listener accepts, tagged with its protocol.
fn connections(listener: TcpListener, protocol: Protocol) -> impl futures::Stream<Item = Accepted> {
    futures::stream::unfold(listener, move |listener| {
        let protocol = protocol.clone();
        async move {
            let result = listener.accept().await;
            Some((Accepted { protocol, result }, listener))
        }
    })
}

impl StreamHandler<Accepted> for Acceptor {
    fn handle(&mut self, accepted: Accepted, ctx: &mut Context<Self>) {
        let protocol = accepted.protocol;
        let (stream, peer) = match accepted.result {
            Ok(connection) => connection,
            Err(error) => {
                // EMFILE and friends: keep listening; the next accept may succeed.
                tracing::warn!(%error, "accept failed");
                return;
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        let config = &self.services.config;
        let from_address = self.per_address.get(&peer.ip()).copied().unwrap_or(0);
        if from_address >= config.max_sessions_per_address {
            tracing::warn!(%peer, from_address, "too many connections from one address: refused");
            let error = WireError::new(
                ErrorCode::TooManyFromAddress,
                format!("too many connections from your address (at most {})", config.max_sessions_per_address),
            );
            actix_rt::spawn(refuse(stream, protocol, error));
            return;
        }
        *self.per_address.entry(peer.ip()).or_default() += 1;
        self.addresses.insert(id, peer.ip());
        if self.active < config.max_concurrency {
            self.active += 1;
            self.start_session(ctx, Admitted { id, stream, peer, protocol });
        } else if self.queue.len() < config.max_queued {
            let (notices, receiver) = mpsc::unbounded_channel();
            let position = self.queue.len() as u32 + 1;
            let _ = notices.send(QueueNotice::Position(position));
            self.queue.push_back(Waiting { id, notices });
            tracing::info!(%peer, position, "connection queued");
            let patience = Duration::from_secs(config.login_timeout_secs);
            let waiting = Admitted { id, stream, peer, protocol };
            actix_rt::spawn(wait_in_queue(waiting, receiver, ctx.address(), patience));
        } else {
            tracing::warn!(%peer, active = self.active, queued = self.queue.len(), "server busy: connection refused");
            self.forget(id);
            let busy = WireError::new(
                ErrorCode::ServerBusy,
                "server busy: all sessions and queue places are taken; try again in a moment",
            );
            actix_rt::spawn(refuse(stream, protocol, busy));
        }
    }

    /// The listener never ends by itself; if it does, keep the actor for the live sessions.
    fn finished(&mut self, _: &mut Context<Self>) {
        tracing::error!("listener closed");
    }
}

/// A session's admission slot, returned to the acceptor when dropped: even a session whose
/// task dies in a panic gives its slot back.
pub struct SlotGuard {
    id: u64,
    acceptor: Recipient<SessionEnded>,
}

impl SlotGuard {
    pub fn new(id: u64, acceptor: Recipient<SessionEnded>) -> SlotGuard {
        SlotGuard { id, acceptor }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.acceptor.do_send(SessionEnded { id: self.id });
    }
}

/// Sent by a session when it ends: its slot is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub id: u64,
}

impl Handler<SessionEnded> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: SessionEnded, _: &mut Context<Self>) {
        self.active = self.active.saturating_sub(1);
        self.sessions.remove(&msg.id);
        self.forget(msg.id);
        self.admit_waiting();
        self.stop_when_idle();
    }
}

/// A connection that gets (or waits for) a slot.
#[derive(Message)]
#[rtype(result = "()")]
struct Admitted {
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
    protocol: Protocol,
}

impl Handler<Admitted> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: Admitted, ctx: &mut Context<Self>) {
        if self.shutting_down {
            self.active = self.active.saturating_sub(1);
            self.forget(msg.id);
            actix_rt::spawn(refuse(msg.stream, msg.protocol, shutting_down()));
            return;
        }
        tracing::info!(peer = %msg.peer, "queued connection admitted");
        self.start_session(ctx, msg);
    }
}

/// A waiting connection hung up, or its admission could not be delivered.
#[derive(Message)]
#[rtype(result = "()")]
struct LeftQueue {
    id: u64,
    /// The slot had already been given to it and must be returned.
    held_slot: bool,
}

impl Handler<LeftQueue> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: LeftQueue, _: &mut Context<Self>) {
        if msg.held_slot {
            self.active = self.active.saturating_sub(1);
            self.admit_waiting();
        } else if let Some(index) = self.queue.iter().position(|w| w.id == msg.id) {
            self.queue.remove(index);
            self.announce_positions();
        }
        self.forget(msg.id);
    }
}

/// Holds a queued connection: relays position updates, notices a hang-up, and hands the
/// stream back to the acceptor when admitted.
async fn wait_in_queue(
    mut waiting: Admitted,
    mut notices: mpsc::UnboundedReceiver<QueueNotice>,
    acceptor: Addr<Acceptor>,
    patience: Duration,
) {
    let (id, protocol) = (waiting.id, waiting.protocol.clone());
    let mut watching_for_hangup = true;
    let mut probe = [0u8; 1];
    let deadline = tokio::time::sleep(patience);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => {
                let waited = patience.as_secs();
                let busy = WireError::new(ErrorCode::ServerBusy, format!("server still busy after {waited} seconds in the queue; try again later"));
                let _ = waiting.stream.write_all(&protocol.refusal(&busy)).await;
                let _ = waiting.stream.shutdown().await;
                return leave_queue(id, notices, acceptor).await;
            }
            notice = notices.recv() => match notice {
                Some(QueueNotice::Position(position)) => {
                    if waiting.stream.write_all(&protocol.queued(position)).await.is_err() {
                        return leave_queue(id, notices, acceptor).await;
                    }
                }
                Some(QueueNotice::Admit) => {
                    acceptor.do_send(waiting);
                    return;
                }
                Some(QueueNotice::Refuse) => return refuse(waiting.stream, protocol, shutting_down()).await,
                None => return,
            },
            peeked = waiting.stream.peek(&mut probe), if watching_for_hangup => match peeked {
                Ok(0) | Err(_) => return leave_queue(id, notices, acceptor).await,
                // The client spoke early; its bytes stay buffered for the session.
                Ok(_) => watching_for_hangup = false,
            },
        }
    }
}

/// Takes a hung-up connection out of the queue. An admission may already be on its way:
/// its slot is given back too.
async fn leave_queue(id: u64, mut notices: mpsc::UnboundedReceiver<QueueNotice>, acceptor: Addr<Acceptor>) {
    acceptor.do_send(LeftQueue { id, held_slot: false });
    notices.close();
    while let Some(notice) = notices.recv().await {
        if matches!(notice, QueueNotice::Admit) {
            acceptor.do_send(LeftQueue { id, held_slot: true });
        }
    }
}

fn shutting_down() -> WireError {
    WireError::new(ErrorCode::ShuttingDown, "the server is shutting down; reconnect later")
}

/// Tells a connection why it is refused, then closes it.
async fn refuse(mut stream: TcpStream, protocol: Protocol, error: WireError) {
    let _ = stream.write_all(&protocol.refusal(&error)).await;
    let _ = stream.shutdown().await;
}

/// Stops the server gracefully; see the module documentation.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown {
    pub grace: Duration,
}

impl Handler<Shutdown> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for listening in self.listening.drain(..) {
            ctx.cancel_future(listening);
        }
        for waiting in self.queue.drain(..) {
            let _ = waiting.notices.send(QueueNotice::Refuse);
        }
        tracing::info!(
            sessions = self.sessions.len(),
            grace_secs = msg.grace.as_secs(),
            "shutting down: no longer accepting"
        );
        for link in self.sessions.values() {
            link.drain();
        }
        self.stop_when_idle();
        ctx.run_later(msg.grace, |act, ctx| {
            if act.sessions.is_empty() {
                return;
            }
            tracing::warn!(sessions = act.sessions.len(), "grace period over: closing the remaining sessions");
            let error = WireError::new(
                ErrorCode::ShuttingDown,
                "the server is shutting down; the transfer was interrupted and can be resumed later",
            );
            for link in act.sessions.values() {
                link.close_now(error.clone());
            }
            // The system stops when the last session has ended (`stop_when_idle`): once each
            // has sent its answer, and an upload's has lingered for its client to read it. A
            // session whose client reads nothing is not waited for past that.
            ctx.run_later(LINGER + Duration::from_secs(1), |_, _| System::current().stop());
        });
    }
}

fn account_changed(user: &str) -> WireError {
    WireError::new(
        ErrorCode::AccountChanged,
        format!("the account {user} was removed, or its password or home changed"),
    )
}

impl Handler<RevokeSessions> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: RevokeSessions, _: &mut Context<Self>) {
        for user in msg.users {
            for (id, _) in self.users.iter().filter(|(_, name)| **name == user) {
                if let Some(link) = self.sessions.get(id) {
                    tracing::info!(session = id, %user, "account changed: closing the session");
                    link.close_now(account_changed(&user));
                }
            }
            self.revoked.insert(user, msg.generation);
        }
    }
}

/// A session logged in: may this user have one more session?
#[derive(Message)]
#[rtype(result = "Result<(), WireError>")]
pub struct ClaimUserSession {
    pub id: u64,
    pub user: String,
    /// The user store generation the login was checked against.
    pub generation: u64,
}

impl ClaimUserSession {
    pub fn for_login(id: u64, login: &LoginOk) -> ClaimUserSession {
        ClaimUserSession { id, user: login.user.clone(), generation: login.generation }
    }
}

impl Handler<ClaimUserSession> for Acceptor {
    type Result = Result<(), WireError>;

    fn handle(&mut self, msg: ClaimUserSession, _: &mut Context<Self>) -> Self::Result {
        if self.revoked.get(&msg.user).is_some_and(|&revoked| msg.generation < revoked) {
            return Err(account_changed(&msg.user));
        }
        let limit = self.services.config.max_sessions_per_user;
        let count = self.per_user.entry(msg.user.clone()).or_default();
        if *count >= limit {
            return Err(WireError::new(
                ErrorCode::TooManySessionsForUser,
                format!("{} already has {limit} sessions, the most allowed", msg.user),
            ));
        }
        *count += 1;
        self.users.insert(msg.id, msg.user);
        Ok(())
    }
}
