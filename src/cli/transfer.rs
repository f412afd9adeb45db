//! The shell's transfers: `put` and `get` of one file, and of a directory tree (`-r`), each
//! printed as one line with its size, rate and verified MD5, under a progress bar.

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::client::{Client, ClientError, GetReport, Progress};
use crate::human::size::format_size;
use crate::net::{EntryKind, ErrorCode};

use super::shell::{Failure, base_name};
use super::tree::{self, TreeStep};

/// Draws an indicatif bar: bytes, rate, ETA. Only at the interactive prompt (batch output is
/// plain, terminal or not), and hidden automatically when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new(visible: bool) -> Bar {
        let bar = if visible { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}")
                .expect("valid template"),
        );
        Bar(bar)
    }
}

impl Progress for Bar {
    fn begin(&self, total: u64, done: u64) {
        self.0.set_length(total);
        self.0.set_position(done);
        self.0.reset_eta();
    }
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn end(&self) {
        self.0.finish_and_clear();
    }
}

/// Uploads one file and prints what it did; returns its size.
pub(super) fn put_file(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    local: &Path,
    remote: &str,
) -> Result<u64, ClientError> {
    let started = Instant::now();
    let report = rt.block_on(client.put(local, remote, &Bar::new(bars)))?;
    if report.skipped {
        println!(
            "put {}: skipped, the server's {remote} already has the same size ({}) and md5 {}",
            local.display(),
            format_size(report.size),
            hex::encode(report.md5)
        );
        return Ok(report.size);
    }
    let sent = report.size - report.resumed_from;
    let mut line = format!(
        "put {} -> {remote}: {} in {}, md5 {} verified",
        local.display(),
        format_size(report.size),
        rate(sent, started),
        hex::encode(report.md5)
    );
    if report.resumed_from > 0 {
        line += &format!(" (resumed at {})", format_size(report.resumed_from));
    }
    if report.restarted {
        line += " (the server's partial did not match and was restarted)";
    }
    println!("{line}");
    Ok(report.size)
}

/// Downloads one file (or finds it already there) and prints what it did; returns its size.
pub(super) fn get_file(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    remote: &str,
    local: &Path,
) -> Result<u64, ClientError> {
    let started = Instant::now();
    match rt.block_on(client.get(remote, local, &Bar::new(bars)))? {
        GetReport::Skipped { size, md5 } => {
            println!(
                "get {remote}: skipped, {} already has the same size ({}) and md5 {}",
                local.display(),
                format_size(size),
                hex::encode(md5)
            );
            Ok(size)
        }
        GetReport::Downloaded { size, resumed_from, md5 } => {
            let mut line = format!(
                "get {remote} -> {}: {} in {}, md5 {} verified",
                local.display(),
                format_size(size),
                rate(size - resumed_from, started),
                hex::encode(md5)
            );
            if resumed_from > 0 {
                line += &format!(" (resumed at {})", format_size(resumed_from));
            }
            println!("{line}");
            Ok(size)
        }
    }
}

/// Where a tree goes: `DEST` itself, or `DEST/NAME` when `DEST` ends with `/`; `NAME` (the
/// source's own name) when no destination is given.
fn tree_destination(source: &str, destination: Option<&str>) -> Result<String, Failure> {
    Ok(match destination {
        Some(dest) if dest.ends_with('/') && dest != "/" => tree::join(dest, &base_name(source)?),
        Some(dest) => dest.to_string(),
        None => base_name(source)?,
    })
}

/// `put -r`: makes the remote directories and uploads every file of the local tree, each
/// resumable as a single `put`; stops at the first failure (run it again to go on).
pub(super) fn put_tree(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    local: &str,
    remote: Option<&str>,
) -> Result<(), Failure> {
    let root = Path::new(local);
    if !root.is_dir() {
        return Err(Failure::Command(format!("error: put -r {local}: not a local directory")));
    }
    // The tree's own name, for `.` and `..` too.
    let named = std::fs::canonicalize(root).map_or_else(|_| local.to_string(), |path| path.display().to_string());
    let remote_root = tree_destination(&named, remote)?;
    let (steps, skipped) =
        tree::local_tree(root).map_err(|e| Failure::Command(format!("error: put -r {local}: {e}")))?;
    for skip in &skipped {
        eprintln!("skipped {}: {}", skip.path.display(), skip.why);
    }
    make_remote_dir(rt, client, &remote_root)?;
    let mut bytes = 0;
    for step in &steps {
        match step {
            TreeStep::Dir(relative) => make_remote_dir(rt, client, &tree::join(&remote_root, relative))?,
            TreeStep::File(relative) => {
                bytes += put_file(rt, client, bars, &root.join(relative), &tree::join(&remote_root, relative))?
            }
        }
    }
    println!("put -r {local} -> {remote_root}: {}, {}", tree::counts(&steps), format_size(bytes));
    Ok(())
}

