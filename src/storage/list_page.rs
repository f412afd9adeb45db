//! Listings in pages: any directory is listed with bounded memory, a page of at most
//! `max_list_entries` entries at a time, each page starting just after the last entry of the
//! one before (keyset paging, in [`ListAfter`]'s order). Entries added or removed while a
//! listing is read may or may not be in it; no entry is listed twice, and none that stays is
//! left out.
//!
//! A database gives a page with `WHERE name > last ORDER BY name LIMIT n`. A local directory
//! is read in no order, so one pass over it keeps the names of several pages (a [`Window`]):
//! the smallest after where the listing stands, sorted. The next pages are cut from the window;
//! the directory is read again only when it runs out, so a directory of `n` entries is read
//! about `n / window` times in all.

use crate::net::{Entry, EntryKind, ListAfter};

/// A page of a listing, and whether more entries follow its last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    pub entries: Vec<Entry>,
    pub truncated: bool,
}

/// Which page of a listing to read, and what to read of each entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// The last entry of the page before; `None` for the first page.
    pub after: Option<ListAfter>,
    /// The most entries in the page (`max_list_entries`; at least one).
    pub max: usize,
    pub detail: ListDetail,
}

impl PageRequest {
    pub fn first(max: usize, detail: ListDetail) -> PageRequest {
        PageRequest { after: None, max: max.max(1), detail }
    }

    pub fn after(after: Option<ListAfter>, max: usize, detail: ListDetail) -> PageRequest {
        PageRequest { after, ..PageRequest::first(max, detail) }
    }

    /// Whether `entry` comes after where this page starts.
    pub fn follows(&self, entry: &Entry) -> bool {
        self.after.as_ref().is_none_or(|after| entry.list_key() > *after)
    }

    /// This page of the listing of a file, which is its one entry.
    pub fn of_one(&self, entry: Entry) -> Listing {
        let entries = if self.follows(&entry) { vec![entry] } else { Vec::new() };
        Listing { entries, truncated: false }
    }

    /// This page of `entries`, given in any order: every entry of the directory after
    /// `after`, or at least the page's and one more. Sorted, cut to `max`, and whether more
    /// follow.
    pub fn cut(&self, mut entries: Vec<Entry>) -> Listing {
        entries.retain(|entry| self.follows(entry));
        sort_listing(&mut entries);
        let truncated = entries.len() > self.max;
        entries.truncate(self.max);
        Listing { entries, truncated }
    }
}

/// What a listing reads of each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListDetail {
    /// Kind, size and modification time.
    Facts,
    /// The kind alone (sizes and times are 0): what a list of names needs (FTP's NLST), which
    /// a local directory gives without reading each entry's metadata.
    Names,
}

/// Sorts entries in listing order.
fn sort_listing(entries: &mut [Entry]) {
    let partial = |entry: &Entry| entry.kind == EntryKind::Partial;
    entries.sort_by(|a, b| (&a.name, partial(a)).cmp(&(&b.name, partial(b))));
}

/// A name read from a directory: its place in listings, and `name`, what the directory calls
/// it (to read its facts by).
#[derive(Debug, Clone)]
pub struct Listed<N> {
    pub key: ListAfter,
    pub name: N,
}

impl<N> PartialEq for Listed<N> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl<N> Eq for Listed<N> {}

impl<N> PartialOrd for Listed<N> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<N> Ord for Listed<N> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key.cmp(&other.key)
    }
}

/// The names one pass over a directory kept: every name after `from` up to the last one kept,
/// sorted; `complete` if no name after those was left out.
#[derive(Debug)]
pub struct Window<N> {
    from: Option<ListAfter>,
    names: Vec<Listed<N>>,
    complete: bool,
}

