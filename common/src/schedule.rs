//! Calendar schedules: when a source is backed up, a repository pruned or verified.
//!
//! One syntax table, parsed here so that `backupd --check-config`, `backupctl source add` and
//! the daemon agree. A schedule is evaluated in the machine's local time zone (`TZ`, else
//! `/etc/localtime`). Accepted forms:
//!
//! - shorthands, as systemd names them: `minutely`, `hourly`, `daily`, `weekly`, `monthly`,
//!   `yearly`; `daily` and `weekly` take a time (`daily 02:00`), `weekly` a weekday
//!   (`weekly Sun 03:00`), `monthly` a day of the month (`monthly 15 04:00`);
//! - calendar events as systemd's `OnCalendar=` reads them, without a year:
//!   `[WEEKDAYS] [*-MONTH-DAY] HOUR:MINUTE[:SECOND]`, each field `*`, a number, a list `1,15`,
//!   a range `1..5` and a repetition `0/15` (`*-*-* 04:00:00`, `Mon..Fri 22:30`,
//!   `*-*-01 03:00`, `*:0/15`). As in systemd, weekdays and a day of the month must both match;
//! - cron patterns (5 fields, or 6 with seconds first) and `@hourly`-style aliases, as the
//!   `croner` crate reads them (`0 2 * * *`, `30 3 * * SUN`). As in cron, a day of the month
//!   and weekdays match when either does.
//!
//! Plain intervals (`--every 10m`) are not calendar schedules: see [`Every`].

use chrono::{DateTime, Local, TimeZone, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule {text:?}: {reason}")]
pub struct ScheduleError {
    pub text: String,
    pub reason: String,
}

/// A parsed calendar schedule; displays as it was written.
#[derive(Clone)]
pub struct Schedule {
    text: String,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.text)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(text: &str) -> Result<Self, ScheduleError> {
        let err = |reason: String| ScheduleError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(err(
                "is empty; try `daily 02:00`, `hourly` or `0 2 * * *`".into()
            ));
        }
        let (pattern, both_days) = translate(trimmed).map_err(err)?;
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .dom_and_dow(both_days)
            .build()
            .parse(&pattern)
            .map_err(|e| {
                err(format!(
                    "is not a shorthand, a calendar event or a cron pattern ({e}); see \
                     `backupctl source add --help`"
                ))
            })?;
        let schedule = Self {
            text: trimmed.to_owned(),
            cron,
        };
        // A pattern that never matches (`*-02-30 00:00`) would silently never run.
        if schedule.next_after(0).is_none() {
            return Err(err("never occurs".into()));
        }
        Ok(schedule)
    }
}

impl Schedule {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first time (ns since the epoch) strictly after `after_ns` the schedule names, in
    /// local time; `None` if it names none within croner's search range.
    pub fn next_after(&self, after_ns: i64) -> Option<i64> {
        // Whole seconds: croner carries the fraction over into what it finds.
        let secs = after_ns.div_euclid(1_000_000_000);
        let after = Local.from_utc_datetime(&DateTime::<Utc>::from_timestamp(secs, 0)?.naive_utc());
        let next = self.cron.find_next_occurrence(&after, false).ok()?;
        next.timestamp_nanos_opt()
    }
}

/// When something runs: a calendar schedule, or a plain interval after the last run
/// (`every 10m` in the config, `--every 10m` on a source).
#[derive(Clone, Debug, PartialEq)]
pub enum When {
    Calendar(Box<Schedule>),
    Every(Duration),
}

/// Intervals shorter than this are refused: a schedule is not a busy loop.
pub const MIN_EVERY: Duration = Duration::from_secs(1);

