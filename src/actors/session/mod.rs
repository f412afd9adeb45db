//! SessionActor: one per admitted connection, a state machine over the protocol.
//!
//! Reading: frames arrive through a `StreamHandler`. Every request is served under
//! `ctx.wait`, which stops the actor from polling the socket until the request is done; an
//! uploader that sends faster than the disk writes is therefore held back by TCP itself.
//!
//! Writing: responses go through a bounded channel to a writer task that owns the socket's
//! write half (`actix::io::FramedWrite` applies no backpressure; see the guide). A download's
//! disk job waits for room in that channel before it reads the next chunk, so a slow reader
//! holds at most a few chunks in memory.
//!
//! States: `Connected` (expects `auth_start`), `Challenged` (expects `auth_proof`), `Queued`
//! (logged in, every slot taken: waits for one and is told its position), `Ready` (logged in
//! and holding a slot; an upload may be in progress). Until `Ready` or `Queued` the
//! connection holds only a pre-login place, which the acceptor may take back (error 605).
//!
//! This file holds the actor, its state and the plumbing every request uses (`serve`,
//! `reply`); the requests themselves are handled in `login`, `commands`, `upload` and
//! `download`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::integrity::{Digest, Md5};
use actix::prelude::*;
use bytes::Bytes;
use serde_bytes::ByteBuf;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::net::activity::{Activity, Stamped};
use crate::net::lean_read::LeanFramedRead;
use crate::net::native_tls;
use crate::net::{ErrorCode, FrameCodec, FrameError, MalformedFrame, PROTOCOL_VERSION, Request, Response, WireError};
use crate::service::{EntryChange, LoggedIn, Removed};
use crate::storage::{StorageError, VirtualPath};

use super::Services;
use super::acceptor::{AdmissionLink, QueueNotice, SlotAnswer};
use super::auth::{BeginLogin, FinishLogin, PendingLogin};
use super::disk::JobFailed;
use super::panic_guard::{catch_panic, catch_panic_async};

mod commands;
mod download;
mod frame_writer;
mod login;
pub(crate) mod upload;
mod upload_stream;

use frame_writer::write_frames;
use upload::Upload;

/// The largest frame a connection may send before its login succeeds: the login's messages
/// are far smaller, and a connection nobody has authenticated must not make the server reserve
/// a data chunk's buffer (a pre-login budget of thousands would multiply it).
pub const PRELOGIN_MAX_FRAME: usize = 4096;

/// Frames queued for the writer task; with 256 KiB chunks, at most 1 MiB waits per session.
const WRITE_QUEUE: usize = 4;

/// How long a session closed during an upload keeps reading, and dropping, what the client
/// still sends (see [`SessionActor::close_with`]). Enough for a 256 KiB frame in flight on a
/// link of 420 kbit/s or more.
pub const LINGER: Duration = Duration::from_secs(5);

type Incoming = Result<Result<Request, MalformedFrame>, FrameError>;

/// What joins a session to its connection once the connection's bytes can flow (at once, or
/// after the TLS handshake): the writer's queue and finish signal, and the frame decoder.
struct Unattached {
    queue: mpsc::Receiver<Response>,
    finish: oneshot::Receiver<()>,
    codec: FrameCodec<Request, Response>,
}

/// A native session holding a slot: the service's logged-in state, and the upload in progress.
struct Ready {
    login: LoggedIn,
    upload: Option<Upload>,
    /// An upload failed mid-stream and its error was sent: its remaining `data` frames and its
    /// `put_end` are dropped silently, so the client hears one answer per upload.
    discarding: bool,
}

impl Ready {
    fn new(login: LoggedIn) -> Ready {
        Ready { login, upload: None, discarding: false }
    }
}

enum Phase {
    Connected,
    Challenged(PendingLogin),
    /// Logged in, waiting for a slot; `auth_ok` (with this signature) is sent on admission.
    Queued(Box<(LoggedIn, ByteBuf)>),
    Ready(Ready),
}

