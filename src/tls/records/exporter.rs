//! The TLS exporter (RFC 8446, section 7.5) of a connection whose records we protect
//! ourselves, for the `tls-exporter` channel binding (RFC 9266) the login is bound to.
//!
//! rustls exports keying material only from its buffered connections, not from the unbuffered
//! one we drive (see [`super::handshake`]). It does hand the exporter master secret to a key
//! log, if the connection's configuration has one: [`ExporterSecret`] is a key log that keeps
//! that one secret, for that one connection, until the session takes it. The derivation is
//! then the RFC's, with rustls' HKDF and hash; a test holds it to rustls' own exporter.

use std::sync::Mutex;

use rustls::Tls13CipherSuite;
use rustls::crypto::tls13::OkmBlock;
use zeroize::Zeroizing;

/// The label rustls logs the exporter master secret under (NSS key log format).
const EXPORTER_SECRET: &str = "EXPORTER_SECRET";

/// A key log that keeps the exporter master secret of one connection, and nothing else.
#[derive(Default)]
pub struct ExporterSecret(Mutex<Option<Zeroizing<Vec<u8>>>>);

impl ExporterSecret {
    /// The secret, once the handshake has derived it (taken: asked again, `None`).
    pub fn take(&self) -> Option<Zeroizing<Vec<u8>>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

impl std::fmt::Debug for ExporterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ExporterSecret")
    }
}

impl rustls::KeyLog for ExporterSecret {
    fn will_log(&self, label: &str) -> bool {
        label == EXPORTER_SECRET
    }

    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == EXPORTER_SECRET {
            *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Zeroizing::new(secret.to_vec()));
        }
    }
}

/// TLS-Exporter(label, context, out.len()) from the exporter master secret `secret`:
/// HKDF-Expand-Label(Derive-Secret(secret, label, ""), "exporter", Hash(context), length).
pub fn export(suite: &Tls13CipherSuite, secret: &[u8], label: &[u8], context: &[u8], out: &mut [u8]) {
    let hash = suite.common.hash_provider;
    let mut derived = Zeroizing::new(vec![0u8; hash.output_len()]);
    expand_label(suite, secret, label, hash.hash(&[]).as_ref(), &mut derived);
    expand_label(suite, &derived, b"exporter", hash.hash(context).as_ref(), out);
}

/// HKDF-Expand-Label (RFC 8446, section 7.1). Every caller asks for at most a hash's length
/// with labels of a few bytes, within what HKDF and the label's one-byte lengths allow.
fn expand_label(suite: &Tls13CipherSuite, secret: &[u8], label: &[u8], context: &[u8], out: &mut [u8]) {
    const PREFIX: &[u8] = b"tls13 ";
    let length = u16::try_from(out.len()).expect("a short output").to_be_bytes();
    let label_len = [u8::try_from(PREFIX.len() + label.len()).expect("a short label")];
    let context_len = [u8::try_from(context.len()).expect("a hash")];
    let expander = suite.hkdf_provider.expander_for_okm(&OkmBlock::new(secret));
    expander
        .expand_slice(&[&length, &label_len, PREFIX, label, &context_len, context], out)
        .expect("at most 255 hash lengths");
}
