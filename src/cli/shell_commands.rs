//! The shell's commands that take more than one call: `ls` of a pattern, `put FILE DIR`, `mv X
//! DIR`, `mget`/`mput`, and `!COMMAND` run locally. The dispatch is in [`super::shell`].

use std::path::{Path, PathBuf};

use crate::client::Client;
use crate::net::{EntryKind, ErrorCode};

use super::expand;
use super::format::format_entry;
use super::shell::{Failure, base_name, names_a_directory};
use super::transfer::{get_file, put_file};
use super::tree;
use super::words::{Word, local_path, remote_path, remote_word};

/// `ls`: a directory or a file, or the entries a pattern matches. Entries are always shown in
/// full (`-l`), hidden ones included (`-a`): the options are taken for habit's sake.
pub(super) fn list(rt: &tokio::runtime::Runtime, client: &mut Client, path: Option<&Word>) -> Result<(), Failure> {
    let pattern = path.map(remote_word).filter(Word::is_pattern);
    let Some(pattern) = pattern else {
        // Each page is shown as it arrives: a huge directory starts printing at once, and the
        // shell holds one page of it, not the whole listing.
        let mut shown = 0;
        let path = path.map(|word| remote_path(&word.text));
        let (_, truncated) = rt.block_on(client.list_pages(path.as_deref(), |page| {
            shown += page.len();
            for entry in &page {
                println!("{}", format_entry(entry));
            }
        }))?;
        if truncated {
            println!("(only the first {shown} entries: the server does not page its listings)");
        }
        return Ok(());
    };
    for entry in expand::remote_entries(rt, client, &pattern)?.1 {
        println!("{}", format_entry(&entry));
    }
    Ok(())
}

/// `put FILE DIR`: into the directory, as `cp` does, when the server says DIR is one.
pub(super) fn put_into(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    local: &Path,
    remote: &str,
) -> Result<u64, Failure> {
    match put_file(rt, client, bars, local, remote) {
        Err(e) if e.code() == Some(ErrorCode::IsADirectory) => {
            let name = base_name(&local.to_string_lossy())?;
            Ok(put_file(rt, client, bars, local, &tree::join(remote, &name))?)
        }
        other => Ok(other?),
    }
}

/// `mv FROM TO`: a rename; where TO is a directory (ends in `/`, or the server has one there:
/// `docs`, `.`, `..`, `~`, `/`), a move into it under FROM's name, as `mv` does.
pub(super) fn move_entry(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    cwd: &str,
    from: &str,
    to: &str,
) -> Result<(), Failure> {
    if to.ends_with('/') && to != "/" {
        let into = tree::join(to.trim_end_matches('/'), &base_name(from)?);
        return Ok(rt.block_on(client.rename(from, &into))?);
    }
    match rt.block_on(client.rename(from, to)) {
        // TO is taken, or is the home itself (which cannot be renamed onto): if it is a
        // directory, FROM goes into it. Going there says, and where it is; the session goes
        // back at once.
        Err(refused) if matches!(refused.code(), Some(ErrorCode::AlreadyExists | ErrorCode::InvalidPath)) => {
            let Some(dir) = remote_directory(rt, client, cwd, to)? else {
                return Err(refused.into());
            };
            Ok(rt.block_on(client.rename(from, &tree::join(&dir, &base_name(from)?)))?)
        }
        other => Ok(other?),
    }
}

/// The directory at `path`, normalized, if the server has one there; `None` for anything else.
/// The protocol has no `stat`: the shell goes there, and back to `cwd`.
pub(super) fn remote_directory(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    cwd: &str,
    path: &str,
) -> Result<Option<String>, Failure> {
    let Ok(dir) = rt.block_on(client.cd(path)) else { return Ok(None) };
    rt.block_on(client.cd(cwd))?;
    Ok(Some(dir))
}

/// `mput` (and `put PATTERN [DIR]`): every local file the words stand for, each as one `put`
/// into DIR (the remote working directory if none); stops at the first failure.
pub(super) fn put_many(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    words: &[Word],
    dir: Option<String>,
) -> Result<(), Failure> {
    for word in words {
        let home = |text: &str| local_path(text).to_string_lossy().into_owned();
        let word = Word { text: home(&word.text), pattern: home(&word.pattern) };
        for path in expand::local(&word)? {
            if path.is_dir() {
                eprintln!("skipped {}: a directory; use put -r", path.display());
                continue;
            }
            // A FIFO, socket or device that a pattern matched (the put would refuse it).
            if word.is_pattern() && !path.is_file() {
                eprintln!("skipped {}: not a regular file", path.display());
                continue;
            }
            let name = base_name(&path.to_string_lossy())?;
            let remote = match &dir {
                Some(dir) => tree::join(dir.trim_end_matches('/'), &name),
                None => name,
            };
            put_file(rt, client, bars, &path, &remote)?;
        }
    }
    Ok(())
}

/// `mget` (and `get PATTERN [DIR]`): every remote file the words stand for, each as one `get`
/// into DIR (the local working directory if none); stops at the first failure.
pub(super) fn get_many(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    words: &[Word],
    dir: Option<PathBuf>,
) -> Result<(), Failure> {
    for word in words {
        for (remote, kind) in expand::remote(rt, client, &remote_word(word))? {
            match kind {
                Some(EntryKind::Dir) => eprintln!("skipped {remote}: a directory; use get -r"),
                None if names_a_directory(&remote) => eprintln!("skipped {remote}: a directory; use get -r"),
                Some(EntryKind::Partial) => eprintln!("skipped {remote}: a partial upload, not published yet"),
                // As `get -r` does: the server would refuse it (309), and end the run there.
                Some(EntryKind::Other) => eprintln!("skipped {remote}: not a regular file or directory"),
                _ => {
                    let name = base_name(&remote)?;
                    let local = dir.as_ref().map_or_else(|| PathBuf::from(&name), |dir| dir.join(&name));
                    get_file(rt, client, bars, &remote, &local)?;
                }
            }
        }
    }
    Ok(())
}

/// `!COMMAND`: runs it with `sh -c` (`!` alone: the user's `$SHELL`), the shell's terminal
/// handed over until it ends; a failure or a non-zero exit is this command's failure.
pub(super) fn run_local(command: &str) -> Result<(), String> {
    let command = command.trim();
    let status = if command.is_empty() {
        let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".to_string());
        std::process::Command::new(&shell).status()
    } else {
        std::process::Command::new("/bin/sh").arg("-c").arg(command).status()
    };
    match status {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("error: !{command}: {status}")),
        Err(error) => Err(format!("error: !{command}: {error}")),
    }
}
