//! The real `ftp-actor` binary: `user`, `serve` on a fresh data directory, and the shell in
//! batch mode with every command and its exit statuses; Ctrl-C in interactive mode.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_ftp-actor");

fn run(args: &[&str], password: Option<&str>, stdin: &str, cwd: &std::path::Path) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(cwd).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.env_remove("FTP_ACTOR_PASSWORD");
    if let Some(password) = password {
        command.env("FTP_ACTOR_PASSWORD", password);
    }
    let mut child = command.spawn().unwrap();
    // A shell that fails before reading (a missing user, bad flags) may be gone already.
    match child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => {}
        written => written.unwrap(),
    }
    child.wait_with_output().unwrap()
}

/// The shell in batch mode against `server` as `user` (password `pw`), run in `work` with
/// `commands` on its standard input.
fn batch(server: &TestServer, user: &str, commands: &str, work: &std::path::Path) -> Output {
    let (addr, [flag, cert]) = (server.addr().to_string(), server.shell_trust());
    run(&["shell", "--connect", &addr, &flag, &cert, "--user", user, "--batch", "-"], Some("pw"), commands, work)
}

/// `ftp-actor shell ARGS` with its standard streams piped, for tests that feed it over time.
fn spawn_shell(args: &[&str], password: &str, cwd: &std::path::Path) -> std::process::Child {
    Command::new(BIN)
        .arg("shell")
        .args(args)
        .env("FTP_ACTOR_PASSWORD", password)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// A batch shell logged in as `user` (password `pw`), reading its commands from a pipe, once
/// it has run `mkdir sub` (so its session is up); with its input and its local folder.
fn shell_in_session(
    server: &TestServer,
    user: &str,
) -> (std::process::Child, std::process::ChildStdin, std::path::PathBuf) {
    let work = server.work_dir("work");
    let (addr, [flag, cert]) = (server.addr().to_string(), server.shell_trust());
    let mut shell = spawn_shell(&["--connect", &addr, &flag, &cert, "--user", user, "--batch", "-"], "pw", &work);
    let mut input = shell.stdin.take().unwrap();
    input.write_all(b"mkdir sub\n").unwrap();
    let made = server.home(user).join("sub");
    for _ in 0..500 {
        if made.is_dir() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(made.is_dir(), "the shell ran mkdir");
    (shell, input, work)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn user_commands_manage_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let config = dir.path().join("fast.toml");
    std::fs::write(&config, "[scrypt]\nlog_n = 6\n").unwrap();
    let config_arg = config.to_str().unwrap();
    // The flags are accepted before and after the subcommand.
    let user = |extra: &[&str], password: Option<&str>| {
        let mut args = vec!["user"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--data-dir", data_arg, "--config", config_arg]);
        run(&args, password, "", dir.path())
    };
    // A data directory with no store: every command but `add` refuses it, loudly.
    for command in [&["list"][..], &["del", "alice"], &["passwd", "alice"], &["quota", "alice", "1MiB"]] {
        let out = user(command, Some("pw"));
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        assert!(text(&out.stderr).contains("no user store in"), "{command:?}: {}", text(&out.stderr));
    }
    assert!(!data.join("users.toml").exists(), "nothing was created");

    let out = user(&["add", "alice", "--quota", "10MiB"], Some("pw1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("creating one there"), "the first user creates the store, and says so");
    assert!(text(&out.stdout).contains("quota 10.0 MiB"));
    assert!(data.join("homes/alice").is_dir());
    let out = user(&["add", "alice"], Some("pw1"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("already exists"));
    let out = user(&["add", "../evil"], Some("pw"));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("invalid user name"));
    let out = user(&["add", "bob"], None);
    assert_eq!(out.status.code(), Some(1), "no terminal and no FTP_ACTOR_PASSWORD");
    assert!(text(&out.stderr).contains("FTP_ACTOR_PASSWORD"));
    let out = user(&["add", "bob", "--quota", "12 parsecs"], Some("pw"));
    assert_eq!(out.status.code(), Some(2), "a bad size is a usage error");
    let out = user(&["quota", "alice", "1.5"], None);
    assert_eq!(out.status.code(), Some(2), "a byte and a half");
    assert!(text(&out.stderr).contains("invalid size \"1.5\": not a whole number of bytes"), "{}", text(&out.stderr));

    std::fs::write(data.join("homes/alice/f"), vec![0u8; 2048]).unwrap();
    assert!(user(&["quota", "alice", "1GiB"], None).status.success());
    let out = user(&["list"], None);
    let listing = text(&out.stdout);
    let line = listing.lines().find(|l| l.starts_with("alice")).unwrap();
    assert!(line.contains("1.0 GiB") && line.contains("2.0 KiB"), "{listing}");
    assert!(line.contains("1/100000"), "one entry of the default max_files: {listing}");
    // max_files: per user, on add and later; alone or with a size.
    let out = user(&["add", "carol", "--max-files", "7"], Some("pw"));
    assert!(text(&out.stdout).contains("max files 7"), "{}", text(&out.stdout));
    assert!(user(&["quota", "alice", "--max-files", "50"], None).status.success());
    assert_eq!(user(&["quota", "alice"], None).status.code(), Some(2), "a size or --max-files is needed");
    let store = ftp_actor::auth::UserStore::load(&data).unwrap();
    assert_eq!((store.users["alice"].max_files, store.users["alice"].quota), (Some(50), 1 << 30));
    assert_eq!(store.users["carol"].max_files, Some(7));
    let listing = text(&user(&["list"], None).stdout);
    assert!(listing.lines().any(|l| l.starts_with("alice") && l.contains("1/50")), "{listing}");
    assert!(user(&["passwd", "alice"], Some("pw2")).status.success());
    let store = ftp_actor::auth::UserStore::load(&data).unwrap();
    let c = &store.users["alice"].credentials;
    let salted = c.scrypt.salted_password(b"pw2", &c.salt).unwrap();
    assert_eq!(ftp_actor::auth::scram::ServerKeys::from_salted_password(&salted).stored_key, c.stored_key);
    assert_eq!(user(&["passwd", "nobody"], Some("x")).status.code(), Some(1));
    let out = user(&["del", "alice"], None);
    assert!(out.status.success() && text(&out.stdout).contains("kept"));
    assert!(data.join("homes/alice/f").exists(), "files are kept");
    let left: Vec<String> = ftp_actor::auth::UserStore::load(&data).unwrap().users.into_keys().collect();
    assert_eq!(left, ["carol"]);
}

/// A port already taken: one clear line, exit status 1, the cause said once.
#[test]
fn serve_on_a_taken_port_says_so_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = run(&["serve", "--listen", &address, "--data-dir", data.to_str().unwrap()], None, "", dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let said = stderr.lines().find(|line| line.starts_with("error: ")).unwrap_or_else(|| panic!("{stderr}"));
    assert!(said.starts_with(&format!("error: cannot listen on {address}: ")), "{said}");
    assert_eq!(said.matches("in use").count(), 1, "{said}");
}

#[tokio::test]
async fn serve_on_a_fresh_data_directory_creates_a_demo_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut password, mut addr, mut fingerprint) = (None, None, None);
    while fingerprint.is_none() || addr.is_none() {
        let line = lines.next().expect("server output").unwrap();
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_string());
        }
        if let Some(rest) = line.strip_prefix("ftp-actor listening on ") {
            addr = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if let Some((_, rest)) = line.split_once("(fingerprint ") {
            fingerprint = Some(rest.trim_end_matches(')').parse::<ftp_actor::tls::Fingerprint>().unwrap());
        }
    }
    let password = password.expect("the first user's password is printed");
    assert!(password.len() >= 16, "a random password, not a fixed one");
    // The fingerprint printed at start is the one the server shows.
    let trust = ftp_actor::client::Trust::Pinned(fingerprint.unwrap());
    let mut client = ftp_actor::client::Client::connect(addr.unwrap().as_str(), &trust, |_| {}).await.unwrap();
    client.login("demo", &password).await.unwrap();
    assert_eq!(client.pwd().await.unwrap(), "/");
    child.kill().unwrap();
    child.wait().unwrap();
    let mode = |path: &str| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.path().join(path)).unwrap().permissions())
            & 0o777
    };
    assert_eq!(mode("data/users.toml"), 0o600);
    assert_eq!(mode("data/server.secret"), 0o600);
    assert_eq!(mode("data"), 0o700);
    assert_eq!(mode("data/homes/demo"), 0o700);
    assert_eq!(mode("data/ftp-tls-key.pem"), 0o600);
}

