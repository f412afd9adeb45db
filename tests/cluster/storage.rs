//! Two instances sharing their files through object storage (`storage.backend = "s3"`): file
//! contents in a real three-node Garage cluster (replication 3, scripts/garage.sh), names in a
//! real PostgreSQL (scripts/postgres.sh), the `ftp-actor serve` binary twice, driven by the
//! client library. What one instance writes the other serves; a put cut by `kill -9` of its
//! instance resumes on the other after the durable parts; renames are single transactions
//! that never replace; a storage node stopped mid-transfer is ridden out.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::cluster::{Cluster, with_files_in_garage};
use crate::common::garage::Garage;
use ftp_actor::client::{Client, ClientError, NoProgress, Progress, PutReport};
use ftp_actor::net::{EntryKind, ErrorCode};
use ftp_actor::storage::objects::PART_SIZE;

/// A file of `len` bytes that differ from position to position.
fn write_file(path: &Path, len: usize, seed: u8) {
    let bytes: Vec<u8> = (0..len).map(|i| ((i * 31 + i / 4099) as u8) ^ seed).collect();
    std::fs::write(path, bytes).unwrap();
}

fn names(listing: &ftp_actor::client::Listing) -> Vec<(String, EntryKind, u64)> {
    listing.entries.iter().map(|e| (e.name.clone(), e.kind, e.size)).collect()
}

#[tokio::test]
async fn what_one_instance_writes_the_other_serves() {
    let (_garage, cluster) = with_files_in_garage("100MiB");
    let local = tempfile::tempdir().unwrap();
    let (big, small, empty) = (local.path().join("big"), local.path().join("small"), local.path().join("empty"));
    // Two whole parts and a short last one.
    write_file(&big, 2 * PART_SIZE as usize + 12_345, 1);
    write_file(&small, 1000, 2);
    std::fs::write(&empty, b"").unwrap();

    let mut a = cluster.login(0, "alice", "pw").await;
    a.mkdir("docs").await.unwrap();
    a.put(&big, "docs/big", &NoProgress).await.unwrap();
    a.put(&small, "small", &NoProgress).await.unwrap();
    a.put(&empty, "empty", &NoProgress).await.unwrap();

    let mut b = cluster.login(1, "alice", "pw").await;
    let listed = names(&b.list(None).await.unwrap());
    assert_eq!(
        listed,
        vec![
            ("docs".into(), EntryKind::Dir, 0),
            ("empty".into(), EntryKind::File, 0),
            ("small".into(), EntryKind::File, 1000)
        ]
    );
    for (remote, original) in [("docs/big", &big), ("small", &small), ("empty", &empty)] {
        let copy = local.path().join(format!("copy-{}", remote.replace('/', "-")));
        b.get(remote, &copy, &NoProgress).await.unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(original).unwrap(), "{remote}");
    }
    // A directory with a file in it moves in one step, and the other instance sees it at once.
    b.rename("docs", "archive").await.unwrap();
    assert_eq!(names(&a.list(Some("archive")).await.unwrap()), vec![("big".into(), EntryKind::File, big_len())]);
    assert_eq!(a.list(Some("docs")).await.err().and_then(|e| e.code()), Some(ErrorCode::NotFound));
    // An overwrite through one instance is what the other reads next.
    a.put(&small, "archive/big", &NoProgress).await.unwrap();
    let copy = local.path().join("again");
    b.get("archive/big", &copy, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&small).unwrap());
    // Usage is what the names hold, as `ftp-actor user list` reads it from the database:
    // 1000 + 0 bytes in three entries (archive, archive/big, empty).
    b.remove("small").await.unwrap();
    let (used, files) = usage(&cluster);
    assert_eq!((used.as_str(), files.as_str()), ("1000 B", "3"));
}

/// alice's USED and FILES columns in `ftp-actor user list`.
fn usage(cluster: &Cluster) -> (String, String) {
    let listed = cluster.user(&["list"], "");
    let line = listed.lines().find(|line| line.starts_with("alice ")).unwrap_or_else(|| panic!("{listed}"));
    let columns: Vec<&str> = line.split_whitespace().collect();
    // alice, QUOTA (number and unit), USED (number and unit), FILES/MAX, HOME.
    let used = format!("{} {}", columns[3], columns[4]);
    let files = columns[5].split('/').next().unwrap().to_string();
    (used, files)
}

