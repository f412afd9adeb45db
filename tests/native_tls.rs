//! The native protocol inside TLS: on by default, the server's certificate checked by the
//! client library in each of its ways (pinned, known servers with trust on first use, roots
//! given with `--cacert`), a plaintext client told why it is refused, and the shell's options.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use ftp_actor::client::{Client, ClientError, FirstUse, Trust, known_servers};
use ftp_actor::net::ErrorCode;
use ftp_actor::tls::Fingerprint;

fn server() -> TestServer {
    let server = TestServer::start();
    server.add_user("u", "pw", 1 << 20);
    server
}

async fn connect(server: &TestServer, trust: &Trust) -> Result<Client, ClientError> {
    Client::connect(server.addr(), trust, |_| {}).await
}

#[tokio::test]
async fn a_client_that_does_not_start_tls_is_told_why() {
    let server = server();
    let error = connect(&server, &Trust::Plaintext).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TlsRequired), "{error}");
    assert!(error.to_string().contains("inside TLS"), "{error}");
    // The server goes on serving clients that do.
    let mut client = connect(&server, &server.trust()).await.unwrap();
    client.login("u", "pw").await.unwrap();
    assert_eq!(client.pwd().await.unwrap(), "/");
}

#[tokio::test]
async fn a_pinned_certificate_must_be_the_one_shown() {
    let server = server();
    let wrong = Fingerprint::of(b"another certificate");
    let error = connect(&server, &Trust::Pinned(wrong)).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ServerCertChanged), "{error}");
    let text = error.to_string();
    assert!(text.contains(&wrong.to_string()) && text.contains(&server.fingerprint().to_string()), "{text}");
}

#[tokio::test]
async fn known_servers_are_trusted_on_first_use_then_held_to_their_certificate() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known_servers");
    let name = server.addr().to_string();
    let shown = server.fingerprint();

    // Refused: nothing is recorded, and the sentence shows the fingerprint and what to do.
    let refuse = Trust::KnownServers { file: file.clone(), first_use: FirstUse::Refuse };
    let error = connect(&server, &refuse).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ServerCertUnknown), "{error}");
    assert!(error.to_string().contains(&shown.to_string()), "{error}");
    assert!(!file.exists());

    // Asked: the question names the server and its fingerprint; "no" refuses, "yes" records.
    let asked = Arc::new(Mutex::new(Vec::new()));
    let ask = |answer: bool| {
        let asked = asked.clone();
        Trust::KnownServers {
            file: file.clone(),
            first_use: FirstUse::Ask(Arc::new(move |server: &str, seen: &Fingerprint| {
                asked.lock().unwrap().push((server.to_string(), *seen));
                answer
            })),
        }
    };
    assert_eq!(connect(&server, &ask(false)).await.unwrap_err().code(), Some(ErrorCode::ServerCertUnknown));
    let mut client = connect(&server, &ask(true)).await.unwrap();
    client.login("u", "pw").await.unwrap();
    assert_eq!(*asked.lock().unwrap(), vec![(name.clone(), shown), (name.clone(), shown)]);
    assert_eq!(known_servers::read(&file, &name).unwrap(), Some(shown));

    // Known now: not asked again.
    connect(&server, &ask(false)).await.unwrap();
    assert_eq!(asked.lock().unwrap().len(), 2);

    // Another certificate for the same name is refused, whatever first use would say.
    std::fs::write(&file, format!("{name} {}\n", Fingerprint::of(b"the old certificate"))).unwrap();
    let error = connect(&server, &ask(true)).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ServerCertChanged), "{error}");
    let text = error.to_string();
    assert!(text.contains(&shown.to_string()) && text.contains(&file.display().to_string()), "{text}");
    assert_eq!(asked.lock().unwrap().len(), 2, "a changed certificate is never offered for trust");
}

