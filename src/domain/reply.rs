//! What a thread says back: an answer, SQL, a file or text.
use std::time::Duration;

use super::error_code::ErrorCode;
use super::ids::{QueryId, UserId};
use super::result::QueryResult;

/// An answer to show: a summary, the result and the context line's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub summary: String,
    pub result: QueryResult,
    /// Rows the query returned (the table shows the first `max_rows`).
    pub total_rows: usize,
    /// True when the result reached the fetch cap, so there may be more rows.
    pub capped: bool,
    pub duration: Duration,
    pub query_id: QueryId,
    pub version: usize,
}

/// What a thread says back.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Answer(Box<Answer>),
    /// The exact SQL of a version.
    Sql(String),
    /// A file for the thread (CSV export).
    File {
        filename: String,
        content_type: String,
        bytes: Vec<u8>,
        title: String,
    },
    /// Help, notices and clarifying questions, in mrkdwn.
    Text(String),
    /// A version the cost guard held back: what it would read, and a button that runs it.
    Confirm {
        text: String,
        version: usize,
    },
    /// Why the message got no answer: the error table's sentence and code, with our own words
    /// about this case (never raw database or model text).
    Error(UserError),
    /// A reply for one user alone: an answer not everyone in the channel may see (a direct
    /// message), or "Why this result?" (ephemeral, in the thread).
    Privately {
        user: UserId,
        reply: Box<Reply>,
        /// Shown in the thread to `user` only, rather than sent as a direct message.
        ephemeral: bool,
    },
    /// A schedule's echo or change, with its Pause (or Resume), Edit and Delete buttons.
    Schedule {
        text: String,
        report: i64,
        active: bool,
        /// The schedule as words the Edit dialog starts from ("cron `0 9 * * 1` Europe/Berlin").
        phrase: String,
    },
}

/// A failure as the thread shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserError {
    pub code: ErrorCode,
    /// Safe specifics in mrkdwn: the words not understood, the guard's reason, the question.
    pub detail: Option<String>,
}

impl UserError {
    pub fn new(code: ErrorCode) -> Self {
        Self { code, detail: None }
    }

    pub fn with_detail(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: Some(detail.into()),
        }
    }

    /// The sentence, then the detail, as one mrkdwn text (without the code).
    pub fn text(&self) -> String {
        match &self.detail {
            Some(detail) => format!("{}\n{detail}", self.code.sentence()),
            None => self.code.sentence().to_string(),
        }
    }
}

impl Reply {
    pub fn error(code: ErrorCode) -> Self {
        Self::Error(UserError::new(code))
    }

    pub fn error_with(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self::Error(UserError::with_detail(code, detail))
    }

    /// Whether the reply shows warehouse data (rows or a file of them): what the audience
    /// check of a channel is about.
    pub fn shows_data(&self) -> bool {
        matches!(self, Self::Answer(_) | Self::File { .. })
    }
}
