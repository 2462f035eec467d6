//! `threadql audit --since 1d [--user U0123ABCD] [--json] [--limit N]`: the audit trail of
//! DATABASE_URL (questions, guard decisions, executions, exports, refusals), oldest first, as
//! aligned text or JSON Lines.
use std::borrow::Cow;
use std::io::Write;
use std::num::NonZeroUsize;

use anyhow::Context;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::config::Config;
use crate::store::AuditRow;

/// Rows printed when `--limit` is not given.
pub const DEFAULT_LIMIT: usize = 1_000;

const SINCE_FORMS: &str =
    "expected a span back from now (30m, 12h, 1d, 7d), an RFC 3339 time (2026-12-01T09:00:00Z) or a date (2026-12-01)";

/// Where `--since` starts: a span back from now, or a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    Ago(chrono::Duration),
    At(DateTime<Utc>),
}

impl Since {
    /// `30m`, `12h`, `1d`, `45s`; an RFC 3339 time; or a date `YYYY-MM-DD` (midnight UTC).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(span) = parse_span(text)? {
            return Ok(Self::Ago(span));
        }
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self::At(at.with_timezone(&Utc)));
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Self::At(day.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        Err(format!("{text:?}: {SINCE_FORMS}"))
    }

    /// The moment this starts at, seen from `now`; no earlier than the year 1, as Postgres
    /// refuses timestamps far before it (`--since 99999999d` means "everything").
    pub fn resolve(self, now: DateTime<Utc>) -> DateTime<Utc> {
        let earliest = NaiveDate::from_ymd_opt(1, 1, 1)
            .unwrap_or(NaiveDate::MIN)
            .and_time(chrono::NaiveTime::MIN)
            .and_utc();
        match self {
            Self::Ago(span) => now.checked_sub_signed(span).unwrap_or(earliest).max(earliest),
            Self::At(at) => at.max(earliest),
        }
    }
}

impl std::str::FromStr for Since {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// A number followed by `d`, `h`, `m` or `s`; `Ok(None)` when `text` is not of that shape.
fn parse_span(text: &str) -> Result<Option<chrono::Duration>, String> {
    let Some(unit) = text.chars().last() else {
        return Ok(None);
    };
    let seconds_per_unit: i64 = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        _ => return Ok(None),
    };
    let digits = text.strip_suffix(unit).unwrap_or_default();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    digits
        .parse::<i64>()
        .ok()
        .and_then(|count| count.checked_mul(seconds_per_unit))
        .and_then(chrono::Duration::try_seconds)
        .map(Some)
        .ok_or_else(|| format!("{text:?} is too far back"))
}

/// What `threadql audit` was asked for.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub since: Since,
    pub user: Option<String>,
    pub json: bool,
    pub limit: NonZeroUsize,
}