/// A directory for a tree: made, or already there.
fn make_remote_dir(rt: &tokio::runtime::Runtime, client: &mut Client, path: &str) -> Result<(), Failure> {
    match rt.block_on(client.mkdir(path)) {
        Err(e) if e.code() == Some(ErrorCode::AlreadyExists) => Ok(()),
        other => Ok(other?),
    }
}

/// `get -r`: lists the whole remote tree first (so a cut listing or a hostile name stops it
/// before anything is written), then makes the local directories and downloads every file,
/// each resumable (and skipped when already there) as a single `get`.
pub(super) fn get_tree(
    rt: &tokio::runtime::Runtime,
    client: &mut Client,
    bars: bool,
    remote: &str,
    local: Option<&str>,
) -> Result<(), Failure> {
    // `cd` there and back: it tells a directory from a file (a listing of either can look
    // alike) and gives the absolute path, and so the tree's own name for `.` or `..`.
    let back = rt.block_on(client.pwd())?;
    let root = match rt.block_on(client.cd(remote)) {
        Err(e) if e.code() == Some(ErrorCode::NotADirectory) => {
            return Err(Failure::Command(format!("error: get -r {remote}: not a remote directory; use get")));
        }
        // Named after the command typed, not the `cd` it was asked through.
        Err(ClientError::Server(wire)) => {
            let reason = wire.message.strip_prefix(&format!("cd {remote}: ")).unwrap_or(&wire.message);
            return Err(Failure::Command(format!("error {}: get -r {remote}: {reason}", wire.code.as_u16())));
        }
        other => other?,
    };
    rt.block_on(client.cd(&back))?;
    let remote_root = root.as_str();
    let local_root = PathBuf::from(match (local, remote_root) {
        (None, "/") => {
            return Err(Failure::Command("error: get -r /: give a local directory to copy the home into".into()));
        }
        _ => tree_destination(remote_root, local)?,
    });
    let mut steps = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let path = tree::join(remote_root, &relative);
        let listing = rt.block_on(client.list(Some(&path)))?;
        if listing.truncated {
            return Err(Failure::Command(format!(
                "error: get -r {remote}: the server gave only the first {} entries of {path} (it does not page its listings), so the tree cannot be copied whole; nothing was fetched",
                listing.entries.len()
            )));
        }
        let mut subdirs = Vec::new();
        for entry in listing.entries {
            if !tree::safe_remote_name(&entry.name) {
                eprintln!("skipped {path}: the server listed an entry named {:?}", entry.name);
                continue;
            }
            let child = tree::join(&relative, &entry.name);
            match entry.kind {
                EntryKind::Dir => {
                    steps.push(TreeStep::Dir(child.clone()));
                    subdirs.push(child);
                }
                EntryKind::File => steps.push(TreeStep::File(child)),
                EntryKind::Partial => {
                    eprintln!("skipped {}: a partial upload, not published yet", tree::join(remote_root, &child));
                }
                EntryKind::Symlink | EntryKind::Other => {
                    eprintln!("skipped {}: not a regular file or directory", tree::join(remote_root, &child));
                }
            }
        }
        // Depth first, in listing order.
        pending.extend(subdirs.into_iter().rev());
    }
    let local_error = |path: &Path, e: std::io::Error| Failure::Command(format!("error: {}: {e}", path.display()));
    std::fs::create_dir_all(&local_root).map_err(|e| local_error(&local_root, e))?;
    let mut bytes = 0;
    for step in &steps {
        match step {
            TreeStep::Dir(relative) => {
                let dir = local_root.join(relative);
                std::fs::create_dir_all(&dir).map_err(|e| local_error(&dir, e))?;
            }
            TreeStep::File(relative) => {
                bytes += get_file(rt, client, bars, &tree::join(remote_root, relative), &local_root.join(relative))?
            }
        }
    }
    println!("get -r {remote} -> {}: {}, {}", local_root.display(), tree::counts(&steps), format_size(bytes));
    Ok(())
}

fn rate(bytes: u64, started: Instant) -> String {
    let seconds = started.elapsed().as_secs_f64().max(1e-6);
    format!("{:.2}s ({}/s)", seconds, format_size((bytes as f64 / seconds) as u64))
}
