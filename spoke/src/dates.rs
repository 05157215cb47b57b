//! Calendar arithmetic without a time-zone database: civil dates, day numbers, and the CLI date language.
//!
//! Dates are stored as Unix milliseconds of *local midnight* of the named day (the offset comes from
//! [`Env::local_offset_ms`]); they are shown as `YYYY-MM-DD` in local time.

use crate::env::Env;
use crate::error::{Result, SpokeError};

/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month 1–12.
    pub month: u32,
    /// Day of month 1–31.
    pub day: u32,
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
pub fn days_from_civil(d: Date) -> i64 {
    let y = i64::from(d.year) - i64::from(d.month <= 2);
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(d.month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d.day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day number (days since 1970-01-01).
pub fn civil_from_days(z: i64) -> Date {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Date {
        year: (y + i64::from(m <= 2)) as i32,
        month: m,
        day: d,
    }
}

/// Day of week of a day number: 0 = Monday … 6 = Sunday.
pub fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    (days + 3).rem_euclid(7) as u32
}

/// Number of days in a month.
pub fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

impl Date {
    /// Whether the fields name a real day.
    pub fn is_valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && (1..=9999).contains(&self.year)
    }
}

impl core::fmt::Display for Date {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// The local day number containing the instant `ms`.
pub fn local_day(env: &dyn Env, ms: i64) -> i64 {
    (ms + env.local_offset_ms(ms)).div_euclid(DAY_MS)
}

/// Unix ms of local midnight starting local day `days`.
pub fn local_midnight_ms(env: &dyn Env, days: i64) -> i64 {
    let guess = days * DAY_MS;
    // The offset at the guessed instant, refined once (enough except in pathological zones).
    let off = env.local_offset_ms(guess - env.local_offset_ms(guess));
    guess - off
}

/// Today's local day number.
pub fn today(env: &dyn Env) -> i64 {
    local_day(env, env.now_ms() as i64)
}

/// Formats a stored date (ms) as local `YYYY-MM-DD`.
pub fn format_date(env: &dyn Env, ms: i64) -> String {
    civil_from_days(local_day(env, ms)).to_string()
}

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Parses a weekday name or abbreviation (≥ 2 letters, e.g. `fr`, `fri`, `friday`) to 0 = Monday … 6.
pub fn parse_weekday(s: &str) -> Option<u32> {
    let s = s.to_ascii_lowercase();
    if s.len() < 2 {
        return None;
    }
    WEEKDAYS
        .iter()
        .position(|w| w.starts_with(&s))
        .map(|p| p as u32)
}

/// Parses the CLI date language to a local day number: `today`, `tomorrow`, `yesterday`, `+3d`, `-1d`,
/// `+2w`, `+1m`, weekday names (the next such day, strictly after today), `YYYY-MM-DD`.
pub fn parse_day(env: &dyn Env, text: &str) -> Result<i64> {
    let bad = || SpokeError::BadDate(text.to_owned());
    let s = text.trim().to_ascii_lowercase();
    let t = today(env);
    match s.as_str() {
        "today" | "tod" => return Ok(t),
        "tomorrow" | "tom" => return Ok(t + 1),
        "yesterday" => return Ok(t - 1),
        _ => {}
    }
    if let Some(rest) = s.strip_prefix('+').or_else(|| s.strip_prefix('-')) {
        let sign = if s.starts_with('-') { -1 } else { 1 };
        if rest.len() < 2 {
            return Err(bad());
        }
        let (num, unit) = rest.split_at(rest.len() - 1);
        let n: i64 = num.parse().map_err(|_| bad())?;
        if n > 100_000 {
            return Err(bad());
        }
        return match unit {
            "d" => Ok(t + sign * n),
            "w" => Ok(t + sign * 7 * n),
            "m" => Ok(add_months(t, sign * n)),
            "y" => Ok(add_months(t, sign * 12 * n)),
            _ => Err(bad()),
        };
    }
    if let Some(wd) = parse_weekday(&s) {
        let cur = weekday(t);
        let mut delta = (i64::from(wd) - i64::from(cur)).rem_euclid(7);
        if delta == 0 {
            delta = 7;
        }
        return Ok(t + delta);
    }
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() == 3 && parts[0].len() == 4 && parts[1].len() <= 2 && parts[2].len() <= 2 {
        let d = Date {
            year: parts[0].parse().map_err(|_| bad())?,
            month: parts[1].parse().map_err(|_| bad())?,
            day: parts[2].parse().map_err(|_| bad())?,
        };
        if !d.is_valid() {
            return Err(bad());
        }
        return Ok(days_from_civil(d));
    }
    Err(bad())
}

/// Parses the CLI date language to stored ms (local midnight); `none` gives `None`.
pub fn parse_date_ms(env: &dyn Env, text: &str) -> Result<Option<i64>> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    Ok(Some(local_midnight_ms(env, parse_day(env, text)?)))
}

/// Adds calendar months to a day number, clamping the day of month (Jan 31 + 1 month = Feb 28/29).
pub fn add_months(days: i64, months: i64) -> i64 {
    let d = civil_from_days(days);
    let total = i64::from(d.year) * 12 + i64::from(d.month - 1) + months;
    let year = total.div_euclid(12) as i32;
    let month = (total.rem_euclid(12) + 1) as u32;
    let day = d.day.min(days_in_month(year, month));
    days_from_civil(Date { year, month, day })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::TestEnv;

    #[test]
    fn civil_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 10_957, 20_000, 2_932_896] {
            assert_eq!(days_from_civil(civil_from_days(z)), z);
        }
        assert_eq!(
            civil_from_days(0),
            Date {
                year: 1970,
                month: 1,
                day: 1
            }
        );
        assert_eq!(weekday(0), 3);
    }

    #[test]
    fn date_language() {
        // 2026-12-03 is a Thursday.
        let d = days_from_civil(Date {
            year: 2026,
            month: 12,
            day: 3,
        });
        let env = TestEnv::new((d * DAY_MS + 3_600_000) as u64, 1);
        assert_eq!(parse_day(&env, "today").unwrap(), d);
        assert_eq!(parse_day(&env, "tomorrow").unwrap(), d + 1);
        assert_eq!(parse_day(&env, "+3d").unwrap(), d + 3);
        assert_eq!(parse_day(&env, "+2w").unwrap(), d + 14);
        assert_eq!(parse_day(&env, "fri").unwrap(), d + 1);
        assert_eq!(parse_day(&env, "thu").unwrap(), d + 7);
        assert_eq!(parse_day(&env, "2027-01-31").unwrap(), d + 59);
        for bad in ["", "2026-02-30", "someday", "+d", "+3x", "12/03/2026", "f"] {
            assert!(
                matches!(parse_day(&env, bad), Err(SpokeError::BadDate(_))),
                "{bad}"
            );
        }
        assert_eq!(parse_date_ms(&env, "none").unwrap(), None);
    }

    #[test]
    fn local_midnight_respects_offset() {
        let env = TestEnv::new(0, 1).with_offset_ms(-5 * 3_600_000);
        let ms = local_midnight_ms(&env, 100);
        assert_eq!(ms, 100 * DAY_MS + 5 * 3_600_000);
        assert_eq!(local_day(&env, ms), 100);
        assert_eq!(format_date(&env, ms), civil_from_days(100).to_string());
    }

    #[test]
    fn months_clamp() {
        let jan31 = days_from_civil(Date {
            year: 2027,
            month: 1,
            day: 31,
        });
        assert_eq!(
            civil_from_days(add_months(jan31, 1)),
            Date {
                year: 2027,
                month: 2,
                day: 28
            }
        );
    }
}
