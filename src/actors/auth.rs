//! AuthActor: the user store and the server side of SCRAM.
//!
//! The users come from a [`UserDirectory`] (the state seam; `users.toml` here, see
//! [`crate::state::users::UsersFile`]), asked for a newer version at every login and every
//! [`STORE_POLL`] (a `stat` on the login pool, apart from the disk workers), so `ftp-actor user ...` takes effect on a
//! running server without a restart: new passwords at the next login, quotas within seconds
//! even for sessions already logged in. Each reload passes the user list to the QuotaActor,
//! and the names of users deleted or given a new password or home to whoever watches for
//! revocations (the Acceptor, which ends those users' sessions; see [`RevokeSessions`]).
//!
//! Supervision: the actor runs under an actix `Supervisor`. A panic in a handler becomes an
//! error reply and stops the actor; the supervisor restarts it (requests sent meanwhile wait
//! in the mailbox and are answered) and `started` reloads the store from disk. Logins between
//! challenge and proof survive: the pending state travels with the session.
//!
//! An unknown user gets a challenge that looks like a real one: a salt derived from the server
//! secret and the name (stable, so asking twice shows nothing) and the default scrypt
//! parameters. The proof then fails exactly like a wrong password, with the same code, message
//! and work, so names cannot be probed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use actix::prelude::*;
use futures::future::Shared;
use hmac::{KeyInit, Mac};
use sha2::Sha256;

use crate::auth::ScryptParams;
use crate::auth::login_cache::LoginCache;
use crate::auth::scram::{self, ChannelBinding, Exchange, Key, ServerKeys};
use crate::auth::ssh_keys::{self, is_authorized};
use crate::auth::throttle::Admission;
use crate::auth::user_store::{SALT_LEN, UserStore, home_path};
use crate::net::{ErrorCode, WireError};
use crate::state::failed_logins::{FailedLogins, SharedFailedLogins};
use crate::state::users::{UserDirectory, UsersVersion};

use super::disk::DiskPool;
use super::panic_guard::{InjectPanic, Panicked, catch_panic};
use super::quota::{QuotaActor, QuotaUser, SetUsers};
use crate::metrics::{LoginResult, Metrics, Protocol};

/// How often the user store's file is checked for changes between logins.
pub const STORE_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// What checking passwords needs beside the user store.
pub struct PasswordChecks {
    /// Shared with the acceptor, which refuses banned addresses as they connect.
    pub throttle: SharedFailedLogins,
    /// Passwords checked lately (see [`LoginCache`]).
    pub cache: LoginCache,
    /// The threads that derive scrypt for password logins (`login_derivations` of them), apart
    /// from the disk workers: a flood of logins neither takes the threads transfers use nor
    /// more memory than that many derivations at once.
    pub derivations: DiskPool,
    /// Password checks waiting for a derivation thread, and the most allowed to wait
    /// (`login_derivations_queued`); past it a login is refused with error 600.
    pub waiting: Arc<AtomicUsize>,
    pub max_waiting: usize,
    /// Derivations running, by the keyed hash of the user and password they check (see
    /// [`LoginCache::tag`]) and the stored key they check against. A login with the same name
    /// and password that arrives meanwhile shares that derivation's verdict instead of deriving
    /// the same key again: lftp, rclone and the like open their connections at once, so the
    /// first logins of a burst all miss the cache together.
    pub in_flight: HashMap<(Key, Key), SharedDerivation>,
    /// Where failed and banned logins are counted for operators.
    pub metrics: Arc<Metrics>,
}

pub struct AuthActor {
    data_dir: PathBuf,
    /// The throttle, the login cache and the derivation pool; kept across restarts (the
    /// supervisor reuses this value): a crash must not lift bans.
    checks: PasswordChecks,
    secret: Key,
    default_scrypt: ScryptParams,
    /// `max_files` of users whose record does not set one.
    default_max_files: u64,
    store: UserStore,
    /// Where the users come from (see [`UserDirectory`]), and the version of them applied.
    directory: Arc<dyn UserDirectory>,
    known: Option<UsersVersion>,
    quota: Addr<QuotaActor>,
    disk: DiskPool,
    /// Counts the reloads applied; a login carries the generation its challenge came from.
    generation: u64,
    /// Told of every reload that revokes users (see [`WatchRevocations`]).
    revocations: Option<Recipient<RevokeSessions>>,
}

