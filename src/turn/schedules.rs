//! Schedules and alerts from the thread: "every monday at 9" puts the thread's current query on
//! a schedule, "alert me when refunds today > 50" checks a condition on one; "schedules" lists
//! them; Pause, Resume, Edit and Delete (buttons or typed) change them. Each run is made by the
//! schedule runner through [`TurnContext::scheduled_run`]: the same guard, permissions, cost
//! guard, history and audit rows as a question asked in the thread, as its owner.
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::cancel::CancelSignal;
use super::execute::{Consent, Run};
use super::run::{as_sentence, Handled, TurnContext, TurnRequest};
use super::services::ThreadServices;
use crate::domain::{
    parse_alert, parse_schedule, Alert, AlertSpec, Command, ErrorCode, Origin, ProposedQuery, QueryId, QueryResult,
    Reply, ReportState, Schedule, ScheduleCommand, ScheduleError, ScheduledReport, ThreadState,
};
use crate::interpret::{InterpretRequest, Interpretation};
use crate::store::{next_fire_after, NewReport, ScheduleStore};

/// How many upcoming fire times the echo shows.
const FIRE_TIMES_SHOWN: usize = 3;

/// What a scheduled run produced.
pub struct ScheduledAnswer {
    pub result: QueryResult,
    pub total_rows: usize,
    pub capped: bool,
    pub duration: std::time::Duration,
    pub query_id: QueryId,
    /// The query as it ran (its time ranges read on the run's day).
    pub query: ProposedQuery,
}

/// Why a scheduled run has no answer.
pub struct ScheduledFailure {
    pub code: ErrorCode,
    /// What the schedule's thread and owner are told (the error table's sentence and our words).
    pub reply: Reply,
    /// The guard's or the warehouse's own words, for the run's row and the log.
    pub error: String,
}

impl ScheduledFailure {
    /// Whether another try could succeed: not when the query is refused or the owner may not
    /// read what it reads.
    pub fn retryable(&self) -> bool {
        !matches!(
            self.code,
            ErrorCode::NotPermitted | ErrorCode::QueryRefused | ErrorCode::QueryTooExpensive
        )
    }
}

impl TurnContext {
    /// "every monday at 9 to #sales", "alert me when refunds today > 50": stores the schedule and
    /// echoes what it understood with the next fire times and its buttons.
    pub(super) async fn schedule(&mut self, message: &TurnRequest, text: &str) -> Handled {
        let Some(store) = self.services.store.schedules() else {
            return Handled::failure(Reply::error_with(
                ErrorCode::Internal,
                "This state store keeps no schedules.".to_string(),
            ));
        };
        // Its runs have the owner's permissions: someone in no role can't schedule anything.
        let grant = match self.grant(message).await {
            Ok(grant) => grant,
            Err(refusal) => return Handled::failure(refusal),
        };
        let timezone = self.asker_timezone(message).await;
        let (question, query, schedule, alert) = match parse_alert(text, timezone) {
            Err(error) => return not_a_schedule(&error),
            Ok(Some(Alert {
                question,
                condition,
                schedule,
            })) => {
                let (question, query) = if question.is_empty() {
                    match self.state.current() {
                        Some(version) => (String::new(), version.query.clone()),
                        None => return Handled::failed(ErrorCode::NoQueryYet),
                    }
                } else {
                    match self.interpret_alone(&question, grant.policy.as_ref()).await {
                        Ok(query) => (question, query),
                        Err(handled) => return handled,
                    }
                };
                let alert = AlertSpec {
                    condition,
                    state: Default::default(),
                    last_value: None,
                };
                (question, query, schedule, Some(alert))
            }
            Ok(None) => match parse_schedule(text, timezone) {
                Err(error) => return not_a_schedule(&error),
                Ok(None) => return Handled::failed(ErrorCode::ScheduleNotUnderstood),
                Ok(Some(schedule)) => match self.state.current() {
                    Some(version) => (version.question.clone(), version.query.clone(), schedule, None),
                    None => return Handled::failed(ErrorCode::NoQueryYet),
                },
            },
        };
        let now = Utc::now();
        let new = NewReport {
            origin: self.key.clone(),
            owner: message.user.clone(),
            question,
            query,
            next_fire_at: next_fire_after(&schedule, now),
            schedule,
            alert,
        };
        let report = match store.create_report(&new).await {
            Ok(report) => report,
            Err(error) => {
                tracing::error!(thread = %self.key, ?error, "Failed to store a schedule");
                return Handled::failed(ErrorCode::StateNotSaved);
            }
        };
        self.audit(
            message,
            "schedule_created",
            None,
            format!("{}: {}", report.title(), report.describe()),
        )
        .await;
        self.services
            .metrics
            .schedules_changed
            .with_label_values(&["created"])
            .inc();
        Handled::replied(echo(&report, "Scheduled", now))
    }

