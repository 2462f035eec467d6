//! Time phrases ("last month", "Q3 2025", "since March") resolved into half-open date ranges.
//!
//! Pure: the caller passes "today" already in the configured time zone, so the same words always
//! give the same range in tests and in a thread.
use chrono::{Datelike, Days, Months, NaiveDate};

use crate::domain::{Grain, TimeRange};

/// Phrases shown in `help` and in "not understood" replies.
pub const KNOWN_TIME_PHRASES: &[&str] = &[
    "today",
    "yesterday",
    "this week",
    "last week",
    "this month",
    "last month",
    "this quarter",
    "last quarter",
    "this year",
    "last year",
    "last 7 days",
    "last 4 weeks",
    "last 3 months",
    "in 2025",
    "Q3 2025",
    "in October",
    "October 2025",
    "since March",
    "from March to June",
    "2026-03-15",
    "all time",
];

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Largest N accepted in "last N days": beyond it the words are more likely a typo than a range.
const MAX_PERIODS: u32 = 5000;

/// Resolves a whole text as one time phrase ("last month", "what about" excluded).
pub fn resolve_time_phrase(text: &str, today: NaiveDate) -> Option<TimeRange> {
    let words: Vec<String> = text
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '?' | '!'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    match match_time_phrase(&words, today) {
        Some((used, range)) if used == words.len() => Some(range),
        _ => None,
    }
}

/// The same words read on another day: "last week (30 Nov – 6 Dec 2026)" read on the 14th is the
/// week before the 14th. A range that named its dates ("November 2026") stays as it is, as does
/// one whose words no longer read as a range.
pub fn rebase_range(range: &TimeRange, today: NaiveDate) -> TimeRange {
    let words = range.label.split(" (").next().unwrap_or_default();
    resolve_time_phrase(words, today).unwrap_or_else(|| range.clone())
}

/// Matches a time phrase at the start of `words` (lowercase). Returns how many words it used
/// and the range. A leading preposition ("in", "during", "for", "over", "since"...) and "the"
/// are part of the phrase, so "in May" is a month while a bare "may" is not.
///
/// Only the first few words are looked at and none is copied: the rules reader calls this at
/// every word of a question, with the rest of the question as `words`.
pub fn match_time_phrase(words: &[&str], today: NaiveDate) -> Option<(usize, TimeRange)> {
    let mut at = 0;
    let mut has_preposition = false;
    if matches!(
        words.first(),
        Some(&("in" | "during" | "for" | "over" | "within" | "from" | "on"))
    ) {
        at = 1;
        has_preposition = true;
    }
    if words.get(at) == Some(&"the") {
        at += 1;
    }
    let rest = words.get(at..)?;
    if let Some((used, range)) = match_range_or_relative(rest, today, has_preposition) {
        return Some((at + used, range));
    }
    None
}

/// "since X", "between X and Y", "X to Y", relative periods, or a single point period.
fn match_range_or_relative(words: &[&str], today: NaiveDate, has_preposition: bool) -> Option<(usize, TimeRange)> {
    let first = *words.first()?;
    if first == "since" {
        let (used, point) = match_point(words.get(1..)?, today, true)?;
        let end = next_day(today)?;
        if point.start >= end {
            return None;
        }
        let label = format!("since {} ({})", point.label, span_label(point.start, today));
        return Some((
            1 + used,
            TimeRange {
                start: point.start,
                end,
                label,
            },
        ));
    }
    if first == "between" {
        let (used_a, a) = match_point(words.get(1..)?, today, true)?;
        if words.get(1 + used_a) != Some(&"and") {
            return None;
        }
        let (used_b, b) = match_point(words.get(2 + used_a..)?, today, true)?;
        return combine(a, b).map(|range| (2 + used_a + used_b, range));
    }
    if let Some(found) = match_relative(words, today) {
        return Some(found);
    }
    let (used, point) = match_point(words, today, has_preposition)?;
    // "March to June", "2026-01-01 until 2026-02-15": a span of two points, ends included.
    if matches!(words.get(used), Some(&("to" | "until" | "through" | "thru" | "-"))) {
        if let Some((used_b, b)) = words.get(used + 1..).and_then(|rest| match_point(rest, today, true)) {
            if let Some(range) = combine(point.clone(), b) {
                return Some((used + 1 + used_b, range));
            }
        }
    }
    Some((used, point))
}