impl When {
    /// `every DURATION`, or a calendar schedule.
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        match text.trim().strip_prefix("every ") {
            Some(d) => Self::every(d.trim()).map_err(|reason| ScheduleError {
                text: text.to_owned(),
                reason,
            }),
            None => text.parse().map(|s| Self::Calendar(Box::new(s))),
        }
    }

    fn every(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text)
            .map_err(|e| format!("{text:?} is not a duration such as \"10m\" ({e})"))?;
        if d < MIN_EVERY {
            return Err(format!("{text:?} is shorter than 1s"));
        }
        Ok(Self::Every(d))
    }

    /// The first run after one at `last_ns` (ns since the epoch).
    pub fn next_after(&self, last_ns: i64) -> Option<i64> {
        match self {
            Self::Calendar(s) => s.next_after(last_ns),
            Self::Every(d) => {
                Some(last_ns.saturating_add(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)))
            }
        }
    }
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Calendar(s) => s.fmt(f),
            Self::Every(d) => write!(f, "every {}", humantime::format_duration(*d)),
        }
    }
}

/// A source's schedule and retention settings, checked alike by `--check-config` and by the
/// daemon on `source add|set`: the field that is wrong and why.
pub fn policy_problem(policy: &crate::protocol::SourcePolicy) -> Option<(&'static str, String)> {
    if let Some(text) = &policy.schedule {
        if let Err(e) = text.parse::<Schedule>() {
            return Some(("schedule", e.reason));
        }
    }
    if let Some(every) = policy.every {
        if every < MIN_EVERY {
            return Some(("every", "is shorter than 1s".into()));
        }
    }
    if policy.jitter > Duration::ZERO && !policy.is_scheduled() {
        return Some((
            "jitter",
            "is set without a schedule or an interval; it delays scheduled runs".into(),
        ));
    }
    if let Some(every) = policy.retention_every {
        if every < MIN_EVERY {
            return Some(("retention_every", "is shorter than 1s".into()));
        }
    }
    if let crate::protocol::Retention::Keep(rules) = &policy.retention {
        if rules.is_empty() {
            return Some((
                "keep",
                "has no rule; give at least one keep rule, or keep everything".into(),
            ));
        }
    }
    if policy.rpo.is_some_and(|r| r < MIN_EVERY) {
        return Some(("rpo", "is shorter than 1s".into()));
    }
    if policy.rto.is_some_and(|r| r < MIN_RTO) {
        return Some(("rto", "is shorter than 1ms".into()));
    }
    None
}

/// The shortest RTO target: a restore is measured in milliseconds.
pub const MIN_RTO: Duration = Duration::from_millis(1);

/// Weekday names, Monday first, with cron's spelling: any prefix of at least three letters of
/// the English name is accepted (`Sun`, `sunday`).
const WEEKDAYS: [(&str, &str); 7] = [
    ("monday", "MON"),
    ("tuesday", "TUE"),
    ("wednesday", "WED"),
    ("thursday", "THU"),
    ("friday", "FRI"),
    ("saturday", "SAT"),
    ("sunday", "SUN"),
];

fn weekday(word: &str) -> Option<&'static str> {
    let lower = word.to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .find(|(full, _)| lower.len() >= 3 && full.starts_with(&lower))
        .map(|(_, cron)| *cron)
}

/// `a,b`, `a..b` and `x/y` of one systemd field into cron's spelling; `*` stays.
fn field(value: &str, what: &str, max: u32) -> Result<String, String> {
    let mut parts = Vec::new();
    for part in value.split(',') {
        let converted = if part == "*" {
            "*".to_owned()
        } else if let Some((start, step)) = part.split_once('/') {
            let start = if start == "*" {
                "*".to_owned()
            } else {
                number(start, what, max)?
            };
            format!("{start}/{}", number(step, what, max.max(1))?)
        } else if let Some((a, b)) = part.split_once("..") {
            format!("{}-{}", number(a, what, max)?, number(b, what, max)?)
        } else {
            number(part, what, max)?
        };
        parts.push(converted);
    }
    Ok(parts.join(","))
}