    /// "schedules", "pause schedule 3", "edit schedule 3 every friday at 5pm", and the buttons.
    pub(super) async fn manage_schedules(&mut self, message: &TurnRequest, command: &ScheduleCommand) -> Handled {
        let Some(store) = self.services.store.schedules() else {
            return Handled::failed(ErrorCode::NoSuchSchedule);
        };
        let id = match command {
            ScheduleCommand::List => return self.list_schedules(message, store).await,
            ScheduleCommand::Pause(id)
            | ScheduleCommand::Resume(id)
            | ScheduleCommand::Delete(id)
            | ScheduleCommand::Edit(id, _) => *id,
        };
        let report = match store.report(id).await {
            Ok(Some(report)) if self.may_change(message, &report) => report,
            Ok(_) => return Handled::failed(ErrorCode::NoSuchSchedule),
            Err(error) => {
                tracing::error!(thread = %self.key, ?error, "Failed to read a schedule");
                return Handled::failed(ErrorCode::StateUnavailable);
            }
        };
        let now = Utc::now();
        let (state, schedule, verb, action) = match command {
            ScheduleCommand::Pause(_) => (
                ReportState::Paused { reason: None },
                report.schedule.clone(),
                "Paused",
                "paused",
            ),
            ScheduleCommand::Resume(_) => (ReportState::Active, report.schedule.clone(), "Resumed", "resumed"),
            ScheduleCommand::Edit(_, words) => {
                let timezone = report.schedule.timezone;
                match parse_schedule(words, timezone) {
                    Ok(Some(schedule)) => (report.state.clone(), schedule, "Changed", "edited"),
                    Ok(None) => return Handled::failed(ErrorCode::ScheduleNotUnderstood),
                    Err(error) => return not_a_schedule(&error),
                }
            }
            ScheduleCommand::Delete(_) => {
                return match store.delete_report(id).await {
                    Ok(true) => {
                        self.audit(message, "schedule_deleted", None, report.title()).await;
                        self.services
                            .metrics
                            .schedules_changed
                            .with_label_values(&["deleted"])
                            .inc();
                        Handled::replied(Reply::Text(format!(
                            ":wastebasket: Deleted {}: {}.",
                            report.title().to_lowercase(),
                            report.describe()
                        )))
                    }
                    Ok(false) => Handled::failed(ErrorCode::NoSuchSchedule),
                    Err(error) => {
                        tracing::error!(thread = %self.key, ?error, "Failed to delete a schedule");
                        Handled::failed(ErrorCode::StateNotSaved)
                    }
                };
            }
            ScheduleCommand::List => return Handled::failed(ErrorCode::NoSuchSchedule),
        };
        // A resumed schedule runs at its next fire time from now: the ones it slept through while
        // paused are not owed.
        let next = next_fire_after(&schedule, now);
        match store.update_report(id, &state, &schedule, next).await {
            Ok(true) => {}
            Ok(false) => return Handled::failed(ErrorCode::NoSuchSchedule),
            Err(error) => {
                tracing::error!(thread = %self.key, ?error, "Failed to change a schedule");
                return Handled::failed(ErrorCode::StateNotSaved);
            }
        }
        self.audit(message, &format!("schedule_{action}"), None, report.title())
            .await;
        self.services
            .metrics
            .schedules_changed
            .with_label_values(&[action])
            .inc();
        let changed = ScheduledReport {
            state,
            schedule,
            next_fire_at: next,
            ..report
        };
        Handled::replied(echo(&changed, verb, now))
    }

