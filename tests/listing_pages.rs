//! The paged-listing invariant under random interleavings, on real files: readers list two
//! directories a page at a time (`max_list_entries` small), through one store as one session's
//! directory handles do, while other sessions publish files, leave partial uploads and remove
//! both, between any two pages. However the steps interleave, each reader's listing
//!
//! - is in listing order with no entry twice (each page starts after the last one's end);
//! - holds every entry that was there from before its first page to after its last;
//! - holds nothing that was never there.

use std::collections::BTreeSet;
use std::path::Path;

use ftp_actor::net::{Entry, ListAfter};
use ftp_actor::storage::list_page::{ListDetail, PageRequest};
use ftp_actor::storage::{LocalStore, PathLimits, VirtualPath};
use proptest::prelude::*;

/// Readers 0 and 2 list the home, reader 1 the directory `sub`: the store's window of names
/// passes from one directory to the other between their pages.
const READERS: usize = 3;
const DIRS: [&str; 2] = ["", "sub"];

fn dir_of(reader: usize) -> usize {
    reader % 2
}
/// Names the other sessions use: few, so that they collide with listed ones.
const NAMES: [&str; 8] = ["a", "b", "b.txt", "c", "d", "e", "f", "g"];

#[derive(Debug, Clone)]
enum Step {
    /// A reader reads its next page (or starts over once it has read the whole listing).
    Page { reader: usize },
    /// A file published under the name in `DIRS[dir]`, or a partial upload to it left.
    Add { dir: usize, name: usize, partial: bool },
    /// The file or the partial removed.
    Remove { dir: usize, name: usize, partial: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..READERS).prop_map(|reader| Step::Page { reader }),
        2 => (0..DIRS.len(), 0..NAMES.len(), any::<bool>()).prop_map(|(dir, name, partial)| Step::Add { dir, name, partial }),
        2 => (0..DIRS.len(), 0..NAMES.len(), any::<bool>())
            .prop_map(|(dir, name, partial)| Step::Remove { dir, name, partial }),
    ]
}

/// Where the entry `key` is on disk: the file, or its partial (`.NAME.ftpa-part`).
fn on_disk(home: &Path, key: &ListAfter) -> std::path::PathBuf {
    match key.partial {
        true => home.join(format!(".{}.ftpa-part", key.name)),
        false => home.join(&key.name),
    }
}

/// One reader: what it has listed so far, where it is, and the entries present when it began.
#[derive(Default)]
struct Reader {
    listed: Vec<ListAfter>,
    after: Option<ListAfter>,
    /// Entries present when the first page was read that have not been removed since.
    staying: BTreeSet<ListAfter>,
    /// Every entry present at some moment since the first page.
    ever: BTreeSet<ListAfter>,
}

impl Reader {
    /// Checks a whole listing, then starts over.
    fn finish(&mut self) -> Result<(), TestCaseError> {
        let sorted_once = self.listed.windows(2).all(|pair| pair[0] < pair[1]);
        prop_assert!(sorted_once, "out of order or twice: {:?}", self.listed);
        let listed: BTreeSet<ListAfter> = self.listed.iter().cloned().collect();
        prop_assert!(self.staying.is_subset(&listed), "left out: {:?} of {:?}", self.staying, self.listed);
        prop_assert!(listed.is_subset(&self.ever), "never there: {:?} of {:?}", listed, self.ever);
        *self = Reader::default();
        Ok(())
    }
}

fn run(steps: &[Step], page: usize) -> Result<(), TestCaseError> {
    let root = tempfile::tempdir().unwrap();
    let store = LocalStore::open(root.path()).unwrap();
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let folders = DIRS.map(|dir| root.path().join(dir));
    let sub = VirtualPath::resolve(&VirtualPath::root(), DIRS[1], PathLimits::default()).unwrap();
    let listed_dirs = [VirtualPath::root(), sub];
    let mut present: [BTreeSet<ListAfter>; 2] = Default::default();
    present[0].insert(ListAfter { name: "sub".to_string(), partial: false });
    for (dir, names) in [(0, ["a", "c", "e"]), (1, ["b", "d", "f"])] {
        for name in names {
            let key = ListAfter { name: name.to_string(), partial: false };
            std::fs::write(on_disk(&folders[dir], &key), "x").unwrap();
            present[dir].insert(key);
        }
    }
    let mut readers: Vec<Reader> = (0..READERS).map(|_| Reader::default()).collect();
    // Then pages only, until every reader has read to the end.
    let to_the_end: Vec<Step> = (0..READERS * 20).map(|n| Step::Page { reader: n % READERS }).collect();
    for step in steps.iter().chain(&to_the_end) {
        match step {
            Step::Page { reader: number } => {
                let dir = dir_of(*number);
                let reader = &mut readers[*number];
                if reader.listed.is_empty() && reader.after.is_none() {
                    reader.staying = present[dir].clone();
                    reader.ever = present[dir].clone();
                }
                let request = PageRequest::after(reader.after.clone(), page, ListDetail::Facts);
                let listing = store.list(&listed_dirs[dir], &request).unwrap();
                prop_assert!(listing.entries.len() <= page, "a page of {}", listing.entries.len());
                reader.listed.extend(listing.entries.iter().map(Entry::list_key));
                reader.after = listing.entries.last().map(Entry::list_key);
                if !listing.truncated {
                    reader.finish()?;
                }
            }
            Step::Add { dir, name, partial } => {
                let key = ListAfter { name: NAMES[*name].to_string(), partial: *partial };
                std::fs::write(on_disk(&folders[*dir], &key), "x").unwrap();
                for (_, reader) in readers.iter_mut().enumerate().filter(|(number, _)| dir_of(*number) == *dir) {
                    reader.ever.insert(key.clone());
                }
                present[*dir].insert(key);
            }
            Step::Remove { dir, name, partial } => {
                let key = ListAfter { name: NAMES[*name].to_string(), partial: *partial };
                let _ = std::fs::remove_file(on_disk(&folders[*dir], &key));
                for (_, reader) in readers.iter_mut().enumerate().filter(|(number, _)| dir_of(*number) == *dir) {
                    reader.staying.remove(&key);
                }
                present[*dir].remove(&key);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn pages_read_during_changes_list_every_staying_entry_once(
        steps in proptest::collection::vec(step(), 0..60),
        page in 1usize..5,
    ) {
        run(&steps, page)?;
    }
}
