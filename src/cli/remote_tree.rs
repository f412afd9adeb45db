//! The shell's `mkdir -p` and `rm -r`: making every missing directory of a path, and removing
//! a remote directory with everything in it, one request at a time through the same commands
//! a person would type (the server's jail and quota apply to each).

use crate::client::{Client, ClientError};
use crate::net::{EntryKind, ErrorCode};

use super::shell::{Failure, names_a_directory};
use super::shell_commands::remote_directory;
use super::tree;

/// `mkdir -p PATH`: makes each missing directory of PATH, as `mkdir -p` does; one that is
/// already there is fine, a file in the way is not ([`remote_directory`] tells them apart).
pub(super) fn make_parents(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    cwd: &str,
    path: &str,
) -> Result<(), Failure> {
    let mut made = if path.starts_with('/') { "/".to_string() } else { String::new() };
    for name in path.split('/').filter(|name| !name.is_empty()) {
        made = tree::join(&made, name);
        match rt.block_on(client.mkdir(&made)) {
            Err(exists) if exists.code() == Some(ErrorCode::AlreadyExists) => {
                if remote_directory(rt, client, cwd, &made)?.is_none() {
                    return Err(Failure::Command(format!(
                        "error: mkdir -p {path}: {made} is there and is not a directory"
                    )));
                }
            }
            other => other?,
        }
    }
    Ok(())
}

/// What `rm -r` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Removed {
    pub files: u64,
    pub directories: u64,
}

/// `rm -r PATH`: PATH if it is a file (or a partial upload), else everything under the
/// directory PATH, depth first, then the directory itself; never `/`, `.` or `..`. A directory whose listing the
/// server cuts (`max_list_entries`) is emptied as far as listed, then refused by `rmdir` (error
/// 305), so the user is told; a name in a listing that is not one ordinary component (only a
/// broken or hostile server sends one) stops the removal rather than be joined to a path.
pub(super) fn remove_tree(rt: &tokio::runtime::Runtime, client: &mut Client, path: &str) -> Result<Removed, Failure> {
    // As GNU rm refuses `.`, `..` and `/`: the home would be emptied, then not removed.
    if names_a_directory(path) {
        return Err(Failure::Command(format!(
            "error: rm -r {path}: refusing to remove the home, . or ..; name what is in it (rm -r *)"
        )));
    }
    let mut removed = Removed::default();
    match rt.block_on(client.remove(path)) {
        Ok(partial_remains) => {
            removed.files += 1;
            if partial_remains {
                rt.block_on(client.remove(path))?;
            }
            return Ok(removed);
        }
        Err(ClientError::Server(wire)) if wire.code == ErrorCode::IsADirectory => {}
        Err(other) => return Err(other.into()),
    }
    empty_directory(rt, client, path, &mut removed)?;
    Ok(removed)
}

fn empty_directory(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    dir: &str,
    removed: &mut Removed,
) -> Result<(), Failure> {
    let listing = rt.block_on(client.list(Some(dir)))?;
    for entry in listing.entries {
        if !tree::safe_remote_name(&entry.name) {
            return Err(Failure::Command(format!("error: rm -r {dir}: the server listed the name {:?}", entry.name)));
        }
        let child = tree::join(dir, &entry.name);
        match entry.kind {
            EntryKind::Dir => empty_directory(rt, client, &child, removed)?,
            // A file and a partial upload to the same name are listed one after the other:
            // each `remove` takes one of them.
            _ => {
                rt.block_on(client.remove(&child))?;
                removed.files += 1;
            }
        }
    }
    rt.block_on(client.rmdir(dir))?;
    removed.directories += 1;
    Ok(())
}