    async fn list_schedules(&self, message: &TurnRequest, store: &dyn ScheduleStore) -> Handled {
        let admin = self.is_admin(message);
        let owner = (!admin).then_some(message.user.as_str());
        let listings = match store.reports(Some(self.key.team().as_str()), owner).await {
            Ok(listings) => listings,
            Err(error) => {
                tracing::error!(thread = %self.key, ?error, "Failed to list schedules");
                return Handled::failed(ErrorCode::StateUnavailable);
            }
        };
        if listings.is_empty() {
            return Handled::replied(Reply::Text(
                "You have no schedules. In a thread with an answer, say `every monday at 9:00` (or `alert me when …`) to make one."
                    .to_string(),
            ));
        }
        let heading = if admin {
            "*Every schedule in this workspace*"
        } else {
            "*Your schedules*"
        };
        let mut lines = vec![heading.to_string()];
        for listing in &listings {
            let report = &listing.report;
            let state = match &report.state {
                ReportState::Active => {
                    format!("next run {}", local_time(report.next_fire_at, report.schedule.timezone))
                }
                ReportState::Paused { reason: None } => "paused".to_string(),
                ReportState::Paused { reason: Some(reason) } => format!("paused: {reason}"),
            };
            let last = listing
                .last_status
                .map(|status| format!(", last run {}", status.as_str().replace('_', " ")))
                .unwrap_or_default();
            let owner = if admin {
                format!(" (owner {})", report.owner.as_str())
            } else {
                String::new()
            };
            lines.push(format!(
                "• *{}*{owner}: {}. {state}{last}.",
                report.title(),
                report.describe()
            ));
        }
        lines.push(
            "`pause schedule N`, `resume schedule N`, `edit schedule N <when>`, `delete schedule N`.".to_string(),
        );
        Handled::replied(Reply::Text(lines.join("\n")))
    }

    /// The owner changes their schedules; an admin (`THREADQL_ADMINS`) changes anyone's.
    fn may_change(&self, message: &TurnRequest, report: &ScheduledReport) -> bool {
        report.origin.team() == self.key.team() && (report.owner == message.user || self.is_admin(message))
    }

    fn is_admin(&self, message: &TurnRequest) -> bool {
        self.services.admins.iter().any(|admin| admin == message.user.as_str())
    }

    /// The asker's Slack time zone, else `THREADQL_TIMEZONE`.
    async fn asker_timezone(&self, message: &TurnRequest) -> Tz {
        self.services
            .access
            .user_timezone(self.key.team().as_str(), message.user.as_str())
            .await
            .and_then(|name| name.parse().ok())
            .unwrap_or(self.services.timezone)
    }

    /// An alert's own question ("refunds today"), read without the thread's query.
    async fn interpret_alone(
        &self,
        question: &str,
        access: Option<&crate::sql::AccessPolicy>,
    ) -> Result<ProposedQuery, Handled> {
        let request = InterpretRequest {
            text: question,
            current: None,
            today: self.services.today(),
            history: &[],
            clarifying: None,
            access,
        };
        match self.services.interpreter.interpret(request).await {
            Ok(Interpretation::Query(query)) => Ok(*query),
            Ok(Interpretation::Clarify(asked)) => Err(Handled::replied(Reply::Text(format!(
                "Before I can watch “{question}”: {asked}"
            )))),
            Ok(Interpretation::NotUnderstood(detail)) => {
                Err(Handled::failure(Reply::error_with(ErrorCode::NotUnderstood, detail)))
            }
            Err(error) => {
                tracing::warn!(thread = %self.key, ?error, "Failed to interpret an alert's question");
                Err(Handled::failed(ErrorCode::InterpreterFailed))
            }
        }
    }

