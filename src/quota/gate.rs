//! Makes a usage scan atomic with respect to the disk changes quota accounting follows.
//!
//! When the QuotaActor rebuilds its numbers from disk (after a restart), it must know, for
//! every change in flight, whether the scan already saw it. Every job that changes file bytes
//! in a home (an upload's write, restart or publish, a removal) holds the gate's shared side
//! while it changes the disk *and* records that change (in its lease, or in a numbered
//! adjustment); the scan holds the exclusive side. So the scan sees each change either
//! entirely with its record or not at all, and the sequence number read under the exclusive
//! side says which numbered adjustments the scan already includes.
//!
//! The exclusive side is taken only by scans (a restart of the QuotaActor or a newly seen
//! user), so uploads pause only for the length of a scan.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[derive(Debug, Default)]
pub struct UsageGate {
    lock: RwLock<()>,
    sequence: AtomicU64,
}

/// Held while changing the disk and recording the change.
pub struct ChangeGuard<'a> {
    gate: &'a UsageGate,
    _shared: RwLockReadGuard<'a, ()>,
}

impl ChangeGuard<'_> {
    /// Numbers a change made under this guard (for adjustments sent as messages).
    pub fn number(&self) -> u64 {
        self.gate.sequence.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Held by a scan; no change is in progress meanwhile.
pub struct ScanGuard<'a> {
    /// Every change numbered up to this one is already on disk.
    pub last_change: u64,
    _exclusive: RwLockWriteGuard<'a, ()>,
}

impl UsageGate {
    /// Enters the shared side. A poisoned lock (a panic while held) is still usable: the
    /// guarded data is `()`, and the disk itself is the state.
    pub fn change(&self) -> ChangeGuard<'_> {
        let shared = self.lock.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        ChangeGuard { gate: self, _shared: shared }
    }

    /// Enters the exclusive side, waiting for changes in progress to finish.
    pub fn scan(&self) -> ScanGuard<'_> {
        let exclusive = self.lock.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        ScanGuard { last_change: self.sequence.load(Ordering::SeqCst), _exclusive: exclusive }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_scan_sees_changes_wholly_before_or_after() {
        let gate = Arc::new(UsageGate::default());
        let disk = Arc::new(AtomicU64::new(0));
        let recorded = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (gate, disk, recorded) = (gate.clone(), disk.clone(), recorded.clone());
                std::thread::spawn(move || {
                    for _ in 0..2000 {
                        let guard = gate.change();
                        disk.fetch_add(1, Ordering::SeqCst);
                        std::hint::spin_loop();
                        recorded.fetch_add(1, Ordering::SeqCst);
                        guard.number();
                    }
                })
            })
            .collect();
        for _ in 0..200 {
            let scan = gate.scan();
            let (d, r) = (disk.load(Ordering::SeqCst), recorded.load(Ordering::SeqCst));
            assert_eq!(d, r, "a change was half done during the scan");
            assert_eq!(scan.last_change, r);
        }
        for writer in writers {
            writer.join().unwrap();
        }
    }
}
