//! Authentication: SCRAM over the wire, unknown users indistinguishable from wrong passwords,
//! no password on the wire, the server's signature checked, user changes seen live.

mod common;

use common::proxy::{Fault, Proxy};
use common::*;
use ftp_actor::auth::scram;
use ftp_actor::client::{Client, ClientError, NoProgress, Trust};
use ftp_actor::net::{ErrorCode, Request, Response};
use serde_bytes::ByteBuf;

/// Sends auth_start and returns the challenge fields.
async fn challenge(client: &mut Client, user: &str) -> (String, Vec<u8>, u8, u32, u32) {
    let client_nonce = scram::new_nonce();
    let channel_binding = Some(scram::TLS_EXPORTER.to_string());
    client
        .send(Request::AuthStart { user: user.into(), client_nonce: client_nonce.clone(), channel_binding })
        .await
        .unwrap();
    match client.recv().await.unwrap() {
        Response::AuthChallenge { nonce, salt, log_n, r, p } => {
            assert!(nonce.starts_with(&client_nonce) && nonce.len() > client_nonce.len());
            (nonce, salt.into_vec(), log_n, r, p)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_the_same() {
    let server = TestServer::start();
    server.add_user("alice", "right", 1 << 20);

    // Challenges: same shape for a real and an unknown user, stable for both.
    let mut c = server.connect().await;
    let (_, real_salt, ln1, r1, p1) = challenge(&mut c, "alice").await;
    let mut c = server.connect().await;
    let (_, real_salt_again, ..) = challenge(&mut c, "alice").await;
    let mut c = server.connect().await;
    let (_, ghost_salt, ln2, r2, p2) = challenge(&mut c, "ghost").await;
    let mut c = server.connect().await;
    let (_, ghost_salt_again, ..) = challenge(&mut c, "ghost").await;
    assert_eq!(real_salt, real_salt_again);
    assert_eq!(ghost_salt, ghost_salt_again, "the fake challenge is stable");
    assert_eq!(ghost_salt.len(), real_salt.len());
    assert_ne!(ghost_salt, real_salt);
    assert_eq!((ln1, r1, p1), (ln2, r2, p2));

    // Failures: same code, same message.
    let wrong = server.try_login("alice", "wrong").await.unwrap_err();
    let ghost = server.try_login("ghost", "whatever").await.unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::AuthFailed));
    assert_eq!(wrong.to_string(), ghost.to_string());

    // And the right password works.
    server.login("alice", "right").await;
}

/// An unknown name's failure counts exactly as a wrong password's: with a ban after two
/// failures, one of each from an address bans it.
#[tokio::test]
async fn unknown_names_count_toward_bans_as_wrong_passwords_do() {
    let server = TestServer::start_with(|c| {
        c.login_failures_before_ban = 2;
        c.login_delay_base_ms = 1;
    });
    server.add_user("alice", "right", 1 << 20);
    let ghost = server.try_login("ghost", "whatever").await.unwrap_err();
    assert_eq!(ghost.code(), Some(ErrorCode::AuthFailed));
    let wrong = server.try_login("alice", "wrong").await.unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::AuthFailed));
    let banned = server.try_login("alice", "right").await.unwrap_err();
    assert_eq!(banned.code(), Some(ErrorCode::LoginBanned), "{banned}");
}

#[tokio::test]
async fn the_password_never_crosses_the_wire() {
    let server = TestServer::start();
    let password = "correct horse battery staple";
    server.add_user("bob", password, 1 << 20);
    let proxy = Proxy::start(server.addr(), Fault::None);
    let mut client = Client::connect(proxy.addr, &server.trust(), |_| {}).await.unwrap();
    client.login("bob", password).await.unwrap();
    assert_eq!(client.pwd().await.unwrap(), "/");
    let recording = proxy.recording.lock().unwrap();
    assert!(recording.to_server.len() > 50, "traffic was recorded");
    for stream in [&recording.to_server, &recording.to_client] {
        assert!(!stream.windows(password.len()).any(|w| w == password.as_bytes()));
    }
    // Nor is anything in the store enough to log in: it holds no password.
    let store = std::fs::read_to_string(ftp_actor::auth::UserStore::path(server.data_dir())).unwrap();
    assert!(!store.contains(password));
}

