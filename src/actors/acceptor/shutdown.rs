//! Ending sessions from above: a graceful shutdown (SIGTERM, Ctrl-C) and the sessions of users
//! whose account was removed or changed.

use super::*;

pub(super) fn shutting_down() -> WireError {
    WireError::new(ErrorCode::ShuttingDown, "the server is shutting down; reconnect later")
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
        for id in self.slots.drain_queue() {
            if let Some(notices) = self.notices.remove(&id) {
                let _ = notices.send(QueueNotice::Refuse(shutting_down()));
            }
        }
        tracing::info!(
            sessions = self.connections.len(),
            grace_secs = msg.grace.as_secs(),
            "shutting down: no longer accepting"
        );
        for connection in self.connections.values() {
            connection.link.drain();
        }
        self.stop_when_idle();
        ctx.run_later(msg.grace, |act, ctx| {
            if act.connections.is_empty() {
                return;
            }
            tracing::warn!(sessions = act.connections.len(), "grace period over: closing the remaining sessions");
            let error = WireError::new(
                ErrorCode::ShuttingDown,
                "the server is shutting down; the transfer was interrupted and can be resumed later",
            );
            for connection in act.connections.values() {
                connection.link.close_now(error.clone());
            }
            // The system stops when the last session has ended (`stop_when_idle`): once each
            // has sent its answer, and an upload's has lingered for its client to read it. A
            // session whose client reads nothing is not waited for past that.
            ctx.run_later(LINGER + Duration::from_secs(1), |_, _| System::current().stop());
        });
    }
}

pub(super) fn account_changed(user: &str) -> WireError {
    WireError::new(
        ErrorCode::AccountChanged,
        format!("the account {user} was removed, or its password or home changed"),
    )
}

impl Handler<RevokeSessions> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: RevokeSessions, _: &mut Context<Self>) {
        for user in msg.users {
            for (id, connection) in &self.connections {
                if connection.user.as_deref() == Some(user.as_str()) {
                    tracing::info!(session = id, %user, "account changed: closing the session");
                    connection.link.close_now(account_changed(&user));
                }
            }
            self.revoked.insert(user, msg.generation);
        }
    }
}
