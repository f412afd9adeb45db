//! A bounded map from files, in one exact state, to what the server knows about them: the
//! digest of a published file ([`super::DigestIndex`]), the MD5 state of a partial
//! ([`super::ResumeStates`]). An entry answers only while its file's stamp is unchanged, and
//! the oldest entries are forgotten first, so the map never grows past its capacity.

use std::collections::{HashMap, VecDeque};

use super::digest_index::FileStamp;

#[derive(Debug)]
pub(super) struct StampedEntries<V> {
    by_file: HashMap<(u64, u64), (FileStamp, V)>,
    /// Insertion order, for forgetting the oldest; may hold files already replaced.
    order: VecDeque<(u64, u64)>,
}

impl<V> Default for StampedEntries<V> {
    fn default() -> Self {
        StampedEntries { by_file: HashMap::new(), order: VecDeque::new() }
    }
}

impl<V> StampedEntries<V> {
    /// What is known about the file in exactly this state.
    pub(super) fn get(&self, stamp: &FileStamp) -> Option<&V> {
        match self.by_file.get(&stamp.file()) {
            Some((known, value)) if known == stamp => Some(value),
            _ => None,
        }
    }

    /// Records `value` for the file in this state (replacing what was known about the file),
    /// then forgets the oldest entries beyond `capacity`.
    pub(super) fn insert(&mut self, stamp: FileStamp, value: V, capacity: usize) {
        if self.by_file.insert(stamp.file(), (stamp, value)).is_none() {
            self.order.push_back(stamp.file());
        }
        while self.by_file.len() > capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            self.by_file.remove(&oldest);
        }
    }

    /// Every entry, oldest first.
    pub(super) fn oldest_first(&self) -> impl Iterator<Item = (&FileStamp, &V)> {
        self.order.iter().filter_map(|file| self.by_file.get(file).map(|(stamp, value)| (stamp, value)))
    }

    pub(super) fn len(&self) -> usize {
        self.by_file.len()
    }
}