#[tokio::test]
async fn user_changes_apply_without_a_restart() {
    let server = TestServer::start();
    server.add_user("carol", "one", 1 << 20);
    server.login("carol", "one").await;
    let new = ftp_actor::auth::Credentials::derive(b"two", TEST_SCRYPT).unwrap();
    ftp_actor::auth::UserStore::update(server.data_dir(), |s| {
        s.user_mut("carol")?.credentials = new;
        Ok(())
    })
    .unwrap();
    let old = server.try_login("carol", "one").await.unwrap_err();
    assert_eq!(old.code(), Some(ErrorCode::AuthFailed));
    server.login("carol", "two").await;
    ftp_actor::auth::UserStore::update(server.data_dir(), |s| {
        s.users.remove("carol");
        Ok(())
    })
    .unwrap();
    let deleted = server.try_login("carol", "two").await.unwrap_err();
    assert_eq!(deleted.code(), Some(ErrorCode::AuthFailed));
}

/// What the shell keeps to connect again after Ctrl-C: the login's key, which logs in as the
/// user without the password, and only until the password changes.
#[tokio::test]
async fn a_kept_login_key_logs_in_again_until_the_password_changes() {
    let server = TestServer::start();
    server.add_user("dora", "first", 1 << 20);
    let key = server.connect().await.login_keeping_key("dora", "first").await.unwrap();

    let mut again = server.connect().await;
    again.login_with_key("dora", &key).await.unwrap();
    again.mkdir("kept").await.unwrap();
    assert_eq!(again.cd("kept").await.unwrap(), "/kept");

    // Someone else's key is no key for dora: her challenge has her salt.
    server.add_user("eve", "first", 1 << 20);
    let eves = server.connect().await.login_keeping_key("eve", "first").await.unwrap();
    let refused = server.connect().await.login_with_key("dora", &eves).await.unwrap_err();
    assert!(matches!(refused, ClientError::KeyOutdated(_)), "{refused:?}");

    let new = ftp_actor::auth::Credentials::derive(b"second", TEST_SCRYPT).unwrap();
    ftp_actor::auth::UserStore::update(server.data_dir(), |s| {
        s.user_mut("dora")?.credentials = new;
        Ok(())
    })
    .unwrap();
    let outdated = server.connect().await.login_with_key("dora", &key).await.unwrap_err();
    assert!(matches!(outdated, ClientError::KeyOutdated(_)), "{outdated:?}");
    assert!(outdated.to_string().contains("log in again with the password"), "{outdated}");
    server.login("dora", "second").await;
}

#[tokio::test]
async fn protocol_states_are_enforced() {
    let server = TestServer::start();
    server.add_user("dave", "pw", 1 << 20);
    let mut c = server.connect().await;
    // Commands before login.
    let error = c.pwd().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotLoggedIn));
    // A proof without a challenge is out of order.
    let proof = ByteBuf::from(vec![0; 32]);
    c.send(Request::AuthProof { nonce: "x".repeat(20), proof, channel_binding_data: None }).await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), Response::Error { code: 102, .. }));
    // A bad nonce.
    let channel_binding = Some(scram::TLS_EXPORTER.to_string());
    c.send(Request::AuthStart { user: "dave".into(), client_nonce: "short".into(), channel_binding }).await.unwrap();
    assert!(matches!(c.recv().await.unwrap(), Response::Error { code: 100, .. }));
    c.login("dave", "pw").await.unwrap();
    // A second login on the same connection.
    let again = c.login("dave", "pw").await.unwrap_err();
    assert_eq!(again.code(), Some(ErrorCode::UnexpectedMessage));
    assert_eq!(c.pwd().await.unwrap(), "/");

    // Three failed logins close the connection.
    let mut c = server.connect().await;
    for _ in 0..3 {
        assert_eq!(c.login("dave", "bad").await.unwrap_err().code(), Some(ErrorCode::AuthFailed));
    }
    assert!(matches!(c.pwd().await.unwrap_err(), ClientError::Closed | ClientError::Io(_)));
}

#[tokio::test]
async fn the_same_user_can_log_in_many_times_at_once() {
    let server = TestServer::start();
    server.add_user("eve", "pw", 1 << 20);
    let mut sessions = Vec::new();
    for _ in 0..server.config.max_sessions_per_user {
        sessions.push(server.login("eve", "pw").await);
    }
    sessions[0].mkdir("shared").await.unwrap();
    for (i, s) in sessions.iter_mut().enumerate() {
        assert_eq!(s.cd("shared").await.unwrap(), "/shared", "session {i}");
    }
}

