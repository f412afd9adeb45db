//! One SFTP connection, from the SSH handshake to its end, as a task on the acceptor's thread
//! (like the FTP sessions): the login (a password checked by the AuthActor, then a slot from
//! the acceptor, or a place in the queue), then the `sftp` subsystem's requests, one at a time,
//! in order.
//!
//! What a person sees of a refusal: SSH has no place for our messages before a login, so
//! refusals after one (busy, revoked, shutting down, evicted) travel as the SSH disconnect's
//! description, which OpenSSH prints ("Received disconnect from ...: ... (error 600)"). A
//! login that waits for a slot is told its position on the channel's standard error, which
//! `sftp` shows, and its requests are answered once the slot is its.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use russh::Disconnect;
use russh::server::{Handle, Msg};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

use crate::actors::Services;
use crate::actors::acceptor::{AdmissionLink, QueueNotice, Signal, SlotAnswer};
use crate::actors::auth::{CheckPassword, CheckPublicKey};
use crate::metrics::Protocol;
use crate::net::{ErrorCode, WireError};
use crate::service::{LoggedIn, LoginRefused, complete_login};

use russh_sftp::protocol::{Packet, Status};

use super::md5sum;
use super::reply::{FailureNotes, unreadable_request};
use super::requests::{MAX_PACKET, Requests};
use super::ssh::{SshEvent, SshHandler};

/// How long a connection whose session ended is given to close before it is cut.
const LINGER: Duration = Duration::from_secs(5);

/// The session's shared pieces, handed over by the acceptor.
pub struct SftpSessionStart {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub services: Services,
    pub ssh: Arc<russh::server::Config>,
    pub admission: AdmissionLink,
}

/// How a session ends: the reason told to the client, if any.
type Ending = Option<WireError>;

struct Session {
    peer: SocketAddr,
    services: Services,
    admission: AdmissionLink,
    signals: watch::Receiver<Signal>,
    events: mpsc::Receiver<SshEvent>,
    ssh: Handle,
}

/// Runs the session; returns the user, if one logged in.
pub async fn run(start: SftpSessionStart, mut signals: watch::Receiver<Signal>) -> Option<String> {
    let SftpSessionStart { stream, peer, services, ssh, admission } = start;
    let _ = stream.set_nodelay(true);
    let (sender, events) = mpsc::channel(4);
    // The version exchange is the client's first step of its login: it gets the login timeout,
    // and an eviction (the pre-login budget) closes it as it closes any pre-login connection.
    let patience = Duration::from_secs(services.config.login_timeout_secs);
    let started = tokio::select! {
        started = russh::server::run_stream(ssh, stream, SshHandler::new(sender)) => started,
        () = tokio::time::sleep(patience) => return None,
        Some(_) = closing(&mut signals) => return None,
    };
    let running = match started {
        Ok(running) => running,
        Err(error) => {
            tracing::debug!(%peer, %error, "SSH connection lost before its handshake");
            return None;
        }
    };
    let mut session = Session { peer, services, admission, signals, events, ssh: running.handle() };
    let (user, reason) = session.serve().await;
    let mut running = running;
    if reason.is_none() {
        // The client ended the session: it closes the connection itself (OpenSSH would print
        // a disconnect's words, so none is sent unless it lingers).
        if tokio::time::timeout(LINGER, &mut running).await.is_ok() {
            return user;
        }
    }
    let said = match reason {
        Some(reason) => reason.sentence(),
        None => "session ended".to_string(),
    };
    let _ = session.ssh.disconnect(Disconnect::ByApplication, said, "en".into()).await;
    // The SSH task ends once the disconnect is sent, or the connection is gone.
    let _ = tokio::time::timeout(LINGER, running).await;
    user
}

impl Session {
    /// The session's life: the user who logged in, if one did, and the reason to tell the
    /// client as it ends.
    async fn serve(&mut self) -> (Option<String>, Ending) {
        let (login, answer) = match self.log_in().await {
            Ok(Some(logged_in)) => logged_in,
            Ok(None) => return (None, None),
            Err(reason) => return (None, reason),
        };
        let user = login.user().to_string();
        let mut requests = Requests::new(login, self.peer);
        let ending = self.after_login(&mut requests, answer).await;
        requests.end().await;
        (Some(user), ending)
    }

