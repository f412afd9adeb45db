//! What a session holds of the acceptor: its ticket in the books, and where its user asks for
//! a slot once logged in; the messages and answers of that exchange.

use super::*;

/// What the acceptor tells a logged-in user waiting for a slot.
#[derive(Debug)]
pub enum QueueNotice {
    /// The user's place in the queue improved to this (1 = next).
    Position(u32),
    /// The slot is the session's: serve it.
    Admit,
    /// No slot after all (the server is shutting down): answer this and close.
    Refuse(WireError),
}

/// A connection's place in the acceptor's books, returned when dropped: even a session whose
/// task dies in a panic gives its slot, queue place or pre-login place back.
pub struct ConnectionTicket {
    id: u64,
    acceptor: Recipient<SessionEnded>,
}

impl Drop for ConnectionTicket {
    fn drop(&mut self) {
        self.acceptor.do_send(SessionEnded { id: self.id });
    }
}

/// What a session holds of the acceptor: its ticket, and where it asks for a slot once its
/// user has logged in.
pub struct AdmissionLink {
    ticket: ConnectionTicket,
    slots: SlotRequester,
}

impl AdmissionLink {
    pub(super) fn new(id: u64, acceptor: &Addr<Acceptor>) -> AdmissionLink {
        AdmissionLink {
            ticket: ConnectionTicket { id, acceptor: acceptor.clone().recipient() },
            slots: SlotRequester { id, acceptor: acceptor.clone().recipient() },
        }
    }

    /// The connection's number (for logs).
    pub fn id(&self) -> u64 {
        self.ticket.id
    }

    pub fn slots(&self) -> SlotRequester {
        self.slots.clone()
    }
}

/// Does this refusal of a login close the connection? Those of the server (busy, shutting
/// down, evicted) do; those of one user or address (its session caps, a revoked account) leave
/// the connection as it was before the login, free to log in as someone else.
pub fn refusal_closes(error: &WireError) -> bool {
    matches!(error.code, ErrorCode::ServerBusy | ErrorCode::ShuttingDown | ErrorCode::PreLoginEvicted)
}

/// Asks the acceptor for a slot on behalf of one connection.
#[derive(Clone)]
pub struct SlotRequester {
    id: u64,
    acceptor: Recipient<RequestSlot>,
}

impl SlotRequester {
    /// Asks for a slot for a successful login: now, or a place in the queue; the error is the
    /// answer to the login (see [`refusal_closes`]).
    pub async fn request(self, login: &LoginOk) -> Result<SlotAnswer, WireError> {
        let request = RequestSlot { id: self.id, user: login.user.clone(), generation: login.generation };
        match self.acceptor.send(request).await {
            Ok(answer) => answer,
            Err(_) => Err(WireError::new(ErrorCode::Internal, "internal error: admission service unavailable")),
        }
    }
}

/// Sent when a connection ends, whatever its stage: what it held is free.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    pub id: u64,
}

/// A session's user has logged in: may it have a slot?
#[derive(Message)]
#[rtype(result = "Result<SlotAnswer, WireError>")]
pub struct RequestSlot {
    pub id: u64,
    pub user: String,
    /// The user store generation the login was checked against.
    pub generation: u64,
}

/// The answer to a login that may have a session.
#[derive(Debug)]
pub enum SlotAnswer {
    /// A slot is the session's now.
    Now,
    /// Every slot is taken: the session waits at `position` and hears what follows on
    /// `notices`, ending with [`QueueNotice::Admit`] or [`QueueNotice::Refuse`].
    Queued { position: u32, notices: mpsc::UnboundedReceiver<QueueNotice> },
}
