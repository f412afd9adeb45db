//! One FTP control connection, from the greeting to QUIT.
//!
//! The loop reads one command line at a time (bounded in length, with the login or idle
//! timeout), answers it, and goes on. Transfers run their data connection while the loop
//! keeps watching the control connection for ABOR. The acceptor can ask the session to drain
//! (close when no transfer is running, as on SIGTERM) or to close at once; both end with 421.
//!
//! Everything that touches a home runs on the disk pool; logins go through the AuthActor
//! (password checked against the stored SCRAM keys) and the acceptor's per-user limit;
//! uploads take a lease from the QuotaActor exactly as native uploads do.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Recipient;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::actors::Services;
use crate::actors::acceptor::{ClaimUserSession, SlotGuard};
use crate::actors::auth::CheckPassword;
use crate::net::{ErrorCode, WireError};
use crate::storage::{Home, StorageError, StreamRequest, VirtualPath, file_md5, set_modified};

use super::address::{epsv_reply, parse_eprt, parse_port, pasv_reply};
use super::command::{Command, parse};
use super::data::{self, DataSource};
use super::listing::{facts, list_line, mlsd_line, parse_time_val, time_val};
use super::reply::{Reply, quote_path};
use super::tls::{FtpTls, MaybeTls};
use super::transfer;

/// Longest command line accepted, beyond the longest path: a longer line closes the session.
const LINE_OVERHEAD: usize = 64;

/// What the acceptor tells a running FTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    Run,
    /// Close once no transfer is running (graceful shutdown).
    Drain,
    /// Close now, with this reason.
    CloseNow(WireError),
}

/// The acceptor's handle on a running FTP session.
pub struct FtpLink {
    signals: watch::Sender<Signal>,
}

impl FtpLink {
    pub fn drain(&self) {
        self.signals.send_if_modified(|signal| {
            let changed = *signal == Signal::Run;
            if changed {
                *signal = Signal::Drain;
            }
            changed
        });
    }

    pub fn close_now(&self, error: WireError) {
        let _ = self.signals.send(Signal::CloseNow(error));
    }
}

/// The session's shared pieces, handed over by the acceptor.
pub struct FtpSessionStart {
    pub id: u64,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub services: Services,
    pub tls: FtpTls,
    pub slot: SlotGuard,
    pub user_slots: Recipient<ClaimUserSession>,
}

/// Starts the session's task; returns the acceptor's handle on it.
pub fn start(start: FtpSessionStart) -> FtpLink {
    let (signals, receiver) = watch::channel(Signal::Run);
    actix_rt::spawn(async move {
        let session = match Session::new(start, receiver) {
            Ok(session) => session,
            Err(error) => return tracing::warn!(%error, "FTP connection lost before its greeting"),
        };
        let (id, peer) = (session.id, session.peer);
        let user = session.run().await;
        tracing::debug!(session = id, %peer, user, "FTP session ended");
    });
    FtpLink { signals }
}

pub(super) struct LoggedIn {
    pub user: String,
    pub home: Arc<Home>,
    pub home_path: PathBuf,
    pub cwd: VirtualPath,
}

/// How handling a command ends.
enum Flow {
    Reply(Reply),
    /// Send this reply, then close the connection.
    Close(Reply),
    /// The reply was sent already (transfers, AUTH TLS).
    Sent,
    /// The control connection is gone.
    Lost,
}

/// One line read from the control connection, or why there is none.
enum Line {
    Command(Vec<u8>),
    TooLong,
    Closed,
}

struct Session {
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    services: Services,
    tls: FtpTls,
    /// `None` only while `AUTH TLS` swaps the stream.
    control: Option<BufReader<MaybeTls>>,
    line: Vec<u8>,
    signals: watch::Receiver<Signal>,
    user_slots: Recipient<ClaimUserSession>,
    _slot: SlotGuard,
    pending_user: Option<String>,
    login: Option<LoggedIn>,
    failed_logins: u32,
    protect_data: bool,
    rest: Option<u64>,
    rename_from: Option<VirtualPath>,
    data: Option<DataSource>,
}

impl Session {
    fn new(start: FtpSessionStart, signals: watch::Receiver<Signal>) -> std::io::Result<Session> {
        let FtpSessionStart { id, stream, peer, services, tls, slot, user_slots } = start;
        let local = stream.local_addr()?;
        let _ = stream.set_nodelay(true);
        Ok(Session {
            id,
            peer,
            local,
            services,
            tls,
            control: Some(BufReader::new(MaybeTls::Plain(stream))),
            line: Vec::new(),
            signals,
            user_slots,
            _slot: slot,
            pending_user: None,
            login: None,
            failed_logins: 0,
            protect_data: false,
            rest: None,
            rename_from: None,
            data: None,
        })
    }

