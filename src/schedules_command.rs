//! `threadql schedules list [--json]` and `threadql schedules run <id>`: the scheduled reports and
//! alerts of DATABASE_URL (every team's) as aligned text or JSON Lines, and one of them run now,
//! outside its schedule, exactly as `serve` runs it (the same backends, permissions, Slack poster
//! and run records).
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};

use crate::audit_command::printable;
use crate::config::{Config, SLACK_BOT_TOKEN};
use crate::domain::{Destination, ExecutionStatus, ReportState, ScheduledReport};
use crate::schedules::ReportRunner;
use crate::slack::channel_directory::SlackChannelDirectory;
use crate::slack::replier::SlackReplier;
use crate::slack::report_poster::SlackReportPoster;
use crate::slack::user_groups::SlackUserGroups;
use crate::slack::web_api::{Outbox, SlackWebApi};
use crate::startup::{replica_name, Backends};
use crate::store::{ReportListing, ScheduleStore, StateStore};
use crate::turn::Replier;

/// How long `run` waits for what it queued for Slack to leave before exiting anyway.
pub const OUTBOX_DRAIN: Duration = Duration::from_secs(30);
const DRAIN_POLL: Duration = Duration::from_millis(50);

/// What `list` says when there is no schedule.
pub const NO_SCHEDULES: &str =
    "No schedules yet. To make one, say `every monday at 9:00` in a Slack thread with an answer (or `alert me when … > 50`).";

/// Prints every schedule and alert of DATABASE_URL on stdout; with `json`, one object per line
/// (the sentence saying there is none then goes to stderr, so stdout stays JSON Lines).
pub async fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let store = crate::store::connect_and_migrate(config.database_url.expose()).await?;
    let listings = schedule_store(store.as_ref())?
        .reports(None, None)
        .await
        .context("Failed to read the schedules")?;
    let text = if json {
        json_lines(&listings)?
    } else {
        render_text(&listings)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .context("Failed to print the schedules")?;
    stdout.flush().context("Failed to print the schedules")?;
    if json && listings.is_empty() {
        eprintln!("{NO_SCHEDULES}");
    }
    Ok(())
}

/// Runs schedule `id` now and prints how the run ended (`schedule 3: succeeded`), once what it
/// queued for Slack has left (at most [`OUTBOX_DRAIN`]). `Ok(false)` when the run failed (or
/// waits for a retry); an error when it could not run at all (no such schedule, no token).
pub async fn run(config: &Config, id: i64) -> anyhow::Result<bool> {
    let bot_token = config.slack.bot_token.clone().with_context(|| {
        format!("{SLACK_BOT_TOKEN} is needed to post the run of schedule {id} in Slack (and SLACK_API_URL for another Web API than Slack's)")
    })?;
    // The schedule first: a typo should not wait for the warehouse and the model.
    let report = {
        let store = crate::store::connect_and_migrate(config.database_url.expose()).await?;
        let report = schedule_store(store.as_ref())?
            .report(id)
            .await
            .with_context(|| format!("Failed to read schedule {id}"))?;
        report.ok_or_else(|| no_such_schedule(id))?
    };
    if let ReportState::Paused { reason } = &report.state {
        let reason = reason
            .as_deref()
            .map(|reason| format!(" ({})", printable(reason)))
            .unwrap_or_default();
        anyhow::bail!(
            "{} is paused{reason}: say `resume {} {id}` in its thread to run it again",
            report.title(),
            kind(&report)
        );
    }

    // As `serve` builds them (see `Application::build`), without the HTTP side.
    let backends = Backends::build(config).await?;
    let api = SlackWebApi::new(&config.slack.api_url, &bot_token, backends.metrics.clone())?;
    backends.access.set_groups(Arc::new(SlackUserGroups::new(api.clone())));
    let bot_user = match api.bot_user_id().await {
        Ok(user) => Some(user),
        Err(error) => {
            tracing::warn!(%error, "auth.test failed; the bot's user id is unknown to the audience check");
            None
        }
    };
    backends
        .access
        .set_directory(Arc::new(SlackChannelDirectory::new(api.clone(), bot_user)));
    let replier: Arc<dyn Replier> = Arc::new(SlackReplier::new(api.clone(), config.max_rows));
    let services = backends.thread_services(config, replier);
    let runner = ReportRunner::new(
        services,
        Arc::new(SlackReportPoster::new(api.clone(), config.max_rows)),
        replica_name(),
    );

    let status = runner
        .run_now(id, Utc::now())
        .await
        .with_context(|| format!("Failed to run schedule {id}"))?
        .ok_or_else(|| no_such_schedule(id))?;
    let left = drain(&api.outbox(), OUTBOX_DRAIN).await;
    // The run's row says why it did not succeed.
    let code = match schedule_store(backends.store.as_ref())?.executions(id).await {
        Ok(runs) => runs.into_iter().max_by_key(|run| run.id).and_then(|run| run.error_code),
        Err(error) => {
            tracing::warn!(?error, report = id, "Failed to read the run back");
            None
        }
    };
    println!("{}", status_line(&report, status, code.as_deref()));
    if left > 0 {
        eprintln!(
            "{left} Slack call{} still pending after {} s; {} may not have reached Slack.",
            if left == 1 { " was" } else { "s were" },
            OUTBOX_DRAIN.as_secs(),
            if left == 1 { "it" } else { "they" }
        );
    }
    Ok(succeeded(status))
}

