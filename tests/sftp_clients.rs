//! The SFTP front end, driven by clients nobody here wrote: OpenSSH's `sftp` and `scp`,
//! rclone's sftp backend and Python's paramiko, as installed from Debian (`.ci/run` installs
//! them when missing). Every client checks the server's host key. Assertions are on what a
//! user sees: bytes on disk, MD5s, exit codes and messages.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::sftp::OpenSsh;
use common::{TestServer, md5_hex, must_succeed, output_text as text, random_bytes};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

fn server(quota: u64) -> TestServer {
    let test = TestServer::start_sftp(|_| {});
    test.add_user(USER, PASSWORD, quota);
    test
}

fn md5_of(path: &Path) -> String {
    md5_hex(&std::fs::read(path).unwrap())
}

#[test]
fn openssh_sftp_does_what_people_type() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("sftp");
    let data = random_bytes(3 << 20, 1);
    std::fs::write(local.join("photo.jpg"), &data).unwrap();
    std::fs::write(local.join("note.txt"), b"hello").unwrap();
    let got = local.join("back.jpg");
    let commands = format!(
        "pwd\nmkdir albums\ncd albums\nput {photo}\nput {note}\nls -l\nrename note.txt notes.txt\nget photo.jpg {got}\n\
         df\nrm notes.txt\ncd ..\nmkdir empty\nrmdir empty\nls -l albums\n",
        photo = local.join("photo.jpg").display(),
        note = local.join("note.txt").display(),
        got = got.display(),
    );
    let output = ssh.sftp(&commands);
    must_succeed("sftp -b", &output);
    let said = text(&output);
    assert!(said.contains("Remote working directory: /\n"), "{said}");
    assert!(said.contains(" 3145728 "), "ls -l shows sizes: {said}");
    assert_eq!(md5_of(&got), md5_hex(&data));
    let home = test.home(USER);
    assert_eq!(md5_of(&home.join("albums/photo.jpg")), md5_hex(&data));
    assert!(!home.join("albums/notes.txt").exists() && !home.join("albums/note.txt").exists());
    assert!(!home.join("empty").exists());
    // df shows the quota: 64 MiB in 1 KiB blocks, 3 MiB and a little used.
    let df = said.lines().skip_while(|line| !line.contains("Size")).nth(1).expect("df printed a line").to_string();
    let numbers: Vec<u64> = df.split_whitespace().filter_map(|word| word.parse().ok()).collect();
    assert_eq!(numbers[0], 64 << 10, "{df}");
    assert!((3 << 10..4 << 10).contains(&numbers[1]), "{df}");
}

/// A directory with more entries than a listing page (`max_list_entries`) is read whole: each
/// directory read gives the next names, a page fetched as the last one runs out.
#[test]
fn a_directory_larger_than_a_listing_page_is_read_whole() {
    let test = TestServer::start_sftp(|config| config.max_list_entries = 3);
    test.add_user(USER, PASSWORD, 1 << 20);
    std::fs::create_dir(test.home(USER).join("few")).unwrap();
    std::fs::write(test.home(USER).join("few").join("inside"), b"in").unwrap();
    for n in 0..10 {
        std::fs::write(test.home(USER).join(format!("f{n}")), format!("file {n}")).unwrap();
    }
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("whole");
    let copy = local.join("copy");
    let output = ssh.sftp(&format!("ls -1\nget -r . {}\n", copy.display()));
    must_succeed("sftp ls and get -r", &output);
    let said = text(&output);
    assert!((0..10).all(|n| said.contains(&format!("f{n}\n"))), "{said}");
    let copied = std::fs::read_dir(&copy).unwrap().count();
    assert_eq!(copied, 11, "ten files and a directory");
    assert_eq!(std::fs::read(copy.join("f9")).unwrap(), b"file 9");
    assert_eq!(std::fs::read(copy.join("few").join("inside")).unwrap(), b"in");
}

#[test]
fn errors_are_clear_and_leave_the_session_serving() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    // `-` before a command lets the batch go on after it fails, as a person's session would.
    let output = ssh.sftp("-get missing.txt /tmp/never\n-rmdir nothere\n-rename a b\nmkdir d\n-mkdir d\nls\n");
    must_succeed("sftp -b with failures", &output);
    let said = text(&output);
    assert!(said.contains("not found") || said.contains("No such file"), "{said}");
    assert!(test.home(USER).join("d").is_dir());
}

