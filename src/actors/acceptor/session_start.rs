//! Where a connection begins: its listener's protocol, and the session started for it (a
//! native SessionActor or an FTP session task), reached afterwards through a [`SessionLink`].

use super::*;

/// Which listener a connection came in on: both share the slots, the queue and the limits.
/// An FTP connection carries the TLS configuration its session will use.
#[derive(Clone)]
pub enum Protocol {
    Native,
    Ftp(crate::ftp::tls::FtpTls),
}

impl Protocol {
    /// Why a connection is refused or closed, in its protocol.
    pub(super) fn refusal(&self, error: &WireError) -> Vec<u8> {
        match self {
            Protocol::Native => encode_frame(&Response::error(error.clone())).expect("errors encode"),
            Protocol::Ftp(_) => crate::ftp::reply::Reply::from_error(error).to_bytes(),
        }
    }
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
    Native { addr: Addr<SessionActor>, cut: Arc<Cut> },
    Ftp(crate::ftp::FtpLink),
}

impl SessionLink {
    /// Close once the transfer in progress, if any, is done.
    pub(super) fn drain(&self) {
        match self {
            SessionLink::Native { addr, .. } => addr.do_send(Drain),
            SessionLink::Ftp(link) => link.drain(),
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
            SessionLink::Ftp(link) => link.close_now(error),
        }
    }
}

/// Tells a connection why it is refused, then closes it.
pub(super) async fn refuse(mut stream: TcpStream, protocol: Protocol, error: WireError) {
    let _ = stream.write_all(&protocol.refusal(&error)).await;
    let _ = stream.shutdown().await;
}

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
            Protocol::Ftp(tls) => SessionLink::Ftp(crate::ftp::session::start(crate::ftp::session::FtpSessionStart {
                stream,
                peer,
                services,
                tls,
                admission,
            })),
            Protocol::Native => {
                let (addr, cut) = SessionActor::start(stream, peer, services, admission);
                SessionLink::Native { addr, cut }
            }
        };
        self.connections.insert(id, Connection { address: peer.ip(), link, stage: Stage::PreLogin, user: None });
    }
}
