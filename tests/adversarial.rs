//! Hostile clients over raw sockets: malformed frames, brute force, slow and silent clients.
//! After each one, a well-behaved client is served correctly.

mod common;

use std::time::Duration;

use common::*;
use ftp_actor::client::Transport;
use ftp_actor::client::trust::open_transport;
use ftp_actor::client::{Client, GetReport, NoProgress};
use ftp_actor::net::{ErrorCode, Request, Response, codec};
use serde_bytes::ByteBuf;
use tokio::io::AsyncWriteExt;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A connection to the server's native listener (inside TLS, as every client's), past the
/// welcome: what is written to it reaches the server's frame parser as it is.
async fn raw(server: &TestServer) -> Transport {
    let mut stream = open_transport(server.addr(), &server.trust()).await.unwrap();
    assert!(matches!(read_frame(&mut stream).await, Some(Response::Welcome { .. })));
    stream
}

fn code(response: Option<Response>) -> u16 {
    match response {
        Some(Response::Error { code, .. }) => code,
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A well-behaved client does real work: the server is still fine.
async fn still_serves(server: &TestServer) {
    let mut client = server.login("good", "pw").await;
    let local = server.local("probe.bin");
    std::fs::write(&local, random_bytes(70_000, 99)).unwrap();
    client.put(&local, "probe.bin", &NoProgress).await.unwrap();
    let back = server.local("probe.back");
    let _ = std::fs::remove_file(&back);
    assert!(matches!(client.get("probe.bin", &back, &NoProgress).await.unwrap(), GetReport::Downloaded { .. }));
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(local).unwrap());
}

fn server() -> TestServer {
    let server = TestServer::start_with(|c| {
        c.login_timeout_secs = 1;
        c.transfer_stall_secs = 1;
        c.login_delay_base_ms = 10;
    });
    server.add_user("good", "pw", 1 << 30);
    server
}

#[tokio::test]
async fn malformed_frames_get_errors_and_the_server_keeps_serving() {
    let server = server();
    let cbor = |value: &serde_cbor::Value| serde_cbor::to_vec(value).unwrap();
    use serde_cbor::Value;
    let map =
        |pairs: Vec<(&str, Value)>| Value::Map(pairs.into_iter().map(|(k, v)| (Value::Text(k.into()), v)).collect());
    // (description, frame body); each must get error 100 and leave the connection usable.
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("wrong field type", cbor(&map(vec![("type", Value::Text("cd".into())), ("path", Value::Integer(5))]))),
        ("unknown message", cbor(&map(vec![("type", Value::Text("format_disk".into()))]))),
        ("missing field", cbor(&map(vec![("type", Value::Text("cd".into()))]))),
        ("not a map", cbor(&Value::Integer(5))),
        ("byte string type", cbor(&Value::Bytes(b"type".to_vec()))),
        ("invalid CBOR", vec![0xff, 0xfe, 0xfd]),
        ("trailing bytes", [cbor(&map(vec![("type", Value::Text("pwd".into()))])), vec![0]].concat()),
        // Before login frames are at most 4 KiB (PRELOGIN_MAX_FRAME); 4,000 levels is still far
        // past the decoder's 128.
        ("deep nesting", [vec![0x81; 4_000], vec![0x00]].concat()),
        ("huge text claim", vec![0x7b, 0x10, 0, 0, 0, 0, 0, 0, 0]),
        ("huge map claim", vec![0xbb, 0x10, 0, 0, 0, 0, 0, 0, 0]),
        (
            "huge bytes claim",
            [
                vec![0xa2, 0x64],
                b"type".to_vec(),
                vec![0x64],
                b"data".to_vec(),
                vec![0x65],
                b"bytes".to_vec(),
                vec![0x5b, 0x10, 0, 0, 0, 0, 0, 0, 0],
            ]
            .concat(),
        ),
        ("empty frame", vec![]),
    ];
    let mut stream = raw(&server).await;
    for (what, body) in &cases {
        stream.write_all(&frame(body)).await.unwrap();
        assert_eq!(code(read_frame(&mut stream).await), ErrorCode::MalformedFrame.as_u16(), "{what}");
    }
    // Still the same connection: a valid request before login gets 201.
    stream.write_all(&frame(&codec::encode(&Request::Pwd).unwrap())).await.unwrap();
    assert_eq!(code(read_frame(&mut stream).await), ErrorCode::NotLoggedIn.as_u16());
    still_serves(&server).await;

    // An oversized length prefix: error 101 before anything is allocated, then closed.
    let mut stream = raw(&server).await;
    stream.write_all(&[0xff, 0xff, 0xff, 0xff]).await.unwrap();
    assert_eq!(code(read_frame(&mut stream).await), ErrorCode::FrameTooLarge.as_u16());
    assert!(read_frame(&mut stream).await.is_none(), "closed");
    // Before login, a frame larger than the login needs is refused the same way: a
    // connection nobody authenticated cannot make the server reserve a chunk's buffer.
    // The server decides on the length prefix alone: the body's first bytes are sent, not the
    // rest (which the client would still be writing as the connection closes).
    let mut stream = raw(&server).await;
    stream.write_all(&frame(&[0x81; 500_000])[..4 + 100]).await.unwrap();
    assert_eq!(code(read_frame(&mut stream).await), ErrorCode::FrameTooLarge.as_u16());
    // A frame cut short by a hang-up.
    let mut stream = raw(&server).await;
    stream.write_all(&[0, 0, 0, 50, 0xa1, 0x64]).await.unwrap();
    drop(stream);
    still_serves(&server).await;

    // Strict types (docs/PROTOCOL.md section 3): text only where text is due, byte strings of
    // the documented length only where bytes are, and each login message in its step.
    let bytes = |b: &[u8]| Value::Bytes(b.to_vec());
    let text = |t: &str| Value::Text(t.to_string());
    let md5_as_integers = Value::Array((0..16).map(Value::Integer).collect());
    let strict_cases: Vec<(&str, Vec<u8>)> = vec![
        ("byte string tag", cbor(&map(vec![("type", bytes(b"pwd"))]))),
        ("byte string path", cbor(&map(vec![("type", text("cd")), ("path", bytes(b"/"))]))),
        ("null list path", cbor(&map(vec![("type", text("list")), ("path", Value::Null)]))),
        (
            "byte string list after",
            cbor(&map(vec![("type", text("list")), ("after", map(vec![("name", bytes(b"a"))]))])),
        ),
        ("list after as text", cbor(&map(vec![("type", text("list")), ("after", text("a"))]))),
        (
            "md5 as integers",
            cbor(&map(vec![
                ("type", text("get")),
                ("path", text("f")),
                ("offset", Value::Integer(0)),
                ("prefix_md5", md5_as_integers),
            ])),
        ),
        (
            "md5 of 15 bytes",
            cbor(&map(vec![
                ("type", text("get")),
                ("path", text("f")),
                ("offset", Value::Integer(0)),
                ("prefix_md5", bytes(&[0; 15])),
            ])),
        ),
        (
            "proof of 31 bytes",
            cbor(&map(vec![("type", text("auth_proof")), ("nonce", text("n")), ("proof", bytes(&[0; 31]))])),
        ),
        (
            "data as integers",
            cbor(&map(vec![("type", text("data")), ("bytes", Value::Array(vec![Value::Integer(1)]))])),
        ),
        ("byte string key", cbor(&Value::Map([(bytes(b"type"), text("pwd"))].into_iter().collect()))),
    ];
    let mut stream = raw(&server).await;
    for (what, body) in &strict_cases {
        stream.write_all(&frame(body)).await.unwrap();
        assert_eq!(code(read_frame(&mut stream).await), ErrorCode::MalformedFrame.as_u16(), "{what}");
    }
    // A proof with no challenge, then a second auth_start while challenged: out of order.
    let proof = Request::AuthProof { nonce: "n".into(), proof: ByteBuf::from(vec![0; 32]), channel_binding_data: None };
    stream.write_all(&frame(&codec::encode(&proof).unwrap())).await.unwrap();
    assert_eq!(code(read_frame(&mut stream).await), ErrorCode::UnexpectedMessage.as_u16());
    // Over TLS a login must be bound to the TLS session: unbound, or bound another way, is 207
    // (and the connection may try again).
    for channel_binding in [None, Some("tls-unique".to_string())] {
        let start = Request::AuthStart { user: "good".into(), client_nonce: "n".repeat(24), channel_binding };
        stream.write_all(&frame(&codec::encode(&start).unwrap())).await.unwrap();
        assert_eq!(code(read_frame(&mut stream).await), ErrorCode::ChannelBindingRequired.as_u16());
    }
    let channel_binding = Some("tls-exporter".to_string());
    let start = Request::AuthStart { user: "good".into(), client_nonce: "n".repeat(24), channel_binding };
    stream.write_all(&frame(&codec::encode(&start).unwrap())).await.unwrap();
    assert!(matches!(read_frame(&mut stream).await, Some(Response::AuthChallenge { .. })));
    stream.write_all(&frame(&codec::encode(&start).unwrap())).await.unwrap();
    assert_eq!(code(read_frame(&mut stream).await), ErrorCode::UnexpectedMessage.as_u16());

    // Data frames without an upload, and a second login, after logging in.
    let mut client = server.login("good", "pw").await;
    client.send(Request::Data { bytes: bytes::Bytes::from(vec![1; 10]) }).await.unwrap();
    assert!(matches!(client.recv().await.unwrap(), Response::Error { code: 102, .. }));
    assert_eq!(client.login("good", "pw").await.unwrap_err().code(), Some(ErrorCode::UnexpectedMessage));
    still_serves(&server).await;
}

