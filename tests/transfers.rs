//! Transfers: end-to-end MD5, injected corruption, resume after dropped connections at random
//! offsets in both directions, stale partials, concurrent uploads to one path and concurrent
//! downloads into one local file.

mod common;

use std::time::Duration;

use common::proxy::{Direction, Fault, Proxy};
use common::*;
use ftp_actor::client::{Client, ClientError, GetReport, NoProgress, PutReport};
use ftp_actor::net::ErrorCode;

const MIB: usize = 1 << 20;

/// Logs in as `u` through `addr` (a proxy in front of `server`).
async fn login_via(server: &TestServer, addr: std::net::SocketAddr) -> Client {
    let mut client = Client::connect(addr, &server.trust(), |_| {}).await.unwrap();
    client.login("u", "pw").await.unwrap();
    client
}

fn server_with_user() -> TestServer {
    let server = TestServer::start();
    server.add_user("u", "pw", 1 << 30);
    server
}

/// A server with user `u` whose resume-hashing budget of `bytes` does not refill (one byte
/// per second), so that hashing a test did not expect shows as error 406.
fn server_with_hash_budget(bytes: u64) -> TestServer {
    let server = TestServer::start_with(|c| {
        c.hash_budget_bytes = bytes;
        c.hash_budget_refill_bytes_per_sec = 1;
    });
    server.add_user("u", "pw", 1 << 30);
    server
}

/// Puts, retrying while an interrupted earlier upload to the same path is still being
/// wound down by its (dying) session: that is the documented "in use" behaviour.
async fn put_retrying_in_use(client: &mut Client, local: &std::path::Path, remote: &str) -> PutReport {
    for _ in 0..50 {
        match client.put(local, remote, &NoProgress).await {
            Err(e) if e.code() == Some(ErrorCode::InUse) => tokio::time::sleep(Duration::from_millis(100)).await,
            other => return other.unwrap(),
        }
    }
    panic!("the path stayed in use");
}

/// A server without TLS (`plaintext_native`), so that bytes altered on the way reach the
/// end-to-end MD5 check, which TLS does not replace (it also catches what a disk or a bug
/// alters, which TLS never sees).
fn plaintext_server_with_user() -> TestServer {
    let server = TestServer::start_with(|config| config.plaintext_native = true);
    server.add_user("u", "pw", 1 << 30);
    server
}

#[tokio::test]
async fn corrupted_upload_is_refused_and_leaves_no_file() {
    let server = plaintext_server_with_user();
    std::fs::write(server.home("u").join("keep.bin"), b"old contents").unwrap();
    let data = random_bytes(MIB, 7);
    let local = server.local("up.bin");
    std::fs::write(&local, &data).unwrap();
    let proxy = Proxy::start(server.addr(), Fault::Flip { direction: Direction::ToServer, offset: 600_000 });
    let mut client = login_via(&server, proxy.addr).await;
    let error = client.put(&local, "keep.bin", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ChecksumMismatch), "{error}");
    assert_eq!(std::fs::read(server.home("u").join("keep.bin")).unwrap(), b"old contents", "the old file is untouched");
    assert!(!server.home("u").join(".keep.bin.ftpa-part").exists(), "the wrong partial is discarded");
    // The same session goes on working, and a clean retry succeeds.
    let mut direct = server.login("u", "pw").await;
    direct.put(&local, "keep.bin", &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(server.home("u").join("keep.bin")).unwrap(), data);
    assert_eq!(client.pwd().await.unwrap(), "/");
}

#[tokio::test]
async fn corrupted_download_is_refused_and_leaves_no_file() {
    let server = plaintext_server_with_user();
    let data = random_bytes(MIB, 8);
    std::fs::write(server.home("u").join("f.bin"), &data).unwrap();
    let proxy = Proxy::start(server.addr(), Fault::Flip { direction: Direction::ToClient, offset: 700_000 });
    let mut client = login_via(&server, proxy.addr).await;
    let local = server.local("f.bin");
    let error = client.get("f.bin", &local, &NoProgress).await.unwrap_err();
    assert!(matches!(error, ClientError::ChecksumMismatch { .. }), "{error}");
    assert!(!local.exists(), "no wrong file under the name");
    assert!(!ftp_actor::client::local_file::partial_path(&local).exists(), "no wrong partial kept");
}

/// `get big.iso /dev/null`, or into a FIFO another program reads: the bytes go into the
/// special file, which stays what it was (the partial renamed over it had replaced `/dev/null`
/// with a regular file), and no partial or saved state is left beside it.
#[tokio::test]
async fn a_download_into_a_fifo_writes_into_it_and_leaves_it_a_fifo() {
    use std::os::unix::fs::FileTypeExt;
    let server = server_with_user();
    let data = random_bytes(3 * MIB + 5, 11);
    std::fs::write(server.home("u").join("f.bin"), &data).unwrap();
    let fifo = server.local("pipe");
    make_fifo(&fifo);
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::read(fifo).unwrap()
    });
    let mut client = server.login("u", "pw").await;
    let report = client.get("f.bin", &fifo, &NoProgress).await.unwrap();
    assert!(matches!(report, GetReport::Downloaded { size, resumed_from: 0, .. } if size == data.len() as u64));
    // Checked before the reader is joined: a FIFO replaced by a file would leave it waiting.
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
    let beside: Vec<_> = std::fs::read_dir(fifo.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(beside, ["pipe"], "nothing left beside it");
    assert!(reader.join().unwrap() == data, "the reader got every byte");
}

