//! The traversal corpus over the wire: `..` above home, NUL bytes, overlong names and paths,
//! reserved names, and symlinks planted inside the home that point out. Nothing outside the
//! home is read, written or listed, whatever the command.

mod common;

use common::*;
use ftp_actor::client::{Client, NoProgress};
use ftp_actor::net::ErrorCode;

fn snapshot(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_default();
            (p.display().to_string(), data)
        })
        .collect();
    files.sort();
    files
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() && !path.is_symlink() {
            out.extend(walk(&path));
        }
    }
    out
}

async fn code_of<T: std::fmt::Debug>(
    call: impl std::future::Future<Output = Result<T, ftp_actor::client::ClientError>>,
) -> Option<ErrorCode> {
    match call.await {
        Ok(value) => panic!("expected a refusal, got {value:?}"),
        Err(error) => Some(error.code().unwrap_or_else(|| panic!("not a server error: {error}"))),
    }
}

#[tokio::test]
async fn traversal_corpus_is_refused_and_nothing_outside_is_touched() {
    let server = TestServer::start();
    server.add_user("j", "pw", 1 << 20);
    server.add_user("victim", "pw", 1 << 20);
    let home = server.home("j");
    let outside = server.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), b"outside secret").unwrap();
    std::fs::write(server.home("victim").join("private.txt"), b"victim's data").unwrap();
    std::os::unix::fs::symlink("/", home.join("escape")).unwrap();
    std::os::unix::fs::symlink("../..", home.join("up")).unwrap();
    std::os::unix::fs::symlink(&outside, home.join("outside")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), home.join("canary_link")).unwrap();
    std::os::unix::fs::symlink("../victim", home.join("neighbour")).unwrap();
    std::fs::create_dir(home.join("sub")).unwrap();
    std::fs::write(home.join("sub/ok.txt"), b"inside").unwrap();
    let before_outside = snapshot(&outside);
    let before_victim = snapshot(&server.home("victim"));

    let mut c = server.login("j", "pw").await;
    let long_name = "n".repeat(241);
    let long_path = "a/".repeat(2100);
    // (path, the code every lookup of it must get)
    let corpus: Vec<(&str, ErrorCode)> = vec![
        ("..", ErrorCode::PathOutsideHome),
        ("../", ErrorCode::PathOutsideHome),
        ("../..", ErrorCode::PathOutsideHome),
        ("/..", ErrorCode::PathOutsideHome),
        ("/../victim/private.txt", ErrorCode::PathOutsideHome),
        ("sub/../../victim", ErrorCode::PathOutsideHome),
        ("./../j/sub", ErrorCode::PathOutsideHome),
        ("sub/../../../../../../etc/passwd", ErrorCode::PathOutsideHome),
        ("escape", ErrorCode::PathOutsideHome),
        ("escape/etc/passwd", ErrorCode::PathOutsideHome),
        ("up", ErrorCode::PathOutsideHome),
        ("up/victim/private.txt", ErrorCode::PathOutsideHome),
        ("outside", ErrorCode::PathOutsideHome),
        ("outside/secret.txt", ErrorCode::PathOutsideHome),
        ("canary_link", ErrorCode::PathOutsideHome),
        ("neighbour/private.txt", ErrorCode::PathOutsideHome),
        ("a\0b", ErrorCode::InvalidPath),
        ("line\nbreak", ErrorCode::InvalidPath),
        ("tab\there", ErrorCode::InvalidPath),
        ("\0", ErrorCode::InvalidPath),
        (&long_name, ErrorCode::InvalidPath),
        (&long_path, ErrorCode::InvalidPath),
        (".x.ftpa-part", ErrorCode::InvalidPath),
        ("/etc/passwd", ErrorCode::NotFound),
    ];
    let local = server.local("payload");
    std::fs::write(&local, b"attacker payload").unwrap();
    for (path, code) in &corpus {
        let shown = path.escape_debug().to_string();
        let shown = &shown[..shown.len().min(60)];
        assert_eq!(code_of(c.list(Some(path))).await, Some(*code), "ls {shown}");
        assert_eq!(code_of(c.cd(path)).await, Some(*code), "cd {shown}");
        let got = server.local("got");
        assert_eq!(code_of(c.get(path, &got, &NoProgress)).await, Some(*code), "get {shown}");
        assert!(!got.exists());
        // Writes through the corpus never land outside. (An upload *to* a bare link name
        // replaces the link itself; that is checked after the loop.)
        let link_names = ["escape", "up", "outside", "canary_link"];
        let is_link = link_names.contains(path);
        if !is_link {
            assert_eq!(code_of(c.put(&local, path, &NoProgress)).await, Some(*code), "put {shown}");
        }
        let below = |name: &str| format!("{path}/{name}");
        assert_eq!(code_of(c.put(&local, &below("new.txt"), &NoProgress)).await, Some(*code), "put {shown}/new.txt");
        assert_eq!(code_of(c.mkdir(&below("d"))).await, Some(*code), "mkdir {shown}/d");
        assert_eq!(code_of(c.rename("sub/ok.txt", &below("moved.txt"))).await, Some(*code), "mv into {shown}");
        assert_eq!(code_of(c.remove(&below("secret.txt"))).await, Some(*code), "rm {shown}/secret.txt");
        assert_eq!(code_of(c.remove(&below("private.txt"))).await, Some(*code), "rm {shown}/private.txt");
        // rmdir of a link's own name is refused as the link it is (an entry of the home).
        let rmdir_code = if is_link { ErrorCode::NotADirectory } else { *code };
        assert_eq!(code_of(c.rmdir(path)).await, Some(rmdir_code), "rmdir {shown}");
        assert_eq!(c.pwd().await.unwrap(), "/", "the session stays home after {shown}");
    }
    assert_eq!(snapshot(&outside), before_outside, "nothing outside the home changed");
    assert_eq!(snapshot(&server.home("victim")), before_victim, "the neighbour's home is untouched");
    assert_eq!(std::fs::read(home.join("sub/ok.txt")).unwrap(), b"inside");

    // Uploading to a link's own name replaces the link (an entry of the home), never its target.
    for link in ["escape", "outside", "canary_link"] {
        c.put(&local, link, &NoProgress).await.unwrap();
        let meta = std::fs::symlink_metadata(home.join(link)).unwrap();
        assert!(meta.is_file(), "{link} is now a plain file in the home");
    }
    assert_eq!(snapshot(&outside), before_outside, "the links' targets are untouched");

    // Symlinks that stay inside the home work.
    std::os::unix::fs::symlink("sub", home.join("inner")).unwrap();
    assert_eq!(c.cd("inner").await.unwrap(), "/inner");
    assert_eq!(c.list(None).await.unwrap().entries[0].name, "ok.txt");

    // The neighbour cannot see this home either, and the server serves everyone still.
    let mut v = Client::connect(server.addr(), &server.trust(), |_| {}).await.unwrap();
    v.login("victim", "pw").await.unwrap();
    assert_eq!(code_of(v.list(Some("../j"))).await, Some(ErrorCode::PathOutsideHome));
    assert_eq!(v.list(None).await.unwrap().entries.len(), 1);
}

