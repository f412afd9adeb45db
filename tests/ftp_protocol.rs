//! The FTP listener at the protocol level, over raw sockets: shared admission (slots, queue,
//! refusal), shared login throttling, plaintext-login policy, malformed input and graceful
//! shutdown. Logins here use `allow_plaintext_login` so the replies can be read directly;
//! TLS is exercised by the real clients in `ftp_clients.rs`.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::ftp_control::Control;
use common::{TestServer, make_fifo};
use ftp_actor::net::ErrorCode;

impl Control {
    /// Runs a listing command (`LIST`, `NLST`, `MLSD`, with its argument) through an EPSV data
    /// connection; returns the listing's text and the final reply.
    fn listing(&mut self, command: &str) -> (String, String) {
        let port = self.passive_port();
        let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
        self.send_raw(format!("{command}\r\n").as_bytes());
        assert!(self.reply().starts_with("150"));
        let mut text = String::new();
        std::io::Read::read_to_string(&mut data, &mut text).unwrap();
        (text, self.reply())
    }
}

fn plaintext_server(tune: impl FnOnce(&mut ftp_actor::config::Config)) -> TestServer {
    let test = TestServer::start_ftp(|config| {
        config.ftp.allow_plaintext_login = true;
        tune(config);
    });
    test.add_user("bob", "pw", 1 << 20);
    test
}

fn logged_in(test: &TestServer) -> Control {
    let mut control = Control::connect(test.ftp_addr());
    assert!(control.reply().starts_with("220 "));
    assert!(control.command("USER bob").starts_with("331"));
    assert!(control.command("PASS pw").starts_with("230"));
    control
}

#[test]
fn a_login_before_auth_tls_is_refused_by_default() {
    let test = TestServer::start_ftp(|_| {});
    test.add_user("bob", "pw", 1 << 20);
    let mut control = Control::connect(test.ftp_addr());
    assert!(control.reply().starts_with("220 "));
    let refused = control.command("USER bob");
    assert!(refused.starts_with("530") && refused.contains("AUTH TLS"), "{refused}");
    assert!(control.command("PASS pw").starts_with("503"), "no password is taken without USER");
    assert!(control.command("RETR x").starts_with("530"));
    let features = {
        control.send_raw(b"FEAT\r\n");
        let mut lines = vec![control.line()];
        while !lines.last().unwrap().starts_with("211 ") {
            lines.push(control.line());
        }
        lines.join("\n")
    };
    assert!(features.contains(" AUTH TLS") && features.contains(" HASH MD5*"), "{features}");
}

#[test]
fn commands_work_over_a_plaintext_login_when_allowed() {
    let test = plaintext_server(|_| {});
    let mut control = logged_in(&test);
    assert_eq!(control.command("PWD"), "257 \"/\" is the current directory");
    assert!(control.command("MKD docs").starts_with("257 \"/docs\""));
    assert!(control.command("CWD docs").starts_with("250"));
    assert!(control.command("CDUP").starts_with("250"));
    assert!(control.command("CDUP").starts_with("550"), "above the home is refused");
    assert!(control.command("SIZE nothing").starts_with("550"));
    assert!(control.command("RMD docs").starts_with("250"));
    assert!(control.command("SITE EXEC x").starts_with("502"));
    assert!(control.command("PORT 127,0,0,1,200,10").starts_with("502"), "active mode is off by default");
    std::fs::write(test.home("bob").join("f.txt"), b"12345").unwrap();
    assert_eq!(control.command("MFMT 20200102030405 f.txt"), "213 Modify=20200102030405; /f.txt");
    assert_eq!(control.command("MDTM f.txt"), "213 20200102030405");
    assert_eq!(control.command("MFMT 19650102030405 f.txt"), "213 Modify=19650102030405; /f.txt");
    assert_eq!(control.command("MDTM f.txt"), "213 19650102030405", "a time before 1970 comes back as set");
    assert_eq!(control.command("MFMT 20200102030405 f.txt"), "213 Modify=20200102030405; /f.txt");
    assert_eq!(control.command("SIZE f.txt"), "213 5");
    assert!(control.command("REST 6").starts_with("350"));
    assert!(control.command("QUIT").starts_with("221"));
}

