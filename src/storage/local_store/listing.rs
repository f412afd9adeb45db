//! Listing a local directory in pages (see [`list_page`](crate::storage::list_page)): one pass over the directory, read
//! in no order, keeps the sorted names of several pages in a [`Window`], and the pages that
//! follow are cut from it.

use cap_std::fs::{Dir, FileType};

use super::{LocalStore, entry_kind, kind_of, shown_as_it_is, shown_name, unix_seconds};
use crate::net::{Entry, EntryKind, ListAfter};
use crate::storage::error::StorageError;
use crate::storage::jail::{VirtualPath, is_partial_name, published_name};
use crate::storage::list_page::{ListDetail, Listed, Listing, PageRequest, Window};

/// A name read from a directory as a listing holds it: its key (the name as shown, and
/// whether it is a partial upload, listed under the name it will be published as) and what
/// the directory calls it, if that differs from the key's name; `None` for a partial's other
/// files. A name shown as it is (almost every name) is moved into the key, not copied: a
/// listing holds every name of a window.
fn listed(on_disk: std::ffi::OsString, kind: Option<FileType>) -> Option<Listed<DiskName>> {
    let (shown, on_disk) = match on_disk.into_string() {
        Ok(name) if shown_as_it_is(&name) => (name, None),
        Ok(name) => (shown_name(name.as_ref()), Some(name.into())),
        Err(on_disk) => (shown_name(&on_disk), Some(on_disk)),
    };
    let key = match published_name(&shown) {
        Some(name) => {
            let key = ListAfter { name: name.to_string(), partial: true };
            return Some(Listed { key, name: (Some(on_disk.unwrap_or_else(|| shown.into())), kind) });
        }
        None if is_partial_name(&shown) => return None,
        None => ListAfter { name: shown, partial: false },
    };
    Some(Listed { key, name: (on_disk, kind) })
}

/// How many pages of names one pass over a directory keeps for the pages that follow: a
/// directory of `n` entries is read about `n / (WINDOW_PAGES * max_list_entries)` times in
/// all, and a listing in progress holds that many names (half as many again while a pass
/// gathers them; see [`Window::scan`]).
const WINDOW_PAGES: usize = 8;

/// A name as a directory holds it, when it differs from the name its key shows, and the kind
/// of file it names if the directory said (without reading the file's metadata).
pub(super) type DiskName = (Option<std::ffi::OsString>, Option<FileType>);

/// One pass over `dir` for the listing after `after` (see [`Window::scan`]).
fn scan(dir: &Dir, after: Option<&ListAfter>, size: usize) -> Result<Window<DiskName>, StorageError> {
    let mut failure = None;
    let items = dir.entries()?.map_while(|item| item.map_err(|error| failure = Some(error)).ok());
    let names = items.filter_map(|item| listed(item.file_name(), item.file_type().ok()));
    let window = Window::scan(names, after, size);
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(window),
    }
}

