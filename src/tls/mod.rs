//! TLS shared by the listeners and the client: the server's certificate (configured, or
//! generated once and kept) and the fingerprints people compare.

pub mod certificate;
pub mod fingerprint;
pub mod records;

pub use certificate::{
    GENERATED_CERT, GENERATED_KEY, TlsSetupError, certificate_paths, generate_if_missing, load_chain, native_provider,
    native_server_config, server_config,
};
pub use fingerprint::Fingerprint;
