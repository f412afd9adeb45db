//! The command line: thin layers over the library. `anyhow` lives here and nowhere else.

pub mod completion;
pub mod ctrl_c;
pub mod demo;
pub mod expand;
pub mod format;
pub mod password;
pub mod remote_tree;
pub mod serve;
pub mod shell;
pub mod shell_commands;
pub mod transfer;
pub mod tree;
pub mod user;
pub mod words;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

#[derive(Debug, Parser)]
#[command(name = "ftp-actor", version, about = "Multi-user file-transfer server and shell client")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (on a fresh data directory it creates the user `demo` and prints its password).
    Serve(serve::ServeArgs),
    /// Interactive or batch client shell.
    Shell(shell::ShellArgs),
    /// Manage users (works on the data directory; a running server picks changes up).
    User(user::UserArgs),
    /// Narrated demonstrations on a temporary data directory (`demo supervisor`).
    Demo(demo::DemoArgs),
}

/// Where the configuration and data directory come from; shared by `serve` and `user`.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Configuration file (TOML); without it the built-in defaults apply.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides the config's `data_dir`).
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn load(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        Ok(config)
    }
}