/// Where the users come from and the server-wide settings their logins use.
pub struct UserSource {
    /// What relative home directories are relative to.
    pub data_dir: PathBuf,
    pub directory: Box<dyn UserDirectory>,
    /// The deployment's secret: unknown users' fake challenges and logged names derive from it.
    pub secret: Key,
    /// The scrypt parameters an unknown user's fake challenge shows.
    pub default_scrypt: ScryptParams,
    /// `max_files` of users whose record does not set one.
    pub default_max_files: u64,
}

impl AuthActor {
    pub fn new(source: UserSource, checks: PasswordChecks, quota: Addr<QuotaActor>, disk: DiskPool) -> Self {
        let UserSource { data_dir, directory, secret, default_scrypt, default_max_files } = source;
        let directory: Arc<dyn UserDirectory> = Arc::from(directory);
        AuthActor {
            data_dir,
            checks,
            secret,
            default_scrypt,
            default_max_files,
            store: UserStore::default(),
            directory,
            known: None,
            quota,
            disk,
            generation: 0,
            revocations: None,
        }
    }

    fn keyed(&self, label: &str, user: &str) -> Key {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.secret).expect("any key length");
        mac.update(label.as_bytes());
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// How the access log names whoever tried to log in as `user`: the name itself if it is a
    /// user's, else `unknown-` and a keyed hash of it. What a client typed as a name that
    /// matches no user may be a password typed into the wrong prompt, so it is never written
    /// as typed; the hash (keyed with the server secret, so a guess cannot be checked against
    /// the log) still shows that repeated attempts used the same name.
    fn logged_name(&self, user: &str) -> String {
        if self.store.users.contains_key(user) {
            user.to_string()
        } else {
            format!("unknown-{}", hex::encode(&self.keyed("logged name", user)[..6]))
        }
    }

    /// Writes a failed login to the access log (see [`AuthActor::logged_name`]) and counts it.
    fn log_failure(&self, protocol: Protocol, user: &str, peer: IpAddr) {
        let user = self.logged_name(user);
        let op = match protocol {
            Protocol::native => "login",
            Protocol::ftp => "ftp login",
            Protocol::sftp => "sftp login",
        };
        tracing::info!(target: "access", %user, %peer, op, result = "failed");
        self.checks.metrics.login(protocol, LoginResult::failed);
    }

    fn challenge(&self, user: String, client_nonce: String, channel_binding: ChannelBinding) -> PendingLogin {
        let nonce = format!("{client_nonce}{}", scram::new_nonce());
        match self.store.users.get(&user) {
            Some(record) => {
                let c = &record.credentials;
                PendingLogin {
                    exchange: Exchange {
                        user,
                        client_nonce,
                        nonce,
                        salt: c.salt.clone(),
                        kdf_attribute: c.scrypt.attribute(),
                        channel_binding,
                    },
                    scrypt: c.scrypt,
                    keys: ServerKeys { stored_key: c.stored_key, server_key: c.server_key },
                    home: Some(home_path(&self.data_dir, record)),
                    generation: self.generation,
                }
            }
            None => PendingLogin {
                exchange: Exchange {
                    salt: self.keyed("fake salt", &user)[..SALT_LEN].to_vec(),
                    user: user.clone(),
                    client_nonce,
                    nonce,
                    kdf_attribute: self.default_scrypt.attribute(),
                    channel_binding,
                },
                scrypt: self.default_scrypt,
                keys: ServerKeys {
                    stored_key: self.keyed("fake stored key", &user),
                    server_key: self.keyed("fake server key", &user),
                },
                home: None,
                generation: self.generation,
            },
        }
    }

