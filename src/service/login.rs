//! The steps after a password is proven, the same for every front end: the user's home is
//! opened, then the acceptor gives the session a slot now, a place in the queue, or a refusal.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::actors::Services;
use crate::actors::acceptor::{SlotAnswer, SlotRequester, refusal_closes};
use crate::actors::auth::LoginOk;
use crate::net::{ErrorCode, WireError};
use crate::storage::VirtualPath;

use super::error;
use super::files::UserFiles;
use crate::metrics::{LoginResult, Protocol};

/// A logged-in session's state that every front end has: the user's files and where in them
/// the session stands.
pub struct LoggedIn {
    pub files: Arc<UserFiles>,
    pub cwd: VirtualPath,
}

impl LoggedIn {
    pub fn user(&self) -> &str {
        self.files.user()
    }

    /// `path` as typed, from the working directory, inside the home.
    pub fn resolve(&self, op: &str, path: &str) -> Result<VirtualPath, WireError> {
        self.files.resolve(op, &self.cwd, path)
    }

    /// `path`, or the working directory when none is given.
    pub fn resolve_or_cwd(&self, op: &str, path: Option<&str>) -> Result<VirtualPath, WireError> {
        match path {
            Some(path) => self.resolve(op, path),
            None => Ok(self.cwd.clone()),
        }
    }
}

/// A login that cannot go on; `closes` says whether the connection closes with it (the server
/// is busy or stopping) or may log in again (see [`refusal_closes`]).
#[derive(Debug)]
pub struct LoginRefused {
    pub error: WireError,
    pub closes: bool,
}

impl From<WireError> for LoginRefused {
    fn from(error: WireError) -> LoginRefused {
        LoginRefused { closes: refusal_closes(&error), error }
    }
}

/// Finishes a login whose password the AuthActor accepted: opens the home (on the login pool,
/// apart from transfers), then asks the acceptor for a slot. The access log names `protocol`.
pub async fn complete_login(
    services: Services,
    slots: SlotRequester,
    login: LoginOk,
    peer: SocketAddr,
    protocol: Protocol,
) -> Result<(LoggedIn, SlotAnswer), LoginRefused> {
    let (home_path, homes, user) = (login.home.clone(), services.homes.clone(), login.user.clone());
    let home = match services.login_io.run("open home", move || homes.open(&home_path, &user)).await {
        Ok(Ok(home)) => home,
        Ok(Err(failure)) => {
            tracing::error!(user = %login.user, home = %login.home.display(), error = %failure, "cannot open home");
            return Err(WireError::new(ErrorCode::StorageFailure, "your home directory cannot be opened").into());
        }
        Err(failed) => return Err(error::internal(failed).into()),
    };
    let answer = slots.request(&login).await?;
    tracing::info!(target: "access", user = %login.user, %peer, op = "login", ?protocol, result = "ok");
    services.metrics.login(protocol, LoginResult::ok);
    let files = UserFiles::new(services, login.user, home, login.home);
    Ok((LoggedIn { files: Arc::new(files), cwd: VirtualPath::root() }, answer))
}
