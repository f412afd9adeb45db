//! The login verification cache and the derivation pool (FTP password logins). One test per
//! concern, each counting the process's scrypt derivations, so the file keeps them apart from
//! other tests that derive (its own test binary). See `auth::login_cache`.

mod common;

use std::time::{Duration, Instant};

use common::ftp_control::Control;
use common::{TEST_SCRYPT, TestServer};
use ftp_actor::auth::UserStore;
use ftp_actor::auth::kdf::derivations;
use ftp_actor::auth::user_store::Credentials;

fn ftp_login(test: &TestServer, user: &str, password: &str) -> String {
    let mut control = Control::connect(test.ftp_addr());
    assert!(control.reply().starts_with("220 "));
    assert!(control.command(&format!("USER {user}")).starts_with("331"));
    let answer = control.command(&format!("PASS {password}"));
    let _ = control.command("QUIT");
    answer
}

#[test]
fn a_password_checked_once_is_checked_again_without_a_derivation() {
    let test = TestServer::start_ftp(|config| {
        config.ftp.allow_plaintext_login = true;
        config.login_delay_base_ms = 1;
        config.login_delay_max_ms = 1;
    });
    test.add_user("alice", "pw", 1 << 20);

    let before = derivations();
    assert!(ftp_login(&test, "alice", "pw").starts_with("230"));
    assert_eq!(derivations() - before, 1, "the first login derives");
    for _ in 0..3 {
        assert!(ftp_login(&test, "alice", "pw").starts_with("230"));
    }
    assert_eq!(derivations() - before, 1, "later logins with the same password do not");

    // A wrong password is always derived, and never cached.
    let before = derivations();
    assert!(ftp_login(&test, "alice", "wrong").starts_with("530"));
    assert!(ftp_login(&test, "alice", "wrong").starts_with("530"));
    assert_eq!(derivations() - before, 2);
    assert!(ftp_login(&test, "alice", "pw").starts_with("230"));
    assert_eq!(derivations() - before, 2, "the right password is still cached");

    // A changed password: the old one is refused (the cached entry is for the old credential),
    // the new one is derived once, then cached.
    let credentials = Credentials::derive(b"new", TEST_SCRYPT).unwrap();
    UserStore::update(test.data_dir(), |store| {
        store.user_mut("alice")?.credentials = credentials;
        Ok(())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ftp_login(&test, "alice", "pw").starts_with("230") {
        assert!(Instant::now() < deadline, "the old password still logs in");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = derivations();
    assert!(ftp_login(&test, "alice", "new").starts_with("230"));
    assert!(ftp_login(&test, "alice", "new").starts_with("230"));
    assert_eq!(derivations() - before, 1);
}