#[test]
fn the_home_is_the_root_and_nothing_outside_it_is_reachable() {
    let test = server(64 << 20);
    let home = test.home(USER);
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::symlink("/etc", home.join("escape")).unwrap();
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("jail");
    let outside = local.join("passwd");
    let commands = format!(
        "cd ..\npwd\ncd ../../..\npwd\n-get /etc/passwd {o}\n-get ../../../../etc/passwd {o}\n-get escape/passwd {o}\n\
         -ls escape\n-ln -s /etc/passwd link\n-symlink /etc link2\nmkdir /etc\nput /etc/hostname /etc/hostname\n",
        o = outside.display()
    );
    let output = ssh.sftp(&commands);
    must_succeed("sftp -b", &output);
    let said = text(&output);
    assert_eq!(said.matches("Remote working directory: /\n").count(), 2, "{said}");
    assert!(!outside.exists(), "a file outside the home was read: {said}");
    assert!(said.contains("/link\": Permission denied"), "{said}");
    assert!(!home.join("link").exists() && !home.join("link2").exists());
    // An absolute path names a place in the home.
    assert_eq!(std::fs::read(home.join("etc/hostname")).unwrap(), std::fs::read("/etc/hostname").unwrap());
}

#[test]
fn an_upload_over_the_quota_fails_clearly_and_publishes_nothing() {
    let test = server(1 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("quota");
    std::fs::write(local.join("big.bin"), random_bytes(3 << 20, 2)).unwrap();
    std::fs::write(local.join("small.bin"), random_bytes(1000, 3)).unwrap();
    let output = ssh.sftp(&format!("put {}\n", local.join("big.bin").display()));
    assert!(!output.status.success(), "an upload past the quota succeeded: {}", text(&output));
    // OpenSSH prints only "Failure" of the status; the reason comes on standard error, once.
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(said.matches("quota exceeded").count(), 1, "{said}");
    assert!(said.contains("(error 400)"), "{said}");
    let home = test.home(USER);
    assert!(!home.join("big.bin").exists());
    assert!(common::disk_bytes(&home) <= 1 << 20);
    // The session and the account go on: a file that fits is stored.
    let output = ssh.sftp(&format!("-rm big.bin\nput {}\n", local.join("small.bin").display()));
    must_succeed("a put within the quota", &output);
    assert_eq!(std::fs::read(home.join("small.bin")).unwrap().len(), 1000);
}

/// Runs `command` and kills it once `watched` holds at least `at_least` bytes.
fn killed_midway(mut command: Command, watched: &Path, at_least: u64) {
    let child = command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    common::kill_when_holding(child, watched, at_least);
}

#[test]
fn a_killed_upload_is_resumed_with_reput_and_a_killed_download_with_reget() {
    let test = server(256 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("resume");
    let data = random_bytes(24 << 20, 4);
    let source = local.join("film.mkv");
    std::fs::write(&source, &data).unwrap();
    let home = test.home(USER);
    // `-l` limits the rate (Kbit/s), so the client is killed in the middle.
    let put = ssh.sftp_command(&format!("put {}\n", source.display()), &["-l", "40000"]);
    killed_midway(put, &home.join(".film.mkv.ftpa-part"), 4 << 20);
    assert!(!home.join("film.mkv").exists(), "an interrupted upload was published");
    let output = ssh.sftp(&format!("ls -l\nreput {}\n", source.display()));
    must_succeed("reput", &output);
    assert_eq!(md5_of(&home.join("film.mkv")), md5_hex(&data));
    assert!(!home.join(".film.mkv.ftpa-part").exists());

    let target = local.join("copy.mkv");
    let get = ssh.sftp_command(&format!("get film.mkv {}\n", target.display()), &["-l", "40000"]);
    killed_midway(get, &target, 4 << 20);
    let held = std::fs::metadata(&target).unwrap().len();
    assert!(held < data.len() as u64);
    let output = ssh.sftp(&format!("reget film.mkv {}\n", target.display()));
    must_succeed("reget", &output);
    assert_eq!(md5_of(&target), md5_hex(&data));
}

#[test]
fn scp_copies_both_ways() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("scp");
    let data = random_bytes(2 << 20, 5);
    std::fs::write(local.join("a.bin"), &data).unwrap();
    let up = ssh.scp(&[local.join("a.bin").to_str().unwrap(), "remote:uploaded.bin"]);
    must_succeed("scp up", &up);
    let stored = std::fs::read(test.home(USER).join("uploaded.bin")).unwrap();
    let first_difference = stored.iter().zip(&data).position(|(a, b)| a != b);
    assert_eq!((stored.len(), first_difference), (data.len(), None), "{}", text(&up));
    let down = ssh.scp(&["remote:uploaded.bin", local.join("b.bin").to_str().unwrap()]);
    must_succeed("scp down", &down);
    assert_eq!(md5_of(&local.join("b.bin")), md5_hex(&data));
}

#[test]
fn a_wrong_password_is_refused_and_the_host_key_is_checked() {
    let test = server(64 << 20);
    let wrong = OpenSsh::new(&test, USER, "wrong password");
    let output = wrong.sftp("ls\n");
    assert!(!output.status.success());
    assert!(text(&output).contains("Permission denied"), "{}", text(&output));
    // A client that knows another key for the address refuses to log in.
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    std::fs::write(
        &ssh.known_hosts,
        format!(
            "[127.0.0.1]:{} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n",
            ssh.port
        ),
    )
    .unwrap();
    let output = ssh.sftp("ls\n");
    assert!(!output.status.success());
    assert!(text(&output).contains("HOST IDENTIFICATION HAS CHANGED"), "{}", text(&output));
}

/// rclone's sftp backend: copy, sync and check, with the host key pinned.
#[test]
fn rclone_copies_syncs_and_checks() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("rclone");
    let tree = local.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    for (name, seed) in [("a.bin", 10), ("b.bin", 11), ("sub/c.bin", 12)] {
        std::fs::write(tree.join(name), random_bytes(300_000 + seed as usize, seed)).unwrap();
    }
    let obscured = Command::new("rclone").args(["obscure", PASSWORD]).output().expect("rclone runs");
    let pass = String::from_utf8(obscured.stdout).unwrap().trim().to_string();
    let remote = format!(
        ":sftp,host=127.0.0.1,port={},user={USER},pass={pass},known_hosts_file='{}':backup",
        ssh.port,
        ssh.known_hosts.display()
    );
    // Two checkers: with the transfers, rclone's connections stay within the user's four
    // sessions (docs/INTEROP.md).
    let rclone = |args: &[&str]| {
        let options = ["--config", "/dev/null", "--checkers", "2"];
        Command::new("timeout").arg("120").arg("rclone").args(args).args(options).output().unwrap()
    };
    must_succeed("rclone copy", &rclone(&["copy", tree.to_str().unwrap(), &remote]));
    let home = test.home(USER);
    assert_eq!(md5_of(&home.join("backup/sub/c.bin")), md5_of(&tree.join("sub/c.bin")));
    std::fs::remove_file(tree.join("b.bin")).unwrap();
    std::fs::write(tree.join("a.bin"), random_bytes(5000, 13)).unwrap();
    must_succeed("rclone sync", &rclone(&["sync", tree.to_str().unwrap(), &remote]));
    assert!(!home.join("backup/b.bin").exists());
    assert_eq!(md5_of(&home.join("backup/a.bin")), md5_of(&tree.join("a.bin")));
    let checked = rclone(&["check", tree.to_str().unwrap(), &remote]);
    must_succeed("rclone check", &checked);
    // Checked by MD5: rclone found the server's md5sum and compared every file's digest.
    assert!(!text(&checked).contains("could not be checked"), "{}", text(&checked));
    // A file damaged on the server, its size kept, is found by its MD5.
    let damaged = home.join("backup/sub/c.bin");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&damaged, &bytes).unwrap();
    let checked = rclone(&["check", tree.to_str().unwrap(), &remote]);
    assert!(!checked.status.success(), "a damaged file passed the check: {}", text(&checked));
    assert!(text(&checked).contains("1 differences found"), "{}", text(&checked));
}

