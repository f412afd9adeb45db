//! Tab completion at the interactive prompt: command names, local names (for `put`, `lcd`,
//! ...) and remote names (for `get`, `cd`, ...). A remote directory is listed by the server
//! once and kept for [`REMOTE_TTL`], so pressing Tab again costs nothing; the cache is emptied
//! after every command, which may have changed the directory.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use crate::client::Client;
use crate::net::EntryKind;

use super::words::split_words;
use crate::wildcards::unescape;

/// How long a remote directory's names are kept for completion.
pub const REMOTE_TTL: Duration = Duration::from_secs(5);

/// Every command the shell knows, for completing the first word.
pub const COMMANDS: &[&str] = &[
    "bye", "cd", "exit", "get", "help", "lcd", "lls", "lpwd", "ls", "mget", "mkdir", "mput", "mv", "put", "pwd",
    "quit", "quota", "rm", "rmdir",
];

/// What the word being typed names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordKind {
    Command,
    Local,
    Remote,
    /// Nothing to complete (an unknown command, a flag, a word past the last argument).
    Nothing,
}

/// What the word after `command` and its arguments `before` (flags included) names.
pub fn word_kind(command: Option<&str>, before: &[String]) -> WordKind {
    let Some(command) = command else { return WordKind::Command };
    let position = before.iter().filter(|word| !word.starts_with('-')).count();
    match (command, position) {
        ("cd" | "ls" | "rm" | "rmdir" | "mkdir" | "mget", _) | ("mv", 0 | 1) => WordKind::Remote,
        ("get", 0) | ("put", 1) => WordKind::Remote,
        ("put", 0) | ("get", 1) | ("mput", _) | ("lcd" | "lls", 0) => WordKind::Local,
        _ => WordKind::Nothing,
    }
}

/// Where the word under the cursor starts in `line[..pos]`: after the last space that no `\`
/// escapes.
pub fn word_start(line: &str) -> usize {
    let mut start = 0;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c.is_whitespace() => start = at + c.len_utf8(),
            _ => {}
        }
    }
    start
}

