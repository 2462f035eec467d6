//! Schedules and alerts said in a thread: "every monday at 9:00 to #sales", "cron 0 9 * * 1",
//! "alert me when refunds today > 50". Parsing turns the words into a 5-field cron expression, a
//! time zone, a destination and delivery options; evaluation (croner) gives the fire times in
//! that zone. Pure: the caller passes the zone to assume and the instant to count from.
//!
//! The parser is conservative on purpose. A text is a schedule only when it starts with a
//! schedule form ("every …", "daily", "mondays", "cron …", "at 9 every day", or a leader such as
//! "send me this" followed by one); anything else is `Ok(None)` and goes to the interpreter, so
//! "weekly active users" or "orders every month" stay questions. Once the text is clearly a
//! schedule, a part that does not fit is an error with a sentence saying what would.
//!
//! Daylight saving time (the rule croner implements, after the Open Cron Pattern Specification):
//! a fixed local time that does not exist on a spring-forward day fires at the first instant
//! after the gap (02:30 in Europe/Berlin on 2026-03-29 fires at 03:00 CEST), and one that happens
//! twice on a fall-back day fires once, at its first occurrence (02:30 CEST on 2026-10-25).
//! Interval schedules ("every 15 minutes", "hourly") follow real time: no run in the missing
//! hour, a run in each of the two repeated ones.
use std::fmt;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// The local time a schedule runs at when the text names a day but no time.
const DEFAULT_HOUR: u32 = 9;
/// Shorter intervals would mostly re-read the warehouse for the same numbers.
const SHORTEST_INTERVAL_MINUTES: u32 = 5;
/// Intervals that divide an hour (or a day) evenly, so every run is the same distance apart.
const MINUTE_INTERVALS: &[u32] = &[5, 6, 10, 12, 15, 20, 30];
const HOUR_INTERVALS: &[u32] = &[1, 2, 3, 4, 6, 8, 12];
/// What an alert's schedule is when the text names none.
const ALERT_DEFAULT_CRON: &str = "0 * * * *";
/// What a percentage change is measured against when the text does not say.
pub const PREVIOUS_RUN: &str = "the previous run";

/// A recurring delivery of a thread's query.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Five fields: minute, hour, day of month, month, day of week (0 or 7 is Sunday).
    pub cron: String,
    /// The zone the cron expression is read in (its hours are local hours).
    pub timezone: Tz,
    pub destination: Destination,
    pub options: DeliveryOptions,
}

/// Where each run is posted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "channel", rename_all = "snake_case")]
pub enum Destination {
    /// The thread's channel; each run replies in the schedule's own thread.
    Thread,
    /// A DM to the schedule's owner.
    Me,
    /// Another channel, as written: `#sales`, or `<#C123|sales>` as Slack sends a mention.
    Channel(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeliveryOptions {
    pub skip_if_empty: bool,
    pub skip_if_unchanged: bool,
    pub attach: Option<Attachment>,
    /// What happens to fire times missed while no server ran.
    pub catch_up: CatchUp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attachment {
    Csv,
    Chart,
}

/// Fire times missed while no server ran (a downtime, a deploy): what the next run does about
/// them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// One run for all of them, saying how many were missed.
    #[default]
    Latest,
    /// None: they are recorded as missed and the schedule waits for its next fire time.
    Skip,
    /// One run for each, oldest first, each as of its own fire time.
    All,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Latest => "latest",
            Self::Skip => "skip",
            Self::All => "all",
        }
    }
}

/// A text that reads as a schedule or an alert but cannot be one; the message is a sentence to
/// post back as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(String);

impl ScheduleError {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl Schedule {
    /// A schedule from a stored or typed cron expression, checked as `cron …` in a thread is.
    pub fn from_cron(
        cron: &str,
        timezone: Tz,
        destination: Destination,
        options: DeliveryOptions,
    ) -> Result<Self, ScheduleError> {
        let cron = checked_cron(cron)?;
        Ok(Self {
            cron,
            timezone,
            destination,
            options,
        })
    }

    /// The next `count` fire times strictly after `after`, read in the schedule's zone (see the
    /// module's note on daylight saving time). Empty if the expression does not parse, which
    /// `parse_schedule` and `from_cron` never let through.
    pub fn next_fire_times(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let Ok(cron) = cron_parser().parse(&self.cron) else {
            return Vec::new();
        };
        cron.iter_after(after.with_timezone(&self.timezone))
            .take(count)
            .map(|at| at.with_timezone(&Utc))
            .collect()
    }

    /// For the reply's echo: "every Monday at 09:00 (Europe/Berlin), cron `0 9 * * 1`", then the
    /// destination and options when they are not the defaults.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "{} ({}), cron `{}`",
            cron_in_words(&self.cron),
            self.timezone.name(),
            self.cron
        );
        match &self.destination {
            Destination::Thread => {}
            Destination::Me => text.push_str(", to you by DM"),
            Destination::Channel(channel) => text.push_str(&format!(", to {channel}")),
        }
        match self.options.attach {
            Some(Attachment::Csv) => text.push_str(", with a CSV"),
            Some(Attachment::Chart) => text.push_str(", with a chart"),
            None => {}
        }
        if self.options.skip_if_empty {
            text.push_str(", skipped when empty");
        }
        if self.options.skip_if_unchanged {
            text.push_str(", skipped when unchanged");
        }
        match self.options.catch_up {
            CatchUp::Latest => {}
            CatchUp::Skip => text.push_str(", missed runs skipped"),
            CatchUp::All => text.push_str(", every missed run caught up"),
        }
        text
    }
}

/// `Ok(None)` when the text is not a scheduling request (an ordinary question), the schedule it
/// states, or an error sentence when it is clearly one but cannot be read. `default_tz` applies
/// when the text names no zone.
pub fn parse_schedule(text: &str, default_tz: Tz) -> Result<Option<Schedule>, ScheduleError> {
    let tokens = tokenize(text, false);
    let mut cursor = Cursor::new(&tokens);
    let led = strip_leader(&mut cursor);
    let Some(draft) = parse_clauses(&mut cursor, Mode::Schedule { led })? else {
        return Ok(None);
    };
    draft.into_schedule(default_tz, None).map(Some)
}

/// A condition checked on a schedule, posted when it turns true.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The metric question to run ("refunds today"); empty means the thread's current query.
    pub question: String,
    pub condition: Condition,
    pub schedule: Schedule,
}

/// What an alert waits for. Thresholds compare the query's value (its first numeric cell);
/// changes compare it with the value of the `versus` period or of the previous run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum Condition {
    Above(f64),
    Below(f64),
    AtLeast(f64),
    AtMost(f64),
    /// Fallen by at least `percent` percent of the earlier value.
    DropsBy {
        percent: f64,
        versus: String,
    },
    /// Risen by at least `percent` percent of the earlier value.
    RisesBy {
        percent: f64,
        versus: String,
    },
    AnyRows,
}

impl Condition {
    /// Whether the condition is true for this run. A missing value never satisfies a threshold,
    /// and a change needs a positive earlier value: a percentage of nothing means nothing.
    pub fn holds(&self, current: Option<f64>, previous: Option<f64>, rows: usize) -> bool {
        let change_percent = || match (current, previous) {
            (Some(now), Some(before)) if before > 0.0 => Some((now - before) / before * 100.0),
            _ => None,
        };
        match self {
            Self::Above(limit) => current.is_some_and(|value| value > *limit),
            Self::Below(limit) => current.is_some_and(|value| value < *limit),
            Self::AtLeast(limit) => current.is_some_and(|value| value >= *limit),
            Self::AtMost(limit) => current.is_some_and(|value| value <= *limit),
            Self::DropsBy { percent, .. } => change_percent().is_some_and(|change| -change >= *percent),
            Self::RisesBy { percent, .. } => change_percent().is_some_and(|change| change >= *percent),
            Self::AnyRows => rows > 0,
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Above(limit) => write!(f, "is above {limit}"),
            Self::Below(limit) => write!(f, "is below {limit}"),
            Self::AtLeast(limit) => write!(f, "is at least {limit}"),
            Self::AtMost(limit) => write!(f, "is at most {limit}"),
            Self::DropsBy { percent, versus } => write!(f, "drops by {percent}% or more vs {versus}"),
            Self::RisesBy { percent, versus } => write!(f, "rises by {percent}% or more vs {versus}"),
            Self::AnyRows => f.write_str("returns any rows"),
        }
    }
}

impl Alert {
    /// For the reply's echo: "when refunds today is above 50, checked every hour (UTC), cron `0 * * * *`".
    pub fn describe(&self) -> String {
        let subject = if self.question.is_empty() {
            "this query"
        } else {
            self.question.as_str()
        };
        format!(
            "when {subject} {}, checked {}",
            self.condition,
            self.schedule.describe()
        )
    }
}

/// Whether an alert is waiting for its condition or has already said it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    #[default]
    Armed,
    Firing,
}

/// What a run of an alert posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Fire,
    BackToNormal,
    Nothing,
}

impl AlertState {
    /// One run's outcome: fire once when the condition turns true, stay quiet while it stays
    /// true, say "back to normal" once when it turns false, and re-arm.
    pub fn step(self, holds: bool) -> (AlertState, AlertAction) {
        match (self, holds) {
            (Self::Armed, true) => (Self::Firing, AlertAction::Fire),
            (Self::Armed, false) => (Self::Armed, AlertAction::Nothing),
            (Self::Firing, true) => (Self::Firing, AlertAction::Nothing),
            (Self::Firing, false) => (Self::Armed, AlertAction::BackToNormal),
        }
    }
}

/// `Ok(None)` unless the text asks for an alert ("alert me when …", "tell me when …", or a bare
/// "when …" that states a condition); the alert, checked hourly unless a schedule follows the
/// condition; or an error sentence when it is clearly an alert but cannot be read.
pub fn parse_alert(text: &str, default_tz: Tz) -> Result<Option<Alert>, ScheduleError> {
    let tokens = tokenize(text, true);
    let mut cursor = Cursor::new(&tokens);
    cursor.eat_words(&["please"]);
    let explicit = ALERT_LEADERS.iter().any(|leader| cursor.eat_words(leader));
    if !explicit {
        // A bare "when" is a question ("when did orders peak?") unless a condition follows.
        if !cursor.eat_words(&["when"]) || cursor.peek().is_some_and(|w| QUESTION_WORDS.contains(&w)) {
            return Ok(None);
        }
    }
    let rest = &tokens[cursor.at..];
    let Some((question, condition, used)) = parse_condition(rest)? else {
        if explicit {
            return Err(ScheduleError::new(format!(
                "I couldn't find the condition in “{}”: say for example `alert me when refunds today > 50`, \
                 `alert me when revenue drops more than 20% vs last week` or `alert me when there are any rows`.",
                text.trim()
            )));
        }
        return Ok(None);
    };
    let mut suffix = Cursor::new(&rest[used..]);
    let draft = parse_clauses(&mut suffix, Mode::AlertSuffix)?.unwrap_or_default();
    let schedule = draft.into_schedule(default_tz, Some(ALERT_DEFAULT_CRON))?;
    Ok(Some(Alert {
        question,
        condition,
        schedule,
    }))
}