impl LocalStore {
    /// The page of a directory's listing that `request` asks for (see [`list_page`](crate::storage::list_page)), sorted,
    /// and whether more follow; or, for a single file, its one entry. A partial upload is
    /// listed under the name it will be published as, with the kind [`EntryKind::Partial`]
    /// (after the file of that name, if one is published); a path with only a partial upload
    /// describes that. Each session opens its own store, so the window of names is one
    /// session's.
    pub fn list(&self, path: &VirtualPath, request: &PageRequest) -> Result<Listing, StorageError> {
        let relative = path.to_relative();
        let alone = |entry: Entry| Ok(request.of_one(entry));
        let meta = match self.dir.metadata(&relative) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let partial = path.partial().ok_or(StorageError::NotFound)?;
                let meta = self.dir.symlink_metadata(partial.to_relative())?;
                let name = path.file_name().unwrap_or("/").to_string();
                return alone(Entry {
                    name,
                    kind: EntryKind::Partial,
                    size: meta.len(),
                    modified: unix_seconds(&meta),
                });
            }
            other => other?,
        };
        if !meta.is_dir() {
            let name = path.file_name().unwrap_or("/").to_string();
            return alone(Entry { name, kind: entry_kind(&meta), size: meta.len(), modified: unix_seconds(&meta) });
        }
        let dir = if path.is_root() { self.dir.try_clone()? } else { self.dir.open_dir(&relative)? };
        let mut window = self.window.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (max_entries, mut after) = (request.max, request.after.clone());
        loop {
            // A listing's first page always reads the directory: a window it continues from is
            // then never older than the listing itself.
            let reusable = after.is_some()
                && window
                    .as_ref()
                    .is_some_and(|(at, kept)| *at == relative && kept.page(after.as_ref(), max_entries).is_some());
            if !reusable {
                *window = Some((relative.clone(), scan(&dir, after.as_ref(), max_entries * WINDOW_PAGES)?));
            }
            let (_, kept) = window.as_ref().expect("just read");
            let (page, more) =
                kept.page(after.as_ref(), max_entries).expect("a window read from `after` gives its page");
            let mut entries = Vec::with_capacity(page.len());
            for listed in page {
                let (on_disk, file_type) = &listed.name;
                let on_disk = on_disk.as_deref().unwrap_or(listed.key.name.as_ref());
                let name = listed.key.name.clone();
                if let (ListDetail::Names, Some(file_type)) = (request.detail, file_type) {
                    let kind = if listed.key.partial { EntryKind::Partial } else { kind_of(*file_type) };
                    entries.push(Entry { name, kind, size: 0, modified: 0 });
                    continue;
                }
                let meta = match dir.symlink_metadata(on_disk) {
                    // Removed since the directory was read: the listing goes on without it.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    meta => meta?,
                };
                let kind = if listed.key.partial { EntryKind::Partial } else { entry_kind(&meta) };
                entries.push(Entry { name, kind, size: meta.len(), modified: unix_seconds(&meta) });
            }
            let last = page.last().map(|listed| listed.key.clone());
            if kept.ends_with(page) {
                // The listing has ended: its names are not held any longer.
                *window = None;
            }
            if entries.is_empty() && more {
                // The page's entries were all removed since the directory was read: the next.
                after = last;
                continue;
            }
            return Ok(Listing { entries, truncated: more });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::PathLimits;

    fn vp(text: &str) -> VirtualPath {
        VirtualPath::resolve(&VirtualPath::root(), text, PathLimits::default()).unwrap()
    }

    #[test]
    fn a_large_directory_is_listed_in_pages() {
        let root = tempfile::tempdir().unwrap();
        let home = LocalStore::open(root.path()).unwrap();
        for i in 0..5 {
            std::fs::write(root.path().join(format!("f{i}")), "x").unwrap();
        }
        // f1's partial starts a page, just after f1 ended the one before.
        std::fs::write(root.path().join(".f1.ftpa-part"), "xy").unwrap();
        std::fs::write(root.path().join(".g.ftpa-part"), "xy").unwrap();
        let mut pages = Vec::new();
        let mut after = None;
        loop {
            let page =
                home.list(&VirtualPath::root(), &PageRequest::after(after.clone(), 2, ListDetail::Facts)).unwrap();
            let keys: Vec<String> = page.entries.iter().map(|e| format!("{}{:?}", e.name, e.kind)).collect();
            pages.push(keys.join(" "));
            after = page.entries.last().map(Entry::list_key);
            if !page.truncated {
                break;
            }
        }
        assert_eq!(pages, ["f0File f1File", "f1Partial f2File", "f3File f4File", "gPartial"]);
        let file = home.list(&vp("f1"), &PageRequest::first(2, ListDetail::Facts)).unwrap();
        assert_eq!(file.entries.len(), 1);
        let after_it =
            home.list(&vp("f1"), &PageRequest::after(Some(file.entries[0].list_key()), 2, ListDetail::Facts)).unwrap();
        assert_eq!((after_it.entries.len(), after_it.truncated), (0, false), "a file's one entry has no next page");
    }

    /// A listing of names reads no entry's metadata, yet gives each entry its kind (the
    /// directory tells it), so a list of names still leaves partials and FIFOs out.
    #[test]
    fn a_listing_of_names_has_every_kind_and_no_facts() {
        let root = tempfile::tempdir().unwrap();
        let home = LocalStore::open(root.path()).unwrap();
        std::fs::write(root.path().join("f"), "data").unwrap();
        std::fs::write(root.path().join(".p.ftpa-part"), "part").unwrap();
        std::fs::create_dir(root.path().join("d")).unwrap();
        std::os::unix::fs::symlink("f", root.path().join("l")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(root.path().join("q")).status().unwrap().success());
        let names = home.list(&VirtualPath::root(), &PageRequest::first(10, ListDetail::Names)).unwrap();
        let kinds: Vec<_> = names.entries.iter().map(|e| (e.name.as_str(), e.kind, e.size)).collect();
        use EntryKind::*;
        assert_eq!(kinds, [("d", Dir, 0), ("f", File, 0), ("l", Symlink, 0), ("p", Partial, 0), ("q", Other, 0)]);
        let facts = home.list(&VirtualPath::root(), &PageRequest::first(10, ListDetail::Facts)).unwrap();
        assert_eq!(facts.entries[1].size, 4, "facts read the size");
    }
}