#[test]
fn batch_shell_runs_every_command() {
    let server = TestServer::start();
    server.add_user("s", "pw", 10 << 20);
    let work = server.work_dir("work");
    let data = random_bytes(700_000, 50);
    std::fs::write(work.join("up.bin"), &data).unwrap();
    std::fs::create_dir(work.join("sub")).unwrap();
    let commands = "\
help
pwd
mkdir docs
cd docs
put up.bin
put up.bin copy.bin
ls
ls /docs/copy.bin
mv copy.bin moved.bin
quota
get moved.bin down.bin
get moved.bin down.bin
lpwd
lcd sub
lls ..
get /docs/up.bin
-rm nothing-here
rm moved.bin
cd /
-rmdir docs
rm docs/up.bin
rmdir docs
ls
quit
pwd
";
    let out = batch(&server, "s", commands, &work);
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let md5 = md5_hex(&data);
    for expected in [
        "put up.bin -> up.bin: 683.6 KiB in",
        &format!("md5 {md5} verified"),
        "/docs\n",
        " moved.bin",
        "used 1.3 MiB of 10.0 MiB",
        "get moved.bin: skipped, down.bin already has the same size",
        "up.bin\n",
        &format!("{}\n", work.join("sub").display()),
        "- ", // lls lines
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
    assert!(stdout.contains("ftp> quit") && !stdout.contains("ftp> pwd\n/\nftp> pwd"), "quit ends the run");
    assert!(stderr.contains("error 301: rm nothing-here"), "{stderr}");
    assert!(stderr.contains("error 305: rmdir docs"), "{stderr}");
    assert_eq!(std::fs::read(work.join("down.bin")).unwrap(), data);
    assert_eq!(std::fs::read(work.join("sub/up.bin")).unwrap(), data);
    let commands_help = stdout.contains("put LOCAL [REMOTE]");
    assert!(commands_help);
}

/// A download our side cannot write (here a FIFO whose reader leaves early; a full disk is
/// the same) stops while the server is still sending it. The shell says so and connects
/// again, so the next commands run; before, they got the download's leftover data frames
/// ("protocol: expected done, got data").
#[test]
fn the_shell_goes_on_after_a_download_it_cannot_write() {
    let server = TestServer::start();
    server.add_user("s", "pw", 20 << 20);
    std::fs::write(server.home("s").join("big.bin"), random_bytes(8 << 20, 51)).unwrap();
    let work = server.work_dir("work");
    let fifo = work.join("pipe");
    make_fifo(&fifo);
    // A reader that takes a little and leaves, as `head -c` would.
    let reader = std::thread::spawn({
        let fifo = fifo.clone();
        move || {
            let mut taken = [0; 1000];
            std::io::Read::read_exact(&mut std::fs::File::open(fifo).unwrap(), &mut taken).unwrap();
        }
    });
    let commands = "mkdir sub\ncd sub\n-get /big.bin pipe\nmkdir after\npwd\n";
    let out = batch(&server, "s", commands, &work);
    reader.join().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("local file pipe: Broken pipe") && stderr.contains("nothing was kept"), "{stderr}");
    assert!(server.home("s").join("sub/after").is_dir(), "the next command ran, in the same directory");
    assert!(stdout.ends_with("ftp> pwd\n/sub\n"), "{stdout}");
}