fn big_len() -> u64 {
    2 * PART_SIZE + 12_345
}

/// `step`, or a panic with both instances' logs if it takes more than two minutes.
async fn within<T>(cluster: &Cluster, step: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(120), step).await {
        Ok(done) => done,
        Err(_) => panic!("a step took more than two minutes\n{}", logs(cluster)),
    }
}

fn logs(cluster: &Cluster) -> String {
    format!("instance 0:\n{}\ninstance 1:\n{}", cluster.instances[0].log(), cluster.instances[1].log())
}

/// Puts until the upload is not held any more (an instance killed while writing it holds it
/// until its heartbeat lapses, some seconds).
async fn put_when_free(client: &mut Client, local: &Path, remote: &str) -> PutReport {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        match client.put(local, remote, &NoProgress).await {
            Err(error) if error.code() == Some(ErrorCode::InUse) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            other => return other.unwrap_or_else(|e| panic!("put {remote}: {e}")),
        }
    }
}

#[tokio::test]
async fn a_put_cut_by_kill_9_resumes_on_the_other_instance_after_its_durable_parts() {
    let (_garage, mut cluster) = with_files_in_garage("200MiB");
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("large");
    write_file(&file, 10 * PART_SIZE as usize + 777, 3);

    // The put goes through A; once B lists a whole part of it as durable, A is killed.
    let mut a = cluster.login(0, "alice", "pw").await;
    let sent = file.clone();
    let put = tokio::spawn(async move { a.put(&sent, "large", &NoProgress).await });
    let mut b = cluster.login(1, "alice", "pw").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed = names(&b.list(None).await.unwrap());
        if matches!(listed.as_slice(), [(_, EntryKind::Partial, held)] if *held >= PART_SIZE) {
            break;
        }
        assert!(!put.is_finished(), "the put ended before a part was durable: {listed:?}");
        assert!(Instant::now() < deadline, "no durable part after a minute\n{}", logs(&cluster));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SAFETY: a plain kill(2) of a child process this test started.
    unsafe { libc::kill(cluster.instances[0].child.id() as i32, libc::SIGKILL) };
    let cut = put.await.unwrap();
    assert!(cut.is_err(), "the put outlived its instance: {cut:?}");
    cluster.instances[0].child.wait().unwrap();

    let listed = names(&b.list(None).await.unwrap());
    let held = match listed.as_slice() {
        [(name, EntryKind::Partial, held)] if name == "large" => *held,
        other => panic!("the interrupted upload is not listed as partial: {other:?}"),
    };
    assert!(held >= PART_SIZE && held % PART_SIZE == 0, "held {held}: whole parts only");

    let report = within(&cluster, put_when_free(&mut b, &file, "large")).await;
    assert_eq!(report.resumed_from, held, "the durable parts were sent again: {report:?}");
    assert!(!report.restarted);
    let copy = local.path().join("copy");
    within(&cluster, b.get("large", &copy, &NoProgress))
        .await
        .unwrap_or_else(|e| panic!("get: {e}\n{}", logs(&cluster)));
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&file).unwrap());
    assert_eq!(names(&b.list(None).await.unwrap()), vec![("large".into(), EntryKind::File, 10 * PART_SIZE + 777)]);
    assert_eq!(usage(&cluster).1, "1", "the upload's row went with its publish");
}

