//! The pre-login budget: connections that have not logged in yet hold no session slot and no
//! queue place, only a place in this budget, bounded in total and per source.
//!
//! When a newcomer finds a budget full, it is not refused: the oldest pre-login connection of
//! the source holding the most is closed to make room (of the newcomer's own source when that
//! source is at its own limit). One address flooding the server with silent or trickling
//! sockets therefore only ever evicts its own connections, and a flood from many addresses
//! evicts the oldest of the biggest: a real client, which logs in within a second or two of
//! connecting, gets in as long as the flood cannot cycle through the whole budget in that time.
//! OpenSSH's `MaxStartups` instead refuses newcomers at random once full, which lets a flood
//! keep real users out.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Where a connection comes from, as the budgets count it: an IPv4 address, or an IPv6 /64
/// (one customer's network: a single host can use every address of its /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl Source {
    pub fn of(address: IpAddr) -> Source {
        match address.to_canonical() {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => Source::V6Prefix(v6.octets()[..8].try_into().expect("16 octets hold 8")),
        }
    }
}

/// Pre-login connections by source, each source's oldest first. Identifiers are the
/// acceptor's connection numbers, which only grow, so a smaller one arrived earlier.
#[derive(Debug)]
pub struct PreLoginBudget {
    max_total: usize,
    max_per_source: usize,
    by_source: HashMap<Source, VecDeque<u64>>,
    source_of: HashMap<u64, Source>,
}

impl PreLoginBudget {
    /// Both limits are at least 1.
    pub fn new(max_total: usize, max_per_source: usize) -> PreLoginBudget {
        PreLoginBudget {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            by_source: HashMap::new(),
            source_of: HashMap::new(),
        }
    }

    /// Counts a new connection; returns the connection to close to make room for it, if a
    /// budget was full.
    pub fn arrive(&mut self, id: u64, source: Source) -> Option<u64> {
        let own = self.by_source.get(&source).map_or(0, VecDeque::len);
        let evicted = if own >= self.max_per_source {
            self.evict_oldest_of(source)
        } else if self.len() >= self.max_total {
            self.shed()
        } else {
            None
        };
        self.by_source.entry(source).or_default().push_back(id);
        self.source_of.insert(id, source);
        evicted
    }

    /// Forgets a connection (it logged in, or ended); says whether it was counted here.
    pub fn leave(&mut self, id: u64) -> bool {
        let Some(source) = self.source_of.remove(&id) else { return false };
        if let Some(queue) = self.by_source.get_mut(&source) {
            queue.retain(|&other| other != id);
            if queue.is_empty() {
                self.by_source.remove(&source);
            }
        }
        true
    }

    /// Picks the connection to close when room is needed: the oldest of the source holding the
    /// most (of those tied, the one whose oldest is oldest), and forgets it.
    pub fn shed(&mut self) -> Option<u64> {
        let busiest = self
            .by_source
            .iter()
            .max_by_key(|(_, queue)| (queue.len(), std::cmp::Reverse(queue.front().copied())))
            .map(|(source, _)| *source)?;
        self.evict_oldest_of(busiest)
    }

    fn evict_oldest_of(&mut self, source: Source) -> Option<u64> {
        let queue = self.by_source.get_mut(&source)?;
        let oldest = queue.pop_front()?;
        if queue.is_empty() {
            self.by_source.remove(&source);
        }
        self.source_of.remove(&oldest);
        Some(oldest)
    }

    pub fn len(&self) -> usize {
        self.source_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.source_of.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.source_of.contains_key(&id)
    }

