//! Directory listings as FTP clients parse them: `ls -l` lines for LIST (the format every
//! client understands), bare names for NLST, and RFC 3659 facts for MLSD and MLST. Pure.

use crate::net::{Entry, EntryKind};

/// The civil date of a Unix time, UTC: (year, month 1-12, day, hour, minute, second).
/// Howard Hinnant's `civil_from_days`, so no calendar crate is needed for a timestamp.
pub fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = unix.div_euclid(86_400);
    let seconds = unix.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = ((seconds / 3600) as u32, (seconds / 60 % 60) as u32, (seconds % 60) as u32);
    (year, month, day, hour, minute, second)
}

/// `YYYYMMDDHHMMSS`, the RFC 3659 time-val used by MDTM and the `modify` fact.
pub fn time_val(unix: i64) -> String {
    let (year, month, day, hour, minute, second) = civil(unix);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}")
}

/// Parses a time-val (`YYYYMMDDHHMMSS`, optionally with `.fff`) into Unix seconds, UTC.
/// Howard Hinnant's `days_from_civil`, the inverse of [`civil`].
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
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// One `ls -l` line. Files changed in the last six months show the time, older ones the year,
/// as `ls` does (`now` is passed in so the output is testable).
pub fn list_line(entry: &Entry, now: i64) -> String {
    let (kind, mode) = match entry.kind {
        EntryKind::Dir => ('d', "rwx------"),
        EntryKind::Symlink => ('l', "rwxrwxrwx"),
        EntryKind::File | EntryKind::Other => ('-', "rw-------"),
    };
    let (year, month, day, hour, minute, _) = civil(entry.modified);
    let month = MONTHS[month as usize - 1];
    let recent = (now - entry.modified).abs() < 182 * 86_400;
    let when =
        if recent { format!("{month} {day:>2} {hour:02}:{minute:02}") } else { format!("{month} {day:>2}  {year}") };
    format!("{kind}{mode} 1 ftp ftp {size:>12} {when} {name}", size = entry.size, name = entry.name)
}

/// The RFC 3659 facts of an entry, in the order FEAT announces them, ending with `; `.
pub fn facts(entry: &Entry) -> String {
    let (kind, perm) = match entry.kind {
        EntryKind::Dir => ("dir", "elcmfp"),
        EntryKind::Symlink => ("OS.unix=symlink", "r"),
        EntryKind::File | EntryKind::Other => ("file", "rwadf"),
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
    fn civil_dates_match_known_timestamps() {
        assert_eq!(civil(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(civil(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(time_val(1_795_000_000), "20261118110640");
        assert_eq!(civil(-1), (1969, 12, 31, 23, 59, 59));
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
        assert_eq!(old, "drwx------ 1 ftp ftp         4096 Jan  1  1970 sub");
    }

    #[test]
    fn mlsd_facts_follow_rfc_3659() {
        assert_eq!(
            mlsd_line(&entry("f", EntryKind::File, 7, 0)),
            "type=file;size=7;modify=19700101000000;perm=rwadf; f"
        );
        assert_eq!(mlsd_line(&entry("d", EntryKind::Dir, 4096, 0)), "type=dir;modify=19700101000000;perm=elcmfp; d");
    }
}
