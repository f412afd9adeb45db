//! The FTP/FTPS front end, driven by clients nobody here wrote: curl, lftp, rclone and
//! Python's ftplib, as installed from Debian (`.ci/run` installs them when missing). Every
//! client talks TLS and checks the server's generated certificate, except rclone, whose FTP
//! backend can only skip the check. Assertions are on what a user would see: bytes on disk,
//! MD5s, exit codes and reply codes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{REUSING_FTP_TLS, TestServer, ftplib_script, md5_hex, must_succeed, random_bytes};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

/// Runs a client with a time limit, so a hung client fails the test instead of stalling CI.
fn run(program: &str, args: &[&str]) -> Output {
    let output = Command::new("timeout")
        .arg("120")
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (bash .ci/run installs the FTP clients)"));
    if output.status.code() == Some(127) {
        panic!("{program} is not installed (bash .ci/run installs curl, lftp and rclone)");
    }
    output
}

fn server(quota: u64) -> TestServer {
    let test = TestServer::start_ftp(|_| {});
    test.add_user(USER, PASSWORD, quota);
    test
}

fn curl_url(test: &TestServer, path: &str) -> String {
    format!("ftp://{USER}:{}@127.0.0.1:{}{path}", PASSWORD.replace(' ', "%20"), test.ftp_addr().port())
}

/// curl's options for FTPS with the test server's certificate.
fn curl_tls(cert: &Path) -> [&str; 4] {
    ["-sS", "--ssl-reqd", "--cacert", cert.to_str().unwrap()]
}

fn curl(test: &TestServer, extra: &[&str]) -> Output {
    let cert = test.cert();
    let mut args = curl_tls(&cert).to_vec();
    args.extend_from_slice(extra);
    run("curl", &args)
}

/// Runs curl with `extra` and kills it (SIGKILL) once `watched` holds `at_least` bytes: a
/// client killed mid-transfer, so neither connection gets a TLS close_notify. (curl's own
/// `--max-time` sends one on the data connection, which by FTPS's rules ends the file.)
fn curl_killed_midway(test: &TestServer, extra: &[&str], watched: &Path, at_least: u64) {
    let cert = test.cert();
    let child = Command::new("curl").args(curl_tls(&cert)).args(extra).spawn().expect("cannot run curl");
    common::kill_when_holding(child, watched, at_least);
}

/// Every regular file under `dir` with its MD5, by relative path.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(relative, md5_hex(&std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A local tree of nested directories and files, one of them big enough to interrupt.
fn make_tree(root: &Path, big: usize) -> PathBuf {
    for (name, len, seed) in
        [("big.bin", big, 1), ("docs/readme.txt", 100, 2), ("docs/deep/er/notes.md", 5000, 3), ("empty.txt", 0, 4)]
    {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, random_bytes(len, seed)).unwrap();
    }
    root.to_path_buf()
}

#[test]
fn curl_uploads_downloads_and_resumes_both_ways_over_tls() {
    let test = server(1 << 30);
    let data = random_bytes(24 << 20, 7);
    let source = test.local("source.bin");
    std::fs::write(&source, &data).unwrap();
    let url = curl_url(&test, "/upload.bin");

    // An upload whose client is killed (at 2 MB/s, after 1 MiB) leaves a hidden partial...
    let partial = test.home(USER).join(".upload.bin.ftpa-part");
    curl_killed_midway(&test, &["--limit-rate", "2M", "-T", source.to_str().unwrap(), &url], &partial, 1 << 20);
    let kept = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
    assert!(kept > 0 && kept < data.len() as u64, "partial of {kept} bytes");
    assert!(!test.home(USER).join("upload.bin").exists(), "an incomplete upload is not published");

    // ...which `curl -C -` (SIZE, then APPE) continues, sent at once: the server may still be
    // writing what reached it, and the resume waits for that instead of getting 550.
    must_succeed("resumed upload", &curl(&test, &["-C", "-", "-T", source.to_str().unwrap(), &url]));
    assert_eq!(md5_hex(&std::fs::read(test.home(USER).join("upload.bin")).unwrap()), md5_hex(&data));
    assert!(!partial.exists());
    assert_eq!(used(&test), data.len() as u64, "the quota counts the file exactly once");

    // A download cut short keeps its local bytes; `-C -` asks REST for the rest.
    let target = test.local("download.bin");
    curl_killed_midway(&test, &["--limit-rate", "2M", "-o", target.to_str().unwrap(), &url], &target, 1 << 20);
    let have = std::fs::metadata(&target).unwrap().len();
    assert!(have > 0 && have < data.len() as u64, "local partial of {have} bytes");
    must_succeed("resumed download", &curl(&test, &["-C", "-", "-o", target.to_str().unwrap(), &url]));
    assert_eq!(md5_hex(&std::fs::read(&target).unwrap()), md5_hex(&data));

    // The listing shows the file with its size; the hidden partial never appears.
    let listing = curl(&test, &[&curl_url(&test, "/")]);
    must_succeed("listing", &listing);
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains(&format!("{} ", data.len())) && listing.contains("upload.bin"), "{listing}");
    assert!(!listing.contains("part"), "{listing}");
}

