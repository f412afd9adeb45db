//! Ctrl-C in the interactive shell: it interrupts the command in progress, not the shell.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Hears SIGINT for the whole interactive session and cancels the token of the command in
/// progress. The signal stream is registered once, before the first command: a watcher
/// started for each command could miss a Ctrl-C that came before it first listened.
pub struct CtrlC {
    current: Arc<Mutex<CancellationToken>>,
}

impl CtrlC {
    /// From here on SIGINT no longer ends the process.
    pub fn listen(runtime: &tokio::runtime::Runtime) -> std::io::Result<CtrlC> {
        let current = Arc::new(Mutex::new(CancellationToken::new()));
        let slot = current.clone();
        let interrupt = move || slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).cancel();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut interrupts = runtime.block_on(async { signal(SignalKind::interrupt()) })?;
            runtime.spawn(async move {
                while interrupts.recv().await.is_some() {
                    interrupt();
                }
            });
        }
        #[cfg(not(unix))]
        runtime.spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                interrupt();
            }
        });
        Ok(CtrlC { current })
    }

    /// A token for the next command, cancelled by the next Ctrl-C.
    pub fn next_command(&self) -> CancellationToken {
        let token = CancellationToken::new();
        *self.current.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = token.clone();
        token
    }
}
