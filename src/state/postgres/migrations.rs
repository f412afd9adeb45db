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
    // 2: file names and interrupted uploads, for contents in object storage
    // (storage.backend = "s3"). Paths are `/a/b` in a home (`home`, the user's home as set),
    // compared byte by byte.
    r#"
    CREATE TABLE entries (
        home text NOT NULL,
        path text COLLATE "C" NOT NULL CHECK (path LIKE '/_%'),
        parent text COLLATE "C" NOT NULL,
        is_dir boolean NOT NULL,
        size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
        md5 bytea,
        object_key text,
        modified bigint NOT NULL,
        PRIMARY KEY (home, path)
    );
    CREATE INDEX entries_by_parent ON entries (home, parent, path);
    -- One multipart upload per target, kept across sessions and instances until published,
    -- removed or expired: the parts' ETags and the MD5 state after the last durable part.
    -- `holder` is the instance writing it now (see `instances`).
    CREATE TABLE uploads (
        home text NOT NULL,
        target text COLLATE "C" NOT NULL,
        object_key text NOT NULL,
        upload_id text NOT NULL DEFAULT '',
        durable bigint NOT NULL DEFAULT 0,
        md5_state bytea,
        part_etags text[] NOT NULL DEFAULT '{}',
        part_size bigint NOT NULL,
        written timestamptz NOT NULL DEFAULT now(),
        holder text,
        PRIMARY KEY (home, target)
    );
    -- Every running instance, alive while `alive_until` is ahead: an upload held by an instance
    -- that stopped beating is free for any other to take.
    CREATE TABLE instances (
        id text PRIMARY KEY,
        alive_until timestamptz NOT NULL
    );
    -- Objects no name refers to any more (a file replaced or removed, an upload restarted or
    -- expired), deleted from the bucket after a grace period by whichever instance sweeps first.
    CREATE TABLE orphan_objects (
        object_key text PRIMARY KEY,
        upload_id text NOT NULL DEFAULT '',
        since timestamptz NOT NULL DEFAULT now()
    );
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
