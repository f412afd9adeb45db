//! The SFTP listener under the acceptor's admission, as the other listeners: silent sockets
//! cannot keep a user out, a login beyond the slots waits in the queue and is told its place,
//! and an account changed while logged in ends its sessions with error 206.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::sftp::OpenSsh;
use common::{TestServer, output_text as text};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

#[test]
fn silent_sockets_on_the_sftp_port_do_not_keep_a_user_out() {
    let test = TestServer::start_sftp(|config| {
        config.max_concurrency = 1;
        config.max_prelogin_per_address = 4;
    });
    test.add_user(USER, PASSWORD, 1 << 20);
    // Ten connections that never say a word (not even SSH's version line).
    let silent: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(test.sftp_addr()).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let output = ssh.sftp("pwd\n");
    assert!(output.status.success(), "{}", text(&output));
    // The oldest silent sockets made room for the newer ones: the server closed them (what it
    // sent before, if anything, is read up to the end).
    let mut oldest = &silent[0];
    oldest.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut sent = Vec::new();
    let read = std::io::Read::read_to_end(&mut oldest, &mut sent);
    assert!(read.is_ok(), "an evicted socket was left open: {read:?}");
}

#[test]
fn a_login_beyond_the_slots_waits_told_its_place_then_is_served() {
    let test = TestServer::start_sftp(|config| config.max_concurrency = 1);
    test.add_user(USER, PASSWORD, 1 << 20);
    test.add_user("bob", "bob's password", 1 << 20);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // A native session of bob's holds the one slot.
    let holder = runtime.block_on(test.login("bob", "bob's password"));
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let waiting = std::thread::spawn(move || ssh.sftp("pwd\n"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(!waiting.is_finished(), "the second login did not wait for the slot");
    drop(holder);
    let output = waiting.join().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(said.contains("you are number 1 in the queue"), "{said}");
    assert!(said.contains("Remote working directory: /"), "{said}");
}

/// Runs an interactive `sftp`, waits until it is logged in, lets `change` act on the server,
/// then keeps asking for listings until the client finds its session closed; returns what the
/// client printed on its standard error.
fn session_ended_by(test: &mut TestServer, change: impl FnOnce(&mut TestServer)) -> String {
    let ssh = OpenSsh::new(test, USER, PASSWORD);
    let mut sftp = ssh.sftp_interactive();
    let mut input = sftp.stdin.take().unwrap();
    let stdout = sftp.stdout.take().unwrap();
    let (lines, heard) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let _ = lines.send(line.unwrap_or_default());
        }
    });
    writeln!(input, "pwd").unwrap();
    // Logged in once the working directory is answered.
    loop {
        let line = heard.recv_timeout(Duration::from_secs(30)).expect("sftp answers pwd");
        if line.contains("Remote working directory") {
            break;
        }
    }
    let stderr = sftp.stderr.take().unwrap();
    let told = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    change(test);
    // The client's next command finds the connection closed, and sftp exits.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while sftp.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "the session outlived the change");
        let _ = writeln!(input, "ls");
        std::thread::sleep(Duration::from_millis(300));
    }
    told.join().unwrap()
}

#[test]
fn a_removed_account_ends_its_sftp_session_with_error_206() {
    let mut test = TestServer::start_sftp(|_| {});
    test.add_user(USER, PASSWORD, 1 << 20);
    let said = session_ended_by(&mut test, |test| test.remove_user(USER));
    assert!(said.contains("error 206"), "{said}");
}

#[test]
fn a_graceful_shutdown_closes_an_idle_sftp_session_with_error_602() {
    let mut test = TestServer::start_sftp(|_| {});
    test.add_user(USER, PASSWORD, 1 << 20);
    let said = session_ended_by(&mut test, |test| {
        let handle = test.handle.take().unwrap();
        std::thread::spawn(move || handle.shutdown_gracefully(Duration::from_secs(10)));
    });
    assert!(said.contains("error 602"), "{said}");
}

#[test]
fn failed_sftp_logins_ban_the_address_on_every_listener() {
    let test = TestServer::start_sftp(|config| {
        config.login_failures_before_ban = 3;
        config.login_delay_base_ms = 1;
        config.login_delay_max_ms = 1;
    });
    test.add_user(USER, PASSWORD, 1 << 20);
    let wrong = OpenSsh::new(&test, USER, "not the password");
    for _ in 0..3 {
        let output = wrong.sftp("pwd\n");
        assert!(!output.status.success(), "{}", text(&output));
    }
    // The right password over SFTP now meets the ban, and so does a native login.
    let right = OpenSsh::new(&test, USER, PASSWORD);
    let output = right.sftp("pwd\n");
    assert!(!output.status.success(), "a banned address logged in: {}", text(&output));
    assert!(text(&output).contains("error 202"), "{}", text(&output));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let native = runtime.block_on(test.try_login(USER, PASSWORD));
    assert_eq!(native.err().and_then(|e| e.code()), Some(ftp_actor::net::ErrorCode::LoginBanned));
}
