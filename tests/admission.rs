//! Admission: session slots and queue places belong to logged-in users; connections that have
//! not logged in hold only a pre-login place, which a flood of silent or trickling sockets
//! cannot turn into a lockout. The tests from `silent_sockets_*` on run the real binary.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::binary::{Launch, Served};
use common::ftp_control::Control;
use common::*;
use ftp_actor::client::trust::open_transport;
use ftp_actor::client::{Client, ClientError};
use ftp_actor::net::ErrorCode;
use tokio::sync::mpsc;

#[tokio::test]
async fn twenty_logins_ten_slots_five_queue_places() {
    let server = TestServer::start_with(|c| {
        c.max_concurrency = 10;
        c.max_queued = 5;
        c.max_sessions_per_user = 20; // one user fills the server here, on purpose
    });
    server.add_user("u", "pw", 1 << 20);

    let mut admitted = Vec::new();
    for _ in 0..10 {
        admitted.push(server.login("u", "pw").await);
    }

    // Silent connections around them change nothing: they hold no slot and no queue place.
    let mut silent = Vec::new();
    for _ in 0..30 {
        silent.push(tokio::net::TcpStream::connect(server.addr()).await.unwrap());
    }

    // Logins 11 to 15 wait; each reports the positions it was told.
    let (positions_tx, mut positions) = mpsc::unbounded_channel::<(usize, u32)>();
    let mut waiting = Vec::new();
    for i in 0..5 {
        let tx = positions_tx.clone();
        let (addr, trust) = (server.addr(), server.trust());
        waiting.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, &trust, move |p| tx.send((i, p)).unwrap()).await?;
            client.login("u", "pw").await?;
            Ok::<_, ClientError>(client)
        }));
        // Arrive in order, so positions are deterministic.
        assert_eq!(positions.recv().await.unwrap(), (i, i as u32 + 1));
    }

    // Logins 16 to 20 are refused with a clear error once their password is checked.
    for _ in 0..5 {
        let mut client = server.connect().await;
        let error = client.login("u", "pw").await.expect_err("refused");
        assert_eq!(error.code(), Some(ErrorCode::ServerBusy), "{error}");
        assert!(error.to_string().contains("busy"));
    }

    // One session ends: the first waiting client gets in, the others move up.
    admitted.pop().unwrap().quit().await.unwrap();
    let mut first = tokio::time::timeout(Duration::from_secs(10), waiting.remove(0)).await.unwrap().unwrap().unwrap();
    assert_eq!(first.pwd().await.unwrap(), "/");
    let mut moved = Vec::new();
    for _ in 0..4 {
        moved.push(positions.recv().await.unwrap());
    }
    moved.sort();
    assert_eq!(moved, [(1, 1), (2, 2), (3, 3), (4, 4)]);

    // A waiting user who hangs up gives the place away: a newcomer queued behind the three
    // left is at (or soon moves up to) the leaver's position 4, not 5.
    let leaver = waiting.pop().unwrap();
    leaver.abort();
    let _ = leaver.await;
    let (newcomer_tx, mut newcomer_positions) = mpsc::unbounded_channel::<u32>();
    let (addr, trust) = (server.addr(), server.trust());
    waiting.push(tokio::spawn(async move {
        let mut client = Client::connect(addr, &trust, move |p| newcomer_tx.send(p).unwrap()).await?;
        client.login("u", "pw").await?;
        Ok::<_, ClientError>(client)
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let told = tokio::time::timeout_at(deadline, newcomer_positions.recv()).await;
        match told.expect("the newcomer is told position 4 within 10 s") {
            Some(4) => break,
            Some(5) => continue, // queued before the server noticed the hang-up
            other => panic!("the newcomer was told {other:?}"),
        }
    }

    // Everyone else ends; the remaining waiting clients all get in.
    for client in admitted.drain(..) {
        client.quit().await.unwrap();
    }
    for task in waiting {
        let mut client = tokio::time::timeout(Duration::from_secs(10), task).await.unwrap().unwrap().unwrap();
        assert_eq!(client.pwd().await.unwrap(), "/");
    }
    // And the server still admits new clients right away.
    let mut late = server.login("u", "pw").await;
    assert_eq!(late.pwd().await.unwrap(), "/");
}

/// A socket connected from `source` (any 127.0.0.x is this machine) that never sends a byte.
fn silent_from(source: Ipv4Addr, server: SocketAddr) -> std::net::TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
    socket.connect(&server.into()).unwrap();
    socket.into()
}

