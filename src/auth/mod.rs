//! Authentication: SCRAM arithmetic, scrypt derivation and the user store. No actors here.

pub mod channel_binding;
pub mod kdf;
pub mod login_cache;
pub mod scram;
pub mod ssh_keys;
pub mod throttle;
pub mod user_store;

pub use kdf::ScryptParams;
pub use user_store::{Credentials, UserRecord, UserStore};