/// An upload announces its size; a FIFO has none, and its bytes used to be read as an empty
/// file and reported verified. It is refused before the server is asked.
#[tokio::test]
async fn an_upload_from_a_fifo_is_refused_before_the_server_is_asked() {
    let server = server_with_user();
    let fifo = server.local("pipe");
    make_fifo(&fifo);
    // A program writing into the FIFO, as a user piping data in would have.
    let writer = std::thread::spawn({
        let fifo = fifo.clone();
        move || std::fs::write(fifo, b"piped data")
    });
    let mut client = server.login("u", "pw").await;
    let error = client.put(&fifo, "up.bin", &NoProgress).await.unwrap_err();
    assert!(error.to_string().contains("not a regular file"), "{error}");
    assert_eq!(std::fs::read_dir(server.home("u")).unwrap().count(), 0, "nothing on the server");
    assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on");
    assert_eq!(std::fs::read(&fifo).unwrap(), b"piped data", "the FIFO was left unread");
    writer.join().unwrap().unwrap();
}

/// A FIFO another program put in a home (or under an upload's partial name) is refused with
/// 309 at once: opening it to read used to wait for a writer forever on a disk worker, and
/// a few such requests took the whole pool from every user.
#[tokio::test]
async fn a_fifo_in_a_home_is_refused_at_once_and_holds_no_disk_worker() {
    let server = TestServer::start_with(|config| config.max_concurrency = 2);
    server.add_user("u", "pw", 1 << 30);
    make_fifo(&server.home("u").join("trap"));
    make_fifo(&server.home("u").join(".up.bin.ftpa-part"));
    std::fs::write(server.local("up.bin"), b"data").unwrap();
    let mut client = server.login("u", "pw").await;
    // More requests than disk workers: each would have pinned one.
    let at_once = Duration::from_secs(10);
    for _ in 0..4 {
        let got = tokio::time::timeout(at_once, client.get("trap", &server.local("trap"), &NoProgress)).await;
        let error = got.expect("the get waits on the FIFO").unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::NotAFile), "{error}");
        let put = tokio::time::timeout(at_once, client.put(&server.local("up.bin"), "up.bin", &NoProgress)).await;
        let error = put.expect("the put waits on the FIFO").unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::NotAFile), "{error}");
    }
    client.put(&server.local("up.bin"), "other.bin", &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(server.home("u").join("other.bin")).unwrap(), b"data", "the pool still serves");
}

/// Over TLS (the default) a byte altered on the way fails the record's authentication: the
/// connection ends at once, in either direction, and nothing wrong is published or kept under
/// the name.
#[tokio::test]
async fn a_byte_altered_in_transit_under_tls_ends_the_connection() {
    let server = server_with_user();
    std::fs::write(server.home("u").join("keep.bin"), b"old contents").unwrap();
    let data = random_bytes(MIB, 17);
    let local = server.local("up.bin");
    std::fs::write(&local, &data).unwrap();
    let proxy = Proxy::start(server.addr(), Fault::Flip { direction: Direction::ToServer, offset: 600_000 });
    let mut client = login_via(&server, proxy.addr).await;
    let error = client.put(&local, "keep.bin", &NoProgress).await.unwrap_err();
    assert!(matches!(error, ClientError::Io(_) | ClientError::Closed), "{error}");
    assert_eq!(std::fs::read(server.home("u").join("keep.bin")).unwrap(), b"old contents");

    std::fs::write(server.home("u").join("f.bin"), &data).unwrap();
    let proxy = Proxy::start(server.addr(), Fault::Flip { direction: Direction::ToClient, offset: 700_000 });
    let mut client = login_via(&server, proxy.addr).await;
    let copy = server.local("f.bin");
    let error = client.get("f.bin", &copy, &NoProgress).await.unwrap_err();
    assert!(matches!(error, ClientError::Io(_) | ClientError::Closed), "{error}");
    assert!(!copy.exists(), "no file under the name");
    // What was received before the altered record is authentic: the same get resumes it.
    let mut direct = server.login("u", "pw").await;
    direct.get("f.bin", &copy, &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), data);
}

#[tokio::test]
async fn interrupted_puts_resume_at_random_offsets() {
    let server = server_with_user();
    let data = random_bytes(3 * MIB + 12_345, 9);
    let local = server.local("big.bin");
    std::fs::write(&local, &data).unwrap();
    for (round, seed) in [11u64, 12, 13].into_iter().enumerate() {
        let cut =
            10_000 + random_bytes(8, seed).iter().fold(0u64, |a, b| a * 256 + *b as u64) % (data.len() as u64 - 20_000);
        let remote = format!("big{round}.bin");
        let proxy = Proxy::start(server.addr(), Fault::Cut { direction: Direction::ToServer, after: cut });
        let mut client = login_via(&server, proxy.addr).await;
        let error = client.put(&local, &remote, &NoProgress).await.unwrap_err();
        assert!(matches!(error, ClientError::Io(_) | ClientError::Closed), "round {round}: {error}");
        assert!(!server.home("u").join(&remote).exists(), "nothing published from a cut upload");

        let mut client = server.login("u", "pw").await;
        let report = put_retrying_in_use(&mut client, &local, &remote).await;
        assert!(report.resumed_from > 0 && report.resumed_from < cut, "round {round}: cut {cut}, {report:?}");
        assert!(!report.restarted);
        assert_eq!(hex::encode(report.md5), md5_hex(&data));
        assert_eq!(std::fs::read(server.home("u").join(&remote)).unwrap(), data, "round {round}");
    }
    let (used, _) = server.login("u", "pw").await.quota().await.unwrap();
    assert_eq!(used, 3 * data.len() as u64, "quota usage equals the bytes on disk");
}