    /// One run of `report` as of `today` (in its zone), with its owner's permissions, from the thread it was
    /// made in (its history and audit rows say so). No state is kept or posted here: the runner
    /// decides what the run delivers.
    pub async fn scheduled_run(
        services: std::sync::Arc<ThreadServices>,
        report: &ScheduledReport,
        today: chrono::NaiveDate,
    ) -> Result<ScheduledAnswer, ScheduledFailure> {
        let query = services.interpreter.as_of(&report.query, today);
        let context = TurnContext::new(
            report.origin.clone(),
            services.clone(),
            ThreadState::default(),
            0,
            false,
            CancelSignal::default(),
        );
        let message = TurnRequest {
            user: report.owner.clone(),
            text: report.question.clone(),
            command: Command::Ask(report.question.clone()),
            message_ts: Default::default(),
            origin: Origin::ThreadReply,
            version: None,
            event_id: String::new(),
        };
        let query_id = QueryId::random();
        let cap = services.limits.answer_fetch_cap;
        let run = Run {
            question: &report.question,
            query_id: &query_id,
            query: &query,
            version: 0,
            row_cap: cap,
            // The owner chose to run it on a schedule; the refusal threshold still holds.
            consent: Consent::Given,
            pages: None,
        };
        match context.execute(&message, run).await {
            Ok(execution) => Ok(ScheduledAnswer {
                capped: execution.rows >= cap,
                total_rows: execution.rows,
                result: execution.result,
                duration: execution.duration,
                query_id,
                query,
            }),
            Err(failure) => {
                let code = match &failure.reply {
                    Reply::Error(error) => error.code,
                    _ => ErrorCode::QueryFailed,
                };
                Err(ScheduledFailure {
                    code,
                    reply: failure.reply,
                    error: failure.error,
                })
            }
        }
    }
}

/// The schedule's words as the Edit dialog starts from them.
pub fn schedule_phrase(schedule: &Schedule) -> String {
    use crate::domain::{Attachment, CatchUp, Destination};
    let mut words = format!("cron {} {}", schedule.cron, schedule.timezone.name());
    match &schedule.destination {
        Destination::Thread => {}
        Destination::Me => words.push_str(" to me"),
        Destination::Channel(channel) => words.push_str(&format!(" to {channel}")),
    }
    match schedule.options.attach {
        Some(Attachment::Csv) => words.push_str(" with csv"),
        Some(Attachment::Chart) => words.push_str(" with a chart"),
        None => {}
    }
    if schedule.options.skip_if_empty {
        words.push_str(" skip if empty");
    }
    if schedule.options.skip_if_unchanged {
        words.push_str(" skip if unchanged");
    }
    match schedule.options.catch_up {
        CatchUp::Latest => {}
        CatchUp::Skip => words.push_str(" skip missed runs"),
        CatchUp::All => words.push_str(" catch up all"),
    }
    words
}

/// "Scheduled: …" with the next fire times (or "paused") and the schedule's buttons.
fn echo(report: &ScheduledReport, verb: &str, now: DateTime<Utc>) -> Reply {
    let active = report.state == ReportState::Active;
    let upcoming = if active {
        let times: Vec<String> = report
            .schedule
            .next_fire_times(now, FIRE_TIMES_SHOWN)
            .into_iter()
            .map(|at| local_time(at, report.schedule.timezone))
            .collect();
        format!("\nNext runs: {}.", times.join("; "))
    } else {
        "\nIt is paused: it will not run until it is resumed.".to_string()
    };
    Reply::Schedule {
        text: format!(
            ":calendar: {verb} *{}*: {}.{upcoming}\nIt runs with the permissions of whoever made it.",
            report.title().to_lowercase(),
            report.describe(),
        ),
        report: report.id,
        active,
        phrase: schedule_phrase(&report.schedule),
    }
}

/// "Mon 7 Dec 2026 09:00 CET".
pub fn local_time(at: DateTime<Utc>, timezone: Tz) -> String {
    at.with_timezone(&timezone).format("%a %-d %b %Y %H:%M %Z").to_string()
}

fn not_a_schedule(error: &ScheduleError) -> Handled {
    Handled::failure(Reply::error_with(
        ErrorCode::ScheduleNotUnderstood,
        as_sentence(error.message()),
    ))
}
