//! Partial uploads nobody resumes expire: an upload interrupted and never taken up again
//! would otherwise hold its bytes in the user's quota, and the disk, for ever. Every
//! [`SWEEP_EVERY`] (soon after the server starts, and at each SIGHUP), each partial last
//! written more than
//! `partial_expiry_days` ago is removed through the file service, as the user's own `rm`
//! would remove it: under the path's upload lock, so an upload that takes it up at that moment
//! is never cut, with the quota settled and the removal logged.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::actors::Services;
use crate::actors::quota::{KnownUsers, QuotaUser};
use crate::net::ErrorCode;

use super::files::UserFiles;

/// How often the homes are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How long the first sweep waits for the quota actor to know the users, asking once a second.
const FIRST_SWEEP_PATIENCE: u32 = 30;

/// How old a partial upload may grow: `partial_expiry_days`; `None` if it is 0 (never).
pub fn max_age(services: &Services) -> Option<Duration> {
    let days = services.config.partial_expiry_days;
    (days > 0).then(|| Duration::from_secs(days * 86_400))
}

/// Sweeps every home now and then every [`SWEEP_EVERY`], for as long as the server runs; does
/// nothing if `partial_expiry_days` is 0.
pub async fn keep_expiring_partials(services: Services) {
    let Some(max_age) = max_age(&services) else { return };
    for _ in 0..FIRST_SWEEP_PATIENCE {
        if services.quota.send(KnownUsers).await.is_ok_and(|users| !users.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    loop {
        expire_partials(&services, max_age).await;
        tokio::time::sleep(SWEEP_EVERY).await;
    }
}

/// Removes, in every known home, the partial uploads last written more than `max_age` ago;
/// returns how many were removed and the bytes they freed.
pub async fn expire_partials(services: &Services, max_age: Duration) -> (u64, u64) {
    let users = services.quota.send(KnownUsers).await.unwrap_or_default();
    let mut total = (0, 0);
    for user in users {
        let (count, bytes) = expire_in_home(services, user, max_age).await;
        total = (total.0 + count, total.1 + bytes);
    }
    total
}

async fn expire_in_home(services: &Services, user: QuotaUser, max_age: Duration) -> (u64, u64) {
    let (homes, home, name) = (services.homes.clone(), user.home.clone(), user.name.clone());
    let opened = services.disk.run("open home", move || homes.open(&home, &name)).await;
    let store = match opened {
        Ok(Ok(store)) => store,
        _ => return (0, 0),
    };
    let files = Arc::new(UserFiles::new(services.clone(), user.name.clone(), store, user.home.clone()));
    let Ok(partials) = files.partials().await else { return (0, 0) };
    let Some(cutoff) = SystemTime::now().checked_sub(max_age) else { return (0, 0) };
    let mut removed = (0, 0);
    for partial in partials.into_iter().filter(|partial| partial.modified < cutoff) {
        let target = partial.target.to_string();
        match files.remove_partial(partial.target, Some(cutoff), target.clone()).await {
            Ok(freed) => {
                let days = partial.modified.elapsed().map_or(0, |age| age.as_secs() / 86_400);
                tracing::info!(user = %user.name, path = %target, bytes = freed, days, "expired partial upload removed");
                removed = (removed.0 + 1, removed.1 + freed);
            }
            // Taken up again since it was found, or gone: it is not stale.
            Err(error) if matches!(error.code, ErrorCode::InUse | ErrorCode::NotFound) => {}
            Err(error) => {
                tracing::warn!(user = %user.name, path = %target, %error, "cannot remove an expired partial upload")
            }
        }
    }
    removed
}
