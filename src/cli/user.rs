//! `ftp-actor user add|passwd|del|list|quota`: edits the user store under its lock.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::auth::user_store::{StoreError, add_user, home_path, validate_name};
use crate::auth::{Credentials, UserStore};
use crate::size::{format_size, parse_size};
use crate::storage::Home;

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
    },
    /// Change a user's password.
    Passwd { name: String },
    /// Delete a user (the home directory and its files are kept).
    Del { name: String },
    /// List users with home, quota and space used.
    List,
    /// Set a user's quota.
    Quota {
        name: String,
        #[arg(value_parser = parse_size)]
        size: u64,
    },
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let data_dir = config.data_dir.clone();
    match args.command {
        UserCommand::Add { name, quota, home } => {
            validate_name(&name)?;
            if UserStore::load(&data_dir)?.users.contains_key(&name) {
                bail!(StoreError::Exists(name));
            }
            let password = new_password(&name)?;
            let quota = quota.unwrap_or(config.default_quota);
            let record = add_user(&data_dir, &name, password.as_bytes(), config.scrypt, quota, home)?;
            let home_dir = home_path(&data_dir, &record);
            println!("user {name} added: home {}, quota {}", home_dir.display(), format_size(quota));
        }
        UserCommand::Passwd { name } => {
            let scrypt = config.scrypt;
            UserStore::load(&data_dir)?.user_mut(&name)?;
            let password = new_password(&name)?;
            let credentials = Credentials::derive(password.as_bytes(), scrypt)?;
            UserStore::update(&data_dir, |store| {
                store.user_mut(&name)?.credentials = credentials;
                Ok(())
            })?;
            println!("password of {name} changed");
        }
        UserCommand::Del { name } => {
            let record = UserStore::update(&data_dir, |store| {
                store.users.remove(&name).ok_or_else(|| StoreError::NoSuchUser(name.clone()))
            })?;
            println!("user {name} deleted; home {} kept", home_path(&data_dir, &record).display());
        }
        UserCommand::List => {
            let store = UserStore::load(&data_dir)?;
            println!("{:<20} {:>12} {:>12}  HOME", "USER", "QUOTA", "USED");
            for (name, record) in &store.users {
                let home = home_path(&data_dir, record);
                let used = Home::open(&home).and_then(|h| h.usage()).map(format_size).unwrap_or_else(|_| "?".into());
                println!("{name:<20} {:>12} {used:>12}  {}", format_size(record.quota), home.display());
            }
        }
        UserCommand::Quota { name, size } => {
            UserStore::update(&data_dir, |store| {
                store.user_mut(&name)?.quota = size;
                Ok(())
            })?;
            println!("quota of {name} set to {}", format_size(size));
        }
    }
    Ok(())
}
