//! Quota: concurrent uploads of one user from several sessions never exceed it; partials
//! count; overwriting counts the difference; refusals say how much is free.

mod common;

use common::*;
use ftp_actor::client::NoProgress;
use ftp_actor::net::{ErrorCode, Request, Response};

#[tokio::test]
async fn concurrent_uploads_never_exceed_the_quota() {
    let server = TestServer::start();
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

#[tokio::test]
async fn overwriting_counts_the_difference_and_partials_count() {
    let server = TestServer::start();
    server.add_user("q", "pw", 100_000);
    let mut client = server.login("q", "pw").await;
    let a = server.local("a");
    std::fs::write(&a, random_bytes(60_000, 1)).unwrap();
    client.put(&a, "a", &NoProgress).await.unwrap();
    // 60 000 used; replacing it with 70 000 needs only 10 000 more.
    let b = server.local("b");
    std::fs::write(&b, random_bytes(70_000, 2)).unwrap();
    client.put(&b, "a", &NoProgress).await.unwrap();
    assert_eq!(client.quota().await.unwrap(), (70_000, 100_000));
    // A new 40 000 file does not fit (30 000 free) and the refusal says so.
    let error = client.put(&b, "c", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::QuotaExceeded));
    assert!(error.to_string().contains("only 30000 of 100000 are free"), "{error}");
    assert!(!server.home("q").join(".c.ftpa-part").exists(), "a refused upload leaves no partial");

    // An interrupted upload's partial counts against the quota.
    client.send(Request::Put { path: "p".into(), size: 20_000 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(vec![1u8; 5_000]) }).await.unwrap();
    drop(client);
    let mut client = server.login("q", "pw").await;
    // The 5 000-byte partial counts.
    wait_for_quota(&mut client, |used, _| used == 75_000).await;
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
