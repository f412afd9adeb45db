//! What LIST, NLST, MLSD and STAT list, read a page at a time: a directory's entries (or a
//! file's one entry), or the entries of a directory whose names match a pattern (`*.txt`),
//! each named as the client would have typed it (`docs/report-1.pdf`). The classic `ftp`
//! client's `mget *.txt` sends `NLST *.txt` and fetches each name given back.

use crate::net::{Entry, WireError};
use crate::service::ListingPages;
use crate::wildcards::{join, matches};

/// Entries of a directory whose names match `pattern`, named from `dir` as typed.
struct Pattern {
    dir: Option<String>,
    pattern: String,
}

pub struct DirectoryListing {
    pages: ListingPages,
    /// A page read before the listing was sent (the first page, or the first with a match).
    first: Option<Vec<Entry>>,
    pattern: Option<Pattern>,
}

impl DirectoryListing {
    /// The whole listing of what `pages` reads. Its first page is read here, so that a
    /// missing directory is reported before a data connection opens.
    pub async fn all(mut pages: ListingPages) -> Result<DirectoryListing, WireError> {
        let first = pages.next().await?;
        Ok(DirectoryListing { pages, first, pattern: None })
    }

    /// The entries of `pages`' directory (typed as `dir`) whose names match `pattern`, or
    /// `None` if none does (or the directory cannot be read): the pattern is then taken as a
    /// name, as a Unix shell does. Pages are read up to the first match.
    pub async fn matching(mut pages: ListingPages, dir: Option<String>, pattern: &str) -> Option<DirectoryListing> {
        let pattern = Pattern { dir, pattern: pattern.to_string() };
        while let Ok(Some(page)) = pages.next().await {
            let matched = pattern.apply(page);
            if !matched.is_empty() {
                return Some(DirectoryListing { pages, first: Some(matched), pattern: Some(pattern) });
            }
        }
        None
    }

    /// The next page of entries, or `None` at the end. A page may be empty (no entry of it
    /// matched the pattern).
    pub async fn next(&mut self) -> Result<Option<Vec<Entry>>, WireError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        let page = self.pages.next().await?;
        Ok(match &self.pattern {
            Some(pattern) => page.map(|page| pattern.apply(page)),
            None => page,
        })
    }
}

impl Pattern {
    fn apply(&self, page: Vec<Entry>) -> Vec<Entry> {
        page.into_iter()
            .filter(|entry| matches(&self.pattern, &entry.name))
            .map(|entry| Entry { name: join(self.dir.as_deref(), &entry.name), ..entry })
            .collect()
    }
}