/// Has the server closed this connection? Reads what is there without waiting.
fn closed(stream: &mut std::net::TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Waits until at least `at_least` of `sockets` are closed (at most 30 s); returns which.
fn wait_closed(sockets: &mut [(String, std::net::TcpStream)], at_least: usize) -> Vec<bool> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let states: Vec<bool> = sockets.iter_mut().map(|(_, s)| closed(s)).collect();
        if states.iter().filter(|c| **c).count() >= at_least || Instant::now() > deadline {
            return states;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Per source address and listener (the acceptor sees each listener's connections in the
/// order they were made), the closed sockets come first: the oldest were the ones evicted.
fn assert_oldest_evicted(sockets: &[(String, std::net::TcpStream)], states: &[bool]) {
    let mut open_seen: std::collections::HashSet<&str> = Default::default();
    for ((path, _), closed) in sockets.iter().zip(states) {
        if *closed {
            assert!(!open_seen.contains(path.as_str()), "{path}: a newer socket was closed before an older one");
        } else {
            open_seen.insert(path);
        }
    }
}

/// A silent socket with its path (source -> listener), for [`assert_oldest_evicted`].
fn silent_path(source: Ipv4Addr, server: SocketAddr) -> (String, std::net::TcpStream) {
    (format!("{source}->{server}"), silent_from(source, server))
}

fn login_native(served: &Served, user: &str, password: &str) -> Result<Client, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = Client::connect(served.native.as_str(), &served.trust(), |_| {}).await?;
        client.login(user, password).await?;
        client.pwd().await?;
        Ok(client)
    })
}

/// On the TLS listener (the default), a connection that never starts TLS is told error 103 in
/// plain text and closed (what a client of protocol version 1 sees); connections that finish
/// the handshake and then say nothing hold a pre-login place only: a user logs in past 40 of
/// them from one address, the budget closing the oldest with 605.
#[tokio::test]
async fn silent_sockets_before_and_after_tls_do_not_keep_a_user_out() {
    let server = TestServer::start_with(|config| {
        config.max_prelogin_per_address = 32;
        config.login_timeout_secs = 300;
    });
    server.add_user("u", "pw", 1 << 20);
    let mut plain = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let told = read_frame(&mut plain).await;
    assert!(matches!(told, Some(ftp_actor::net::Response::Error { code: 103, .. })), "{told:?}");
    assert!(read_frame(&mut plain).await.is_none(), "closed after telling");

    let mut silent = Vec::new();
    for _ in 0..40 {
        let mut socket = open_transport(server.addr(), &server.trust()).await.unwrap();
        assert!(matches!(read_frame(&mut socket).await, Some(ftp_actor::net::Response::Welcome { .. })));
        silent.push(socket);
    }
    let mut user = server.login("u", "pw").await;
    assert_eq!(user.pwd().await.unwrap(), "/");
    // 40 silent and the user's connection, 32 places: the 9 oldest were closed, with 605.
    for socket in &mut silent[..9] {
        let closed = read_frame(socket).await;
        assert!(matches!(closed, Some(ftp_actor::net::Response::Error { code: 605, .. })), "{closed:?}");
    }
}

