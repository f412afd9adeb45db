//! Session slots and the queue of logged-in users waiting for one: which login gets a slot
//! now, which waits and where, and who is next when a slot frees. Pure bookkeeping over
//! connection numbers, applied by the acceptor (which tells the sessions).

use std::collections::{HashSet, VecDeque};

/// The answer to a login that may have a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// A slot is the connection's now.
    Now,
    /// Every slot is taken: it waits at this 1-based position.
    Queued(u32),
    /// Every slot and every queue place is taken.
    Full,
}

#[derive(Debug)]
pub struct Slots {
    max_active: usize,
    max_queued: usize,
    active: HashSet<u64>,
    queue: VecDeque<u64>,
}

impl Slots {
    pub fn new(max_active: usize, max_queued: usize) -> Slots {
        Slots { max_active, max_queued, active: HashSet::new(), queue: VecDeque::new() }
    }

    /// A login asks for a slot. Nobody jumps the queue: a slot goes to a newcomer only when
    /// nobody waits.
    pub fn claim(&mut self, id: u64) -> Claim {
        if self.queue.is_empty() && self.active.len() < self.max_active {
            self.active.insert(id);
            Claim::Now
        } else if self.queue.len() < self.max_queued {
            self.queue.push_back(id);
            Claim::Queued(self.queue.len() as u32)
        } else {
            Claim::Full
        }
    }

    /// A session holding a slot ended (or never took the slot it was given): the slot is free.
    pub fn release(&mut self, id: u64) -> bool {
        self.active.remove(&id)
    }

    /// A waiting login left the queue; the ones behind it move up.
    pub fn leave_queue(&mut self, id: u64) -> bool {
        let Some(index) = self.queue.iter().position(|&waiting| waiting == id) else { return false };
        self.queue.remove(index);
        true
    }

    /// The next waiting login, given a free slot (oldest first); `None` if no slot is free or
    /// nobody waits.
    pub fn admit_next(&mut self) -> Option<u64> {
        if self.active.len() >= self.max_active {
            return None;
        }
        let id = self.queue.pop_front()?;
        self.active.insert(id);
        Some(id)
    }

    /// Every waiting login with its position.
    pub fn positions(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.queue.iter().enumerate().map(|(index, &id)| (id, index as u32 + 1))
    }

    /// Empties the queue (a shutdown): the logins that were waiting.
    pub fn drain_queue(&mut self) -> Vec<u64> {
        self.queue.drain(..).collect()
    }

    pub fn active(&self) -> usize {
        self.active.len()
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn logins_take_slots_then_wait_in_order_then_are_refused() {
        let mut slots = Slots::new(2, 2);
        assert_eq!(slots.claim(1), Claim::Now);
        assert_eq!(slots.claim(2), Claim::Now);
        assert_eq!(slots.claim(3), Claim::Queued(1));
        assert_eq!(slots.claim(4), Claim::Queued(2));
        assert_eq!(slots.claim(5), Claim::Full);
        assert!(slots.release(1));
        assert_eq!(slots.admit_next(), Some(3));
        assert_eq!(slots.admit_next(), None, "no slot left");
        assert_eq!(slots.positions().collect::<Vec<_>>(), [(4, 1)]);
        assert!(slots.leave_queue(4));
        assert!(!slots.leave_queue(4));
        assert!(slots.release(2));
        assert_eq!(slots.admit_next(), None, "nobody waits");
        assert_eq!(slots.claim(6), Claim::Now);
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// A new login from session `n` of the simulation.
        Login,
        /// The session at this index of the live ones ends (its slot or queue place frees).
        End(usize),
        /// The acceptor hands free slots to the queue.
        Admit,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![3 => Just(Step::Login), 2 => (0usize..32).prop_map(Step::End), 2 => Just(Step::Admit)]
    }

    proptest! {
        /// Over any interleaving of logins and ends from many sessions, with admissions in
        /// between: never more than `max_active` slots or `max_queued` waiting, no session both
        /// holds a slot and waits, positions are 1..n in arrival order, waiting logins are
        /// admitted in the order they arrived, and a login is refused only when both are full.
        #[test]
        fn slots_and_the_queue_hold_their_bounds_and_their_order(
            max_active in 1usize..5,
            max_queued in 0usize..5,
            steps in proptest::collection::vec(step(), 1..200),
        ) {
            let mut slots = Slots::new(max_active, max_queued);
            let (mut active, mut waiting): (Vec<u64>, Vec<u64>) = (Vec::new(), Vec::new());
            let mut next = 0u64;
            for step in steps {
                match step {
                    Step::Login => {
                        next += 1;
                        match slots.claim(next) {
                            Claim::Now => {
                                prop_assert!(waiting.is_empty() && active.len() < max_active);
                                active.push(next);
                            }
                            Claim::Queued(position) => {
                                prop_assert!(waiting.len() < max_queued);
                                prop_assert!(!waiting.is_empty() || active.len() >= max_active);
                                waiting.push(next);
                                prop_assert_eq!(position as usize, waiting.len());
                            }
                            Claim::Full => prop_assert!(waiting.len() >= max_queued && (active.len() >= max_active || !waiting.is_empty())),
                        }
                    }
                    Step::End(pick) => {
                        let total = active.len() + waiting.len();
                        if total > 0 {
                            let pick = pick % total;
                            if pick < active.len() {
                                prop_assert!(slots.release(active.remove(pick)));
                            } else {
                                prop_assert!(slots.leave_queue(waiting.remove(pick - active.len())));
                            }
                        }
                    }
                    Step::Admit => {
                        while let Some(id) = slots.admit_next() {
                            prop_assert_eq!(id, waiting.remove(0), "admitted out of order");
                            active.push(id);
                        }
                        prop_assert!(waiting.is_empty() || active.len() == max_active);
                    }
                }
                prop_assert!(slots.active() <= max_active && slots.queued() <= max_queued);
                prop_assert_eq!(slots.active(), active.len());
                let positions: Vec<(u64, u32)> = slots.positions().collect();
                let expected: Vec<(u64, u32)> = waiting.iter().enumerate().map(|(i, &id)| (id, i as u32 + 1)).collect();
                prop_assert_eq!(positions, expected);
                for id in &active {
                    prop_assert!(!waiting.contains(id));
                }
            }
        }
    }
}
