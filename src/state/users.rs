//! Users and credentials as the AuthActor reads them, and the feed of changes that ends the
//! sessions of users deleted or given a new password or home.

use std::path::PathBuf;

use crate::auth::user_store::{Fingerprint, StoreError, UserStore};

/// What changed in the users since the directory was last asked.
#[derive(Debug, Clone)]
pub struct UserChanges {
    /// Every user, as they are now.
    pub users: UserStore,
    /// Users whose sessions must end: deleted, or given a new password or home.
    pub revoked: Vec<String>,
}

/// Where users and their credentials live. Blocking: the AuthActor asks on its login pool.
pub trait UserDirectory: Send + 'static {
    /// What changed since the last call, `None` if nothing did. The first call, and the first
    /// after [`UserDirectory::reread`], answers with every user.
    fn changes(&mut self) -> Result<Option<UserChanges>, StoreError>;
    /// Makes the next [`UserDirectory::changes`] answer with every user, changed or not (the
    /// AuthActor restarted and lost them). Users revoked meanwhile are still named.
    fn reread(&mut self);
}

/// `users.toml` in the data directory, as `ftp-actor user ...` writes it. Changes are found by
/// the file's fingerprint (modification time, size, inode), checked whenever asked (the
/// AuthActor asks at every login and every two seconds), and the revoked users by comparing
/// the new store with the one read before.
pub struct UsersFile {
    data_dir: PathBuf,
    /// The fingerprint of the store last read: `None` before the first read (or after a
    /// reread), `Some(None)` when there was no file.
    seen: Option<Option<Fingerprint>>,
    current: UserStore,
}

impl UsersFile {
    pub fn new(data_dir: PathBuf) -> UsersFile {
        UsersFile { data_dir, seen: None, current: UserStore::default() }
    }
}

impl UserDirectory for UsersFile {
    fn changes(&mut self) -> Result<Option<UserChanges>, StoreError> {
        let fingerprint = UserStore::fingerprint(&self.data_dir)?;
        if self.seen == Some(fingerprint) {
            return Ok(None);
        }
        let users = UserStore::load(&self.data_dir)?;
        let revoked = self.current.revoked_by(&users);
        self.current = users.clone();
        self.seen = Some(fingerprint);
        Ok(Some(UserChanges { users, revoked }))
    }

    fn reread(&mut self) {
        self.seen = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ScryptParams;
    use crate::auth::user_store::add_user;

    const FAST: ScryptParams = ScryptParams { log_n: 4, r: 8, p: 1 };

    #[test]
    fn the_feed_answers_once_per_change_and_names_revoked_users() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = UsersFile::new(dir.path().to_path_buf());
        let first = file.changes().unwrap().expect("the first call answers");
        assert!(first.users.users.is_empty() && first.revoked.is_empty());
        assert!(file.changes().unwrap().is_none(), "nothing changed");
        add_user(dir.path(), "ann", b"pw", FAST, 1000, None).unwrap();
        add_user(dir.path(), "bob", b"pw", FAST, 1000, None).unwrap();
        let added = file.changes().unwrap().expect("users were added");
        assert_eq!(added.users.users.len(), 2);
        assert!(added.revoked.is_empty(), "adding revokes nobody");
        UserStore::update(dir.path(), |store| {
            store.users.remove("ann");
            store.user_mut("bob")?.quota = 5;
            Ok(())
        })
        .unwrap();
        let changed = file.changes().unwrap().expect("the store changed");
        assert_eq!(changed.revoked, vec!["ann".to_string()], "a new quota ends no session");
        file.reread();
        let again = file.changes().unwrap().expect("a reread answers with every user");
        assert_eq!(again.users.users.len(), 1);
        assert!(again.revoked.is_empty());
    }
}
