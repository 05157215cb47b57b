//! Recurrence rules: an RFC 5545 RRULE subset (FREQ, INTERVAL, BYDAY), the CLI's preset language, and
//! the next occurrence of a series.
//!
//! Rules are stored in canonical RRULE text (`FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH`) so every replica
//! computes the same next occurrence (and therefore the same deterministic occurrence id).

use crate::dates::{add_months, parse_weekday, weekday};
use crate::error::{Result, SpokeError};

/// How often a series repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freq {
    /// Every N days.
    Daily,
    /// Every N weeks (optionally on given weekdays).
    Weekly,
    /// Every N months, same day of month (clamped).
    Monthly,
    /// Every N years.
    Yearly,
}

/// A parsed recurrence rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The frequency.
    pub freq: Freq,
    /// Repeat every `interval` units (1–1000).
    pub interval: u32,
    /// Weekdays (0 = Monday … 6 = Sunday), sorted, for weekly rules; empty means "same weekday".
    pub by_day: Vec<u32>,
}

const DAY_CODES: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

impl Rule {
    /// The canonical RRULE text.
    pub fn to_rrule(&self) -> String {
        let freq = match self.freq {
            Freq::Daily => "DAILY",
            Freq::Weekly => "WEEKLY",
            Freq::Monthly => "MONTHLY",
            Freq::Yearly => "YEARLY",
        };
        let mut s = format!("FREQ={freq}");
        if self.interval != 1 {
            s.push_str(&format!(";INTERVAL={}", self.interval));
        }
        if !self.by_day.is_empty() {
            let days: Vec<&str> = self.by_day.iter().map(|&d| DAY_CODES[d as usize]).collect();
            s.push_str(&format!(";BYDAY={}", days.join(",")));
        }
        s
    }

    /// Parses canonical or user-written RRULE text (an optional `RRULE:` prefix is accepted).
    pub fn from_rrule(text: &str) -> Result<Rule> {
        let bad = || SpokeError::BadRecurrence(text.to_owned());
        let body = text.trim();
        let body = body.strip_prefix("RRULE:").unwrap_or(body);
        let mut freq = None;
        let mut interval = 1u32;
        let mut by_day = Vec::new();
        for part in body.split(';').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(bad)?;
            match k.to_ascii_uppercase().as_str() {
                "FREQ" => {
                    freq = Some(match v.to_ascii_uppercase().as_str() {
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "YEARLY" => Freq::Yearly,
                        _ => return Err(bad()),
                    })
                }
                "INTERVAL" => interval = v.parse().map_err(|_| bad())?,
                "BYDAY" => {
                    for d in v.split(',') {
                        let p = DAY_CODES
                            .iter()
                            .position(|c| c.eq_ignore_ascii_case(d))
                            .ok_or_else(bad)?;
                        by_day.push(p as u32);
                    }
                }
                _ => return Err(bad()),
            }
        }
        let freq = freq.ok_or_else(bad)?;
        if !(1..=1000).contains(&interval) || (!by_day.is_empty() && freq != Freq::Weekly) {
            return Err(bad());
        }
        by_day.sort_unstable();
        by_day.dedup();
        Ok(Rule {
            freq,
            interval,
            by_day,
        })
    }

    /// Parses the CLI language: `daily`, `weekly`, `monthly`, `yearly`, `weekdays`, `every 3 days`,
    /// `every 2 weeks`, `every other week`, `3d`/`2w`/`1m`/`1y`, weekday lists (`mon,thu`), or an RRULE.
    pub fn parse(text: &str) -> Result<Rule> {
        let bad = || SpokeError::BadRecurrence(text.to_owned());
        let s = text.trim().to_ascii_lowercase();
        let simple = |freq, interval| Rule {
            freq,
            interval,
            by_day: Vec::new(),
        };
        match s.as_str() {
            "daily" | "day" => return Ok(simple(Freq::Daily, 1)),
            "weekly" | "week" => return Ok(simple(Freq::Weekly, 1)),
            "biweekly" | "fortnightly" => return Ok(simple(Freq::Weekly, 2)),
            "monthly" | "month" => return Ok(simple(Freq::Monthly, 1)),
            "quarterly" => return Ok(simple(Freq::Monthly, 3)),
            "yearly" | "annually" | "year" => return Ok(simple(Freq::Yearly, 1)),
            "weekdays" => {
                return Ok(Rule {
                    freq: Freq::Weekly,
                    interval: 1,
                    by_day: vec![0, 1, 2, 3, 4],
                });
            }
            _ => {}
        }
        if s.contains('=') {
            return Rule::from_rrule(text);
        }
        let unit = |u: &str| -> Option<Freq> {
            match u.trim_end_matches('s') {
                "d" | "day" => Some(Freq::Daily),
                "w" | "wk" | "week" => Some(Freq::Weekly),
                "m" | "mo" | "month" => Some(Freq::Monthly),
                "y" | "yr" | "year" => Some(Freq::Yearly),
                _ => None,
            }
        };
        let words: Vec<&str> = s.split_whitespace().collect();
        if let ["every", rest @ ..] = words.as_slice() {
            let (n, u) = match rest {
                [u] => (1, *u),
                ["other", u] => (2, *u),
                [n, u] => (n.parse::<u32>().map_err(|_| bad())?, *u),
                _ => return Err(bad()),
            };
            if let Some(f) = unit(u) {
                if (1..=1000).contains(&n) {
                    return Ok(simple(f, n));
                }
                return Err(bad());
            }
            if n == 1
                && let Ok(r) = Rule::weekday_list(u)
            {
                return Ok(r);
            }
            return Err(bad());
        }
        if words.len() == 1 {
            let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
            if !digits.is_empty() {
                let n: u32 = digits.parse().map_err(|_| bad())?;
                let f = unit(&s[digits.len()..]).ok_or_else(bad)?;
                if (1..=1000).contains(&n) {
                    return Ok(simple(f, n));
                }
                return Err(bad());
            }
            return Rule::weekday_list(&s).map_err(|_| bad());
        }
        Err(bad())
    }

    fn weekday_list(s: &str) -> Result<Rule> {
        let mut by_day = Vec::new();
        for w in s.split(',') {
            by_day.push(
                parse_weekday(w.trim()).ok_or_else(|| SpokeError::BadRecurrence(s.to_owned()))?,
            );
        }
        by_day.sort_unstable();
        by_day.dedup();
        Ok(Rule {
            freq: Freq::Weekly,
            interval: 1,
            by_day,
        })
    }

    /// The first occurrence day strictly after `from` (a day number).
    pub fn next_after(&self, from: i64) -> i64 {
        let n = i64::from(self.interval);
        match self.freq {
            Freq::Daily => from + n,
            Freq::Weekly if self.by_day.is_empty() => from + 7 * n,
            Freq::Weekly => {
                let week_start = from - i64::from(weekday(from));
                for d in (from + 1)..(week_start + 7) {
                    if self.by_day.contains(&weekday(d)) {
                        return d;
                    }
                }
                let next_week = week_start + 7 * n;
                next_week + i64::from(self.by_day[0])
            }
            Freq::Monthly => add_months(from, n),
            Freq::Yearly => add_months(from, 12 * n),
        }
    }
}

