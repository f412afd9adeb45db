//! Admission: 20 clients at once with max_concurrency = 10 and max_queued = 5. Ten get
//! sessions, five wait and are told their positions, five are refused with error 600; as
//! sessions end, the waiting clients get in, in order.

mod common;

use std::time::Duration;

use common::*;
use ftp_actor::client::{Client, ClientError};
use ftp_actor::net::ErrorCode;
use tokio::sync::mpsc;

#[tokio::test]
async fn twenty_clients_ten_slots_five_queue_places() {
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

    // Clients 11 to 15 wait; each reports the positions it was told.
    let (positions_tx, mut positions) = mpsc::unbounded_channel::<(usize, u32)>();
    let mut waiting = Vec::new();
    for i in 0..5 {
        let tx = positions_tx.clone();
        let addr = server.addr();
        waiting.push(tokio::spawn(async move {
            let mut client = Client::connect(addr, |p| tx.send((i, p)).unwrap()).await?;
            client.login("u", "pw").await?;
            Ok::<_, ClientError>(client)
        }));
        // Arrive in order, so positions are deterministic.
        assert_eq!(positions.recv().await.unwrap(), (i, i as u32 + 1));
    }

    // Clients 16 to 20 are refused at once with a clear error.
    for _ in 0..5 {
        let error = Client::connect(server.addr(), |_| {}).await.err().expect("refused");
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

    // A waiting client that hangs up gives its place away: a newcomer queued behind the three
    // left is at (or soon moves up to) the leaver's position 4, not 5.
    let leaver = waiting.pop().unwrap();
    leaver.abort();
    let _ = leaver.await;
    let (newcomer_tx, mut newcomer_positions) = mpsc::unbounded_channel::<u32>();
    let addr = server.addr();
    waiting.push(tokio::spawn(async move {
        let mut client = Client::connect(addr, |p| newcomer_tx.send(p).unwrap()).await?;
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