/// `mget` passes over a FIFO (or socket, or device) that another program put in the home, as
/// `get -r` does, instead of ending the run on the server's refusal (309); `mput` over a local
/// one, instead of ending on the client's refusal.
#[test]
fn mget_and_mput_skip_what_is_not_a_file() {
    let server = TestServer::start();
    server.add_user("s", "pw", 1 << 20);
    std::fs::write(server.home("s").join("a.txt"), b"a file").unwrap();
    make_fifo(&server.home("s").join("b.txt"));
    let work = server.work_dir("work");
    std::fs::create_dir(work.join("out")).unwrap();
    std::fs::write(work.join("out/c.log"), b"a local file").unwrap();
    make_fifo(&work.join("out/d.log"));
    let out = batch(&server, "s", "mget *.txt\nmput out/*.log\n", &work);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("skipped b.txt: not a regular file or directory"), "{stderr}");
    assert_eq!(std::fs::read(work.join("a.txt")).unwrap(), b"a file");
    assert!(!work.join("b.txt").exists());
    assert!(stderr.contains("skipped out/d.log: not a regular file"), "{stderr}");
    assert_eq!(std::fs::read(server.home("s").join("c.log")).unwrap(), b"a local file");
    assert!(!server.home("s").join("d.log").exists());
}

/// A listing larger than the server's page (`max_list_entries`) is read whole: `ls` shows every
/// name and a pattern is matched against all of them (before paged listings, `mget *` was
/// matched against the first page only).
#[test]
fn a_pattern_is_matched_against_every_page_of_a_listing() {
    let server = TestServer::start_with(|config| config.max_list_entries = 5);
    server.add_user("s", "pw", 1 << 20);
    for n in 0..12 {
        std::fs::write(server.home("s").join(format!("f{n:02}.txt")), format!("file {n}")).unwrap();
    }
    let work = server.work_dir("work");
    let out = batch(&server, "s", "ls\nmget *.txt\n", &work);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!((0..12).all(|n| stdout.contains(&format!("f{n:02}.txt\n"))), "{stdout}");
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 12, "every match fetched: {stdout}");
    assert_eq!(std::fs::read(work.join("f11.txt")).unwrap(), b"file 11");
}

/// `ls` shows a listing as its pages arrive: every entry once, in order, pages of a directory
/// given by name as well as of the working directory.
#[test]
fn ls_shows_every_page_of_a_listing_once_in_order() {
    let server = TestServer::start_with(|config| config.max_list_entries = 3);
    server.add_user("s", "pw", 1 << 20);
    std::fs::create_dir(server.home("s").join("d")).unwrap();
    for n in 0..10 {
        std::fs::write(server.home("s").join(format!("d/f{n:02}.txt")), b"x").unwrap();
    }
    let work = server.work_dir("work");
    let out = batch(&server, "s", "ls d\ncd d\nls\n", &work);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    // A file's line starts with `-` and ends with its name; the echoed commands are left out.
    let names: Vec<&str> =
        stdout.lines().filter(|line| line.starts_with('-')).filter_map(|line| line.split_whitespace().last()).collect();
    let expected: Vec<String> = (0..10).map(|n| format!("f{n:02}.txt")).collect();
    assert_eq!(names, [expected.clone(), expected].concat(), "{stdout}");
}

/// `mkdir -p` makes every missing directory of a path (one already there is fine, a file in
/// the way is not), and `rm -r` removes a directory with everything in it, a partial upload
/// included, giving all of its quota back.
#[test]
fn mkdir_p_and_rm_r_make_and_remove_whole_trees() {
    let server = TestServer::start();
    server.add_user("s", "pw", 10 << 20);
    let work = server.work_dir("work");
    std::fs::write(work.join("f.txt"), b"a file").unwrap();
    let made = "mkdir -p top/a/b\nmkdir -p top/a/b\nmkdir -p /top/./c\nput f.txt top/a/b/f.txt\nput f.txt top/f.txt\n";
    let out = batch(&server, "s", &format!("{made}-mkdir -p top/f.txt/x\n"), &work);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let home = server.home("s");
    assert!(home.join("top/a/b/f.txt").is_file() && home.join("top/c").is_dir());
    assert!(stderr.contains("error: mkdir -p top/f.txt/x: top/f.txt is there and is not a directory"), "{stderr}");

    // A partial upload in the tree: an upload cut after 300 000 of its bytes.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut client = runtime.block_on(server.login("s", "pw"));
    runtime.block_on(async {
        let mut cut = server.login("s", "pw").await;
        cut.send(ftp_actor::net::Request::Put { path: "top/c/big.iso".into(), size: 1 << 20 }).await.unwrap();
        cut.recv().await.unwrap();
        cut.send(ftp_actor::net::Request::Data { bytes: bytes::Bytes::from(vec![1u8; 300_000]) }).await.unwrap();
        cut.send(ftp_actor::net::Request::Noop).await.unwrap();
        cut.recv().await.unwrap();
        drop(cut);
        wait_for_quota(&mut client, |used, _| used == 300_012).await;
    });

    let out = batch(&server, "s", "-rm -r /\n-rm -r top/..\nrm -r top\nls\n", &work);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("rm -r top: 3 files and 4 directories removed"), "{stdout}");
    for refused in ["rm -r /", "rm -r top/.."] {
        assert!(stderr.contains(&format!("error: {refused}: refusing to remove the home, . or ..")), "{stderr}");
    }
    assert!(!home.join("top").exists());
    runtime.block_on(wait_for_quota(&mut client, |used, _| used == 0));
}

