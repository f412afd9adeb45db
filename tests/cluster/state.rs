//! Several instances on one PostgreSQL (`state.backend = "postgres"`): users added or changed
//! through the real `ftp-actor user` binary reach every instance, a new password ends the
//! user's sessions on all of them (206), failed logins on one ban on the others, and a
//! database restart is ridden out without restarting an instance. Real servers: the
//! `ftp-actor serve` binary twice and Debian's PostgreSQL, started by scripts/postgres.sh.

use std::process::Command;
use std::time::Duration;

use crate::common::binary::BIN;
use crate::common::cluster::Cluster;
use crate::common::postgres::Postgres;
use ftp_actor::client::Client;
use ftp_actor::net::{ErrorCode, Response};

/// The session is told, unasked, that it ends because its account changed.
async fn told_revoked(client: &mut Client) {
    let told = tokio::time::timeout(Duration::from_secs(20), client.recv()).await.expect("no word within 20 s");
    assert!(matches!(told, Ok(Response::Error { code: 206, .. })), "{told:?}");
}

#[tokio::test]
async fn a_new_password_ends_the_users_sessions_on_every_instance() {
    let cluster = Cluster::start("");
    let added = cluster.user(&["add", "alice", "--quota", "1MiB"], "first");
    assert!(added.contains("user alice added"), "{added}");
    // The user reaches both instances, and logs in on both with the same password.
    let mut on_a = cluster.login(0, "alice", "first").await;
    let mut on_b = cluster.login(1, "alice", "first").await;
    assert_eq!((on_a.pwd().await.unwrap(), on_b.pwd().await.unwrap()), ("/".into(), "/".into()));
    assert_eq!(on_b.quota().await.unwrap().1, 1 << 20, "the quota set through the database");

    cluster.user(&["passwd", "alice"], "second");
    told_revoked(&mut on_a).await;
    told_revoked(&mut on_b).await;
    for instance in 0..2 {
        let old = cluster.try_login(instance, "alice", "first").await;
        assert_eq!(old.err().and_then(|e| e.code()), Some(ErrorCode::AuthFailed), "instance {instance}");
        assert_eq!(cluster.login(instance, "alice", "second").await.pwd().await.unwrap(), "/");
    }
    // A quota change reaches the sessions already open, on every instance.
    let mut again = cluster.login(1, "alice", "second").await;
    cluster.user(&["quota", "alice", "2MiB"], "");
    crate::common::wait_for_quota(&mut again, |_, limit| limit == 2 << 20).await;
    // A removed user is gone everywhere.
    cluster.user(&["del", "alice"], "");
    told_revoked(&mut again).await;
    let listed = cluster.user(&["list"], "");
    assert!(!listed.contains("alice"), "{listed}");
}

#[tokio::test]
async fn failed_logins_on_one_instance_ban_on_the_other() {
    let cluster = Cluster::start("");
    cluster.user(&["add", "bob"], "pw");
    cluster.login(1, "bob", "pw").await;
    // Two failures on A, one on B: three in all, the ban threshold, and neither instance saw
    // three itself.
    cluster.fail_logins(0, "bob", 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.fail_logins(1, "bob", 1).await;
    cluster.wait_for_ban(1).await;
    cluster.wait_for_ban(0).await;
    let log = cluster.instances[0].log();
    assert!(!log.contains("cannot share failed logins"), "{log}");
}

#[tokio::test]
async fn instances_ride_out_a_database_restart() {
    let cluster = Cluster::start("");
    cluster.user(&["add", "carol"], "pw");
    let mut session = cluster.login(0, "carol", "pw").await;
    cluster.login(1, "carol", "pw").await;

    cluster.postgres.stop();
    // Sessions and logins go on with the users already known.
    assert_eq!(session.pwd().await.unwrap(), "/");
    for instance in 0..2 {
        assert_eq!(cluster.login(instance, "carol", "pw").await.pwd().await.unwrap(), "/", "instance {instance}");
    }
    // Two failures on A while the database is down wait there for it.
    cluster.fail_logins(0, "carol", 2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.postgres.restart();

    // Neither instance was restarted: a new password ends the session on A, and the failures
    // that waited on A count on B.
    cluster.user(&["passwd", "carol"], "new");
    told_revoked(&mut session).await;
    cluster.fail_logins(1, "carol", 1).await;
    cluster.wait_for_ban(1).await;
    cluster.wait_for_ban(0).await;
    let a = &cluster.instances[0];
    let noticed = |text: &str| a.logged(|line| line.contains(text), Duration::from_secs(10)).is_some();
    assert!(noticed("cannot share failed logins"), "the outage was not noticed: {}", a.log());
    assert!(noticed("shared with the other instances again"), "{}", a.log());
}

#[test]
fn a_database_newer_than_the_server_is_refused_at_start() {
    let postgres = Postgres::start();
    let config =
        ftp_actor::config::PostgresConfig { url: postgres.url.clone(), pool_size: 1, tls_ca_file: Default::default() };
    let database = ftp_actor::state::postgres::Database::open(&config).unwrap();
    database
        .blocking::<_, ftp_actor::state::postgres::DatabaseError, _, _>(|client| async move {
            client.execute("INSERT INTO ftp_actor_schema (version) VALUES (999)", &[]).await?;
            Ok(())
        })
        .unwrap();
    let text = refused_at_start(&postgres.state_config());
    assert!(text.contains("schema version 999, newer than this server knows"), "{text}");
}

/// `ftp-actor serve` on `state` (a config file's lines) refuses to start; returns what it said.
fn refused_at_start(state: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster.toml");
    std::fs::write(&file, state).unwrap();
    let output = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config", file.to_str().unwrap()])
        .args(["--data-dir", dir.path().join("data").to_str().unwrap()])
        .output()
        .unwrap();
    let text = crate::common::output_text(&output);
    assert!(!output.status.success(), "it started: {text}");
    text
}

/// A database that takes TLS connections only: with `state.postgres.tls_ca_file` naming its CA,
/// both instances and the `user` commands work as over plain TCP; without it, or with another
/// CA, the server refuses to start and says why.
#[tokio::test]
async fn the_database_is_reached_over_tls_with_its_certificate_checked() {
    let postgres = Postgres::start_with_tls();
    let url = postgres.url.clone();
    assert!(postgres.ca.is_some(), "the database's CA");
    let cluster = Cluster::start_on(postgres, "");
    cluster.user(&["add", "alice", "--quota", "1MiB"], "pw");
    // Both log in with the user the database holds (their files are each their own here).
    for instance in 0..2 {
        let mut client = cluster.login(instance, "alice", "pw").await;
        client.mkdir("made").await.unwrap();
        assert_eq!(client.list(None).await.unwrap().entries.len(), 1);
    }

    let plain = format!("[state]\nbackend = \"postgres\"\n[state.postgres]\nurl = \"{url}\"\n");
    let said = refused_at_start(&plain);
    assert!(said.contains("no encryption"), "{said}");

    let other = tempfile::tempdir().unwrap();
    let (other_ca, other_key) = (other.path().join("ca.pem"), other.path().join("key.pem"));
    ftp_actor::tls::generate_if_missing(&other_ca, &other_key).unwrap();
    let said = refused_at_start(&format!("{plain}tls_ca_file = \"{}\"\n", other_ca.display()));
    assert!(said.contains("certificate"), "{said}");
}
