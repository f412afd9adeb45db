//! Load generator for `bench/compare.sh`: drives ftp-actor through the project's client
//! library, and the peer FTP servers through a minimal FTP client, with the same workloads.
//! Each run prints one line of `key=value` results for the driver to collect.
//!
//!     cargo run --release --example loadgen -- --help
//!
//! Logins to ftp-actor derive the user's scrypt key once per process and reuse it, so the
//! workloads measure the server, not the client's deliberately slow key derivation.

mod floor;
mod ftp;
mod namespace;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use ftp_actor::client::{Client, GetReport, LoginKey, NoProgress, Trust};

#[derive(Parser)]
struct Args {
    /// Which kind of server is at --addr.
    #[arg(long, value_enum, default_value = "native")]
    target: Target,
    #[arg(long, default_value = "127.0.0.1:2121")]
    addr: String,
    #[arg(long, default_value = "bench")]
    user: String,
    #[arg(long, default_value = "bench")]
    password: String,
    /// ftp-actor: trust the certificate(s) in FILE (the server's `ftp-tls-cert.pem`).
    #[arg(long, value_name = "FILE")]
    cacert: Option<std::path::PathBuf>,
    /// ftp-actor: connect without TLS (a server with `plaintext_native`).
    #[arg(long, conflicts_with = "cacert")]
    plaintext: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// ftp-actor's own protocol, through the client library.
    Native,
    /// A standard FTP server (vsftpd, pyftpdlib).
    Ftp,
}

#[derive(Clone, Copy, ValueEnum)]
enum Md5Implementation {
    /// The md-5 crate, 0.10 with its x86 assembly.
    #[value(name = "md-5-0.10")]
    Md5Assembly,
    /// The md-5 crate, the portable 0.11 line.
    #[value(name = "md-5-0.11")]
    Md5Portable,
    /// `ftp_actor::integrity::Md5`, which every transfer is verified with.
    FtpActor,
}