    fn control(&mut self) -> &mut BufReader<MaybeTls> {
        self.control.as_mut().expect("the control stream is only absent during AUTH TLS")
    }

    fn user(&self) -> &str {
        self.login.as_ref().map_or("-", |login| login.user.as_str())
    }

    async fn send(&mut self, reply: Reply) -> bool {
        let bytes = reply.to_bytes();
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        let control = self.control().get_mut();
        matches!(tokio::time::timeout(stall, control.write_all(&bytes)).await, Ok(Ok(())))
    }

    /// Serves the connection; returns the user name for the log.
    async fn run(mut self) -> String {
        let config = self.services.config.clone();
        let greeting = format!("ftp-actor {} ready; send AUTH TLS, then log in", env!("CARGO_PKG_VERSION"));
        if !self.send(Reply::new(220, greeting)).await {
            return self.user().to_string();
        }
        let login_deadline = Instant::now() + Duration::from_secs(config.login_timeout_secs);
        let idle = Duration::from_secs(config.idle_timeout_secs);
        let max_line = config.max_path_bytes + LINE_OVERHEAD;
        loop {
            let (patience, timeout_code) = match self.login {
                Some(_) => (idle, ErrorCode::IdleTimeout),
                None => (login_deadline.saturating_duration_since(Instant::now()), ErrorCode::LoginTimeout),
            };
            let control = self.control.as_mut().expect("present between commands");
            let event = tokio::select! {
                line = tokio::time::timeout(patience, read_line(control, &mut self.line, max_line)) => line,
                _ = self.signals.changed() => {
                    let reason = match &*self.signals.borrow() {
                        Signal::CloseNow(error) => error.clone(),
                        _ => WireError::new(ErrorCode::ShuttingDown, "the server is shutting down"),
                    };
                    self.send(Reply::from_error(&reason)).await;
                    break;
                }
            };
            let line = match event {
                Err(_) => {
                    self.send(Reply::from_error(&WireError::from(timeout_code))).await;
                    break;
                }
                Ok(Line::Closed) => break,
                Ok(Line::TooLong) => {
                    self.send(Reply::new(500, format!("command line longer than {max_line} bytes"))).await;
                    break;
                }
                Ok(Line::Command(line)) => line,
            };
            let flow = match crate::actors::panic_guard::catch_panic_async("ftp session", self.handle(&line)).await {
                Ok(flow) => flow,
                Err(panicked) => Flow::Reply(Reply::new(451, format!("internal error: {}", panicked.message))),
            };
            let keep_going = match flow {
                Flow::Reply(reply) => self.send(reply).await,
                Flow::Close(reply) => {
                    self.send(reply).await;
                    false
                }
                Flow::Sent => true,
                Flow::Lost => false,
            };
            if !keep_going {
                break;
            }
            if *self.signals.borrow() != Signal::Run {
                let reason = WireError::new(ErrorCode::ShuttingDown, "the server is shutting down");
                self.send(Reply::from_error(&reason)).await;
                break;
            }
        }
        if let Some(control) = self.control.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(2), control.get_mut().shutdown()).await;
        }
        self.user().to_string()
    }

    async fn handle(&mut self, line: &[u8]) -> Flow {
        let command = match parse(line) {
            Ok(command) => command,
            Err(error) => return Flow::Reply(Reply::new(error.reply_code(), error.to_string())),
        };
        if !matches!(command, Command::Rnto(_)) {
            self.rename_from = None;
        }
        let keeps_rest = matches!(
            command,
            Command::Rest(_)
                | Command::Retr(_)
                | Command::Stor(_)
                | Command::Appe(_)
                | Command::Pasv
                | Command::Epsv(_)
                | Command::Port(_)
                | Command::Eprt(_)
                | Command::Type(_)
                | Command::Noop
                | Command::Size(_)
                | Command::Mdtm(_)
        );
        if !keeps_rest {
            self.rest = None;
        }
        if self.login.is_none() && !command.allowed_before_login() {
            return Flow::Reply(Reply::new(530, "log in first (AUTH TLS, USER, PASS)"));
        }
        match command {
            Command::User(user) => self.user_command(user),
            Command::Pass(password) => self.pass_command(password).await,
            Command::Quit => Flow::Close(Reply::new(221, "goodbye")),
            Command::Noop => Flow::Reply(Reply::new(200, "ok")),
            Command::Syst => Flow::Reply(Reply::new(215, "UNIX Type: L8")),
            Command::Feat => Flow::Reply(features()),
            Command::Help => Flow::Reply(help()),
            Command::Opts(option) => Flow::Reply(options(&option)),
            Command::Type(kind) => Flow::Reply(transfer_type(&kind)),
            Command::Mode(mode) if mode.eq_ignore_ascii_case("S") => Flow::Reply(Reply::new(200, "mode S")),
            Command::Mode(_) => Flow::Reply(Reply::new(504, "only stream mode (S) is supported")),
            Command::Stru(stru) if stru.eq_ignore_ascii_case("F") => Flow::Reply(Reply::new(200, "structure F")),
            Command::Stru(_) => Flow::Reply(Reply::new(504, "only file structure (F) is supported")),
            Command::Allo => {
                Flow::Reply(Reply::new(202, "no storage allocation needed; quotas are checked as data arrives"))
            }
            Command::Auth(mechanism) => self.auth_tls(&mechanism).await,
            Command::Pbsz(_) if self.is_tls() => Flow::Reply(Reply::new(200, "PBSZ=0")),
            Command::Prot(level) if self.is_tls() => Flow::Reply(self.protection(&level)),
            Command::Pbsz(_) | Command::Prot(_) => Flow::Reply(Reply::new(503, "send AUTH TLS first")),
            Command::Pwd => Flow::Reply(Reply::new(
                257,
                format!("{} is the current directory", quote_path(&self.cwd().to_string())),
            )),
            Command::Cwd(path) => self.change_dir(&path).await,
            Command::Cdup => self.change_dir("..").await,
            Command::Mkd(path) => self.make_dir(&path).await,
            Command::Rmd(path) => self.simple("rmdir", &path, 250, |home, target| home.remove_dir(&target)).await,
            Command::Dele(path) => self.delete(&path).await,
            Command::Rnfr(path) => self.rename_from(&path).await,
            Command::Rnto(path) => self.rename_to(&path).await,
            Command::Size(path) => self.size(&path).await,
            Command::Mdtm(path) => self.stat_reply(&path, |entry| Reply::new(213, time_val(entry.modified))).await,
            Command::Mfmt { time, path } => self.set_time(&time, &path).await,
            Command::Mlst(path) => {
                let path = path.unwrap_or_else(|| ".".to_string());
                let shown = self.resolve(&path).map(|p| p.to_string()).unwrap_or_default();
                self.stat_reply(&path, move |entry| {
                    Reply::multi(250, "Listing", &[format!("{}{shown}", facts(&entry))], "End")
                })
                .await
            }
            Command::Stat(None) => Flow::Reply(self.status()),
            Command::Stat(Some(path)) => self.stat_listing(&path).await,
            Command::List(path) => self.listing(path, ListingKind::List).await,
            Command::Nlst(path) => self.listing(path, ListingKind::Names).await,
            Command::Mlsd(path) => self.listing(path, ListingKind::Facts).await,
            Command::Rest(offset) => {
                self.rest = Some(offset);
                Flow::Reply(Reply::new(350, format!("restarting at {offset}; send RETR, STOR or APPE")))
            }
            Command::Retr(path) => self.retrieve(&path).await,
            Command::Stor(path) => {
                let request = self.rest.take().map_or(StreamRequest::Fresh, StreamRequest::At);
                self.store(&path, request).await
            }
            Command::Appe(path) => {
                self.rest = None;
                self.store(&path, StreamRequest::Append).await
            }
            Command::Abor => {
                self.data = None;
                Flow::Reply(Reply::new(226, "no transfer in progress"))
            }
            Command::Pasv => self.passive(false),
            Command::Epsv(argument) => match argument.as_deref().map(str::trim) {
                Some(all) if all.eq_ignore_ascii_case("ALL") => Flow::Reply(Reply::new(200, "EPSV ALL accepted")),
                Some("1") | Some("2") | None => self.passive(true),
                Some(_) => Flow::Reply(Reply::new(522, "protocol not supported; use (1,2)")),
            },
            Command::Port(argument) => Flow::Reply(self.active(parse_port(&argument))),
            Command::Eprt(argument) => Flow::Reply(self.active(parse_eprt(&argument))),
            Command::Hash(path) => self.checksum(&path, Checksum::Hash).await,
            Command::Md5 { path, twine } => {
                self.checksum(&path, if twine { Checksum::Md5 } else { Checksum::Xmd5 }).await
            }
            Command::Unknown(verb) => Flow::Reply(Reply::new(502, format!("{verb} is not implemented"))),
        }
    }

    fn is_tls(&mut self) -> bool {
        self.control().get_ref().is_tls()
    }

    fn cwd(&self) -> VirtualPath {
        self.login.as_ref().map_or_else(VirtualPath::root, |login| login.cwd.clone())
    }

    fn resolve(&self, path: &str) -> Result<VirtualPath, Reply> {
        let limits = self.services.config.path_limits();
        VirtualPath::resolve(&self.cwd(), path, limits).map_err(|error| storage_reply(path, StorageError::from(error)))
    }

    fn logged_in(&self) -> &LoggedIn {
        self.login.as_ref().expect("commands past login are only handled when logged in")
    }

    // ---- login -------------------------------------------------------------------------

    fn user_command(&mut self, user: String) -> Flow {
        if self.login.is_some() {
            return Flow::Reply(Reply::new(503, "already logged in"));
        }
        if !self.is_tls() && !self.services.config.ftp.allow_plaintext_login {
            tracing::info!(target: "access", %user, peer = %self.peer, op = "ftp login", result = "refused: no TLS");
            return Flow::Reply(Reply::new(530, "passwords only travel encrypted here: send AUTH TLS first"));
        }
        self.pending_user = Some(user);
        Flow::Reply(Reply::new(331, "password required"))
    }

    async fn pass_command(&mut self, password: String) -> Flow {
        let Some(user) = self.pending_user.take() else {
            return Flow::Reply(Reply::new(503, "send USER first"));
        };
        let peer = self.peer;
        let checked = self.services.auth.send(CheckPassword { user: user.clone(), password, peer: peer.ip() }).await;
        let login = match checked {
            Ok(Ok(login)) => login,
            Ok(Err(error)) => {
                tracing::info!(target: "access", %user, %peer, op = "ftp login", result = "failed");
                let reply = Reply::from_error(&error);
                if error.code != ErrorCode::AuthFailed {
                    return Flow::Reply(reply);
                }
                self.failed_logins += 1;
                if self.failed_logins >= self.services.config.max_login_attempts_per_connection.max(1) {
                    return Flow::Close(reply);
                }
                return Flow::Reply(reply);
            }
            Err(_) => return Flow::Reply(Reply::new(421, "authentication service unavailable")),
        };
        match self.user_slots.send(ClaimUserSession { id: self.id, user: login.user.clone() }).await {
            Ok(Ok(())) => {}
            Ok(Err(refused)) => return Flow::Reply(Reply::from_error(&refused)),
            Err(_) => return Flow::Reply(Reply::new(421, "admission service unavailable")),
        }
        let home_path = login.home.clone();
        match self.services.disk.run("open home", move || Home::open(&home_path)).await {
            Ok(Ok(home)) => {
                tracing::info!(target: "access", user = %login.user, %peer, op = "ftp login", result = "ok");
                let reply = Reply::new(230, format!("logged in as {}", login.user));
                let cwd = VirtualPath::root();
                self.login = Some(LoggedIn { user: login.user, home: Arc::new(home), home_path: login.home, cwd });
                Flow::Reply(reply)
            }
            Ok(Err(error)) => {
                tracing::error!(user = %login.user, home = %login.home.display(), %error, "cannot open home");
                Flow::Reply(Reply::new(451, "your home directory cannot be opened"))
            }
            Err(error) => Flow::Reply(Reply::new(451, format!("internal error: {error}"))),
        }
    }

    async fn auth_tls(&mut self, mechanism: &str) -> Flow {
        let mechanism = mechanism.trim().to_ascii_uppercase();
        if !matches!(mechanism.as_str(), "TLS" | "TLS-C" | "SSL") {
            return Flow::Reply(Reply::new(504, "only AUTH TLS is supported"));
        }
        if self.is_tls() {
            return Flow::Reply(Reply::new(503, "TLS is already on"));
        }
        if !self.control().buffer().is_empty() {
            // Bytes sent after AUTH before our answer would be read as plaintext commands.
            return Flow::Close(Reply::new(503, "commands sent before the TLS handshake; reconnect"));
        }
        if !self.send(Reply::new(234, "starting TLS")).await {
            return Flow::Lost;
        }
        let Some(MaybeTls::Plain(stream)) = self.control.take().map(BufReader::into_inner) else {
            return Flow::Lost;
        };
        let patience = Duration::from_secs(self.services.config.login_timeout_secs);
        match tokio::time::timeout(patience, MaybeTls::accept(stream, self.tls.control.clone())).await {
            Ok(Ok(tls)) => {
                self.control = Some(BufReader::new(tls));
                Flow::Sent
            }
            _ => {
                tracing::info!(peer = %self.peer, "FTP TLS handshake failed");
                Flow::Lost
            }
        }
    }

    fn protection(&mut self, level: &str) -> Reply {
        match level.trim().to_ascii_uppercase().as_str() {
            "P" => {
                self.protect_data = true;
                Reply::new(200, "data connections use TLS")
            }
            "C" => {
                self.protect_data = false;
                Reply::new(200, "data connections are in the clear")
            }
            _ => Reply::new(504, "only PROT P and PROT C are supported"),
        }
    }

    // ---- directories and files ------------------------------------------------------------

    /// Runs `call` on the disk pool with the user's home.
    async fn on_disk<R: Send + 'static>(
        &self,
        name: &'static str,
        call: impl FnOnce(&Home) -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, Reply> {
        let home = self.logged_in().home.clone();
        match self.services.disk.run(name, move || call(&home)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(storage_reply(name, error)),
            Err(failed) => Err(Reply::new(451, format!("internal error: {failed}"))),
        }
    }

    async fn change_dir(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let checked = target.clone();
        if let Err(reply) = self.on_disk("cd", move |home| home.check_dir(&checked)).await {
            return Flow::Reply(reply);
        }
        let shown = target.to_string();
        if let Some(login) = self.login.as_mut() {
            login.cwd = target;
        }
        Flow::Reply(Reply::new(250, format!("now in {}", quote_path(&shown))))
    }

    async fn make_dir(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = quote_path(&target.to_string());
        match self.on_disk("mkdir", move |home| home.mkdir(&target)).await {
            Ok(()) => Flow::Reply(Reply::new(257, format!("{shown} created"))),
            Err(reply) => Flow::Reply(reply),
        }
    }

    /// A command that runs one storage call and answers `code`.
    async fn simple(
        &mut self,
        name: &'static str,
        path: &str,
        code: u16,
        call: impl FnOnce(&Home, VirtualPath) -> Result<(), StorageError> + Send + 'static,
    ) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk(name, move |home| call(home, target)).await {
            Ok(()) => Flow::Reply(Reply::new(code, format!("{name} done"))),
            Err(reply) => Flow::Reply(reply),
        }
    }

    async fn delete(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let login = self.logged_in();
        match self.services.remove_file(login.home.clone(), login.user.clone(), target).await {
            Ok(Ok(())) => Flow::Reply(Reply::new(250, "deleted")),
            Ok(Err(error)) => Flow::Reply(storage_reply("delete", error)),
            Err(failed) => Flow::Reply(Reply::new(451, format!("internal error: {failed}"))),
        }
    }

    async fn rename_from(&mut self, path: &str) -> Flow {
        let source = match self.resolve(path) {
            Ok(source) => source,
            Err(reply) => return Flow::Reply(reply),
        };
        let checked = source.clone();
        match self.on_disk("rename", move |home| home.stat(&checked)).await {
            Ok(_) => {
                self.rename_from = Some(source);
                Flow::Reply(Reply::new(350, "ready for RNTO"))
            }
            Err(reply) => Flow::Reply(reply),
        }
    }

    async fn rename_to(&mut self, path: &str) -> Flow {
        let Some(source) = self.rename_from.take() else {
            return Flow::Reply(Reply::new(503, "send RNFR first"));
        };
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk("rename", move |home| home.rename(&source, &target)).await {
            Ok(()) => Flow::Reply(Reply::new(250, "renamed")),
            Err(reply) => Flow::Reply(reply),
        }
    }

    async fn size(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk("size", move |home| home.resume_len(&target)).await {
            Ok(len) => Flow::Reply(Reply::new(213, len.to_string())),
            Err(reply) => Flow::Reply(reply),
        }
    }

    /// MFMT (draft-somers-ftp-mfxx): sets the modification time, so mirrors keep file times.
    async fn set_time(&mut self, time: &str, path: &str) -> Flow {
        let Some(unix) = parse_time_val(time) else {
            return Flow::Reply(Reply::new(501, "time must be YYYYMMDDHHMMSS (UTC)"));
        };
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = target.to_string();
        match self.on_disk("set time", move |home| set_modified(home, &target, unix)).await {
            Ok(()) => Flow::Reply(Reply::new(213, format!("Modify={}; {shown}", time_val(unix)))),
            Err(reply) => Flow::Reply(reply),
        }
    }

    async fn stat_reply(&mut self, path: &str, answer: impl FnOnce(crate::net::Entry) -> Reply) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk("stat", move |home| home.stat(&target)).await {
            Ok(entry) => Flow::Reply(answer(entry)),
            Err(reply) => Flow::Reply(reply),
        }
    }

    fn status(&self) -> Reply {
        let login = self.logged_in();
        let lines = [
            format!("connected from {}", self.peer),
            format!("logged in as {}", login.user),
            format!("data connections {}", if self.protect_data { "protected (TLS)" } else { "in the clear" }),
        ];
        Reply::multi(211, "ftp-actor status", &lines, "End of status")
    }

    async fn stat_listing(&mut self, path: &str) -> Flow {
        match self.list_entries(Some(path.to_string())).await {
            Ok((_, entries)) => {
                let now = unix_now();
                let lines: Vec<String> = entries.iter().map(|entry| list_line(entry, now)).collect();
                Flow::Reply(Reply::multi(213, "Status follows", &lines, "End of status"))
            }
            Err(reply) => Flow::Reply(reply),
        }
    }

    async fn list_entries(&self, path: Option<String>) -> Result<(VirtualPath, Vec<crate::net::Entry>), Reply> {
        let target = match path {
            Some(path) => self.resolve(&path)?,
            None => self.cwd(),
        };
        let max = self.services.config.max_list_entries;
        let listed = target.clone();
        let listing = self.on_disk("list", move |home| home.list(&listed, max)).await?;
        if listing.truncated {
            tracing::warn!(user = self.user(), path = %target, max, "FTP listing cut at max_list_entries");
        }
        Ok((target, listing.entries))
    }

    async fn listing(&mut self, path: Option<String>, kind: ListingKind) -> Flow {
        let (_, entries) = match self.list_entries(path).await {
            Ok(listed) => listed,
            Err(reply) => return Flow::Reply(reply),
        };
        let now = unix_now();
        let mut text = String::new();
        for entry in &entries {
            let line = match kind {
                ListingKind::List => list_line(entry, now),
                ListingKind::Names => entry.name.clone(),
                ListingKind::Facts => mlsd_line(entry),
            };
            text.push_str(&line);
            text.push_str("\r\n");
        }
        let stall = self.stall();
        self.with_data(format!("listing {} entries", entries.len()), move |data| {
            transfer::send_text(data, text.into_bytes(), stall)
        })
        .await
    }

    // ---- transfers ------------------------------------------------------------------------

    fn stall(&self) -> Duration {
        Duration::from_secs(self.services.config.transfer_stall_secs)
    }

    async fn retrieve(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let offset = self.rest.take().unwrap_or(0);
        let digests = self.services.digests.clone();
        let opened = target.clone();
        let download = match self
            .on_disk("retrieve", move |home| crate::storage::Download::open_at(home, &opened, offset, &digests))
            .await
        {
            Ok(download) => download,
            Err(reply) => return Flow::Reply(reply),
        };
        let context = transfer::Context {
            services: self.services.clone(),
            user: self.user().to_string(),
            peer: self.peer,
            shown: target.to_string(),
        };
        let opening = format!("sending {} ({} bytes from byte {offset})", target, download.size());
        self.with_data(opening, move |data| transfer::send_file(data, download, context)).await
    }

    async fn store(&mut self, path: &str, request: StreamRequest) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let login = self.logged_in();
        let context = transfer::Context {
            services: self.services.clone(),
            user: login.user.clone(),
            peer: self.peer,
            shown: target.to_string(),
        };
        let absolute = login.home_path.join(target.to_relative());
        let upload = match transfer::open_upload(&context, login.home.clone(), target.clone(), absolute, request).await
        {
            Ok(upload) => upload,
            Err(reply) => return Flow::Reply(reply),
        };
        let opening = format!("receiving {target} from byte {}", upload.offset());
        self.with_data(opening, move |data| transfer::receive_file(data, upload, context)).await
    }

    /// Sends 150, opens the data connection, and runs `work` on it while watching the control
    /// connection for ABOR and the acceptor for a forced close. The final reply is returned.
    async fn with_data<F>(&mut self, opening: String, work: impl FnOnce(MaybeTls) -> F) -> Flow
    where
        F: Future<Output = Reply>,
    {
        let Some(source) = self.data.take() else {
            return Flow::Reply(Reply::new(425, "use PASV or EPSV first"));
        };
        if !self.send(Reply::new(150, opening)).await {
            return Flow::Lost;
        }
        let tls = self.protect_data.then(|| self.tls.data.clone());
        let (peer, stall) = (self.peer.ip(), self.stall());
        // Waiting for the data connection is part of the transfer, so ABOR works meanwhile.
        let transfer = async move {
            match data::open(source, peer, tls, stall).await {
                Ok(data) => work(data).await,
                Err(reply) => reply,
            }
        };
        tokio::pin!(transfer);
        let max_line = self.services.config.max_path_bytes + LINE_OVERHEAD;
        loop {
            let control = self.control.as_mut().expect("present during transfers");
            tokio::select! {
                reply = &mut transfer => return Flow::Reply(reply),
                line = read_line(control, &mut self.line, max_line) => match line {
                    Line::Command(line) if matches!(parse(&line), Ok(Command::Abor)) => {
                        // Dropping the transfer closes the data connection; a partial upload
                        // keeps what was written, for a resume.
                        if !self.send(Reply::new(426, "transfer aborted; a partial upload is kept for resume")).await {
                            return Flow::Lost;
                        }
                        return Flow::Reply(Reply::new(226, "ABOR done"));
                    }
                    Line::Command(line) if matches!(parse(&line), Ok(Command::Noop)) => {
                        if !self.send(Reply::new(200, "transfer in progress")).await {
                            return Flow::Lost;
                        }
                    }
                    Line::Command(_) => {
                        if !self.send(Reply::new(503, "a transfer is in progress; wait for it or send ABOR")).await {
                            return Flow::Lost;
                        }
                    }
                    Line::TooLong | Line::Closed => return Flow::Lost,
                },
                changed = self.signals.changed() => {
                    if changed.is_err() {
                        // The acceptor is gone: the server is stopping.
                        return Flow::Close(Reply::from_error(&WireError::from(ErrorCode::ShuttingDown)));
                    }
                    if let Signal::CloseNow(error) = &*self.signals.borrow() {
                        return Flow::Close(Reply::from_error(error));
                    }
                }
            }
        }
    }

    fn passive(&mut self, extended: bool) -> Flow {
        let ftp = &self.services.config.ftp;
        let announced = ftp.passive_address.unwrap_or(self.local.ip());
        let listener = match data::bind_passive(self.local.ip(), ftp.passive_ports) {
            Ok(listener) => listener,
            Err(reply) => return Flow::Reply(reply),
        };
        let port = match listener.local_addr() {
            Ok(address) => address.port(),
            Err(_) => return Flow::Reply(Reply::new(425, "cannot open a passive port")),
        };
        self.data = Some(DataSource::Passive(listener));
        if extended {
            return Flow::Reply(Reply::new(229, epsv_reply(port)));
        }
        match announced {
            std::net::IpAddr::V4(ip) => Flow::Reply(Reply::new(227, pasv_reply(ip, port))),
            std::net::IpAddr::V6(_) => {
                self.data = None;
                Flow::Reply(Reply::new(522, "PASV needs IPv4; use EPSV"))
            }
        }
    }

    /// PORT and EPRT: only when enabled, and only to the client's own address on an
    /// unprivileged port (no bounce attacks).
    fn active(&mut self, address: Option<SocketAddr>) -> Reply {
        if !self.services.config.ftp.active_mode {
            return Reply::new(502, "active mode is disabled on this server; use PASV or EPSV");
        }
        let Some(address) = address else {
            return Reply::new(501, "malformed address");
        };
        if address.ip() != self.peer.ip() || address.port() < 1024 {
            return Reply::new(504, "active connections go only to your own address, on a port from 1024");
        }
        self.data = Some(DataSource::Active(address));
        Reply::new(200, "active mode address accepted")
    }

    async fn checksum(&mut self, path: &str, kind: Checksum) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let user = self.user().to_string();
        let digests = self.services.digests.clone();
        let hashed = target.clone();
        // A stored digest is free; only a file that must be read is charged to the budget.
        let (services, budget_user) = (self.services.clone(), user.clone());
        let may_hash = move || services.may_hash(&budget_user).is_ok();
        let (md5, size, cost) =
            match self.on_disk("checksum", move |home| file_md5(home, &hashed, &digests, may_hash)).await {
                Ok(Some(result)) => result,
                Ok(None) => {
                    let refused =
                        self.services.may_hash(&user).err().unwrap_or_else(|| ErrorCode::HashBudgetExhausted.into());
                    return Flow::Reply(Reply::from_error(&refused));
                }
                Err(reply) => return Flow::Reply(reply),
            };
        self.services.charge_hashing(&user, cost);
        let hex = hex::encode(md5);
        let name = target.to_string();
        Flow::Reply(match kind {
            Checksum::Hash => Reply::new(213, format!("MD5 0-{} {hex} {name}", size.saturating_sub(1))),
            Checksum::Xmd5 => Reply::new(250, hex),
            Checksum::Md5 => Reply::new(251, format!("{} {hex}", quote_path(&name))),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum ListingKind {
    List,
    Names,
    Facts,
}

#[derive(Debug, Clone, Copy)]
enum Checksum {
    Hash,
    Xmd5,
    Md5,
}

/// Reads one line into `buffer` (kept across calls, so a read cancelled by `select!` loses
/// nothing). Bytes are moved out of the reader only after they arrived, which makes this
/// cancel-safe.
async fn read_line(control: &mut BufReader<MaybeTls>, buffer: &mut Vec<u8>, max: usize) -> Line {
    loop {
        let available = match control.fill_buf().await {
            Ok(available) => available,
            Err(_) => return Line::Closed,
        };
        if available.is_empty() {
            return Line::Closed;
        }
        let (taken, complete) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        buffer.extend_from_slice(&available[..taken]);
        control.consume(taken);
        if buffer.len() > max {
            return Line::TooLong;
        }
        if complete {
            return Line::Command(std::mem::take(buffer));
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A storage failure as an FTP reply, with the server's stable code.
pub(super) fn storage_reply(op: &str, error: StorageError) -> Reply {
    if let StorageError::Io(io) = &error {
        tracing::error!(op, error = %io, "storage failure");
    }
    Reply::from_error(&WireError::new(error.code(), format!("{op}: {error}")))
}

fn features() -> Reply {
    let lines: Vec<String> = [
        "AUTH TLS",
        "PBSZ",
        "PROT",
        "EPSV",
        "MDTM",
        "MFMT",
        "MLST type*;size*;modify*;perm*;",
        "REST STREAM",
        "SIZE",
        "TVFS",
        "UTF8",
        "HASH MD5*",
        "XMD5",
    ]
    .iter()
    .map(|line| line.to_string())
    .collect();
    Reply::multi(211, "Features:", &lines, "End")
}

fn help() -> Reply {
    let lines = [
        "USER PASS QUIT NOOP SYST FEAT HELP OPTS TYPE MODE STRU ALLO AUTH PBSZ PROT".to_string(),
        "PWD CWD CDUP MKD RMD DELE RNFR RNTO LIST NLST MLSD MLST STAT SIZE MDTM MFMT".to_string(),
        "RETR STOR APPE REST ABOR PASV EPSV PORT EPRT HASH XMD5 MD5".to_string(),
    ];
    Reply::multi(214, "Commands:", &lines, "Help OK")
}

fn options(option: &str) -> Reply {
    let upper = option.trim().to_ascii_uppercase();
    let mut words = upper.split_whitespace();
    match (words.next(), words.next()) {
        (Some("UTF8"), Some("ON") | None) => Reply::new(200, "UTF-8 is always on"),
        (Some("MLST"), _) => Reply::new(200, "MLST OPTS type;size;modify;perm;"),
        (Some("HASH"), None | Some("MD5")) => Reply::new(200, "MD5"),
        (Some("HASH"), Some(_)) => Reply::new(501, "only MD5 is supported"),
        _ => Reply::new(501, format!("option {option} is not supported")),
    }
}

/// TYPE: binary, and ASCII accepted as binary (bytes are never converted, so checksums stay
/// those of the stored file).
fn transfer_type(kind: &str) -> Reply {
    let upper = kind.trim().to_ascii_uppercase();
    match upper.split_whitespace().next() {
        Some("I") | Some("L") => Reply::new(200, "type set to binary"),
        Some("A") => Reply::new(200, "type set to ASCII (transferred unchanged, as binary)"),
        _ => Reply::new(504, "only TYPE I and TYPE A are supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feat_announces_tls_resume_and_checksums() {
        let feat = String::from_utf8(features().to_bytes()).unwrap();
        for feature in ["AUTH TLS", "REST STREAM", "MLST type*", "HASH MD5*", "EPSV", "UTF8"] {
            assert!(feat.contains(feature), "{feature} missing from {feat}");
        }
        assert!(feat.ends_with("211 End\r\n"));
    }

    #[test]
    fn options_and_types() {
        assert_eq!(options("utf8 on").code, 200);
        assert_eq!(options("HASH SHA-1").code, 501);
        assert_eq!(transfer_type("A N").code, 200);
        assert_eq!(transfer_type("E").code, 504);
    }
}