#[test]
fn silent_sockets_from_many_addresses_do_not_keep_a_user_out() {
    let served = Served::start(Launch::alice(
        // A login deadline far longer than the test: only evictions can make room. Without TLS,
        // whose 2 s wait for a handshake would close every silent socket by itself (see
        // `a_socket_that_never_starts_tls_is_told_and_closed`).
        "max_prelogin_connections = 200\nlogin_timeout_secs = 300\nplaintext_native = true\n",
        false,
    ));
    let server: SocketAddr = served.native.parse().unwrap();
    let mut silent = Vec::new();
    for i in 0..400 {
        let source = Ipv4Addr::new(127, 0, 0, 2 + (i % 40) as u8);
        silent.push(silent_path(source, server));
    }
    // A real user from another address (127.0.0.1) logs in past all of them.
    let started = Instant::now();
    login_native(&served, "alice", "pw").expect("the real login is served");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "served by evictions, not by the login deadline: {took:?}");
    // The budget held 200: the 200 oldest silent sockets (at least) were closed to make room.
    let states = wait_closed(&mut silent, 200);
    let evicted = states.iter().filter(|c| **c).count();
    assert!((200..=201).contains(&evicted), "{evicted} evicted");
    assert_oldest_evicted(&silent, &states);
    assert!(served.log().contains("pre-login budget full"), "{}", served.log());
}

#[test]
fn silent_sockets_from_the_users_own_address_do_not_keep_the_user_out() {
    let served = Served::start(Launch::alice(
        "max_prelogin_per_address = 32\nlogin_timeout_secs = 300\nplaintext_native = true\n[ftp]\nallow_plaintext_login = true\n",
        true,
    ));
    let native: SocketAddr = served.native.parse().unwrap();
    let ftp: SocketAddr = served.ftp.as_deref().unwrap().parse().unwrap();
    let me = Ipv4Addr::LOCALHOST;
    let mut silent = Vec::new();
    for i in 0..100 {
        silent.push(silent_path(me, if i % 2 == 0 { native } else { ftp }));
    }
    // Only the address's own oldest went: at most 32 of its pre-login connections stay. (Waited
    // for first: the acceptor takes the two listeners' backlogs in turns, and a silent socket
    // accepted after the login below would push it out, as the oldest of 33.)
    let states = wait_closed(&mut silent, 100 - 32);
    assert!(states.iter().filter(|c| !**c).count() <= 32);
    assert_oldest_evicted(&silent, &states);
    login_native(&served, "alice", "pw").expect("the native login is served");
    // And over FTP, from the same address.
    let mut control = Control::connect(ftp);
    assert!(control.reply().starts_with("220 "));
    assert!(control.command("USER alice").starts_with("331"));
    let logged_in = control.command("PASS pw");
    assert!(logged_in.starts_with("230 logged in as alice"), "{logged_in}");
}

