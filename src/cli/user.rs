//! `ftp-actor user add|passwd|del|list|quota`: edits the user store under its lock.

use anyhow::bail;
use clap::{Args, Subcommand};

use crate::auth::user_store::{StoreError, add_user, home_path, validate_name};
use crate::auth::{Credentials, UserStore};
use crate::human::size::{format_size, parse_size};
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
}

pub fn run(args: UserArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let data_dir = config.data_dir.clone();
    let has_store = UserStore::path(&data_dir).exists();
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
            if UserStore::load(&data_dir)?.users.contains_key(&name) {
                bail!(StoreError::Exists(name));
            }
            if !has_store {
                eprintln!("no user store in {} yet: creating one there", data_dir.display());
            }
            let password = new_password(&name)?;
            let quota = quota.unwrap_or(config.default_quota);
            let record = add_user(&data_dir, &name, password.as_bytes(), config.scrypt, quota, home)?;
            if max_files.is_some() {
                UserStore::update(&data_dir, |store| {
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
            println!("{:<20} {:>12} {:>12} {:>17}  HOME", "USER", "QUOTA", "USED", "FILES");
            for (name, record) in &store.users {
                let home = home_path(&data_dir, record);
                let max_files = record.max_files.unwrap_or(config.default_max_files);
                let (used, files) = match LocalStore::open(&home).and_then(|h| h.usage()) {
                    Ok(usage) => (format_size(usage.bytes), format!("{}/{max_files}", usage.files)),
                    Err(_) => ("?".into(), format!("?/{max_files}")),
                };
                println!("{name:<20} {:>12} {used:>12} {files:>17}  {}", format_size(record.quota), home.display());
            }
        }
        UserCommand::Quota { name, size, max_files } => {
            UserStore::update(&data_dir, |store| {
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
    }
    Ok(())
}