/// A name as the shell's word splitting reads it back: spaces, quotes, backslashes and
/// wildcard characters escaped with `\`.
pub fn escape(name: &str) -> String {
    let mut escaped = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_whitespace() || matches!(c, '\\' | '"' | '\'' | '*' | '?' | '[') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The candidates for `typed` (a path as the user typed it, unescaped) among `names` (the
/// entries of the directory it points into, each with whether it is a directory): the names
/// starting with its last part, directories ending in `/`; hidden names only when the last
/// part starts with a dot.
pub fn candidates(typed: &str, names: &[(String, bool)]) -> Vec<Pair> {
    let (dir, prefix) = match typed.rfind('/') {
        Some(at) => (&typed[..=at], &typed[at + 1..]),
        None => ("", typed),
    };
    let mut found: Vec<Pair> = names
        .iter()
        .filter(|(name, _)| name.starts_with(prefix) && (prefix.starts_with('.') || !name.starts_with('.')))
        .map(|(name, is_dir)| {
            let shown = if *is_dir { format!("{name}/") } else { name.clone() };
            Pair { replacement: escape(&format!("{dir}{shown}")), display: shown }
        })
        .collect();
    found.sort_by(|a, b| a.display.cmp(&b.display));
    found.dedup_by(|a, b| a.display == b.display);
    found
}

/// The directory a typed path points into, for listing: its part up to the last `/`.
fn listed_dir(typed: &str) -> Option<&str> {
    match typed.rfind('/') {
        Some(0) => Some("/"),
        Some(at) => Some(&typed[..at]),
        None => None,
    }
}

/// A directory's names, each with whether it is a directory.
type Names = Vec<(String, bool)>;

/// The shell's rustyline helper: completion only.
pub struct ShellHelper {
    client: Rc<RefCell<Client>>,
    runtime: tokio::runtime::Handle,
    /// Remote names by directory as typed (`None`: the working directory), with when listed.
    remote: RefCell<HashMap<Option<String>, (Instant, Names)>>,
}

impl ShellHelper {
    pub fn new(client: Rc<RefCell<Client>>, runtime: tokio::runtime::Handle) -> ShellHelper {
        ShellHelper { client, runtime, remote: RefCell::default() }
    }

    /// Forgets the remote names seen so far (call after each command).
    pub fn forget_remote(&self) {
        self.remote.borrow_mut().clear();
    }

    /// The names in remote directory `dir` (`None`: the working directory), from the cache if
    /// fresh, else listed by the server; nothing if the listing fails.
    fn remote_names(&self, dir: Option<&str>) -> Vec<(String, bool)> {
        let key = dir.map(str::to_string);
        if let Some((when, names)) = self.remote.borrow().get(&key)
            && when.elapsed() < REMOTE_TTL
        {
            return names.clone();
        }
        let Ok(mut client) = self.client.try_borrow_mut() else { return Vec::new() };
        let names: Vec<(String, bool)> = match self.runtime.block_on(client.list(dir)) {
            Ok(listing) => listing
                .entries
                .into_iter()
                .filter(|entry| entry.kind != EntryKind::Partial)
                .map(|entry| (entry.name, entry.kind == EntryKind::Dir))
                .collect(),
            Err(_) => return Vec::new(),
        };
        self.remote.borrow_mut().insert(key, (Instant::now(), names.clone()));
        names
    }
}

/// The names in local directory `dir` (`None`: the current one).
fn local_names(dir: Option<&str>) -> Vec<(String, bool)> {
    let Ok(entries) = std::fs::read_dir(dir.unwrap_or(".")) else { return Vec::new() };
    entries
        .flatten()
        .map(|entry| {
            let is_dir = std::fs::metadata(entry.path()).is_ok_and(|meta| meta.is_dir());
            (entry.file_name().to_string_lossy().into_owned(), is_dir)
        })
        .collect()
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let line = &line[..pos];
        let start = word_start(line);
        if line.starts_with('!') {
            return Ok((start, Vec::new()));
        }
        let before: Vec<String> = match split_words(&line[..start]) {
            Ok(words) => words.into_iter().map(|word| word.text).collect(),
            Err(_) => return Ok((start, Vec::new())),
        };
        let typed = unescape(&line[start..]);
        let found = match word_kind(before.first().map(String::as_str), before.get(1..).unwrap_or_default()) {
            WordKind::Command => COMMANDS
                .iter()
                .filter(|command| command.starts_with(&typed))
                .map(|command| Pair { display: command.to_string(), replacement: format!("{command} ") })
                .collect(),
            WordKind::Remote => candidates(&typed, &self.remote_names(listed_dir(&typed))),
            WordKind::Local => candidates(&typed, &local_names(listed_dir(&typed))),
            WordKind::Nothing => Vec::new(),
        };
        Ok((start, found))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn each_argument_is_local_or_remote() {
        assert_eq!(word_kind(None, &[]), WordKind::Command);
        assert_eq!(word_kind(Some("get"), &[]), WordKind::Remote);
        assert_eq!(word_kind(Some("get"), &strings(&["a"])), WordKind::Local);
        assert_eq!(word_kind(Some("put"), &strings(&["-r"])), WordKind::Local, "flags do not count");
        assert_eq!(word_kind(Some("put"), &strings(&["-r", "dir"])), WordKind::Remote);
        assert_eq!(word_kind(Some("mput"), &strings(&["a", "b"])), WordKind::Local);
        assert_eq!(word_kind(Some("mv"), &strings(&["a"])), WordKind::Remote);
        assert_eq!(word_kind(Some("mv"), &strings(&["a", "b"])), WordKind::Nothing);
        assert_eq!(word_kind(Some("nonsense"), &[]), WordKind::Nothing);
    }

    #[test]
    fn words_start_after_unescaped_spaces() {
        assert_eq!(word_start("get my\\ fi"), 4);
        assert_eq!(word_start("get "), 4);
        assert_eq!(word_start("ge"), 0);
        assert_eq!(unescape("my\\ fi"), "my fi");
    }

    #[test]
    fn candidates_keep_the_typed_directory_and_escape_names() {
        let names = vec![
            ("notes.txt".to_string(), false),
            ("new dir".to_string(), true),
            (".hidden".to_string(), false),
            ("other".to_string(), false),
        ];
        let found = candidates("docs/n", &names);
        let got: Vec<_> = found.iter().map(|p| (p.display.as_str(), p.replacement.as_str())).collect();
        assert_eq!(got, [("new dir/", "docs/new\\ dir/"), ("notes.txt", "docs/notes.txt")]);
        assert!(candidates("", &names).iter().all(|p| !p.display.starts_with('.')), "hidden unless asked");
        assert_eq!(candidates(".", &names).len(), 1);
        assert_eq!(listed_dir("docs/n"), Some("docs"));
        assert_eq!(listed_dir("/n"), Some("/"));
        assert_eq!(listed_dir("n"), None);
    }

    #[test]
    fn escaped_names_read_back_as_themselves() {
        for name in ["plain", "with space", "star*", "quote's", "back\\slash"] {
            assert_eq!(split_words(&escape(name)).unwrap()[0].text, name);
        }
    }
}
