//! Where a connection begins: its listener's protocol, and the session started for it (a
//! native SessionActor or an FTP session task), reached afterwards through a [`SessionLink`].

use super::*;

/// Which listener a connection came in on: both share the slots, the queue and the limits.
/// An FTP connection carries the TLS configuration its session will use.
#[derive(Clone)]
pub enum Protocol {
    /// With the TLS configuration of its connections, unless `plaintext_native`.
    Native(Option<Arc<rustls::ServerConfig>>),
    Ftp(crate::ftp::tls::FtpTls),
    /// With the SSH configuration (host key, algorithms) of its connections.
    Sftp(Arc<russh::server::Config>),
}

/// The native listener and the TLS configuration of its connections (`None`:
/// `plaintext_native`).
pub struct NativeListener {
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The SFTP listener and the SSH configuration its sessions use.
pub struct SftpListener {
    pub listener: TcpListener,
    pub ssh: Arc<russh::server::Config>,
}

/// The FTP listener and the TLS configuration its sessions use.
pub struct FtpListener {
    pub listener: TcpListener,
    pub tls: crate::ftp::tls::FtpTls,
}

/// A connection from one of the listeners.
pub struct Accepted {
    pub(super) protocol: Protocol,
    pub(super) result: std::io::Result<(TcpStream, SocketAddr)>,
}

impl Message for Accepted {
    type Result = ();
}

/// How the acceptor reaches a running session.
pub(super) enum SessionLink {
    Native {
        addr: Addr<SessionActor>,
        cut: Arc<Cut>,
    },
    /// An FTP or SFTP session task.
    Task {
        link: TaskLink,
        protocol: crate::metrics::Protocol,
    },
}

impl SessionLink {
    /// Close once the transfer in progress, if any, is done.
    pub(super) fn drain(&self) {
        match self {
            SessionLink::Native { addr, .. } => addr.do_send(Drain),
            SessionLink::Task { link, .. } => link.drain(),
        }
    }

    /// Close now, telling the client why, even mid-transfer: a native download in progress
    /// stops at its next chunk (it holds the session, so it is reached through the session's
    /// `Cut`), anything else hears a `CloseNow`; an upload's client is still read from, and
    /// its data dropped, until it has the answer (the session's lingering close).
    pub(super) fn close_now(&self, error: WireError) {
        match self {
            SessionLink::Native { addr, cut } => {
                cut.cut(error.clone());
                addr.do_send(CloseNow(error));
            }
            SessionLink::Task { link, .. } => link.close_now(error),
        }
    }
}

/// Tells a connection why it is refused, then closes it (a native client hears it inside TLS,
/// the only way it listens).
pub(super) async fn refuse(mut stream: TcpStream, protocol: Protocol, error: WireError) {
    match protocol {
        Protocol::Native(Some(config)) => {
            let refusal = encode_frame(&Response::error(error)).expect("errors encode");
            if let Some((stream, tls)) = crate::net::native_tls::accept(stream, config, REFUSAL_PATIENCE).await {
                let (read, write) = stream.into_split();
                let (_, mut tls) = tls.over(read, write);
                let _ = tokio::time::timeout(REFUSAL_PATIENCE, tls.write_all(&refusal)).await;
                let _ = tokio::time::timeout(REFUSAL_PATIENCE, tls.shutdown()).await;
            }
        }
        plain @ (Protocol::Native(None) | Protocol::Ftp(_)) => {
            let refusal = match plain {
                Protocol::Ftp(_) => crate::ftp::reply::Reply::from_error(&error).to_bytes(),
                _ => encode_frame(&Response::error(error)).expect("errors encode"),
            };
            let _ = stream.write_all(&refusal).await;
            let _ = stream.shutdown().await;
        }
        Protocol::Sftp(ssh) => crate::sftp::refuse(stream, ssh, error, REFUSAL_PATIENCE).await,
    }
}

/// The longest a refused connection is given to finish its handshake (TLS, SSH) and read why.
const REFUSAL_PATIENCE: Duration = Duration::from_secs(5);

impl Acceptor {
    /// Starts the session of a new connection, in its protocol, and enters it in the books as
    /// pre-login.
    pub(super) fn start_session(
        &mut self,
        ctx: &mut Context<Self>,
        id: u64,
        stream: TcpStream,
        peer: SocketAddr,
        protocol: Protocol,
    ) {
        let admission = AdmissionLink::new(id, &ctx.address());
        let services = self.services.clone();
        let link = match protocol {
            Protocol::Ftp(tls) => SessionLink::Task {
                link: crate::ftp::session::start(crate::ftp::session::FtpSessionStart {
                    stream,
                    peer,
                    services,
                    tls,
                    admission,
                }),
                protocol: crate::metrics::Protocol::ftp,
            },
            Protocol::Sftp(ssh) => SessionLink::Task {
                link: crate::sftp::start(crate::sftp::SftpSessionStart { stream, peer, services, ssh, admission }),
                protocol: crate::metrics::Protocol::sftp,
            },
            Protocol::Native(tls) => {
                let (addr, cut) = SessionActor::start(stream, tls, peer, services, admission);
                SessionLink::Native { addr, cut }
            }
        };
        self.connections.insert(id, Connection { address: peer.ip(), link, stage: Stage::PreLogin, user: None });
    }
}
