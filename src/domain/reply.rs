//! What a thread says back: an answer, SQL, a file or text.
use std::time::Duration;

use super::ids::QueryId;
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
    /// Help, notices and errors, in mrkdwn.
    Text(String),
}