    /// Waits for a password or a key that logs in, within `login_timeout_secs`.
    async fn log_in(&mut self) -> Result<Option<(LoggedIn, Result<SlotAnswer, LoginRefused>)>, Ending> {
        let patience = Duration::from_secs(self.services.config.login_timeout_secs);
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        let mut failures = 0;
        loop {
            let event = tokio::select! {
                event = self.events.recv() => event,
                () = &mut deadline => {
                    return Err(Some(WireError::new(ErrorCode::LoginTimeout, "no login within the login timeout")));
                }
                Some(reason) = closing(&mut self.signals) => return Err(Some(reason)),
            };
            let peer = self.peer.ip();
            let (checked, answer) = match event {
                Some(SshEvent::Password { user, password, answer }) => {
                    let check = CheckPassword { user, password, peer, protocol: Protocol::sftp };
                    (self.services.auth.send(check).await, answer)
                }
                Some(SshEvent::PublicKey { user, key, signed: false, answer }) => {
                    // Only an offer: would this key do? The client signs next if it would.
                    let check = CheckPublicKey { user, key, signed: false, peer };
                    let _ = answer.send(matches!(self.services.auth.send(check).await, Ok(Ok(_))));
                    continue;
                }
                Some(SshEvent::PublicKey { user, key, signed: true, answer }) => {
                    (self.services.auth.send(CheckPublicKey { user, key, signed: true, peer }).await, answer)
                }
                // A channel request before a login: russh refuses it, so this does not happen.
                Some(SshEvent::Sftp { answer, .. } | SshEvent::Exec { answer, .. }) => {
                    let _ = answer.send(false);
                    continue;
                }
                None => return Ok(None),
            };
            let login = match checked {
                Ok(Ok(login)) => login,
                Ok(Err(refused)) if refused.code == ErrorCode::AuthFailed => {
                    let _ = answer.send(false);
                    failures += 1;
                    if failures >= self.services.config.max_login_attempts_per_connection.max(1) {
                        return Err(Some(refused));
                    }
                    continue;
                }
                // Banned, or the server is too busy to check: said as the connection closes.
                Ok(Err(refused)) => {
                    let _ = answer.send(false);
                    return Err(Some(refused));
                }
                Err(_) => return Err(Some(WireError::new(ErrorCode::Internal, "authentication service unavailable"))),
            };
            let slots = self.admission.slots();
            let completed = complete_login(self.services.clone(), slots, login, self.peer, Protocol::sftp).await;
            // The user is proven: SSH says so, and what follows (a slot, a queue place or a
            // refusal) is told on the channel or in the disconnect.
            let _ = answer.send(true);
            return match completed {
                Ok((login, answer)) => Ok(Some((login, Ok(answer)))),
                Err(refused) => Err(Some(refused.error)),
            };
        }
    }

    /// Once logged in: waits for the `sftp` subsystem, for a slot if the user is queued, then
    /// serves the requests.
    async fn after_login(&mut self, requests: &mut Requests, answer: Result<SlotAnswer, LoginRefused>) -> Ending {
        let mut answer = match answer {
            Ok(answer) => Some(answer),
            Err(refused) => return Some(refused.error),
        };
        let patience = Duration::from_secs(self.services.config.login_timeout_secs);
        loop {
            let (channel, exec) = tokio::select! {
                event = self.events.recv() => match event {
                    Some(SshEvent::Sftp { channel, answer }) => {
                        let _ = answer.send(true);
                        (channel, None)
                    }
                    Some(SshEvent::Exec { channel, command, answer }) => {
                        let _ = answer.send(true);
                        (channel, Some(command))
                    }
                    Some(SshEvent::Password { answer, .. } | SshEvent::PublicKey { answer, .. }) => {
                        let _ = answer.send(false);
                        return Some(WireError::new(ErrorCode::UnexpectedMessage, "already logged in"));
                    }
                    None => return None,
                },
                () = tokio::time::sleep(patience) => {
                    return Some(WireError::new(ErrorCode::LoginTimeout, "no sftp subsystem asked for after the login"));
                }
                Some(reason) = closing(&mut self.signals) => return Some(reason),
            };
            // The first channel waits for the session's slot, and hears its place in the queue.
            if let Some(SlotAnswer::Queued { position, notices }) = answer.take()
                && let Some(refused) = self.wait_for_slot(&channel, position, notices).await
            {
                return Some(refused);
            }
            if let Some(command) = exec {
                // A command (rclone's md5sum) before, or without, the subsystem.
                md5sum::answer(channel, command, requests.files(), requests.cwd()).await;
                continue;
            }
            tracing::debug!(session = self.admission.id(), user = requests.user(), "sftp subsystem started");
            let id = channel.id();
            let ending = self.requests(requests, channel).await;
            if ending.is_none() {
                // As sshd does when its sftp-server exits: scp reads the exit status as its own.
                let _ = self.ssh.exit_status_request(id, 0).await;
                let _ = self.ssh.eof(id).await;
                let _ = self.ssh.close(id).await;
            }
            return ending;
        }
    }

    /// Waits in the queue, telling the client its position on the channel's standard error.
    async fn wait_for_slot(
        &mut self,
        channel: &russh::Channel<Msg>,
        position: u32,
        mut notices: mpsc::UnboundedReceiver<QueueNotice>,
    ) -> Ending {
        let patience = Duration::from_secs(self.services.config.queue_wait_secs);
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        let mut tell = Some(position);
        loop {
            if let Some(position) = tell.take() {
                let line = format!("all sessions are busy: you are number {position} in the queue; please wait\r\n");
                let _ = channel.extended_data_bytes(1, line.into_bytes()).await;
            }
            tokio::select! {
                notice = notices.recv() => match notice {
                    Some(QueueNotice::Position(position)) => tell = Some(position),
                    Some(QueueNotice::Admit) => return None,
                    Some(QueueNotice::Refuse(error)) => return Some(error),
                    None => return Some(WireError::new(ErrorCode::ShuttingDown, "the server is shutting down")),
                },
                () = &mut deadline => {
                    let waited = patience.as_secs();
                    return Some(WireError::new(ErrorCode::ServerBusy,
                        format!("server still busy after {waited} seconds in the queue; try again later")));
                }
                Some(reason) = closing(&mut self.signals) => return Some(reason),
                // The client hung up.
                None = self.events.recv() => return None,
            }
        }
    }