fn schedule_store(store: &dyn StateStore) -> anyhow::Result<&dyn ScheduleStore> {
    store
        .schedules()
        .context("This state store (DATABASE_URL) keeps no schedules")
}

fn no_such_schedule(id: i64) -> anyhow::Error {
    anyhow::anyhow!(
        "There is no schedule {id} in DATABASE_URL; `threadql schedules list` shows the schedules there are"
    )
}

/// Whether a run did what its schedule asks: delivered, or rightly said nothing.
fn succeeded(status: ExecutionStatus) -> bool {
    matches!(
        status,
        ExecutionStatus::Succeeded
            | ExecutionStatus::SkippedEmpty
            | ExecutionStatus::SkippedUnchanged
            | ExecutionStatus::Quiet
    )
}

/// `schedule 3: succeeded`, `alert 4: failed (query_failed)`, `schedule 5: retrying (…): …`.
pub fn status_line(report: &ScheduledReport, status: ExecutionStatus, code: Option<&str>) -> String {
    let mut line = format!("{} {}: {}", kind(report), report.id, status.as_str());
    if let Some(code) = code.filter(|_| !succeeded(status)) {
        line.push_str(&format!(" ({})", printable(code)));
    }
    if status == ExecutionStatus::Retrying {
        line.push_str("; `threadql serve` tries it again shortly (THREADQL_SCHEDULE_POLL_SECS)");
    }
    line
}

