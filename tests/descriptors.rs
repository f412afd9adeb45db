//! Running out of file descriptors: the server raises its open-files limit at start and fits
//! its pre-login budget to it, and when `accept` still fails with EMFILE it sheds pre-login
//! connections and keeps accepting, without spinning. Runs the real binary under a tight
//! RLIMIT_NOFILE.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::binary::{Launch, Served};
use ftp_actor::client::Client;

/// CPU time (user + system) the process has used, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    // After the command's closing parenthesis: state is field 0, utime 11, stime 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

/// Logs in as alice and asks `pwd`; fails the test past a minute.
fn log_in_within_a_minute(served: &Served) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let login = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(60), async {
            let mut client = Client::connect(served.native.as_str(), &served.trust(), |_| {}).await?;
            client.login("alice", "pw").await?;
            client.pwd().await
        })
        .await
    });
    login.expect("served within 60 s").unwrap()
}

#[test]
fn out_of_descriptors_the_server_sheds_pre_login_connections_and_keeps_accepting() {
    // 40 descriptors: the budget cannot fit (it is kept at its floor of 16), so accepts run
    // out of descriptors while silent sockets pile up.
    let served = Served::start(Launch {
        config: "max_concurrency = 2\nmax_queued = 2\nlogin_timeout_secs = 300\n",
        ftp: false,
        users: &[("alice", "pw")],
        open_files: Some(40),
        scrypt: None,
    });
    let server: std::net::SocketAddr = served.native.parse().unwrap();
    let mut silent: Vec<std::net::TcpStream> =
        (0..120).map(|_| std::net::TcpStream::connect(server).unwrap()).collect();
    assert_eq!(log_in_within_a_minute(&served), "/");
    let logged = |text: &str| served.logged(|line| line.contains(text), Duration::from_secs(10)).is_some();
    assert!(logged("the open-files limit cannot hold max_prelogin_connections"), "{}", served.log());
    assert!(logged("out of descriptors"), "the test did exhaust them: {}", served.log());

    // And the oldest silent sockets were closed to make room.
    let mut first = silent.remove(0);
    first.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    assert!(first.read_to_end(&mut rest).is_ok(), "closed by the server");
}

/// Sets a running process's open-files limit (as `prlimit --pid` does).
/// The soft limit goes to `limit` (at most the hard limit, which stays as it is).
fn set_open_files(pid: u32, limit: u64) {
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: prlimit with a null new limit only writes the old one into `old`.
    let read = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(read, 0, "prlimit: {}", std::io::Error::last_os_error());
    let limit = libc::rlimit { rlim_cur: (limit as libc::rlim_t).min(old.rlim_max), rlim_max: old.rlim_max };
    // SAFETY: prlimit reads the new limit and writes nothing (the old-limit pointer is null).
    let done = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[test]
fn with_no_descriptor_to_spare_the_acceptor_waits_without_spinning_and_recovers() {
    let served = Served::start(Launch {
        config: "login_timeout_secs = 300
",
        ftp: false,
        users: &[("alice", "pw")],
        open_files: None,
        scrypt: None,
    });
    let pid = served.child.id();
    let server: std::net::SocketAddr = served.native.parse().unwrap();
    // Below what it holds: every accept fails, and there is nothing to shed.
    let open = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count() as u64;
    set_open_files(pid, open - 2);
    let _waiting: Vec<std::net::TcpStream> = (0..5).map(|_| std::net::TcpStream::connect(server).unwrap()).collect();
    // A spinning acceptor would burn about a CPU-second per second here; a pausing one a few
    // milliseconds.
    let before = cpu_time(pid);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_time(pid) - before;
    assert!(used < started.elapsed() / 3, "the server used {used:?} of CPU in {:?}", started.elapsed());
    assert!(served.log().contains("out of descriptors"), "{}", served.log());
    // Descriptors come back: the acceptor never stopped, and serves the next login.
    set_open_files(pid, 4096);
    assert_eq!(log_in_within_a_minute(&served), "/");
}
