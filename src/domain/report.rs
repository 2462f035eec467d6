//! Scheduled reports and alerts as stored and run: what a schedule delivers, what each of its
//! runs did, which fire times a run stands for after a downtime, and what changed since the
//! previous run. Pure: the store keeps these, the runner decides with them.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::UserId;
use super::proposed_query::ProposedQuery;
use super::result::{ColumnFormat, QueryResult, Value};
use super::schedule::{AlertState, CatchUp, Condition, Schedule};
use super::thread_key::ThreadKey;

/// A fire time this much older than the moment it is claimed was missed (the server was down),
/// not merely picked up by the next poll.
pub const MISSED_AFTER: chrono::Duration = chrono::Duration::minutes(10);

/// A schedule made in a thread: the query it runs, when, where to, and what its last run left.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledReport {
    pub id: i64,
    /// The thread it was made in (its team is the schedule's workspace).
    pub origin: ThreadKey,
    /// Whose permissions its runs have, and who is told when it fails.
    pub owner: UserId,
    /// The question of the version it was made from, or the alert's own question.
    pub question: String,
    pub query: ProposedQuery,
    pub schedule: Schedule,
    /// Set for an alert: its condition and where its fire / quiet cycle stands.
    pub alert: Option<AlertSpec>,
    pub state: ReportState,
    /// The schedule's own thread, once its first run was posted: later runs reply in it.
    pub delivery_thread: Option<(String, String)>,
    /// What the last delivered run showed (for the diff and `skip if unchanged`).
    pub last_result: Option<QueryResult>,
    pub next_fire_at: DateTime<Utc>,
}

impl ScheduledReport {
    /// "Schedule 12" or "Alert 12", as replies and lists name it.
    pub fn title(&self) -> String {
        match self.alert {
            Some(_) => format!("Alert {}", self.id),
            None => format!("Schedule {}", self.id),
        }
    }

    /// The echo's and the list's line: what runs, when and where.
    pub fn describe(&self) -> String {
        match &self.alert {
            Some(alert) => {
                let subject = if self.question.is_empty() {
                    "this query"
                } else {
                    self.question.as_str()
                };
                format!(
                    "when {subject} {}, checked {}",
                    alert.condition,
                    self.schedule.describe()
                )
            }
            None => format!("“{}” {}", self.query.summary, self.schedule.describe()),
        }
    }
}

/// An alert's condition and state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertSpec {
    pub condition: Condition,
    pub state: AlertState,
    /// The value the previous run found (a change "vs the previous run" compares with it).
    pub last_value: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportState {
    Active,
    /// Stopped by its owner, or by threadql with the reason (its channel is gone, its owner
    /// lost access).
    Paused {
        reason: Option<String>,
    },
}

impl ReportState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Paused { .. } => "paused",
        }
    }
}

/// What one run of a schedule did (`report_executions.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionStatus {
    /// Claimed by a replica, under way.
    Running,
    /// Failed, waiting for its next try.
    Retrying,
    Succeeded,
    SkippedEmpty,
    SkippedUnchanged,
    /// An alert checked whose condition did not change: nothing to say.
    Quiet,
    Failed,
    /// Its fire time passed while no server ran and the catch-up policy did not run it.
    Missed,
}

