//! A query an interpreter proposes, what the model spent on it, and a question asked back.
use serde::{Deserialize, Serialize};

use super::result::ColumnFormat;
use super::structured_query::StructuredQuery;

/// A clarifying question the interpreter asked, waiting for the user's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingClarification {
    /// What the user asked originally.
    pub question: String,
    /// What the interpreter asked back.
    pub asked: String,
}

/// A query an interpreter proposes. Not yet guarded: it is SQL text plus what is needed to
/// refine and present it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProposedQuery {
    /// SQL in the warehouse's dialect, before the guard caps its LIMIT.
    pub sql: String,
    /// The structured form, when the rules interpreter built it (refinements edit it).
    pub structured: Option<StructuredQuery>,
    /// One line saying what is answered, e.g. "Revenue by region, October 2026".
    pub summary: String,
    /// Display formats for result columns, by column name.
    pub formats: Vec<(String, ColumnFormat)>,
    /// Why the interpreter wrote this SQL (LLM explanation); empty for rules.
    #[serde(default)]
    pub explanation: String,
    /// What the language model spent on this query (all attempts so far); `None` for rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<LlmUsage>,
}

/// Cost and speed of the chat completions behind one query, summed over its attempts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LlmUsage {
    pub model: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Chat completions made (the first interpretation plus corrections).
    pub attempts: u32,
    /// Time spent waiting for the model, summed over attempts.
    pub latency_ms: u64,
}
