//! This process among the instances sharing a database: an id, and a heartbeat that keeps its
//! row in `instances` alive. What an instance holds (an upload it is writing) is free for the
//! others to take once its heartbeat has stopped for [`ALIVE_FOR`], so a killed instance's
//! uploads resume elsewhere within seconds, while a live one's are never taken from it.

use std::time::Duration;

use crate::state::postgres::Database;

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
    /// A new id (host, process and a random part: unique even across restarts) and its
    /// heartbeat, on the database's runtime.
    pub fn start(database: &Database) -> Instance {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
        let random: u32 = rand::random();
        let id = format!("{}-{}-{random:08x}", host.trim(), std::process::id());
        let instance = Instance { id };
        let (beating, database) = (instance.clone(), database.clone());
        database.clone().spawn(async move { beating.beat(database).await });
        instance
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    async fn beat(self, database: Database) {
        let alive_for = ALIVE_FOR.as_secs_f64();
        loop {
            let beat = async {
                let client = database.connection().await?;
                client
                    .execute(
                        "INSERT INTO instances (id, alive_until) VALUES ($1, now() + make_interval(secs => $2))
                         ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until",
                        &[&self.id, &alive_for],
                    )
                    .await?;
                // Instances long gone: their rows only grow the table.
                client.execute("DELETE FROM instances WHERE alive_until < now() - interval '1 day'", &[]).await?;
                Ok::<(), crate::state::postgres::DatabaseError>(())
            };
            if let Err(error) = beat.await {
                tracing::warn!(%error, "cannot tell the database this instance is alive; retrying");
            }
            tokio::time::sleep(BEAT_EVERY).await;
        }
    }
}
