//! Quota: concurrent uploads of one user from several sessions never exceed it; partials
//! count; an overwrite needs room for the new file and cannot multiply the quota; refusals
//! say how much is free.

mod common;

use common::*;
use ftp_actor::client::NoProgress;
use ftp_actor::net::{ErrorCode, Request, Response};

#[tokio::test]
async fn concurrent_uploads_never_exceed_the_quota() {
    let server = TestServer::start_with(|c| c.max_sessions_per_user = 8);
    let quota: u64 = 1_000_000;
    server.add_user("q", "pw", quota);
    let file_len = 300_000;
    let data = random_bytes(file_len, 40);
    let local = server.local("chunk.bin");
    std::fs::write(&local, &data).unwrap();

    // Eight sessions of the same user race; only three 300 kB files fit in 1 MB.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let mut client = server.login("q", "pw").await;
        let local = local.clone();
        tasks.push(tokio::spawn(async move { client.put(&local, &format!("f{i}.bin"), &NoProgress).await }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(error) => {
                assert_eq!(error.code(), Some(ErrorCode::QuotaExceeded), "{error}");
                assert!(error.to_string().contains("free"), "the refusal says what is free: {error}");
            }
        }
    }
    assert_eq!(ok, 3, "exactly as many uploads as fit");
    let on_disk: u64 = std::fs::read_dir(server.home("q")).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(on_disk <= quota, "{on_disk} bytes on disk exceed the quota");
    let (used, limit) = server.login("q", "pw").await.quota().await.unwrap();
    assert_eq!((used, limit), (on_disk, quota), "the ledger matches the disk");
}

/// The probe that multiplied a quota 5.7x: an overwrite is opened, the file it replaces is
/// removed from another session, and the freed room is filled while the overwrite is still
/// open. Round after round, the disk must stay within the limit and the figures with it.
#[tokio::test]
async fn an_overwrite_racing_a_removal_cannot_multiply_the_quota() {
    let server = TestServer::start();
    let limit: u64 = 1_048_576;
    server.add_user("q", "pw", limit);
    let data = random_bytes(1_000_000, 7);
    let local = server.local("f");
    std::fs::write(&local, &data).unwrap();
    let mut writer = server.login("q", "pw").await;
    let mut other = server.login("q", "pw").await;
    writer.put(&local, "f0", &NoProgress).await.unwrap();
    for round in 0..5 {
        let old = format!("f{round}");
        writer.send(Request::Put { path: old.clone(), size: data.len() as u64 }).await.unwrap();
        let opened = matches!(writer.recv().await.unwrap(), Response::PutReady { .. });
        other.remove(&old).await.unwrap();
        let _ = other.put(&local, &format!("f{}", round + 1), &NoProgress).await;
        if opened {
            writer.send(Request::Data { bytes: bytes::Bytes::from(data.clone()) }).await.unwrap();
            let md5 = ftp_actor::storage::md5_of(&data).to_vec();
            writer.send(Request::PutEnd { md5: serde_bytes::ByteBuf::from(md5) }).await.unwrap();
            writer.recv().await.unwrap();
        } else {
            // The overwrite needs room for the new file beside the old one until published.
        }
        let on_disk = disk_bytes(&server.home("q"));
        assert!(on_disk <= limit, "round {round}: {on_disk} bytes on disk over a limit of {limit}");
        assert_eq!(wait_for_quota(&mut other, |used, _| used == on_disk).await.0, on_disk);
    }
}

#[tokio::test]
async fn an_overwrite_needs_room_for_the_new_file_and_partials_count() {
    let server = TestServer::start();
    server.add_user("q", "pw", 100_000);
    let mut client = server.login("q", "pw").await;
    let a = server.local("a");
    std::fs::write(&a, random_bytes(60_000, 1)).unwrap();
    client.put(&a, "a", &NoProgress).await.unwrap();
    // Replacing 60 000 bytes with 70 000 needs 70 000 free while both are on disk.
    let b = server.local("b");
    std::fs::write(&b, random_bytes(70_000, 2)).unwrap();
    let error = client.put(&b, "a", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::QuotaExceeded));
    assert!(error.to_string().contains("only 40000 of 100000 are free"), "{error}");
    // 40 000 bytes over the 60 000: fits, and the old file's bytes are freed when published.
    let c = server.local("c");
    std::fs::write(&c, random_bytes(40_000, 3)).unwrap();
    client.put(&c, "a", &NoProgress).await.unwrap();
    assert_eq!(client.quota().await.unwrap(), (40_000, 100_000));
    client.put(&c, "b", &NoProgress).await.unwrap();
    // A new 70 000 file does not fit (20 000 free) and the refusal says so.
    let error = client.put(&b, "c", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::QuotaExceeded));
    assert!(error.to_string().contains("only 20000 of 100000 are free"), "{error}");
    assert!(!server.home("q").join(".c.ftpa-part").exists(), "a refused upload leaves no partial");
    client.remove("b").await.unwrap();

    // An interrupted upload's partial counts against the quota.
    client.send(Request::Put { path: "p".into(), size: 20_000 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(vec![1u8; 5_000]) }).await.unwrap();
    drop(client);
    let mut client = server.login("q", "pw").await;
    // The 5 000-byte partial counts.
    wait_for_quota(&mut client, |used, _| used == 45_000).await;
    client.remove("a").await.unwrap();
    assert_eq!(client.quota().await.unwrap().0, 5_000);
}

