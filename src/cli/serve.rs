//! `ftp-actor serve`: the server with tracing logs.

use std::net::SocketAddr;

use clap::Args;
use tracing_subscriber::EnvFilter;

use crate::actors::Services;
use crate::actors::acceptor::{Acceptor, Shutdown};
use crate::actors::quota::MeasureAgain;
use crate::server;
use crate::service::expiry::{expire_partials, max_age};

use super::ConfigArgs;

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on (overrides the config's `listen`), e.g. 0.0.0.0:2121.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Also serve standard FTP and FTPS at this address (overrides `ftp.listen`), e.g.
    /// 127.0.0.1:2122.
    #[arg(long, value_name = "ADDR")]
    pub ftp_listen: Option<SocketAddr>,
    /// Also serve SFTP (SSH) at this address (overrides `sftp.listen`), e.g. 127.0.0.1:2222.
    #[arg(long, value_name = "ADDR")]
    pub sftp_listen: Option<SocketAddr>,
    /// Sessions served at once, and disk worker threads (overrides `max_concurrency`).
    #[arg(long, value_name = "N")]
    pub max_concurrency: Option<usize>,
    /// Ports for FTP passive data connections (overrides `ftp.passive_ports`), e.g. 50000-50999.
    #[arg(long, value_name = "FIRST-LAST")]
    pub passive_ports: Option<crate::ftp::address::PortRange>,
    /// Serve Prometheus metrics (/metrics) and a health check (/health) over HTTP at this
    /// address (overrides `metrics.listen`), e.g. 127.0.0.1:9121.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let mut config = args.config.load()?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(ftp) = args.ftp_listen {
        config.ftp.listen = Some(ftp);
    }
    if let Some(sftp) = args.sftp_listen {
        config.sftp.listen = Some(sftp);
    }
    if let Some(ports) = args.passive_ports {
        config.ftp.passive_ports = ports;
    }
    if let Some(metrics) = args.metrics_listen {
        config.metrics.listen = Some(metrics);
    }
    if let Some(n) = args.max_concurrency {
        config.max_concurrency = n;
    }
    config.validate()?;
    let (state, first_user) = server::prepare_data_dir(&config)?;
    if let Some(first) = first_user {
        println!(
            "Created the first user on a fresh data directory:\n  user: {}\n  password: {}\n\
             This password is shown only once. Change it with: ftp-actor user passwd {} --data-dir {}",
            first.name,
            first.password,
            first.name,
            config.data_dir.display()
        );
    }
    let grace = std::time::Duration::from_secs(config.shutdown_grace_secs);
    let data_dir = config.data_dir.clone();
    let system = actix::System::new();
    let digests = system.block_on(async move {
        let started = server::start(config.clone(), state).await?;
        // Registered before the server says it listens, so that no SIGHUP finds it without.
        let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tracing::info!(addr = %started.addr, data_dir = %config.data_dir.display(), max_concurrency = config.max_concurrency,
            max_queued = config.max_queued, "ftp-actor listening");
        let (md5_block_function, how) = crate::integrity::block_function::in_use();
        tracing::info!(%md5_block_function, chosen = %how, "MD5 block function");
        let (cert, _) = crate::tls::certificate_paths(&config.data_dir, &config.ftp.tls_cert, &config.ftp.tls_key);
        match &started.trust {
            crate::client::Trust::Pinned(fingerprint) => {
                tracing::info!(%fingerprint, cert = %cert.display(), "TLS certificate");
                say(format!("TLS certificate {} (fingerprint {fingerprint})", cert.display()));
            }
            _ => say("the native listener is in PLAIN TEXT (plaintext_native, for tests); clients need --plaintext"),
        }
        say(format!("ftp-actor listening on {} (data directory {})", started.addr, config.data_dir.display()));
        if let Some(ftp) = started.ftp_addr {
            tracing::info!(addr = %ftp, "FTP/FTPS listening");
            say(format!("FTP and FTPS (AUTH TLS) on {ftp}; the same certificate"));
        }
        if let Some(sftp) = &started.sftp {
            tracing::info!(addr = %sftp.addr, fingerprint = %sftp.fingerprint, "SFTP listening");
            say(format!("SFTP on {}; SSH host key {} (fingerprint {})", sftp.addr, sftp.host_key.display(), sftp.fingerprint));
        }
        if let Some(metrics) = started.metrics_addr {
            tracing::info!(addr = %metrics, "metrics listening");
            say(format!("metrics on http://{metrics}/metrics and /health"));
        }
        actix_rt::spawn(stop_on_signals(started.acceptor, grace));
        actix_rt::spawn(measure_again_on_hangup(hangups, started.services.clone()));
        Ok::<_, anyhow::Error>(started.services.digests)
    })?;
    system.run()?;
    server::save_digests(&data_dir, &digests);
    Ok(())
}

/// Each SIGHUP has the quota actor measure every home again (see [`MeasureAgain`]), then
/// expires the partial uploads older than `partial_expiry_days` (see [`expire_partials`]).
async fn measure_again_on_hangup(mut hangups: tokio::signal::unix::Signal, services: Services) {
    while hangups.recv().await.is_some() {
        services.quota.do_send(MeasureAgain);
        if let Some(max_age) = max_age(&services) {
            let (count, bytes) = expire_partials(&services, max_age).await;
            tracing::info!(count, bytes, "expired partial uploads after SIGHUP");
        }
    }
}

/// The first SIGTERM or Ctrl-C starts a graceful shutdown; a second one stops at once.
async fn stop_on_signals(acceptor: actix::Addr<Acceptor>, grace: std::time::Duration) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        tracing::error!("cannot install the SIGTERM handler");
        return;
    };
    let Ok(mut interrupt) = signal(SignalKind::interrupt()) else {
        tracing::error!("cannot install the SIGINT handler");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::info!(grace_secs = grace.as_secs(), "signal received: shutting down gracefully (again to stop at once)");
    acceptor.do_send(Shutdown { grace });
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    tracing::warn!("second signal: stopping now");
    actix::System::current().stop();
}

/// Prints a line for the operator. A closed standard output (a supervisor that read the
/// address and went away) must not stop the server, as `println!` would by panicking.
fn say(line: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}