/// A directory swapped for a symlink pointing out while an upload runs: publishing refuses
/// to follow it, and nothing is written outside.
#[tokio::test]
async fn a_directory_swapped_for_an_outward_symlink_mid_upload_is_refused() {
    use ftp_actor::net::{Request, Response};
    use serde_bytes::ByteBuf;
    let server = TestServer::start();
    server.add_user("j", "pw", 1 << 20);
    let home = server.home("j");
    let outside = server.dir.path().join("outside-swap");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::create_dir(home.join("d")).unwrap();
    let mut c = server.login("j", "pw").await;
    let data = random_bytes(200_000, 3);
    c.send(Request::Put { path: "d/f.bin".into(), size: data.len() as u64 }).await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), Response::PutReady { .. }));
    c.send(Request::Data { bytes: bytes::Bytes::from(data[..100_000].to_vec()) }).await.unwrap();
    assert_eq!(c.pwd().await.unwrap_err().code(), Some(ErrorCode::UnexpectedMessage), "the write is done");
    // The swap, between the upload's start and its end.
    std::fs::rename(home.join("d"), home.join("d.real")).unwrap();
    std::os::unix::fs::symlink(&outside, home.join("d")).unwrap();
    c.send(Request::Data { bytes: bytes::Bytes::from(data[100_000..].to_vec()) }).await.unwrap();
    c.send(Request::PutEnd { md5: ByteBuf::from(ftp_actor::storage::md5_of(&data).to_vec()) }).await.unwrap();
    match c.recv().await.unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::PathOutsideHome.as_u16()),
        other => panic!("published through an outward symlink: {other:?}"),
    }
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "nothing written outside");
    assert_eq!(c.pwd().await.unwrap(), "/");
}

/// A symlink flipped between an inside target and an outside one while a client lists and
/// downloads through it: every answer is either inside data or a refusal.
#[tokio::test]
async fn racing_symlink_swaps_never_leak_outside_data() {
    let server = TestServer::start();
    server.add_user("j", "pw", 1 << 20);
    let home = server.home("j");
    let outside = server.dir.path().join("outside-race");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("f"), b"OUTSIDE SECRET").unwrap();
    std::fs::create_dir(home.join("in")).unwrap();
    std::fs::write(home.join("in/f"), b"inside data").unwrap();
    std::os::unix::fs::symlink("in", home.join("link")).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (home, outside, stop) = (home.clone(), outside.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut out = false;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let temp = home.join("link.tmp");
                let target: &std::path::Path = if out { &outside } else { std::path::Path::new("in") };
                std::os::unix::fs::symlink(target, &temp).unwrap();
                std::fs::rename(&temp, home.join("link")).unwrap(); // atomic swap
                out = !out;
            }
        })
    };
    let mut c = server.login("j", "pw").await;
    let (mut inside, mut refused) = (0, 0);
    for i in 0..300 {
        let local = server.local(&format!("race{i}"));
        match c.get("link/f", &local, &NoProgress).await {
            Ok(_) => {
                assert_eq!(std::fs::read(&local).unwrap(), b"inside data");
                inside += 1;
            }
            Err(e) => {
                assert_eq!(e.code(), Some(ErrorCode::PathOutsideHome), "{e}");
                refused += 1;
            }
        }
        if let Ok(listing) = c.list(Some("link")).await {
            assert!(listing.entries.iter().all(|e| e.size != 14), "no outside entry listed");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(inside > 0 && refused > 0, "both sides of the race were hit ({inside} inside, {refused} refused)");
}
