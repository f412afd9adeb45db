//! A full disk (ENOSPC) during an upload, on a real small filesystem: a tmpfs of a few MiB
//! mounted by the test (the suite runs as root on the project's machines). The client gets a
//! clear error, the partial is kept and later resumed, and the server serves others meanwhile;
//! through the native client, FTP (curl) and SFTP (OpenSSH).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use ftp_actor::client::NoProgress;
use ftp_actor::net::ErrorCode;

/// A tmpfs mounted for the test's lifetime.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root (the project's machines run tests as root)");
        SmallDisk { path, _dir: dir }
    }

    fn grow(&self, megabytes: u32) {
        let status =
            Command::new("mount").args(["-o", &format!("remount,size={megabytes}m")]).arg(&self.path).status().unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A server started by `start` (given its data directory) on an 8 MiB disk, with user `u`, and
/// 16 MiB of data (made from `seed`) in a local file to upload.
fn on_a_small_disk(start: impl FnOnce(PathBuf) -> TestServer, seed: u64) -> (SmallDisk, TestServer, Vec<u8>, PathBuf) {
    let disk = SmallDisk::mount(8);
    let server = start(disk.path.join("data"));
    server.add_user("u", "pw", 1 << 30);
    let data = random_bytes(16 << 20, seed);
    let local = server.local("big.bin");
    std::fs::write(&local, &data).unwrap();
    (disk, server, data, local)
}

/// What a full disk left of `data`, uploaded to `name` in `u`'s home: no file published, and a
/// partial holding a clean prefix of `data`, neither empty nor whole. Returns its length.
fn kept_prefix(server: &TestServer, name: &str, data: &[u8]) -> u64 {
    assert!(!server.home("u").join(name).exists());
    let partial = server.home("u").join(format!(".{name}.ftpa-part"));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept < data.len() as u64, "the partial is kept: {kept} bytes");
    assert_eq!(std::fs::read(&partial).unwrap(), &data[..kept as usize], "and holds a clean prefix");
    kept
}

#[tokio::test]
async fn a_full_disk_gives_a_clear_error_and_the_upload_resumes_later() {
    let disk = SmallDisk::mount(8);
    let server = TestServer::start_with(|c| c.data_dir = disk.path.join("data"));
    server.add_user("u", "pw", 1 << 30);
    let mut client = server.login("u", "pw").await;
    let small = server.local("small.bin");
    std::fs::write(&small, random_bytes(100_000, 1)).unwrap();
    client.put(&small, "small.bin", &NoProgress).await.unwrap();

    let data = random_bytes(16 << 20, 2);
    let local = server.local("big.bin");
    std::fs::write(&local, &data).unwrap();
    let error = client.put(&local, "big.bin", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::DiskFull), "{error}");
    assert!(error.to_string().contains("disk is full"), "{error}");
    let kept = kept_prefix(&server, "big.bin", &data);

    // The server serves this session and others meanwhile.
    assert_eq!(client.pwd().await.unwrap(), "/");
    let mut other = server.login("u", "pw").await;
    let back = server.local("small.back");
    other.get("small.bin", &back, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&small).unwrap());
    let (used, _) = wait_for_quota(&mut other, |used, _| used == disk_bytes(&server.home("u"))).await;
    assert_eq!(used, 100_000 + kept, "the partial counts in the quota");

    // More room: the upload resumes from the partial and completes.
    disk.grow(64);
    let report = client.put(&local, "big.bin", &NoProgress).await.unwrap();
    assert_eq!(report.resumed_from, kept);
    assert_eq!(hex::encode(report.md5), md5_hex(&data));
    assert_eq!(std::fs::read(server.home("u").join("big.bin")).unwrap(), data);
    drop(server);
}

/// The same through the FTP front end, driven by curl: 552 for the full disk, the clean
/// prefix kept, and `curl -C -` finishing the upload once there is room.
#[test]
fn a_full_disk_during_an_ftp_upload_keeps_the_partial_for_curl_to_resume() {
    let (disk, server, data, local) = on_a_small_disk(|data| TestServer::start_ftp(|c| c.data_dir = data), 3);
    let cert = server.cert();
    let url = format!("ftp://u:pw@127.0.0.1:{}/big.bin", server.ftp_addr().port());
    let curl = |extra: &[&str]| {
        let mut command = Command::new("timeout");
        command.args(["120", "curl", "-sS", "--ssl-reqd", "--cacert", cert.to_str().unwrap()]);
        command.args(extra).args(["-T", local.to_str().unwrap(), &url]).output().expect("curl runs")
    };

    let full = curl(&[]);
    // 70 is curl's "remote disk full", its meaning of reply 552.
    assert_eq!(full.status.code(), Some(70), "{full:?}");
    kept_prefix(&server, "big.bin", &data);

    disk.grow(64);
    let resumed = curl(&["-C", "-"]);
    assert!(resumed.status.success(), "{resumed:?}");
    assert_eq!(std::fs::read(server.home("u").join("big.bin")).unwrap(), data);
}

/// The same through the SFTP listener, driven by OpenSSH's `sftp`: the `put` fails (SFTP
/// version 3 has no status for a full disk: a failure, as OpenSSH's own server answers, and
/// the reason on standard error), the clean prefix is kept, and `reput` finishes the upload
/// once there is room.
#[test]
fn a_full_disk_during_an_sftp_upload_keeps_the_partial_for_reput() {
    let (disk, server, data, local) = on_a_small_disk(|data| TestServer::start_sftp(|c| c.data_dir = data), 4);
    let openssh = common::sftp::OpenSsh::new(&server, "u", "pw");

    let full = openssh.sftp(&format!("put {} big.bin\n", local.display()));
    assert!(!full.status.success(), "{full:?}");
    // OpenSSH prints only "Failure" of the status; the reason comes on standard error.
    assert!(String::from_utf8_lossy(&full.stderr).contains("disk is full (error 401)"), "{full:?}");
    kept_prefix(&server, "big.bin", &data);
    let listed = openssh.sftp("ls -l\n");
    assert!(listed.status.success(), "the server still serves: {listed:?}");

    disk.grow(64);
    let resumed = openssh.sftp(&format!("reput {} big.bin\n", local.display()));
    assert!(resumed.status.success(), "{resumed:?}");
    assert_eq!(std::fs::read(server.home("u").join("big.bin")).unwrap(), data);
    assert!(!server.home("u").join(".big.bin.ftpa-part").exists());
}
