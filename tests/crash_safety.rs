//! Crash safety with real processes: the server stopped by SIGTERM (graceful) and SIGKILL
//! (abrupt), the shell killed mid-transfer; afterwards nothing wrong is visible under a file's
//! name, partials resume, and quota usage equals the bytes on disk.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::proxy::{Fault, Proxy};
use common::*;
use ftp_actor::auth::user_store::{UserStore, add_user, default_home};
use ftp_actor::client::{Client, NoProgress};
use ftp_actor::net::{ErrorCode, Request, Response};
use ftp_actor::storage::md5_of;
use serde_bytes::ByteBuf;

const BIN: &str = env!("CARGO_BIN_EXE_ftp-actor");
const CHUNK: usize = 64 << 10;

/// A data directory with one user, and `ftp-actor serve` processes started on it.
struct Site {
    dir: tempfile::TempDir,
    grace_secs: u64,
    /// More top-level configuration lines.
    extra_config: String,
}

struct Served {
    child: Child,
    addr: SocketAddr,
    trust: ftp_actor::client::Trust,
}

impl Site {
    fn new(grace_secs: u64) -> Site {
        Site::with_config(grace_secs, "")
    }

    fn with_config(grace_secs: u64, extra_config: &str) -> Site {
        let site = Site { dir: tempfile::tempdir().unwrap(), grace_secs, extra_config: extra_config.to_string() };
        add_user(&site.data(), "u", b"pw", TEST_SCRYPT, 1 << 30, None).unwrap();
        site
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn home(&self) -> PathBuf {
        self.data().join(default_home("u"))
    }

    fn serve(&self) -> Served {
        let config = self.dir.path().join("server.toml");
        std::fs::write(
            &config,
            format!(
                "shutdown_grace_secs = {}\nchunk_bytes = {CHUNK}\n{}\n[scrypt]\nlog_n = 6\n",
                self.grace_secs, self.extra_config
            ),
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--data-dir")
            .arg(self.data())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("server output").unwrap();
            if let Some(rest) = line.strip_prefix("ftp-actor listening on ") {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        Served { child, addr, trust: pinned_trust(&self.data()) }
    }
}

impl Served {
    async fn login(&self) -> Client {
        let mut client = Client::connect(self.addr, &self.trust, |_| {}).await.unwrap();
        client.login("u", "pw").await.unwrap();
        client
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit by itself and returns its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the server did not exit");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bytes_on_disk(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        total += if meta.is_dir() { 0 } else { meta.len() };
    }
    total
}

/// Starts an upload by hand and sends `chunks` chunks of `data`.
async fn start_upload(client: &mut Client, path: &str, data: &[u8], chunks: usize) {
    client.send(Request::Put { path: path.into(), size: data.len() as u64 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    for chunk in data.chunks(CHUNK).take(chunks) {
        client.send(Request::Data { bytes: bytes::Bytes::from(chunk.to_vec()) }).await.unwrap();
    }
}

fn error_code(response: Response) -> Option<u16> {
    match response {
        Response::Error { code, .. } => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn sigterm_lets_an_upload_finish_and_closes_idle_sessions() {
    let site = Site::new(30);
    let mut server = site.serve();
    let mut idle = server.login().await;
    let mut uploader = server.login().await;
    let data = random_bytes(10 * CHUNK, 1);
    start_upload(&mut uploader, "up.bin", &data, 4).await;
    wait_for_len(&site.home().join(".up.bin.ftpa-part"), 4 * CHUNK as u64).await;

    server.signal("TERM");
    // The idle session is told and closed at once.
    assert_eq!(error_code(idle.recv().await.unwrap()), Some(ErrorCode::ShuttingDown.as_u16()));
    // No new connection is accepted.
    let mut refused = false;
    for _ in 0..100 {
        if Client::connect(server.addr, &server.trust, |_| {}).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the listener closed");
    // The upload in flight finishes within the grace period, then its session closes too.
    for chunk in data.chunks(CHUNK).skip(4) {
        uploader.send(Request::Data { bytes: bytes::Bytes::from(chunk.to_vec()) }).await.unwrap();
    }
    uploader.send(Request::PutEnd { md5: ByteBuf::from(md5_of(&data).to_vec()) }).await.unwrap();
    assert!(matches!(uploader.recv().await.unwrap(), Response::PutDone { .. }));
    assert_eq!(error_code(uploader.recv().await.unwrap()), Some(ErrorCode::ShuttingDown.as_u16()));
    assert_eq!(server.wait_exit(), Some(0), "the server exits by itself once drained");
    assert_eq!(std::fs::read(site.home().join("up.bin")).unwrap(), data);
}

#[tokio::test]
async fn sigterm_grace_expires_and_the_partial_is_kept() {
    let site = Site::new(1);
    let mut server = site.serve();
    let mut uploader = server.login().await;
    let data = random_bytes(8 * CHUNK, 2);
    start_upload(&mut uploader, "slow.bin", &data, 3).await;
    wait_for_len(&site.home().join(".slow.bin.ftpa-part"), 3 * CHUNK as u64).await;
    server.signal("TERM");
    // The uploader stalls past the grace period: it is told, and the server stops.
    assert_eq!(error_code(uploader.recv().await.unwrap()), Some(ErrorCode::ShuttingDown.as_u16()));
    assert_eq!(server.wait_exit(), Some(0));
    assert!(!site.home().join("slow.bin").exists());
    assert_eq!(std::fs::metadata(site.home().join(".slow.bin.ftpa-part")).unwrap().len(), 3 * CHUNK as u64);

    // After a restart the upload resumes from the kept partial.
    let server = site.serve();
    let local = site.dir.path().join("slow.bin");
    std::fs::write(&local, &data).unwrap();
    let report = server.login().await.put(&local, "slow.bin", &NoProgress).await.unwrap();
    assert_eq!(report.resumed_from, 3 * CHUNK as u64);
    assert_eq!(std::fs::read(site.home().join("slow.bin")).unwrap(), data);
}

/// Transfers still moving when the grace period ends are told why (602), not cut off: the
/// upload's client is still sending (its session reads and drops the rest until the client
/// has the answer) and the download stops at its next chunk. Both partials resume.
#[tokio::test]
async fn transfers_still_moving_when_the_grace_ends_are_told_602() {
    let site = Site::new(1);
    let data = random_bytes(32 << 20, 5);
    std::fs::write(site.home().join("down.bin"), &data).unwrap();
    let local_up = site.dir.path().join("up.bin");
    std::fs::write(&local_up, &data).unwrap();
    let local_down = site.dir.path().join("down.bin");
    let mut server = site.serve();
    // A link of 4 MiB/s each way: each transfer would last about eight seconds.
    let proxy = Proxy::start(server.addr, Fault::Throttle { bytes_per_second: 4 << 20 });
    let mut uploader = Client::connect(proxy.addr, &server.trust, |_| {}).await.unwrap();
    uploader.login("u", "pw").await.unwrap();
    let mut downloader = Client::connect(proxy.addr, &server.trust, |_| {}).await.unwrap();
    downloader.login("u", "pw").await.unwrap();
    let (source, target) = (local_up.clone(), local_down.clone());
    let upload = tokio::spawn(async move { uploader.put(&source, "up.bin", &NoProgress).await });
    let download = tokio::spawn(async move { downloader.get("down.bin", &target, &NoProgress).await });
    wait_for_len(&site.home().join(".up.bin.ftpa-part"), 1 << 20).await;
    wait_for_len(&site.dir.path().join(".down.bin.ftpa-part"), 1 << 20).await;

    server.signal("TERM");
    let within = Duration::from_secs(20);
    let up = tokio::time::timeout(within, upload).await.unwrap().unwrap().expect_err("the upload was stopped");
    assert_eq!(up.code(), Some(ErrorCode::ShuttingDown), "{up}");
    let down = tokio::time::timeout(within, download).await.unwrap().unwrap().expect_err("the download was stopped");
    assert_eq!(down.code(), Some(ErrorCode::ShuttingDown), "{down}");
    assert_eq!(server.wait_exit(), Some(0));

    let server = site.serve();
    let mut client = server.login().await;
    let put = client.put(&local_up, "up.bin", &NoProgress).await.unwrap();
    assert!(put.resumed_from >= 1 << 20, "{put:?}");
    let got = client.get("down.bin", &local_down, &NoProgress).await.unwrap();
    assert!(
        matches!(got, ftp_actor::client::GetReport::Downloaded { resumed_from, .. } if resumed_from >= 1 << 20),
        "{got:?}"
    );
    assert_eq!(std::fs::read(site.home().join("up.bin")).unwrap(), data);
    assert_eq!(std::fs::read(&local_down).unwrap(), data);
}

/// Hashing budgeted to 1 MiB that does not refill: after a restart, a server that had to hash
/// one of two 2 MiB files again would refuse to hash the other (406).
const ONE_HASH_AT_MOST: &str = "hash_budget_bytes = 1048576\nhash_budget_refill_bytes_per_sec = 1";

/// Uploads two 2 MiB files; returns their local paths and contents.
async fn upload_two_files(site: &Site, server: &Served) -> Vec<(PathBuf, Vec<u8>)> {
    let mut client = server.login().await;
    let mut files = Vec::new();
    for i in 0..2u64 {
        let (local, data) = (site.dir.path().join(format!("f{i}.bin")), random_bytes(2 << 20, 20 + i));
        std::fs::write(&local, &data).unwrap();
        client.put(&local, &format!("f{i}.bin"), &NoProgress).await.unwrap();
        files.push((local, data));
    }
    files
}

/// Whether the saved index holds the digest of each file as stored.
fn saved_digests_cover(site: &Site, files: &[(PathBuf, Vec<u8>)]) -> bool {
    let saved = site.data().join(ftp_actor::storage::digest_index::DIGEST_FILE);
    let Ok(index) = ftp_actor::storage::DigestIndex::load(&saved, 10) else { return false };
    files.iter().all(|(local, data)| {
        let stored = site.home().join(local.file_name().unwrap());
        let stamp = ftp_actor::storage::digest_index::FileStamp::of(&std::fs::metadata(&stored).unwrap());
        index.get(&stamp) == Some(md5_of(data))
    })
}

/// A restarted server checks both files against the identical local copies without hashing.
async fn checked_without_hashing(server: &Served, files: &[(PathBuf, Vec<u8>)]) {
    let mut client = server.login().await;
    for (local, _) in files {
        let report = client.get(local.file_name().unwrap().to_str().unwrap(), local, &NoProgress).await.unwrap();
        assert!(matches!(report, ftp_actor::client::GetReport::Skipped { .. }), "{report:?}");
    }
}

/// The digests the server keeps of the files it wrote outlive a clean stop: the next start
/// checks unchanged files without hashing them again.
#[tokio::test]
async fn stored_digests_outlive_a_clean_stop() {
    let site = Site::with_config(5, ONE_HASH_AT_MOST);
    let mut server = site.serve();
    let files = upload_two_files(&site, &server).await;
    server.signal("TERM");
    assert_eq!(server.wait_exit(), Some(0));
    assert!(saved_digests_cover(&site, &files), "saved at the stop");
    checked_without_hashing(&site.serve(), &files).await;
}

/// They are saved while the server runs too (`digest_save_secs`), so a killed server keeps them.
#[tokio::test]
async fn stored_digests_saved_meanwhile_outlive_a_kill() {
    let site = Site::with_config(5, &format!("digest_save_secs = 1\n{ONE_HASH_AT_MOST}"));
    let mut server = site.serve();
    let files = upload_two_files(&site, &server).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !saved_digests_cover(&site, &files) {
        assert!(Instant::now() < deadline, "the digests were not saved while the server ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.signal("KILL");
    assert_eq!(server.wait_exit(), None, "killed");
    checked_without_hashing(&site.serve(), &files).await;
}

/// Files removed or added behind the server's back count in the quota once it is sent SIGHUP,
/// without a restart, and an upload in flight meanwhile is counted exactly once.
#[tokio::test]
async fn sighup_measures_every_home_again() {
    let site = Site::new(5);
    let server = site.serve();
    let mut client = server.login().await;
    let local = site.dir.path().join("a.bin");
    std::fs::write(&local, random_bytes(1 << 20, 30)).unwrap();
    client.put(&local, "a.bin", &NoProgress).await.unwrap();
    assert_eq!(client.quota().await.unwrap().0, 1 << 20);
    let mut uploader = server.login().await;
    let flying = random_bytes(8 * CHUNK, 32);
    start_upload(&mut uploader, "flying.bin", &flying, 3).await;
    wait_for_len(&site.home().join(".flying.bin.ftpa-part"), 3 * CHUNK as u64).await;

    std::fs::remove_file(site.home().join("a.bin")).unwrap();
    std::fs::write(site.home().join("b.bin"), random_bytes(3 << 20, 31)).unwrap();
    let before = client.quota().await.unwrap().0;
    assert_eq!(before, 1 << 20, "the server has not looked yet (and counts the partial once its upload ends)");
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.quota().await.unwrap().0 == before {
        assert!(Instant::now() < deadline, "usage not measured again: {:?}", client.quota().await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(client.quota().await.unwrap().0, 3 << 20, "b.bin; the partial still counts with its upload");

    for chunk in flying.chunks(CHUNK).skip(3) {
        uploader.send(Request::Data { bytes: bytes::Bytes::from(chunk.to_vec()) }).await.unwrap();
    }
    uploader.send(Request::PutEnd { md5: ByteBuf::from(md5_of(&flying).to_vec()) }).await.unwrap();
    assert!(matches!(uploader.recv().await.unwrap(), Response::PutDone { .. }));
    assert_eq!(client.quota().await.unwrap().0, bytes_on_disk(&site.home()), "usage == disk");
}

#[tokio::test]
async fn server_killed_mid_upload_loses_nothing() {
    let site = Site::new(30);
    std::fs::write(site.home().join("keep.bin"), b"previous version").unwrap();
    let data = random_bytes(16 * CHUNK, 3);
    let local = site.dir.path().join("keep.bin");
    std::fs::write(&local, &data).unwrap();
    for (round, chunks) in [3usize, 9, 14].into_iter().enumerate() {
        let server = site.serve();
        let mut client = server.login().await;
        start_upload(&mut client, "keep.bin", &data, chunks).await;
        wait_for_len(&site.home().join(".keep.bin.ftpa-part"), (chunks * CHUNK) as u64).await;
        drop(server); // SIGKILL
        // Nothing wrong under the name; the store is intact.
        assert_eq!(std::fs::read(site.home().join("keep.bin")).unwrap(), b"previous version", "round {round}");
        assert!(UserStore::load(&site.data()).unwrap().users.contains_key("u"));
        let _ = std::fs::remove_file(site.home().join(".keep.bin.ftpa-part"));
    }

    // Killed once more mid-upload; this time the restart resumes it.
    let server = site.serve();
    let mut client = server.login().await;
    start_upload(&mut client, "keep.bin", &data, 7).await;
    let kept = wait_for_len(&site.home().join(".keep.bin.ftpa-part"), (7 * CHUNK) as u64).await;
    drop(server);
    let server = site.serve();
    let mut client = server.login().await;
    let report = client.put(&local, "keep.bin", &NoProgress).await.unwrap();
    assert_eq!(report.resumed_from, kept);
    assert_eq!(hex::encode(report.md5), md5_hex(&data));
    assert_eq!(std::fs::read(site.home().join("keep.bin")).unwrap(), data);
    let (used, _) = client.quota().await.unwrap();
    assert_eq!(used, bytes_on_disk(&site.home()), "quota usage equals the bytes on disk");
}

/// Runs the shell in batch mode on `commands` in `cwd`, through `addr`, trusting the
/// certificate `cert`.
fn shell(addr: SocketAddr, cert: &Path, cwd: &Path, commands: &str) -> Child {
    let mut child = Command::new(BIN)
        .args(["shell", "--connect", &addr.to_string(), "--user", "u", "--batch", "-", "--cacert"])
        .arg(cert)
        .env("FTP_ACTOR_PASSWORD", "pw")
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(commands.as_bytes()).unwrap();
    child
}

#[tokio::test]
async fn shell_killed_mid_put_and_mid_get_resumes() {
    let site = Site::new(30);
    let server = site.serve();
    let work = site.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let cert = site.data().join(ftp_actor::tls::GENERATED_CERT);
    // Much larger than the kernel's socket buffers (a few MiB each way on loopback): a killed
    // shell's last bytes still reach the server from those buffers, and the file must be big
    // enough that they cannot complete it.
    let data = random_bytes(64 << 20, 4);
    std::fs::write(work.join("big.bin"), &data).unwrap();
    // A slow link, so the kill lands mid-transfer at an offset chosen at random.
    let proxy = Proxy::start(server.addr, Fault::Throttle { bytes_per_second: 8 << 20 });
    let offsets = random_bytes(2, 5);
    let put_at = (1 << 20) + u64::from(offsets[0]) * 8192;
    let get_at = (1 << 20) + u64::from(offsets[1]) * 8192;

    let mut put = shell(proxy.addr, &cert, &work, "put big.bin\n");
    wait_for_len(&site.home().join(".big.bin.ftpa-part"), put_at).await;
    put.kill().unwrap();
    put.wait().unwrap();
    let out = shell(server.addr, &cert, &work, "put big.bin\n").wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("resumed at") && stdout.contains(&md5_hex(&data)), "{stdout}");
    assert_eq!(std::fs::read(site.home().join("big.bin")).unwrap(), data);

    let mut get = shell(proxy.addr, &cert, &work, "get big.bin copy.bin\n");
    wait_for_len(&work.join(".copy.bin.ftpa-part"), get_at).await;
    get.kill().unwrap();
    get.wait().unwrap();
    assert!(!work.join("copy.bin").exists());
    let out = shell(server.addr, &cert, &work, "get big.bin copy.bin\n").wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("resumed at") && stdout.contains(&md5_hex(&data)), "{stdout}");
    assert_eq!(std::fs::read(work.join("copy.bin")).unwrap(), data);
}