fn combine(a: TimeRange, b: TimeRange) -> Option<TimeRange> {
    if a.start >= b.end {
        return None;
    }
    Some(TimeRange {
        start: a.start,
        end: b.end,
        label: format!("{} to {}", a.label, b.label),
    })
}

/// Periods relative to today: today, yesterday, this/last week|month|quarter|year, last N units,
/// year/month/quarter to date.
fn match_relative(words: &[&str], today: NaiveDate) -> Option<(usize, TimeRange)> {
    let first = *words.first()?;
    let second = words.get(1).copied();
    let tomorrow = next_day(today)?;
    match first {
        "today" => {
            return Some((
                1,
                TimeRange {
                    start: today,
                    end: tomorrow,
                    label: format!("today ({})", day_label(today)),
                },
            ))
        }
        "yesterday" => {
            let start = today.checked_sub_days(Days::new(1))?;
            return Some((
                1,
                TimeRange {
                    start,
                    end: today,
                    label: format!("yesterday ({})", day_label(start)),
                },
            ));
        }
        "ytd" => return this_period(Unit::Year, today).map(|r| (1, r)),
        "mtd" => return this_period(Unit::Month, today).map(|r| (1, r)),
        "qtd" => return this_period(Unit::Quarter, today).map(|r| (1, r)),
        _ => {}
    }
    if let (Some(unit), Some("to"), Some("date")) = (Unit::parse(first), second, words.get(2).copied()) {
        return this_period(unit, today).map(|r| (3, r));
    }
    match first {
        "this" | "current" => {
            let unit = Unit::parse(second?)?;
            this_period(unit, today).map(|r| (2, r))
        }
        "last" | "previous" | "prior" | "past" => {
            let next = second?;
            if let Some(unit) = Unit::parse(next) {
                // "past week" reads as "the last seven days" to many people, so only the
                // unambiguous words name the previous calendar period.
                if first == "past" || unit == Unit::Day {
                    return None;
                }
                return last_periods(unit, 1, today).map(|r| (2, r));
            }
            if let Some(count) = parse_count(next) {
                let unit = Unit::parse(words.get(2).copied()?)?;
                return last_periods(unit, count, today).map(|r| (3, r));
            }
            if let Some(month) = parse_month(next) {
                if first == "past" {
                    return None;
                }
                // "last October": the most recent October that is over, not the current month.
                let mut year = today.year();
                if month >= today.month() {
                    year -= 1;
                }
                return month_range(year, month).map(|r| (2, r));
            }
            None
        }
        _ => None,
    }
}

/// A named period that does not depend on today except for a missing year: a day, a month,
/// a quarter or a year. `lenient` allows a bare "may" (after "in", "since"...).
fn match_point(words: &[&str], today: NaiveDate, lenient: bool) -> Option<(usize, TimeRange)> {
    let first = *words.first()?;
    let second = words.get(1).copied();
    if let Ok(day) = NaiveDate::parse_from_str(first, "%Y-%m-%d") {
        return Some((
            1,
            TimeRange {
                start: day,
                end: next_day(day)?,
                label: day_label(day),
            },
        ));
    }
    if let Some(month) = parse_month(first) {
        if let Some(year) = second.and_then(parse_year) {
            return month_range(year, month).map(|r| (2, r));
        }
        // "may" is also a verb; alone it only counts after a preposition.
        if first == "may" && !lenient {
            return None;
        }
        let mut year = today.year();
        if first_of_month(year, month)? > today {
            year -= 1;
        }
        return month_range(year, month).map(|r| (1, r));
    }
    if let Some(quarter) = parse_quarter(first) {
        if let Some(year) = second.and_then(parse_year) {
            return quarter_range(year, quarter).map(|r| (2, r));
        }
        let mut year = today.year();
        if first_of_month(year, quarter * 3 - 2)? > today {
            year -= 1;
        }
        return quarter_range(year, quarter).map(|r| (1, r));
    }
    if let Some(year) = parse_year(first) {
        if let Some(quarter) = second.and_then(parse_quarter) {
            return quarter_range(year, quarter).map(|r| (2, r));
        }
        return year_range(year).map(|r| (1, r));
    }
    None
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Unit {
    fn parse(word: &str) -> Option<Unit> {
        match word {
            "day" | "days" => Some(Unit::Day),
            "week" | "weeks" => Some(Unit::Week),
            "month" | "months" => Some(Unit::Month),
            "quarter" | "quarters" => Some(Unit::Quarter),
            "year" | "years" => Some(Unit::Year),
            _ => None,
        }
    }

    fn name(self, count: u32) -> &'static str {
        match (self, count == 1) {
            (Unit::Day, true) => "day",
            (Unit::Day, false) => "days",
            (Unit::Week, true) => "week",
            (Unit::Week, false) => "weeks",
            (Unit::Month, true) => "month",
            (Unit::Month, false) => "months",
            (Unit::Quarter, true) => "quarter",
            (Unit::Quarter, false) => "quarters",
            (Unit::Year, true) => "year",
            (Unit::Year, false) => "years",
        }
    }
}