/// Prints the rows of `query` on stdout; a note that the limit cut them goes to stderr, so
/// `--json` output stays one object per line.
pub async fn run(config: &Config, query: &AuditQuery) -> anyhow::Result<()> {
    let store = crate::store::connect_and_migrate(config.database_url.expose()).await?;
    let since = query.since.resolve(Utc::now());
    let limit = query.limit.get();
    // One row more than asked says whether the limit cut the list.
    let mut rows = store
        .audit_rows(since, query.user.as_deref(), limit.saturating_add(1))
        .await
        .context("Failed to read the audit trail")?;
    let cut = rows.len() > limit;
    rows.truncate(limit);
    let text = if query.json {
        json_lines(&rows)?
    } else {
        render_text(&rows, since, query.user.as_deref())
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("Failed to print the audit trail")?;
    stdout.flush().context("Failed to print the audit trail")?;
    if query.json && rows.is_empty() {
        eprintln!("{}", no_rows(since, query.user.as_deref()));
    }
    if cut {
        eprintln!(
            "Showing the oldest {limit} rows only (--limit {limit}): narrow --since or --user, or raise --limit."
        );
    }
    Ok(())
}

fn no_rows(since: DateTime<Utc>, user: Option<&str>) -> String {
    let since = since.to_rfc3339_opts(SecondsFormat::Secs, true);
    match user {
        Some(user) => format!("No audit rows since {since} for user {}.", printable(user)),
        None => format!("No audit rows since {since}."),
    }
}

/// A header and one aligned line per row: time, thread, user, event id, action, code, detail.
pub fn render_text(rows: &[AuditRow], since: DateTime<Utc>, user: Option<&str>) -> String {
    if rows.is_empty() {
        return format!("{}\n", no_rows(since, user));
    }
    // Every column but the last (the detail) is padded to its widest cell.
    let lines: Vec<([String; 6], String)> = rows
        .iter()
        .map(|row| {
            let columns = [
                row.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                printable(&row.thread.to_string()).into_owned(),
                printable(row.user.as_str()).into_owned(),
                or_dash(&row.event_id),
                printable(&row.action).into_owned(),
                or_dash(row.code.as_deref().unwrap_or_default()),
            ];
            (columns, printable(&row.detail).into_owned())
        })
        .collect();
    let header = (
        ["time", "thread", "user", "event", "action", "code"].map(String::from),
        "detail".to_string(),
    );
    let mut widths = [0; 6];
    for (columns, _) in std::iter::once(&header).chain(&lines) {
        for (width, cell) in widths.iter_mut().zip(columns) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (columns, detail) in std::iter::once(&header).chain(&lines) {
        for (width, cell) in widths.iter().zip(columns) {
            out.push_str(cell);
            out.push_str(&" ".repeat(width - cell.chars().count() + 2));
        }
        out.push_str(detail);
        out.push('\n');
    }
    out
}

/// One JSON object per row and line: id, at, team, channel, thread_ts, user, event_id, action,
/// code, detail (`event_id` and `code` null when there is none).
pub fn json_lines(rows: &[AuditRow]) -> anyhow::Result<String> {
    let mut out = String::new();
    for row in rows {
        let line = serde_json::json!({
            "id": row.id,
            "at": row.created_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "team": row.thread.team().as_str(),
            "channel": row.thread.channel().as_str(),
            "thread_ts": row.thread.thread_ts().as_str(),
            "user": row.user.as_str(),
            "event_id": (!row.event_id.is_empty()).then_some(row.event_id.as_str()),
            "action": row.action,
            "code": row.code,
            "detail": row.detail,
        });
        out.push_str(&serde_json::to_string(&line).context("Failed to write an audit row as JSON")?);
        out.push('\n');
    }
    Ok(out)
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_string()
    } else {
        printable(text).into_owned()
    }
}

/// Details quote what users typed in Slack: control characters are escaped so a row stays on
/// one line and cannot send escape sequences to the reader's terminal (`threadql schedules`
/// prints questions the same way).
pub(crate) fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::ThreadKey;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn row(id: i64, event_id: &str, code: Option<&str>, detail: &str) -> AuditRow {
        AuditRow {
            id,
            created_at: at("2026-12-05T09:08:07.654Z"),
            thread: ThreadKey::parse("T1", "C1", "1700000000.000100").unwrap(),
            user: "U0123ABCD".into(),
            event_id: event_id.to_string(),
            action: "sql_refused".to_string(),
            code: code.map(String::from),
            detail: detail.to_string(),
        }
    }

    #[test]
    fn since_reads_spans_times_and_dates() {
        let now = at("2026-12-05T12:00:00Z");
        for (text, expected) in [
            ("30m", "2026-12-05T11:30:00Z"),
            ("12h", "2026-12-05T00:00:00Z"),
            ("1d", "2026-12-04T12:00:00Z"),
            ("7d", "2026-11-28T12:00:00Z"),
            ("90s", "2026-12-05T11:58:30Z"),
            ("2026-12-01T09:00:00Z", "2026-12-01T09:00:00Z"),
            ("2026-12-01T10:00:00+01:00", "2026-12-01T09:00:00Z"),
            ("2026-12-01", "2026-12-01T00:00:00Z"),
            ("99999999d", "0001-01-01T00:00:00Z"),
        ] {
            let since = Since::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(since.resolve(now), at(expected), "{text}");
        }
    }

    #[test]
    fn since_refuses_what_it_cannot_read_and_says_what_it_expects() {
        for text in [
            "",
            "1x",
            "d",
            "-1d",
            "1.5d",
            "yesterday",
            "2026-13-01",
            "99999999999999999d",
        ] {
            let error = Since::parse(text).expect_err(text);
            assert!(error.contains(text.trim()), "{text}: {error}");
        }
        assert!(Since::parse("1x").unwrap_err().contains("30m, 12h, 1d, 7d"));
    }

    #[test]
    fn text_has_a_header_and_one_aligned_line_per_row_with_dashes_for_what_is_missing() {
        let rows = [
            row(1, "Ev0123", Some("not_permitted"), "customers.email"),
            row(2, "", None, "exported 12 rows"),
        ];
        let text = render_text(&rows, at("2026-12-04T00:00:00Z"), None);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("time "), "{text}");
        assert_eq!(
            lines[1],
            "2026-12-05T09:08:07Z  T1/C1/1700000000.000100  U0123ABCD  Ev0123  sql_refused  not_permitted  customers.email"
        );
        assert_eq!(
            lines[2],
            "2026-12-05T09:08:07Z  T1/C1/1700000000.000100  U0123ABCD  -       sql_refused  -              exported 12 rows"
        );
        let header_detail = lines[0].find("detail").unwrap();
        assert_eq!(lines[1].find("customers.email"), Some(header_detail), "{text}");
    }

    #[test]
    fn text_says_when_there_is_no_row() {
        let since = at("2026-12-04T00:00:00Z");
        assert_eq!(
            render_text(&[], since, None),
            "No audit rows since 2026-12-04T00:00:00Z.\n"
        );
        assert_eq!(
            render_text(&[], since, Some("U9")),
            "No audit rows since 2026-12-04T00:00:00Z for user U9.\n"
        );
    }

    #[test]
    fn control_characters_from_slack_are_escaped_in_text() {
        let text = render_text(
            &[row(1, "", None, "line one\nline two \u{1b}[31mred")],
            DateTime::<Utc>::MIN_UTC,
            None,
        );
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("line one\\nline two \\u{1b}[31mred"), "{text}");
    }

    #[test]
    fn json_lines_carry_every_field_with_null_for_what_is_missing() {
        let out = json_lines(&[row(7, "", Some("not_permitted"), "d")]).unwrap();
        let value: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "id": 7, "at": "2026-12-05T09:08:07Z", "team": "T1", "channel": "C1",
                "thread_ts": "1700000000.000100", "user": "U0123ABCD", "event_id": null,
                "action": "sql_refused", "code": "not_permitted", "detail": "d",
            })
        );
    }
}