#[test]
fn a_configured_certificate_is_used_instead_of_a_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("site.pem"), dir.path().join("site.key"));
    ftp_actor::ftp::tls::generate_if_missing(&cert, &key).unwrap();
    let test = TestServer::start_ftp(|config| {
        config.ftp.tls_cert = cert.clone();
        config.ftp.tls_key = key.clone();
    });
    test.add_user(USER, PASSWORD, 1 << 20);
    assert!(!test.cert().exists(), "no certificate is generated when one is configured");
    let listing = run("curl", &["-sS", "--ssl-reqd", "--cacert", cert.to_str().unwrap(), &curl_url(&test, "/")]);
    must_succeed("curl with the configured certificate", &listing);
}

#[test]
fn curl_without_tls_or_with_a_wrong_password_is_refused() {
    let test = server(1 << 20);
    let plain = run("curl", &["-sS", &curl_url(&test, "/")]);
    assert_eq!(plain.status.code(), Some(67), "plaintext login must be refused: {plain:?}");
    assert!(String::from_utf8_lossy(&plain.stderr).contains("530"));
    let wrong = format!("ftp://{USER}:wrong@127.0.0.1:{}/", test.ftp_addr().port());
    let denied = curl(&test, &[&wrong]);
    assert_eq!(denied.status.code(), Some(67), "{denied:?}");
}

#[test]
fn curl_sees_quota_and_jail_refusals() {
    let test = server(1 << 20);
    let source = test.local("big.bin");
    // Far past the quota (the server once stopped reading 64 MiB past it, and curl saw a
    // broken pipe instead of the 552).
    std::fs::write(&source, random_bytes(80 << 20, 9)).unwrap();
    let over = curl(&test, &["-T", source.to_str().unwrap(), &curl_url(&test, "/big.bin")]);
    // 70 is curl's "remote disk full", its meaning of reply 552.
    assert_eq!(over.status.code(), Some(70), "an upload over quota must fail with 552: {over:?}");
    assert!(!test.home(USER).join("big.bin").exists());
    let kept = std::fs::metadata(test.home(USER).join(".big.bin.ftpa-part")).map_or(0, |m| m.len());
    assert!(kept <= 1 << 20, "the partial stays within the quota: {kept}");
    assert_eq!(used(&test), kept, "the quota counts the kept partial, nothing more");

    std::fs::write(test.dir.path().join("secret.txt"), "outside").unwrap();
    let escape = curl(&test, &["--path-as-is", &curl_url(&test, "/../../secret.txt")]);
    assert!(!escape.status.success(), "{escape:?}");
    assert!(escape.stdout.is_empty());
}

/// The user's quota usage as the server's QuotaActor reports it (through the native client),
/// once no upload holds a reservation any more.
fn used(test: &TestServer) -> u64 {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = test.login(USER, PASSWORD).await;
        common::wait_for_quota(&mut client, |_, _| true).await.0
    })
}

#[test]
fn concurrent_curl_uploads_never_pass_the_quota_together() {
    let test = server(10 << 20);
    let source = test.local("four.bin");
    std::fs::write(&source, random_bytes(4 << 20, 13)).unwrap();
    let uploads: Vec<_> = (0..4)
        .map(|i| {
            let (url, cert, source) = (curl_url(&test, &format!("/copy{i}.bin")), test.cert(), source.clone());
            std::thread::spawn(move || {
                let args =
                    ["-sS", "--ssl-reqd", "--cacert", cert.to_str().unwrap(), "-T", source.to_str().unwrap(), &url];
                run("curl", &args).status.code()
            })
        })
        .collect();
    let codes: Vec<_> = uploads.into_iter().map(|upload| upload.join().unwrap()).collect();
    let stored = codes.iter().filter(|&&code| code == Some(0)).count();
    assert!(stored <= 2, "10 MiB holds at most two 4 MiB files: {codes:?}");
    assert!(codes.iter().all(|&code| code == Some(0) || code == Some(70)), "{codes:?}");
    let on_disk: u64 = std::fs::read_dir(test.home(USER)).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    assert!(on_disk <= 10 << 20, "{on_disk} bytes on disk");
    assert_eq!(used(&test), on_disk, "the ledger matches the disk");
}