/// `md5sum` is the one command besides the subsystem: through the jail, from the stored
/// digest; anything else is refused (exit status 127) and nothing runs.
#[test]
fn md5sum_answers_through_the_jail_and_nothing_else_runs() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let home = test.home(USER);
    std::fs::create_dir_all(home.join("dir")).unwrap();
    let data = random_bytes(200_000, 40);
    std::fs::write(home.join("dir/my file.bin"), &data).unwrap();
    let output = ssh.ssh("md5sum dir/my\\ file.bin");
    must_succeed("md5sum", &output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{}  dir/my file.bin\n", md5_hex(&data)));
    let outside = ssh.ssh("md5sum ../../etc/passwd");
    assert_eq!(outside.status.code(), Some(1), "{}", text(&outside));
    assert!(text(&outside).contains("error 300"), "{}", text(&outside));
    let marker = test.dir.path().join("ran");
    let refused = ssh.ssh(&format!("touch {}", marker.display()));
    assert_eq!(refused.status.code(), Some(127), "{}", text(&refused));
    assert!(text(&refused).contains("only the sftp subsystem and md5sum"), "{}", text(&refused));
    let chained = ssh.ssh(&format!("md5sum dir/a; touch {}", marker.display()));
    assert_eq!(chained.status.code(), Some(127), "{}", text(&chained));
    assert!(!marker.exists(), "a command ran");
}

