//! The SSH side of an SFTP connection, as russh runs it: its handler only forwards what the
//! session must decide (a password to check, an `sftp` subsystem to serve) to the session's
//! own task and waits for the answer. russh runs the handler on a task of its own that must be
//! `Send`; the session task runs on the acceptor's thread with the server's actors, like the
//! FTP sessions, and holds every decision.

use russh::keys::{Algorithm, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::sync::{mpsc, oneshot};

/// What the SSH side asks of the session task.
pub enum SshEvent {
    /// A password login attempt; the answer says whether SSH accepts it.
    Password { user: String, password: String, answer: oneshot::Sender<bool> },
    /// A public key: only offered (`signed: false`: would it do?), or proven by the client's
    /// signature, which russh checked (a login attempt).
    PublicKey { user: String, key: PublicKey, signed: bool, answer: oneshot::Sender<bool> },
    /// The client asked for the `sftp` subsystem on this channel (after a login).
    Sftp { channel: Channel<Msg>, answer: oneshot::Sender<bool> },
    /// The client asked to run `command` on this channel (after a login): only `md5sum` runs.
    Exec { channel: Channel<Msg>, command: String, answer: oneshot::Sender<bool> },
}

/// The russh handler of one connection.
pub struct SshHandler {
    events: mpsc::Sender<SshEvent>,
    /// Session channels opened and not yet given a subsystem.
    channels: Vec<Channel<Msg>>,
}

/// Session channels a connection may hold open before asking for a subsystem: OpenSSH opens
/// one; more is either a multiplexing client or a client wasting our memory.
const MAX_WAITING_CHANNELS: usize = 4;

impl SshHandler {
    pub fn new(events: mpsc::Sender<SshEvent>) -> SshHandler {
        SshHandler { events, channels: Vec::new() }
    }

    async fn ask_key(&self, user: &str, key: &PublicKey, signed: bool) -> bool {
        let (answer, heard) = oneshot::channel();
        let event = SshEvent::PublicKey { user: user.to_string(), key: key.clone(), signed, answer };
        self.ask(event, heard).await
    }

    /// Sends `event` to the session task and waits for its answer (no answer: the session is
    /// ending, which reads as a refusal).
    async fn ask(&self, event: SshEvent, answer: oneshot::Receiver<bool>) -> bool {
        self.events.send(event).await.is_ok() && answer.await.unwrap_or(false)
    }
}

/// The methods offered: public keys (the user's, from the user store) and the password,
/// checked as the other listeners check it.
pub fn methods() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey, MethodKind::Password][..])
}

fn reject() -> Auth {
    Auth::Reject { proceed_with_methods: Some(methods()), partial_success: false }
}

impl russh::server::Handler for SshHandler {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        let (answer, heard) = oneshot::channel();
        let event = SshEvent::Password { user: user.to_string(), password: password.to_string(), answer };
        Ok(if self.ask(event, heard).await { Auth::Accept } else { reject() })
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        // RSA signatures over SHA-1 (`ssh-rsa`) are refused, as OpenSSH refuses them since 8.8.
        if matches!(offer.algorithm, Algorithm::Rsa { hash: None }) {
            return Ok(reject());
        }
        Ok(if self.ask_key(user, offer.public_key, false).await { Auth::Accept } else { reject() })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        if matches!(key.algorithm, Algorithm::Rsa { hash: None }) {
            return Ok(reject());
        }
        Ok(if self.ask_key(user, key.public_key, true).await { Auth::Accept } else { reject() })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channels.len() >= MAX_WAITING_CHANNELS {
            reply.reject(russh::ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.channels.push(channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel_id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let position = self.channels.iter().position(|channel| channel.id() == channel_id);
        let (Some(position), "sftp") = (position, name) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let channel = self.channels.swap_remove(position);
        let (answer, heard) = oneshot::channel();
        if self.ask(SshEvent::Sftp { channel, answer }, heard).await {
            session.channel_success(channel_id)?;
        } else {
            session.channel_failure(channel_id)?;
        }
        Ok(())
    }

    /// Commands go to the session, which runs `md5sum` (rclone checks files with it) and
    /// refuses the rest; shells are not offered.
    async fn exec_request(
        &mut self,
        channel_id: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(position) = self.channels.iter().position(|channel| channel.id() == channel_id) else {
            session.channel_failure(channel_id)?;
            return Ok(());
        };
        let channel = self.channels.swap_remove(position);
        let command = String::from_utf8_lossy(data).into_owned();
        let (answer, heard) = oneshot::channel();
        if self.ask(SshEvent::Exec { channel, command, answer }, heard).await {
            session.channel_success(channel_id)?;
        } else {
            session.channel_failure(channel_id)?;
        }
        Ok(())
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.channels.retain(|waiting| waiting.id() != channel);
        Ok(())
    }
}