const ALERT_LEADERS: &[&[&str]] = &[
    &["alert", "me", "when"],
    &["alert", "me", "if"],
    &["alert", "when"],
    &["alert", "if"],
    &["tell", "me", "when"],
    &["tell", "me", "if"],
    &["notify", "me", "when"],
    &["notify", "me", "if"],
    &["let", "me", "know", "when"],
    &["let", "me", "know", "if"],
    &["ping", "me", "when"],
    &["ping", "me", "if"],
    &["warn", "me", "when"],
    &["warn", "me", "if"],
    &["remind", "me", "when"],
    &["remind", "me", "if"],
];

const QUESTION_WORDS: &[&str] = &[
    "did", "was", "were", "is", "are", "does", "do", "will", "has", "have", "had", "can", "could", "should", "would",
];

/// One word of the text: `raw` keeps its case (a channel id is case-sensitive), `word` is lower
/// case for matching; both without surrounding quotes or trailing punctuation.
#[derive(Debug, Clone)]
struct Token {
    raw: String,
    word: String,
}

/// Words split on white space; with `operators`, "refunds>50" also splits into three.
fn tokenize(text: &str, operators: bool) -> Vec<Token> {
    let mut tokens = Vec::new();
    for piece in text.split_whitespace() {
        let pieces = if operators {
            split_operators(piece)
        } else {
            vec![piece.to_string()]
        };
        for piece in pieces {
            let trimmed = piece
                .trim_start_matches(['(', '"', '\'', '`', '“', '‘'])
                .trim_end_matches([')', '"', '\'', '`', '”', '’', ',', '.', '!', '?', ';', ':']);
            if !trimmed.is_empty() {
                tokens.push(Token {
                    raw: trimmed.to_string(),
                    word: trimmed.to_lowercase(),
                });
            }
        }
    }
    tokens
}