#[tokio::test]
async fn interrupted_gets_resume_at_random_offsets() {
    let server = server_with_user();
    let data = random_bytes(3 * MIB + 777, 10);
    std::fs::write(server.home("u").join("big.bin"), &data).unwrap();
    for (round, seed) in [21u64, 22, 23].into_iter().enumerate() {
        let cut =
            10_000 + random_bytes(8, seed).iter().fold(0u64, |a, b| a * 256 + *b as u64) % (data.len() as u64 - 20_000);
        let local = server.local(&format!("copy{round}.bin"));
        let proxy = Proxy::start(server.addr(), Fault::Cut { direction: Direction::ToClient, after: cut });
        let mut client = login_via(&server, proxy.addr).await;
        let error = client.get("big.bin", &local, &NoProgress).await.unwrap_err();
        assert!(matches!(error, ClientError::Io(_) | ClientError::Closed), "round {round}: {error}");
        assert!(!local.exists());
        let partial = ftp_actor::client::local_file::partial_path(&local);
        let kept = std::fs::metadata(&partial).unwrap().len();
        assert!(kept > 0 && kept < cut, "round {round}: the partial keeps what arrived ({kept} of cut {cut})");

        let mut client = server.login("u", "pw").await;
        match client.get("big.bin", &local, &NoProgress).await.unwrap() {
            GetReport::Downloaded { resumed_from, md5, .. } => {
                assert_eq!(resumed_from, kept, "round {round}");
                assert_eq!(hex::encode(md5), md5_hex(&data));
            }
            other => panic!("round {round}: {other:?}"),
        }
        assert_eq!(std::fs::read(&local).unwrap(), data);
        assert!(!partial.exists());
    }
}

#[tokio::test]
async fn partials_that_do_not_match_restart_from_zero() {
    let server = TestServer::start();
    let data = random_bytes(500_000, 30);
    let local = server.local("x.bin");
    std::fs::write(&local, &data).unwrap();
    // A server partial from some other file, on disk before the user exists: the server
    // counts a home's files when it first sees the user, not files added behind its back.
    std::fs::create_dir_all(server.home("u")).unwrap();
    std::fs::write(server.home("u").join(".x.bin.ftpa-part"), random_bytes(100_000, 31)).unwrap();
    server.add_user("u", "pw", 1 << 30);
    let mut client = server.login("u", "pw").await;
    let report = client.put(&local, "x.bin", &NoProgress).await.unwrap();
    assert!(report.restarted && report.resumed_from == 0, "{report:?}");
    assert_eq!(std::fs::read(server.home("u").join("x.bin")).unwrap(), data);
    assert_eq!(client.quota().await.unwrap().0, data.len() as u64, "the discarded partial no longer counts");

    // A local partial from some other file.
    let copy = server.local("y.bin");
    std::fs::write(ftp_actor::client::local_file::partial_path(&copy), random_bytes(50_000, 32)).unwrap();
    match client.get("x.bin", &copy, &NoProgress).await.unwrap() {
        GetReport::Downloaded { resumed_from: 0, .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&copy).unwrap(), data);

    // A different local file under the name is replaced, an identical one skipped.
    std::fs::write(&copy, b"stale").unwrap();
    assert!(matches!(client.get("x.bin", &copy, &NoProgress).await.unwrap(), GetReport::Downloaded { .. }));
    assert_eq!(std::fs::read(&copy).unwrap(), data);
    assert!(matches!(client.get("x.bin", &copy, &NoProgress).await.unwrap(), GetReport::Skipped { .. }));
}

#[tokio::test]
async fn second_upload_to_the_same_path_is_in_use() {
    let server = server_with_user();
    let mut first = server.login("u", "pw").await;
    let mut second = server.login("u", "pw").await;
    // Open an upload by hand and leave it in progress.
    first.send(ftp_actor::net::Request::Put { path: "same.bin".into(), size: 10 }).await.unwrap();
    assert!(matches!(first.recv().await.unwrap(), ftp_actor::net::Response::PutReady { offset: 0, .. }));
    let local = server.local("same.bin");
    std::fs::write(&local, b"0123456789").unwrap();
    let error = second.put(&local, "same.bin", &NoProgress).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InUse), "{error}");
    // Another path is fine meanwhile.
    second.put(&local, "other.bin", &NoProgress).await.unwrap();
    drop(first);
    put_retrying_in_use(&mut second, &local, "same.bin").await;
    assert_eq!(std::fs::read(server.home("u").join("same.bin")).unwrap(), b"0123456789");
}

#[tokio::test]
async fn empty_files_and_size_mismatches() {
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let empty = server.local("empty");
    std::fs::write(&empty, b"").unwrap();
    client.put(&empty, "empty", &NoProgress).await.unwrap();
    assert_eq!(std::fs::metadata(server.home("u").join("empty")).unwrap().len(), 0);
    let back = server.local("empty.back");
    assert!(matches!(client.get("empty", &back, &NoProgress).await.unwrap(), GetReport::Downloaded { size: 0, .. }));

    use ftp_actor::net::{Request, Response};
    use serde_bytes::ByteBuf;
    // More bytes than announced: refused with 501, later frames of that upload ignored.
    client.send(Request::Put { path: "short".into(), size: 3 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(b"toolong".to_vec()) }).await.unwrap();
    client.send(Request::Data { bytes: bytes::Bytes::from(b"more".to_vec()) }).await.unwrap();
    client.send(Request::PutEnd { md5: ByteBuf::from(vec![0; 16]) }).await.unwrap();
    match client.recv().await.unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::TransferSizeMismatch.as_u16()),
        other => panic!("{other:?}"),
    }
    // Fewer bytes than announced: refused at put_end, the partial kept for resume.
    client.send(Request::Put { path: "short".into(), size: 10 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(b"abc".to_vec()) }).await.unwrap();
    client.send(Request::PutEnd { md5: ByteBuf::from(vec![0; 16]) }).await.unwrap();
    match client.recv().await.unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::TransferSizeMismatch.as_u16()),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on");
    assert!(!server.home("u").join("short").exists());
    assert_eq!(std::fs::read(server.home("u").join(".short.ftpa-part")).unwrap(), b"abc");
}