fn lftp_script(test: &TestServer, commands: &str) -> String {
    format!(
        "set ssl:ca-file {}; set ftp:ssl-force true; set ftp:ssl-protect-data true; set net:max-retries 1; \
         open -u {USER},'{PASSWORD}' ftp://127.0.0.1:{}; {commands}",
        test.cert().display(),
        test.ftp_addr().port()
    )
}

#[test]
fn lftp_mirrors_a_tree_both_ways_and_continues_after_an_interruption() {
    let test = server(1 << 30);
    let local = make_tree(&test.local("tree"), 8 << 20);

    // Interrupted: lftp is killed mid-way through the big file.
    let limited = lftp_script(&test, &format!("set net:limit-rate 2000000; mirror -R {} /tree", local.display()));
    let killed = run("timeout", &["-s", "KILL", "2", "lftp", "-c", &limited]);
    assert!(!killed.status.success(), "the first mirror should be cut: {killed:?}");
    let mirror_up = lftp_script(&test, &format!("mirror -R --continue {} /tree", local.display()));
    must_succeed("lftp mirror -R --continue", &run("lftp", &["-c", &mirror_up]));
    assert_eq!(tree(&test.home(USER).join("tree")), tree(&local));

    // Back down, interrupted the same way, then continued.
    let back = test.local("back");
    let limited = lftp_script(&test, &format!("set net:limit-rate 2000000; mirror /tree {}", back.display()));
    let killed = run("timeout", &["-s", "KILL", "2", "lftp", "-c", &limited]);
    assert!(!killed.status.success(), "the download mirror should be cut: {killed:?}");
    let mirror_down = lftp_script(&test, &format!("mirror --continue /tree {}", back.display()));
    must_succeed("lftp mirror --continue", &run("lftp", &["-c", &mirror_down]));
    assert_eq!(tree(&back), tree(&local));
}

#[test]
fn lftp_sees_quota_and_jail_refusals() {
    let test = server(1 << 20);
    let source = test.local("big.bin");
    std::fs::write(&source, random_bytes(80 << 20, 11)).unwrap();
    let over = run("lftp", &["-c", &lftp_script(&test, &format!("put {} -o /big.bin", source.display()))]);
    assert!(!over.status.success(), "{over:?}");
    assert!(String::from_utf8_lossy(&over.stderr).contains("552"), "{over:?}");
    assert!(!test.home(USER).join("big.bin").exists());

    std::fs::write(test.dir.path().join("secret.txt"), "outside").unwrap();
    let out = test.local("stolen.txt");
    let escape = run("lftp", &["-c", &lftp_script(&test, &format!("get /../../secret.txt -o {}", out.display()))]);
    assert!(!escape.status.success(), "{escape:?}");
    assert!(std::fs::read(&out).map_or(true, |bytes| bytes.is_empty()));
}

fn rclone_remote(test: &TestServer) -> String {
    let obscured = run("rclone", &["obscure", PASSWORD]);
    must_succeed("rclone obscure", &obscured);
    let pass = String::from_utf8(obscured.stdout).unwrap().trim().to_string();
    format!(
        ":ftp,host=127.0.0.1,port={},user={USER},pass={pass},explicit_tls=true,no_check_certificate=true:",
        test.ftp_addr().port()
    )
}

/// Runs rclone with the test's own (empty) configuration file, so no user configuration of
/// the machine is read; the remote itself is a connection string (`rclone_remote`).
fn rclone(test: &TestServer, args: &[&str]) -> Output {
    let config = test.local("rclone.conf");
    let mut all = vec!["--config", config.to_str().unwrap()];
    all.extend_from_slice(args);
    run("rclone", &all)
}

