//! Logging in: AUTH TLS, USER and PASS (checked by the AuthActor), PBSZ and PROT.

use tokio::sync::mpsc::UnboundedReceiver;

use crate::service::{LoginRefused, complete_login};

use super::*;

impl Session {
    pub(super) fn user_command(&mut self, user: String) -> Flow {
        if self.login.is_some() {
            return Flow::Reply(Reply::new(503, "already logged in"));
        }
        let allowed = plaintext_login_allowed(self.services.config.ftp.allow_plaintext_login, self.peer.ip());
        if !self.is_tls() && !allowed {
            // Not the user field: it may hold a password typed into the wrong prompt.
            tracing::info!(target: "access", peer = %self.peer, op = "ftp login", result = "refused: no TLS");
            return Flow::Reply(Reply::new(530, "passwords only travel encrypted here: send AUTH TLS first"));
        }
        self.pending_user = Some(user);
        Flow::Reply(Reply::new(331, "password required"))
    }

    pub(super) async fn pass_command(&mut self, password: String) -> Flow {
        let Some(user) = self.pending_user.take() else {
            return Flow::Reply(Reply::new(503, "send USER first"));
        };
        let peer = self.peer;
        let checked = self
            .services
            .auth
            .send(CheckPassword {
                user: user.clone(),
                password,
                peer: peer.ip(),
                protocol: crate::metrics::Protocol::ftp,
            })
            .await;
        let login = match checked {
            Ok(Ok(login)) => login,
            // The AuthActor logged the failure (it knows whether the name is a user's).
            Ok(Err(error)) => {
                let reply = Reply::from_error(&error);
                if error.code != ErrorCode::AuthFailed {
                    return Flow::Reply(reply);
                }
                self.failed_logins += 1;
                if self.failed_logins >= self.services.config.max_login_attempts_per_connection.max(1) {
                    return Flow::Close(reply);
                }
                return Flow::Reply(reply);
            }
            Err(_) => return Flow::Reply(Reply::new(421, "authentication service unavailable")),
        };
        // The password is proven: this connection's TLS sessions are the user's, even if the
        // session cap refuses it below (a client such as rclone shares one session cache among
        // all its connections, and may resume this connection's session on another's data
        // connection).
        if let Some(tickets) = &self.tls.tickets {
            tickets.logged_in(&login.user);
        }
        let slots = self.admission.slots();
        let (login, answer) =
            match complete_login(self.services.clone(), slots, login, peer, crate::metrics::Protocol::ftp).await {
                Ok(completed) => completed,
                Err(LoginRefused { error, closes: true }) => return Flow::Close(Reply::from_error(&error)),
                Err(LoginRefused { error, closes: false }) => return Flow::Reply(Reply::from_error(&error)),
            };
        if let SlotAnswer::Queued { position, notices } = answer
            && let Err(flow) = self.wait_for_slot(position, notices).await
        {
            return flow;
        }
        let reply = Reply::new(230, format!("logged in as {}", login.user()));
        self.login = Some(login);
        Flow::Reply(reply)
    }