/// The current period from its first day through today.
fn this_period(unit: Unit, today: NaiveDate) -> Option<TimeRange> {
    let start = period_start(unit, today)?;
    let end = next_day(today)?;
    let detail = match unit {
        Unit::Day => day_label(today),
        Unit::Week => span_label(start, today),
        Unit::Month => month_label(start),
        Unit::Quarter => quarter_label(start),
        Unit::Year => start.year().to_string(),
    };
    Some(TimeRange {
        start,
        end,
        label: format!("this {} ({detail})", unit.name(1)),
    })
}

/// The `count` full periods before the current one ("last 7 days" ends yesterday).
fn last_periods(unit: Unit, count: u32, today: NaiveDate) -> Option<TimeRange> {
    if count == 0 || count > MAX_PERIODS {
        return None;
    }
    let end = period_start(unit, today)?;
    let start = match unit {
        Unit::Day => end.checked_sub_days(Days::new(u64::from(count)))?,
        Unit::Week => end.checked_sub_days(Days::new(7 * u64::from(count)))?,
        Unit::Month => end.checked_sub_months(Months::new(count))?,
        Unit::Quarter => end.checked_sub_months(Months::new(3 * count))?,
        Unit::Year => end.checked_sub_months(Months::new(12 * count))?,
    };
    let last_day = end.pred_opt()?;
    let detail = match unit {
        Unit::Day | Unit::Week => span_label(start, last_day),
        Unit::Month if count == 1 => month_label(start),
        Unit::Month => format!("{} – {}", month_label(start), month_label(last_day)),
        Unit::Quarter if count == 1 => quarter_label(start),
        Unit::Quarter => format!("{} – {}", quarter_label(start), quarter_label(last_day)),
        Unit::Year if count == 1 => start.year().to_string(),
        Unit::Year => format!("{} – {}", start.year(), last_day.year()),
    };
    let words = if count == 1 {
        format!("last {}", unit.name(1))
    } else {
        format!("last {count} {}", unit.name(count))
    };
    Some(TimeRange {
        start,
        end,
        label: format!("{words} ({detail})"),
    })
}

