//! Every session command through the real client against a real server.

mod common;

use common::*;
use ftp_actor::client::{GetReport, NoProgress};
use ftp_actor::net::{EntryKind, ErrorCode};

#[tokio::test]
async fn navigation_listing_and_file_commands() {
    let server = TestServer::start();
    server.add_user("alice", "wonderland", 10 << 20);
    let mut c = server.login("alice", "wonderland").await;

    assert_eq!(c.pwd().await.unwrap(), "/");
    c.mkdir("docs").await.unwrap();
    c.mkdir("docs/deep").await.unwrap();
    assert_eq!(c.mkdir("docs").await.unwrap_err().code(), Some(ErrorCode::AlreadyExists));
    assert_eq!(c.cd("docs/deep").await.unwrap(), "/docs/deep");
    assert_eq!(c.cd("..").await.unwrap(), "/docs");
    assert_eq!(c.pwd().await.unwrap(), "/docs");
    assert_eq!(c.cd("/").await.unwrap(), "/");
    assert_eq!(c.cd("nope").await.unwrap_err().code(), Some(ErrorCode::NotFound));
    assert_eq!(c.cd("..").await.unwrap_err().code(), Some(ErrorCode::PathOutsideHome));

    let data = random_bytes(300_000, 1);
    let local = server.local("a.bin");
    std::fs::write(&local, &data).unwrap();
    let report = c.put(&local, "docs/a.bin", &NoProgress).await.unwrap();
    assert_eq!(hex::encode(report.md5), md5_hex(&data));
    assert_eq!(std::fs::read(server.home("alice").join("docs/a.bin")).unwrap(), data);

    let listing = c.list(Some("docs")).await.unwrap();
    let names: Vec<_> = listing.entries.iter().map(|e| (e.name.as_str(), e.kind, e.size)).collect();
    assert_eq!(names, [("a.bin", EntryKind::File, 300_000), ("deep", EntryKind::Dir, names[1].2)]);
    c.cd("docs").await.unwrap();
    assert_eq!(c.list(None).await.unwrap().path, "/docs");

    let back = server.local("back.bin");
    let got = c.get("a.bin", &back, &NoProgress).await.unwrap();
    assert!(matches!(got, GetReport::Downloaded { size: 300_000, resumed_from: 0, .. }));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let again = c.get("a.bin", &back, &NoProgress).await.unwrap();
    assert!(matches!(again, GetReport::Skipped { size: 300_000, .. }), "{again:?}");

    c.rename("a.bin", "b.bin").await.unwrap();
    assert_eq!(c.rename("deep", "b.bin").await.unwrap_err().code(), Some(ErrorCode::AlreadyExists));
    assert_eq!(c.quota().await.unwrap(), (300_000, 10 << 20));
    assert_eq!(c.rmdir("/docs").await.unwrap_err().code(), Some(ErrorCode::DirectoryNotEmpty));
    c.remove("b.bin").await.unwrap();
    assert_eq!(c.quota().await.unwrap().0, 0);
    assert_eq!(c.remove("deep").await.unwrap_err().code(), Some(ErrorCode::IsADirectory));
    c.rmdir("deep").await.unwrap();
    c.cd("/").await.unwrap();
    c.rmdir("docs").await.unwrap();
    assert!(c.list(None).await.unwrap().entries.is_empty());
    c.quit().await.unwrap();
}