/// A directory with more entries than a listing page (`max_list_entries`) is copied whole by
/// lftp's `mirror` and rclone: the server sends its listing a page at a time.
#[test]
fn mirrors_of_a_directory_larger_than_a_listing_page_copy_all_of_it() {
    let test = TestServer::start_ftp(|config| config.max_list_entries = 3);
    test.add_user(USER, PASSWORD, 1 << 20);
    let big = test.home(USER).join("big");
    std::fs::create_dir(&big).unwrap();
    for n in 0..10 {
        std::fs::write(big.join(format!("f{n}")), format!("file {n}")).unwrap();
    }
    let count = |dir: &Path| std::fs::read_dir(dir).map_or(0, |entries| entries.count());
    let mirrored_to = test.local("mirrored");
    let mirrored = run("lftp", &["-c", &lftp_script(&test, &format!("mirror /big {}", mirrored_to.display()))]);
    must_succeed("lftp mirror", &mirrored);
    assert_eq!(count(&mirrored_to), 10, "lftp mirror");
    let copied_to = test.local("copied");
    let copied = rclone(&test, &["copy", &format!("{}/big", rclone_remote(&test)), copied_to.to_str().unwrap()]);
    assert!(copied.status.success(), "{copied:?}");
    assert_eq!(count(&copied_to), 10, "rclone copy");
    assert_eq!(std::fs::read(copied_to.join("f7")).unwrap(), b"file 7");
}

#[test]
fn rclone_copies_checks_and_verifies_md5_by_download() {
    let test = server(1 << 30);
    let local = make_tree(&test.local("tree"), 3 << 20);
    let remote = format!("{}/backup", rclone_remote(&test));
    must_succeed("rclone copy", &rclone(&test, &["copy", local.to_str().unwrap(), &remote]));
    must_succeed("rclone check", &rclone(&test, &["check", local.to_str().unwrap(), &remote]));
    let sums = rclone(&test, &["md5sum", "--download", &remote]);
    must_succeed("rclone md5sum --download", &sums);
    let remote_sums: BTreeMap<String, String> = String::from_utf8_lossy(&sums.stdout)
        .lines()
        .filter_map(|line| line.split_once("  ").map(|(md5, path)| (path.to_string(), md5.to_string())))
        .collect();
    assert_eq!(remote_sums, tree(&local));
    assert_eq!(tree(&test.home(USER).join("backup")), tree(&local));
    // rclone keeps modification times through MFMT.
    let seconds = |path: PathBuf| {
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    };
    let stored = test.home(USER).join("backup/docs/readme.txt");
    assert_eq!(seconds(stored), seconds(local.join("docs/readme.txt")));
}

#[test]
fn rclone_cannot_leave_the_home() {
    let test = server(1 << 20);
    std::fs::create_dir_all(test.home(USER)).unwrap();
    std::os::unix::fs::symlink("/etc", test.home(USER).join("etc-link")).unwrap();
    let remote = rclone_remote(&test);
    let through_link = rclone(&test, &["cat", &format!("{remote}etc-link/passwd")]);
    assert!(!through_link.status.success(), "{through_link:?}");
    assert!(through_link.stdout.is_empty(), "nothing of /etc/passwd may come back");
    // Above the home: refused (550), or cleaned by rclone to the home itself.
    let home = rclone(&test, &["lsf", &remote]);
    must_succeed("rclone lsf", &home);
    for above in ["../..", "/../.."] {
        let listed = rclone(&test, &["lsf", &format!("{remote}{above}")]);
        assert!(!listed.status.success() || listed.stdout == home.stdout, "{above}: {listed:?}");
    }
}

#[test]
fn rclone_sees_the_quota() {
    let test = server(1 << 20);
    let local = make_tree(&test.local("tree"), 80 << 20);
    let remote = format!("{}/backup", rclone_remote(&test));
    let copy = rclone(&test, &["--retries", "1", "copy", local.to_str().unwrap(), &remote]);
    assert!(!copy.status.success(), "{copy:?}");
    assert!(String::from_utf8_lossy(&copy.stderr).contains("552"), "{copy:?}");
    assert!(!test.home(USER).join("backup/big.bin").exists());
}

/// Runs an ftplib `script` (after [`REUSING_FTP_TLS`]) with the arguments port, certificate,
/// user, password, then `extra`; it must succeed and print "ok".
fn run_ftplib(test: &TestServer, script: &str, extra: &[&str]) {
    let (port, cert) = (test.ftp_addr().port().to_string(), test.cert());
    let mut args = vec![port.as_str(), cert.to_str().unwrap(), USER, PASSWORD];
    args.extend_from_slice(extra);
    assert_eq!(ftplib_script("ftplib script", script, &args), "ok");
}

