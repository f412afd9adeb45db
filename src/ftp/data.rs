//! Data connections: a passive listener in the configured port range (or, when enabled, an
//! active connection to the client's own address), accepted only from the control
//! connection's address, with TLS when the client asked for `PROT P`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::address::PortRange;
use super::reply::Reply;
use super::tls::{FtpTls, MaybeTls};

/// Where the next data connection comes from.
pub enum DataSource {
    Passive(TcpListener),
    Active(SocketAddr),
}

/// Binds a passive listener on `ip`, on the first free port of `range` after a random start.
pub fn bind_passive(ip: IpAddr, range: PortRange) -> Result<TcpListener, Reply> {
    let start = rand::random::<u32>() as usize;
    for port in range.ports_from(start) {
        let socket = match ip {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        };
        let Ok(socket) = socket else { break };
        // Ports of finished data connections linger in TIME_WAIT for a minute; without this a
        // busy server (a mirror of many small files) would run out of passive ports. It does
        // not let two listeners share a port.
        let _ = socket.set_reuseaddr(true);
        if socket.bind(SocketAddr::new(ip, port)).is_err() {
            continue;
        }
        if let Ok(listener) = socket.listen(1) {
            return Ok(listener);
        }
    }
    Err(Reply::new(425, "no free passive port; try again in a moment"))
}

/// TLS on a data connection: the control connection's TLS state, its user, and whether the
/// connection must resume a TLS session of that user's control connections
/// (`ftp.require_tls_session_reuse`; see `ftp::session_tickets`).
pub struct DataTls {
    pub tls: FtpTls,
    pub user: String,
    pub require_reuse: bool,
}

/// How long a data connection that resumed the session of a control connection still logging
/// in waits for that login (rclone opens control connections while others transfer).
const LOGIN_WAIT: Duration = Duration::from_secs(5);

/// After refusing a data connection that did not resume the control connection's TLS
/// session, how long the real client has to connect: it raced the impostor, so its connection
/// is already waiting, and a client that does not resume sessions hears 522 soon.
const AFTER_REFUSAL: Duration = Duration::from_secs(2);

/// Opens the data connection and, if `tls` is given, runs the TLS handshake on it. Waits at
/// most `patience` in all. Connections from any other address than `peer` are refused (a
/// stranger must not be able to steal a transfer by racing to the port), and so, when reuse
/// is required, are TLS connections that do not resume a session of the user's control
/// connections (another client on the same address); a passive listener then waits
/// [`AFTER_REFUSAL`] more for the real one, else the answer is 522.
pub async fn open(
    source: DataSource,
    peer: IpAddr,
    tls: Option<DataTls>,
    patience: Duration,
) -> Result<MaybeTls, Reply> {
    let mut deadline = tokio::time::Instant::now() + patience;
    let mut refused_new_session = false;
    loop {
        match tokio::time::timeout_at(deadline, connect_once(&source, peer, tls.as_ref())).await {
            Ok(Attempt::Connected(stream)) => return Ok(stream),
            Ok(Attempt::NotTheClient) => continue,
            Ok(Attempt::NewSession) => {
                tracing::warn!(%peer, "TLS data connection that resumes no session of the user's refused");
                refused_new_session = true;
                if matches!(source, DataSource::Active(_)) {
                    break;
                }
                deadline = deadline.min(tokio::time::Instant::now() + AFTER_REFUSAL);
            }
            Ok(Attempt::Failed) | Err(_) => break,
        }
    }
    if refused_new_session {
        return Err(Reply::new(
            522,
            "the data connection must resume the TLS session of your control connection (session reuse required)",
        ));
    }
    Err(Reply::new(425, "cannot open the data connection"))
}

/// What one connection attempt gave.
enum Attempt {
    Connected(MaybeTls),
    /// Another address, or a broken TLS handshake, on the passive port: wait for the next.
    NotTheClient,
    /// A TLS data connection that negotiated a new session where reuse is required.
    NewSession,
    /// The listener failed, or the active connection could not be made.
    Failed,
}

async fn connect_once(source: &DataSource, peer: IpAddr, tls: Option<&DataTls>) -> Attempt {
    let stream = match source {
        DataSource::Passive(listener) => {
            let Ok((stream, from)) = listener.accept().await else { return Attempt::Failed };
            if from.ip() != peer {
                tracing::warn!(%from, expected = %peer, "data connection from another address refused");
                return Attempt::NotTheClient;
            }
            stream
        }
        DataSource::Active(address) => match TcpStream::connect(*address).await {
            Ok(stream) => stream,
            Err(_) => return Attempt::Failed,
        },
    };
    let _ = stream.set_nodelay(true);
    let Some(tls) = tls else { return Attempt::Connected(MaybeTls::Plain(stream)) };
    let passive = matches!(source, DataSource::Passive(_));
    // A configuration per connection, whose tickets say whose session it resumed.
    let (config, tickets) = tls.tls.for_data(peer);
    let data = match MaybeTls::accept(stream, config).await {
        Ok(data) => data,
        Err(_) if passive => return Attempt::NotTheClient,
        Err(_) => return Attempt::Failed,
    };
    if !tls.require_reuse {
        return Attempt::Connected(data);
    }
    let users_session = match tickets {
        Some(tickets) => data.resumed_session() && tickets.resumed_as(&tls.user, LOGIN_WAIT).await,
        None => false,
    };
    if users_session { Attempt::Connected(data) } else { Attempt::NewSession }
}
