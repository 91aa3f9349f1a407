//! The two clocks the log shows: RFC 3339 UTC with milliseconds at the start of every line
//! (`2026-11-25T08:00:00.123Z`), and RFC 3164's `Mmm dd hh:mm:ss` in a syslog header. Std
//! has no calendar and no time zone, so both are UTC, computed here.

use std::fmt::{self, Display};
use std::time::{SystemTime, UNIX_EPOCH};

/// A UTC time shown as RFC 3339 with milliseconds, e.g. `2026-11-25T08:00:00.123Z`.
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let since_epoch = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since_epoch.as_secs();
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let secs_of_day = secs % 86_400;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60,
            since_epoch.subsec_millis()
        )
    }
}

/// Converts days since 1970-01-01 to a (year, month, day) date in the proleptic Gregorian
/// calendar. This is Howard Hinnant's `civil_from_days` algorithm
/// (<https://howardhinnant.github.io/date_algorithms.html>): std has no calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // March = 0
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 { month_index + 3 } else { month_index - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The RFC 3164 timestamp, `Mmm dd hh:mm:ss` with the day padded by a space, in UTC.
pub(crate) struct BsdTime(pub(crate) SystemTime);

impl Display for BsdTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MONTHS: [&str; 12] =
            ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        let secs = self.0.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let (_, month, day) = civil_from_days((secs / 86_400) as i64);
        let of_day = secs % 86_400;
        let month = MONTHS[(month as usize).saturating_sub(1).min(11)];
        write!(
            f,
            "{month} {day:>2} {:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at =
            |secs, millis| UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        assert_eq!(Rfc3339(at(0, 0)).to_string(), "1970-01-01T00:00:00.000Z");
        // 2000-02-29 (a leap day) 12:34:56.789
        assert_eq!(Rfc3339(at(951_827_696, 789)).to_string(), "2000-02-29T12:34:56.789Z");
        // 2026-11-25T07:59:14Z, the day this was written
        assert_eq!(Rfc3339(at(1_795_593_554, 5)).to_string(), "2026-11-25T07:59:14.005Z");
    }

    #[test]
    fn bsd_time_pads_the_day_with_a_space() {
        // 2026-12-07T07:05:09Z
        let at = UNIX_EPOCH + Duration::from_secs(1_796_627_109);
        assert_eq!(BsdTime(at).to_string(), "Dec  7 07:05:09");
        assert_eq!(BsdTime(UNIX_EPOCH).to_string(), "Jan  1 00:00:00");
    }
}