/// The server keeps the digest of each file it wrote, so checking an identical local copy or
/// downloading again costs it no hashing; a file changed behind its back is hashed afresh.
#[tokio::test]
async fn stored_digests_spare_hashing_until_the_file_changes() {
    let server = server_with_hash_budget(3 << 20);
    let data = random_bytes(2 * MIB, 40);
    let local = server.local("d.bin");
    std::fs::write(&local, &data).unwrap();
    let mut client = server.login("u", "pw").await;
    client.put(&local, "d.bin", &NoProgress).await.unwrap();
    // Without the stored digest each check would hash 2 MiB of a 3 MiB budget that does not
    // refill: the third would be refused with 406.
    for round in 0..5 {
        let report = client.get("d.bin", &local, &NoProgress).await.unwrap();
        assert!(matches!(report, GetReport::Skipped { .. }), "round {round}: {report:?}");
    }

    // Same size, new bytes, written outside the server: a stale digest would make the client
    // report a checksum mismatch; the server must notice and hash the new contents.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let changed = random_bytes(2 * MIB, 41);
    std::fs::write(server.home("u").join("d.bin"), &changed).unwrap();
    let copy = server.local("changed.bin");
    match client.get("d.bin", &copy, &NoProgress).await.unwrap() {
        GetReport::Downloaded { md5, .. } => assert_eq!(hex::encode(md5), md5_hex(&changed)),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&copy).unwrap(), changed);
}

/// An upload cut off leaves the MD5 state of its partial with the server, so resuming it costs
/// the server no hashing, cut after cut; a partial changed behind the server's back is hashed
/// afresh, and the resume notices the change.
#[tokio::test]
async fn resumed_uploads_start_from_the_state_the_server_kept() {
    let server = server_with_hash_budget(3 << 20);
    let data = random_bytes(10 * MIB, 51);
    let local = server.local("big.bin");
    std::fs::write(&local, &data).unwrap();
    // Each connection is cut after about 2 MiB of upload, so the partial grows by about that
    // much per round. Hashing each resumed prefix (2, 4, 6 MiB) would take the budget of 3 MiB,
    // which does not refill, into debt after the second resume: the third would be refused
    // with 406.
    for round in 0..4 {
        let proxy = Proxy::start(server.addr(), Fault::Cut { direction: Direction::ToServer, after: 2 * MIB as u64 });
        let mut client = login_via(&server, proxy.addr).await;
        let mut retries = 0;
        let error = loop {
            match client.put(&local, "big.bin", &NoProgress).await {
                Err(e) if e.code() == Some(ErrorCode::InUse) && retries < 50 => {
                    // The session cut off in the round before is still winding down.
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => break other.expect_err("the connection is cut mid-upload"),
            }
        };
        assert!(matches!(error, ClientError::Io(_) | ClientError::Closed), "round {round}: {error}");
    }
    let mut client = server.login("u", "pw").await;
    let report = put_retrying_in_use(&mut client, &local, "big.bin").await;
    assert!(report.resumed_from >= 6 * MIB as u64 && !report.restarted, "{report:?}");
    assert_eq!(std::fs::read(server.home("u").join("big.bin")).unwrap(), data);

    // The same again, but the partial's first byte is changed in place before the resume: the
    // kept state no longer describes it, the server hashes it from the disk, the prefixes
    // differ, and the upload starts over. Trusting the kept state would have published the
    // changed byte under a matching MD5.
    let proxy = Proxy::start(server.addr(), Fault::Cut { direction: Direction::ToServer, after: 2 * MIB as u64 });
    let mut cut = login_via(&server, proxy.addr).await;
    cut.put(&local, "again.bin", &NoProgress).await.expect_err("cut mid-upload");
    let partial = server.home("u").join(".again.bin.ftpa-part");
    // The cut upload has ended on the server once its bytes are settled in the quota (its
    // state is kept before that): only then is the partial changed behind its back.
    let mut watcher = server.login("u", "pw").await;
    let home = server.home("u");
    wait_for_quota(&mut watcher, |used, _| used == disk_bytes(&home)).await;
    let mut file = std::fs::OpenOptions::new().write(true).open(&partial).unwrap();
    std::io::Write::write_all(&mut file, &[!data[0]]).unwrap();
    drop(file);
    let mut client = server.login("u", "pw").await;
    let report = put_retrying_in_use(&mut client, &local, "again.bin").await;
    assert!(report.restarted, "{report:?}");
    assert_eq!(std::fs::read(server.home("u").join("again.bin")).unwrap(), data);
}

/// In hashing debt a user's `put` still resumes a partial whose MD5 state the server kept, as
/// it hashes nothing; one that the server would have to hash waits (406).
#[tokio::test]
async fn in_hashing_debt_only_a_resume_that_would_hash_waits() {
    let server = server_with_hash_budget(1 << 20);
    let data = random_bytes(4 * MIB, 52);
    let local = server.local("four.bin");
    std::fs::write(&local, &data).unwrap();
    let home = server.home("u");
    // An upload cut off: the server keeps its partial's state.
    let proxy = Proxy::start(server.addr(), Fault::Cut { direction: Direction::ToServer, after: MIB as u64 });
    login_via(&server, proxy.addr).await.put(&local, "kept.bin", &NoProgress).await.expect_err("cut mid-upload");
    // Partials put there behind the server's back have no kept state: resuming the first hashes
    // its 2 MiB and takes the budget of 1 MiB into debt.
    std::fs::write(home.join(".a.bin.ftpa-part"), &data[..2 * MIB]).unwrap();
    std::fs::write(home.join(".b.bin.ftpa-part"), &data[..MIB]).unwrap();
    let mut client = server.login("u", "pw").await;
    assert_eq!(client.put(&local, "a.bin", &NoProgress).await.unwrap().resumed_from, 2 * MIB as u64);
    let refused = client.put(&local, "b.bin", &NoProgress).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::HashBudgetExhausted), "{refused}");
    let resumed = put_retrying_in_use(&mut client, &local, "kept.bin").await;
    assert!(resumed.resumed_from > 0 && !resumed.restarted, "{resumed:?}");
    assert_eq!(std::fs::read(home.join("kept.bin")).unwrap(), data);
}

