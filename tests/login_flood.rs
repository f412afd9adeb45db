//! A flood of FTP password logins: scrypt runs on `login_derivations` threads of its own, so
//! the server's memory stays within that many derivations at once, and past
//! `login_derivations_queued` waiting checks a login is refused with 421 [600] (and counted by
//! the failed-login throttle). Runs the real
//! binary; memory is the server's own peak (VmHWM), not a time.

mod common;

use common::binary::{Launch, Served};
use common::ftp_control::Control;
use ftp_actor::auth::ScryptParams;

/// 64 MiB per derivation.
const COST: ScryptParams = ScryptParams { log_n: 16, r: 8, p: 1 };
const MIB: u64 = 1 << 20;

fn peak_kib(served: &Served) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", served.child.id())).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Logs every user in at once over FTP; returns each answer to PASS.
fn flood(served: &Served, users: &[(String, String)]) -> Vec<String> {
    let addr: std::net::SocketAddr = served.ftp.as_deref().unwrap().parse().unwrap();
    let logins: Vec<_> = users
        .iter()
        .cloned()
        .map(|(user, password)| {
            std::thread::spawn(move || {
                let mut control = Control::connect(addr);
                let greeting = control.reply();
                if !greeting.starts_with("220 ") {
                    // Banned by then: refused as it connects (530 [202]).
                    return greeting;
                }
                assert!(control.command(&format!("USER {user}")).starts_with("331"));
                control.command(&format!("PASS {password}"))
            })
        })
        .collect();
    logins.into_iter().map(|login| login.join().unwrap()).collect()
}

fn users(count: usize) -> Vec<(String, String)> {
    (0..count).map(|i| (format!("user{i}"), format!("pw{i}"))).collect()
}

fn start(config: &str, users: &[(String, String)]) -> Served {
    let pairs: Vec<(&str, &str)> = users.iter().map(|(u, p)| (u.as_str(), p.as_str())).collect();
    Served::start(Launch { config, ftp: true, users: &pairs, open_files: None, scrypt: Some(COST) })
}

#[test]
fn a_login_flood_takes_at_most_login_derivations_at_once() {
    let accounts = users(20);
    let served = start(
        "login_derivations = 2\nmax_sessions_per_address = 100\n[ftp]\nallow_plaintext_login = true\n",
        &accounts,
    );
    let before = peak_kib(&served) * 1024;
    let answers = flood(&served, &accounts);
    for answer in &answers {
        assert!(answer.starts_with("230"), "{answer}");
    }
    let grew = peak_kib(&served) * 1024 - before;
    // Two derivations of 64 MiB at once, and some room; ten at once (one per disk worker, as
    // before the pool) would be 640 MiB.
    assert!(grew < 200 * MIB, "the peak grew by {} MiB", grew / MIB);
}

#[test]
fn past_the_waiting_checks_a_login_is_refused_with_600() {
    let accounts = users(20);
    let served = start(
        "login_derivations = 1\nlogin_derivations_queued = 1\nmax_sessions_per_address = 100\n\
         [ftp]\nallow_plaintext_login = true\n",
        &accounts,
    );
    let answers = flood(&served, &accounts);
    let count = |prefix: &str| answers.iter().filter(|a| a.starts_with(prefix)).count();
    let (admitted, refused, banned) = (count("230"), count("421 [600]"), count("530 [202]"));
    // Refusals count as failed logins: past login_failures_before_ban (10) the flooding
    // address is banned, as it would be for wrong passwords.
    assert_eq!(admitted + refused + banned, answers.len(), "{answers:?}");
    assert!(admitted >= 1 && refused >= 1, "{answers:?}");
    assert!(served.log().contains("password checks waiting at their limit"), "{}", served.log());
}
