//! A man in the middle for the native protocol: it terminates the client's TLS with a
//! certificate of its own (one the client was wrongly told to trust), opens its own TLS
//! session to the real server, and relays the bytes between the two sessions unchanged.

use std::net::SocketAddr;

use ftp_actor::client::Trust;
use ftp_actor::client::trust::open_transport;
use ftp_actor::tls::Fingerprint;

pub struct TlsRelay {
    pub addr: SocketAddr,
    /// The relay's own certificate, which a fooled client trusts.
    pub fingerprint: Fingerprint,
    _dir: tempfile::TempDir,
}

impl TlsRelay {
    /// Relays every connection to `server`, whose certificate the relay checks with `trust`.
    pub async fn start(server: SocketAddr, trust: Trust) -> TlsRelay {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("relay-cert.pem"), dir.path().join("relay-key.pem"));
        ftp_actor::tls::generate_if_missing(&cert, &key).unwrap();
        let fingerprint = Fingerprint::of(&ftp_actor::tls::load_chain(&cert).unwrap()[0]);
        let acceptor = tokio_rustls::TlsAcceptor::from(ftp_actor::tls::native_server_config(&cert, &key).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (acceptor, trust) = (acceptor.clone(), trust.clone());
                tokio::spawn(async move {
                    let Ok(mut client) = acceptor.accept(client).await else { return };
                    let Ok(mut server) = open_transport(server, &trust).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        TlsRelay { addr, fingerprint, _dir: dir }
    }
}
