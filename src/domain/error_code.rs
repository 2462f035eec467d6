//! Every failure a user can meet, in one table: a stable snake_case code, the HTTP status where
//! it ends an HTTP request, the outcome label metrics count it under, and the one sentence a
//! user is shown. Raw database, pool or model error text never reaches a user: it goes to the
//! log, the query history and the interpreter's correction prompt; the thread gets the sentence
//! and the code (which the audit and history rows carry too, so a report can be traced).

/// What went wrong, as a user (or Slack) meets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    // A question that never became a query.
    NotUnderstood,
    QuestionTooLong,
    LlmUnavailable,
    InterpreterFailed,
    // A command with nothing to act on.
    NoQueryYet,
    NothingToUndo,
    NothingToCancel,
    /// Clearly a schedule or an alert, but not one that can be read.
    ScheduleNotUnderstood,
    /// A schedule that does not exist (any more), or is not the user's to change.
    NoSuchSchedule,
    // A query that did not produce an answer.
    QueryRefused,
    NotPermitted,
    QueryFailed,
    QueryTimedOut,
    QueryTooExpensive,
    DailyBudgetExceeded,
    QueryCancelled,
    QuerySuperseded,
    TooManyQueries,
    WarehouseUnavailable,
    // A result that could not be turned into a file.
    ChartUnsuitable,
    ChartFailed,
    ExportFailed,
    // The thread's own state.
    StateUnavailable,
    StateNotSaved,
    ThreadChangedElsewhere,
    Internal,
    // Ingress: a request or message not taken.
    InvalidSignature,
    BadRequest,
    RateLimited,
    Overloaded,
    SlackRefused,
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorDescription {
    /// Stable, snake_case: shown to users, stored in audit rows, searched in logs.
    pub code: &'static str,
    /// The status an HTTP request that fails this way gets; `None` where no request fails.
    pub http_status: Option<u16>,
    /// The `outcome` label of the metric that counts it (bounded: several codes may share one).
    pub outcome: &'static str,
    /// What the user reads.
    pub sentence: &'static str,
}

impl ErrorCode {
    /// Every code, for tests and docs that walk the table.
    pub const ALL: [ErrorCode; 31] = [
        Self::NotUnderstood,
        Self::QuestionTooLong,
        Self::LlmUnavailable,
        Self::InterpreterFailed,
        Self::NoQueryYet,
        Self::NothingToUndo,
        Self::NothingToCancel,
        Self::ScheduleNotUnderstood,
        Self::NoSuchSchedule,
        Self::QueryRefused,
        Self::NotPermitted,
        Self::QueryFailed,
        Self::QueryTimedOut,
        Self::QueryTooExpensive,
        Self::DailyBudgetExceeded,
        Self::QueryCancelled,
        Self::QuerySuperseded,
        Self::TooManyQueries,
        Self::WarehouseUnavailable,
        Self::ChartUnsuitable,
        Self::ChartFailed,
        Self::ExportFailed,
        Self::StateUnavailable,
        Self::StateNotSaved,
        Self::ThreadChangedElsewhere,
        Self::Internal,
        Self::InvalidSignature,
        Self::BadRequest,
        Self::RateLimited,
        Self::Overloaded,
        Self::SlackRefused,
    ];