/// A server that does not know the user's keys cannot fake the final signature.
#[tokio::test]
async fn the_client_checks_the_server_signature() {
    use ftp_actor::net::FrameCodec;
    use futures::{SinkExt, StreamExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut framed = tokio_util::codec::Framed::new(stream, FrameCodec::<Request, Response>::new(1 << 20));
        let welcome = Response::Welcome {
            server: "impostor".into(),
            version: 2,
            max_frame: 1 << 20,
            chunk_size: 1 << 16,
            channel_bindings: vec![],
        };
        framed.send(welcome).await.unwrap();
        let Some(Ok(Ok(Request::AuthStart { client_nonce, .. }))) = framed.next().await else { panic!() };
        let nonce = format!("{client_nonce}{}", scram::new_nonce());
        let (log_n, r, p) = (TEST_SCRYPT.log_n, TEST_SCRYPT.r, TEST_SCRYPT.p);
        framed.send(Response::AuthChallenge { nonce, salt: ByteBuf::from(vec![1; 16]), log_n, r, p }).await.unwrap();
        let _proof = framed.next().await;
        framed.send(Response::AuthOk { server_signature: ByteBuf::from(vec![0; 32]) }).await.unwrap();
        let _ = framed.next().await;
    });
    let mut client = Client::connect(addr, &Trust::Plaintext, |_| {}).await.unwrap();
    let error = client.login("anyone", "secret").await.unwrap_err();
    assert!(matches!(error, ClientError::ServerNotAuthenticated), "{error}");
}

/// Calls `pwd` until the server refuses it; the server ends revoked sessions within a store
/// poll (two seconds), so a session that is still served after 20 seconds fails the test.
async fn refused_later(client: &mut Client) -> ClientError {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match client.pwd().await {
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Ok(_) => panic!("the session was still served 20 seconds after the change"),
            Err(error) => return error,
        }
    }
}

#[tokio::test]
async fn deleting_a_user_or_changing_a_password_ends_their_live_sessions() {
    let server = TestServer::start();
    for user in ["alice", "bob", "carol"] {
        server.add_user(user, "old", 1 << 20);
    }
    let (mut alice_1, mut alice_2) = (server.login("alice", "old").await, server.login("alice", "old").await);
    let mut bob = server.login("bob", "old").await;
    let mut carol = server.login("carol", "old").await;

    // A login whose challenge came before the password change, and whose proof (made with
    // the old password) comes after the server has seen the change.
    let (challenged, challenged_rx) = std::sync::mpsc::channel();
    let (proceed, proceed_rx) = std::sync::mpsc::channel::<()>();
    let mut late = server.connect().await;
    let late_login = tokio::spawn(async move {
        let result = late
            .login_with("alice", move |salt, params| {
                challenged.send(()).unwrap();
                proceed_rx.recv().unwrap();
                params.salted_password(b"old", salt)
            })
            .await;
        (result, late)
    });
    tokio::task::spawn_blocking(move || challenged_rx.recv().unwrap()).await.unwrap();

    let new = ftp_actor::auth::Credentials::derive(b"new", TEST_SCRYPT).unwrap();
    ftp_actor::auth::UserStore::update(server.data_dir(), |store| {
        store.user_mut("alice")?.credentials = new;
        store.users.remove("bob");
        store.user_mut("carol")?.quota = 2 << 20;
        Ok(())
    })
    .unwrap();
    for session in [&mut alice_1, &mut alice_2, &mut bob] {
        let error = refused_later(session).await;
        assert_eq!(error.code(), Some(ErrorCode::AccountChanged), "{error}");
        assert!(session.pwd().await.is_err(), "a revoked session is closed");
    }
    proceed.send(()).unwrap();
    let (result, _) = late_login.await.unwrap();
    assert_eq!(result.unwrap_err().code(), Some(ErrorCode::AccountChanged), "a login begun before the change");

    // A quota change ends nothing; the new password logs in.
    assert_eq!(carol.pwd().await.unwrap(), "/");
    assert_eq!(carol.quota().await.unwrap().1, 2 << 20);
    assert_eq!(server.login("alice", "new").await.pwd().await.unwrap(), "/");
}

