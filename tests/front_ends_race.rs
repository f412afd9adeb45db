//! One user's sessions over every front end at once, racing on the same names through the
//! real binary: two FTP sessions (ftplib) and two SFTP sessions (paramiko) driven by
//! `tests/front_ends_race.py`, and two native sessions (the client library) in this process.
//! Each makes random uploads (whole, appended, resumed, cut by ABOR or a dropped connection),
//! removals, renames over other names, and directories made and removed.
//!
//! The property tests (`quota_interleavings`, `sftp_interleavings`, `service`) cover every
//! interleaving of one front end's steps without sockets; this one covers what they cannot:
//! the front ends' own request handling, real connections cut at any point, and all three
//! racing on one ledger. Between rounds (no client operation running, though the server may
//! still be ending a cut upload) the home must hold no more than the quota and `max_files`; at
//! the end the quota must be exact: what the disk holds, the free bytes accepted, one byte
//! more refused. The seed is printed; `FRONT_ENDS_RACE_SEED=N` repeats a run's operations.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use common::binary::{Launch, Served};
use common::random_bytes;
use ftp_actor::auth::UserStore;
use ftp_actor::client::{Client, ClientError, NoProgress, Trust};
use ftp_actor::net::{ErrorCode, Request, Response};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const USER: &str = "alice";
const PASSWORD: &str = "pw";
/// Room for two uploads past the first 1 MiB block, so the front ends' block-by-block
/// reservations race too.
const LIMIT: u64 = 2_500_000;
const MAX_FILES: u64 = 8;
const ROUNDS: usize = 8;
/// Operations per session per round.
const OPS: usize = 6;
/// What every session races on (the Python driver is given these too).
const NAMES: [&str; 5] = ["a", "b", "c", "d/x", "d/y"];
const DIRS: [&str; 2] = ["d", "e"];
/// Upload sizes: mostly small, some past the server's first 1 MiB block.
const SIZES: [u64; 7] = [0, 1, 4_000, 60_000, 300_000, 700_000, 1_300_000];

/// Bytes and entries under `home`, each file or directory once (by inode, so a partial renamed
/// to its name during the walk counts once), read while the server may still be ending a cut
/// upload. No client operation runs meanwhile, so nothing is removed during the walk but what
/// a publish replaces, which existed together with its replacement: the sum is at most what
/// the home held at some instant.
fn home_usage(home: &Path) -> (u64, u64) {
    fn walk(dir: &Path, seen: &mut HashSet<u64>, bytes: &mut u64) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
            if !seen.insert(meta.ino()) {
                continue;
            }
            if meta.is_dir() {
                walk(&entry.path(), seen, bytes);
            } else {
                *bytes += meta.len();
            }
        }
    }
    let (mut seen, mut bytes) = (HashSet::new(), 0);
    walk(home, &mut seen, &mut bytes);
    (bytes, seen.len() as u64)
}

/// A failure that is a refusal the server may rightly give here (a missing or busy name, a
/// directory in the way, the quota, entries), not a broken session or protocol.
fn refused(error: &ClientError) -> bool {
    error.code().is_some_and(|code| code != ErrorCode::Internal)
}

struct NativeSession {
    client: Client,
    rng: StdRng,
    scratch: std::path::PathBuf,
    refusals: usize,
}

async fn native_login(served: &Served, trust: &Trust) -> Client {
    let mut client = Client::connect(served.native.as_str(), trust, |_| {}).await.unwrap();
    client.login(USER, PASSWORD).await.unwrap();
    client
}

