//! The SFTP front end of two instances keeping their files in object storage, driven by
//! OpenSSH's `sftp` (each instance's own host key pinned): what it stores through one instance
//! the other lists, serves byte for byte and renames; and an upload whose instance is killed
//! with `kill -9` is continued by `reput` through the other instance after its durable parts.
//! Real servers: two `ftp-actor serve`, PostgreSQL and a three-node Garage.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::binary::Served;
use crate::common::cluster::with_files_in_garage;
use crate::common::sftp::OpenSsh;
use crate::common::{md5_hex, must_succeed, random_bytes};
use ftp_actor::net::EntryKind;
use ftp_actor::storage::objects::PART_SIZE;

/// OpenSSH as alice against `served`'s SFTP listener; the client's files go in `dir`.
fn openssh(served: &Served, dir: &Path) -> OpenSsh {
    let address: std::net::SocketAddr = served.sftp.as_deref().expect("an SFTP listener").parse().unwrap();
    OpenSsh::at(dir, &served.data_dir(), address.port(), "alice", "pw")
}

#[tokio::test]
async fn what_sftp_stores_through_one_instance_the_other_serves() {
    let (_garage, cluster) = with_files_in_garage("100MiB");
    let [a, b] = &cluster.instances;
    let local = tempfile::tempdir().unwrap();
    let (to_a, to_b) = (openssh(a, &local.path().join("a")), openssh(b, &local.path().join("b")));
    let data = random_bytes(2 * PART_SIZE as usize + 4321, 21);
    let source = local.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();

    must_succeed(
        "mkdir and put through A",
        &to_a.sftp(&format!("mkdir docs\nput {} docs/big.bin\n", source.display())),
    );
    let copy = local.path().join("copy.bin");
    let through_b =
        to_b.sftp(&format!("ls -l docs\nget docs/big.bin {}\nrename docs/big.bin docs/moved.bin\n", copy.display()));
    must_succeed("ls, get and rename through B", &through_b);
    let listing = String::from_utf8_lossy(&through_b.stdout);
    assert!(listing.contains(&data.len().to_string()) && listing.contains("big.bin"), "{listing}");
    assert_eq!(md5_hex(&std::fs::read(&copy).unwrap()), md5_hex(&data));
    // The rename through B is what A's native clients see at once.
    let mut client = cluster.login(0, "alice", "pw").await;
    let moved = client.list(Some("docs")).await.unwrap();
    let names: Vec<_> = moved.entries.iter().map(|entry| (entry.name.as_str(), entry.size)).collect();
    assert_eq!(names, [("moved.bin", data.len() as u64)]);
}

#[tokio::test]
async fn an_sftp_upload_cut_by_kill_9_is_resumed_with_reput_through_the_other_instance() {
    let (_garage, mut cluster) = with_files_in_garage("200MiB");
    let local = tempfile::tempdir().unwrap();
    let data = random_bytes(4 * PART_SIZE as usize + 999, 22);
    let source = local.path().join("source.bin");
    std::fs::write(&source, &data).unwrap();

    // sftp sends slowly (`-l`, Kbit/s) through A; once a whole part is durable, A is killed.
    let to_a = openssh(&cluster.instances[0], &local.path().join("a"));
    let mut upload = to_a
        .sftp_command(&format!("put {} big.bin\n", source.display()), &["-l", "64000"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("cannot run sftp");
    let held = cluster.kill_the_first_instance_once_a_part_is_durable("big.bin", &mut upload).await;

    // `reput` asks stat and sends the rest from there. Until the dead instance's heartbeat
    // lapses the upload is still its own, and B refuses; then B takes it over.
    let b = &cluster.instances[1];
    let to_b = openssh(b, &local.path().join("b"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let resumed = to_b.sftp(&format!("reput {} big.bin\n", source.display()));
        if resumed.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "no resume through B: {resumed:?}\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let stored = |line: &str| line.contains("sftp put") && line.contains("big.bin") && line.contains("result=ok");
    let resumed_line =
        b.logged(stored, Duration::from_secs(10)).unwrap_or_else(|| panic!("no access line: {}", b.log()));
    assert!(
        resumed_line.contains(&format!("resumed_from={held}")),
        "the durable parts were sent again: {resumed_line}"
    );
    let copy = local.path().join("copy.bin");
    must_succeed("get through B", &to_b.sftp(&format!("get big.bin {}\n", copy.display())));
    assert_eq!(md5_hex(&std::fs::read(&copy).unwrap()), md5_hex(&data));
    assert_eq!(cluster.listed(1, "big.bin").await, Some((EntryKind::File, data.len() as u64)));
}