pub struct SessionActor {
    peer: SocketAddr,
    services: Services,
    /// The connection's place in the acceptor's books, and where a login asks for a slot.
    admission: AdmissionLink,
    out: mpsc::Sender<Response>,
    /// Tells the writer task to send what is queued, then end the connection's sending half.
    finish_writing: Option<oneshot::Sender<()>>,
    phase: Phase,
    failed_logins: u32,
    /// The last request or answer (for the idle timeout).
    last_activity: Instant,
    /// The last byte received (for an upload's stall timeout).
    received: Arc<Activity>,
    /// The last byte sent (for the wait for room in the writer's queue).
    sent: Arc<Activity>,
    /// The server is shutting down: close once the upload in progress (if any) is done.
    draining: bool,
    /// Ends a download in progress early (see [`Cut`]).
    cut: Arc<Cut>,
    /// The session's last answer is sent or on its way: nothing more is served.
    closing: bool,
    /// The largest frame accepted: [`PRELOGIN_MAX_FRAME`] until the login succeeds.
    frame_limit: Arc<std::sync::atomic::AtomicUsize>,
    /// The connection is (or will be, once its handshake is done) inside TLS.
    over_tls: bool,
    /// The TLS session's exported keying material for channel binding (RFC 9266), once the
    /// handshake is done.
    exporter: Option<[u8; crate::auth::scram::KEY_LEN]>,
}

impl SessionActor {
    /// Starts a session on a new connection; returns its address and its [`Cut`] (the
    /// acceptor uses the cut to reach it even while a download keeps it busy: a forced
    /// shutdown, a revoked account). With `tls`, the connection's bytes flow once the client's
    /// TLS handshake is done (see [`crate::net::native_tls`]); the session's timers run from now.
    pub fn start(
        stream: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        peer: SocketAddr,
        services: Services,
        admission: AdmissionLink,
    ) -> (Addr<SessionActor>, Arc<Cut>) {
        let _ = stream.set_nodelay(true);
        let (received, sent) = (Activity::new(), Activity::new());
        let max_frame = services.config.max_frame_bytes;
        let (out, queue) = mpsc::channel(WRITE_QUEUE);
        let (finish_writing, finish) = oneshot::channel();
        let cut = Arc::new(Cut::default());
        let session_cut = cut.clone();
        let patience = Duration::from_secs(services.config.login_timeout_secs);
        let addr = SessionActor::create(move |ctx| {
            let codec = FrameCodec::<Request, Response>::new(PRELOGIN_MAX_FRAME.min(max_frame));
            let frame_limit = codec.max_frame();
            let mut session = SessionActor {
                peer,
                services,
                admission,
                out,
                finish_writing: Some(finish_writing),
                phase: Phase::Connected,
                failed_logins: 0,
                last_activity: Instant::now(),
                received,
                sent,
                draining: false,
                cut: session_cut,
                closing: false,
                frame_limit,
                over_tls: tls.is_some(),
                exporter: None,
            };
            let unattached = Unattached { queue, finish, codec };
            match tls {
                None => {
                    let (read_half, write_half) = stream.into_split();
                    let (received, sent) = (session.received.clone(), session.sent.clone());
                    let (read_half, write_half) = (Stamped::new(read_half, received), Stamped::new(write_half, sent));
                    session.attach(ctx, unattached, read_half, write_half);
                }
                Some(config) => {
                    let (received, sent) = (session.received.clone(), session.sent.clone());
                    let opening = async move {
                        let mut stream = native_tls::wait_for_hello(stream, patience).await?;
                        let mut stamped = Stamped::each_way(&mut stream, received.clone(), sent.clone());
                        let tls = native_tls::handshake(&mut stamped, &config, patience).await?;
                        let (read_half, write_half) = stream.into_split();
                        Some((tls, Stamped::new(read_half, received), Stamped::new(write_half, sent)))
                    };
                    ctx.spawn(opening.into_actor(&session).map(move |opened, act, ctx| match opened {
                        Some((tls, read_half, write_half)) => {
                            act.exporter = Some(tls.channel_binding);
                            let (read_half, write_half) = tls.over(read_half, write_half);
                            act.attach(ctx, unattached, read_half, write_half);
                        }
                        None => ctx.stop(),
                    }));
                }
            }
            session
        });
        (addr, cut)
    }