#[test]
fn batch_shell_copies_directory_trees_both_ways() {
    // Three entries at the top of the tree: a listing of four takes two pages.
    let server = TestServer::start_with(|config| config.max_list_entries = 3);
    server.add_user("t", "pw", 10 << 20);
    let work = server.local("work");
    let src = work.join("src");
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    let files = [
        ("a.bin", random_bytes(600_000, 70)),
        ("sub/b.bin", random_bytes(40_000, 71)),
        ("sub/deeper/c.txt", b"three levels down".to_vec()),
        // A backslash is an ordinary character: up and back down again.
        ("sub/back\\slash.txt", b"slash".to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    std::os::unix::fs::symlink(&src, src.join("sub/loop")).unwrap();
    std::fs::write(src.join(".x.ftpa-part"), b"an interrupted download's partial").unwrap();
    std::fs::write(src.join("sub/line\nbreak.txt"), b"a name the server refuses").unwrap();
    let commands = "\
put -r src
put -r src
mkdir up
put -r src up/
mkdir dot
lcd src
put -r . dot/
lcd ..
-put src
-get -r src/a.bin
-get -r missing
-get src/a.bin nowhere/
get -r src back
get -r /up/src/ again
get -r src back
mkdir src/fourth
get -r src paged
quit
";
    let out = batch(&server, "t", commands, &work);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let home = server.home("t");
    for (name, bytes) in &files {
        for copy in [
            home.join("src").join(name),
            home.join("up/src").join(name),
            home.join("dot/src").join(name),
            work.join("back").join(name),
            work.join("again").join(name),
        ] {
            assert_eq!(&std::fs::read(&copy).unwrap_or_else(|e| panic!("{}: {e}", copy.display())), bytes);
        }
    }
    assert!(home.join("src/empty").is_dir() && work.join("back/empty").is_dir(), "empty directories are copied too");
    assert!(!home.join("src/sub/loop").exists() && !home.join("src/.x.ftpa-part").exists());
    assert!(stderr.contains("sub/loop: it is a link to a directory"), "{stderr}");
    assert!(stderr.contains(".x.ftpa-part: it is the partial of an interrupted transfer"), "{stderr}");
    assert!(stderr.contains("break.txt: its name has a control character, which the server refuses"), "{stderr}");
    assert!(stderr.contains("error: put src: a directory; use put -r"), "{stderr}");
    assert!(stderr.contains("error: get -r src/a.bin: not a remote directory; use get"), "{stderr}");
    assert!(stderr.contains("error 301: get -r missing: no such file or directory"), "{stderr}");
    assert!(stderr.contains("error: get src/a.bin: no local directory nowhere/"), "{stderr}");
    assert!(!work.join(".nowhere.ftpa-part").exists(), "no hidden partial for a missing directory");
    // Run again, into the directories it made the first time: every file is already there.
    assert_eq!(stdout.matches("put -r src -> src: 4 files in 4 directories, 625.0 KiB").count(), 2, "{stdout}");
    let resent = stdout.split("ftp> put -r src\n").nth(2).unwrap().split("ftp> mkdir up").next().unwrap();
    assert_eq!(resent.matches("skipped, the server's src/").count(), 4, "{resent}");
    assert!(stdout.contains("put -r src -> up/src: 4 files"), "{stdout}");
    assert!(stdout.contains("put -r . -> dot/src: 4 files"), "`.` is named after the directory: {stdout}");
    assert!(stdout.contains("get -r /up/src/ -> again: 4 files in 4 directories"), "{stdout}");
    assert!(stdout.contains("get -r src -> paged: 4 files in 5 directories"), "{stdout}");
    assert!(work.join("paged/fourth").is_dir() && work.join("paged/sub/deeper/c.txt").is_file());
    // Run again, the tree's files already there are found identical and not fetched.
    let second = stdout.rsplit("ftp> get -r src back").next().unwrap().split("ftp> mkdir").next().unwrap();
    assert_eq!(second.matches(": skipped, ").count(), 4, "{second}");
}

#[test]
fn batch_shell_exit_statuses() {
    let server = TestServer::start();
    server.add_user("s", "pw", 1 << 20);
    let (addr, [flag, cert]) = (server.addr().to_string(), server.shell_trust());
    let cwd = server.dir.path();
    let shell = |args: &[&str], password: Option<&str>, input: &str| {
        let mut all = vec!["shell", "--connect", &addr, &flag, &cert];
        all.extend_from_slice(args);
        run(&all, password, input, cwd)
    };
    // First failing command: status 1, later commands not run.
    let out = shell(&["--user", "s", "--batch", "-"], Some("pw"), "cd nowhere\nmkdir made\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error 301"));
    assert!(!server.home("s").join("made").exists());
    // An unknown command fails the same way.
    assert_eq!(shell(&["--user", "s", "--batch", "-"], Some("pw"), "frobnicate\n").status.code(), Some(1));
    // Wrong password, missing user, unreachable server, bad flags: status 2.
    assert_eq!(shell(&["--user", "s", "--batch", "-"], Some("bad"), "pwd\n").status.code(), Some(2));
    assert_eq!(shell(&["--batch", "-"], Some("pw"), "pwd\n").status.code(), Some(2));
    let closed = run(&["shell", "--connect", "127.0.0.1:1", "--user", "s", "--batch", "-"], Some("pw"), "pwd\n", cwd);
    assert_eq!(closed.status.code(), Some(2));
    assert!(text(&closed.stderr).contains("cannot connect"));
    assert_eq!(run(&["shell", "--bogus"], None, "", cwd).status.code(), Some(2));
    // A batch file instead of standard input.
    let file = server.local("cmds.txt");
    std::fs::write(&file, "# comment\n\nmkdir fromfile\n").unwrap();
    let out = shell(&["--user", "s", "--batch", file.to_str().unwrap()], Some("pw"), "");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(server.home("s").join("fromfile").is_dir());
}

/// The server closes a session left idle for `idle_timeout_secs` (603), giving its slot to the
/// next client in the queue; the shell's next command connects again, returns to the working
/// directory and runs, instead of failing and ending the shell.
#[test]
fn the_shell_connects_again_after_the_server_closes_its_idle_session() {
    let server = TestServer::start_with(|config| {
        config.idle_timeout_secs = 3;
        config.max_concurrency = 1;
        config.max_queued = 2;
    });
    server.add_user("s", "pw", 1 << 20);
    let (shell, mut input, work) = shell_in_session(&server, "s");
    let data = random_bytes(300_000, 60);
    std::fs::write(work.join("up.bin"), &data).unwrap();
    input.write_all(b"cd sub\n").unwrap();
    // The shell holds the only slot; a client queued behind it is admitted once the server
    // has closed the shell's idle session.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (told, positions) = std::sync::mpsc::channel();
    let mut next = runtime
        .block_on(ftp_actor::client::Client::connect(server.addr(), &server.trust(), move |p| told.send(p).unwrap()))
        .unwrap();
    runtime.block_on(next.login("s", "pw")).unwrap();
    // Normally its login waits at position 1 until the idle close; on a machine busy enough
    // that the close came first, it finds the slot free. Either way the shell's session is
    // closed now.
    let waited_at: Vec<u32> = positions.try_iter().collect();
    assert!(matches!(waited_at[..], [] | [1]), "{waited_at:?}");
    drop(next);

    input.write_all(b"pwd\nput up.bin\nls\nquit\n").unwrap();
    let out = shell.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("the server had closed the idle session; connecting again"), "{stderr}");
    assert!(stdout.contains("ftp> pwd\n/sub\n"), "back in its directory: {stdout}");
    assert!(stdout.contains(&format!("md5 {} verified", md5_hex(&data))), "{stdout}");
    assert_eq!(std::fs::read(server.home("s").join("sub/up.bin")).unwrap(), data);
}

