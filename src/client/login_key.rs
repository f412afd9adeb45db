//! A user's SaltedPassword kept after a login, to log in again without the password.
//!
//! The shell connects again after an interrupted command, and the load generator opens many
//! sessions as one user. Keeping the password for that would keep the one secret the user may
//! have reused elsewhere, and would pay scrypt's deliberate cost at every login. A
//! [`LoginKey`] keeps instead what the password derived for this user on this server: it
//! logs in as that user (so it is wiped when dropped and never printed), but only while the
//! server's salt and scrypt parameters stay the ones it was derived with. A password change
//! draws a new salt, so the key stops working with it.

use zeroize::Zeroize;

use crate::auth::ScryptParams;
use crate::auth::scram::Key;

/// SaltedPassword for one user, with the salt and parameters it was derived for.
#[derive(Clone)]
pub struct LoginKey {
    salt: Vec<u8>,
    params: ScryptParams,
    salted_password: Key,
}

/// The server's challenge names another salt or other parameters than the key's: the
/// account's password (or its derivation) changed since the key was derived.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the account's password changed since this session logged in: log in again with the password")]
pub struct KeyOutdated;

impl LoginKey {
    /// Derives the key from the password, as a login does (scrypt: slow on purpose).
    pub fn derive(
        password: &[u8],
        salt: &[u8],
        params: ScryptParams,
    ) -> Result<LoginKey, crate::auth::kdf::InvalidParams> {
        Ok(LoginKey::from_parts(salt, params, params.salted_password(password, salt)?))
    }

    /// A key derived some other way (see `Client::login_with`).
    pub(super) fn from_parts(salt: &[u8], params: ScryptParams, salted_password: Key) -> LoginKey {
        LoginKey { salt: salt.to_vec(), params, salted_password }
    }

    /// The key itself, for the proof (see `Client::login_deriving`).
    pub(super) fn salted_password(&self) -> &Key {
        &self.salted_password
    }

    /// The key for a challenge with this salt and these parameters, if it was derived for them.
    pub fn for_challenge(&self, salt: &[u8], params: ScryptParams) -> Result<Key, KeyOutdated> {
        if salt == self.salt.as_slice() && params == self.params { Ok(self.salted_password) } else { Err(KeyOutdated) }
    }
}

impl Drop for LoginKey {
    fn drop(&mut self) {
        self.salted_password.zeroize();
    }
}

impl std::fmt::Debug for LoginKey {
    /// Never prints the key: it logs in.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginKey").field("params", &self.params).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: ScryptParams = ScryptParams { log_n: 4, r: 8, p: 1 };

    #[test]
    fn the_key_answers_only_the_challenge_it_was_derived_for() {
        let key = LoginKey::derive(b"secret", b"salt-1", CHEAP).unwrap();
        let expected = CHEAP.salted_password(b"secret", b"salt-1").unwrap();
        assert_eq!(key.for_challenge(b"salt-1", CHEAP), Ok(expected));
        assert_eq!(key.for_challenge(b"salt-2", CHEAP), Err(KeyOutdated), "a new salt: the password changed");
        let raised = ScryptParams { log_n: 5, ..CHEAP };
        assert_eq!(key.for_challenge(b"salt-1", raised), Err(KeyOutdated), "a raised cost");
    }

    #[test]
    fn debug_output_does_not_show_the_key() {
        let key = LoginKey::derive(b"secret", b"salt", CHEAP).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&format!("{:?}", key.salted_password)), "{shown}");
        assert!(!shown.contains(&hex::encode(key.salted_password)), "{shown}");
        assert!(shown.contains("LoginKey"));
    }
}