/// Comparison operators as their own tokens; Slack's `<#C123|sales>` and `<@U1>` stay whole.
fn split_operators(piece: &str) -> Vec<String> {
    if piece.starts_with("<#") || piece.starts_with("<@") || piece.starts_with("<http") {
        return vec![piece.to_string()];
    }
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = piece.chars().peekable();
    while let Some(c) = chars.next() {
        if matches!(c, '>' | '<' | '≥' | '≤' | '=') {
            if !current.is_empty() {
                parts.push(std::mem::take(&mut current));
            }
            let mut operator = c.to_string();
            if matches!(c, '>' | '<') && chars.peek() == Some(&'=') {
                chars.next();
                operator.push('=');
            }
            parts.push(operator);
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        parts.push(current);
    }
    parts
}

struct Cursor<'a> {
    tokens: &'a [Token],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(tokens: &'a [Token]) -> Self {
        Self { tokens, at: 0 }
    }

    fn peek(&self) -> Option<&'a str> {
        self.peek_at(0)
    }

    fn peek_at(&self, ahead: usize) -> Option<&'a str> {
        self.tokens.get(self.at + ahead).map(|t| t.word.as_str())
    }

    fn raw_at(&self, ahead: usize) -> Option<&'a str> {
        self.tokens.get(self.at + ahead).map(|t| t.raw.as_str())
    }

    fn done(&self) -> bool {
        self.at >= self.tokens.len()
    }

    fn advance(&mut self, count: usize) {
        self.at = (self.at + count).min(self.tokens.len());
    }

    fn starts_with(&self, words: &[&str]) -> bool {
        words.iter().enumerate().all(|(i, word)| self.peek_at(i) == Some(*word))
    }

    /// Consumes `words` if they come next.
    fn eat_words(&mut self, words: &[&str]) -> bool {
        let matched = self.starts_with(words);
        if matched {
            self.advance(words.len());
        }
        matched
    }

    fn eat_any(&mut self, choices: &[&str]) -> bool {
        let matched = self.peek().is_some_and(|w| choices.contains(&w));
        if matched {
            self.advance(1);
        }
        matched
    }

    /// The original words from `from` to the cursor, for quoting back.
    fn raw_since(&self, from: usize) -> String {
        self.raw_between(from, self.at)
    }

    fn raw_between(&self, from: usize, to: usize) -> String {
        let end = to.min(self.tokens.len());
        let start = from.min(end);
        self.tokens[start..end]
            .iter()
            .map(|t| t.raw.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Words that introduce a schedule without being part of it ("send me this every monday").
/// They do not change the destination: a run in the thread already reaches the asker, and a DM
/// is asked for with `to me`.
const SCHEDULE_LEADERS: &[&[&str]] = &[
    &["please"],
    &["can", "you"],
    &["could", "you"],
    &["send", "me", "this", "report"],
    &["send", "me", "this"],
    &["send", "me", "these"],
    &["send", "me", "it"],
    &["send", "me"],
    &["send", "this", "report"],
    &["send", "this"],
    &["send", "it"],
    &["post", "this"],
    &["post", "it"],
    &["schedule", "this"],
    &["schedule", "it"],
    &["schedule"],
    &["remind", "me"],
    &["run", "this"],
    &["run", "it"],
    &["repeat", "this"],
];

fn strip_leader(cursor: &mut Cursor<'_>) -> bool {
    let mut led = false;
    while let Some(leader) = SCHEDULE_LEADERS.iter().find(|leader| cursor.starts_with(leader)) {
        cursor.advance(leader.len());
        // "please" alone says nothing about scheduling.
        led |= leader != &["please"].as_slice();
    }
    led
}

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// A whole text that may or may not be a schedule; `led` when a leader said it is one.
    Schedule { led: bool },
    /// What follows an alert's condition: every part must be understood, and the frequency may
    /// be left out.
    AlertSuffix,
}

#[derive(Debug, Clone, PartialEq)]
enum Frequency {
    EveryMinutes(u32),
    EveryHours(u32),
    /// Days of the week, cron numbers (0 is Sunday); empty means every day.
    Weekdays(Vec<u32>),
    MonthDays(MonthDays),
    Cron(String),
}

#[derive(Debug, Clone, PartialEq)]
enum MonthDays {
    Dates(Vec<u32>),
    Last,
}

/// What the clauses said so far.
#[derive(Debug, Default)]
struct Draft {
    frequency: Option<Frequency>,
    /// Whether the frequency was said outright ("every", "cron") rather than as a word that also
    /// describes metrics ("daily", "weekly", "mondays").
    explicit: bool,
    time: Option<(u32, u32)>,
    timezone: Option<Tz>,
    destination: Option<Destination>,
    options: DeliveryOptions,
    clauses: usize,
}

impl Draft {
    fn into_schedule(self, default_tz: Tz, default_cron: Option<&str>) -> Result<Schedule, ScheduleError> {
        let (hour, minute) = self.time.unwrap_or((DEFAULT_HOUR, 0));
        let cron = match (self.frequency, self.time) {
            (None, _) => match default_cron {
                Some(cron) if self.time.is_none() => cron.to_string(),
                _ => {
                    return Err(ScheduleError::new(
                        "Say how often, for example `every hour` or `daily at 9`.",
                    ))
                }
            },
            (Some(Frequency::EveryMinutes(_) | Frequency::EveryHours(_)), Some(_)) => {
                return Err(ScheduleError::new(
                    "A time of day doesn't go with an interval: say `every 2 hours` or `daily at 9:00`, not both.",
                ))
            }
            (Some(Frequency::Cron(_)), Some(_)) => {
                return Err(ScheduleError::new(
                    "A cron expression already says the time: put the hour and minute in it instead of `at …`.",
                ))
            }
            (Some(Frequency::EveryMinutes(step)), None) => format!("*/{step} * * * *"),
            (Some(Frequency::EveryHours(1)), None) => "0 * * * *".to_string(),
            (Some(Frequency::EveryHours(step)), None) => format!("0 */{step} * * *"),
            (Some(Frequency::Weekdays(days)), _) => format!("{minute} {hour} * * {}", weekday_field(&days)),
            (Some(Frequency::MonthDays(MonthDays::Last)), _) => format!("{minute} {hour} L * *"),
            (Some(Frequency::MonthDays(MonthDays::Dates(dates))), _) => {
                format!("{minute} {hour} {} * *", join_numbers(&dates))
            }
            (Some(Frequency::Cron(cron)), None) => cron,
        };
        Schedule::from_cron(
            &cron,
            self.timezone.unwrap_or(default_tz),
            self.destination.unwrap_or(Destination::Thread),
            self.options,
        )
    }
}

/// Reads clauses in any order until the text ends. `Ok(None)` when, in `Mode::Schedule`, the
/// text turns out not to be a schedule.
fn parse_clauses(cursor: &mut Cursor<'_>, mode: Mode) -> Result<Option<Draft>, ScheduleError> {
    let led = match mode {
        Mode::Schedule { led } => led,
        Mode::AlertSuffix => true,
    };
    let start = cursor.at;
    let mut understood_to = start;
    let mut draft = Draft::default();
    loop {
        while cursor.eat_any(&["and", "&", "then", "please", "pls", "thanks"])
            || (matches!(mode, Mode::AlertSuffix) && cursor.eat_any(&["check", "checked", "checking", "run"]))
        {}
        if cursor.done() {
            break;
        }
        let clause_start = cursor.at;
        if let Some((frequency, explicit)) = parse_frequency(cursor)? {
            if draft.frequency.is_some() {
                return Err(ScheduleError::new(format!(
                    "“{}” states how often twice: keep one, for example `every monday and thursday at 9`.",
                    cursor.raw_since(start)
                )));
            }
            draft.frequency = Some(frequency);
            draft.explicit = explicit;
            draft.clauses += 1;
            understood_to = cursor.at;
            continue;
        }
        // Before a frequency, a text that is not led into a schedule may start with a time ("at
        // 9 every day"); a part that fails to read then means the text is not a schedule.
        let tentative = !led && draft.frequency.is_none();
        if tentative && draft.clauses > 0 {
            return Ok(None);
        }
        let clause = parse_other_clause(cursor, &mut draft);
        match clause {
            Ok(true) => {
                draft.clauses += 1;
                understood_to = cursor.at;
                continue;
            }
            Err(_) if tentative => return Ok(None),
            Err(error) => return Err(error),
            Ok(false) => {}
        }
        // Nothing here reads as part of a schedule.
        let committed = led || draft.explicit || draft.clauses >= 2;
        let not_understood = cursor.raw_between(clause_start, cursor.tokens.len());
        return match mode {
            Mode::Schedule { .. } if draft.frequency.is_none() || !committed => Ok(None),
            Mode::Schedule { .. } => Err(ScheduleError::new(format!(
                "I read “{}” as a schedule but don't understand “{}”. {CLAUSE_HINT}",
                cursor.raw_between(start, understood_to),
                not_understood
            ))),
            Mode::AlertSuffix => Err(ScheduleError::new(format!(
                "I don't understand “{not_understood}” after the alert's condition. {CLAUSE_HINT}"
            ))),
        };
    }
    match mode {
        Mode::Schedule { .. } if draft.frequency.is_none() => Ok(None),
        _ => Ok(Some(draft)),
    }
}

const CLAUSE_HINT: &str = "Besides how often, I understand a time (`at 9:30`, `at 5pm`), a time zone \
     (`Europe/Berlin`, `UTC`), `to me`, `to #channel`, `in this thread`, `skip if empty`, `skip if unchanged`, \
     `skip missed runs`, `catch up all`, \
     `with csv` and `with a chart`.";

/// A time, a time zone, a destination or an option; `Ok(false)` when none starts here.
fn parse_other_clause(cursor: &mut Cursor<'_>, draft: &mut Draft) -> Result<bool, ScheduleError> {
    if let Some(time) = parse_time_clause(cursor)? {
        if draft.time.replace(time).is_some() {
            return Err(ScheduleError::new(
                "Give one time of day per schedule; for two, make two schedules.",
            ));
        }
        return Ok(true);
    }
    if let Some(zone) = parse_zone_clause(cursor)? {
        if draft.timezone.replace(zone).is_some() {
            return Err(ScheduleError::new("Give one time zone per schedule."));
        }
        return Ok(true);
    }
    if let Some(destination) = parse_destination(cursor)? {
        if draft.destination.replace(destination).is_some() {
            return Err(ScheduleError::new(
                "Give one destination per schedule: `to me`, `to #channel` or `in this thread`.",
            ));
        }
        return Ok(true);
    }
    parse_option(cursor, &mut draft.options)
}

fn parse_frequency(cursor: &mut Cursor<'_>) -> Result<Option<(Frequency, bool)>, ScheduleError> {
    let Some(first) = cursor.peek() else {
        return Ok(None);
    };
    match first {
        "every" | "each" => parse_every(cursor),
        "cron" => {
            cursor.advance(1);
            parse_cron_clause(cursor).map(|cron| Some((Frequency::Cron(cron), true)))
        }
        "daily" => {
            cursor.advance(1);
            Ok(Some((Frequency::Weekdays(Vec::new()), false)))
        }
        "hourly" => {
            cursor.advance(1);
            Ok(Some((Frequency::EveryHours(1), false)))
        }
        "weekly" => {
            cursor.advance(1);
            Ok(Some((Frequency::Weekdays(weekly_days(cursor)), false)))
        }
        "monthly" => {
            cursor.advance(1);
            Ok(Some((Frequency::MonthDays(monthly_days(cursor)?), false)))
        }
        "on" => parse_on(cursor),
        _ => Ok(weekday_set(cursor, true).map(|days| (Frequency::Weekdays(days), false))),
    }
}

/// After "every" or "each".
fn parse_every(cursor: &mut Cursor<'_>) -> Result<Option<(Frequency, bool)>, ScheduleError> {
    let start = cursor.at;
    cursor.advance(1);
    let Some(next) = cursor.peek() else {
        cursor.at = start;
        return Ok(None);
    };
    let explicit = |frequency| Ok(Some((frequency, true)));
    if let Some(count) = number_word(next) {
        let unit = cursor.peek_at(1).unwrap_or_default();
        let said = format!("every {next} {unit}");
        cursor.advance(2);
        return match unit {
            "minute" | "minutes" | "min" | "mins" => minutes_interval(count, &said).and_then(explicit),
            "hour" | "hours" | "hr" | "hrs" => hours_interval(count, &said).and_then(explicit),
            "day" | "days" | "week" | "weeks" | "month" | "months" => Err(ScheduleError::new(format!(
                "“{said}” can't be said as one cron schedule: choose daily, particular weekdays (`every monday and \
                 thursday`) or a day of the month (`monthly on the 1st`)."
            ))),
            _ => {
                // "every 3 customers": not a schedule.
                cursor.at = start;
                Ok(None)
            }
        };
    }
    if next == "other" {
        let unit = cursor.peek_at(1).unwrap_or_default();
        if matches!(unit, "day" | "week" | "month" | "hour") || weekday(unit).is_some() {
            return Err(ScheduleError::new(format!(
                "“every other {unit}” can't be said as one cron schedule: choose daily, particular weekdays \
                 (`every monday and thursday`) or a day of the month (`monthly on the 1st`)."
            )));
        }
        cursor.at = start;
        return Ok(None);
    }
    let frequency = match next {
        "minute" | "min" => {
            return Err(ScheduleError::new(format!(
                "Every minute is too often: the shortest interval is every {SHORTEST_INTERVAL_MINUTES} minutes."
            )))
        }
        "hour" => {
            cursor.advance(1);
            Frequency::EveryHours(1)
        }
        "day" | "morning" => {
            cursor.advance(1);
            Frequency::Weekdays(Vec::new())
        }
        "week" => {
            cursor.advance(1);
            Frequency::Weekdays(weekly_days(cursor))
        }
        "month" => {
            cursor.advance(1);
            Frequency::MonthDays(monthly_days(cursor)?)
        }
        _ => match weekday_set(cursor, false) {
            Some(days) => Frequency::Weekdays(days),
            None => {
                cursor.at = start;
                return Ok(None);
            }
        },
    };
    explicit(frequency)
}

fn minutes_interval(count: u32, said: &str) -> Result<Frequency, ScheduleError> {
    if count == 60 {
        return Ok(Frequency::EveryHours(1));
    }
    if count < SHORTEST_INTERVAL_MINUTES {
        return Err(ScheduleError::new(format!(
            "“{said}” is too often: the shortest interval is every {SHORTEST_INTERVAL_MINUTES} minutes."
        )));
    }
    if !MINUTE_INTERVALS.contains(&count) {
        return Err(ScheduleError::new(format!(
            "“{said}” doesn't divide an hour evenly: choose every 5, 10, 15, 20 or 30 minutes, or every hour."
        )));
    }
    Ok(Frequency::EveryMinutes(count))
}

fn hours_interval(count: u32, said: &str) -> Result<Frequency, ScheduleError> {
    if !HOUR_INTERVALS.contains(&count) {
        return Err(ScheduleError::new(format!(
            "“{said}” doesn't divide a day evenly: choose every 1, 2, 3, 4, 6, 8 or 12 hours, or daily at a time."
        )));
    }
    Ok(Frequency::EveryHours(count))
}

/// "weekly" or "every week", optionally "on friday(s)"; Monday by default.
fn weekly_days(cursor: &mut Cursor<'_>) -> Vec<u32> {
    let before = cursor.at;
    if cursor.eat_words(&["on"]) {
        if let Some(days) = weekday_set(cursor, false) {
            return days;
        }
        cursor.at = before;
    }
    vec![1]
}

/// "monthly" or "every month", optionally "on the 15th" or "on the last day"; the 1st by default.
fn monthly_days(cursor: &mut Cursor<'_>) -> Result<MonthDays, ScheduleError> {
    let before = cursor.at;
    if cursor.eat_words(&["on"]) {
        if let Some(days) = month_days(cursor)? {
            return Ok(days);
        }
        cursor.at = before;
    }
    Ok(MonthDays::Dates(vec![1]))
}

/// "on weekdays", "on mondays and thursdays", "on the 1st of every month", "on the last day of
/// the month". A singular "on monday" is a date in a question, not a schedule.
fn parse_on(cursor: &mut Cursor<'_>) -> Result<Option<(Frequency, bool)>, ScheduleError> {
    let start = cursor.at;
    cursor.advance(1);
    if let Some(days) = weekday_set(cursor, true) {
        return Ok(Some((Frequency::Weekdays(days), false)));
    }
    if let Some(days) = month_days(cursor)? {
        let of_month = cursor.eat_words(&["of", "the", "month"])
            || cursor.eat_words(&["of", "every", "month"])
            || cursor.eat_words(&["of", "each", "month"])
            || cursor.eat_words(&["every", "month"])
            || cursor.eat_words(&["each", "month"]);
        if of_month {
            return Ok(Some((Frequency::MonthDays(days), false)));
        }
    }
    cursor.at = start;
    Ok(None)
}

/// "the 1st", "the 1st and 15th", "the last day", "the last"; errors for days some months lack.
fn month_days(cursor: &mut Cursor<'_>) -> Result<Option<MonthDays>, ScheduleError> {
    let start = cursor.at;
    cursor.eat_words(&["the"]);
    if cursor.eat_words(&["last", "day"]) || cursor.eat_words(&["last"]) {
        return Ok(Some(MonthDays::Last));
    }
    let mut dates = Vec::new();
    while let Some(word) = cursor.peek() {
        let Some(date) = ordinal(word) else { break };
        if !(1..=31).contains(&date) {
            return Err(ScheduleError::new(format!("“{word}” is not a day of the month.")));
        }
        if date > 28 {
            return Err(ScheduleError::new(format!(
                "Not every month has a {word}: say `on the last day of the month`, or a day up to the 28th."
            )));
        }
        dates.push(date);
        cursor.advance(1);
        let and_more = cursor.peek_at(1).and_then(ordinal).is_some();
        if !(and_more && cursor.eat_any(&["and", "&"])) {
            cursor.eat_words(&["and", "the"]);
        }
        cursor.eat_words(&["the"]);
    }
    if dates.is_empty() {
        cursor.at = start;
        return Ok(None);
    }
    dates.sort_unstable();
    dates.dedup();
    Ok(Some(MonthDays::Dates(dates)))
}

/// "1st", "2nd", "23rd", "15th", "first".
fn ordinal(word: &str) -> Option<u32> {
    match word {
        "first" => return Some(1),
        "second" => return Some(2),
        "third" => return Some(3),
        _ => {}
    }
    let digits = word.strip_suffix("st").or_else(|| word.strip_suffix("nd"));
    let digits = digits
        .or_else(|| word.strip_suffix("rd"))
        .or_else(|| word.strip_suffix("th"))?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// One or more weekdays ("monday and thursday", "mon, thu"), or "weekday(s)" / "weekend(s)".
/// `plural_only` is for heads without "every", where "monday" is a date and "mondays" a habit.
fn weekday_set(cursor: &mut Cursor<'_>, plural_only: bool) -> Option<Vec<u32>> {
    let first = cursor.peek()?;
    let group = match first {
        "weekdays" | "workdays" => Some(vec![1, 2, 3, 4, 5]),
        "weekday" | "workday" if !plural_only => Some(vec![1, 2, 3, 4, 5]),
        "weekends" => Some(vec![0, 6]),
        "weekend" if !plural_only => Some(vec![0, 6]),
        _ => None,
    };
    if let Some(days) = group {
        cursor.advance(1);
        return Some(days);
    }
    let mut days = Vec::new();
    let start = cursor.at;
    while let Some((day, plural)) = cursor.peek().and_then(weekday) {
        if plural_only && !plural {
            break;
        }
        days.push(day);
        cursor.advance(1);
        let next_is_day = cursor.peek_at(1).and_then(weekday).is_some();
        if next_is_day {
            cursor.eat_any(&["and", "&", "or"]);
        }
    }
    if days.is_empty() {
        cursor.at = start;
        return None;
    }
    days.sort_unstable();
    days.dedup();
    Some(days)
}

/// A weekday's cron number (0 is Sunday) and whether the word was plural.
fn weekday(word: &str) -> Option<(u32, bool)> {
    let (stem, plural) = match word.strip_suffix('s') {
        Some(stem) if stem.ends_with("day") => (stem, true),
        _ => (word, false),
    };
    let day = match stem {
        "sunday" | "sun" => 0,
        "monday" | "mon" => 1,
        "tuesday" | "tue" | "tues" => 2,
        "wednesday" | "wed" => 3,
        "thursday" | "thu" | "thur" | "thurs" => 4,
        "friday" | "fri" => 5,
        "saturday" | "sat" => 6,
        _ => return None,
    };
    Some((day, plural))
}

const WEEKDAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn weekday_field(days: &[u32]) -> String {
    match days {
        [] => "*".to_string(),
        [1, 2, 3, 4, 5] => "1-5".to_string(),
        _ => join_numbers(days),
    }
}

fn join_numbers(numbers: &[u32]) -> String {
    numbers.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// "15", "two", "fifteen".
fn number_word(word: &str) -> Option<u32> {
    const WORDS: &[(&str, u32)] = &[
        ("one", 1),
        ("two", 2),
        ("three", 3),
        ("four", 4),
        ("five", 5),
        ("six", 6),
        ("eight", 8),
        ("ten", 10),
        ("twelve", 12),
        ("fifteen", 15),
        ("twenty", 20),
        ("thirty", 30),
        ("sixty", 60),
    ];
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit()) {
        return word.parse().ok();
    }
    WORDS.iter().find(|(name, _)| *name == word).map(|(_, n)| *n)
}

/// "at 9", "at 9:30 pm", "9am", "noon"; a bare number without "at" is not a time.
fn parse_time_clause(cursor: &mut Cursor<'_>) -> Result<Option<(u32, u32)>, ScheduleError> {
    let with_at = cursor.peek() == Some("at");
    let offset = usize::from(with_at);
    let Some(word) = cursor.peek_at(offset) else {
        return Ok(None);
    };
    let suffix = cursor.peek_at(offset + 1).filter(|w| is_meridiem(w));
    let looks_like_time = word == "noon"
        || word == "midnight"
        || (word.starts_with(|c: char| c.is_ascii_digit())
            && (with_at || word.contains(':') || word.ends_with("am") || word.ends_with("pm") || suffix.is_some()));
    if !looks_like_time {
        return Ok(None);
    }
    let said = match suffix {
        Some(meridiem) => format!("{word} {meridiem}"),
        None => word.to_string(),
    };
    let time = read_time(&said).ok_or_else(|| {
        ScheduleError::new(format!(
            "“{said}” is not a time of day: write it as 9, 9:30, 17:45, 9am, 5:30pm, noon or midnight."
        ))
    })?;
    cursor.advance(offset + 1 + usize::from(suffix.is_some()));
    cursor.eat_any(&["o'clock", "oclock"]);
    Ok(Some(time))
}

fn is_meridiem(word: &str) -> bool {
    matches!(word, "am" | "pm" | "a.m" | "p.m")
}

/// Hour and minute from "9", "09:30", "9.30pm", "9 am", "12am" (midnight), "noon".
fn read_time(text: &str) -> Option<(u32, u32)> {
    match text {
        "noon" => return Some((12, 0)),
        "midnight" => return Some((0, 0)),
        _ => {}
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let (clock, meridiem) = if let Some(clock) = compact.strip_suffix("am").or_else(|| compact.strip_suffix("a.m")) {
        (clock, Some(false))
    } else if let Some(clock) = compact.strip_suffix("pm").or_else(|| compact.strip_suffix("p.m")) {
        (clock, Some(true))
    } else {
        (compact.as_str(), None)
    };
    let (hour, minute) = match clock.split_once([':', '.']) {
        Some((hour, minute)) if minute.len() == 2 => (hour, minute),
        Some(_) => return None,
        None => (clock, "00"),
    };
    let all_digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(hour) || !all_digits(minute) {
        return None;
    }
    let (hour, minute): (u32, u32) = (hour.parse().ok()?, minute.parse().ok()?);
    if minute > 59 {
        return None;
    }
    let hour = match meridiem {
        None if hour <= 23 => hour,
        Some(pm) if (1..=12).contains(&hour) => hour % 12 + if pm { 12 } else { 0 },
        _ => return None,
    };
    Some((hour, minute))
}

/// Abbreviations people write for zones; each names several zones or none, so they are refused
/// with a pointer to the IANA name.
const ZONE_ABBREVIATIONS: &[&str] = &[
    "cet", "cest", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt", "bst", "ist", "jst", "aest", "aedt", "eet",
    "eest", "wet", "west",
];

/// "Europe/Berlin", "in europe/berlin", "UTC", "America/New_York time".
fn parse_zone_clause(cursor: &mut Cursor<'_>) -> Result<Option<Tz>, ScheduleError> {
    let offset = usize::from(cursor.peek() == Some("in"));
    let (Some(word), Some(raw)) = (cursor.peek_at(offset), cursor.raw_at(offset)) else {
        return Ok(None);
    };
    if ZONE_ABBREVIATIONS.contains(&word) {
        return Err(ScheduleError::new(format!(
            "“{raw}” could mean more than one time zone: use an IANA name such as Europe/Berlin or \
             America/New_York, or UTC."
        )));
    }
    if !looks_like_zone(word) {
        return Ok(None);
    }
    let zone = find_zone(word).ok_or_else(|| {
        ScheduleError::new(format!(
            "I don't know the time zone “{raw}”: use an IANA name such as Europe/Berlin or America/New_York, or UTC."
        ))
    })?;
    cursor.advance(offset + 1);
    cursor.eat_words(&["time"]);
    Ok(Some(zone))
}

/// An IANA name has a slash between letters ("Europe/Berlin"); cron steps ("*/15") start
/// otherwise, and channels start with "#".
fn looks_like_zone(word: &str) -> bool {
    matches!(word, "utc" | "gmt") || (word.starts_with(|c: char| c.is_ascii_alphabetic()) && word.contains('/'))
}

/// The zone whose IANA name matches, whatever the case.
fn find_zone(name: &str) -> Option<Tz> {
    chrono_tz::TZ_VARIANTS
        .iter()
        .copied()
        .find(|zone| zone.name().eq_ignore_ascii_case(name))
}

fn parse_destination(cursor: &mut Cursor<'_>) -> Result<Option<Destination>, ScheduleError> {
    const ME: &[&[&str]] = &[
        &["to", "me"],
        &["to", "myself"],
        &["to", "my", "dms"],
        &["to", "my", "dm"],
        &["in", "my", "dms"],
        &["in", "a", "dm"],
        &["as", "a", "dm"],
        &["by", "dm"],
        &["via", "dm"],
    ];
    const THREAD: &[&[&str]] = &[
        &["in", "this", "thread"],
        &["in", "the", "thread"],
        &["to", "this", "thread"],
        &["here"],
        &["in", "here"],
    ];
    if ME.iter().any(|words| cursor.eat_words(words)) {
        return Ok(Some(Destination::Me));
    }
    if THREAD.iter().any(|words| cursor.eat_words(words)) {
        return Ok(Some(Destination::Thread));
    }
    let (Some("to" | "in"), Some(raw)) = (cursor.peek(), cursor.raw_at(1)) else {
        return Ok(None);
    };
    if raw.starts_with('#') || raw.starts_with("<#") {
        let channel = valid_channel(raw).ok_or_else(|| {
            ScheduleError::new(format!(
                "“{raw}” is not a channel: write it as #sales, or pick it from Slack's list."
            ))
        })?;
        cursor.advance(2);
        return Ok(Some(Destination::Channel(channel)));
    }
    if raw.starts_with("<@") || raw.starts_with('@') {
        return Err(ScheduleError::new(format!(
            "I can't send a schedule to “{raw}”: choose `to me` (a DM), `to #channel` or `in this thread`."
        )));
    }
    Ok(None)
}

/// `#sales` (Slack's name rules: lower case letters, digits, `-` and `_`, at most 80), or a
/// mention `<#C123>` / `<#C123|sales>` as Slack sends it.
fn valid_channel(raw: &str) -> Option<String> {
    if let Some(mention) = raw.strip_prefix("<#").and_then(|m| m.strip_suffix('>')) {
        let id = mention.split_once('|').map_or(mention, |(id, _)| id);
        let valid_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        return valid_id.then(|| raw.to_string());
    }
    let name = raw.strip_prefix('#')?;
    let valid_name = !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    valid_name.then(|| raw.to_string())
}

fn parse_option(cursor: &mut Cursor<'_>, options: &mut DeliveryOptions) -> Result<bool, ScheduleError> {
    const IF_EMPTY: &[&[&str]] = &[
        &["skip", "if", "empty"],
        &["skip", "when", "empty"],
        &["skip", "if", "it's", "empty"],
        &["skip", "if", "there", "are", "no", "rows"],
        &["skip", "when", "there", "are", "no", "rows"],
        &["skip", "if", "no", "rows"],
        &["skip", "empty"],
        &["unless", "empty"],
        &["unless", "it's", "empty"],
    ];
    const IF_UNCHANGED: &[&[&str]] = &[
        &["skip", "if", "unchanged"],
        &["skip", "when", "unchanged"],
        &["skip", "if", "nothing", "changed"],
        &["skip", "when", "nothing", "changed"],
        &["skip", "if", "nothing", "changes"],
        &["skip", "if", "the", "same"],
        &["skip", "unchanged"],
        &["unless", "unchanged"],
        &["only", "if", "changed"],
        &["only", "when", "changed"],
    ];
    if IF_EMPTY.iter().any(|words| cursor.eat_words(words)) {
        options.skip_if_empty = true;
        return Ok(true);
    }
    if IF_UNCHANGED.iter().any(|words| cursor.eat_words(words)) {
        options.skip_if_unchanged = true;
        return Ok(true);
    }
    const SKIP_MISSED: &[&[&str]] = &[
        &["skip", "missed", "runs"],
        &["skip", "missed"],
        &["no", "catch", "up"],
        &["don't", "catch", "up"],
    ];
    const CATCH_UP_ALL: &[&[&str]] = &[
        &["catch", "up", "all", "missed", "runs"],
        &["catch", "up", "every", "missed", "run"],
        &["catch", "up", "all"],
        &["run", "every", "missed", "run"],
        &["run", "all", "missed", "runs"],
    ];
    if SKIP_MISSED.iter().any(|words| cursor.eat_words(words)) {
        options.catch_up = CatchUp::Skip;
        return Ok(true);
    }
    if CATCH_UP_ALL.iter().any(|words| cursor.eat_words(words)) {
        options.catch_up = CatchUp::All;
        return Ok(true);
    }
    let start = cursor.at;
    // "with csv and a chart": the second attachment may come without its own "with".
    let introduced = cursor.eat_any(&["with", "as", "plus", "attach"]);
    if !introduced && options.attach.is_none() {
        return Ok(false);
    }
    cursor.eat_any(&["a", "an", "the"]);
    let attachment = match cursor.peek() {
        Some("csv" | "spreadsheet") => Attachment::Csv,
        Some("chart" | "graph" | "plot" | "png") => Attachment::Chart,
        _ => {
            cursor.at = start;
            return Ok(false);
        }
    };
    cursor.advance(1);
    cursor.eat_any(&["file", "attached", "attachment"]);
    if options.attach.is_some_and(|earlier| earlier != attachment) {
        return Err(ScheduleError::new(
            "I can attach a CSV or a chart to each run, not both.",
        ));
    }
    options.attach = Some(attachment);
    Ok(true)
}

/// The fields after "cron", up to the first word that starts another clause.
fn parse_cron_clause(cursor: &mut Cursor<'_>) -> Result<String, ScheduleError> {
    let mut fields = Vec::new();
    while let Some(word) = cursor.peek() {
        let ends = looks_like_zone(word)
            || matches!(
                word,
                "to" | "in" | "with" | "as" | "skip" | "unless" | "here" | "and" | "at" | "by"
            )
            || ZONE_ABBREVIATIONS.contains(&word);
        if ends {
            break;
        }
        fields.push(cursor.raw_at(0).unwrap_or_default().to_string());
        cursor.advance(1);
    }
    let expression = fields.join(" ");
    let alias = fields.len() == 1 && expression.starts_with('@');
    if fields.len() != 5 && !alias {
        return Err(ScheduleError::new(format!(
            "A cron expression has 5 fields (minute, hour, day of month, month, day of week), and “{expression}” has \
             {}: for Mondays at 09:00 write `cron 0 9 * * 1`.",
            fields.len()
        )));
    }
    checked_cron(&expression)
}

/// Five fields only: seconds and years would let a schedule run more often than a report can.
fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
}

/// The expression if croner reads it, it fires at all, and never more often than the shortest
/// interval. Checked from a fixed instant, so the answer does not depend on today's date.
fn checked_cron(expression: &str) -> Result<String, ScheduleError> {
    let expression = expression.trim();
    let cron: Cron = cron_parser().parse(expression).map_err(|error| {
        ScheduleError::new(format!(
            "“{expression}” is not a cron expression I can run ({error}). For Mondays at 09:00 write `cron 0 9 * * 1`."
        ))
    })?;
    let reference = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).single().unwrap_or_default();
    let upcoming: Vec<DateTime<Utc>> = cron.iter_after(reference).take(12).collect();
    if upcoming.is_empty() {
        return Err(ScheduleError::new(format!(
            "“{expression}” never fires: check its day and month."
        )));
    }
    let too_close = upcoming
        .windows(2)
        .any(|pair| (pair[1] - pair[0]).num_minutes() < i64::from(SHORTEST_INTERVAL_MINUTES));
    if too_close {
        return Err(ScheduleError::new(format!(
            "“{expression}” fires too often: the shortest interval is every {SHORTEST_INTERVAL_MINUTES} minutes."
        )));
    }
    Ok(expression.to_string())
}

/// The expression in words for the shapes the parser writes; croner's own description otherwise.
fn cron_in_words(expression: &str) -> String {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    let [minute, hour, day, month, weekdays] = fields.as_slice() else {
        return fallback_description(expression);
    };
    let number = |field: &str| field.parse::<u32>().ok();
    let step = |field: &str| field.strip_prefix("*/").and_then(|n| n.parse::<u32>().ok());
    match (number(minute), number(hour), *day, *month, *weekdays) {
        (Some(0), None, "*", "*", "*") if *hour == "*" => return "every hour".to_string(),
        (Some(0), None, "*", "*", "*") if step(hour).is_some() => {
            return format!("every {} hours", step(hour).unwrap_or_default())
        }
        (None, None, "*", "*", "*") if *hour == "*" && step(minute).is_some() => {
            return format!("every {} minutes", step(minute).unwrap_or_default())
        }
        _ => {}
    }
    let (Some(minute), Some(hour), "*") = (number(minute), number(hour), *month) else {
        return fallback_description(expression);
    };
    let at = format!("at {hour:02}:{minute:02}");
    match (*day, *weekdays) {
        ("*", "*") => format!("every day {at}"),
        ("*", "1-5") => format!("every weekday {at}"),
        ("*", list) => {
            let names: Option<Vec<&str>> = list
                .split(',')
                .map(|n| n.parse::<usize>().ok().and_then(|n| WEEKDAY_NAMES.get(n % 7).copied()))
                .collect();
            match names {
                Some(names) => format!("every {} {at}", names_list(&names)),
                None => fallback_description(expression),
            }
        }
        ("L", "*") => format!("on the last day of every month {at}"),
        (dates, "*") => {
            let ordinals: Option<Vec<String>> = dates
                .split(',')
                .map(|d| d.parse::<u32>().ok().map(ordinal_text))
                .collect();
            match ordinals {
                Some(ordinals) => {
                    let refs: Vec<&str> = ordinals.iter().map(String::as_str).collect();
                    format!("on the {} of every month {at}", names_list(&refs))
                }
                None => fallback_description(expression),
            }
        }
        _ => fallback_description(expression),
    }
}

fn fallback_description(expression: &str) -> String {
    match cron_parser().parse(expression) {
        Ok(cron) => cron.describe().trim_end_matches('.').to_string(),
        Err(_) => expression.to_string(),
    }
}

/// "Monday", "Monday and Thursday", "Monday, Wednesday and Friday".
fn names_list(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_string(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

fn ordinal_text(n: u32) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The condition and the question before it; `used` counts the tokens they take, so what
/// follows is the schedule. `Ok(None)` when no condition is found.
fn parse_condition(tokens: &[Token]) -> Result<Option<(String, Condition, usize)>, ScheduleError> {
    let mut pending_error = None;
    for at in 0..tokens.len() {
        let cursor = Cursor { tokens, at };
        let question = || question_text(&tokens[..at]);
        if let Some(length) = ANY_ROWS
            .iter()
            .find(|words| cursor.starts_with(words))
            .map(|words| words.len())
        {
            return Ok(Some((question(), Condition::AnyRows, at + length)));
        }
        if let Some((condition, used)) = change_condition(tokens, at)? {
            return Ok(Some((question(), condition, used)));
        }
        match threshold_condition(tokens, at) {
            Ok(Some((condition, used))) => return Ok(Some((question(), condition, used))),
            Ok(None) => {}
            // "over" may be part of the question ("orders over time"): keep looking, and say
            // what was missing only if nothing else turns up.
            Err(error) => {
                pending_error.get_or_insert(error);
            }
        }
    }
    match pending_error {
        Some(error) => Err(error),
        None => Ok(None),
    }
}

const ANY_ROWS: &[&[&str]] = &[
    &["there", "are", "any", "rows"],
    &["there", "are", "rows"],
    &["there", "is", "any", "row"],
    &["there", "are", "any", "results"],
    &["returns", "any", "rows"],
    &["returns", "rows"],
    &["has", "any", "rows"],
    &["has", "rows"],
    &["it", "returns", "anything"],
    &["any", "rows"],
];

/// The question's words, without the verb that joins it to the comparison ("refunds today are").
fn question_text(tokens: &[Token]) -> String {
    let mut words: Vec<&str> = tokens.iter().map(|t| t.raw.as_str()).collect();
    while words
        .last()
        .is_some_and(|w| matches!(w.to_lowercase().as_str(), "is" | "are" | "gets" | "goes" | "get"))
    {
        words.pop();
    }
    if matches!(words.as_slice(), [w] if matches!(w.to_lowercase().as_str(), "it" | "it's" | "this")) {
        words.clear();
    }
    words.join(" ")
}

/// Alternative word sequences that mean the same thing.
type Phrases = &'static [&'static [&'static str]];

const ABOVE: Phrases = &[
    &[">"],
    &["is", "above"],
    &["are", "above"],
    &["goes", "above"],
    &["go", "above"],
    &["rises", "above"],
    &["above"],
    &["is", "over"],
    &["are", "over"],
    &["goes", "over"],
    &["over"],
    &["is", "more", "than"],
    &["are", "more", "than"],
    &["more", "than"],
    &["is", "greater", "than"],
    &["greater", "than"],
    &["is", "higher", "than"],
    &["higher", "than"],
    &["exceeds"],
    &["exceed"],
];
const BELOW: Phrases = &[
    &["<"],
    &["is", "below"],
    &["are", "below"],
    &["drops", "below"],
    &["falls", "below"],
    &["dips", "below"],
    &["goes", "below"],
    &["below"],
    &["is", "under"],
    &["are", "under"],
    &["goes", "under"],
    &["under"],
    &["is", "less", "than"],
    &["are", "less", "than"],
    &["less", "than"],
    &["fewer", "than"],
    &["is", "lower", "than"],
    &["lower", "than"],
];
const AT_LEAST: Phrases = &[
    &[">="],
    &["≥"],
    &["is", "at", "least"],
    &["are", "at", "least"],
    &["at", "least"],
];
const AT_MOST: Phrases = &[
    &["<="],
    &["≤"],
    &["is", "at", "most"],
    &["are", "at", "most"],
    &["at", "most"],
];

/// "> 50", "is above 1,000", "at least 5k".
fn threshold_condition(tokens: &[Token], at: usize) -> Result<Option<(Condition, usize)>, ScheduleError> {
    let cursor = Cursor { tokens, at };
    let builder: fn(f64) -> Condition = Condition::AtLeast;
    let kinds = [
        (AT_LEAST, builder),
        (AT_MOST, Condition::AtMost),
        (ABOVE, Condition::Above),
        (BELOW, Condition::Below),
    ];
    for (phrases, build) in kinds {
        let Some(phrase) = phrases.iter().find(|words| cursor.starts_with(words)) else {
            continue;
        };
        let value_at = at + phrase.len();
        let Some(value) = tokens.get(value_at).and_then(|t| read_number(&t.word)) else {
            let said = phrase.join(" ");
            return Err(ScheduleError::new(format!(
                "I need a number after “{said}”, for example `alert me when refunds today {said} 50`."
            )));
        };
        let mut used = value_at + 1;
        if tokens.get(used).is_some_and(|t| t.word == "%" || t.word == "percent") {
            used += 1;
        }
        return Ok(Some((build(value), used)));
    }
    if tokens[at].word == "=" || tokens[at].word == "equals" {
        return Err(ScheduleError::new(
            "An alert compares with a limit: use >, <, >= or <=, for example `alert me when refunds today > 50`.",
        ));
    }
    Ok(None)
}

const DROP_VERBS: &[&[&str]] = &[
    &["drops"],
    &["drop"],
    &["falls"],
    &["fall"],
    &["decreases"],
    &["declines"],
    &["dips"],
    &["shrinks"],
    &["goes", "down"],
    &["is", "down"],
    &["are", "down"],
];
const RISE_VERBS: &[&[&str]] = &[
    &["rises"],
    &["rise"],
    &["increases"],
    &["grows"],
    &["jumps"],
    &["spikes"],
    &["climbs"],
    &["goes", "up"],
    &["is", "up"],
    &["are", "up"],
];
/// Words that start the schedule after an alert's condition, ending a "vs …" period.
const SUFFIX_STARTS: &[&str] = &[
    "every", "each", "hourly", "daily", "weekly", "monthly", "weekdays", "cron", "to", "with", "skip", "unless",
    "check", "checked", "checking", "here", "by", "via",
];

/// "drops more than 20% vs last week", "rises by 10 percent compared to yesterday".
fn change_condition(tokens: &[Token], at: usize) -> Result<Option<(Condition, usize)>, ScheduleError> {
    let mut cursor = Cursor { tokens, at };
    let drops = if DROP_VERBS.iter().any(|verb| cursor.eat_words(verb)) {
        true
    } else if RISE_VERBS.iter().any(|verb| cursor.eat_words(verb)) {
        false
    } else {
        return Ok(None);
    };
    // "drops below 50" is a threshold.
    if cursor
        .peek()
        .is_some_and(|w| matches!(w, "below" | "under" | "above" | "over"))
        && cursor.peek_at(1).is_some_and(|w| read_percent_word(w).is_none())
    {
        return Ok(None);
    }
    cursor.eat_any(&["by"]);
    // "by 20%", "more than 20%", "at least 20%" and "over 20%" all mean a change of 20% or more.
    if !cursor.eat_words(&["more", "than"]) && !cursor.eat_words(&["at", "least"]) {
        cursor.eat_any(&["over"]);
    }
    let verb = if drops { "drops" } else { "rises" };
    let Some(percent) = read_percent(&mut cursor) else {
        return Err(ScheduleError::new(format!(
            "Say by how much as a percentage, for example `alert me when revenue {verb} more than 20% vs last week`."
        )));
    };
    if !(percent > 0.0 && (percent <= 100.0 || !drops)) {
        return Err(ScheduleError::new(format!(
            "“{percent}%” is not a change I can watch for: give a percentage above 0{}.",
            if drops { " and up to 100" } else { "" }
        )));
    }
    let versus_words = cursor.eat_any(&["vs", "versus", "against", "from"])
        || cursor.eat_words(&["compared", "to"])
        || cursor.eat_words(&["compared", "with"]);
    let versus = if versus_words {
        let start = cursor.at;
        while cursor.peek().is_some_and(|w| !SUFFIX_STARTS.contains(&w))
            && !cursor.starts_with(&["in", "this", "thread"])
        {
            cursor.advance(1);
        }
        let versus = cursor.raw_since(start);
        if versus.is_empty() {
            return Err(ScheduleError::new(format!(
                "Compared with what? For example `{verb} more than 20% vs last week`."
            )));
        }
        versus
    } else {
        PREVIOUS_RUN.to_string()
    };
    let condition = if drops {
        Condition::DropsBy { percent, versus }
    } else {
        Condition::RisesBy { percent, versus }
    };
    Ok(Some((condition, cursor.at)))
}

/// "20%", "20 %", "20 percent".
fn read_percent(cursor: &mut Cursor<'_>) -> Option<f64> {
    let word = cursor.peek()?;
    if let Some(percent) = read_percent_word(word) {
        cursor.advance(1);
        return Some(percent);
    }
    let value = read_number(word)?;
    if matches!(cursor.peek_at(1), Some("%" | "percent" | "pct")) {
        cursor.advance(2);
        return Some(value);
    }
    None
}

fn read_percent_word(word: &str) -> Option<f64> {
    word.strip_suffix('%').and_then(read_number)
}

/// "50", "1,000", "$1.5k", "2m", "-3"; commas group thousands.
fn read_number(word: &str) -> Option<f64> {
    let word = word.trim_start_matches(['$', '€', '£']);
    let (digits, scale) = match word.char_indices().last() {
        Some((at, 'k')) => (&word[..at], 1e3),
        Some((at, 'm')) => (&word[..at], 1e6),
        Some((at, 'b')) => (&word[..at], 1e9),
        _ => (word, 1.0),
    };
    let digits = digits.trim_start_matches(['$', '€', '£']).replace(',', "");
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.' || c == '-') {
        return None;
    }
    let value: f64 = digits.parse().ok()?;
    value.is_finite().then_some(value * scale)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::UTC;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn schedule(text: &str) -> Schedule {
        parse_schedule(text, UTC)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .unwrap_or_else(|| panic!("{text:?} was not read as a schedule"))
    }

    fn error(text: &str) -> String {
        match parse_schedule(text, UTC) {
            Err(error) => error.message().to_string(),
            Ok(other) => panic!("{text:?} should be an error, got {other:?}"),
        }
    }

    #[test]
    fn phrasings_become_cron_zone_destination_and_options() {
        let plain = DeliveryOptions::default();
        let empty = DeliveryOptions {
            skip_if_empty: true,
            ..DeliveryOptions::default()
        };
        let unchanged = DeliveryOptions {
            skip_if_unchanged: true,
            ..DeliveryOptions::default()
        };
        let csv = DeliveryOptions {
            attach: Some(Attachment::Csv),
            ..DeliveryOptions::default()
        };
        let chart = DeliveryOptions {
            attach: Some(Attachment::Chart),
            ..DeliveryOptions::default()
        };
        let sales = || Destination::Channel("#sales".to_string());
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, Tz, Destination, DeliveryOptions)> = vec![
            ("every monday at 9:00", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("every monday at 9", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("Every Monday at 9:00.", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("every monday", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("mondays at 9am", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("on mondays at 9am", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("every weekday at 7am", "0 7 * * 1-5", UTC, Destination::Thread, plain.clone()),
            ("weekdays at 7:30", "30 7 * * 1-5", UTC, Destination::Thread, plain.clone()),
            ("every weekend at 10", "0 10 * * 0,6", UTC, Destination::Thread, plain.clone()),
            ("daily at 8", "0 8 * * *", UTC, Destination::Thread, plain.clone()),
            ("daily", "0 9 * * *", UTC, Destination::Thread, plain.clone()),
            ("every day at 08:00 Europe/Berlin", "0 8 * * *", Berlin, Destination::Thread, plain.clone()),
            ("daily at 8 Europe/Berlin", "0 8 * * *", Berlin, Destination::Thread, plain.clone()),
            ("daily at 8 europe/berlin", "0 8 * * *", Berlin, Destination::Thread, plain.clone()),
            ("daily at 8 in Europe/Berlin time", "0 8 * * *", Berlin, Destination::Thread, plain.clone()),
            ("every day at 18:45 (America/New_York)", "45 18 * * *", chrono_tz::America::New_York, Destination::Thread, plain.clone()),
            ("daily at 8 UTC", "0 8 * * *", UTC, Destination::Thread, plain.clone()),
            ("every hour", "0 * * * *", UTC, Destination::Thread, plain.clone()),
            ("hourly", "0 * * * *", UTC, Destination::Thread, plain.clone()),
            ("every 15 minutes", "*/15 * * * *", UTC, Destination::Thread, plain.clone()),
            ("every fifteen minutes", "*/15 * * * *", UTC, Destination::Thread, plain.clone()),
            ("every 30 mins", "*/30 * * * *", UTC, Destination::Thread, plain.clone()),
            ("every 60 minutes", "0 * * * *", UTC, Destination::Thread, plain.clone()),
            ("every 2 hours", "0 */2 * * *", UTC, Destination::Thread, plain.clone()),
            ("every two hours", "0 */2 * * *", UTC, Destination::Thread, plain.clone()),
            ("monthly on the 1st", "0 9 1 * *", UTC, Destination::Thread, plain.clone()),
            ("monthly", "0 9 1 * *", UTC, Destination::Thread, plain.clone()),
            ("every month on the 15th at 10:00", "0 10 15 * *", UTC, Destination::Thread, plain.clone()),
            ("monthly on the 1st and 15th at noon", "0 12 1,15 * *", UTC, Destination::Thread, plain.clone()),
            ("on the last day of the month", "0 9 L * *", UTC, Destination::Thread, plain.clone()),
            ("monthly on the last day at 17:00", "0 17 L * *", UTC, Destination::Thread, plain.clone()),
            ("on the 2nd of every month at 8am", "0 8 2 * *", UTC, Destination::Thread, plain.clone()),
            ("every friday at 5pm", "0 17 * * 5", UTC, Destination::Thread, plain.clone()),
            ("every friday at 5 pm", "0 17 * * 5", UTC, Destination::Thread, plain.clone()),
            ("every monday and thursday at 9", "0 9 * * 1,4", UTC, Destination::Thread, plain.clone()),
            ("every mon, wed and fri at 9.30pm", "30 21 * * 1,3,5", UTC, Destination::Thread, plain.clone()),
            ("tuesdays and thursdays at midnight", "0 0 * * 2,4", UTC, Destination::Thread, plain.clone()),
            ("every sunday at 12am", "0 0 * * 0", UTC, Destination::Thread, plain.clone()),
            ("every saturday at 12pm", "0 12 * * 6", UTC, Destination::Thread, plain.clone()),
            ("weekly", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("weekly on fridays at 16:00", "0 16 * * 5", UTC, Destination::Thread, plain.clone()),
            ("every week on tuesday", "0 9 * * 2", UTC, Destination::Thread, plain.clone()),
            ("at 9 every day", "0 9 * * *", UTC, Destination::Thread, plain.clone()),
            ("every day at 9 o'clock", "0 9 * * *", UTC, Destination::Thread, plain.clone()),
            ("cron 0 9 * * 1", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("cron `0 9 * * 1`", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("cron 30 2 * * * Europe/Berlin", "30 2 * * *", Berlin, Destination::Thread, plain.clone()),
            ("cron */10 8-18 * * mon-fri to #sales", "*/10 8-18 * * mon-fri", UTC, sales(), plain.clone()),
            ("every monday at 9 to me", "0 9 * * 1", UTC, Destination::Me, plain.clone()),
            ("every monday at 9 by dm", "0 9 * * 1", UTC, Destination::Me, plain.clone()),
            ("every monday at 9 to #sales", "0 9 * * 1", UTC, sales(), plain.clone()),
            ("daily at 8 in #sales", "0 8 * * *", UTC, sales(), plain.clone()),
            ("every monday at 9 to <#C0123ABC|sales>", "0 9 * * 1", UTC, Destination::Channel("<#C0123ABC|sales>".into()), plain.clone()),
            ("every monday at 9 in this thread", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("daily at 7 skip if empty", "0 7 * * *", UTC, Destination::Thread, empty.clone()),
            ("daily at 7, skip if unchanged", "0 7 * * *", UTC, Destination::Thread, unchanged.clone()),
            ("every weekday at 8 with csv", "0 8 * * 1-5", UTC, Destination::Thread, csv.clone()),
            ("every weekday at 8 with a chart", "0 8 * * 1-5", UTC, Destination::Thread, chart.clone()),
            ("send me this every monday at 9", "0 9 * * 1", UTC, Destination::Thread, plain.clone()),
            ("send me this every monday at 9 to me", "0 9 * * 1", UTC, Destination::Me, plain.clone()),
            ("post this to #sales every friday at 5pm", "0 17 * * 5", UTC, sales(), plain.clone()),
            ("schedule this daily at 8 Europe/Berlin", "0 8 * * *", Berlin, Destination::Thread, plain.clone()),
            ("remind me every weekday at 7:30am", "30 7 * * 1-5", UTC, Destination::Thread, plain.clone()),
            ("please send this every 2 hours", "0 */2 * * *", UTC, Destination::Thread, plain.clone()),
            (
                "every monday at 9:00 Europe/Berlin to #sales with csv, skip if empty and skip if unchanged",
                "0 9 * * 1", Berlin, sales(),
                DeliveryOptions { skip_if_empty: true, skip_if_unchanged: true, attach: Some(Attachment::Csv), ..DeliveryOptions::default() },
            ),
            ("daily at 7 skip missed runs", "0 7 * * *", UTC, Destination::Thread,
                DeliveryOptions { catch_up: CatchUp::Skip, ..DeliveryOptions::default() }),
            ("every hour, catch up all missed runs", "0 * * * *", UTC, Destination::Thread,
                DeliveryOptions { catch_up: CatchUp::All, ..DeliveryOptions::default() }),
        ];
        assert!(cases.len() >= 40, "{} phrasings", cases.len());
        for (text, cron, timezone, destination, options) in cases {
            let parsed = schedule(text);
            let expected = Schedule {
                cron: cron.to_string(),
                timezone,
                destination,
                options,
            };
            assert_eq!(parsed, expected, "{text:?}");
        }
    }

    #[test]
    fn conditions_and_options_read_back_as_stored() {
        let conditions = [
            Condition::Above(50.0),
            Condition::AtMost(0.5),
            Condition::DropsBy {
                percent: 20.0,
                versus: "last week".into(),
            },
            Condition::AnyRows,
        ];
        for condition in conditions {
            let stored = serde_json::to_string(&condition).unwrap();
            assert_eq!(
                serde_json::from_str::<Condition>(&stored).unwrap(),
                condition,
                "{stored}"
            );
        }
        let options = DeliveryOptions {
            attach: Some(Attachment::Chart),
            catch_up: CatchUp::All,
            ..DeliveryOptions::default()
        };
        let stored = serde_json::to_value(&options).unwrap();
        assert_eq!(serde_json::from_value::<DeliveryOptions>(stored).unwrap(), options);
        let stored = serde_json::to_value(Destination::Channel("<#C1|sales>".into())).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({ "kind": "channel", "channel": "<#C1|sales>" })
        );
    }

    #[test]
    fn the_default_zone_applies_when_the_text_names_none() {
        let parsed = parse_schedule("every monday at 9", Berlin).unwrap().unwrap();
        assert_eq!(parsed.timezone, Berlin);
        let parsed = parse_schedule("every monday at 9 UTC", Berlin).unwrap().unwrap();
        assert_eq!(parsed.timezone, UTC);
    }

    #[test]
    fn ordinary_questions_are_not_schedules() {
        for text in [
            "revenue by region last month",
            "orders every month",
            "what happened on monday",
            "daily revenue by region",
            "weekly active users",
            "monthly revenue for 2025",
            "hourly signups today",
            "mondays vs tuesdays orders",
            "every customer who ordered twice",
            "every 3 customers",
            "at 9am how many orders came in",
            "on monday what were sales",
            "show refunds on the 1st",
            "",
        ] {
            assert_eq!(parse_schedule(text, UTC), Ok(None), "{text:?}");
        }
    }

    #[test]
    fn invalid_schedules_say_what_is_wrong() {
        let cases = [
            ("every monday at 25:00", "“25:00” is not a time of day"),
            ("every monday at 9:75", "“9:75” is not a time of day"),
            ("every friday at 13pm", "“13pm” is not a time of day"),
            ("cron 0 9 * *", "has 4"),
            ("cron 0 9 * * 1 2", "has 6"),
            ("cron 0 25 * * *", "is not a cron expression I can run"),
            ("cron 0 0 31 2 *", "never fires"),
            ("cron * * * * *", "fires too often"),
            ("every 7 minutes", "doesn't divide an hour evenly"),
            ("every 2 minutes", "too often"),
            ("every minute", "too often"),
            ("every 5 hours", "doesn't divide a day evenly"),
            ("every 2 weeks", "can't be said as one cron schedule"),
            ("every other monday", "can't be said as one cron schedule"),
            ("daily at 8 Mars/Phobos", "I don't know the time zone “Mars/Phobos”"),
            ("daily at 8 EST", "could mean more than one time zone"),
            ("monthly on the 31st", "Not every month has a 31st"),
            ("every 15 minutes at 9", "doesn't go with an interval"),
            ("cron 0 9 * * 1 at 10", "already says the time"),
            ("every monday at 9 with csv and a chart", "not both"),
            ("every monday at 9 to me to #sales", "one destination"),
            ("every monday at 9 to @bob", "can't send a schedule to “@bob”"),
            ("every monday at 9 to #Sales Team", "is not a channel"),
            ("every monday daily", "states how often twice"),
            (
                "every monday at 9 for the sales team",
                "don't understand “for the sales team”",
            ),
            ("send me this every day with pdf", "don't understand “with pdf”"),
        ];
        for (text, expected) in cases {
            let message = error(text);
            assert!(
                message.contains(expected),
                "{text:?}: {message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn a_daily_0230_in_berlin_fires_just_after_the_spring_gap() {
        // 2026-03-29: Berlin's clocks jump from 02:00 to 03:00 CEST, so 02:30 does not exist.
        let schedule = schedule("daily at 2:30 Europe/Berlin");

        let fires = schedule.next_fire_times(utc(2026, 3, 28, 12, 0), 3);

        // 03:00 CEST (01:00 UTC) on the day of the gap, then 02:30 CEST (00:30 UTC) again.
        assert_eq!(
            fires,
            vec![utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30), utc(2026, 3, 31, 0, 30)]
        );
    }

    #[test]
    fn a_daily_0230_in_berlin_fires_once_on_the_fall_back_day() {
        // 2026-10-25: Berlin's clocks fall back from 03:00 CEST to 02:00 CET, so 02:30 happens twice.
        let schedule = schedule("daily at 2:30 Europe/Berlin");

        let fires = schedule.next_fire_times(utc(2026, 10, 24, 12, 0), 3);

        // The first 02:30 (CEST, 00:30 UTC) only; the next day is CET (01:30 UTC).
        assert_eq!(
            fires,
            vec![
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 26, 1, 30),
                utc(2026, 10, 27, 1, 30)
            ]
        );
    }

    #[test]
    fn an_hourly_schedule_follows_real_hours_across_the_fall_back() {
        let schedule = schedule("hourly Europe/Berlin");

        let fires = schedule.next_fire_times(utc(2026, 10, 24, 23, 30), 4);

        // 02:00 CEST and 02:00 CET are both real hours, an hour apart.
        assert_eq!(
            fires,
            vec![
                utc(2026, 10, 25, 0, 0),
                utc(2026, 10, 25, 1, 0),
                utc(2026, 10, 25, 2, 0),
                utc(2026, 10, 25, 3, 0)
            ]
        );
    }

    #[test]
    fn next_three_fire_times() {
        // 2026-01-07 is a Wednesday.
        let after = utc(2026, 1, 7, 10, 0);
        let cases = [
            (
                "every monday at 9:00",
                vec![utc(2026, 1, 12, 9, 0), utc(2026, 1, 19, 9, 0), utc(2026, 1, 26, 9, 0)],
            ),
            (
                "every weekday at 7am",
                vec![utc(2026, 1, 8, 7, 0), utc(2026, 1, 9, 7, 0), utc(2026, 1, 12, 7, 0)],
            ),
            (
                "every 15 minutes",
                vec![
                    utc(2026, 1, 7, 10, 15),
                    utc(2026, 1, 7, 10, 30),
                    utc(2026, 1, 7, 10, 45),
                ],
            ),
            (
                "monthly on the 1st",
                vec![utc(2026, 2, 1, 9, 0), utc(2026, 3, 1, 9, 0), utc(2026, 4, 1, 9, 0)],
            ),
            (
                "on the last day of the month",
                vec![utc(2026, 1, 31, 9, 0), utc(2026, 2, 28, 9, 0), utc(2026, 3, 31, 9, 0)],
            ),
            // 09:00 in Berlin is 08:00 UTC in winter.
            (
                "daily at 9 Europe/Berlin",
                vec![utc(2026, 1, 8, 8, 0), utc(2026, 1, 9, 8, 0), utc(2026, 1, 10, 8, 0)],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(schedule(text).next_fire_times(after, 3), expected, "{text:?}");
        }
    }

    #[test]
    fn a_fire_time_is_strictly_after_the_given_instant() {
        let fires = schedule("every monday at 9").next_fire_times(utc(2026, 1, 12, 9, 0), 1);
        assert_eq!(fires, vec![utc(2026, 1, 19, 9, 0)]);
    }

    #[test]
    fn describe_echoes_the_schedule_in_words_and_cron() {
        let cases = [
            (
                "every monday at 9:00 Europe/Berlin",
                "every Monday at 09:00 (Europe/Berlin), cron `0 9 * * 1`",
            ),
            (
                "every weekday at 7:30",
                "every weekday at 07:30 (UTC), cron `30 7 * * 1-5`",
            ),
            (
                "every monday and thursday at 9",
                "every Monday and Thursday at 09:00 (UTC), cron `0 9 * * 1,4`",
            ),
            ("daily at 8", "every day at 08:00 (UTC), cron `0 8 * * *`"),
            ("every hour", "every hour (UTC), cron `0 * * * *`"),
            ("every 2 hours", "every 2 hours (UTC), cron `0 */2 * * *`"),
            ("every 15 minutes", "every 15 minutes (UTC), cron `*/15 * * * *`"),
            (
                "monthly on the 1st and 22nd",
                "on the 1st and 22nd of every month at 09:00 (UTC), cron `0 9 1,22 * *`",
            ),
            (
                "on the last day of the month",
                "on the last day of every month at 09:00 (UTC), cron `0 9 L * *`",
            ),
            (
                "every friday at 5pm to #sales with a chart skip if empty",
                "every Friday at 17:00 (UTC), cron `0 17 * * 5`, to #sales, with a chart, skipped when empty",
            ),
            (
                "daily at 8 to me skip if unchanged",
                "every day at 08:00 (UTC), cron `0 8 * * *`, to you by DM, skipped when unchanged",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(schedule(text).describe(), expected, "{text:?}");
        }
        let custom = schedule("cron 0 9 1-7 * *").describe();
        assert!(custom.ends_with("(UTC), cron `0 9 1-7 * *`"), "{custom}");
    }

    #[test]
    fn from_cron_checks_like_a_typed_cron() {
        let built = Schedule::from_cron("0 9 * * 1", Berlin, Destination::Me, DeliveryOptions::default()).unwrap();
        assert_eq!(built.cron, "0 9 * * 1");
        assert!(Schedule::from_cron("0 9 * *", UTC, Destination::Thread, DeliveryOptions::default()).is_err());
    }

    fn alert(text: &str) -> Alert {
        parse_alert(text, UTC)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .unwrap_or_else(|| panic!("{text:?} was not read as an alert"))
    }

    #[test]
    fn alerts_read_the_question_condition_and_schedule() {
        let last_week = || "last week".to_string();
        let cases: Vec<(&str, &str, Condition, &str)> = vec![
            (
                "alert me when refunds today > 50",
                "refunds today",
                Condition::Above(50.0),
                "0 * * * *",
            ),
            (
                "alert me when refunds today>50",
                "refunds today",
                Condition::Above(50.0),
                "0 * * * *",
            ),
            (
                "alert me if refunds today is above 1,000",
                "refunds today",
                Condition::Above(1000.0),
                "0 * * * *",
            ),
            (
                "tell me when orders this week < 100",
                "orders this week",
                Condition::Below(100.0),
                "0 * * * *",
            ),
            (
                "tell me when orders this week are below 1.5k",
                "orders this week",
                Condition::Below(1500.0),
                "0 * * * *",
            ),
            (
                "notify me when signups today >= 10",
                "signups today",
                Condition::AtLeast(10.0),
                "0 * * * *",
            ),
            (
                "let me know when stock is at most 5",
                "stock",
                Condition::AtMost(5.0),
                "0 * * * *",
            ),
            (
                "when revenue drops more than 20% vs last week",
                "revenue",
                Condition::DropsBy {
                    percent: 20.0,
                    versus: last_week(),
                },
                "0 * * * *",
            ),
            (
                "alert me when revenue falls by 15 percent compared to last week every day at 9",
                "revenue",
                Condition::DropsBy {
                    percent: 15.0,
                    versus: last_week(),
                },
                "0 9 * * *",
            ),
            (
                "alert me when refunds rise more than 50%",
                "refunds",
                Condition::RisesBy {
                    percent: 50.0,
                    versus: PREVIOUS_RUN.to_string(),
                },
                "0 * * * *",
            ),
            ("alert me when there are any rows", "", Condition::AnyRows, "0 * * * *"),
            (
                "alert me when failed payments has any rows every 15 minutes",
                "failed payments",
                Condition::AnyRows,
                "*/15 * * * *",
            ),
            (
                "alert me when refunds today > 50 every 15 minutes",
                "refunds today",
                Condition::Above(50.0),
                "*/15 * * * *",
            ),
            (
                "alert me when refunds today drops below 5 daily at 8",
                "refunds today",
                Condition::Below(5.0),
                "0 8 * * *",
            ),
            ("alert me when it's over 99.5", "", Condition::Above(99.5), "0 * * * *"),
        ];
        for (text, question, condition, cron) in cases {
            let parsed = alert(text);
            assert_eq!(parsed.question, question, "{text:?}");
            assert_eq!(parsed.condition, condition, "{text:?}");
            assert_eq!(parsed.schedule.cron, cron, "{text:?}");
        }
    }

    #[test]
    fn an_alert_takes_a_destination_zone_and_options_after_its_condition() {
        let parsed = alert("alert me when refunds today > 50 to #ops Europe/Berlin");
        assert_eq!(parsed.schedule.destination, Destination::Channel("#ops".to_string()));
        assert_eq!(parsed.schedule.timezone, Berlin);
        assert_eq!(parsed.schedule.cron, "0 * * * *");
        let parsed = alert("when revenue drops more than 20% vs last week to me");
        assert_eq!(
            parsed.condition,
            Condition::DropsBy {
                percent: 20.0,
                versus: "last week".to_string()
            }
        );
        assert_eq!(parsed.schedule.destination, Destination::Me);
        assert_eq!(
            alert("alert me when refunds today > 50").describe(),
            "when refunds today is above 50, checked every hour (UTC), cron `0 * * * *`"
        );
    }

    #[test]
    fn questions_are_not_alerts() {
        for text in [
            "when did orders peak",
            "when was revenue above 100",
            "refunds today > 50",
            "revenue by region last month",
            "every monday at 9",
        ] {
            assert_eq!(parse_alert(text, UTC), Ok(None), "{text:?}");
        }
    }

    #[test]
    fn invalid_alerts_say_what_is_wrong() {
        let cases = [
            ("alert me when refunds today", "I couldn't find the condition"),
            ("alert me when refunds today > lots", "I need a number after “>”"),
            (
                "alert me when revenue drops vs last week",
                "by how much as a percentage",
            ),
            ("alert me when revenue drops by 120%", "up to 100"),
            ("alert me when refunds = 5", "use >, <, >= or <="),
            (
                "alert me when refunds today > 50 every 7 minutes",
                "doesn't divide an hour evenly",
            ),
            (
                "alert me when refunds today > 50 for the team",
                "I don't understand “for the team”",
            ),
        ];
        for (text, expected) in cases {
            let message = parse_alert(text, UTC).expect_err(text).message().to_string();
            assert!(
                message.contains(expected),
                "{text:?}: {message:?} should contain {expected:?}"
            );
        }
    }

    #[test]
    fn conditions_hold_on_values_changes_and_rows() {
        let drop = Condition::DropsBy {
            percent: 20.0,
            versus: "last week".into(),
        };
        let rise = Condition::RisesBy {
            percent: 50.0,
            versus: PREVIOUS_RUN.into(),
        };
        let cases = [
            (&Condition::Above(50.0), Some(51.0), None, 1, true),
            (&Condition::Above(50.0), Some(50.0), None, 1, false),
            (&Condition::Above(50.0), None, None, 0, false),
            (&Condition::Below(100.0), Some(99.0), None, 1, true),
            (&Condition::AtLeast(10.0), Some(10.0), None, 1, true),
            (&Condition::AtMost(5.0), Some(5.0), None, 1, true),
            (&Condition::AtMost(5.0), Some(6.0), None, 1, false),
            (&drop, Some(80.0), Some(100.0), 1, true),
            (&drop, Some(81.0), Some(100.0), 1, false),
            (&drop, Some(80.0), None, 1, false),
            (&drop, Some(0.0), Some(0.0), 1, false),
            (&rise, Some(150.0), Some(100.0), 1, true),
            (&rise, Some(149.0), Some(100.0), 1, false),
            (&Condition::AnyRows, None, None, 3, true),
            (&Condition::AnyRows, None, None, 0, false),
        ];
        for (condition, current, previous, rows, expected) in cases {
            assert_eq!(
                condition.holds(current, previous, rows),
                expected,
                "{condition:?} {current:?} {previous:?} {rows}"
            );
        }
    }

    #[test]
    fn an_alert_fires_once_stays_quiet_and_says_back_to_normal_once() {
        let condition = Condition::Above(50.0);
        let values = [10.0, 60.0, 70.0, 80.0, 20.0, 30.0, 90.0];
        let mut state = AlertState::default();
        let mut actions = Vec::new();
        for value in values {
            let (next, action) = state.step(condition.holds(Some(value), None, 1));
            state = next;
            actions.push(action);
        }
        use AlertAction::{BackToNormal, Fire, Nothing};
        assert_eq!(
            actions,
            vec![Nothing, Fire, Nothing, Nothing, BackToNormal, Nothing, Fire]
        );
        assert_eq!(state, AlertState::Firing);
    }
}