    /// Starts reading requests from `read_half` and the writer task on `write_half` (both
    /// already stamping the session's activities as bytes move).
    fn attach<R, W>(&mut self, ctx: &mut Context<Self>, unattached: Unattached, read_half: R, write_half: W)
    where
        R: AsyncRead + Unpin + 'static,
        W: AsyncWrite + Unpin + 'static,
    {
        let Unattached { queue, finish, codec } = unattached;
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        actix_rt::spawn(write_frames(write_half, queue, finish, self.sent.clone(), stall));
        ctx.add_stream(LeanFramedRead::new(read_half, codec));
    }

    fn upload_in_progress(&self) -> bool {
        matches!(&self.phase, Phase::Ready(session) if session.upload.is_some())
    }

    /// During a shutdown, closes the session as soon as it has no transfer in progress.
    fn close_if_drained(&mut self, ctx: &mut Context<Self>) {
        if self.draining && !self.upload_in_progress() {
            self.draining = false;
            self.close_with(ctx, WireError::new(ErrorCode::ShuttingDown, "the server is shutting down"));
        }
    }

    fn user(&self) -> &str {
        match &self.phase {
            Phase::Ready(session) => session.login.user(),
            Phase::Queued(queued) => queued.0.user(),
            Phase::Challenged(pending) => pending.user(),
            Phase::Connected => "-",
        }
    }

    /// A request was answered: the session is active, and the client's next request is
    /// likely to follow at once (see [`crate::tuning::busy_poll`]).
    fn answered(&mut self) {
        self.last_activity = Instant::now();
        crate::tuning::busy_poll::stay_awake(self.services.config.busy_poll_window());
    }

    /// Sends one response, pausing the session until the writer has room.
    fn reply(&mut self, ctx: &mut Context<Self>, response: Response) {
        // The common case (nothing in flight, room in the writer's queue) needs no future: a
        // cheap command like `pwd` is answered within the handler.
        let response = if ctx.waiting() {
            response
        } else {
            match self.out.try_send(response) {
                Ok(()) => {
                    self.answered();
                    return self.close_if_drained(ctx);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return ctx.stop(),
                Err(mpsc::error::TrySendError::Full(response)) => response,
            }
        };
        self.serve(ctx, async move { (response, ()) }, |_, _, _| {});
    }

    /// Sends a last response and closes the connection.
    ///
    /// A client in the middle of an upload is busy writing its chunks, and reads only between
    /// them. Closing at once, with its data still unread here, would reset the connection, and
    /// the client would lose our answer to "connection reset" before reading it. So a session
    /// closed during an upload ends that upload (its partial is kept, as with any lost
    /// connection), sends its answer and the end of its data, then goes on reading and dropping
    /// what arrives until the client closes or [`LINGER`] passes: the "lingering close" of HTTP
    /// servers.
    fn close_with(&mut self, ctx: &mut Context<Self>, error: WireError) {
        if self.closing {
            return;
        }
        self.closing = true;
        let linger = match &mut self.phase {
            // A failed upload's client may still be sending the rest (`discarding`).
            Phase::Ready(session) => session.upload.take().map(Upload::set_aside).is_some() || session.discarding,
            _ => false,
        };
        self.serve(ctx, async move { (Response::error(error), ()) }, move |act, _, ctx| {
            if let Some(finish) = act.finish_writing.take() {
                let _ = finish.send(());
            }
            if linger {
                ctx.run_later(LINGER, |_, ctx| ctx.stop());
            } else {
                ctx.stop();
            }
        });
    }

    /// Runs `work` off the actor, sends the response it yields, then applies its state change.
    /// A panic in either part becomes an internal error for this request; the session goes on.
    fn serve<T: 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        work: impl Future<Output = (Response, T)> + 'static,
        apply: impl FnOnce(&mut Self, T, &mut Context<Self>) + 'static,
    ) {
        let (out, sent) = (self.out.clone(), self.sent.clone());
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        let task = async move {
            let (response, change) = match catch_panic_async("session", work).await {
                Ok((response, change)) => (response, Some(change)),
                Err(panicked) => (internal(&panicked.message), None),
            };
            // A client that does not read its answers is not waited for forever.
            let sent = matches!(sent.unless_stalled(stall, out.send(response)).await, Some(Ok(())));
            (sent, change)
        };
        ctx.wait(task.into_actor(self).map(move |(sent, change), act, ctx| {
            act.answered();
            if let Some(change) = change {
                let _ = catch_panic("session", || apply(act, change, ctx));
            }
            if !sent {
                ctx.stop();
            }
            act.close_if_drained(ctx);
        }));
    }