#[tokio::test]
async fn brute_force_is_delayed_then_banned_and_the_ban_expires() {
    let server = TestServer::start_with(|c| {
        c.login_failures_before_ban = 3;
        // Long enough that the checks of the ban below run well inside it on a busy machine;
        // its end is waited for, not timed.
        c.login_ban_secs = 6;
        c.login_delay_base_ms = 10;
    });
    server.add_user("victim", "right", 1 << 20);
    for guess in ["a", "b", "c"] {
        let error = server.try_login("victim", guess).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::AuthFailed));
    }
    // Banned: even the right password is refused at once with a clear error, not a hang.
    let banned =
        tokio::time::timeout(Duration::from_secs(5), async { server.try_login("victim", "right").await.unwrap_err() })
            .await
            .expect("a banned client gets an answer");
    assert_eq!(banned.code(), Some(ErrorCode::LoginBanned), "{banned}");
    assert!(banned.to_string().contains("try again in"), "{banned}");
    // The address is banned for every name.
    let other = server.try_login("nobody", "x").await.unwrap_err();
    assert_eq!(other.code(), Some(ErrorCode::LoginBanned));
    // The ban expires on its own.
    let mut recovered = None;
    for _ in 0..300 {
        match server.try_login("victim", "right").await {
            Ok(_) => {
                recovered = Some(());
                break;
            }
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::LoginBanned)),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered.is_some(), "the ban expired");
}