fn number(s: &str, what: &str, max: u32) -> Result<String, String> {
    match s.parse::<u32>() {
        Ok(n) if n <= max => Ok(n.to_string()),
        _ => Err(format!("{what} {s:?} is not a number from 0 to {max}")),
    }
}

fn weekdays(value: &str) -> Result<String, String> {
    let mut out = Vec::new();
    for part in value.split(',') {
        let one = |w: &str| weekday(w).ok_or_else(|| format!("{w:?} is not a weekday"));
        match part.split_once("..") {
            Some((a, b)) => out.push(format!("{}-{}", one(a)?, one(b)?)),
            None => out.push(one(part)?.to_owned()),
        }
    }
    Ok(out.join(","))
}

/// `HH:MM[:SS]` into cron's `SS MM HH`.
fn time_of_day(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split(':').collect();
    let (h, m, s) = match parts.as_slice() {
        [h, m] => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(format!("{value:?} is not a time HH:MM[:SS]")),
    };
    Ok(format!(
        "{} {} {}",
        field(s, "second", 59)?,
        field(m, "minute", 59)?,
        field(h, "hour", 23)?
    ))
}

/// `[*|YEAR-]MONTH-DAY` into cron's `DAY MONTH`.
fn date(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split('-').collect();
    let (month, day) = match parts.as_slice() {
        [m, d] => (*m, *d),
        ["*", m, d] => (*m, *d),
        [_, _, _] => {
            return Err(format!(
                "{value:?} names a year; schedules repeat, so give `*` as the year"
            ))
        }
        _ => return Err(format!("{value:?} is not a date [*-]MONTH-DAY")),
    };
    let day = field(day, "day", 31)?;
    if day.split(',').any(|d| d == "0") {
        return Err(format!("{value:?} has day 0"));
    }
    Ok(format!("{day} {}", field(month, "month", 12)?))
}