#[tokio::test]
async fn quota_changes_apply_to_a_running_server() {
    let server = TestServer::start();
    server.add_user("q", "pw", 10);
    let local = server.local("f");
    std::fs::write(&local, random_bytes(1_000, 3)).unwrap();
    let mut client = server.login("q", "pw").await;
    assert_eq!(client.put(&local, "f", &NoProgress).await.unwrap_err().code(), Some(ErrorCode::QuotaExceeded));
    ftp_actor::auth::UserStore::update(server.data_dir(), |store| {
        store.user_mut("q")?.quota = 5_000;
        Ok(())
    })
    .unwrap();
    // The session already logged in sees the new limit within seconds.
    wait_for_quota(&mut client, |_, limit| limit == 5_000).await;
    client.put(&local, "f", &NoProgress).await.unwrap();
    assert_eq!(client.quota().await.unwrap(), (1_000, 5_000));
}

/// Empty files and directories cost no bytes, so entries have their own limit: `max_files`
/// counts files, directories and partial uploads, refuses the next with error 403, and a
/// removal makes room again.
#[tokio::test]
async fn entries_are_limited_by_max_files() {
    let server = TestServer::start();
    server.add_user("q", "pw", 1 << 20);
    ftp_actor::auth::UserStore::update(server.data_dir(), |store| {
        store.user_mut("q")?.max_files = Some(4);
        Ok(())
    })
    .unwrap();
    let mut client = server.login("q", "pw").await;
    // The running server sees the store's change within a poll.
    for _ in 0..200 {
        if client.quota_report().await.unwrap().max_files == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(client.quota_report().await.unwrap().max_files, 4);
    assert_eq!(client.quota_report().await.unwrap().files, 0);
    let empty = server.local("empty");
    std::fs::write(&empty, b"").unwrap();
    client.mkdir("d1").await.unwrap();
    client.mkdir("d1/d2").await.unwrap();
    client.put(&empty, "d1/e1", &NoProgress).await.unwrap();
    client.put(&empty, "e2", &NoProgress).await.unwrap();
    let error = client.mkdir("d3").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooManyFiles), "{error}");
    let error = client.put(&empty, "e3", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooManyFiles), "{error}");
    // An overwrite's partial is an entry beside the old file until it is published, so it
    // needs room for one more too (else removing the old file meanwhile would free its entry
    // twice, as with bytes).
    let error = client.put(&empty, "e2", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooManyFiles), "{error}");
    client.rmdir("d1/d2").await.unwrap();
    client.put(&server.local("empty"), "e2", &NoProgress).await.unwrap();
    assert_eq!(client.quota_report().await.unwrap().files, 3, "published: the partial became the file");
    // A partial counts while it exists: a cut upload holds an entry until it is resumed.
    client.send(Request::Put { path: "p".into(), size: 10 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(vec![1u8; 4]) }).await.unwrap();
    drop(client);
    let mut client = server.login("q", "pw").await;
    wait_for_files(&mut client, 4).await;
    assert_eq!(client.mkdir("d3").await.unwrap_err().code(), Some(ErrorCode::TooManyFiles));
    assert_eq!(disk_entries(&server.home("q")), 4, "the disk holds what the figures say");
    // Resuming the partial needs no new entry, even at the limit.
    let ten = server.local("ten");
    std::fs::write(&ten, [1u8; 10]).unwrap();
    let report = client.put(&ten, "p", &NoProgress).await.unwrap();
    assert_eq!(report.resumed_from, 4);
    assert_eq!(client.quota_report().await.unwrap().files, 4);
    client.remove("p").await.unwrap();
    client.mkdir("d3").await.unwrap();
}

/// Polls the session's entry count until it is `files` (a dropped upload settles shortly after
/// the connection ends); panics after 10 seconds.
async fn wait_for_files(client: &mut ftp_actor::client::Client, files: u64) {
    for _ in 0..200 {
        if client.quota_report().await.unwrap().files == files {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the entry count stayed at {}", client.quota_report().await.unwrap().files);
}
