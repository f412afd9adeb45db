//! The quota shared by two instances (`storage.backend = "s3"`: usage and reservations in
//! PostgreSQL) is as exact as on one machine: parallel uploads of one user through both
//! instances never pass the quota, and random interleavings of puts, overwrites, removals,
//! renames, mkdirs and rmdirs from four sessions on two instances (an overwrite racing a
//! removal among them, the race that once multiplied a quota) leave usage equal to what the
//! names hold and never above the limit or `max_files`. Real servers: two `ftp-actor serve`,
//! PostgreSQL and a three-node Garage.

use std::path::{Path, PathBuf};

use crate::common::cluster::with_files_in_garage;
use ftp_actor::client::{Client, NoProgress};
use ftp_actor::net::ErrorCode;
use rand::{RngExt, SeedableRng};

const MIB: u64 = 1 << 20;

fn write_file(path: &Path, len: u64, seed: u8) {
    let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Usage as both instances report it, checked against what the home's listing holds (files
/// and partial uploads) and against the limit.
async fn check_usage(a: &mut Client, b: &mut Client, limit: u64) -> u64 {
    let on_a = a.quota_report().await.unwrap();
    let on_b = b.quota_report().await.unwrap();
    assert_eq!((on_a.used, on_a.files), (on_b.used, on_b.files), "the instances disagree");
    let listing = a.list(None).await.unwrap();
    let held: u64 = listing.entries.iter().map(|entry| entry.size).sum();
    assert_eq!(on_a.used, held, "usage is not what the names hold: {on_a:?} {:?}", listing.entries);
    assert_eq!(on_a.files, listing.entries.len() as u64, "{on_a:?} {:?}", listing.entries);
    assert!(on_a.used <= limit, "usage {} passed the limit {limit}", on_a.used);
    assert!(on_a.files <= on_a.max_files, "{} entries passed max_files {}", on_a.files, on_a.max_files);
    on_a.used
}

#[tokio::test]
async fn parallel_uploads_through_both_instances_never_pass_the_quota() {
    let (_garage, cluster) = with_files_in_garage("30MiB");
    let local = tempfile::tempdir().unwrap();
    // Six uploads of 9 MiB (two parts each), three through each instance, all at once: at
    // most three fit in 30 MiB.
    let files: Vec<PathBuf> = (0..6)
        .map(|i| {
            let path = local.path().join(format!("f{i}"));
            write_file(&path, 9 * MIB, i as u8);
            path
        })
        .collect();
    let mut sessions = Vec::new();
    for i in 0..6 {
        sessions.push(cluster.login(i % 2, "alice", "pw").await);
    }
    let puts = sessions
        .iter_mut()
        .zip(&files)
        .enumerate()
        .map(|(i, (client, file))| async move { client.put(file, &format!("f{i}"), &NoProgress).await });
    let results = futures::future::join_all(puts).await;
    let stored = results.iter().filter(|result| result.is_ok()).count();
    assert!(stored <= 3, "{stored} uploads of 9 MiB fit in 30 MiB");
    assert!(stored >= 1, "{results:?}");
    for refused in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(refused.code(), Some(ErrorCode::QuotaExceeded), "{refused}");
    }
    let (mut a, mut b) = (cluster.login(0, "alice", "pw").await, cluster.login(1, "alice", "pw").await);
    let used = check_usage(&mut a, &mut b, 30 * MIB).await;
    assert_eq!(used, stored as u64 * 9 * MIB);
}

