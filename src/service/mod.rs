//! The one place where file operations happen, whatever the wire: logins once the password is
//! proven, paths, listings, directories, quota, uploads and downloads. Every front end (the
//! native session, the FTP session) is a translator between its wire and this service, so a
//! rule (a path in use, a resume, the quota kept with each change) holds the same for all.
//!
//! It speaks [`WireError`](crate::net::WireError): a stable code and a message that names the
//! path as the user typed it. It calls the actors (QuotaActor, the disk pool) and the storage
//! code; it holds no connection and knows no wire. See docs/ARCHITECTURE.md.

mod download;
pub mod error;
pub mod expiry;
pub mod files;
pub mod login;
pub mod upload;

pub use files::{EntryChange, ListingPages, Removed, UserFiles};
pub use login::{LoggedIn, LoginRefused, complete_login};
pub use upload::{FreshUpload, Upload, begin_fresh, open_sized, open_stream};
