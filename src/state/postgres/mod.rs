//! The state seam on PostgreSQL, for several instances behind one address: users and
//! credentials ([`users`]), failed logins and bans ([`failed_logins`]), the deployment's secret
//! ([`secret`]), created and upgraded by versioned migrations ([`migrations`]) when a server
//! starts. See docs/CLUSTER.md.
//!
//! [`Database`] owns a pool of connections (tokio-postgres with deadpool; docs/DEPENDENCIES.md
//! says why) driven by a runtime of its own, one thread: actix runs one single-threaded runtime
//! per arbiter, and a connection's socket must be driven whichever thread asks. Async callers
//! await a query run there ([`Database::run`]); blocking callers (the login pool, the `user`
//! commands) wait for it ([`Database::blocking`]).

pub mod cached;
pub mod failed_logins;
pub mod migrations;
pub mod quota;
pub mod secret;
pub mod tls;
pub mod users;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

use crate::background_runtime::BackgroundRuntime;
use crate::config::PostgresConfig;

/// How long a query waits for a free connection, or for a new one to be made, before it fails:
/// a database that is down makes logins fail within a login timeout, not hang.
const CONNECTION_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("state.postgres.url is not a PostgreSQL URL: {0}")]
    Url(String),
    #[error("PostgreSQL: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL: {}", described(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("PostgreSQL schema: {0}")]
    Schema(String),
    #[error("PostgreSQL client runtime: {0}")]
    Runtime(String),
    #[error("PostgreSQL over TLS: {0}")]
    Tls(String),
}

/// What the database said, with its SQLSTATE code: tokio-postgres shows an error the server
/// sent only as "db error", which tells an operator nothing (a deadlock, a violated constraint
/// and a full disk read the same).
fn described(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(said) => format!("{} (SQLSTATE {})", said.message(), said.code().code()),
        None => error.to_string(),
    }
}

/// A pool of connections to the deployment's database, with the threads that drive them.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    runtime: std::sync::Arc<BackgroundRuntime>,
}

impl Database {
    /// Connects (lazily: the first query opens the first connection) and brings the schema up
    /// to date. Blocking: call it at start, before the actors run.
    pub fn open(config: &PostgresConfig) -> Result<Database, DatabaseError> {
        let database = Database::connect(config)?;
        database.blocking(|mut client| async move { migrations::migrate(&mut client).await })?;
        Ok(database)
    }

    /// The pool alone, schema untouched (the migrations' own tests).
    pub fn connect(config: &PostgresConfig) -> Result<Database, DatabaseError> {
        let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| DatabaseError::Url(e.to_string()))?;
        let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = if config.tls_ca_file.as_os_str().is_empty() {
            if pg.get_ssl_mode() == SslMode::Require {
                return Err(DatabaseError::Tls(
                    "the URL says sslmode=require: set state.postgres.tls_ca_file to the CA that signed the database's certificate".into(),
                ));
            }
            Manager::from_config(pg, NoTls, manager_config)
        } else {
            // With a CA configured, TLS is never skipped, whatever the URL's sslmode says.
            pg.ssl_mode(SslMode::Require);
            Manager::from_config(pg, tls::RustlsConnector::from_ca_file(&config.tls_ca_file)?, manager_config)
        };
        let runtime = BackgroundRuntime::new("postgres", 1).map_err(|e| DatabaseError::Runtime(e.to_string()))?;
        let pool = {
            let _inside = runtime.handle().enter();
            Pool::builder(manager)
                .max_size(config.pool_size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECTION_WAIT))
                .create_timeout(Some(CONNECTION_WAIT))
                .recycle_timeout(Some(CONNECTION_WAIT))
                .build()
                .map_err(|e| DatabaseError::Runtime(e.to_string()))?
        };
        Ok(Database { pool, runtime: std::sync::Arc::new(runtime) })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }

    /// Runs `work` with a pooled connection on the database's runtime; awaitable from any
    /// runtime.
    pub fn run<T, W, F>(&self, work: W) -> impl Future<Output = Result<T, DatabaseError>> + Send + 'static
    where
        T: Send + 'static,
        W: FnOnce(deadpool_postgres::Object) -> F + Send + 'static,
        F: Future<Output = Result<T, DatabaseError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        let task = self.handle().spawn(async move { work(pool.get().await?).await });
        async move { task.await.map_err(|e| DatabaseError::Runtime(e.to_string()))? }
    }

    /// Runs `work` with a pooled connection and waits for it, on the calling thread (the
    /// connections' sockets are still driven by the database's runtime): only on threads that
    /// may block (the login pool, the `user` commands, start-up), never an actix arbiter's.
    /// `work` may borrow from the caller.
    pub fn blocking<T, E, W, F>(&self, work: W) -> Result<T, E>
    where
        E: From<DatabaseError>,
        W: FnOnce(deadpool_postgres::Object) -> F,
        F: Future<Output = Result<T, E>>,
    {
        self.runtime.block_on(async {
            let client = self.pool.get().await.map_err(DatabaseError::from)?;
            work(client).await
        })
    }

    /// Spawns a background task on the database's runtime (it ends with the runtime).
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle().spawn(task);
    }

    /// A pooled connection, for background tasks already on the database's runtime.
    pub async fn connection(&self) -> Result<deadpool_postgres::Object, DatabaseError> {
        Ok(self.pool.get().await?)
    }
}