#[test]
fn demo_supervisor_passes_every_check() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(&["demo", "supervisor"], None, "", dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("all 10 checks passed"), "{stdout}");
    assert!(!stdout.contains("FAILED"));
    for step in ["the QuotaActor fails", "the AuthActor fails", "a disk worker panics", "4 of 4 threads answered"] {
        assert!(stdout.contains(step), "missing {step:?}");
    }
}

/// Interactive mode (no `--batch`): Ctrl-C (SIGINT) stops the transfer in progress, keeps its
/// partial, and the shell goes on, connected again and back in its directory, so the same
/// command resumes; in both directions.
#[test]
fn ctrl_c_interrupts_a_transfer_and_the_shell_resumes_it() {
    let server = TestServer::start();
    server.add_user("u", "pw", 256 << 20);
    let work = server.dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let data = random_bytes(32 << 20, 12);
    std::fs::write(work.join("big.bin"), &data).unwrap();
    // A slow link, so that each transfer is still running when it is interrupted.
    let proxy = proxy::Proxy::start(server.addr(), proxy::Fault::Throttle { bytes_per_second: 8 << 20 });
    let [flag, cert] = server.shell_trust();
    let mut shell = spawn_shell(&["--connect", &proxy.addr.to_string(), &flag, &cert, "--user", "u"], "pw", &work);
    let mut input = shell.stdin.take().unwrap();
    let interrupt = || assert_eq!(unsafe { libc::kill(shell.id() as i32, libc::SIGINT) }, 0);

    input.write_all(b"mkdir sub\ncd sub\nput big.bin\n").unwrap();
    wait_for_len_blocking(&server.home("u").join("sub/.big.bin.ftpa-part"), 1 << 20);
    interrupt();
    input.write_all(b"put big.bin\nget big.bin copy.bin\n").unwrap();
    wait_for_len_blocking(&work.join(".copy.bin.ftpa-part"), 1 << 20);
    interrupt();
    // The interrupted download leaves the MD5 state of its partial, which the resume uses.
    wait_for_len_blocking(&work.join("..copy.bin.ftpa-part.ftpa-part"), 1);
    input.write_all(b"get big.bin copy.bin\npwd\nquit\n").unwrap();

    let out = shell.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(stderr.matches("interrupted: a partial transfer is kept").count(), 2, "{stderr}");
    let md5 = md5_hex(&data);
    let put = stdout.lines().find(|line| line.starts_with("put big.bin")).unwrap_or_else(|| panic!("{stdout}"));
    let get = stdout.lines().find(|line| line.starts_with("get big.bin")).unwrap_or_else(|| panic!("{stdout}"));
    for line in [put, get] {
        assert!(line.contains(&format!("md5 {md5} verified")) && line.contains("(resumed at"), "{line}");
    }
    assert!(stdout.ends_with("\n/sub\n"), "the last pwd: the shell is back in its directory: {stdout}");
    assert_eq!(std::fs::read(server.home("u").join("sub/big.bin")).unwrap(), data);
    assert_eq!(std::fs::read(work.join("copy.bin")).unwrap(), data);
    assert!(!work.join("..copy.bin.ftpa-part.ftpa-part").exists(), "the state went with the resume");
}