#[tokio::test]
async fn racing_renames_onto_one_name_leave_exactly_one_winner() {
    let (_garage, cluster) = with_files_in_garage("10MiB");
    let local = tempfile::tempdir().unwrap();
    let mut a = cluster.login(0, "alice", "pw").await;
    for round in 0..10 {
        let file = local.path().join(format!("f{round}"));
        write_file(&file, 100 + round, round as u8);
        a.put(&file, &format!("one-{round}"), &NoProgress).await.unwrap();
        a.put(&file, &format!("two-{round}"), &NoProgress).await.unwrap();
    }
    let mut b = cluster.login(1, "alice", "pw").await;
    for round in 0..10 {
        let target = format!("target-{round}");
        let one = format!("one-{round}");
        let two = format!("two-{round}");
        let (first, second) = tokio::join!(a.rename(&one, &target), b.rename(&two, &target));
        let outcomes = [&first, &second];
        let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {first:?} {second:?}");
        let lost = outcomes.iter().find_map(|outcome| outcome.as_ref().err()).unwrap();
        assert_eq!(lost.code(), Some(ErrorCode::AlreadyExists), "round {round}");
    }
    // Each round left its target and the loser's source, nothing replaced: 20 entries.
    let listed = names(&a.list(None).await.unwrap());
    assert_eq!(listed.len(), 20, "{listed:?}");
    assert_eq!(listed.iter().filter(|(name, ..)| name.starts_with("target-")).count(), 10);
    assert_eq!(usage(&cluster).1, "20");
    let refused: Result<(), ClientError> = b.rename("target-0", "target-1").await;
    assert_eq!(refused.err().and_then(|e| e.code()), Some(ErrorCode::AlreadyExists));
}

/// A put and a mkdir of one new name at once, through the two instances, round after round:
/// one of them wins, the other is refused for the name (never a database error: a publish took
/// the home's figures before the name, a mkdir the name before the figures, and the two
/// deadlocked), and the name is what the winner made. The mkdir starts later each round, from
/// half a put's time to all of it, so that some rounds reach the database during the publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_and_a_mkdir_of_one_name_at_once_leave_one_of_them() {
    const ROUNDS: u32 = 80;
    let (_garage, cluster) = with_files_in_garage("100MiB");
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("small");
    write_file(&file, 1000, 7);
    let (mut a, mut b) = (cluster.login(0, "alice", "pw").await, cluster.login(1, "alice", "pw").await);
    let mut took = Vec::new();
    for warm_up in 0..5 {
        let started = Instant::now();
        a.put(&file, &format!("warm-up-{warm_up}"), &NoProgress).await.unwrap();
        took.push(started.elapsed());
    }
    took.sort();
    let put_time = took[2];
    let mut files = 5;
    for round in 0..ROUNDS {
        let name = format!("r{round}");
        let delay = put_time / 2 + put_time * round / (2 * ROUNDS);
        let making = {
            let name = name.clone();
            tokio::spawn(async move {
                // A spin, not a timer: tokio's timers are a millisecond coarse.
                let until = Instant::now() + delay;
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                let made = b.mkdir(&name).await;
                (b, made)
            })
        };
        let put = a.put(&file, &name, &NoProgress).await;
        let (back, mkdir) = making.await.unwrap();
        b = back;
        let kind = match (&put, &mkdir) {
            (Ok(_), Err(refused)) => {
                assert_eq!(refused.code(), Some(ErrorCode::AlreadyExists), "round {round}: {refused}");
                files += 1;
                EntryKind::File
            }
            (Err(refused), Ok(())) => {
                assert_eq!(refused.code(), Some(ErrorCode::IsADirectory), "round {round}: {refused}");
                EntryKind::Dir
            }
            _ => panic!("round {round}: put {put:?}, mkdir {mkdir:?}"),
        };
        let listed = names(&a.list(None).await.unwrap());
        let entry = listed.iter().find(|(listed, ..)| *listed == name).unwrap();
        assert_eq!(entry.1, kind, "round {round}: {entry:?}");
    }
    assert_eq!(a.quota().await.unwrap().0, files * 1000);
}

/// One step of [`refusals_are_those_of_a_local_disk`] and what came of it: `Ok` or the code.
async fn outcome_of(client: &mut Client, step: &Step, file: &Path) -> Result<(), Option<ErrorCode>> {
    let done = match *step {
        Step::Mkdir(path) => client.mkdir(path).await,
        Step::Put(path) => client.put(file, path, &NoProgress).await.map(|_| ()),
        Step::Remove(path) => client.remove(path).await.map(|_| ()),
        Step::Rmdir(path) => client.rmdir(path).await,
        Step::Rename(from, to) => client.rename(from, to).await,
    };
    done.map_err(|error| error.code())
}

