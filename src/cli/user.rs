//! `ftp-actor user add|passwd|del|list|quota|key`: edits the user store under its lock.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::auth::user_store::{StoreError, add_user_to, home_path, validate_name};
use crate::auth::{Credentials, UserStore, ssh_keys};
use crate::config::{Config, StateBackend, StorageBackend};
use crate::human::size::{format_size, parse_size};
use crate::state::postgres::Database;
use crate::state::postgres::users::UsersTable;
use crate::state::users::{UserDirectory, UsersFile, update_users};
use crate::storage::LocalStore;

use super::ConfigArgs;
use super::password::new_password;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (password asked twice, or from FTP_ACTOR_PASSWORD).
    Add {
        name: String,
        /// Quota: bytes or a size such as 10MiB, 512KiB, 1GiB, 10MB (default: config's default_quota).
        #[arg(long, value_parser = parse_size)]
        quota: Option<u64>,
        /// Home directory (default: DATA_DIR/homes/NAME; relative paths are relative to the data directory).
        #[arg(long, value_name = "DIR")]
        home: Option<std::path::PathBuf>,
        /// Most files, directories and partial uploads the home may hold (default: config's default_max_files).
        #[arg(long, value_name = "N")]
        max_files: Option<u64>,
    },
    /// Change a user's password.
    Passwd { name: String },
    /// Delete a user (the home directory and its files are kept).
    Del { name: String },
    /// List users with home, quota, space used, and files used of the most allowed.
    List,
    /// Set a user's quota, most files, or both.
    #[command(arg_required_else_help = true)]
    Quota {
        name: String,
        /// Bytes or a size such as 10MiB.
        #[arg(value_parser = parse_size, required_unless_present = "max_files")]
        size: Option<u64>,
        /// Most files, directories and partial uploads the home may hold.
        #[arg(long, value_name = "N")]
        max_files: Option<u64>,
    },
    /// Manage a user's SSH public keys (SFTP logins).
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Add the keys of FILE (OpenSSH authorized_keys lines; `-` reads standard input).
    Add { name: String, file: std::path::PathBuf },
    /// List a user's keys: fingerprint, type and comment.
    List { name: String },
    /// Remove the key with this fingerprint (SHA256:..., as `key list` and ssh-keygen -l show it);
    /// the user's sessions end.
    Del { name: String, fingerprint: String },
}

/// Where the users are: `users.toml` in the data directory, or the database
/// (`state.backend = "postgres"`).
fn directory(config: &Config) -> anyhow::Result<Box<dyn UserDirectory>> {
    Ok(match config.state.backend {
        StateBackend::Local => Box::new(UsersFile::new(config.data_dir.clone())),
        StateBackend::Postgres => Box::new(UsersTable::new(Database::open(&config.state.postgres)?)),
    })
}