    /// The table itself: one exhaustive match, so a new code cannot go without its row.
    pub const fn describe(self) -> ErrorDescription {
        let (code, http_status, outcome, sentence) = match self {
            Self::NotUnderstood => ("not_understood", None, "not_understood", "I couldn't turn that into a query."),
            Self::QuestionTooLong => (
                "question_too_long",
                None,
                "refused",
                "That message is longer than the 40,000 characters I read (Slack's own message limit). Please ask a shorter question.",
            ),
            Self::LlmUnavailable => (
                "llm_unavailable",
                None,
                "unavailable",
                "I can't reach the language model right now. Please try again in a minute; this thread is unchanged.",
            ),
            Self::InterpreterFailed => (
                "interpreter_failed",
                None,
                "failed",
                "Something went wrong while interpreting that. Please try again.",
            ),
            Self::NoQueryYet => (
                "no_query_yet",
                None,
                "nothing_to_do",
                "There is no query in this thread yet. Ask a question first, e.g. `revenue by region last month`.",
            ),
            Self::NothingToUndo => ("nothing_to_undo", None, "nothing_to_do", "There is nothing to undo."),
            Self::ScheduleNotUnderstood => (
                "schedule_not_understood",
                None,
                "not_understood",
                "I couldn't read that as a schedule. Say for example `every monday at 9:00`, `daily at 8 Europe/Berlin to #sales` or `alert me when refunds today > 50`.",
            ),
            Self::NoSuchSchedule => (
                "no_such_schedule",
                None,
                "nothing_to_do",
                "There is no such schedule, or it is not yours to change. `schedules` lists yours.",
            ),
            Self::NothingToCancel => (
                "nothing_to_cancel",
                None,
                "nothing_to_do",
                "Nothing is running in this thread, so there is nothing to cancel.",
            ),
            Self::QueryRefused => (
                "query_refused",
                None,
                "refused",
                "I won't run that query: only a single read-only SELECT over the warehouse's tables may run.",
            ),
            Self::QueryFailed => (
                "query_failed",
                None,
                "failed",
                "The warehouse couldn't run that query. Try rephrasing the question; `show sql` shows what I tried.",
            ),
            Self::NotPermitted => (
                "not_permitted",
                None,
                "refused",
                "You don't have access to that data. Ask your data team if you need it; `show sql` shows what I tried.",
            ),
            Self::QueryTimedOut => (
                "query_timed_out",
                None,
                "timeout",
                "The query ran past its time limit and was stopped. Try a shorter time range or fewer breakdowns.",
            ),
            Self::QueryTooExpensive => (
                "query_too_expensive",
                None,
                "refused",
                "That query would read more of the warehouse than one question may. Narrow it: a shorter time range, a filter or fewer breakdowns.",
            ),
            Self::DailyBudgetExceeded => (
                "daily_budget_exceeded",
                None,
                "refused",
                "That query would go past today's budget of warehouse reads. The budget starts again at midnight UTC; a narrower question may still fit.",
            ),
            Self::QueryCancelled => ("query_cancelled", None, "cancelled", "Cancelled the query."),
            Self::QuerySuperseded => (
                "query_superseded",
                None,
                "cancelled",
                "Stopped the query: your newer message replaced it.",
            ),
            Self::TooManyQueries => (
                "too_many_queries",
                None,
                "busy",
                "Too many queries are running right now; wait for one to finish, or say `cancel`.",
            ),
            Self::WarehouseUnavailable => (
                "warehouse_unavailable",
                None,
                "unavailable",
                "I can't reach the warehouse right now. Please try again in a minute; this thread is unchanged.",
            ),
            Self::ChartUnsuitable => (
                "chart_unsuitable",
                None,
                "refused",
                "This result can't be drawn as a chart.",
            ),
            Self::ChartFailed => ("chart_failed", None, "failed", "Sorry, I couldn't draw that chart."),
            Self::ExportFailed => ("export_failed", None, "failed", "Sorry, I couldn't write that CSV file."),
            Self::StateUnavailable => (
                "state_unavailable",
                None,
                "unavailable",
                "I can't reach my state store right now, so I can't continue this thread. Please try again in a minute.",
            ),
            Self::StateNotSaved => (
                "state_not_saved",
                None,
                "not_persisted",
                "I couldn't save this thread's state, so I didn't go on. Please try again in a minute.",
            ),
            Self::ThreadChangedElsewhere => (
                "thread_changed_elsewhere",
                None,
                "not_persisted",
                "This thread was changed elsewhere at the same time; I reloaded it. Please send that again.",
            ),
            Self::Internal => (
                "internal_error",
                Some(500),
                "panicked",
                "Sorry, something went wrong while handling that message. The thread is intact; please try again.",
            ),
            Self::InvalidSignature => (
                "invalid_signature",
                Some(401),
                "rejected",
                "The request's Slack signature is missing, stale or wrong.",
            ),
            Self::BadRequest => ("bad_request", Some(400), "bad_request", "The request could not be read."),
            Self::RateLimited => (
                "rate_limited",
                None,
                "rate_limited",
                "You're asking faster than I can answer, so I didn't answer that one.",
            ),
            Self::Overloaded => (
                "overloaded",
                Some(503),
                "overloaded",
                "I'm answering a great many questions right now and can't take this one. Please ask again in a minute.",
            ),
            Self::SlackRefused => (
                "slack_refused",
                None,
                "slack_refused",
                "I couldn't post in this channel. Invite me with `/invite @threadql`, or mention me instead.",
            ),
        };
        ErrorDescription {
            code,
            http_status,
            outcome,
            sentence,
        }
    }

    pub const fn code(self) -> &'static str {
        self.describe().code
    }

    pub const fn sentence(self) -> &'static str {
        self.describe().sentence
    }

    pub const fn outcome(self) -> &'static str {
        self.describe().outcome
    }

    /// The code named by `code` (audit rows store codes as text).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|candidate| candidate.code() == code)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            let text = code.code();
            assert!(seen.insert(text), "{text} is used twice");
            assert!(
                text.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !text.starts_with('_'),
                "{text} is not snake_case"
            );
            assert_eq!(ErrorCode::from_code(text), Some(code));
        }
        assert_eq!(ErrorCode::from_code("no_such_code"), None);
    }

    #[test]
    fn every_sentence_is_one_finished_sentence_without_internals() {
        for code in ErrorCode::ALL {
            let sentence = code.sentence();
            assert!(sentence.ends_with('.'), "{code}: {sentence}");
            assert!(sentence.starts_with(char::is_uppercase), "{code}: {sentence}");
            for internal in ["sqlx", "SQLSTATE", "error:", "Error", "panicked", "{"] {
                assert!(!sentence.contains(internal), "{code}: {sentence}");
            }
        }
    }

    #[test]
    fn http_statuses_are_client_or_server_errors() {
        for code in ErrorCode::ALL {
            if let Some(status) = code.describe().http_status {
                assert!((400..600).contains(&status), "{code}: {status}");
            }
        }
        assert_eq!(ErrorCode::InvalidSignature.describe().http_status, Some(401));
    }
}