    /// Reads the users again if the directory has a newer version than the one applied, and
    /// tells the QuotaActor, and whoever watches for revocations whose sessions must end.
    fn refresh(&mut self) -> impl ActorFuture<Self, Output = ()> + use<> {
        let (directory, known) = (self.directory.clone(), self.known);
        let disk = self.disk.clone();
        let reload = async move { disk.run("reload users", move || directory.read_if_changed(known)).await };
        reload.into_actor(self).map(|reloaded, act, _| match reloaded {
            Ok(Ok(Some((users, version)))) => {
                tracing::info!(users = users.users.len(), "user store loaded");
                let revoked = act.store.revoked_by(&users);
                act.store = users;
                act.known = Some(version);
                act.generation += 1;
                act.quota.do_send(SetUsers(act.quota_users()));
                if !revoked.is_empty() {
                    tracing::info!(users = ?revoked, "users removed or changed: their sessions end");
                    if let Some(watcher) = &act.revocations {
                        watcher.do_send(RevokeSessions { users: revoked, generation: act.generation });
                    }
                }
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::error!(%error, "cannot reload the user store; keeping the users already loaded"),
            Err(error) => tracing::error!(%error, "cannot reload the user store"),
        })
    }

    fn quota_users(&self) -> Vec<QuotaUser> {
        self.store
            .users
            .iter()
            .map(|(name, record)| QuotaUser {
                name: name.clone(),
                home: home_path(&self.data_dir, record),
                limit: record.quota,
                max_files: record.max_files.unwrap_or(self.default_max_files),
            })
            .collect()
    }
}

impl Supervised for AuthActor {
    fn restarting(&mut self, _: &mut Context<Self>) {
        tracing::warn!("auth actor restarting; reloading the user store");
        // The logins that ran these derivations went with the old context: nobody would take
        // their entries out, and a finished one must not answer later logins.
        self.checks.in_flight.clear();
    }
}

impl AuthActor {
    /// Runs `body`; if it panics, the actor stops (and is restarted by its supervisor).
    fn guarded<R>(&mut self, ctx: &mut Context<Self>, body: impl FnOnce(&mut Self) -> R) -> Result<R, Panicked> {
        let result = catch_panic("auth actor", || body(self));
        if result.is_err() {
            ctx.stop();
        }
        result
    }
}

impl Handler<InjectPanic> for AuthActor {
    type Result = Result<(), Panicked>;

    fn handle(&mut self, _: InjectPanic, ctx: &mut Context<Self>) -> Self::Result {
        self.guarded(ctx, |_| panic!("injected failure in the auth actor"))
    }
}

impl Actor for AuthActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // After a restart the store is read again whether or not its file changed.
        self.known = None;
        ctx.wait(self.refresh());
        ctx.run_interval(STORE_POLL, |act, ctx| {
            ctx.spawn(act.refresh());
        });
    }
}

/// A login between the challenge and the proof. Opaque to the session that carries it.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    exchange: Exchange,
    scrypt: ScryptParams,
    keys: ServerKeys,
    /// `None` for an unknown user: the proof will fail.
    home: Option<PathBuf>,
    /// The store generation the keys come from.
    generation: u64,
}

/// Users whose sessions must end: deleted, or given a new password or home, in the store of
/// this generation. A login whose challenge came from an older generation is refused too.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RevokeSessions {
    pub users: Vec<String>,
    pub generation: u64,
}

/// Asks the AuthActor to send every [`RevokeSessions`] to `0` (kept across restarts).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchRevocations(pub Recipient<RevokeSessions>);

impl Handler<WatchRevocations> for AuthActor {
    type Result = ();

    fn handle(&mut self, msg: WatchRevocations, _: &mut Context<Self>) {
        self.revocations = Some(msg.0);
    }
}

impl PendingLogin {
    pub fn user(&self) -> &str {
        &self.exchange.user
    }

    /// The SCRAM server-first fields.
    pub fn challenge(&self) -> crate::net::Response {
        crate::net::Response::AuthChallenge {
            nonce: self.exchange.nonce.clone(),
            salt: serde_bytes::ByteBuf::from(self.exchange.salt.clone()),
            log_n: self.scrypt.log_n,
            r: self.scrypt.r,
            p: self.scrypt.p,
        }
    }
}

/// SCRAM client-first: returns the challenge to send.
#[derive(Message)]
#[rtype(result = "Result<PendingLogin, WireError>")]
pub struct BeginLogin {
    pub user: String,
    pub client_nonce: String,
    /// Decided by the session (see `auth::channel_binding::for_server`).
    pub channel_binding: ChannelBinding,
    pub peer: IpAddr,
}

impl AuthActor {
    fn throttle(&self) -> std::sync::MutexGuard<'_, dyn FailedLogins> {
        self.checks.throttle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Refuses a login from a banned address or for a banned name.
    fn admit(&self, peer: IpAddr, user: &str, protocol: Protocol) -> Result<(), WireError> {
        if let Admission::Banned { remaining, by_address } = self.throttle().check(peer, user, Instant::now()) {
            let whom = if by_address { "from your address" } else { "for this user" };
            let seconds = remaining.as_secs().max(1);
            let user = self.logged_name(user);
            tracing::warn!(target: "access", %user, %peer, op = "login", result = "banned", seconds);
            self.checks.metrics.login(protocol, LoginResult::banned);
            return Err(WireError::new(
                ErrorCode::LoginBanned,
                format!("too many failed logins {whom}; try again in {seconds} seconds"),
            ));
        }
        Ok(())
    }
}