/// What every paramiko script starts with: its arguments (the port, the known-hosts file, the
/// user, the password, then the script's own) and `connect()`, which checks the host key.
const PARAMIKO_PRELUDE: &str = r#"
import sys, paramiko
port, known_hosts, user, password = sys.argv[1:5]

def connect():
    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect("127.0.0.1", port=int(port), username=user, password=password, allow_agent=False, look_for_keys=False)
    return client, client.open_sftp()
"#;

/// Runs a paramiko `script` (after [`PARAMIKO_PRELUDE`]) with the system Python (Debian's
/// python3-paramiko); `extra` are its own arguments, from `sys.argv[5]` on.
fn paramiko(script: &str, ssh: &OpenSsh, extra: &[&str]) -> Output {
    Command::new("timeout")
        .args(["120", "/usr/bin/python3", "-c", &format!("{PARAMIKO_PRELUDE}{script}")])
        .arg(ssh.port.to_string())
        .arg(&ssh.known_hosts)
        .args([USER, PASSWORD])
        .args(extra)
        .output()
        .expect("the system python3 runs")
}

/// A client that never reads the channel's standard error (paramiko) keeps being answered
/// however many requests fail: the failures told there are bounded, so they cannot fill the
/// channel's window (2 MiB in paramiko) ahead of the replies. 12,000 failures of 230 bytes
/// each, two messages in turn (a message repeated at once is told once), would be 2.7 MiB.
#[test]
fn many_failures_do_not_stall_a_client_that_ignores_standard_error() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let script = r#"
client, sftp = connect()
names = ["x" * 200, "y" * 200]
for name in names:
    sftp.mkdir(name)
def refused(name):
    try:
        sftp.mkdir(name)
    except OSError:
        return True
    return False
assert all(refused(names[n % 2]) for n in range(12000)), "mkdir of an existing directory succeeded"
print("still answered", sftp.listdir("."))
"#;
    let output = paramiko(script, &ssh, &[]);
    must_succeed("paramiko", &output);
    assert!(text(&output).contains("still answered"), "{}", text(&output));
}

/// paramiko, the SFTP library of Python's tools (Debian's python3-paramiko, for the system
/// Python).
#[test]
fn paramiko_lists_stats_renames_and_transfers() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let local = test.work_dir("paramiko");
    let data = random_bytes(1 << 20, 20);
    std::fs::write(local.join("in.bin"), &data).unwrap();
    let script = r#"
local = sys.argv[5]
client, sftp = connect()
sftp.mkdir("docs")
sftp.put(local + "/in.bin", "docs/in.bin")
assert sftp.stat("docs/in.bin").st_size == 1 << 20
sftp.rename("docs/in.bin", "docs/moved.bin")
assert sftp.listdir("docs") == ["moved.bin"], sftp.listdir("docs")
sftp.get("docs/moved.bin", local + "/out.bin")
try:
    sftp.stat("docs/in.bin")
    raise SystemExit("a renamed file is still there")
except FileNotFoundError:
    pass
print("realpath", sftp.normalize("."))
sftp.close()
client.close()
"#;
    let output = paramiko(script, &ssh, &[local.to_str().unwrap()]);
    must_succeed("paramiko", &output);
    assert!(text(&output).contains("realpath /"), "{}", text(&output));
    assert_eq!(md5_of(&local.join("out.bin")), md5_hex(&data));
    assert_eq!(md5_of(&test.home(USER).join("docs/moved.bin")), md5_hex(&data));
}

/// paramiko's mode `"a"` opens with `SSH_FXF_APPEND` and writes from offset 0, trusting the
/// server to append, as the protocol says: the bytes go after the file's (none are lost), an
/// append to a name that does not exist creates it, one that writes nothing changes nothing,
/// and mode `"w"` still replaces the file.
#[test]
fn paramiko_appends_with_the_append_flag() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let script = r#"
client, sftp = connect()
with sftp.open("log.txt", "w") as f:
    f.write(b"first line\n")