    fn handle_request(&mut self, request: Request, ctx: &mut Context<Self>) {
        match (&mut self.phase, request) {
            (_, Request::Quit) => self.serve(ctx, async { (Response::DONE, ()) }, |_, _, ctx| ctx.stop()),
            (Phase::Connected, Request::AuthStart { user, client_nonce, channel_binding }) => {
                self.begin_login(ctx, user, client_nonce, channel_binding)
            }
            (Phase::Challenged(_), Request::AuthProof { nonce, proof, channel_binding_data }) => {
                self.finish_login(ctx, nonce, proof.into_vec(), channel_binding_data.map(ByteBuf::into_vec))
            }
            // A login message in the wrong step of the login (a second `auth_start`, a proof
            // with no challenge) is out of order, not a command before login.
            (Phase::Challenged(_), Request::AuthStart { .. }) | (Phase::Connected, Request::AuthProof { .. }) => {
                self.reply(ctx, unexpected("auth_start, then auth_proof, once each"))
            }
            (Phase::Queued(_), _) => self.reply(ctx, unexpected("waiting for a free slot: send nothing until auth_ok")),
            (Phase::Connected | Phase::Challenged(_), _) => {
                self.reply(ctx, Response::error(WireError::new(ErrorCode::NotLoggedIn, "log in first (auth_start)")))
            }
            (Phase::Ready(_), Request::AuthStart { .. } | Request::AuthProof { .. }) => {
                self.reply(ctx, unexpected("already logged in"))
            }
            // Served in every logged-in state, an upload's included (see `Request::Noop`).
            (Phase::Ready(_), Request::Noop) => self.reply(ctx, Response::DONE),
            (Phase::Ready(session), request) => {
                let is_upload_message = matches!(
                    request,
                    Request::Data { .. } | Request::PutEnd { .. } | Request::PutRestart | Request::PutCancel
                );
                if session.discarding {
                    if is_upload_message {
                        // The upload's one answer was its error: its last message ends it.
                        session.discarding = !matches!(request, Request::PutEnd { .. } | Request::PutCancel);
                        return;
                    }
                    session.discarding = false;
                }
                let in_upload = session.upload.is_some();
                if in_upload != is_upload_message {
                    let why = if in_upload {
                        "an upload is in progress: send data, put_end, put_restart or put_cancel"
                    } else {
                        "no upload is in progress"
                    };
                    return self.reply(ctx, unexpected(why));
                }
                self.handle_command(request, ctx)
            }
        }
    }
}

fn unexpected(why: &str) -> Response {
    Response::error(WireError::new(ErrorCode::UnexpectedMessage, why))
}

fn internal(why: &str) -> Response {
    Response::error(crate::service::error::internal(why))
}

