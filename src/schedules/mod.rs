//! The schedule runner: claims the runs that are due (exactly once across replicas, see
//! `store::ScheduleStore`), runs each as its owner through the turn's guarded path, and
//! delivers it: the answer with what changed since the previous run, or an alert when its
//! condition turns true (and "back to normal" once when it turns false), or nothing when the
//! schedule says to skip. A failed run is tried again with backoff; the last failure is posted
//! in the schedule's thread and sent to its owner.
//!
//! Time is a parameter: [`ReportRunner::run_due`] runs what is due at the instant it is given,
//! so tests drive the runner through Mondays and DST changes without waiting for them.
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::domain::{
    first_number, versus_day, AlertAction, AlertSpec, Answer, Attachment, Condition, Destination, ErrorCode,
    ExecutionStatus, Reply, ReportState, ResultDiff, ScheduledReport, PREVIOUS_RUN,
};
use crate::render::number::format_value;
use crate::store::{ExecutionEnd, ReportClaim, ScheduleStore, StoreError};
use crate::turn::{local_time, ScheduledAnswer, ScheduledFailure, ThreadServices, TurnContext};

/// Tries of one run before it is reported as failed.
pub const MAX_TRIES: u32 = 3;
/// The wait before the second and the third try. A row's `retry_at`, not a sleep: a replica that
/// stops meanwhile leaves the retry to another.
const RETRY_AFTER: [chrono::Duration; 2] = [chrono::Duration::minutes(1), chrono::Duration::minutes(5)];
/// How long a claimed run is its replica's: past it, another replica takes the run over (and
/// updates what it posted rather than posting again).
const LEASE: chrono::Duration = chrono::Duration::minutes(10);
/// Reports claimed per poll.
const CLAIM_LIMIT: usize = 50;

/// What a scheduled run posts: a heading (alert, diff, missed runs) and the answer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub report_id: i64,
    /// The run's row: its post carries it in Slack's message metadata.
    pub execution_id: i64,
    /// mrkdwn above the answer.
    pub heading: String,
    pub answer: Option<Answer>,
    /// The small print under it: which schedule, how to pause it.
    pub footer: String,
}

/// Why a delivery did not reach Slack.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// The channel is gone, archived, or the bot is not in it: Slack's code.
    #[error("the channel cannot be posted in ({0})")]
    ChannelGone(String),
    /// Installed through OAuth: the workspace's installation is gone or inactive (uninstalled,
    /// tokens revoked, a token Slack would not renew).
    #[error("the workspace's installation is inactive ({0})")]
    WorkspaceGone(String),
    #[error("{0}")]
    Failed(String),
}

/// Where scheduled runs are posted: Slack's Web API in the server. Each call names the
/// report's workspace (`team`): installed into several, each posts as its own bot.
#[async_trait]
pub trait ReportPoster: Send + Sync {
    /// The direct-message channel with `user`.
    async fn direct_channel(&self, team: &str, user: &str) -> Result<String, PostError>;
    /// Posts a delivery (in `thread_ts`'s thread, else as a new message) and returns its ts.
    async fn post(
        &self,
        team: &str,
        channel: &str,
        thread_ts: Option<&str>,
        delivery: &Delivery,
    ) -> Result<String, PostError>;
    /// Replaces what an earlier try of the same run posted.
    async fn update(&self, team: &str, channel: &str, ts: &str, delivery: &Delivery) -> Result<(), PostError>;
    /// The ts of what run `execution_id` posted, found by its metadata, when an earlier try
    /// posted it but could not record it.
    async fn find(
        &self,
        team: &str,
        channel: &str,
        thread_ts: Option<&str>,
        execution_id: i64,
    ) -> Result<Option<String>, PostError>;
    /// Uploads a file (`Reply::File`) into a thread.
    async fn attach(&self, team: &str, channel: &str, thread_ts: &str, file: Reply) -> Result<(), PostError>;
    /// A plain message in a thread (a run's failure).
    async fn say(&self, team: &str, channel: &str, thread_ts: Option<&str>, text: &str) -> Result<(), PostError>;
}

/// What one poll did, by status (for `threadql schedules run` and tests).
pub type RunSummary = BTreeMap<&'static str, usize>;

