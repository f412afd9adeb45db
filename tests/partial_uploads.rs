//! Partial uploads are part of the user's visible world: listed under the name they will be
//! published as (kind `partial`), counted in `quota` with their share said, removable with `rm`
//! (freeing their quota), and expired after `partial_expiry_days`.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{TestServer, random_bytes, wait_for_quota};
use ftp_actor::client::{Client, NoProgress};
use ftp_actor::net::{EntryKind, ErrorCode, Request, Response};
use ftp_actor::service::expiry::expire_partials;

/// Starts an upload of `size` bytes to `path`, sends `sent` of them, and drops the connection:
/// the server keeps a partial of `sent` bytes.
async fn interrupted_upload(server: &TestServer, path: &str, size: u64, sent: usize) {
    let mut client = server.login("u", "pw").await;
    client.send(Request::Put { path: path.into(), size }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(random_bytes(sent, 7)) }).await.unwrap();
    // A `noop` answered means the server has taken the data in.
    client.send(Request::Noop).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Response::DONE);
}

fn kinds(listing: &ftp_actor::client::Listing) -> Vec<(String, EntryKind, u64)> {
    listing.entries.iter().map(|e| (e.name.clone(), e.kind, e.size)).collect()
}

async fn server_with_user(days: u64) -> (TestServer, Client) {
    let server = TestServer::start_with(|config| config.partial_expiry_days = days);
    server.add_user("u", "pw", 100_000);
    let client = server.login("u", "pw").await;
    (server, client)
}

#[tokio::test]
async fn an_interrupted_upload_is_listed_counted_and_removed_by_rm() {
    let (server, mut client) = server_with_user(0).await;
    client.mkdir("d").await.unwrap();
    interrupted_upload(&server, "d/big.iso", 50_000, 20_000).await;
    wait_for_quota(&mut client, |used, _| used == 20_000).await;

    let listing = client.list(Some("d")).await.unwrap();
    assert_eq!(kinds(&listing), [("big.iso".to_string(), EntryKind::Partial, 20_000)]);
    let alone = client.list(Some("d/big.iso")).await.unwrap();
    assert_eq!(kinds(&alone), [("big.iso".to_string(), EntryKind::Partial, 20_000)], "ls of the name itself");
    let report = client.quota_report().await.unwrap();
    assert_eq!((report.used, report.partial_bytes, report.partials), (20_000, 20_000, 1));
    // A directory holding only a partial is not empty, and says so in its listing.
    assert_eq!(client.rmdir("d").await.unwrap_err().code(), Some(ErrorCode::DirectoryNotEmpty));

    assert!(!client.remove("d/big.iso").await.unwrap(), "only a partial was there");
    wait_for_quota(&mut client, |used, _| used == 0).await;
    let report = client.quota_report().await.unwrap();
    assert_eq!((report.files, report.partial_bytes, report.partials), (1, 0, 0));
    assert!(client.list(Some("d")).await.unwrap().entries.is_empty());
    assert_eq!(client.remove("d/big.iso").await.unwrap_err().code(), Some(ErrorCode::NotFound));
    client.rmdir("d").await.unwrap();
}

