//! Commands on directories and files that need no data connection: CWD, MKD, RMD, DELE,
//! RNFR/RNTO, SIZE, MDTM, MFMT, MLST, STAT and the checksums; each one call to the file
//! service, its answer translated into a reply.

use super::*;
use crate::ftp::directory_listing::DirectoryListing;
use crate::service::ListingPages;
use crate::storage::list_page::ListDetail;
use crate::wildcards::{has_wildcard, split_pattern, unescape};

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
    /// included, up to `max_list_entries` entries (its last line says if there were more).
    pub(super) async fn stat_listing(&mut self, path: &str) -> Flow {
        let max = self.services.config.max_list_entries;
        let mut listing = match self.open_listing(Some(path.to_string()), true, ListDetail::Facts).await {
            Ok(listing) => listing,
            Err(reply) => return Flow::Reply(reply),
        };
        let now = unix_now();
        let mut lines = Vec::new();
        let mut cut = false;
        loop {
            match listing.next().await {
                Ok(Some(page)) if lines.len() + page.len() <= max => {
                    lines.extend(page.iter().map(|entry| list_line(entry, now)));
                }
                Ok(Some(_)) => {
                    cut = true;
                    break;
                }
                Ok(None) => break,
                Err(error) => return Flow::Reply(Reply::from_error(&error)),
            }
        }
        let last = match cut {
            true => format!("End of status; {} entries shown: list the rest over a data connection", lines.len()),
            false => "End of status".to_string(),
        };
        Flow::Reply(Reply::multi(213, "Status follows", &lines, last))
    }

    /// What LIST, NLST, MLSD and STAT show for `path` (or the working directory): its listing,
    /// or, where `patterns` are taken (LIST, NLST and STAT: MLSD names a directory, RFC 3659)
    /// and its last name is a pattern (`*.txt`, `docs/report-?.pdf`) that matches names of its
    /// directory, those entries (see [`DirectoryListing`]). A pattern that matches nothing is
    /// taken as a name, as a Unix shell does. `detail` says what is read of each entry.
    pub(super) async fn open_listing(
        &self,
        path: Option<String>,
        patterns: bool,
        detail: ListDetail,
    ) -> Result<DirectoryListing, Reply> {
        if patterns
            && let Some((dir, pattern)) = path.as_deref().and_then(|path| split_pattern(path).ok())
            && has_wildcard(pattern)
        {
            let dir = dir.map(unescape);
            if let Ok(pages) = self.listing_pages(dir.clone(), detail)
                && let Some(matched) = DirectoryListing::matching(pages, dir, pattern).await
            {
                return Ok(matched);
            }
        }
        let pages = self.listing_pages(path, detail)?;
        DirectoryListing::all(pages).await.map_err(|error| Reply::from_error(&error))
    }

    /// The pages of `path`'s listing (or the working directory's).
    fn listing_pages(&self, path: Option<String>, detail: ListDetail) -> Result<ListingPages, Reply> {
        let login = self.logged_in();
        let target = login.resolve_or_cwd("ls", path.as_deref()).map_err(|error| Reply::from_error(&error))?;
        let shown = path.unwrap_or_else(|| target.to_string());
        Ok(ListingPages::new(login.files.clone(), target, shown, detail))
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