impl Actor for SessionActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let config = self.services.config.clone();
        let channel_bindings = match self.over_tls {
            true => vec![crate::auth::scram::TLS_EXPORTER.to_string()],
            false => Vec::new(),
        };
        let welcome = Response::Welcome {
            server: format!("ftp-actor {}", env!("CARGO_PKG_VERSION")),
            version: PROTOCOL_VERSION,
            max_frame: config.max_frame_bytes as u32,
            chunk_size: config.chunk_bytes as u32,
            channel_bindings,
        };
        self.reply(ctx, welcome);
        ctx.run_later(Duration::from_secs(config.login_timeout_secs), |act, ctx| {
            if matches!(act.phase, Phase::Connected | Phase::Challenged(_)) {
                act.close_with(ctx, WireError::from(ErrorCode::LoginTimeout));
            }
        });
        let idle = Duration::from_secs(config.idle_timeout_secs);
        let stall = Duration::from_secs(config.transfer_stall_secs);
        // Not run while a request is being served (ctx.wait); a stalled download is caught by
        // the frame writer's stall limit instead (`write_frames`).
        ctx.run_interval(Duration::from_secs(1), move |act, ctx| {
            let quiet = act.last_activity.elapsed();
            if matches!(act.phase, Phase::Queued(_)) {
                // The queue's own patience applies (`queue_wait_secs`).
            } else if act.upload_in_progress() && quiet.min(act.received.quiet()) >= stall {
                let message = format!("no upload data for {} seconds; the partial is kept for resume", stall.as_secs());
                act.close_with(ctx, WireError::new(ErrorCode::TransferStalled, message));
            } else if quiet >= idle {
                act.close_with(ctx, WireError::from(ErrorCode::IdleTimeout));
            }
        });
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        // A lost connection, a stall: the partial stays for a resume.
        if let Phase::Ready(session) = &mut self.phase
            && let Some(upload) = session.upload.take()
        {
            upload.set_aside();
        }
        tracing::debug!(session = self.admission.id(), peer = %self.peer, user = self.user(), "session ended");
    }
}

/// Set by the acceptor to end a session even while a download holds it (a revoked account, the
/// end of a shutdown's grace period): the download's disk job looks before each chunk, stops,
/// and the session answers with the error and closes. Other states hear the same news as a
/// [`CloseNow`] message.
#[derive(Default)]
pub struct Cut(std::sync::OnceLock<WireError>);

impl Cut {
    pub fn cut(&self, why: WireError) {
        let _ = self.0.set(why);
    }

    pub fn reason(&self) -> Option<&WireError> {
        self.0.get()
    }
}

/// Close now, saying why (see the Acceptor: a revoked account, the end of a shutdown's grace
/// period). An upload in progress keeps its partial for a resume, as with any lost connection.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseNow(pub WireError);

impl Handler<CloseNow> for SessionActor {
    type Result = ();

    fn handle(&mut self, msg: CloseNow, ctx: &mut Context<Self>) {
        self.close_with(ctx, msg.0);
    }
}

/// The server is shutting down: finish the transfer in progress, then close.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain;

impl Handler<Drain> for SessionActor {
    type Result = ();

    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) {
        self.draining = true;
        self.close_if_drained(ctx);
    }
}

impl StreamHandler<Incoming> for SessionActor {
    fn handle(&mut self, item: Incoming, ctx: &mut Context<Self>) {
        if self.closing {
            // Lingering (see `close_with`): whatever still arrives is dropped.
            if item.is_err() {
                ctx.stop();
            }
            return;
        }
        self.last_activity = Instant::now();
        match item {
            Ok(Ok(request)) => {
                if catch_panic("session", || self.handle_request(request, ctx)).is_err() {
                    self.reply(ctx, internal("the request could not be handled"));
                }
            }
            Ok(Err(malformed)) => {
                self.reply(ctx, Response::error(WireError::new(ErrorCode::MalformedFrame, malformed.to_string())))
            }
            Err(FrameError::TooLarge { length, limit }) => self.close_with(
                ctx,
                WireError::new(
                    ErrorCode::FrameTooLarge,
                    format!("frame of {length} bytes exceeds the limit of {limit}"),
                ),
            ),
            Err(FrameError::Io(_)) => ctx.stop(),
        }
    }
}
