//! The FTP front end of two instances keeping their files in object storage, driven by curl
//! (FTPS, each instance's own certificate checked): what a standard client stores through one
//! instance, the other lists and serves byte for byte; an upload whose instance is killed with
//! `kill -9` is resumed by `curl -C -` through the other instance after its durable parts; and
//! parallel uploads through both instances never pass the user's quota. Real servers: two
//! `ftp-actor serve`, PostgreSQL and a three-node Garage.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::binary::Served;
use crate::common::cluster::{Cluster, with_files_in_garage};
use crate::common::garage::Garage;
use crate::common::{md5_hex, must_succeed, random_bytes};
use ftp_actor::client::NoProgress;
use ftp_actor::net::{EntryKind, Request};
use ftp_actor::storage::objects::PART_SIZE;

/// curl over FTPS to `instance`'s FTP listener, as alice, trusting that instance's certificate.
fn curl(served: &Served, extra: &[&str]) -> Output {
    let cert = served.data_dir().join(ftp_actor::tls::GENERATED_CERT);
    Command::new("timeout")
        .args(["120", "curl", "-sS", "--ssl-reqd", "--cacert", cert.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("cannot run curl (bash .ci/run installs it)")
}

fn url(served: &Served, path: &str) -> String {
    format!("ftp://alice:pw@{}{path}", served.ftp.as_deref().expect("an FTP listener"))
}

#[tokio::test]
async fn what_curl_stores_through_one_instance_the_other_serves() {
    let (_garage, cluster) = with_files_in_garage("100MiB");
    let [a, b] = &cluster.instances;
    let local = tempfile::tempdir().unwrap();
    let data = random_bytes(2 * PART_SIZE as usize + 4321, 11);
    let source = local.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();

    must_succeed("mkdir through A", &curl(a, &["-Q", "MKD docs", &url(a, "/")]));
    must_succeed("upload through A", &curl(a, &["-T", source.to_str().unwrap(), &url(a, "/docs/big.bin")]));
    must_succeed("small upload through B", &curl(b, &["-T", source.to_str().unwrap(), &url(b, "/docs/copy.bin")]));

    let copy = local.path().join("copy.bin");
    must_succeed("download through B", &curl(b, &["-o", copy.to_str().unwrap(), &url(b, "/docs/big.bin")]));
    assert_eq!(md5_hex(&std::fs::read(&copy).unwrap()), md5_hex(&data));
    let listing = curl(a, &[&url(a, "/docs/")]);
    must_succeed("listing through A", &listing);
    let listing = String::from_utf8_lossy(&listing.stdout);
    for name in ["big.bin", "copy.bin"] {
        assert!(listing.contains(name) && listing.contains(&data.len().to_string()), "{name}: {listing}");
    }
    // A rename through B is what A's native clients see at once.
    must_succeed("rename through B", &curl(b, &["-Q", "RNFR docs", "-Q", "RNTO papers", &url(b, "/")]));
    let mut client = cluster.login(0, "alice", "pw").await;
    let moved = client.list(Some("papers")).await.unwrap();
    assert_eq!(moved.entries.len(), 2, "{:?}", moved.entries);
}

#[tokio::test]
async fn an_ftp_upload_cut_by_kill_9_is_resumed_by_curl_through_the_other_instance() {
    let (_garage, mut cluster) = with_files_in_garage("200MiB");
    let local = tempfile::tempdir().unwrap();
    let data = random_bytes(4 * PART_SIZE as usize + 999, 12);
    let source = local.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();

    // curl sends slowly through A; once a whole part is durable, A is killed.
    let a = &cluster.instances[0];
    let cert = a.data_dir().join(ftp_actor::tls::GENERATED_CERT);
    let mut upload = Command::new("curl")
        .args(["-sS", "--ssl-reqd", "--cacert", cert.to_str().unwrap(), "--limit-rate", "8M", "-T"])
        .args([source.to_str().unwrap(), &url(a, "/big.bin")])
        .spawn()
        .expect("cannot run curl");
    let held = cluster.kill_the_first_instance_once_a_part_is_durable("big.bin", &mut upload).await;

    // `curl -C -` asks SIZE and sends the rest with APPE. Until the dead instance's heartbeat
    // lapses the upload is still its own, and B refuses; then B takes it over.
    let b = &cluster.instances[1];
    let deadline = Instant::now() + Duration::from_secs(60);
    // `-v`: the dialogue (SIZE's answer, APPE's) is kept for the message of a failure.
    let resumed = loop {
        let resumed = curl(b, &["-v", "-C", "-", "-T", source.to_str().unwrap(), &url(b, "/big.bin")]);
        if resumed.status.success() {
            break resumed;
        }
        assert!(Instant::now() < deadline, "no resume through B: {resumed:?}\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let stored = |line: &str| line.contains("big.bin") && line.contains("result=\"ok");
    let resumed_line = b.logged(stored, Duration::from_secs(10)).unwrap_or_else(|| {
        let dialogue = String::from_utf8_lossy(&resumed.stderr);
        let held_now = cluster.user(&["list"], "");
        let log = b.log();
        panic!("no access log line after curl succeeded (held {held}):\ncurl: {dialogue}\nusers: {held_now}\nB: {log}")
    });
    assert!(
        resumed_line.contains(&format!("resumed_from={held}")),
        "the durable parts were sent again: {resumed_line}"
    );
    let copy = local.path().join("copy.bin");
    must_succeed("download through B", &curl(b, &["-o", copy.to_str().unwrap(), &url(b, "/big.bin")]));
    assert_eq!(md5_hex(&std::fs::read(&copy).unwrap()), md5_hex(&data));
    assert_eq!(cluster.listed(1, "big.bin").await, Some((EntryKind::File, data.len() as u64)));
}

#[tokio::test]
async fn parallel_ftp_uploads_through_both_instances_never_pass_the_quota() {
    let (_garage, cluster) = with_files_in_garage("20MiB");
    let local = tempfile::tempdir().unwrap();
    let data = random_bytes(9 << 20, 13);
    let source = local.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();
    let runs: Vec<Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..6)
            .map(|n| {
                let (served, source) = (&cluster.instances[n % 2], &source);
                scope
                    .spawn(move || curl(served, &["-T", source.to_str().unwrap(), &url(served, &format!("/p{n}.bin"))]))
            })
            .collect();
        runs.into_iter().map(|run| run.join().unwrap()).collect()
    });
    // A STOR announces no size: each reserves as it goes, so six at once may all run out
    // before any ends. Whatever the split, the refusals are the quota's (552), never more is
    // stored than fits, and usage is what the names hold.
    let stored = runs.iter().filter(|run| run.status.success()).count();
    assert!(stored <= 2, "{stored} uploads of 9 MiB stored under 20 MiB");
    for refused in runs.iter().filter(|run| !run.status.success()) {
        let said = String::from_utf8_lossy(&refused.stderr);
        // curl's exit 70 is its name for reply 552 (exceeded storage allocation).
        assert!(said.contains("(70) Exceeded storage allocation"), "a refusal that is not the quota's: {said}");
    }
    let mut client = cluster.login(1, "alice", "pw").await;
    let report = client.quota_report().await.unwrap();
    let listing = client.list(None).await.unwrap();
    let held: u64 = listing.entries.iter().map(|entry| entry.size).sum();
    assert_eq!(report.used, held, "usage is not what the names hold: {report:?} {:?}", listing.entries);
    assert!(report.used <= 20 << 20, "{report:?}");
}

