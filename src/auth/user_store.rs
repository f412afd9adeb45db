//! The user store: `users.toml` in the data directory.
//!
//! It holds, per user, the home, the quota and the SCRAM verifier (salt, scrypt parameters,
//! StoredKey, ServerKey): nothing that logs in by itself. It is written atomically (temporary
//! file, fsync, rename, fsync of the directory) with mode 0600, and every read-modify-write by
//! the `user` commands holds an exclusive lock on `users.lock`, so two administrators cannot
//! lose each other's changes. The server only reads it, and reloads it when it changes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::kdf::{InvalidParams, ScryptParams};
use super::scram::{Key, ServerKeys};

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "users.toml";
const LOCK_FILE: &str = "users.lock";
/// Salt length in bytes.
pub const SALT_LEN: usize = 16;

/// Errors reading or changing the user store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("user store {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("user store {path} is not valid: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("invalid user name {0:?}: use 1 to 32 letters, digits, '.', '_' or '-', starting with a letter or digit")]
    InvalidName(String),
    #[error("user {0:?} already exists")]
    Exists(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    #[error("user {user:?} has no key {fingerprint} (see: ftp-actor user key list {user})")]
    NoSuchKey { user: String, fingerprint: String },
    #[error(transparent)]
    Params(#[from] InvalidParams),
    #[error("user database: {0}")]
    Database(#[from] crate::state::postgres::DatabaseError),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io { path: path.to_path_buf(), source }
}

/// One user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The home directory: relative paths are relative to the data directory.
    pub home: PathBuf,
    /// Quota in bytes.
    pub quota: u64,
    /// Most entries (files, directories, partial uploads) the home may hold; absent: the
    /// server's `default_max_files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files: Option<u64>,
    /// SSH public keys that log the user in over SFTP, as OpenSSH `authorized_keys` lines
    /// (see [`crate::auth::ssh_keys`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_keys: Vec<String>,
    /// The SCRAM verifier.
    #[serde(flatten)]
    pub credentials: Credentials,
}

/// Salt, scrypt parameters and the two SCRAM keys, base64 in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    pub scrypt: ScryptParams,
    #[serde(with = "base64_key")]
    pub stored_key: Key,
    #[serde(with = "base64_key")]
    pub server_key: Key,
}

impl Credentials {
    /// Derives a verifier for `password` with a fresh random salt. Slow by design (scrypt).
    pub fn derive(password: &[u8], scrypt: ScryptParams) -> Result<Credentials, InvalidParams> {
        let mut salt = vec![0u8; SALT_LEN];
        rand::fill(salt.as_mut_slice());
        let salted = scrypt.salted_password(password, &salt)?;
        let keys = ServerKeys::from_salted_password(&salted);
        Ok(Credentials { salt, scrypt, stored_key: keys.stored_key, server_key: keys.server_key })
    }
}

/// All users, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStore {
    #[serde(default)]
    pub users: BTreeMap<String, UserRecord>,
}

/// Identifies one version of the store file, so a reload happens only when it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// Checks a user name: 1 to 32 of `[A-Za-z0-9._-]`, starting with a letter or digit.
pub fn validate_name(name: &str) -> Result<(), StoreError> {
    let ok = (1..=32).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok { Ok(()) } else { Err(StoreError::InvalidName(name.to_string())) }
}

