//! The storage seam on object storage, for several instances serving the same files
//! (`storage.backend = "s3"`, docs/CLUSTER.md). File contents are immutable objects under
//! generated keys in an S3-compatible bucket; names, directories, sizes and MD5s are rows in
//! the PostgreSQL state ([`namespace`]), so a listing costs no LIST request, a rename of a file
//! or of a whole directory is one transaction that never replaces, and a download reads the
//! object it started on even if the name is replaced meanwhile. An upload is a multipart upload
//! kept open across sessions and instances ([`upload`]); objects no name refers to any more
//! are deleted after a grace period ([`sweeper`]).
//!
//! [`ObjectStorage`] is the deployment's bucket and database, shared by every home; an
//! [`ObjectHome`] is one user's view of it, the [`crate::storage::FileStore`] the file service
//! uses. Every call blocks (the disk pool runs them), waiting on a runtime of its own that
//! drives the HTTP connections.

pub mod download;
pub mod home;
pub mod instance;
pub mod namespace;
pub mod sweeper;
pub mod upload;

use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, ObjectStoreExt, RetryConfig};

use crate::background_runtime::BackgroundRuntime;
use crate::config::S3Config;
use crate::state::postgres::{Database, DatabaseError};

use super::error::StorageError;
use super::local_store::HomeUsage;

pub use home::ObjectHome;
pub use instance::Instance;

/// Bytes per part of a multipart upload, except the last: above the 5 MiB S3 requires, small
/// enough that an interrupted upload loses little (what follows the last whole part is sent
/// again on resume), and a 1 GiB file is 128 parts of the 10,000 allowed.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;

/// The largest file an upload can make: 10,000 parts.
pub const MAX_OBJECT: u64 = PART_SIZE * 10_000;

/// HTTP threads: they drive the parts an upload has in flight (`upload::PARTS_IN_FLIGHT`) while
/// the disk worker gathers the next one; sending a part is network work, not CPU.
const CLIENT_THREADS: usize = 2;

/// The deployment's bucket and database, shared by every home on this instance.
pub struct ObjectStorage {
    pub(crate) bucket: AmazonS3,
    pub(crate) database: Database,
    pub(crate) runtime: BackgroundRuntime,
    /// Prepended to every generated key.
    prefix: String,
    /// This process, as the holder of the uploads it writes.
    pub instance: Instance,
    /// The data directory relative homes are in (see [`home_key`]).
    data_dir: std::path::PathBuf,
    /// `max_files` of a user whose row sets none: a new directory is judged against it where
    /// it is made (`ObjectHome::mkdir`).
    default_max_files: u64,
}

impl std::fmt::Debug for ObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStorage").field("prefix", &self.prefix).field("instance", &self.instance.id()).finish()
    }
}

impl ObjectStorage {
    /// The client for `config`'s bucket (no request is made yet) over `database`; starts this
    /// instance's heartbeat and the sweeper of unreferenced objects.
    pub fn open(
        config: &S3Config,
        database: Database,
        data_dir: &std::path::Path,
        default_max_files: u64,
    ) -> Result<Arc<ObjectStorage>, StorageError> {
        // The HTTP client's TLS (for https endpoints) takes the process's default provider:
        // ring, as everywhere else here. Already installed is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_endpoint(&config.endpoint)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            // Before the settings below: it replaces the client options they write into.
            .with_client_options(ClientOptions::new().with_connect_timeout(Duration::from_secs(5)))
            .with_allow_http(config.endpoint.starts_with("http://"))
            // Path-style URLs (`endpoint/bucket/key`): what S3-compatible servers all take.
            .with_virtual_hosted_style_request(false)
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..RetryConfig::default()
            });
        if !config.access_key_id.is_empty() {
            builder =
                builder.with_access_key_id(&config.access_key_id).with_secret_access_key(&config.secret_access_key);
        }
        let bucket = builder.build().map_err(|e| StorageError::Remote(format!("object storage: {e}")))?;
        let runtime = BackgroundRuntime::new("objects", CLIENT_THREADS)?;
        let instance = Instance::start(&database)?;
        let storage = Arc::new(ObjectStorage {
            bucket,
            database,
            runtime,
            prefix: config.prefix.trim_matches('/').to_string(),
            instance,
            data_dir: data_dir.to_path_buf(),
            default_max_files,
        });
        sweeper::start(&storage);
        Ok(storage)
    }

    /// Asks the bucket for a key that does not exist: fails if the endpoint, the bucket or the
    /// credentials are wrong, so a misconfigured server says so at start, not at a first upload.
    pub fn check(&self) -> Result<(), StorageError> {
        let probe = object_store::path::Path::from(format!("{}/.probe", self.prefix));
        match self.runtime.block_on(self.bucket.head(&probe)) {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// `user`'s files: the rows under `home` (the user's home as set).
    pub fn home(self: &Arc<Self>, home: &std::path::Path, user: &str) -> ObjectHome {
        ObjectHome::new(self.clone(), home_key(&self.data_dir, home), user.to_string())
    }

    /// Runs `work` with a pooled connection, waiting on this (disk pool) thread.
    pub(crate) fn db<T, W, F>(&self, work: W) -> Result<T, StorageError>
    where
        W: FnOnce(deadpool_postgres::Object) -> F,
        F: std::future::Future<Output = Result<T, StorageError>>,
    {
        self.database.blocking(work)
    }

    /// A new, never used object key.
    pub(crate) fn new_key(&self) -> object_store::path::Path {
        let random: [u8; 16] = rand::random();
        let key = hex::encode(random);
        if self.prefix.is_empty() {
            object_store::path::Path::from(key)
        } else {
            object_store::path::Path::from(format!("{}/{key}", self.prefix))
        }
    }

    /// What `home` holds as the quota counts it: every file's bytes and every entry, with the
    /// interrupted uploads' durable bytes and entries.
    pub fn usage(&self, home: &std::path::Path) -> Result<HomeUsage, StorageError> {
        home_usage(&self.database, &self.data_dir, home)
    }
}

/// The name of a home in the database: the user's home as set (`homes/alice` by default,
/// relative to the data directory; an absolute path if given so), the same on every instance
/// whatever each one's data directory.
pub fn home_key(data_dir: &std::path::Path, home: &std::path::Path) -> String {
    home.strip_prefix(data_dir).unwrap_or(home).to_string_lossy().into_owned()
}

/// What the home named `home` holds in `database`, as the quota counts it (for tools that
/// need no bucket: `ftp-actor user list`).
pub fn home_usage(
    database: &Database,
    data_dir: &std::path::Path,
    home: &std::path::Path,
) -> Result<HomeUsage, StorageError> {
    let home = home_key(data_dir, home);
    database.blocking(|client| async move { namespace::usage(&client, &home).await })
}

impl From<DatabaseError> for StorageError {
    fn from(error: DatabaseError) -> StorageError {
        StorageError::Remote(error.to_string())
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(error: tokio_postgres::Error) -> StorageError {
        StorageError::Remote(DatabaseError::Query(error).to_string())
    }
}

impl From<object_store::Error> for StorageError {
    fn from(error: object_store::Error) -> StorageError {
        StorageError::Remote(format!("object storage: {error}"))
    }
}
