//! The login verification cache: a password checked once (by deriving scrypt, about 0.3 s of
//! CPU and 128 MiB at the default cost) is checked again by a keyed hash, in microseconds.
//!
//! Front ends that receive the password itself (FTP, SFTP later) must derive scrypt to check
//! it; clients such as rclone and lftp open a connection per transfer and would pay that every
//! time. After a successful check the cache keeps, per user, `HMAC-SHA256(process key, user,
//! password)` together with the user's stored key (which changes with every password change,
//! its salt being new) and an expiry. A later login for that user with the same password and
//! the same stored credential, before the expiry, is accepted on the keyed hash, compared in
//! constant time. Failed logins are never cached; a changed or deleted account finds its entry
//! stale. The process key is random and lives only in memory, so the entries are worthless
//! outside this process: someone who reads the server's memory could test password guesses
//! against an entry at HMAC speed, which is what the stored keys in `users.toml` already give
//! them at scrypt speed (see docs/SECURITY.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::scram::Key;

type HmacSha256 = hmac::Hmac<Sha256>;

struct Entry {
    tag: Key,
    /// The stored key the password was checked against: another one means the credential
    /// changed since.
    credential: Key,
    expires: Instant,
}

pub struct LoginCache {
    key: Key,
    ttl: Duration,
    max_entries: usize,
    entries: HashMap<String, Entry>,
}

impl LoginCache {
    /// A cache of at most `max_entries` users, each kept `ttl`; a zero for either turns it off.
    pub fn new(ttl: Duration, max_entries: usize) -> LoginCache {
        let mut key = [0u8; 32];
        rand::fill(&mut key);
        LoginCache { key, ttl, max_entries, entries: HashMap::new() }
    }

    /// The keyed hash of a user and a password under this process's key: what an entry
    /// keeps, and what names a derivation in flight (see `actors::auth`).
    pub fn tag(&self, user: &str, password: &[u8]) -> Key {
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key length");
        // The name's length first, so that no (user, password) pair reads as another.
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    /// Was this password checked for `user`, against this stored credential, and not long ago?
    pub fn verifies(&self, user: &str, password: &[u8], credential: &Key, now: Instant) -> bool {
        let Some(entry) = self.entries.get(user) else { return false };
        if entry.expires <= now || entry.credential != *credential {
            return false;
        }
        self.tag(user, password).ct_eq(&entry.tag).into()
    }

    /// Remembers a password that was just checked by derivation.
    pub fn remember(&mut self, user: &str, password: &[u8], credential: &Key, now: Instant) {
        if self.ttl.is_zero() || self.max_entries == 0 {
            return;
        }
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(user) {
            self.entries.retain(|_, entry| entry.expires > now);
            if self.entries.len() >= self.max_entries {
                // Still full: the entry closest to its expiry goes.
                let soonest = self.entries.iter().min_by_key(|(_, entry)| entry.expires).map(|(name, _)| name.clone());
                if let Some(name) = soonest {
                    self.entries.remove(&name);
                }
            }
        }
        let entry = Entry { tag: self.tag(user, password), credential: *credential, expires: now + self.ttl };
        self.entries.insert(user.to_string(), entry);
    }

    /// Drops a user's entry (the account changed).
    pub fn forget(&mut self, user: &str) {
        self.entries.remove(user);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_same_password_for_the_same_credential_is_recognised_until_it_expires() {
        let mut cache = LoginCache::new(HOUR, 10);
        let (now, credential) = (Instant::now(), [7u8; 32]);
        assert!(!cache.verifies("alice", b"pw", &credential, now), "nothing before a success");
        cache.remember("alice", b"pw", &credential, now);
        assert!(cache.verifies("alice", b"pw", &credential, now + HOUR / 2));
        assert!(!cache.verifies("alice", b"other", &credential, now), "another password");
        assert!(!cache.verifies("bob", b"pw", &credential, now), "another user");
        assert!(!cache.verifies("alice", b"pw", &[8u8; 32], now), "a changed credential");
        assert!(!cache.verifies("alice", b"pw", &credential, now + HOUR), "expired");
        cache.forget("alice");
        assert!(!cache.verifies("alice", b"pw", &credential, now));
    }

    #[test]
    fn names_and_passwords_cannot_be_shifted_into_each_other() {
        let mut cache = LoginCache::new(HOUR, 10);
        let (now, credential) = (Instant::now(), [1u8; 32]);
        cache.remember("ab", b"c", &credential, now);
        assert!(!cache.verifies("a", b"bc", &credential, now));
    }

    #[test]
    fn the_cache_stays_within_its_size_and_can_be_off() {
        let mut cache = LoginCache::new(HOUR, 3);
        let now = Instant::now();
        for (i, user) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            cache.remember(user, b"pw", &[0; 32], now + Duration::from_secs(i as u64));
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.verifies("e", b"pw", &[0; 32], now + Duration::from_secs(5)), "the newest stays");
        assert!(!cache.verifies("a", b"pw", &[0; 32], now + Duration::from_secs(5)), "the oldest went");
        let mut off = LoginCache::new(Duration::ZERO, 3);
        off.remember("a", b"pw", &[0; 32], now);
        assert!(off.is_empty());
    }
}
