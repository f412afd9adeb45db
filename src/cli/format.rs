//! Plain-text rendering shared by the shell and `user list`.

use crate::client::QuotaReport;
use crate::human::civil_time::CivilTime;
use crate::human::size::format_size;
use crate::net::{Entry, EntryKind};

/// `YYYY-MM-DD HH:MM` in UTC from Unix seconds (no time-zone database needed).
pub fn format_time(unix: i64) -> String {
    let CivilTime { year, month, day, hour, minute, .. } = CivilTime::from_unix(unix);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// One listing line: kind, size, modification time (UTC), name.
pub fn format_entry(entry: &Entry) -> String {
    let kind = match entry.kind {
        EntryKind::Dir => 'd',
        EntryKind::File => '-',
        EntryKind::Symlink => 'l',
        EntryKind::Partial => 'p',
        EntryKind::Other => '?',
    };
    format!("{kind} {:>14} {} {}", entry.size, format_time(entry.modified), entry.name)
}

/// `used 1.0 MiB of 10.0 MiB (10.0%), 9.0 MiB free; 3 of 100 files and directories`, and,
/// when there are partial uploads, how much of that they are and how to free it.
pub fn format_quota(report: &QuotaReport) -> String {
    let (used, limit) = (report.used, report.limit);
    let percent = if limit == 0 { 100.0 } else { used as f64 * 100.0 / limit as f64 };
    let mut text = format!(
        "used {} of {} ({percent:.1}%), {} free; {} of {} files and directories",
        format_size(used),
        format_size(limit),
        format_size(limit.saturating_sub(used)),
        report.files,
        report.max_files,
    );
    if report.partials > 0 {
        text.push_str(&format!(
            "\nof which {} in {} partial upload{} (kind p in ls: put the file again to resume, or rm NAME)",
            format_size(report.partial_bytes),
            report.partials,
            if report.partials == 1 { "" } else { "s" },
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times_in_utc() {
        assert_eq!(format_time(0), "1970-01-01 00:00");
        assert_eq!(format_time(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13");
    }

    #[test]
    fn formats_quota() {
        let mut report =
            QuotaReport { used: 1 << 20, limit: 10 << 20, files: 3, max_files: 100, partial_bytes: 0, partials: 0 };
        assert_eq!(
            format_quota(&report),
            "used 1.0 MiB of 10.0 MiB (10.0%), 9.0 MiB free; 3 of 100 files and directories"
        );
        (report.partial_bytes, report.partials) = (512 << 10, 1);
        assert!(format_quota(&report).ends_with(
            "\nof which 512.0 KiB in 1 partial upload (kind p in ls: put the file again to resume, or rm NAME)"
        ));
    }
}
