//! `ftp-actor shell`: the interactive `ftp>` prompt and the batch runner.

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use clap::Args;

use zeroize::Zeroizing;

use crate::client::{Client, ClientError, FirstUse, LoginKey, Trust, known_servers};
use crate::net::{EntryKind, ErrorCode};
use crate::tls::Fingerprint;

use super::completion::{COMMANDS, ShellHelper};
use super::ctrl_c::CtrlC;
use super::expand;
use super::format::format_quota;
use super::password::login_password;
use super::remote_tree::{Removed, make_parents, remove_tree};
use super::shell_commands::{get_many, list, move_entry, put_into, put_many, run_local};
use super::transfer::{get_file, get_tree, put_tree};
use super::words::{Word, local_path, remote_path, remote_word, split_options, split_words};

#[derive(Debug, Args)]
pub struct ShellArgs {
    /// Server address.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2121")]
    pub connect: String,
    /// User name (asked for if missing on a terminal).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Read commands from FILE, one per line (`-` = standard input). The first failing
    /// command ends the run with status 1, unless its line starts with `-`.
    #[arg(long, value_name = "FILE|-")]
    pub batch: Option<String>,
    /// Trust the server only if its certificate chains to a certificate in FILE (PEM) and
    /// names the address; otherwise servers are trusted on first use (known servers).
    #[arg(long, value_name = "FILE", conflicts_with = "plaintext")]
    pub cacert: Option<PathBuf>,
    /// Trust a server not known yet without asking, and remember it (as OpenSSH's
    /// StrictHostKeyChecking=accept-new). A known server's changed certificate is still refused.
    #[arg(long)]
    pub accept_new_server: bool,
    /// The known-servers file [default: ~/.config/ftp-actor/known_servers].
    #[arg(long, value_name = "FILE")]
    pub known_servers: Option<PathBuf>,
    /// Connect without TLS, to a test server with plaintext_native (loopback only).
    #[arg(long)]
    pub plaintext: bool,
}

/// The trust policy the options ask for (see [`Trust`]).
fn trust_from(args: &ShellArgs, interactive: bool) -> Result<Trust, String> {
    if args.plaintext {
        return Ok(Trust::Plaintext);
    }
    if let Some(cacert) = &args.cacert {
        return Trust::from_ca_file(cacert).map_err(|error| error.to_string());
    }
    let file = match args.known_servers.clone().or_else(known_servers::default_path) {
        Some(file) => file,
        None => return Err("no HOME to keep the known servers in: use --known-servers FILE or --cacert FILE".into()),
    };
    let first_use = if args.accept_new_server {
        FirstUse::Accept
    } else if interactive && std::io::stdin().is_terminal() {
        let shown = file.clone();
        FirstUse::Ask(std::sync::Arc::new(move |server: &str, seen: &Fingerprint| ask_first_use(server, seen, &shown)))
    } else {
        FirstUse::Refuse
    };
    Ok(Trust::KnownServers { file, first_use })
}

/// Shows a new server's fingerprint and asks whether to trust it, as OpenSSH does.
fn ask_first_use(server: &str, seen: &Fingerprint, file: &Path) -> bool {
    println!("The server {server} is not known yet. Its certificate's fingerprint is");
    println!("    {seen}");
    println!("Compare it with the one its operator has (`ftp-actor serve` prints it at start).");
    loop {
        print!("Trust it and remember it in {}? (yes/no) ", file.display());
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        match line.trim() {
            "yes" => return true,
            "no" => return false,
            _ => println!("Please type yes or no."),
        }
    }
}

/// Exit statuses of the shell.
pub mod exit {
    pub const OK: u8 = 0;
    pub const COMMAND_FAILED: u8 = 1;
    pub const USAGE_OR_CONNECTION: u8 = 2;
}