/// A password typed into the name prompt must not reach the server's log: a failed login is
/// logged under the user's name only when it is a user's, else as a keyed hash.
#[tokio::test]
async fn a_password_typed_as_a_user_name_never_reaches_the_log() {
    let served = common::binary::Served::start(common::binary::Launch {
        config: "[ftp]\nallow_plaintext_login = true\n",
        ftp: true,
        users: &[("alice", "pw")],
        open_files: None,
        scrypt: None,
    });
    let (native, ftp) = (served.native.clone(), served.ftp.clone().expect("FTP address"));

    let mut control = std::net::TcpStream::connect(&ftp).unwrap();
    control.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut replies = BufReader::new(control.try_clone().unwrap());
    let mut reply = |sent: &str| {
        if !sent.is_empty() {
            control.write_all(format!("{sent}\r\n").as_bytes()).unwrap();
        }
        let mut line = String::new();
        replies.read_line(&mut line).unwrap();
        line
    };
    assert!(reply("").starts_with("220"));
    for (user, password) in [("Typed-Secret-1", "x"), ("alice", "wrong")] {
        assert!(reply(&format!("USER {user}")).starts_with("331"));
        assert!(reply(&format!("PASS {password}")).starts_with("530"));
    }
    let mut client = ftp_actor::client::Client::connect(native.as_str(), &served.trust(), |_| {}).await.unwrap();
    assert!(client.login("Typed-Secret-2", "pw").await.is_err());

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while served.log().matches("result=\"failed\"").count() < 3 {
        assert!(std::time::Instant::now() < deadline, "three failed logins logged:\n{}", served.log());
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = served.log();
    assert!(!log.contains("Typed-Secret"), "a name that is no user's was logged as typed:\n{log}");
    assert_eq!(log.matches("user=unknown-").count(), 2, "{log}");
    assert!(log.contains("user=alice"), "a real user's failure names the user:\n{log}");
}

/// With every slot taken, the shell's login waits and says where; it runs once a slot frees.
#[test]
fn the_shell_says_where_its_login_waits_for_a_slot() {
    let server = TestServer::start_with(|config| config.max_concurrency = 1);
    server.add_user("q", "pw", 1 << 20);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(server.login("q", "pw"));
    let work = server.work_dir("work");
    let (addr, [flag, cert]) = (server.addr().to_string(), server.shell_trust());
    let mut shell = spawn_shell(&["--connect", &addr, &flag, &cert, "--user", "q", "--batch", "-"], "pw", &work);
    shell.stdin.take().unwrap().write_all(b"pwd\nquit\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert!(shell.try_wait().unwrap().is_none(), "the shell waits while the slot is held");
    runtime.block_on(holder.quit()).unwrap();
    let out = shell.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("all sessions are busy: waiting for a free slot: position 1"), "{stderr}");
    assert!(stdout.contains("/\n"), "{stdout}");
}

#[test]
fn serve_takes_the_passive_ports_from_the_command_line() {
    use common::binary::{Launch, Served};
    use common::ftp_control::Control;
    let config = "[ftp]\nallow_plaintext_login = true\n";
    let served = Served::start_with_args(Launch::alice(config, true), &["--passive-ports", "51200-51203"]);
    let mut control = Control::connect(served.ftp.as_deref().unwrap().parse().unwrap());
    assert!(control.reply().starts_with("220"));
    assert!(control.command("USER alice").starts_with("331"));
    assert!(control.command("PASS pw").starts_with("230"));
    for _ in 0..3 {
        let reply = control.command("EPSV");
        let port: u16 = reply.split("|||").nth(1).and_then(|rest| rest.split('|').next()).unwrap().parse().unwrap();
        assert!((51200..=51203).contains(&port), "{reply}");
    }
    let bad = run(&["serve", "--passive-ports", "51210-51200"], None, "", served.dir.path());
    assert_eq!(bad.status.code(), Some(2), "a reversed range is a usage error: {}", text(&bad.stderr));
}

/// A session the server ends (here: its user was deleted, error 206) ends the shell with the
/// server's reason, instead of leaving it at the prompt for the next command to fail with
/// "connection lost: Broken pipe".
#[test]
fn the_shell_stops_with_the_reason_when_the_server_ends_its_session() {
    let server = TestServer::start();
    server.add_user("s", "pw", 1 << 20);
    let (shell, mut input, _work) = shell_in_session(&server, "s");
    server.remove_user("s");
    // Once a login as s fails, the server has read the store and ended s's sessions.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..100 {
        if runtime.block_on(server.try_login("s", "pw")).is_err() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    input.write_all(b"ls\nls\npwd\n").unwrap();
    drop(input);
    let out = shell.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stderr.contains("206") && stderr.contains("the server closed the session"), "{stderr}");
    assert!(!stderr.contains("Broken pipe"), "{stderr}");
}

/// Batch output is plain: no progress bar, even when the terminal would show one (run under
/// `script`, which gives the shell a terminal as stdout and stderr).
#[test]
fn batch_output_has_no_progress_bar_even_on_a_terminal() {
    let server = TestServer::start();
    server.add_user("s", "pw", 100 << 20);
    let work = server.work_dir("work");
    // Large enough to take a good part of a second in a debug build: a bar would be drawn.
    std::fs::write(work.join("big.bin"), random_bytes(24 << 20, 62)).unwrap();
    std::fs::write(work.join("commands"), "put big.bin\nget big.bin back.bin\n").unwrap();
    let shell = format!(
        "{BIN} shell --connect {} --cacert {} --user s --batch commands",
        server.addr(),
        server.cert().display()
    );
    let out = Command::new("script")
        .args(["-qec", &shell, "/dev/null"])
        .env("FTP_ACTOR_PASSWORD", "pw")
        .current_dir(&work)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let output = text(&out.stdout);
    assert!(out.status.success(), "{output}");
    assert_eq!(output.matches("verified").count(), 2, "{output}");
    assert!(!output.contains("ETA"), "a progress bar in batch output: {output}");
}