/// Python's ftplib (standard library): FTP_TLS with certificate checks, MLSD, HASH, XMD5,
/// refusals for plaintext logins, the quota and the jail.
#[test]
fn python_ftplib_lists_hashes_and_is_refused_where_it_should_be() {
    let test = server(1 << 20);
    let home = test.home(USER);
    std::fs::create_dir_all(home.join("sub")).unwrap();
    let content = random_bytes(300_000, 5);
    std::fs::write(home.join("sub/data.bin"), &content).unwrap();
    std::os::unix::fs::symlink("/etc", home.join("etc-link")).unwrap();
    let script = r#"
import ftplib, ssl, sys, io, faulthandler
# ftplib has no timeout: if a reply never comes, print where the script waits before the
# test's 120 s limit kills it (one unexplained hang in a full run, 2026-12-04).
faulthandler.dump_traceback_later(100, exit=True)
port, cert, user, password, md5 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]

plain = ftplib.FTP()
plain.connect("127.0.0.1", port)
try:
    plain.login(user, password)
    sys.exit("plaintext login was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("530"), e
plain.close()

# Stock FTP_TLS negotiates a new TLS session on each data connection: refused with 522.
stock = ftplib.FTP_TLS(context=ssl.create_default_context(cafile=cert))
stock.connect("127.0.0.1", port)
stock.login(user, password)
stock.prot_p()
try:
    stock.nlst("/sub")
    sys.exit("a data connection without session reuse was served")
except OSError:
    # The data connection is dropped after its handshake; the transfer's reply follows.
    try:
        stock.getresp()
        sys.exit("no refusal")
    except ftplib.error_perm as e:
        assert str(e).startswith("522"), e
stock.close()

ftp = ReusingFTP_TLS(context=ssl.create_default_context(cafile=cert))
ftp.connect("127.0.0.1", port)
ftp.login(user, password)
ftp.prot_p()
facts = dict(ftp.mlsd("/sub"))
assert facts["data.bin"]["type"] == "file" and facts["data.bin"]["size"] == "300000", facts
assert ftp.sendcmd("HASH /sub/data.bin") == f"213 MD5 0-299999 {md5} /sub/data.bin"
assert ftp.sendcmd("XMD5 /sub/data.bin") == f"250 {md5}"
assert ftp.size("/sub/data.bin") == 300000
buffer = io.BytesIO()
ftp.retrbinary("RETR /sub/data.bin", buffer.write)
import hashlib
assert hashlib.md5(buffer.getvalue()).hexdigest() == md5
ftp.cwd("sub")
assert ftp.pwd() == "/sub"
ftp.mkd("new")
ftp.storbinary("STOR new/up.bin", io.BytesIO(b"x" * 1000))
assert ftp.size("new/up.bin") == 1000
ftp.rename("new/up.bin", "new/moved.bin")
assert ftp.nlst("new") == ["moved.bin"]

for command in ["CWD /..", "RETR /../../etc/passwd", "RETR /etc-link/passwd", "SIZE ../../etc/passwd"]:
    try:
        if command.startswith("RETR"):
            ftp.retrbinary(command, lambda b: sys.exit(f"{command} returned data"))
        else:
            ftp.sendcmd(command)
        sys.exit(f"{command} was allowed")
    except ftplib.error_perm as e:
        assert str(e)[:3] in ("550", "553"), (command, e)

try:
    ftp.storbinary("STOR big.bin", io.BytesIO(b"y" * (80 << 20)))
    sys.exit("an upload over quota was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("552"), e
ftp.quit()
print("ok")
"#;
    run_ftplib(&test, script, &[&md5_hex(&content)]);
    assert_eq!(std::fs::read(home.join("sub/new/moved.bin")).unwrap(), vec![b'x'; 1000]);
    assert!(!home.join("sub/big.bin").exists());
}

/// The classic BSD `ftp` client (Debian's tnftp) over plain FTP (loopback,
/// `ftp.allow_plaintext_login`; it has no TLS): `mget *.bin` asks `NLST *.bin` and fetches
/// every file it names, byte for byte, leaving out a partial upload and a hidden file; `mput`
/// stores local files.
#[test]
fn the_classic_ftp_client_mgets_and_mputs_with_patterns() {
    let test = TestServer::start_ftp(|config| config.ftp.allow_plaintext_login = true);
    test.add_user(USER, PASSWORD, 1 << 30);
    let home = test.home(USER);
    let files: Vec<(String, Vec<u8>)> =
        (0..3).map(|n| (format!("f{n}.bin"), random_bytes(100_000 + n * 7_000, 50 + n as u64))).collect();
    for (name, data) in &files {
        std::fs::write(home.join(name), data).unwrap();
    }
    std::fs::write(home.join(".hidden.bin"), b"hidden").unwrap();
    std::fs::write(home.join(".half.bin.ftpa-part"), b"a partial upload").unwrap();
    std::fs::write(home.join("notes.txt"), b"not matched").unwrap();
    let local = test.work_dir("tnftp");
    std::fs::write(local.join("up1.dat"), random_bytes(30_000, 60)).unwrap();
    std::fs::write(local.join("up2.dat"), random_bytes(40_000, 61)).unwrap();
    let script = format!("user {USER} \"{PASSWORD}\"\nbinary\nprompt off\nmget *.bin\nmput *.dat\nbye\n");
    let output = Command::new("timeout")
        .args(["120", "tnftp", "-n", "-p", "127.0.0.1", &test.ftp_addr().port().to_string()])
        .current_dir(&local)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(script.as_bytes())?;
            child.wait_with_output()
        })
        .expect("cannot run tnftp (bash .ci/run installs it)");
    must_succeed("tnftp", &output);
    for (name, data) in &files {
        let fetched = std::fs::read(local.join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}\n{}", String::from_utf8_lossy(&output.stdout)));
        assert!(fetched == *data, "{name} came whole");
    }
    for left_out in [".hidden.bin", "half.bin", "notes.txt"] {
        assert!(!local.join(left_out).exists(), "{left_out} was fetched");
    }
    for name in ["up1.dat", "up2.dat"] {
        assert_eq!(std::fs::read(home.join(name)).unwrap(), std::fs::read(local.join(name)).unwrap(), "{name}");
    }
}