#[tokio::test]
async fn a_revoked_native_upload_stops_at_once_and_keeps_its_partial() {
    let server = TestServer::start();
    server.add_user("dan", "pw", 64 << 20);
    let mut client = server.login("dan", "pw").await;
    // An upload of 16 MiB of which the client sends 1 MiB, then pauses.
    let ready = {
        client.send(Request::Put { path: "big.bin".into(), size: 16 << 20 }).await.unwrap();
        client.recv().await.unwrap()
    };
    assert!(matches!(ready, Response::PutReady { offset: 0, .. }), "{ready:?}");
    for chunk in random_bytes(1 << 20, 9).chunks(64 << 10) {
        client.send(Request::Data { bytes: bytes::Bytes::copy_from_slice(chunk) }).await.unwrap();
    }
    let partial = server.home("dan").join(".big.bin.ftpa-part");
    wait_for_len(&partial, 1 << 20).await;

    server.remove_user("dan");
    // The server says why, unasked, and closes; the partial stays for a resume.
    let told = tokio::time::timeout(std::time::Duration::from_secs(20), client.recv()).await.unwrap().unwrap();
    assert!(matches!(told, Response::Error { code: 206, .. }), "{told:?}");
    assert!(matches!(client.recv().await, Err(ClientError::Closed | ClientError::Io(_))));
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 1 << 20, "the partial is kept");
    assert!(!server.home("dan").join("big.bin").exists());
}

/// A client busy sending an upload when its account is removed is told why (206), not
/// "connection reset": the server goes on reading what the client sends until the client
/// has read the answer (see `close_with` in the session).
#[tokio::test]
async fn a_client_in_the_middle_of_a_put_is_told_its_account_changed() {
    let server = TestServer::start();
    server.add_user("erin", "pw", 256 << 20);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("big.bin");
    std::fs::write(&local, random_bytes(32 << 20, 4)).unwrap();
    // A link of 4 MiB/s: the upload would last about eight seconds, and the client is still
    // writing when the change lands.
    let proxy = Proxy::start(server.addr(), Fault::Throttle { bytes_per_second: 4 << 20 });
    let mut client = Client::connect(proxy.addr, &server.trust(), |_| {}).await.unwrap();
    client.login("erin", "pw").await.unwrap();
    let upload = tokio::spawn(async move { client.put(&local, "big.bin", &NoProgress).await });
    let partial = server.home("erin").join(".big.bin.ftpa-part");
    wait_for_len(&partial, 1 << 20).await;

    server.remove_user("erin");
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), upload).await.unwrap().unwrap();
    let error = result.expect_err("the upload was stopped");
    assert_eq!(error.code(), Some(ErrorCode::AccountChanged), "{error}");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!((1 << 20..32 << 20).contains(&kept), "the partial is kept for a resume: {kept} bytes");
}

/// A download in progress holds its session, but a revoked account stops it too: at its next
/// chunk, with error 206, and the client keeps its partial for later.
#[tokio::test]
async fn a_download_in_progress_stops_when_its_account_is_removed() {
    let server = TestServer::start();
    server.add_user("fay", "pw", 256 << 20);
    std::fs::write(server.home("fay").join("big.bin"), random_bytes(32 << 20, 14)).unwrap();
    // A link of 4 MiB/s: the download would last about eight seconds.
    let proxy = Proxy::start(server.addr(), Fault::Throttle { bytes_per_second: 4 << 20 });
    let mut client = Client::connect(proxy.addr, &server.trust(), |_| {}).await.unwrap();
    client.login("fay", "pw").await.unwrap();
    let local = server.local("copy.bin");
    let target = local.clone();
    let download = tokio::spawn(async move { client.get("big.bin", &target, &NoProgress).await });
    let partial = server.local(".copy.bin.ftpa-part");
    wait_for_len(&partial, 1 << 20).await;

    server.remove_user("fay");
    let result = tokio::time::timeout(std::time::Duration::from_secs(20), download).await.unwrap().unwrap();
    let error = result.expect_err("the download was stopped");
    assert_eq!(error.code(), Some(ErrorCode::AccountChanged), "{error}");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!((1 << 20..32 << 20).contains(&kept), "the partial is kept: {kept} bytes");
    assert!(!local.exists());
}