#[derive(Subcommand)]
enum Workload {
    /// Time MD5 over a file, read in 1 MiB blocks: a build of the md-5 crate (the reference the
    /// targets are set against) or ftp-actor's own (the floor of its verified copies).
    Md5 {
        file: PathBuf,
        #[arg(long = "with", value_enum, default_value = "md-5-0.10")]
        implementation: Md5Implementation,
    },
    /// FILE copied to OUT through a loopback connection by the simplest possible code (no
    /// server, no protocol); `move` gives the CPU that moving the bytes costs. See `floor.rs`.
    Floor {
        #[arg(value_enum)]
        direction: floor::Direction,
        file: PathBuf,
        out: PathBuf,
        #[arg(long, default_value_t = 256 << 10)]
        chunk: usize,
    },
    /// Time one verified download (native only; login not included).
    Get { remote: String, local: PathBuf },
    /// Time one verified upload (native only; login not included).
    Put { local: PathBuf, remote: String },
    /// Many clients at once, each logging in and uploading small files; files per second.
    Small {
        #[arg(long, default_value_t = 50)]
        clients: usize,
        #[arg(long, default_value_t = 20)]
        files: usize,
        #[arg(long, default_value_t = 65536)]
        size: usize,
    },
    /// Opens COUNT logged-in sessions, prints `ready`, and holds them until stdin closes.
    Idle {
        #[arg(long, default_value_t = 1000)]
        count: usize,
    },
    /// Opens COUNT connections that never send a byte, from ADDRESSES source addresses
    /// (127.0.0.2 and up), prints `ready`; at each line on stdin, times one real login from
    /// 127.0.0.1 and prints it; holds the sockets until stdin closes.
    Silent {
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 50)]
        addresses: usize,
    },
    /// Round trips of a cheap command (pwd) on one session; requests per second.
    Pwd {
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// Latency of mkdir, list, rename and rmdir on one session (native only), in ROUNDS
    /// rounds; medians and 90th percentiles in microseconds.
    Namespace {
        #[arg(long, default_value_t = 500)]
        rounds: usize,
    },
    /// Connect, log in, quit, in a loop on CLIENTS connections at once; logins per second.
    Logins {
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
}

/// A logged-in connection to either kind of server.
enum Session {
    Native(Client),
    Ftp(ftp::FtpClient),
}

/// How to open sessions: the address, and for ftp-actor the user's key, derived once.
#[derive(Clone)]
struct Connector {
    target: Target,
    addr: String,
    user: String,
    password: String,
    key: Option<LoginKey>,
    trust: Trust,
}

impl Connector {
    async fn new(args: &Args) -> Result<Connector> {
        let mut connector = Connector {
            target: args.target,
            addr: args.addr.clone(),
            user: args.user.clone(),
            password: args.password.clone(),
            key: None,
            trust: Trust::Plaintext,
        };
        if args.target == Target::Native {
            connector.trust = match (&args.cacert, args.plaintext) {
                (Some(cacert), _) => Trust::from_ca_file(cacert)?,
                (None, true) => Trust::Plaintext,
                (None, false) => anyhow::bail!("ftp-actor: pass --cacert DATA_DIR/ftp-tls-cert.pem, or --plaintext"),
            };
            connector.key = Some(derive_key(&args.addr, &connector.trust, &args.user, &args.password).await?);
        }
        Ok(connector)
    }

    async fn open(&self) -> Result<Session> {
        match self.target {
            Target::Native => {
                let mut client = Client::connect(self.addr.as_str(), &self.trust, |_| {}).await?;
                let key = self.key.as_ref().context("no key derived")?;
                client.login_with_key(&self.user, key).await?;
                Ok(Session::Native(client))
            }
            Target::Ftp => {
                let mut client = ftp::FtpClient::connect(&self.addr).await?;
                client.login(&self.user, &self.password).await?;
                client.command("TYPE I", 200).await?;
                Ok(Session::Ftp(client))
            }
        }
    }
}

impl Session {
    async fn pwd(&mut self) -> Result<()> {
        match self {
            Session::Native(client) => drop(client.pwd().await?),
            Session::Ftp(client) => drop(client.command("PWD", 257).await?),
        }
        Ok(())
    }

    async fn quit(self) -> Result<()> {
        match self {
            Session::Native(client) => client.quit().await?,
            Session::Ftp(client) => client.quit().await?,
        }
        Ok(())
    }
}

/// Logs in once with the real scrypt derivation and keeps the key it derived.
async fn derive_key(addr: &str, trust: &Trust, user: &str, password: &str) -> Result<LoginKey> {
    let mut client = Client::connect(addr, trust, |_| {}).await?;
    let key = client.login_keeping_key(user, password).await?;
    client.quit().await?;
    Ok(key)
}

/// CPU time (user and system, all threads) this process has used, from /proc (10 ms ticks).
fn cpu_seconds() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let fields: Vec<&str> = stat.rsplit_once(')').context("/proc/self/stat")?.1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// The MD5s `loadgen md5` times. md-5 0.11 implements a newer `Digest` trait than the other
/// two, hence this one.
trait Md5Pass: Default {
    fn update(&mut self, data: &[u8]);
    fn hex(self) -> String;
}

macro_rules! md5_pass {
    ($hasher:ty, $digest:path) => {
        impl Md5Pass for $hasher {
            fn update(&mut self, data: &[u8]) {
                <$hasher as $digest>::update(self, data);
            }
            fn hex(self) -> String {
                hex::encode(<$hasher as $digest>::finalize(self))
            }
        }
    };
}
md5_pass!(md5::Md5, md5::Digest);
md5_pass!(md5_portable::Md5, md5_portable::Digest);
md5_pass!(ftp_actor::integrity::Md5, ftp_actor::integrity::Digest);

/// Hashes a file read in 1 MiB blocks. Returns the wall time, the time spent in MD5 itself
/// (the reads left out: the CPU one MD5 pass costs), and the digest.
fn md5_file<H: Md5Pass>(path: &Path) -> Result<(f64, f64, String)> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path).with_context(|| path.display().to_string())?;
    let mut buffer = vec![0u8; 1 << 20];
    let mut hasher = H::default();
    let mut hashing = Duration::ZERO;
    loop {
        let got = file.read(&mut buffer)?;
        if got == 0 {
            break;
        }
        let before = Instant::now();
        hasher.update(&buffer[..got]);
        hashing += before.elapsed();
    }
    Ok((started.elapsed().as_secs_f64(), hashing.as_secs_f64(), hasher.hex()))
}