impl Handler<BeginLogin> for AuthActor {
    type Result = ResponseActFuture<Self, Result<PendingLogin, WireError>>;

    fn handle(&mut self, msg: BeginLogin, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.refresh().map(move |(), act, ctx| {
            act.admit(msg.peer, &msg.user, Protocol::native)?;
            let (user, client_nonce) = (msg.user.clone(), msg.client_nonce.clone());
            let challenge = act.guarded(ctx, |act| act.challenge(user, client_nonce, msg.channel_binding));
            let challenge = challenge.map_err(|panicked| WireError::new(ErrorCode::Internal, panicked.to_string()))?;
            if !scram::is_valid_nonce(&msg.client_nonce) {
                return Err(WireError::new(
                    ErrorCode::MalformedFrame,
                    "client_nonce must be 16 to 128 printable ASCII characters without ','",
                ));
            }
            if msg.user.len() > 64 {
                return Err(WireError::from(ErrorCode::AuthFailed));
            }
            Ok(challenge)
        }))
    }
}

/// The user's record as a session needs it.
#[derive(Debug, Clone)]
pub struct LoginOk {
    pub user: String,
    pub home: PathBuf,
    /// The store generation the login was checked against (see [`RevokeSessions`]).
    pub generation: u64,
}

/// A SCRAM login that succeeded, with the signature that proves the server to the client.
#[derive(Debug, Clone)]
pub struct ScramLoginOk {
    pub login: LoginOk,
    pub server_signature: Key,
}

/// SCRAM client-final: verifies the proof.
#[derive(Message)]
#[rtype(result = "Result<ScramLoginOk, WireError>")]
pub struct FinishLogin {
    pub pending: PendingLogin,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// The binding data the client says it used (its `c=`), for a bound login.
    pub channel_binding_data: Option<Vec<u8>>,
    pub peer: IpAddr,
}

impl Handler<FinishLogin> for AuthActor {
    type Result = ResponseActFuture<Self, Result<ScramLoginOk, WireError>>;

    /// A failure is answered only after the throttle's delay, the same for every kind of
    /// failure; the session waits meanwhile (it serves one request at a time).
    fn handle(&mut self, msg: FinishLogin, ctx: &mut Context<Self>) -> Self::Result {
        let (peer, user) = (msg.peer, msg.pending.user().to_string());
        let verified = self.guarded(ctx, |_| verify(msg));
        let (result, delay) = match verified {
            Ok(Ok(login)) => {
                self.throttle().succeeded(peer, &user);
                (Ok(login), Duration::ZERO)
            }
            Ok(Err(failed)) => {
                self.log_failure(Protocol::native, &user, peer);
                let delay = self.throttle().failed(peer, &user, Instant::now());
                (Err(failed), delay)
            }
            Err(panicked) => (Err(WireError::new(ErrorCode::Internal, panicked.to_string())), Duration::ZERO),
        };
        Box::pin(actix::fut::wrap_future(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            result
        }))
    }
}

/// Checks a proof against a pending login. For a bound login the client's binding data is
/// compared first (RFC 5802's `channel-bindings-dont-match`): data from another TLS session
/// means a relay that terminates TLS sits between the two ends, and is said so (208), though
/// the proof would fail anyway, since it signs that data.
fn verify(msg: FinishLogin) -> Result<ScramLoginOk, WireError> {
    let pending = msg.pending;
    if let ChannelBinding::TlsExporter(data) = pending.exchange.channel_binding
        && msg.channel_binding_data.as_deref().is_some_and(|sent| sent != data)
    {
        tracing::warn!(user = %pending.exchange.user, peer = %msg.peer,
            "channel binding mismatch: a relay terminates TLS between this client and the server");
        return Err(WireError::new(
            ErrorCode::ChannelBindingMismatch,
            "login refused: your TLS session is not the server's; something between you terminates TLS and relays \
             (a man in the middle). Do not trust the certificate you were shown",
        ));
    }
    let auth_message = pending.exchange.auth_message();
    // Always verify, even for an unknown user, so both failures cost the same.
    let proof_ok = scram::verify_client_proof(&pending.keys.stored_key, &auth_message, &msg.proof);
    let nonce_ok = msg.nonce == pending.exchange.nonce;
    match pending.home {
        Some(home) if proof_ok && nonce_ok => Ok(ScramLoginOk {
            login: LoginOk { user: pending.exchange.user.clone(), home, generation: pending.generation },
            server_signature: scram::server_signature(&pending.keys.server_key, &auth_message),
        }),
        _ => Err(WireError::new(ErrorCode::AuthFailed, "login failed: unknown user or wrong password")),
    }
}