    /// Pre-login connections from `source` now.
    pub fn from_source(&self, source: Source) -> usize {
        self.by_source.get(&source).map_or(0, VecDeque::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(last: u8) -> Source {
        Source::V4([127, 0, 0, last])
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Source::of(a), Source::of(b));
        assert_ne!(Source::of(a), Source::of(c));
        let mapped: IpAddr = "::ffff:10.0.0.7".parse().unwrap();
        assert_eq!(Source::of(mapped), Source::of("10.0.0.7".parse().unwrap()));
    }

    #[test]
    fn a_full_source_makes_room_with_its_own_oldest() {
        let mut budget = PreLoginBudget::new(100, 3);
        for id in 1..=3 {
            assert_eq!(budget.arrive(id, v4(2)), None);
        }
        assert_eq!(budget.arrive(4, v4(9)), None, "another source is not affected");
        assert_eq!(budget.arrive(5, v4(2)), Some(1));
        assert_eq!(budget.arrive(6, v4(2)), Some(2));
        assert!(budget.contains(4) && budget.contains(5) && budget.contains(6));
        assert_eq!(budget.len(), 4);
    }

    #[test]
    fn a_full_total_closes_the_oldest_of_the_busiest_source() {
        let mut budget = PreLoginBudget::new(5, 10);
        budget.arrive(1, v4(7)); // the oldest overall, but its source holds one
        for id in 2..=5 {
            budget.arrive(id, v4(2));
        }
        assert_eq!(budget.arrive(6, v4(8)), Some(2));
        assert!(budget.contains(1), "the lone connection from another source stays");
        assert_eq!(budget.from_source(v4(2)), 3);
    }

    #[test]
    fn ties_go_to_the_source_whose_oldest_is_oldest() {
        let mut budget = PreLoginBudget::new(4, 10);
        budget.arrive(1, v4(3));
        budget.arrive(2, v4(4));
        budget.arrive(3, v4(4));
        budget.arrive(4, v4(3));
        assert_eq!(budget.arrive(5, v4(5)), Some(1));
    }

    #[test]
    fn leaving_frees_room_and_unknown_ids_are_ignored() {
        let mut budget = PreLoginBudget::new(2, 2);
        budget.arrive(1, v4(2));
        budget.arrive(2, v4(2));
        assert!(budget.leave(1));
        assert!(!budget.leave(1));
        assert!(!budget.leave(42));
        assert_eq!(budget.arrive(3, v4(2)), None);
        assert_eq!(budget.shed(), Some(2));
        assert_eq!(budget.shed(), Some(3));
        assert_eq!(budget.shed(), None);
        assert!(budget.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Step {
        Arrive(u8),
        Leave(usize),
        Shed,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (0u8..6).prop_map(Step::Arrive),
            2 => (0usize..64).prop_map(Step::Leave),
            1 => Just(Step::Shed),
        ]
    }

    proptest! {
        /// Over any interleaving of arrivals from several sources, departures and sheds: the
        /// budgets always hold, a newcomer is never the one evicted, an eviction always comes
        /// from the source that held the most, and every connection is counted exactly once.
        #[test]
        fn the_budgets_hold_and_evictions_hit_the_biggest_source(
            max_total in 1usize..12,
            max_per_source in 1usize..6,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let mut budget = PreLoginBudget::new(max_total, max_per_source);
            let mut live: Vec<(u64, Source)> = Vec::new();
            let mut next = 0u64;
            for step in steps {
                match step {
                    Step::Arrive(last) => {
                        next += 1;
                        let source = v4(last);
                        let own_before = live.iter().filter(|(_, s)| *s == source).count();
                        let most_before = (0..6).map(|l| live.iter().filter(|(_, s)| *s == v4(l)).count()).max().unwrap_or(0);
                        let evicted = budget.arrive(next, source);
                        if let Some(gone) = evicted {
                            prop_assert_ne!(gone, next);
                            let index = live.iter().position(|(id, _)| *id == gone).expect("evicts a live one");
                            let (_, from) = live.remove(index);
                            if own_before >= max_per_source {
                                prop_assert_eq!(from, source);
                            } else {
                                let held = live.iter().filter(|(_, s)| *s == from).count() + 1;
                                prop_assert_eq!(held, most_before, "evicted from a source that did not hold the most");
                            }
                            // The oldest of its source.
                            prop_assert!(live.iter().filter(|(_, s)| *s == from).all(|(id, _)| *id > gone));
                        } else {
                            prop_assert!(own_before < max_per_source && live.len() < max_total);
                        }
                        live.push((next, source));
                    }
                    Step::Leave(pick) => {
                        if !live.is_empty() {
                            let (id, _) = live.remove(pick % live.len());
                            prop_assert!(budget.leave(id));
                        }
                    }
                    Step::Shed => {
                        let shed = budget.shed();
                        prop_assert_eq!(shed.is_some(), !live.is_empty());
                        if let Some(gone) = shed {
                            live.retain(|(id, _)| *id != gone);
                        }
                    }
                }
                prop_assert_eq!(budget.len(), live.len());
                prop_assert!(budget.len() <= max_total);
                for last in 0..6 {
                    let count = live.iter().filter(|(_, s)| *s == v4(last)).count();
                    prop_assert_eq!(budget.from_source(v4(last)), count);
                    prop_assert!(count <= max_per_source);
                }
                for (id, _) in &live {
                    prop_assert!(budget.contains(*id));
                }
            }
        }
    }
}
