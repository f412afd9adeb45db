//! Directory listings as FTP clients parse them: `ls -l` lines for LIST (the format every
//! client understands), bare names for NLST, and RFC 3659 facts for MLSD and MLST. Pure.

use crate::human::civil_time::CivilTime;
use crate::net::{Entry, EntryKind};

/// `YYYYMMDDHHMMSS`, the RFC 3659 time-val used by MDTM and the `modify` fact.
pub fn time_val(unix: i64) -> String {
    let CivilTime { year, month, day, hour, minute, second } = CivilTime::from_unix(unix);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}")
}

/// Parses a time-val (`YYYYMMDDHHMMSS`, optionally with `.fff`) into Unix seconds, UTC.
pub fn parse_time_val(text: &str) -> Option<i64> {
    let digits = text.split('.').next()?;
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| digits[range].parse::<i64>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let field32 = |value: i64| value as u32;
    let time = CivilTime {
        year,
        month: field32(month),
        day: field32(day),
        hour: field32(hour),
        minute: field32(minute),
        second: field32(second),
    };
    Some(time.to_unix())
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The listings sent over a data connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingKind {
    /// LIST: `ls -l` lines.
    List,
    /// NLST: bare names.
    Names,
    /// MLSD: RFC 3659 facts.
    Facts,
}

impl ListingKind {
    /// Appends `entry`'s line in this listing, with its CRLF, to `text`, if it is shown there
    /// ([`shown_in`]).
    pub fn write_line(self, entry: &Entry, now: i64, text: &mut String) {
        if !shown_in(entry, self == ListingKind::List) {
            return;
        }
        match self {
            ListingKind::List => text.push_str(&list_line(entry, now)),
            ListingKind::Names => text.push_str(&entry.name),
            ListingKind::Facts => text.push_str(&mlsd_line(entry)),
        }
        text.push_str("\r\n");
    }
}

/// Now, in Unix seconds: what `ls -l` lines are dated against.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Is `entry` shown in a listing of this kind? A partial upload is shown only in LIST, the
/// listing people read, under a name no client takes for the finished file (see
/// [`list_line`]); NLST and MLSD feed mirroring tools, which would fetch it, and leave it out.
/// So do they leave out what is neither a file nor a directory (a FIFO, socket or device that
/// another program put in the home, such as an agent's socket in a real user's home): RETR
/// refuses it (309), and lftp's `mirror` or rclone would count each one as a failed copy.
pub fn shown_in(entry: &Entry, human: bool) -> bool {
    human || !matches!(entry.kind, EntryKind::Partial | EntryKind::Other)
}

/// One `ls -l` line. Files changed in the last six months show the time, older ones the year,
/// as `ls` does (`now` is passed in so the output is testable). A partial upload shows as
/// `NAME (partial upload)`: a client that parses the line sees a name other than the file's.
pub fn list_line(entry: &Entry, now: i64) -> String {
    let (kind, mode) = match entry.kind {
        EntryKind::Dir => ('d', "rwx------"),
        EntryKind::Symlink => ('l', "rwxrwxrwx"),
        EntryKind::File | EntryKind::Partial => ('-', "rw-------"),
        // Not a file: nothing can be done with it here (the native shell's `ls` shows `?` too).
        EntryKind::Other => ('?', "---------"),
    };
    let suffix = if entry.kind == EntryKind::Partial { " (partial upload)" } else { "" };
    let CivilTime { year, month, day, hour, minute, .. } = CivilTime::from_unix(entry.modified);
    let month = MONTHS[month as usize - 1];
    let recent = (now - entry.modified).abs() < 182 * 86_400;
    let when =
        if recent { format!("{month} {day:>2} {hour:02}:{minute:02}") } else { format!("{month} {day:>2}  {year}") };
    format!("{kind}{mode} 1 ftp ftp {size:>12} {when} {name}{suffix}", size = entry.size, name = entry.name)
}

/// The RFC 3659 facts of an entry, in the order FEAT announces them, ending with `; `.
pub fn facts(entry: &Entry) -> String {
    let (kind, perm) = match entry.kind {
        EntryKind::Dir => ("dir", "elcmfp"),
        EntryKind::Symlink => ("OS.unix=symlink", "r"),
        EntryKind::Partial => ("OS.ftp-actor=partial-upload", "d"),
        EntryKind::File => ("file", "rwadf"),
        EntryKind::Other => ("OS.unix=special", ""),
    };
    let mut facts = format!("type={kind};");
    if entry.kind != EntryKind::Dir {
        facts.push_str(&format!("size={};", entry.size));
    }
    facts.push_str(&format!("modify={};perm={perm}; ", time_val(entry.modified)));
    facts
}

/// An MLSD line: facts, then the bare name.
pub fn mlsd_line(entry: &Entry) -> String {
    format!("{}{}", facts(entry), entry.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: EntryKind, size: u64, modified: i64) -> Entry {
        Entry { name: name.into(), kind, size, modified }
    }

    #[test]
    fn time_vals_match_known_timestamps() {
        assert_eq!(time_val(0), "19700101000000");
        assert_eq!(time_val(951_782_400), "20000229000000");
        assert_eq!(time_val(1_795_000_000), "20261118110640");
        assert_eq!(time_val(-1), "19691231235959");
        for unix in [0, 951_782_400, 1_795_000_000, -1, 4_102_444_800] {
            assert_eq!(parse_time_val(&time_val(unix)), Some(unix));
        }
        assert_eq!(parse_time_val("20261118110640.123"), Some(1_795_000_000));
        assert_eq!(parse_time_val("2026111811064"), None);
        assert_eq!(parse_time_val("20261318110640"), None);
    }

    #[test]
    fn ls_lines_show_time_when_recent_and_year_when_old() {
        let now = 1_795_000_000;
        let recent = list_line(&entry("a b.txt", EntryKind::File, 1234, now - 3600), now);
        assert_eq!(recent, "-rw------- 1 ftp ftp         1234 Nov 18 10:06 a b.txt");
        let old = list_line(&entry("sub", EntryKind::Dir, 4096, 0), now);
        let partial = list_line(&entry("big.iso", EntryKind::Partial, 10, now), now);
        assert!(partial.ends_with(" big.iso (partial upload)"), "{partial}");
        assert!(
            shown_in(&entry("p", EntryKind::Partial, 1, 0), true)
                && !shown_in(&entry("p", EntryKind::Partial, 1, 0), false)
        );
        assert_eq!(old, "drwx------ 1 ftp ftp         4096 Jan  1  1970 sub");
        let fifo = entry("pipe", EntryKind::Other, 0, now);
        assert!(list_line(&fifo, now).starts_with("?--------- 1 ftp ftp "), "{}", list_line(&fifo, now));
        assert!(shown_in(&fifo, true) && !shown_in(&fifo, false));
    }

    #[test]
    fn each_listing_has_its_lines() {
        let mut text = String::new();
        for kind in [ListingKind::List, ListingKind::Names, ListingKind::Facts] {
            kind.write_line(&entry("f", EntryKind::File, 7, 0), 0, &mut text);
            kind.write_line(&entry("p", EntryKind::Partial, 7, 0), 0, &mut text);
        }
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(
            lines,
            [
                "-rw------- 1 ftp ftp            7 Jan  1 00:00 f",
                "-rw------- 1 ftp ftp            7 Jan  1 00:00 p (partial upload)",
                "f",
                "type=file;size=7;modify=19700101000000;perm=rwadf; f",
            ]
        );
    }

    #[test]
    fn mlsd_facts_follow_rfc_3659() {
        assert_eq!(
            mlsd_line(&entry("f", EntryKind::File, 7, 0)),
            "type=file;size=7;modify=19700101000000;perm=rwadf; f"
        );
        assert_eq!(mlsd_line(&entry("d", EntryKind::Dir, 4096, 0)), "type=dir;modify=19700101000000;perm=elcmfp; d");
        assert_eq!(
            mlsd_line(&entry("s", EntryKind::Other, 0, 0)),
            "type=OS.unix=special;size=0;modify=19700101000000;perm=; s"
        );
    }
}
