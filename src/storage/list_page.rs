//! Listings in pages: any directory is listed with bounded memory, a page of at most
//! `max_list_entries` entries at a time, each page starting just after the last entry of the
//! one before (keyset paging, in [`ListAfter`]'s order). Entries added or removed while a
//! listing is read may or may not be in it; no entry is listed twice, and none that stays is
//! left out.
//!
//! A database gives a page with `WHERE name > last ORDER BY name LIMIT n`. A local directory
//! is read in no order, so a page takes two passes over it: the first finds where the page
//! ends ([`page_end`], holding at most `max` names), the second reads the facts of the
//! entries up to there.

use std::collections::BinaryHeap;

use crate::net::{Entry, ListAfter};

/// Sorts entries in listing order.
pub fn sort_listing(entries: &mut [Entry]) {
    entries.sort_by(|a, b| (&a.name, is_partial(a)).cmp(&(&b.name, is_partial(b))));
}

fn is_partial(entry: &Entry) -> bool {
    entry.kind == crate::net::EntryKind::Partial
}

/// The last key of the page that follows `after` (the start if `None`) among `keys`, given in
/// any order: the `max`-th smallest key after `after`, or `None` if all of them fit in one
/// page. A page is then every key in `(after, end]`: keys equal to the end (two names shown
/// alike, which only another program on the host can make) all go in the same page, which may
/// hold more than `max` entries for them.
pub fn page_end(keys: impl Iterator<Item = ListAfter>, after: Option<&ListAfter>, max: usize) -> Option<ListAfter> {
    let max = max.max(1);
    let mut smallest = BinaryHeap::with_capacity(max);
    let mut overflowed = false;
    for key in keys.filter(|key| after.is_none_or(|after| key > after)) {
        if smallest.len() < max {
            smallest.push(key);
        } else {
            overflowed = true;
            if key < *smallest.peek().expect("full") {
                smallest.pop();
                smallest.push(key);
            }
        }
    }
    if overflowed { smallest.pop() } else { None }
}

/// Whether `key` belongs to the page after `after` that ends at `end` (see [`page_end`]).
pub fn in_page(key: &ListAfter, after: Option<&ListAfter>, end: Option<&ListAfter>) -> bool {
    after.is_none_or(|after| key > after) && end.is_none_or(|end| key <= end)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(name: &str, partial: bool) -> ListAfter {
        ListAfter { name: name.to_string(), partial }
    }

    #[test]
    fn a_partial_comes_just_after_the_file_of_its_name() {
        assert!(key("a", false) < key("a", true));
        assert!(key("a", true) < key("a.txt", false));
        assert!(key("B", false) < key("a", false), "bytewise, as a database's C collation");
    }

    #[test]
    fn a_page_that_holds_everything_has_no_end() {
        let keys = || ["c", "a", "b"].into_iter().map(|name| key(name, false));
        assert_eq!(page_end(keys(), None, 3), None);
        assert_eq!(page_end(keys(), None, 2), Some(key("b", false)));
        assert_eq!(page_end(keys(), Some(&key("a", false)), 2), None);
    }

    #[test]
    fn keys_shown_alike_stay_in_one_page() {
        let keys = || ["?", "?", "?", "a"].into_iter().map(|name| key(name, false));
        let end = page_end(keys(), None, 2);
        assert_eq!(end, Some(key("?", false)));
        assert_eq!(keys().filter(|k| in_page(k, None, end.as_ref())).count(), 3);
    }

    proptest! {
        /// Reading a directory page by page, in any order of its names, gives every name once,
        /// in order, in pages of at most `max` (names shown alike aside).
        #[test]
        fn pages_cover_every_key_once_in_order(
            names in proptest::collection::btree_set(("[a-d]{1,3}", any::<bool>()), 0..60),
            max in 1usize..8,
            seed in any::<u64>(),
        ) {
            let mut keys: Vec<ListAfter> = names.iter().map(|(name, partial)| key(name, *partial)).collect();
            let mut rng = seed;
            for i in (1..keys.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                keys.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let mut listed = Vec::new();
            let mut after: Option<ListAfter> = None;
            loop {
                let end = page_end(keys.iter().cloned(), after.as_ref(), max);
                let mut page: Vec<ListAfter> =
                    keys.iter().filter(|k| in_page(k, after.as_ref(), end.as_ref())).cloned().collect();
                page.sort();
                prop_assert!(page.len() <= max);
                listed.extend(page.iter().cloned());
                match end {
                    Some(end) => after = Some(end),
                    None => break,
                }
            }
            let mut expected = keys.clone();
            expected.sort();
            prop_assert_eq!(listed, expected);
        }
    }
}