    /// Waits in the queue for a slot. The position goes out as continuation lines of the 230
    /// reply (`230-`), which ends when the slot is the session's: every client reads the wait as
    /// one slow answer to PASS. A wait that ends without a slot (`queue_wait_secs`, shutdown, a
    /// revoked account) must still end that reply with a 230 line; the reason follows as a 421,
    /// which the client reads as the answer to its next command, and the connection closes.
    async fn wait_for_slot(&mut self, position: u32, mut notices: UnboundedReceiver<QueueNotice>) -> Result<(), Flow> {
        let patience = Duration::from_secs(self.services.config.queue_wait_secs);
        let deadline = tokio::time::sleep(patience);
        tokio::pin!(deadline);
        let mut tell = Some(position);
        let mut watching_for_hangup = true;
        let reason = loop {
            if let Some(position) = tell.take() {
                let line =
                    format!("230-all sessions are busy: you are number {position} in the queue; please wait\r\n");
                if !self.send_raw(line.as_bytes()).await {
                    return Err(Flow::Lost);
                }
            }
            let control = self.control.as_mut().expect("present between commands");
            tokio::select! {
                notice = notices.recv() => match notice {
                    Some(QueueNotice::Position(position)) => tell = Some(position),
                    Some(QueueNotice::Admit) => return Ok(()),
                    Some(QueueNotice::Refuse(error)) => break error,
                    None => break WireError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
                },
                () = &mut deadline => {
                    let waited = patience.as_secs();
                    break WireError::new(ErrorCode::ServerBusy, format!("server still busy after {waited} seconds in the queue; try again later"));
                }
                _ = self.signals.changed() => match &*self.signals.borrow() {
                    Signal::CloseNow(error) => break error.clone(),
                    Signal::Drain => break WireError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
                    Signal::Run => {}
                },
                filled = control.fill_buf(), if watching_for_hangup => match filled {
                    // The client spoke early; its bytes stay buffered for the session.
                    Ok(bytes) if !bytes.is_empty() => watching_for_hangup = false,
                    _ => return Err(Flow::Lost),
                },
            }
        };
        let end = format!("230 no session after all: {}\r\n", reason.sentence());
        if !self.send_raw(end.as_bytes()).await {
            return Err(Flow::Lost);
        }
        Err(Flow::Close(Reply::from_error(&reason)))
    }

    pub(super) async fn auth_tls(&mut self, mechanism: &str) -> Flow {
        let mechanism = mechanism.trim().to_ascii_uppercase();
        if !matches!(mechanism.as_str(), "TLS" | "TLS-C" | "SSL") {
            return Flow::Reply(Reply::new(504, "only AUTH TLS is supported"));
        }
        if self.is_tls() {
            return Flow::Reply(Reply::new(503, "TLS is already on"));
        }
        if !self.control().buffer().is_empty() {
            // Bytes sent after AUTH before our answer would be read as plaintext commands.
            return Flow::Close(Reply::new(503, "commands sent before the TLS handshake; reconnect"));
        }
        if !self.send(Reply::new(234, "starting TLS")).await {
            return Flow::Lost;
        }
        let Some(MaybeTls::Plain(stream)) = self.control.take().map(|control| control.into_inner().into_inner()) else {
            return Flow::Lost;
        };
        let patience = Duration::from_secs(self.services.config.login_timeout_secs);
        // From here on, this session's TLS state is its own (see `FtpTls::for_session`).
        match self.tls.for_session(self.peer.ip()) {
            Ok(own) => self.tls = own,
            Err(error) => {
                tracing::error!(%error, "cannot make the session's TLS state");
                return Flow::Lost;
            }
        }
        match tokio::time::timeout(patience, MaybeTls::accept(stream, self.tls.control.clone())).await {
            Ok(Ok(tls)) => {
                self.control = Some(BufReader::with_capacity(CONTROL_BUFFER, ControlStream::tls(tls)));
                Flow::Sent
            }
            _ => {
                tracing::info!(peer = %self.peer, "FTP TLS handshake failed");
                Flow::Lost
            }
        }
    }

    pub(super) fn protection(&mut self, level: &str) -> Reply {
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.protect_data = true;
                Reply::new(200, "data connections use TLS")
            }
            "C" => {
                self.protect_data = false;
                Reply::new(200, "data connections are in the clear")
            }
            _ => Reply::new(504, "only PROT P and PROT C are supported"),
        }
    }
}

/// May a client log in before AUTH TLS? Only when the config allows it, and then only from
/// this machine: a password must never cross a network in the clear.
fn plaintext_login_allowed(config_allows: bool, peer: std::net::IpAddr) -> bool {
    config_allows && peer.is_loopback()
}

#[cfg(test)]
mod tests {
    use super::plaintext_login_allowed;

    #[test]
    fn plaintext_logins_only_when_allowed_and_only_from_loopback() {
        assert!(!plaintext_login_allowed(false, "127.0.0.1".parse().unwrap()));
        assert!(plaintext_login_allowed(true, "127.0.0.1".parse().unwrap()));
        assert!(plaintext_login_allowed(true, "::1".parse().unwrap()));
        assert!(!plaintext_login_allowed(true, "192.168.1.20".parse().unwrap()));
        assert!(!plaintext_login_allowed(true, "2001:db8::1".parse().unwrap()));
    }
}
