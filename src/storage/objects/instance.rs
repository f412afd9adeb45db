//! This process among the instances sharing a database: an id, and a heartbeat that keeps its
//! row in `instances` alive. What an instance holds (an upload it is writing) is free for the
//! others to take once its heartbeat has stopped for [`ALIVE_FOR`], so a killed instance's
//! uploads resume elsewhere within seconds, while a live one's are never taken from it.

use crate::state::postgres::cached;
use std::time::Duration;

use crate::state::postgres::{Database, DatabaseError};

/// How long a beat keeps an instance alive.
pub const ALIVE_FOR: Duration = Duration::from_secs(10);

/// How often it beats: several beats per [`ALIVE_FOR`], so a slow query or two do not let it
/// lapse.
const BEAT_EVERY: Duration = Duration::from_secs(2);

/// This process's id among the instances.
#[derive(Debug, Clone)]
pub struct Instance {
    id: String,
}

impl Instance {
    /// A new id (host, process and a random part: unique even across restarts), its first
    /// beat (waited for: what it holds from now on must count as alive), and its heartbeat, on
    /// the database's runtime. Blocking: call it at start.
    pub fn start(database: &Database) -> Result<Instance, DatabaseError> {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let random: u32 = rand::random();
        let id = format!("{}-{}-{random:08x}", host.trim(), std::process::id());
        let instance = Instance { id };
        database.blocking(|client| instance.beat_once(client))?;
        let (beating, database) = (instance.clone(), database.clone());
        database.clone().spawn(async move { beating.beat(database).await });
        Ok(instance)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    async fn beat_once(&self, client: deadpool_postgres::Object) -> Result<(), DatabaseError> {
        cached::execute(
            &client,
            "INSERT INTO instances (id, alive_until) VALUES ($1, now() + make_interval(secs => $2))
                 ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until",
            &[&self.id, &ALIVE_FOR.as_secs_f64()],
        )
        .await?;
        // Instances long gone: their rows only grow the table.
        cached::execute(&client, "DELETE FROM instances WHERE alive_until < now() - interval '1 day'", &[]).await?;
        Ok(())
    }

    async fn beat(self, database: Database) {
        loop {
            tokio::time::sleep(BEAT_EVERY).await;
            let beat = async { self.beat_once(database.connection().await?).await };
            if let Err(error) = beat.await {
                tracing::warn!(%error, "cannot tell the database this instance is alive; retrying");
            }
        }
    }
}

/// SQL: is the instance named by the column `$column` alive (its heartbeat not lapsed)?
pub fn alive(column: &str) -> String {
    format!("EXISTS (SELECT 1 FROM instances WHERE instances.id = {column} AND alive_until > now())")
}

/// SQL: may instance `$3` take the upload row it is on? Nobody holds it, `$3` does, or its
/// holder stopped.
pub fn free_for_me() -> String {
    format!("(holder IS NULL OR holder = $3 OR NOT {})", alive("uploads.holder"))
}
