//! Files inside homes: the storage seam ([`store`]), its local implementation ([`LocalStore`]:
//! the path jail, cap-std operations, partial uploads, downloads), and the digests kept beside
//! it. Blocking code, run on the disk pool; no actors here.

pub mod digest_index;
pub mod download;
pub mod error;
pub mod hashing;
pub mod home_store;
pub mod jail;
pub mod list_page;
pub mod local_store;
pub mod name_lock;
pub mod objects;
pub mod partial;
mod regular_file;
pub mod resume_states;
mod stamped_entries;
pub mod store;
pub mod stream_start;

pub use digest_index::DigestIndex;
pub use download::{Download, file_md5};
pub use error::StorageError;
pub use hashing::{Md5Digest, hash_prefix, md5_of};
pub use home_store::{HomeDownload, HomeStore, HomeUpload, Homes};
pub use jail::{PathLimits, VirtualPath};
pub use list_page::Listing;
pub use local_store::{HomeUsage, LocalStore, PartialFound, RemovedFile};
pub use partial::{PartialUpload, PublishFailed, PublishedUpload};
pub(crate) use regular_file::open_for_reading;
pub use resume_states::ResumeStates;
pub use store::{DownloadSession, FileStore, UploadSession};
pub use stream_start::{StreamRequest, StreamStart};