/// A download cut off leaves the MD5 state of its partial beside it, and the next `get` starts
/// from that state instead of hashing the partial: so a forged state (made for the partial as
/// it is, but of other bytes) is what the client sends, the server finds the prefix different,
/// and the whole file comes again, correct.
#[tokio::test]
async fn a_resumed_get_starts_from_the_state_saved_beside_its_partial() {
    use ftp_actor::client::{local_file::partial_path, partial_state};
    use ftp_actor::integrity::{Digest, Md5};
    let server = server_with_user();
    let data = random_bytes(6 * MIB, 53);
    std::fs::write(server.home("u").join("big.bin"), &data).unwrap();
    let local = server.local("got.bin");
    let partial = partial_path(&local);
    let state = partial_state::state_path(&partial);
    let cut_get = async || {
        let proxy = Proxy::start(server.addr(), Fault::Cut { direction: Direction::ToClient, after: 2 * MIB as u64 });
        login_via(&server, proxy.addr).await.get("big.bin", &local, &NoProgress).await.expect_err("cut mid-download");
        std::fs::metadata(&partial).unwrap().len()
    };

    let kept = cut_get().await;
    assert!(kept > 0 && state.exists(), "{kept} bytes kept, and their state");
    let mut client = server.login("u", "pw").await;
    match client.get("big.bin", &local, &NoProgress).await.unwrap() {
        GetReport::Downloaded { resumed_from, .. } => assert_eq!(resumed_from, kept),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&local).unwrap(), data);
    assert!(!partial.exists() && !state.exists(), "nothing left beside the file");

    std::fs::remove_file(&local).unwrap();
    let kept = cut_get().await;
    let mut forged = Md5::new();
    forged.update(vec![0u8; kept as usize]);
    partial_state::save(&partial, &std::fs::File::open(&partial).unwrap(), &forged);
    match client.get("big.bin", &local, &NoProgress).await.unwrap() {
        GetReport::Downloaded { resumed_from, .. } => assert_eq!(resumed_from, 0, "the forged state was sent"),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&local).unwrap(), data);
}