const HELP: &str = "\
commands (paths are inside your home; / and ~ are the home):
  pwd                   show the remote working directory
  cd [PATH]             change the remote directory (.., /, relative, nested; alone or ~: home)
  ls [-l] [-a] [PATH]   list a remote directory: kind (d - l, p: partial upload), size,
                        modified (UTC), name; PATH may be a pattern
  mkdir [-p] PATH       create a remote directory (-p: and its missing parents)
  rm [-r] PATH...       remove remote files (or the partial upload where no file has the name;
                        -r: directories too, with everything in them)
  rmdir PATH            remove an empty remote directory
  mv FROM TO            rename or move within the home (refuses to replace; TO a directory:
                        into it)
  quota                 show space used and the limit
  get REMOTE [LOCAL]    download (resumes a partial; skips an identical local file)
  put LOCAL [REMOTE]    upload (resumes the server's partial)
  get -r DIR [LOCAL]    download a directory tree into LOCAL (default: DIR's name)
  put -r DIR [REMOTE]   upload a directory tree into REMOTE (default: DIR's name)
  mget PATTERN...       download every matching remote file into the local directory
  mput PATTERN...       upload every matching local file into the remote directory
  lcd [DIR] | lpwd | lls [DIR]   local directory commands (lcd alone: your home)
  !COMMAND              run COMMAND in a local shell (! alone: an interactive one)
  help                  this text
  quit                  leave (also exit, bye, Ctrl-D)
patterns: * any run of characters, ? one, [abc] [a-z] [!a] one of a set; quote or \\-escape
to take them literally; `get`, `put` and `rm` take patterns too. Tab completes commands and
local and remote names.";

/// Why a command failed: the connection is gone (ends the shell), the command stopped in the
/// middle of an exchange (the user interrupted it, or a download could not be written here:
/// the shell connects again), the server had closed the session for being idle (the shell
/// connects again and runs the command once more), or just this command. Each holds the line
/// to print.
pub(super) enum Failure {
    Connection(String),
    MidExchange(String),
    IdleClosed,
    Command(String),
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Failure {
        match error {
            ClientError::Io(_) | ClientError::Closed => Failure::Connection(format!("error: connection lost: {error}")),
            ClientError::Interrupted => Failure::MidExchange(
                "interrupted: a partial transfer is kept; run the same command again to resume it".into(),
            ),
            ClientError::InterruptedAtEnd => Failure::MidExchange(
                "interrupted after the last byte was sent: the server stores the file if it arrived whole; \
                 run the same put again to check (a file the server already has is skipped)"
                    .into(),
            ),
            ClientError::DownloadAbandoned { .. } => Failure::MidExchange(format!("error: {error}")),
            ClientError::Server(wire) if wire.code == ErrorCode::IdleTimeout => Failure::IdleClosed,
            // The server closed the session after this answer: the next command would only
            // find the connection gone ("Broken pipe"), so the shell stops here, saying why.
            ClientError::Server(wire) if wire.code.ends_session() => {
                Failure::Connection(format!("{wire}; the server closed the session"))
            }
            // Server errors print as `error CODE: message`.
            ClientError::Server(wire) => Failure::Command(wire.to_string()),
            other => Failure::Command(format!("error: {other}")),
        }
    }
}

/// `/`, `.`, `..`, or a path ending in `..`: a directory by its name alone, with no file name
/// to download it as.
pub(super) fn names_a_directory(path: &str) -> bool {
    Path::new(path).file_name().is_none()
}

pub(super) fn base_name(path: &str) -> Result<String, Failure> {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Failure::Command(format!("error: {path}: no file name")))
}

/// Where and as whom the shell is connected: what it needs to connect again after an
/// interrupted command. It keeps the login's key, not the password (see [`LoginKey`]).
struct Account {
    addr: String,
    trust: Trust,
    user: String,
    key: LoginKey,
}

struct Shell {
    /// Shared with the line editor's completion, which lists remote directories between
    /// commands (see [`ShellHelper`]).
    client: Rc<RefCell<Client>>,
    runtime: tokio::runtime::Runtime,
    account: Account,
    /// The remote working directory, restored when the shell connects again.
    cwd: String,
    /// In interactive mode, Ctrl-C interrupts the command in progress instead of ending the
    /// shell (see [`Shell::execute`]).
    ctrl_c: Option<CtrlC>,
}

/// What running one line came to; failures have been printed already.
enum Outcome {
    Continue,
    Quit,
    CommandFailed,
    ConnectionLost,
}

impl Shell {
    /// Splits and runs one command line, printing any failure to standard error.
    fn execute(&mut self, line: &str) -> Outcome {
        if let Some(command) = line.trim_start().strip_prefix('!') {
            return match run_local(command) {
                Ok(()) => Outcome::Continue,
                Err(error) => {
                    eprintln!("{error}");
                    Outcome::CommandFailed
                }
            };
        }
        let words = match split_words(line) {
            Ok(words) => words,
            Err(error) => {
                eprintln!("error: {error}");
                return Outcome::CommandFailed;
            }
        };
        let result = match self.run_command(&words) {
            // The server sends 603 instead of serving the first request after `idle_timeout_secs`
            // of silence, then closes: nothing of the command was done, so it is safe to run it
            // again on a new session, as a user who left the prompt for a while expects.
            Err(Failure::IdleClosed) => {
                eprintln!("the server had closed the idle session; connecting again");
                if let Err(error) = self.reconnect() {
                    eprintln!("error: cannot connect again to {}: {error}", self.account.addr);
                    return Outcome::ConnectionLost;
                }
                self.run_command(&words)
            }
            other => other,
        };
        match result {
            Ok(true) => Outcome::Continue,
            Ok(false) => Outcome::Quit,
            Err(Failure::Connection(line)) => {
                eprintln!("{line}");
                Outcome::ConnectionLost
            }
            Err(Failure::MidExchange(line)) => {
                eprintln!("{line}");
                match self.reconnect() {
                    Ok(()) => Outcome::CommandFailed,
                    Err(error) => {
                        eprintln!("error: cannot connect again to {}: {error}", self.account.addr);
                        Outcome::ConnectionLost
                    }
                }
            }
            Err(Failure::Command(line)) => {
                eprintln!("{line}");
                Outcome::CommandFailed
            }
            Err(Failure::IdleClosed) => {
                eprintln!("error: the server closed the new session as idle at once; check its idle_timeout_secs");
                Outcome::ConnectionLost
            }
        }
    }

    /// Runs one split command line, interruptible by Ctrl-C in interactive mode.
    fn run_command(&mut self, words: &[Word]) -> Result<bool, Failure> {
        if let Some(ctrl_c) = &self.ctrl_c {
            self.client.borrow_mut().set_interrupt(ctrl_c.next_command());
        }
        self.run_line(words)
    }

    /// After a command stopped mid-exchange the connection is in the middle of it: leave it
    /// (the server keeps an upload's partial, as for any lost connection), connect and log
    /// in again, and return to the working directory.
    fn reconnect(&mut self) -> Result<(), ClientError> {
        let Account { addr, trust, user, key } = &self.account;
        let mut client = self.runtime.block_on(Client::connect(addr.as_str(), trust, say_queued))?;
        self.runtime.block_on(client.login_with_key(user, key))?;
        if self.cwd != "/" {
            self.runtime.block_on(client.cd(&self.cwd))?;
        }
        *self.client.borrow_mut() = client;
        Ok(())
    }

    fn run_line(&mut self, words: &[Word]) -> Result<bool, Failure> {
        let usage = |text: &str| Failure::Command(format!("error: usage: {text}"));
        let Some((command, arguments)) = words.split_first() else { return Ok(true) };
        let command = command.text.as_str();
        // `help` takes anything, and an unknown command is named as such before its options.
        let allowed = match command {
            // Taken for habit's sake: `ls` and `lls` always show entries in full, hidden ones too.
            "ls" | "lls" => Some("la1"),
            "get" | "put" | "rm" => Some("r"),
            "mkdir" => Some("p"),
            "help" | "?" => None,
            known if COMMANDS.contains(&known) => Some(""),
            _ => None,
        };
        let (options, operands) = match allowed {
            Some(allowed) => {
                split_options(command, allowed, arguments).map_err(|e| Failure::Command(format!("error: {e}")))?
            }
            None => (String::new(), arguments.iter().collect()),
        };
        let recursive = options.contains('r');
        let patterns: Vec<Word> = operands.into_iter().cloned().collect();
        let rest: Vec<&str> = patterns.iter().map(|word| word.text.as_str()).collect();
        let (patterns, rest) = (patterns.as_slice(), rest.as_slice());
        let mut client = self.client.borrow_mut();
        let client = &mut *client;
        let rt = &self.runtime;
        // Progress bars at the interactive prompt only: batch output stays plain.
        let bars = self.ctrl_c.is_some();
        match (command, rest) {
            ("put", [local] | [local, _]) if recursive => {
                let remote = rest.get(1).map(|remote| remote_path(remote));
                put_tree(rt, client, bars, &local_path(local).to_string_lossy(), remote.as_deref())?
            }
            ("get", [remote] | [remote, _]) if recursive => {
                let local = rest.get(1).map(|local| local_path(local).to_string_lossy().into_owned());
                get_tree(rt, client, bars, &remote_path(remote), local.as_deref())?
            }
            ("put", _) if recursive => return Err(usage("put -r LOCAL_DIR [REMOTE_DIR]")),
            ("get", _) if recursive => return Err(usage("get -r REMOTE_DIR [LOCAL_DIR]")),
            ("quit" | "exit" | "bye", []) => return Ok(false),
            ("help" | "?", _) => println!("{HELP}"),
            ("pwd", []) => println!("{}", rt.block_on(client.pwd())?),
            ("cd", [] | [_]) => {
                let path = rest.first().map_or_else(|| "/".to_string(), |path| remote_path(path));
                self.cwd = rt.block_on(client.cd(&path))?;
                println!("{}", self.cwd);
            }
            ("ls", [] | [_]) => list(rt, client, patterns.first())?,
            ("mkdir", [path]) if options.contains('p') => make_parents(rt, client, &self.cwd, &remote_path(path))?,
            ("mkdir", [path]) => rt.block_on(client.mkdir(&remote_path(path)))?,
            ("rm", [_, ..]) => {
                for word in patterns {
                    for (path, kind) in expand::remote(rt, client, &remote_word(word))? {
                        if recursive {
                            let Removed { files, directories } = remove_tree(rt, client, &path)?;
                            println!("rm -r {path}: {files} files and {directories} directories removed");
                            continue;
                        }
                        // A pattern's directories are named and left, as `rm *` does locally.
                        if kind == Some(EntryKind::Dir) {
                            eprintln!("skipped {path}: a directory; use rmdir");
                            continue;
                        }
                        if rt.block_on(client.remove(&path))? {
                            println!("a partial upload to {path} remains (kind p in ls): rm {path} again to remove it");
                        }
                    }
                }
            }
            ("rmdir", [path]) => rt.block_on(client.rmdir(&remote_path(path)))?,
            ("mv", [from, to]) => move_entry(rt, client, &self.cwd, &remote_path(from), &remote_path(to))?,
            ("quota", []) => {
                println!("{}", format_quota(&rt.block_on(client.quota_report())?));
            }
            ("mput", [_, ..]) => put_many(rt, client, bars, patterns, None)?,
            ("mget", [_, ..]) => get_many(rt, client, bars, patterns, None)?,
            ("put", [_] | [_, _]) if patterns[0].is_pattern() => {
                put_many(rt, client, bars, &patterns[..1], rest.get(1).map(|dir| remote_path(dir)))?
            }
            ("get", [_] | [_, _]) if patterns[0].is_pattern() => {
                get_many(rt, client, bars, &patterns[..1], rest.get(1).map(|dir| local_path(dir)))?
            }
            ("put", [local] | [local, _]) => {
                let path = local_path(local);
                if path.is_dir() {
                    return Err(Failure::Command(format!("error: put {local}: a directory; use put -r")));
                }
                let remote = match rest.get(1).map(|remote| remote_path(remote)) {
                    Some(remote) if remote.ends_with('/') => format!("{remote}{}", base_name(local)?),
                    Some(remote) => remote,
                    None => base_name(local)?,
                };
                put_into(rt, client, bars, &path, &remote)?;
            }
            ("get", [remote] | [remote, _]) => {
                let remote = remote_path(remote);
                if names_a_directory(&remote) {
                    return Err(Failure::Command(format!("error: get {remote}: a directory; use get -r")));
                }
                let mut local =
                    rest.get(1).map_or_else(|| base_name(&remote).map(PathBuf::from), |l| Ok(local_path(l)))?;
                if local.is_dir() {
                    local = local.join(base_name(&remote)?);
                } else if let Some(dir) = rest.get(1).filter(|local| local.ends_with('/')) {
                    // A trailing `/` names a directory: one that is not there is not a file
                    // name (the download would end in a hidden partial and a failed rename).
                    return Err(Failure::Command(format!("error: get {remote}: no local directory {dir}")));
                }
                get_file(rt, client, bars, &remote, &local)?;
            }
            ("lpwd", []) => println!("{}", local_cwd()?),
            ("lcd", [] | [_]) => {
                let dir = local_path(rest.first().copied().unwrap_or("~"));
                std::env::set_current_dir(&dir)
                    .map_err(|e| Failure::Command(format!("error: lcd {}: {e}", dir.display())))?;
                println!("{}", local_cwd()?);
            }
            ("lls", [] | [_]) => {
                let dir = local_path(rest.first().copied().unwrap_or("."));
                let shown = dir.display().to_string();
                let mut names: Vec<(String, bool, u64)> = std::fs::read_dir(&dir)
                    .and_then(|entries| {
                        entries
                            .map(|e| {
                                let e = e?;
                                let meta = e.metadata()?;
                                Ok((e.file_name().to_string_lossy().into_owned(), meta.is_dir(), meta.len()))
                            })
                            .collect()
                    })
                    .map_err(|e: std::io::Error| Failure::Command(format!("error: lls {shown}: {e}")))?;
                names.sort();
                for (name, is_dir, len) in names {
                    println!("{} {len:>14} {name}", if is_dir { 'd' } else { '-' });
                }
            }
            ("pwd" | "quota" | "quit" | "exit" | "bye", _) => return Err(usage(command)),
            ("ls", _) => return Err(usage("ls [-l] [-a] [PATH]")),
            ("cd", _) => return Err(usage("cd [PATH]")),
            ("mkdir", _) => return Err(usage("mkdir [-p] PATH")),
            ("rmdir", _) => return Err(usage("rmdir PATH")),
            ("rm", _) => return Err(usage("rm [-r] PATH...")),
            ("mv", _) => return Err(usage("mv FROM TO")),
            ("get", _) => return Err(usage("get REMOTE [LOCAL] | get -r REMOTE_DIR [LOCAL_DIR]")),
            ("put", _) => return Err(usage("put LOCAL [REMOTE] | put -r LOCAL_DIR [REMOTE_DIR]")),
            ("mget" | "mput", _) => return Err(usage(&format!("{command} PATTERN..."))),
            ("lcd", _) => return Err(usage("lcd [DIR]")),
            ("lls", _) => return Err(usage("lls [DIR]")),
            ("lpwd", _) => return Err(usage("lpwd")),
            (other, _) => return Err(Failure::Command(format!("error: unknown command {other:?}; type help"))),
        }
        Ok(true)
    }
}

fn local_cwd() -> Result<String, Failure> {
    std::env::current_dir().map(|p| p.display().to_string()).map_err(|e| Failure::Command(format!("error: lpwd: {e}")))
}

/// Tells the user where their login waits while every session slot is taken.
fn say_queued(position: u32) {
    eprintln!("all sessions are busy: waiting for a free slot: position {position}");
}

/// Runs the shell; returns the process exit status.
pub fn run(args: ShellArgs) -> u8 {
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return exit::USAGE_OR_CONNECTION;
        }
    };
    let interactive = args.batch.is_none();
    let user = match args.user.clone() {
        Some(user) => user,
        None if interactive && std::io::stdin().is_terminal() => {
            print!("Name: ");
            let _ = std::io::stdout().flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            line.trim().to_string()
        }
        None => {
            eprintln!("error: --user NAME is required in batch mode");
            return exit::USAGE_OR_CONNECTION;
        }
    };
    // Asked before connecting: a connection has `login_timeout_secs` (10 s by default) to log
    // in, which a person typing a password should not have to race.
    let password = match login_password(&user) {
        Ok(password) => Zeroizing::new(password),
        Err(error) => {
            eprintln!("error: {error}");
            return exit::USAGE_OR_CONNECTION;
        }
    };
    let trust = match trust_from(&args, interactive) {
        Ok(trust) => trust,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::USAGE_OR_CONNECTION;
        }
    };
    let connected = runtime.block_on(Client::connect(args.connect.as_str(), &trust, say_queued));
    let mut client = match connected {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: cannot connect to {}: {error}", args.connect);
            return exit::USAGE_OR_CONNECTION;
        }
    };
    let key = match runtime.block_on(client.login_keeping_key(&user, &password)) {
        Ok(key) => key,
        Err(error) => {
            eprintln!("error: login as {user} failed: {error}");
            return exit::USAGE_OR_CONNECTION;
        }
    };
    drop(password);
    if interactive {
        println!("Connected to {} ({}) as {user}. Type help for commands.", args.connect, client.server());
    }
    let account = Account { addr: args.connect.clone(), trust, user, key };
    let ctrl_c = if interactive {
        CtrlC::listen(&runtime).map_err(|error| eprintln!("warning: Ctrl-C will end the shell: {error}")).ok()
    } else {
        None
    };
    let client = Rc::new(RefCell::new(client));
    let mut shell = Shell { client, runtime, account, cwd: "/".to_string(), ctrl_c };
    match args.batch {
        Some(source) => run_batch(&mut shell, &source),
        None => run_interactive(&mut shell),
    }
}