/// Python's ftplib over plain FTP (loopback, `ftp.allow_plaintext_login`), whose `abort()`
/// sends ABOR as TCP urgent data: during an upload and a download it hears 426 then 226, the
/// session goes on, and the aborted upload is continued from what SIZE reports (REST + STOR)
/// into the whole file.
#[test]
fn python_ftplib_aborts_transfers_and_resumes_the_aborted_upload() {
    let test = TestServer::start_ftp(|config| config.ftp.allow_plaintext_login = true);
    test.add_user(USER, PASSWORD, 1 << 30);
    let content = random_bytes(3 << 20, 41);
    let local = test.local("upload.bin");
    std::fs::write(&local, &content).unwrap();
    std::fs::write(test.home(USER).join("big.bin"), random_bytes(64 << 20, 42)).unwrap();
    let script = r#"
import ftplib, sys, faulthandler
faulthandler.dump_traceback_later(100, exit=True)
port, user, password, local = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = open(local, "rb").read()
ftp = ftplib.FTP()
ftp.connect("127.0.0.1", port, timeout=30)
ftp.login(user, password)
ftp.voidcmd("TYPE I")

upload = ftp.transfercmd("STOR up.bin")
upload.sendall(data[: 5 << 19])
assert ftp.abort().startswith("426")
upload.close()
assert ftp.voidresp().startswith("226")
try:
    kept = ftp.size("up.bin")
except ftplib.error_perm:
    kept = 0
ftp.storbinary("STOR up.bin", __import__("io").BytesIO(data[kept:]), rest=kept)

download = ftp.transfercmd("RETR big.bin")
download.recv(65536)
assert ftp.abort().startswith("426")
download.close()
assert ftp.voidresp().startswith("226")
assert ftp.pwd() == "/"
ftp.quit()
print("ok")
"#;
    let port = test.ftp_addr().port().to_string();
    let output = run("python3", &["-c", script, &port, USER, PASSWORD, local.to_str().unwrap()]);
    must_succeed("ftplib script", &output);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");
    assert!(std::fs::read(test.home(USER).join("up.bin")).unwrap() == content, "the resumed upload is whole");
}

#[test]
fn an_upload_waits_for_an_earlier_upload_of_the_path_to_end() {
    let test = server(1 << 20);
    let script = r#"
import ftplib, hashlib, select, socket, ssl, sys, time
port, cert, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

def session():
    ftp = ReusingFTP_TLS(context=ssl.create_default_context(cafile=cert))
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)
    ftp.prot_p()
    return ftp