impl<N> Window<N> {
    /// One pass over `names` (in any order): keeps the `size` smallest after `after`. Names
    /// shown alike (which only another program on the host can make) are not split between
    /// two windows, so that a page never ends inside such a group: a group the window would
    /// cut is left out of it, for the next pass. (A group larger than a whole window is split,
    /// and the names of it past the window are not listed.)
    pub fn scan(names: impl Iterator<Item = Listed<N>>, after: Option<&ListAfter>, size: usize) -> Window<N> {
        let size = size.max(1);
        // Names are gathered up to half a window past its size, then cut back to the smallest
        // `size` (a selection, linear), and sorted once at the end: fewer comparisons than
        // keeping a heap of `size` in order all along.
        let mut kept: Vec<Listed<N>> = Vec::new();
        let mut least_dropped: Option<ListAfter> = None;
        for listed in names.filter(|listed| after.is_none_or(|after| listed.key > *after)) {
            kept.push(listed);
            if kept.len() >= size + size.div_ceil(2) {
                cut_to(&mut kept, size, &mut least_dropped);
            }
        }
        cut_to(&mut kept, size, &mut least_dropped);
        kept.sort_unstable();
        // Every name dropped is at least the largest kept: equal means a group was cut.
        if let Some(least) = &least_dropped
            && let Some(first) = kept.iter().position(|listed| listed.key == *least)
            && first > 0
        {
            kept.truncate(first);
        }
        Window { from: after.cloned(), names: kept, complete: least_dropped.is_none() }
    }

    /// The page after `after`: at most `max` names (more only for a group shown alike), and
    /// whether more follow. `None` if this window cannot give it: it starts past `after`, or
    /// holds nothing after it while the directory has more.
    pub fn page(&self, after: Option<&ListAfter>, max: usize) -> Option<(&[Listed<N>], bool)> {
        let covers = match (&self.from, after) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(from), Some(after)) => from <= after,
        };
        if !covers {
            return None;
        }
        let start = self.names.partition_point(|listed| after.is_some_and(|after| listed.key <= *after));
        let rest = &self.names[start..];
        if rest.is_empty() && !self.complete {
            return None;
        }
        let mut end = rest.len().min(max.max(1));
        while end > 0 && end < rest.len() && rest[end].key == rest[end - 1].key {
            end += 1;
        }
        Some((&rest[..end], end < rest.len() || !self.complete))
    }

    /// Whether `page` leaves nothing of the directory after it: the listing has ended.
    pub fn ends_with(&self, page: &[Listed<N>]) -> bool {
        self.complete && page.last().map(|listed| &listed.key) == self.names.last().map(|listed| &listed.key)
    }
}