#[test]
fn logins_wait_in_the_queue_over_both_protocols_and_are_admitted_in_order() {
    let served = Served::start(Launch::alice(
        "max_concurrency = 2\nmax_queued = 3\nmax_sessions_per_user = 10\n[ftp]\nallow_plaintext_login = true\n",
        true,
    ));
    let native: SocketAddr = served.native.parse().unwrap();
    let ftp: SocketAddr = served.ftp.as_deref().unwrap().parse().unwrap();
    // Silent sockets around the logins hold nothing.
    let _silent: Vec<_> =
        (0..20).map(|i| silent_from(Ipv4Addr::new(127, 0, 0, 7), if i % 2 == 0 { native } else { ftp })).collect();
    let first = login_native(&served, "alice", "pw").unwrap();
    let second = login_native(&served, "alice", "pw").unwrap();

    // Position 1: a native login, reporting its positions and when it got in.
    let (events_tx, events) = std::sync::mpsc::channel::<String>();
    let native_waiter = {
        let (addr, trust, events_tx) = (served.native.clone(), served.trust(), events_tx.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let told = events_tx.clone();
                let mut client =
                    Client::connect(addr.as_str(), &trust, move |p| told.send(format!("native {p}")).unwrap()).await?;
                client.login("alice", "pw").await?;
                events_tx.send("native in".into()).unwrap();
                client.pwd().await?;
                Ok::<_, ClientError>(client)
            })
        })
    };
    assert_eq!(events.recv_timeout(Duration::from_secs(30)).unwrap(), "native 1");
    // Position 2: an FTP login, told as continuation lines of the answer to PASS.
    let mut ftp_waiter = Control::connect(ftp);
    assert!(ftp_waiter.reply().starts_with("220 "));
    assert!(ftp_waiter.command("USER alice").starts_with("331"));
    ftp_waiter.send_raw(b"PASS pw\r\n");
    assert_eq!(ftp_waiter.line(), "230-all sessions are busy: you are number 2 in the queue; please wait");
    // Position 3, then the queue is full: the next login is refused with 600.
    let third = {
        let (addr, trust, told) = (served.native.clone(), served.trust(), events_tx.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let mut client =
                    Client::connect(addr.as_str(), &trust, move |p| told.send(format!("third {p}")).unwrap()).await?;
                client.login("alice", "pw").await?;
                client.pwd().await?;
                Ok::<_, ClientError>(client)
            })
        })
    };
    assert_eq!(events.recv_timeout(Duration::from_secs(30)).unwrap(), "third 3");
    let refused = login_native(&served, "alice", "pw").expect_err("the queue is full");
    assert_eq!(refused.code(), Some(ErrorCode::ServerBusy), "{refused}");

    // A slot frees: the native waiter gets in first, the FTP one moves up to 1.
    drop(first);
    let mut heard: Vec<String> = (0..2).map(|_| events.recv_timeout(Duration::from_secs(30)).unwrap()).collect();
    heard.sort();
    assert_eq!(heard, ["native in", "third 2"]);
    assert_eq!(ftp_waiter.line(), "230-all sessions are busy: you are number 1 in the queue; please wait");
    // Another frees: the FTP login completes, then the third.
    drop(second);
    let admitted = ftp_waiter.reply();
    assert!(admitted.starts_with("230 logged in as alice"), "{admitted}");
    assert!(ftp_waiter.command("PWD").starts_with("257"));
    assert_eq!(events.recv_timeout(Duration::from_secs(30)).unwrap(), "third 1");
    let native_in = native_waiter.join().unwrap().unwrap();
    drop(native_in);
    third.join().unwrap().expect("the third login gets the freed slot");
}

#[test]
fn a_trickling_login_is_evicted_under_pressure() {
    // The raw frame is written without TLS (the budget's choice does not depend on it).
    let served = Served::start(Launch::alice(
        "max_prelogin_per_address = 8\nlogin_timeout_secs = 300\nplaintext_native = true\n",
        false,
    ));
    let server: SocketAddr = served.native.parse().unwrap();
    let source = Ipv4Addr::new(127, 0, 0, 9);
    // A valid auth_start, sent one byte every 100 ms: still pre-login after seconds.
    let request = ftp_actor::net::Request::AuthStart {
        user: "alice".into(),
        client_nonce: "x".repeat(24),
        channel_binding: None,
    };
    let frame = ftp_actor::net::frame::encode_frame(&request).unwrap();
    let mut trickler = silent_from(source, server);
    let mut writer = trickler.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for byte in frame {
            if writer.write_all(&[byte]).is_err() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    });
    std::thread::sleep(Duration::from_millis(1500));
    // Eight silent sockets from the same address: the trickler is its oldest, and goes.
    let _flood: Vec<_> = (0..8).map(|_| silent_from(source, server)).collect();
    trickler.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut received = Vec::new();
    let _ = trickler.read_to_end(&mut received);
    let frames = decode_frames(&received);
    assert!(matches!(frames.first(), Some(ftp_actor::net::Response::Welcome { .. })), "{frames:?}");
    assert!(
        matches!(frames.last(), Some(ftp_actor::net::Response::Error { code: 605, .. })),
        "evicted with 605: {frames:?}"
    );
    assert!(!trickle.join().unwrap(), "evicted before its frame was complete");
    // The server goes on serving.
    login_native(&served, "alice", "pw").unwrap();
}

fn decode_frames(mut bytes: &[u8]) -> Vec<ftp_actor::net::Response> {
    let mut frames = Vec::new();
    while bytes.len() >= 4 {
        let length = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        if bytes.len() < 4 + length {
            break;
        }
        frames.push(ftp_actor::net::codec::decode(&bytes[4..4 + length]).unwrap());
        bytes = &bytes[4 + length..];
    }
    frames
}
