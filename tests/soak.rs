//! Soak test, ignored by default: many clients doing random operations while the QuotaActor,
//! the AuthActor and disk workers are made to fail at random. At the end the invariants hold:
//! every complete file matches its source's MD5, quota usage equals the disk, no reservation
//! is orphaned, no worker thread is lost.
//!
//! Run: `SOAK_SECS=120 cargo test --release --test soak -- --ignored --nocapture`
//! (`SOAK_SEED` picks the random sequence; the seed is printed.)

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ftp_actor::actors::panic_guard::InjectPanic;
use ftp_actor::actors::quota::Snapshot;
use ftp_actor::client::{Client, ClientError, NoProgress};
use tokio::sync::Mutex;

const SOURCES: usize = 6;
const USERS: [(&str, u64); 3] = [("ann", 6 << 20), ("bob", 20 << 20), ("cid", 40 << 20)];
const CLIENTS: usize = 12;
const POOL: usize = 8;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    ops: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn op(&mut self, name: &'static str) {
        *self.ops.entry(name).or_default() += 1;
    }
    fn error(&mut self, error: &ClientError) {
        let key = error.code().map_or_else(|| "connection".to_string(), |c| c.as_u16().to_string());
        *self.errors.entry(key).or_default() += 1;
    }
}

async fn connect(server: &TestServer, user: &str) -> Client {
    loop {
        if let Ok(mut client) = Client::connect(server.addr(), &server.trust(), |_| {}).await
            && client.login(user, "pw").await.is_ok()
        {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test: minutes long; run with --ignored"]
async fn soak_with_random_failures() {
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let seed: u64 = std::env::var("SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    println!("soak: {secs} s, seed {seed}, {CLIENTS} clients, pool of {POOL}");
    let server = Arc::new(TestServer::start_with(|c| {
        c.max_concurrency = POOL;
        c.max_queued = CLIENTS;
        c.max_sessions_per_user = CLIENTS; // the soak is about failures, not the per-user share
        c.chunk_bytes = 64 << 10;
    }));
    for (user, quota) in USERS {
        server.add_user(user, "pw", quota);
    }
    let sources: Vec<Vec<u8>> =
        (0..SOURCES).map(|i| random_bytes((i + 1) * 300_000 + i * 7, seed ^ i as u64)).collect();
    let source_paths: Vec<_> = (0..SOURCES)
        .map(|i| {
            let path = server.local(&format!("src{i}.bin"));
            std::fs::write(&path, &sources[i]).unwrap();
            path
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tally = Arc::new(Mutex::new(Tally::default()));
    let transferred = Arc::new(AtomicU64::new(0));

    // The fault injector.
    let services = server.handle.as_ref().unwrap().services.clone();
    let injected = Arc::new(AtomicU64::new(0));
    let injector = {
        let (injected, services) = (injected.clone(), services.clone());
        tokio::spawn(async move {
            let mut rng = Rng(seed ^ 0xfeed);
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
                match rng.below(3) {
                    0 => drop(services.quota.send(InjectPanic).await),
                    1 => drop(services.auth.send(InjectPanic).await),
                    _ => drop(services.disk.run("soak", || -> () { panic!("injected disk failure") }).await),
                }
                injected.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let mut workers = Vec::new();
    for worker in 0..CLIENTS {
        let (server, tally, transferred) = (server.clone(), tally.clone(), transferred.clone());
        let source_paths = source_paths.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Rng(seed.wrapping_add(worker as u64 * 7919) | 1);
            let user = USERS[worker % USERS.len()].0;
            let mut client = connect(&server, user).await;
            let local = server.local(&format!("w{worker}"));
            std::fs::create_dir_all(&local).unwrap();
            while Instant::now() < deadline {
                let src = rng.below(SOURCES as u64) as usize;
                let name = format!("s{src}_{}.bin", rng.below(8));
                let result: Result<(), ClientError> = match rng.below(10) {
                    0..=2 => {
                        tally.lock().await.op("put");
                        match client.put(&source_paths[src], &name, &NoProgress).await {
                            // The server had that file already (put_ready.existing_md5): nothing sent.
                            Ok(r) if r.skipped => {
                                tally.lock().await.op("put skipped");
                                Ok(())
                            }
                            Ok(r) => {
                                if r.resumed_from > 0 {
                                    // A partial an abandoned put left, continued.
                                    tally.lock().await.op("put resumed");
                                }
                                transferred.fetch_add(r.size - r.resumed_from, Ordering::Relaxed);
                                Ok(())
                            }
                            Err(error) => Err(error),
                        }
                    }
                    3 => {
                        // An upload abandoned mid-way: the connection drops.
                        tally.lock().await.op("abandoned put");
                        let path = source_paths[src].clone();
                        let name = name.clone();
                        let mut doomed = client;
                        let task = tokio::spawn(async move { doomed.put(&path, &name, &NoProgress).await.map(|_| ()) });
                        tokio::time::sleep(Duration::from_millis(rng.below(30))).await;
                        task.abort();
                        let _ = task.await;
                        client = connect(&server, user).await;
                        Ok(())
                    }
                    4..=5 => {
                        tally.lock().await.op("get");
                        let target = local.join(&name);
                        client.get(&name, &target, &NoProgress).await.map(|report| {
                            if let ftp_actor::client::GetReport::Downloaded { size, resumed_from, .. } = report {
                                transferred.fetch_add(size - resumed_from, Ordering::Relaxed);
                            }
                        })
                    }
                    6 => {
                        tally.lock().await.op("rm");
                        client.remove(&name).await.map(drop)
                    }
                    7 => {
                        tally.lock().await.op("mv");
                        client.rename(&name, &format!("s{src}_{}.bin", rng.below(8))).await
                    }
                    8 => {
                        tally.lock().await.op("ls");
                        client.list(None).await.map(|_| ())
                    }
                    _ => {
                        tally.lock().await.op("quota");
                        client.quota().await.map(|_| ())
                    }
                };
                if let Err(error) = result {
                    tally.lock().await.error(&error);
                    if error.code().is_none() {
                        client = connect(&server, user).await;
                    }
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    injector.await.unwrap();

    // Invariants, once every session has ended and the actors are quiet.
    let mut verified = 0;
    for (user, _) in USERS {
        for entry in std::fs::read_dir(server.home(user)).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".ftpa-part") {
                continue;
            }
            let src: usize = name[1..name.find('_').unwrap()].parse().unwrap();
            assert_eq!(md5_hex(&std::fs::read(entry.path()).unwrap()), md5_hex(&sources[src]), "{user}/{name}");
            verified += 1;
        }
    }
    let mut check = connect(&server, "ann").await;
    let snapshot = loop {
        let snapshot = services.quota.send(Snapshot).await.unwrap().unwrap();
        if snapshot.live_uploads == 0 {
            break snapshot;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (user, usage) in &snapshot.usage {
        let on_disk = disk_bytes(&server.home(user));
        assert_eq!(usage.used, on_disk, "{user}: usage equals the bytes on disk");
        assert_eq!(usage.reserved, 0, "{user}: no orphaned reservation");
        assert_eq!(usage.files, disk_entries(&server.home(user)), "{user}: entries equal the disk's");
        assert_eq!(usage.files_reserved, 0, "{user}: no orphaned entry reservation");
        assert!(usage.used <= usage.limit || usage.limit < on_disk, "{user} within quota");
    }
    assert_eq!(services.disk.census(Duration::from_secs(5)).await, POOL, "no lost thread");
    assert_eq!(services.hashers.census(Duration::from_secs(5)).await, POOL, "no lost hashing thread");
    check.mkdir("after-the-soak").await.unwrap();

    let tally = tally.lock().await;
    println!("soak: {} injected failures", injected.load(Ordering::Relaxed));
    println!("soak: operations {:?}", tally.ops);
    println!("soak: errors by code {:?}", tally.errors);
    println!("soak: {} MiB transferred", transferred.load(Ordering::Relaxed) >> 20);
    println!(
        "soak: {verified} complete files verified against their sources; usage == disk (bytes and entries) for every user"
    );
}
