//! How the acceptor reaches a session that runs as a task (FTP, SFTP) rather than as an actor:
//! a watch channel the task looks at between its steps.

use tokio::sync::watch;

use crate::net::WireError;

/// What the acceptor tells a running session task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Run,
    /// Close once no transfer is running (graceful shutdown).
    Drain,
    /// Close now, with this reason.
    CloseNow(WireError),
}

/// The acceptor's handle on a running session task.
pub struct TaskLink {
    signals: watch::Sender<Signal>,
}

impl TaskLink {
    /// A link, and the receiver its session task watches.
    pub fn new() -> (TaskLink, watch::Receiver<Signal>) {
        let (signals, receiver) = watch::channel(Signal::Run);
        (TaskLink { signals }, receiver)
    }

    pub fn drain(&self) {
        self.signals.send_if_modified(|signal| {
            let changed = *signal == Signal::Run;
            if changed {
                *signal = Signal::Drain;
            }
            changed
        });
    }

    pub fn close_now(&self, error: WireError) {
        let _ = self.signals.send(Signal::CloseNow(error));
    }
}