    /// Reads requests, answers each in order, until the client ends the channel, the session
    /// idles past `idle_timeout_secs`, or the acceptor closes it.
    async fn requests(&mut self, requests: &mut Requests, channel: russh::Channel<Msg>) -> Ending {
        let id = channel.id();
        let (reader, mut writer) = tokio::io::split(channel.into_stream());
        let mut failures = FailureNotes::default();
        let codec = LengthDelimitedCodec::builder().length_field_length(4).max_frame_length(MAX_PACKET).new_codec();
        let mut packets = FramedRead::new(reader, codec);
        let idle = Duration::from_secs(self.services.config.idle_timeout_secs);
        // With a file open, silence is a stalled transfer: its upload's path lock and partial
        // must not wait for the idle timeout (an upload cut this way stays for a resume).
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        let mut draining = false;
        loop {
            if draining && !requests.transferring() {
                return Some(WireError::new(ErrorCode::ShuttingDown, "the server is shutting down"));
            }
            let transferring = requests.transferring();
            let patience = if transferring { stall.min(idle) } else { idle };
            let packet = tokio::select! {
                packet = packets.next() => packet,
                () = tokio::time::sleep(patience) => {
                    return Some(match transferring {
                        true => WireError::new(ErrorCode::TransferStalled, "the transfer stalled: nothing came for too long"),
                        false => WireError::new(ErrorCode::IdleTimeout, "the session was idle too long"),
                    });
                }
                event = self.events.recv() => match event {
                    // A command beside the subsystem (rclone's md5sum while it transfers).
                    Some(SshEvent::Exec { channel, command, answer }) => {
                        let _ = answer.send(true);
                        let (files, cwd) = (requests.files().clone(), requests.cwd().clone());
                        actix_rt::spawn(async move { md5sum::answer(channel, command, &files, &cwd).await });
                        continue;
                    }
                    // One sftp channel per connection; a login is over.
                    Some(
                        SshEvent::Sftp { answer, .. }
                        | SshEvent::Password { answer, .. }
                        | SshEvent::PublicKey { answer, .. },
                    ) => {
                        let _ = answer.send(false);
                        continue;
                    }
                    None => return None,
                },
                changed = self.signals.changed() => {
                    match (changed, &*self.signals.borrow()) {
                        (Ok(()), Signal::Run) => {}
                        (Ok(()), Signal::Drain) => draining = true,
                        (Ok(()), Signal::CloseNow(reason)) => return Some(reason.clone()),
                        (Err(_), _) => return None,
                    }
                    continue;
                }
            };
            let mut bytes = match packet {
                Some(Ok(bytes)) => bytes.freeze(),
                Some(Err(error)) => {
                    let reason = format!("malformed SFTP packet: {error}");
                    return Some(WireError::new(ErrorCode::MalformedFrame, reason));
                }
                None => return None,
            };
            let frame = bytes.clone();
            let reply = match russh_sftp::protocol::Packet::try_from(&mut bytes) {
                Ok(request) => requests.answer(request).await,
                Err(error) => match unreadable_request(&frame) {
                    Some((id, status_code, error_message)) => {
                        Packet::Status(Status { id, status_code, error_message, language_tag: "en".into() })
                    }
                    None => {
                        let reason = format!("malformed SFTP request: {error}");
                        return Some(WireError::new(ErrorCode::MalformedFrame, reason));
                    }
                },
            };
            if let Some(line) = failures.line_for(&reply) {
                let _ = self.ssh.extended_data(id, 1, line.into_bytes()).await;
            }
            let encoded = match bytes::Bytes::try_from(reply) {
                Ok(encoded) => encoded,
                Err(error) => return Some(WireError::new(ErrorCode::Internal, format!("internal error: {error}"))),
            };
            if tokio::io::AsyncWriteExt::write_all(&mut writer, &encoded).await.is_err() {
                return None;
            }
        }
    }
}

/// Resolves when the acceptor asks the session to close (at once, or by draining: before the
/// login there is nothing to finish), with the reason.
async fn closing(signals: &mut watch::Receiver<Signal>) -> Option<WireError> {
    loop {
        if signals.changed().await.is_err() {
            return None;
        }
        match &*signals.borrow() {
            Signal::Run => {}
            Signal::Drain => return Some(WireError::new(ErrorCode::ShuttingDown, "the server is shutting down")),
            Signal::CloseNow(reason) => return Some(reason.clone()),
        }
    }
}