/// A plain password login (the FTP front end's USER/PASS, which arrives inside TLS): the
/// server derives the SCRAM keys from the password with the user's scrypt parameters and
/// compares them with the stored ones. Same throttling, same answers and the same work for
/// an unknown user as [`FinishLogin`]. A password checked lately is recognised by the login
/// cache; otherwise the derivation runs on the derivation pool (see [`PasswordChecks`]).
#[derive(Message)]
#[rtype(result = "Result<LoginOk, WireError>")]
pub struct CheckPassword {
    pub user: String,
    pub password: String,
    pub peer: IpAddr,
    /// The front end the password came through, for the access log and the metrics.
    pub protocol: Protocol,
}

impl Handler<CheckPassword> for AuthActor {
    type Result = ResponseActFuture<Self, Result<LoginOk, WireError>>;

    fn handle(&mut self, msg: CheckPassword, _: &mut Context<Self>) -> Self::Result {
        let CheckPassword { user, password, peer, protocol } = msg;
        Box::pin(self.refresh().then(move |(), act, ctx| {
            let admitted = act.admit(peer, &user, protocol);
            let pending = admitted.and_then(|()| {
                act.guarded(ctx, |act| act.challenge(user.clone(), String::new(), ChannelBinding::Unbound))
                    .map_err(|panicked| WireError::new(ErrorCode::Internal, panicked.to_string()))
            });
            let password = Zeroizing::new(password.into_bytes());
            let credential = pending.as_ref().ok().filter(|p| p.home.is_some()).map(|p| p.keys.stored_key);
            // Names this check's own derivation while it runs, for others to share.
            let mut flight = None;
            let check = match pending {
                Err(refused) => Check::Refused(refused),
                Ok(pending) => match credential {
                    Some(key) if act.checks.cache.verifies(&user, &password, &key, Instant::now()) => {
                        Check::Verified(pending.into_login())
                    }
                    Some(key) => {
                        let name = (act.checks.cache.tag(&user, &password), key);
                        match act.checks.in_flight.get(&name) {
                            Some(running) => Check::Share(running.clone()),
                            None => {
                                let check = act.derive(pending, password.clone());
                                if let Check::Derive(derivation) = &check {
                                    act.checks.in_flight.insert(name, derivation.clone());
                                    flight = Some(name);
                                }
                                check
                            }
                        }
                    }
                    None => act.derive(pending, password.clone()),
                },
            };
            let check = async move {
                match check {
                    Check::Refused(refused) => Err(refused),
                    Check::Verified(login) => Ok(Ok(login)),
                    Check::Derive(derivation) | Check::Share(derivation) => derivation.await,
                }
            };
            check.into_actor(act).then(move |checked, act, _| {
                if let Some(flight) = &flight {
                    act.checks.in_flight.remove(flight);
                }
                let (result, delay) = match checked {
                    Ok(Ok(login)) => {
                        act.throttle().succeeded(peer, &user);
                        if let (Some(_), Some(key)) = (flight, credential) {
                            act.checks.cache.remember(&user, &password, &key, Instant::now());
                        }
                        (Ok(login), Duration::ZERO)
                    }
                    Ok(Err(failed)) => {
                        act.log_failure(protocol, &user, peer);
                        (Err(failed), act.throttle().failed(peer, &user, Instant::now()))
                    }
                    // Too many checks waiting: not a verdict, but a flood still counts.
                    Err(busy) if busy.code == ErrorCode::ServerBusy => {
                        (Err(busy), act.throttle().failed(peer, &user, Instant::now()))
                    }
                    // Banned, or the check itself could not run: not a guess, not counted.
                    Err(refused) => (Err(refused), Duration::ZERO),
                };
                actix::fut::wrap_future(async move {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    result
                })
            })
        }))
    }
}