async fn small(connector: &Connector, clients: usize, files: usize, size: usize) -> Result<String> {
    let scratch = tempfile::tempdir()?;
    let local = scratch.path().join("small.bin");
    let data: Vec<u8> = (0..size).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&local, &data)?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..clients {
        let (connector, local, data) = (connector.clone(), local.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            let mut session = connector.open().await?;
            for file in 0..files {
                let name = format!("small-{client}-{file}.bin");
                match &mut session {
                    Session::Native(c) => {
                        c.put(&local, &name, &NoProgress).await?;
                    }
                    Session::Ftp(c) => c.store(&name, &data).await?,
                }
            }
            session.quit().await
        }));
    }
    for task in tasks {
        task.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let total = clients * files;
    Ok(format!("files={total} seconds={seconds:.3} files_per_sec={:.1}", total as f64 / seconds))
}

async fn idle(connector: &Connector, count: usize) -> Result<String> {
    use futures::StreamExt;
    let opened: Vec<Result<Session>> =
        futures::stream::iter(0..count).map(|_| connector.open()).buffer_unordered(16).collect().await;
    let sessions = opened.into_iter().collect::<Result<Vec<_>>>()?;
    println!("ready sessions={}", sessions.len());
    // Hold the sessions until the driver closes our stdin.
    tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await??;
    Ok(format!("held={}", sessions.len()))
}

async fn silent(connector: &Connector, count: usize, addresses: usize) -> Result<String> {
    use std::io::BufRead;
    let server: std::net::SocketAddr = connector.addr.parse()?;
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let source = std::net::Ipv4Addr::new(127, 0, 0, 2 + (i % addresses.clamp(1, 250)) as u8);
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind((source, 0).into())?;
        sockets.push(socket.connect(server).await?);
    }
    // Let the server accept them all before anyone measures it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("ready sockets={}", sockets.len());
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() || lines_tx.send(()).is_err() {
                break;
            }
        }
    });
    while lines.recv().await.is_some() {
        let started = Instant::now();
        match connector.open().await {
            Ok(session) => {
                let seconds = started.elapsed().as_secs_f64();
                session.quit().await?;
                println!("login_seconds={seconds:.4}");
            }
            // A peer may refuse the login under the flood: that is the result.
            Err(error) => println!("login_failed={}", error.to_string().replace(' ', "_")),
        }
    }
    Ok(format!("held={}", sockets.len()))
}

async fn round_trips(connector: &Connector, seconds: f64) -> Result<String> {
    let mut session = connector.open().await?;
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut done = 0u64;
    while Instant::now() < deadline {
        session.pwd().await?;
        done += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    session.quit().await?;
    Ok(format!("requests={done} seconds={elapsed:.3} per_sec={:.0}", done as f64 / elapsed))
}

async fn logins(connector: &Connector, seconds: f64, clients: usize) -> Result<String> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let connector = connector.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                connector.open().await?.quit().await?;
                done += 1;
            }
            Ok::<_, anyhow::Error>(done)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    Ok(format!("logins={done} seconds={elapsed:.3} per_sec={:.0}", done as f64 / elapsed))
}

