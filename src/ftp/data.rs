//! Data connections: a passive listener in the configured port range (or, when enabled, an
//! active connection to the client's own address), accepted only from the control
//! connection's address, with TLS when the client asked for `PROT P`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::address::PortRange;
use super::reply::Reply;
use super::tls::MaybeTls;

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

/// Opens the data connection and, if `tls` is given, runs the TLS handshake on it. Waits at
/// most `patience` in all. Connections from any other address than `peer` are refused (a
/// stranger must not be able to steal a transfer by racing to the port).
pub async fn open(
    source: DataSource,
    peer: IpAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
    patience: Duration,
) -> Result<MaybeTls, Reply> {
    let connect = async {
        let stream = match source {
            DataSource::Passive(listener) => loop {
                let (stream, from) = listener.accept().await.map_err(|_| ())?;
                if from.ip() == peer {
                    break stream;
                }
                tracing::warn!(%from, expected = %peer, "data connection from another address refused");
            },
            DataSource::Active(address) => TcpStream::connect(address).await.map_err(|_| ())?,
        };
        let _ = stream.set_nodelay(true);
        match tls {
            Some(config) => MaybeTls::accept(stream, config).await.map_err(|_| ()),
            None => Ok(MaybeTls::Plain(stream)),
        }
    };
    match tokio::time::timeout(patience, connect).await {
        Ok(Ok(stream)) => Ok(stream),
        _ => Err(Reply::new(425, "cannot open the data connection")),
    }
}
