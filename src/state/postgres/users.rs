//! Users and credentials in the database (the `users` table), for every instance: a change by
//! `ftp-actor user ...` bumps `users_version` (a trigger does, for any statement that changes
//! users), which each instance asks for at every login and every store poll, so a new password
//! or a removed user ends sessions on every instance within a poll (error 206).

use crate::state::postgres::cached;
use std::path::PathBuf;

use tokio_postgres::IsolationLevel;
use tokio_postgres::Row;

use crate::auth::ScryptParams;
use crate::auth::user_store::{Credentials, StoreError, UserRecord, UserStore};
use crate::state::users::{UserDirectory, UsersVersion};

use super::{Database, DatabaseError};

/// The `users` table as a [`UserDirectory`].
pub struct UsersTable {
    database: Database,
    /// When reading the version last failed: for [`RETRY_AFTER`] after it, a login does not
    /// wait for the database again (a host that drops packets would hold each login for the
    /// pool's connection timeout) and goes on with the users already loaded.
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long after a failed read the users already loaded are used without asking.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

impl UsersTable {
    pub fn new(database: Database) -> UsersTable {
        UsersTable { database, failed_at: std::sync::Mutex::new(None) }
    }
}

const SELECT_USERS: &str = "SELECT name, home, quota, max_files, ssh_keys, salt, scrypt_log_n, scrypt_r, scrypt_p, \
     stored_key, server_key FROM users";

const UPSERT_USER: &str = "INSERT INTO users (name, home, quota, max_files, ssh_keys, salt, scrypt_log_n, scrypt_r, \
     scrypt_p, stored_key, server_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
     ON CONFLICT (name) DO UPDATE SET home = $2, quota = $3, max_files = $4, ssh_keys = $5, salt = $6, \
     scrypt_log_n = $7, scrypt_r = $8, scrypt_p = $9, stored_key = $10, server_key = $11";

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt { path: PathBuf::from("PostgreSQL table users"), message }
}

fn record_of(row: &Row) -> Result<(String, UserRecord), StoreError> {
    let name: String = row.get("name");
    let bad = |what: &str| corrupt(format!("user {name:?}: {what}"));
    let key = |column: &str| -> Result<[u8; 32], StoreError> {
        let bytes: Vec<u8> = row.get(column);
        bytes.as_slice().try_into().map_err(|_| bad(&format!("{column} is not 32 bytes")))
    };
    let log_n: i16 = row.get("scrypt_log_n");
    let (r, p): (i32, i32) = (row.get("scrypt_r"), row.get("scrypt_p"));
    let scrypt = ScryptParams {
        log_n: u8::try_from(log_n).map_err(|_| bad("scrypt_log_n out of range"))?,
        r: u32::try_from(r).map_err(|_| bad("scrypt_r out of range"))?,
        p: u32::try_from(p).map_err(|_| bad("scrypt_p out of range"))?,
    };
    let home: String = row.get("home");
    let quota: i64 = row.get("quota");
    let max_files: Option<i64> = row.get("max_files");
    let record = UserRecord {
        home: PathBuf::from(home),
        quota: quota.max(0) as u64,
        max_files: max_files.map(|n| n.max(0) as u64),
        ssh_keys: row.get("ssh_keys"),
        credentials: Credentials {
            salt: row.get("salt"),
            scrypt,
            stored_key: key("stored_key")?,
            server_key: key("server_key")?,
        },
    };
    Ok((name, record))
}

async fn read_users(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<Result<UserStore, StoreError>, DatabaseError> {
    let rows = cached::query(client, SELECT_USERS, &[]).await?;
    Ok(rows.iter().map(record_of).collect::<Result<_, _>>().map(|users| UserStore { users }))
}

async fn write_user(
    client: &impl deadpool_postgres::GenericClient,
    name: &str,
    record: &UserRecord,
) -> Result<(), DatabaseError> {
    let home = record.home.to_str().ok_or_else(|| DatabaseError::Schema(format!("home of {name:?} is not UTF-8")))?;
    let c = &record.credentials;
    let (quota, max_files) =
        (record.quota.min(i64::MAX as u64) as i64, record.max_files.map(|n| n.min(i64::MAX as u64) as i64));
    let (log_n, r, p) = (i16::from(c.scrypt.log_n), c.scrypt.r as i32, c.scrypt.p as i32);
    cached::execute(
        client,
        UPSERT_USER,
        &[
            &name,
            &home,
            &quota,
            &max_files,
            &record.ssh_keys,
            &c.salt,
            &log_n,
            &r,
            &p,
            &c.stored_key.as_slice(),
            &c.server_key.as_slice(),
        ],
    )
    .await?;
    Ok(())
}

impl UserDirectory for UsersTable {
    fn read_if_changed(&self, known: Option<UsersVersion>) -> Result<Option<(UserStore, UsersVersion)>, StoreError> {
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|poison| poison.into_inner());
        if known.is_some() && failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Ok(None);
        }
        drop(failed_at);
        let read = self.database.blocking::<_, DatabaseError, _, _>(|mut client| async move {
            let version: i64 = cached::query_one(&client, "SELECT version FROM users_version", &[]).await?.get(0);
            if known == Some(UsersVersion::Counter(version)) {
                return Ok(None);
            }
            // One snapshot for the version and the users it numbers.
            let snapshot = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let version: i64 = cached::query_one(&snapshot, "SELECT version FROM users_version", &[]).await?.get(0);
            let users = read_users(&snapshot).await?;
            snapshot.commit().await?;
            Ok(Some(users.map(|users| (users, UsersVersion::Counter(version)))))
        });
        failed_at = self.failed_at.lock().unwrap_or_else(|poison| poison.into_inner());
        *failed_at = read.is_err().then(std::time::Instant::now);
        read?.transpose()
    }

    fn load(&self) -> Result<UserStore, StoreError> {
        self.database.blocking(|client| async move { read_users(&client).await })?
    }

    fn update(&self, change: &mut dyn FnMut(&mut UserStore) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.database.blocking::<_, DatabaseError, _, _>(|mut client| async move {
            let transaction = client.transaction().await?;
            // Writers wait for each other (readers do not), as `users.lock` makes them do.
            transaction.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").await?;
            let before = match read_users(&transaction).await? {
                Ok(users) => users,
                Err(error) => return Ok(Err(error)),
            };
            let mut after = before.clone();
            if let Err(error) = change(&mut after) {
                return Ok(Err(error));
            }
            for name in before.users.keys().filter(|name| !after.users.contains_key(*name)) {
                cached::execute(&transaction, "DELETE FROM users WHERE name = $1", &[name]).await?;
            }
            for (name, record) in &after.users {
                if before.users.get(name) != Some(record) {
                    write_user(&transaction, name, record).await?;
                }
            }
            transaction.commit().await?;
            Ok(Ok(()))
        })?
    }
}