/// Normalises user recurrence text to canonical RRULE text; `none` gives `None`.
pub fn normalise(text: &str) -> Result<Option<String>> {
    if text.trim().eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    Ok(Some(Rule::parse(text)?.to_rrule()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_every_n() {
        assert_eq!(normalise("daily").unwrap().unwrap(), "FREQ=DAILY");
        assert_eq!(
            normalise("every 3 days").unwrap().unwrap(),
            "FREQ=DAILY;INTERVAL=3"
        );
        assert_eq!(
            normalise("every 2 weeks").unwrap().unwrap(),
            "FREQ=WEEKLY;INTERVAL=2"
        );
        assert_eq!(normalise("2w").unwrap().unwrap(), "FREQ=WEEKLY;INTERVAL=2");
        assert_eq!(
            normalise("weekdays").unwrap().unwrap(),
            "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
        );
        assert_eq!(
            normalise("thu,mon").unwrap().unwrap(),
            "FREQ=WEEKLY;BYDAY=MO,TH"
        );
        assert_eq!(
            normalise("FREQ=MONTHLY;INTERVAL=2").unwrap().unwrap(),
            "FREQ=MONTHLY;INTERVAL=2"
        );
        assert_eq!(normalise("none").unwrap(), None);
        for bad in [
            "",
            "sometimes",
            "every 0 days",
            "every x days",
            "FREQ=HOURLY",
            "FREQ=DAILY;BYDAY=MO",
            "5q",
        ] {
            assert!(
                matches!(normalise(bad), Err(SpokeError::BadRecurrence(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn next_occurrences() {
        // Day 0 is a Thursday.
        let weekdays = Rule::parse("weekdays").unwrap();
        assert_eq!(weekdays.next_after(0), 1); // Fri
        assert_eq!(weekdays.next_after(1), 4); // Fri -> Mon
        assert_eq!(Rule::parse("every 3 days").unwrap().next_after(10), 13);
        let biweekly_mon = Rule::from_rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO").unwrap();
        // Thursday day 0: week starts Monday day -3; no Monday left this week; two weeks on: day 11.
        assert_eq!(biweekly_mon.next_after(0), 11);
    }
}