pub struct ReportRunner {
    services: Arc<ThreadServices>,
    poster: Arc<dyn ReportPoster>,
    /// This process, in the runs it claims.
    replica: String,
}

impl ReportRunner {
    pub fn new(services: Arc<ThreadServices>, poster: Arc<dyn ReportPoster>, replica: String) -> Self {
        Self {
            services,
            poster,
            replica,
        }
    }

    fn store(&self) -> Result<&dyn ScheduleStore, StoreError> {
        self.services
            .store
            .schedules()
            .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("this state store keeps no schedules")))
    }

    /// Runs everything due at `now`: new fire times, retries whose time came, and runs another
    /// replica claimed and abandoned. Runs of one schedule go in fire-time order.
    pub async fn run_due(&self, now: DateTime<Utc>) -> Result<RunSummary, StoreError> {
        let claims = self.store()?.claim_due(now, &self.replica, LEASE, CLAIM_LIMIT).await?;
        let mut by_report: BTreeMap<i64, Vec<ReportClaim>> = BTreeMap::new();
        for claim in claims {
            by_report.entry(claim.report.id).or_default().push(claim);
        }
        let mut summary = RunSummary::new();
        for (_, mut claims) in by_report {
            claims.sort_by_key(|claim| claim.fire_at);
            for claim in claims {
                let status = self.run_claim(claim, now).await;
                *summary.entry(status.as_str()).or_default() += 1;
            }
        }
        Ok(summary)
    }

    /// Runs report `id` now, outside its schedule (`threadql schedules run <id>`).
    pub async fn run_now(&self, id: i64, now: DateTime<Utc>) -> Result<Option<ExecutionStatus>, StoreError> {
        let Some(claim) = self.store()?.claim_now(id, now, &self.replica, LEASE).await? else {
            return Ok(None);
        };
        Ok(Some(self.run_claim(claim, now).await))
    }

    /// Polls every `every` until `stop`.
    pub fn spawn(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = ticker.tick() => {}
                }
                if let Err(error) = self.run_due(Utc::now()).await {
                    // The runs stay due; the next poll claims them.
                    tracing::warn!(?error, "Failed to run due schedules");
                }
            }
        });
    }

    /// One claimed run, start to end; answers how it ended.
    async fn run_claim(&self, claim: ReportClaim, now: DateTime<Utc>) -> ExecutionStatus {
        let store = match self.store() {
            Ok(store) => store,
            Err(_) => return ExecutionStatus::Failed,
        };
        // The report as it is now: an earlier run of it in this poll may have changed its last
        // result, its alert state or its thread.
        let report = match store.report(claim.report.id).await {
            Ok(Some(report)) => report,
            Ok(None) => return ExecutionStatus::Missed,
            Err(error) => {
                tracing::warn!(?error, report = claim.report.id, "Failed to read a scheduled report");
                claim.report.clone()
            }
        };
        let end = match report.state {
            ReportState::Paused { .. } => ExecutionEnd::status(ExecutionStatus::Missed),
            ReportState::Active => self.run_report(&claim, &report, now).await,
        };
        let status = end.status;
        if let Err(error) = store.finish_execution(claim.execution_id, &end).await {
            // Left `running`: its lease passes and another poll takes it over, updating what
            // this one posted.
            tracing::error!(
                ?error,
                execution = claim.execution_id,
                "Failed to record how a scheduled run ended"
            );
        }
        self.services
            .metrics
            .report_runs
            .with_label_values(&[status.as_str()])
            .inc();
        if end.pause.is_some() {
            self.services
                .metrics
                .schedules_changed
                .with_label_values(&["paused_by_threadql"])
                .inc();
        }
        tracing::info!(
            report = report.id,
            execution = claim.execution_id,
            fire_at = %claim.fire_at,
            attempt = claim.attempt,
            status = status.as_str(),
            "Scheduled run finished"
        );
        status
    }

    async fn run_report(&self, claim: &ReportClaim, report: &ScheduledReport, now: DateTime<Utc>) -> ExecutionEnd {
        let (team, owner) = (report.origin.team().as_str(), report.owner.as_str());
        if self.services.access.has_left(team, owner).await {
            let text = format!(
                ":pause_button: *{}* is paused: the person who made it has left the workspace. \
                 Someone who may read its data can make it again (`schedules` lists it for admins).",
                report.title()
            );
            self.tell(report, &text, true).await;
            return ExecutionEnd {
                error_code: Some(ErrorCode::NotPermitted),
                error: Some("owner deactivated".into()),
                pause: Some("its owner has left the workspace".into()),
                ..ExecutionEnd::status(ExecutionStatus::Failed)
            };
        }
        let today = claim.fire_at.with_timezone(&report.schedule.timezone).date_naive();
        let answer = match TurnContext::scheduled_run(self.services.clone(), report, today).await {
            Ok(answer) => answer,
            Err(failure) => return self.failed(claim, report, failure, now).await,
        };
        match &report.alert {
            Some(alert) => self.check_alert(claim, report, alert, answer, today, now).await,
            None => self.deliver_report(claim, report, answer, now).await,
        }
    }

    async fn deliver_report(
        &self,
        claim: &ReportClaim,
        report: &ScheduledReport,
        answer: ScheduledAnswer,
        now: DateTime<Utc>,
    ) -> ExecutionEnd {
        let options = &report.schedule.options;
        if options.skip_if_empty && answer.total_rows == 0 {
            return ExecutionEnd::status(ExecutionStatus::SkippedEmpty);
        }
        if options.skip_if_unchanged && report.last_result.as_ref() == Some(&answer.result) {
            return ExecutionEnd::status(ExecutionStatus::SkippedUnchanged);
        }
        let mut heading = format!("*{}*", report.title());
        if claim.missed > 0 {
            heading.push_str(&format!(
                "\n:warning: {} earlier run{} {} missed while threadql was not running; this is the latest.",
                claim.missed,
                if claim.missed == 1 { "" } else { "s" },
                if claim.missed == 1 { "was" } else { "were" },
            ));
        }
        if let Some(previous) = &report.last_result {
            heading.push_str(&diff_text(&ResultDiff::between(previous, &answer.result)));
        }
        let result = answer.result.clone();
        let mut end = self
            .deliver(
                claim,
                report,
                heading,
                Some(answer),
                report.schedule.options.attach,
                now,
            )
            .await;
        if end.status == ExecutionStatus::Succeeded {
            end.last_result = Some(result);
        }
        end
    }

    async fn check_alert(
        &self,
        claim: &ReportClaim,
        report: &ScheduledReport,
        alert: &AlertSpec,
        answer: ScheduledAnswer,
        today: chrono::NaiveDate,
        now: DateTime<Utc>,
    ) -> ExecutionEnd {
        let value = first_number(&answer.result);
        let previous = match &alert.condition {
            Condition::DropsBy { versus, .. } | Condition::RisesBy { versus, .. } if versus != PREVIOUS_RUN => {
                match versus_day(versus, today) {
                    Some(earlier) => match TurnContext::scheduled_run(self.services.clone(), report, earlier).await {
                        Ok(before) => first_number(&before.result),
                        Err(failure) => return self.failed(claim, report, failure, now).await,
                    },
                    None => alert.last_value,
                }
            }
            _ => alert.last_value,
        };
        let holds = alert.condition.holds(value, previous, answer.total_rows);
        let (state, action) = alert.state.step(holds);
        let next = AlertSpec {
            condition: alert.condition.clone(),
            state,
            last_value: value,
        };
        let shown = value
            .map(|v| format_value(&crate::domain::Value::Float(v), crate::domain::ColumnFormat::Number))
            .unwrap_or_else(|| "no value".to_string());
        let subject = if report.question.is_empty() {
            answer.query.summary.clone()
        } else {
            report.question.clone()
        };
        let heading = match action {
            AlertAction::Fire => format!(
                ":rotating_light: *{}*: {subject} {} (now {shown}).",
                report.title(),
                alert.condition
            ),
            AlertAction::BackToNormal => format!(
                ":white_check_mark: *{}*: back to normal, {subject} no longer {} (now {shown}).",
                report.title(),
                alert.condition
            ),
            AlertAction::Nothing => {
                return ExecutionEnd {
                    alert: Some(next),
                    ..ExecutionEnd::status(ExecutionStatus::Quiet)
                }
            }
        };
        let answer = (action == AlertAction::Fire).then_some(answer);
        let mut end = self.deliver(claim, report, heading, answer, None, now).await;
        if end.status == ExecutionStatus::Succeeded {
            end.alert = Some(next);
        }
        end
    }

    /// Posts (or, on a retry, updates) the run's message where the schedule delivers, then its
    /// attachment.
    async fn deliver(
        &self,
        claim: &ReportClaim,
        report: &ScheduledReport,
        heading: String,
        answer: Option<ScheduledAnswer>,
        attach: Option<Attachment>,
        now: DateTime<Utc>,
    ) -> ExecutionEnd {
        let channel = match self.destination(report).await {
            Ok(channel) => channel,
            Err(error) => return self.post_failed(claim, report, error, now).await,
        };
        // Runs reply in the schedule's own thread once there is one in that channel.
        let thread = report
            .delivery_thread
            .as_ref()
            .filter(|(thread_channel, _)| *thread_channel == channel)
            .map(|(_, ts)| ts.clone());
        let files = answer.as_ref().and_then(|a| attachment(a, attach));
        let delivery = Delivery {
            report_id: report.id,
            execution_id: claim.execution_id,
            heading,
            answer: answer.map(|a| as_answer(report, a)),
            footer: format!(
                "{} · {} · `pause {} {}` to pause it",
                report.title(),
                report.schedule.describe(),
                if report.alert.is_some() { "alert" } else { "schedule" },
                report.id
            ),
        };
        let store = match self.store() {
            Ok(store) => store,
            Err(error) => return retry_or_fail(claim, ErrorCode::StateUnavailable, error.to_string(), now),
        };
        let earlier = match &claim.posted {
            Some((posted_channel, ts)) => Some((posted_channel.clone(), ts.clone())),
            // A try before this one may have posted without living to record it.
            None if claim.attempt > 1 => {
                match self
                    .poster
                    .find(
                        report.origin.team().as_str(),
                        &channel,
                        thread.as_deref(),
                        claim.execution_id,
                    )
                    .await
                {
                    Ok(found) => found.map(|ts| (channel.clone(), ts)),
                    Err(error) => return self.post_failed(claim, report, error, now).await,
                }
            }
            None => None,
        };
        let (posted_channel, ts) = match earlier {
            Some((posted_channel, ts)) => {
                if let Err(error) = self
                    .poster
                    .update(report.origin.team().as_str(), &posted_channel, &ts, &delivery)
                    .await
                {
                    return self.post_failed(claim, report, error, now).await;
                }
                (posted_channel, ts)
            }
            None => match self
                .poster
                .post(report.origin.team().as_str(), &channel, thread.as_deref(), &delivery)
                .await
            {
                Ok(ts) => {
                    if let Err(error) = store.record_posted(claim.execution_id, &channel, &ts).await {
                        tracing::warn!(
                            ?error,
                            execution = claim.execution_id,
                            "Failed to record a scheduled post"
                        );
                    }
                    (channel.clone(), ts)
                }
                Err(error) => return self.post_failed(claim, report, error, now).await,
            },
        };
        let thread_ts = thread.clone().unwrap_or_else(|| ts.clone());
        if let Some(file) = files {
            if let Err(error) = self
                .poster
                .attach(report.origin.team().as_str(), &posted_channel, &thread_ts, file)
                .await
            {
                tracing::warn!(%error, report = report.id, "Failed to attach a scheduled run's file");
            }
        }
        ExecutionEnd {
            delivery_thread: thread.is_none().then_some((posted_channel, ts)),
            ..ExecutionEnd::status(ExecutionStatus::Succeeded)
        }
    }

    /// The channel a report's runs go to.
    async fn destination(&self, report: &ScheduledReport) -> Result<String, PostError> {
        match &report.schedule.destination {
            Destination::Thread => Ok(report.origin.channel().as_str().to_string()),
            Destination::Me => {
                self.poster
                    .direct_channel(report.origin.team().as_str(), report.owner.as_str())
                    .await
            }
            Destination::Channel(written) => Ok(channel_id(written)),
        }
    }

    /// A run whose query failed: tried again later, or, at the last try, reported in the
    /// schedule's thread and to its owner. A refusal for permissions pauses the schedule.
    async fn failed(
        &self,
        claim: &ReportClaim,
        report: &ScheduledReport,
        failure: ScheduledFailure,
        now: DateTime<Utc>,
    ) -> ExecutionEnd {
        if failure.retryable() && claim.attempt < MAX_TRIES {
            return retry_or_fail(claim, failure.code, failure.error, now);
        }
        let sentence = match &failure.reply {
            Reply::Error(error) => error.text(),
            _ => failure.code.sentence().to_string(),
        };
        let pause =
            (failure.code == ErrorCode::NotPermitted).then(|| "its owner may no longer read what it reads".to_string());
        let tries = if failure.retryable() {
            format!(" after {} tries", claim.attempt)
        } else {
            String::new()
        };
        let text = format!(
            ":x: *{}* could not run{tries} (the run due {}): {sentence} (code `{}`){}",
            report.title(),
            local_time(claim.fire_at, report.schedule.timezone),
            failure.code,
            if pause.is_some() {
                "\nIt is paused until it is resumed."
            } else {
                ""
            }
        );
        self.tell(report, &text, true).await;
        ExecutionEnd {
            error_code: Some(failure.code),
            error: Some(failure.error),
            pause,
            ..ExecutionEnd::status(ExecutionStatus::Failed)
        }
    }

    /// Slack would not take a run's post: a channel that is gone pauses the schedule (and its
    /// owner is told by DM), and so does a workspace whose installation ended; anything else is
    /// tried again.
    async fn post_failed(
        &self,
        claim: &ReportClaim,
        report: &ScheduledReport,
        error: PostError,
        now: DateTime<Utc>,
    ) -> ExecutionEnd {
        match error {
            PostError::ChannelGone(code) => {
                let text = format!(
                    ":pause_button: *{}* is paused: I can no longer post where it delivers ({code}). \
                     Say `edit schedule {} …` with another destination, then `resume schedule {}`.",
                    report.title(),
                    report.id,
                    report.id
                );
                self.tell(report, &text, false).await;
                ExecutionEnd {
                    error_code: Some(ErrorCode::SlackRefused),
                    error: Some(code.clone()),
                    pause: Some(format!("its channel cannot be posted in ({code})")),
                    ..ExecutionEnd::status(ExecutionStatus::Failed)
                }
            }
            // Nobody can be told in Slack without a token: the pause shows in `schedules list`.
            PostError::WorkspaceGone(reason) => ExecutionEnd {
                error_code: Some(ErrorCode::SlackRefused),
                error: Some(reason.clone()),
                pause: Some(format!("its workspace's installation is inactive ({reason})")),
                ..ExecutionEnd::status(ExecutionStatus::Failed)
            },
            PostError::Failed(cause) => {
                if claim.attempt < MAX_TRIES {
                    return retry_or_fail(claim, ErrorCode::SlackRefused, cause, now);
                }
                let text = format!(
                    ":x: *{}*: I could not post its run after {} tries ({}).",
                    report.title(),
                    claim.attempt,
                    ErrorCode::SlackRefused.sentence()
                );
                self.tell(report, &text, false).await;
                ExecutionEnd {
                    error_code: Some(ErrorCode::SlackRefused),
                    error: Some(cause),
                    ..ExecutionEnd::status(ExecutionStatus::Failed)
                }
            }
        }
    }

    /// Tells the owner by DM and, when `in_thread`, the schedule's thread (or the thread it was
    /// made in, before its first delivery).
    async fn tell(&self, report: &ScheduledReport, text: &str, in_thread: bool) {
        if in_thread {
            let (channel, thread) = match &report.delivery_thread {
                Some((channel, ts)) => (channel.clone(), ts.clone()),
                None => (
                    report.origin.channel().as_str().to_string(),
                    report.origin.thread_ts().as_str().to_string(),
                ),
            };
            if let Err(error) = self
                .poster
                .say(report.origin.team().as_str(), &channel, Some(&thread), text)
                .await
            {
                tracing::warn!(%error, report = report.id, "Failed to post a scheduled run's failure");
            }
        }
        let direct = match self
            .poster
            .direct_channel(report.origin.team().as_str(), report.owner.as_str())
            .await
        {
            Ok(direct) => direct,
            Err(error) => {
                return tracing::warn!(%error, report = report.id, "Failed to open a DM with a schedule's owner")
            }
        };
        if let Err(error) = self
            .poster
            .say(report.origin.team().as_str(), &direct, None, text)
            .await
        {
            tracing::warn!(%error, report = report.id, "Failed to tell a schedule's owner");
        }
    }
}