/// The shell shows a partial upload as kind `p` under its name, `quota` says what partials
/// hold and how to free it, and `rm` removes one (saying so when a file and a partial share
/// the name).
#[tokio::test]
async fn the_shell_lists_counts_and_removes_partial_uploads() {
    let server = TestServer::start();
    server.add_user("s", "pw", 10 << 20);
    let mut client = server.login("s", "pw").await;
    let local = server.local("f");
    std::fs::write(&local, random_bytes(1_000, 3)).unwrap();
    client.put(&local, "both.bin", &ftp_actor::client::NoProgress).await.unwrap();
    for name in ["big.iso", "both.bin"] {
        let mut cut = server.login("s", "pw").await;
        cut.send(ftp_actor::net::Request::Put { path: name.into(), size: 1 << 20 }).await.unwrap();
        cut.recv().await.unwrap();
        cut.send(ftp_actor::net::Request::Data { bytes: bytes::Bytes::from(vec![1u8; 300_000]) }).await.unwrap();
        cut.send(ftp_actor::net::Request::Noop).await.unwrap();
        cut.recv().await.unwrap();
    }
    wait_for_quota(&mut client, |used, _| used == 601_000).await;
    let work = server.work_dir("work");
    let (addr, [flag, cert]) = (server.addr().to_string(), server.shell_trust());
    let commands = "ls\nquota\nrm big.iso\nrm both.bin\nls\nrm both.bin\nquota\n";
    let out = tokio::task::spawn_blocking(move || {
        run(&["shell", "--connect", &addr, &flag, &cert, "--user", "s", "--batch", "-"], Some("pw"), commands, &work)
    })
    .await
    .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    let listed = |kind: char, size: u64, name: &str| {
        stdout
            .lines()
            .any(|line| line.starts_with(&format!("{kind} {size:>14} ")) && line.ends_with(&format!(" {name}")))
    };
    assert!(listed('p', 300_000, "big.iso") && listed('-', 1_000, "both.bin") && listed('p', 300_000, "both.bin"));
    assert!(stdout.contains("of which 585.9 KiB in 2 partial uploads (kind p in ls"), "{stdout}");
    assert!(stdout.contains("a partial upload to both.bin remains (kind p in ls): rm both.bin again"), "{stdout}");
    assert!(
        stdout.ends_with("used 0 B of 10.0 MiB (0.0%), 10.0 MiB free; 0 of 100000 files and directories\n"),
        "{stdout}"
    );
}

