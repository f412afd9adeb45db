//! The SFTP front end: SSH 2 with the `sftp` subsystem (version 3, as OpenSSH speaks it), on
//! russh and russh-sftp's packet types (docs/DEPENDENCIES.md). One more thin translator over
//! the service that the native and FTP sessions share: the same admission (pre-login budget,
//! slots and queue), AuthActor (throttle, bans), QuotaActor, disk pool, jail, partial uploads
//! with atomic publish. See docs/INTEROP.md for what clients can do with it.

mod host_key;
mod md5sum;
mod paths;
mod reading;
mod reply;
pub mod requests;
mod session;
mod ssh;
mod writing;

use std::sync::Arc;
use std::time::Duration;

pub use host_key::{GENERATED_HOST_KEY, HostKeyError, fingerprint, host_key_path, load_or_generate};
pub use requests::Requests;
pub use session::SftpSessionStart;

use crate::actors::acceptor::TaskLink;
use crate::config::Config;
use crate::net::WireError;

/// Starts the session's task; returns the acceptor's handle on it.
pub fn start(start: SftpSessionStart) -> TaskLink {
    let (link, signals) = TaskLink::new();
    actix_rt::spawn(async move {
        let (id, peer) = (start.admission.id(), start.peer);
        let user = session::run(start, signals).await;
        tracing::debug!(session = id, %peer, user, "SFTP session ended");
    });
    link
}

/// The SSH settings of the listener: the host key, password logins only, and the login
/// timeout as SSH's own limit on a connection that stays silent.
pub fn ssh_config(host_key: russh::keys::PrivateKey, config: &Config) -> Arc<russh::server::Config> {
    Arc::new(russh::server::Config {
        server_id: russh::SshId::Standard(format!("SSH-2.0-ftp-actor_{}", env!("CARGO_PKG_VERSION")).into()),
        methods: ssh::methods(),
        keys: vec![host_key],
        // Failed passwords are slowed down by the AuthActor's throttle, as on every listener.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: config.max_login_attempts_per_connection.max(1) as usize,
        inactivity_timeout: Some(Duration::from_secs(config.idle_timeout_secs.max(config.login_timeout_secs))),
        nodelay: true,
        ..Default::default()
    })
}

/// Refuses a connection (a banned address) in SSH's own terms: the key exchange runs, then an
/// SSH disconnect carries the reason, which OpenSSH prints (`Received disconnect from ...:
/// too many failed logins ... (error 202)`). No login is offered meanwhile; `patience` bounds
/// each step.
pub async fn refuse(
    stream: tokio::net::TcpStream,
    ssh: Arc<russh::server::Config>,
    error: WireError,
    patience: Duration,
) {
    /// Offers nothing: every login method is refused by russh's defaults.
    struct Refusing;
    impl russh::server::Handler for Refusing {
        type Error = russh::Error;
    }
    let started = tokio::time::timeout(patience, russh::server::run_stream(ssh, stream, Refusing)).await;
    let Ok(Ok(running)) = started else { return };
    let said = error.sentence();
    let _ = running.handle().disconnect(russh::Disconnect::HostNotAllowedToConnect, said, "en".into()).await;
    let _ = tokio::time::timeout(patience, running).await;
}
