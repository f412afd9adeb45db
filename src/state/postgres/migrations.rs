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
    // 3: the quota ledger every instance shares (storage.backend = "s3"). `home_usage` is what
    // each home holds, kept by triggers in the same transactions that change `entries` and
    // `uploads`; `quota_leases` are the live uploads' and new directories' reservations, each
    // held by an instance (a lease of an instance whose heartbeat lapsed counts for nothing).
    r#"
    CREATE TABLE home_usage (
        home text PRIMARY KEY,
        bytes bigint NOT NULL DEFAULT 0,
        files bigint NOT NULL DEFAULT 0
    );
    INSERT INTO home_usage (home, bytes, files)
        SELECT home, sum(bytes)::bigint, sum(files)::bigint FROM (
            SELECT home, sum(CASE WHEN is_dir THEN 0 ELSE size END) AS bytes, count(*) AS files
                FROM entries GROUP BY home
            UNION ALL
            SELECT home, sum(durable), count(*) FROM uploads GROUP BY home
        ) counted GROUP BY home;
    CREATE FUNCTION ftp_actor_count(home text, bytes bigint, files bigint) RETURNS void LANGUAGE sql AS $$
        INSERT INTO home_usage AS h (home, bytes, files) VALUES (home, bytes, files)
        ON CONFLICT (home) DO UPDATE SET bytes = h.bytes + excluded.bytes, files = h.files + excluded.files;
    $$;
    CREATE FUNCTION ftp_actor_count_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            PERFORM ftp_actor_count(OLD.home, -(CASE WHEN OLD.is_dir THEN 0 ELSE OLD.size END), -1);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM ftp_actor_count(NEW.home, CASE WHEN NEW.is_dir THEN 0 ELSE NEW.size END, 1);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER entries_counted AFTER INSERT OR DELETE OR UPDATE OF size, home ON entries
        FOR EACH ROW EXECUTE FUNCTION ftp_actor_count_entry();
    CREATE FUNCTION ftp_actor_count_upload() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            PERFORM ftp_actor_count(OLD.home, -OLD.durable, -1);
        END IF;
        IF TG_OP <> 'DELETE' THEN
            PERFORM ftp_actor_count(NEW.home, NEW.durable, 1);
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER uploads_counted AFTER INSERT OR DELETE OR UPDATE OF durable, home ON uploads
        FOR EACH ROW EXECUTE FUNCTION ftp_actor_count_upload();
    CREATE TABLE quota_leases (
        id bigserial PRIMARY KEY,
        name text NOT NULL,
        instance text NOT NULL,
        -- The upload's path lock (home and path); NULL for a new directory's lease.
        path text,
        bytes bigint NOT NULL DEFAULT 0,
        files integer NOT NULL DEFAULT 0,
        -- What its holder has changed in `home_usage` so far: the part of `bytes` and `files`
        -- already counted there.
        grown_bytes bigint NOT NULL DEFAULT 0,
        grown_files bigint NOT NULL DEFAULT 0,
        UNIQUE (name, path)
    );
    "#,
    // 4: a reservation judged in one round trip. Run from the server as five statements in a
    // transaction, opening a lease took seven round trips and a reservation six, most of a
    // mkdir's or a small upload's latency; as functions, one each (docs/BENCHMARKS.md, "The
    // cluster mode"). The logic is the same: the home's row locked first, the leases of stopped
    // instances dropped, every other live lease counted.
    r#"
    CREATE FUNCTION ftp_actor_figures(p_user text, p_default_max_files bigint, p_except bigint,
        OUT o_used bigint, OUT o_files bigint, OUT o_quota bigint, OUT o_max_files bigint,
        OUT o_reserved bigint, OUT o_files_reserved bigint) LANGUAGE plpgsql AS $$
    BEGIN
        FOR attempt IN 1..2 LOOP
            SELECT h.bytes, h.files, u.quota, coalesce(u.max_files, p_default_max_files)
                INTO o_used, o_files, o_quota, o_max_files
                FROM home_usage h JOIN users u ON u.home = h.home WHERE u.name = p_user FOR UPDATE OF h;
            EXIT WHEN FOUND;
            -- A home that never held anything has no row yet: made, then locked.
            INSERT INTO home_usage (home) SELECT u.home FROM users u WHERE u.name = p_user
                ON CONFLICT (home) DO NOTHING;
        END LOOP;
        IF o_quota IS NULL THEN
            RETURN; -- not a user: every figure NULL
        END IF;
        DELETE FROM quota_leases l WHERE l.name = p_user
            AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.id = l.instance AND i.alive_until > now());
        SELECT coalesce(sum(greatest(0, l.bytes - l.grown_bytes)), 0)::bigint,
               coalesce(sum(greatest(0, l.files - l.grown_files)), 0)::bigint
            INTO o_reserved, o_files_reserved
            FROM quota_leases l WHERE l.name = p_user AND l.id <> p_except;
    END $$;
    -- A new lease of `p_user` for `p_instance`: with a file's room if `max_files` has room for
    -- one more entry (refused without one if `p_entry_only`), locking `p_path` (NULL: none).
    -- No row: not a user. `o_id` NULL: refused (an entry's: no room; an upload's: the path is
    -- locked).
    CREATE FUNCTION ftp_actor_open_lease(p_user text, p_instance text, p_path text, p_entry_only boolean,
        p_default_max_files bigint, OUT o_id bigint, OUT o_files integer, OUT o_used_files bigint,
        OUT o_max_files bigint) RETURNS SETOF record LANGUAGE plpgsql AS $$
    DECLARE
        f record;
    BEGIN
        f := ftp_actor_figures(p_user, p_default_max_files, 0);
        IF f.o_quota IS NULL THEN
            RETURN;
        END IF;
        o_used_files := f.o_files + f.o_files_reserved;
        o_max_files := f.o_max_files;
        o_files := CASE WHEN o_used_files < o_max_files THEN 1 ELSE 0 END;
        IF p_entry_only AND o_files = 0 THEN
            RETURN NEXT;
            RETURN;
        END IF;
        INSERT INTO quota_leases (name, instance, path, files) VALUES (p_user, p_instance, p_path, o_files)
            ON CONFLICT (name, path) DO NOTHING RETURNING id INTO o_id;
        RETURN NEXT;
    END $$;
    -- Lease `p_lease` of `p_user` grows to `p_bytes` if that fits beside everything else.
    -- No row: not a user; `o_granted` false: refused, with the figures it was judged on.
    CREATE FUNCTION ftp_actor_reserve(p_lease bigint, p_user text, p_bytes bigint, p_default_max_files bigint,
        OUT o_granted boolean, OUT o_used bigint, OUT o_reserved bigint, OUT o_limit bigint)
        RETURNS SETOF record LANGUAGE plpgsql AS $$
    DECLARE
        f record;
        held bigint;
        grown bigint;
    BEGIN
        f := ftp_actor_figures(p_user, p_default_max_files, p_lease);
        IF f.o_quota IS NULL THEN
            RETURN;
        END IF;
        SELECT l.bytes, l.grown_bytes INTO held, grown FROM quota_leases l WHERE l.id = p_lease;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'quota lease % is gone: this instance''s heartbeat lapsed', p_lease;
        END IF;
        o_used := f.o_used;
        o_reserved := f.o_reserved;
        o_limit := f.o_quota;
        -- What this lease would count for, next to everything else.
        o_granted := p_bytes <= held OR o_used + o_reserved + greatest(p_bytes - grown, 0) <= o_limit;
        IF o_granted THEN
            UPDATE quota_leases SET bytes = p_bytes WHERE id = p_lease;
        END IF;
        RETURN NEXT;
    END $$;
    "#,
    // 5: a directory made and judged against `max_files` in one round trip, where a lease
    // opened before, the insert and the lease's growth recorded after took three. The order
    // of locks is that of every other change of names: the parent's row (shared), the new row,
    // then the home's row through the counting trigger; the figures are read under that lock
    // with the new directory counted, and the insert is undone if they exceed `max_files`.
    // `o_made` false with NULL figures: the parent is missing or the name taken; with figures:
    // refused for `max_files` (`o_files` counted what existed or was being created before it).
    r#"
    CREATE FUNCTION ftp_actor_make_dir(p_user text, p_home text, p_path text, p_parent text, p_modified bigint,
        p_default_max_files bigint, OUT o_made boolean, OUT o_files bigint, OUT o_max_files bigint)
        LANGUAGE plpgsql AS $$
    DECLARE
        f record;
    BEGIN
        INSERT INTO entries (home, path, parent, is_dir, modified)
            SELECT p_home, p_path, p_parent, true, p_modified
            WHERE p_parent = '/' OR EXISTS (
                SELECT 1 FROM entries WHERE home = p_home AND path = p_parent AND is_dir FOR SHARE)
            ON CONFLICT (home, path) DO NOTHING;
        o_made := FOUND;
        IF NOT o_made THEN
            RETURN;
        END IF;
        f := ftp_actor_figures(p_user, p_default_max_files, 0);
        IF f.o_quota IS NULL THEN
            RAISE EXCEPTION '% is not a user in the database', p_user;
        END IF;
        o_files := f.o_files + f.o_files_reserved - 1;
        o_max_files := f.o_max_files;
        IF o_files >= o_max_files THEN
            DELETE FROM entries WHERE home = p_home AND path = p_path;
            o_made := false;
        END IF;
    END $$;
    "#,
    // 6: removing a file, removing a directory and renaming, each in one round trip, where
    // the transaction's statements took five or six. The same statements in the same order
    // (so the same locks in the same order), and the same checks in the same order. `o_status`
    // says what refused it, the same code in each function (`namespace::refusal`): 0 done,
    // 1 no such entry, 2 a directory, 3 not a directory, 4 not empty, 5 into itself, 6 taken.
    r#"
    CREATE FUNCTION ftp_actor_remove_file(p_home text, p_path text,
        OUT o_status integer, OUT o_freed bigint, OUT o_partial_remains boolean)
        LANGUAGE plpgsql AS $$
    DECLARE
        r record;
    BEGIN
        SELECT is_dir, size, object_key INTO r FROM entries WHERE home = p_home AND path = p_path FOR UPDATE;
        IF NOT FOUND THEN
            o_status := 1;
            RETURN;
        END IF;
        IF r.is_dir THEN
            o_status := 2;
            RETURN;
        END IF;
        DELETE FROM entries WHERE home = p_home AND path = p_path;
        IF r.object_key IS NOT NULL THEN
            INSERT INTO orphan_objects (object_key, upload_id) VALUES (r.object_key, '')
                ON CONFLICT (object_key) DO NOTHING;
        END IF;
        o_partial_remains := EXISTS (SELECT 1 FROM uploads WHERE home = p_home AND target = p_path);
        o_freed := r.size;
        o_status := 0;
    END $$;

    -- Whether the entry at `p_path` is a directory, its row locked until the transaction ends;
    -- NULL if there is none.
    -- (PL/pgSQL, whose plans are kept per connection: a SQL function's are made at each call.)
    CREATE FUNCTION ftp_actor_lock_entry(p_home text, p_path text) RETURNS boolean
        LANGUAGE plpgsql AS $$
    DECLARE
        found_is_dir boolean;
    BEGIN
        SELECT is_dir INTO found_is_dir FROM entries WHERE home = p_home AND path = p_path FOR UPDATE;
        RETURN found_is_dir;
    END $$;

    CREATE FUNCTION ftp_actor_remove_dir(p_home text, p_path text, p_inside text, OUT o_status integer)
        LANGUAGE plpgsql AS $$
    DECLARE
        entry_is_dir boolean := ftp_actor_lock_entry(p_home, p_path);
    BEGIN
        IF entry_is_dir IS NULL THEN
            o_status := 1;
            RETURN;
        END IF;
        IF NOT entry_is_dir THEN
            o_status := 3;
            RETURN;
        END IF;
        IF EXISTS (SELECT 1 FROM entries WHERE home = p_home AND parent = p_path
                   UNION ALL SELECT 1 FROM uploads WHERE home = p_home AND starts_with(target, p_inside)) THEN
            o_status := 4;
            RETURN;
        END IF;
        DELETE FROM entries WHERE home = p_home AND path = p_path;
        o_status := 0;
    END $$;

    CREATE FUNCTION ftp_actor_rename(p_home text, p_from text, p_to text, p_to_parent text,
        p_same boolean, p_into_itself boolean, OUT o_status integer)
        LANGUAGE plpgsql AS $$
    DECLARE
        entry_is_dir boolean := ftp_actor_lock_entry(p_home, p_from);
        parent_row record;
    BEGIN
        IF entry_is_dir IS NULL THEN
            o_status := 1;
            RETURN;
        END IF;
        IF p_same THEN
            o_status := 0;
            RETURN;
        END IF;
        IF p_into_itself THEN
            o_status := 5;
            RETURN;
        END IF;
        IF p_to_parent <> '/' THEN
            SELECT is_dir INTO parent_row FROM entries WHERE home = p_home AND path = p_to_parent FOR SHARE;
            IF NOT FOUND THEN
                o_status := 1;
                RETURN;
            END IF;
            IF NOT parent_row.is_dir THEN
                o_status := 3;
                RETURN;
            END IF;
        END IF;
        BEGIN
            UPDATE entries SET
                    path = p_to || substr(path, length(p_from) + 1),
                    parent = CASE WHEN path = p_from THEN p_to_parent ELSE p_to || substr(parent, length(p_from) + 1) END
                WHERE home = p_home AND (path = p_from OR starts_with(path, p_from || '/'));
        EXCEPTION WHEN unique_violation THEN
            o_status := 6;
            RETURN;
        END;
        IF entry_is_dir THEN
            UPDATE uploads SET target = p_to || substr(target, length(p_from) + 1)
                WHERE home = p_home AND starts_with(target, p_from || '/');
        END IF;
        o_status := 0;
    END $$;
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