# A holds an upload of held.bin open.
a = session()
a_data = a.transfercmd("STOR held.bin")
a_data.sendall(b"a" * 1000)

# B's upload of the same path waits, then is refused once A has held it for too long.
b = session()
try:
    b.storbinary("STOR held.bin", __import__("io").BytesIO(b"b" * 10))
    sys.exit("a second upload of a path in use was accepted")
except ftplib.error_perm as e:
    assert str(e).startswith("550 [307]"), e

# C asks while A still holds the path, and gets no answer yet...
c = session()
host, data_port = c.makepasv()
c_data = socket.create_connection((host, data_port))
c.putcmd("STOR held.bin")
time.sleep(0.3)
assert not select.select([c.sock], [], [], 0)[0], "C was answered while A held the path"

# ...until A's client is cut (no close_notify): A's partial is kept and C goes ahead.
a_data.shutdown(socket.SHUT_RDWR)
a_data.close()
try:
    a.voidresp()
    sys.exit("a cut upload was reported stored")
except ftplib.error_temp as e:
    assert str(e).startswith("426"), e
reply = c.getresp()
assert reply.startswith("150"), reply
c_data = c.context.wrap_socket(c_data, server_hostname="127.0.0.1", session=c.sock.session)
content = b"c" * 5000
c_data.sendall(content)
c_data.unwrap()
c_data.close()
c.voidresp()
assert c.size("held.bin") == len(content)
assert c.sendcmd("XMD5 held.bin") == "250 " + hashlib.md5(content).hexdigest()
print("ok")
"#;
    run_ftplib(&test, script, &[]);
    assert_eq!(std::fs::read(test.home(USER).join("held.bin")).unwrap(), vec![b'c'; 5000]);
}

/// Finding 3 of the probe's second round: with PROT P, another client on the same address that
/// connects to the announced passive port first, with a TLS session of its own (new, or of a
/// control connection logged in as another user), is refused and receives nothing; the real
/// client, which resumes its control connection's session, then gets the whole file.
#[test]
fn a_tls_data_connection_must_resume_a_session_of_the_users_control_connection() {
    let test = server(1 << 20);
    test.add_user("mallory", "other password", 1 << 20);
    let content = random_bytes(200_000, 12);
    std::fs::write(test.home(USER).join("secret.bin"), &content).unwrap();
    let script = r#"
import hashlib, socket, ssl, sys
port, cert, user, password, md5 = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
context = ssl.create_default_context(cafile=cert)

def session(user, password):
    ftp = ReusingFTP_TLS(context=context)
    ftp.connect("127.0.0.1", port)
    ftp.login(user, password)
    ftp.prot_p()
    ftp.voidcmd("TYPE I")
    return ftp

def steal(data_port, session):
    # Races to the passive port with its own TLS session; returns what it could read.
    raw = socket.create_connection(("127.0.0.1", data_port), timeout=10)
    got = b""
    try:
        tls = context.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        while chunk := tls.recv(65536):
            got += chunk
    except OSError:
        pass
    return got

mallory = session("mallory", sys.argv[6])
for impostor_session in [None, mallory.sock.session]:
    ftp = session(user, password)
    host, data_port = ftp.makepasv()
    ftp.putcmd("RETR secret.bin")
    assert steal(data_port, impostor_session) == b"", "the impostor read data"
    real = socket.create_connection((host, data_port), timeout=10)
    assert ftp.getresp().startswith("150")
    real = context.wrap_socket(real, server_hostname="127.0.0.1", session=ftp.sock.session)
    received = b""
    while chunk := real.recv(65536):
        received += chunk
    real.close()
    assert ftp.voidresp().startswith("226")
    assert hashlib.md5(received).hexdigest() == md5, "the real client got the whole file"
    ftp.quit()
print("ok")
"#;
    run_ftplib(&test, script, &[&md5_hex(&content), "other password"]);
}