impl ExecutionStatus {
    pub const ALL: [Self; 8] = [
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::SkippedEmpty,
        Self::SkippedUnchanged,
        Self::Quiet,
        Self::Failed,
        Self::Missed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::SkippedEmpty => "skipped_empty",
            Self::SkippedUnchanged => "skipped_unchanged",
            Self::Quiet => "quiet",
            Self::Failed => "failed",
            Self::Missed => "missed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// Which due fire times run and which are recorded as missed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirePlan {
    /// Fire times to run, oldest first, each with how many missed fire times it stands for.
    pub run: Vec<(DateTime<Utc>, u32)>,
    pub missed: Vec<DateTime<Utc>>,
}

/// Splits the fire times that came due by `now` (oldest first) by the catch-up policy. A fire
/// time within [`MISSED_AFTER`] of `now` is simply due; older ones were missed.
pub fn plan_fire_times(due: &[DateTime<Utc>], now: DateTime<Utc>, catch_up: CatchUp) -> FirePlan {
    let Some((&newest, older)) = due.split_last() else {
        return FirePlan::default();
    };
    match catch_up {
        CatchUp::All => FirePlan {
            run: due.iter().map(|at| (*at, 0)).collect(),
            missed: Vec::new(),
        },
        CatchUp::Latest => FirePlan {
            run: vec![(newest, older.len() as u32)],
            missed: older.to_vec(),
        },
        CatchUp::Skip => {
            let (missed, run): (Vec<_>, Vec<_>) = due.iter().partition(|at| now - **at > MISSED_AFTER);
            FirePlan {
                run: run.into_iter().map(|at| (at, 0)).collect(),
                missed,
            }
        }
    }
}

/// The day a change "vs last week" compares with: the run's own day moved back by the words'
/// period ("yesterday", "last week", "last month", "last quarter", "last year"); `None` when the
/// words name no period (the previous run is compared with instead).
pub fn versus_day(versus: &str, today: chrono::NaiveDate) -> Option<chrono::NaiveDate> {
    use chrono::Months;
    let words = versus.trim().to_lowercase();
    let words = words
        .trim_start_matches("the same time ")
        .trim_start_matches("same time ");
    match words {
        "yesterday" | "the day before" | "a day ago" | "the previous day" => today.pred_opt(),
        "last week" | "the week before" | "a week ago" | "the previous week" => {
            today.checked_sub_signed(chrono::Duration::days(7))
        }
        "last month" | "the month before" | "a month ago" | "the previous month" => {
            today.checked_sub_months(Months::new(1))
        }
        "last quarter" | "the quarter before" | "the previous quarter" => today.checked_sub_months(Months::new(3)),
        "last year" | "the year before" | "a year ago" | "the previous year" => {
            today.checked_sub_months(Months::new(12))
        }
        _ => None,
    }
}

/// The number an alert compares: the first numeric cell of the first row.
pub fn first_number(result: &QueryResult) -> Option<f64> {
    result.rows.first()?.iter().find_map(number_of)
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Int(n) => Some(*n as f64),
        Value::Float(f) => Some(*f),
        Value::Decimal(d) => d.to_string().parse().ok(),
        _ => None,
    }
}

/// What changed between two runs of the same query: rows matched by their labels (the
/// non-numeric leading columns), values compared on the first measure.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResultDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// The biggest changes of the first measure, largest first (at most [`MAX_CHANGES`]).
    pub changes: Vec<ValueChange>,
    /// The measure's column and format, for showing the changes.
    pub measure: Option<(String, ColumnFormat)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValueChange {
    /// The row's labels joined ("EMEA · Online"), or empty for a one-row result.
    pub label: String,
    pub before: f64,
    pub after: f64,
}

/// How many changed values a diff lists.
pub const MAX_CHANGES: usize = 3;
/// How many added or removed rows a diff names.
pub const MAX_NAMED_ROWS: usize = 5;

impl ResultDiff {
    pub fn between(previous: &QueryResult, current: &QueryResult) -> Self {
        let labels = label_columns(current);
        if labels != label_columns(previous) || previous.columns.len() != current.columns.len() {
            // Another shape (the query changed): nothing to compare row by row.
            return Self::default();
        }
        let measure = current.columns.get(labels).map(|c| (c.name.clone(), c.format));
        let keyed = |result: &QueryResult| -> Vec<(String, Option<f64>)> {
            result
                .rows
                .iter()
                .map(|row| {
                    let label = row[..labels.min(row.len())]
                        .iter()
                        .map(label_text)
                        .collect::<Vec<_>>()
                        .join(" · ");
                    (label, row.get(labels).and_then(number_of))
                })
                .collect()
        };
        let before = keyed(previous);
        let after = keyed(current);
        let find = |rows: &[(String, Option<f64>)], label: &str| rows.iter().find(|(l, _)| l == label).map(|(_, v)| *v);
        let added = after
            .iter()
            .filter(|(label, _)| find(&before, label).is_none())
            .map(|(label, _)| label.clone())
            .collect();
        let removed = before
            .iter()
            .filter(|(label, _)| find(&after, label).is_none())
            .map(|(label, _)| label.clone())
            .collect();
        let mut changes: Vec<ValueChange> = after
            .iter()
            .filter_map(|(label, now)| {
                let then = find(&before, label)??;
                let now = (*now)?;
                (now != then).then(|| ValueChange {
                    label: label.clone(),
                    before: then,
                    after: now,
                })
            })
            .collect();
        changes.sort_by(|a, b| (b.after - b.before).abs().total_cmp(&(a.after - a.before).abs()));
        changes.truncate(MAX_CHANGES);
        Self {
            added,
            removed,
            changes,
            measure,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changes.is_empty()
    }
}

/// The leading columns that label a row: those before the first numeric one (a result of
/// numbers alone has one row, labelled by nothing).
fn label_columns(result: &QueryResult) -> usize {
    result
        .columns
        .iter()
        .position(|c| {
            matches!(
                c.format,
                ColumnFormat::Integer | ColumnFormat::Money | ColumnFormat::Number
            )
        })
        .unwrap_or(result.columns.len())
}

fn label_text(value: &Value) -> String {
    match value {
        Value::Null => "(none)".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::Text(t) => t.clone(),
        Value::Date(d) => d.to_string(),
        Value::Timestamp(t) => t.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::TimeZone;

    use super::*;
    use crate::domain::result::Column;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, hour, 0, 0).unwrap()
    }