#[test]
fn active_mode_when_enabled_connects_only_to_the_client_itself() {
    let test = plaintext_server(|config| config.ftp.active_mode = true);
    std::fs::create_dir_all(test.home("bob")).unwrap();
    std::fs::write(test.home("bob").join("listed.txt"), b"x").unwrap();
    let mut control = logged_in(&test);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let elsewhere = control.command(&format!("EPRT |1|127.0.0.2|{port}|"));
    assert!(elsewhere.starts_with("504"), "a bounce to another address is refused: {elsewhere}");
    assert!(control.command("PORT 127,0,0,1,0,80").starts_with("504"), "privileged ports are refused");
    assert!(control.command(&format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xFF)).starts_with("200"));
    control.send_raw(b"NLST\r\n");
    assert!(control.reply().starts_with("150"));
    let (mut data, _) = listener.accept().unwrap();
    let mut names = String::new();
    std::io::Read::read_to_string(&mut data, &mut names).unwrap();
    assert_eq!(names, "listed.txt\r\n");
    assert!(control.reply().starts_with("226"));
}

#[test]
fn a_connection_that_does_not_log_in_is_closed_with_421() {
    let test = plaintext_server(|config| config.login_timeout_secs = 1);
    let mut control = Control::connect(test.ftp_addr());
    assert!(control.reply().starts_with("220 "));
    let closed = control.reply();
    assert!(closed.starts_with(&format!("421 [{}]", ErrorCode::LoginTimeout)), "{closed}");
    assert!(control.closed());
}

#[test]
fn a_logged_in_session_left_idle_is_closed_with_421_and_its_slot_freed() {
    let test = plaintext_server(|config| {
        config.idle_timeout_secs = 1;
        config.max_concurrency = 1;
        config.max_queued = 1;
    });
    let mut idle = logged_in(&test);
    let mut waiting = Control::connect(test.ftp_addr());
    assert!(waiting.reply().starts_with("220 "), "a connection is greeted at once: slots are for logins");
    assert!(waiting.command("USER bob").starts_with("331"));
    waiting.send_raw(b"PASS pw\r\n");
    assert_eq!(waiting.line(), "230-all sessions are busy: you are number 1 in the queue; please wait");
    let closed = idle.reply();
    assert!(closed.starts_with(&format!("421 [{}]", ErrorCode::IdleTimeout)), "{closed}");
    assert!(idle.closed());
    // The slot it held goes to the login waiting in the queue.
    let admitted = waiting.reply();
    assert!(admitted.starts_with("230 logged in as bob"), "{admitted}");
    assert!(waiting.command("PWD").starts_with("257"));
}

