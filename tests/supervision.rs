//! Supervision: a panicking QuotaActor or AuthActor is restarted with its state rebuilt from
//! disk while sessions keep working; a panicking disk job never shrinks the pool.

mod common;

use std::time::Duration;

use common::*;
use ftp_actor::actors::panic_guard::InjectPanic;
use ftp_actor::actors::quota::Snapshot;
use ftp_actor::client::NoProgress;
use ftp_actor::net::{ErrorCode, Request, Response};
use serde_bytes::ByteBuf;

#[tokio::test]
async fn quota_actor_restarts_and_rebuilds_usage_with_an_upload_in_flight() {
    let server = TestServer::start();
    server.add_user("u", "pw", 1_000_000);
    let services = server.handle.as_ref().unwrap().services.clone();
    let mut client = server.login("u", "pw").await;
    let local = server.local("a");
    std::fs::write(&local, random_bytes(300_000, 1)).unwrap();
    client.put(&local, "a", &NoProgress).await.unwrap();

    // An upload in flight: 100 000 of 400 000 bytes written.
    let mut uploader = server.login("u", "pw").await;
    let big = random_bytes(400_000, 2);
    uploader.send(Request::Put { path: "big".into(), size: big.len() as u64 }).await.unwrap();
    assert!(matches!(uploader.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    uploader.send(Request::Data { bytes: bytes::Bytes::from(big[..100_000].to_vec()) }).await.unwrap();
    wait_for_partial(&server.home("u").join(".big.ftpa-part"), 100_000).await;

    // The failure: the request that caused it gets an error; the next one, sent at once,
    // waits for the restart and is answered from numbers rebuilt from disk.
    let failed = services.quota.send(InjectPanic).await.unwrap();
    assert!(failed.is_err());
    let usage = client.quota().await.unwrap();
    assert_eq!(usage, (300_000, 1_000_000), "usage rebuilt: the live partial is not yet settled");

    // The live reservation survived: 400 000 reserved + 300 000 used leaves 300 000.
    let other = server.local("c");
    std::fs::write(&other, random_bytes(300_001, 3)).unwrap();
    let refused = client.put(&other, "c", &NoProgress).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::QuotaExceeded), "{refused}");
    assert!(refused.to_string().contains("only 300000"), "{refused}");

    // The upload finishes normally; the ledger matches the disk exactly.
    for start in (100_000..big.len()).step_by(100_000) {
        uploader.send(Request::Data { bytes: bytes::Bytes::from(big[start..start + 100_000].to_vec()) }).await.unwrap();
    }
    uploader.send(Request::PutEnd { md5: ByteBuf::from(ftp_actor::storage::md5_of(&big).to_vec()) }).await.unwrap();
    assert!(matches!(uploader.recv().await.unwrap(), Response::PutDone { .. }));
    let (used, _) = wait_for_quota(&mut client, |used, _| used == 700_000).await;
    assert_eq!(used, disk_bytes(&server.home("u")));
    let snapshot = services.quota.send(Snapshot).await.unwrap().unwrap();
    assert_eq!(snapshot.live_uploads, 0, "no orphaned reservation");
    assert_eq!(snapshot.usage[0].1.reserved, 0);

    // Several failures in a row change nothing.
    for _ in 0..3 {
        let _ = services.quota.send(InjectPanic).await;
    }
    assert_eq!(client.quota().await.unwrap().0, disk_bytes(&server.home("u")));
}

async fn wait_for_partial(path: &std::path::Path, len: u64) {
    for _ in 0..200 {
        if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == len {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} never reached {len} bytes", path.display());
}

#[tokio::test]
async fn auth_actor_restarts_and_logins_keep_working() {
    let server = TestServer::start();
    server.add_user("u", "pw", 1 << 20);
    let services = server.handle.as_ref().unwrap().services.clone();
    server.login("u", "pw").await;
    assert!(services.auth.send(InjectPanic).await.unwrap().is_err());
    // After the restart: right password in, wrong one out.
    let mut client = server.login("u", "pw").await;
    assert_eq!(client.pwd().await.unwrap(), "/");
    let wrong = server.connect().await.login("u", "nope").await.unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::AuthFailed));
    // A user added while the actor was down is seen (the store is reloaded from disk).
    let _ = services.auth.send(InjectPanic).await;
    server.add_user("late", "pw2", 1 << 20);
    server.login("late", "pw2").await;
}

#[tokio::test]
async fn panicking_disk_jobs_never_shrink_the_pool() {
    let server = TestServer::start_with(|c| c.max_concurrency = 4);
    server.add_user("u", "pw", 1 << 20);
    let disk = server.handle.as_ref().unwrap().services.disk.clone();
    assert_eq!(disk.census(Duration::from_secs(5)).await, 4);
    for _ in 0..10 {
        let result: Result<(), _> = disk.run("doomed", || panic!("injected disk failure")).await;
        assert!(result.unwrap_err().message.contains("injected disk failure"));
    }
    assert_eq!(disk.census(Duration::from_secs(5)).await, 4, "every worker thread survived");
    let mut client = server.login("u", "pw").await;
    client.mkdir("still-works").await.unwrap();
}

/// A panic in a session handler, or in the future serving a request, becomes error 601 for
/// that request; the session and the server go on. (The injection point exists only in builds
/// with the `fault-injection` feature, which the tests enable.)
#[tokio::test]
async fn a_panicking_session_handler_becomes_an_internal_error() {
    let server = TestServer::start_with(|c| c.max_concurrency = 2);
    server.add_user("u", "pw", 1 << 20);
    let mut client = server.login("u", "pw").await;
    for trigger in ["fault-injection/panic-in-handler", "fault-injection/panic-in-future"] {
        let error = client.mkdir(trigger).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::Internal), "{trigger}: {error}");
        assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on after {trigger}");
    }
    client.mkdir("fine").await.unwrap();
    let mut other = server.login("u", "pw").await;
    assert_eq!(other.list(None).await.unwrap().entries.len(), 1);
}
