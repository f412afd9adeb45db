//! `ftp-actor demo supervisor`: a narrated demonstration of supervision with a real server
//! and a real client on a temporary data directory. Every step prints what happened and the
//! check that proves it; the command exits 1 if any check fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::actors::panic_guard::{InjectPanic, panic_message};
use crate::auth::ScryptParams;
use crate::auth::user_store::{add_user, default_home};
use crate::client::{Client, NoProgress};
use crate::config::Config;
use crate::human::size::format_size;
use crate::net::ErrorCode;
use crate::server::ServerHandle;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(subcommand)]
    pub demo: Demo,
}

#[derive(Debug, Subcommand)]
pub enum Demo {
    /// Make the QuotaActor, the AuthActor and a disk worker fail, and show the server recover.
    Supervisor,
}

/// Counts checks and prints each one.
struct Checks {
    passed: usize,
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
            println!("   check: {what}: ok ({detail})");
        } else {
            self.failed += 1;
            println!("   check: {what}: FAILED ({detail})");
        }
    }
}

fn step(text: &str) {
    println!("\n-> {text}");
}

const POOL_THREADS: usize = 4;
const QUOTA: u64 = 1 << 20;
const FILE_LEN: usize = 600 << 10;

pub fn run(args: DemoArgs) -> u8 {
    let Demo::Supervisor = args.demo;
    // Panics are part of the show: print them as one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let message = panic_message(info.payload());
        println!("   (a handler panicked: \"{message}\"; caught at the handler boundary)");
    }));
    let dir = std::env::temp_dir().join(format!("ftp-actor-demo-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(runtime) => runtime.block_on(supervisor(&dir)),
        Err(error) => Err(error.to_string()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(checks) if checks.failed == 0 => {
            println!("\nall {} checks passed", checks.passed);
            0
        }
        Ok(checks) => {
            println!("\n{} of {} checks FAILED", checks.failed, checks.passed + checks.failed);
            1
        }
        Err(error) => {
            println!("\nthe demonstration could not run: {error}");
            1
        }
    }
}

fn home_bytes(home: &Path) -> u64 {
    std::fs::read_dir(home)
        .map(|entries| {
            entries.flatten().filter_map(|e| e.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum()
        })
        .unwrap_or(0)
}

async fn supervisor(dir: &Path) -> Result<Checks, String> {
    let mut checks = Checks { passed: 0, failed: 0 };
    let fail = |e: &dyn std::fmt::Display| e.to_string();

    step(&format!("starting a server on {} with {POOL_THREADS} disk worker threads", dir.display()));
    // A cheap scrypt cost: this demonstration is about supervision, not password hashing.
    let scrypt = ScryptParams { log_n: 12, r: 8, p: 1 };
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: dir.join("data"),
        max_concurrency: POOL_THREADS,
        scrypt,
        ..Config::default()
    };
    let server = ServerHandle::spawn(config.clone()).map_err(|e| fail(&e))?;
    let services = server.services.clone();
    add_user(&config.data_dir, "alice", b"demo-password", scrypt, QUOTA, None).map_err(|e| fail(&e))?;
    let home: PathBuf = config.data_dir.join(default_home("alice"));
    println!("   listening on {}; user alice has a quota of {}", server.addr, format_size(QUOTA));

    step(&format!("alice logs in and uploads a {} file", format_size(FILE_LEN as u64)));
    let mut alice = Client::connect(server.addr, &server.trust, |_| {}).await.map_err(|e| fail(&e))?;
    alice.login("alice", "demo-password").await.map_err(|e| fail(&e))?;
    let local = dir.join("photo.bin");
    let data: Vec<u8> = (0..FILE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&local, &data).map_err(|e| fail(&e))?;
    alice.put(&local, "photo.bin", &NoProgress).await.map_err(|e| fail(&e))?;
    let (used, _) = alice.quota().await.map_err(|e| fail(&e))?;
    checks.check("quota counts the upload", used == FILE_LEN as u64, format!("{} used", format_size(used)));

    step("the QuotaActor fails: a panic inside one of its handlers");
    let answer = services.quota.send(InjectPanic).await.map_err(|e| fail(&e))?;
    checks.check(
        "the request that caused it got an error instead of a hang",
        answer.is_err(),
        answer.err().map(|e| e.to_string()).unwrap_or_default(),
    );
    let on_disk = home_bytes(&home);
    let (used, limit) = alice.quota().await.map_err(|e| fail(&e))?;
    checks.check(
        "restarted, with usage rebuilt from the files on disk",
        used == on_disk,
        format!("{} used, {} on disk", format_size(used), format_size(on_disk)),
    );
    let refused = alice.put(&local, "second.bin", &NoProgress).await;
    checks.check(
        "the quota is still enforced",
        refused.as_ref().err().and_then(|e| e.code()) == Some(ErrorCode::QuotaExceeded),
        match &refused {
            Err(e) => e.to_string(),
            Ok(_) => format!(
                "a second {} upload was accepted with a {} quota",
                format_size(FILE_LEN as u64),
                format_size(limit)
            ),
        },
    );

    step("the AuthActor fails");
    let answer = services.auth.send(InjectPanic).await.map_err(|e| fail(&e))?;
    checks.check("the failure was caught and reported", answer.is_err(), "restarting");
    let mut again = Client::connect(server.addr, &server.trust, |_| {}).await.map_err(|e| fail(&e))?;
    let login = again.login("alice", "demo-password").await;
    checks.check("a new login works after the restart", login.is_ok(), "users reloaded from users.toml");
    let mut wrong = Client::connect(server.addr, &server.trust, |_| {}).await.map_err(|e| fail(&e))?;
    let refused = wrong.login("alice", "not-the-password").await;
    checks.check(
        "a wrong password is still refused",
        refused.as_ref().err().and_then(|e| e.code()) == Some(ErrorCode::AuthFailed),
        "error 200",
    );

    step("a disk worker panics in the middle of a job");
    let job: Result<(), _> = services.disk.run("demo job", || panic!("injected disk worker failure")).await;
    checks.check("the job's caller got an error", job.is_err(), job.err().map(|e| e.to_string()).unwrap_or_default());
    let threads = services.disk.census(Duration::from_secs(5)).await;
    checks.check(
        "the pool still has all its threads",
        threads == POOL_THREADS,
        format!("{threads} of {POOL_THREADS} threads answered"),
    );
    let listing = alice.list(None).await.map_err(|e| fail(&e))?;
    checks.check(
        "alice's session never noticed",
        listing.entries.iter().any(|e| e.name == "photo.bin"),
        format!("ls shows {} entries", listing.entries.len()),
    );
    server.stop();
    Ok(checks)
}
