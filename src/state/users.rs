//! Users and credentials as the AuthActor reads them. What a new version revokes (the users
//! whose sessions must end) is [`UserStore::revoked_by`] of the version applied before.

use std::path::PathBuf;

use crate::auth::user_store::{Fingerprint, StoreError, UserStore};

/// One version of the users, as the directory identifies it (opaque to the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsersVersion {
    /// The fingerprint of `users.toml` (`None`: no file yet).
    File(Option<Fingerprint>),
    /// A counter the database bumps with every change.
    Counter(i64),
}

/// Where users and their credentials live: `users.toml` ([`UsersFile`]) or a database table
/// ([`crate::state::postgres::users::UsersTable`]). Blocking: the AuthActor asks on its login
/// pool, at every login and every two seconds, several times at once when logins arrive
/// together; the `user` commands change it.
pub trait UserDirectory: Send + Sync + 'static {
    /// The users and their version, if the version differs from `known` (the one the caller
    /// applied last; `None`: answer in any case). Stateless, so that every caller that saw an
    /// older version gets the new one, however the calls interleave.
    fn read_if_changed(&self, known: Option<UsersVersion>) -> Result<Option<(UserStore, UsersVersion)>, StoreError>;
    /// Every user now.
    fn load(&self) -> Result<UserStore, StoreError>;
    /// Reads the users, lets `change` edit them, and saves the result, all under the
    /// directory's lock, so two administrators cannot lose each other's changes; nothing is
    /// saved if `change` fails. See [`update_users`] for a change that returns a value.
    fn update(&self, change: &mut dyn FnMut(&mut UserStore) -> Result<(), StoreError>) -> Result<(), StoreError>;
}

/// [`UserDirectory::update`] with a change that runs once and returns a value.
pub fn update_users<T>(
    directory: &dyn UserDirectory,
    change: impl FnOnce(&mut UserStore) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let mut change = Some(change);
    let mut result = None;
    directory.update(&mut |store| {
        let change = change.take().expect("an update runs its change once");
        result = Some(change(store)?);
        Ok(())
    })?;
    Ok(result.expect("a saved update ran its change"))
}

/// `users.toml` in the data directory, as `ftp-actor user ...` writes it; its version is the
/// file's fingerprint (modification time, size, inode), so asking costs one `stat`.
pub struct UsersFile {
    data_dir: PathBuf,
}

impl UsersFile {
    pub fn new(data_dir: PathBuf) -> UsersFile {
        UsersFile { data_dir }
    }
}

impl UserDirectory for UsersFile {
    fn read_if_changed(&self, known: Option<UsersVersion>) -> Result<Option<(UserStore, UsersVersion)>, StoreError> {
        let version = UsersVersion::File(UserStore::fingerprint(&self.data_dir)?);
        if known == Some(version) {
            return Ok(None);
        }
        Ok(Some((UserStore::load(&self.data_dir)?, version)))
    }

    fn load(&self) -> Result<UserStore, StoreError> {
        UserStore::load(&self.data_dir)
    }

    fn update(&self, change: &mut dyn FnMut(&mut UserStore) -> Result<(), StoreError>) -> Result<(), StoreError> {
        UserStore::update(&self.data_dir, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ScryptParams;
    use crate::auth::user_store::add_user;

    const FAST: ScryptParams = ScryptParams { log_n: 4, r: 8, p: 1 };

    #[test]
    fn every_caller_behind_gets_the_new_users_and_a_new_version_revokes_what_it_should() {
        let dir = tempfile::tempdir().unwrap();
        let file = UsersFile::new(dir.path().to_path_buf());
        let (empty, first) = file.read_if_changed(None).unwrap().expect("the first read answers");
        assert!(empty.users.is_empty());
        assert!(file.read_if_changed(Some(first)).unwrap().is_none(), "nothing changed");
        add_user(dir.path(), "ann", b"pw", FAST, 1000, None).unwrap();
        add_user(dir.path(), "bob", b"pw", FAST, 1000, None).unwrap();
        // Two callers that both knew the first version both get the new users.
        let (added, second) = file.read_if_changed(Some(first)).unwrap().expect("users were added");
        let (again, same) = file.read_if_changed(Some(first)).unwrap().expect("a second caller behind");
        assert_eq!((added.users.len(), again.users.len(), second), (2, 2, same));
        assert!(empty.revoked_by(&added).is_empty(), "adding revokes nobody");
        UserStore::update(dir.path(), |store| {
            store.users.remove("ann");
            store.user_mut("bob")?.quota = 5;
            Ok(())
        })
        .unwrap();
        let (changed, _) = file.read_if_changed(Some(second)).unwrap().expect("the store changed");
        assert_eq!(added.revoked_by(&changed), vec!["ann".to_string()], "a new quota ends no session");
    }
}