/// Waits (at most `within`) until nothing is queued or in flight to Slack; answers how many
/// calls are left.
async fn drain(outbox: &Outbox, within: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let pending = outbox.pending();
        if pending == 0 || tokio::time::Instant::now() >= deadline {
            return pending;
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

fn kind(report: &ScheduledReport) -> &'static str {
    if report.alert.is_some() {
        "alert"
    } else {
        "schedule"
    }
}

/// `active`, `paused`, or `paused (its channel cannot be posted in (channel_not_found))`.
fn state_text(state: &ReportState) -> String {
    match state {
        ReportState::Active => "active".to_string(),
        ReportState::Paused { reason: None } => "paused".to_string(),
        ReportState::Paused { reason: Some(reason) } => format!("paused ({reason})"),
    }
}

/// When the next run is due; none while paused.
fn next_run(report: &ScheduledReport) -> Option<DateTime<Utc>> {
    match report.state {
        ReportState::Active => Some(report.next_fire_at),
        ReportState::Paused { .. } => None,
    }
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A header and one aligned line per schedule: id, kind, state, owner, team/channel, cron and
/// zone, next run (UTC), last run's status, then what it delivers.
pub fn render_text(listings: &[ReportListing]) -> String {
    if listings.is_empty() {
        return format!("{NO_SCHEDULES}\n");
    }
    const COLUMNS: usize = 8;
    // Every column but the last (the description) is padded to its widest cell.
    let lines: Vec<([String; COLUMNS], String)> = listings
        .iter()
        .map(|listing| {
            let report = &listing.report;
            let columns = [
                report.id.to_string(),
                kind(report).to_string(),
                printable(&state_text(&report.state)).into_owned(),
                printable(report.owner.as_str()).into_owned(),
                printable(&format!("{}/{}", report.origin.team(), report.origin.channel())).into_owned(),
                printable(&format!("{} {}", report.schedule.cron, report.schedule.timezone.name())).into_owned(),
                next_run(report).map_or_else(|| "-".to_string(), rfc3339),
                listing.last_status.map_or("-", ExecutionStatus::as_str).to_string(),
            ];
            (columns, printable(&report.describe()).into_owned())
        })
        .collect();
    let header = (
        [
            "id",
            "kind",
            "state",
            "owner",
            "team/channel",
            "cron",
            "next run (UTC)",
            "last run",
        ]
        .map(String::from),
        "what".to_string(),
    );
    let mut widths = [0; COLUMNS];
    for (columns, _) in std::iter::once(&header).chain(&lines) {
        for (width, cell) in widths.iter_mut().zip(columns) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (columns, what) in std::iter::once(&header).chain(&lines) {
        for (width, cell) in widths.iter().zip(columns) {
            out.push_str(cell);
            out.push_str(&" ".repeat(width - cell.chars().count() + 2));
        }
        out.push_str(what);
        out.push('\n');
    }
    out
}

/// One JSON object per schedule and line: id, kind, state, paused_reason, owner, team, channel,
/// thread_ts, cron, timezone, destination, next_run_at, last_status, last_run_at, question,
/// summary, description (null for what there is none of).
pub fn json_lines(listings: &[ReportListing]) -> anyhow::Result<String> {
    let mut out = String::new();
    for listing in listings {
        let report = &listing.report;
        let paused_reason = match &report.state {
            ReportState::Paused { reason } => reason.as_deref(),
            ReportState::Active => None,
        };
        let destination = match &report.schedule.destination {
            Destination::Thread => "thread".to_string(),
            Destination::Me => "dm".to_string(),
            Destination::Channel(channel) => channel.clone(),
        };
        let line = serde_json::json!({
            "id": report.id,
            "kind": kind(report),
            "state": report.state.as_str(),
            "paused_reason": paused_reason,
            "owner": report.owner.as_str(),
            "team": report.origin.team().as_str(),
            "channel": report.origin.channel().as_str(),
            "thread_ts": report.origin.thread_ts().as_str(),
            "cron": report.schedule.cron,
            "timezone": report.schedule.timezone.name(),
            "destination": destination,
            "next_run_at": next_run(report).map(rfc3339),
            "last_status": listing.last_status.map(ExecutionStatus::as_str),
            "last_run_at": listing.last_fire_at.map(rfc3339),
            "question": report.question,
            "summary": report.query.summary,
            "description": report.describe(),
        });
        out.push_str(&serde_json::to_string(&line).context("Failed to write a schedule as JSON")?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::domain::{AlertSpec, Condition, DeliveryOptions, ProposedQuery, Schedule, ThreadKey, UserId};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn listing(id: i64, state: ReportState, last: Option<ExecutionStatus>) -> ReportListing {
        ReportListing {
            report: ScheduledReport {
                id,
                origin: ThreadKey::parse("T1", "C1", "1700000000.000100").unwrap(),
                owner: UserId::new("U0ALICE01"),
                question: "customers by region".to_string(),
                query: ProposedQuery {
                    sql: "SELECT region, COUNT(*) AS customers FROM customers GROUP BY region".to_string(),
                    structured: None,
                    summary: "Customers by region".to_string(),
                    formats: Vec::new(),
                    explanation: String::new(),
                    usage: None,
                },
                schedule: Schedule::from_cron(
                    "0 9 * * 1",
                    chrono_tz::Europe::Berlin,
                    Destination::Thread,
                    DeliveryOptions::default(),
                )
                .unwrap(),
                alert: None,
                state,
                delivery_thread: None,
                last_result: None,
                next_fire_at: at("2026-12-07T08:00:00Z"),
            },
            last_status: last,
            last_fire_at: last.map(|_| at("2026-11-30T08:00:00Z")),
        }
    }

    #[test]
    fn text_has_a_header_and_one_aligned_line_per_schedule() {
        let listings = [
            listing(3, ReportState::Active, Some(ExecutionStatus::Succeeded)),
            listing(
                12,
                ReportState::Paused {
                    reason: Some("its channel cannot be posted in (channel_not_found)".to_string()),
                },
                None,
            ),
        ];
        let text = render_text(&listings);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("id  kind "), "{text}");
        assert!(lines[1].starts_with("3   schedule  active "), "{text}");
        for part in [
            "U0ALICE01",
            "T1/C1",
            "0 9 * * 1 Europe/Berlin",
            "2026-12-07T08:00:00Z",
            "succeeded",
            "“Customers by region” every Monday at 09:00 (Europe/Berlin), cron `0 9 * * 1`",
        ] {
            assert!(lines[1].contains(part), "{part} in {}", lines[1]);
        }
        assert!(
            lines[2].contains("paused (its channel cannot be posted in (channel_not_found))"),
            "{text}"
        );
        let what = lines[0].find("what").unwrap();
        assert_eq!(lines[1].find("“Customers"), Some(what), "{text}");
        assert_eq!(lines[2].find("“Customers"), Some(what), "{text}");
    }

    #[test]
    fn text_without_schedules_says_how_to_make_one() {
        let text = render_text(&[]);
        assert!(text.starts_with("No schedules yet"), "{text}");
        assert!(text.contains("`every monday at 9:00`"), "{text}");
    }

    #[test]
    fn json_lines_carry_every_field_with_null_for_what_is_missing() {
        let mut alert = listing(7, ReportState::Paused { reason: None }, Some(ExecutionStatus::Quiet));
        alert.report.alert = Some(AlertSpec {
            condition: Condition::Above(50.0),
            state: Default::default(),
            last_value: None,
        });
        let out = json_lines(&[listing(3, ReportState::Active, None), alert]).unwrap();
        let values: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(values.len(), 2, "{out}");
        let description = values[0]["description"].clone();
        assert_eq!(
            values[0],
            serde_json::json!({
                "id": 3, "kind": "schedule", "state": "active", "paused_reason": null,
                "owner": "U0ALICE01", "team": "T1", "channel": "C1", "thread_ts": "1700000000.000100",
                "cron": "0 9 * * 1", "timezone": "Europe/Berlin", "destination": "thread",
                "next_run_at": "2026-12-07T08:00:00Z", "last_status": null, "last_run_at": null,
                "question": "customers by region", "summary": "Customers by region",
                "description": description,
            })
        );
        assert_eq!(values[1]["kind"], "alert");
        assert_eq!(values[1]["state"], "paused");
        assert_eq!(values[1]["next_run_at"], serde_json::Value::Null);
        assert_eq!(values[1]["last_status"], "quiet");
        assert_eq!(values[1]["last_run_at"], "2026-11-30T08:00:00Z");
    }

    #[test]
    fn a_status_line_names_the_schedule_and_why_a_run_failed() {
        let report = listing(3, ReportState::Active, None).report;
        assert_eq!(
            status_line(&report, ExecutionStatus::Succeeded, None),
            "schedule 3: succeeded"
        );
        assert_eq!(
            status_line(&report, ExecutionStatus::Failed, Some("query_failed")),
            "schedule 3: failed (query_failed)"
        );
        assert!(status_line(&report, ExecutionStatus::Retrying, Some("slack_refused"))
            .starts_with("schedule 3: retrying (slack_refused); "));
    }

    #[test]
    fn control_characters_from_slack_are_escaped_in_text() {
        let mut odd = listing(1, ReportState::Active, None);
        odd.report.query.summary = "line one\nline two \u{1b}[31mred".to_string();
        let text = render_text(&[odd]);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("line one\\nline two \\u{1b}[31mred"), "{text}");
    }
}
