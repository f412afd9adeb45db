//! Planning recursive transfers (`put -r`, `get -r`): which directories to make and which files
//! to copy, relative to the tree's root. Kept apart from the shell so it is tested on plain
//! directories, with no server.

use std::path::{Path, PathBuf};

use crate::storage::jail::{is_ordinary_name, is_partial_name};

/// One step of copying a tree, as a `/`-separated path relative to its root. Directories come
/// before anything inside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeStep {
    Dir(String),
    File(String),
}

/// A local entry a `put -r` leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub why: &'static str,
}

/// Walks the local directory `root`, entries sorted by name. Regular files (and links to
/// them) are copied; links to directories are skipped, so a link loop cannot make the walk
/// endless, and so are sockets, devices, names that are not UTF-8 (the server's paths are
/// text) and the partials of interrupted transfers (names the server reserves).
pub fn local_tree(root: &Path) -> std::io::Result<(Vec<TreeStep>, Vec<Skipped>)> {
    let mut steps = Vec::new();
    let mut skipped = Vec::new();
    walk_local(root, "", &mut steps, &mut skipped)?;
    Ok((steps, skipped))
}

fn walk_local(dir: &Path, prefix: &str, steps: &mut Vec<TreeStep>, skipped: &mut Vec<Skipped>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            skipped.push(Skipped { path, why: "its name is not UTF-8" });
            continue;
        };
        if is_partial_name(&name) {
            skipped.push(Skipped { path, why: "it is the partial of an interrupted transfer" });
            continue;
        }
        if !is_ordinary_name(&name) {
            skipped.push(Skipped { path, why: "its name has a control character, which the server refuses" });
            continue;
        }
        let relative = join(prefix, &name);
        let link = entry.file_type()?.is_symlink();
        // Follows a link, to copy what it points at.
        let kind = match std::fs::metadata(&path) {
            Ok(meta) => meta.file_type(),
            Err(_) => {
                skipped.push(Skipped { path, why: "it is a broken link" });
                continue;
            }
        };
        if kind.is_dir() && link {
            skipped.push(Skipped { path, why: "it is a link to a directory" });
        } else if kind.is_dir() {
            steps.push(TreeStep::Dir(relative.clone()));
            walk_local(&path, &relative, steps, skipped)?;
        } else if kind.is_file() {
            steps.push(TreeStep::File(relative));
        } else {
            skipped.push(Skipped { path, why: "it is not a regular file or directory" });
        }
    }
    Ok(())
}

/// "N files in M directories" for a tree's steps, its root counted among the directories.
pub fn counts(steps: &[TreeStep]) -> String {
    let dirs = 1 + steps.iter().filter(|step| matches!(step, TreeStep::Dir(_))).count();
    format!("{} files in {dirs} directories", steps.len() + 1 - dirs)
}

/// `prefix/name`; `name` alone when there is no prefix, and `prefix` alone when there is no
/// name (a tree's root). A prefix's trailing `/` is not doubled.
pub fn join(prefix: &str, name: &str) -> String {
    match (prefix, name) {
        ("", name) => name.to_string(),
        (prefix, "") => prefix.to_string(),
        (prefix, name) => format!("{}/{name}", prefix.trim_end_matches('/')),
    }
}

/// Whether a name in a server's listing may become a local file name: one ordinary path
/// component ([`is_ordinary_name`], the server's own rule). A `get -r` from a hostile or broken
/// server must not write outside the directory it was given (`..`, `a/b`, `/etc`), nor onto
/// the names of partials.
pub fn safe_remote_name(name: &str) -> bool {
    is_ordinary_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_tree_lists_directories_before_their_contents_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/inner")).unwrap();
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::write(root.join("z.txt"), b"z").unwrap();
        std::fs::write(root.join(".z.txt.ftpa-part"), b"z").unwrap();
        std::fs::write(root.join("b/inner/deep.bin"), b"d").unwrap();
        std::fs::write(root.join("b/one"), b"1").unwrap();
        let (steps, skipped) = local_tree(root).unwrap();
        let expected = [
            TreeStep::Dir("a".into()),
            TreeStep::Dir("b".into()),
            TreeStep::Dir("b/inner".into()),
            TreeStep::File("b/inner/deep.bin".into()),
            TreeStep::File("b/one".into()),
            TreeStep::File("z.txt".into()),
        ];
        assert_eq!(steps, expected);
        assert_eq!(skipped.len(), 1, "the partial");
        assert_eq!(skipped[0].why, "it is the partial of an interrupted transfer");
    }

    #[cfg(unix)]
    #[test]
    fn links_to_files_are_followed_and_links_to_directories_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"f").unwrap();
        std::os::unix::fs::symlink(root.join("d/f"), root.join("file-link")).unwrap();
        // A loop: the walk must end.
        std::os::unix::fs::symlink(root, root.join("d/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("missing"), root.join("broken")).unwrap();
        let (steps, skipped) = local_tree(root).unwrap();
        let expected = [TreeStep::Dir("d".into()), TreeStep::File("d/f".into()), TreeStep::File("file-link".into())];
        assert_eq!(steps, expected);
        let why: Vec<_> = skipped.iter().map(|s| (s.path.file_name().unwrap().to_str().unwrap(), s.why)).collect();
        assert_eq!(why, [("broken", "it is a broken link"), ("loop", "it is a link to a directory")]);
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_are_skipped() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
        std::fs::write(dir.path().join("good"), b"x").unwrap();
        let (steps, skipped) = local_tree(dir.path()).unwrap();
        assert_eq!(steps, [TreeStep::File("good".into())]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].why, "its name is not UTF-8");
    }

    #[test]
    fn only_ordinary_names_from_a_listing_become_local_names() {
        for good in ["a", "file.txt", ".hidden", "..x", "a b", "ünï"] {
            assert!(safe_remote_name(good), "{good}");
        }
        assert!(safe_remote_name("..\\x") && safe_remote_name("back\\slash"), "a backslash is ordinary");
        for bad in ["", ".", "..", "a/b", "/etc", "nul\0", "line\nbreak", ".f.ftpa-part", "x.ftpa-part"] {
            assert!(!safe_remote_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn counts_include_the_root_directory() {
        let steps = [TreeStep::Dir("a".into()), TreeStep::File("a/b".into()), TreeStep::File("c".into())];
        assert_eq!(counts(&steps), "2 files in 2 directories");
        assert_eq!(counts(&[]), "0 files in 1 directories");
    }

    #[test]
    fn join_builds_relative_paths() {
        assert_eq!(join("", "a"), "a");
        assert_eq!(join("a/b", "c"), "a/b/c");
        assert_eq!(join("/", "c"), "/c");
        assert_eq!(join("up/", "c"), "up/c");
        assert_eq!(join("/docs", ""), "/docs");
    }
}