/// A person may take longer to compare a fingerprint than the server gives a connection to log
/// in: once the answer is recorded, the client connects again.
#[tokio::test]
async fn a_slow_answer_on_first_use_does_not_cost_the_login() {
    let server = TestServer::start_with(|config| config.login_timeout_secs = 1);
    server.add_user("u", "pw", 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let slow = FirstUse::Ask(Arc::new(|_: &str, _: &Fingerprint| {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        true
    }));
    let trust = Trust::KnownServers { file: dir.path().join("known"), first_use: slow };
    let mut client = connect(&server, &trust).await.unwrap();
    client.login("u", "pw").await.unwrap();
    assert_eq!(client.pwd().await.unwrap(), "/");
}

#[tokio::test]
async fn roots_given_as_cacert_must_vouch_for_the_certificate() {
    let server = server();
    let mut client = connect(&server, &Trust::from_ca_file(&server.cert()).unwrap()).await.unwrap();
    client.login("u", "pw").await.unwrap();
    // Another server's certificate is not a root of this one.
    let other = tempfile::tempdir().unwrap();
    let (cert, key) = (other.path().join("cert.pem"), other.path().join("key.pem"));
    ftp_actor::tls::generate_if_missing(&cert, &key).unwrap();
    let error = connect(&server, &Trust::from_ca_file(&cert).unwrap()).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ServerCertInvalid), "{error}");
    let missing = Trust::from_ca_file(&other.path().join("missing.pem")).err().expect("a missing file is an error");
    assert!(missing.to_string().contains("missing.pem"), "{missing}");
}

#[tokio::test]
async fn a_plaintext_test_server_is_reached_only_without_tls() {
    let server = TestServer::start_with(|config| config.plaintext_native = true);
    server.add_user("u", "pw", 1 << 20);
    let mut client = connect(&server, &Trust::Plaintext).await.unwrap();
    client.login("u", "pw").await.unwrap();
    let pinned = Trust::Pinned(Fingerprint::of(b"anything"));
    let error = connect(&server, &pinned).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TlsFailed), "{error}");
    assert!(error.to_string().contains("--plaintext"), "{error}");
}

/// A relay that terminates TLS with its own certificate (which the client was wrongly told
/// to trust) and opens its own TLS session to the server: the client binds its login to its
/// session with the relay, not the server's, and the server refuses it (208) and says why.
#[tokio::test]
async fn a_relaying_man_in_the_middle_is_refused() {
    let server = server();
    let relay = tls_relay::TlsRelay::start(server.addr(), server.trust()).await;
    let fooled = Trust::Pinned(relay.fingerprint);
    let mut client = Client::connect(relay.addr, &fooled, |_| {}).await.unwrap();
    let error = client.login("u", "pw").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::ChannelBindingMismatch), "{error}");
    assert!(error.to_string().contains("man in the middle"), "{error}");
    // The client still talks to the server through the relay, unauthenticated; a direct login works.
    let mut direct = connect(&server, &server.trust()).await.unwrap();
    direct.login("u", "pw").await.unwrap();
}

/// The shell in batch mode: a server not known yet is refused unless `--accept-new-server`,
/// which records it; a changed certificate is refused with both fingerprints.
#[test]
fn the_shell_trusts_known_servers_and_says_what_to_do() {
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("known");
    let addr = server.addr().to_string();
    let shell = |extra: &[&str]| {
        let mut command = std::process::Command::new(binary::BIN);
        command.args(["shell", "--connect", &addr, "--user", "u", "--batch", "-", "--known-servers"]);
        command.arg(&file).args(extra).env("FTP_ACTOR_PASSWORD", "pw");
        command.stdin(std::process::Stdio::null()).output().unwrap()
    };
    let shown = server.fingerprint().to_string();
    let refused = shell(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a known server") && stderr.contains(&shown), "{stderr}");
    let accepted = shell(&["--accept-new-server"]);
    assert_eq!(accepted.status.code(), Some(0), "{}", String::from_utf8_lossy(&accepted.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), format!("{addr} {shown}\n"));
    assert_eq!(shell(&[]).status.code(), Some(0), "known now");
    let old = Fingerprint::of(b"old").to_string();
    std::fs::write(&file, format!("{addr} {old}\n")).unwrap();
    let changed = shell(&["--accept-new-server"]);
    let stderr = String::from_utf8_lossy(&changed.stderr);
    assert_eq!(changed.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("changed") && stderr.contains(&old) && stderr.contains(&shown), "{stderr}");
}