#[tokio::test]
async fn silent_and_slow_clients_cannot_hold_slots_or_queue_places() {
    let server = TestServer::start_with(|c| {
        c.max_concurrency = 1;
        c.max_queued = 1;
        c.login_timeout_secs = 1;
        c.transfer_stall_secs = 1;
    });
    server.add_user("good", "pw", 1 << 30);
    // Connections that say nothing hold no slot and no queue place: a user logs in past them,
    // and they are closed with 204 after the login timeout.
    let mut silent = raw(&server).await;
    let mut second = raw(&server).await;
    let mut user = server.login("good", "pw").await;
    assert_eq!(user.pwd().await.unwrap(), "/");
    for socket in [&mut silent, &mut second] {
        assert_eq!(code(read_frame(socket).await), ErrorCode::LoginTimeout.as_u16());
        assert!(read_frame(socket).await.is_none());
    }
    user.quit().await.unwrap();
    // Half a frame, then nothing: the login timeout still applies.
    let mut half = raw(&server).await;
    half.write_all(&[0, 0]).await.unwrap();
    assert_eq!(code(read_frame(&mut half).await), ErrorCode::LoginTimeout.as_u16());
    drop(half);

    // A stalled upload is closed with 502; its partial is kept.
    let mut uploader = server.login("good", "pw").await;
    uploader.send(Request::Put { path: "stall.bin".into(), size: 1000 }).await.unwrap();
    assert!(matches!(uploader.recv().await.unwrap(), Response::PutReady { .. }));
    uploader.send(Request::Data { bytes: bytes::Bytes::from(vec![7; 400]) }).await.unwrap();
    assert!(matches!(uploader.recv().await.unwrap(), Response::Error { code: 502, .. }));
    drop(uploader);
    assert_eq!(std::fs::metadata(server.home("good").join(".stall.bin.ftpa-part")).unwrap().len(), 400);

    // A client that stops reading a download is cut off, freeing the slot.
    std::fs::write(server.home("good").join("big.bin"), random_bytes(32 << 20, 1)).unwrap();
    let mut reader = server.login("good", "pw").await;
    reader
        .send(Request::Get { path: "big.bin".into(), offset: 0, prefix_md5: ByteBuf::from(md5_of_nothing()) })
        .await
        .unwrap();
    // The slot frees up: the next login, queued behind the stalled reader, gets in.
    let mut next = server.login("good", "pw").await;
    assert_eq!(next.pwd().await.unwrap(), "/");
    drop(reader);
    still_serves_after(&mut next, &server).await;
}

fn md5_of_nothing() -> Vec<u8> {
    ftp_actor::storage::md5_of(b"").to_vec()
}

async fn still_serves_after(client: &mut Client, server: &TestServer) {
    let local = server.local("after.bin");
    std::fs::write(&local, b"after").unwrap();
    client.put(&local, "after.bin", &NoProgress).await.unwrap();
    assert_eq!(std::fs::read(server.home("good").join("after.bin")).unwrap(), b"after");
}

