//! Wildcards in the shell's arguments, expanded by the shell: a remote pattern against the
//! server's listing of its directory, a local one against the local directory (the rules of
//! matching are in [`super::wildcards`]). A word that is no pattern stands for itself.

use std::path::PathBuf;

use crate::client::{Client, ClientError};
use crate::net::{Entry, EntryKind, ErrorCode};

use super::shell::Failure;
use super::words::Word;
use crate::wildcards::{join, matches, split_pattern, unescape};

/// The remote paths `word` stands for, with their kinds, sorted by name: the entries its
/// pattern matches (each name once: a file and a partial upload to it are the file), or
/// itself (kind unknown: `None`) if it is no pattern. A pattern that matches nothing is an
/// error, as in sftp.
pub(super) fn remote(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    word: &Word,
) -> Result<Vec<(String, Option<EntryKind>)>, Failure> {
    if !word.is_pattern() {
        return Ok(vec![(word.text.clone(), None)]);
    }
    let (dir, entries) = remote_entries(rt, client, word)?;
    let mut found: Vec<(String, Option<EntryKind>)> = Vec::new();
    for entry in entries {
        let path = join(dir.as_deref(), &entry.name);
        // A partial upload is listed after the file of its name: that name is there already.
        if found.last().is_none_or(|(last, _)| *last != path) {
            found.push((path, Some(entry.kind)));
        }
    }
    Ok(found)
}

/// The entries of the remote directory that `word`'s pattern matches, in the server's order,
/// with that directory as typed (`None`: the working directory). Matching nothing is an error.
pub(super) fn remote_entries(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    word: &Word,
) -> Result<(Option<String>, Vec<Entry>), Failure> {
    let (dir, pattern) = split_pattern(&word.pattern).map_err(|e| Failure::Command(format!("error: {e}")))?;
    let dir = dir.map(unescape);
    // Only the matches are kept, page after page: a pattern in a huge directory holds what it
    // matched, not the whole listing.
    let (mut listed, mut entries) = (0, Vec::new());
    let paged = rt.block_on(client.list_pages(dir.as_deref(), |page| {
        listed += page.len();
        entries.extend(page.into_iter().filter(|entry| matches(pattern, &entry.name)));
    }));
    // A directory that is not there matches nothing; the server's reason says why.
    let truncated = match paged {
        Err(ClientError::Server(why)) if matches!(why.code, ErrorCode::NotFound | ErrorCode::NotADirectory) => {
            return Err(Failure::Command(format!("error: no remote name matches {} ({why})", word.text)));
        }
        paged => paged?.1,
    };
    // A pattern stands for every name it matches: matched against a cut listing (from a server
    // before paged listings), `mget *` would fetch part of a directory and say nothing (as
    // `get -r` refuses to, too).
    if truncated {
        return Err(Failure::Command(format!(
            "error: the server gave only the first {listed} entries of {} (it does not page its listings), so {} \
             cannot be matched against every name; nothing was done",
            dir.as_deref().unwrap_or("."),
            word.text
        )));
    }
    if entries.is_empty() {
        return Err(Failure::Command(format!("error: no remote name matches {}", word.text)));
    }
    Ok((dir, entries))
}

/// The local paths `word` stands for, sorted: the entries its pattern matches, or itself if
/// it is no pattern. A pattern that matches nothing is an error.
pub(super) fn local(word: &Word) -> Result<Vec<PathBuf>, Failure> {
    if !word.is_pattern() {
        return Ok(vec![PathBuf::from(&word.text)]);
    }
    let (dir, pattern) = split_pattern(&word.pattern).map_err(|e| Failure::Command(format!("error: {e}")))?;
    let listed = dir.map(unescape);
    let entries = std::fs::read_dir(listed.as_deref().unwrap_or(".")).map_err(|e| {
        Failure::Command(format!(
            "error: no local name matches {} ({}: {e})",
            word.text,
            listed.as_deref().unwrap_or(".")
        ))
    })?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|entry| entry.file_name().to_str().is_some_and(|name| matches(pattern, name)))
        .map(|entry| PathBuf::from(join(listed.as_deref(), &entry.file_name().to_string_lossy())))
        .collect();
    if found.is_empty() {
        return Err(Failure::Command(format!("error: no local name matches {}", word.text)));
    }
    found.sort();
    Ok(found)
}
