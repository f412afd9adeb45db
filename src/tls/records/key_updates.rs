//! Key updates (RFC 8446, section 4.6.3), shared by a connection's two directions.
//!
//! Either end may update the keys it sends with, announcing it with a `KeyUpdate` message;
//! one that asks the other to update too (`update_requested`) must be answered with a
//! `KeyUpdate` of its own before any more data. rustls derives the next secrets (its
//! `KernelConnection`, the interface it offers to kernel TLS); the reader and the writer,
//! which may live on different tasks, reach it through here.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use rustls::kernel::KernelConnection;
use rustls::{ConnectionTrafficSecrets, Tls13CipherSuite};

use super::protection::RecordError;

/// A handshake message's type for `KeyUpdate` (RFC 8446, section 4).
pub const KEY_UPDATE: u8 = 24;
/// A handshake message's type for `NewSessionTicket`.
pub const NEW_SESSION_TICKET: u8 = 4;

/// The `KeyUpdate` message that announces an update and asks nothing of the peer.
pub const KEY_UPDATE_NOT_REQUESTED: [u8; 5] = [KEY_UPDATE, 0, 0, 1, 0];

/// The next secrets of either direction (rustls' `KernelConnection`, client or server).
pub trait NextSecrets: Send {
    fn next_receiving(&mut self) -> Result<ConnectionTrafficSecrets, rustls::Error>;
    fn next_sending(&mut self) -> Result<ConnectionTrafficSecrets, rustls::Error>;
}

impl<Data> NextSecrets for KernelConnection<Data>
where
    KernelConnection<Data>: Send,
{
    fn next_receiving(&mut self) -> Result<ConnectionTrafficSecrets, rustls::Error> {
        self.update_rx_secret().map(|(_, secrets)| secrets)
    }

    fn next_sending(&mut self) -> Result<ConnectionTrafficSecrets, rustls::Error> {
        self.update_tx_secret().map(|(_, secrets)| secrets)
    }
}

/// What the two directions of one connection share.
pub struct KeyUpdates {
    pub suite: &'static Tls13CipherSuite,
    secrets: Mutex<Box<dyn NextSecrets>>,
    /// The peer asked us to update our sending keys: the writer does, before its next record.
    requested: AtomicBool,
}

impl KeyUpdates {
    pub fn new(suite: &'static Tls13CipherSuite, secrets: Box<dyn NextSecrets>) -> KeyUpdates {
        KeyUpdates { suite, secrets: Mutex::new(secrets), requested: AtomicBool::new(false) }
    }

    /// The secrets for what the peer sends after its `KeyUpdate`; with `requested`, ours
    /// must follow.
    pub fn peer_updated(&self, requested: bool) -> Result<ConnectionTrafficSecrets, RecordError> {
        if requested {
            self.requested.store(true, Ordering::Release);
        }
        self.lock().next_receiving().map_err(RecordError::KeyUpdate)
    }

    /// Whether the peer asked for an update of our keys since the last call.
    pub fn take_request(&self) -> bool {
        self.requested.swap(false, Ordering::AcqRel)
    }

    /// The secrets we send with after our own `KeyUpdate`.
    pub fn update_ours(&self) -> Result<ConnectionTrafficSecrets, RecordError> {
        self.lock().next_sending().map_err(RecordError::KeyUpdate)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn NextSecrets>> {
        self.secrets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