/// One account cannot hold the server: with the shipped defaults, a user whose sessions all
/// sit on downloads nobody reads gets its share of the slots, and another user logs in at
/// once, without waiting in the queue.
#[tokio::test]
async fn one_user_with_stalled_downloads_cannot_hold_every_slot() {
    let server = TestServer::start();
    assert!(server.config.max_sessions_per_user < server.config.max_concurrency);
    server.add_user("hog", "pw", 1 << 30);
    server.add_user("other", "pw", 1 << 20);
    let big = server.local("big.bin");
    std::fs::write(&big, random_bytes(8 << 20, 5)).unwrap();
    server.login("hog", "pw").await.put(&big, "big.bin", &NoProgress).await.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..server.config.max_concurrency {
        let mut client = server.connect().await;
        if client.login("hog", "pw").await.is_err() {
            continue;
        }
        let get = Request::Get { path: "big.bin".into(), offset: 0, prefix_md5: ByteBuf::from(md5_of_nothing()) };
        client.send(get).await.unwrap();
        stalled.push(client); // never read
    }
    assert_eq!(stalled.len(), server.config.max_sessions_per_user, "one user's share of the slots");
    let queued = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let told = queued.clone();
    let mut other =
        Client::connect(server.addr(), &server.trust(), move |_| told.store(true, std::sync::atomic::Ordering::SeqCst))
            .await
            .unwrap();
    other.login("other", "pw").await.unwrap();
    assert!(!queued.load(std::sync::atomic::Ordering::SeqCst), "another user got a slot without waiting");
    assert_eq!(other.pwd().await.unwrap(), "/");
}

#[tokio::test]
async fn sessions_per_address_and_per_user_are_capped() {
    let server = TestServer::start_with(|c| {
        c.max_sessions_per_address = 3;
        c.max_sessions_per_user = 2;
    });
    server.add_user("a", "pw", 1 << 20);
    server.add_user("b", "pw", 1 << 20);
    let a1 = server.login("a", "pw").await;
    let _a2 = server.login("a", "pw").await;
    // A third session of the same user is refused at login; the connection stays usable.
    let mut third = server.connect().await;
    assert_eq!(third.login("a", "pw").await.unwrap_err().code(), Some(ErrorCode::TooManySessionsForUser));
    // The refused login can log in as another user on the same connection: the address's
    // third session.
    third.login("b", "pw").await.unwrap();
    // A fourth connection from this address is greeted (it holds no session yet), and its
    // login is refused.
    let mut fourth = server.connect().await;
    let error = fourth.login("b", "pw").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::TooManyFromAddress), "{error}");
    // When a session ends, its places are given back.
    a1.quit().await.unwrap();
    let mut again = None;
    for _ in 0..100 {
        match server.try_login("a", "pw").await {
            Ok(client) => {
                again = Some(client);
                break;
            }
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::TooManyFromAddress)),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    again.expect("the address has a place again");
}

/// Resume checks that hash without transferring are budgeted per user.
#[tokio::test]
async fn resume_hashing_a_client_can_demand_is_budgeted() {
    let server = TestServer::start_with(|c| {
        c.hash_budget_bytes = 3 << 20;
        // Slow enough that the debt below (1 MiB) lasts 8 s, far longer than the requests that
        // must meet it take on a busy machine; the refill is waited for, not timed.
        c.hash_budget_refill_bytes_per_sec = 128 << 10;
    });
    server.add_user("h", "pw", 1 << 30);
    let data = random_bytes(2 << 20, 8);
    std::fs::write(server.home("h").join("big.bin"), &data).unwrap();
    let mut c = server.login("h", "pw").await;
    let near_end = data.len() as u64 - 1;
    let prefix = ftp_actor::storage::md5_of(&data[..near_end as usize]).to_vec();
    // Each request makes the server hash 2 MiB to send 1 byte.
    let ask = async |c: &mut Client| {
        c.send(Request::Get { path: "big.bin".into(), offset: near_end, prefix_md5: ByteBuf::from(prefix.clone()) })
            .await
            .unwrap();
        match c.recv().await.unwrap() {
            Response::GetReady { offset, .. } => {
                assert_eq!(offset, near_end);
                assert!(matches!(c.recv().await.unwrap(), Response::Data { .. }));
                assert!(matches!(c.recv().await.unwrap(), Response::GetEnd { .. }));
                None
            }
            Response::Error { code, message } => Some((code, message)),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(ask(&mut c).await, None);
    assert_eq!(ask(&mut c).await, None, "the budget may go into debt once");
    let (code, message) = ask(&mut c).await.expect("refused");
    assert_eq!(code, ErrorCode::HashBudgetExhausted.as_u16());
    assert!(message.contains("try again in"), "{message}");
    // A fresh upload needs no hashing and is not held back.
    let local = server.local("fresh.bin");
    std::fs::write(&local, b"fresh").unwrap();
    c.put(&local, "fresh.bin", &NoProgress).await.unwrap();
    // The budget refills by itself.
    let mut served = false;
    for _ in 0..300 {
        if ask(&mut c).await.is_none() {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the budget refilled");
}