with sftp.open("log.txt", "a") as f:
    f.write(b"second ")
    f.write(b"line\n")
with sftp.open("log.txt", "a") as f:
    pass
with sftp.open("new.txt", "a") as f:
    f.write(b"created by an append\n")
with sftp.open("replaced.txt", "w") as f:
    f.write(b"old and long\n")
with sftp.open("replaced.txt", "w") as f:
    f.write(b"new\n")
sftp.close()
client.close()
"#;
    let output = paramiko(script, &ssh, &[]);
    must_succeed("paramiko", &output);
    let home = test.home(USER);
    assert_eq!(std::fs::read_to_string(home.join("log.txt")).unwrap(), "first line\nsecond line\n");
    assert_eq!(std::fs::read_to_string(home.join("new.txt")).unwrap(), "created by an append\n");
    assert_eq!(std::fs::read_to_string(home.join("replaced.txt")).unwrap(), "new\n");
}

/// `ftp-actor user key` (the real binary) on the server's data directory.
fn user_key(test: &TestServer, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ftp-actor"));
    command.arg("user").arg("key").args(args).arg("--data-dir").arg(test.data_dir());
    command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

/// Waits until a running server has loaded the store as changed (it polls it).
fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what} did not happen");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn public_keys_added_with_user_key_log_in_and_a_removed_one_no_longer_does() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let keys = test.work_dir("keys");
    let ed25519 = common::sftp::new_key(&keys, "laptop", "ed25519");
    let rsa = common::sftp::new_key(&keys, "desktop", "rsa");
    let stranger = common::sftp::new_key(&keys, "stranger", "ed25519");
    // Before any key is added, a key login is refused and the password still works.
    let refused = ssh.sftp_with_key(&ed25519, "pwd\n");
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(text(&refused).contains("Permission denied"), "{}", text(&refused));
    must_succeed("key add", &user_key(&test, &["add", USER, ed25519.with_extension("pub").to_str().unwrap()], None));
    let rsa_line = std::fs::read_to_string(rsa.with_extension("pub")).unwrap();
    let added = user_key(&test, &["add", USER, "-"], Some(&format!("# from stdin\n{rsa_line}")));
    must_succeed("key add -", &added);
    let listed = user_key(&test, &["list", USER], None);
    must_succeed("key list", &listed);
    let fingerprint = |key: &Path| {
        let shown = Command::new("ssh-keygen").arg("-lf").arg(key.with_extension("pub")).output().unwrap();
        String::from_utf8(shown.stdout).unwrap().split_whitespace().nth(1).unwrap().to_string()
    };
    let list = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(list.contains(&fingerprint(&ed25519)) && list.contains(&fingerprint(&rsa)), "{list}");
    assert!(list.contains("laptop") && list.contains("desktop"), "{list}");
    // Options are refused, not silently dropped.
    let with_options =
        format!("from=\"10.0.0.1\" {}", std::fs::read_to_string(stranger.with_extension("pub")).unwrap());
    let refused_line = user_key(&test, &["add", USER, "-"], Some(&with_options));
    assert!(!refused_line.status.success());
    assert!(String::from_utf8_lossy(&refused_line.stderr).contains("options"));
    until("the server sees the keys", || ssh.sftp_with_key(&ed25519, "pwd\n").status.success());
    let local = test.work_dir("key-transfer");
    std::fs::write(local.join("k.bin"), random_bytes(100_000, 30)).unwrap();
    let output = ssh.sftp_with_key(&rsa, &format!("put {}\n", local.join("k.bin").display()));
    must_succeed("a put logged in with an RSA key", &output);
    assert_eq!(md5_of(&test.home(USER).join("k.bin")), md5_of(&local.join("k.bin")));
    let stranger_login = ssh.sftp_with_key(&stranger, "pwd\n");
    assert!(!stranger_login.status.success(), "a key never added logged in");
    // Removed by its fingerprint: it no longer logs in; the other key still does.
    must_succeed("key del", &user_key(&test, &["del", USER, &fingerprint(&ed25519)], None));
    until("the server forgets the key", || !ssh.sftp_with_key(&ed25519, "pwd\n").status.success());
    must_succeed("the remaining key", &ssh.sftp_with_key(&rsa, "pwd\n"));
    let missing = user_key(&test, &["del", USER, &fingerprint(&ed25519)], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("has no key"), "{}", text(&missing));
}

