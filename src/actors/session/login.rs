//! Logging in: the SCRAM exchange through the AuthActor, then the session claim.

use super::*;

impl SessionActor {
    pub(super) fn begin_login(&mut self, ctx: &mut Context<Self>, user: String, client_nonce: String) {
        let auth = self.services.auth.clone();
        let peer = self.peer.ip();
        let work = async move {
            match auth.send(BeginLogin { user, client_nonce, peer }).await {
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

    pub(super) fn finish_login(&mut self, ctx: &mut Context<Self>, nonce: String, proof: Vec<u8>) {
        let Phase::Challenged(pending) = std::mem::replace(&mut self.phase, Phase::Connected) else {
            return;
        };
        let auth = self.services.auth.clone();
        let disk = self.services.disk.clone();
        let user_slots = self.user_slots.clone();
        let id = self.id;
        let peer = self.peer;
        let work = async move {
            let login = match auth.send(FinishLogin { pending, nonce, proof, peer: peer.ip() }).await {
                Ok(result) => result,
                Err(_) => return (internal("authentication service unavailable"), Err(false)),
            };
            let (login, server_signature) = match login {
                Ok(ok) => (ok.login, ok.server_signature),
                // The AuthActor logged the failure (it knows whether the name is a user's).
                Err(error) => return (Response::error(error), Err(true)),
            };
            match user_slots.send(ClaimUserSession::for_login(id, &login)).await {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => return (Response::error(refused), Err(false)),
                Err(_) => return (internal("admission service unavailable"), Err(false)),
            }
            let home_path = login.home.clone();
            match disk.run("open home", move || Home::open(&home_path)).await {
                Ok(Ok(home)) => {
                    tracing::info!(target: "access", user = %login.user, %peer, op = "login", result = "ok");
                    let signature = ByteBuf::from(server_signature.to_vec());
                    (Response::AuthOk { server_signature: signature }, Ok((login, home)))
                }
                Ok(Err(error)) => {
                    tracing::error!(user = %login.user, home = %login.home.display(), %error, "cannot open home");
                    (
                        Response::error(WireError::new(
                            ErrorCode::StorageFailure,
                            "your home directory cannot be opened",
                        )),
                        Err(false),
                    )
                }
                Err(error) => (internal(&error.to_string()), Err(false)),
            }
        };
        self.serve(ctx, work, |act, outcome, ctx| match outcome {
            Ok((login, home)) => {
                act.phase = Phase::Ready(LoggedIn {
                    user: login.user,
                    home: Arc::new(home),
                    home_path: login.home,
                    cwd: VirtualPath::root(),
                    upload: None,
                    discarding: false,
                })
            }
            Err(true) => {
                act.failed_logins += 1;
                if act.failed_logins >= act.services.config.max_login_attempts_per_connection.max(1) {
                    ctx.stop();
                }
            }
            Err(false) => {}
        });
    }
}
