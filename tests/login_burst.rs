//! The first logins of a burst (lftp, rclone and the like open their connections at once) all
//! miss the login cache together; those with the same name and password share one scrypt
//! derivation instead of running one each. Counts the process's derivations, so it is a test
//! binary of its own. See `actors::auth::PasswordChecks::in_flight`.

mod common;

use common::TestServer;
use common::ftp_control::Control;
use ftp_actor::auth::ScryptParams;
use ftp_actor::auth::kdf::derivations;
use ftp_actor::auth::user_store::add_user;

/// Tens of milliseconds per derivation: the logins of the burst arrive while the first runs.
const COST: ScryptParams = ScryptParams { log_n: 15, r: 8, p: 1 };

fn burst(test: &TestServer, logins: &[(&str, &str)]) -> Vec<String> {
    let addr = test.ftp_addr();
    let threads: Vec<_> = logins
        .iter()
        .map(|&(user, password)| {
            let (user, password) = (user.to_string(), password.to_string());
            std::thread::spawn(move || {
                let mut control = Control::connect(addr);
                assert!(control.reply().starts_with("220 "));
                assert!(control.command(&format!("USER {user}")).starts_with("331"));
                let answer = control.command(&format!("PASS {password}"));
                let _ = control.command("QUIT");
                answer
            })
        })
        .collect();
    threads.into_iter().map(|thread| thread.join().unwrap()).collect()
}

#[test]
fn logins_that_arrive_together_with_the_same_password_share_one_derivation() {
    let test = TestServer::start_ftp(|config| {
        config.ftp.allow_plaintext_login = true;
        config.login_delay_base_ms = 1;
        config.login_delay_max_ms = 1;
        config.max_concurrency = 20;
        config.max_sessions_per_user = 20;
        config.max_sessions_per_address = 20;
    });
    add_user(test.data_dir(), "alice", b"pw", COST, 1 << 20, None).unwrap();
    add_user(test.data_dir(), "bob", b"pw", COST, 1 << 20, None).unwrap();

    // Eight logins of one user at once: one derivation, whatever the order they arrive in
    // (a later one shares the running derivation or finds its result in the cache).
    let before = derivations();
    let answers = burst(&test, &[("alice", "pw"); 8]);
    assert!(answers.iter().all(|answer| answer.starts_with("230")), "{answers:?}");
    assert_eq!(derivations() - before, 1, "one derivation for the whole burst");

    // Another user's logins, and wrong passwords, run derivations of their own: a guess
    // never rides on a right password's check, and a wrong one is never shared as right.
    let before = derivations();
    let answers = burst(&test, &[("bob", "pw"), ("bob", "wrong"), ("bob", "pw"), ("bob", "guess")]);
    let verdicts: Vec<bool> = answers.iter().map(|answer| answer.starts_with("230")).collect();
    assert_eq!(verdicts, [true, false, true, false], "{answers:?}");
    assert_eq!(derivations() - before, 3, "bob's password once, and each wrong one");
}