/// What a clumsy or hostile client sends, through paramiko's channel: a write that does not
/// follow the previous one, a packet type nobody defined, too many open files, a packet far
/// larger than the limit. Each gets a clear answer, and the server goes on serving.
#[test]
fn hostile_requests_get_clear_answers_and_the_server_goes_on() {
    let test = server(64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    std::fs::create_dir_all(test.home(USER)).unwrap();
    std::fs::write(test.home(USER).join("small.txt"), b"hello").unwrap();
    let script = r#"
import struct

client, sftp = connect()
# A write that skips ahead: refused, the file not published, the bytes before it kept.
f = sftp.open("holes.bin", "w")
f.set_pipelined(False)
f.write(b"a" * 1000)
f.seek(5000)
try:
    f.write(b"b" * 10)
    f.close()
    raise SystemExit("a write past a hole was accepted")
except IOError as refused:
    print("hole:", refused)
    try:
        f.close()
    except IOError as closed:
        print("close after the hole:", closed)
# A request type nobody defined: answered, the session goes on.
body = struct.pack(">BI", 150, 77)
sftp.sock.sendall(struct.pack(">I", len(body)) + body)
kind, data = sftp._read_packet()
code = struct.unpack(">II", data[:8])
print("unknown type:", kind, code)
assert sftp.stat("small.txt").st_size == 5
# Too many open files.
opened = []
try:
    for _ in range(40):
        opened.append(sftp.open("small.txt", "r"))
    raise SystemExit("no limit on open handles")
except IOError as refused:
    print("handles:", len(opened), refused)
for handle in opened:
    handle.close()
assert sftp.open("small.txt", "r").read() == b"hello"
# A packet announced far past the limit: the connection is closed.
sftp.sock.sendall(struct.pack(">I", 64 << 20) + b"x" * 1000)
try:
    sftp.stat("small.txt")
    raise SystemExit("the server went on reading a 64 MiB packet")
except Exception as closed:
    print("oversized:", type(closed).__name__)
client.close()
# Everyone else, and the same user again, are still served.
client, sftp = connect()
assert sftp.open("small.txt", "r").read() == b"hello"
print("served again")
"#;
    let output = paramiko(script, &ssh, &[]);
    must_succeed("paramiko as a hostile client", &output);
    let said = text(&output);
    assert!(said.contains("written in order") || said.contains("does not follow"), "{said}");
    // SSH_FXP_STATUS (101) for request 77, "operation unsupported" (8).
    assert!(said.contains("unknown type: 101 (77, 8)"), "{said}");
    assert!(said.contains("handles: 4 "), "{said}");
    assert!(said.contains("served again"), "{said}");
    let home = test.home(USER);
    assert!(!home.join("holes.bin").exists(), "a file with a hole was published");
    assert_eq!(std::fs::metadata(home.join(".holes.bin.ftpa-part")).map(|m| m.len()).unwrap_or(0), 1000);
}

/// A client that opens a file for writing and then goes silent: after `transfer_stall_secs`
/// the session is closed, its bytes kept for a resume, and the path free for another upload at
/// once (not after the idle timeout).
#[test]
fn a_stalled_upload_is_closed_and_its_path_freed() {
    let test = TestServer::start_sftp(|config| config.transfer_stall_secs = 1);
    test.add_user(USER, PASSWORD, 64 << 20);
    let ssh = OpenSsh::new(&test, USER, PASSWORD);
    let script = r#"
import time
client, sftp = connect()
f = sftp.open("slow.bin", "w")
f.set_pipelined(False)
f.write(b"x" * 3000)
f.flush()
time.sleep(4)
try:
    f.write(b"y" * 10)
    f.close()
    raise SystemExit("a stalled upload was still open")
except Exception as closed:
    print("stalled:", type(closed).__name__)
other, sftp2 = connect()
started = time.time()
with sftp2.open("slow.bin", "w") as g:
    g.write(b"fresh")
print("second upload in %.1f s" % (time.time() - started))
"#;
    let output = paramiko(script, &ssh, &[]);
    must_succeed("paramiko", &output);
    let said = text(&output);
    assert!(said.contains("stalled:"), "{said}");
    assert_eq!(std::fs::read(test.home(USER).join("slow.bin")).unwrap(), b"fresh");
}