impl NativeSession {
    /// One random operation. Returns an error only for what no refusal explains.
    async fn operation(&mut self, served: &Served, trust: &Trust) -> Result<(), String> {
        let name = NAMES[self.rng.random_range(0..NAMES.len())];
        let size = SIZES[self.rng.random_range(0..SIZES.len())];
        let outcome = match self.rng.random_range(0..7) {
            0 | 1 => {
                let local = self.scratch.join("upload");
                std::fs::write(&local, random_bytes(size as usize, self.rng.random())).unwrap();
                self.client.put(&local, name, &NoProgress).await.map(drop)
            }
            2 => {
                // An upload whose connection drops after half its data.
                self.client.send(Request::Put { path: name.into(), size }).await.unwrap();
                match self.client.recv().await {
                    Ok(Response::PutReady { .. }) => {
                        let half = random_bytes(size as usize / 2, self.rng.random());
                        self.client.send(Request::Data { bytes: half.into() }).await.unwrap();
                    }
                    Ok(Response::Error { .. }) => {}
                    other => return Err(format!("native: a put answered {other:?}")),
                }
                let fresh = native_login(served, trust).await;
                drop(std::mem::replace(&mut self.client, fresh));
                Ok(())
            }
            3 => self.client.remove(name).await.map(drop),
            4 => {
                let to = NAMES[self.rng.random_range(0..NAMES.len())];
                self.client.rename(name, to).await
            }
            5 => self.client.mkdir(DIRS[self.rng.random_range(0..DIRS.len())]).await,
            _ => self.client.rmdir(DIRS[self.rng.random_range(0..DIRS.len())]).await,
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(error) if refused(&error) => {
                self.refusals += 1;
                Ok(())
            }
            Err(error) => Err(format!("native: {error}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_front_end_racing_on_one_quota_never_passes_it_and_ends_exact() {
    let seed: u64 = std::env::var("FRONT_ENDS_RACE_SEED").map_or_else(|_| rand::random(), |s| s.parse().unwrap());
    println!("seed {seed} (FRONT_ENDS_RACE_SEED={seed} repeats the operations)");
    let config = "max_sessions_per_user = 20\n[ftp]\nallow_plaintext_login = true\n";
    let served = Served::start_with_args(Launch::alice(config, true), &["--sftp-listen", "127.0.0.1:0"]);
    UserStore::update(&served.data_dir(), |store| {
        let user = store.user_mut(USER)?;
        user.quota = LIMIT;
        user.max_files = Some(MAX_FILES);
        Ok(())
    })
    .unwrap();
    let trust = served.trust();
    let home = served.home(USER);
    let mut watcher = native_login(&served, &trust).await;
    common::wait_for_quota(&mut watcher, |_, limit| limit == LIMIT).await;

    let port = |address: &Option<String>| address.as_ref().unwrap().rsplit(':').next().unwrap().to_string();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/front_ends_race.py");
    let mut driver = tokio::process::Command::new("/usr/bin/python3")
        .args([script, &port(&served.ftp), &port(&served.sftp), USER, PASSWORD, &seed.to_string()])
        .args([OPS.to_string(), NAMES.join(","), DIRS.join(",")])
        .arg(SIZES.map(|size| size.to_string()).join(","))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("/usr/bin/python3 runs (with paramiko: .ci/run installs python3-paramiko)");
    let mut to_driver = driver.stdin.take().unwrap();
    let mut from_driver = BufReader::new(driver.stdout.take().unwrap()).lines();

    let mut natives = Vec::new();
    for n in 0..2u64 {
        let scratch = served.dir.path().join(format!("native-{n}"));
        std::fs::create_dir_all(&scratch).unwrap();
        let client = native_login(&served, &trust).await;
        natives.push(NativeSession { client, rng: StdRng::seed_from_u64(seed ^ n), scratch, refusals: 0 });
    }

    let (mut most_bytes, mut most_entries) = (0, 0);
    for round in 0..ROUNDS {
        to_driver.write_all(b"go\n").await.unwrap();
        let natives_round = futures::future::join_all(natives.iter_mut().map(|session| async {
            for _ in 0..OPS {
                session.operation(&served, &trust).await?;
            }
            Ok::<(), String>(())
        }));
        for outcome in natives_round.await {
            outcome.unwrap_or_else(|error| panic!("round {round}, seed {seed}: {error}"));
        }
        assert_eq!(from_driver.next_line().await.unwrap().as_deref(), Some("done"), "the driver ended early");
        let (bytes, entries) = home_usage(&home);
        assert!(bytes <= LIMIT, "round {round}, seed {seed}: the home holds {bytes} bytes, over {LIMIT}");
        assert!(entries <= MAX_FILES, "round {round}, seed {seed}: {entries} entries, over {MAX_FILES}");
        (most_bytes, most_entries) = (most_bytes.max(bytes), most_entries.max(entries));
    }
    drop(to_driver);
    let report = from_driver.next_line().await.unwrap().expect("the driver's report");
    assert!(!report.contains("\"unexpected\": [\""), "seed {seed}: {report}");
    println!("most between rounds: {most_bytes} bytes, {most_entries} entries");
    println!("refused: native {:?}; {report}", natives.iter().map(|s| s.refusals).collect::<Vec<_>>());
    for session in natives {
        session.client.quit().await.unwrap();
    }
    assert!(driver.wait().await.unwrap().success());

    // Every session has ended; the ledger settles to what the disk holds, and is exact.
    let (bytes, entries) = home_usage(&home);
    let settled = common::wait_for_quota(&mut watcher, |used, _| used == bytes).await;
    let report = watcher.quota_report().await.unwrap();
    assert_eq!((settled.0, report.files), (bytes, entries), "seed {seed}: the ledger against the disk");
    if entries == MAX_FILES {
        // Room for one more entry, for the exactness check below.
        let file = NAMES.iter().find(|name| home.join(name).is_file()).expect("a file at the top");
        watcher.remove(file).await.unwrap();
    }
    let (used, _) = common::wait_for_quota(&mut watcher, |used, _| used == home_usage(&home).0).await;
    let free = LIMIT - used;
    let local = served.dir.path().join("exact");
    std::fs::write(&local, random_bytes(free as usize + 1, 9)).unwrap();
    let over = watcher.put(&local, "exact", &NoProgress).await.unwrap_err();
    assert_eq!(over.code(), Some(ErrorCode::QuotaExceeded), "seed {seed}: one byte over the quota: {over}");
    std::fs::write(&local, random_bytes(free as usize, 9)).unwrap();
    watcher.put(&local, "exact", &NoProgress).await.unwrap();
    assert_eq!(home_usage(&home).0, LIMIT);
}