fn run_batch(shell: &mut Shell, source: &str) -> u8 {
    let reader: Box<dyn BufRead> = if source == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(source) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(error) => {
                eprintln!("error: batch file {source}: {error}");
                return exit::USAGE_OR_CONNECTION;
            }
        }
    };
    for line in reader.lines() {
        let Ok(line) = line else { return exit::USAGE_OR_CONNECTION };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let (may_fail, command) = match trimmed.strip_prefix('-') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, trimmed),
        };
        println!("ftp> {command}");
        match shell.execute(command) {
            Outcome::Continue => {}
            Outcome::Quit => return exit::OK,
            Outcome::ConnectionLost => return exit::USAGE_OR_CONNECTION,
            Outcome::CommandFailed if may_fail => {}
            Outcome::CommandFailed => return exit::COMMAND_FAILED,
        }
    }
    exit::OK
}

fn run_interactive(shell: &mut Shell) -> u8 {
    let config = rustyline::Config::builder().completion_type(rustyline::CompletionType::List).build();
    let mut editor = match rustyline::Editor::<ShellHelper, rustyline::history::DefaultHistory>::with_config(config) {
        Ok(editor) => editor,
        Err(error) => {
            eprintln!("error: cannot start line editing: {error}");
            return exit::USAGE_OR_CONNECTION;
        }
    };
    editor.set_helper(Some(ShellHelper::new(shell.client.clone(), shell.runtime.handle().clone())));
    let history = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".ftp-actor_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let status = loop {
        let line = match editor.readline("ftp> ") {
            Ok(line) => line,
            Err(rustyline::error::ReadlineError::Interrupted) => continue,
            Err(_) => break exit::OK,
        };
        let _ = editor.add_history_entry(line.as_str());
        let outcome = shell.execute(&line);
        if let Some(helper) = editor.helper() {
            helper.forget_remote();
        }
        match outcome {
            Outcome::Quit => break exit::OK,
            Outcome::ConnectionLost => break exit::USAGE_OR_CONNECTION,
            Outcome::Continue | Outcome::CommandFailed => {}
        }
    };
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    status
}