#[derive(Debug)]
enum Step {
    Mkdir(&'static str),
    Put(&'static str),
    Remove(&'static str),
    Rmdir(&'static str),
    Rename(&'static str, &'static str),
}

/// Removals and renames in the cluster are each one database function (migration 6) that
/// decides what to refuse: every refusal of a local disk, in the same order of checks, through
/// the same steps on a local server and on the cluster, and the same listing after.
#[tokio::test]
async fn refusals_are_those_of_a_local_disk() {
    use Step::*;
    let steps = [
        Mkdir("d"),
        Mkdir("d/e"),
        Put("d/e/f"),
        Put("g"),
        Remove("missing"),
        Remove("d"),
        Rmdir("missing"),
        Rmdir("g"),
        Rmdir("d"),
        Rename("missing", "x"),
        Rename("d", "d/e/inside"),
        Rename("g", "no-dir/g"),
        Rename("d", "g/below-a-file"),
        Rename("g", "d/e/f"),
        Rename("missing", "missing/below"),
        Rename("g", "g"),
        Rename("d", "d2"),
        Rename("d2/e/f", "h"),
        Rmdir("d2/e"),
        Remove("h"),
        Remove("h"),
        Rmdir("d2"),
        Rename("g", "g2"),
    ];
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("file");
    write_file(&file, 1000, 5);
    let server = crate::common::TestServer::start();
    server.add_user("alice", "pw", 100 << 20);
    let mut on_disk = server.login("alice", "pw").await;
    let (_garage, cluster) = with_files_in_garage("100MiB");
    let mut in_cluster = cluster.login(0, "alice", "pw").await;
    let mut refused = 0;
    for step in &steps {
        let expected = outcome_of(&mut on_disk, step, &file).await;
        refused += usize::from(expected.is_err());
        assert_eq!(outcome_of(&mut in_cluster, step, &file).await, expected, "{step:?}");
    }
    assert_eq!(refused, 12, "the script's refusals, each on the local disk");
    assert_eq!(names(&in_cluster.list(None).await.unwrap()), names(&on_disk.list(None).await.unwrap()));
    assert_eq!(in_cluster.quota().await.unwrap(), on_disk.quota().await.unwrap());
}

#[tokio::test]
async fn a_storage_node_stopped_midway_is_ridden_out() {
    let (garage, cluster) = with_files_in_garage("200MiB");
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("large");
    write_file(&file, 4 * PART_SIZE as usize + 99, 4);
    let mut a = cluster.login(0, "alice", "pw").await;

    // Node 3 goes away in the middle of the put: replication 3 keeps a quorum of two.
    let stopper = StopNodeAfter { garage: &garage, after: PART_SIZE + 1, sent: 0.into(), stopped: false.into() };
    let first = a.put(&file, "large", &stopper).await;
    assert!(stopper.stopped.load(Ordering::SeqCst));
    match first {
        Ok(report) => assert_eq!(report.size, 4 * PART_SIZE + 99),
        // Or it failed cleanly, with a stable code, and a put resumes it.
        Err(error) => {
            assert!(error.code().is_some(), "{error}");
            put_when_free(&mut a, &file, "large").await;
        }
    }
    let mut b = cluster.login(1, "alice", "pw").await;
    let copy = local.path().join("copy");
    b.get("large", &copy, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&file).unwrap());
    garage.start_node(3);
}

/// Stops Garage node 3 once more than `after` bytes were sent.
struct StopNodeAfter<'a> {
    garage: &'a Garage,
    after: u64,
    sent: AtomicU64,
    stopped: AtomicBool,
}

impl Progress for StopNodeAfter<'_> {
    fn begin(&self, _: u64, _: u64) {}
    fn advance(&self, bytes: u64) {
        let sent = self.sent.fetch_add(bytes, Ordering::SeqCst) + bytes;
        if sent > self.after && !self.stopped.swap(true, Ordering::SeqCst) {
            self.garage.stop_node(3);
        }
    }
    fn end(&self) {}
}