/// The next try of a run, or its failure once it had its tries.
fn retry_or_fail(claim: &ReportClaim, code: ErrorCode, error: String, now: DateTime<Utc>) -> ExecutionEnd {
    let wait = RETRY_AFTER
        .get(claim.attempt.saturating_sub(1) as usize)
        .copied()
        .unwrap_or(chrono::Duration::minutes(5));
    let status = if claim.attempt < MAX_TRIES {
        ExecutionStatus::Retrying
    } else {
        ExecutionStatus::Failed
    };
    ExecutionEnd {
        error_code: Some(code),
        error: Some(error),
        retry_at: (status == ExecutionStatus::Retrying).then(|| now + wait),
        ..ExecutionEnd::status(status)
    }
}

/// `<#C0123|sales>` as Slack sends a channel mention → `C0123`; a name as written otherwise.
fn channel_id(written: &str) -> String {
    written
        .strip_prefix("<#")
        .and_then(|rest| rest.trim_end_matches('>').split('|').next())
        .map(str::to_string)
        .unwrap_or_else(|| written.to_string())
}

fn as_answer(report: &ScheduledReport, answer: ScheduledAnswer) -> Answer {
    Answer {
        summary: answer.query.summary.clone(),
        capped: answer.capped,
        total_rows: answer.total_rows,
        result: answer.result,
        duration: answer.duration,
        query_id: answer.query_id,
        version: report.id as usize,
    }
}