/// The period before `range`, for "and the year before?" and for growth without a second
/// period. With a `step` ("the quarter before") the range moves back by that; without one by a
/// period of its own kind: calendar months, quarters and years (a partial "this month" becomes
/// the same days of the month before, so the two are comparable), else the same number of days.
pub fn previous_period(range: &TimeRange, step: Option<Grain>) -> Option<TimeRange> {
    let months = match step {
        Some(Grain::Day) => return shift_days(range, 1, "the day before"),
        Some(Grain::Week)
            if range.start.weekday() == chrono::Weekday::Mon
                && range.end - range.start <= chrono::Duration::days(7) =>
        {
            let start = range.start.checked_sub_days(Days::new(7))?;
            return Some(TimeRange {
                start,
                end: range.start,
                label: format!("the week before ({})", span_label(start, range.start.pred_opt()?)),
            });
        }
        Some(Grain::Week) => return shift_days(range, 7, "the week before"),
        Some(Grain::Month) => 1,
        Some(Grain::Quarter) => 3,
        Some(Grain::Year) => 12,
        None => match own_months(range) {
            Some(months) => months,
            None => {
                let days = u64::try_from((range.end - range.start).num_days()).ok()?;
                let words = if days == 7 && range.start.weekday() == chrono::Weekday::Mon {
                    "the week before".to_string()
                } else {
                    format!("the previous {days} days")
                };
                return shift_days(range, days, &words);
            }
        },
    };
    let start = range.start.checked_sub_months(Months::new(months))?;
    // A named step from a range that is one such period, or the current part of one, goes to
    // the whole period before: "this year" then "the year before" is all of last year.
    let whole = step.is_some() && own_months(range).is_some_and(|own| own == months);
    let end = if whole {
        range.start
    } else {
        range.end.checked_sub_months(Months::new(months))?
    };
    let name = match months {
        1 => "month",
        3 => "quarter",
        12 => "year",
        _ => "period",
    };
    let last_day = end.pred_opt()?;
    let detail = if start.day() == 1 && end.day() == 1 {
        match (end.year() * 12 + end.month0() as i32) - (start.year() * 12 + start.month0() as i32) {
            1 => month_label(start),
            3 if start.month0().is_multiple_of(3) => quarter_label(start),
            12 if start.month() == 1 => start.year().to_string(),
            _ => span_label(start, last_day),
        }
    } else {
        span_label(start, last_day)
    };
    Some(TimeRange {
        start,
        end,
        label: format!("the {name} before ({detail})"),
    })
}

/// How many months a calendar-aligned range steps back by: the smallest of a month, a quarter
/// and a year that starts where it starts and covers it, else its own whole months.
fn own_months(range: &TimeRange) -> Option<u32> {
    if range.start.day() != 1 {
        return None;
    }
    let span = (range.end.year() * 12 + range.end.month0() as i32)
        - (range.start.year() * 12 + range.start.month0() as i32)
        + i32::from(range.end.day() != 1);
    let span = u32::try_from(span).ok()?;
    for unit in [1, 3, 12] {
        if range.start.month0().is_multiple_of(unit) && span <= unit {
            return Some(unit);
        }
    }
    (range.end.day() == 1 && span > 0).then_some(span)
}

fn shift_days(range: &TimeRange, days: u64, words: &str) -> Option<TimeRange> {
    let start = range.start.checked_sub_days(Days::new(days))?;
    let end = range.end.checked_sub_days(Days::new(days))?;
    Some(TimeRange {
        start,
        end,
        label: format!("{words} ({})", span_label(start, end.pred_opt()?)),
    })
}

/// First day of the period containing `day` (weeks start on Monday).
fn period_start(unit: Unit, day: NaiveDate) -> Option<NaiveDate> {
    match unit {
        Unit::Day => Some(day),
        Unit::Week => day.checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday()))),
        Unit::Month => first_of_month(day.year(), day.month()),
        Unit::Quarter => first_of_month(day.year(), (day.month() - 1) / 3 * 3 + 1),
        Unit::Year => first_of_month(day.year(), 1),
    }
}

fn month_range(year: i32, month: u32) -> Option<TimeRange> {
    let start = first_of_month(year, month)?;
    let end = start.checked_add_months(Months::new(1))?;
    let name = MONTH_NAMES.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    Some(TimeRange {
        start,
        end,
        label: format!("{name} {year}"),
    })
}

fn quarter_range(year: i32, quarter: u32) -> Option<TimeRange> {
    let start = first_of_month(year, quarter * 3 - 2)?;
    let end = start.checked_add_months(Months::new(3))?;
    Some(TimeRange {
        start,
        end,
        label: format!("Q{quarter} {year}"),
    })
}

fn year_range(year: i32) -> Option<TimeRange> {
    let start = first_of_month(year, 1)?;
    let end = first_of_month(year + 1, 1)?;
    Some(TimeRange {
        start,
        end,
        label: year.to_string(),
    })
}

fn first_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn next_day(day: NaiveDate) -> Option<NaiveDate> {
    day.succ_opt()
}

fn parse_year(word: &str) -> Option<i32> {
    if word.len() != 4 || !word.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    word.parse().ok().filter(|year| (1900..=2200).contains(year))
}

