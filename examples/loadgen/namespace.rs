//! `loadgen namespace`: the latency of each namespace operation on one native session, one
//! after the other: mkdir, list, rename, rmdir, and rm of an empty file stored before it (the
//! store not timed), in rounds. Run against a server on local state
//! and one on the cluster's shared state (PostgreSQL), the difference of the medians is what
//! the shared state adds to an operation (`bench/cluster.sh`).

use std::time::{Duration, Instant};

use anyhow::Result;
use ftp_actor::client::{Client, NoProgress};

/// The operations timed, in the order each round runs them.
const OPERATIONS: [&str; 5] = ["mkdir", "list", "rename", "rmdir", "rm"];

/// Runs `rounds` rounds (a few unmeasured first) and prints each operation's median and 90th
/// percentile in microseconds.
pub async fn namespace(client: &mut Client, rounds: usize) -> Result<String> {
    const WARM_UP: usize = 20;
    let mut timings: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds); OPERATIONS.len()];
    let empty = tempfile::NamedTempFile::new()?;
    for round in 0..WARM_UP + rounds {
        let (name, renamed) = (format!("ns-{round}"), format!("ns-{round}-renamed"));
        let mut took = [Duration::ZERO; OPERATIONS.len()];
        let started = Instant::now();
        client.mkdir(&name).await?;
        took[0] = started.elapsed();
        let started = Instant::now();
        client.list(None).await?;
        took[1] = started.elapsed();
        let started = Instant::now();
        client.rename(&name, &renamed).await?;
        took[2] = started.elapsed();
        let started = Instant::now();
        client.rmdir(&renamed).await?;
        took[3] = started.elapsed();
        client.put(empty.path(), &name, &NoProgress).await?;
        let started = Instant::now();
        client.remove(&name).await?;
        took[4] = started.elapsed();
        if round >= WARM_UP {
            for (all, one) in timings.iter_mut().zip(took) {
                all.push(one);
            }
        }
    }
    let mut out = format!("rounds={rounds}");
    for (operation, mut all) in OPERATIONS.iter().zip(timings) {
        all.sort();
        let at = |fraction: f64| all[((all.len() - 1) as f64 * fraction) as usize].as_micros();
        out.push_str(&format!(" {operation}_median_us={} {operation}_p90_us={}", at(0.5), at(0.9)));
    }
    Ok(out)
}
