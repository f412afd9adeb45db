//! Which TLS sessions an FTPS data connection may resume: those of control connections that
//! logged in as the same user.
//!
//! With `PROT P`, a data connection that resumes a TLS session proves that its client took
//! part in the handshake that made the session. So each control connection gets a ticket key of
//! its own ([`ControlTickets`]; stateless TLS tickets), registered under its client's address
//! when its TLS handshake runs, and told the user once it proves the user's password. A data connection
//! ([`DataTickets`]) opens a ticket with any key registered for its address and remembers
//! which one; after the handshake, the session is accepted only if that key's control
//! connection logged in as the data connection's user (waiting a moment for a login still
//! running). Another client on the same address (the attack a passive port is open to) can
//! make keys of its own, but none of them logs in as this user, so it is refused.
//!
//! Why not "the same control connection" (vsftpd's `require_ssl_reuse`)? rclone keeps one
//! session cache for all its connections to a host, so a data connection may resume a session
//! of another of its control connections, including one that has just been opened and is
//! still logging in, or one already closed; keys therefore outlive their connections (the
//! last [`KEYS_PER_ADDRESS`] of an address are kept).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::server::ProducesTickets;
use tokio::sync::watch;

/// Ticket keys kept per client address, the newest; older ones are forgotten.
pub const KEYS_PER_ADDRESS: usize = 64;

/// One control connection's ticket key, and who it logged in as.
#[derive(Debug)]
pub struct IssuedKey {
    key: Arc<dyn ProducesTickets>,
    user: watch::Sender<Option<String>>,
}

/// The ticket keys of an FTP listener's control connections, per client address.
#[derive(Debug, Default)]
pub struct TicketRegistry {
    by_address: Mutex<HashMap<IpAddr, VecDeque<Arc<IssuedKey>>>>,
}

impl TicketRegistry {
    fn register(&self, address: IpAddr, issued: Arc<IssuedKey>) {
        let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let keys = by_address.entry(address).or_default();
        if keys.len() == KEYS_PER_ADDRESS {
            keys.pop_front();
        }
        keys.push_back(issued);
    }

    /// Opens `cipher` with a key registered for `address`; returns the plaintext and the key.
    fn decrypt(&self, address: IpAddr, cipher: &[u8]) -> Option<(Vec<u8>, Arc<IssuedKey>)> {
        let keys: Vec<Arc<IssuedKey>> = {
            let by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
            by_address.get(&address)?.iter().rev().cloned().collect()
        };
        keys.into_iter().find_map(|issued| issued.key.decrypt(cipher).map(|plain| (plain, issued)))
    }
}

/// A control connection's tickets, made and opened with its own key.
#[derive(Debug)]
pub struct ControlTickets {
    issued: Arc<IssuedKey>,
}

impl ControlTickets {
    /// A new key for a control connection from `address`, registered at once (its TLS
    /// handshake is about to hand out tickets made with it).
    pub fn new(registry: &TicketRegistry, address: IpAddr) -> Result<Arc<ControlTickets>, rustls::Error> {
        let issued = Arc::new(IssuedKey { key: rustls::crypto::ring::Ticketer::new()?, user: watch::channel(None).0 });
        registry.register(address, issued.clone());
        Ok(Arc::new(ControlTickets { issued }))
    }

    /// The control connection proved `user`'s password: sessions made with its key now count
    /// for that user's data connections.
    pub fn logged_in(&self, user: &str) {
        self.issued.user.send_replace(Some(user.to_string()));
    }
}

impl ProducesTickets for ControlTickets {
    fn enabled(&self) -> bool {
        self.issued.key.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.issued.key.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.issued.key.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.issued.key.decrypt(cipher)
    }
}

/// One data connection's tickets: opened with any key of its address, the key remembered.
#[derive(Debug)]
pub struct DataTickets {
    registry: Arc<TicketRegistry>,
    address: IpAddr,
    /// The key of the data connection's own control connection: a session resumed by its ID
    /// rather than a ticket (TLS 1.2) can only come from that connection's own cache.
    own: Arc<IssuedKey>,
    matched: Mutex<Option<Arc<IssuedKey>>>,
}

impl DataTickets {
    /// Tickets for a data connection of `control`, from `address`.
    pub fn new(registry: Arc<TicketRegistry>, control: &ControlTickets, address: IpAddr) -> Arc<DataTickets> {
        Arc::new(DataTickets { registry, address, own: control.issued.clone(), matched: Mutex::new(None) })
    }

    /// After a handshake that resumed a session: was it a session of a control connection
    /// that logged in as `user`? A control connection still logging in is given `patience`.
    pub async fn resumed_as(&self, user: &str, patience: Duration) -> bool {
        let matched = self.matched.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let issued = matched.unwrap_or_else(|| self.own.clone());
        let mut login = issued.user.subscribe();
        let logged_in = tokio::time::timeout(patience, login.wait_for(Option::is_some)).await;
        matches!(logged_in, Ok(Ok(who)) if who.as_deref() == Some(user))
    }
}

impl ProducesTickets for DataTickets {
    fn enabled(&self) -> bool {
        true
    }

    fn lifetime(&self) -> u32 {
        self.own.key.lifetime()
    }

    /// A new ticket on a data connection (TLS 1.2 renews the one it resumed) is made with the
    /// key of the session it resumed, so it stays that control connection's.
    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.matched.lock().unwrap_or_else(|p| p.into_inner()).as_ref()?.key.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        let (plain, issued) = self.registry.decrypt(self.address, cipher)?;
        *self.matched.lock().unwrap_or_else(|p| p.into_inner()) = Some(issued);
        Some(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn a_ticket_counts_for_the_user_its_control_connection_logged_in_as() {
        let registry = Arc::new(TicketRegistry::default());
        let alice = ControlTickets::new(&registry, ip(1)).unwrap();
        let alice_again = ControlTickets::new(&registry, ip(1)).unwrap();
        let mallory = ControlTickets::new(&registry, ip(1)).unwrap();
        let elsewhere = ControlTickets::new(&registry, ip(2)).unwrap();
        alice.logged_in("alice");
        mallory.logged_in("mallory");
        elsewhere.logged_in("alice");
        let patience = Duration::from_millis(50);
        let own = ControlTickets::new(&registry, ip(1)).unwrap();
        let resumes = async |ticket: &[u8], user: &str| {
            let data = DataTickets::new(registry.clone(), &own, ip(1));
            data.decrypt(ticket).is_some() && data.resumed_as(user, patience).await
        };
        let ticket = |control: &ControlTickets| control.encrypt(b"session").unwrap();
        assert!(resumes(&ticket(&alice), "alice").await);
        assert!(!resumes(&ticket(&mallory), "alice").await, "another user's session");
        assert!(!resumes(&ticket(&elsewhere), "alice").await, "a key of another address");
        assert!(!resumes(b"forged", "alice").await);
        // A control connection still logging in: the data connection waits for its login.
        let pending = ticket(&alice_again);
        let waiting = resumes(&pending, "alice");
        let login = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            alice_again.logged_in("alice");
        };
        let (resumed, ()) = tokio::join!(waiting, login);
        assert!(resumed, "resumed once its control connection logged in");
        // Keys outlive their control connections, up to the newest KEYS_PER_ADDRESS.
        let old = ticket(&alice);
        drop(alice);
        assert!(resumes(&old, "alice").await, "a closed connection's session still counts");
        for _ in 0..KEYS_PER_ADDRESS {
            ControlTickets::new(&registry, ip(1)).unwrap();
        }
        assert!(!resumes(&old, "alice").await, "forgotten after newer keys");
    }
}
