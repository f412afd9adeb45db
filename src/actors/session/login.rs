//! Logging in: the SCRAM exchange through the AuthActor, then the session claim.

use super::*;
use crate::auth::channel_binding;
use crate::service::{LoginRefused, complete_login};

impl SessionActor {
    pub(super) fn begin_login(
        &mut self,
        ctx: &mut Context<Self>,
        user: String,
        client_nonce: String,
        channel_binding: Option<String>,
    ) {
        let allow_unbound = self.services.config.allow_unbound_login;
        let channel_binding =
            match channel_binding::for_server(channel_binding.as_deref(), self.exporter, allow_unbound) {
                Ok(binding) => binding,
                Err(refused) => return self.reply(ctx, Response::error(refused)),
            };
        let auth = self.services.auth.clone();
        let peer = self.peer.ip();
        let work = async move {
            match auth.send(BeginLogin { user, client_nonce, channel_binding, peer }).await {
                Ok(Ok(pending)) => (pending.challenge(), Some(pending)),
                Ok(Err(error)) => (Response::error(error), None),
                Err(_) => (internal("authentication service unavailable"), None),
            }
        };
        self.serve(ctx, work, |act, pending, _| {
            if let Some(pending) = pending {
                act.phase = Phase::Challenged(pending);
            }
        });
    }

    pub(super) fn finish_login(
        &mut self,
        ctx: &mut Context<Self>,
        nonce: String,
        proof: Vec<u8>,
        channel_binding_data: Option<Vec<u8>>,
    ) {
        let Phase::Challenged(pending) = std::mem::replace(&mut self.phase, Phase::Connected) else {
            return;
        };
        let auth = self.services.auth.clone();
        let services = self.services.clone();
        let slots = self.admission.slots();
        let peer = self.peer;
        let work = async move {
            let finish = FinishLogin { pending, nonce, proof, channel_binding_data, peer: peer.ip() };
            let login = match auth.send(finish).await {
                Ok(result) => result,
                Err(_) => return (internal("authentication service unavailable"), Outcome::Refused),
            };
            let (login, server_signature) = match login {
                Ok(ok) => (ok.login, ok.server_signature),
                // The AuthActor logged the failure (it knows whether the name is a user's).
                Err(error) => return (Response::error(error), Outcome::Failed),
            };
            let (login, answer) =
                match complete_login(services, slots, login, peer, crate::metrics::Protocol::native).await {
                    Ok(completed) => completed,
                    Err(LoginRefused { error, closes }) => {
                        let outcome = if closes { Outcome::Closed } else { Outcome::Refused };
                        return (Response::error(error), outcome);
                    }
                };
            let signature = ByteBuf::from(server_signature.to_vec());
            match answer {
                SlotAnswer::Now => (Response::AuthOk { server_signature: signature }, Outcome::Ready(login)),
                SlotAnswer::Queued { position, notices } => {
                    (Response::Queued { position }, Outcome::Queued(Box::new((login, signature)), notices))
                }
            }
        };
        self.serve(ctx, work, |act, outcome, ctx| match outcome {
            Outcome::Ready(login) => {
                act.logged_in();
                act.phase = Phase::Ready(Ready::new(login))
            }
            Outcome::Queued(queued, notices) => {
                act.logged_in();
                act.phase = Phase::Queued(queued);
                let notices = futures::stream::unfold(notices, |mut notices| async move {
                    notices.recv().await.map(|notice| (notice, notices))
                });
                ctx.add_stream(notices);
                let patience = Duration::from_secs(act.services.config.queue_wait_secs);
                ctx.run_later(patience, move |act, ctx| {
                    if matches!(act.phase, Phase::Queued(_)) {
                        act.close_with(ctx, still_busy(patience));
                    }
                });
            }
            Outcome::Failed => {
                act.failed_logins += 1;
                if act.failed_logins >= act.services.config.max_login_attempts_per_connection.max(1) {
                    ctx.stop();
                }
            }
            Outcome::Refused => {}
            Outcome::Closed => ctx.stop(),
        });
    }
}

impl SessionActor {
    /// The user is authenticated: frames up to the configured limit are accepted from now on.
    fn logged_in(&mut self) {
        let max_frame = self.services.config.max_frame_bytes;
        self.frame_limit.store(max_frame, std::sync::atomic::Ordering::Relaxed);
    }
}

/// How a login ended.
enum Outcome {
    Ready(LoggedIn),
    Queued(Box<(LoggedIn, ByteBuf)>, mpsc::UnboundedReceiver<QueueNotice>),
    /// A wrong password or unknown user: counts against the connection's attempts.
    Failed,
    /// The login could not finish (the home, a cap of the user or address, an internal
    /// error); the client may try again.
    Refused,
    /// The server refused it (busy, shutting down): the connection closes.
    Closed,
}

fn still_busy(waited: Duration) -> WireError {
    WireError::new(
        ErrorCode::ServerBusy,
        format!("server still busy after {} seconds in the queue; try again later", waited.as_secs()),
    )
}

/// A logged-in user waiting for a slot hears from the acceptor here.
impl StreamHandler<QueueNotice> for SessionActor {
    fn handle(&mut self, notice: QueueNotice, ctx: &mut Context<Self>) {
        if self.closing {
            return;
        }
        match notice {
            QueueNotice::Position(position) => self.reply(ctx, Response::Queued { position }),
            QueueNotice::Admit => {
                let Phase::Queued(queued) = std::mem::replace(&mut self.phase, Phase::Connected) else { return };
                let (login, server_signature) = *queued;
                tracing::info!(user = %login.user(), peer = %self.peer, "queued login admitted");
                self.phase = Phase::Ready(Ready::new(login));
                self.reply(ctx, Response::AuthOk { server_signature });
            }
            QueueNotice::Refuse(error) => self.close_with(ctx, error),
        }
    }

    /// The acceptor drops its end once it has admitted (or refused) the session: nothing to do.
    fn finished(&mut self, _: &mut Context<Self>) {}
}
