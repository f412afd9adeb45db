//! SCRAM (RFC 5802) message arithmetic, independent of the key derivation.
//!
//! The RFC derives `SaltedPassword` with PBKDF2; we use scrypt (memory-hard) instead, and the
//! only trace of that choice in the exchanged strings is the server-first attribute that names
//! the derivation's parameters: `i=4096` for PBKDF2 (so RFC 7677's test vector applies
//! unchanged), `k=scrypt:LOG_N:R:P` for ours. Everything after `SaltedPassword` is the RFC's
//! HMAC-SHA-256 arithmetic.
//!
//! The server stores only `StoredKey` and `ServerKey`: neither one logs in by itself
//! (`StoredKey` is a hash of the key a client must prove it has; `ServerKey` only lets the
//! server prove itself).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of every SCRAM-SHA-256 key and signature.
pub const KEY_LEN: usize = 32;

/// A 32-byte SCRAM key or signature.
pub type Key = [u8; KEY_LEN];

type HmacSha256 = hmac::Hmac<Sha256>;

fn hmac(key: &[u8], message: &[u8]) -> Key {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn sha256(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

fn xor(a: &Key, b: &Key) -> Key {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// `ClientKey = HMAC(SaltedPassword, "Client Key")`.
pub fn client_key(salted_password: &Key) -> Key {
    hmac(salted_password, b"Client Key")
}

/// `StoredKey = H(ClientKey)`.
pub fn stored_key(client_key: &Key) -> Key {
    sha256(client_key)
}

/// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
pub fn server_key(salted_password: &Key) -> Key {
    hmac(salted_password, b"Server Key")
}

/// What the server keeps for a user: nothing here lets anyone log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerKeys {
    pub stored_key: Key,
    pub server_key: Key,
}

impl ServerKeys {
    pub fn from_salted_password(salted_password: &Key) -> ServerKeys {
        ServerKeys { stored_key: stored_key(&client_key(salted_password)), server_key: server_key(salted_password) }
    }
}

/// The channel binding of a login (RFC 5802 section 6, RFC 9266): the GS2 header's flag and
/// the binding data, which the client's proof and the server's signature both cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelBinding {
    /// `n`: the login is not bound to the connection (no TLS, or a client that cannot bind).
    Unbound,
    /// `p=tls-exporter`: bound to the TLS session by 32 bytes of its exported keying material.
    TlsExporter([u8; KEY_LEN]),
}

/// The name of the binding in the protocol and in the GS2 header (RFC 9266).
pub const TLS_EXPORTER: &str = "tls-exporter";

/// The TLS exporter label RFC 9266 defines (used with an empty context, 32 bytes).
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

impl ChannelBinding {
    /// The `c=` attribute of client-final: base64 of the GS2 header and the binding data.
    pub fn attribute(&self) -> String {
        match self {
            ChannelBinding::Unbound => format!("c={}", BASE64.encode(b"n,,")),
            ChannelBinding::TlsExporter(data) => {
                let mut input = format!("p={TLS_EXPORTER},,").into_bytes();
                input.extend_from_slice(data);
                format!("c={}", BASE64.encode(input))
            }
        }
    }
}

/// The strings both sides sign: client-first-bare, server-first and client-final without proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub user: String,
    pub client_nonce: String,
    /// client nonce followed by the server's nonce
    pub nonce: String,
    pub salt: Vec<u8>,
    /// `i=4096` (PBKDF2) or `k=scrypt:LOG_N:R:P`
    pub kdf_attribute: String,
    pub channel_binding: ChannelBinding,
}

impl Exchange {
    /// `AuthMessage = client-first-bare "," server-first "," client-final-without-proof`.
    ///
    /// The user name is sent unescaped: names are restricted to `[A-Za-z0-9._-]`, which has no
    /// character that RFC 5802's saslname escapes.
    pub fn auth_message(&self) -> String {
        format!(
            "n={},r={},r={},s={},{},{},r={}",
            self.user,
            self.client_nonce,
            self.nonce,
            BASE64.encode(&self.salt),
            self.kdf_attribute,
            self.channel_binding.attribute(),
            self.nonce
        )
    }
}

/// `ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage)`.
pub fn client_proof(salted_password: &Key, auth_message: &str) -> Key {
    let client_key = client_key(salted_password);
    let signature = hmac(&stored_key(&client_key), auth_message.as_bytes());
    xor(&client_key, &signature)
}

/// `ServerSignature = HMAC(ServerKey, AuthMessage)`.
pub fn server_signature(server_key: &Key, auth_message: &str) -> Key {
    hmac(server_key, auth_message.as_bytes())
}