fn parse_quarter(word: &str) -> Option<u32> {
    match word {
        "q1" => Some(1),
        "q2" => Some(2),
        "q3" => Some(3),
        "q4" => Some(4),
        _ => None,
    }
}

/// Month number from a full or abbreviated English month name.
pub(crate) fn parse_month(word: &str) -> Option<u32> {
    let month = match word {
        "january" | "jan" => 1,
        "february" | "feb" => 2,
        "march" | "mar" => 3,
        "april" | "apr" => 4,
        "may" => 5,
        "june" | "jun" => 6,
        "july" | "jul" => 7,
        "august" | "aug" => 8,
        "september" | "sep" | "sept" => 9,
        "october" | "oct" => 10,
        "november" | "nov" => 11,
        "december" | "dec" => 12,
        _ => return None,
    };
    Some(month)
}

/// A count written as digits or as a small English number ("last two weeks").
pub(crate) fn parse_count(word: &str) -> Option<u32> {
    if let Ok(n) = word.parse::<u32>() {
        return Some(n);
    }
    let n = match word {
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "fifteen" => 15,
        "twenty" => 20,
        "thirty" => 30,
        "fifty" => 50,
        "hundred" => 100,
        _ => return None,
    };
    Some(n)
}

fn short_month(day: NaiveDate) -> &'static str {
    const SHORT: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    SHORT.get(day.month0() as usize).copied().unwrap_or("")
}

fn day_label(day: NaiveDate) -> String {
    format!("{} {}, {}", short_month(day), day.day(), day.year())
}

fn month_label(day: NaiveDate) -> String {
    format!("{} {}", short_month(day), day.year())
}

fn quarter_label(day: NaiveDate) -> String {
    format!("Q{} {}", day.month0() / 3 + 1, day.year())
}