/// What a home holds, where the server keeps it: a directory here, or names in the database.
fn usage_of(config: &Config, home: &std::path::Path) -> anyhow::Result<crate::storage::HomeUsage> {
    match config.storage.backend {
        StorageBackend::Local => Ok(LocalStore::open(home).and_then(|h| h.usage())?),
        StorageBackend::S3 => {
            let database = Database::connect(&config.state.postgres)?;
            Ok(crate::storage::objects::home_usage(&database, &config.data_dir, home)?)
        }
    }
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let data_dir = config.data_dir.clone();
    let users = directory(&config)?;
    let users = users.as_ref();
    let has_store = config.state.backend == StateBackend::Postgres || UserStore::path(&data_dir).exists();
    if !has_store && !matches!(args.command, UserCommand::Add { .. }) {
        // Run from another folder, or with another config, the command would find no users
        // and say nothing: a user would think the server has none.
        bail!(
            "no user store in {}: give the server's data directory (--data-dir DIR or --config FILE; \
             `ftp-actor serve` prints it at start), or add the first user there with `ftp-actor user add NAME`",
            data_dir.display()
        );
    }
    match args.command {
        UserCommand::Add { name, quota, home, max_files } => {
            validate_name(&name)?;
            if users.load()?.users.contains_key(&name) {
                bail!(StoreError::Exists(name));
            }
            if !has_store {
                eprintln!("no user store in {} yet: creating one there", data_dir.display());
            }
            let password = new_password(&name)?;
            let quota = quota.unwrap_or(config.default_quota);
            let record = add_user_to(users, &data_dir, &name, password.as_bytes(), config.scrypt, quota, home)?;
            if max_files.is_some() {
                update_users(users, |store| {
                    store.user_mut(&name)?.max_files = max_files;
                    Ok(())
                })?;
            }
            let home_dir = home_path(&data_dir, &record);
            let files = max_files.unwrap_or(config.default_max_files);
            println!("user {name} added: home {}, quota {}, max files {files}", home_dir.display(), format_size(quota));
        }
        UserCommand::Passwd { name } => {
            let scrypt = config.scrypt;
            users.load()?.user_mut(&name)?;
            let password = new_password(&name)?;
            let credentials = Credentials::derive(password.as_bytes(), scrypt)?;
            update_users(users, |store| {
                store.user_mut(&name)?.credentials = credentials;
                Ok(())
            })?;
            println!("password of {name} changed");
        }
        UserCommand::Del { name } => {
            let record = update_users(users, |store| {
                store.users.remove(&name).ok_or_else(|| StoreError::NoSuchUser(name.clone()))
            })?;
            println!("user {name} deleted; home {} kept", home_path(&data_dir, &record).display());
        }
        UserCommand::List => {
            let store = users.load()?;
            println!("{:<20} {:>12} {:>12} {:>17}  HOME", "USER", "QUOTA", "USED", "FILES");
            for (name, record) in &store.users {
                let home = home_path(&data_dir, record);
                let max_files = record.max_files.unwrap_or(config.default_max_files);
                let (used, files) = match usage_of(&config, &home) {
                    Ok(usage) => (format_size(usage.bytes), format!("{}/{max_files}", usage.files)),
                    Err(_) => ("?".into(), format!("?/{max_files}")),
                };
                println!("{name:<20} {:>12} {used:>12} {files:>17}  {}", format_size(record.quota), home.display());
            }
        }
        UserCommand::Quota { name, size, max_files } => {
            update_users(users, |store| {
                let record = store.user_mut(&name)?;
                record.quota = size.unwrap_or(record.quota);
                record.max_files = max_files.or(record.max_files);
                Ok(())
            })?;
            if let Some(size) = size {
                println!("quota of {name} set to {}", format_size(size));
            }
            if let Some(max_files) = max_files {
                println!("max files of {name} set to {max_files}");
            }
        }
        UserCommand::Key(command) => keys(users, command)?,
    }
    Ok(())
}

/// `ftp-actor user key ...`: a running server sees the change within a store poll; a removed
/// key ends the user's sessions (error 206), as a password change does.
fn keys(users: &dyn UserDirectory, command: KeyCommand) -> anyhow::Result<()> {
    match command {
        KeyCommand::Add { name, file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
            };
            let keys =
                ssh_keys::parse_authorized_keys(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            if keys.is_empty() {
                bail!("{}: no public key in it", file.display());
            }
            let added = update_users(users, |store| {
                let record = store.user_mut(&name)?;
                let mut added = Vec::new();
                for key in &keys {
                    let line = ssh_keys::stored_line(key);
                    if !ssh_keys::is_authorized(&record.ssh_keys, key) {
                        record.ssh_keys.push(line);
                        added.push(ssh_keys::fingerprint(key));
                    }
                }
                Ok(added)
            })?;
            for fingerprint in &added {
                println!("key {fingerprint} added to {name}");
            }
            if added.len() < keys.len() {
                println!("{} key(s) {name} already had were left as they were", keys.len() - added.len());
            }
        }
        KeyCommand::List { name } => {
            let store = users.load()?;
            let record = store.users.get(&name).ok_or_else(|| StoreError::NoSuchUser(name.clone()))?;
            if record.ssh_keys.is_empty() {
                println!("{name} has no SSH keys (add one with: ftp-actor user key add {name} FILE)");
            }
            for line in &record.ssh_keys {
                let mut words = line.splitn(3, ' ');
                let kind = words.next().unwrap_or("?");
                let comment = words.nth(1).unwrap_or("");
                println!("{}  {kind}  {comment}", ssh_keys::fingerprint_of_line(line));
            }
        }
        KeyCommand::Del { name, fingerprint } => {
            update_users(users, |store| {
                let record = store.user_mut(&name)?;
                let before = record.ssh_keys.len();
                record.ssh_keys.retain(|line| ssh_keys::fingerprint_of_line(line) != fingerprint);
                if record.ssh_keys.len() == before {
                    return Err(StoreError::NoSuchKey { user: name.clone(), fingerprint: fingerprint.clone() });
                }
                Ok(())
            })?;
            println!("key {fingerprint} removed from {name}; their sessions end");
        }
    }
    Ok(())
}