/// An SFTP login by public key: the SSH layer has checked the client's signature, so the
/// client holds the private key of `key`; is that key one of the user's (`ftp-actor user key
/// add`)? Refused from a banned address or for a banned name, as every login. A key that is not
/// the user's is not counted as a failed login: clients offer each key they have in turn, and a
/// key cannot be guessed. `signed: false` only asks (the client's offer before it signs): a
/// success then is not a login, and clears no failures.
#[derive(Message)]
#[rtype(result = "Result<LoginOk, WireError>")]
pub struct CheckPublicKey {
    pub user: String,
    pub key: russh::keys::PublicKey,
    pub signed: bool,
    pub peer: IpAddr,
}

impl Handler<CheckPublicKey> for AuthActor {
    type Result = ResponseActFuture<Self, Result<LoginOk, WireError>>;

    fn handle(&mut self, msg: CheckPublicKey, _: &mut Context<Self>) -> Self::Result {
        Box::pin(self.refresh().map(move |(), act, _| {
            let CheckPublicKey { user, key, signed, peer } = msg;
            act.admit(peer, &user, Protocol::sftp)?;
            let record = act.store.users.get(&user).filter(|record| is_authorized(&record.ssh_keys, &key));
            let Some(record) = record else {
                if signed {
                    tracing::info!(target: "access", user = %act.logged_name(&user), %peer, op = "sftp login",
                        result = "key not accepted", key = %ssh_keys::fingerprint(&key));
                }
                return Err(WireError::new(ErrorCode::AuthFailed, "login failed: unknown user or key not accepted"));
            };
            let login =
                LoginOk { user: user.clone(), home: home_path(&act.data_dir, record), generation: act.generation };
            if signed {
                act.throttle().succeeded(peer, &user);
            }
            Ok(login)
        }))
    }
}

/// A derivation on the derivation pool: its verdict, or why it could not run. Shared by the
/// logins that check the same name and password while it runs (see
/// [`PasswordChecks::in_flight`]).
pub type SharedDerivation =
    Shared<std::pin::Pin<Box<dyn Future<Output = Result<Result<LoginOk, WireError>, WireError>>>>>;

/// How a password check goes on after the cache was asked.
enum Check {
    Refused(WireError),
    Verified(LoginOk),
    /// A derivation of its own, which it remembers in the cache if it succeeds.
    Derive(SharedDerivation),
    /// The derivation another login with the same name and password runs.
    Share(SharedDerivation),
}

impl AuthActor {
    /// Queues the derivation that checks `password`, unless too many already wait.
    fn derive(&mut self, pending: PendingLogin, password: Zeroizing<Vec<u8>>) -> Check {
        let waiting = self.checks.waiting.clone();
        if waiting.fetch_add(1, Ordering::SeqCst) >= self.checks.max_waiting {
            waiting.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!(max = self.checks.max_waiting, "password checks waiting at their limit: login refused");
            return Check::Refused(WireError::new(
                ErrorCode::ServerBusy,
                "too many logins are being checked; try again in a moment",
            ));
        }
        let pool = self.checks.derivations.clone();
        let derivation: std::pin::Pin<Box<dyn Future<Output = _>>> = Box::pin(async move {
            let verdict = pool.run("derive password key", move || verify_password(pending, &password)).await;
            waiting.fetch_sub(1, Ordering::SeqCst);
            // Outer error: the check could not run (not a guess); inner: the check's verdict.
            verdict.map_err(|failed| WireError::new(ErrorCode::Internal, failed.to_string()))
        });
        Check::Derive(futures::FutureExt::shared(derivation))
    }
}

impl PendingLogin {
    /// The login this challenge was for, once its password is known to be right.
    fn into_login(self) -> LoginOk {
        let home = self.home.expect("only a known user's login is verified");
        LoginOk { user: self.exchange.user, home, generation: self.generation }
    }
}

/// Derives SaltedPassword from `password` and checks it against the stored keys. Always runs
/// the derivation, for unknown users too, so both failures cost the same.
fn verify_password(pending: PendingLogin, password: &[u8]) -> Result<LoginOk, WireError> {
    let failed = || WireError::new(ErrorCode::AuthFailed, "login failed: unknown user or wrong password");
    let salted = pending.scrypt.salted_password(password, &pending.exchange.salt).map_err(|_| failed())?;
    let keys = ServerKeys::from_salted_password(&salted);
    let matches: bool = subtle::ConstantTimeEq::ct_eq(&keys.stored_key[..], &pending.keys.stored_key[..]).into();
    match pending.home {
        Some(home) if matches => Ok(LoginOk { user: pending.exchange.user, home, generation: pending.generation }),
        _ => Err(failed()),
    }
}
