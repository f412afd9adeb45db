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
//!
//! This file holds the loop and the plumbing every command uses; the commands themselves are
//! in `login`, `files` and `transfer_commands`, the bytes of transfers in [`super::transfer`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::actors::Services;
use crate::actors::acceptor::{AdmissionLink, QueueNotice, Signal, SlotAnswer, TaskLink};
use crate::actors::auth::CheckPassword;
use crate::net::{ErrorCode, WireError};
use crate::service::{EntryChange, LoggedIn, Removed, UserFiles};
use crate::storage::{StreamRequest, VirtualPath};

use super::address::{epsv_reply, parse_eprt, parse_port, pasv_reply};
use super::command::{Command, parse};
use super::control_stream::ControlStream;
use super::data::{self, DataSource};
use super::features::{features, help, options, transfer_type};
use super::listing::{ListingKind, facts, list_line, parse_time_val, time_val, unix_now};
use super::reply::{Reply, quote_path};
use super::tls::{FtpTls, MaybeTls};
use super::transfer;

mod files;
mod login;
mod transfer_commands;

/// Bytes of the control connection's read buffer: commands are short lines (a longer one is
/// read in several pieces), and every connection holds this much while it waits.
const CONTROL_BUFFER: usize = 1024;

/// Longest command line accepted, beyond the longest path: a longer line closes the session.
const LINE_OVERHEAD: usize = 64;

/// The session's shared pieces, handed over by the acceptor.
pub struct FtpSessionStart {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub services: Services,
    pub tls: FtpTls,
    pub admission: AdmissionLink,
}

/// Starts the session's task; returns the acceptor's handle on it.
pub fn start(start: FtpSessionStart) -> TaskLink {
    let (link, receiver) = TaskLink::new();
    actix_rt::spawn(async move {
        let session = match Session::new(start, receiver) {
            Ok(session) => session,
            Err(error) => return tracing::warn!(%error, "FTP connection lost before its greeting"),
        };
        let (id, peer) = (session.admission.id(), session.peer);
        let user = session.run().await;
        tracing::debug!(session = id, %peer, user, "FTP session ended");
    });
    link
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
    peer: SocketAddr,
    local: SocketAddr,
    services: Services,
    tls: FtpTls,
    /// `None` only while `AUTH TLS` swaps the stream.
    control: Option<BufReader<ControlStream>>,
    line: Vec<u8>,
    signals: watch::Receiver<Signal>,
    /// The connection's place in the acceptor's books, and where a login asks for a slot.
    admission: AdmissionLink,
    pending_user: Option<String>,
    login: Option<LoggedIn>,
    failed_logins: u32,
    protect_data: bool,
    rest: Option<u64>,
    rename_from: Option<VirtualPath>,
    data: Option<DataSource>,
    /// After `EPSV ALL` only EPSV may set up a data connection (RFC 2428 section 4): a NAT
    /// device that saw it rewrites no PASV or PORT addresses.
    epsv_only: bool,
}

impl Session {
    fn new(start: FtpSessionStart, signals: watch::Receiver<Signal>) -> std::io::Result<Session> {
        let FtpSessionStart { stream, peer, services, tls, admission } = start;
        let local = crate::net::address::canonical(stream.local_addr()?);
        let _ = stream.set_nodelay(true);
        Ok(Session {
            peer,
            local,
            services,
            tls,
            control: Some(BufReader::with_capacity(CONTROL_BUFFER, ControlStream::new(stream))),
            line: Vec::new(),
            signals,
            admission,
            pending_user: None,
            login: None,
            failed_logins: 0,
            protect_data: false,
            rest: None,
            rename_from: None,
            data: None,
            epsv_only: false,
        })
    }

    fn control(&mut self) -> &mut BufReader<ControlStream> {
        self.control.as_mut().expect("the control stream is only absent during AUTH TLS")
    }

    fn user(&self) -> &str {
        self.login.as_ref().map_or("-", LoggedIn::user)
    }

    async fn send(&mut self, reply: Reply) -> bool {
        self.send_raw(&reply.to_bytes()).await
    }

    /// Sends bytes on the control connection as they are (a reply's continuation lines), and
    /// flushes them: over TLS, written bytes may wait in the TLS buffer until a flush.
    async fn send_raw(&mut self, bytes: &[u8]) -> bool {
        let stall = Duration::from_secs(self.services.config.transfer_stall_secs);
        let control = self.control().get_mut();
        let sent = async {
            control.write_all(bytes).await?;
            control.flush().await
        };
        matches!(tokio::time::timeout(stall, sent).await, Ok(Ok(())))
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
                // 421 says the server is closing the control connection (RFC 959): it does.
                Flow::Reply(reply) if reply.code == 421 => {
                    self.send(reply).await;
                    false
                }
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
            crate::tuning::busy_poll::stay_awake(config.busy_poll_window());
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
            Command::Mkd(path) => self.change_entry(EntryChange::MakeDir, &path).await,
            Command::Rmd(path) => self.change_entry(EntryChange::RemoveDir, &path).await,
            Command::Dele(path) => self.remove_file(&path).await,
            Command::Rnfr(path) => self.rename_from(&path).await,
            Command::Rnto(path) => self.rename_to(&path).await,
            Command::Size(path) => self.size(&path).await,
            Command::Mdtm(path) => self.stat_reply(&path, |entry| Reply::new(213, time_val(entry.modified))).await,
            Command::Mfmt { time, path } => self.set_time(&time, &path).await,
            Command::Mlst(path) => {
                let path = path.unwrap_or_else(|| ".".to_string());
                let shown = self.resolve("stat", &path).map(|p| p.to_string()).unwrap_or_default();
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
            Command::Pasv | Command::Port(_) | Command::Eprt(_) if self.epsv_only => {
                Flow::Reply(Reply::new(501, "only EPSV sets up data connections after EPSV ALL"))
            }
            Command::Pasv => self.passive(false),
            Command::Epsv(argument) => match argument.as_deref().map(str::trim) {
                Some(all) if all.eq_ignore_ascii_case("ALL") => {
                    self.epsv_only = true;
                    Flow::Reply(Reply::new(200, "EPSV ALL accepted"))
                }
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
        self.control().get_ref().get_ref().is_tls()
    }

    fn cwd(&self) -> VirtualPath {
        self.login.as_ref().map_or_else(VirtualPath::root, |login| login.cwd.clone())
    }

    fn resolve(&self, op: &str, path: &str) -> Result<VirtualPath, Reply> {
        self.logged_in().resolve(op, path).map_err(|error| Reply::from_error(&error))
    }

    fn logged_in(&self) -> &LoggedIn {
        self.login.as_ref().expect("commands past login are only handled when logged in")
    }

    /// The logged-in user's files, through the service.
    fn files(&self) -> Arc<UserFiles> {
        self.logged_in().files.clone()
    }
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
async fn read_line(control: &mut BufReader<ControlStream>, buffer: &mut Vec<u8>, max: usize) -> Line {
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
