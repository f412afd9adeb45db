//! Acceptor: owns the listener and decides, for each connection, whether it gets a session
//! now, waits in the queue, or is refused.
//!
//! At most `max_concurrency` sessions run at once. The next `max_queued` connections wait in
//! FIFO order; each is sent `queued {position}` when it arrives and again whenever its position
//! improves, and gets its session as soon as a slot frees. Past that, a connection gets error
//! 600 (server busy) and is closed. A waiting client that hangs up leaves the queue at once.

use std::collections::VecDeque;
use std::net::SocketAddr;

use actix::prelude::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::net::frame::encode_frame;
use crate::net::{ErrorCode, Response, WireError};

use super::Services;
use super::session::SessionActor;

/// What the acceptor tells a waiting connection's task.
enum QueueNotice {
    Position(u32),
    Admit,
}

struct Waiting {
    id: u64,
    notices: mpsc::UnboundedSender<QueueNotice>,
}

pub struct Acceptor {
    services: Services,
    listener: Option<TcpListener>,
    active: usize,
    queue: VecDeque<Waiting>,
    next_id: u64,
}

impl Acceptor {
    pub fn new(listener: TcpListener, services: Services) -> Acceptor {
        Acceptor { services, listener: Some(listener), active: 0, queue: VecDeque::new(), next_id: 0 }
    }

    fn start_session(&mut self, ctx: &mut Context<Self>, id: u64, stream: TcpStream, peer: SocketAddr) {
        SessionActor::start(id, stream, peer, self.services.clone(), ctx.address().recipient());
    }

    /// Gives freed slots to the front of the queue and tells the rest their new positions.
    fn admit_waiting(&mut self) {
        let mut moved = false;
        while self.active < self.services.config.max_concurrency {
            let Some(waiting) = self.queue.pop_front() else { break };
            if waiting.notices.send(QueueNotice::Admit).is_ok() {
                self.active += 1;
                moved = true;
            }
        }
        if moved {
            self.announce_positions();
        }
    }

    fn announce_positions(&mut self) {
        self.queue.retain(|w| !w.notices.is_closed());
        for (index, waiting) in self.queue.iter().enumerate() {
            let _ = waiting.notices.send(QueueNotice::Position(index as u32 + 1));
        }
    }
}

impl Actor for Acceptor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let listener = self.listener.take().expect("the acceptor starts once");
        let connections = futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await;
            Some((accepted, listener))
        });
        ctx.add_stream(connections);
    }
}

impl StreamHandler<std::io::Result<(TcpStream, SocketAddr)>> for Acceptor {
    fn handle(&mut self, accepted: std::io::Result<(TcpStream, SocketAddr)>, ctx: &mut Context<Self>) {
        let (stream, peer) = match accepted {
            Ok(connection) => connection,
            Err(error) => {
                // EMFILE and friends: keep listening; the next accept may succeed.
                tracing::warn!(%error, "accept failed");
                return;
            }
        };
        self.next_id += 1;
        let id = self.next_id;
        let config = &self.services.config;
        if self.active < config.max_concurrency {
            self.active += 1;
            self.start_session(ctx, id, stream, peer);
        } else if self.queue.len() < config.max_queued {
            let (notices, receiver) = mpsc::unbounded_channel();
            let position = self.queue.len() as u32 + 1;
            let _ = notices.send(QueueNotice::Position(position));
            self.queue.push_back(Waiting { id, notices });
            tracing::info!(%peer, position, "connection queued");
            actix_rt::spawn(wait_in_queue(stream, peer, id, receiver, ctx.address()));
        } else {
            tracing::warn!(%peer, active = self.active, queued = self.queue.len(), "server busy: connection refused");
            actix_rt::spawn(refuse(stream));
        }
    }

    /// The listener never ends by itself; if it does, keep the actor for the live sessions.
    fn finished(&mut self, _: &mut Context<Self>) {
        tracing::error!("listener closed");
    }
}

/// Sent by a session when it ends: its slot is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub id: u64,
}

impl Handler<SessionEnded> for Acceptor {
    type Result = ();

    fn handle(&mut self, _: SessionEnded, _: &mut Context<Self>) {
        self.active = self.active.saturating_sub(1);
        self.admit_waiting();
    }
}

/// A waiting connection got its slot.
#[derive(Message)]
#[rtype(result = "()")]
struct Admitted {
    id: u64,
    stream: TcpStream,
    peer: SocketAddr,
}

impl Handler<Admitted> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: Admitted, ctx: &mut Context<Self>) {
        tracing::info!(peer = %msg.peer, "queued connection admitted");
        self.start_session(ctx, msg.id, msg.stream, msg.peer);
    }
}

/// A waiting connection hung up, or its admission could not be delivered.
#[derive(Message)]
#[rtype(result = "()")]
struct LeftQueue {
    id: u64,
    /// The slot had already been given to it and must be returned.
    held_slot: bool,
}

impl Handler<LeftQueue> for Acceptor {
    type Result = ();

    fn handle(&mut self, msg: LeftQueue, _: &mut Context<Self>) {
        if msg.held_slot {
            self.active = self.active.saturating_sub(1);
            self.admit_waiting();
        } else if let Some(index) = self.queue.iter().position(|w| w.id == msg.id) {
            self.queue.remove(index);
            self.announce_positions();
        }
    }
}

/// Holds a queued connection: relays position updates, notices a hang-up, and hands the
/// stream back to the acceptor when admitted.
async fn wait_in_queue(
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    mut notices: mpsc::UnboundedReceiver<QueueNotice>,
    acceptor: Addr<Acceptor>,
) {
    let mut watching_for_hangup = true;
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            notice = notices.recv() => match notice {
                Some(QueueNotice::Position(position)) => {
                    let frame = encode_frame(&Response::Queued { position }).expect("queued encodes");
                    if stream.write_all(&frame).await.is_err() {
                        return leave_queue(id, notices, acceptor).await;
                    }
                }
                Some(QueueNotice::Admit) => {
                    acceptor.do_send(Admitted { id, stream, peer });
                    return;
                }
                None => return,
            },
            peeked = stream.peek(&mut probe), if watching_for_hangup => match peeked {
                Ok(0) | Err(_) => return leave_queue(id, notices, acceptor).await,
                // The client spoke early; its bytes stay buffered for the session.
                Ok(_) => watching_for_hangup = false,
            },
        }
    }
}

/// Takes a hung-up connection out of the queue. An admission may already be on its way:
/// its slot is given back too.
async fn leave_queue(id: u64, mut notices: mpsc::UnboundedReceiver<QueueNotice>, acceptor: Addr<Acceptor>) {
    acceptor.do_send(LeftQueue { id, held_slot: false });
    notices.close();
    while let Some(notice) = notices.recv().await {
        if matches!(notice, QueueNotice::Admit) {
            acceptor.do_send(LeftQueue { id, held_slot: true });
        }
    }
}

/// Tells a connection the server is full, then closes it.
async fn refuse(mut stream: TcpStream) {
    let error = WireError::new(
        ErrorCode::ServerBusy,
        "server busy: all sessions and queue places are taken; try again in a moment",
    );
    if let Ok(frame) = encode_frame(&Response::error(error)) {
        let _ = stream.write_all(&frame).await;
        let _ = stream.shutdown().await;
    }
}
