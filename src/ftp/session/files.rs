//! Commands on directories and files that need no data connection: CWD, MKD, RMD, DELE,
//! RNFR/RNTO, SIZE, MDTM, MFMT, MLST, STAT and the checksums.

use super::*;

impl Session {
    /// Runs `call` on the disk pool with the user's home.
    pub(super) async fn on_disk<R: Send + 'static>(
        &self,
        name: &'static str,
        call: impl FnOnce(&Home) -> Result<R, StorageError> + Send + 'static,
    ) -> Result<R, Reply> {
        let home = self.logged_in().home.clone();
        match self.services.disk.run(name, move || call(&home)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(storage_reply(name, error)),
            Err(failed) => Err(Reply::new(451, format!("internal error: {failed}"))),
        }
    }

    pub(super) async fn change_dir(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let checked = target.clone();
        if let Err(reply) = self.on_disk("cd", move |home| home.check_dir(&checked)).await {
            return Flow::Reply(reply);
        }
        let shown = target.to_string();
        if let Some(login) = self.login.as_mut() {
            login.cwd = target;
        }
        Flow::Reply(Reply::new(250, format!("now in {}", quote_path(&shown))))
    }

    /// MKD, RMD and DELE: through [`Services::change_entry`](crate::actors::Services::change_entry),
    /// which keeps the quota's figures with the change.
    pub(super) async fn change_entry(&mut self, change: EntryChange, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = quote_path(&target.to_string());
        let login = self.logged_in();
        match self.services.change_entry(change, login.home.clone(), login.user.clone(), target).await {
            Ok(Ok(())) => Flow::Reply(match change {
                EntryChange::MakeDir => Reply::new(257, format!("{shown} created")),
                EntryChange::RemoveDir => Reply::new(250, "rmdir done"),
                EntryChange::RemoveFile => Reply::new(250, "deleted"),
            }),
            Ok(Err(error)) => Flow::Reply(storage_reply(change.op(), error)),
            Err(failed) => Flow::Reply(Reply::new(451, format!("internal error: {failed}"))),
        }
    }

    pub(super) async fn rename_from(&mut self, path: &str) -> Flow {
        let source = match self.resolve(path) {
            Ok(source) => source,
            Err(reply) => return Flow::Reply(reply),
        };
        let checked = source.clone();
        match self.on_disk("rename", move |home| home.stat(&checked)).await {
            Ok(_) => {
                self.rename_from = Some(source);
                Flow::Reply(Reply::new(350, "ready for RNTO"))
            }
            Err(reply) => Flow::Reply(reply),
        }
    }

    pub(super) async fn rename_to(&mut self, path: &str) -> Flow {
        let Some(source) = self.rename_from.take() else {
            return Flow::Reply(Reply::new(503, "send RNFR first"));
        };
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk("rename", move |home| home.rename(&source, &target)).await {
            Ok(()) => Flow::Reply(Reply::new(250, "renamed")),
            Err(reply) => Flow::Reply(reply),
        }
    }

    pub(super) async fn size(&mut self, path: &str) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk("size", move |home| home.resume_len(&target)).await {
            Ok(len) => Flow::Reply(Reply::new(213, len.to_string())),
            Err(reply) => Flow::Reply(reply),
        }
    }

    /// MFMT (draft-somers-ftp-mfxx): sets the modification time, so mirrors keep file times.
    pub(super) async fn set_time(&mut self, time: &str, path: &str) -> Flow {
        let Some(unix) = parse_time_val(time) else {
            return Flow::Reply(Reply::new(501, "time must be YYYYMMDDHHMMSS (UTC)"));
        };
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = target.to_string();
        match self.on_disk("set time", move |home| set_modified(home, &target, unix)).await {
            Ok(()) => Flow::Reply(Reply::new(213, format!("Modify={}; {shown}", time_val(unix)))),
            Err(reply) => Flow::Reply(reply),
        }
    }

    pub(super) async fn stat_reply(&mut self, path: &str, answer: impl FnOnce(crate::net::Entry) -> Reply) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.on_disk("stat", move |home| home.stat(&target)).await {
            Ok(entry) => Flow::Reply(answer(entry)),
            Err(reply) => Flow::Reply(reply),
        }
    }

    pub(super) fn status(&self) -> Reply {
        let login = self.logged_in();
        let lines = [
            format!("connected from {}", self.peer),
            format!("logged in as {}", login.user),
            format!("data connections {}", if self.protect_data { "protected (TLS)" } else { "in the clear" }),
        ];
        Reply::multi(211, "ftp-actor status", &lines, "End of status")
    }

    pub(super) async fn stat_listing(&mut self, path: &str) -> Flow {
        match self.list_entries(Some(path.to_string())).await {
            Ok((_, entries, truncated)) => {
                let now = unix_now();
                let lines: Vec<String> = entries.iter().map(|entry| list_line(entry, now)).collect();
                let last = match truncated {
                    true => format!("End of status; {}", listing_cut(entries.len())),
                    false => "End of status".to_string(),
                };
                Flow::Reply(Reply::multi(213, "Status follows", &lines, last))
            }
            Err(reply) => Flow::Reply(reply),
        }
    }

    /// The entries of `path` (or the working directory), at most `max_list_entries` of them,
    /// and whether there were more.
    pub(super) async fn list_entries(
        &self,
        path: Option<String>,
    ) -> Result<(VirtualPath, Vec<crate::net::Entry>, bool), Reply> {
        let target = match path {
            Some(path) => self.resolve(&path)?,
            None => self.cwd(),
        };
        let max = self.services.config.max_list_entries;
        let listed = target.clone();
        let listing = self.on_disk("list", move |home| home.list(&listed, max)).await?;
        if listing.truncated {
            tracing::warn!(user = self.user(), path = %target, max, "FTP listing cut at max_list_entries");
        }
        Ok((target, listing.entries, listing.truncated))
    }

    pub(super) async fn checksum(&mut self, path: &str, kind: Checksum) -> Flow {
        let target = match self.resolve(path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let user = self.user().to_string();
        let digests = self.services.digests.clone();
        let hashed = target.clone();
        // A stored digest is free; only a file that must be read is charged to the budget.
        let (services, budget_user) = (self.services.clone(), user.clone());
        let may_hash = move || services.may_hash(&budget_user).is_ok();
        let (md5, size, cost) =
            match self.on_disk("checksum", move |home| file_md5(home, &hashed, &digests, may_hash)).await {
                Ok(Some(result)) => result,
                Ok(None) => {
                    let refused =
                        self.services.may_hash(&user).err().unwrap_or_else(|| ErrorCode::HashBudgetExhausted.into());
                    return Flow::Reply(Reply::from_error(&refused));
                }
                Err(reply) => return Flow::Reply(reply),
            };
        self.services.charge_hashing(&user, cost);
        let hex = hex::encode(md5);
        let name = target.to_string();
        Flow::Reply(match kind {
            Checksum::Hash => Reply::new(213, format!("MD5 0-{} {hex} {name}", size.saturating_sub(1))),
            Checksum::Xmd5 => Reply::new(250, hex),
            Checksum::Md5 => Reply::new(251, format!("{} {hex}", quote_path(&name))),
        })
    }
}

/// What the final reply of a listing cut at `max_list_entries` says. FTP has no field for it,
/// and the reply's text is the one place a client (or its user) sees.
pub(super) fn listing_cut(shown: usize) -> String {
    format!("listing cut at {shown} entries (the server's max_list_entries); list a subdirectory")
}