/// A directory larger than a listing page (`max_list_entries = 3`) is listed whole, a page at
/// a time from the database, by both instances: the native client, and FTP's NLST through
/// curl. An interrupted upload is listed just after the file of its name.
#[tokio::test]
async fn a_directory_larger_than_a_listing_page_is_listed_whole() {
    let garage = Garage::start();
    let cluster = Cluster::start(&format!("max_list_entries = 3\n{}", garage.storage_config()));
    cluster.user(&["add", "alice", "--quota", "10MiB"], "pw");
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("f");
    std::fs::write(&file, b"ten bytes.").unwrap();
    let mut a = cluster.login(0, "alice", "pw").await;
    for n in 0..7 {
        a.put(&file, &format!("f{n}"), &NoProgress).await.unwrap();
    }
    // f2's partial starts the second page, just after f2 ended the first.
    for target in ["f2", "g"] {
        let mut cut = cluster.login(0, "alice", "pw").await;
        cut.send(Request::Put { path: target.into(), size: 1000 }).await.unwrap();
        cut.recv().await.unwrap();
        cut.send(Request::Data { bytes: bytes::Bytes::from(vec![1u8; 300]) }).await.unwrap();
        cut.send(Request::Noop).await.unwrap();
        cut.recv().await.unwrap();
    }
    let mut b = cluster.login(1, "alice", "pw").await;
    let listing = b.list(None).await.unwrap();
    let listed: Vec<String> = listing.entries.iter().map(|e| format!("{}{:?}", e.name, e.kind)).collect();
    let expected = ["f0File", "f1File", "f2File", "f2Partial", "f3File", "f4File", "f5File", "f6File", "gPartial"];
    assert_eq!((listed, listing.truncated), (expected.map(String::from).to_vec(), false));
    let nlst = curl(&cluster.instances[1], &["--list-only", &url(&cluster.instances[1], "/")]);
    assert!(nlst.status.success(), "{nlst:?}");
    let names: Vec<String> = String::from_utf8_lossy(&nlst.stdout).lines().map(String::from).collect();
    assert_eq!(names, (0..7).map(|n| format!("f{n}")).collect::<Vec<_>>(), "NLST leaves partials out");
}