/// Keeps the `size` smallest of `names` (in no order), noting the least of those dropped.
fn cut_to<N>(names: &mut Vec<Listed<N>>, size: usize, least_dropped: &mut Option<ListAfter>) {
    if names.len() <= size {
        return;
    }
    names.select_nth_unstable(size);
    for dropped in names.drain(size..) {
        if least_dropped.as_ref().is_none_or(|least| dropped.key < *least) {
            *least_dropped = Some(dropped.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(name: &str, partial: bool) -> ListAfter {
        ListAfter { name: name.to_string(), partial }
    }

    fn listed(name: &str, partial: bool, id: usize) -> Listed<usize> {
        Listed { key: key(name, partial), name: id }
    }

    #[test]
    fn a_partial_comes_just_after_the_file_of_its_name() {
        assert!(key("a", false) < key("a", true));
        assert!(key("a", true) < key("a.txt", false));
        assert!(key("B", false) < key("a", false), "bytewise, as a database's C collation");
    }

    fn entry(name: &str, kind: EntryKind) -> Entry {
        Entry { name: name.to_string(), kind, size: 0, modified: 0 }
    }

    /// What a database backend gives (each query's rows from `after` on, the row of `after`
    /// itself included) is cut to the page after it.
    #[test]
    fn a_page_is_cut_from_rows_given_from_its_start() {
        let rows = || {
            vec![
                entry("c", EntryKind::File),
                entry("b", EntryKind::Partial),
                entry("b", EntryKind::File),
                entry("d", EntryKind::Dir),
            ]
        };
        let first = PageRequest::first(2, ListDetail::Facts).cut(rows());
        let shown: Vec<_> = first.entries.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!((shown, first.truncated), (vec![("b", EntryKind::File), ("b", EntryKind::Partial)], true));
        let next = PageRequest::after(Some(key("b", true)), 2, ListDetail::Facts).cut(rows());
        let shown: Vec<_> = next.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!((shown, next.truncated), (vec!["c", "d"], false));
        let file = entry("f", EntryKind::File);
        assert_eq!(PageRequest::first(1, ListDetail::Facts).of_one(file.clone()).entries.len(), 1);
        assert!(PageRequest::after(Some(key("f", false)), 1, ListDetail::Facts).of_one(file).entries.is_empty());
    }

    #[test]
    fn a_window_serves_pages_until_it_runs_out() {
        let names = || ["e", "c", "a", "d", "b"].into_iter().enumerate().map(|(id, name)| listed(name, false, id));
        let window = Window::scan(names(), None, 3);
        let (page, more) = window.page(None, 2).unwrap();
        assert_eq!((page.len(), more, page[1].key.name.as_str()), (2, true, "b"));
        let (page, more) = window.page(Some(&key("b", false)), 2).unwrap();
        assert_eq!((page.len(), more), (1, true), "c, the window's last; more in the directory");
        assert!(window.page(Some(&key("c", false)), 2).is_none(), "the directory must be read again");
        assert!(Window::scan(names(), Some(&key("c", false)), 3).page(None, 2).is_none(), "starts past it");
        let all = Window::scan(names(), None, 5);
        let (page, more) = all.page(Some(&key("c", false)), 5).unwrap();
        assert_eq!((page.len(), more, all.ends_with(page)), (2, false, true));
    }

    #[test]
    fn names_shown_alike_are_never_split() {
        let names = || ["b", "a", "b"].into_iter().enumerate().map(|(id, name)| listed(name, false, id));
        let window = Window::scan(names(), None, 2);
        let (page, more) = window.page(None, 5).unwrap();
        assert_eq!((page.len(), more), (1, true), "the group of b would be cut: left to the next pass");
        assert!(window.page(Some(&key("a", false)), 5).is_none());
        let next = Window::scan(names(), Some(&key("a", false)), 2);
        let (page, more) = next.page(Some(&key("a", false)), 1).unwrap();
        assert_eq!((page.len(), more), (2, false), "a whole group, past the page's size");
    }

    proptest! {
        /// Reading a directory page by page, in any order of its names and with any window
        /// and page sizes, gives every name once, in order, in pages of at most `max` (groups
        /// of names shown alike aside, which are whole in one page when smaller than a window).
        #[test]
        fn pages_cover_every_name_once_in_order(
            names in proptest::collection::vec(("[a-d]{1,2}", any::<bool>()), 0..60),
            max in 1usize..6,
            window in 4usize..20,
            seed in any::<u64>(),
        ) {
            // Groups of names shown alike of up to three: smaller than any window.
            let mut count = std::collections::HashMap::new();
            let names: Vec<(String, bool)> = names.into_iter().filter(|name| {
                let seen = count.entry(name.clone()).or_insert(0);
                *seen += 1;
                *seen <= 3
            }).collect();
            let mut names: Vec<Listed<usize>> =
                names.iter().enumerate().map(|(id, (name, partial))| listed(name, *partial, id)).collect();
            let mut rng = seed;
            for i in (1..names.len()).rev() {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                names.swap(i, (rng >> 33) as usize % (i + 1));
            }
            let mut listed_ids = Vec::new();
            let mut after: Option<ListAfter> = None;
            let mut current: Option<Window<usize>> = None;
            for _ in 0..1000 {
                let served = current.as_ref().and_then(|w| w.page(after.as_ref(), max).map(|(p, more)| (p.to_vec(), more)));
                let (page, more) = match served {
                    Some(served) => served,
                    None => {
                        current = Some(Window::scan(names.iter().cloned(), after.as_ref(), window));
                        let (page, more) = current.as_ref().unwrap().page(after.as_ref(), max).expect("a fresh window");
                        (page.to_vec(), more)
                    }
                };
                // Past `max` only to end with the whole group its last name is in.
                let group_at_end = page.len() <= max || page[max - 1..].iter().all(|l| l.key == page[max - 1].key);
                prop_assert!(group_at_end, "a page of {}", page.len());
                prop_assert!(!page.is_empty() || !more, "an empty page with more to come");
                listed_ids.extend(page.iter().map(|listed| listed.name));
                match page.last() {
                    Some(last) if more => after = Some(last.key.clone()),
                    _ => break,
                }
            }
            let listed_keys: Vec<&ListAfter> = listed_ids.iter().map(|&id| &names.iter().find(|l| l.name == id).unwrap().key).collect();
            prop_assert!(listed_keys.windows(2).all(|pair| pair[0] <= pair[1]), "in order");
            let mut sorted_ids = listed_ids.clone();
            sorted_ids.sort_unstable();
            let mut all_ids: Vec<usize> = names.iter().map(|listed| listed.name).collect();
            all_ids.sort_unstable();
            prop_assert_eq!(sorted_ids, all_ids, "every name once");
        }
    }
}