/// The chunk that completes an upload waits for `put_end` (it is written when publishing):
/// bytes after it are still refused with 501, the partial keeps what came before, and the
/// session goes on.
#[tokio::test]
async fn data_after_the_completing_chunk_is_refused() {
    use ftp_actor::net::{Request, Response};
    use serde_bytes::ByteBuf;
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    client.send(Request::Put { path: "exact".into(), size: 3 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    client.send(Request::Data { bytes: bytes::Bytes::from(b"abc".to_vec()) }).await.unwrap();
    client.send(Request::Data { bytes: bytes::Bytes::from(b"d".to_vec()) }).await.unwrap();
    client.send(Request::PutEnd { md5: ByteBuf::from(ftp_actor::storage::md5_of(b"abc").to_vec()) }).await.unwrap();
    match client.recv().await.unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::TransferSizeMismatch.as_u16()),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on");
    assert!(!server.home("u").join("exact").exists(), "nothing published");
    assert_eq!(std::fs::read(server.home("u").join(".exact.ftpa-part")).unwrap(), b"abc");
}

/// Sends `data` as data frames of `chunk` bytes (low level, as a client library would).
async fn send_chunks(client: &mut Client, data: &[u8], chunk: usize) {
    use ftp_actor::net::Request;
    for piece in data.chunks(chunk) {
        client.send(Request::Data { bytes: bytes::Bytes::from(piece.to_vec()) }).await.unwrap();
    }
}

/// A large upload is streamed into one disk job: bytes past its announced size fail there, and
/// the failure reaches the client once (at a later data frame or at `put_end`, whichever the
/// session is handling when it learns of it); the partial keeps exactly the announced bytes,
/// and the session goes on.
#[tokio::test]
async fn a_streamed_upload_refuses_data_past_its_size_once() {
    use ftp_actor::net::{Request, Response};
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let data = random_bytes(2 * MIB + 3 * 65536, 7);
    let size = 2 * MIB;
    client.send(Request::Put { path: "over".into(), size: size as u64 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    send_chunks(&mut client, &data, 65536).await;
    let md5 = ftp_actor::storage::md5_of(&data[..size]);
    client.send(Request::PutEnd { md5: serde_bytes::ByteBuf::from(md5.to_vec()) }).await.unwrap();
    match client.recv().await.unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::TransferSizeMismatch.as_u16()),
        other => panic!("{other:?}"),
    }
    assert_eq!(client.pwd().await.unwrap(), "/", "one answer, and the session goes on");
    assert!(!server.home("u").join("over").exists(), "nothing published");
    assert_eq!(std::fs::read(server.home("u").join(".over.ftpa-part")).unwrap(), &data[..size]);
    assert_eq!(client.quota().await.unwrap().0, size as u64, "the partial counts, nothing more");
}

/// `put_restart` in the middle of a streamed upload: the stream writes what it was sent and
/// hands the upload back, the partial is emptied, the whole file then uploads and verifies,
/// and the quota holds exactly the file.
#[tokio::test]
async fn put_restart_during_a_streamed_upload_starts_over() {
    use ftp_actor::net::{Request, Response};
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let data = random_bytes(3 * MIB + 12345, 8);
    client.send(Request::Put { path: "again".into(), size: data.len() as u64 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    send_chunks(&mut client, &random_bytes(MIB, 9), 65536).await;
    client.send(Request::PutRestart).await.unwrap();
    match client.recv().await.unwrap() {
        Response::PutReady { offset: 0, prefix_md5, .. } => {
            assert_eq!(prefix_md5[..], ftp_actor::storage::md5_of(b"")[..]);
        }
        other => panic!("{other:?}"),
    }
    send_chunks(&mut client, &data, 256 << 10).await;
    let md5 = ftp_actor::storage::md5_of(&data);
    client.send(Request::PutEnd { md5: serde_bytes::ByteBuf::from(md5.to_vec()) }).await.unwrap();
    match client.recv().await.unwrap() {
        Response::PutDone { size, md5: theirs } => {
            assert_eq!(size, data.len() as u64);
            assert_eq!(theirs[..], md5[..]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(server.home("u").join("again")).unwrap(), data);
    assert!(!server.home("u").join(".again.ftpa-part").exists());
    assert_eq!(client.quota().await.unwrap().0, data.len() as u64);
}

/// `transfer_stall_secs` counts time in which no byte moves, not the time a frame takes: on
/// a link so slow that one frame takes longer than the stall limit, bytes still arrive all
/// along, and the upload completes.
#[tokio::test]
async fn a_slow_link_is_not_taken_for_a_stall() {
    let server = TestServer::start_with(|config| {
        config.transfer_stall_secs = 1;
        config.chunk_bytes = 16 << 10;
    });
    server.add_user("u", "pw", 1 << 30);
    // 8 KiB/s: a 16 KiB frame takes two seconds to arrive, twice the stall limit.
    let proxy = Proxy::start(server.addr(), Fault::Throttle { bytes_per_second: 8 << 10 });
    let data = random_bytes(24 << 10, 11);
    let local = server.local("slow.bin");
    std::fs::write(&local, &data).unwrap();
    let mut client = login_via(&server, proxy.addr).await;
    let report = client.put(&local, "slow.bin", &NoProgress).await.unwrap();
    assert_eq!(hex::encode(report.md5), md5_hex(&data));
    assert_eq!(std::fs::read(server.home("u").join("slow.bin")).unwrap(), data);
}

#[tokio::test]
async fn a_second_download_into_the_same_local_file_is_refused_while_the_first_runs() {
    let server = server_with_user();
    let data = random_bytes(16 * MIB, 13);
    std::fs::write(server.home("u").join("big.bin"), &data).unwrap();
    let local = server.local("copy.bin");
    // The first download crawls through a slow link; the second one (from another shell in
    // the same directory, say) comes while it runs.
    let proxy = Proxy::start(server.addr(), Fault::Throttle { bytes_per_second: 4 << 20 });
    let mut first = login_via(&server, proxy.addr).await;
    let target = local.clone();
    let first = tokio::spawn(async move { first.get("big.bin", &target, &NoProgress).await });
    wait_for_len(&server.local(".copy.bin.ftpa-part"), MIB as u64).await;

    let mut second = login_via(&server, server.addr()).await;
    let refused = second.get("big.bin", &local, &NoProgress).await.unwrap_err();
    assert!(
        matches!(&refused, ClientError::Local { .. }) && refused.to_string().contains("another download"),
        "{refused}"
    );

    let report = tokio::time::timeout(Duration::from_secs(60), first).await.unwrap().unwrap().unwrap();
    assert!(matches!(report, GetReport::Downloaded { resumed_from: 0, .. }), "{report:?}");
    assert_eq!(std::fs::read(&local).unwrap(), data, "the first download is whole and alone in the file");
    // Once it is done, a download of the same file finds it there.
    assert!(matches!(second.get("big.bin", &local, &NoProgress).await.unwrap(), GetReport::Skipped { .. }));
}

/// A `put` of a file the server already has (the same size and a digest it knows) sends
/// nothing: the stored file is not rewritten and the quota does not move. A file of the same
/// size but other bytes is uploaded as usual, and so is a file the server never hashed (put
/// there behind its back: it offers only digests it knows, it never reads a file for a put).
#[tokio::test]
async fn a_put_of_a_file_the_server_already_has_sends_nothing() {
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let data = random_bytes(3 * MIB + 5, 11);
    let local = server.local("same.bin");
    std::fs::write(&local, &data).unwrap();
    let first = client.put(&local, "same.bin", &NoProgress).await.unwrap();
    assert!(!first.skipped);
    let stored = server.home("u").join("same.bin");
    let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&stored).unwrap());
    let (used, _) = client.quota().await.unwrap();

    let again = client.put(&local, "same.bin", &NoProgress).await.unwrap();
    assert!(again.skipped, "{again:?}");
    assert_eq!(hex::encode(again.md5), md5_hex(&data));
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&stored).unwrap()), inode, "not replaced");
    assert_eq!(client.quota().await.unwrap().0, used);
    assert!(!server.home("u").join(".same.bin.ftpa-part").exists(), "no partial left behind");

    // The same size, other bytes: uploaded.
    let other = random_bytes(data.len(), 12);
    std::fs::write(&local, &other).unwrap();
    let replaced = client.put(&local, "same.bin", &NoProgress).await.unwrap();
    assert!(!replaced.skipped && !replaced.restarted && replaced.resumed_from == 0, "{replaced:?}");
    assert_eq!(std::fs::read(&stored).unwrap(), other);

    // The same bytes as a file the server has never hashed: uploaded.
    std::fs::write(server.home("u").join("behind.bin"), &other).unwrap();
    let unknown = client.put(&local, "behind.bin", &NoProgress).await.unwrap();
    assert!(!unknown.skipped, "{unknown:?}");
    assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on");
}