/// The cron pattern (6 fields, seconds first, unless given as cron) of a schedule, and
/// whether a day of the month and weekdays must both match.
fn translate(text: &str) -> Result<(String, bool), String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let first = words[0].to_ascii_lowercase();
    let time = |w: Option<&&str>| w.map_or(Ok("0 0 0".to_owned()), |t| time_of_day(t));
    let extra = |n: usize| {
        if words.len() > n {
            Err(format!(
                "unexpected {:?} after `{}`",
                words[n..].join(" "),
                words[..n].join(" ")
            ))
        } else {
            Ok(())
        }
    };
    match first.as_str() {
        "minutely" => {
            extra(1)?;
            return Ok(("0 * * * * *".into(), false));
        }
        "hourly" => {
            extra(1)?;
            return Ok(("0 0 * * * *".into(), false));
        }
        "daily" => {
            extra(2)?;
            return Ok((format!("{} * * *", time(words.get(1))?), false));
        }
        "weekly" => {
            // `weekly`, `weekly Sun`, `weekly 03:00`, `weekly Sun 03:00`.
            let (day, at) = match words.get(1) {
                Some(w) if w.contains(':') => ("MON".to_owned(), words.get(1)),
                Some(w) => (weekdays(w)?, words.get(2)),
                None => ("MON".to_owned(), None),
            };
            extra(if words.get(1).is_some_and(|w| !w.contains(':')) {
                3
            } else {
                2
            })?;
            return Ok((format!("{} * * {day}", time(at)?), false));
        }
        "monthly" => {
            let (day, at) = match words.get(1) {
                Some(w) if w.contains(':') => ("1".to_owned(), words.get(1)),
                Some(w) => (field(w, "day", 31)?, words.get(2)),
                None => ("1".to_owned(), None),
            };
            extra(if words.get(1).is_some_and(|w| !w.contains(':')) {
                3
            } else {
                2
            })?;
            return Ok((format!("{} {day} * *", time(at)?), false));
        }
        "yearly" | "annually" => {
            extra(1)?;
            return Ok(("0 0 0 1 1 *".into(), false));
        }
        _ => {}
    }
    if first.starts_with('@') {
        return Ok((text.to_owned(), false));
    }
    // A calendar event has a `:` in its time; a cron pattern never does.
    if text.contains(':') {
        let mut rest = words.as_slice();
        let mut dow = "*".to_owned();
        if let Some(w) = rest.first() {
            if w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                dow = weekdays(w)?;
                rest = &rest[1..];
            }
        }
        let (day_month, at) = match rest {
            [d, t] if d.contains('-') => (date(d)?, *t),
            [t] => ("* *".to_owned(), *t),
            _ => return Err("expected `[WEEKDAYS] [*-MONTH-DAY] HH:MM[:SS]`".into()),
        };
        return Ok((format!("{} {day_month} {dow}", time_of_day(at)?), true));
    }
    Ok((text.to_owned(), false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, Timelike};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .and_then(|d| d.and_hms_opt(h, mi, 0))
            .expect("valid date");
        Local
            .from_local_datetime(&naive)
            .earliest()
            .and_then(|t| t.timestamp_nanos_opt())
            .expect("representable")
    }

    fn next(s: &str, from: i64) -> DateTime<Local> {
        let ns = s
            .parse::<Schedule>()
            .expect(s)
            .next_after(from)
            .expect("occurs");
        Local.from_utc_datetime(&DateTime::<Utc>::from_timestamp_nanos(ns).naive_utc())
    }

    #[test]
    fn shorthands_and_calendar_events_name_the_same_times() {
        // 2026-12-01 is a Tuesday.
        let from = at(2026, 12, 1, 10, 17);
        for (text, (d, h, m)) in [
            ("hourly", (1, 11, 0)),
            ("daily", (2, 0, 0)),
            ("daily 02:00", (2, 2, 0)),
            ("*-*-* 04:00:00", (2, 4, 0)),
            ("04:00", (2, 4, 0)),
            ("0 2 * * *", (2, 2, 0)),
            ("weekly Sun 03:00", (6, 3, 0)),
            ("weekly", (7, 0, 0)),
            ("30 3 * * SUN", (6, 3, 30)),
            ("Mon..Fri 22:30", (1, 22, 30)),
            ("Sat,Sun 08:00", (5, 8, 0)),
            ("*-*-01 03:00", (1, 3, 0)),
            ("monthly 15 04:00", (15, 4, 0)),
            ("*:0/15", (1, 10, 30)),
            ("@daily", (2, 0, 0)),
        ] {
            let t = next(text, from);
            let day = if t.month() == 12 {
                t.day()
            } else {
                31 + t.day()
            };
            // `*-*-01 03:00` after Dec 1st 10:17 is Jan 1st.
            let want_day = if text == "*-*-01 03:00" { 32 } else { d };
            assert_eq!((day, t.hour(), t.minute()), (want_day, h, m), "{text}");
        }
    }

    #[test]
    fn weekday_and_day_of_month_both_match_in_calendar_events() {
        // The next Friday the 13th after 2026-12-01 is 2027-08-13.
        let t = next("Fri *-*-13 00:00", at(2026, 12, 1, 0, 0));
        assert_eq!((t.year(), t.month(), t.day()), (2027, 8, 13));
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        for (text, says) in [
            ("", "empty"),
            ("daily 25:00", "hour"),
            ("weekly Blursday", "weekday"),
            ("2027-01-01 00:00", "year"),
            ("*-02-30 00:00", "never"),
            ("every tuesday", "cron"),
            ("daily 02:00 extra", "unexpected"),
        ] {
            let e = text.parse::<Schedule>().expect_err(text);
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn next_is_strictly_after() {
        let s: Schedule = "daily 02:00".parse().expect("parses");
        let two = at(2026, 12, 2, 2, 0);
        assert!(s.next_after(two).expect("occurs") > two);
        assert_eq!(s.next_after(two - 1), Some(two));
    }
}
