//! One lock per home for the changes of names that the quota counts.
//!
//! Removing a file, moving one, and publishing an upload over one each read what sits under a
//! name and then change it (`stat` then `unlink`, `stat` then `rename`). Two of them racing on
//! the same name could both count the same old file: a publish measures the file it replaces,
//! a removal of that file slips in before the rename, and its bytes are freed twice (the
//! quota grows by the file's size each time the race is won). Holding the home's lock from
//! the read to the change makes each step see the names as the other left them, so every
//! file's bytes are freed exactly once.
//!
//! The lock is held for two system calls, never across data transfer or a sync, so sessions
//! of one user pay nothing measurable for it. Locks are striped by the home's device and inode
//! (every session of a user, and any alias of the same directory, meets the same lock); two
//! homes sharing a stripe only wait on each other for those two calls.

use std::hash::{Hash, Hasher};
use std::sync::{Mutex, MutexGuard};

/// Number of stripes: more than the homes changing names at the same instant on a busy server.
const STRIPES: usize = 64;

static LOCKS: [Mutex<()>; STRIPES] = [const { Mutex::new(()) }; STRIPES];

/// The lock of one home directory.
#[derive(Debug, Clone, Copy)]
pub struct NameLock {
    stripe: &'static Mutex<()>,
}

impl NameLock {
    /// The lock of the directory with this device and inode.
    pub fn of(device: u64, inode: u64) -> NameLock {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (device, inode).hash(&mut hasher);
        NameLock { stripe: &LOCKS[hasher.finish() as usize % STRIPES] }
    }

    /// Holds the lock until the guard is dropped. A panic while it was held leaves nothing to
    /// repair (the guarded state is the directory itself), so a poisoned lock is still used.
    pub fn hold(&self) -> MutexGuard<'static, ()> {
        self.stripe.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_directory_always_meets_the_same_lock() {
        let a = NameLock::of(1, 42);
        let b = NameLock::of(1, 42);
        assert!(std::ptr::eq(a.stripe, b.stripe));
        let _held = a.hold();
        assert!(b.stripe.try_lock().is_err(), "the second holder must wait");
    }
}