/// Habits from lftp and sftp: wildcards with mget/mput (and get, put, rm, ls), `ls -l`/`-a`,
/// `cd` alone and `cd ~`, `mv X DIR` into the directory (`.` and `..` too), `!cmd` locally.
#[test]
fn the_shell_takes_wildcards_and_the_usual_habits() {
    let server = TestServer::start();
    server.add_user("s", "pw", 10 << 20);
    let work = server.local("work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    for (name, seed) in [("a.txt", 1), ("b.txt", 2), ("c.bin", 3), (".hidden.txt", 4)] {
        std::fs::write(work.join(name), random_bytes(2_000, seed)).unwrap();
    }
    std::fs::write(work.join("sub/-dash.txt"), b"a name like an option").unwrap();
    let commands = "\
mput *.txt
mkdir docs
cd docs
cd
cd ~/docs
cd ~
ls -l
ls -la *.txt
mv a.txt docs
ls docs
put c.bin docs/
lcd sub
mget *.txt
get docs/*.txt
!echo hello > bang.txt
mkdir docs/inner
rm docs/*
rmdir docs/inner
ls -a docs
cd docs
mv ../b.txt .
ls
mv b.txt ..
cd /
-mget *.nothing
-get \"*.txt\"
-ls -z
-rm -x docs
-get -r
-put -dash.txt
put -- -dash.txt
ls -l -- -dash.txt
rm -- -dash.txt
-get /
-put .
mget /
-mget nodir/*
-mput nodir/*
lls -l
";
    let out = batch(&server, "s", commands, &work);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // mput took the visible .txt files only, as a Unix shell's * does.
    let uploads: Vec<_> = stdout.lines().filter(|line| line.starts_with("put ") && !line.contains("-dash")).collect();
    assert_eq!(uploads.len(), 3, "a.txt, b.txt, then c.bin: {stdout}");
    assert!(uploads[0].starts_with("put a.txt -> a.txt") && uploads[1].starts_with("put b.txt -> b.txt"));
    assert!(
        stdout.contains("ftp> cd\n/\n")
            && stdout.contains("ftp> cd ~/docs\n/docs\n")
            && stdout.contains("ftp> cd ~\n/\n")
    );
    let section = |from: &str, to: &str| {
        let start = stdout.find(from).unwrap_or_else(|| panic!("{from} in {stdout}"));
        let end = stdout[start..].find(to).map_or(stdout.len(), |at| start + at);
        stdout[start..end].to_string()
    };
    let matched = section("ftp> ls -la *.txt\n", "ftp> mv");
    assert_eq!(matched.lines().count(), 3, "the command and two entries: {matched}");
    assert!(matched.contains(" a.txt\n") && matched.contains(" b.txt\n"), "{matched}");
    assert!(section("ftp> ls docs\n", "ftp> put").ends_with(" a.txt\n"), "mv into the directory");
    assert!(stdout.contains("put c.bin -> docs/c.bin"), "{stdout}");
    assert!(stdout.contains("get b.txt -> b.txt") && stdout.contains("get docs/a.txt -> a.txt"), "{stdout}");
    assert_eq!(std::fs::read(work.join("sub/a.txt")).unwrap(), random_bytes(2_000, 1));
    assert_eq!(std::fs::read(work.join("sub/b.txt")).unwrap(), random_bytes(2_000, 2));
    assert_eq!(
        std::fs::read_to_string(work.join("sub/bang.txt")).unwrap(),
        "hello\n",
        "!cmd ran in the local directory"
    );
    assert_eq!(section("ftp> ls -a docs\n", "ftp> cd docs").lines().count(), 1, "rm docs/* emptied it");
    assert!(section("ftp> mv ../b.txt .\n", "ftp> mv b.txt ..").ends_with(" b.txt\n"), "mv into `.`");
    assert!(std::fs::read_dir(server.home("s").join("docs")).unwrap().next().is_none(), "mv into `..`");
    assert_eq!(std::fs::read(server.home("s").join("b.txt")).unwrap(), random_bytes(2_000, 2));
    assert!(stderr.contains("error: no remote name matches *.nothing"), "{stderr}");
    assert!(stderr.contains("error 301: get *.txt"), "a quoted * is a name: {stderr}");
    assert!(
        stderr.contains("error: ls: unknown option -z; a name that starts with - goes after --: ls -- -z"),
        "{stderr}"
    );
    assert!(stderr.contains("skipped docs/inner: a directory; use rmdir"), "{stderr}");
    // An option a command does not take is refused, not read as a name; `--` ends options.
    assert!(stderr.contains("error: rm: unknown option -x;"), "{stderr}");
    assert!(server.home("s").join("docs").is_dir(), "rm -x removed nothing");
    assert!(stderr.contains("error: usage: get -r REMOTE_DIR [LOCAL_DIR]"), "{stderr}");
    assert!(stderr.contains("error: put: unknown option -d;"), "{stderr}");
    assert!(stdout.contains("put -dash.txt -> -dash.txt"), "{stdout}");
    assert!(section("ftp> ls -l -- -dash.txt\n", "ftp> rm").ends_with(" -dash.txt\n"), "{stdout}");
    assert!(!server.home("s").join("-dash.txt").exists(), "rm -- removed it");
    assert!(section("ftp> lls -l\n", "\n\n").contains(" -dash.txt\n"), "{stdout}");
    // Paths that name a directory by their form alone (it used to say "/: no file name").
    for said in [
        "error: get /: a directory; use get -r",
        "error: put .: a directory; use put -r",
        "skipped /: a directory",
        // A pattern in a directory that is not there says so, naming the pattern.
        "error: no remote name matches nodir/* (error 301: ",
        "error: no local name matches nodir/* (nodir: ",
    ] {
        assert!(stderr.contains(said), "{said:?} in {stderr}");
    }
}

/// Tab completes commands, local names and remote names at the interactive prompt (typed on a
/// real terminal: tests/pty_session.py runs the shell on a pseudo-terminal).
#[test]
fn tab_completes_commands_and_local_and_remote_names() {
    let server = TestServer::start();
    server.add_user("s", "pw", 10 << 20);
    for dir in ["subdir", "subway"] {
        std::fs::create_dir_all(server.home("s").join(dir)).unwrap();
    }
    std::fs::write(server.home("s").join("subdir/remote_only.txt"), b"from the server").unwrap();
    let work = server.work_dir("work");
    std::fs::write(work.join("local_file.bin"), random_bytes(5_000, 8)).unwrap();
    // Typed: `cd subd<Tab>`, `pu<Tab>local_<Tab>`, `get rem<Tab>`, `ls /sub<Tab><Tab>` (two
    // candidates: the second Tab lists them), then quit.
    let keys = "cd subd\\t\npu\\tlocal_\\t\nget rem\\t\nls /sub\\t\\t\nquit\n";
    let cert = server.cert().display().to_string();
    let addr = server.addr().to_string();
    let shell = ["--connect", &addr, "--cacert", &cert, "--user", "s"];
    let out = shell_on_a_terminal("ftp> ", &shell, &work, keys.as_bytes());
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}\n{}", text(&out.stderr));
    assert!(screen.contains("/subdir\r\n"), "cd subd<Tab> went into subdir: {screen}");
    assert_eq!(std::fs::read(server.home("s").join("subdir/local_file.bin")).unwrap(), random_bytes(5_000, 8));
    assert_eq!(std::fs::read(work.join("remote_only.txt")).unwrap(), b"from the server");
    assert!(screen.lines().any(|line| line.contains("subdir/") && line.contains("subway/")), "{screen}");
}

/// Runs `ftp-actor shell ARGS` on a pseudo-terminal (tests/pty_session.py), typing `keys`
/// each time the screen shows one of the `prompts` (`|`-separated), with `work` as its home and
/// working directory and the password `pw`.
fn shell_on_a_terminal(prompts: &str, args: &[&str], work: &std::path::Path, keys: &[u8]) -> std::process::Output {
    let mut session = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_session.py"))
        .args([prompts, BIN, "shell"])
        .args(args)
        .env("FTP_ACTOR_PASSWORD", "pw")
        .env("HOME", work)
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(work)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    session.stdin.take().unwrap().write_all(keys).unwrap();
    session.wait_with_output().unwrap()
}

/// On a terminal, the first connection to a server shows its certificate's fingerprint and
/// asks, as OpenSSH does; `yes` records it in the known-servers file and the shell logs in.
#[test]
fn the_shell_asks_before_trusting_a_new_server() {
    let server = TestServer::start();
    server.add_user("s", "pw", 1 << 20);
    let work = server.work_dir("work");
    let fingerprint = server.fingerprint().to_string();
    let addr = server.addr().to_string();
    let out = shell_on_a_terminal("(yes/no) |ftp> ", &["--connect", &addr, "--user", "s"], &work, b"yes\npwd\nquit\n");
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}\n{}", text(&out.stderr));
    assert!(screen.contains(&format!("The server {addr} is not known yet")), "{screen}");
    assert!(screen.contains(&fingerprint) && screen.contains("Connected to"), "{screen}");
    let known = std::fs::read_to_string(work.join(".config/ftp-actor/known_servers")).unwrap();
    assert_eq!(known, format!("{addr} {fingerprint}\n"));
}
