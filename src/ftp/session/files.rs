//! Commands on directories and files that need no data connection: CWD, MKD, RMD, DELE,
//! RNFR/RNTO, SIZE, MDTM, MFMT, MLST, STAT and the checksums; each one call to the file
//! service, its answer translated into a reply.

use super::*;
use crate::wildcards::{has_wildcard, join, matches, split_pattern, unescape};

/// A service call's answer as the command's reply: `ok` made from its value, or the error.
fn reply<T>(result: Result<T, WireError>, ok: impl FnOnce(T) -> Reply) -> Flow {
    Flow::Reply(match result {
        Ok(value) => ok(value),
        Err(error) => Reply::from_error(&error),
    })
}

impl Session {
    pub(super) async fn change_dir(&mut self, path: &str) -> Flow {
        let target = match self.resolve("cd", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        if let Err(error) = self.files().check_dir(target.clone(), path.to_string()).await {
            return Flow::Reply(Reply::from_error(&error));
        }
        let shown = target.to_string();
        if let Some(login) = self.login.as_mut() {
            login.cwd = target;
        }
        Flow::Reply(Reply::new(250, format!("now in {}", quote_path(&shown))))
    }

    /// MKD and RMD: the service keeps the quota's figures with the change.
    pub(super) async fn change_entry(&mut self, change: EntryChange, path: &str) -> Flow {
        let target = match self.resolve(change.op(), path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = quote_path(&target.to_string());
        reply(self.files().change_entry(change, target, path.to_string()).await, |()| match change {
            EntryChange::MakeDir => Reply::new(257, format!("{shown} created")),
            EntryChange::RemoveDir => Reply::new(250, "rmdir done"),
        })
    }

    /// DELE: removes the file, or where none is published the partial upload to the name
    /// (which LIST shows as `NAME (partial upload)`).
    pub(super) async fn remove_file(&mut self, path: &str) -> Flow {
        let target = match self.resolve("rm", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        reply(self.files().remove_file(target, path.to_string()).await, |removed| match removed {
            Removed::File { partial_remains: false } => Reply::new(250, "deleted"),
            Removed::File { partial_remains: true } => {
                Reply::new(250, "deleted; a partial upload to this name remains: DELE it again to remove that too")
            }
            Removed::Partial => Reply::new(250, "partial upload deleted"),
        })
    }

    pub(super) async fn rename_from(&mut self, path: &str) -> Flow {
        let source = match self.resolve("mv", path) {
            Ok(source) => source,
            Err(reply) => return Flow::Reply(reply),
        };
        match self.files().stat(source.clone(), path.to_string()).await {
            Ok(_) => {
                self.rename_from = Some(source);
                Flow::Reply(Reply::new(350, "ready for RNTO"))
            }
            Err(error) => Flow::Reply(Reply::from_error(&error)),
        }
    }

    pub(super) async fn rename_to(&mut self, path: &str) -> Flow {
        let Some(source) = self.rename_from.take() else {
            return Flow::Reply(Reply::new(503, "send RNFR first"));
        };
        let target = match self.resolve("mv", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = format!("{source} {path}");
        reply(self.files().rename(source, target, shown).await, |()| Reply::new(250, "renamed"))
    }

    pub(super) async fn size(&mut self, path: &str) -> Flow {
        let target = match self.resolve("size", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        reply(self.files().resume_len(target, path.to_string()).await, |len| Reply::new(213, len.to_string()))
    }

    /// MFMT (draft-somers-ftp-mfxx): sets the modification time, so mirrors keep file times.
    pub(super) async fn set_time(&mut self, time: &str, path: &str) -> Flow {
        let Some(unix) = parse_time_val(time) else {
            return Flow::Reply(Reply::new(501, "time must be YYYYMMDDHHMMSS (UTC)"));
        };
        let target = match self.resolve("set time", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let shown = target.to_string();
        let set = self.files().set_modified(target, unix, path.to_string()).await;
        reply(set, |()| Reply::new(213, format!("Modify={}; {shown}", time_val(unix))))
    }

    pub(super) async fn stat_reply(&mut self, path: &str, answer: impl FnOnce(crate::net::Entry) -> Reply) -> Flow {
        let target = match self.resolve("stat", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        reply(self.files().stat(target, path.to_string()).await, answer)
    }

    pub(super) fn status(&self) -> Reply {
        let lines = [
            format!("connected from {}", self.peer),
            format!("logged in as {}", self.user()),
            format!("data connections {}", if self.protect_data { "protected (TLS)" } else { "in the clear" }),
        ];
        Reply::multi(211, "ftp-actor status", &lines, "End of status")
    }

    /// STAT with a path: what LIST would send, on the control connection (RFC 959), patterns
    /// included.
    pub(super) async fn stat_listing(&mut self, path: &str) -> Flow {
        match self.matching_entries(Some(path.to_string())).await {
            Ok((entries, truncated)) => {
                let now = unix_now();
                let lines: Vec<String> = entries.iter().map(|entry| list_line(entry, now)).collect();
                let last = match truncated {
                    true => format!(
                        "End of status; listing cut at {} entries (the server's max_list_entries)",
                        entries.len()
                    ),
                    false => "End of status".to_string(),
                };
                Flow::Reply(Reply::multi(213, "Status follows", &lines, last))
            }
            Err(reply) => Flow::Reply(reply),
        }
    }

    /// What LIST and NLST show for `path`: [`Self::list_entries`], or, where its last name is a
    /// pattern (`*.txt`, `docs/report-?.pdf`) that matches names of its directory, those
    /// entries, each named as the client would have typed it (`docs/report-1.pdf`). The classic
    /// `ftp` client's `mget *.txt` sends `NLST *.txt` and fetches each name given back. A
    /// pattern that matches nothing is taken as a name, as a Unix shell does.
    pub(super) async fn matching_entries(&self, path: Option<String>) -> Result<(Vec<crate::net::Entry>, bool), Reply> {
        if let Some((dir, pattern)) = path.as_deref().and_then(|path| split_pattern(path).ok())
            && has_wildcard(pattern)
        {
            let dir = dir.map(unescape);
            if let Ok((entries, truncated)) = self.list_entries(dir.clone()).await {
                let matched: Vec<_> = entries
                    .into_iter()
                    .filter(|entry| matches(pattern, &entry.name))
                    .map(|entry| crate::net::Entry { name: join(dir.as_deref(), &entry.name), ..entry })
                    .collect();
                if !matched.is_empty() {
                    return Ok((matched, truncated));
                }
            }
        }
        self.list_entries(path).await
    }

    /// The entries of `path` (or the working directory), at most `max_list_entries` of them,
    /// and whether there were more.
    pub(super) async fn list_entries(&self, path: Option<String>) -> Result<(Vec<crate::net::Entry>, bool), Reply> {
        let login = self.logged_in();
        let target = login.resolve_or_cwd("ls", path.as_deref()).map_err(|error| Reply::from_error(&error))?;
        let shown = path.unwrap_or_else(|| target.to_string());
        match login.files.list(target, shown).await {
            Ok(listing) => Ok((listing.entries, listing.truncated)),
            Err(error) => Err(Reply::from_error(&error)),
        }
    }

    pub(super) async fn checksum(&mut self, path: &str, kind: Checksum) -> Flow {
        let target = match self.resolve("checksum", path) {
            Ok(target) => target,
            Err(reply) => return Flow::Reply(reply),
        };
        let name = target.to_string();
        reply(self.files().checksum(target, path.to_string()).await, |(md5, size)| {
            let hex = hex::encode(md5);
            match kind {
                Checksum::Hash => Reply::new(213, format!("MD5 0-{} {hex} {name}", size.saturating_sub(1))),
                Checksum::Xmd5 => Reply::new(250, hex),
                Checksum::Md5 => Reply::new(251, format!("{} {hex}", quote_path(&name))),
            }
        })
    }
}

/// Why a directory larger than `max_list_entries` is not listed. FTP has no field to say a
/// listing was cut: LIST, NLST and MLSD refuse it whole (`504 [310]`, before any data), so that
/// no client takes part of a directory for all of it. A 226 with the cut in its text (what
/// pure-ftpd sends) makes mirrors copy part of the directory, or delete the rest in a sync; an
/// error after part of the data made lftp retry for good (it takes a 5xx after data for a
/// server that cannot resume). STAT, whose listing is the reply itself, says it on its last line.
pub(super) fn listing_cut(max: usize) -> WireError {
    let why = format!("the directory has more than {max} entries (the server's max_list_entries): list a subdirectory");
    WireError::new(ErrorCode::ListingCut, why)
}