#[test]
fn sessions_per_address_are_capped_across_both_listeners() {
    let test = plaintext_server(|config| config.max_sessions_per_address = 2);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _native = runtime.block_on(test.login("bob", "pw"));
    let mut ftp = logged_in(&test);
    // A third connection is greeted (it costs only a pre-login place), and refused at login.
    let mut refused = Control::connect(test.ftp_addr());
    assert!(refused.reply().starts_with("220 "));
    assert!(refused.command("USER bob").starts_with("331"));
    let reply = refused.command("PASS pw");
    assert!(reply.starts_with(&format!("421 [{}]", ErrorCode::TooManyFromAddress)), "{reply}");
    assert!(refused.closed());
    let native = runtime.block_on(test.try_login("bob", "pw"));
    assert_eq!(native.err().and_then(|e| e.code()), Some(ErrorCode::TooManyFromAddress));
    // The sessions already in go on; when one quits, the address has a place again.
    assert!(ftp.command("QUIT").starts_with("221"));
    let mut admitted = false;
    for _ in 0..100 {
        let mut control = Control::connect(test.ftp_addr());
        assert!(control.reply().starts_with("220 "));
        assert!(control.command("USER bob").starts_with("331"));
        if control.command("PASS pw").starts_with("230") {
            admitted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(admitted, "a place for the address again");
}

#[test]
fn malformed_lines_get_clear_codes_and_an_endless_line_closes_the_session() {
    let test = plaintext_server(|_| {});
    let mut control = logged_in(&test);
    control.send_raw(b"RETR \xff\xfe\r\n");
    assert!(control.reply().starts_with("500"));
    assert!(control.command("REST abc").starts_with("501"));
    assert!(control.command("").starts_with("500"));
    let mut endless = vec![b'A'; 6_000];
    endless.extend_from_slice(b"\r\n");
    control.send_raw(&endless);
    assert!(control.reply().starts_with("500"));
    assert!(control.closed());
    // The server goes on serving everyone else.
    let mut other = logged_in(&test);
    assert!(other.command("NOOP").starts_with("200"));
}

/// What hand-typed sessions (telnet, netcat with CRLF translation) and sloppy scripts send:
/// a doubled carriage return, spaces before the verb, `STAT -la` for a listing.
#[test]
fn clumsy_lines_are_understood_and_stat_with_options_lists() {
    let test = plaintext_server(|_| {});
    std::fs::write(test.home("bob").join("notes.txt"), b"n").unwrap();
    let mut control = logged_in(&test);
    control.send_raw(b"PWD\r\r\n");
    assert_eq!(control.reply(), "257 \"/\" is the current directory");
    assert!(control.command("   NOOP").starts_with("200"));
    control.send_raw(b"STAT -la\r\n");
    let lines = control.reply_lines();
    assert!(lines[0].starts_with("213-"), "{lines:?}");
    assert!(lines.iter().any(|line| line.ends_with(" notes.txt")), "{lines:?}");
    assert_eq!(lines.last().unwrap(), "213 End of status");
    control.send_raw(b"STAT *.txt\r\n");
    let lines = control.reply_lines();
    assert_eq!(lines.len(), 3, "a pattern, as LIST takes it: {lines:?}");
    assert!(lines[1].ends_with(" notes.txt"), "{lines:?}");
}

/// A name another program put in the home with a CRLF in it cannot end a control-connection
/// reply early and forge the next one.
#[test]
fn a_name_with_a_line_break_on_disk_cannot_forge_a_reply() {
    let test = plaintext_server(|_| {});
    std::fs::write(test.home("bob").join("x\r\n226 forged"), b"n").unwrap();
    let mut control = logged_in(&test);
    control.send_raw(b"STAT /\r\n");
    let lines = control.reply_lines();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[1].ends_with(" x??226 forged"), "{lines:?}");
    assert!(control.command("NOOP").starts_with("200"), "the replies stay in step");
}

/// RETR of a FIFO another program put in the home is refused at once (it used to hold a disk
/// worker forever, waiting for a writer); SFTP and the native protocol share the refusal.
#[test]
fn retr_of_a_fifo_is_refused_at_once() {
    let test = plaintext_server(|_| {});
    let fifo = test.home("bob").join("trap");
    make_fifo(&fifo);
    let mut control = logged_in(&test);
    let port = control.passive_port();
    let _data = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let reply = control.command("RETR trap");
    assert!(reply.starts_with("550 [309]"), "{reply}");
    assert!(control.command("NOOP").starts_with("200"));
    // Listed for people as what it is, left out of what mirroring tools read and would fetch.
    assert!(control.store("file.txt", b"x").starts_with("226"));
    let (list, _) = control.listing("LIST");
    assert!(list.lines().any(|line| line.starts_with("?--------- ") && line.ends_with(" trap")), "{list}");
    assert_eq!(control.listing("NLST").0, "file.txt\r\n");
    let (facts, _) = control.listing("MLSD");
    assert!(facts.lines().count() == 1 && facts.contains("; file.txt"), "{facts}");
    control.send_raw(b"MLST trap\r\n");
    let facts = control.reply_lines();
    assert!(facts.iter().any(|line| line.contains("type=OS.unix=special;")), "{facts:?}");
}

#[test]
fn ftp_and_native_clients_share_the_slots_and_the_queue() {
    let test = plaintext_server(|config| {
        config.max_concurrency = 1;
        config.max_queued = 2;
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let native = runtime.block_on(test.login("bob", "pw"));

    // Two FTP logins wait, told their places as continuation lines of the answer to PASS.
    let mut first = Control::connect(test.ftp_addr());
    assert!(first.reply().starts_with("220 "));
    assert!(first.command("USER bob").starts_with("331"));
    first.send_raw(b"PASS pw\r\n");
    assert_eq!(first.line(), "230-all sessions are busy: you are number 1 in the queue; please wait");
    let mut second = Control::connect(test.ftp_addr());
    assert!(second.reply().starts_with("220 "));
    assert!(second.command("USER bob").starts_with("331"));
    second.send_raw(b"PASS pw\r\n");
    assert_eq!(second.line(), "230-all sessions are busy: you are number 2 in the queue; please wait");
    // The queue is full: the next login is refused, after its password was checked.
    let mut refused = Control::connect(test.ftp_addr());
    assert!(refused.reply().starts_with("220 "));
    assert!(refused.command("USER bob").starts_with("331"));
    let busy = refused.command("PASS pw");
    assert!(busy.starts_with(&format!("421 [{}]", ErrorCode::ServerBusy)), "{busy}");
    assert!(refused.closed());

    // The native session ends: the first in line gets in, the second moves up.
    runtime.block_on(native.quit()).unwrap();
    assert!(first.reply().starts_with("230 logged in as bob"));
    assert_eq!(second.line(), "230-all sessions are busy: you are number 1 in the queue; please wait");
    assert!(first.command("QUIT").starts_with("221"));
    assert!(second.reply().starts_with("230 logged in as bob"));
    assert!(second.command("PWD").starts_with("257"));
}

#[test]
fn a_wait_in_the_queue_that_ends_without_a_slot_ends_the_reply_then_closes_with_421() {
    let test = plaintext_server(|config| {
        config.max_concurrency = 1;
        config.queue_wait_secs = 1;
    });
    let _holder = logged_in(&test);
    let mut waiting = Control::connect(test.ftp_addr());
    assert!(waiting.reply().starts_with("220 "));
    assert!(waiting.command("USER bob").starts_with("331"));
    waiting.send_raw(b"PASS pw\r\n");
    assert!(waiting.line().starts_with("230-all sessions are busy"));
    let end = waiting.line();
    assert!(end.starts_with("230 no session after all: server still busy after 1 seconds"), "{end}");
    let busy = waiting.line();
    assert!(busy.starts_with(&format!("421 [{}]", ErrorCode::ServerBusy)), "{busy}");
    assert!(waiting.closed());
}

#[test]
fn failed_ftp_logins_count_for_the_native_listener_too() {
    let test = plaintext_server(|config| {
        config.login_failures_before_ban = 2;
        config.login_delay_base_ms = 1;
        config.max_login_attempts_per_connection = 5;
    });
    let mut control = Control::connect(test.ftp_addr());
    control.reply();
    for _ in 0..2 {
        assert!(control.command("USER bob").starts_with("331"));
        let failed = control.command("PASS wrong");
        assert!(failed.starts_with(&format!("530 [{}]", ErrorCode::AuthFailed)), "{failed}");
    }
    assert!(control.command("USER bob").starts_with("331"));
    let banned = control.command("PASS pw");
    assert!(banned.starts_with(&format!("530 [{}]", ErrorCode::LoginBanned)), "{banned}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let native = runtime.block_on(test.try_login("bob", "pw"));
    assert_eq!(native.unwrap_err().code(), Some(ErrorCode::LoginBanned));
    // A banned address is refused as it connects, before it costs a pre-login place.
    let mut again = Control::connect(test.ftp_addr());
    let greeting = again.reply();
    assert!(greeting.starts_with(&format!("530 [{}]", ErrorCode::LoginBanned)), "{greeting}");
}

#[test]
fn a_graceful_shutdown_tells_ftp_sessions() {
    let mut test = plaintext_server(|_| {});
    let mut control = logged_in(&test);
    let handle = test.handle.take().unwrap();
    handle.shutdown_gracefully(Duration::from_secs(5));
    let farewell = control.reply();
    assert!(farewell.starts_with(&format!("421 [{}]", ErrorCode::ShuttingDown)), "{farewell}");
}

#[test]
fn checksums_come_from_stored_digests_and_only_reading_a_file_is_charged() {
    // A tiny hashing budget that does not refill: one whole-file hash puts the user in debt.
    let test = plaintext_server(|config| {
        config.hash_budget_bytes = 1024;
        config.hash_budget_refill_bytes_per_sec = 0;
        config.ftp.passive_ports = "41000-41004".parse().unwrap();
    });
    let mut control = logged_in(&test);
    for _ in 0..3 {
        let port = control.passive_port();
        assert!((41000..=41004).contains(&port), "passive port {port} outside the configured range");
    }
    let content = common::random_bytes(200_000, 3);
    let md5 = common::md5_hex(&content);
    let stored = control.store("uploaded.bin", &content);
    assert!(stored.starts_with("226"), "{stored}");

    // Uploads are not hashed on the way: the first checksum reads the file, and that spends
    // the budget...
    assert_eq!(control.command("HASH uploaded.bin"), format!("213 MD5 0-199999 {md5} /uploaded.bin"));
    // ...so reading another file is refused...
    std::fs::write(test.home("bob").join("copied-in.bin"), &content).unwrap();
    let refused = control.command("XMD5 copied-in.bin");
    assert!(refused.starts_with(&format!("450 [{}]", ErrorCode::HashBudgetExhausted)), "{refused}");
    // ...while the digest stored by the first one answers for free, in every form.
    assert_eq!(control.command("XMD5 uploaded.bin"), format!("250 {md5}"));
    assert_eq!(control.command("MD5 uploaded.bin"), format!("251 \"/uploaded.bin\" {md5}"));
    assert_eq!(control.command("HASH uploaded.bin"), format!("213 MD5 0-199999 {md5} /uploaded.bin"));
}

#[test]
fn deleting_a_user_ends_their_ftp_sessions_even_mid_transfer() {
    let test = plaintext_server(|_| {});
    let mut idle = logged_in(&test);
    let mut uploading = logged_in(&test);
    let port = uploading.passive_port();
    let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    uploading.send_raw(b"STOR held.bin\r\n");
    assert!(uploading.reply().starts_with("150"));
    // More than one block: the first is on disk while the session goes on reading.
    let block = ftp_actor::ftp::STORE_BLOCK.max(test.config.chunk_bytes) as u64;
    let sent = block + block / 2;
    data.write_all(&vec![7u8; sent as usize]).unwrap();
    let partial = test.home("bob").join(".held.bin.ftpa-part");
    common::wait_for_len_blocking(&partial, block);

    test.remove_user("bob");
    // Both get a 421 within a store poll (the read timeout bounds the wait) and are closed.
    for control in [&mut idle, &mut uploading] {
        let reply = control.reply();
        assert!(reply.starts_with(&format!("421 [{}]", ErrorCode::AccountChanged.as_u16())), "{reply}");
        assert!(control.closed());
    }
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!((block..=sent).contains(&kept), "the partial is kept for a resume ({kept} bytes)");
    assert!(!test.home("bob").join("held.bin").exists());
}

/// A directory larger than a page (`max_list_entries`) is listed whole, a page at a time, by
/// LIST, NLST, MLSD and a pattern; STAT, whose listing is its reply, shows one page's worth
/// and says so.
#[test]
fn a_directory_past_max_list_entries_is_listed_whole() {
    let test = plaintext_server(|config| config.max_list_entries = 3);
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    for name in names {
        std::fs::write(test.home("bob").join(name), name).unwrap();
    }
    std::fs::write(test.home("bob").join(".c.ftpa-part"), "partial").unwrap();
    let mut control = logged_in(&test);
    let mut list = |command: &str| {
        let (text, reply) = control.listing(command);
        assert_eq!(reply, "226 listing sent", "{command}");
        text.lines().map(|line| line.rsplit(' ').next().unwrap().to_string()).collect::<Vec<String>>()
    };
    assert_eq!(list("NLST"), names, "NLST");
    assert_eq!(list("LIST *").len(), names.len() + 1, "LIST shows the partial too");
    let facts = list("MLSD");
    assert_eq!(facts, names, "MLSD");
    let listed: Vec<String> = list("LIST").into_iter().filter(|name| name != "upload)").collect();
    assert_eq!(listed, names, "LIST");
    assert_eq!(list("NLST [e-z]"), ["e", "f", "g"], "a pattern matched on later pages");
    control.send_raw(b"STAT /\r\n");
    let stat = control.reply();
    assert!(stat.starts_with("213 End of status; 3 entries shown: list the rest over a data connection"), "{stat}");
}

/// A partial upload (here what a STOR over quota kept) shows in LIST under a name no client
/// takes for the file, stays out of NLST and MLSD (mirroring tools would fetch it), and DELE
/// of the file's name removes it, freeing its quota.
#[test]
fn a_partial_upload_shows_in_list_and_dele_removes_it() {
    let test = plaintext_server(|_| {});
    // Room for two of the server's 1 MiB blocks: the third is refused.
    test.add_user("carol", "pw", 5 << 19);
    let mut control = Control::connect(test.ftp_addr());
    assert!(control.reply().starts_with("220 "));
    assert!(control.command("USER carol").starts_with("331"));
    assert!(control.command("PASS pw").starts_with("230"));
    assert!(control.store("small.txt", b"hello").starts_with("226"));
    let reply = control.store("big.iso", &vec![5u8; 3 << 20]);
    assert!(reply.starts_with("552"), "{reply}");
    let kept = std::fs::metadata(test.home("carol").join(".big.iso.ftpa-part")).unwrap().len();
    assert!(kept > 0, "the quota refusal keeps what fitted for a resume");

    let (list, _) = control.listing("LIST");
    let lines: Vec<_> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].contains(&format!(" {kept} ")) && lines[0].ends_with(" big.iso (partial upload)"), "{list}");
    assert!(lines[1].ends_with(" small.txt"), "{list}");
    assert_eq!(control.listing("NLST").0, "small.txt\r\n");
    let (facts, _) = control.listing("MLSD");
    assert!(facts.lines().count() == 1 && facts.contains("; small.txt"), "{facts}");

    assert_eq!(control.command("DELE big.iso"), "250 partial upload deleted");
    assert_eq!(control.listing("LIST").0.lines().count(), 1);
    let reply = control.store("big.iso", &vec![5u8; 1000]);
    assert!(reply.starts_with("226"), "the quota the partial held is free again: {reply}");
    let reply = control.store("big.iso", &vec![5u8; 3 << 20]);
    assert!(reply.starts_with("552"), "{reply}");
    assert_eq!(
        control.command("DELE big.iso"),
        "250 deleted; a partial upload to this name remains: DELE it again to remove that too"
    );
    assert_eq!(control.command("DELE big.iso"), "250 partial upload deleted");
    assert!(control.command("DELE big.iso").starts_with("550"));
}

#[test]
fn a_stor_waiting_for_its_path_still_hears_noop_and_abor() {
    let test = plaintext_server(|_| {});
    let mut holder = logged_in(&test);
    let port = holder.passive_port();
    let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    holder.send_raw(b"STOR same.bin\r\n");
    assert!(holder.reply().starts_with("150"));
    held.write_all(b"first bytes").unwrap();

    // A second STOR of the path waits for the first to end (up to 5 s), unanswered; the
    // session answers the control connection meanwhile, as during a transfer.
    let mut waiting = logged_in(&test);
    waiting.passive_port();
    waiting.send_raw(b"STOR same.bin\r\n");
    assert_eq!(waiting.command("NOOP"), "200 transfer in progress");
    waiting.send_raw(b"ABOR\r\n");
    let aborted = waiting.reply();
    assert!(aborted.starts_with("426") && aborted.contains("nothing was stored"), "{aborted}");
    assert_eq!(waiting.reply(), "226 ABOR done");

    // The holder was not disturbed, and the aborted session goes on.
    drop(held);
    assert!(holder.reply().starts_with("226"));
    assert_eq!(std::fs::read(test.home("bob").join("same.bin")).unwrap(), b"first bytes");
    assert!(waiting.store("other.bin", b"second").starts_with("226"));
}

/// LIST and NLST take a pattern in the last name of their path, as the classic `ftp` client's
/// `mget *.txt` needs (it sends `NLST *.txt`, then fetches each name): the names it matches, as
/// typed (`sub/d.txt`), hidden names left out, and partial uploads too in NLST (LIST shows them
/// as such). A pattern that matches nothing is a name, as in a Unix shell: listed if a file has
/// it (`[x].bin`), else 550.
#[test]
fn list_and_nlst_expand_a_pattern_in_the_last_name() {
    let test = plaintext_server(|_| {});
    let home = test.home("bob");
    std::fs::create_dir_all(home.join("sub")).unwrap();
    for name in ["a.txt", "b.txt", "c.bin", ".hidden.txt", "sub/d.txt", "[x].bin", ".e.txt.ftpa-part"] {
        std::fs::write(home.join(name), name).unwrap();
    }
    let mut control = logged_in(&test);
    let names = |control: &mut Control, command: &str| {
        let (text, done) = control.listing(command);
        assert!(done.starts_with("226"), "{command}: {done}");
        text.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&mut control, "NLST *.txt"), ["a.txt", "b.txt"]);
    assert_eq!(names(&mut control, "NLST ?.bin"), ["c.bin"]);
    assert_eq!(names(&mut control, "NLST sub/*.txt"), ["sub/d.txt"]);
    assert_eq!(names(&mut control, "NLST /sub/[a-e].txt"), ["/sub/d.txt"]);
    assert_eq!(names(&mut control, "NLST [x].bin"), ["[x].bin"], "no x.bin: the name itself");
    let long = names(&mut control, "LIST *.txt");
    assert_eq!(long.len(), 3, "{long:?}");
    assert!(long[0].ends_with(" a.txt") && long[1].ends_with(" b.txt"), "{long:?}");
    assert!(long[2].ends_with(" e.txt (partial upload)"), "{long:?}");

    let port = control.passive_port();
    let _data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let none = control.command("NLST nothing*.txt");
    assert!(none.starts_with("550"), "{none}");
}

/// A fresh STOR whose data connection is reset before any byte came stores nothing: no file,
/// and no empty partial to count against `max_files` until it expired. One cut after some
/// bytes keeps them, for a resume.
#[test]
fn a_stor_cut_before_any_data_leaves_nothing() {
    let test = plaintext_server(|_| {});
    let home = test.home("bob");
    let mut control = logged_in(&test);
    let cut = |control: &mut Control, name: &str, sent: &[u8]| {
        let port = control.passive_port();
        let mut data = TcpStream::connect(("127.0.0.1", port)).unwrap();
        control.send_raw(format!("STOR {name}\r\n").as_bytes());
        assert!(control.reply().starts_with("150"));
        data.write_all(sent).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        socket2::SockRef::from(&data).set_linger(Some(Duration::ZERO)).unwrap();
        drop(data);
        control.reply()
    };
    let reply = cut(&mut control, "empty.bin", b"");
    assert!(reply.starts_with("426") && reply.ends_with("nothing was stored"), "{reply}");
    assert!(!home.join("empty.bin").exists() && !home.join(".empty.bin.ftpa-part").exists());
    assert!(control.command("SIZE empty.bin").starts_with("550"));

    let reply = cut(&mut control, "some.bin", &[5u8; 3000]);
    assert!(reply.starts_with("426") && reply.contains("3000 bytes are kept"), "{reply}");
    assert_eq!(control.command("SIZE some.bin"), "213 3000");
}

/// After `EPSV ALL` only EPSV sets up data connections (RFC 2428 section 4).
#[test]
fn after_epsv_all_only_epsv_sets_up_data_connections() {
    let test = plaintext_server(|config| config.ftp.active_mode = true);
    let mut control = logged_in(&test);
    assert!(control.command("PASV").starts_with("227"), "allowed before");
    assert_eq!(control.command("EPSV ALL"), "200 EPSV ALL accepted");
    for refused in ["PASV", "PORT 127,0,0,1,200,10", "EPRT |1|127.0.0.1|51210|"] {
        assert!(control.command(refused).starts_with("501"), "{refused}");
    }
    assert!(control.store("after.bin", b"by EPSV").starts_with("226"));
}

/// Clients send ABOR as TCP urgent data (RFC 959 section 4.1.3). Python's ftplib's `abort()`
/// sends `ABOR\r\n` with its `\n` urgent; the BSD client sends Telnet's IP, then its DM as the
/// urgent byte, then `ABOR\r\n`. Both are answered at once, during an upload and during a
/// download (the reply waits at most `Control`'s 30 s read timeout), and the session goes on.
#[test]
fn an_abor_sent_as_urgent_data_is_answered_at_once() {
    let test = plaintext_server(|_| {});
    std::fs::write(test.home("bob").join("big.bin"), common::random_bytes(64 << 20, 22)).unwrap();
    let mut control = logged_in(&test);
    let urgent = |control: &mut Control, bytes: &[u8]| {
        let sent = socket2::SockRef::from(control.reader.get_ref()).send_out_of_band(bytes).unwrap();
        assert_eq!(sent, bytes.len());
    };

    let port = control.passive_port();
    let mut upload = TcpStream::connect(("127.0.0.1", port)).unwrap();
    control.send_raw(b"STOR up.bin\r\n");
    assert!(control.reply().starts_with("150"));
    upload.write_all(&[7u8; 1000]).unwrap();
    urgent(&mut control, b"ABOR\r\n");
    let reply = control.reply();
    assert!(reply.starts_with("426") && reply.contains("SIZE tells how many"), "{reply}");
    assert_eq!(control.reply(), "226 ABOR done");

    let port = control.passive_port();
    let mut download = TcpStream::connect(("127.0.0.1", port)).unwrap();
    control.send_raw(b"RETR big.bin\r\n");
    assert!(control.reply().starts_with("150"));
    std::io::Read::read_exact(&mut download, &mut [0u8; 4096]).unwrap();
    control.send_raw(&[0xFF, 0xF4, 0xFF]);
    urgent(&mut control, &[0xF2]);
    control.send_raw(b"ABOR\r\n");
    assert!(control.reply().starts_with("426"));
    assert_eq!(control.reply(), "226 ABOR done");

    assert_eq!(control.command("PWD"), "257 \"/\" is the current directory");
    assert_eq!(control.command("SIZE big.bin"), format!("213 {}", 64 << 20));
}

/// Plain data connections send with sendfile(2) (`ftp::sendfile`): the bytes from the REST
/// offset, an ABOR that stops the sending (the data connection ends before the file does),
/// and a client that stops reading given up on after `transfer_stall_secs`.
#[test]
fn a_plain_retr_sends_from_its_offset_stops_on_abor_and_gives_up_on_a_client_that_does_not_read() {
    let test = plaintext_server(|config| config.transfer_stall_secs = 1);
    // Far more than the socket buffers of both ends can hold.
    let data = common::random_bytes(64 << 20, 21);
    std::fs::write(test.home("bob").join("big.bin"), &data).unwrap();
    let mut control = logged_in(&test);
    let retr = |control: &mut Control, command: &str| {
        let port = control.passive_port();
        let data = TcpStream::connect(("127.0.0.1", port)).unwrap();
        data.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        control.send_raw(format!("{command}\r\n").as_bytes());
        assert!(control.reply().starts_with("150"));
        data
    };
    let read_all = |mut data: TcpStream| {
        let mut got = Vec::new();
        let _ = std::io::Read::read_to_end(&mut data, &mut got);
        got
    };

    assert!(read_all(retr(&mut control, "RETR big.bin")) == data, "the whole file");
    assert!(control.reply().starts_with("226"));
    assert!(control.command("REST 1234567").starts_with("350"));
    assert!(read_all(retr(&mut control, "RETR big.bin")) == data[1234567..], "from the REST offset");
    assert!(control.reply().starts_with("226"));

    let mut aborted = retr(&mut control, "RETR big.bin");
    let mut first = vec![0u8; 64 << 10];
    std::io::Read::read_exact(&mut aborted, &mut first).unwrap();
    control.send_raw(b"ABOR\r\n");
    let reply = control.reply();
    // An aborted download is no upload: it says how to resume it.
    assert!(reply.starts_with("426") && reply.contains("REST and RETR") && !reply.contains("upload"), "{reply}");
    assert_eq!(control.reply(), "226 ABOR done");
    let rest = read_all(aborted);
    assert!(first.len() + rest.len() < data.len(), "the sending stopped at ABOR ({} bytes came)", rest.len());

    let stalled = retr(&mut control, "RETR big.bin");
    let reply = control.reply();
    assert!(reply.starts_with(&format!("426 [{}]", ErrorCode::TransferStalled.as_u16())), "{reply}");
    drop(stalled);
    assert_eq!(control.command("NOOP"), "200 ok", "the session goes on");
}

/// The quota probe over FTP: a STOR over a file stays open while another session deletes that
/// file and fills the room it freed. The overwrite's blocks are reserved in full (the old
/// file was not there to subtract by then), so it gets 552 and the disk stays in the limit.
#[test]
fn a_stor_over_a_file_deleted_meanwhile_cannot_multiply_the_quota() {
    let test = plaintext_server(|_| {}); // bob: 1 MiB
    let limit = 1u64 << 20;
    let data = common::random_bytes(1_000_000, 9);
    let mut writer = logged_in(&test);
    let mut other = logged_in(&test);
    assert!(writer.store("f0", &data).starts_with("226"));
    for round in 0..3 {
        let port = writer.passive_port();
        let mut held = TcpStream::connect(("127.0.0.1", port)).unwrap();
        writer.send_raw(format!("STOR f{round}\r\n").as_bytes());
        assert!(writer.reply().starts_with("150"));
        held.write_all(&data[..400_000]).unwrap();
        assert!(other.command(&format!("DELE f{round}")).starts_with("250"));
        let stored = other.store(&format!("f{}", round + 1), &data);
        assert!(stored.starts_with("226"), "{stored}");
        // The writer's data stops being read once its block is refused; the reply is what counts.
        let _ = held.write_all(&data[400_000..]);
        drop(held);
        let reply = writer.reply();
        assert!(reply.starts_with("552"), "round {round}: {reply}");
        let on_disk = common::disk_bytes(&test.home("bob"));
        assert!(on_disk <= limit, "round {round}: {on_disk} bytes on disk over a limit of {limit}");
    }
}

/// `max_files` over FTP: MKD and a STOR of a new file past it get `552 [403]`, and the refused
/// STOR leaves no partial behind.
#[test]
fn mkd_and_stor_past_max_files_are_refused() {
    let test = plaintext_server(|config| config.default_max_files = 2);
    let mut control = logged_in(&test);
    assert!(control.command("MKD d").starts_with("257"));
    assert!(control.store("f", b"x").starts_with("226"));
    let refused = control.command("MKD e");
    assert!(refused.starts_with(&format!("552 [{}]", ErrorCode::TooManyFiles.as_u16())), "{refused}");
    let port = control.passive_port();
    let data = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let refused = control.command("STOR g");
    assert!(refused.starts_with("552") && refused.contains("[403]"), "{refused}");
    drop(data);
    let names: Vec<String> =
        std::fs::read_dir(test.home("bob")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(control.command("DELE f").starts_with("250"));
    assert!(control.command("MKD e").starts_with("257"));
}

/// A fresh STOR opens its file once its data ends or fills the first 1 MiB block (so a small
/// file costs one disk job): a name that cannot be stored (its directory missing, a directory
/// of that name) is refused then, with the reason and nothing left behind. A longer upload
/// hears it after its first block, and its rest is read and thrown away so the client hears
/// the reply instead of a broken pipe.
#[test]
fn a_stor_to_a_name_that_cannot_be_stored_is_refused_with_the_reason() {
    let test = plaintext_server(|_| {});
    let mut control = logged_in(&test);
    assert!(control.command("MKD d").starts_with("257"));
    for (name, size, reason) in [
        ("missing/small.txt", 5, "550 [301] put missing/small.txt: no such file or directory"),
        ("d", 5, "550 [304] put d: is a directory"),
        ("missing/big.bin", 3 << 20, "550 [301] put missing/big.bin: no such file or directory"),
    ] {
        assert_eq!(control.store(name, &vec![7u8; size]), reason);
    }
    let names: Vec<String> =
        std::fs::read_dir(test.home("bob")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["d"]);
    assert_eq!(std::fs::read_dir(test.home("bob").join("d")).unwrap().count(), 0);
    assert!(control.store("d/ok.txt", b"fine").starts_with("226"), "the session goes on");
}
