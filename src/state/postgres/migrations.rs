//! The database schema, created and upgraded by the server at start. Migrations are numbered
//! and only appended: version N is [`MIGRATIONS`]`[N - 1]`, and `ftp_actor_schema` records the
//! versions applied. They run in one transaction under an advisory lock, so instances starting
//! together apply each version once; a database newer than the server is refused rather than
//! used by code that does not know its tables.

use super::DatabaseError;

/// Any number that other users of the database are unlikely to lock: "ftpactor" in ASCII.
const MIGRATION_LOCK: i64 = 0x6674_7061_6374_6f72;

/// Every migration, oldest first.
pub const MIGRATIONS: &[&str] = &[
    // 1: the secret, users and credentials, failed logins.
    r#"
    CREATE TABLE server_secret (
        id smallint PRIMARY KEY CHECK (id = 1),
        secret bytea NOT NULL
    );
    CREATE TABLE users (
        name text PRIMARY KEY,
        home text NOT NULL,
        quota bigint NOT NULL CHECK (quota >= 0),
        max_files bigint CHECK (max_files >= 0),
        ssh_keys text[] NOT NULL DEFAULT '{}',
        salt bytea NOT NULL,
        scrypt_log_n smallint NOT NULL,
        scrypt_r integer NOT NULL,
        scrypt_p integer NOT NULL,
        stored_key bytea NOT NULL,
        server_key bytea NOT NULL
    );
    -- Bumped by every statement that changes users, so an instance asks one number to know
    -- whether to read them again.
    CREATE TABLE users_version (
        id smallint PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL
    );
    INSERT INTO users_version VALUES (1, 0);
    CREATE FUNCTION ftp_actor_users_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE users_version SET version = version + 1 WHERE id = 1;
        RETURN NULL;
    END $$;
    CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
        FOR EACH STATEMENT EXECUTE FUNCTION ftp_actor_users_changed();
    -- Each instance's failed and successful logins, which the others replay into their own
    -- throttle.
    CREATE TABLE login_events (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        instance text NOT NULL,
        address inet NOT NULL,
        name text NOT NULL,
        failed boolean NOT NULL
    );
    CREATE INDEX login_events_at ON login_events (at);
    "#,
];

/// Brings the schema to the newest version; returns it.
pub async fn migrate(client: &mut deadpool_postgres::Client) -> Result<usize, DatabaseError> {
    let transaction = client.transaction().await?;
    transaction.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ftp_actor_schema (
                version integer PRIMARY KEY,
                applied timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let current: i32 =
        transaction.query_one("SELECT coalesce(max(version), 0) FROM ftp_actor_schema", &[]).await?.get(0);
    let current = current as usize;
    if current > MIGRATIONS.len() {
        return Err(DatabaseError::Schema(format!(
            "the database is at schema version {current}, newer than this server knows ({}): run the newer server",
            MIGRATIONS.len()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        transaction.batch_execute(sql).await?;
        let version = index as i32 + 1;
        transaction.execute("INSERT INTO ftp_actor_schema (version) VALUES ($1)", &[&version]).await?;
        tracing::info!(version, "database schema upgraded");
    }
    transaction.commit().await?;
    Ok(MIGRATIONS.len())
}