    #[test]
    fn catch_up_policies_split_a_downtime_of_three_fire_times() {
        let due = [at(6), at(7), at(8)];
        let now = at(8) + chrono::Duration::minutes(1);
        let latest = plan_fire_times(&due, now, CatchUp::Latest);
        assert_eq!(latest.run, vec![(at(8), 2)]);
        assert_eq!(latest.missed, vec![at(6), at(7)]);
        let skip = plan_fire_times(&due, now, CatchUp::Skip);
        assert_eq!(skip.run, vec![(at(8), 0)], "the one just due still runs");
        assert_eq!(skip.missed, vec![at(6), at(7)]);
        let all = plan_fire_times(&due, now, CatchUp::All);
        assert_eq!(all.run, vec![(at(6), 0), (at(7), 0), (at(8), 0)]);
        assert!(all.missed.is_empty());
        let late = plan_fire_times(&due, at(9), CatchUp::Skip);
        assert!(late.run.is_empty(), "{late:?}");
        assert_eq!(plan_fire_times(&[], now, CatchUp::Latest), FirePlan::default());
    }

    fn result(rows: &[(&str, i64)]) -> QueryResult {
        QueryResult {
            columns: vec![
                Column {
                    name: "region".into(),
                    format: ColumnFormat::Text,
                },
                Column {
                    name: "revenue".into(),
                    format: ColumnFormat::Money,
                },
            ],
            rows: rows
                .iter()
                .map(|(label, value)| vec![Value::Text(label.to_string()), Value::Int(*value)])
                .collect(),
        }
    }

    #[test]
    fn a_diff_names_new_and_removed_rows_and_the_biggest_changes_first() {
        let before = result(&[("EMEA", 100), ("APAC", 50), ("LATAM", 10), ("NA", 70)]);
        let after = result(&[("EMEA", 130), ("APAC", 45), ("NA", 70), ("ANZ", 5)]);
        let diff = ResultDiff::between(&before, &after);
        assert_eq!(diff.added, vec!["ANZ"]);
        assert_eq!(diff.removed, vec!["LATAM"]);
        let changed: Vec<(&str, f64, f64)> = diff
            .changes
            .iter()
            .map(|c| (c.label.as_str(), c.before, c.after))
            .collect();
        assert_eq!(changed, vec![("EMEA", 100.0, 130.0), ("APAC", 50.0, 45.0)]);
        assert_eq!(diff.measure, Some(("revenue".into(), ColumnFormat::Money)));
        assert!(ResultDiff::between(&after, &after).is_empty());
    }

    #[test]
    fn results_of_another_shape_are_not_compared_row_by_row() {
        let before = result(&[("EMEA", 100)]);
        let mut after = result(&[("EMEA", 200)]);
        after.columns.insert(
            0,
            Column {
                name: "week".into(),
                format: ColumnFormat::Date,
            },
        );
        for row in &mut after.rows {
            row.insert(0, Value::Text("2026-12-07".into()));
        }
        assert!(ResultDiff::between(&before, &after).is_empty());
    }

    #[test]
    fn an_alert_reads_the_first_number_of_the_first_row() {
        assert_eq!(first_number(&result(&[("EMEA", 42)])), Some(42.0));
        assert_eq!(first_number(&QueryResult::default()), None);
    }

    #[test]
    fn a_change_vs_a_period_compares_with_the_same_day_that_period_ago() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(versus_day("last week", today), day(2026, 3, 24));
        assert_eq!(versus_day("Yesterday", today), day(2026, 3, 30));
        assert_eq!(
            versus_day("last month", today),
            day(2026, 2, 28),
            "clamped to the month's end"
        );
        assert_eq!(versus_day("last year", today), day(2025, 3, 31));
        assert_eq!(versus_day("the previous run", today), None);
    }

    #[test]
    fn statuses_read_back_as_they_are_written() {
        for status in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(ExecutionStatus::parse("exploded"), None);
    }
}