#[tokio::test]
async fn max_files_holds_across_instances_for_directories_and_uploads_at_once() {
    let (_garage, cluster) = with_files_in_garage("30MiB");
    cluster.user(&["add", "bob", "--quota", "30MiB", "--max-files", "4"], "pw");
    let local = tempfile::tempdir().unwrap();
    let file = local.path().join("small");
    write_file(&file, 1000, 1);
    let mut sessions = Vec::new();
    for i in 0..6 {
        sessions.push(cluster.login(i % 2, "bob", "pw").await);
    }
    // Six new entries at once, through both instances, directories and files: four fit.
    let steps = sessions.iter_mut().enumerate().map(|(i, client)| {
        let file = &file;
        async move {
            let name = format!("e{i}");
            if i % 4 < 2 { client.mkdir(&name).await } else { client.put(file, &name, &NoProgress).await.map(drop) }
        }
    });
    let results = futures::future::join_all(steps).await;
    let made = results.iter().filter(|result| result.is_ok()).count();
    assert!((1..=4).contains(&made), "{made} entries made under max_files 4: {results:?}");
    for refused in results.iter().filter_map(|result| result.as_ref().err()) {
        assert_eq!(refused.code(), Some(ErrorCode::TooManyFiles), "{refused}");
    }
    drop(sessions);
    let (mut a, mut b) = (cluster.login(0, "bob", "pw").await, cluster.login(1, "bob", "pw").await);
    let (on_a, on_b) = (a.quota_report().await.unwrap(), b.quota_report().await.unwrap());
    assert_eq!((on_a.files, on_b.files), (made as u64, made as u64), "{on_a:?} {on_b:?}");
    assert_eq!(a.list(None).await.unwrap().entries.len(), made);
    // Filled up to the limit, the next entry is refused on either instance.
    for n in made..4 {
        b.mkdir(&format!("fill{n}")).await.unwrap();
    }
    for client in [&mut a, &mut b] {
        assert_eq!(client.mkdir("one-more").await.unwrap_err().code(), Some(ErrorCode::TooManyFiles));
    }
}

/// One session's random steps on the names `n0`..`n3`, as files or directories.
async fn wander(client: &mut Client, local: &Path, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for step in 0..16 {
        let name = format!("n{}", rng.random_range(0..4));
        match rng.random_range(0..6) {
            0 | 1 => {
                // A put, often an overwrite of a name another session is removing or moving.
                let size = rng.random_range(0..3 * MIB);
                let file = local.join(format!("s{seed}-{step}"));
                write_file(&file, size, step as u8);
                match client.put(&file, &name, &NoProgress).await {
                    Ok(_) => {}
                    Err(error) => assert!(
                        matches!(
                            error.code(),
                            Some(
                                ErrorCode::QuotaExceeded
                                    | ErrorCode::TooManyFiles
                                    | ErrorCode::InUse
                                    | ErrorCode::NotFound
                                    | ErrorCode::IsADirectory
                            )
                        ),
                        "put {name}: {error}"
                    ),
                }
            }
            2 => {
                if let Err(error) = client.remove(&name).await {
                    let code = error.code();
                    assert!(matches!(code, Some(ErrorCode::NotFound | ErrorCode::IsADirectory)), "rm {name}: {error}");
                }
            }
            3 => {
                if let Err(error) = client.mkdir(&name).await {
                    let code = error.code();
                    assert!(
                        matches!(code, Some(ErrorCode::AlreadyExists | ErrorCode::TooManyFiles)),
                        "mkdir {name}: {error}"
                    );
                }
            }
            4 => {
                if let Err(error) = client.rmdir(&name).await {
                    let code = error.code();
                    assert!(
                        matches!(
                            code,
                            Some(ErrorCode::NotFound | ErrorCode::NotADirectory | ErrorCode::DirectoryNotEmpty)
                        ),
                        "rmdir {name}: {error}"
                    );
                }
            }
            _ => {
                // Flat names: never into itself, and never without a directory to move into.
                let to = format!("n{}", rng.random_range(0..4));
                if let Err(error) = client.rename(&name, &to).await {
                    let code = error.code();
                    assert!(
                        matches!(code, Some(ErrorCode::NotFound | ErrorCode::AlreadyExists | ErrorCode::InUse)),
                        "mv {name} {to}: {error}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn random_interleavings_on_two_instances_keep_usage_exact() {
    let (_garage, cluster) = with_files_in_garage("6MiB");
    // Four names, three entries at most: directories and files compete for them.
    cluster.user(&["add", "carol", "--quota", "6MiB", "--max-files", "3"], "pw");
    let local = tempfile::tempdir().unwrap();
    for round in 0..4u64 {
        let user = if round % 2 == 0 { "alice" } else { "carol" };
        let mut sessions = Vec::new();
        for i in 0..4 {
            sessions.push(cluster.login(i % 2, user, "pw").await);
        }
        let steps =
            sessions.iter_mut().enumerate().map(|(i, client)| wander(client, local.path(), round * 10 + i as u64));
        futures::future::join_all(steps).await;
        drop(sessions);
        let (mut a, mut b) = (cluster.login(0, user, "pw").await, cluster.login(1, user, "pw").await);
        check_usage(&mut a, &mut b, 6 * MIB).await;
    }
}