async fn run(args: Args) -> Result<String> {
    if let Workload::Md5 { file, implementation } = &args.workload {
        let (seconds, hashing, md5) = match implementation {
            Md5Implementation::Md5Assembly => md5_file::<md5::Md5>(file)?,
            Md5Implementation::Md5Portable => md5_file::<md5_portable::Md5>(file)?,
            Md5Implementation::FtpActor => {
                let (function, _) = ftp_actor::integrity::block_function::in_use();
                let (seconds, hashing, md5) = md5_file::<ftp_actor::integrity::Md5>(file)?;
                return Ok(format!("seconds={seconds:.3} hashing={hashing:.3} md5={md5} block={function}"));
            }
        };
        return Ok(format!("seconds={seconds:.3} hashing={hashing:.3} md5={md5}"));
    }
    if let Workload::Floor { direction, file, out, chunk } = &args.workload {
        let cpu = cpu_seconds()?;
        let run = floor::copy(*direction, file, out, *chunk)?;
        let cpu = cpu_seconds()? - cpu;
        return Ok(format!("seconds={:.3} cpu={cpu:.2} md5={}", run.seconds, run.md5));
    }
    let connector = Connector::new(&args).await?;
    match args.workload {
        Workload::Md5 { .. } | Workload::Floor { .. } => unreachable!("handled above"),
        Workload::Get { remote, local } | Workload::Put { local, remote } if args.target == Target::Ftp => {
            bail!("get and put are for ftp-actor; the peers are driven by curl ({remote} {})", local.display())
        }
        Workload::Get { remote, local } => {
            let Session::Native(mut client) = connector.open().await? else { unreachable!() };
            let _ = std::fs::remove_file(&local);
            let (started, cpu) = (Instant::now(), cpu_seconds()?);
            let report = client.get(&remote, &local, &NoProgress).await?;
            let (seconds, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds()? - cpu);
            let GetReport::Downloaded { size, md5, .. } = report else { bail!("the download was skipped") };
            client.quit().await?;
            Ok(format!("seconds={seconds:.3} cpu={cpu:.2} bytes={size} md5={}", hex::encode(md5)))
        }
        Workload::Put { local, remote } => {
            let Session::Native(mut client) = connector.open().await? else { unreachable!() };
            let (started, cpu) = (Instant::now(), cpu_seconds()?);
            let report = client.put(&local, &remote, &NoProgress).await?;
            let (seconds, cpu) = (started.elapsed().as_secs_f64(), cpu_seconds()? - cpu);
            client.quit().await?;
            Ok(format!("seconds={seconds:.3} cpu={cpu:.2} bytes={} md5={}", report.size, hex::encode(report.md5)))
        }
        Workload::Small { clients, files, size } => small(&connector, clients, files, size).await,
        Workload::Idle { count } => idle(&connector, count).await,
        Workload::Silent { count, addresses } => silent(&connector, count, addresses).await,
        Workload::Pwd { seconds } => round_trips(&connector, seconds).await,
        Workload::Logins { seconds, clients } => logins(&connector, seconds, clients).await,
        Workload::Namespace { rounds } => match connector.open().await? {
            Session::Native(mut client) => {
                let result = namespace::namespace(&mut client, rounds).await;
                client.quit().await?;
                result
            }
            Session::Ftp(_) => bail!("loadgen namespace: native only"),
        },
    }
}

fn main() -> Result<()> {
    // As the shell does, so the load generator's client behaves like a user's.
    ftp_actor::tuning::heap::keep_freed_memory();
    let args = Args::parse();
    // One session's round trips are a latency measurement: a single-threaded runtime avoids
    // handing each reply between threads. The other workloads use both cores.
    let runtime = match args.workload {
        Workload::Pwd { .. } | Workload::Namespace { .. } => {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?
        }
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build()?,
    };
    let result = runtime.block_on(run(args))?;
    println!("{result}");
    Ok(())
}