/// "Nov 15 – Nov 21, 2026", or with both years when the span crosses a year.
fn span_label(first: NaiveDate, last: NaiveDate) -> String {
    if first == last {
        return day_label(first);
    }
    if first.year() == last.year() {
        format!(
            "{} {} – {} {}, {}",
            short_month(first),
            first.day(),
            short_month(last),
            last.day(),
            last.year()
        )
    } else {
        format!("{} – {}", day_label(first), day_label(last))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Sunday, so week arithmetic is visible.
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap_or_default()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
    }

    fn range(text: &str) -> TimeRange {
        match resolve_time_phrase(text, today()) {
            Some(range) => range,
            None => panic!("'{text}' should be a time phrase"),
        }
    }

    fn assert_range(text: &str, start: NaiveDate, end: NaiveDate) {
        let got = range(text);
        assert_eq!((got.start, got.end), (start, end), "'{text}' resolved to {got:?}");
    }

    #[test]
    fn the_previous_period_is_one_of_the_ranges_own_kind() {
        let before = |text: &str| previous_period(&range(text), None).map(|r| (r.start, r.end, r.label));
        assert_eq!(
            before("last month"),
            Some((
                date(2026, 9, 1),
                date(2026, 10, 1),
                "the month before (Sep 2026)".into()
            ))
        );
        assert_eq!(
            before("last quarter"),
            Some((
                date(2026, 4, 1),
                date(2026, 7, 1),
                "the quarter before (Q2 2026)".into()
            ))
        );
        assert_eq!(
            before("in 2025"),
            Some((date(2024, 1, 1), date(2025, 1, 1), "the year before (2024)".into()))
        );
        // A partial period compares with the same part of the one before.
        assert_eq!(
            before("this year").map(|r| (r.0, r.1)),
            Some((date(2025, 1, 1), date(2025, 11, 23)))
        );
        assert_eq!(
            before("this quarter").map(|r| (r.0, r.1)),
            Some((date(2026, 7, 1), date(2026, 8, 23)))
        );
        assert_eq!(
            before("last 7 days").map(|r| (r.0, r.1)),
            Some((date(2026, 11, 8), date(2026, 11, 15)))
        );
        assert_eq!(
            before("last week"),
            Some((
                date(2026, 11, 2),
                date(2026, 11, 9),
                "the week before (Nov 2 – Nov 8, 2026)".into()
            ))
        );
        assert_eq!(
            before("last 7 days").map(|r| r.2),
            Some("the previous 7 days (Nov 8 – Nov 14, 2026)".into())
        );
    }

    #[test]
    fn a_named_step_moves_the_range_back_by_it() {
        let shifted = previous_period(&range("last month"), Some(Grain::Year)).map(|r| (r.start, r.end));
        assert_eq!(shifted, Some((date(2025, 10, 1), date(2025, 11, 1))));
        // From this (partial) year, the year before is all of it.
        let shifted = previous_period(&range("this year"), Some(Grain::Year)).map(|r| (r.start, r.end, r.label));
        assert_eq!(
            shifted,
            Some((date(2025, 1, 1), date(2026, 1, 1), "the year before (2025)".into()))
        );
        let shifted = previous_period(&range("last week"), Some(Grain::Week)).map(|r| (r.start, r.end));
        assert_eq!(shifted, Some((date(2026, 11, 2), date(2026, 11, 9))));
    }

    #[test]
    fn last_month_is_the_previous_calendar_month() {
        assert_range("last month", date(2026, 10, 1), date(2026, 11, 1));
        assert_eq!(range("last month").label, "last month (Oct 2026)");
        assert_range("previous month", date(2026, 10, 1), date(2026, 11, 1));
    }

    #[test]
    fn last_month_in_january_is_december_of_the_previous_year() {
        let got = resolve_time_phrase("last month", date(2026, 1, 15));
        assert_eq!(
            got.map(|r| (r.start, r.end)),
            Some((date(2025, 12, 1), date(2026, 1, 1)))
        );
    }

    #[test]
    fn this_month_runs_from_the_first_through_today() {
        assert_range("this month", date(2026, 11, 1), date(2026, 11, 23));
        assert_range("month to date", date(2026, 11, 1), date(2026, 11, 23));
    }

    #[test]
    fn last_year_is_the_previous_calendar_year() {
        assert_range("last year", date(2025, 1, 1), date(2026, 1, 1));
        assert_eq!(range("last year").label, "last year (2025)");
    }

    #[test]
    fn this_year_runs_from_january_first_through_today() {
        assert_range("this year", date(2026, 1, 1), date(2026, 11, 23));
        assert_range("ytd", date(2026, 1, 1), date(2026, 11, 23));
    }

    #[test]
    fn last_seven_days_are_the_seven_full_days_before_today() {
        assert_range("last 7 days", date(2026, 11, 15), date(2026, 11, 22));
        assert_eq!(range("last 7 days").label, "last 7 days (Nov 15 – Nov 21, 2026)");
        assert_range("the past 30 days", date(2026, 10, 23), date(2026, 11, 22));
        assert_range("last seven days", date(2026, 11, 15), date(2026, 11, 22));
    }

    #[test]
    fn last_n_weeks_are_full_monday_to_sunday_weeks_before_this_week() {
        // Today is Sunday Nov 22, so this week started on Monday Nov 16.
        assert_range("last 2 weeks", date(2026, 11, 2), date(2026, 11, 16));
    }

    #[test]
    fn last_n_months_are_full_calendar_months_before_this_month() {
        assert_range("last 3 months", date(2026, 8, 1), date(2026, 11, 1));
        assert_eq!(range("last 3 months").label, "last 3 months (Aug 2026 – Oct 2026)");
    }

    #[test]
    fn last_n_quarters_and_years_are_full_periods() {
        assert_range("last 2 quarters", date(2026, 4, 1), date(2026, 10, 1));
        assert_range("last 2 years", date(2024, 1, 1), date(2026, 1, 1));
    }

    #[test]
    fn yesterday_and_today_are_single_days() {
        assert_range("yesterday", date(2026, 11, 21), date(2026, 11, 22));
        assert_range("today", date(2026, 11, 22), date(2026, 11, 23));
    }

    #[test]
    fn last_week_is_the_previous_monday_to_sunday() {
        assert_range("last week", date(2026, 11, 9), date(2026, 11, 16));
        // On a Monday, last week ended the day before.
        let monday = resolve_time_phrase("last week", date(2026, 11, 16)).map(|r| (r.start, r.end));
        assert_eq!(monday, Some((date(2026, 11, 9), date(2026, 11, 16))));
    }

    #[test]
    fn this_week_starts_on_monday() {
        assert_range("this week", date(2026, 11, 16), date(2026, 11, 23));
    }

    #[test]
    fn quarters_follow_the_calendar() {
        assert_range("last quarter", date(2026, 7, 1), date(2026, 10, 1));
        assert_eq!(range("last quarter").label, "last quarter (Q3 2026)");
        assert_range("this quarter", date(2026, 10, 1), date(2026, 11, 23));
        assert_range("Q3 2025", date(2025, 7, 1), date(2025, 10, 1));
        assert_range("2025 q3", date(2025, 7, 1), date(2025, 10, 1));
        assert_eq!(range("Q3 2025").label, "Q3 2025");
        // A bare quarter that has not started yet this year is last year's.
        let q4 = resolve_time_phrase("q4", date(2026, 2, 1)).map(|r| r.start);
        assert_eq!(q4, Some(date(2025, 10, 1)));
    }

    #[test]
    fn a_year_is_the_whole_calendar_year() {
        assert_range("in 2025", date(2025, 1, 1), date(2026, 1, 1));
        assert_range("2024", date(2024, 1, 1), date(2025, 1, 1));
        assert_eq!(range("in 2025").label, "2025");
    }

    #[test]
    fn since_a_month_starts_at_its_most_recent_first_day_and_includes_today() {
        assert_range("since March", date(2026, 3, 1), date(2026, 11, 23));
        // December has not come yet this year, so it is last December.
        assert_range("since December", date(2025, 12, 1), date(2026, 11, 23));
        assert_range("since November", date(2026, 11, 1), date(2026, 11, 23));
        assert_range("since March 2025", date(2025, 3, 1), date(2026, 11, 23));
        assert_range("since 2026-03-15", date(2026, 3, 15), date(2026, 11, 23));
    }

    #[test]
    fn a_month_name_is_its_most_recent_occurrence() {
        assert_range("in October", date(2026, 10, 1), date(2026, 11, 1));
        assert_eq!(range("in October").label, "October 2026");
        assert_range("in December", date(2025, 12, 1), date(2026, 1, 1));
        assert_range("October 2025", date(2025, 10, 1), date(2025, 11, 1));
        assert_range("oct 2025", date(2025, 10, 1), date(2025, 11, 1));
        assert_range("last november", date(2025, 11, 1), date(2025, 12, 1));
    }

    #[test]
    fn a_bare_may_is_not_a_month_but_in_may_is() {
        assert_eq!(resolve_time_phrase("may", today()), None);
        assert_range("in may", date(2026, 5, 1), date(2026, 6, 1));
        assert_range("may 2025", date(2025, 5, 1), date(2025, 6, 1));
    }

    #[test]
    fn spans_between_two_points_include_both_ends() {
        assert_range("from March to June", date(2026, 3, 1), date(2026, 7, 1));
        assert_range(
            "between 2026-01-10 and 2026-01-20",
            date(2026, 1, 10),
            date(2026, 1, 21),
        );
    }

    #[test]
    fn a_time_phrase_is_matched_at_the_start_of_longer_text() {
        let words = ["last", "year", "instead"];
        let found = match_time_phrase(&words, today());
        assert_eq!(found.map(|(used, r)| (used, r.start)), Some((2, date(2025, 1, 1))));
    }

    #[test]
    fn words_that_are_not_time_are_not_matched() {
        for text in [
            "revenue",
            "last",
            "last 0 days",
            "q5 2025",
            "past week",
            "since",
            "emea",
        ] {
            assert_eq!(resolve_time_phrase(text, today()), None, "'{text}'");
        }
    }
}

#[cfg(test)]
mod rebase_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn relative_words_are_read_again_on_the_new_day_and_named_dates_stay() {
        let first = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let week_later = NaiveDate::from_ymd_opt(2026, 12, 14).unwrap();
        let last_week = resolve_time_phrase("last week", first).unwrap();
        let rebased = rebase_range(&last_week, week_later);
        assert_eq!(rebased, resolve_time_phrase("last week", week_later).unwrap());
        assert_ne!(rebased.start, last_week.start);
        let november = resolve_time_phrase("in November 2026", first).unwrap();
        assert_eq!(rebase_range(&november, week_later), november);
    }
}
