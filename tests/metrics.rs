//! The metrics endpoint of the real binary (`serve --metrics-listen`): its counters move by the
//! right amounts through a refused login, a login, an upload (seen live while it runs), a
//! download and a quota refusal; `/health` answers; promtool accepts the output.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use common::binary::{Launch, Served};
use common::random_bytes;
use ftp_actor::client::{Client, NoProgress};
use ftp_actor::net::{Request, Response};

/// One HTTP request; returns the status line and the body.
fn http(addr: &str, request_line: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(stream, "{request_line}\r\nHost: test\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{response}"));
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// The value of the sample `series` (name and labels exactly as exposed), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse::<f64>().unwrap())
        .next()
        .unwrap_or(0.0)
}

struct Scraper(String);

impl Scraper {
    fn text(&self) -> String {
        let (status, body) = http(&self.0, "GET /metrics HTTP/1.1");
        assert_eq!(status, "HTTP/1.1 200 OK");
        body
    }

    fn get(&self, series: &str) -> f64 {
        sample(&self.text(), series)
    }
}

#[tokio::test]
async fn counters_move_with_logins_transfers_and_refusals() {
    let served = Served::start_with_args(Launch::alice("", false), &["--metrics-listen", "127.0.0.1:0"]);
    let scraper = Scraper(served.metrics.clone().expect("the metrics endpoint is on"));
    let logins = |result: &str| format!("ftp_actor_logins_total{{protocol=\"native\",result=\"{result}\"}}");
    let before = scraper.text();
    assert_eq!(sample(&before, &logins("failed")), 0.0);

    // A refused login, then a good one.
    let mut wrong = Client::connect(served.native.as_str(), &served.trust(), |_| {}).await.unwrap();
    assert!(wrong.login("alice", "not the password").await.is_err());
    assert_eq!(scraper.get(&logins("failed")), 1.0);
    let mut client = Client::connect(served.native.as_str(), &served.trust(), |_| {}).await.unwrap();
    client.login("alice", "pw").await.unwrap();
    assert_eq!(scraper.get(&logins("ok")), 1.0);

    // An upload seen while it runs: two sessions hold a slot.
    let active = "ftp_actor_sessions{protocol=\"native\",stage=\"active\"}";
    let mut uploading = Client::connect(served.native.as_str(), &served.trust(), |_| {}).await.unwrap();
    uploading.login("alice", "pw").await.unwrap();
    let data = random_bytes(300_000, 4);
    uploading.send(Request::Put { path: "f.bin".into(), size: data.len() as u64 }).await.unwrap();
    assert!(matches!(uploading.recv().await.unwrap(), Response::PutReady { .. }));
    uploading.send(Request::Data { bytes: bytes::Bytes::from(data[..100_000].to_vec()) }).await.unwrap();
    assert_eq!(scraper.get(active), 2.0);
    uploading.send(Request::Data { bytes: bytes::Bytes::from(data[100_000..].to_vec()) }).await.unwrap();
    let md5 = ftp_actor::storage::md5_of(&data).to_vec();
    uploading.send(Request::PutEnd { md5: serde_bytes::ByteBuf::from(md5) }).await.unwrap();
    assert!(matches!(uploading.recv().await.unwrap(), Response::PutDone { .. }));

    // A download of it, and an upload over the quota.
    let copy = served.dir.path().join("copy.bin");
    client.get("f.bin", &copy, &NoProgress).await.unwrap();
    ftp_actor::auth::UserStore::update(&served.data_dir(), |store| {
        store.user_mut("alice")?.quota = 400_000;
        Ok(())
    })
    .unwrap();
    let big = served.dir.path().join("big.bin");
    std::fs::write(&big, random_bytes(200_000, 5)).unwrap();
    let mut refused = false;
    for _ in 0..100 {
        // The running server sees the new quota within a store poll.
        if client.put(&big, "big.bin", &NoProgress).await.is_err() {
            refused = true;
            break;
        }
        client.remove("big.bin").await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the upload over the new quota was refused");

    let text = scraper.text();
    let series = |name: &str, labels: &str| sample(&text, &format!("ftp_actor_{name}{{{labels}}}"));
    let upload = "protocol=\"native\",operation=\"upload\"";
    let download = "protocol=\"native\",operation=\"download\"";
    assert_eq!(series("transfers_total", &format!("{upload},result=\"400\"")), 1.0, "{text}");
    let uploads_ok = series("transfers_total", &format!("{upload},result=\"ok\""));
    assert_eq!(series("transfers_total", &format!("{download},result=\"ok\"")), 1.0, "{text}");
    assert_eq!(series("transfer_bytes_total", download), 300_000.0, "{text}");
    // f.bin, and big.bin each time it was stored before the new quota was seen.
    assert_eq!(series("transfer_bytes_total", upload), 300_000.0 + (uploads_ok - 1.0) * 200_000.0, "{text}");
    assert_eq!(series("transfer_seconds_count", upload), uploads_ok + 1.0, "{text}");
    assert_eq!(sample(&text, "ftp_actor_quota_refusals_total"), 1.0, "{text}");
    assert_eq!(sample(&text, active), 2.0, "{text}");

    // Health, and requests the endpoint does not serve.
    assert_eq!(
        http(served.metrics.as_ref().unwrap(), "GET /health HTTP/1.1"),
        ("HTTP/1.1 200 OK".into(), "ok\n".into())
    );
    assert_eq!(http(served.metrics.as_ref().unwrap(), "POST /metrics HTTP/1.1").0, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(http(served.metrics.as_ref().unwrap(), "GET /secret HTTP/1.1").0, "HTTP/1.1 404 Not Found");
    let oversized = format!("GET /metrics HTTP/1.1\r\nX-Padding: {}", "x".repeat(10_000));
    assert_eq!(http(served.metrics.as_ref().unwrap(), &oversized).0, "HTTP/1.1 431 Request Header Fields Too Large");

    // promtool (from the Debian prometheus package, which .ci/run installs) finds no problem.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is needed (Debian package prometheus; .ci/run installs it)");
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
}

/// The FTP front end counts the same way: a refused and an accepted login, a STOR.
#[test]
fn ftp_logins_and_transfers_are_counted() {
    let config = "[ftp]\nallow_plaintext_login = true";
    let served = Served::start_with_args(Launch::alice(config, true), &["--metrics-listen", "127.0.0.1:0"]);
    let scraper = Scraper(served.metrics.clone().unwrap());
    let mut control = common::ftp_control::Control::connect(served.ftp.as_ref().unwrap().parse().unwrap());
    assert!(control.reply().starts_with("220"));
    assert!(control.command("USER alice").starts_with("331"));
    assert!(control.command("PASS wrong").starts_with("530"));
    assert!(control.command("USER alice").starts_with("331"));
    assert!(control.command("PASS pw").starts_with("230"));
    assert!(control.store("f.bin", &random_bytes(12_345, 1)).starts_with("226"));

    let text = scraper.text();
    for (series, value) in [
        ("ftp_actor_logins_total{protocol=\"ftp\",result=\"failed\"}", 1.0),
        ("ftp_actor_logins_total{protocol=\"ftp\",result=\"ok\"}", 1.0),
        ("ftp_actor_transfers_total{protocol=\"ftp\",operation=\"upload\",result=\"ok\"}", 1.0),
        ("ftp_actor_transfer_bytes_total{protocol=\"ftp\",operation=\"upload\"}", 12_345.0),
        ("ftp_actor_sessions{protocol=\"ftp\",stage=\"active\"}", 1.0),
        // A file that fits in one block is opened, written and published by one disk job.
        ("ftp_actor_pool_jobs_done_total{pool=\"disk\",job=\"store file\"}", 1.0),
        ("ftp_actor_pool_jobs_done_total{pool=\"disk\",job=\"open upload\"}", 0.0),
    ] {
        assert_eq!(sample(&text, series), value, "{series} in:\n{text}");
    }

    // A longer one opens a partial first, then writes block by block and publishes.
    assert!(control.store("big.bin", &random_bytes(3 << 20, 2)).starts_with("226"));
    let text = scraper.text();
    for (job, done) in [("store file", 1.0), ("open upload", 1.0), ("publish upload", 1.0)] {
        let series = format!("ftp_actor_pool_jobs_done_total{{pool=\"disk\",job=\"{job}\"}}");
        assert_eq!(sample(&text, &series), done, "{series} in:\n{text}");
    }
}
