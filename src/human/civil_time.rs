//! UTC calendar arithmetic for Unix timestamps (Howard Hinnant's `civil_from_days` and
//! `days_from_civil`), so listings and FTP time values need no calendar crate. Pure.

/// A moment in UTC, split into calendar fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    /// 1 to 12
    pub month: u32,
    /// 1 to 31
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl CivilTime {
    pub fn from_unix(unix: i64) -> CivilTime {
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
        CivilTime { year, month, day, hour, minute, second }
    }

    /// The Unix time of these fields (which the caller has checked are in range).
    pub fn to_unix(&self) -> i64 {
        let (month, day) = (i64::from(self.month), i64::from(self.day));
        let y = if month <= 2 { self.year - 1 } else { self.year };
        let era = y.div_euclid(400);
        let yoe = y.rem_euclid(400);
        let mp = (month + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        days * 86_400 + i64::from(self.hour) * 3600 + i64::from(self.minute) * 60 + i64::from(self.second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates_and_round_trips() {
        let epoch = CivilTime { year: 1970, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
        assert_eq!(CivilTime::from_unix(0), epoch);
        assert_eq!(CivilTime::from_unix(951_782_400), CivilTime { year: 2000, month: 2, day: 29, ..epoch });
        let before = CivilTime { year: 1969, month: 12, day: 31, hour: 23, minute: 59, second: 59 };
        assert_eq!(CivilTime::from_unix(-1), before);
        for unix in [0, 951_782_400, 1_795_000_000, -1, 4_102_444_800, -86_400 * 366] {
            assert_eq!(CivilTime::from_unix(unix).to_unix(), unix);
        }
    }
}