/// An upload whose connection drops before any byte was written leaves no partial: nothing to
/// list, count or expire (an empty one would only hold an entry of `max_files`).
#[tokio::test]
async fn an_upload_dropped_before_any_data_leaves_no_partial() {
    let (server, mut client) = server_with_user(0).await;
    let mut dropped = server.login("u", "pw").await;
    dropped.send(Request::Put { path: "empty.iso".into(), size: 50_000 }).await.unwrap();
    assert!(matches!(dropped.recv().await.unwrap(), Response::PutReady { .. }));
    let partial = server.home("u").join(".empty.iso.ftpa-part");
    assert!(partial.exists(), "the upload opened its partial");
    drop(dropped);
    for _ in 0..200 {
        if !partial.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(!partial.exists(), "an empty partial was left");
    let report = client.quota_report().await.unwrap();
    assert_eq!((report.used, report.files, report.partials), (0, 0, 0));
    assert!(client.list(None).await.unwrap().entries.is_empty());
}

#[tokio::test]
async fn rm_of_a_name_with_a_file_and_a_partial_removes_the_file_then_the_partial() {
    let (server, mut client) = server_with_user(0).await;
    let local = server.local("f");
    std::fs::write(&local, random_bytes(10_000, 1)).unwrap();
    client.put(&local, "f", &NoProgress).await.unwrap();
    interrupted_upload(&server, "f", 30_000, 4_000).await;
    wait_for_quota(&mut client, |used, _| used == 14_000).await;

    let listing = client.list(None).await.unwrap();
    assert_eq!(
        kinds(&listing),
        [("f".to_string(), EntryKind::File, 10_000), ("f".to_string(), EntryKind::Partial, 4_000)],
        "the file, then the partial upload that would replace it"
    );
    assert!(client.remove("f").await.unwrap(), "the file went; the partial remains");
    assert_eq!(kinds(&client.list(None).await.unwrap()), [("f".to_string(), EntryKind::Partial, 4_000)]);
    assert!(!client.remove("f").await.unwrap());
    wait_for_quota(&mut client, |used, _| used == 0).await;
    assert!(std::fs::read_dir(server.home("u")).unwrap().next().is_none(), "the home is empty");
}

/// The sweep removes partials last written before the cutoff, and only those: not a fresh
/// one, and not an old-looking one whose upload is open right now (its path lock is held).
#[tokio::test]
async fn old_partials_expire_and_free_their_quota_but_an_open_upload_is_never_cut() {
    let (server, mut client) = server_with_user(0).await;
    interrupted_upload(&server, "old", 9_000, 5_000).await;
    interrupted_upload(&server, "fresh", 9_000, 3_000).await;
    let mut uploading = server.login("u", "pw").await;
    uploading.send(Request::Put { path: "busy".into(), size: 9_000 }).await.unwrap();
    assert!(matches!(uploading.recv().await.unwrap(), Response::PutReady { .. }));
    uploading.send(Request::Data { bytes: bytes::Bytes::from(random_bytes(1_000, 2)) }).await.unwrap();
    uploading.send(Request::Noop).await.unwrap();
    assert_eq!(uploading.recv().await.unwrap(), Response::DONE);
    // A live upload's bytes count once it ends (its reservation covers them meanwhile).
    wait_for_quota(&mut client, |used, _| used == 8_000).await;
    let eight_days_ago = SystemTime::now() - Duration::from_secs(8 * 86_400);
    for name in [".old.ftpa-part", ".busy.ftpa-part"] {
        let file = std::fs::File::options().append(true).open(server.home("u").join(name)).unwrap();
        file.set_modified(eight_days_ago).unwrap();
    }

    let services = &server.handle.as_ref().unwrap().services;
    let expired = expire_partials(services, Duration::from_secs(7 * 86_400)).await;
    assert_eq!(expired, (1, 5_000), "only the old partial with no upload open");
    wait_for_quota(&mut client, |used, _| used == 3_000).await;
    let names: Vec<_> = client.list(None).await.unwrap().entries.into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["busy", "fresh"]);
    // The open upload goes on and publishes.
    uploading.send(Request::Data { bytes: bytes::Bytes::from(vec![0u8; 8_000]) }).await.unwrap();
    uploading.send(Request::Noop).await.unwrap();
    assert_eq!(uploading.recv().await.unwrap(), Response::DONE);
}

/// With `partial_expiry_days` set, the server sweeps on its own once it knows the users.
#[tokio::test]
async fn the_server_expires_old_partials_by_itself() {
    let server = TestServer::start_with(|config| config.partial_expiry_days = 7);
    let home = server.home("u");
    std::fs::create_dir_all(&home).unwrap();
    let stale = home.join(".left.bin.ftpa-part");
    std::fs::write(&stale, vec![1u8; 6_000]).unwrap();
    std::fs::File::options()
        .append(true)
        .open(&stale)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(30 * 86_400))
        .unwrap();
    std::fs::write(home.join(".recent.bin.ftpa-part"), vec![1u8; 2_000]).unwrap();
    server.add_user("u", "pw", 100_000);
    let mut client = server.login("u", "pw").await;
    for _ in 0..400 {
        if !stale.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!stale.exists(), "the 30-day-old partial was removed");
    wait_for_quota(&mut client, |used, _| used == 2_000).await;
    let report = client.quota_report().await.unwrap();
    assert_eq!((report.partials, report.partial_bytes, report.files), (1, 2_000, 1));
}

/// Writes a partial upload of `bytes` bytes to `name` in `home`, last written `days` ago.
fn aged_partial(home: &std::path::Path, name: &str, bytes: usize, days: u64) -> std::path::PathBuf {
    let path = home.join(format!(".{name}.ftpa-part"));
    std::fs::write(&path, vec![1u8; bytes]).unwrap();
    let file = std::fs::File::options().append(true).open(&path).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(days * 86_400)).unwrap();
    path
}

/// The real binary: a stale partial is removed at start and logged; another one, appearing
/// later, goes at the next SIGHUP.
#[test]
fn the_binary_logs_each_expiry_and_sweeps_again_on_sighup() {
    use common::binary::{Launch, Served};
    let served = Served::start(Launch::alice("partial_expiry_days = 2", false));
    let home = served.home("alice");
    let first = aged_partial(&home, "first.iso", 4_000, 3);
    let wait_for = |text: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        while !served.log().contains(text) {
            assert!(std::time::Instant::now() < deadline, "{text:?} not logged:\n{}", served.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("expired partial upload removed user=alice path=/first.iso bytes=4000 days=3");
    assert!(!first.exists());
    let second = aged_partial(&home, "second.iso", 5_000, 9);
    let kept = aged_partial(&home, "young.iso", 6_000, 1);
    let status = Command::new("kill").args(["-HUP", &served.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    wait_for("expired partial uploads after SIGHUP count=1 bytes=5000");
    assert!(!second.exists() && kept.exists());
}