impl UserStore {
    /// The store's path inside `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(STORE_FILE)
    }

    /// Reads the store; a missing file is an empty store.
    pub fn load(data_dir: &Path) -> Result<UserStore, StoreError> {
        let path = Self::path(data_dir);
        match fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| StoreError::Corrupt { path, message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserStore::default()),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// The current file's fingerprint, `None` when there is no file yet.
    pub fn fingerprint(data_dir: &Path) -> Result<Option<Fingerprint>, StoreError> {
        let path = Self::path(data_dir);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(Fingerprint { modified: meta.modified().ok(), len: meta.len(), inode: meta.ino() })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::Io { path, source: e }),
        }
    }

    /// Writes the store atomically with mode 0600.
    pub fn save(&self, data_dir: &Path) -> Result<(), StoreError> {
        let path = Self::path(data_dir);
        let text = toml::to_string_pretty(self)
            .map_err(|e| StoreError::Corrupt { path: path.clone(), message: e.to_string() })?;
        let temp = data_dir.join(format!(".{STORE_FILE}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
            file.write_all(b"# ftp-actor users: managed by `ftp-actor user`; holds no passwords.\n")?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            File::open(data_dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_error(&path)(e)
        })
    }

    /// Runs a read-modify-write of the store under an exclusive lock and saves the result.
    pub fn update<T>(
        data_dir: &Path,
        change: impl FnOnce(&mut UserStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
        let lock_path = data_dir.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        lock.lock().map_err(io_error(&lock_path))?;
        let mut store = UserStore::load(data_dir)?;
        let result = change(&mut store)?;
        store.save(data_dir)?;
        Ok(result)
    }

    /// The users whose live sessions must end when `newer` replaces this store: those
    /// removed, and those whose password or home changed, or who lost an SSH key. A new
    /// password (or a removed key) is often the answer to a leaked one, so a session opened
    /// with the old one must not outlive it; a session in a moved home would go on in the old
    /// one. A changed quota, or a key added, ends nothing.
    pub fn revoked_by(&self, newer: &UserStore) -> Vec<String> {
        self.users
            .iter()
            .filter(|(name, old)| {
                newer.users.get(*name).is_none_or(|new| {
                    let key_removed = old.ssh_keys.iter().any(|key| !new.ssh_keys.contains(key));
                    new.credentials != old.credentials || new.home != old.home || key_removed
                })
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The user's record, or [`StoreError::NoSuchUser`].
    pub fn user_mut(&mut self, name: &str) -> Result<&mut UserRecord, StoreError> {
        self.users.get_mut(name).ok_or_else(|| StoreError::NoSuchUser(name.to_string()))
    }
}

/// Creates a user in `users.toml` (see [`add_user_to`]). This is what `ftp-actor user add`,
/// the first start and the tests all run.
pub fn add_user(
    data_dir: &Path,
    name: &str,
    password: &[u8],
    scrypt: ScryptParams,
    quota: u64,
    home: Option<PathBuf>,
) -> Result<UserRecord, StoreError> {
    let file = crate::state::users::UsersFile::new(data_dir.to_path_buf());
    add_user_to(&file, data_dir, name, password, scrypt, quota, home)
}

/// Creates a user in `directory`: checks the name, derives the SCRAM verifier (slow: scrypt),
/// creates the home (mode 0700; default `homes/NAME` in `data_dir`) and adds the record under
/// the directory's lock.
pub fn add_user_to(
    directory: &dyn crate::state::users::UserDirectory,
    data_dir: &Path,
    name: &str,
    password: &[u8],
    scrypt: ScryptParams,
    quota: u64,
    home: Option<PathBuf>,
) -> Result<UserRecord, StoreError> {
    validate_name(name)?;
    if directory.load()?.users.contains_key(name) {
        return Err(StoreError::Exists(name.to_string()));
    }
    let credentials = Credentials::derive(password, scrypt)?;
    let home = home.unwrap_or_else(|| default_home(name));
    let record = UserRecord { home, quota, max_files: None, ssh_keys: Vec::new(), credentials };
    let home_dir = home_path(data_dir, &record);
    crate::storage::local_store::create_home_dir(&home_dir).map_err(io_error(&home_dir))?;
    crate::state::users::update_users(directory, |store| {
        if store.users.contains_key(name) {
            return Err(StoreError::Exists(name.to_string()));
        }
        store.users.insert(name.to_string(), record.clone());
        Ok(())
    })?;
    Ok(record)
}

/// The absolute home directory of a record.
pub fn home_path(data_dir: &Path, record: &UserRecord) -> PathBuf {
    data_dir.join(&record.home)
}

/// The default home of a new user: `homes/NAME` in the data directory.
pub fn default_home(name: &str) -> PathBuf {
    Path::new("homes").join(name)
}

mod base64_bytes {
    use super::*;
    pub fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64.decode(text).map_err(serde::de::Error::custom)
    }
}

mod base64_key {
    use super::*;
    pub fn serialize<S: serde::Serializer>(key: &Key, s: S) -> Result<S::Ok, S::Error> {
        base64_bytes::serialize(key, s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        let bytes = base64_bytes::deserialize(d)?;
        Key::try_from(bytes.as_slice()).map_err(|_| serde::de::Error::custom("a key is 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn fast() -> ScryptParams {
        ScryptParams { log_n: 4, r: 8, p: 1 }
    }

    #[test]
    fn removed_users_and_changed_passwords_homes_or_lost_keys_are_revoked_but_quota_changes_are_not() {
        let record = |home: &str, password: &[u8]| UserRecord {
            home: home.into(),
            quota: 1 << 20,
            max_files: None,
            ssh_keys: vec!["ssh-ed25519 AAAA-one".into()],
            credentials: Credentials::derive(password, fast()).unwrap(),
        };
        let mut old = UserStore::default();
        for name in ["kept", "requota", "removed", "repassword", "moved", "keyadded", "keyremoved"] {
            old.users.insert(name.into(), record(&format!("homes/{name}"), b"pw"));
        }
        let mut new = old.clone();
        new.users.remove("removed");
        new.users.get_mut("requota").unwrap().quota = 5;
        new.users.get_mut("repassword").unwrap().credentials = Credentials::derive(b"pw", fast()).unwrap();
        new.users.get_mut("moved").unwrap().home = "elsewhere".into();
        new.users.insert("added".into(), record("homes/added", b"pw"));
        new.users.get_mut("keyadded").unwrap().ssh_keys.push("ssh-ed25519 AAAA-two".into());
        new.users.get_mut("keyremoved").unwrap().ssh_keys.clear();
        assert_eq!(old.revoked_by(&new), ["keyremoved", "moved", "removed", "repassword"]);
        assert!(new.revoked_by(&new).is_empty());
        assert!(UserStore::default().revoked_by(&new).is_empty(), "the first load revokes nothing");
    }

    #[test]
    fn saves_atomically_with_mode_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(UserStore::load(dir.path()).unwrap(), UserStore::default());
        UserStore::update(dir.path(), |store| {
            let credentials = Credentials::derive(b"secret", fast())?;
            let record = UserRecord {
                home: default_home("alice"),
                quota: 1 << 20,
                max_files: None,
                ssh_keys: Vec::new(),
                credentials,
            };
            store.users.insert("alice".into(), record);
            Ok(())
        })
        .unwrap();
        let path = UserStore::path(dir.path());
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("secret"));
        let store = UserStore::load(dir.path()).unwrap();
        let alice = &store.users["alice"];
        assert_eq!(alice.quota, 1 << 20);
        let salted = fast().salted_password(b"secret", &alice.credentials.salt).unwrap();
        assert_eq!(ServerKeys::from_salted_password(&salted).stored_key, alice.credentials.stored_key);
        // no temporary file is left behind
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_failed_change_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let result: Result<(), _> = UserStore::update(dir.path(), |_| Err(StoreError::NoSuchUser("bob".into())));
        assert!(result.is_err());
        assert!(!UserStore::path(dir.path()).exists());
    }

    #[test]
    fn corrupt_store_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(UserStore::path(dir.path()), "users = 5").unwrap();
        assert!(matches!(UserStore::load(dir.path()), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn names_are_checked() {
        for good in ["demo", "a", "alice.b-c_d", "0day"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", ".hidden", "-x", "a/b", "a b", "é", &"x".repeat(33), "..", "a,b", "a=b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