/// The file a schedule asks for with each run.
fn attachment(answer: &ScheduledAnswer, attach: Option<Attachment>) -> Option<Reply> {
    match attach? {
        Attachment::Csv => Some(Reply::File {
            filename: format!("threadql-{}.csv", answer.query_id),
            content_type: "text/csv".into(),
            bytes: crate::render::csv::to_csv(&answer.result),
            title: answer.query.summary.clone(),
        }),
        Attachment::Chart => match crate::render::chart::render_chart(&answer.result, &answer.query.summary) {
            Ok(chart) => Some(Reply::File {
                filename: format!("threadql-{}.png", answer.query_id),
                content_type: "image/png".into(),
                bytes: chart.png,
                title: answer.query.summary.clone(),
            }),
            Err(error) => {
                tracing::info!(%error, "A scheduled run's result does not chart");
                None
            }
        },
    }
}

/// "Since the last run: new EMEA; gone LATAM; APAC 1,200 → 1,500 (+25%)".
fn diff_text(diff: &ResultDiff) -> String {
    if diff.is_empty() {
        return "\nNo change since the last run.".to_string();
    }
    let mut parts = Vec::new();
    let names = |labels: &[String]| {
        let shown: Vec<&str> = labels
            .iter()
            .take(crate::domain::MAX_NAMED_ROWS)
            .map(String::as_str)
            .collect();
        let more = labels.len().saturating_sub(shown.len());
        let mut text = shown.join(", ");
        if more > 0 {
            text.push_str(&format!(" and {more} more"));
        }
        text
    };
    if !diff.added.is_empty() {
        parts.push(format!("new: {}", names(&diff.added)));
    }
    if !diff.removed.is_empty() {
        parts.push(format!("gone: {}", names(&diff.removed)));
    }
    let format = diff
        .measure
        .as_ref()
        .map_or(crate::domain::ColumnFormat::Number, |(_, f)| *f);
    let number = |v: f64| format_value(&crate::domain::Value::Float(v), format);
    for change in &diff.changes {
        let percent = if change.before != 0.0 {
            format!(
                " ({:+.0}%)",
                (change.after - change.before) / change.before.abs() * 100.0
            )
        } else {
            String::new()
        };
        let label = if change.label.is_empty() {
            diff.measure
                .as_ref()
                .map_or("value".to_string(), |(name, _)| name.clone())
        } else {
            change.label.clone()
        };
        parts.push(format!(
            "{label} {} → {}{percent}",
            number(change.before),
            number(change.after)
        ));
    }
    format!("\n*Since the last run:* {}.", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_mention_gives_its_id_and_a_name_stays_as_written() {
        assert_eq!(channel_id("<#C0123ABC|sales>"), "C0123ABC");
        assert_eq!(channel_id("<#C0123ABC>"), "C0123ABC");
        assert_eq!(channel_id("#sales"), "#sales");
    }
}