/// `put_cancel` ends an upload as a lost connection would: a partial with data stays and the
/// next `put` resumes it; an upload cancelled before any data leaves no partial; outside an
/// upload it is an unexpected message (102) and the session goes on.
#[tokio::test]
async fn put_cancel_keeps_a_partial_with_data_and_removes_an_empty_one() {
    use ftp_actor::net::{Request, Response};
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let data = random_bytes(2 * MIB, 13);
    let local = server.local("cancel.bin");
    std::fs::write(&local, &data).unwrap();
    let partial = server.home("u").join(".cancel.bin.ftpa-part");

    client.send(Request::Put { path: "cancel.bin".into(), size: data.len() as u64 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    assert!(partial.exists());
    client.send(Request::PutCancel).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Response::DONE);
    assert!(!partial.exists(), "an empty partial is removed");

    client.send(Request::Put { path: "cancel.bin".into(), size: data.len() as u64 }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::PutReady { offset: 0, .. }));
    send_chunks(&mut client, &data[..MIB], 256 << 10).await;
    client.send(Request::PutCancel).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Response::DONE);
    assert_eq!(std::fs::read(&partial).unwrap(), &data[..MIB], "the partial keeps what was sent");
    assert!(!server.home("u").join("cancel.bin").exists(), "nothing published");

    let resumed = client.put(&local, "cancel.bin", &NoProgress).await.unwrap();
    assert_eq!(resumed.resumed_from, MIB as u64);
    assert_eq!(std::fs::read(server.home("u").join("cancel.bin")).unwrap(), data);

    client.send(Request::PutCancel).await.unwrap();
    match client.recv().await.unwrap() {
        Response::Error { code, .. } => assert_eq!(code, ErrorCode::UnexpectedMessage.as_u16()),
        other => panic!("{other:?}"),
    }
    client.send(Request::Noop).await.unwrap();
    assert_eq!(client.recv().await.unwrap(), Response::DONE, "noop outside an upload too");
    assert_eq!(client.pwd().await.unwrap(), "/");
}

/// While the client hashes its own file with an upload open (the whole file, to compare with
/// the server's; or the prefix it resumes from), it sends `noop`s, so the upload is not closed
/// as stalled however long the hash takes (`transfer_stall_secs`: 1 s here). In the test
/// profile our MD5 is unoptimised (about 46 MiB/s), so hashing 96 MiB takes about two seconds;
/// without the `noop`s both `put`s below failed with 502 (transfer stalled).
#[tokio::test]
async fn puts_whose_local_hashing_outlasts_the_stall_limit_go_on() {
    let server = TestServer::start_with(|config| config.transfer_stall_secs = 1);
    server.add_user("u", "pw", 1 << 30);
    let mut client = server.login("u", "pw").await;
    let data = random_bytes(96 * MIB + 5, 17);
    let local = server.local("slow.bin");
    std::fs::write(&local, &data).unwrap();
    assert!(!client.put(&local, "slow.bin", &NoProgress).await.unwrap().skipped);
    let again = client.put(&local, "slow.bin", &NoProgress).await.unwrap();
    assert!(again.skipped, "{again:?}");

    // A resume from a 96 MiB partial: the client hashes its first 96 MiB before sending.
    std::fs::write(server.home("u").join(".resumed.bin.ftpa-part"), &data[..96 * MIB]).unwrap();
    let resumed = client.put(&local, "resumed.bin", &NoProgress).await.unwrap();
    assert_eq!((resumed.resumed_from, resumed.restarted), (96 * MIB as u64, false), "{resumed:?}");
    assert_eq!(std::fs::read(server.home("u").join("resumed.bin")).unwrap(), data);
    assert_eq!(client.pwd().await.unwrap(), "/");
}

/// A local failure during a download names the path the user gave, never the hidden partial
/// (`.NAME.ftpa-part`) the user did not ask for.
#[tokio::test]
async fn a_local_error_names_the_path_given_not_the_hidden_partial() {
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    std::fs::write(server.home("u").join("x.bin"), b"data").unwrap();
    // The parent of the local path is a file: nothing can be created under it.
    let blocker = server.local("not-a-dir");
    std::fs::write(&blocker, b"a file").unwrap();
    let local = blocker.join("x.bin");
    let error = client.get("x.bin", &local, &NoProgress).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&local.display().to_string()), "{message}");
    assert!(!message.contains("ftpa-part"), "{message}");
}

/// Cancels its token once the transfer has moved `total` bytes: a Ctrl-C right after the
/// last byte.
struct CancelAtEnd {
    token: tokio_util::sync::CancellationToken,
    total: u64,
    moved: std::sync::atomic::AtomicU64,
}

impl ftp_actor::client::Progress for CancelAtEnd {
    fn begin(&self, _: u64, _: u64) {}
    fn advance(&self, bytes: u64) {
        let moved = self.moved.fetch_add(bytes, std::sync::atomic::Ordering::SeqCst) + bytes;
        if moved >= self.total {
            self.token.cancel();
        }
    }
    fn end(&self) {}
}