/// With every slot taken, curl, lftp, rclone and ftplib wait in the queue (told their place in
/// `230-` lines of the answer to PASS) and then do their work once slots free.
#[test]
fn standard_clients_wait_in_the_queue_then_work() {
    let test = TestServer::start_ftp(|config| {
        config.max_concurrency = 1;
        config.max_sessions_per_user = 10;
    });
    test.add_user(USER, PASSWORD, 1 << 30);
    let data = random_bytes(300_000, 77);
    std::fs::write(test.home(USER).join("q.bin"), &data).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let holder = runtime.block_on(test.login(USER, PASSWORD));

    let spawn = |program: &str, args: &[&str]| {
        Command::new("timeout")
            .arg("120")
            .arg(program)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    };
    let cert = test.cert();
    let (by_curl, by_lftp, by_rclone) = (test.local("curl.bin"), test.local("lftp.bin"), test.local("rclone.bin"));
    let mut curl_args = curl_tls(&cert).to_vec();
    let url = curl_url(&test, "/q.bin");
    curl_args.extend_from_slice(&[url.as_str(), "-o", by_curl.to_str().unwrap()]);
    let lftp = lftp_script(&test, &format!("get /q.bin -o {}", by_lftp.display()));
    let remote = format!("{}q.bin", rclone_remote(&test));
    let rclone_config = test.local("rclone.conf");
    let (port, cert_path) = (test.ftp_addr().port().to_string(), cert.to_str().unwrap().to_string());
    let ftplib = format!(
        "{REUSING_FTP_TLS}
import hashlib, ssl, sys
port, cert, user, password, want = sys.argv[1:6]
ftp = ReusingFTP_TLS(context=ssl.create_default_context(cafile=cert))
ftp.connect('127.0.0.1', int(port), timeout=60)
ftp.login(user, password)
ftp.prot_p()
got = bytearray()
ftp.retrbinary('RETR q.bin', got.extend)
assert hashlib.md5(got).hexdigest() == want, 'md5'
ftp.quit()
print('ok')
"
    );
    let want = md5_hex(&data);
    let mut children = vec![
        ("curl", spawn("curl", &curl_args)),
        ("lftp", spawn("lftp", &["-c", &lftp])),
        (
            "rclone",
            spawn(
                "rclone",
                &["--config", rclone_config.to_str().unwrap(), "copyto", &remote, by_rclone.to_str().unwrap()],
            ),
        ),
        ("ftplib", spawn("python3", &["-c", &ftplib, &port, &cert_path, USER, PASSWORD, &want])),
    ];
    // They wait: none ends while the slot is held.
    std::thread::sleep(Duration::from_secs(3));
    for (name, child) in &mut children {
        assert!(child.try_wait().unwrap().is_none(), "{name} ended while every slot was taken");
    }
    runtime.block_on(holder.quit()).unwrap();
    for (name, child) in children {
        let output = child.wait_with_output().unwrap();
        must_succeed(name, &output);
    }
    for copy in [by_curl, by_lftp, by_rclone] {
        assert_eq!(std::fs::read(&copy).unwrap(), data, "{}", copy.display());
    }
}

/// A partial upload is listed by curl (LIST) as `NAME (partial upload)`, never as the file;
/// lftp's `mirror` and rclone (MLSD) do not see it, so neither fetches a half file; and DELE
/// (curl's `-Q`) removes it.
#[test]
fn standard_clients_never_take_a_partial_upload_for_the_file() {
    let test = server(1 << 30);
    std::fs::write(test.home(USER).join("whole.bin"), b"whole").unwrap();
    std::fs::write(test.home(USER).join(".half.bin.ftpa-part"), vec![1u8; 1000]).unwrap();

    let listing = curl(&test, &[&curl_url(&test, "/")]);
    must_succeed("curl listing", &listing);
    let listing = String::from_utf8_lossy(&listing.stdout);
    let partial_line = |line: &str| line.contains(" 1000 ") && line.ends_with(" half.bin (partial upload)");
    assert!(listing.lines().any(partial_line), "{listing}");
    assert!(!listing.lines().any(|line| line.ends_with(" half.bin")), "{listing}");

    let copy = test.local("rclone-copy");
    must_succeed("rclone copy", &rclone(&test, &["copy", &rclone_remote(&test), copy.to_str().unwrap()]));
    let mirror = test.local("lftp-mirror");
    must_succeed("lftp mirror", &run("lftp", &["-c", &lftp_script(&test, &format!("mirror / {}", mirror.display()))]));
    for dir in [&copy, &mirror] {
        let names: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["whole.bin"], "{}", dir.display());
    }

    let deleted = curl(&test, &["-Q", "DELE half.bin", &curl_url(&test, "/")]);
    must_succeed("curl DELE", &deleted);
    assert!(!test.home(USER).join(".half.bin.ftpa-part").exists());
}
