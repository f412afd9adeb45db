//! scrypt as SCRAM's key derivation: `SaltedPassword = scrypt(password, salt, N, r, p)`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::scram::{KEY_LEN, Key};

/// scrypt cost parameters, stored per user so they can be raised without breaking old users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScryptParams {
    /// log2 of the CPU/memory cost N (17 = 128 MiB with r = 8)
    pub log_n: u8,
    /// block size
    pub r: u32,
    /// parallelism
    pub p: u32,
}

impl Default for ScryptParams {
    /// RFC 7914's interactive-login recommendation: N = 2^17, r = 8, p = 1.
    fn default() -> Self {
        ScryptParams { log_n: 17, r: 8, p: 1 }
    }
}

static DERIVATIONS: AtomicU64 = AtomicU64::new(0);

/// Derivations this process has run so far (the tests count the ones a login cache spares).
pub fn derivations() -> u64 {
    DERIVATIONS.load(Ordering::Relaxed)
}

/// Parameters outside what scrypt accepts, or past what this server lets a client demand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scrypt parameters log_n={log_n} r={r} p={p}: {reason}")]
pub struct InvalidParams {
    pub log_n: u8,
    pub r: u32,
    pub p: u32,
    pub reason: &'static str,
}

/// The most memory a derivation may take (1 GiB): a client refuses challenges that demand more,
/// so a hostile server cannot make it allocate without bound.
pub const MAX_SCRYPT_MEMORY: u64 = 1 << 30;

impl ScryptParams {
    /// The SCRAM server-first attribute naming this derivation.
    pub fn attribute(&self) -> String {
        format!("k=scrypt:{}:{}:{}", self.log_n, self.r, self.p)
    }

    /// Checks the parameters are accepted by scrypt and within [`MAX_SCRYPT_MEMORY`].
    pub fn validate(&self) -> Result<scrypt::Params, InvalidParams> {
        let invalid = |reason| InvalidParams { log_n: self.log_n, r: self.r, p: self.p, reason };
        let memory = 128u64
            .checked_mul(u64::from(self.r))
            .and_then(|m| m.checked_shl(u32::from(self.log_n)))
            .ok_or_else(|| invalid("too large"))?;
        if self.log_n == 0 || self.log_n > 30 || memory > MAX_SCRYPT_MEMORY {
            return Err(invalid("memory cost out of range (at most 1 GiB)"));
        }
        if self.p == 0 || self.p > 16 {
            return Err(invalid("parallelism must be 1 to 16"));
        }
        scrypt::Params::new(self.log_n, self.r, self.p).map_err(|_| invalid("rejected by scrypt"))
    }

    /// Derives SaltedPassword. Costs `128 * r * 2^log_n` bytes and noticeable CPU: call it off
    /// async threads.
    pub fn salted_password(&self, password: &[u8], salt: &[u8]) -> Result<Key, InvalidParams> {
        let params = self.validate()?;
        DERIVATIONS.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; KEY_LEN];
        scrypt::scrypt(password, salt, &params, &mut out).expect("32 bytes is a valid output length");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7914 section 12, second vector ("password", "NaCl", N=1024, r=8, p=16), first 32 bytes.
    #[test]
    fn matches_rfc7914_vector() {
        let params = ScryptParams { log_n: 10, r: 8, p: 16 };
        let key = params.salted_password(b"password", b"NaCl").unwrap();
        assert_eq!(hex::encode(key), "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
    }

    #[test]
    fn refuses_unbounded_parameters() {
        assert!(ScryptParams { log_n: 30, r: 8, p: 1 }.validate().is_err());
        assert!(ScryptParams { log_n: 10, r: 8, p: 0 }.validate().is_err());
        assert!(ScryptParams { log_n: 0, r: 8, p: 1 }.validate().is_err());
        assert!(ScryptParams::default().validate().is_ok());
    }
}