/// An interrupt after an upload's last byte and its `put_end` were sent says so: the server
/// publishes the file anyway, and a "partial kept" message would be wrong.
#[tokio::test]
async fn an_interrupt_after_the_last_byte_of_a_put_says_the_file_may_be_stored() {
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let data = random_bytes(1000, 61);
    let local = server.local("end.bin");
    std::fs::write(&local, &data).unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    client.set_interrupt(token.clone());
    let progress = CancelAtEnd { token, total: data.len() as u64, moved: Default::default() };
    let error = client.put(&local, "end.bin", &progress).await.unwrap_err();
    assert!(matches!(error, ClientError::InterruptedAtEnd), "{error:?}");
    // The server had every byte and the MD5: it publishes.
    let stored = server.home("u").join("end.bin");
    for _ in 0..500 {
        if stored.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(std::fs::read(&stored).unwrap(), data);
}

/// Runs `act` once, when the transfer first moves: another program writing the local file
/// while it is being uploaded.
struct OnFirstChunk<F: Fn() + Send + Sync> {
    act: F,
    done: std::sync::atomic::AtomicBool,
}

impl<F: Fn() + Send + Sync> ftp_actor::client::Progress for OnFirstChunk<F> {
    fn begin(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64) {
        if !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            (self.act)();
        }
    }
    fn end(&self) {}
}

/// A local file written while it is uploaded (appended to, or changed in place) makes the
/// `put` fail with what happened: the server holds what was read, which may be a prefix or a
/// mix of old and new bytes, and "verified" alone would hide that. A file replaced by a rename
/// meanwhile (as editors save) was read whole as it was, and is no error.
#[tokio::test]
async fn a_local_file_written_during_its_upload_is_reported() {
    use std::io::{Seek, Write};
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    // Several chunks, so that the file's end is still unread when the first chunk is sent (the
    // reader runs at most a few chunks ahead of the connection).
    let data = random_bytes(4 * MIB + 5, 71);
    let local = server.local("log.bin");
    let long_ago = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    let write_original = || {
        std::fs::write(&local, &data).unwrap();
        // An old time, so that any write changes it whatever the file system's clock grain.
        std::fs::File::options().write(true).open(&local).unwrap().set_modified(long_ago).unwrap();
    };

    write_original();
    let append = OnFirstChunk {
        act: || std::fs::File::options().append(true).open(&local).unwrap().write_all(b"one more line\n").unwrap(),
        done: Default::default(),
    };
    let error = client.put(&local, "appended.bin", &append).await.unwrap_err();
    match &error {
        ClientError::ChangedWhileRead { read, now, .. } => {
            assert_eq!((*read, *now), (data.len() as u64, data.len() as u64 + 14))
        }
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("changed while it was read"), "{error}");
    assert_eq!(std::fs::read(server.home("u").join("appended.bin")).unwrap(), data, "the bytes read, whole");

    write_original();
    let tail = b"rewritten in place";
    let rewrite = OnFirstChunk {
        act: || {
            let mut file = std::fs::File::options().write(true).open(&local).unwrap();
            file.seek(std::io::SeekFrom::End(-(tail.len() as i64))).unwrap();
            file.write_all(tail).unwrap();
        },
        done: Default::default(),
    };
    let error = client.put(&local, "rewritten.bin", &rewrite).await.unwrap_err();
    assert!(matches!(error, ClientError::ChangedWhileRead { .. }), "{error:?}");
    let mut mixed = data.clone();
    let at = mixed.len() - tail.len();
    mixed[at..].copy_from_slice(tail);
    assert_eq!(std::fs::read(server.home("u").join("rewritten.bin")).unwrap(), mixed, "old and new bytes");

    write_original();
    let replacement = server.local("log.bin.new");
    std::fs::write(&replacement, b"a new version").unwrap();
    let rename = OnFirstChunk { act: || std::fs::rename(&replacement, &local).unwrap(), done: Default::default() };
    let report = client.put(&local, "renamed.bin", &rename).await.unwrap();
    assert_eq!(hex::encode(report.md5), md5_hex(&data));
    assert_eq!(std::fs::read(server.home("u").join("renamed.bin")).unwrap(), data, "the file as it was opened");
    assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on");
}

/// A local file that shrinks while it is uploaded fails the `put` on our side while the
/// server waits for the rest: the client ends the upload (`put_cancel`), so the session goes
/// on, and what was sent stays as the server's partial. Before, the next request was refused
/// with 102 ("an upload is in progress").
#[tokio::test]
async fn a_local_file_that_shrinks_during_its_upload_leaves_the_session_usable() {
    let server = server_with_user();
    let mut client = server.login("u", "pw").await;
    let local = server.local("shrinking.bin");
    std::fs::write(&local, random_bytes(4 * MIB, 72)).unwrap();
    let shrink = OnFirstChunk {
        act: || std::fs::File::options().write(true).open(&local).unwrap().set_len(MIB as u64).unwrap(),
        done: Default::default(),
    };
    let error = client.put(&local, "shrinking.bin", &shrink).await.unwrap_err();
    assert!(error.to_string().contains("shrank"), "{error}");
    assert_eq!(client.pwd().await.unwrap(), "/", "the session goes on");
    assert!(server.home("u").join(".shrinking.bin.ftpa-part").exists(), "what was sent is kept");
    assert!(!server.home("u").join("shrinking.bin").exists(), "nothing published");

    // A small file (one chunk) that shrinks between its size and its read, the same way.
    let small = server.local("small.bin");
    std::fs::write(&small, b"0123456789").unwrap();
    let truncate = TruncateAtBegin(small.clone());
    let error = client.put(&small, "small.bin", &truncate).await.unwrap_err();
    assert!(error.to_string().contains("shrank"), "{error}");
    client.mkdir("after").await.unwrap();
    assert!(server.home("u").join("after").is_dir());
}

/// Empties the file when the upload's data starts: a one-chunk upload reads it after that.
struct TruncateAtBegin(std::path::PathBuf);

impl ftp_actor::client::Progress for TruncateAtBegin {
    fn begin(&self, _: u64, _: u64) {
        std::fs::File::options().write(true).open(&self.0).unwrap().set_len(0).unwrap();
    }
    fn advance(&self, _: u64) {}
    fn end(&self) {}
}