/// Checks a ClientProof against the stored key, in constant time.
pub fn verify_client_proof(stored_key: &Key, auth_message: &str, proof: &[u8]) -> bool {
    let Ok(proof) = <&Key>::try_from(proof) else {
        return false;
    };
    let signature = hmac(stored_key, auth_message.as_bytes());
    let recovered_client_key = xor(proof, &signature);
    sha256(&recovered_client_key).ct_eq(stored_key).into()
}

/// Checks the server's signature on the client side, in constant time.
pub fn verify_server_signature(server_key: &Key, auth_message: &str, signature: &[u8]) -> bool {
    server_signature(server_key, auth_message).ct_eq(signature).into()
}

/// A nonce is printable ASCII without `,` (RFC 5802 `printable`), 16 to 128 characters.
pub fn is_valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len()) && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// A fresh random nonce: 24 random bytes, base64 (no `,` in that alphabet).
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil", PBKDF2 with 4096 iterations.
    #[test]
    fn rfc7677_scram_sha256_test_vector() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pencil", &salt, 4096, &mut salted);

        let exchange = Exchange {
            user: "user".into(),
            client_nonce: "rOprNGfwEbeRWgbNEkqO".into(),
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
            salt,
            kdf_attribute: "i=4096".into(),
            channel_binding: ChannelBinding::Unbound,
        };
        let auth_message = exchange.auth_message();
        assert_eq!(
            auth_message,
            "n=user,r=rOprNGfwEbeRWgbNEkqO,\
             r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,\
             c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        );

        let proof = client_proof(&salted, &auth_message);
        assert_eq!(BASE64.encode(proof), "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");

        let keys = ServerKeys::from_salted_password(&salted);
        assert!(verify_client_proof(&keys.stored_key, &auth_message, &proof));
        let signature = server_signature(&keys.server_key, &auth_message);
        assert_eq!(BASE64.encode(signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        assert!(verify_server_signature(&keys.server_key, &auth_message, &signature));
    }

    /// A bound login signs the GS2 header and the binding data: another TLS session (other
    /// data) or an unbound exchange gives another AuthMessage, so the proof does not carry over.
    #[test]
    fn the_binding_is_part_of_what_both_sides_sign() {
        let exchange = |channel_binding| Exchange {
            user: "u".into(),
            client_nonce: "c".repeat(24),
            nonce: "c".repeat(48),
            salt: vec![1; 16],
            kdf_attribute: "k=scrypt:6:8:1".into(),
            channel_binding,
        };
        let bound = exchange(ChannelBinding::TlsExporter([7; KEY_LEN])).auth_message();
        let mut expected = b"p=tls-exporter,,".to_vec();
        expected.extend_from_slice(&[7; KEY_LEN]);
        assert!(bound.contains(&format!(",c={},", BASE64.encode(&expected))), "{bound}");
        assert!(exchange(ChannelBinding::Unbound).auth_message().contains(",c=biws,"));
        let salted = [3u8; KEY_LEN];
        let keys = ServerKeys::from_salted_password(&salted);
        let proof = client_proof(&salted, &bound);
        assert!(verify_client_proof(&keys.stored_key, &bound, &proof));
        for other in [ChannelBinding::TlsExporter([8; KEY_LEN]), ChannelBinding::Unbound] {
            assert!(!verify_client_proof(&keys.stored_key, &exchange(other).auth_message(), &proof));
        }
    }

    #[test]
    fn a_wrong_proof_or_wrong_length_fails() {
        let salted = [7u8; KEY_LEN];
        let keys = ServerKeys::from_salted_password(&salted);
        let mut proof = client_proof(&salted, "m");
        assert!(verify_client_proof(&keys.stored_key, "m", &proof));
        assert!(!verify_client_proof(&keys.stored_key, "other message", &proof));
        proof[0] ^= 1;
        assert!(!verify_client_proof(&keys.stored_key, "m", &proof));
        assert!(!verify_client_proof(&keys.stored_key, "m", &proof[..31]));
    }

    #[test]
    fn nonces_are_valid_and_distinct() {
        let (a, b) = (new_nonce(), new_nonce());
        assert!(is_valid_nonce(&a) && is_valid_nonce(&b));
        assert_ne!(a, b);
        assert!(!is_valid_nonce("short"));
        assert!(!is_valid_nonce("has,a,comma,in,it,here"));
        assert!(!is_valid_nonce("has a space in it here"));
    }
}
