//! Which TLS sessions an FTPS data connection may resume: those of control connections logged
//! in as the same user.
//!
//! With `PROT P`, a data connection that resumes a TLS session proves that its client took
//! part in the handshake that made the session. Each control connection gets a ticket key of
//! its own (stateless TLS tickets, see [`SessionTickets`]), so its tickets open nothing else.
//! Once it has logged in, its key is registered under the user's name, and the data
//! connections of every control connection of that user accept tickets made with it: rclone
//! keeps one session cache for all its connections to a host and may resume, on one control
//! connection's data connection, a session of another of its control connections. Another
//! client on the same address (the attack a passive port is open to) has no session of any
//! connection logged in as this user, so its data connection cannot resume one and is
//! refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use rustls::server::ProducesTickets;

/// The ticket keys of logged-in control connections, per user. A key is held weakly: it goes
/// away with the last configuration of its control connection.
#[derive(Debug, Default)]
pub struct TicketRegistry {
    by_user: Mutex<HashMap<String, Vec<Weak<dyn ProducesTickets>>>>,
}

impl TicketRegistry {
    fn register(&self, user: &str, key: &Arc<dyn ProducesTickets>) {
        let mut by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
        by_user.retain(|_, keys| {
            keys.retain(|key| key.strong_count() > 0);
            !keys.is_empty()
        });
        by_user.entry(user.to_string()).or_default().push(Arc::downgrade(key));
    }

    /// Opens `cipher` with any live key registered for `user`.
    fn decrypt(&self, user: &str, cipher: &[u8]) -> Option<Vec<u8>> {
        let keys: Vec<Arc<dyn ProducesTickets>> = {
            let by_user = self.by_user.lock().unwrap_or_else(|p| p.into_inner());
            by_user.get(user)?.iter().filter_map(Weak::upgrade).collect()
        };
        keys.iter().find_map(|key| key.decrypt(cipher))
    }
}

/// One control connection's tickets: made with its own key; opened with it, or, once the
/// connection has logged in, with the key of any control connection of the same user.
#[derive(Debug)]
pub struct SessionTickets {
    own: Arc<dyn ProducesTickets>,
    registry: Arc<TicketRegistry>,
    user: Mutex<Option<String>>,
}

impl SessionTickets {
    pub fn new(registry: Arc<TicketRegistry>) -> Result<Arc<SessionTickets>, rustls::Error> {
        let own = rustls::crypto::ring::Ticketer::new()?;
        Ok(Arc::new(SessionTickets { own, registry, user: Mutex::new(None) }))
    }

    /// The control connection logged in as `user`: its sessions count for that user's data
    /// connections, and theirs for its own.
    pub fn logged_in(&self, user: &str) {
        self.registry.register(user, &self.own);
        *self.user.lock().unwrap_or_else(|p| p.into_inner()) = Some(user.to_string());
    }
}

impl ProducesTickets for SessionTickets {
    fn enabled(&self) -> bool {
        self.own.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.own.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.own.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        if let Some(plain) = self.own.decrypt(cipher) {
            return Some(plain);
        }
        let user = self.user.lock().unwrap_or_else(|p| p.into_inner()).clone()?;
        self.registry.decrypt(&user, cipher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_open_for_the_same_user_only_after_login() {
        let registry = Arc::new(TicketRegistry::default());
        let (a, b, c) = (
            SessionTickets::new(registry.clone()).unwrap(),
            SessionTickets::new(registry.clone()).unwrap(),
            SessionTickets::new(registry.clone()).unwrap(),
        );
        let ticket_of_b = b.encrypt(b"session of b").unwrap();
        assert_eq!(b.decrypt(&ticket_of_b).as_deref(), Some(&b"session of b"[..]), "its own");
        assert_eq!(a.decrypt(&ticket_of_b), None, "not logged in: nothing else");
        a.logged_in("alice");
        assert_eq!(a.decrypt(&ticket_of_b), None, "b is not alice's (yet)");
        b.logged_in("alice");
        c.logged_in("mallory");
        assert_eq!(a.decrypt(&ticket_of_b).as_deref(), Some(&b"session of b"[..]), "both alice's");
        assert_eq!(c.decrypt(&ticket_of_b), None, "another user's connection");
        drop(b);
        assert_eq!(a.decrypt(&ticket_of_b), None, "b's key went with b");
    }
}
