//! The deployment's secret in the database: the first instance to ask creates it, every
//! instance reads the same one (see [`crate::state::secret`]).

use crate::auth::scram::Key;
use crate::state::postgres::cached;
use crate::state::secret::SecretSource;

use super::{Database, DatabaseError};

pub struct SecretRow {
    pub database: Database,
}

impl SecretSource for SecretRow {
    fn load_or_create(&self) -> std::io::Result<Key> {
        let mut fresh = [0u8; 32];
        rand::fill(&mut fresh);
        let loaded = self.database.blocking(move |client| async move {
            cached::execute(
                &client,
                "INSERT INTO server_secret (id, secret) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                &[&fresh.as_slice()],
            )
            .await?;
            let secret: Vec<u8> =
                cached::query_one(&client, "SELECT secret FROM server_secret WHERE id = 1", &[]).await?.get(0);
            Key::try_from(secret.as_slice()).map_err(|_| DatabaseError::Schema("server_secret is not 32 bytes".into()))
        });
        loaded.map_err(std::io::Error::other)
    }
}
